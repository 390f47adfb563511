"""Simulated wired-LMN meters on a bus (smgw.sim.lmnmeter): the SML answers and their
registers, the bus core with an injected clock (slots, collisions garbling answers that
overlap on the line, unplug/plug with the orphan timer, pairing + TLS + SML through the bus,
an impostor), persistence in a key directory, a real pty pair with the bus thread, and
``metersim --lmn``."""

from __future__ import annotations

import os
import random
import select
import sys
import threading
import time
import tty
from pathlib import Path
from types import SimpleNamespace

import pytest
import serial

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lmn"))

from test_station import Gateway, pair, sml_poll, tls_connect  # noqa: E402

import metersim  # noqa: E402  (tools/ is on sys.path, see tests/conftest.py)
from smgw.lmn import hdlc, mgmt, security  # noqa: E402
from smgw.lmn.hdlc import Frame  # noqa: E402
from smgw.meters import sml, smlreq  # noqa: E402
from smgw.sim.lmnmeter import (  # noqa: E402
    LmnBus,
    LmnMeter,
    derive_pairing_key,
    load_or_create_meter,
    sim_sid,
)
from smgw.sim.smlmeter import ConstantPower, DailyProfile  # noqa: E402

BAUD = 115200
K = bytes(range(16))


@pytest.fixture(scope="module")
def gw_id():
    return security.make_identity("SMGW sim test")


@pytest.fixture(scope="module")
def ids():
    return {n: security.make_identity(sim_sid(n).hex()) for n in (1, 2, 3)}


def meter(n, ids, **kw):
    kw.setdefault("pairing_key", K)
    return LmnMeter(sim_sid(n), kw.pop("profile", ConstantPower(500)), identity=ids[n], **kw)


class Clock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def send(bus: LmnBus, clock: Clock, frame: Frame, window: float = 0.05):
    """The gateway writes ``frame`` (it ends on the line after its air time), then listens for
    ``window`` seconds: returns what a receiver decodes from the bus, with start times."""
    wire = hdlc.encode(frame)
    clock.t += bus.air_s(len(wire))
    bus.receive(wire, clock.t)
    end = clock.t + window
    dec = hdlc.StreamDecoder()
    out = []
    while (nxt := bus.next_due()) is not None and nxt <= end:
        clock.t = max(clock.t, nxt)
        for w in bus.due(clock.t):
            out += [(clock.t, item) for item in dec.feed(w)]
    out += [(clock.t, item) for item in dec.flush()]
    clock.t = end
    bus.tick(clock.t)
    return out


def invite(slots=16, slot_ms=None, rnd=1):
    return Frame(hdlc.BROADCAST, hdlc.GATEWAY, hdlc.UI,
                 mgmt.encode(mgmt.Invite(slots, slot_ms or mgmt.slot_ms_for(BAUD), rnd)))


def assign(sid, address):
    return Frame(hdlc.BROADCAST, hdlc.GATEWAY, hdlc.UI, mgmt.encode(mgmt.Assign(sid, address)))


class BusGateway(Gateway):
    """test_station's gateway, talking through the bus model instead of to one station."""

    def __init__(self, bus: LmnBus, clock: Clock, m: LmnMeter, address: int) -> None:
        super().__init__(m.station, address)
        self.bus, self.clock = bus, clock

    def exchange(self, frame: Frame) -> Frame | None:
        got = [f for _, f in send(self.bus, self.clock, frame) if isinstance(f, Frame)]
        assert len(got) <= 1
        return got[0] if got else None

    def register(self, rnd: int = 1) -> None:
        send(self.bus, self.clock, assign(self.sid, self.address))


# ------------------------------------------------------------------------ the meter


def test_sim_sid_and_key_derivation():
    assert sim_sid(1).hex() == "0a0153494d0200000001"
    assert sml.meter_id_text(sim_sid(1)) == "1SIM0200000001"
    assert derive_pairing_key(b"s", sim_sid(1)) == derive_pairing_key(b"s", sim_sid(1))
    assert derive_pairing_key(b"s", sim_sid(1)) != derive_pairing_key(b"s", sim_sid(2))
    assert len(derive_pairing_key(b"s", sim_sid(1))) == 16


