"""The meter side of the wired LMN (smgw.lmn.station.MeterStation), driven frame by frame by a
minimal gateway written here: registration in its slot (timing), assignment, the orphan timer,
SNRM/UA, DISC, DM without a link, stop-and-wait with lost frames in both directions
(retransmission, no duplicate delivery), and pairing + real TLS + an SML poll against
security.GatewayPairing / TlsEndpoint (no mocks)."""

from __future__ import annotations

import random
from itertools import count

import pytest

from smgw.lmn import hdlc, mgmt, security
from smgw.lmn.hdlc import Frame
from smgw.lmn.station import CH_PAIRING, CH_TLS, MeterStation, SmlSplitter
from smgw.meters import sml, smlreq
from smgw.meters import smlencode as enc

SID = bytes.fromhex("0a0153494d0200000001")
K = bytes(range(16))
TURN = 0.002


@pytest.fixture(scope="module")
def meter_id():
    return security.make_identity(SID.hex())


@pytest.fixture(scope="module")
def gw_id():
    return security.make_identity("SMGW test")


def sml_answer():
    n = count()

    def answer(request: bytes) -> bytes:
        sml.decode_frame(request)  # SmlError (ValueError) for a bad request
        i = next(n)
        return enc.encode_file(SID, [{"obis": "1-0:1.8.0", "value": 1000 + i, "unit": 30,
                                      "scaler": -1, "status": 0x182}],
                               transaction_id=i * 3, act_sensor_time=i)

    return answer


def station(meter_id, key=K, rng_seed=1, **kw):
    return MeterStation(SID, meter_id, key, sml_answer(), random.Random(rng_seed), **kw)


class Gateway:
    """The gateway's side, just enough for the tests: addressed exchanges at a fake time,
    window-1 stop-and-wait with a hook that loses frames."""

    def __init__(self, st: MeterStation, address: int = 0x10, lose=None) -> None:
        self.st = st
        self.sid = st.sid
        self.address = address
        self.t = 100.0
        self.vs = self.vr = 0
        self.out: list[bytes] = []  # info fields (channel byte included) to send
        self.unacked: bytes | None = None
        self.received: list[bytes] = []  # infos of new I-frames from the meter
        self.lose = lose or (lambda direction: False)
        self.polls = 0

    def exchange(self, frame: Frame) -> Frame | None:
        self.t += 0.05
        if self.lose("down"):
            return None
        tx = self.st.on_frame(frame, self.t)
        assert len(tx) <= 1
        if not tx:
            return None
        start, wire = tx[0]
        assert start == pytest.approx(self.t + TURN)
        if self.lose("up"):
            return None
        return hdlc.decode(wire)

    def register(self, rnd: int = 1) -> None:
        reg = self.st.on_frame(Frame(hdlc.BROADCAST, hdlc.GATEWAY, hdlc.UI,
                                     mgmt.encode(mgmt.Invite(4, 8, rnd))), self.t)
        assert mgmt.decode(hdlc.decode(reg[0][1]).info) == mgmt.Register(rnd, self.sid)
        done = self.st.on_frame(Frame(hdlc.BROADCAST, hdlc.GATEWAY, hdlc.UI,
                                      mgmt.encode(mgmt.Assign(self.sid, self.address))), self.t)
        assert hdlc.decode(done[0][1]).src == self.address

    def connect(self) -> None:
        ua = self.exchange(Frame(self.address, hdlc.GATEWAY, hdlc.SNRM))
        assert ua is not None and ua.kind == "UA"
        self.vs = self.vr = 0
        self.unacked = None

    def poll(self) -> Frame | None:
        if self.unacked is None and self.out:
            self.unacked = self.out.pop(0)
        if self.unacked is not None:
            f = Frame(self.address, hdlc.GATEWAY, hdlc.i_control(self.vs, self.vr), self.unacked)
        else:
            f = Frame(self.address, hdlc.GATEWAY, hdlc.rr_control(self.vr))
        self.polls += 1
        ans = self.exchange(f)
        if ans is None:
            return None
        assert ans.src == self.address and ans.dest == hdlc.GATEWAY and ans.pf
        assert ans.kind in ("I", "RR")
        if self.unacked is not None and ans.nr == (self.vs + 1) % 8:
            self.vs = (self.vs + 1) % 8
            self.unacked = None
        if ans.kind == "I" and ans.ns == self.vr:
            self.vr = (self.vr + 1) % 8
            self.received.append(ans.info)
        return ans

    def take(self, channel: int) -> list[bytes]:
        got = [i[1:] for i in self.received if i[0] == channel]
        self.received = [i for i in self.received if i[0] != channel]
        return got

    def pump(self, until, limit: int = 400) -> None:
        for _ in range(limit):
            if until():
                return
            self.poll()
        raise AssertionError("no progress")


