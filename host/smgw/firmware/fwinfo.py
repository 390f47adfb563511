"""What a built firmware image contains: ``smgw fwinfo FILE.elf``.

Reads an ELF file (the ``firmware.elf`` a MicroPython port build writes, or any object or
executable) with pyelftools and reports:

- its sections: type, flags, run address (VMA), load address (LMA), size, and whether each
  takes flash and/or RAM;
- flash and RAM totals, against a board's ``FLASH_BYTES``/``RAM_BYTES`` budget;
- the frozen modules (``mp_frozen_names``, or a scan of the read-only data);
- the firmware identification ``SMGW-FWID:<version>:<sha256>`` and whether it is the one in
  the release manifest.

The flash/RAM rule (docs/firmware-identity.md explains it):

- only sections with the ALLOC flag occupy memory on the device (debug info, symbol tables,
  ``.comment`` and relocations are never loaded);
- **flash**: every ALLOC section with contents in the file (not NOBITS): code, read-only data,
  and the load image of initialised data, which the startup code copies into RAM;
- **RAM**: every ALLOC section that occupies RAM while the firmware runs: writable sections
  (``.data``, ``.bss``, heap, stack), NOBITS sections, sections whose run address differs from
  their load address (code copied into RAM at start-up), and sections whose run address lies in
  a RAM region (the board's ``RAM_REGIONS``, else the architecture's standard map: Cortex-M
  SRAM 0x20000000-0x3FFFFFFF; ESP32 internal DRAM/IRAM/RTC RAM).

So initialised data counts twice, as it should: it is stored in flash and lives in RAM.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

from smgw.firmware.ident import IDENT_RE, find_repo

WARN_PERCENT = 90.0
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4
_FLAG_CHARS = ((0x1, "W"), (0x2, "A"), (0x4, "X"), (0x10, "M"), (0x20, "S"), (0x40, "I"),
               (0x80, "L"), (0x100, "O"), (0x200, "G"), (0x400, "T"))
# (origin, length) of the RAM an architecture's chips have, when the board does not say
DEFAULT_RAM_REGIONS = {
    # ARMv6-M/ARMv7-M architectural memory map: the SRAM region
    "EM_ARM": ((0x20000000, 0x20000000),),
    # ESP32: internal DRAM (SRAM2 + SRAM1), IRAM (SRAM0 + SRAM1 alias), RTC fast and slow RAM
    "EM_XTENSA": ((0x3FFAE000, 0x52000), (0x40070000, 0x50000), (0x3FF80000, 0x2000),
                  (0x400C0000, 0x2000), (0x50000000, 0x2000)),
}
# MPY_ARCH prefix -> the ELF machine of a firmware for it
_ARCH_MACHINE = (("armv", "EM_ARM"), ("xtensa", "EM_XTENSA"), ("x86", "EM_386"),
                 ("x64", "EM_X86_64"), ("rv32", "EM_RISCV"))
FROZEN_SYMBOLS = ("mp_frozen_names", "mp_frozen_mpy_names", "mp_frozen_str_names")
_NAME = rb"(?:[A-Za-z_][A-Za-z0-9_-]*/)*[A-Za-z_][A-Za-z0-9_]*\.m?py"
_NAME_RE = re.compile(_NAME + rb"\Z")
# a run of NUL-separated module names ending in an empty name: the layout of mp_frozen_names
_FROZEN_RUN_RE = re.compile(rb"(?<![\x21-\x7e])((?:" + _NAME + rb"\x00)+)\x00")
_PKG_NAME_RE = re.compile(rb"(?<![\x21-\x7e])((?:[A-Za-z_][A-Za-z0-9_-]*/)+[A-Za-z_]"
                          rb"[A-Za-z0-9_]*\.m?py)\x00")


class FwInfoError(Exception):
    """The file cannot be analysed (not ELF, truncated, no sections, unreadable)."""


# ============================================================================ board facts

@dataclass
class BoardFacts:
    name: str
    flash_bytes: int | None = None
    ram_bytes: int | None = None
    mpy_arch: str | None = None
    ram_regions: tuple[tuple[int, int], ...] | None = None
    path: str | None = None


def _eval(node: ast.AST, env: dict) -> object:
    """A constant expression of a board.py assignment: numbers, strings, tuples/lists, names
    assigned before, and + - * // % << >> | &."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in env:
        return env[node.id]
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(_eval(e, env) for e in node.elts)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _eval(node.operand, env)
        return -v if isinstance(node.op, ast.USub) else +v
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
            node.func.id == "const" and len(node.args) == 1:
        return _eval(node.args[0], env)  # micropython.const(...)
    if isinstance(node, ast.BinOp):
        a, b = _eval(node.left, env), _eval(node.right, env)
        ops = {ast.Add: lambda: a + b, ast.Sub: lambda: a - b, ast.Mult: lambda: a * b,
               ast.FloorDiv: lambda: a // b, ast.Mod: lambda: a % b,
               ast.LShift: lambda: a << b, ast.RShift: lambda: a >> b,
               ast.BitOr: lambda: a | b, ast.BitAnd: lambda: a & b}
        if type(node.op) in ops:
            return ops[type(node.op)]()
    raise ValueError("not a constant expression")