def test_answer_has_the_registers_of_the_profile(ids):
    m = meter(1, ids, start_wh=1000.0, speed=2.0)
    m.start(50.0)
    m._now = 50.0 + 1800.0  # 1800 bus seconds at speed 2 = 3600 simulated seconds
    req = smlreq.get_list_request(m.sid, b"\xaa\xbb", b"file1", 0x100)
    f = sml.decode_frame(m.answer(req))
    assert f.crc_ok and f.messages_crc_ok
    assert [x.type for x in f.messages] == ["PublicOpen.Res", "GetList.Res", "PublicClose.Res"]
    assert [x.transaction_id for x in f.messages] == [(0x100 + k).to_bytes(4, "big")
                                                     for k in range(3)]
    assert f.messages[0].body.req_file_id == b"file1"
    assert f.messages[0].body.client_id == b"\xaa\xbb"
    assert f.server_id == m.sid
    gl = f.messages[1].body
    assert gl.act_sensor_time == {"kind": "secIndex", "value": 3600}
    regs = {r.obis: r for r in f.readings}
    assert set(regs) == {"1-0:1.8.0", "1-0:2.8.0", "1-0:16.7.0"}
    assert regs["1-0:1.8.0"].raw == 10000 + 5000  # 1000 Wh + 500 W * 1 h, in 0.1 Wh
    assert regs["1-0:1.8.0"].value == "1500.0" and regs["1-0:1.8.0"].unit == "Wh"
    assert regs["1-0:2.8.0"].raw == 0
    assert regs["1-0:16.7.0"].value == "500.00"


def test_registers_are_monotone_and_secindex_increments(ids):
    m = meter(1, ids, profile=DailyProfile(3, pv_peak_w=3000), speed=600)
    m.start(0.0)
    last = (-1, -1, -1)
    for k in range(1, 200):
        m._now = k * 0.7
        f = sml.decode_frame(m.answer(smlreq.get_list_request(m.sid, b"c", b"f", k)))
        regs = {r.obis: r.raw for r in f.readings}
        sec = f.messages[1].body.act_sensor_time["value"]
        cur = (regs["1-0:1.8.0"], regs["1-0:2.8.0"], sec)
        assert all(a >= b for a, b in zip(cur, last)) and sec > last[2]
        last = cur
    assert last[1] > 0  # the PV fed in at some point


def test_bad_request_raises_sml_error(ids):
    m = meter(1, ids)
    with pytest.raises(sml.SmlError):
        m.answer(b"not sml")


def test_impostor_and_prepaired_meters(ids, gw_id):
    real = meter(1, ids)
    fake = LmnMeter(real.sid, identity=security.make_identity(real.sid.hex()),
                    pinned_gateway_cert=gw_id.cert_der)
    assert fake.sid == real.sid and fake.identity.fingerprint != real.identity.fingerprint
    assert fake.station.paired and fake.pairing_key is None
    assert LmnMeter(sim_sid(9)).pairing_key is not None  # random K by default


# ------------------------------------------------------------------------ the bus core


def test_registration_slots_on_the_bus(ids):
    clock = Clock(10.0)
    ms = [meter(n, ids, seed=4) for n in (1, 2, 3)]
    bus = LmnBus(None, ms, baud=BAUD, clock=clock)
    slot = mgmt.slot_ms_for(BAUD)
    wire = hdlc.encode(invite(16, slot))
    t_end = clock.t + bus.air_s(len(wire))
    got = send(bus, clock, invite(16, slot), window=16 * slot / 1000 + 0.01)
    # each meter's slot comes from its own generator, seeded with (seed, sid)
    slot_of = {m.sid: random.Random(f"4:{m.sid.hex()}").randrange(16) for m in ms}
    ks = sorted(slot_of.values())
    assert len(set(ks)) == 3  # this seed puts the three meters in three slots
    regs = [(t, mgmt.decode(f.info)) for t, f in got]
    assert [r.sid for _, r in regs] == sorted(slot_of, key=slot_of.get)
    for (t, _), k in zip(regs, ks):
        assert t == pytest.approx(t_end + k * slot / 1000 + 0.002)
    assert bus.stats()["bus"]["collisions"] == 0
    # ASSIGN: the meter answers ASSIGNED from its new address right away
    got = send(bus, clock, assign(ms[0].sid, 0x10))
    assert len(got) == 1 and got[0][1].src == 0x10
    assert mgmt.decode(got[0][1].info) == mgmt.Assigned(ms[0].sid)


