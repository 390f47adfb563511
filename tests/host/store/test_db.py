import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cbor2
import pytest

from smgw.store import (
    MIGRATIONS,
    Migration,
    Store,
    StoreError,
    StoreFullError,
    StoreIntegrityError,
)
from smgw.store.migrations import check_migrations, split_sql


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "smgw.db"


@pytest.fixture
def store(db_path: Path):
    s = Store.open(db_path)
    yield s
    s.close()


def put(store: Store, stream: int, rid: int, body: bytes = b"x", **kw) -> bool:
    return store.put_record(
        stream, rid, kw.get("src", 0), kw.get("tick_ms"), kw.get("captured_ms"),
        kw.get("received_ms", 1000), body, kw.get("meta"),
    )


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(str(path))


# ---------------------------------------------------------------- open / pragmas / migrations


def test_open_creates_file_and_sets_pragmas(store, db_path):
    assert db_path.exists()
    conn = store._conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] > 0
    assert conn.isolation_level is None


def test_schema_v1_tables(store, db_path):
    store.close()
    with raw(db_path) as c:
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        cols = {r[1] for r in c.execute("PRAGMA table_info(records)")}
    assert {"schema_migrations", "link_cursor", "records", "host_outbox", "meta",
            "fw_hello", "linktest_rx"} <= tables
    assert cols == {"id", "stream", "rid", "src", "tick_ms", "captured_ms", "received_ms",
                    "body", "meta"}


def test_migrations_apply_once_and_are_recorded(db_path):
    s = Store.open(db_path)
    applied = s.applied_migrations()
    assert [(v, n) for v, n, _ in applied] == [(m.version, m.name) for m in MIGRATIONS]
    assert s.schema_version() == MIGRATIONS[-1].version
    s.close()
    s = Store.open(db_path)
    assert s.applied_migrations() == applied  # same applied_ms: nothing re-run
    s.close()


def test_new_migration_applied_on_reopen(db_path):
    Store.open(db_path).close()
    calls = []

    def step(conn):
        calls.append(1)
        conn.execute("CREATE TABLE extra(x INTEGER)")
        conn.execute("INSERT INTO extra VALUES (42)")

    migs = [*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "extra", step)]
    s = Store.open(db_path, migrations=migs)
    assert calls == [1]
    assert s.schema_version() == len(MIGRATIONS) + 1
    assert s._conn.execute("SELECT x FROM extra").fetchone()[0] == 42
    s.close()
    Store.open(db_path, migrations=migs).close()
    assert calls == [1]


def test_failing_migration_rolls_back_completely(db_path):
    Store.open(db_path).close()
    migs = [*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "broken",
                                   "CREATE TABLE half(x INTEGER);\nINSERT INTO nope VALUES (1);")]
    with pytest.raises(StoreError, match="broken"):
        Store.open(db_path, migrations=migs)
    s = Store.open(db_path)
    assert s.schema_version() == len(MIGRATIONS)
    assert s._conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE name='half'").fetchone()[0] == 0
    s.close()


def test_newer_schema_is_refused(db_path):
    Store.open(db_path).close()
    with raw(db_path) as c:
        c.execute("INSERT INTO schema_migrations VALUES (999, 'from the future', 0)")
    c.close()
    with pytest.raises(StoreError,
                       match=rf"schema version 999 is newer .* supports \({len(MIGRATIONS)}\)"):
        Store.open(db_path)


def test_migration_list_must_be_contiguous():
    check_migrations(MIGRATIONS)
    with pytest.raises(ValueError):
        check_migrations([Migration(1, "a", ""), Migration(3, "c", "")])
    with pytest.raises(ValueError):
        check_migrations([Migration(2, "a", "")])


def test_split_sql():
    sql = "-- c;\nCREATE TABLE a(x TEXT DEFAULT 'a;b');\n\nINSERT INTO a VALUES(';'); SELECT 1"
    assert split_sql(sql) == [
        "-- c;\nCREATE TABLE a(x TEXT DEFAULT 'a;b');",
        "INSERT INTO a VALUES(';');",
        "SELECT 1",
    ]