def read_board_facts(board: str | Path, repo: Path | None = None) -> BoardFacts:
    """The budget facts of a board, read from its board.py without importing it (a board
    module imports ``machine`` or opens ports). ``board`` is a name under ``boards/``, a
    board directory or a board.py file."""
    p = Path(board)
    if p.is_dir():
        p = p / "board.py"
    elif not p.is_file():
        if repo is None:
            try:
                repo = find_repo()
            except Exception as e:
                raise FwInfoError(f"board {board!r}: {e}") from None
        p = repo / "boards" / str(board) / "board.py"
        if not p.is_file():
            have = sorted(d.name for d in (repo / "boards").iterdir()
                          if (d / "board.py").is_file()) if (repo / "boards").is_dir() else []
            raise FwInfoError(f"no board {board!r}: {p} does not exist"
                              + (f" (boards: {', '.join(have)})" if have else ""))
    try:
        tree = ast.parse(p.read_text(encoding="utf-8"), str(p))
    except (OSError, SyntaxError, ValueError) as e:
        raise FwInfoError(f"cannot read board facts from {p}: {e}") from None
    env: dict = {}
    for node in tree.body:
        targets = []
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        for t in targets:
            if isinstance(t, ast.Name):
                try:
                    env[t.id] = _eval(value, env)
                except Exception:
                    env.pop(t.id, None)
    name = p.parent.name if p.name == "board.py" else p.stem
    facts = BoardFacts(name=str(env.get("BOARD_ID", name)), path=str(p))
    for attr, key in (("flash_bytes", "FLASH_BYTES"), ("ram_bytes", "RAM_BYTES")):
        v = env.get(key)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            setattr(facts, attr, v)
    if isinstance(env.get("MPY_ARCH"), str):
        facts.mpy_arch = env["MPY_ARCH"]
    rr = env.get("RAM_REGIONS")
    if isinstance(rr, tuple) and all(isinstance(r, tuple) and len(r) == 2 for r in rr):
        facts.ram_regions = tuple((int(a), int(b)) for a, b in rr)
    return facts


# ============================================================================ results

@dataclass
class Section:
    name: str
    type: str                 # "PROGBITS", "NOBITS", ...
    flags: str                # readelf letters: W A X ...
    addr: int                 # run address (VMA)
    load_addr: int            # load address (LMA): where its bytes are stored
    size: int
    offset: int
    flash: bool
    ram: bool

    def to_dict(self) -> dict:
        return {"name": self.name, "type": self.type, "flags": self.flags,
                "addr": self.addr, "load_addr": self.load_addr, "size": self.size,
                "offset": self.offset, "flash": self.flash, "ram": self.ram}


@dataclass
class Budget:
    memory: str               # "flash" or "ram"
    used: int
    total: int | None

    @property
    def percent(self) -> float | None:
        return 100.0 * self.used / self.total if self.total else None

    @property
    def level(self) -> str:
        p = self.percent
        if p is None:
            return "unknown"
        return "error" if p > 100.0 else "warning" if p > WARN_PERCENT else "ok"

    def to_dict(self) -> dict:
        p = self.percent
        return {"used": self.used, "total": self.total,
                "percent": round(p, 2) if p is not None else None, "level": self.level}


@dataclass
class IdentFound:
    text: str
    version: str
    digest: str
    offset: int               # file offset
    section: str | None

    def to_dict(self) -> dict:
        return {"text": self.text, "version": self.version, "digest": self.digest,
                "offset": self.offset, "section": self.section}


