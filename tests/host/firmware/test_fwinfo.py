"""``smgw fwinfo`` on real ELF files built with this machine's compilers.

gcc builds an object file, a plain static executable and an executable laid out like a
microcontroller firmware (flash at 0x10000000, RAM at 0x20000000, .data loaded from flash,
code copied to RAM, heap and stack sections). The same is repeated with
``arm-none-eabi-gcc -mcpu=cortex-m0plus -mthumb`` when it is installed (skipped otherwise).
Sizes are checked against binutils' ``size``.
"""

import argparse
import json
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from smgw.firmware import cli
from smgw.firmware.fwinfo import (BoardFacts, FwInfoError, analyse, format_report,
                                  read_board_facts)
from smgw.firmware.manifest import load_manifest

REPO = Path(__file__).resolve().parents[3]

FROZEN = ["smgwfw/link.py", "smgwfw/app.py"]
BIG, INIT, ZERO, HEAP, STACK = 20000, 3000, 7000, 4096, 2048

C_SOURCE = r"""
#ifdef __arm__
#define FAR __attribute__((long_call))
#else
#define FAR
#endif
const char mp_frozen_names[] = "smgwfw/link.py\0smgwfw/app.py\0\0";
const char smgw_ident[] = "@IDENT@";
const unsigned char big_table[@BIG@] = {1, 2, 3};
unsigned char init_data[@INIT@] = {1, 2, 3};
unsigned char zero_data[@ZERO@];
#ifdef MCU_LAYOUT
FAR __attribute__((section(".ramfunc"), noinline)) int fast(int i) { return init_data[i] * 3; }
FAR __attribute__((section(".sram_code"), noinline)) int sram(int i) { return i * 7; }
#else
static int fast(int i) { return i; }
static int sram(int i) { return i; }
#endif
int use(int i) {
    return big_table[i] + init_data[i] + zero_data[i] + mp_frozen_names[i] + smgw_ident[i]
        + fast(i) + sram(i);
}
void _start(void) { for (;;) { use(1); } }
"""

LINKER_SCRIPT = f"""
ENTRY(_start)
MEMORY
{{
  FLASH (rx)  : ORIGIN = 0x10000000, LENGTH = 2048K
  RAM   (rwx) : ORIGIN = 0x20000000, LENGTH = 264K
}}
SECTIONS
{{
  .text : {{ *(.text*) }} > FLASH
  .rodata : {{ *(.rodata*) }} > FLASH
  .ramfunc : {{ *(.ramfunc*) }} > RAM AT> FLASH
  .data : {{ *(.data*) }} > RAM AT> FLASH
  .sram_code : {{ *(.sram_code*) }} > RAM AT> RAM
  .bss (NOLOAD) : {{ *(.bss*) *(COMMON) }} > RAM
  .heap (NOLOAD) : {{ . = ALIGN(8); . += {HEAP}; }} > RAM
  .stack (NOLOAD) : {{ . = ALIGN(8); . += {STACK}; }} > RAM
  /DISCARD/ : {{ *(.note*) *(.eh_frame*) *(.comment) }}
}}
"""

TOOLCHAINS = {
    "gcc": ("", [], ["-fno-pic", "-no-pie"]),
    "arm-none-eabi": ("arm-none-eabi-", ["-mcpu=cortex-m0plus", "-mthumb"], []),
}


def _source(ident: str, mcu: bool) -> str:
    src = (C_SOURCE.replace("@IDENT@", ident).replace("@BIG@", str(BIG))
           .replace("@INIT@", str(INIT)).replace("@ZERO@", str(ZERO)))
    return ("#define MCU_LAYOUT 1\n" if mcu else "") + src


def _run(cmd, cwd):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))}:\n{proc.stderr}"