def pair(gw: Gateway, gw_id, key=K) -> security.GatewayPairing:
    gp = security.GatewayPairing(key, gw_id, gw.sid.hex())
    gw.out.append(bytes((CH_PAIRING,)) + gp.hello())
    replies: list[bytes] = []

    def step():
        for m in gw.take(CH_PAIRING):
            replies.append(m)
            try:
                r = gp.on_message(m)
            except security.PairingError:
                return True
            if r is not None:
                gw.out.append(bytes((CH_PAIRING,)) + r)
        return gp.done or (replies and replies[-1][0] == security.PAIR_FAIL)

    gw.pump(step)
    return gp


def tls_connect(gw: Gateway, gw_id, meter_cert: bytes) -> security.TlsEndpoint:
    tls = security.TlsEndpoint("client", gw_id, meter_cert)
    tls.start()

    def step():
        for data in gw.take(CH_TLS):
            tls.feed(data)
        out = tls.pending_output()
        for i in range(0, len(out), 1023):
            gw.out.append(bytes((CH_TLS,)) + out[i:i + 1023])
        return tls.handshake_done and not gw.out and gw.unacked is None

    gw.pump(step)
    return tls


def sml_poll(gw: Gateway, tls: security.TlsEndpoint, transaction: int) -> sml.SmlFile:
    tls.send(smlreq.get_list_request(gw.sid, b"\x01\x02", b"f", transaction))
    buf = SmlSplitter()
    got: list[bytes] = []

    def step():
        out = tls.pending_output()
        for i in range(0, len(out), 1023):
            gw.out.append(bytes((CH_TLS,)) + out[i:i + 1023])
        for data in gw.take(CH_TLS):
            tls.feed(data)
        got.extend(buf.feed(tls.receive()))
        return bool(got)

    gw.pump(step)
    assert len(got) == 1
    return sml.decode_frame(got[0])


# ------------------------------------------------------------------------ registration


def test_register_in_a_random_slot_after_the_invite(meter_id):
    st = station(meter_id, rng_seed=3)
    k = random.Random(3).randrange(16)
    tx = st.on_frame(Frame(hdlc.BROADCAST, hdlc.GATEWAY, hdlc.UI,
                           mgmt.encode(mgmt.Invite(16, 8, 42))), 10.0)
    assert len(tx) == 1
    start, wire = tx[0]
    assert start == pytest.approx(10.0 + k * 0.008 + TURN)
    f = hdlc.decode(wire)
    assert (f.dest, f.src, f.control) == (hdlc.GATEWAY, hdlc.UNASSIGNED, hdlc.UI)
    assert mgmt.decode(f.info) == mgmt.Register(42, SID)
    assert len(wire) <= mgmt.REGISTER_MAX_BYTES
    assert st.counters.registrations == 1


def test_slots_are_uniform(meter_id):
    st = station(meter_id, rng_seed=9)
    inv = Frame(hdlc.BROADCAST, hdlc.GATEWAY, hdlc.UI, mgmt.encode(mgmt.Invite(4, 10, 1)))
    slots = [round((st.on_frame(inv, 0.0)[0][0] - TURN) / 0.010) for _ in range(400)]
    assert set(slots) == {0, 1, 2, 3}
    assert all(60 < slots.count(s) < 140 for s in range(4))