def test_closed_store_raises(db_path):
    s = Store.open(db_path)
    s.close()
    s.close()  # idempotent
    assert s.closed
    with pytest.raises(StoreError, match="closed"):
        s.cursor(1)


def test_context_manager(db_path):
    with Store.open(db_path) as s:
        assert put(s, 1, 1)
    assert s.closed


# ---------------------------------------------------------------- records and cursors


def test_put_record_dedup_and_cursor_with_gaps(store):
    assert store.cursor(7) == 0
    assert put(store, 7, 1, b"a")
    assert put(store, 7, 5, b"b")  # gap is fine
    assert store.cursor(7) == 5
    assert not put(store, 7, 5, b"dup")  # exact duplicate
    assert not put(store, 7, 3, b"late")  # below cursor (inside the gap): duplicate too
    assert not put(store, 7, 1, b"old")
    assert put(store, 7, 6, b"c")
    assert store.count_records(7) == 3
    assert [r.body for r in store.iter_records(7)] == [b"a", b"b", b"c"]
    assert [r.rid for r in store.iter_records(7)] == [1, 5, 6]


def test_streams_are_independent(store):
    assert put(store, 1, 10)
    assert put(store, 2, 3)
    assert put(store, 2, 4)
    assert store.cursors() == {1: 10, 2: 4}
    assert store.count_records() == 3
    assert store.count_records(1) == 1
    assert store.count_records(99) == 0


def test_record_fields_roundtrip(store):
    assert store.put_record(3, 1, 17, 123456, 1_700_000_000_000, 1_700_000_000_500,
                            b"\x00\x01body", b"\xa0")
    assert store.put_record(3, 2, 17, None, None, 5, bytearray(b"z"), None)
    r1, r2 = store.iter_records()
    assert (r1.stream, r1.rid, r1.src, r1.tick_ms, r1.captured_ms, r1.received_ms,
            r1.body, r1.meta) == (3, 1, 17, 123456, 1_700_000_000_000, 1_700_000_000_500,
                                  b"\x00\x01body", b"\xa0")
    assert r2.tick_ms is None and r2.captured_ms is None and r2.meta is None
    assert r2.body == b"z" and isinstance(r2.body, bytes)


def test_iter_records_paging(store):
    for i in range(1, 26):
        assert put(store, 1 + i % 2, i, bytes([i]))
    seen = []
    after = 0
    while True:
        page = store.iter_records(after_id=after, limit=7)
        if not page:
            break
        seen.extend(r.rid for r in page)
        after = page[-1].id
    assert seen == list(range(1, 26))
    assert [r.rid for r in store.iter_records(stream=2, limit=3)] == [1, 3, 5]


def test_invalid_rid_rejected(store):
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError):
            put(store, 1, bad)
    assert store.count_records() == 0


def test_failed_put_writes_nothing(store):
    assert put(store, 1, 1)
    with pytest.raises(StoreError):
        store.put_record(1, 2, 0, None, None, None, b"x", None)  # received_ms NOT NULL
    assert store.cursor(1) == 1
    assert store.count_records() == 1
    assert put(store, 1, 2)  # the rid was not consumed


def test_advance_cursor_never_moves_backwards(store):
    assert store.advance_cursor(4, 10)
    assert not store.advance_cursor(4, 3)
    assert not store.advance_cursor(4, 10)
    assert store.cursor(4) == 10
    assert not put(store, 4, 9)
    assert put(store, 4, 11)
    assert store.advance_cursor(4, 20)
    assert store.cursor(4) == 20


def test_reopen_keeps_data(db_path):
    s = Store.open(db_path)
    assert put(s, 1, 1, b"one")
    assert put(s, 1, 2, b"two")
    s.outbox_append(b"cmd")
    s.meta_set("k", b"v")
    s.close()
    s = Store.open(db_path, check_integrity=True)
    assert s.cursor(1) == 2
    assert not put(s, 1, 2)  # dedup survives restart
    assert [r.body for r in s.iter_records()] == [b"one", b"two"]
    assert s.outbox_pending() == [(1, b"cmd")]
    assert s.meta_get("k") == b"v"
    s.close()


# ---------------------------------------------------------------- linktest