class Build:
    def __init__(self, name, d, prefix, ident, machine):
        self.name, self.dir, self.prefix, self.ident, self.machine = (name, d, prefix, ident,
                                                                      machine)
        self.obj, self.exe = d / "fw.o", d / "fw.elf"
        self.mcu, self.stripped = d / "mcu.elf", d / "mcu-stripped.elf"

    def size(self, path: Path) -> tuple[tuple[int, int, int], dict[str, int]]:
        """(Berkeley text, data, bss) and {section: size} (``size -A``) from binutils."""
        exe = shutil.which(self.prefix + "size") or "size"
        berk = subprocess.run([exe, str(path)], capture_output=True, text=True,
                              check=True).stdout.splitlines()[1].split()
        sysv = subprocess.run([exe, "-A", "-d", str(path)], capture_output=True, text=True,
                              check=True).stdout
        secs = {}
        for line in sysv.splitlines():
            m = re.match(r"^(\.\S+)\s+(\d+)\s+\d+\s*$", line)
            if m:
                secs[m.group(1)] = int(m.group(2))
        return (int(berk[0]), int(berk[1]), int(berk[2])), secs


@pytest.fixture(scope="module", params=sorted(TOOLCHAINS))
def build(request, tmp_path_factory):
    name = request.param
    prefix, cflags, extra = TOOLCHAINS[name]
    cc = shutil.which(prefix + "gcc")
    if cc is None:
        pytest.skip(f"{prefix}gcc is not installed")
    d = tmp_path_factory.mktemp(f"elf-{name}")
    ident = load_manifest()["ident"]
    (d / "fw.c").write_text(_source(ident, False))
    (d / "mcu.c").write_text(_source(ident, True))
    (d / "mcu.ld").write_text(LINKER_SCRIPT)
    link = ["-nostdlib", "-static", "-Wl,--build-id=none"]
    _run([cc, *cflags, "-O1", "-c", "-o", "fw.o", "fw.c"], d)
    _run([cc, *cflags, *extra, "-O1", *link, "-o", "fw.elf", "fw.c"], d)
    _run([cc, *cflags, *extra, "-O1", *link, "-T", "mcu.ld", "-o", "mcu.elf", "mcu.c"], d)
    strip = shutil.which(prefix + "strip") or shutil.which(prefix + "objcopy")
    if strip and strip.endswith("strip"):
        _run([strip, "-s", "-o", "mcu-stripped.elf", "mcu.elf"], d)
    elif strip:
        _run([strip, "--strip-all", "mcu.elf", "mcu-stripped.elf"], d)
    return Build(name, d, prefix, ident, "EM_ARM" if name == "arm-none-eabi" else None)


def _pyelftools_sizes(path: Path) -> dict[str, int]:
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        return {s.name: s["sh_size"] for s in ELFFile(f).iter_sections() if s.name}


def _check_sections(build: Build, path: Path, info):
    (text, data, bss), secs = build.size(path)
    ours = {s.name: s.size for s in info.sections if s.name}
    assert ours == _pyelftools_sizes(path)
    for name, size in secs.items():  # every section size(1) shows, with the same size
        assert ours[name] == size, name
    return text, data, bss


# ------------------------------------------------------------------------------ layouts

def test_object_file(build):
    info = analyse(build.obj)
    text, data, bss = _check_sections(build, build.obj, info)
    assert info.elf_type == "ET_REL"
    sec = {s.name: s for s in info.sections}
    assert sec[".bss"].size == ZERO and sec[".bss"].ram and not sec[".bss"].flash
    assert sec[".data"].size == INIT and sec[".data"].ram and sec[".data"].flash
    assert sec[".rodata"].size >= BIG and sec[".rodata"].flash and not sec[".rodata"].ram
    # flash = everything stored (Berkeley text + data); RAM = data + bss
    assert info.flash.used == text + data
    assert info.ram.used == data + bss == INIT + ZERO
    assert info.frozen == FROZEN and info.frozen_source == "symbol mp_frozen_names"
    assert info.ident and info.ident.text == build.ident and info.ident.section == ".rodata"
    assert info.manifest["status"] == "match" and info.manifest["match"] is True
    assert "relocatable" in " ".join(info.notes)


