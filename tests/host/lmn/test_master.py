"""The gateway's bus master (smgw.lmn.master) against the meter side (smgw.lmn.station) on a
bus modelled in virtual time, as the firmware times it: one request at a time, answers that
start inside the window, colliding answers garbled. Real pairing, real TLS, real SML."""

from __future__ import annotations

import random

import pytest

from smgw.lmn import hdlc, security
from smgw.lmn.master import LmnMaster, MeterConfig
from smgw.lmn.station import MeterStation
from smgw.meters import sml
from smgw.meters import smlencode as enc

BAUD = 115200
KEY = bytes(range(16))


def sml_answer(sid: bytes):
    counter = [0]

    def answer(request: bytes) -> bytes:
        sml.decode_frame(request)  # the gateway's request is good SML
        counter[0] += 1
        return enc.encode_file(server_id=sid, readings=[
            {"obis": "1-0:1.8.0", "value": 1000 + counter[0], "unit": 30, "scaler": -1,
             "status": 0x182},
        ], act_sensor_time=counter[0], transaction_id=counter[0] * 3)

    return answer


class Bus:
    """The firmware's part in virtual time: sends a request, collects what the plugged
    stations start within the window, garbles overlapping answers, reports DONE."""

    def __init__(self, master: LmnMaster):
        self.master = master
        self.stations: list[MeterStation] = []
        self.plugged: dict[int, bool] = {}
        self.t = 0.0
        self.log: list[str] = []

    def add(self, st: MeterStation) -> MeterStation:
        self.stations.append(st)
        self.plugged[id(st)] = True
        return st

    def air(self, n: int) -> float:
        return n * 10 / BAUD

    def step(self) -> bool:
        req = self.master.next_request(self.t)
        if req is None:
            self.t += max(0.01, min(self.master.next_deadline(self.t), 0.5))
            for st in self.stations:
                st.tick(self.t)
            return False
        self.log.append(req.what)
        end = self.t + self.air(len(req.frame))
        frame = hdlc.decode(req.frame)
        tx: list[tuple[float, bytes]] = []
        for st in self.stations:
            if self.plugged[id(st)]:
                tx += st.on_frame(frame, end)
        tx.sort()
        window_end = end + req.listen_ms / 1000
        i = 0
        while i < len(tx):
            start, data = tx[i]
            if start > window_end:
                break
            stop = start + self.air(len(data))
            overlapping = [d for s, d in tx[i + 1:] if s < stop]
            check = "x25"
            if overlapping:
                check = "bad_crc"
                i += len(overlapping)
            self.master.on_rx(req.rid, data, check, int((start - end) * 1000), stop)
            i += 1
        self.t = max(window_end, tx[-1][0] + self.air(len(tx[-1][1])) if tx else 0)
        self.master.on_done(req.rid, len(tx), True, self.t)
        for st in self.stations:
            st.tick(self.t)
        return True

    def run_until(self, cond, max_steps=5000):
        for _ in range(max_steps):
            if cond():
                return True
            self.step()
        return cond()


@pytest.fixture(scope="module")
def gw_identity():
    return security.make_identity("SMGW EOPN0000000001")


def meter(sid: bytes, key=KEY, ident=None, seed=1, **kw) -> MeterStation:
    return MeterStation(sid, ident or security.make_identity(sid.hex()), key, sml_answer(sid),
                        random.Random(seed), orphan_s=3.0, **kw)


def setup(gw_identity, configs, **kw):
    master = LmnMaster(lambda mid: gw_identity, baud=BAUD, invite_s=1.0, keepalive_s=0.5,
                       retry_s=5.0, rng=random.Random(7), **kw)
    master.set_meters(configs)
    return master, Bus(master)


def kinds(events, kind):
    return [e for e in events if e.kind == kind]


def test_address_pairing_tls_and_values(gw_identity):
    sid = bytes.fromhex("0a0145534d0000000001")
    master, bus = setup(gw_identity, [MeterConfig(sid, period_s=2.0, pairing_key=KEY)])
    st = bus.add(meter(sid))
    events = []
    assert bus.run_until(lambda: (events.extend(master.pop_events()) or
                                  len(kinds(events, "values")) >= 3))
    addr = kinds(events, "address")[0].data["address"]
    assert st.address == addr and hdlc.FIRST_METER <= addr <= hdlc.LAST_METER
    (paired,) = kinds(events, "paired")
    assert paired.data["meter_cert"] == st.identity.cert_der
    assert paired.data["operational_key"] == st.key != KEY  # both sides switched to K_op
    assert st.pinned_gateway_cert == gw_identity.cert_der
    assert kinds(events, "tls_up") and not kinds(events, "failed")
    files = [sml.decode_frame(e.data["sml"]) for e in kinds(events, "values")]
    assert [f.readings[0].raw for f in files][:3] == [1001, 1002, 1003]
    assert bus.log[:3] == ["invite", "assign", "snrm"]


