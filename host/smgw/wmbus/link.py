"""EN 13757-4 link layer (design note ``meter-protocols.md`` §1.4-1.5): the CRC-16 EN 13757,
the DLL CRCs of frame formats A and B (detect, check, strip, add), the L/C/M/A fields,
manufacturer codes and identification numbers.

Layout after the CRCs are gone (L counts every byte after itself)::

    L | C | M (2, LE) | ID (4, BCD, LSB first) | version | device type | CI ...

Detection (:func:`strip_crcs` with ``frame="auto"``), for ``n`` bytes starting at the L-field:

* ``n == 1 + L + 2 * blocks(L)`` (``blocks(L) = 1 + ceil((L - 9) / 16)``): frame **A** with its
  CRCs. Every block CRC must match, else :class:`WmbusCrc` -- no other reading gives that length.
* ``n == L + 1``: frame **B** with its CRCs (one CRC at the end when ``n <= 128``; else one at
  bytes 126..127 over bytes 0..125 and one at the end over bytes 128..n-3) *if* every CRC
  matches; otherwise a telegram whose CRCs are already removed (``None``). A frame-B telegram
  with a broken CRC is therefore indistinguishable from a CRC-less one (the chance that random
  bytes pass as frame B is 2^-16); when the radio says which format arrived, pass ``frame``.
* anything shorter than it needs is :class:`WmbusShort`, anything longer :class:`WmbusSyntax`.

The stripped telegram always has ``L = len - 1`` (frame B's L is rebuilt as wmbusmeters does), so
later layers treat A, B and CRC-less telegrams alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from smgw.wmbus import WmbusCrc, WmbusError, WmbusShort, WmbusSyntax

__all__ = [
    "C_NAMES",
    "DEVICE_TYPES",
    "MIN_L",
    "Address",
    "LinkHeader",
    "WmbusCrc",
    "WmbusError",
    "WmbusShort",
    "WmbusSyntax",
    "add_crcs",
    "crc16",
    "frame_a_length",
    "id_bytes",
    "id_text",
    "manufacturer_bytes",
    "manufacturer_code",
    "manufacturer_value",
    "parse_link",
    "strip_crcs",
]

MIN_L = 10  # C, M (2), A (6) and at least the CI-field
_B_SINGLE_MAX = 128  # frame B: up to 128 bytes one CRC at the end; from 131 bytes two CRCs
_B_MIN = 12  # frame B: 10 header bytes, the CI, its CRC


# ---------------------------------------------------------------------------------------- CRC
# CRC-16 EN 13757: poly 0x3D65, init 0, not reflected, final XOR 0xFFFF (check 0xC2B7).

def _make_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x3D65) if c & 0x8000 else (c << 1)
        table.append(c & 0xFFFF)
    return tuple(table)


_TABLE = _make_table()


def crc16(data: bytes) -> int:
    """CRC-16 EN 13757 (check value for ``b"123456789"``: 0xC2B7)."""
    crc = 0
    t = _TABLE
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ t[(crc >> 8) ^ b]
    return crc ^ 0xFFFF


# ----------------------------------------------------------------------------- frame A and B

def frame_a_length(l_field: int) -> int:
    """Bytes on air (after line decoding) of a frame-A telegram with this L-field: L, the data
    and one 2-byte CRC per block (10 header bytes, then blocks of 16)."""
    rest = max(l_field - 9, 0)
    return 1 + l_field + 2 * (1 + (rest + 15) // 16)


def _check(data: bytes, start: int, end: int, block: str) -> None:
    """CRC over ``data[start:end]``, sent big-endian at ``data[end:end + 2]``."""
    sent = (data[end] << 8) | data[end + 1]
    computed = crc16(data[start:end])
    if sent != computed:
        raise WmbusCrc(block, sent, computed, offset=end)


def _strip_a(data: bytes) -> bytes:
    out = bytearray()
    pos = 0
    block = 1
    size = 10  # block 1: L, C, M, A
    n = len(data)
    while pos < n:
        end = min(pos + size, n - 2)
        _check(data, pos, end, f"A{block}")
        out += data[pos:end]
        pos = end + 2
        block += 1
        size = 16
    return bytes(out)


def _b_layout_ok(n: int) -> bool:
    return _B_MIN <= n <= _B_SINGLE_MAX or _B_SINGLE_MAX + 3 <= n <= 256


def _strip_b(data: bytes) -> bytes:
    n = len(data)
    if n <= _B_SINGLE_MAX:
        _check(data, 0, n - 2, "B1")
        out = bytearray(data[: n - 2])
    else:
        _check(data, 0, 126, "B1")
        _check(data, 128, n - 2, "B2")
        out = bytearray(data[:126] + data[128 : n - 2])
    out[0] = len(out) - 1
    return bytes(out)


def strip_crcs(data: bytes, frame: str = "auto") -> tuple[bytes, str | None]:
    """Remove and check the DLL CRCs of a telegram that starts at its L-field.

    Returns ``(telegram, frame)``: the telegram without CRCs (with ``L = len - 1``) and
    ``"A"``, ``"B"`` or ``None`` (no CRCs were in it). ``frame``: ``"auto"`` detects (module
    docstring); ``"A"`` / ``"B"`` / ``"none"`` insist on that layout (what a radio reports).
    Raises :class:`WmbusShort`, :class:`WmbusSyntax` (length / L-field disagree) or
    :class:`WmbusCrc`.
    """
    data = bytes(data)
    n = len(data)
    if n == 0:
        raise WmbusShort("empty telegram")
    ll = data[0]
    if frame not in ("auto", "A", "B", "none"):
        raise ValueError(f"frame must be 'auto', 'A', 'B' or 'none', not {frame!r}")
    if ll < MIN_L and frame != "B":
        raise WmbusSyntax(f"L-field {ll} too small (at least {MIN_L}: C, M, A, CI)", "length")
    len_a = frame_a_length(ll)
    if frame == "A" or (frame == "auto" and n > ll + 1):
        if n < len_a:
            raise WmbusShort(f"truncated: L-field {ll} needs {len_a} bytes with frame-A CRCs"
                             + ("" if frame == "A" else f" (or {ll + 1} without CRCs)")
                             + f", got {n}")
        if n > len_a:
            raise WmbusSyntax(f"{n} bytes, but L-field {ll} means {ll + 1} bytes (or {len_a} "
                              "with frame-A CRCs)", "length")
        return _strip_a(data), "A"
    if n < ll + 1:
        raise WmbusShort(f"truncated: L-field {ll} needs {ll + 1} bytes, got {n}")
    if n > ll + 1:  # only when frame is "B" or "none"
        raise WmbusSyntax(f"{n} bytes, but L-field {ll} means {ll + 1} bytes", "length")
    if frame == "none":
        return data, None
    if frame == "B":
        if not _b_layout_ok(n):
            raise WmbusSyntax(f"{n} bytes cannot be a frame-B telegram (12..128 or 131..256)",
                              "length")
        out = _strip_b(data)
        if len(out) - 1 < MIN_L:
            raise WmbusSyntax(f"frame B too short: L-field {len(out) - 1} after the CRCs",
                              "length")
        return out, "B"
    # auto, n == L + 1: frame B if every CRC matches, else no CRCs
    if _b_layout_ok(n) and n - (2 if n <= _B_SINGLE_MAX else 4) - 1 >= MIN_L:
        try:
            return _strip_b(data), "B"
        except WmbusCrc:
            pass
    return data, None


def add_crcs(telegram: bytes, frame: str) -> bytes:
    """The inverse of :func:`strip_crcs`: insert the DLL CRCs of frame ``"A"`` or ``"B"`` (frame
    B's L is rewritten to count the CRCs). ``telegram`` must have ``L = len - 1``; a telegram
    that does not fit the format is the caller's bug (``ValueError``)."""
    t = bytes(telegram)
    if len(t) < MIN_L + 1 or t[0] != len(t) - 1:
        raise ValueError("telegram must start with L = len - 1 and hold at least C, M, A, CI")
    if frame == "A":
        out = bytearray()
        pos, size = 0, 10
        while pos < len(t):
            chunk = t[pos : pos + size]
            out += chunk + crc16(chunk).to_bytes(2, "big")
            pos += size
            size = 16
        return bytes(out)
    if frame == "B":
        n = len(t)
        if n + 2 <= _B_SINGLE_MAX:
            body = bytes([n + 1]) + t[1:]
            return body + crc16(body).to_bytes(2, "big")
        if n + 4 > 256:
            raise ValueError(f"{n} bytes do not fit a frame-B telegram (at most 252 without CRCs)")
        first = bytes([n + 3]) + t[1:126]
        second = t[126:]
        return (first + crc16(first).to_bytes(2, "big")
                + second + crc16(second).to_bytes(2, "big"))
    raise ValueError(f"frame must be 'A' or 'B', not {frame!r}")


# ----------------------------------------------------------------------- M- and A-field values

def manufacturer_code(value: int) -> str:
    """2-byte M-field value -> three letters (``0x1593`` -> ``"ELS"``). Bit 15 is ignored (some
    meters set it); 5-bit values outside 1..26 come out as the characters after ``@``."""
    v = value & 0x7FFF
    return "".join(chr(((v >> s) & 0x1F) + 64) for s in (10, 5, 0))


def manufacturer_value(code: str) -> int:
    """Three letters -> M-field value (``"KAM"`` -> ``0x2C2D``); ``ValueError`` if not A-Z."""
    if len(code) != 3 or not all("A" <= c <= "Z" for c in code.upper()):
        raise ValueError(f"manufacturer code must be three letters A-Z, not {code!r}")
    c = code.upper()
    return ((ord(c[0]) - 64) << 10) | ((ord(c[1]) - 64) << 5) | (ord(c[2]) - 64)


def manufacturer_bytes(code: str) -> bytes:
    """Three letters -> the two M-field bytes as sent (little-endian)."""
    return manufacturer_value(code).to_bytes(2, "little")


def id_text(raw: bytes) -> str:
    """4 ID bytes as sent (LSB first) -> the 8 digits printed on the meter (``78563412`` ->
    ``"12345678"``). Non-BCD nibbles appear as hex letters (upper case)."""
    return bytes(reversed(raw)).hex().upper()


def id_bytes(text: str) -> bytes:
    """8 digits as printed -> the 4 ID bytes as sent; ``ValueError`` if not 8 hex digits."""
    if len(text) != 8:
        raise ValueError(f"identification number must have 8 digits, not {text!r}")
    try:
        return bytes(reversed(bytes.fromhex(text)))
    except ValueError:
        raise ValueError(f"identification number must have 8 digits, not {text!r}") from None


# ------------------------------------------------------------------------------- the header

C_NAMES: dict[int, str] = {
    0x44: "SND-NR", 0x46: "SND-IR", 0x47: "ACC-NR", 0x48: "ACC-DMD", 0x40: "SND-NKE",
    0x53: "SND-UD", 0x73: "SND-UD", 0x43: "SND-UD2", 0x5A: "REQ-UD1", 0x7A: "REQ-UD1",
    0x5B: "REQ-UD2", 0x7B: "REQ-UD2", 0x00: "ACK", 0x10: "ACK", 0x20: "ACK", 0x30: "ACK",
    0x01: "NACK", 0x06: "CNF-IR", 0x08: "RSP-UD", 0x18: "RSP-UD", 0x28: "RSP-UD",
    0x38: "RSP-UD",
}

DEVICE_TYPES: dict[int, str] = {
    0x00: "other", 0x01: "oil", 0x02: "electricity", 0x03: "gas", 0x04: "heat",
    0x05: "steam", 0x06: "warm water", 0x07: "water", 0x08: "heat cost allocator",
    0x09: "compressed air", 0x0A: "cooling load meter (outlet)",
    0x0B: "cooling load meter (inlet)", 0x0C: "heat (inlet)", 0x0D: "heat/cooling",
    0x0E: "bus/system component", 0x0F: "unknown", 0x14: "calorific value",
    0x15: "hot water", 0x16: "cold water", 0x17: "dual water", 0x18: "pressure",
    0x19: "A/D converter", 0x1A: "smoke detector", 0x1B: "room sensor", 0x1C: "gas detector",
    0x20: "breaker", 0x21: "valve", 0x25: "customer unit", 0x28: "waste water",
    0x29: "garbage", 0x2A: "CO2", 0x31: "communication controller",
    0x32: "unidirectional repeater", 0x33: "bidirectional repeater",
    0x36: "radio converter (system side)", 0x37: "radio converter (meter side)",
    0x38: "wired adapter",
}


@dataclass(frozen=True, slots=True)
class Address:
    """A meter (or module) address: ``raw`` is ``M (2) | ID (4) | version | device type`` in
    DLL order, exactly the first 8 bytes of a mode-5 IV."""

    manufacturer: str
    id: str
    version: int
    device_type: int
    raw: bytes

    @classmethod
    def from_dll(cls, b: bytes) -> Address:
        """8 bytes in DLL / ELL order: M, ID, version, type."""
        return cls(manufacturer_code(b[0] | (b[1] << 8)), id_text(b[2:6]), b[6], b[7], bytes(b))

    @classmethod
    def from_tpl(cls, b: bytes) -> Address:
        """8 bytes in long-TPL order: ID, M, version, type."""
        return cls.from_dll(b[4:6] + b[0:4] + b[6:8])

    @property
    def id_raw(self) -> bytes:
        """The 4 ID bytes as sent (the KDF input)."""
        return self.raw[2:6]

    @property
    def medium(self) -> str:
        return DEVICE_TYPES.get(self.device_type, f"0x{self.device_type:02x}")

    def to_json(self) -> dict:
        return {"manufacturer": self.manufacturer, "id": self.id, "version": self.version,
                "device_type": self.device_type}


@dataclass(frozen=True, slots=True)
class LinkHeader:
    """The DLL fields of a telegram (CRCs removed). ``id`` is the 8-digit number as printed on
    the meter; ``address`` is the same address as :class:`Address` (raw bytes for the IVs)."""

    l: int  # noqa: E741 -- the standard's name
    c: int
    manufacturer: str
    id: str
    version: int
    device_type: int
    ci: int
    address: Address

    @property
    def c_name(self) -> str:
        return C_NAMES.get(self.c, f"0x{self.c:02x}")

    @property
    def medium(self) -> str:
        return self.address.medium


def parse_link(telegram: bytes) -> LinkHeader:
    """The DLL header of a telegram without CRCs (``L = len - 1``, at least 11 bytes)."""
    n = len(telegram)
    if n < MIN_L + 1:
        raise WmbusShort(f"telegram of {n} bytes has no room for L, C, M, A and CI")
    if telegram[0] != n - 1:
        raise WmbusSyntax(f"L-field {telegram[0]} but {n - 1} bytes follow it", "length")
    a = Address.from_dll(telegram[2:10])
    return LinkHeader(telegram[0], telegram[1], a.manufacturer, a.id, a.version,
                      a.device_type, telegram[10], a)