def test_assign_and_assigned_then_no_more_registering(meter_id):
    st = station(meter_id)
    other = st.on_frame(Frame(hdlc.BROADCAST, hdlc.GATEWAY, hdlc.UI,
                              mgmt.encode(mgmt.Assign(b"\x0a\x01other", 0x11))), 1.0)
    assert other == [] and st.address is None
    tx = st.on_frame(Frame(hdlc.BROADCAST, hdlc.GATEWAY, hdlc.UI,
                           mgmt.encode(mgmt.Assign(SID, 0x23))), 2.0)
    assert st.address == 0x23 and not st.linked
    start, wire = tx[0]
    assert start == pytest.approx(2.0 + TURN)
    f = hdlc.decode(wire)
    assert (f.dest, f.src, f.kind) == (hdlc.GATEWAY, 0x23, "UI")
    assert mgmt.decode(f.info) == mgmt.Assigned(SID)
    inv = Frame(hdlc.BROADCAST, hdlc.GATEWAY, hdlc.UI, mgmt.encode(mgmt.Invite(4, 8, 2)))
    assert st.on_frame(inv, 3.0) == []


def test_ignores_frames_not_from_the_gateway_and_bad_mgmt(meter_id):
    st = station(meter_id)
    reg = Frame(hdlc.GATEWAY, hdlc.UNASSIGNED, hdlc.UI, mgmt.encode(mgmt.Register(1, b"x")))
    assert st.on_frame(reg, 0.0) == []
    assert st.on_frame(Frame(hdlc.BROADCAST, 0x11, hdlc.UI,
                             mgmt.encode(mgmt.Invite(4, 8, 1))), 0.0) == []
    assert st.on_frame(Frame(hdlc.BROADCAST, hdlc.GATEWAY, hdlc.UI, b"\x09junk"), 0.0) == []
    assert st.on_frame(Frame(hdlc.BROADCAST, hdlc.GATEWAY, hdlc.SNRM), 0.0) == []
    assert st.counters.bad_mgmt == 1 and st.counters.answers == 0


def test_orphan_timer_counts_only_frames_addressed_to_the_station(meter_id):
    st = station(meter_id, orphan_s=3.0)
    gw = Gateway(st, 0x10)
    gw.t = 0.0
    gw.register()
    gw.t = 2.0
    gw.connect()  # at 2.05
    # traffic for another meter and broadcasts do not keep the address
    st.on_frame(Frame(0x11, hdlc.GATEWAY, hdlc.rr_control(0)), 4.0)
    st.on_frame(Frame(hdlc.BROADCAST, hdlc.GATEWAY, hdlc.UI,
                      mgmt.encode(mgmt.Invite(4, 8, 9))), 4.5)
    st.tick(5.0)
    assert st.address == 0x10 and st.linked
    st.tick(5.1)
    assert st.address is None and not st.linked and st.counters.orphaned == 1
    # ... and registers again
    inv = Frame(hdlc.BROADCAST, hdlc.GATEWAY, hdlc.UI, mgmt.encode(mgmt.Invite(4, 8, 10)))
    assert len(st.on_frame(inv, 6.0)) == 1


# ------------------------------------------------------------------------ link


def test_snrm_ua_dm_and_disc(meter_id):
    st = station(meter_id)
    gw = Gateway(st, 0x10)
    gw.register()
    # no link yet: polls and DISC are answered DM
    assert gw.exchange(Frame(0x10, hdlc.GATEWAY, hdlc.rr_control(0))).kind == "DM"
    assert gw.exchange(Frame(0x10, hdlc.GATEWAY, hdlc.i_control(0, 0), b"\x02x")).kind == "DM"
    assert gw.exchange(Frame(0x10, hdlc.GATEWAY, hdlc.DISC)).kind == "DM"
    assert st.counters.dm_sent == 3
    gw.connect()
    assert st.linked
    rr = gw.poll()
    assert rr.kind == "RR" and rr.nr == 0 and rr.pf
    assert gw.exchange(Frame(0x10, hdlc.GATEWAY, hdlc.DISC)).kind == "UA"
    assert not st.linked
    assert gw.exchange(Frame(0x10, hdlc.GATEWAY, hdlc.rr_control(0))).kind == "DM"
    # UI/UA/DM addressed to a meter need no answer
    for c in (hdlc.UI, hdlc.UA, hdlc.DM):
        assert gw.exchange(Frame(0x10, hdlc.GATEWAY, c)) is None


