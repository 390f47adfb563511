"""``smgw decode wmbus [--key HEX] HEX | --file PATH | -``: decode a wM-Bus / OMS telegram and
print it as JSON.

:func:`add_wmbus_parser` registers ``wmbus`` under the ``decode`` command
(``smgw.meters.cli.add_parser`` calls it); :func:`main` runs it on its own:
``main(["--key", KEY, HEX])`` or ``python -m smgw.wmbus.cli HEX``.

Input: the telegram as a radio delivers it, starting at the L-field, with or without DLL CRCs,
frame A or B (detected). On the command line as hex (whitespace allowed, several arguments are
joined); with ``--file PATH`` or ``-`` (stdin) either raw bytes (one telegram) or hex text: one
telegram per line, where a line may also be an rtl-wmbus output line ``MODE;CRC_OK;3OUTOF6OK;
TIMESTAMP;PACKET_RSSI;CURRENT_RSSI;LINK_LAYER_IDENT_NO;HEX`` (the last field is the telegram,
the fifth the RSSI); lines starting with ``#`` are skipped.
One telegram prints one JSON object; several print a JSON array.

Application data that are not EN 13757-3 records (a manufacturer's own format) still print:
``records`` is empty, ``apl_error`` says why, ``payload`` holds the decrypted bytes, and a
warning line goes to stderr (exit status 0).

Exit status: 0 decoded; 1 the telegram is not usable -- wrong key, bad CRC, truncated, clear
although a key is given, ... (one line ``smgw decode wmbus: <reason>`` on stderr); 2 usage (not
hex, bad key, no input).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from smgw.hexinput import WHITESPACE, HexInputError, parse_hex

PROG = "smgw decode wmbus"
_WS = WHITESPACE


class _Usage(Exception):
    pass


def _configure(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("hex", nargs="*", metavar="HEX",
                   help="the telegram as hex, from the L-field (several words are joined); "
                        "'-' reads stdin")
    p.add_argument("--file", "-f", metavar="PATH",
                   help="read raw bytes or hex text (one telegram per line) from PATH "
                        "('-' = stdin)")
    p.add_argument("--key", "-k", metavar="HEX",
                   help="the meter's AES-128 key (32 hex digits); with a key, a telegram that "
                        "arrives unencrypted is rejected")
    p.add_argument("--allow-clear", action="store_true",
                   help="accept an unencrypted telegram even though --key is given")
    p.add_argument("--frame", choices=("auto", "A", "B", "none"), default="auto",
                   help="DLL CRC layout: detect (default), frame A, frame B, no CRCs")
    p.set_defaults(func=cmd_decode_wmbus)
    return p


def add_wmbus_parser(decode_subparsers) -> argparse.ArgumentParser:
    """Register ``wmbus`` on the ``decode`` command's protocol sub-parsers."""
    return _configure(decode_subparsers.add_parser(
        "wmbus", help="wireless M-Bus / OMS telegrams (EN 13757-4/-7/-3)",
        description="Decode a wireless M-Bus / OMS telegram (from the L-field; with or without "
                    "DLL CRCs, frame A or B) to JSON: meter address, access number, security "
                    "mode and the data records. Security modes 5 and 7 and ELL AES-CTR."))


def _key(text: str | None) -> bytes | None:
    if text is None:
        return None
    digits = "".join(text.split())
    if digits[:2] in ("0x", "0X"):
        digits = digits[2:]
    if len(digits) != 32 or any(c not in "0123456789abcdefABCDEF" for c in digits):
        raise _Usage("--key must be 32 hex digits (AES-128)")
    return bytes.fromhex(digits)


def _hex(text: bytes, where: str) -> bytes:
    try:
        return parse_hex(text, where)
    except HexInputError as e:
        raise _Usage(str(e)) from None


def _is_text(data: bytes) -> bool:
    """Printable ASCII and whitespace only: hex text (a raw telegram has binary bytes)."""
    return all(0x20 <= c <= 0x7E or c in _WS for c in data)


def _lines(data: bytes, where: str) -> list[tuple[bytes, float | None, str]]:
    """Hex text -> ``(telegram, rssi, where)`` per non-empty line (rtl-wmbus lines too)."""
    out = []
    rows = [r for r in data.splitlines() if r.strip(_WS) and not r.lstrip().startswith(b"#")]
    for i, row in enumerate(rows, 1):
        label = where if len(rows) == 1 else f"{where} line {i}"
        rssi = None
        if b";" in row:
            fields = row.strip(_WS).split(b";")
            if len(fields) >= 5:
                try:
                    rssi = float(fields[4])
                except ValueError:
                    rssi = None
            row = fields[-1]
        out.append((_hex(row, label), rssi, label))
    if not out:
        raise _Usage(f"{where} is empty")
    return out


def _read_input(args: argparse.Namespace) -> list[tuple[bytes, float | None, str]]:
    hex_text = " ".join(args.hex) if args.hex else None
    if hex_text is not None and args.file is not None:
        raise _Usage("give HEX or --file, not both")
    if hex_text is None and args.file is None:
        raise _Usage("no input: give HEX, --file PATH or - (stdin)")
    if args.file is not None or hex_text == "-":
        src = args.file if args.file is not None else "-"
        data = sys.stdin.buffer.read() if src == "-" else Path(src).read_bytes()
        where = "stdin" if src == "-" else src
        if not data.strip(_WS):
            raise _Usage(f"{where} is empty")
        if _is_text(data):
            return _lines(data, where)
        return [(data, None, where)]
    return [(_hex(hex_text.encode("utf-8", "replace"), "HEX"), None, "HEX")]


def cmd_decode_wmbus(args: argparse.Namespace) -> int:
    from smgw.wmbus import WmbusError
    from smgw.wmbus.decode import decode

    try:
        key = _key(args.key)
        telegrams = _read_input(args)
    except _Usage as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"{PROG}: cannot read {args.file}: {e.strerror or e}", file=sys.stderr)
        return 1
    expect = False if args.allow_clear else None
    results = []
    for data, rssi, where in telegrams:
        try:
            t = decode(data, key, expect_encrypted=expect, frame=args.frame, rssi=rssi,
                       strict_apl=False)
        except WmbusError as e:
            prefix = f"{where}: " if len(telegrams) > 1 else ""
            print(f"{PROG}: {prefix}{e}", file=sys.stderr)
            return 1
        if t.apl_error is not None:
            prefix = f"{where}: " if len(telegrams) > 1 else ""
            print(f"{PROG}: {prefix}warning: no records: {t.apl_error}", file=sys.stderr)
        results.append(t.to_json())
    out = results[0] if len(results) == 1 else results
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``smgw decode wmbus`` on its own (``main(["--key", KEY, HEX])``)."""
    p = _configure(argparse.ArgumentParser(prog=PROG, description="Decode a wM-Bus telegram."))
    args = p.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