def test_same_slot_collides_into_noise(ids):
    clock = Clock()
    ms = [meter(1, ids), meter(2, ids)]
    bus = LmnBus(None, ms, baud=BAUD, clock=clock)
    got = send(bus, clock, invite(slots=1))
    assert not [f for _, f in got if isinstance(f, Frame)]
    s = bus.stats()["bus"]
    assert s["collisions"] == 1 and s["collided_frames"] == 2 and s["transmissions"] == 1
    # the next INVITE with enough slots gets both through (or they collide again and retry)
    for rnd in range(2, 12):
        got = send(bus, clock, invite(16, rnd=rnd), window=0.2)
        sids = {mgmt.decode(f.info).sid for _, f in got if isinstance(f, Frame)}
        if len(sids) == 2:
            break
    assert sids == {ms[0].sid, ms[1].sid}


def test_partial_overlap_garbles_the_frame_check(ids):
    # turnarounds 0.8 ms apart at 115200 Bd: the second answer starts 9 characters into the
    # first, after its header: the HCS of the first still holds, its info and closing flag do
    # not (a "length" error: no flag where the length says; or a bad FCS)
    clock = Clock()
    ms = [meter(1, ids, turnaround_ms=2.0), meter(2, ids, turnaround_ms=2.8)]
    bus = LmnBus(None, ms, baud=BAUD, clock=clock)
    got = [f for _, f in send(bus, clock, invite(slots=1))]
    assert not [f for f in got if isinstance(f, Frame)]
    assert [f.code for f in got if isinstance(f, hdlc.HdlcError)][0] in ("length", "bad_fcs")
    assert bus.stats()["bus"]["collisions"] == 1


def test_answers_that_do_not_overlap_do_not_collide(ids):
    clock = Clock()
    # 40 characters apart: longer than a REGISTER (31): no overlap, two intact frames
    ms = [meter(1, ids, turnaround_ms=2.0), meter(2, ids, turnaround_ms=2.0 + 40 * 10e3 / BAUD)]
    bus = LmnBus(None, ms, baud=BAUD, clock=clock)
    got = send(bus, clock, invite(slots=1))
    assert len([f for _, f in got if isinstance(f, Frame)]) == 2
    assert bus.stats()["bus"]["collisions"] == 0


def test_unplug_orphan_and_plug_again(ids):
    clock = Clock()
    m1, m2 = meter(1, ids, orphan_s=3.0), meter(2, ids, orphan_s=3.0)
    bus = LmnBus(None, [m1, m2], baud=BAUD, clock=clock)
    for m, a in ((m1, 0x10), (m2, 0x11)):
        send(bus, clock, assign(m.sid, a))
        assert send(bus, clock, Frame(a, 1, hdlc.SNRM))[0][1].kind == "UA"
    m2.unplug()
    assert send(bus, clock, Frame(0x11, 1, hdlc.rr_control(0))) == []
    assert send(bus, clock, invite()) == []  # m1 has an address, m2 hears nothing
    for _ in range(40):
        send(bus, clock, Frame(0x10, 1, hdlc.rr_control(0)), window=0.1)  # only m1 is polled
    assert m1.station.address == 0x10 and m1.station.linked
    assert m2.station.address is None and not m2.station.linked
    m2.plug()
    got = send(bus, clock, invite(), window=0.2)
    assert [mgmt.decode(f.info).sid for _, f in got] == [m2.sid]


def test_unplugged_before_its_answer_is_due(ids):
    clock = Clock()
    m = meter(1, ids)
    bus = LmnBus(None, [m], baud=BAUD, clock=clock)
    bus.receive(hdlc.encode(invite(16)), 0.001)
    assert bus.next_due() is not None
    m.unplug()
    assert bus.due(1.0) == []
    assert bus.stats()["bus"]["dropped_unplugged"] == 1


