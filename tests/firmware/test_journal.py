"""The firmware's durable outbox: survives reopening (a reset), cuts a torn tail, keeps its
stream id, never reuses a record id, and drops nothing silently when full."""

import os

import pytest

from smgwfw.journal import FileJournal, JournalFull, RamJournal, State

nonces = iter(range(1000, 100000))


def nonce():
    return next(nonces)


def put(j, payload):
    rid = j.next_rid()
    j.append(payload, rid)
    return rid


def drain(j):
    out = []
    while (e := j.next_unfed()) is not None:
        out.append(e)
        j.fed()
    return out


@pytest.mark.parametrize("kind", ["file", "ram"])
def test_fifo_ack_and_capacity(tmp_path, kind):
    j = FileJournal(str(tmp_path / "o.bin"), 100, nonce) if kind == "file" else RamJournal(100, 7)
    assert [put(j, bytes([i]) * 10) for i in range(1, 6)] == [1, 2, 3, 4, 5]
    assert [rid for rid, _ in drain(j)] == [1, 2, 3, 4, 5]
    j.ack(3)
    assert j.pending() == 2 and j.used() == 20
    for _ in range(8):
        put(j, b"x" * 10)
    with pytest.raises(JournalFull):
        put(j, b"y" * 10)
    with pytest.raises(ValueError):
        j.append(b"z", 999)


def test_reopen_resends_unacked_and_never_reuses_rids(tmp_path):
    p = str(tmp_path / "o.bin")
    j = FileJournal(p, 10_000, nonce)
    sid = j.stream
    for i in range(10):
        put(j, b"m%d" % i)
    j.ack(4)
    j2 = FileJournal(p, 10_000, nonce)
    assert j2.stream == sid
    assert [rid for rid, _ in drain(j2)] == [5, 6, 7, 8, 9, 10]
    assert drain(FileJournal(p, 10_000, nonce))[0] == (5, b"m4")
    j2.ack(10)
    assert not os.path.exists(p)  # all acknowledged: the file starts afresh
    j3 = FileJournal(p, 10_000, nonce)
    assert put(j3, b"next") == 11


def test_torn_tail_is_cut_and_reported(tmp_path):
    p = str(tmp_path / "o.bin")
    j = FileJournal(p, 10_000, nonce)
    for i in range(3):
        put(j, b"payload-%d" % i)
    size = os.path.getsize(p)
    with open(p, "ab") as f:
        f.write(b"\x00\x20\x00\x00")  # half a header: power lost mid-append
    j2 = FileJournal(p, 10_000, nonce)
    assert j2.truncated_bytes == 4 and os.path.getsize(p) == size
    assert [rid for rid, _ in drain(j2)] == [1, 2, 3]
    # a corrupted entry in the middle ends the journal there
    data = bytearray(open(p, "rb").read())
    data[12 + 10 + 3] ^= 0xFF  # inside entry 2's payload
    open(p, "wb").write(data)
    j3 = FileJournal(p, 10_000, nonce)
    assert [rid for rid, _ in drain(j3)] == [1]
    assert put(j3, b"again") == 2  # the cut entries' rids were never acknowledged by anyone


def test_lost_stream_file_means_a_new_stream(tmp_path):
    p = str(tmp_path / "o.bin")
    j = FileJournal(p, 10_000, nonce)
    put(j, b"a")
    os.remove(p + ".sid")
    j2 = FileJournal(p, 10_000, nonce)
    assert j2.stream != j.stream and j2.pending() == 0  # old entries belong to the old stream


def test_state_survives_and_rejects_corruption(tmp_path):
    p = str(tmp_path / "s.bin")
    s = State(p)
    s.v["boot"] = 5
    s.v["host_cursor"] = 77
    s.save()
    assert State(p).v["host_cursor"] == 77
    data = bytearray(open(p, "rb").read())
    data[0] ^= 1
    open(p, "wb").write(data)
    assert State(p).v["boot"] == 0


def test_journal_with_a_constant_backlog_stays_bounded(tmp_path, monkeypatch):
    import smgwfw.journal as jm

    monkeypatch.setattr(jm, "COMPACT_BYTES", 2000)
    p = str(tmp_path / "o.bin")
    j = FileJournal(p, 1_000_000, nonce)
    pending = []
    for i in range(1, 400):
        pending.append(put(j, b"%05d" % i + b"x" * 95))
        if len(pending) > 5:  # the host always lags five entries behind
            j.ack(pending.pop(0))
        assert os.path.getsize(p) < 2000 + 6 * 110
    j2 = FileJournal(p, 1_000_000, nonce)  # reopening after compaction finds exactly the backlog
    assert [rid for rid, _ in drain(j2)] == pending
    assert drain(FileJournal(p, 1_000_000, nonce))[-1][1].startswith(b"00399")


def test_last_payload_is_the_newest_pending_entry(tmp_path):
    j = FileJournal(str(tmp_path / "o.bin"), 10_000, nonce)
    assert j.last_payload() is None
    put(j, b"a")
    put(j, b"bb")
    assert j.last_payload() == b"bb"
    r = RamJournal(100, 1)
    put(r, b"c")
    assert r.last_payload() == b"c"
