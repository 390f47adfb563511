"""``smgw fwinfo FILE.elf [--board NAME] [--json]``: what a built firmware image contains.

The lead wires :func:`add_parser` into ``smgw.cli``; :func:`main` runs the command on its own
(``main(["build/firmware.elf", "--board", "pico"])``).

Exit status: 0 fine (warnings included), 1 over a budget (or, with ``--require-id``, no
identification of the current release in the image), 2 the file cannot be analysed.
"""

from __future__ import annotations

import argparse
import json
import sys


def _configure(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("file", metavar="FILE.elf", help="the ELF file a firmware build writes")
    p.add_argument("--board", metavar="NAME",
                   help="board under boards/ (or a board.py path) whose FLASH_BYTES/RAM_BYTES "
                        "are the budget")
    p.add_argument("--flash-bytes", type=int, metavar="N", help="flash budget (overrides board)")
    p.add_argument("--ram-bytes", type=int, metavar="N", help="RAM budget (overrides board)")
    p.add_argument("--manifest", metavar="PATH",
                   help="release manifest to compare with (default: firmware/release.json)")
    p.add_argument("--require-id", action="store_true",
                   help="exit 1 unless the image holds the release manifest's identification")
    p.add_argument("--json", action="store_true", help="everything, as JSON")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also list the sections that are not loaded (debug, symbols)")
    p.set_defaults(func=cmd_fwinfo)
    return p


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``fwinfo`` on the ``smgw`` sub-command parsers."""
    return _configure(subparsers.add_parser(
        "fwinfo", help="sizes, frozen modules and identification of a firmware ELF file",
        description=__doc__.splitlines()[0]))


def cmd_fwinfo(args: argparse.Namespace) -> int:
    from smgw.firmware.fwinfo import FwInfoError, analyse, format_report
    from smgw.firmware.manifest import ManifestError, load_manifest

    kw = {}
    if args.manifest:
        try:
            kw["manifest"] = load_manifest(args.manifest)
        except ManifestError as e:
            print(f"smgw fwinfo: {e}", file=sys.stderr)
            return 2
    try:
        info = analyse(args.file, args.board, flash_bytes=args.flash_bytes,
                       ram_bytes=args.ram_bytes, **kw)
    except FwInfoError as e:
        print(f"smgw fwinfo: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(info.to_dict(), indent=2))
    else:
        sys.stdout.write(format_report(info, verbose=args.verbose))
    rc = 0
    if any(level == "error" for level, _ in info.problems()):
        rc = 1
    if args.require_id and not info.manifest.get("match"):
        if not args.json:
            print("error: the image does not hold the release's identification "
                  f"({info.manifest.get('message')})", file=sys.stderr)
        rc = 1
    return rc


def main(argv: list[str] | None = None) -> int:
    p = _configure(argparse.ArgumentParser(prog="smgw fwinfo",
                                           description=__doc__.splitlines()[0]))
    args = p.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
