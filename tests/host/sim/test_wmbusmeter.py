"""Simulated wM-Bus meters behind a simulated AMB8465 module (smgw.sim.wmbusmeter): the module's
command frames and confirmations (checksums of the Amber manuals' examples), no telegrams before
a receive mode is set and none of another air mode, reset, parameters, RSSI; the transmission
schedule under an injected clock (rate, access numbers, counters, duplicates, replays); the
meter profiles; and a tiny driver written here talking to the simulator over a real pty pair."""

from __future__ import annotations

import datetime as dt
import os
import select
import time
import tty

import pytest

import omsgen
from smgw.sim.wmbusmeter import (
    CMD_DATA_IND,
    CMD_GET_REQ,
    CMD_RESET_REQ,
    CMD_RSSI_REQ,
    CMD_SET_MODE_REQ,
    CMD_SET_REQ,
    Amb8465,
    WmbusRadioSim,
    amb_frame,
    default_meters,
    derive_key,
    rssi_byte,
    rssi_dbm,
    strip_crcs,
)
from smgw.wmbus.encode import Meter, Value, frame_a, frame_b, telegram

H = bytes.fromhex
START = dt.datetime(2025, 3, 1, 12, 0)
T1, C1, S1 = 0x08, 0x0E, 0x03


def xor(data: bytes) -> int:
    c = 0
    for b in data:
        c ^= b
    return c


