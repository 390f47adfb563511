"""The release manifest: committed == generated, mpy-cross determinism, the hello check."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest

import release_manifest  # tools/release_manifest.py (tests/conftest.py puts tools/ on the path)
from smgw.firmware.ident import IDENT_MODULE, firmware_id, ident_module_source
from smgw.firmware.manifest import (MPY_ARCHES, ManifestError, build_manifest, check_hello_files,
                                    check_ident, compare_manifests, compile_mpy, dumps,
                                    load_manifest)
from smgwfw.app import file_hashes  # the firmware's own hashing, as used for the hello

REPO = Path(__file__).resolve().parents[3]
FW = REPO / "firmware"


@pytest.fixture(scope="module")
def fresh():
    return build_manifest(REPO)


@pytest.fixture(scope="module")
def manifest(fresh):
    # the checks below run against the manifest of the sources as they are, so that a stale
    # firmware/release.json fails only test_committed_manifest_is_up_to_date, with its message
    return json.loads(dumps(fresh))


def _sources(*, main=False):
    """The files the sim board reports: smgwfw/*.py (read by the firmware's file_hashes)."""
    files = [(p.relative_to(FW).as_posix(), str(p))
             for p in sorted((FW / "smgwfw").glob("*.py")) if p.name != "_ident.py"]
    if main:
        files.append(("main.py", str(FW / "main.py")))
    return file_hashes(files)


def _compiled(tmp_path, arch, *, with_ident=False):
    """What a board with compiled modules reports: smgwfw/*.mpy, main.py, board.py."""
    out = {}
    for p in sorted((FW / "smgwfw").glob("*.py")):
        rel = p.relative_to(FW).as_posix()
        out[rel[:-3] + ".mpy"] = hashlib.sha256(compile_mpy(p, rel, arch)).digest()
    if with_ident:
        src = tmp_path / "_ident.py"
        src.write_text(ident_module_source(firmware_id(REPO)))
        out[IDENT_MODULE[:-3] + ".mpy"] = hashlib.sha256(
            compile_mpy(src, IDENT_MODULE, arch)).digest()
    out["main.py"] = hashlib.sha256((FW / "main.py").read_bytes()).digest()
    out["board.py"] = hashlib.sha256(b"BOARD_ID = 'pico'\n").digest()
    return out


# ------------------------------------------------------------------------ the committed file

def test_committed_manifest_is_up_to_date(fresh):
    path = REPO / "firmware" / "release.json"
    assert path.exists(), \
        "firmware/release.json is missing: run `python tools/release_manifest.py`"
    committed = json.loads(path.read_text(encoding="utf-8"))
    diffs = compare_manifests(committed, fresh)
    assert not diffs and committed == fresh, (
        "firmware/release.json is out of date with the firmware sources; run "
        "`python tools/release_manifest.py` and commit the result:\n  " + "\n  ".join(diffs))
    assert path.read_text(encoding="utf-8") == dumps(fresh), (
        "firmware/release.json is not formatted as the tool writes it; run "
        "`python tools/release_manifest.py`")


def test_manifest_contents(fresh):
    fid = firmware_id(REPO)
    assert fresh["version"] == fid.version
    assert fresh["firmware_id"] == str(fid)
    assert fresh["digest"] == fid.digest and fresh["ident"] == fid.ident
    assert fresh["files"] == fid.files
    assert set(fresh["mpy"]) == set(MPY_ARCHES) == {"bytecode", "armv6m", "xtensawin"}
    modules = {n[:-3] + ".mpy" for n in fid.files if n.startswith("smgwfw/")}
    for arch in MPY_ARCHES:
        assert set(fresh["mpy"][arch]) == modules
    assert "main.py" in fresh["files"] and "board.py" not in fresh["files"]
    im = fresh["ident_module"]
    assert im["path"] == IDENT_MODULE
    assert im["source"] == hashlib.sha256(ident_module_source(fid).encode()).hexdigest()


def test_mpy_cross_is_deterministic(tmp_path):
    src = FW / "smgwfw" / "link.py"
    copy = tmp_path / "elsewhere" / "link.py"
    copy.parent.mkdir()
    shutil.copy(src, copy)
    for arch in MPY_ARCHES:
        a = compile_mpy(src, "smgwfw/link.py", arch)
        b = compile_mpy(src, "smgwfw/link.py", arch)
        c = compile_mpy(copy, "smgwfw/link.py", arch)  # other directory, same -s name
        assert a == b == c
    # the stored source name is part of the .mpy: builds must pass -s smgwfw/<m>.py
    assert compile_mpy(src, "link.py", "bytecode") != compile_mpy(src, "smgwfw/link.py",
                                                                  "bytecode")


def test_tool_check_and_write(tmp_path, fresh, capsys):
    stale = json.loads(dumps(fresh))
    stale["files"]["smgwfw/link.py"] = "0" * 64
    out = tmp_path / "release.json"
    out.write_text(dumps(stale))
    assert release_manifest.main(["--check", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "python tools/release_manifest.py" in err and "smgwfw/link.py: changed" in err
    assert release_manifest.main(["--out", str(out)]) == 0
    assert out.read_text() == dumps(fresh)
    assert release_manifest.main(["--check", "--out", str(out)]) == 0
    assert release_manifest.main(["--check", "--out", str(tmp_path / "nope.json")]) == 1


def test_compare_manifests_explains(fresh):
    other = json.loads(dumps(fresh))
    other["files"]["smgwfw/new.py"] = "1" * 64
    del other["files"]["smgwfw/cbor.py"]
    other["version"] = "9.9"
    d = compare_manifests(other, fresh)
    assert any("version" in x for x in d)
    assert "smgwfw/new.py: in the manifest but no longer in the sources" in d
    assert "smgwfw/cbor.py: not in the manifest" in d
    mpy_only = json.loads(dumps(fresh))
    mpy_only["mpy"]["armv6m"]["smgwfw/link.mpy"] = "2" * 64
    mpy_only["mpy_cross"]["version"] = "1.0.0 mpy v5"
    assert "mpy-cross 1.0.0 mpy v5" in compare_manifests(mpy_only, fresh)[0]


def test_load_manifest(tmp_path):
    m = load_manifest()  # finds firmware/release.json of the checkout
    assert m["format"] == 1 and "smgwfw/link.py" in m["files"]
    assert load_manifest(REPO / "firmware" / "release.json") == m
    with pytest.raises(ManifestError, match="release_manifest.py"):
        load_manifest(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ManifestError, match="cannot read"):
        load_manifest(tmp_path / "bad.json")
    (tmp_path / "old.json").write_text('{"format": 0}')
    with pytest.raises(ManifestError, match="format"):
        load_manifest(tmp_path / "old.json")


# ------------------------------------------------------------------------ the hello check

def test_sim_board_sources_match(manifest):
    res = check_hello_files(manifest, _sources())
    assert res.ok, res.summary()
    assert res.variant == "source" and res.variants == []
    assert res.not_reported == ["main.py"]  # the sim board does not report it: not an error
    assert not (res.unknown or res.missing or res.mismatched)
    assert "matches" in res.summary()
    res = check_hello_files(manifest, _sources(main=True))
    assert res.ok and res.not_reported == [] and "main.py" in res.matched


def test_board_with_compiled_modules(tmp_path, manifest):
    for arch in ("armv6m", "xtensawin"):
        res = check_hello_files(manifest, _compiled(tmp_path, arch, with_ident=True))
        assert res.ok, res.summary()
        assert arch in res.variants and res.variant == res.variants[0]
        assert res.ignored == ["board.py"]
        assert "smgwfw/_ident.mpy" in res.matched and "main.py" in res.matched


def test_mismatch_unknown_missing(tmp_path, manifest):
    files = _sources()
    files["smgwfw/link.py"] = hashlib.sha256(b"patched").digest()
    files["smgwfw/evil.py"] = hashlib.sha256(b"x").digest()
    files["main.py"] = hashlib.sha256(b"other main").digest()
    del files["smgwfw/cbor.py"]
    res = check_hello_files(manifest, files)
    assert not res.ok
    assert res.mismatched == ["main.py", "smgwfw/link.py"]
    assert res.unknown == ["smgwfw/evil.py"]
    assert res.missing == ["smgwfw/cbor.py"]
    s = res.summary()
    assert "differs" in s and "smgwfw/link.py" in s and "smgwfw/evil.py" in s

    comp = _compiled(tmp_path, "armv6m")
    comp["smgwfw/leds.mpy"] = b"\x00" * 32
    comp["smgwfw/_ident.mpy"] = b"\x01" * 32
    res = check_hello_files(manifest, comp)
    assert not res.ok and res.variants == []
    assert res.variant == "bytecode"  # the best-matching arch
    assert res.mismatched == ["smgwfw/_ident.mpy", "smgwfw/leds.mpy"]


def test_mixed_sources_and_compiled(tmp_path, manifest):
    files = {k: v for k, v in _compiled(tmp_path, "armv6m").items() if k != "smgwfw/app.mpy"}
    files["smgwfw/app.py"] = _sources()["smgwfw/app.py"]
    res = check_hello_files(manifest, files)
    assert res.ok, res.summary()


def test_hex_digests_and_garbage(manifest):
    files = {k: v.hex() for k, v in _sources().items()}
    assert check_hello_files(manifest, files).ok
    files["smgwfw/link.py"] = "not a digest"
    res = check_hello_files(manifest, files)
    assert res.mismatched == ["smgwfw/link.py"]


def test_frozen_firmware_by_ident(manifest):
    fid = firmware_id(REPO)
    res = check_hello_files(manifest, {}, ident=fid.ident)
    assert res.ok and res.variant == "frozen" and res.ident_match
    res = check_hello_files(manifest, {}, ident="SMGW-FWID:0.1.0:" + "ab" * 32)
    assert not res.ok and res.ident_match is False and "identification" in res.summary()
    res = check_hello_files(manifest, {})
    assert not res.ok and res.variant is None and "smgwfw/link.py" in res.missing
    assert check_ident(manifest, fid.ident.encode())
    assert not check_ident(manifest, "nonsense")


def test_result_is_json_serialisable(manifest):
    d = check_hello_files(manifest, _sources(), ident=firmware_id(REPO).ident).to_dict()
    again = json.loads(json.dumps(d))
    assert again["ok"] is True and again["variant"] == "source"
    assert set(again) >= {"ok", "release", "version", "variant", "variants", "matched",
                          "unknown", "missing", "mismatched", "ignored", "not_reported",
                          "ident", "ident_match", "summary"}