@dataclass
class FwInfo:
    path: str
    elf_class: int
    machine: str
    elf_type: str
    sections: list[Section]
    flash: Budget
    ram: Budget
    board: BoardFacts | None = None
    frozen: list[str] = field(default_factory=list)
    frozen_source: str | None = None      # "symbol mp_frozen_names" / "rodata scan" / None
    idents: list[IdentFound] = field(default_factory=list)
    manifest: dict = field(default_factory=dict)   # the comparison with the release manifest
    notes: list[str] = field(default_factory=list)

    @property
    def ident(self) -> IdentFound | None:
        return self.idents[0] if self.idents else None

    @property
    def heap_stack(self) -> list[Section]:
        return [s for s in self.sections if s.ram and re.search(r"heap|stack", s.name, re.I)]

    def problems(self) -> list[tuple[str, str]]:
        """``[(level, message)]``: budget warnings/errors and identification problems."""
        out = []
        for b in (self.flash, self.ram):
            if b.level in ("warning", "error"):
                what = "exceeds" if b.level == "error" else "is close to"
                out.append((b.level, f"{b.memory} {b.used} B {what} the board budget "
                                     f"{b.total} B ({b.percent:.1f} %)"))
        if len({(i.version, i.digest) for i in self.idents}) > 1:
            out.append(("warning", "the image holds more than one firmware identification"))
        return out

    def to_dict(self) -> dict:
        return {
            "path": self.path, "elf_class": self.elf_class, "machine": self.machine,
            "type": self.elf_type,
            "board": None if self.board is None else {
                "name": self.board.name, "path": self.board.path,
                "flash_bytes": self.board.flash_bytes, "ram_bytes": self.board.ram_bytes,
                "mpy_arch": self.board.mpy_arch},
            "sections": [s.to_dict() for s in self.sections],
            "flash": self.flash.to_dict(), "ram": self.ram.to_dict(),
            "heap_stack": [s.name for s in self.heap_stack],
            "frozen": {"source": self.frozen_source, "modules": list(self.frozen)},
            "ident": self.ident.to_dict() if self.ident else None,
            "idents": [i.to_dict() for i in self.idents],
            "manifest": dict(self.manifest),
            "problems": [{"level": lv, "message": m} for lv, m in self.problems()],
            "notes": list(self.notes),
        }


# ============================================================================ analysis

def _flags(v: int) -> str:
    return "".join(c for bit, c in _FLAG_CHARS if v & bit)


def _open_elf(data: bytes, path: str):
    """pyelftools' ELFFile over ``data``, after the checks that give clear errors."""
    import io
    import struct

    from elftools.common.exceptions import ELFError, ELFParseError
    from elftools.elf.elffile import ELFFile

    if len(data) == 0:
        raise FwInfoError(f"{path}: the file is empty")
    if data[:4] != b"\x7fELF":
        hint = ""
        if data[:4] == b"UF2\n":
            hint = " (a UF2 image; pass the .elf the build writes next to it)"
        elif data[:1] == b":":
            hint = " (looks like Intel HEX; pass the .elf the build writes)"
        elif data[:1] == b"\xe9":
            hint = " (looks like an ESP32 app image; pass the .elf the build writes)"
        raise FwInfoError(f"{path}: not an ELF file (it starts with {data[:8]!r}){hint}")
    if len(data) < 52 or data[4] not in (1, 2):
        raise FwInfoError(f"{path}: truncated or corrupt ELF: the {len(data)}-byte file is "
                          "shorter than an ELF header or has an invalid class")
    try:
        elf = ELFFile(io.BytesIO(data))
        h = elf.header
        if h["e_shoff"] == 0 or h["e_shoff"] + h["e_shentsize"] <= len(data) and \
                elf.num_sections() == 0:
            raise FwInfoError(f"{path}: the ELF file has no section headers (stripped with "
                              "--strip-sections, or not a build output); fwinfo needs them")
        end = h["e_shoff"] + max(h["e_shnum"], 1) * h["e_shentsize"]
        if end > len(data):
            raise FwInfoError(f"{path}: truncated ELF file: the section headers end at byte "
                              f"{end} but the file has {len(data)} bytes")
        sections = list(elf.iter_sections())
        for s in sections:
            if s["sh_type"] != "SHT_NOBITS" and s["sh_size"] and \
                    s["sh_offset"] + s["sh_size"] > len(data):
                raise FwInfoError(f"{path}: truncated ELF file: section {s.name or '?'} ends "
                                  f"at byte {s['sh_offset'] + s['sh_size']} but the file has "
                                  f"{len(data)} bytes")
        if h["e_phnum"] and h["e_phoff"] + h["e_phnum"] * h["e_phentsize"] > len(data):
            raise FwInfoError(f"{path}: truncated or corrupt ELF file: the program headers "
                              "lie beyond the end of the file")
        segments = list(elf.iter_segments())
    except FwInfoError:
        raise
    except (ELFError, ELFParseError, struct.error) as e:
        raise FwInfoError(f"{path}: corrupt or truncated ELF file: {e}") from None
    except Exception as e:  # pyelftools on damaged headers: ValueError, OverflowError, ...
        raise FwInfoError(f"{path}: corrupt ELF file ({type(e).__name__}: {e})") from None
    return elf, sections, segments


