import builtins
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

import mpycheck  # noqa: E402
from mpycheck import MpReference, lint_source  # noqa: E402

# A small stand-in for what probe_reference() reads from the VM.
REF = MpReference(
    modules={
        "struct": frozenset({"pack", "unpack", "pack_into", "unpack_from", "calcsize"}),
        "time": frozenset({"ticks_ms", "ticks_diff", "ticks_add", "sleep_ms", "time"}),
        "os": frozenset({"listdir", "stat", "remove", "rename", "mkdir"}),
        "micropython": frozenset({"const", "heap_lock", "heap_unlock"}),
        "gc": frozenset({"collect", "mem_alloc", "mem_free"}),
        "random": None,
    },
    builtins=frozenset(
        n for n in dir(builtins)
        if n not in {"FileNotFoundError", "ModuleNotFoundError", "format", "vars",
                     "UnicodeDecodeError"}),
)


def lint(src, portable=True, ref=REF):
    return lint_source(textwrap.dedent(src), "firmware/smgwfw/x.py", portable=portable, ref=ref)


def rules(src, **kw):
    return [f.rule for f in lint(src, **kw)]


# ------------------------------------------------------------------------------------- lint

def test_lint_flags_cpython_only_imports():
    assert rules("import dataclasses\n") == ["import-cpython-only"]
    assert rules("from typing import Optional\n") == ["import-cpython-only"]
    assert rules("from __future__ import annotations\n") == ["import-cpython-only"]
    assert rules("import itertools, functools\n") == ["import-cpython-only"] * 2
    assert rules("import asyncio\n") == ["import-port-only"]
    assert rules("import asyncio\n", portable=False) == []          # fine in a board file
    assert rules("import requests\n") == ["import-unknown"]


def test_lint_accepts_the_try_except_importerror_pattern():
    src = """
        try:
            from micropython import const
        except ImportError:  # CPython
            import functools
            from typing import Any
            def const(x):
                return x
        try:
            import asyncio
        except ImportError:
            asyncio = None
        from smgwfw import cbor
        from . import frame
        import board
        X = const(3)
    """
    assert lint(src) == []


def test_lint_requires_mp_only_modules_to_be_guarded_in_the_portable_package():
    assert rules("import micropython\n") == ["import-mp-unguarded"]
    assert rules("import utime as time\n") == ["import-mp-unguarded"]
    assert rules("import micropython\n", portable=False) == []       # device-only board file


def test_lint_checks_module_attributes_against_micropython():
    src = """
        import struct
        import time
        import os.path
        from time import monotonic
        try:
            pass
        except (IndexError, struct.error):
            pass
        t = time.ticks_ms()
        struct.pack(">H", 1)
    """
    found = lint(src)
    assert [(f.line, f.rule) for f in found] == [
        (4, "module-attr"), (5, "module-attr"), (8, "module-attr")]
    assert "struct.error" in found[2].message


def test_lint_allows_guarded_and_fallback_attribute_use():
    src = """
        import sys
        import time
        try:
            ticks = time.ticks_ms
        except AttributeError:
            ticks = lambda: int(time.monotonic() * 1000)
        if sys.implementation.name == "micropython":
            t = time.ticks_ms()
        else:
            t = time.perf_counter()
        import random
        random.getrandbits(8)
    """
    assert lint(src) == []


def test_lint_flags_missing_builtins_unless_defined():
    assert rules("try:\n    pass\nexcept FileNotFoundError:\n    pass\n") == ["builtin-missing"]
    assert rules("x = format(1, 'x')\n") == ["builtin-missing"]
    assert rules("try:\n    FileNotFoundError\nexcept NameError:\n"
                 "    FileNotFoundError = OSError\n") == []