def test_linktest_counters_and_dedup(store):
    assert store.linktest_stats(9) == {"stream": 9, "received": 0, "last_n": 0,
                                       "out_of_order": 0, "bad_data": 0}
    assert store.put_linktest(9, 1, 100, True)  # first is never out of order
    assert store.put_linktest(9, 2, 101, True)
    assert store.put_linktest(9, 3, 103, False)  # skipped 102 + bad data
    assert not store.put_linktest(9, 3, 103, True)  # duplicate rid: not counted
    assert store.put_linktest(9, 7, 104, True)
    assert store.linktest_stats(9) == {"stream": 9, "received": 4, "last_n": 104,
                                       "out_of_order": 1, "bad_data": 1}
    assert store.cursor(9) == 7
    assert store.count_records() == 0
    assert not put(store, 9, 5)  # the shared cursor dedups records too


# ---------------------------------------------------------------- outbox / meta / hello


def test_outbox_append_pending_ack(store):
    rids = [store.outbox_append(bytes([i])) for i in range(5)]
    assert rids == sorted(rids) and len(set(rids)) == 5
    assert store.outbox_pending() == [(r, bytes([i])) for i, r in enumerate(rids)]
    assert store.outbox_pending(limit=2) == [(rids[0], b"\x00"), (rids[1], b"\x01")]
    assert store.outbox_ack_upto(rids[2]) == 3
    assert store.outbox_pending() == [(rids[3], b"\x03"), (rids[4], b"\x04")]
    assert store.outbox_ack_upto(rids[2]) == 0
    assert store.outbox_ack_upto(rids[4]) == 2
    assert store.outbox_pending() == []
    # rids are never reused, even after everything was acknowledged (AUTOINCREMENT)
    assert store.outbox_append(b"new") > rids[-1]


def test_outbox_rids_not_reused_after_reopen(db_path):
    s = Store.open(db_path)
    r = s.outbox_append(b"a")
    s.outbox_ack_upto(r)
    s.close()
    s = Store.open(db_path)
    assert s.outbox_append(b"b") == r + 1
    s.close()


def test_meta(store):
    assert store.meta_get("nope") is None
    assert store.meta_get("nope", b"d") == b"d"
    store.meta_set("a", b"\x01")
    store.meta_set("a", b"\x02")
    assert store.meta_get("a") == b"\x02"


def test_host_stream_id_stable_across_reopen(db_path, tmp_path):
    s = Store.open(db_path)
    sid = s.host_stream_id()
    assert 0 < sid < 2**31
    assert s.host_stream_id() == sid
    s.close()
    s = Store.open(db_path)
    assert s.host_stream_id() == sid
    s.close()
    ids = {sid}
    for i in range(4):
        o = Store.open(tmp_path / f"o{i}.db")
        ids.add(o.host_stream_id())
        o.close()
    assert len(ids) == 5  # each new database gets its own random id


def test_record_hello(store):
    assert store.last_hello() is None
    files = {"main.py": bytes(32), "lib/link.mpy": b"\x11" * 32}
    h1 = store.record_hello(1000, 5, "0.1.0", "rp2-pico", 3, files)
    h2 = store.record_hello(2000, 6, "0.1.1", "rp2-pico", 4, None)
    assert h2 > h1
    last = store.last_hello()
    assert (last.seen_ms, last.stream, last.fw_version, last.boot_counter, last.files) == (
        2000, 6, "0.1.1", 4, None)
    blob = store._conn.execute("SELECT files FROM fw_hello WHERE id=?", (h1,)).fetchone()[0]
    assert cbor2.loads(blob) == files


# ---------------------------------------------------------------- crash safety

CHILD = textwrap.dedent(
    """
    import sys
    from smgw.store import Store
    s = Store.open(sys.argv[1])
    rid = 0
    out = sys.stdout
    while True:
        rid += 1 + (rid % 3 == 0)  # strictly increasing with gaps
        if s.put_record(1, rid, 0, rid, None, rid, b"payload-%d" % rid * 8, None):
            out.write("%d\\n" % rid)
            out.flush()
        if rid % 5 == 0:
            s.outbox_append(b"o%d" % rid)
    """
)