def test_pairing_tls_and_polls_of_two_meters_through_the_bus(ids, gw_id):
    clock = Clock()
    ms = [meter(1, ids, profile=ConstantPower(1000)), meter(2, ids, profile=ConstantPower(-360))]
    bus = LmnBus(None, ms, baud=BAUD, clock=clock)
    gws = []
    for m, a in zip(ms, (0x10, 0x11)):
        g = BusGateway(bus, clock, m, a)
        g.register()
        g.connect()
        gp = pair(g, gw_id)
        assert gp.done and m.station.paired
        gws.append((g, tls_connect(g, gw_id, gp.meter_cert_der)))
    for n in range(2):
        for (g, tls), m in zip(gws, ms):
            t0 = clock.t
            f = sml_poll(g, tls, 3 * n)
            regs = {r.obis: r.raw for r in f.readings}
            sec = f.messages[1].body.act_sensor_time["value"]
            # the registers are the profile's integral at a time within this exchange
            lo, hi = m.registers.registers_at(t0 - m.t0), m.registers.registers_at(clock.t - m.t0)
            assert lo[0] <= regs["1-0:1.8.0"] <= hi[0]
            assert lo[1] <= regs["1-0:2.8.0"] <= hi[1]
            assert int(t0 - m.t0) <= sec <= int(clock.t - m.t0)
    assert ms[1].station.counters.sml_requests == 2
    st = bus.stats()
    assert st["meters"][ms[0].sid.hex()]["tls_sessions"] == 1
    assert st["bus"]["errors"] == 0 and st["bus"]["collisions"] == 0


def test_impostor_fails_tls_on_the_pinned_certificate(ids, gw_id):
    clock = Clock()
    real = meter(1, ids)
    bus = LmnBus(None, [real], baud=BAUD, clock=clock)
    g = BusGateway(bus, clock, real, 0x10)
    g.register()
    g.connect()
    gp = pair(g, gw_id)
    # the real meter leaves; one with the same sid, another key, claims to be paired
    real.unplug()
    fake = bus.add(LmnMeter(real.sid, identity=security.make_identity(real.sid.hex()),
                            pinned_gateway_cert=gw_id.cert_der))
    g2 = BusGateway(bus, clock, fake, 0x10)
    g2.register()
    g2.connect()
    with pytest.raises(security.TlsError) as e:
        tls_connect(g2, gw_id, gp.meter_cert_der)
    assert e.value.code == "bad_cert"
    assert fake.station.counters.tls_sessions == 0


# ------------------------------------------------------------------------ persistence


def test_key_dir_keeps_identity_key_and_pairing(tmp_path, gw_id):
    sid = sim_sid(5)
    m = load_or_create_meter(tmp_path, sid, secret=b"bench")
    assert m.pairing_key == derive_pairing_key(b"bench", sid)
    assert m.identity.cn == sid.hex()
    g = Gateway(m.station)
    g.register()
    g.connect()
    gp = pair(g, gw_id, key=m.pairing_key)
    assert gp.done
    again = load_or_create_meter(tmp_path, sid, secret=b"other")
    assert again.pairing_key == m.pairing_key  # K stays what the GWA got
    assert again.identity.fingerprint == m.identity.fingerprint
    assert again.station.paired and again.station.pinned_gateway_cert == gw_id.cert_der
    assert again.station.key == gp.operational_key
    assert oct((tmp_path / f"{sid.hex()}.json").stat().st_mode & 0o777) == "0o600"
    # and it talks TLS with the gateway that paired the first incarnation
    g2 = Gateway(again.station)
    g2.register()
    g2.connect()
    tls = tls_connect(g2, gw_id, gp.meter_cert_der)
    assert sml_poll(g2, tls, 1).crc_ok


# ------------------------------------------------------------------------ real pty


class PtyGateway(Gateway):
    """The gateway on the master end of a real pty; the bus thread has the slave open."""

    def __init__(self, fd: int, sid: bytes, address: int) -> None:
        super().__init__(SimpleNamespace(sid=sid), address)  # no station: it is on the bus
        self.fd = fd
        self.dec = hdlc.StreamDecoder()

    def send(self, frame: Frame, window: float = 0.3, want: int = 1) -> list[Frame]:
        os.write(self.fd, hdlc.encode(frame))
        got: list[Frame] = []
        end = time.monotonic() + window
        while len(got) < want and (left := end - time.monotonic()) > 0:
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                got += [f for f in self.dec.feed(os.read(self.fd, 4096)) if isinstance(f, Frame)]
        return got

    def exchange(self, frame: Frame) -> Frame | None:
        got = self.send(frame)
        return got[0] if got else None

    def register(self, rnd: int = 1) -> None:
        got = self.send(assign(self.sid, self.address))
        assert mgmt.decode(got[0].info) == mgmt.Assigned(self.sid)


