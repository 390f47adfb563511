"""The host software manifest: seal an installation, detect every change after that."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature

from smgw.opstate import Cause
from smgw.selftest import software as sw


@pytest.fixture
def install(tmp_path):
    """A copy of a small package and a release manifest, sealed with a fresh key."""
    pkg = tmp_path / "smgw"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text('VERSION = "0.1.0"\n')
    (pkg / "service.py").write_text("def run():\n    return 1\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "mod.py").write_text("X = 1\n")
    (pkg / "sub" / "__pycache__").mkdir()
    (pkg / "sub" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0" * 8)
    (pkg / "notes.txt").write_text("not code")
    release = tmp_path / "release.json"
    release.write_text(json.dumps({"format": 1, "firmware_id": "SMGW-FW 0.1.0 abcd"}))
    data = tmp_path / "data"
    data.mkdir()
    key = sw.EcdsaKey.generate()
    path = sw.seal(data, key, pkg=pkg, release_manifest=release, clock=lambda: 1000.0)
    return {"pkg": pkg, "release": release, "data": data, "key": key, "path": path}


def verify(inst, verifier=None):
    return sw.verify(inst["data"], verifier or inst["key"].public(), pkg=inst["pkg"],
                     release_manifest=inst["release"])


def test_sealed_installation_verifies(install):
    doc = json.loads(install["path"].read_text())
    m = doc["manifest"]
    assert sorted(m["files"]) == ["smgw/__init__.py", "smgw/service.py", "smgw/sub/__init__.py",
                                  "smgw/sub/mod.py"]  # .py only, no caches, no other files
    assert m["firmware_release"]["firmware_id"] == "SMGW-FW 0.1.0 abcd"
    assert m["sealed_ms"] == 1_000_000
    assert sw.is_sealed(install["data"])
    c = verify(install)
    assert c.ok and c.code == "ST-SW" and c.cause is None, c.detail
    # non-code files and caches may change
    (install["pkg"] / "notes.txt").write_text("changed")
    (install["pkg"] / "sub" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\1")
    assert verify(install).ok


def test_changed_file_is_named(install):
    (install["pkg"] / "service.py").write_text("def run():\n    return 2\n")
    c = verify(install)
    assert not c.ok and c.code == "ST-SW" and c.cause == Cause.SOFTWARE_INTEGRITY
    assert c.data == {"changed": ["smgw/service.py"]}
    assert "1 changed (smgw/service.py)" in c.detail
    assert c.severity == "severe"


def test_removed_and_added_files_are_named(install):
    (install["pkg"] / "sub" / "mod.py").unlink()
    (install["pkg"] / "sub" / "backdoor.py").write_text("import os\n")
    c = verify(install)
    assert not c.ok
    assert c.data == {"missing": ["smgw/sub/mod.py"], "extra": ["smgw/sub/backdoor.py"]}


def test_other_firmware_release_is_detected(install):
    install["release"].write_text(json.dumps({"format": 1, "firmware_id": "SMGW-FW 0.2.0 ef"}))
    c = verify(install)
    assert not c.ok and c.code == "ST-SW"
    assert c.data["firmware_release"]["now"]["firmware_id"] == "SMGW-FW 0.2.0 ef"
    install["release"].unlink()
    assert verify(install).data["firmware_release"]["now"] is None


def test_edited_manifest_fails_the_signature(install):
    doc = json.loads(install["path"].read_text())
    (install["pkg"] / "service.py").write_text("evil = True\n")
    doc["manifest"]["files"]["smgw/service.py"] = sw.file_hashes(install["pkg"])[
        "smgw/service.py"]
    install["path"].write_text(json.dumps(doc))
    c = verify(install)
    assert not c.ok and c.code == "ST-SW-SIG" and c.cause == Cause.SOFTWARE_INTEGRITY


def test_signature_of_another_key_fails(install):
    c = verify(install, sw.EcdsaKey.generate().public())
    assert not c.ok and c.code == "ST-SW-SIG"


@pytest.mark.parametrize("result", ["raise", "false"])
def test_duck_typed_verifier(install, result):
    class V:
        def verify(self, sig, data):
            if result == "raise":
                raise InvalidSignature()
            return False
    assert verify(install, V()).code == "ST-SW-SIG"

    class Ok:
        def verify(self, sig, data):
            return True
    assert verify(install, Ok()).ok


@pytest.mark.parametrize("content", [b"", b"{}", b'{"manifest": {}, "signature": "zz"}',
                                     b'{"manifest": {"format": 2}, "signature": ""}'])
def test_damaged_manifest_fails(install, content):
    install["path"].write_bytes(content)
    c = verify(install)
    assert not c.ok and c.code == "ST-SW-SIG"


def test_missing_manifest_is_not_sealed(install):
    install["path"].unlink()
    assert not sw.is_sealed(install["data"])
    c = verify(install)
    assert not c.ok and c.code == "ST-SW-NOSEAL" and c.cause == Cause.SOFTWARE_INTEGRITY


def test_reseal_after_an_authorised_update(install):
    (install["pkg"] / "service.py").write_text("def run():\n    return 3\n")
    assert not verify(install).ok
    sw.seal(install["data"], install["key"], pkg=install["pkg"],
            release_manifest=install["release"])
    assert verify(install).ok


def test_public_key_cannot_sign():
    with pytest.raises(TypeError):
        sw.EcdsaKey.generate().public().sign(b"x")


def test_the_real_package_seals_and_verifies(tmp_path):
    # the installed smgw package and the checkout's firmware/release.json
    key = sw.EcdsaKey.generate()
    sw.seal(tmp_path, key)
    c = sw.verify(tmp_path, key)
    assert c.ok, c.detail
    m = json.loads((tmp_path / sw.MANIFEST_NAME).read_text())["manifest"]
    assert "smgw/selftest/software.py" in m["files"]
    assert m["firmware_release"]["firmware_id"].startswith("SMGW-FW")
    # a copy of the package with one changed byte is detected
    pkg = tmp_path / "copy" / "smgw"
    shutil.copytree(sw.package_dir(), pkg, ignore=shutil.ignore_patterns("__pycache__"))
    p = pkg / "opstate.py"
    p.write_bytes(p.read_bytes() + b"\n")
    c = sw.verify(tmp_path, key, pkg=pkg)
    assert not c.ok and c.data["changed"] == ["smgw/opstate.py"]
    assert Path(sw.package_dir()).name == "smgw"