@pytest.mark.parametrize("kill_after", [1, 57, 300])
def test_sigkill_mid_stream_loses_nothing_acknowledged(tmp_path, kill_after):
    path = tmp_path / "crash.db"
    errfile = tmp_path / "child.err"
    with open(errfile, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path)],
            stdout=subprocess.PIPE, stderr=err, text=True,
        )
    acked: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(acked) < kill_after:
            line = proc.stdout.readline()
            assert line, f"child died early: {errfile.read_text()}"
            acked.append(int(line))
            assert time.monotonic() < deadline
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        rest = proc.stdout.read()  # lines flushed before the kill are still in the pipe
        proc.stdout.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    acked += [int(x) for x in rest.split()]
    assert (path.parent / "crash.db-wal").exists()  # killed without a clean close

    s = Store.open(path, check_integrity=True)
    try:
        assert s.integrity_check() == ["ok"]
        stored = [r.rid for r in s.iter_records(stream=1, limit=10**6)]
        assert set(acked) <= set(stored)
        # at most the one in-flight put may have committed without being reported
        assert len(stored) - len(acked) <= 1
        assert stored == sorted(stored)
        assert s.cursor(1) == stored[-1]
        # and the stream continues correctly
        assert not put(s, 1, stored[-1])
        assert put(s, 1, stored[-1] + 1)
    finally:
        s.close()


# ---------------------------------------------------------------- disk full


def test_disk_full_raises_and_store_stays_consistent(db_path):
    s = Store.open(db_path)
    assert put(s, 1, 1, b"first")
    pages = s._conn.execute("PRAGMA page_count").fetchone()[0]
    s._conn.execute(f"PRAGMA max_page_count = {pages + 2}")
    big = os.urandom(3000)
    rid = 1
    with pytest.raises(StoreFullError, match="full"):
        for _ in range(100):
            rid += 1
            assert put(s, 1, rid, big)
    failed_rid = rid
    assert not s._conn.in_transaction  # rolled back
    # the failed record was not half-written: no row, cursor not advanced
    stored = [r.rid for r in s.iter_records(limit=1000)]
    assert failed_rid not in stored
    assert s.cursor(1) == stored[-1] == failed_rid - 1
    assert s.count_records() == len(stored)
    assert s.integrity_check() == ["ok"]
    # outbox writes fail cleanly too
    with pytest.raises(StoreFullError):
        s.outbox_append(big * 3)
    assert s.outbox_pending() == []
    # reads keep working; once space is back, writes resume with the same rid
    assert s.meta_get("x") is None
    s._conn.execute("PRAGMA max_page_count = 1000000")
    assert put(s, 1, failed_rid, big)
    s.close()
    s = Store.open(db_path, check_integrity=True)
    assert s.cursor(1) == failed_rid
    s.close()


def test_store_full_error_is_store_error():
    assert issubclass(StoreFullError, StoreError)
    assert issubclass(StoreIntegrityError, StoreError)


# ---------------------------------------------------------------- corruption


def _make_db(path: Path, n: int = 400) -> None:
    s = Store.open(path)
    for i in range(1, n + 1):
        assert put(s, 1, i, os.urandom(200))
    s.close()  # last connection: WAL is checkpointed into the main file
    assert not Path(str(path) + "-wal").exists() or Path(str(path) + "-wal").stat().st_size == 0


def test_quick_check_detects_corrupted_pages(tmp_path):
    good = tmp_path / "good.db"
    _make_db(good)
    bad = tmp_path / "bad.db"
    shutil.copy(good, bad)
    page_size = 4096
    data = bytearray(bad.read_bytes())
    assert len(data) > 6 * page_size
    # smash b-tree page headers of a few pages in the middle of the file
    for page in (3, 4, 5):
        off = page * page_size
        data[off:off + 64] = bytes((b ^ 0xA5) for b in data[off:off + 64])
    bad.write_bytes(bytes(data))
    with pytest.raises(StoreIntegrityError):
        Store.open(bad, check_integrity=True)
    # the original is fine
    Store.open(good, check_integrity=True).close()


def test_garbage_file_is_refused(tmp_path):
    bad = tmp_path / "garbage.db"
    bad.write_bytes(os.urandom(8192))
    with pytest.raises(StoreIntegrityError):
        Store.open(bad)
    with pytest.raises(StoreIntegrityError):
        Store.open(bad, check_integrity=True)


