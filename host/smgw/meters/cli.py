"""``smgw decode sml HEX | --file PATH | -``: decode SML transport frames and print them as JSON.

The lead wires :func:`add_parser` into ``smgw.cli`` (it adds the ``decode`` command with the
``sml`` protocol under it; :func:`add_sml_parser` adds only ``sml`` to an existing ``decode``).
:func:`main` runs the ``decode`` command on its own: ``main(["sml", "1b1b1b1b…"])``, or
``python -m smgw.meters.cli sml --file capture.bin``.

Input: one hex string on the command line (whitespace allowed), or ``--file PATH`` / ``-``
(stdin) holding either raw bytes or hex text (detected: text that is only hex digits and
whitespace is hex). Several concatenated frames (a capture) are split; bytes outside frames are
skipped.

Exit status: 0 decoded (also when a *message* CRC is wrong: that is reported in the JSON),
1 the bytes are not usable (one line ``smgw decode sml: <reason>`` on stderr), 2 usage (not hex,
no input).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from smgw.hexinput import WHITESPACE, HexInputError, parse_hex

PROG = "smgw decode sml"
_WS = WHITESPACE


class _Usage(Exception):
    pass


def _configure(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("hex", nargs="?", metavar="HEX",
                   help="the frame(s) as hex; '-' reads stdin (raw bytes or hex text)")
    p.add_argument("--file", "-f", metavar="PATH",
                   help="read raw bytes or hex text from PATH ('-' = stdin)")
    p.add_argument("--ignore-crc", action="store_true",
                   help="decode frames whose transport CRC is wrong (crc_ok false in the output)")
    p.add_argument("--dzg-fix", choices=("auto", "on", "off"), default="auto",
                   help="DZG DVS74 positive-power correction (default: auto, by server id)")
    p.set_defaults(func=cmd_decode_sml)
    return p


def add_sml_parser(decode_subparsers) -> argparse.ArgumentParser:
    """Register ``sml`` on the ``decode`` command's protocol sub-parsers."""
    return _configure(decode_subparsers.add_parser(
        "sml", help="SML transport frames (eHZ/mME/MSB meters)",
        description="Decode SML (transport v1) frames to JSON: readings with OBIS code, exact "
                    "value, unit, scaler, raw value and status; transport and message CRCs."))


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``decode`` (with ``sml`` and ``wmbus`` under it) on the ``smgw`` sub-command
    parsers."""
    from smgw.wmbus.cli import add_wmbus_parser

    d = subparsers.add_parser("decode", help="decode meter telegrams (sml, wmbus) to JSON",
                              description="Decode meter telegrams to JSON.")
    protocols = d.add_subparsers(dest="protocol", required=True, metavar="PROTOCOL")
    add_sml_parser(protocols)
    add_wmbus_parser(protocols)
    return d


def _read_input(args: argparse.Namespace) -> bytes:
    if args.hex is not None and args.file is not None:
        raise _Usage("give HEX or --file, not both")
    if args.hex is None and args.file is None:
        raise _Usage("no input: give HEX, --file PATH or - (stdin)")
    if args.file is not None or args.hex == "-":
        src = args.file if args.file is not None else "-"
        if src == "-":
            data = sys.stdin.buffer.read()
        else:
            data = Path(src).read_bytes()  # OSError: handled by the caller (exit 1)
        return _bytes_or_hex(data, f"{src if src != '-' else 'stdin'}")
    return _hex(args.hex.encode("utf-8", "replace"), "HEX")


def _bytes_or_hex(data: bytes, where: str) -> bytes:
    """Raw SML starts with 1B; anything that is only printable text must be hex."""
    if not data.strip(_WS):
        raise _Usage(f"{where} is empty")
    if data[:1] == b"\x1b" or any(c < 0x20 and c not in _WS or c > 0x7E for c in data):
        return data
    return _hex(data, where)


def _hex(text: bytes, where: str) -> bytes:
    try:
        return parse_hex(text, where)
    except HexInputError as e:
        raise _Usage(str(e)) from None


def cmd_decode_sml(args: argparse.Namespace) -> int:
    from smgw.meters.sml import SmlError, decode_frame, decode_transport, split_frames, to_json

    try:
        data = _read_input(args)
    except _Usage as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"{PROG}: cannot read {args.file}: {e.strerror or e}", file=sys.stderr)
        return 1
    frames = split_frames(data)
    files = []
    try:
        if not frames:
            # nothing complete in there: let the transport layer say what is wrong with it
            decode_transport(data)
            frames = [data]
        for i, frame in enumerate(frames):
            try:
                files.append(decode_frame(frame, strict_crc=not args.ignore_crc,
                                          dzg_fix=args.dzg_fix))
            except SmlError as e:
                if len(frames) > 1:
                    raise e.within(f"frame {i + 1} of {len(frames)}") from None
                raise
    except SmlError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(to_json(files), indent=2, ensure_ascii=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    """The ``decode`` command on its own (``main(["sml", HEX])``)."""
    p = argparse.ArgumentParser(prog="smgw decode", description="Decode meter telegrams to JSON.")
    protocols = p.add_subparsers(dest="protocol", required=True, metavar="PROTOCOL")
    add_sml_parser(protocols)
    args = p.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
