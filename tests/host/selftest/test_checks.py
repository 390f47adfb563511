"""The checks of the gateway's own state: firmware, database, log chain, time, link, disk."""

from __future__ import annotations

import sqlite3
from collections import namedtuple
from types import SimpleNamespace

import pytest

from smgw.firmware.manifest import check_hello_files, load_manifest
from smgw.opstate import Cause
from smgw.selftest.checks import (Check, LinkCheck, check_database, check_disk,
                                  check_firmware, check_link, check_log_chain, check_time)
from smgw.store.db import Store


# ============================================================================ firmware

@pytest.fixture(scope="module")
def release():
    return load_manifest()


def test_firmware_matching_the_release_passes(release):
    files = {name: bytes.fromhex(h) for name, h in release["files"].items()}
    res = check_hello_files(release, files)
    for given in (res, res.to_dict()):  # ManifestCheck or FirmwareLink.fw_integrity
        c = check_firmware(given)
        assert c.ok and c.code == "ST-FW-HASH" and c.data["variant"] == "source", c.detail


def test_firmware_with_a_changed_file_fails(release):
    files = {name: bytes.fromhex(h) for name, h in release["files"].items()}
    victim = sorted(files)[0]
    files[victim] = bytes(32)
    c = check_firmware(check_hello_files(release, files))
    assert not c.ok and c.code == "ST-FW-HASH" and c.cause == Cause.FIRMWARE_INTEGRITY
    assert c.data["mismatched"] == [victim]
    assert victim in c.detail and c.severity == "severe"


def test_firmware_not_checkable():
    c = check_firmware(None)
    assert not c.ok and c.code == "ST-FW-NONE" and c.cause == Cause.COMPONENT_FAILED
    assert c.severity == "recoverable"
    c = check_firmware({"ok": False, "error": "release.json does not exist"})
    assert not c.ok and c.cause == Cause.SOFTWARE_INTEGRITY and "release.json" in c.detail


# ============================================================================ database

def test_database_check_on_a_real_store(tmp_path):
    store = Store.open(tmp_path / "smgw.db")
    try:
        c = check_database(store)
        assert c.ok and c.code == "ST-DB"
    finally:
        store.close()


def test_database_check_fails_on_a_damaged_file(tmp_path):
    path = tmp_path / "smgw.db"
    Store.open(path).close()
    with sqlite3.connect(path) as db:  # an index's page: the store does not read it at open
        page = db.execute("SELECT max(rootpage) FROM sqlite_master WHERE type = 'index'"
                          ).fetchone()[0]
        size = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    raw = bytearray(path.read_bytes())
    raw[(page - 1) * size:page * size] = b"\xa5" * size
    path.write_bytes(bytes(raw))
    store = Store.open(path)
    try:
        c = check_database(store)
    finally:
        store.close()
    assert not c.ok and c.code == "ST-DB" and c.cause == Cause.DB_INTEGRITY
    assert "btreeInitPage" in c.detail and c.severity == "severe"


@pytest.mark.parametrize("rows,ok", [(["ok"], True), (["row 3 missing from index x"], False),
                                     ([], False), (["ok", "extra"], False)])
def test_database_results(rows, ok):
    assert check_database(SimpleNamespace(integrity_check=lambda: rows)).ok is ok


def test_database_check_that_raises_is_a_failure():
    def boom():
        raise OSError("disk I/O error")
    c = check_database(SimpleNamespace(integrity_check=boom))
    assert not c.ok and "disk I/O error" in c.detail


# ============================================================================ log chain

VerifyResult = namedtuple("VerifyResult", "ok problems")


def test_log_chain():
    assert check_log_chain(lambda: VerifyResult(True, [])).ok
    c = check_log_chain(lambda: VerifyResult(False, [f"entry {i}: bad signature"
                                                     for i in range(8)]))
    assert not c.ok and c.code == "ST-LOG-CHAIN" and c.cause == Cause.LOG_INTEGRITY
    assert "entry 0" in c.detail and "(+3 more)" in c.detail
    assert not check_log_chain(lambda: VerifyResult(True, ["entry 9 missing"])).ok
    assert not check_log_chain(lambda: VerifyResult(False, [])).ok

    def boom():
        raise ValueError("truncated file")
    c = check_log_chain(boom)
    assert not c.ok and "truncated file" in c.detail


# ============================================================================ time

def test_time():
    assert check_time(True).ok
    assert check_time(lambda: True).ok
    c = check_time(False, "no sync for 37 h")
    assert not c.ok and c.code == "ST-TIME" and c.cause == Cause.TIME_INVALID
    assert c.detail == "no sync for 37 h" and c.severity == "recoverable"


# ============================================================================ link

def test_link():
    assert check_link(True, {"dropped": 0}).ok
    c = check_link(False)
    assert not c.ok and c.code == "ST-LINK" and c.cause == Cause.COMPONENT_FAILED
    c = check_link(True, {"dropped": 5}, dropped_before=2)
    assert not c.ok and c.code == "ST-LINK-DROP" and c.cause is None
    assert "3 record(s)" in c.detail and c.severity == "recoverable"
    assert check_link(True, {"dropped": 5}, dropped_before=5).ok


def test_link_check_counts_new_drops_per_firmware_boot():
    st = {"link": "up", "firmware": {"boot": 1}, "firmware_status": {"counters": {"dropped": 4}}}
    lc = LinkCheck(lambda: st)
    assert lc().code == "ST-LINK-DROP"  # 4 dropped since this boot, never seen
    assert lc().ok  # nothing new
    st["firmware_status"]["counters"]["dropped"] = 6
    assert not lc().ok
    st["firmware"]["boot"] = 2  # the firmware restarted: its counters start at 0
    st["firmware_status"]["counters"]["dropped"] = 0
    assert lc().ok
    st["link"] = "sync"
    assert lc().code == "ST-LINK"
    st.update(link="up", firmware=None, firmware_status=None)
    assert lc().ok  # up, no status yet


# ============================================================================ disk

Usage = namedtuple("Usage", "total used free")


def test_disk(tmp_path):
    assert check_disk(tmp_path).ok  # no limits
    mib = 1024 * 1024
    fake = lambda p: Usage(1000 * mib, 950 * mib, 50 * mib)  # noqa: E731
    assert check_disk(tmp_path, 40 * mib, 0.04, usage=fake).ok
    c = check_disk(tmp_path, min_free_bytes=100 * mib, usage=fake)
    assert not c.ok and c.code == "ST-DISK" and c.cause == Cause.STORE_FULL
    assert "50 MiB free of 1000 MiB (5.0%)" in c.detail
    assert not check_disk(tmp_path, min_free_fraction=0.10, usage=fake).ok
    assert not check_disk(tmp_path / "missing").ok  # disk_usage raises: a failure


# ============================================================================ Check

def test_check_round_trip():
    c = Check("ST-DB", False, "page 7", Cause.DB_INTEGRITY, 1.23456, {"rows": 1})
    d = c.to_dict()
    assert d == {"code": "ST-DB", "ok": False, "detail": "page 7", "cause": "database-integrity",
                 "severity": "severe", "ms": 1.235, "data": {"rows": 1}}
    back = Check.from_dict(d)
    assert (back.code, back.ok, back.cause, back.data) == (c.code, c.ok, c.cause, c.data)
    assert Check("ST-LINK-DROP", False).severity == "recoverable"