def test_outbox_extend_is_one_transaction_with_its_meta(tmp_path):
    store = Store.open(tmp_path / "s.db")
    got = store.outbox_extend([b"a", b"b", b"c"], meta={"linktest_tx_n": 3})
    assert [p for _, p in got] == [b"a", b"b", b"c"]
    assert [r for r, _ in got] == sorted(r for r, _ in got)
    assert store.outbox_pending() == got
    assert int(store.meta_get("linktest_tx_n")) == 3
    # a failure part-way writes nothing at all
    with pytest.raises(Exception):
        store.outbox_extend([b"d", "not bytes"], meta={"linktest_tx_n": 9})  # type: ignore[list-item]
    assert store.outbox_pending() == got and int(store.meta_get("linktest_tx_n")) == 3
    store.close()


def test_readings_are_stored_with_their_record_in_one_transaction(tmp_path):
    from smgw.store import ReadingRow

    store = Store.open(tmp_path / "s.db")
    assert store.schema_version() == __import__("smgw.store.migrations", fromlist=["x"]).latest_version()
    mid = store.add_meter("0a01454d4800009f5a1d", "lmn-wired", "sml", ["1-0:1.8.0"], 2)
    with pytest.raises(StoreError):
        store.add_meter("0a01454d4800009f5a1d", "lmn-wired", "sml", [], 2)
    rows = [ReadingRow(mid, "1-0:1.8.0", 55432991, -1, "Wh", 0x182),
            ReadingRow(mid, "1-0:16.7.0", -2**63, 0, "W", None, time_valid=False)]
    assert store.put_record(7, 1, 1, 10, 1000, 2000, b"frame", None, rows)
    assert store.count_readings(mid) == 2
    assert ("1-0:1.8.0", "55432991", -1, "Wh", 0x182, 1000) in store.latest_readings(mid)
    # a duplicate record writes no readings either
    assert not store.put_record(7, 1, 1, 10, 1000, 2000, b"frame", None, rows)
    assert store.count_readings() == 2
    # a failing reading (unknown meter: foreign key) rolls the record and the cursor back
    bad = [ReadingRow(999, "1-0:1.8.0", 1, 0, "Wh", 0)]
    with pytest.raises(StoreError):
        store.put_record(7, 2, 1, 10, 1000, 2000, b"frame2", None, bad)
    assert store.cursor(7) == 1 and store.count_records() == 1
    assert store.remove_meter("0a01454d4800009f5a1d") and not store.meters()
    assert store.add_meter("0a01454d4800009f5a1d", "lmn-wired", "sml", [], None) == mid
    store.close()


def test_pairing_replaces_the_key_and_pins_the_meter_certificate(tmp_path):
    store = Store.open(tmp_path / "s.db")
    store.add_meter("0a01", "lmn-wired", "sml-tls", [], 15, key=b"k" * 16)
    (mt,) = store.meters()
    assert mt.key == b"k" * 16 and mt.lmn_cert is None
    store.set_meter_security("0a01", b"o" * 16, b"DER")
    store.close()
    store = Store.open(tmp_path / "s.db")  # durable
    (mt,) = store.meters()
    assert mt.key == b"o" * 16 and mt.lmn_cert == b"DER"


def test_values_in_a_corrected_time_range_are_flagged_not_dropped(tmp_path):
    from smgw.store import ReadingRow

    store = Store.open(tmp_path / "s.db")
    mid = store.add_meter("0a01", "lmn-wired", "sml", [])
    for rid, t in enumerate((1000, 2000, 3000, 4000), start=1):
        store.put_record(1, rid, 1, None, t, t + 5, b"x", None,
                         [ReadingRow(mid, "1-0:1.8.0", rid, -1, "Wh", 0)])
    assert store.mark_time_invalid(2000, 3000) == 2
    assert store.mark_time_invalid(2000, 3000) == 0  # already flagged
    assert store.count_readings(time_valid=False) == 2
    assert store.count_readings(mid, time_valid=True) == 2 and store.count_readings() == 4