def test_lint_flags_cpython_only_syntax_methods_and_keywords():
    src = """
        match x:
            case 1:
                pass
        def f(a, /, b):
            pass
        print("x", flush=True)
        s = "{a}".format_map({})
        n = (5).bit_length()
        ok = isinstance(n, int | str)
        v = int("10", base=16)
        parts = "a,b".split(sep=",")
        b = (1).to_bytes(2, "big", signed=True)
        import struct
        struct.unpack_from(">H", b"ab", offset=0)
        try:
            pass
        except ValueError as e:
            c = e.__cause__
    """
    assert rules(src) == [
        "match-statement", "posonly-params", "kwarg-unsupported", "method-cpython-only",
        "method-cpython-only", "type-union", "kwarg-unsupported", "kwarg-unsupported",
        "kwarg-unsupported", "kwarg-unsupported", "exception-attr"]


def test_lint_allows_micropython_friendly_code():
    src = """
        import struct
        class Thing:
            def __init__(self, n):
                self.buf = bytearray(n)
            async def run(self):
                async with self:
                    pass
                async for x in self:
                    pass
            def hex(self, sep):
                return self.buf.hex(sep)
        def g(*, k=1, **kw):
            if (n := len(kw)) > 1:
                print(n, sep=" ", end="\\n")
            return sorted(kw, key=len, reverse=True)
        b"ab".hex(":")
        print(f"{k=}")
    """
    assert lint(src) == []


def test_lint_slots_is_a_warning_and_ignore_pragma_works():
    found = lint("class A:\n    __slots__ = ('x',)\n")
    assert [(f.rule, f.severity) for f in found] == [("slots", "warning")]
    assert rules("import dataclasses  # mpycheck: ignore\n") == []
    assert rules("import dataclasses  # mpycheck: ignore[import-cpython-only]\n") == []
    assert rules("import dataclasses  # mpycheck: ignore[slots]\n") == ["import-cpython-only"]


def test_lint_cpython_only_marker_and_syntax_errors():
    assert lint("# cpython-only\nimport dataclasses\n") == []
    assert rules("def f(:\n") == ["syntax"]


def test_every_rule_has_a_reason():
    for rule in mpycheck.RULES.values():
        assert rule.severity in ("error", "warning")
        assert rule.what and rule.reason


@pytest.mark.mpy
def test_reference_is_read_from_the_real_vm():
    ref = mpycheck.probe_reference()
    assert "pack_into" in ref.modules["struct"] and "error" not in ref.modules["struct"]
    assert "ticks_ms" in ref.modules["time"] and "monotonic" not in ref.modules["time"]
    assert "native" in ref.modules["micropython"]            # a port extra
    assert "OSError" in ref.builtins and "FileNotFoundError" not in ref.builtins


# --------------------------------------------------------------------------------- targets

def make_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(text))
    return root


def test_targets_skip_manifests_sim_board_and_cpython_only_files(tmp_path):
    make_tree(tmp_path, {
        "firmware/smgwfw/__init__.py": "",
        "firmware/smgwfw/host_only.py": "# cpython-only\nimport dataclasses\n",
        "firmware/main.py": "import board\n",
        "boards/pico/board.py": "import machine\n",
        "boards/pico/manifest.py": "freeze('.')\n",
        "boards/sim/board.py": "import dataclasses\n",
    })
    rel = lambda ps: sorted(str(p.relative_to(tmp_path)) for p in ps)  # noqa: E731
    assert rel(mpycheck.compile_targets(tmp_path)) == [
        "boards/pico/board.py", "boards/sim/board.py", "firmware/main.py",
        "firmware/smgwfw/__init__.py"]
    assert rel(mpycheck.lint_targets(tmp_path)) == [
        "boards/pico/board.py", "firmware/main.py", "firmware/smgwfw/__init__.py"]
    findings = mpycheck.lint_files(mpycheck.lint_targets(tmp_path), tmp_path, ref=REF)
    assert findings == []      # machine is fine in a board file, board is a local module


# --------------------------------------------------------------------------------- compile

def test_compile_reports_errors_with_file_and_message(tmp_path):
    make_tree(tmp_path, {
        "firmware/smgwfw/__init__.py": "X = 1\n",
        "firmware/smgwfw/bad.py": "x = 1\ndef f(:\n    pass\n",
        "boards/pico/board.py": "def g(a, /, b):\n    return a\n",   # CPython-valid, not MP
    })
    res = mpycheck.compile_files(mpycheck.compile_targets(tmp_path), tmp_path)
    errors = dict(res.errors)
    assert set(errors) == {"firmware/smgwfw/bad.py", "boards/pico/board.py"}
    assert "line 2" in errors["firmware/smgwfw/bad.py"]
    assert "SyntaxError" in errors["firmware/smgwfw/bad.py"]
    assert res.sizes["firmware/smgwfw/__init__.py"] > 0
    assert res.total == sum(res.sizes.values())


