"""The outbox over a real SQLite store: idempotent adds, due order, durability across reopening,
joining the caller's transaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from smgw.store import Store
from smgw.wan.outbox import Outbox


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "smgw.db"


@pytest.fixture
def outbox(db_path: Path):
    store = Store.open(db_path)
    yield Outbox(store)
    store.close()


def add(ob: Outbox, mid: str, now: int = 1000, **kw) -> bool:
    return ob.add(mid, kw.get("profile", "taf1"), kw.get("comm", "emt1"), 0, 86_400_000,
                  kw.get("n", 3), kw.get("content", b"cms-" + mid.encode()), now,
                  conn=kw.get("conn"))


def test_add_is_idempotent_by_message_id(outbox: Outbox) -> None:
    assert add(outbox, "m1", content=b"first")
    assert not add(outbox, "m1", content=b"second")
    [d] = outbox.pending()
    assert d.message_id == "m1" and d.content == b"first"
    assert (d.attempts, d.next_attempt_ms, d.delivered_ms, d.created_ms) == (0, 1000, None, 1000)
    # a delivered message is not added again either
    outbox.delivered(d.id, 2000)
    assert not add(outbox, "m1")
    assert outbox.pending() == []


def test_bad_arguments_name_the_problem(outbox: Outbox) -> None:
    with pytest.raises(ValueError, match="message_id"):
        add(outbox, "bad id with spaces")
    with pytest.raises(ValueError, match="message_id"):
        add(outbox, "../etc/passwd")
    with pytest.raises(ValueError, match="content"):
        add(outbox, "m1", content=b"")


def test_due_orders_by_next_attempt_and_respects_limit(outbox: Outbox) -> None:
    for i, mid in enumerate(["a", "b", "c", "d"]):
        add(outbox, mid, now=1000 + i)
    a, b, c, d = outbox.pending()
    outbox.failed(a.id, 1100, "503", next_attempt_ms=5000)
    outbox.failed(c.id, 1100, "503", next_attempt_ms=3000)
    assert [x.message_id for x in outbox.due(1200)] == ["b", "d"]
    assert [x.message_id for x in outbox.due(4000)] == ["b", "d", "c"]
    assert [x.message_id for x in outbox.due(9000)] == ["b", "d", "c", "a"]
    assert [x.message_id for x in outbox.due(9000, limit=2)] == ["b", "d"]
    assert outbox.next_due_ms() == 1001
    outbox.delivered(b.id, 1300)
    outbox.delivered(d.id, 1300)
    assert [x.message_id for x in outbox.due(9000)] == ["c", "a"]
    assert outbox.next_due_ms() == 3000


def test_failed_counts_attempts_and_keeps_the_error(outbox: Outbox) -> None:
    add(outbox, "m1")
    [d] = outbox.pending()
    assert outbox.failed(d.id, 2000, "HTTP 503: busy", 7000) == 1
    assert outbox.failed(d.id, 8000, "x" * 2000, 20000) == 2
    got = outbox.get(d.id)
    assert got is not None
    assert got.attempts == 2 and got.next_attempt_ms == 20000 and len(got.last_error) == 500
    assert not got.failure_logged
    outbox.mark_failure_logged(d.id)
    assert outbox.get(d.id).failure_logged
    outbox.delivered(d.id, 30000)
    with pytest.raises(KeyError, match="already delivered"):
        outbox.failed(d.id, 31000, "late", 40000)


def test_survives_reopening_the_store_file(db_path: Path) -> None:
    store = Store.open(db_path)
    ob = Outbox(store)
    add(ob, "m1")
    add(ob, "m2")
    [m1, m2] = ob.pending()
    ob.failed(m1.id, 1500, "connection refused", 9000)
    ob.delivered(m2.id, 1600)
    store.close()

    store = Store.open(db_path)
    ob = Outbox(store)
    [d] = ob.pending()
    assert (d.message_id, d.attempts, d.last_error, d.next_attempt_ms) == \
        ("m1", 1, "connection refused", 9000)
    assert ob.by_message_id("m2").delivered_ms == 1600
    assert not add(ob, "m1") and not add(ob, "m2")
    store.close()


def test_add_joins_the_callers_transaction(outbox: Outbox) -> None:
    store = outbox.store
    with pytest.raises(RuntimeError):
        with store._write("test") as conn:
            assert add(outbox, "m1", conn=conn)
            raise RuntimeError("the caller fails after adding")
    assert outbox.pending() == []  # rolled back with the caller's transaction
    with store._write("test") as conn:
        assert add(outbox, "m1", conn=conn)
        assert not add(outbox, "m1", conn=conn)
    assert [d.message_id for d in outbox.pending()] == ["m1"]


def test_add_refuses_a_foreign_or_idle_connection(outbox: Outbox, tmp_path: Path) -> None:
    other = Store.open(tmp_path / "other.db")
    try:
        with other._write("test") as conn:
            with pytest.raises(ValueError, match="not a connection of this"):
                add(outbox, "m1", conn=conn)
    finally:
        other.close()
    with pytest.raises(ValueError, match="no open transaction"):
        add(outbox, "m1", conn=outbox.store._c())


def test_stats_retry_now_and_prune(outbox: Outbox) -> None:
    for mid in ("a", "b", "c"):
        add(outbox, mid)
    a, b, c = outbox.pending()
    outbox.failed(a.id, 1100, "503", 50_000)
    outbox.mark_failure_logged(a.id)
    outbox.delivered(b.id, 2000)
    assert outbox.stats() == {"pending": 2, "delivered": 1, "failing": 1, "failure_logged": 1,
                              "oldest_pending_ms": 1000}
    assert outbox.retry_now("emt1", now_ms=3000) == 2
    assert {d.message_id for d in outbox.due(3000)} == {"a", "c"}
    # pruning takes only delivered messages
    assert outbox.prune_delivered(10**12) == 1
    assert [d.message_id for d in outbox.pending()] == ["a", "c"]
    assert outbox.stats()["delivered"] == 0