def test_plain_executable(build):
    info = analyse(build.exe, flash_bytes=100_000, ram_bytes=20_000)
    text, data, bss = _check_sections(build, build.exe, info)
    assert info.elf_type == "ET_EXEC"
    assert info.flash.used == text + data
    assert info.ram.used == data + bss == INIT + ZERO
    assert info.flash.percent == pytest.approx(100.0 * (text + data) / 100_000)
    assert info.ram.percent == pytest.approx(100.0 * (INIT + ZERO) / 20_000) == 50.0
    assert info.flash.level == info.ram.level == "ok"
    assert info.frozen == FROZEN and info.ident.text == build.ident


def test_mcu_layout(build, tmp_path):
    board = tmp_path / "board.py"
    board.write_text("BOARD_ID = 'fake'\nFLASH_BYTES = 2 * 1024 * 1024\n"
                     "RAM_BYTES = 264 * 1024\nMPY_ARCH = 'armv6m'\n")
    info = analyse(build.mcu, board)
    text, data, bss = _check_sections(build, build.mcu, info)
    sec = {s.name: s for s in info.sections}
    # initialised data and RAM functions: run address in RAM, load image in flash
    for name in (".data", ".ramfunc"):
        assert sec[name].addr >= 0x20000000 and 0x10000000 <= sec[name].load_addr < 0x20000000
        assert sec[name].flash and sec[name].ram
    for name in (".bss", ".heap", ".stack"):
        assert sec[name].ram and not sec[name].flash
    assert sec[".heap"].size == HEAP and sec[".stack"].size == STACK
    assert [s.name for s in info.heap_stack] == [".heap", ".stack"]
    assert sec[".text"].flash and not sec[".text"].ram
    # .sram_code runs where it is loaded, in RAM: counted as RAM by address (the Cortex-M
    # SRAM region for an ARM ELF; for other machines only with the board's RAM_REGIONS)
    assert sec[".sram_code"].load_addr == sec[".sram_code"].addr >= 0x20000000
    sram_in_ram = build.machine == "EM_ARM"
    assert sec[".sram_code"].ram is sram_in_ram
    assert info.flash.used == text + data  # Berkeley text includes .ramfunc/.sram_code
    base_ram = data + bss + sec[".ramfunc"].size
    assert info.ram.used == base_ram + (sec[".sram_code"].size if sram_in_ram else 0)
    assert info.ram.used >= INIT + ZERO + HEAP + STACK
    assert info.flash.total == 2 * 1024 * 1024 and info.ram.total == 264 * 1024
    assert info.ram.percent == pytest.approx(100.0 * info.ram.used / (264 * 1024))
    if build.machine != "EM_ARM":
        assert any("MPY_ARCH armv6m" in n for n in info.notes)
        board.write_text(board.read_text() + "RAM_REGIONS = ((0x20000000, RAM_BYTES),)\n")
        info = analyse(build.mcu, board)
        assert {s.name: s for s in info.sections}[".sram_code"].ram
        assert info.ram.used == base_ram + sec[".sram_code"].size
    assert info.frozen == FROZEN and info.ident.text == build.ident
    report = format_report(info)
    assert ".ramfunc" in report and "flash+ram" in report and "heap/stack sections" in report


def test_stripped_image_falls_back_to_rodata_scan(build):
    if not build.stripped.exists():
        pytest.skip("no strip/objcopy")
    info = analyse(build.stripped)
    assert not any(s.type == "SYMTAB" for s in info.sections)
    assert info.frozen == FROZEN and info.frozen_source == "rodata scan"
    assert info.ident.text == build.ident


# ------------------------------------------------------------------------------ budgets, CLI

