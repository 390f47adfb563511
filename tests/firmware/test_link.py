"""The link core, two endpoints joined by a simulated line: handshake, in-order exactly-once
delivery through noise, restarts of either side, and hostile input."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smgwfw import cbor
from smgwfw import frame as fr
from smgwfw import link as lk
from smgwfw import messages as m

from helpers import Line, Pair, Side, linktest_msg


def up_pair(**kw):
    p = Pair(Side("fw", 111, 1, **kw), Side("host", 222, 2, **kw))
    assert p.run_until(lambda: p.a.link.up and p.b.link.up, 5000)
    return p


def test_handshake_brings_both_sides_up_with_one_session():
    p = up_pair()
    assert p.a.link.counters["sessions"] == 1 == p.b.link.counters["sessions"]
    ups = [e for e in p.a.events if e[0] == lk.EV_UP]
    assert len(ups) == 1 and ups[0][1][lk.H_INFO] == {"r": "host"}
    assert p.a.link.peer_stream() == 222 and p.b.link.peer_stream() == 111


def feed(side, first, last, durable=True):
    n = first
    def more():
        nonlocal n
        while n <= last and side.link.can_send(200):
            side.link.send(linktest_msg(n), rid=n if durable else 0)
            n += 1
        return n > last
    return more


def test_exactly_once_in_order_through_a_noisy_line():
    p = Pair(Side("fw", 111, 1, rto_ms=40), Side("host", 222, 2, rto_ms=40),
             Line(seed=3, ber=0.0005, drop=0.0005), Line(seed=4, ber=0.0005, drop=0.0005))
    N = 1500
    fa, fb = feed(p.a, 1, N), feed(p.b, 1, N)
    assert p.run_until(lambda: (fa(), fb(), len(p.a.stored) == N and len(p.b.stored) == N)[-1],
                       400_000)
    assert [n for _, n in p.b.stored] == list(range(1, N + 1))
    assert [n for _, n in p.a.stored] == list(range(1, N + 1))
    assert p.a.link.counters["bad_crc"] + p.a.link.counters["bad_cobs"] > 0  # noise did bite
    assert p.a.link.counters["retransmits"] > 0
    # every durable message was acknowledged back to its sender, once
    assert sorted(p.a.acked) == list(range(1, N + 1))


def test_receiver_restart_with_persisted_cursor_gets_the_rest_exactly_once():
    p = up_pair()
    more = feed(p.a, 1, 300)
    p.run_until(lambda: (more(), len(p.b.stored) >= 120)[-1])
    stored_before = list(p.b.stored)
    cursor = p.b.link.cursors[111]  # what the host would have committed with its data
    assert cursor == stored_before[-1][0]
    # the host process dies; a new one starts from its store
    p.b = Side("host", 222, 99, cursors={111: cursor}, incarnation=5)
    assert p.run_until(lambda: (more(), len(p.b.stored) + len(stored_before) >= 300)[-1])
    got = [n for _, n in stored_before + p.b.stored]
    assert got == list(range(1, 301))


def test_sender_restart_resends_only_what_the_receiver_lacks():
    p = up_pair()
    more = feed(p.a, 1, 100)
    p.run_until(lambda: (more(), len(p.b.stored) >= 40)[-1])
    # the firmware resets: its journal still holds every message the host has not acknowledged,
    # including some the host already stored but whose ack was lost on the way
    unacked = [n for n in range(1, 101) if n not in p.a.acked]
    p.a = Side("fw", 111, 7, incarnation=2)
    for n in unacked:
        p.a.link.send(linktest_msg(n), rid=n)
    assert p.run_until(lambda: len(p.b.stored) >= 100 and not p.a.link.queued())
    assert [n for _, n in p.b.stored] == list(range(1, 101))
    assert p.b.link.counters["peer_restarts"] == 1
    assert any(e[0] == lk.EV_PEER_RESTART for e in p.b.events)


def test_new_sender_stream_is_not_confused_with_the_old_one():
    p = up_pair()
    more = feed(p.a, 1, 50)
    p.run_until(lambda: (more(), len(p.b.stored) >= 50)[-1])
    p.a = Side("fw", 333, 8, incarnation=3)  # flash wiped: new journal, new stream, rids from 1
    more = feed(p.a, 1, 20)
    assert p.run_until(lambda: (more(), len(p.b.stored) >= 70)[-1])
    assert [n for _, n in p.b.stored[50:]] == list(range(1, 21))


def test_unplugged_cable_times_out_and_resynchronises_without_loss():
    p = up_pair(dead_ms=500, keepalive_ms=100)
    more = feed(p.a, 1, 200)
    p.run_until(lambda: (more(), len(p.b.stored) >= 50)[-1])
    p.ab.cut = p.ba.cut = True
    p.run_until(lambda: not p.a.link.up and not p.b.link.up, 5000)
    p.ab.cut = p.ba.cut = False
    assert p.run_until(lambda: (more(), len(p.b.stored) >= 200)[-1])
    assert [n for _, n in p.b.stored] == list(range(1, 201))
    assert any(e[0] == lk.EV_DOWN for e in p.a.events)


def test_volatile_messages_are_dropped_for_a_restarted_peer_but_durable_kept():
    p = up_pair()
    p.ab.cut = True
    p.a.link.send(linktest_msg(1), rid=0)
    p.a.link.send(linktest_msg(2), rid=1)
    p.run_until(lambda: False, 300)
    p.ab.cut = False
    p.b = Side("host", 222, 50, incarnation=9)
    assert p.run_until(lambda: len(p.b.stored) >= 1)
    p.run_until(lambda: False, 500)
    assert [n for _, n in p.b.stored] == [2]


def test_queue_full_is_refused_and_counted_never_silent():
    s = Side("fw", 1, 1, queue_len=3)
    assert all(s.link.send(linktest_msg(i)) for i in range(3))
    assert s.link.send(linktest_msg(4)) is False
    assert s.link.counters["queue_full"] == 1
    with pytest.raises(ValueError):
        s.link.send({0: 7, 3: bytes(2000)})


def test_bad_messages_are_answered_with_error_and_counted():
    p = up_pair()
    # a peer that speaks a valid frame with a non-message payload, then an unknown type
    p.a.link.send(cbor.dumps([1, 2, 3]))
    p.a.link.send(b"\xff\xfe")
    p.run_until(lambda: p.b.link.counters["bad_messages"] >= 2, 2000)
    errs = [e[1][0] for e in p.b.events if e[0] == lk.EV_ERROR]
    assert m.ERR_NOT_A_MESSAGE in errs and m.ERR_BAD_CBOR in errs
    # the error answers reach the sender as ERROR messages; both links stay up
    p.run_until(lambda: False, 200)
    assert p.a.link.up and p.b.link.up


def test_hello_of_the_same_role_or_other_protocol_is_refused():
    a = Side("fw", 1, 1)
    b = Side("fw", 2, 2)
    p = Pair(a, b)
    p.run_until(lambda: False, 1500)
    assert not a.link.up and a.link.counters["bad_messages"] > 0


def test_stale_session_frames_are_ignored():
    p = up_pair()
    enc = fr.Encoder(1024)
    stale = bytes(enc.encode(fr.KIND_DATA, (p.b.link._sess + 1) & 0xFFFF, 0, 0,
                             cbor.dumps(linktest_msg(99))))
    p.b.link.receive(stale, p.now)
    p.b.pump_events()
    assert p.b.link.counters["stale_session"] == 1 and not p.b.stored


@given(st.lists(st.binary(max_size=300), max_size=20))
@settings(max_examples=300, deadline=None)
def test_fuzz_link_receive_never_raises(chunks):
    p = up_pair()
    for c in chunks:
        p.b.link.receive(c, p.now)
        p.b.pump_events()
        p.step()
    assert p.b.link.counters["frames_rx"] >= 0


@given(st.binary(min_size=1, max_size=200))
@settings(max_examples=300, deadline=None)
def test_fuzz_valid_frames_with_hostile_payloads(payload):
    p = up_pair()
    enc = fr.Encoder(1024)
    for kind in (fr.KIND_HELLO, fr.KIND_DATA):
        f = bytes(enc.encode(kind, p.b.link._sess, p.b.link._rx_next, 0, payload))
        p.b.link.receive(f, p.now)
        p.b.pump_events()
    # whatever it was, the endpoint is still usable
    assert p.run_until(lambda: p.a.link.up and p.b.link.up, 20_000)


def test_messages_larger_than_the_peer_accepts_are_refused_not_resent_forever():
    p = Pair(Side("fw", 111, 1, max_payload=2048), Side("host", 222, 2, max_payload=256))
    # queued before the peer's limit is known
    p.a.link.send(linktest_msg(1, size=1000), rid=1)
    p.a.link.send(linktest_msg(2, size=10), rid=2)
    assert p.run_until(lambda: len(p.b.stored) >= 1, 5000)
    p.run_until(lambda: False, 300)
    assert [n for _, n in p.b.stored] == [2]
    assert p.a.link.counters["too_large_for_peer"] == 1
    assert any(e[0] == lk.EV_ERROR for e in p.a.events)
    # once the limit is known, send() says no at once
    assert p.a.link.send(linktest_msg(3, size=1000), rid=3) is False


def test_ack_arriving_right_after_a_go_back_is_not_lost():
    p = up_pair()
    for n in range(1, 5):
        p.a.link.send(linktest_msg(n), rid=n)
    frames = []
    while (f := p.a.link.poll(p.now)) is not None:
        frames.append(bytes(f))
    for f in frames:
        p.b.link.receive(f, p.now)
    p.b.pump_events()
    acks = []
    p.now += 10
    while (f := p.b.link.poll(p.now)) is not None:
        acks.append(bytes(f))
    # the sender times out and goes back before the acknowledgement arrives
    p.now += 1000
    p.a.link.tick(p.now)
    assert p.a.link._tx_sent == 0
    for f in acks:
        p.a.link.receive(f, p.now)
    p.a.pump_events()
    assert sorted(p.a.acked) == [1, 2, 3, 4] and not p.a.link.queued()
