"""The front LEDs end to end: the real firmware on the sim board (which logs every LED level change
to ``<state>/leds.log`` as "<ticks_ms> <LED> <0|1>") and the real host gateway, over a pty
bridge, as separate processes. The host decides the state, the firmware renders it, and reports
the patterns back to the host (``status()["leds"]``)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import pytest

from harness import Bench
from smgw.control import ControlError

pytestmark = pytest.mark.slow

LEDS = ("PWR", "TLS", "LMC", "wMT")
NORMAL_IDLE = {"PWR": "on", "TLS": "off", "LMC": "off", "wMT": "flash"}


# ------------------------------------------------------------------ the LED log


class LedLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    def size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def events(self, since: int = 0) -> list[tuple[int, str, int]]:
        """(ticks_ms, led, level) of every complete line after byte offset ``since``."""
        if not self.path.exists():
            return []
        with open(self.path, "rb") as f:
            f.seek(since)
            text = f.read().decode()
        out = []
        for line in text.splitlines(keepends=True):
            if not line.endswith("\n"):
                break  # a line still being written
            t, name, v = line.split()
            assert name in LEDS and v in ("0", "1"), line
            out.append((int(t), name, int(v)))
        return out


def per_led(events: list[tuple[int, str, int]]) -> dict[str, list[tuple[int, int]]]:
    out: dict[str, list[tuple[int, int]]] = {n: [] for n in LEDS}
    for t, name, v in events:
        out[name].append((t, v))
    return out


def check_alternates(evs: list[tuple[int, int]], led: str) -> None:
    # the board only logs changes: consecutive lines of one LED must alternate
    for (_, a), (_, b) in zip(evs, evs[1:]):
        assert a != b, f"{led}: two lines with the same level: {evs}"


def intervals(evs: list[tuple[int, int]]) -> list[int]:
    return [b[0] - a[0] for a, b in zip(evs, evs[1:])]


# ------------------------------------------------------------------ fixtures


@pytest.fixture
def bench(tmp_path):
    b = Bench(tmp_path)
    b.start_firmware()
    b.start_host()
    yield b
    b.close()


def wait_leds(bench: Bench, want: dict[str, str], timeout: float = 20) -> dict:
    return bench.wait_for(lambda s: s.get("leds") == want, timeout, f"LEDs {want}")


def log_of(bench: Bench) -> LedLog:
    return LedLog(bench.fw_state / "leds.log")


# ------------------------------------------------------------------ (a) boot


def test_boot_blink_then_pwr_steady_on(bench):
    st = wait_leds(bench, NORMAL_IDLE)
    assert st["link"] == "up"
    assert st["gateway"]["operating_state"] == "normal"
    time.sleep(1.5)  # watch the steady state for a while
    log = log_of(bench)
    evs = per_led(log.events())
    t0 = min(e[0][0] for e in evs.values())
    for led in LEDS:
        e = evs[led]
        check_alternates(e, led)
        # the boot blink starts lit, all four together
        assert e[0][1] == 1, (led, e[:3])
        assert e[0][0] - t0 <= 5, (led, e[0], t0)
        boot = [x for x in e if x[0] < t0 + 2900]
        # 3 s of 250/250: on at 0, 500, ... 2500; off at 250, ... 2750 -> 12 lines
        assert 11 <= len(boot) <= 13, (led, boot)
        for d in intervals(boot):
            assert 190 <= d <= 310, (led, d, boot)
        assert abs(statistics.mean(intervals(boot)) - 250) <= 25, (led, boot)
        assert boot[-1] == (boot[-1][0], 0)  # the last boot segment (2750..3000) is dark
        late = [x for x in e if x[0] >= t0 + 2900]
        if led == "PWR":
            # then steady on: exactly one more line, at or after the end of the boot blink
            assert len(late) == 1 and late[0][1] == 1, e
            assert late[0][0] >= t0 + 2940, e
        else:
            assert late == [], (led, late)  # TLS off, LMC off, wMT dark (flash, no telegrams)
    # in phase: the k-th change of every LED happens at the same moment
    n = min(len([x for x in evs[led] if x[0] < t0 + 2900]) for led in LEDS)
    for k in range(n):
        times = [evs[led][k][0] for led in LEDS]
        assert max(times) - min(times) <= 15, (k, times)
    # the firmware reported what it shows
    assert st["leds"] == NORMAL_IDLE


# ------------------------------------------------------------------ (b) states from the host


def test_states_from_the_host(bench):
    wait_leds(bench, NORMAL_IDLE)
    log = log_of(bench)

    # hard lock-down: all four at 50/50, in phase
    mark = log.size()
    desc = bench.cmd("state", security=5)
    assert desc["security"] == "all" and desc["operating_state"] == "normal"
    wait_leds(bench, {n: "blink-50" for n in LEDS}, timeout=10)
    time.sleep(1.2)
    evs = per_led(log.events(mark))
    for led in LEDS:
        e = evs[led]
        check_alternates(e, led)
        assert len(e) >= 15, (led, e)  # ~20 changes per second
        iv = intervals(e)
        assert 40 <= statistics.median(iv) <= 60, (led, iv)
        assert all(20 <= d <= 90 for d in iv), (led, iv)
    pwr_times = [t for t, _ in evs["PWR"]]
    for led in ("TLS", "LMC", "wMT"):
        for t, _ in evs[led]:
            # PWR was lit already and starts in its "on" segment: every other LED change
            # coincides with a PWR change except the very first switch-on
            if t > pwr_times[0]:
                assert min(abs(t - p) for p in pwr_times) <= 15, (led, t)

    # lock-down lifted, WAN up, a meter addressed: TLS and LMC steady on
    desc = bench.cmd("state", security=0, wan=3, lmc=1)
    assert desc == {"operating_state": "normal", "wan": "up", "lmc": "addressed",
                    "firmware_install": False, "security": "none"}
    steady = {"PWR": "on", "TLS": "on", "LMC": "on", "wMT": "flash"}
    wait_leds(bench, steady, timeout=10)
    time.sleep(0.3)
    final = {led: e[-1][1] for led, e in per_led(log.events()).items()}
    assert final == {"PWR": 1, "TLS": 1, "LMC": 1, "wMT": 0}
    mark = log.size()
    time.sleep(0.8)
    assert log.events(mark) == []  # steady: no changes at all

    # refused changes: an error, and nothing changes anywhere
    for bad in ({"op": 7}, {"op": -1}, {"op": True}, {"op": "2"}, {"op": None},
                {"security": 6}, {"colour": 1}):
        with pytest.raises(ControlError) as ei:
            bench.cmd("state", **bad)
        assert next(iter(bad)) in str(ei.value), (bad, ei.value)
    bench.cmd("refresh")
    time.sleep(0.8)
    st = bench.status()
    assert st["gateway"]["operating_state"] == "normal"
    assert st["gateway"]["security"] == "none"
    assert st["gateway"]["wan"] == "up" and st["gateway"]["lmc"] == "addressed"
    assert st["leds"] == steady
    assert log.events(mark) == []
    # and the gateway still takes good commands
    assert bench.cmd("state", wan=1)["wan"] == "connecting"
    wait_leds(bench, {"PWR": "on", "TLS": "blink-250", "LMC": "on", "wMT": "flash"}, 10)


# ------------------------------------------------------------------ (c) the host goes away


def test_host_lost_then_back(bench):
    wait_leds(bench, NORMAL_IDLE)
    bench.cmd("state", wan=3, lmc=1)
    wait_leds(bench, {"PWR": "on", "TLS": "on", "LMC": "on", "wMT": "flash"}, timeout=10)
    log = log_of(bench)
    time.sleep(0.3)
    mark = log.size()

    bench.kill_host()
    killed = time.monotonic()
    first_change = None
    while time.monotonic() - killed < 9:
        if first_change is None and log.events(mark):
            first_change = time.monotonic() - killed
        if first_change is not None and time.monotonic() - killed > first_change + 3.2:
            break
        time.sleep(0.02)
    assert first_change is not None, "the LEDs never changed after the host died"
    # the firmware notices after its dead timeout (5 s), not long before and not much later
    assert 4.0 <= first_change <= 7.0, first_change

    evs = per_led(log.events(mark))
    # link_lost: TLS and LMC go dark (only the host knows them), wMT stays dark
    assert evs["TLS"] == [(evs["TLS"][0][0], 0)], evs["TLS"]
    assert evs["LMC"] == [(evs["LMC"][0][0], 0)], evs["LMC"]
    assert abs(evs["TLS"][0][0] - evs["LMC"][0][0]) <= 15
    assert evs["wMT"] == []
    # PWR blinks 500/500 ("starting"), beginning with its on segment at the moment of the loss
    pwr = evs["PWR"]
    check_alternates(pwr, "PWR")
    assert len(pwr) >= 5, pwr
    assert pwr[0][1] == 0
    assert 440 <= pwr[0][0] - evs["TLS"][0][0] <= 560, (pwr[0], evs["TLS"][0])
    for d in intervals(pwr):
        assert 440 <= d <= 560, (d, pwr)

    # a new host: the link comes back and PWR is steady on again
    bench.start_host()
    st = wait_leds(bench, NORMAL_IDLE, timeout=20)
    assert st["firmware"]["boot"] == 1  # the firmware ran on throughout
    time.sleep(0.3)
    assert per_led(log.events())["PWR"][-1][1] == 1
    mark = log.size()
    time.sleep(1.2)
    assert [e for e in log.events(mark) if e[1] == "PWR"] == []
