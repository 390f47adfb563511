"""The firmware identification: what it covers, how it is computed, the frozen ident module."""

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from smgw.firmware.ident import (IDENT_MODULE, FirmwareId, IdentError, code_files, digest_of,
                                 find_repo, firmware_id, ident_module_source, parse_ident)
from smgw.firmware.manifest import compile_mpy

REPO = Path(__file__).resolve().parents[3]


def _copy_firmware(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "firmware", tmp_path / "firmware",
                    ignore=shutil.ignore_patterns("__pycache__", "release.json"))
    shutil.copytree(REPO / "boards", tmp_path / "boards",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_id_covers_smgwfw_and_main_but_not_board():
    fid = firmware_id(REPO)
    expected = sorted(["main.py"] + [
        p.relative_to(REPO / "firmware").as_posix()
        for p in (REPO / "firmware" / "smgwfw").rglob("*.py") if "__pycache__" not in p.parts])
    assert sorted(fid.files) == expected
    assert "smgwfw/link.py" in fid.files and "smgwfw/__init__.py" in fid.files
    assert not any("board" in n for n in fid.files)


def test_id_is_version_and_sha256_of_the_sorted_listing():
    fid = firmware_id(REPO)
    ns: dict = {}
    exec((REPO / "firmware" / "smgwfw" / "__init__.py").read_text(), ns)
    assert fid.version == ns["VERSION"]
    listing = "".join(
        f"{hashlib.sha256((REPO / 'firmware' / rel).read_bytes()).hexdigest()}  {rel}\n"
        for rel in sorted(fid.files))
    assert fid.digest == hashlib.sha256(listing.encode()).hexdigest()
    assert fid.short == fid.digest[:16]
    assert str(fid) == f"SMGW-FW {fid.version} {fid.digest[:16]}"
    assert re.fullmatch(r"SMGW-FW \S+ [0-9a-f]{16}", str(fid))
    assert fid.ident == f"SMGW-FWID:{fid.version}:{fid.digest}"
    assert fid.to_dict()["id"] == str(fid)


@pytest.mark.skipif(not (shutil.which("sha256sum") and shutil.which("find")
                         and shutil.which("xargs")), reason="needs coreutils")
def test_digest_reproducible_with_coreutils():
    """The recipe in the docs gives the same digest without any of our code."""
    out = subprocess.run(
        "find main.py smgwfw -name '*.py' ! -name _ident.py ! -path '*__pycache__*' "
        "| LC_ALL=C sort | xargs sha256sum | sha256sum",
        shell=True, cwd=REPO / "firmware", capture_output=True, text=True, check=True).stdout
    assert out.split()[0] == firmware_id(REPO).digest


def test_code_change_changes_id_configuration_does_not(tmp_path):
    repo = _copy_firmware(tmp_path)
    before = firmware_id(repo)
    assert before == firmware_id(REPO)
    # board configuration, the generated ident module and bytecode caches are not code
    (repo / "boards" / "sim" / "board.py").write_text("# changed\n", encoding="utf-8")
    (repo / "firmware" / "smgwfw" / "_ident.py").write_text(ident_module_source(before))
    (repo / "firmware" / "smgwfw" / "__pycache__").mkdir(exist_ok=True)
    (repo / "firmware" / "smgwfw" / "__pycache__" / "x.py").write_text("x = 1\n")
    assert firmware_id(repo) == before
    # one byte in one module is a different firmware
    link = repo / "firmware" / "smgwfw" / "link.py"
    link.write_bytes(link.read_bytes() + b"\n")
    after = firmware_id(repo)
    assert after.version == before.version and after.digest != before.digest
    assert {k for k in after.files if after.files[k] != before.files[k]} == {"smgwfw/link.py"}
    # so is a new module, and so is a change of main.py
    (repo / "firmware" / "smgwfw" / "extra.py").write_text("X = 1\n")
    assert firmware_id(repo).digest not in (before.digest, after.digest)
    assert "smgwfw/extra.py" in firmware_id(repo).files


def test_digest_of_is_order_independent():
    files = {"b.py": "1" * 64, "a.py": "2" * 64}
    assert digest_of(files) == digest_of(dict(reversed(list(files.items()))))


def test_find_repo_and_errors(tmp_path):
    assert find_repo() == REPO
    assert find_repo(REPO / "firmware" / "smgwfw") == REPO
    with pytest.raises(IdentError, match="no checkout found"):
        find_repo(tmp_path)
    (tmp_path / "firmware" / "smgwfw").mkdir(parents=True)
    (tmp_path / "firmware" / "smgwfw" / "__init__.py").write_text("# no version\n")
    (tmp_path / "firmware" / "main.py").write_text("")
    with pytest.raises(IdentError, match="VERSION"):
        firmware_id(tmp_path)
    (tmp_path / "firmware" / "main.py").unlink()
    with pytest.raises(IdentError, match="main.py"):
        code_files(tmp_path)


def test_ident_module_source_defines_ident():
    fid = firmware_id(REPO)
    src = ident_module_source(fid)
    ns: dict = {}
    exec(src, ns)
    assert ns["IDENT"] == fid.ident
    assert re.fullmatch(r"SMGW-FWID:[0-9][0-9A-Za-z.+_-]*:[0-9a-f]{64}", ns["IDENT"])
    assert parse_ident(src) == (fid.version, fid.digest)
    assert parse_ident(src.encode()) == (fid.version, fid.digest)
    assert parse_ident("SMGW-FWID:0.1.0:abc") is None
    assert IDENT_MODULE == "smgwfw/_ident.py"


def test_ident_survives_mpy_cross(tmp_path):
    """A build freezes the compiled module; the identification stays one contiguous string in
    it (fwinfo scans images for it)."""
    fid = firmware_id(REPO)
    src = tmp_path / "_ident.py"
    src.write_text(ident_module_source(fid))
    for arch in ("bytecode", "armv6m", "xtensawin"):
        mpy = compile_mpy(src, IDENT_MODULE, arch)
        assert fid.ident.encode() in mpy
        assert parse_ident(mpy) == (fid.version, fid.digest)


def test_firmware_id_equality_ignores_file_table():
    a = FirmwareId("0.1.0", "0" * 64, {"x.py": "1" * 64})
    assert a == FirmwareId("0.1.0", "0" * 64)
    assert a != FirmwareId("0.1.1", "0" * 64)
