#!/usr/bin/env python3
"""Write firmware/release.json, the release manifest of the firmware sources.

    python tools/release_manifest.py            # (re)write firmware/release.json
    python tools/release_manifest.py --check    # exit 1 if it is out of date (what CI checks)
    python tools/release_manifest.py --print    # print the manifest, write nothing

The manifest holds the firmware identification (SMGW-FW <version> <digest>), the SHA-256 of
every source file of the legally relevant code and of the .mpy that mpy-cross makes of each
smgwfw module for every target arch. Run it after every change to firmware/smgwfw/ or
firmware/main.py and commit the result. See docs/firmware-identity.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "host") not in sys.path:
    sys.path.insert(0, str(REPO / "host"))

from smgw.firmware.manifest import (ManifestError, build_manifest, compare_manifests,  # noqa: E402
                                    dumps, manifest_path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", default=str(REPO), help="the checkout (default: this one)")
    ap.add_argument("-o", "--out", help="write here instead of firmware/release.json")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--check", action="store_true", help="compare only; exit 1 if out of date")
    g.add_argument("--print", action="store_true", help="print the manifest, write nothing")
    args = ap.parse_args(argv)
    try:
        fresh = build_manifest(Path(args.repo))
    except ManifestError as e:
        print(f"release_manifest: {e}", file=sys.stderr)
        return 2
    text = dumps(fresh)
    if args.print:
        sys.stdout.write(text)
        return 0
    path = Path(args.out) if args.out else manifest_path(Path(args.repo))
    if args.check:
        try:
            committed = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            print(f"{path}: {e}; run `python tools/release_manifest.py`", file=sys.stderr)
            return 1
        diffs = compare_manifests(committed, fresh)
        if diffs:
            print(f"{path} is out of date; run `python tools/release_manifest.py` and commit it:",
                  file=sys.stderr)
            for d in diffs:
                print(f"  {d}", file=sys.stderr)
            return 1
        print(f"{path}: up to date ({fresh['firmware_id']})")
        return 0
    old = path.read_text(encoding="utf-8") if path.exists() else None
    if old != text:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        print(f"wrote {path}: {fresh['firmware_id']}")
    else:
        print(f"{path}: unchanged ({fresh['firmware_id']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
