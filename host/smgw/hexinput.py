"""Hex text a user typed or pasted (a telegram, a frame): whitespace and a 0x prefix allowed,
anything else named precisely in the error."""

from __future__ import annotations

WHITESPACE = b" \t\r\n\f\v"
_HEXDIGITS = frozenset(b"0123456789abcdefABCDEF")


class HexInputError(ValueError):
    """The text is not hex bytes: the user's input, said in one line."""


def parse_hex(text: bytes, where: str) -> bytes:
    digits = bytes(c for c in text if c not in WHITESPACE)
    if digits[:2] in (b"0x", b"0X"):
        digits = digits[2:]
    if not digits:
        raise HexInputError(f"{where} is empty")
    bad = next((i for i, c in enumerate(digits) if c not in _HEXDIGITS), None)
    if bad is not None:
        shown = digits[bad:bad + 1].decode("ascii", "replace")
        raise HexInputError(f"{where} is not hexadecimal (character {shown!r} after {bad} hex "
                            "digits)")
    if len(digits) % 2:
        raise HexInputError(f"{where} has an odd number of hex digits ({len(digits)})")
    return bytes.fromhex(digits.decode("ascii"))