def test_bus_thread_on_a_real_pty(ids, gw_id):
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    ms = [meter(1, ids, seed=1), meter(2, ids, seed=1)]
    bus = LmnBus(path, ms, baud=BAUD).start()
    try:
        g = PtyGateway(master, ms[0].sid, 0x10)
        # registration: both meters answer an INVITE with 16 slots within 16 slot times
        regs: list[Frame] = []
        for rnd in range(1, 10):
            regs = g.send(invite(16, 20, rnd), window=0.6, want=2)
            if len(regs) == 2:
                break
        assert {mgmt.decode(f.info).sid for f in regs} == {ms[0].sid, ms[1].sid}
        g.register()
        g.connect()
        gp = pair(g, gw_id)
        assert gp.done
        tls = tls_connect(g, gw_id, gp.meter_cert_der)
        f = sml_poll(g, tls, 7)
        assert f.crc_ok and f.server_id == ms[0].sid
        ms[1].unplug()
        assert PtyGateway(master, ms[1].sid, 0x11).send(assign(ms[1].sid, 0x11), window=0.2) == []
    finally:
        bus.stop()
        os.close(master)
        os.close(slave)
    s = bus.stats()
    assert s["bus"]["frames"] >= 8 and s["meters"][ms[0].sid.hex()]["tls_sessions"] == 1


def test_bus_on_an_injected_serial_object(ids):
    master, slave = os.openpty()
    tty.setraw(slave)
    ser = serial.Serial(os.ttyname(slave), BAUD, timeout=0)
    bus = LmnBus(ser, [meter(1, ids)], baud=BAUD).start()
    try:
        g = PtyGateway(master, sim_sid(1), 0x10)
        got = g.send(invite(4, 10), window=0.5)
        assert mgmt.decode(got[0].info).sid == sim_sid(1)
    finally:
        bus.stop()
        ser.close()
        os.close(master)
        os.close(slave)


# ------------------------------------------------------------------------ metersim --lmn


def run_metersim(args, capsys, master):
    ev = threading.Event()
    rc = []
    t = threading.Thread(target=lambda: rc.append(metersim.main(args, stop_event=ev)))
    t.start()
    try:
        g = PtyGateway(master, sim_sid(1), 0x10)
        time.sleep(0.3)
        got = []
        for rnd in range(1, 10):
            got = g.send(invite(16, 20, rnd), window=0.6, want=2)
            if len(got) == 2:
                break
    finally:
        ev.set()
        t.join(10)
    assert rc == [0]
    out = capsys.readouterr()
    return out, got


def test_metersim_lmn(tmp_path, capsys):
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    args = ["--lmn", "--port", path, "--meters", "2", "--key-dir", str(tmp_path / "keys"),
            "--key-secret", "bench"]
    try:
        out, got = run_metersim(args, capsys, master)
        lines = out.out.splitlines()
        assert len(lines) == 2
        fields = [dict(kv.split("=", 1) for kv in line.split()) for line in lines]
        assert [f["sid"] for f in fields] == [sim_sid(1).hex(), sim_sid(2).hex()]
        assert fields[0]["id"] == "1SIM0200000001"
        assert fields[0]["key"] == derive_pairing_key(b"bench", sim_sid(1)).hex()
        assert len(fields[0]["fingerprint"]) == 64 and fields[0]["paired"] == "no"
        assert {mgmt.decode(f.info).sid for f in got} == {sim_sid(1), sim_sid(2)}
        assert "2 wired LMN meter(s)" in out.err
        # a second run is the same meters
        out2, _ = run_metersim(args, capsys, master)
        assert out2.out == out.out
    finally:
        os.close(master)
        os.close(slave)


def test_metersim_lmn_bad_arguments(capsys):
    assert metersim.main(["--lmn", "--port", "loop://", "--meters", "0"]) == 2
    assert metersim.main(["--lmn", "--port", "loop://", "--id", "zz"]) == 2
    assert metersim.main(["--lmn", "--port", "loop://", "--profile", "nope"]) == 2
    assert "metersim:" in capsys.readouterr().err