def _in_regions(addr: int, size: int, regions) -> bool:
    return any(o <= addr < o + n for o, n in regions)


def _classify(elf, sections, segments, ram_regions) -> list[Section]:
    loads = [g for g in segments if g["p_type"] == "PT_LOAD"]
    out = []
    for s in sections:
        if s["sh_type"] == "SHT_NULL":
            continue
        flags, vma, size = s["sh_flags"], s["sh_addr"], s["sh_size"]
        nobits = s["sh_type"] == "SHT_NOBITS"
        lma = vma
        if flags & SHF_ALLOC and not nobits:  # NOBITS has no load image: LMA = VMA
            for g in loads:  # the segment holding the section's bytes gives its load address
                if g["p_filesz"] and \
                        g["p_offset"] <= s["sh_offset"] < g["p_offset"] + g["p_filesz"]:
                    lma = vma - g["p_vaddr"] + g["p_paddr"]
                    break
        alloc = bool(flags & SHF_ALLOC) and size > 0
        flash = alloc and not nobits
        ram = alloc and (bool(flags & SHF_WRITE) or nobits or lma != vma or
                         (elf.header["e_type"] != "ET_REL" and
                          _in_regions(vma, size, ram_regions)))
        t = s["sh_type"]
        out.append(Section(name=s.name, type=t[4:] if isinstance(t, str) and
                           t.startswith("SHT_") else str(t),
                           flags=_flags(flags), addr=vma, load_addr=lma, size=size,
                           offset=s["sh_offset"], flash=flash, ram=ram))
    return out


def _names_from(blob: bytes) -> list[str]:
    names = []
    for part in blob.split(b"\x00"):
        if not part:
            break
        if not _NAME_RE.match(part):
            return []
        names.append(part.decode("ascii"))
    return names


def _frozen_from_symbol(elf, sections) -> tuple[list[str], str | None]:
    from elftools.elf.sections import SymbolTableSection

    for tab in sections:
        if not isinstance(tab, SymbolTableSection):
            continue
        for symname in FROZEN_SYMBOLS:
            for sym in tab.get_symbol_by_name(symname) or []:
                shndx = sym["st_shndx"]
                if not isinstance(shndx, int) or shndx >= len(sections):
                    continue
                sec = sections[shndx]
                if sec["sh_type"] == "SHT_NOBITS":
                    continue
                off = sym["st_value"] - (0 if elf.header["e_type"] == "ET_REL"
                                         else sec["sh_addr"])
                data = sec.data()
                if not 0 <= off < len(data):
                    continue
                n = sym["st_size"] or len(data) - off
                names = _names_from(data[off:off + n])
                if names:
                    return names, f"symbol {symname}"
    return [], None


def _frozen_from_scan(sections) -> tuple[list[str], str | None]:
    """No symbol table: the longest NUL-separated run of module names ending in an empty name
    (the layout of mp_frozen_names) in read-only data; else every ``pkg/module.py`` string."""
    ro = [s for s in sections if s["sh_flags"] & SHF_ALLOC and not s["sh_flags"] & SHF_WRITE
          and s["sh_type"] == "SHT_PROGBITS"]
    ro.sort(key=lambda s: (0 if s.name.startswith(".rodata") else 1, s.name))
    best: list[str] = []
    for s in ro:
        for m in _FROZEN_RUN_RE.finditer(s.data()):
            names = [n.decode() for n in m.group(1).split(b"\x00") if n]
            if (len(names) >= 2 or "/" in names[0]) and len(names) > len(best):
                best = names
    if best:
        return best, "rodata scan"
    loose: list[str] = []
    for s in ro:
        for m in _PKG_NAME_RE.finditer(s.data()):
            n = m.group(1).decode()
            if n not in loose:
                loose.append(n)
    return (loose, "rodata scan (module-name strings)") if loose else ([], None)