def test_unplugged_meter_is_lost_and_comes_back_without_new_pairing(gw_identity):
    sid = bytes.fromhex("0a0145534d0000000002")
    cfg = MeterConfig(sid, period_s=1.0, pairing_key=KEY)
    master, bus = setup(gw_identity, [cfg])
    st = bus.add(meter(sid))
    events = []
    collect = lambda: events.extend(master.pop_events())  # noqa: E731
    assert bus.run_until(lambda: collect() or kinds(events, "values"))
    bus.plugged[id(st)] = False
    assert bus.run_until(lambda: collect() or kinds(events, "lost"))
    t_lost = bus.t
    bus.run_until(lambda: bus.t > t_lost + 5)  # the meter forgets its address (orphan_s 3 s)
    assert st.address is None
    n = len(kinds(events, "values"))
    bus.plugged[id(st)] = True
    assert bus.run_until(lambda: collect() or len(kinds(events, "values")) > n + 1)
    assert len(kinds(events, "paired")) == 1  # the pinned certificates were used again
    assert len(kinds(events, "address")) == 2 and len(kinds(events, "tls_up")) == 2


def test_meter_with_another_certificate_is_rejected_and_gives_no_values(gw_identity):
    sid = bytes.fromhex("0a0145534d0000000003")
    genuine = security.make_identity(sid.hex())
    cfg = MeterConfig(sid, period_s=1.0, meter_cert=genuine.cert_der)
    master, bus = setup(gw_identity, [cfg])
    # an impostor with the same server id, paired with this gateway, but its own key pair
    bus.add(meter(sid, key=None, pinned_gateway_cert=gw_identity.cert_der))
    events = []
    bus.run_until(lambda: events.extend(master.pop_events()) or kinds(events, "failed"))
    (failed,) = kinds(events, "failed")
    assert failed.data["code"] in ("bad_cert", "tls") and "Zertifikat" in failed.data["reason"]
    bus.run_until(lambda: bus.t > 20)
    events.extend(master.pop_events())
    assert not kinds(events, "values") and not kinds(events, "tls_up")
    assert len(kinds(events, "failed")) >= 2  # tried again after retry_s, rejected again


def test_wrong_pairing_key_is_rejected(gw_identity):
    sid = bytes.fromhex("0a0145534d0000000004")
    master, bus = setup(gw_identity, [MeterConfig(sid, pairing_key=KEY)])
    bus.add(meter(sid, key=bytes(16)))
    events = []
    bus.run_until(lambda: events.extend(master.pop_events()) or kinds(events, "failed"))
    (failed,) = kinds(events, "failed")
    assert failed.data["code"] in ("bad_mac", "peer_fail")
    assert not kinds(events, "paired")


def test_several_meters_collide_and_all_get_addresses(gw_identity):
    sids = [bytes.fromhex("0a0145534d00000001%02x" % i) for i in range(6)]
    master, bus = setup(gw_identity, [MeterConfig(s, period_s=5.0, pairing_key=KEY)
                                      for s in sids], slots=4)
    stations = [bus.add(meter(s, seed=i)) for i, s in enumerate(sids)]
    events = []
    assert bus.run_until(lambda: (events.extend(master.pop_events()) or
                                  len({e.meter for e in kinds(events, "values")}) == 6),
                         max_steps=20000)
    addrs = [st.address for st in stations]
    assert len(set(addrs)) == 6
    assert master.counters["collisions"] > 0  # 6 meters in 4 slots must have collided


def test_unknown_meter_is_reported_once_and_not_addressed(gw_identity):
    master, bus = setup(gw_identity, [MeterConfig(b"\x0a\x01", pairing_key=KEY)])
    stranger = bus.add(meter(bytes.fromhex("0a0199")))
    events = []
    bus.run_until(lambda: bus.t > 5 and not events.extend(master.pop_events()))
    assert [e.meter for e in kinds(events, "unknown")] == ["0a0199"]
    assert stranger.address is None and master.unknown["0a0199"] >= 2


def test_a_lost_meters_address_is_not_given_to_another_meter(gw_identity):
    a_sid, b_sid = bytes.fromhex("0a0145534d00000002a1"), bytes.fromhex("0a0145534d00000002b2")
    master, bus = setup(gw_identity, [MeterConfig(a_sid, period_s=1.0, pairing_key=KEY),
                                      MeterConfig(b_sid, period_s=1.0, pairing_key=KEY)])
    a = bus.add(meter(a_sid))
    b = bus.add(meter(b_sid, seed=2))
    bus.plugged[id(b)] = False
    events = []
    collect = lambda: events.extend(master.pop_events())  # noqa: E731
    assert bus.run_until(lambda: collect() or kinds(events, "values"))
    first = a.address
    bus.plugged[id(a)] = False  # unplugged for less than its orphan time: it keeps the address
    assert bus.run_until(lambda: collect() or kinds(events, "lost"))
    bus.plugged[id(b)] = True
    assert bus.run_until(lambda: b.address is not None)
    assert b.address != first
    bus.plugged[id(a)] = True  # back: its old address is still its own, no clash on the bus
    n = len([e for e in kinds(events, "values") if e.meter == a_sid.hex()])
    assert bus.run_until(lambda: collect() or len(
        [e for e in kinds(events, "values") if e.meter == a_sid.hex()]) > n + 1)
    assert a.address == first and b.address != a.address
