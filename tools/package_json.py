#!/usr/bin/env python3
"""Write the mip package files: package.json (the firmware) and boards/<name>/package.json.

    python tools/package_json.py            # (re)write them
    python tools/package_json.py --check    # exit 1 if any is out of date (tests check this)

They let a board be set up with mpremote alone, from GitHub or from a checkout:

    mpremote mip install --target / github:<user>/<repo>
    mpremote mip install --target / github:<user>/<repo>/boards/pico/package.json
    mpremote mip install --target / ./package.json ./boards/pico/package.json   # a checkout

"urls" maps device paths (relative to --target, so ``--target /`` puts them at the root) to
repository paths: every firmware/smgwfw/*.py to lib/smgwfw/, firmware/main.py to main.py; a
board's package holds its board.py. mip installs sources (it cannot compile); ``smgw flash``
installs .mpy and removes the .py files this leaves in /lib/smgwfw. "deps" come from
smgw.flash.build.FIRMWARE_DEPS, "version" from smgwfw.VERSION. docs/flashing.md.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "host") not in sys.path:
    sys.path.insert(0, str(REPO / "host"))

from smgw.flash.build import FIRMWARE_DEPS  # noqa: E402


def firmware_version(repo: Path) -> str:
    text = (repo / "firmware" / "smgwfw" / "__init__.py").read_text(encoding="utf-8")
    m = re.search(r'^VERSION\s*=\s*"([^"]+)"', text, re.M)
    if not m:
        raise SystemExit("firmware/smgwfw/__init__.py has no VERSION = \"...\"")
    return m.group(1)


def _deps() -> list[list[str]]:
    out = []
    for d in FIRMWARE_DEPS:
        name, _, version = d.partition("@")
        out.append([name, version or "latest"])
    return out


def firmware_package(repo: Path) -> dict:
    urls = [[f"lib/smgwfw/{p.name}", p.relative_to(repo).as_posix()]
            for p in sorted((repo / "firmware" / "smgwfw").glob("*.py"))]
    urls.append(["main.py", "firmware/main.py"])
    return {"urls": urls, "deps": _deps(), "version": firmware_version(repo)}


def device_boards(repo: Path) -> list[Path]:
    """Boards that run on hardware (not the CPython-only sim board)."""
    out = []
    for board_py in sorted((repo / "boards").glob("*/board.py")):
        with open(board_py, encoding="utf-8") as f:
            if f.readline().strip() == "# cpython-only":
                continue
        out.append(board_py.parent)
    return out


def board_package(repo: Path, board_dir: Path) -> dict:
    # urls are relative to the package file, which sits next to board.py
    return {"urls": [["board.py", "board.py"]], "deps": [], "version": firmware_version(repo)}


def dumps(obj: dict) -> str:
    """JSON with one line per [device path, url] pair (short diffs when a module comes or goes)."""
    lines = []
    for key, value in obj.items():
        if isinstance(value, list) and value:
            inner = ",\n".join("    " + json.dumps(v) for v in value)
            lines.append(f"  {json.dumps(key)}: [\n{inner}\n  ]")
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def generate(repo: Path = REPO) -> dict[Path, str]:
    """{path: content} of every package file."""
    files = {repo / "package.json": dumps(firmware_package(repo))}
    for d in device_boards(repo):
        files[d / "package.json"] = dumps(board_package(repo, d))
    return files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", type=Path, default=REPO, help="the checkout (default: this one)")
    ap.add_argument("--check", action="store_true", help="compare only; exit 1 if out of date")
    args = ap.parse_args(argv)
    stale = []
    for path, text in generate(args.repo).items():
        try:
            current = path.read_text(encoding="utf-8")
        except OSError:
            current = None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(args.repo)}")
    if args.check and stale:
        print("out of date (run `python tools/package_json.py` and commit): "
              + ", ".join(str(p.relative_to(args.repo)) for p in stale), file=sys.stderr)
        return 1
    if not stale:
        print("package files up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