def test_budget_levels_and_exit_codes(build, capsys):
    info = analyse(build.exe)
    flash, ram = info.flash.used, info.ram.used
    rc = cli.main([str(build.exe), "--flash-bytes", str(flash * 2), "--ram-bytes",
                   str(ram * 2)])
    out = capsys.readouterr().out
    assert rc == 0 and "(50.0 %)" in out and "WARNING" not in out
    assert "smgwfw/link.py" in out and build.ident in out and "matches" in out
    # 95 %: a warning, still exit 0
    rc = cli.main([str(build.exe), "--ram-bytes", str(round(ram / 0.95))])
    out = capsys.readouterr().out
    assert rc == 0 and "WARNING: over 90 %" in out and "warning: ram" in out
    # over budget: an error and exit 1
    rc = cli.main([str(build.exe), "--flash-bytes", str(flash - 1)])
    out = capsys.readouterr().out
    assert rc == 1 and "ERROR: over budget" in out and "error: flash" in out
    res = analyse(build.exe, flash_bytes=flash - 1, ram_bytes=ram).to_dict()
    assert res["flash"]["level"] == "error"
    # exactly full is within the budget: a warning, not an error
    assert res["ram"]["percent"] == 100.0 and res["ram"]["level"] == "warning"


def test_json_output(build, capsys):
    assert cli.main([str(build.mcu), "--json", "--flash-bytes", "1000000",
                     "--ram-bytes", "100000"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["frozen"] == {"source": "symbol mp_frozen_names", "modules": FROZEN}
    assert d["ident"]["text"] == build.ident
    assert d["manifest"]["status"] == "match"
    assert d["ram"]["total"] == 100000
    assert d["ram"]["percent"] == pytest.approx(d["ram"]["used"] / 1000, abs=0.01)
    secs = {s["name"]: s for s in d["sections"]}
    assert secs[".bss"]["size"] == ZERO and secs[".data"]["load_addr"] < 0x20000000


def test_real_board_budgets(build, capsys):
    for board, flash, ram in (("pico", 2 * 1024 * 1024, 264 * 1024),
                              ("esp32", 4 * 1024 * 1024, 520 * 1024)):
        if not (REPO / "boards" / board / "board.py").exists():
            continue
        facts = read_board_facts(board)
        assert (facts.flash_bytes, facts.ram_bytes) == (flash, ram)
        assert facts.mpy_arch in ("armv6m", "xtensawin")
        assert cli.main([str(build.mcu), "--board", board]) == 0
        out = capsys.readouterr().out
        assert f"of {flash:,} B".replace(",", " ") in out


def test_ident_mismatch_and_absent(tmp_path, capsys):
    if not shutil.which("gcc"):
        pytest.skip("gcc is not installed")
    other = "SMGW-FWID:0.0.9:" + "ab" * 32
    (tmp_path / "a.c").write_text(f'const char id[] = "{other}";\n'
                                  'const char n[] = "smgwfw/link.py";\n')
    (tmp_path / "b.c").write_text("const int x[100] = {1};\n")
    _run(["gcc", "-c", "-o", "a.o", "a.c"], tmp_path)
    _run(["gcc", "-c", "-o", "b.o", "b.c"], tmp_path)
    info = analyse(tmp_path / "a.o")
    assert info.ident.version == "0.0.9" and info.manifest["status"] == "differs"
    assert "SMGW-FW 0.0.9 abababababababab" in info.manifest["message"]
    # a lone package module name is still reported (loose scan), marked as such
    assert info.frozen == ["smgwfw/link.py"] and "module-name strings" in info.frozen_source
    info = analyse(tmp_path / "b.o")
    assert info.ident is None and info.manifest["status"] == "no-ident" and info.frozen == []
    assert cli.main([str(tmp_path / "b.o")]) == 0
    assert cli.main([str(tmp_path / "b.o"), "--require-id"]) == 1
    assert "does not hold the release" in capsys.readouterr().err
    assert analyse(tmp_path / "b.o", manifest=None).manifest["status"] == "unavailable"


def test_board_facts_parsing(tmp_path):
    (tmp_path / "board.py").write_text(
        "import machine\nfrom micropython import const\nBOARD_ID = 'x'\n"
        "KIB = 1024\nFLASH_BYTES = const(2 * 1024 * KIB)\nRAM_BYTES: int = 264 << 10\n"
        "MPY_ARCH = 'armv6m'\nLEDS = {'PWR': (25, True)}\n"
        "RAM_REGIONS = ((0x20000000, RAM_BYTES),)\nPIN = machine.Pin(3)\n")
    f = read_board_facts(tmp_path)
    assert (f.name, f.flash_bytes, f.ram_bytes, f.mpy_arch) == ("x", 2 << 20, 264 << 10,
                                                                "armv6m")
    assert f.ram_regions == ((0x20000000, 264 << 10),)
    with pytest.raises(FwInfoError, match="no board 'nope'"):
        read_board_facts("nope")
    sim = read_board_facts("sim")
    assert sim.flash_bytes is None and sim.ram_bytes is None


# ------------------------------------------------------------------------------ bad input

@pytest.fixture(scope="module")
def good_elf(tmp_path_factory):
    if not shutil.which("gcc"):
        pytest.skip("gcc is not installed")
    d = tmp_path_factory.mktemp("good")
    (d / "x.c").write_text("const char s[] = \"smgwfw/link.py\";\nint v[10] = {1};\n"
                           "int z[10];\nvoid _start(void) { for (;;) ; }\n")
    _run(["gcc", "-fno-pic", "-no-pie", "-nostdlib", "-static", "-o", "x.elf", "x.c"], d)
    return d / "x.elf"


def _fails(path, *needles, capsys):
    with pytest.raises(FwInfoError) as ei:
        analyse(path)
    for n in needles:
        assert n in str(ei.value), str(ei.value)
    assert cli.main([str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("smgw fwinfo: ") and needles[0] in err and "Traceback" not in err


def test_not_elf(tmp_path, capsys):
    p = tmp_path / "firmware.bin"
    p.write_bytes(b"hello, this is not an ELF file\n" * 10)
    _fails(p, "not an ELF file", capsys=capsys)
    p.write_bytes(b"UF2\nWQ]\x9e" + bytes(504))
    _fails(p, "not an ELF file", "UF2", capsys=capsys)
    p.write_bytes(b"")
    _fails(p, "empty", capsys=capsys)
    _fails(tmp_path / "missing.elf", "cannot read", capsys=capsys)
    _fails(tmp_path, "directory", capsys=capsys)


def test_truncated(good_elf, tmp_path, capsys):
    data = good_elf.read_bytes()
    p = tmp_path / "cut.elf"
    p.write_bytes(data[: len(data) // 2])
    _fails(p, "truncated", capsys=capsys)
    p.write_bytes(data[:30])
    _fails(p, "truncated", capsys=capsys)


def test_no_sections(good_elf, tmp_path, capsys):
    b = bytearray(good_elf.read_bytes())
    b[0x28:0x30] = bytes(8)       # e_shoff (ELF64)
    b[0x3C:0x40] = bytes(4)       # e_shnum, e_shstrndx
    p = tmp_path / "nosec.elf"
    p.write_bytes(bytes(b))
    _fails(p, "no section headers", capsys=capsys)


def test_damaged_files_never_crash(good_elf, tmp_path):
    data = good_elf.read_bytes()
    shoff = int.from_bytes(data[0x28:0x30], "little")
    rnd = random.Random(7)
    p = tmp_path / "fuzz.elf"
    for _ in range(300):
        b = bytearray(data)
        for _ in range(rnd.randint(1, 4)):
            lo, hi = rnd.choice([(4, 64), (shoff, len(b)), (0, len(b))])
            b[rnd.randrange(lo, hi)] = rnd.randrange(256)
        if rnd.random() < 0.2:
            b = b[: rnd.randrange(len(b))]
        p.write_bytes(bytes(b))
        try:
            info = analyse(p, manifest=None)
        except FwInfoError:
            continue
        format_report(info, verbose=True)
        json.dumps(info.to_dict())


def test_add_parser_registers_fwinfo(good_elf, capsys):
    p = argparse.ArgumentParser(prog="smgw")
    sub = p.add_subparsers(dest="command", required=True)
    cli.add_parser(sub)
    args = p.parse_args(["fwinfo", str(good_elf), "--board", "pico", "--json"]
                        if (REPO / "boards" / "pico").exists() else
                        ["fwinfo", str(good_elf), "--json"])
    assert args.func(args) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["type"] == "ET_EXEC"
    assert isinstance(analyse(good_elf, BoardFacts("b", 10**6, 10**5)).flash.percent, float)
