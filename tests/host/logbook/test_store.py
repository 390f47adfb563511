"""The logbooks database (smgw.logbook.store): real SQLite files, real ECDSA signatures."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter

import pytest

from smgw.logbook import catalogue
from smgw.logbook.chain import Signer
from smgw.logbook.store import (
    CalibrationLogFull,
    ConsumerLogFull,
    LogbookError,
    Logbooks,
    LogIntegrityError,
    LogLimits,
)

GW = "EPPC0012345678"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DAY = 86_400_000


class Clock:
    def __init__(self, t: int = T0):
        self.t = t

    def __call__(self) -> int:
        return self.t


@pytest.fixture(scope="module")
def signer():
    return Signer.generate(GW)


@pytest.fixture(scope="module")
def other():
    return Signer.generate("OTHER")


@pytest.fixture
def db(tmp_path):
    return tmp_path / "data" / "logs.db"


def open_lb(db, signer, limits=None, **kw) -> Logbooks:
    return Logbooks.open(db, GW, signer, limits or LogLimits(), **kw)


def add(lb, n=1, logs=("calibration", "system"), consumers=(), event_id=10067, level="INFO",
        ts=None, step=1000, **kw):
    out = []
    for i in range(n):
        out.append(lb.append(event_id, level, "successful", {"n": i}, f"Eintrag {i}", logs,
                             consumers, ts_ms=None if ts is None else ts + i * step, **kw))
    return out


def everything(lb, log, consumer=None, **kw):
    entries, after = [], None
    while True:
        page = lb.query(log, consumer=consumer, after_seq=after, limit=7, **kw)
        entries += page.entries
        if page.next_after is None:
            return entries
        after = page.next_after


def events_in(lb, log, consumer=None):
    return [e.event_id for e in everything(lb, log, consumer)]


def raw(db) -> sqlite3.Connection:
    """The file as an attacker sees it: plain SQL, the write-once triggers dropped."""
    conn = sqlite3.connect(str(db), isolation_level=None)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
        conn.execute(f"DROP TRIGGER {name}")
    return conn


def tamper(db, *sql):
    conn = raw(db)
    for s in sql:
        conn.execute(*s) if isinstance(s, tuple) else conn.execute(s)
    conn.close()


def problems(result):
    return [(p.seq, p.code) for p in result.problems]


class Lead:
    """What the gateway does with on_event: format through the catalogue, append where the
    catalogue routes it, never fail because a log is full."""

    def __init__(self):
        self.lb = None
        self.seen = []

    def __call__(self, event_id, level, params):
        self.seen.append((event_id, level, params))
        ev = catalogue.event(event_id)
        consumers = [params["consumer"]] if "consumer" in params else []
        self.lb.append(event_id, level, "successful", params, ev.format(**params), ev.logs,
                       consumers, skip_full=True)


# ---------------------------------------------------------------- open


def test_open_creates_wal_database_with_full_sync(db, signer):
    with open_lb(db, signer) as lb:
        assert db.exists()
        conn = lb._c()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert lb.verify_calibration().ok  # the empty log has its signed head
        assert lb.head().seq == 0


def test_a_directory_path_means_logs_db_in_it(tmp_path, signer):
    with Logbooks.open(tmp_path, GW, signer) as lb:
        assert lb.path == tmp_path / "logs.db"


def test_file_belongs_to_one_gateway(db, signer):
    open_lb(db, signer).close()
    with pytest.raises(LogbookError, match="belong to gateway 'EPPC0012345678'"):
        Logbooks.open(db, "EOTHER", signer)


def test_not_a_database_is_an_integrity_error(tmp_path, signer):
    bad = tmp_path / "logs.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LogIntegrityError):
        Logbooks.open(bad, GW, signer, check_integrity=True)


def test_limits_are_checked():
    with pytest.raises(ValueError, match="458"):
        LogLimits(consumer_retention_days=365)
    with pytest.raises(ValueError):
        LogLimits(calibration_entries=0)
    with pytest.raises(ValueError):
        LogLimits(store_full_pct=25)


# ---------------------------------------------------------------- append


def test_append_writes_each_log_in_one_go_with_own_seqs(db, signer):
    clock = Clock()
    with open_lb(db, signer, clock=clock) as lb:
        r = lb.append(10067, "INFO", "successful", {"comm_profile": "ntp", "n": 3}, "Text",
                      ["calibration", "system", "consumer"], ["lv-1", "lv-2"])
        assert r == [("calibration", 1), ("system", 1), ("consumer:lv-1", 1),
                     ("consumer:lv-2", 1)]
        assert lb.append(10176, "INFO", "successful", {}, "Ping", ["system"]) == [("system", 2)]
        e = lb.query("calibration").entries[0]
        assert (e.seq, e.ts_ms, e.time_valid, e.event_id, e.level, e.status, e.params, e.text) \
            == (1, T0, True, 10067, "INFO", "successful", {"comm_profile": "ntp", "n": 3},
                "Text")
        assert len(e.hash) == 32 and e.sig and e.consumer is None
        s = lb.query("system").entries[1]
        assert s.hash is None and s.sig is None
        c = lb.query("consumer", consumer="lv-2").entries[0]
        assert c.consumer == "lv-2" and c.text == "Text"
        assert lb.consumers() == ["lv-1", "lv-2"]
        # consumers only count with "consumer"; an unknown log is an error
        assert lb.append(1, "INFO", "failed", {}, "x", ["system"], ["lv-9"]) == [("system", 3)]
        with pytest.raises(ValueError, match="unknown log"):
            lb.append(1, "INFO", "successful", {}, "x", ["eich"])
        with pytest.raises(ValueError, match="no log"):
            lb.append(1, "INFO", "successful", {}, "x", [])


@pytest.mark.parametrize("kw, match", [
    ({"level": "DEBUG"}, "level"),
    ({"status": "ok"}, "status"),
    ({"params": {"a": 1.5}}, "str or int"),
    ({"params": {"a": True}}, "str or int"),
    ({"params": {"bad key": 1}}, "identifier"),
    ({"params": {"a": 2 ** 60}}, "too large"),
    ({"params": {"a": "\ud800"}}, "Unicode"),
    ({"text": 5}, "text"),
    ({"event_id": -1}, "event_id"),
])
def test_append_rejects_bad_entries(db, signer, kw, match):
    args = {"event_id": 10067, "level": "INFO", "status": "successful", "params": {},
            "text": "x", "logs": ["calibration", "system"]}
    args.update(kw)
    with open_lb(db, signer) as lb:
        with pytest.raises(ValueError, match=match):
            lb.append(**args)
        assert lb.usage()["calibration"]["entries"] == 0


def test_entries_survive_close_and_reopen(db, signer):
    with open_lb(db, signer) as lb:
        add(lb, 5, logs=("calibration", "system", "consumer"), consumers=["lv"])
    with open_lb(db, signer) as lb:
        assert [e.seq for e in everything(lb, "calibration")] == [1, 2, 3, 4, 5]
        assert lb.append(1, "INFO", "successful", {}, "x", ["calibration", "system"]) == \
            [("calibration", 6), ("system", 6)]
        assert lb.verify_calibration().ok
        assert len(everything(lb, "consumer", "lv")) == 5


def test_an_entry_is_on_disk_when_append_returns(tmp_path, signer):
    """A process killed (SIGKILL) right after append() returned has lost nothing."""
    signer.save(tmp_path / "keys")
    script = textwrap.dedent(f"""
        import sys
        from smgw.logbook.chain import Signer
        from smgw.logbook.store import Logbooks
        lb = Logbooks.open({str(tmp_path / 'logs.db')!r}, {GW!r},
                           Signer.load({str(tmp_path / 'keys')!r}))
        i = 0
        while True:
            i += 1
            seq = lb.append(10067, "INFO", "successful", {{"n": i}}, "x",
                            ["calibration", "system"])[0][1]
            print(seq, flush=True)
    """)
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    acked = [int(p.stdout.readline()) for _ in range(30)]
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    with Logbooks.open(tmp_path / "logs.db", GW, signer) as lb:
        seqs = [e.seq for e in everything(lb, "calibration")]
        assert seqs[:30] == acked
        assert lb.verify_calibration().ok


# ---------------------------------------------------------------- query


def test_keyset_paging_returns_everything_once_in_order(db, signer):
    with open_lb(db, signer) as lb:
        add(lb, 250, logs=("system",), ts=T0)
        page1 = lb.query("system", limit=100)
        assert [e.seq for e in page1.entries] == list(range(1, 101))
        assert page1.next_after == 100
        page3 = lb.query("system", limit=100, after_seq=200)
        assert [e.seq for e in page3.entries] == list(range(201, 251))
        assert page3.next_after is None
        assert [e.seq for e in everything(lb, "system")] == list(range(1, 251))
        exact = lb.query("system", limit=50, after_seq=200)
        assert len(exact.entries) == 50 and exact.next_after is None


def test_time_range_and_level_filters(db, signer):
    with open_lb(db, signer) as lb:
        for i in range(100):
            lb.append(10067, ("INFO", "WARNING", "ERROR")[i % 3], "successful", {}, f"{i}",
                      ["calibration"], ts_ms=T0 + i * 60_000)
        got = everything(lb, "calibration", since_ms=T0 + 10 * 60_000, until_ms=T0 + 20 * 60_000)
        assert [e.seq for e in got] == list(range(11, 21))  # since inclusive, until exclusive
        warn = everything(lb, "calibration", level="WARNING")
        assert [e.seq for e in warn] == list(range(2, 101, 3))
        both = everything(lb, "calibration", level="ERROR", since_ms=T0 + 50 * 60_000)
        assert all(e.level == "ERROR" and e.ts_ms >= T0 + 50 * 60_000 for e in both)
        assert len(both) == 17
        assert lb.query("calibration", since_ms=T0 + 10**9).entries == []
        with pytest.raises(ValueError):
            lb.query("calibration", level="LOUD")
        with pytest.raises(ValueError):
            lb.query("calibration", limit=0)


def test_pages_follow_the_time_when_the_clock_was_set_back(db, signer):
    with open_lb(db, signer) as lb:
        stamps = [10, 20, 30, 40, 15, 25, 35, 50, 50, 50]
        for s in stamps:
            lb.append(10067, "INFO", "successful", {}, "x", ["system"], ts_ms=T0 + s * 1000)
        got = []
        after = None
        while True:
            page = lb.query("system", since_ms=T0 + 12_000, limit=2, after_seq=after)
            got += [(e.ts_ms - T0) // 1000 for e in page.entries]
            if page.next_after is None:
                break
            after = page.next_after
        assert got == [15, 20, 25, 30, 35, 40, 50, 50, 50]


def test_consumers_never_see_each_others_entries(db, signer):
    with open_lb(db, signer) as lb:
        for i in range(30):
            lb.append(10165, "INFO", "successful", {"n": i}, "x", ["consumer"],
                      ["lv-a" if i % 3 else "lv-b"])
        a = everything(lb, "consumer", "lv-a")
        b = everything(lb, "consumer", "lv-b")
        assert len(a) == 20 and len(b) == 10
        assert {e.consumer for e in a} == {"lv-a"} and {e.consumer for e in b} == {"lv-b"}
        assert [e.seq for e in b] == list(range(1, 11))
        # a cursor from one consumer's pages does not leak into the other's
        assert all(e.consumer == "lv-b" for e in lb.query("consumer", consumer="lv-b",
                                                          after_seq=15).entries)
        assert everything(lb, "consumer", "lv-nobody") == []
        with pytest.raises(ValueError):
            lb.query("consumer")
        with pytest.raises(ValueError):
            lb.query("system", consumer="lv-a")


# ---------------------------------------------------------------- tampering in the database


@pytest.fixture
def ten(db, signer):
    """A calibration log of 10 entries, closed."""
    with open_lb(db, signer) as lb:
        add(lb, 10, logs=("calibration",), ts=T0)
    return db


def test_edited_entry_is_detected(ten, signer):
    tamper(ten, "UPDATE calibration_log SET text = 'harmlos' WHERE seq = 5")
    with open_lb(ten, signer) as lb:
        assert problems(lb.verify_calibration()) == [(5, "hash")]


def test_edited_timestamp_is_detected(ten, signer):
    tamper(ten, "UPDATE calibration_log SET ts_ms = ts_ms + 3600000 WHERE seq = 2")
    with open_lb(ten, signer) as lb:
        assert problems(lb.verify_calibration()) == [(2, "hash")]


def test_deleted_entry_is_detected(ten, signer):
    tamper(ten, "DELETE FROM calibration_log WHERE seq = 5")
    with open_lb(ten, signer) as lb:
        r = lb.verify_calibration()
        assert problems(r) == [(6, "gap")]
        assert "entry 5 missing" in str(r.problems[0])


def test_reordered_entries_are_detected(ten, signer):
    tamper(ten, "UPDATE calibration_log SET seq = -4 WHERE seq = 4",
           "UPDATE calibration_log SET seq = 4 WHERE seq = 5",
           "UPDATE calibration_log SET seq = 5 WHERE seq = -4")
    with open_lb(ten, signer) as lb:
        assert set(problems(lb.verify_calibration())) >= {(4, "hash"), (5, "hash")}


def test_cut_tail_is_detected_and_stops_calibration_appends(ten, signer):
    tamper(ten, "DELETE FROM calibration_log WHERE seq > 7")
    with open_lb(ten, signer) as lb:
        r = lb.verify_calibration()
        assert problems(r) == [(None, "truncated")]
        assert "ends at entry 7" in r.problems[0].text
        with pytest.raises(LogIntegrityError, match="does not end at its signed head"):
            lb.append(10067, "INFO", "successful", {}, "x", ["calibration", "system"])
        # the rest of the gateway's logging goes on
        assert lb.append(10067, "INFO", "successful", {}, "x", ["system"]) == [("system", 1)]


def test_bad_signature_is_detected(ten, signer, other):
    conn = raw(ten)
    h = conn.execute("SELECT hash FROM calibration_log WHERE seq = 3").fetchone()[0]
    conn.execute("UPDATE calibration_log SET sig = ? WHERE seq = 3", (other.sign(h),))
    conn.close()
    with open_lb(ten, signer) as lb:
        assert problems(lb.verify_calibration()) == [(3, "signature")]
        # the quick check (chain up to the signed head) does not look at entry signatures
        assert lb.verify_calibration(signatures=False).ok


def test_log_checked_with_another_key(ten, other):
    with open_lb(ten, other) as lb:
        assert problems(lb.verify_calibration()) == [(None, "key")]
        with pytest.raises(LogIntegrityError, match="not signed by this gateway"):
            lb.append(10067, "INFO", "successful", {}, "x", ["calibration"])


def test_removed_head_is_detected(ten, signer):
    tamper(ten, "DELETE FROM meta WHERE key = 'calibration_head'")
    with open_lb(ten, signer) as lb:
        assert problems(lb.verify_calibration()) == [(None, "head")]
        with pytest.raises(LogIntegrityError, match="no signed head"):
            lb.append(10067, "INFO", "successful", {}, "x", ["calibration"])


def test_truncated_file_is_detected(db, signer):
    with open_lb(db, signer) as lb:
        add(lb, 400, logs=("calibration",), ts=T0)
    size = db.stat().st_size  # closing checkpointed the WAL into the file
    with open(db, "r+b") as f:
        f.truncate(size // 2)
    with pytest.raises(LogIntegrityError):
        Logbooks.open(db, GW, signer, check_integrity=True)
    with pytest.raises(LogbookError):
        with open_lb(db, signer) as lb:
            lb.verify_calibration()


def test_entries_are_write_once_in_sql_too(db, signer):
    with open_lb(db, signer) as lb:
        add(lb, 2, logs=("calibration", "system", "consumer"), consumers=["lv"])
    conn = sqlite3.connect(str(db))
    for sql in ("UPDATE calibration_log SET text = 'x'", "DELETE FROM calibration_log",
                "UPDATE system_log SET text = 'x'", "UPDATE consumer_log SET text = 'x'"):
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(sql)
    conn.close()


# ---------------------------------------------------------------- capacity: calibration log


def test_calibration_thresholds_written_by_the_store(db, signer):
    limits = LogLimits(calibration_entries=20)
    with open_lb(db, signer, limits) as lb:
        add(lb, 1, logs=("consumer",), consumers=["lv"])
        with pytest.raises(CalibrationLogFull):
            for _ in range(40):
                add(lb, 1, logs=("calibration",))
        cal = events_in(lb, "calibration")
        c = Counter(cal)
        assert c[10235] == 2 and c[10097] == 1 and c[10098] == 1
        assert cal[-1] == 10098 and len(cal) == 21  # the full message takes the one reserve
        pct = [e.params["percent"] for e in everything(lb, "calibration") if e.event_id == 10235]
        assert pct == [50, 25]
        fatal = [e for e in everything(lb, "calibration") if e.event_id == 10098][0]
        assert fatal.level == "FATAL" and "voll" in fatal.text
        # the technician sees them in the system log as well
        assert Counter(events_in(lb, "system"))[10098] == 1
        # measuring stops: every consumer learns it in their log
        assert events_in(lb, "consumer", "lv") == [10067, 10098]
        assert lb.usage()["calibration"]["full"] is True
        # never overwritten: still full after a restart, no message repeated
    with open_lb(db, signer, limits) as lb:
        with pytest.raises(CalibrationLogFull, match="never overwritten"):
            add(lb, 1, logs=("calibration", "system"))
        assert add(lb, 1, logs=("calibration", "system"), skip_full=True)[0] == [("system", 5)]
        assert Counter(events_in(lb, "calibration"))[10098] == 1
        assert lb.verify_calibration().ok


def test_calibration_thresholds_through_on_event(db, signer):
    seen = []
    limits = LogLimits(calibration_entries=20)
    with open_lb(db, signer, limits, on_event=lambda *a: seen.append(a)) as lb:
        for _ in range(20):
            add(lb, 1, logs=("calibration",))
        assert seen == [(10235, "INFO", {"percent": 50}), (10235, "INFO", {"percent": 25}),
                        (10097, "WARNING", {}), (10098, "FATAL", {})]
        with pytest.raises(CalibrationLogFull):
            add(lb, 1, logs=("calibration",))
        assert len(seen) == 4
        # nothing of the store's own in the logs: that is the receiver's job
        assert set(events_in(lb, "calibration")) == {10067}


def test_lead_style_receiver_logs_the_full_message_in_the_full_log(db, signer):
    lead = Lead()
    limits = LogLimits(calibration_entries=10)
    lead.lb = lb = open_lb(db, signer, limits, on_event=lead)
    try:
        with pytest.raises(CalibrationLogFull):
            for _ in range(20):
                add(lb, 1, logs=("calibration", "system"))
        cal = events_in(lb, "calibration")
        assert cal[-1] == 10098 and Counter(cal)[10098] == 1
        assert [s[0] for s in lead.seen] == [10235, 10235, 10097, 10098]
        assert lb.verify_calibration().ok
    finally:
        lb.close()


# ---------------------------------------------------------------- capacity: system log


def test_system_log_is_a_ring_with_a_notice(db, signer):
    seen = []
    limits = LogLimits(system_entries=10)
    with open_lb(db, signer, limits, on_event=lambda *a: seen.append(a)) as lb:
        add(lb, 35, logs=("system",), event_id=10176, ts=T0)
        entries = everything(lb, "system")
        assert [e.seq for e in entries] == list(range(26, 36))  # the newest ten
        assert [s for s in seen if s[0] == 10254] == [
            (10254, "INFO", {"percent": 50}), (10254, "INFO", {"percent": 25}),
            (10254, "INFO", {"percent": 10})]
        # 10239 when the ring first overwrites, then after each further full turn
        assert [s for s in seen if s[0] == 10239] == [(10239, "INFO", {})] * 3
        u = lb.usage()["system"]
        assert u["entries"] == 10 and u["overwritten"] == 25 and u["first_seq"] == 26


def test_system_ring_notice_written_by_the_store(db, signer):
    with open_lb(db, signer, LogLimits(system_entries=10)) as lb:
        add(lb, 14, logs=("system",), event_id=10176)
        ids = events_in(lb, "system")
        assert len(ids) == 10 and 10239 in ids
        seqs = [e.seq for e in everything(lb, "system")]
        assert seqs == list(range(seqs[0], seqs[0] + 10))  # no holes: the oldest went


# ---------------------------------------------------------------- capacity: consumer logs


def test_consumer_thresholds_and_exhaustion(db, signer):
    seen = []
    clock = Clock()
    limits = LogLimits(consumer_entries=20)
    with open_lb(db, signer, limits, clock=clock, on_event=lambda *a: seen.append(a)) as lb:
        add(lb, 20, logs=("consumer",), consumers=["lv"], event_id=10165)
        assert seen == [
            (10236, "INFO", {"consumer": "lv", "percent": 50}),
            (10236, "INFO", {"consumer": "lv", "percent": 25}),
            (10237, "WARNING", {"consumer": "lv"}),
            (10238, "ERROR", {"consumer": "lv"}),  # full, and nothing is old enough to go
        ]
        with pytest.raises(ConsumerLogFull) as ei:
            add(lb, 1, logs=("consumer", "system"), consumers=["lv"])
        assert ei.value.consumer == "lv"
        assert lb.usage()["system"]["entries"] == 0  # all or nothing
        assert add(lb, 1, logs=("consumer", "system"), consumers=["lv"],
                   skip_full=True)[0] == [("system", 1)]
        assert len(everything(lb, "consumer", "lv")) == 20  # nothing deleted early
        assert lb.usage()["consumers"]["lv"]["full"] is True
        assert len(seen) == 4

        # 460 days later the old entries may go: the log takes entries again
        clock.t += 461 * DAY
        assert add(lb, 1, logs=("consumer",), consumers=["lv"])[0] == [("consumer:lv", 21)]
        assert seen[4:] == [(10253, "INFO", {"consumer": "lv"}),
                            (10255, "INFO", {"consumer": "lv", "percent": 95})]
        assert [e.seq for e in everything(lb, "consumer", "lv")] == [21]
        assert lb.usage()["consumers"]["lv"]["deleted"] == 20
        # re-armed: filling up again crosses every threshold again, once
        add(lb, 19, logs=("consumer",), consumers=["lv"])
        assert [s[0] for s in seen[6:]] == [10236, 10236, 10237, 10238]


def test_consumer_entries_younger_than_retention_are_kept(db, signer):
    clock = Clock()
    limits = LogLimits(consumer_entries=20)
    with open_lb(db, signer, limits, clock=clock) as lb:
        add(lb, 10, logs=("consumer",), consumers=["lv"], ts=T0 - 500 * DAY, step=1)
        add(lb, 10, logs=("consumer",), consumers=["lv"], ts=T0 - 100 * DAY, step=1)
        entries = everything(lb, "consumer", "lv")
        ids = [e.event_id for e in entries]
        # the log filled up: what was older than 460 days went, all younger entries stayed
        assert all(e.ts_ms >= T0 - 100 * DAY for e in entries)
        assert [e.text for e in entries if e.event_id == 10067] == \
            [f"Eintrag {i}" for i in range(10)]
        assert Counter(ids)[10253] == 1 and Counter(ids)[10238] == 0
        assert Counter(ids)[10255] == 1  # back above the warning level
        back = [e for e in entries if e.event_id == 10255][0]
        assert back.params["consumer"] == "lv" and "wieder" in back.text
        seqs = [e.seq for e in entries]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # only the oldest went
        # the consumer's messages are in the system log too (for the technician)
        assert 10253 in events_in(lb, "system")


def test_without_valid_time_nothing_is_deleted(db, signer):
    seen = []
    with open_lb(db, signer, LogLimits(consumer_entries=5), clock=Clock(),
                 on_event=lambda *a: seen.append(a)) as lb:
        add(lb, 4, logs=("consumer",), consumers=["lv"], ts=T0 - 600 * DAY)
        # full while the legal time is invalid: nothing may be judged old
        lb.append(1, "INFO", "successful", {}, "x", ["consumer"], ["lv"], time_valid=False)
        assert seen[-1] == (10238, "ERROR", {"consumer": "lv"})
        with pytest.raises(ConsumerLogFull):
            lb.append(1, "INFO", "successful", {}, "x", ["consumer"], ["lv"], time_valid=False)
        # with valid time the four expired entries go; the one without valid time stays
        assert lb.append(1, "INFO", "successful", {}, "y", ["consumer"], ["lv"]) == \
            [("consumer:lv", 6)]
        assert [e.seq for e in everything(lb, "consumer", "lv")] == [5, 6]


def test_entry_without_valid_time_goes_only_with_a_later_expired_one(db, signer):
    clock = Clock()
    seen = []
    with open_lb(db, signer, LogLimits(consumer_entries=4), clock=clock,
                 on_event=lambda *a: seen.append(a)) as lb:
        lb.append(1, "INFO", "successful", {}, "a", ["consumer"], ["lv"], ts_ms=0,
                  time_valid=False)
        lb.append(1, "INFO", "successful", {}, "b", ["consumer"], ["lv"], ts_ms=T0 - 10 * DAY)
        lb.append(1, "INFO", "successful", {}, "c", ["consumer"], ["lv"], ts_ms=T0 - 5 * DAY)
        lb.append(1, "INFO", "successful", {}, "d", ["consumer"], ["lv"], ts_ms=T0)
        # "a" looks 56 years old, but its time says nothing: it is kept like "b"
        assert [e.text for e in everything(lb, "consumer", "lv")] == ["a", "b", "c", "d"]
        assert seen[-1] == (10238, "ERROR", {"consumer": "lv"})
        # once "b" is past the retention, "a" goes with it
        clock.t += 451 * DAY
        assert lb.append(1, "INFO", "successful", {}, "e", ["consumer"], ["lv"]) == \
            [("consumer:lv", 5)]
        assert [e.text for e in everything(lb, "consumer", "lv")] == ["c", "d", "e"]


def test_housekeeping_frees_an_exhausted_consumer_log(db, signer):
    seen = []
    clock = Clock()
    limits = LogLimits(consumer_entries=10)
    with open_lb(db, signer, limits, clock=clock, on_event=lambda *a: seen.append(a)) as lb:
        add(lb, 10, logs=("consumer",), consumers=["lv", "lv-2"], ts=T0 - 400 * DAY, step=DAY)
        add(lb, 3, logs=("consumer",), consumers=["lv-3"])
        assert [s[0] for s in seen].count(10238) == 2
        assert lb.housekeeping() == {}  # nothing expired yet
        clock.t += 65 * DAY  # the five oldest are 460 days old now
        assert lb.housekeeping() == {"lv": 5, "lv-2": 5}
        assert [s for s in seen if s[0] in (10253, 10255)] == [
            (10253, "INFO", {"consumer": "lv"}),
            (10255, "INFO", {"consumer": "lv", "percent": 50}),
            (10253, "INFO", {"consumer": "lv-2"}),
            (10255, "INFO", {"consumer": "lv-2", "percent": 50})]
        assert lb.usage()["consumers"]["lv"]["full"] is False
        assert len(everything(lb, "consumer", "lv-3")) == 3  # not touched


# ---------------------------------------------------------------- capacity: the whole store


def test_store_thresholds_each_once(tmp_path, signer):
    db = tmp_path / "logs.db"
    with open_lb(db, signer) as lb:
        used0 = lb.store_usage()[0]
    seen = []
    limits = LogLimits(store_bytes=max(4 * used0, used0 + 400_000))
    with open_lb(db, signer, limits, on_event=lambda *a: seen.append(a)) as lb:
        big = "x" * 3900
        for _ in range(2000):
            lb.append(10176, "INFO", "successful", {}, big, ["system"])
            if any(s[0] == 10259 for s in seen):
                break
        for _ in range(5):  # nothing repeats while the store stays that full
            lb.append(10176, "INFO", "successful", {}, big, ["system"])
        assert seen == [(10256, "INFO", {"percent": 50}), (10257, "WARNING", {}),
                        (10258, "WARNING", {}), (10259, "ERROR", {})]
        assert lb.usage()["store_remaining_pct"] < 2


def test_store_full_message_written_by_the_store(tmp_path, signer):
    db = tmp_path / "logs.db"
    with open_lb(db, signer) as lb:
        used0 = lb.store_usage()[0]
    with open_lb(db, signer, LogLimits(store_bytes=used0 + 100_000)) as lb:
        for _ in range(500):
            lb.append(10176, "INFO", "successful", {}, "y" * 3900, ["system"])
            if 10259 in events_in(lb, "system"):
                break
        assert {10257, 10258, 10259} <= set(events_in(lb, "system"))
        assert 10259 in events_in(lb, "calibration")  # it stops measuring: metrological


# ---------------------------------------------------------------- delivery of messages


def test_undelivered_messages_are_delivered_after_a_restart(db, signer):
    def broken(*a):
        raise RuntimeError("receiver not ready")

    limits = LogLimits(calibration_entries=4)
    with open_lb(db, signer, limits, on_event=broken) as lb:
        add(lb, 3, logs=("calibration",))  # 25 % left: below 50 %
    seen = []
    with open_lb(db, signer, limits, on_event=lambda *a: seen.append(a)) as lb:
        lb.deliver_pending()
        assert seen == [(10235, "INFO", {"percent": 50})]
        lb.deliver_pending()
        assert len(seen) == 1


def test_usage_reports_every_log(db, signer):
    with open_lb(db, signer, LogLimits(calibration_entries=100, consumer_entries=40)) as lb:
        add(lb, 10, logs=("calibration", "system", "consumer"), consumers=["lv"])
        u = lb.usage()
        assert u["calibration"]["entries"] == 10 and u["calibration"]["fill_pct"] == 10.0
        assert u["consumers"]["lv"]["entries"] == 10 and u["consumers"]["lv"]["fill_pct"] == 25.0
        assert u["system"]["capacity"] == LogLimits().system_entries
        assert u["file_bytes"] > 0 and 0 < u["store_remaining_pct"] <= 100
        json.dumps(u)