def _idents(data: bytes, sections) -> list[IdentFound]:
    out = []
    for m in IDENT_RE.finditer(data):
        sec = next((s.name for s in sections if s["sh_type"] != "SHT_NOBITS" and
                    s["sh_offset"] <= m.start() < s["sh_offset"] + s["sh_size"]), None)
        out.append(IdentFound(m.group(0).decode(), m.group(1).decode(), m.group(2).decode(),
                              m.start(), sec))
    return out


def _compare_manifest(info: FwInfo, manifest: dict | None, manifest_error: str | None
                      ) -> dict:
    if manifest is None:
        return {"status": "unavailable", "message": f"no release manifest: {manifest_error}"}
    res = {"release": manifest.get("firmware_id"), "version": manifest.get("version")}
    ident = info.ident
    if ident is None:
        res.update(status="no-ident", match=False,
                   message="the image holds no SMGW-FWID identification (built without "
                           "smgwfw/_ident.py)")
    elif (ident.version, ident.digest) == (manifest.get("version"), manifest.get("digest")):
        res.update(status="match", match=True,
                   message=f"matches the release manifest ({manifest.get('firmware_id')})")
    else:
        res.update(status="differs", match=False,
                   message=f"differs from the release manifest: the image is "
                           f"SMGW-FW {ident.version} {ident.digest[:16]}, the manifest "
                           f"{manifest.get('firmware_id')}")
    frozen_pkg = [n for n in info.frozen if n.startswith("smgwfw/")]
    if frozen_pkg:
        want = [n for n in manifest.get("files", {}) if n.startswith("smgwfw/")]
        have = {n.rsplit(".", 1)[0] for n in frozen_pkg}
        res["frozen_missing"] = [n for n in sorted(want) if n.rsplit(".", 1)[0] not in have]
        res["frozen_unknown"] = sorted(n for n in frozen_pkg
                                       if n.rsplit(".", 1)[0] + ".py" not in want
                                       and not n.startswith("smgwfw/_ident."))
    return res


_UNSET = object()