def test_no_answer_without_poll_bit(meter_id):
    st = station(meter_id)
    gw = Gateway(st)
    gw.register()
    gw.connect()
    assert gw.exchange(Frame(0x10, hdlc.GATEWAY, hdlc.rr_control(0, pf=False))) is None


def test_stop_and_wait_retransmits_and_never_delivers_twice(meter_id, gw_id):
    st = station(meter_id)
    gw = Gateway(st)
    gw.register()
    gw.connect()
    gp = security.GatewayPairing(K, gw_id, SID.hex())
    hello = bytes((CH_PAIRING,)) + gp.hello()
    proof = gw.exchange(Frame(0x10, 1, hdlc.i_control(0, 0), hello))
    assert (proof.kind, proof.ns, proof.nr) == ("I", 0, 1)
    assert proof.info[:2] == bytes((CH_PAIRING, security.PAIR_PROOF))
    # the answer was lost: the gateway sends HELLO again with the same N(S)
    again = gw.exchange(Frame(0x10, 1, hdlc.i_control(0, 0), hello))
    assert again == proof  # the same PROOF, same N(S): not a new pairing from a second HELLO
    assert st.counters.duplicates == 1 and st.counters.retransmits == 1
    # N(R) = 1 acknowledges it; nothing more to send
    rr = gw.exchange(Frame(0x10, 1, hdlc.rr_control(1)))
    assert (rr.kind, rr.nr) == ("RR", 1)
    confirm = gp.on_message(proof.info[1:])
    done = gw.exchange(Frame(0x10, 1, hdlc.i_control(1, 1), bytes((CH_PAIRING,)) + confirm))
    assert (done.kind, done.ns, done.nr) == ("I", 1, 2)
    assert done.info == bytes((CH_PAIRING, security.PAIR_DONE))
    assert gp.on_message(done.info[1:]) is None and gp.done
    assert st.paired and st.counters.pairings == 1


def test_rnr_gets_rr_without_data(meter_id, gw_id):
    st = station(meter_id)
    gw = Gateway(st)
    gw.register()
    gw.connect()
    gp = security.GatewayPairing(K, gw_id, SID.hex())
    # HELLO delivered with P = 0 (no answer), then RNR: the gateway is busy, the PROOF waits
    assert gw.exchange(Frame(0x10, 1, hdlc.i_control(0, 0, pf=False),
                             bytes((CH_PAIRING,)) + gp.hello())) is None
    busy = gw.exchange(Frame(0x10, 1, hdlc.rnr_control(0)))
    assert (busy.kind, busy.nr) == ("RR", 1)
    proof = gw.exchange(Frame(0x10, 1, hdlc.rr_control(0)))
    assert proof.kind == "I" and proof.info[1] == security.PAIR_PROOF


def test_sequence_numbers_wrap_modulo_8(meter_id, gw_id):
    st = station(meter_id)
    gw = Gateway(st)
    gw.register()
    gw.connect()
    pair(gw, gw_id)
    for _ in range(12):  # 12 unknown-channel frames: each is new, none is delivered anywhere
        gw.out.append(b"\x07")
        gw.pump(lambda: not gw.out and gw.unacked is None)
    assert st.counters.bad_channel == 12 and gw.vs == (2 + 12) % 8


# ------------------------------------------------------------------------ pairing, TLS, SML


