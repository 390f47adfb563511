"""``smgw verify-log FILE.csv --cert log-sign.crt.pem --gateway-id ID``: check a log export.

The lead wires :func:`add_parser` into ``smgw.cli``; :func:`main` runs the command on its own
(``python -m smgw.logbook.verify_cli FILE.csv --cert ... --gateway-id ...``). It needs only the
export, the gateway's log-signature certificate and the gateway id: nothing of the gateway.

Exit status and output:

* 0 -- ``OK: N entries, chain and signatures valid`` (calibration log; for another log's export
  ``OK: N entries, export signature valid (system log)``),
* 1 -- one line per problem on stdout, ``entry <seq>: <code>: <text>`` or ``log: <code>:
  <text>``, codes as in docs/logbooks.md,
* 2 -- the input cannot be checked at all (not our CSV, unreadable file or certificate): one
  line ``smgw verify-log: <reason>`` on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PROG = "smgw verify-log"


def _configure(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("file", metavar="FILE.csv", help="the export to check ('-' reads stdin)")
    p.add_argument("--cert", required=True, metavar="PEM",
                   help="the gateway's log-signature certificate (log-sign.crt.pem)")
    p.add_argument("--gateway-id", required=True, metavar="ID",
                   help="the gateway's id (the chain starts at a value derived from it)")
    p.set_defaults(func=cmd_verify_log)
    return p


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``verify-log`` on the ``smgw`` sub-command parsers."""
    return _configure(subparsers.add_parser(
        "verify-log", help="check a log export: chain, signatures, completeness",
        description="Check a CSV export of a logbook against the gateway's log-signature "
                    "certificate: for the calibration log every entry's hash chain and "
                    "signature, the order, missing entries, a cut tail (signed head) and the "
                    "signed export line."))


def _fail(msg: str) -> int:
    print(f"{PROG}: {msg}", file=sys.stderr)
    return 2


def cmd_verify_log(args: argparse.Namespace) -> int:
    from smgw.logbook.export import ExportFormatError, verify_export

    try:
        if args.file == "-":
            raw = sys.stdin.buffer.read()
        else:
            raw = Path(args.file).read_bytes()
    except OSError as e:
        return _fail(f"cannot read {args.file}: {e.strerror or e}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return _fail(f"{args.file} is not UTF-8 text: not an smgw log export")
    try:
        cert = Path(args.cert).read_bytes()
    except OSError as e:
        return _fail(f"cannot read {args.cert}: {e.strerror or e}")
    try:
        result = verify_export(text, cert, args.gateway_id)
    except ExportFormatError as e:
        return _fail(f"{args.file}: {e}")
    except ValueError as e:
        return _fail(f"{args.cert}: {e}")
    if result.ok:
        if result.log == "calibration":
            print(f"OK: {result.checked} entries, chain and signatures valid")
        else:
            print(f"OK: {result.checked} entries, export signature valid ({result.log} log)")
        return 0
    for p in result.problems:
        print(p)
    return 1


def main(argv: list[str] | None = None) -> int:
    p = _configure(argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0]))
    args = p.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