def analyse(path: str | Path, board: str | Path | BoardFacts | None = None, *,
            flash_bytes: int | None = None, ram_bytes: int | None = None,
            manifest: dict | None | object = _UNSET) -> FwInfo:
    """Analyse the ELF file ``path``. ``board`` (a name under boards/, a board dir or board.py,
    or BoardFacts) gives the budgets; ``flash_bytes``/``ram_bytes`` override them.
    ``manifest``: the release manifest to compare with (default: load firmware/release.json;
    None: do not compare)."""
    path = str(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except IsADirectoryError:
        raise FwInfoError(f"{path}: is a directory, not an ELF file") from None
    except OSError as e:
        raise FwInfoError(f"{path}: cannot read: {e.strerror or e}") from None
    facts = board if isinstance(board, BoardFacts) or board is None \
        else read_board_facts(board)
    elf, raw_sections, segments = _open_elf(data, path)
    try:
        machine = elf.header["e_machine"]
        regions = (facts.ram_regions if facts and facts.ram_regions
                   else DEFAULT_RAM_REGIONS.get(machine, ()))
        sections = _classify(elf, raw_sections, segments, regions)
        frozen, frozen_source = _frozen_from_symbol(elf, raw_sections)
        if not frozen:
            frozen, frozen_source = _frozen_from_scan(raw_sections)
        idents = _idents(data, raw_sections)
    except FwInfoError:
        raise
    except Exception as e:  # pyelftools on a damaged file: ELFError, struct.error, ...
        raise FwInfoError(f"{path}: corrupt ELF file: {type(e).__name__}: {e}") from None

    flash_total = flash_bytes if flash_bytes is not None else (facts.flash_bytes if facts
                                                                else None)
    ram_total = ram_bytes if ram_bytes is not None else (facts.ram_bytes if facts else None)
    info = FwInfo(
        path=path, elf_class=elf.elfclass, machine=str(machine),
        elf_type=str(elf.header["e_type"]), sections=sections,
        flash=Budget("flash", sum(s.size for s in sections if s.flash), flash_total),
        ram=Budget("ram", sum(s.size for s in sections if s.ram), ram_total),
        board=facts, frozen=frozen, frozen_source=frozen_source, idents=idents)
    if info.elf_type == "ET_REL":
        info.notes.append("a relocatable object (.o): addresses are not assigned yet, so the "
                          "totals come from section flags only")
    want = next((m for pre, m in _ARCH_MACHINE if facts and facts.mpy_arch and
                 facts.mpy_arch.startswith(pre)), None)
    if want and want != machine:
        info.notes.append(f"board {facts.name} has MPY_ARCH {facts.mpy_arch}, but the ELF is "
                          f"for {machine}")
    merr = None
    if manifest is _UNSET:
        from smgw.firmware.manifest import ManifestError, load_manifest
        try:
            manifest = load_manifest()
        except ManifestError as e:
            manifest, merr = None, str(e)
    elif manifest is None:
        merr = "not compared"
    info.manifest = _compare_manifest(info, manifest, merr)  # type: ignore[arg-type]
    return info


# ============================================================================ report

def _num(n: int) -> str:
    return f"{n:,}".replace(",", " ")


def format_report(info: FwInfo, verbose: bool = False) -> str:
    lines = [f"{info.path}: ELF{info.elf_class} {info.machine.removeprefix('EM_')} "
             f"{info.elf_type.removeprefix('ET_').lower()}, {len(info.sections)} sections"
             + (f", board {info.board.name}" if info.board else "")]
    shown = [s for s in info.sections if verbose or "A" in s.flags]
    w = max([len(s.name) for s in shown] + [7])
    lines.append("")
    lines.append(f"  {'section':<{w}}  {'type':<10} {'flags':<5} {'address':>10} "
                 f"{'load addr':>10} {'size':>10}  memory")
    for s in shown:
        mem = "+".join(m for m, on in (("flash", s.flash), ("ram", s.ram)) if on) or "-"
        lines.append(f"  {s.name:<{w}}  {s.type:<10} {s.flags:<5} {s.addr:>#10x} "
                     f"{s.load_addr:>#10x} {s.size:>10}  {mem}")
    if not verbose:
        hidden = len(info.sections) - len(shown)
        if hidden:
            lines.append(f"  ({hidden} sections not loaded on the device (debug, symbols, "
                         "...) not shown; -v shows them)")
    lines.append("")
    for b in (info.flash, info.ram):
        if b.total:
            tag = {"ok": "", "warning": "  WARNING: over 90 %",
                   "error": "  ERROR: over budget"}[b.level]
            lines.append(f"{b.memory:<6}{_num(b.used):>12} B of {_num(b.total)} B "
                         f"({b.percent:.1f} %){tag}")
        else:
            why = (f"board {info.board.name} has no "
                   f"{'FLASH_BYTES' if b.memory == 'flash' else 'RAM_BYTES'}"
                   if info.board else "give --board")
            lines.append(f"{b.memory:<6}{_num(b.used):>12} B (no budget: {why})")
    hs = info.heap_stack
    if hs:
        lines.append("      heap/stack sections: " + ", ".join(
            f"{s.name} {_num(s.size)} B" for s in hs))
    lines.append("")
    if info.frozen:
        lines.append(f"frozen modules ({info.frozen_source}): {len(info.frozen)}")
        lines += [f"  {n}" for n in info.frozen]
    else:
        lines.append("frozen modules: none found")
    lines.append("")
    if info.ident:
        i = info.ident
        lines.append(f"firmware id: SMGW-FW {i.version} {i.digest[:16]} "
                     f"(in {i.section or 'file'} at offset {i.offset:#x})")
        lines.append(f"             {i.text}")
    else:
        lines.append("firmware id: none (no SMGW-FWID:<version>:<sha256> in the image)")
    m = info.manifest
    if m.get("message"):
        lines.append(f"release:     {m['message']}")
    if m.get("frozen_missing"):
        lines.append("             modules of the release not frozen: "
                     + ", ".join(m["frozen_missing"]))
    if m.get("frozen_unknown"):
        lines.append("             frozen modules not in the release: "
                     + ", ".join(m["frozen_unknown"]))
    for n in info.notes:
        lines.append(f"note: {n}")
    for level, msg in info.problems():
        lines.append(f"{level}: {msg}")
    return "\n".join(lines) + "\n"