def test_compile_with_an_architecture(tmp_path):
    make_tree(tmp_path, {"firmware/m.py": "import micropython\n@micropython.native\n"
                                          "def f(x):\n    return x + 1\n"})
    assert mpycheck.compile_files(mpycheck.compile_targets(tmp_path), tmp_path).errors
    res = mpycheck.compile_files(mpycheck.compile_targets(tmp_path), tmp_path, arch="armv6m")
    assert res.errors == [] and res.total > 0


# ---------------------------------------------------------------------------- differential

DATA_PRELUDE = """\
import sys
if sys.implementation.name == "micropython":
    INPUT = "/input"
else:
    import os
    INPUT = os.environ["MPY_INPUT"]
"""


@pytest.mark.mpy
def test_differential_runner_outcomes(tmp_path):
    make_tree(tmp_path, {
        "firmware/smgwfw/__init__.py": "ANSWER = 42\n",
        "tests/vectors/v.txt": "vector-data",
        "tests/mpy/mp_good.py": "# mp-files: tests/vectors/v.txt\n" + DATA_PRELUDE
        + "from smgwfw import ANSWER\n"
        + "print(ANSWER, open(INPUT + '/v.txt').read())\n"
        + "print('OK')\n",
        "tests/mpy/mp_impl.py": "import sys\nprint(sys.implementation.name)\nprint('OK')\n",
        "tests/mpy/mp_nook.py": "print('same on both')\n",
        "tests/mpy/mp_mperr.py": "import micropython\nprint('OK')\n",
        "tests/mpy/mp_cpyerr.py": "raise SystemExit(4)\n",
        "tests/mpy/mp_nofile.py": "# mp-files: tests/vectors/missing.txt\nprint('OK')\n",
    })
    scripts = mpycheck.mp_scripts(tmp_path)
    results = {Path(r.script).name: r for r in mpycheck.run_differentials(scripts, tmp_path)}
    status = {name: r.status for name, r in results.items()}
    assert status == {
        "mp_good.py": "OK", "mp_impl.py": "MISMATCH", "mp_nook.py": "NO-OK",
        "mp_mperr.py": "CPYTHON-ERROR", "mp_cpyerr.py": "CPYTHON-ERROR",
        "mp_nofile.py": "BAD-FILES"}
    assert results["mp_good.py"].fuel > 0 and results["mp_good.py"].cpython_s > 0
    assert "-cpython" in results["mp_impl.py"].detail and "+micropython" in \
        results["mp_impl.py"].detail


@pytest.mark.mpy
def test_differential_reports_micropython_failures(tmp_path):
    make_tree(tmp_path, {
        "tests/mpy/mp_x.py": "print('a'.zfill(3))\nprint('OK')\n",
    })
    (r,) = mpycheck.run_differentials(mpycheck.mp_scripts(tmp_path), tmp_path)
    assert r.status == "MP-ERROR"
    assert "zfill" in r.detail


@pytest.mark.mpy
def test_main_exit_status(tmp_path, capsys):
    make_tree(tmp_path, {
        "firmware/smgwfw/__init__.py": "X = 1\n",
        "tests/mpy/mp_ok.py": "print(1 + 1)\nprint('OK')\n",
    })
    assert mpycheck.main(["--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "mp_ok.py" in out and "mpy-check OK" in out
    (tmp_path / "firmware/smgwfw/bad.py").write_text("import dataclasses\n")
    assert mpycheck.main(["--root", str(tmp_path), "-q", "--no-diff"]) == 1
    assert "import-cpython-only" in capsys.readouterr().out
    assert mpycheck.main(["--root", str(tmp_path), "--only", "nosuch"]) == 2
