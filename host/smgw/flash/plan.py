"""What a deploy changes on the device: a pure function of the build and the device's state.

``make_plan`` compares the built files with the SHA-256 of what the device holds and returns the
steps, in order: create missing directories, remove stale firmware modules (old .py/.mpy in
/lib/smgwfw the build does not contain — a leftover .py would shadow the new .mpy, since
MicroPython imports .py first), copy the files whose hash differs or that are missing (the entry
point /main.py last), install micropython-lib dependencies with mip, reset.

``Plan.mpremote_commands(port)`` gives the same steps as mpremote command lines; joined with
``+`` they form one ``mpremote`` invocation (``smgw flash --dry-run`` prints it), and
``smgw.flash.deploy`` executes the steps through mpremote's Python API.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from smgw.flash.build import DEVICE_LIB, DEVICE_PKG, BuiltFile

FIRMWARE_SUFFIXES = (".py", ".mpy")
# mpremote's own "reset" shortcut expands to exactly this (mpremote/main.py)
RESET_CODE = "import time, machine; time.sleep_ms(100); machine.reset()"


@dataclass(frozen=True)
class Step:
    kind: str  # "mkdir" | "rm" | "cp" | "mip" | "reset"
    path: str = ""  # device path (mkdir, rm, cp) or package spec (mip)
    local: Path | None = None  # cp: the file to copy
    sha256: str = ""  # cp: its hash
    index: str | None = None  # mip: a local package index (--deps-dir); None = micropython-lib
    target: str = DEVICE_LIB  # mip: where packages go

    def mpremote_args(self) -> list[str]:
        if self.kind == "mkdir":
            return ["fs", "mkdir", ":" + self.path]
        if self.kind == "rm":
            return ["fs", "rm", ":" + self.path]
        if self.kind == "cp":
            return ["fs", "cp", str(self.local), ":" + self.path]
        if self.kind == "mip":
            args = ["mip", "install", "--target", self.target]
            if self.index:
                args += ["--index", self.index]
            return args + [self.path]
        if self.kind == "reset":
            return ["reset"]
        raise ValueError(f"unknown step {self.kind!r}")

    def describe(self) -> str:
        if self.kind == "cp":
            return f"copy {self.path}"
        if self.kind == "mip":
            return f"install {self.path}" + (f" from {self.index}" if self.index else "")
        return {"mkdir": "create", "rm": "remove stale", "reset": "reset"}[self.kind] + (
            f" {self.path}" if self.path else "")


@dataclass
class Plan:
    steps: list[Step]
    unchanged: list[str] = field(default_factory=list)  # device paths already up to date

    def _of(self, kind: str) -> list[Step]:
        return [s for s in self.steps if s.kind == kind]

    @property
    def mkdirs(self) -> list[str]:
        return [s.path for s in self._of("mkdir")]

    @property
    def removes(self) -> list[str]:
        return [s.path for s in self._of("rm")]

    @property
    def copies(self) -> list[str]:
        return [s.path for s in self._of("cp")]

    @property
    def installs(self) -> list[str]:
        return [s.path for s in self._of("mip")]

    @property
    def reset(self) -> bool:
        return bool(self._of("reset"))

    @property
    def changes_files(self) -> bool:
        return any(s.kind != "reset" for s in self.steps)

    def mpremote_commands(self, port: str) -> list[list[str]]:
        """One mpremote command per step; the first also connects to ``port``."""
        cmds = [s.mpremote_args() for s in self.steps]
        if not cmds:
            return [["connect", port]]
        cmds[0] = ["connect", port] + cmds[0]
        return cmds

    def command_line(self, port: str, program: str = "mpremote") -> str:
        """The plan as one shell command (mpremote chains commands with ``+``)."""
        parts = [shlex.join(c) for c in self.mpremote_commands(port)]
        return program + " " + " + \\\n    ".join(parts)

    def summary(self) -> str:
        n = len(self.copies)
        out = [f"{n} file{'s' if n != 1 else ''} to copy, {len(self.unchanged)} unchanged"]
        if self.removes:
            out.append(f"{len(self.removes)} stale to remove")
        if self.mkdirs:
            out.append(f"{len(self.mkdirs)} director{'ies' if len(self.mkdirs) != 1 else 'y'} "
                       "to create")
        if self.installs:
            out.append(f"{len(self.installs)} package(s) to install")
        return ", ".join(out)


def _hex(v: str | bytes | None) -> str | None:
    if v is None:
        return None
    return v.hex() if isinstance(v, (bytes, bytearray)) else str(v).lower()


def _parents(path: str) -> list[str]:
    # "/lib/smgwfw/x.mpy" -> ["/lib", "/lib/smgwfw"]
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def make_plan(built_files: Iterable[BuiltFile],
              device_hashes: Mapping[str, str | bytes | None],
              deps: Iterable[str] = (),
              deps_dir: Path | str | None = None,
              *,
              device_dirs: Iterable[str] | None = None,
              reset: bool = True) -> Plan:
    """The steps that make the device hold exactly ``built_files``.

    device_hashes: device path -> SHA-256 (hex or digest bytes) of the file on the device, or None
    when it is missing. It should cover every built file and every file in /lib/smgwfw (those
    not in the build are removed when they are .py or .mpy).
    deps: micropython-lib packages (``name`` or ``name@version``) to ``mip install`` into /lib,
    from the network, or from ``deps_dir``: a local copy of a mip package index (the layout of
    https://micropython.org/pi/v2, see docs/flashing.md) for benches without internet.
    device_dirs: directories known to exist on the device; when None, a directory is taken to
    exist when device_hashes has a file in it.
    """
    built = list(built_files)
    have = {p: _hex(h) for p, h in device_hashes.items()}
    if device_dirs is None:
        dirs = {d for p, h in have.items() if h is not None for d in _parents(p)}
    else:
        dirs = {"/" + d.strip("/") for d in device_dirs}

    steps: list[Step] = []
    wanted_dirs: list[str] = []
    for f in built:
        for d in _parents(f.device_path):
            if d not in wanted_dirs:
                wanted_dirs.append(d)
    for d in sorted(wanted_dirs, key=lambda d: (d.count("/"), d)):
        if d not in dirs:
            steps.append(Step("mkdir", d))

    built_paths = {f.device_path for f in built}
    for p in sorted(have):
        if (have[p] is not None and p not in built_paths and p.startswith(DEVICE_PKG + "/")
                and "/" not in p[len(DEVICE_PKG) + 1:] and p.endswith(FIRMWARE_SUFFIXES)):
            steps.append(Step("rm", p))

    unchanged = []
    for f in built:
        if have.get(f.device_path) == f.sha256.lower():
            unchanged.append(f.device_path)
        else:
            steps.append(Step("cp", f.device_path, local=Path(f.local_path), sha256=f.sha256))

    index = str(deps_dir) if deps_dir is not None else None
    for name in deps:
        steps.append(Step("mip", name, index=index))
    if reset:
        steps.append(Step("reset"))
    return Plan(steps, unchanged)