def parse_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Split module output into (cmd, payload), checking LEN and CS of every frame."""
    out, i = [], 0
    while i < len(data):
        assert data[i] == 0xFF, f"no start byte at {i}: {data[i:i + 8].hex()}"
        n = data[i + 2]
        frame = data[i:i + 4 + n]
        assert len(frame) == 4 + n, "truncated frame"
        assert xor(frame[:-1]) == frame[-1], f"bad CS in {frame.hex()}"
        out.append((frame[1], frame[3:3 + n]))
        i += 4 + n
    return out


def simple_meters(n: int = 2, mode: int = 5) -> list[tuple[Meter, object]]:
    out = []
    for i in range(n):
        key = bytes([i + 1]) * 16 if mode else None
        m = Meter("SIM", f"{i + 1:08d}", 1, 7, key, mode, "short", "A")
        out.append((m, lambda t, i=i: [Value("volume", "m3", str(int(t) + i))]))
    return out


# ------------------------------------------------------------------ frames and the module


def test_checksums_of_the_manual_examples():
    assert amb_frame(0x0B) == H("FF0B00F4")  # CMD_SERIALNO_REQ
    assert amb_frame(0x0A, H("0080")) == H("FF0A02008077")  # CMD_GET_REQ 0, 128
    assert amb_frame(0x06, H("0B")) == H("FF06010BF3")  # CMD_SET_CHANNEL_REQ 11
    assert amb_frame(0x86, H("0B")) == H("FF86010B73")  # its confirmation
    assert amb_frame(0x0D) == H("FF0D00F2")
    assert amb_frame(0x05) == H("FF0500FA")
    assert amb_frame(0x0C) == H("FF0C00F3")


def test_rssi_formula():
    # docs/amb8465.md §4: the half truncated toward zero
    assert [rssi_dbm(b) for b in (0x00, 0x08, 0xCC, 0xFF, 0x80, 0x7F, 0xE0)] == [
        -74, -70, -100, -74, -138, -11, -90]
    for dbm in range(-138, -10):
        assert rssi_dbm(rssi_byte(dbm)) == dbm
    assert rssi_byte(-90.4) == rssi_byte(-90) == 0xE0
    assert rssi_byte(-500) == 0x80 and rssi_byte(100) == 0x7E
    fw = pytest.importorskip("smgwfw.radio")
    assert all(fw.rssi_dbm(b) == rssi_dbm(b) for b in range(256))


def test_module_confirms_every_request():
    m = Amb8465()
    assert m.feed(amb_frame(CMD_SET_MODE_REQ, bytes([T1]))) == amb_frame(0x84, b"\x00")
    assert m.mode == T1 and m.heard == {"T1"}
    # what the firmware driver reads: UART_CMD_Out_Enable (0x05) and RSSI_Enable (0x45)
    assert m.feed(amb_frame(CMD_GET_REQ, H("0501"))) == amb_frame(0x8A, H("050101"))
    assert m.feed(amb_frame(CMD_GET_REQ, H("4501"))) == amb_frame(0x8A, H("450101"))
    assert m.feed(amb_frame(CMD_SET_REQ, H("450100"))) == amb_frame(0x89, b"\x00")
    assert m.feed(amb_frame(CMD_GET_REQ, H("4501"))) == amb_frame(0x8A, H("450100"))
    assert m.feed(amb_frame(CMD_SET_REQ, H("4502FF"))) == amb_frame(0x89, b"\x01")  # bad length
    assert m.feed(amb_frame(CMD_SET_REQ, H("7F0201FF"))) == amb_frame(0x89, b"\x02")  # address
    rssi = parse_frames(m.feed(amb_frame(CMD_RSSI_REQ)))
    assert rssi[0][0] == 0x8D and len(rssi[0][1]) == 1
    assert parse_frames(m.feed(amb_frame(0x0B)))[0][0] == 0x8B
    assert parse_frames(m.feed(amb_frame(0x0C)))[0][0] == 0x8C
    assert m.stats.commands == 10


def test_the_frames_of_docs_amb8465():
    """docs/amb8465.md §2/§3: the driver's requests and the module's answers, byte for byte."""
    m = Amb8465()
    m.params[0x05] = m.params[0x45] = 0
    assert m.feed(H("FF0A020501F3")) == H("FF8A03050100") + bytes([xor(H("FF8A03050100"))])
    assert m.feed(H("FF0A024501B3")) == H("FF8A03450100") + bytes([xor(H("FF8A03450100"))])
    assert m.feed(H("FF0903050101F0")) == H("FF890100 77")
    assert m.feed(H("FF0903450101B0")) == H("FF89010077")
    assert m.feed(H("FF0A024501B3")) == H("FF8A0345010133")
    assert m.feed(H("FF0500FA")) == H("FF8501007B")
    for req, mode in (("FF040108F2", T1), ("FF04010EF4", C1), ("FF040103F9", S1)):
        assert m.feed(H(req)) == H("FF8401007A") and m.mode == mode


def test_module_parses_split_and_damaged_input():
    m = Amb8465()
    req = amb_frame(CMD_SET_MODE_REQ, bytes([C1]))
    out = b""
    for b in b"\x00\x12" + req:  # garbage first, then one byte at a time
        out += m.feed(bytes([b]))
    assert out == amb_frame(0x84, b"\x00")
    assert m.stats.garbage_bytes == 2
    bad = bytearray(amb_frame(CMD_SET_MODE_REQ, bytes([T1])))
    bad[-1] ^= 1
    assert m.feed(bytes(bad)) == b""
    assert m.stats.cs_errors == 1 and m.mode == C1
    assert m.feed(amb_frame(0x42)) == b"" and m.stats.unknown_commands == 1


def test_indications_only_in_the_mode_set():
    m = Amb8465()
    tg = telegram(Meter("ELS", "12345678", frame="none"), [Value("volume", "m3", "1")], 7)
    assert m.indication(tg, "T1", 0xE0) is None  # no mode yet
    m.feed(amb_frame(CMD_SET_MODE_REQ, bytes([T1])))
    frame = m.indication(tg, "T1", 0xE0)
    assert frame == amb_frame(CMD_DATA_IND, tg + b"\xe0")
    assert frame[2] == len(tg) + 1  # LEN counts the RSSI byte
    assert m.indication(tg, "C1", 0xE0) is None
    m.feed(amb_frame(CMD_SET_MODE_REQ, bytes([0x09])))  # C1 and T1
    assert m.indication(tg, "C1", 0xE0) and m.indication(tg, "T1", 0xE0)
    m.feed(amb_frame(CMD_SET_MODE_REQ, bytes([S1])))
    assert m.indication(tg, "S1", 0xE0) and not m.indication(tg, "T1", 0xE0)
    # a reset forgets the volatile mode; Mode_Preselect (70) is used after it
    assert m.feed(amb_frame(CMD_RESET_REQ)) == amb_frame(0x85, b"\x00")
    assert m.mode is None and m.indication(tg, "S1", 0xE0) is None
    m.feed(amb_frame(CMD_SET_REQ, bytes([70, 1, C1])))
    m.feed(amb_frame(CMD_RESET_REQ))
    assert m.mode == C1 and m.indication(tg, "C1", 0xE0)
    # RSSI_Enable = 0 takes effect after a reset: no RSSI byte
    m.feed(amb_frame(CMD_SET_REQ, H("450100")))
    m.feed(amb_frame(CMD_RESET_REQ))
    assert m.indication(tg, "C1", 0xE0) == amb_frame(CMD_DATA_IND, tg)
    assert Amb8465(l_field=False).l_field is False


def test_indication_without_l_field():
    m = Amb8465(l_field=False)
    m.feed(amb_frame(CMD_SET_MODE_REQ, bytes([T1])))
    tg = telegram(Meter("ELS", "12345678", frame="none"), [Value("volume", "m3", "1")], 7)
    assert m.indication(tg, "T1", 0x10) == amb_frame(CMD_DATA_IND, tg[1:] + b"\x10")


def test_module_strips_and_checks_crcs():
    meter = Meter("ELS", "12345678", frame="none")
    for n in (1, 3, 12):
        values = [Value("volume", "m3", str(k), storage=k) for k in range(n)]
        raw = telegram(meter, values, 1)
        assert strip_crcs(frame_a(raw), "A") == raw
        assert strip_crcs(frame_b(raw), "B") == raw
        bad = bytearray(frame_a(raw))
        bad[len(bad) // 2] ^= 0x40
        assert strip_crcs(bytes(bad), "A") is None
        assert strip_crcs(frame_a(raw)[:-1], "A") is None
        bad = bytearray(frame_b(raw))
        bad[5] ^= 1
        assert strip_crcs(bytes(bad), "B") is None


# ------------------------------------------------------------------ the schedule, no I/O


class FakeLine:
    """A serial port without a file descriptor: the driver's bytes in, the module's out."""

    def __init__(self, to_module: bytes = b"") -> None:
        self.inbox = bytearray(to_module)
        self.out = bytearray()

    @property
    def in_waiting(self) -> int:
        return len(self.inbox)

    def read(self, n: int) -> bytes:
        data = bytes(self.inbox[:n])
        del self.inbox[:n]
        return data

    def write(self, data: bytes) -> int:
        self.out += data
        return len(data)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class SteppedSim(WmbusRadioSim):
    """Waiting advances the injected clock instead of sleeping; stops at ``until``."""

    until = 0.0
    stop_event = None

    def _wait(self, ser, timeout):
        self.clock.t += max(timeout, 1e-4)
        if self.clock.t >= self.until:
            self.stop_event.set()
        return False


def run_stepped(sim: SteppedSim, line: FakeLine, seconds: float) -> list[tuple[int, bytes]]:
    import threading

    sim.port = line
    sim.until = sim.clock.t + seconds
    sim.stop_event = threading.Event()
    sim.run(sim.stop_event)
    return parse_frames(bytes(line.out))


@pytest.mark.parametrize("rate", [70.0, 13.0])
def test_rate_access_numbers_and_counters(rate):
    clock = Clock()
    mode7 = Meter("SIM", "00000009", 1, 7, b"\x09" * 16, 7)
    meters = simple_meters(3, mode=5) + [(mode7, lambda t: [Value("volume", "m3", "1")])]
    sim = SteppedSim(None, meters, rate_per_s=rate, mode="T1", seed=4, clock=clock)
    line = FakeLine(amb_frame(CMD_SET_MODE_REQ, bytes([T1])))
    frames = run_stepped(sim, line, 10.0)
    assert frames[0] == (0x84, b"\x00")
    inds = [p for c, p in frames if c == CMD_DATA_IND]
    assert abs(len(inds) - rate * 10) <= 1
    per_meter: dict[bytes, list[bytes]] = {}
    for p in inds:
        tg, rssi = p[:-1], p[-1]
        assert tg[0] == len(tg) - 1  # L-field of a telegram without CRCs
        assert -97 <= rssi_dbm(rssi) <= -53  # per meter -95..-55 dBm, +-2 dB noise
        per_meter.setdefault(tg[4:8], []).append(tg)
    assert len(per_meter) == 4
    for ident, tgs in per_meter.items():
        if ident == H("09000000"):  # mode 7: AFL first, counter in it, ACC after CI 0x7A
            ctr = [int.from_bytes(t[15:19], "little") for t in tgs]
            assert ctr == list(range(ctr[0], ctr[0] + len(ctr)))
            accs = [t[28] for t in tgs]
        else:
            accs = [t[11] for t in tgs]
        assert accs == [(accs[0] + k) & 0xFF for k in range(len(accs))]
    st = sim.stats()
    assert st["radio"]["delivered"] == len(inds) == st["radio"]["on_air"]
    assert sum(m["sent"] for m in st["meters"]) == len(inds)
    assert st["module"]["mode"] == T1


def test_nothing_before_the_mode_and_nothing_of_another_air_mode():
    clock = Clock()
    sim = SteppedSim(None, simple_meters(2), rate_per_s=20, mode="C1", clock=clock)
    line = FakeLine()
    assert run_stepped(sim, line, 2.0) == []
    assert sim.counters.not_heard == 40 and sim.counters.delivered == 0
    line = FakeLine(amb_frame(CMD_SET_MODE_REQ, bytes([T1])))
    assert [c for c, _ in run_stepped(sim, line, 1.0)] == [0x84]
    line = FakeLine(amb_frame(CMD_SET_MODE_REQ, bytes([C1])))
    frames = run_stepped(sim, line, 1.0)
    assert len([c for c, _ in frames if c == CMD_DATA_IND]) == 20


def test_duplicates_and_replays():
    clock = Clock()
    sim = SteppedSim(None, simple_meters(2), rate_per_s=10, mode="T1", duplicate_prob=1.0,
                     clock=clock)
    frames = run_stepped(sim, FakeLine(amb_frame(CMD_SET_MODE_REQ, bytes([T1]))), 2.0)
    inds = [p[:-1] for c, p in frames if c == CMD_DATA_IND]
    assert len(inds) == 20
    assert all(inds[k] == inds[k + 1] for k in range(0, 20, 2))
    assert len(set(inds)) == 10
    assert sim.counters.duplicates == 10
    old = sim.replay(0, back=2)
    assert sim.send_now(frame_a(inds[0]), frame="A")
    assert not sim.send_now(frame_a(inds[0])[:-1] + b"\x00", frame="A")  # bad CRC: dropped
    sim.rate_per_s = 0
    frames = run_stepped(sim, FakeLine(), 0.5)
    got = [p[:-1] for c, p in frames if c == CMD_DATA_IND]
    assert got == [old, inds[0]]
    assert sim.counters.replays == 2 and sim.counters.crc_dropped == 1


def test_a_bad_value_function_skips_its_slot():
    clock = Clock()
    bad = (Meter("SIM", "00000007"), lambda t: [Value("energy", "Wh", "1.23456")])
    sim = SteppedSim(None, simple_meters(1) + [bad], rate_per_s=10, mode="T1", clock=clock)
    frames = run_stepped(sim, FakeLine(amb_frame(CMD_SET_MODE_REQ, bytes([T1]))), 2.0)
    assert len([c for c, _ in frames if c == CMD_DATA_IND]) == 10
    st = sim.stats()
    assert st["meters"][1]["errors"] == 10 and "00000007" in st["last_error"]


def test_t1_needs_frame_a_meters():
    with pytest.raises(ValueError, match="frame format A"):
        WmbusRadioSim(None, [(Meter("SIM", "00000001", frame="B"), lambda t: [])], mode="T1")
    WmbusRadioSim(None, [(Meter("SIM", "00000001", frame="B"), lambda t: [])], mode="C1")


# ------------------------------------------------------------------ meter profiles


def test_default_meters_are_deterministic_and_monotone():
    a = default_meters(5, start=START)
    b = default_meters(5, start=START)
    assert [m for m, _ in a] == [m for m, _ in b]
    assert {m.mode for m, _ in a} == {5, 7}
    assert {m.header for m, _ in a} == {"short", "long"}
    assert a[0][0].key == derive_key(b"smgw-sim", "00000001")
    for (m, fn), (_, fn2) in zip(a, b):
        assert fn(3600) == fn2(3600)
        first, later = fn(0), fn(86400 * 3)
        for v0, v1 in zip(first, later):
            assert (v0.quantity, v0.storage, v0.tariff) == (v1.quantity, v1.storage, v1.tariff)
            if v0.quantity in ("volume", "energy", "hca") and v0.storage == 0:
                assert float(v1.value) >= float(v0.value)
        assert next(v.value for v in later if v.quantity == "datetime") == "2025-03-04T12:00"
        tg = telegram(m, later, 200, counter=7 if m.mode == 7 else None)
        assert 40 <= len(tg) <= 140


def test_default_meters_decode():
    decode = pytest.importorskip("smgw.wmbus.decode").decode
    pytest.importorskip("smgw.wmbus.apl")
    for m, fn in default_meters(10, start=START):
        values = fn(12345.0)
        t = decode(telegram(m, values, 9, counter=99 if m.mode == 7 else None), m.key)
        assert [r.to_json()["value"] for r in t.records] == [
            v.expected()["value"] for v in values]


# ------------------------------------------------------------------ over a real pty pair


class TinyDriver:
    """Just enough of an AMB8465 driver: write requests, read frames (checking their CS)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = bytearray()

    def send(self, cmd: int, payload: bytes = b"") -> None:
        frame = bytes([0xFF, cmd, len(payload)]) + payload
        os.write(self.fd, frame + bytes([xor(frame)]))

    def read(self, seconds: float) -> list[tuple[int, bytes]]:
        end = time.monotonic() + seconds
        out = []
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            if select.select([self.fd], [], [], left)[0]:
                self.buf += os.read(self.fd, 65536)
            while len(self.buf) >= 4:
                assert self.buf[0] == 0xFF, self.buf[:8].hex()
                n = self.buf[2] + 4
                if len(self.buf) < n:
                    break
                frame = bytes(self.buf[:n])
                del self.buf[:n]
                assert xor(frame[:-1]) == frame[-1], f"bad CS: {frame.hex()}"
                out.append((frame[1], frame[3:-1]))
        return out

    def until(self, cmd: int, seconds: float = 5.0) -> tuple[list, bytes]:
        seen = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for c, p in self.read(0.05):
                if c == cmd:
                    return seen, p
                seen.append((c, p))
        raise AssertionError(f"no frame 0x{cmd:02x} within {seconds} s")


