"""The simulated SML push meter: frames checked with the independent decoder of
test_smlencode.py, exact energy bookkeeping, the household profile, real pty pairs, time
lapse, and fault injection."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import pytest
import serial

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "meters"))

from test_smlencode import (  # noqa: E402
    OBIS_180,
    OBIS_280,
    OBIS_1670,
    FrameError,
    decode_frame,
    entry_value,
    sec_index_of,
    unframe,
)

import metersim  # noqa: E402  (tools/ is on sys.path, see tests/conftest.py)
from smgw.meters import smlencode as enc  # noqa: E402
from smgw.sim.ptybridge import PtyBridge  # noqa: E402
from smgw.sim.smlmeter import (  # noqa: E402
    ConstantPower,
    DailyProfile,
    SmlMeter,
    parse_profile,
)

REPO = Path(__file__).resolve().parents[3]
START, ESC = enc.START, enc.ESC


def hunt(stream: bytes) -> tuple[list[bytes], list[bytes]]:
    """Splits a byte stream the way a receiver does: frames (start sequence .. CRC, found by
    walking 4-byte blocks) and the junk between them."""
    frames: list[bytes] = []
    junk: list[bytes] = []
    pos = 0
    while pos < len(stream):
        s = stream.find(START, pos)
        if s < 0:
            junk.append(stream[pos:])
            break
        if s > pos:
            junk.append(stream[pos:s])
        i = s + 8
        while True:
            block = stream[i : i + 4]
            if len(block) < 4:
                return frames, junk + [stream[s:]]  # incomplete tail
            if block == ESC:
                nxt = stream[i + 4 : i + 8]
                if nxt == ESC:
                    i += 8
                    continue
                assert nxt[:1] == b"\x1a", nxt
                end = i + 8
                break
            i += 4
        frames.append(stream[s:end])
        pos = end
    return frames, junk


def values(frame: bytes, crc: str = "x25") -> dict:
    d = decode_frame(frame, crc)
    assert all(m.crc_ok for m in d["messages"]), "message CRC"
    e = d["entries"]
    return {
        "import": entry_value(e[OBIS_180]),
        "export": entry_value(e[OBIS_280]) if OBIS_280 in e else None,
        "power": entry_value(e[OBIS_1670]),
        "power_scaler": e[OBIS_1670][4].value,
        "sec_index": sec_index_of(d["sensor_time"]),
        "decoded": d,
    }


def read_frames(port: serial.Serial, n: int, timeout: float = 10.0) -> tuple[list, list]:
    buf = bytearray()
    deadline = time.monotonic() + timeout
    frames: list[bytes] = []
    junk: list[bytes] = []
    while time.monotonic() < deadline:
        buf += port.read(4096)
        frames, junk = hunt(bytes(buf))
        if len(frames) >= n and (not junk or not junk[-1].startswith(START)):
            break
    return frames, junk


# ------------------------------------------------------------------ frames and registers


def test_frame_at_is_valid_and_pure():
    m = SmlMeter(profile=ConstantPower(500), start_wh=1234.5)
    f = m.frame_at(10.0)
    assert f == m.frame_at(10.0)
    v = values(f)
    assert v["import"] == 12345 + 5000 * 10 // 3600
    assert v["export"] is None  # a one-way meter has no 2.8.0
    assert (v["power"], v["power_scaler"]) == (50000, -2)
    assert v["sec_index"] == 10
    e = v["decoded"]["entries"][OBIS_180]
    assert (e[1].value, e[3].value, e[4].value) == (0x182, 30, -1)
    assert v["decoded"]["server_id"] == m.server_id


def test_registers_valid_and_monotone_over_10000_frames():
    m = SmlMeter(profile=DailyProfile(11, pv_peak_w=4000, start_s=6 * 3600),
                 start_wh=5_000_000,
                 start_export_wh=100)
    assert m.two_way
    last_imp = last_exp = -1
    saw_export = saw_import = False
    for k, f in enumerate(m.frames(10_000)):
        t = 2.0 * k
        v = values(f)  # transport and message CRCs checked
        assert v["import"] >= last_imp and v["export"] >= last_exp
        assert (v["import"], v["export"]) == m.registers_at(t)
        assert v["power"] == round(m.power_w(t) * 100)
        assert v["sec_index"] == int(t)
        saw_export |= v["power"] < 0
        saw_import |= v["power"] > 0
        last_imp, last_exp = v["import"], v["export"]
    assert saw_export and saw_import
    assert last_imp > 50_000_000 and last_exp > 1000


@pytest.mark.parametrize("t", [0, 0.001, 1, 7.2, 59.999, 3600, 86_400, 123_456.789, 10 * 86_400])
def test_constant_power_exact_energy(t):
    m = SmlMeter(profile=ConstantPower(500), start_wh=1000)
    ms = round(Fraction(t) * 1000)
    expected = 10_000 + int(Fraction(500) * Fraction(ms, 1000) * 10 / 3600)  # floor, 0.1 Wh
    assert m.registers_at(t) == (expected, 0)
    assert values(m.frame_at(t))["import"] == expected


def test_constant_power_known_points():
    m = SmlMeter(profile=ConstantPower(500), start_wh=1000)
    assert m.registers_at(7.2)[0] == 10_010  # 3600 Ws = 1 Wh
    assert m.registers_at(3600)[0] == 15_000  # 500 Wh
    assert m.registers_at(86_400)[0] == 130_000  # 12 kWh
    frac = SmlMeter(profile=ConstantPower(0.1))
    assert frac.registers_at(3600)[0] == 1  # 0.1 Wh after an hour at 100 mW


def test_constant_feed_in_two_way():
    m = SmlMeter(profile=ConstantPower(-800), start_wh=50, start_export_wh=20)
    assert m.two_way
    v = values(m.frame_at(3600))
    assert (v["import"], v["export"], v["power"]) == (500, 200 + 8000, -80_000)
    one_way = SmlMeter(profile=ConstantPower(300))
    assert values(one_way.frame_at(1))["export"] is None
    assert values(SmlMeter(profile=ConstantPower(300), two_way=True).frame_at(1))["export"] == 0


def test_a_day_of_frames_at_one_per_two_seconds():
    m = SmlMeter(profile=DailyProfile(5), start_wh=0)
    n = sum(1 for _ in m.frames(43_200))
    assert n == 43_200 == m.stats.frames
    v = values(m.frame_at(86_400))
    day = m.profile.day_watts(0)
    assert v["import"] == sum(max(w, 0) for w in day) * 60 // 360


# ------------------------------------------------------------------ the daily profile


def test_daily_profile_is_deterministic():
    a, b, c = DailyProfile(42), DailyProfile(42), DailyProfile(43)
    for day in range(3):
        assert a.day_watts(day) == b.day_watts(day)
        assert a.day_watts(day) != c.day_watts(day)
    ma, mb = SmlMeter(profile=a), SmlMeter(profile=DailyProfile(42))
    assert list(ma.frames(50, start_t=30_000)) == list(mb.frames(50, start_t=30_000))
    assert a.day_watts(0) != a.day_watts(1)  # days differ


def _digest(seed: int) -> str:
    p = DailyProfile(seed, pv_peak_w=2500)
    return hashlib.sha256(repr([p.day_watts(d) for d in range(3)]).encode()).hexdigest()


def test_daily_profile_is_deterministic_across_processes():
    code = (
        "import hashlib\n"
        "from smgw.sim.smlmeter import DailyProfile\n"
        "p = DailyProfile(9, pv_peak_w=2500)\n"
        "print(hashlib.sha256(repr([p.day_watts(d) for d in range(3)]).encode()).hexdigest())\n"
    )
    for hashseed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hashseed)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True).stdout.strip()
        assert out == _digest(9)


def test_daily_profile_shape():
    p = DailyProfile(3)
    days = [p.day_watts(d) for d in range(14)]

    def mean(lo_h, hi_h):
        vals = [w for d in days for w in d[int(lo_h * 60) : int(hi_h * 60)]]
        return sum(vals) / len(vals)

    night, evening = mean(1, 4), mean(18, 21)
    assert 60 < night < 400
    assert evening > 2 * night
    assert mean(6, 10) > 1.5 * night  # morning peak
    assert all(w > 0 for d in days for w in d)  # no PV, no feed-in
    kwh = [sum(d) / 60 / 1000 for d in days]
    assert all(2 < k < 20 for k in kwh)
    pv = DailyProfile(3, pv_peak_w=5000)
    assert sum(1 for d in range(14) if min(pv.day_watts(d)[11 * 60 : 14 * 60]) < 0) >= 10
    assert all(w == p.day_watts(0)[0] for w in (p.power_w(0), p.power_w(59.9)))


def test_daily_profile_integrates_exactly():
    p = DailyProfile(8, pv_peak_w=3000)
    m = SmlMeter(profile=p, start_wh=0, two_way=True)
    d0, d1 = p.day_watts(0), p.day_watts(1)
    imp = sum(max(w, 0) for w in d0 + d1) * 60
    exp = sum(max(-w, 0) for w in d0 + d1) * 60
    assert m.registers_at(2 * 86_400) == (imp // 360, exp // 360)
    # inside a minute: first minute whole, 30.5 s of the second
    ws = Fraction(max(d0[0], 0) * 60) + Fraction(max(d0[1], 0)) * Fraction(61, 2)
    assert m.registers_at(90.5)[0] == int(ws / 360)


def test_daily_profile_start_time():
    p0, p6 = DailyProfile(4), DailyProfile(4, start_s=6 * 3600)
    assert p6.power_w(0) == p0.power_w(6 * 3600)
    assert p6.energy_mwms(0) == (0, 0)
    a0 = p0.energy_mwms(6 * 3600_000)[0]
    assert p6.energy_mwms(3 * 3600_000)[0] == p0.energy_mwms(9 * 3600_000)[0] - a0


@pytest.mark.parametrize(
    "spec, cls", [("constant:500", ConstantPower), ("constant:-1200.5", ConstantPower),
                  ("daily:7", DailyProfile), ("daily:7:pv=3000:start=6h30", DailyProfile)],
)
def test_parse_profile(spec, cls):
    assert isinstance(parse_profile(spec), cls)
    p = parse_profile("daily:7:pv=3000:start=6h30")
    assert (p.seed, p.pv_peak_w, p.start_ms) == (7, 3000.0, 23_400_000)


@pytest.mark.parametrize("bad", ["", "constant", "daily:x", "flat:3", "daily:1:wind=3"])
def test_parse_profile_rejects(bad):
    with pytest.raises(ValueError):
        parse_profile(bad)


# ------------------------------------------------------------------ faults


def test_corrupt_every_n_breaks_exactly_those_frames():
    m = SmlMeter(profile=DailyProfile(1), corrupt_every=7, fault_seed=3)
    chunks = list(m.frames(100))
    frames, junk = hunt(b"".join(chunks))
    assert len(frames) == 100 and junk == []
    bad = []
    for k, f in enumerate(frames):
        try:
            unframe(f)
        except FrameError as e:
            assert str(e) == "transport CRC"
            bad.append(k)
            good = m.frame_at(2.0 * k)
            diff = [i for i in range(len(f)) if f[i] != good[i]]
            assert len(f) == len(good) and len(diff) == 1
            i = diff[0]
            assert 8 <= i < len(f) - 8 - f[-3] and 0x1B not in (f[i], good[i])
        else:
            assert f == m.frame_at(2.0 * k)
    assert bad == list(range(6, 100, 7))
    assert m.stats.corrupted == 14 and m.stats.garbage == 0


def test_corrupted_frame_fails_its_message_crc_too():
    m = SmlMeter(corrupt_every=1)
    f = next(m.frames(1))
    assert enc.crc16_x25(f[:-2]).to_bytes(2, "little") != f[-2:]
    # the frame CRC is wrong; so is the CRC of the message holding the flipped byte
    file = f[8 : f.rfind(enc.END) - f[-3]]
    good = unframe(m.frame_at(0))[0]
    assert len(file) == len(good) and file != good


def test_garbage_every_n_inserts_exactly_that_garbage():
    m = SmlMeter(garbage_every=5, fault_seed=9)
    chunks = list(m.frames(100))
    frames, junk = hunt(b"".join(chunks))
    assert len(frames) == 100 and len(junk) == 20
    assert all(1 <= len(j) <= 32 and 0x1B not in j for j in junk)
    for k, c in enumerate(chunks):
        assert c.endswith(m.frame_at(2.0 * k))
        assert (len(c) > len(m.frame_at(2.0 * k))) == ((k + 1) % 5 == 0)
    for f in frames:
        unframe(f)
    assert m.stats.garbage == 20 and m.stats.garbage_bytes == sum(map(len, junk))


def test_faults_combined_and_reproducible():
    def run():
        m = SmlMeter(corrupt_every=3, garbage_every=4, fault_seed=5)
        return m, b"".join(m.frames(60))

    (m, stream), (_, again) = run(), run()
    assert stream == again
    frames, junk = hunt(stream)
    failures = 0
    for f in frames:
        try:
            unframe(f)
        except FrameError:
            failures += 1
    assert (len(frames), failures, len(junk)) == (60, 20, 15)
    assert (m.stats.corrupted, m.stats.garbage) == (20, 15)


def test_kermit_meter_looks_like_a_dtz541():
    m = SmlMeter(profile=ConstantPower(250), kermit=True, start_wh=100, sec_index0=1000)
    f = m.frame_at(3600)
    with pytest.raises(FrameError):
        unframe(f, "x25")
    d = decode_frame(f, "kermit")
    assert all(m_.crc_ok for m_ in d["messages"])
    assert all(len(m_.tid) == 3 and m_.tag.width == 4 for m_ in d["messages"])
    assert d["sensor_time"].kind == "absent"
    e = d["entries"][OBIS_180]
    assert entry_value(e) == 1000 + 2500
    assert e[2].kind == "uint" and e[2].value == 4600 and e[2].width == 4  # bare valTime
    assert entry_value(d["entries"][OBIS_1670]) == 250
    assert d["entries"][bytes.fromhex("010060320101")][5].value == b"SIM"
    assert f[-2:] == enc.crc16_kermit(f[:-2]).to_bytes(2, "big")


def test_bad_arguments():
    with pytest.raises(ValueError):
        SmlMeter(period_s=0)
    with pytest.raises(ValueError):
        SmlMeter(crc="crc32")
    with pytest.raises(ValueError):
        SmlMeter(corrupt_every=0)
    with pytest.raises(ValueError):
        SmlMeter().frame_at(-1)
    with pytest.raises(ValueError):
        SmlMeter().run("loop://", speed=0)


# ------------------------------------------------------------------ over a serial port


@pytest.fixture
def bridge():
    b = PtyBridge().start()
    yield b
    b.close()


def open_port(port: str) -> serial.Serial:
    return serial.serial_for_url(port, baudrate=9600, timeout=0.2)


def test_run_over_a_pty_pair_delivers_readable_frames(bridge):
    m = SmlMeter(profile=DailyProfile(2, pv_peak_w=3000), start_wh=777)
    with open_port(bridge.port_b) as rx:
        th = threading.Thread(target=m.run, args=(bridge.port_a,),
                              kwargs={"speed": 50, "count": 5})
        th.start()
        frames, junk = read_frames(rx, 5)
        th.join(10)
    assert not th.is_alive()
    assert junk == []
    assert frames == [m.frame_at(2.0 * k) for k in range(5)]
    assert [values(f)["sec_index"] for f in frames] == [0, 2, 4, 6, 8]


def test_run_with_faults_over_a_pty(bridge):
    m = SmlMeter(corrupt_every=2, garbage_every=3, fault_seed=1)
    with open_port(bridge.port_b) as rx:
        th = threading.Thread(target=m.run, args=(bridge.port_a,),
                              kwargs={"speed": 100, "count": 6})
        th.start()
        frames, junk = read_frames(rx, 6)
        th.join(10)
    assert len(frames) == 6 and len(junk) == 2
    ok = []
    for f in frames:
        try:
            unframe(f)
            ok.append(True)
        except FrameError:
            ok.append(False)
    assert ok == [True, False] * 3


def test_speed_scaling_and_simulated_time():
    sink = _Sink()
    m = SmlMeter(period_s=2.0)
    t0 = time.monotonic()
    assert m.run(sink, speed=20, count=6) == 6  # 2 s simulated = 0.1 s wall
    elapsed = time.monotonic() - t0
    assert elapsed >= 0.5  # five intervals; the first push goes out at once
    gaps = [b - a for a, b in zip(sink.times, sink.times[1:])]
    assert all(g > 0.05 for g in gaps)
    assert [values(c)["sec_index"] for c in sink.chunks] == [0, 2, 4, 6, 8, 10]


def test_stop_event_ends_run_promptly():
    sink = _Sink()
    m = SmlMeter(period_s=2.0)
    stop = threading.Event()
    result = []
    th = threading.Thread(target=lambda: result.append(m.run(sink, stop_event=stop)))
    th.start()
    time.sleep(0.3)
    stop.set()
    th.join(2)
    assert not th.is_alive() and result == [1]


class _Sink:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.times: list[float] = []

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        self.times.append(time.monotonic())
        return len(data)


# ------------------------------------------------------------------ the CLI


def test_cli_writes_to_a_port(bridge):
    with open_port(bridge.port_b) as rx:
        rc = metersim.main(["--port", bridge.port_a, "--count", "3", "--speed", "100",
                            "--profile", "daily:3:pv=3000", "--start-wh", "1000",
                            "--id", "0A01484C59020005DC4B"])
        frames, _ = read_frames(rx, 3)
    assert rc == 0 and len(frames) == 3
    v = values(frames[2])
    assert v["decoded"]["server_id"] == bytes.fromhex("0A01484C59020005DC4B")
    assert v["sec_index"] == 4 and v["import"] >= 10_000 and v["export"] is not None


def test_cli_kermit_and_bad_arguments(bridge, capsys):
    with open_port(bridge.port_b) as rx:
        assert metersim.main(["--port", bridge.port_a, "--count", "1", "--kermit"]) == 0
        frames, _ = read_frames(rx, 1)
    unframe(frames[0], "kermit")
    assert metersim.main(["--port", bridge.port_a, "--profile", "nope"]) == 2
    assert metersim.main(["--port", bridge.port_a, "--id", "zz"]) == 2
    assert "metersim:" in capsys.readouterr().err


def test_cli_pty_mode_runs_until_ctrl_c():
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tools" / "metersim.py"), "--port", "pty", "--speed", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/"), path
        with open_port(path) as rx:
            frames, _ = read_frames(rx, 2)
        assert len(frames) >= 2
        for f in frames:
            unframe(f)
        assert proc.poll() is None  # still running
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
        assert "frames" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
