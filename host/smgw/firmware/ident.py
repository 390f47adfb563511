"""The firmware identification: which code, exactly, a firmware consists of.

The *legally relevant code* of the firmware is every module of the ``smgwfw`` package
(``firmware/smgwfw/**/*.py``) plus the entry point ``firmware/main.py``. The board module
(``boards/<name>/board.py``, installed on a device as ``board.py``) is **not** part of it: it is
configuration (pins, UART numbers, buffer sizes, budgets) for one piece of hardware, and the
same firmware runs unchanged with every board module. The generated identification module
``smgwfw/_ident.py`` is not part of it either (it contains the identification, so it cannot be
covered by it).

The digest is a SHA-256 over the ``sha256sum``-style listing of those files, sorted by path::

    <sha256 hex of the content>  <path relative to firmware/>\\n    (one line per file)

so anyone can recompute it without this code::

    cd firmware && find main.py smgwfw -name '*.py' ! -name _ident.py ! -path '*__pycache__*' \\
        | LC_ALL=C sort | xargs sha256sum | sha256sum

The identification is rendered as ``SMGW-FW <version> <first 16 hex digits>`` for people and
as ``SMGW-FWID:<version>:<64 hex digits>`` inside a firmware image, where ``smgw fwinfo`` finds
it (see :func:`ident_module_source`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

# the module a build freezes into the image (written into the build directory, not firmware/)
IDENT_MODULE = "smgwfw/_ident.py"
IDENT_PREFIX = "SMGW-FWID"
ID_PREFIX = "SMGW-FW"
# the identification as it appears in a binary
IDENT_RE = re.compile(rb"SMGW-FWID:([0-9A-Za-z][0-9A-Za-z.+_-]{0,31}):([0-9a-f]{64})")
_VERSION_RE = re.compile(r"""^VERSION\s*=\s*["']([^"']+)["']""", re.M)


class IdentError(Exception):
    """The firmware sources cannot be identified (checkout missing, no VERSION, ...)."""


@dataclass(frozen=True)
class FirmwareId:
    version: str
    digest: str                                   # full SHA-256, 64 lower-case hex digits
    files: dict[str, str] = field(default_factory=dict, compare=False)  # path -> sha256 hex

    @property
    def short(self) -> str:
        return self.digest[:16]

    @property
    def ident(self) -> str:
        """The string frozen into a firmware image: ``SMGW-FWID:<version>:<64 hex>``."""
        return f"{IDENT_PREFIX}:{self.version}:{self.digest}"

    def __str__(self) -> str:
        return f"{ID_PREFIX} {self.version} {self.short}"

    def to_dict(self) -> dict:
        return {"id": str(self), "version": self.version, "digest": self.digest,
                "ident": self.ident, "files": dict(sorted(self.files.items()))}


def parse_ident(text: str | bytes) -> tuple[str, str] | None:
    """``(version, digest)`` from a ``SMGW-FWID:<version>:<hex>`` string, or None."""
    if isinstance(text, str):
        text = text.encode("utf-8", "replace")
    m = IDENT_RE.search(text)
    return (m.group(1).decode(), m.group(2).decode()) if m else None


def find_repo(start: Path | None = None) -> Path:
    """The checkout: the directory holding ``firmware/smgwfw/__init__.py``.

    Tried in order: ``start`` and its parents (if given), the checkout this package lives in
    (an editable install), the current directory and its parents.
    """
    cands: list[Path] = []
    if start is not None:
        start = Path(start).resolve()
        cands += [start, *start.parents]
    else:
        here = Path(__file__).resolve()
        cands += list(here.parents)
        cwd = Path.cwd().resolve()
        cands += [cwd, *cwd.parents]
    for c in cands:
        if (c / "firmware" / "smgwfw" / "__init__.py").is_file():
            return c
    raise IdentError("no checkout found: no firmware/smgwfw/__init__.py in "
                     + (str(start) if start else "this package's or the current directory")
                     + " or any parent")


def firmware_version(repo: Path) -> str:
    init = Path(repo) / "firmware" / "smgwfw" / "__init__.py"
    try:
        m = _VERSION_RE.search(init.read_text(encoding="utf-8"))
    except OSError as e:
        raise IdentError(f"cannot read {init}: {e}") from None
    if not m:
        raise IdentError(f"{init} has no VERSION = \"...\" line")
    return m.group(1)


def code_files(repo: Path) -> list[tuple[str, Path]]:
    """The legally relevant code: ``[(path relative to firmware/, absolute path)]``, sorted."""
    fw = Path(repo) / "firmware"
    out = [("main.py", fw / "main.py")] if (fw / "main.py").is_file() else []
    for p in (fw / "smgwfw").rglob("*.py"):
        rel = p.relative_to(fw).as_posix()
        if "__pycache__" in p.parts or rel == IDENT_MODULE:
            continue
        out.append((rel, p))
    if not any(rel == "main.py" for rel, _ in out):
        raise IdentError(f"{fw / 'main.py'} is missing")
    return sorted(out, key=lambda t: t[0].encode())


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(65536), b""):
            h.update(chunk)
    return h.hexdigest()


def digest_of(files: dict[str, str]) -> str:
    """SHA-256 over the sorted ``"<sha256 hex>  <path>\\n"`` lines (``sha256sum`` format)."""
    h = hashlib.sha256()
    for rel in sorted(files, key=str.encode):
        h.update(f"{files[rel]}  {rel}\n".encode())
    return h.hexdigest()


def firmware_id(repo: Path | str | None = None) -> FirmwareId:
    """The identification of the firmware sources in the checkout ``repo`` (default: found)."""
    repo = find_repo(Path(repo)) if repo is not None else find_repo()
    files = {rel: sha256_file(p) for rel, p in code_files(repo)}
    return FirmwareId(firmware_version(repo), digest_of(files), files)


def ident_module_source(fid: FirmwareId) -> str:
    """The source of ``smgwfw/_ident.py`` that a build writes into its build directory and
    freezes (or copies) with the firmware, so the identification is in the image."""
    return (
        "# Generated by the firmware build (smgw.firmware.ident.ident_module_source); do not "
        "edit.\n"
        "# The firmware identification: version and SHA-256 of the legally relevant code\n"
        f"# ({fid}). See docs/firmware-identity.md.\n"
        f'IDENT = "{fid.ident}"\n'
    )
