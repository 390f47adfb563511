"""``smgw flash`` and ``smgw firmware``; host/smgw/cli.py adds them with ``add_parser(sub)``."""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

from smgw.flash.build import (
    FIRMWARE_DEPS,
    BuildError,
    board_dir,
    checkout_problems,
    environment_problems,
    flash_image_hint,
    image_commands,
    image_target,
    is_cpython_board,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    f = sub.add_parser(
        "flash", help="install the firmware on a board over its USB/serial REPL (mpremote)",
        description="Compile the firmware for the board, copy what differs to the device over "
                    "its REPL, reset it and check the firmware's link HELLO. docs/flashing.md")
    f.add_argument("--board", required=True, help="board name (a directory in boards/)")
    f.add_argument("--port", required=True,
                   help="the board's serial port, e.g. /dev/ttyACM0 (or a pyserial URL)")
    f.add_argument("--baudrate", type=int, default=115200, help="REPL baud rate (default 115200)")
    f.add_argument("--link-port",
                   help="where the firmware's link answers after the reset, if not on --port")
    f.add_argument("--dry-run", action="store_true",
                   help="build, then print the steps as mpremote commands; the board is not "
                        "contacted")
    f.add_argument("--deps-dir", type=Path,
                   help="install micropython-lib dependencies from this local package index "
                        "instead of the network")
    f.add_argument("--dep", action="append", default=[], metavar="PACKAGE",
                   help="an extra micropython-lib package to mip install (repeatable)")
    f.add_argument("--no-wait", dest="wait", action="store_false",
                   help="do not wait for the firmware's HELLO after the reset")
    f.add_argument("--no-release", dest="release", action="store_false",
                   help="do not ask a running firmware to release the port first")
    f.add_argument("--timeout", type=float, default=20.0,
                   help="seconds to wait for the HELLO (default 20)")
    f.add_argument("--build-dir", type=Path, help="where to build (default var/build/<board>)")
    f.set_defaults(func=cmd_flash)

    i = sub.add_parser(
        "firmware", help="build a MicroPython image with the firmware frozen in",
        description="Runs the MicroPython build for the board's port with "
                    "FROZEN_MANIFEST=boards/<board>/manifest.py. docs/flashing.md")
    i.add_argument("--board", required=True, help="board name (a directory in boards/)")
    i.add_argument("--micropython-dir", required=True, type=Path,
                   help="a MicroPython source checkout (git clone "
                        "https://github.com/micropython/micropython)")
    i.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    i.add_argument("-j", "--jobs", type=int, default=os.cpu_count(),
                   help="parallel make jobs (default: CPU count)")
    i.set_defaults(func=cmd_firmware)


def _say(line: str) -> None:
    print(line, flush=True)


def cmd_flash(args: argparse.Namespace) -> int:
    from smgw.flash.deploy import DeployError, dry_run, flash

    deps = list(FIRMWARE_DEPS) + list(args.dep)
    try:
        if args.dry_run:
            dry_run(args.board, args.port, deps=deps, deps_dir=args.deps_dir,
                    build_dir=args.build_dir, log=_say)
            return 0
        result = flash(args.board, args.port, baudrate=args.baudrate, deps=deps,
                       deps_dir=args.deps_dir, wait=args.wait, timeout=args.timeout,
                       link_port=args.link_port, release=args.release,
                       build_dir=args.build_dir, log=_say)
    except DeployError as e:
        print(f"smgw flash: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("smgw flash: interrupted; run it again to finish (it copies only what differs)",
              file=sys.stderr)
        return 130
    if not result.ok:
        print("smgw flash: the firmware does not run what was installed (see MISMATCH above); "
              "run smgw flash again, and if it persists, check the board's firmware_files()",
              file=sys.stderr)
        return 1
    _say(f"done     {args.board} on {args.port}: {result.plan.summary()}")
    return 0


def cmd_firmware(args: argparse.Namespace) -> int:
    try:
        bdir = board_dir(args.board)
        if is_cpython_board(bdir):
            raise BuildError(f"board {args.board!r} runs under CPython; it has no image")
        target = image_target(bdir)
    except BuildError as e:
        print(f"smgw firmware: {e}", file=sys.stderr)
        return 2
    mp = args.micropython_dir
    problems = checkout_problems(mp, target)
    env = environment_problems(target)
    cmds = image_commands(mp, target, args.jobs)
    if args.dry_run:
        for p in problems + env:
            print(f"# warning: {p}")
        for c in cmds:
            print(shlex.join(c))
        print(f"# image: {target.image(mp)}")
        return 0
    if problems or env:
        print(f"smgw firmware: cannot build {target.port} BOARD={target.micropy_board} "
              f"from {mp}:", file=sys.stderr)
        for p in problems + env:
            print(f"  - {p}", file=sys.stderr)
        return 2
    for c in cmds:
        _say("$ " + shlex.join(c))
        rc = subprocess.run(c).returncode
        if rc != 0:
            print(f"smgw firmware: `{shlex.join(c)}` failed with exit status {rc}",
                  file=sys.stderr)
            return 1
    img = target.image(mp)
    if not img.exists():
        print(f"smgw firmware: the build finished but {img} is missing", file=sys.stderr)
        return 1
    _say(f"image    {img} ({img.stat().st_size} bytes)")
    _say(f"flash it: {flash_image_hint(mp, target)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry (``python -m smgw.flash.cli flash ...``) until the lead wires it in."""
    p = argparse.ArgumentParser(prog="smgw")
    add_parser(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