@pytest.fixture
def pty_pair():
    master, slave = os.openpty()
    tty.setraw(slave)
    tty.setraw(master)
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


def test_over_a_pty(pty_pair):
    master, path = pty_pair
    rate = 50.0
    meters = simple_meters(3)
    sim = WmbusRadioSim(path, meters, rate_per_s=rate, mode="T1", seed=1).start()
    try:
        drv = TinyDriver(master)
        assert drv.read(0.3) == []  # the module delivers nothing before a mode is set
        assert sim.counters.not_heard > 0
        drv.send(CMD_SET_MODE_REQ, bytes([T1]))
        _, cnf = drv.until(0x84)
        assert cnf == b"\x00"
        t0 = time.monotonic()
        frames = drv.read(2.0)
        elapsed = time.monotonic() - t0
        inds = [p for c, p in frames if c == CMD_DATA_IND]
        # never faster than the rate; a loaded machine may be slower
        assert len(inds) <= rate * elapsed + 2
        assert len(inds) >= rate * elapsed * 0.3
        accs: dict[bytes, list[int]] = {}
        for p in inds:
            tg = p[:-1]
            assert tg[0] == len(tg) - 1 and tg[10] == 0x7A
            accs.setdefault(tg[4:8], []).append(tg[11])
        assert len(accs) == 3
        for seq in accs.values():
            assert seq == [(seq[0] + k) & 0xFF for k in range(len(seq))]
        # a replayed telegram arrives unchanged
        last = inds[-1][:-1]
        drv.send(CMD_RSSI_REQ)
        _, rssi = drv.until(0x8D)
        assert len(rssi) == 1 and rssi_dbm(rssi[0]) < -90
        replay = sim.replay(0, back=3)
        assert replay != last
        got = [p[:-1] for c, p in drv.read(0.5) if c == CMD_DATA_IND]
        assert replay in got
        # after a reset the module is deaf until the mode is set again
        drv.send(CMD_RESET_REQ)
        drv.until(0x85)
        drv.read(0.1)
        assert [c for c, _ in drv.read(0.3) if c == CMD_DATA_IND] == []
        st = sim.stats()
        assert st["radio"]["cs_errors"] == 0 and st["radio"]["replays"] == 1
        assert st["line_error"] is None
    finally:
        sim.stop()
    assert sim.counters.delivered >= len(inds)