def test_pairing_tls_and_sml_poll(meter_id, gw_id):
    paired = []
    st = station(meter_id, on_paired=paired.append)
    gw = Gateway(st)
    gw.register()
    gw.connect()
    gp = pair(gw, gw_id)
    assert gp.done and gp.meter_cert_der == meter_id.cert_der
    assert st.paired and st.pinned_gateway_cert == gw_id.cert_der
    assert st.key == gp.operational_key != K
    assert paired == [st]
    tls = tls_connect(gw, gw_id, gp.meter_cert_der)
    assert st.tls_up and st.counters.tls_sessions == 1
    for n in range(3):
        f = sml_poll(gw, tls, transaction=10 * n)
        assert f.crc_ok and f.readings[0].raw == 1000 + n
    assert st.counters.sml_requests == 3 and st.counters.bad_requests == 0
    # a new link (SNRM) drops the TLS session; a new handshake follows
    gw.connect()
    assert not st.tls_up and st.paired
    tls2 = tls_connect(gw, gw_id, gp.meter_cert_der)
    assert st.counters.tls_sessions == 2
    assert sml_poll(gw, tls2, 99).readings[0].raw == 1003


def test_lossy_link_completes_without_duplicates(meter_id, gw_id):
    rng = random.Random(7)
    st = station(meter_id)
    gw = Gateway(st, lose=lambda d: rng.random() < 0.2)
    gw.lose, lose = (lambda d: False), gw.lose
    gw.register()
    gw.connect()
    gw.lose = lose
    gp = pair(gw, gw_id)
    assert gp.done
    tls = tls_connect(gw, gw_id, gp.meter_cert_der)
    values = [sml_poll(gw, tls, 5 * n).readings[0].raw for n in range(4)]
    assert values == [1000, 1001, 1002, 1003]  # every request answered exactly once
    c = st.counters
    assert c.retransmits > 0 and c.duplicates > 0
    assert c.sml_requests == 4 and c.pairings == 1 and c.tls_sessions == 1


def test_wrong_pairing_key(meter_id, gw_id):
    st = station(meter_id)
    gw = Gateway(st)
    gw.register()
    gw.connect()
    gp = security.GatewayPairing(bytes(16), gw_id, SID.hex())
    gw.out.append(bytes((CH_PAIRING,)) + gp.hello())
    gw.pump(lambda: gw.received)
    with pytest.raises(security.PairingError) as e:
        gp.on_message(gw.take(CH_PAIRING)[0])
    assert e.value.code == "bad_mac"
    # the gateway says so; the meter does not answer a PAIR_FAIL with one
    gw.out.append(bytes((CH_PAIRING,)) + security.fail_message("bad_mac"))
    gw.pump(lambda: not gw.out and gw.unacked is None)
    gw.poll()
    assert gw.received == [] and not st.paired and st.counters.pairing_failures == 1


def test_forged_confirm_gets_pair_fail(meter_id, gw_id):
    st = station(meter_id)
    gw = Gateway(st)
    gw.register()
    gw.connect()
    gp = security.GatewayPairing(K, gw_id, SID.hex())
    gw.out.append(bytes((CH_PAIRING,)) + gp.hello())
    gw.pump(lambda: gw.received)
    gw.take(CH_PAIRING)
    gw.out.append(bytes((CH_PAIRING, security.PAIR_CONFIRM)) + bytes(16))
    gw.pump(lambda: gw.received)
    assert gw.take(CH_PAIRING) == [bytes((security.PAIR_FAIL, security.FAIL_BAD_MAC))]
    assert not st.paired and st.key == K
    # out of the blue: CONFIRM without HELLO -> unexpected
    gw.out.append(bytes((CH_PAIRING, security.PAIR_CONFIRM)) + bytes(16))
    gw.pump(lambda: gw.received)
    assert gw.take(CH_PAIRING) == [bytes((security.PAIR_FAIL, security.FAIL_UNEXPECTED))]