def test_cli_radio_pty(capsys):
    assert omsgen.main(["--radio", "pty", "--meters", "2", "--rate", "20", "--seconds",
                        "0.3"]) == 0
    out, err = capsys.readouterr()
    assert out.strip().startswith("/dev/")
    assert "meter SIM 00000001" in err and "key" in err
    assert '"on_air"' in err


# ------------------------------------------------------------------ with the firmware's driver


@pytest.mark.parametrize("configured,l_field", [(True, True), (False, True), (True, False)])
def test_with_the_firmware_driver(configured, l_field):
    """The firmware's AMB8465 driver (smgwfw.amb8465, CPython) against this module: start-up
    (with and without the parameter writes and the reset), then telegrams with their RSSI."""
    fw = pytest.importorskip("smgwfw.amb8465")
    module = Amb8465(l_field=l_field)
    if not configured:
        module.params[0x05] = 0  # UART_CMD_Out_Enable
        module.params[0x45] = 0  # RSSI_Enable

    class Uart:
        def __init__(self) -> None:
            self.rx = bytearray()

        def write(self, data) -> int:
            self.rx += module.feed(bytes(data))
            return len(data)

        def readinto(self, buf) -> int | None:
            n = min(len(buf), len(self.rx))
            if not n:
                return None
            buf[:n] = self.rx[:n]
            del self.rx[:n]
            return n

    uart = Uart()
    now = 0
    drv = fw.Amb8465(uart, ticks_ms=lambda: now, l_field=l_field)
    drv.set_mode("C1")
    drv.start_recv(now)
    while not drv.ready() and now < 5000:
        assert drv.poll_recv(now) is None
        now += 10
    assert drv.ready() and module.mode == C1
    assert module.resets == (0 if configured else 1)
    assert module.params[0x05] == module.params[0x45] == 1
    meter = Meter("ELS", "12345678", 0x33, 3, b"\x01" * 16, 5, "short", "none")
    for k, dbm in enumerate((-80, -99, -61)):
        tg = telegram(meter, [Value("volume", "m3", str(k))], k)
        uart.rx += module.indication(tg, "C1", rssi_byte(dbm))
        p = drv.poll_recv(now)
        assert p is not None and bytes(p.data) == tg
        assert (p.rssi_dbm, p.mode, p.crc_ok) == (dbm, "C1", True)
    assert drv.poll_recv(now) is None