def test_paired_meter_without_key_refuses_pairing(meter_id, gw_id):
    st = MeterStation(SID, meter_id, None, sml_answer(), random.Random(1),
                      pinned_gateway_cert=gw_id.cert_der)
    assert st.paired
    gw = Gateway(st)
    gw.register()
    gw.connect()
    gp = security.GatewayPairing(K, gw_id, SID.hex())
    gw.out.append(bytes((CH_PAIRING,)) + gp.hello())
    gw.pump(lambda: gw.received)
    assert gw.take(CH_PAIRING) == [bytes((security.PAIR_FAIL, security.FAIL_UNEXPECTED))]
    # but TLS works with the pinned certificate
    tls = tls_connect(gw, gw_id, meter_id.cert_der)
    assert sml_poll(gw, tls, 1).readings[0].raw == 1000


def test_tls_with_another_gateway_certificate_fails(meter_id, gw_id):
    st = MeterStation(SID, meter_id, None, sml_answer(), random.Random(1),
                      pinned_gateway_cert=gw_id.cert_der)
    gw = Gateway(st)
    gw.register()
    gw.connect()
    impostor = security.make_identity("SMGW impostor")
    with pytest.raises(security.TlsError) as e:
        tls_connect(gw, impostor, meter_id.cert_der)
    assert e.value.code == "rejected"  # the meter's alert told the impostor why
    assert not st.tls_up and st.counters.tls_failures == 1 and st.counters.tls_sessions == 0


def test_tls_before_pairing_is_ignored(meter_id):
    st = station(meter_id)
    gw = Gateway(st)
    gw.register()
    gw.connect()
    gw.out.append(b"\x02\x16\x03\x01")
    gw.pump(lambda: not gw.out and gw.unacked is None)
    assert st.counters.tls_refused == 1 and gw.received == []


def test_bad_sml_request_is_counted_and_not_answered(meter_id, gw_id):
    st = station(meter_id)
    gw = Gateway(st)
    gw.register()
    gw.connect()
    gp = pair(gw, gw_id)
    tls = tls_connect(gw, gw_id, gp.meter_cert_der)
    # a well-framed transport frame whose content is no SML
    tls.send(enc.transport_frame(b"\xff\xff\xff\xff"))
    out = tls.pending_output()
    gw.out.append(bytes((CH_TLS,)) + out)
    gw.pump(lambda: st.counters.sml_requests == 1)
    assert st.counters.bad_requests == 1
    assert sml_poll(gw, tls, 3).readings[0].raw == 1000


def test_constructor_checks(meter_id):
    with pytest.raises(ValueError):
        MeterStation(b"", meter_id, K, sml_answer(), random.Random())
    with pytest.raises(ValueError):
        MeterStation(SID, meter_id, None, sml_answer(), random.Random())
    with pytest.raises(ValueError):
        MeterStation(SID, meter_id, b"short", sml_answer(), random.Random())


# ------------------------------------------------------------------------ SML splitter


def test_sml_splitter_any_chunking():
    frames = [enc.encode_file(SID, [{"obis": "1-0:1.8.0", "value": v}], transaction_id=v,
                              escape_test=(v % 2 == 0)) for v in range(5)]
    stream = b"xx" + frames[0] + b"\x1b\x1b" + b"".join(frames[1:])
    for step in (1, 3, 7, len(stream)):
        s = SmlSplitter()
        got = []
        for i in range(0, len(stream), step):
            got += s.feed(stream[i:i + step])
        assert got == frames


def test_sml_splitter_drops_broken_frames_and_is_bounded():
    good = enc.encode_file(SID, [{"obis": "1-0:1.8.0", "value": 1}], transaction_id=1)
    cut = good[:20]
    s = SmlSplitter(limit=4096)
    assert s.feed(cut + good) == [good]  # a new start on the grid ends the cut frame
    assert s.feed(SmlSplitter.START + bytes(5000)) == []  # never ends: given up at the limit
    assert s.junk >= 5008 and len(s._buf) == 0
    s.feed(b"\x00" * 10)
    assert s.feed(good) == [good]
