"""Legal clock with a controllable time source and controllable wall/monotonic clocks.

``Clocks`` is our own simulated world: the true time, the host's wall clock (OS time, may jump)
and its monotonic clock. ``GwaTime`` is a time source that answers the true time plus a skew
(how far our clock has drifted) or fails with a given code. One test at the end runs the clock
against the real UDP NTP server of test_sntp.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from lying_ntp_server import LyingNtpServer

from smgw.legaltime.clock import LegalClock, SyncResult
from smgw.legaltime.sntp import SntpSource, TimeSample, TimeSourceError

H = 3600.0
T0 = 1_750_000_000.0  # 2025-06-15


class Clocks:
    def __init__(self) -> None:
        self.true, self.wall, self.mono = T0, T0, 5_000.0

    def advance(self, s: float) -> None:
        self.true += s
        self.wall += s
        self.mono += s

    def reboot(self, off_s: float, rtc_error_s: float = 0.0) -> None:
        """Power off for ``off_s``: the monotonic clock restarts, the RTC kept (or lost) time."""
        self.true += off_s
        self.wall += off_s + rtc_error_s
        self.mono = 12.0


class GwaTime:
    server = "gwa-ntp"

    def __init__(self, clocks: Clocks) -> None:
        self.clocks = clocks
        self.skew_s = 0.0
        self.delay_s = 0.040
        self.error: str | None = None
        self.queries = 0

    def query(self) -> TimeSample:
        self.queries += 1
        if self.error:
            raise TimeSourceError(self.error, f"{self.error} from {self.server}")
        server_time = self.clocks.true + self.skew_s
        return TimeSample(offset_s=server_time - self.clocks.wall, delay_s=self.delay_s,
                          server=self.server, stratum=1, at_monotonic=self.clocks.mono,
                          server_time_s=server_time)


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.clocks = Clocks()
        self.gwa = GwaTime(self.clocks)
        self.path = tmp_path / "state" / "legaltime.json"
        self.events: list[tuple[int, dict]] = []

    def clock(self, **kw) -> LegalClock:
        return LegalClock(self.gwa, emit=lambda i, p: self.events.append((i, p)),
                          state_path=self.path, wall=lambda: self.clocks.wall,
                          monotonic=lambda: self.clocks.mono, **kw)

    def ids(self) -> list[int]:
        out = [i for i, _ in self.events]
        self.events.clear()
        return out

    def synced_clock(self, **kw) -> LegalClock:
        clock = self.clock(**kw)
        clock.boot(None)
        assert clock.sync().ok
        self.events.clear()
        return clock


@pytest.fixture
def world(tmp_path):
    return World(tmp_path)


def ms(t: float) -> int:
    return round(t * 1000)


def test_first_start_is_invalid_until_the_first_sync(world):
    clock = world.clock()
    clock.boot(None)
    assert not clock.valid and clock.status()["reason"] == "never_synchronised"
    assert not clock.time_valid_at(clock.now_ms())
    assert world.ids() == [] and clock.next_sync_in_s() == 0
    world.gwa.skew_s = 3 * H  # the factory RTC may be far off: no 10072 for the first sync
    result = clock.sync()
    assert result.ok and result.recovered and result.invalid_from_ms is None
    assert world.ids() == [10067, 10073]
    assert clock.valid and clock.now_ms() == ms(world.clocks.true + 3 * H)
    assert clock.next_sync_in_s() == 6 * H


def test_small_skew_is_corrected_silently(world):
    clock = world.synced_clock()
    world.clocks.advance(6 * H)
    world.gwa.skew_s = 2.5  # our oscillator lost 2.5 s in 6 h
    before = clock.now_ms()
    result = clock.sync()
    assert result.ok and result.offset_ms == 2500 and result.invalid_from_ms is None
    assert not result.recovered
    assert world.events == [(10067, {"profile": "gwa-ntp",
                                     "remote_time": "2025-06-15T21:06:42.500Z",
                                     "seconds": 2.5, "offset_ms": 2500,
                                     "remote_timestamp_ms": ms(world.clocks.true + 2.5),
                                     "delay_ms": 40, "stratum": 1})]
    assert clock.valid and clock.now_ms() == before + 2500
    assert clock.time_valid_at(before - 1000)


def test_tolerance_is_3_percent_of_the_smallest_period(world):
    clock = world.synced_clock()
    world.gwa.skew_s = 27.0  # exactly 3 % of 900 s: still tolerated
    assert clock.sync().invalid_from_ms is None
    world.gwa.skew_s = 27.0 + 27.001
    assert clock.sync().invalid_from_ms is not None
    clock5 = World(world.path.parent.parent / "w5").synced_clock(smallest_period_s=300)
    assert clock5.tolerance_ms == 9000


def test_big_correction_flags_the_values_since_the_last_sync(world):
    clock = world.synced_clock()
    last_sync = clock.now_ms()
    stamps = []
    for _ in range(4):  # values every 15 min
        world.clocks.advance(900)
        stamps.append(clock.now_ms())
    world.gwa.skew_s = 45.0
    old_now = clock.now_ms()
    result = clock.sync()
    assert result.ok and result.valid and result.offset_ms == 45_000
    assert (result.invalid_from_ms, result.invalid_until_ms) == (last_sync, old_now)
    assert world.ids() == [10067, 10072]
    assert all(not clock.time_valid_at(t) for t in stamps)
    assert clock.valid and clock.time_valid_at(clock.now_ms())
    assert clock.time_valid_at(last_sync - 1)


def test_big_backward_correction(world):
    clock = world.synced_clock()
    world.clocks.advance(900)
    last_sync, stamp = world.clocks.true, clock.now_ms()
    world.gwa.skew_s = -60.0  # our clock ran fast
    result = clock.sync()
    assert result.offset_ms == -60_000 and clock.now_ms() == stamp - 60_000
    assert world.events[1] == (10072, {"profile": "gwa-ntp", "offset_ms": -60_000,
                                       "tolerance_ms": 27_000,
                                       "invalid_from_ms": ms(last_sync - 900),
                                       "invalid_until_ms": stamp})
    assert not clock.time_valid_at(stamp)
    # stamps after the step overlap the flagged range for 60 s: conservatively invalid
    assert not clock.time_valid_at(clock.now_ms())
    world.clocks.advance(61)
    assert clock.time_valid_at(clock.now_ms()) and clock.valid


def test_loss_of_sync_for_36_hours(world):
    clock = world.synced_clock()
    last_sync = clock.now_ms()
    world.gwa.error = "timeout"
    world.clocks.advance(6 * H)
    failed = clock.sync()
    assert not failed.ok and failed.code == "timeout" and failed.valid
    assert world.events == [
        (10069, {"profile": "gwa-ntp", "code": "timeout", "reason": "timeout from gwa-ntp"}),
        (10068, {"hours": 6, "profile": "gwa-ntp", "code": "timeout",
                 "reason": "timeout from gwa-ntp"})]
    world.events.clear()
    assert clock.next_sync_in_s() == 60  # retries back off 60 s, 120 s … up to 1 h
    world.gwa.error = "kiss"
    world.clocks.advance(60)
    assert clock.sync().code == "kiss" and world.ids() == []  # logged at most every 6 h
    assert clock.next_sync_in_s() == 120
    world.clocks.advance(6 * H - 60)
    assert clock.sync().code == "kiss" and world.events == [  # answered, but gave no time
        (10068, {"hours": 12, "profile": "gwa-ntp", "code": "kiss",
                 "reason": "kiss from gwa-ntp"})]
    world.events.clear()

    tick = 2.0 ** -10  # about 1 ms, exact in binary floating point
    world.clocks.advance(36 * H - 12 * H - tick)  # just before the limit
    assert clock.tick() == 0 and clock.valid and world.ids() == []
    value_before = clock.now_ms()
    world.clocks.advance(tick)  # exactly 36 h after the last sync
    assert not clock.valid
    assert clock.status()["reason"] == "sync_overdue"
    assert world.events == [(10071, {"last_sync_ms": last_sync, "hours": 36,
                                     "invalid_from_ms": last_sync + ms(36 * H)})]
    world.events.clear()
    stamps = []
    for _ in range(8):  # 10071 once, however often we tick
        world.clocks.advance(900)
        clock.tick()
        stamps.append(clock.now_ms())
    assert world.ids() == []
    assert clock.time_valid_at(value_before)
    assert not any(clock.time_valid_at(t) for t in stamps)

    world.gwa.error = None
    world.gwa.skew_s = 1.0
    result = clock.sync()
    assert result.ok and result.recovered and result.invalid_from_ms is None
    assert world.ids() == [10067, 10073]
    assert clock.valid and clock.time_valid_at(clock.now_ms())
    assert not any(clock.time_valid_at(t) for t in stamps)  # still flagged afterwards
    world.clocks.advance(900)
    assert clock.time_valid_at(clock.now_ms())


def test_big_correction_after_loss_of_sync_flags_back_to_the_last_sync(world):
    clock = world.synced_clock()
    last_sync = clock.now_ms()
    world.clocks.advance(40 * H)
    assert not clock.valid
    world.gwa.skew_s = 30.0
    result = clock.sync()
    assert result.invalid_from_ms == last_sync and result.recovered
    assert [i for i, _ in world.events] == [10071, 10067, 10072, 10073]
    assert not clock.time_valid_at(last_sync + ms(H))


def test_power_loss_longer_than_the_rtc_bridges(world):
    clock = world.synced_clock(gateway_id="EPPC0012345678")
    world.clocks.advance(H)
    clock.save()
    world.clocks.reboot(49 * H, rtc_error_s=-20.0)
    clock = world.clock(gateway_id="EPPC0012345678")
    clock.boot(49 * H)
    assert world.events == [(10041, {"power_off_s": 49 * 3600, "rtc_bridge_s": 48 * 3600,
                                     "estimated": False, "rtc_backwards": False,
                                     "smgw": "EPPC0012345678"})]
    world.events.clear()
    assert not clock.valid and clock.status()["reason"] == "power_loss"
    world.clocks.advance(40 * H)  # invalid anyway: no 10071 on top
    clock.tick()
    assert world.ids() == [] and not clock.time_valid_at(clock.now_ms())
    world.gwa.skew_s = 0.0
    result = clock.sync()
    # the RTC's 20 s error is blamed on the power loss, not on the values before it
    assert result.recovered and result.invalid_from_ms is None and result.offset_ms == 20_000
    assert world.ids() == [10067, 10073]
    assert clock.valid


def test_power_loss_within_the_bridge_keeps_time_valid(world):
    clock = world.synced_clock()
    world.clocks.advance(2 * H)
    clock.tick()
    before = clock.now_ms()
    world.clocks.reboot(30 * H)
    clock = world.clock()
    clock.boot(None)  # estimated from the RTC and the last saved time
    assert clock.valid and world.ids() == []
    assert clock.now_ms() == before + ms(30 * H)
    world.clocks.advance(4 * H - 1)  # 36 h after the last sync, power-off included
    assert clock.valid
    world.clocks.advance(1)
    assert not clock.valid and world.ids() == [10071]


def test_estimated_power_loss_and_rtc_going_backwards(world):
    clock = world.synced_clock()
    clock.tick()
    world.clocks.reboot(50 * H)
    world.clock().boot(None)
    assert world.events[0][0] == 10041 and world.events[0][1]["estimated"]
    world.events.clear()
    world.clocks.reboot(60, rtc_error_s=-100 * 24 * H)  # RTC reset: reads 100 days ago
    clock = world.clock()
    clock.boot(60)
    assert world.events[0][1]["rtc_backwards"] and not clock.valid
    assert not clock.time_valid_at(clock.now_ms())


def test_power_loss_across_the_36_hour_limit(world):
    clock = world.synced_clock()
    world.clocks.advance(35 * H)
    clock.tick()
    world.clocks.reboot(2 * H)
    clock = world.clock()
    clock.boot(2 * H)
    assert world.ids() == [10071] and not clock.valid
    clock = world.clock()
    world.clocks.reboot(60)
    clock.boot(60)
    assert world.ids() == []  # already reported before the restart


def test_os_wall_clock_jump_does_not_move_legal_time(world):
    clock = world.synced_clock()
    before = clock.now_ms()
    world.clocks.wall += 3 * H  # someone sets the OS clock
    world.clocks.advance(10)
    assert clock.now_ms() == before + 10_000 and clock.valid
    world.clocks.wall -= 5 * H
    assert clock.now_ms() == before + 10_000
    result = clock.sync()  # the server agrees with our legal time, not with the OS
    assert result.offset_ms == 0 and world.ids() == [10067]
    clock.save()
    world.clocks.reboot(0)
    clock = world.clock()
    clock.boot(0)
    assert clock.now_ms() == before + 10_000 and clock.valid


def test_state_survives_restart(world):
    clock = world.synced_clock()
    world.clocks.advance(H)
    world.gwa.skew_s = 40.0
    flagged = clock.sync()
    world.clocks.advance(60)
    clock.tick()
    st = json.loads(world.path.read_text())
    assert st["valid"] and st["last_offset_ms"] == 40_000
    assert [flagged.invalid_from_ms, flagged.invalid_until_ms] in st["intervals"]
    assert [p.name for p in world.path.parent.iterdir()] == ["legaltime.json"]  # no temp files
    world.clocks.reboot(10)
    world.events.clear()
    clock = world.clock()
    clock.boot(10)
    status = clock.status()
    assert status["valid"] and status["last_sync_ms"] == flagged.remote_ms
    assert status["last_offset_ms"] == 40_000 and status["server"] == "gwa-ntp"
    assert not clock.time_valid_at(flagged.invalid_from_ms + 1)
    assert clock.time_valid_at(flagged.invalid_from_ms - 1)
    assert world.ids() == []


def test_unreadable_state_means_invalid_time_not_a_crash(world):
    world.path.parent.mkdir(parents=True)
    world.path.write_text("{not json")
    clock = world.clock()
    clock.boot(None)
    assert not clock.valid and clock.status()["reason"] == "state_unreadable"
    assert clock.sync().recovered and clock.valid


def test_slow_answers_are_rejected(world):
    clock = world.synced_clock()
    world.gwa.delay_s = 6.0  # ±3 s uncertainty: not good enough to set legal time
    world.gwa.skew_s = 1.0
    before = clock.now_ms()
    result = clock.sync()
    assert not result.ok and result.code == "delay" and clock.now_ms() == before
    assert world.ids() == [10068]


def test_retry_backoff_and_sync_interval(world):
    clock = world.synced_clock(sync_interval_s=4 * H, failure_log_interval_s=2 * H)
    assert clock.next_sync_in_s() == 4 * H
    world.gwa.error = "network"
    waits = []
    for _ in range(8):
        clock.sync()
        waits.append(clock.next_sync_in_s())
        world.clocks.advance(waits[-1])
    assert waits == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert world.ids() == [10069, 10068, 10069, 10068]  # first failure, then (8th) after 2 h
    world.gwa.error = None
    clock.sync()
    assert clock.next_sync_in_s() == 4 * H and clock.status()["consecutive_failures"] == 0


def test_sync_result_is_frozen():
    r = SyncResult(ok=True, valid=True)
    with pytest.raises(AttributeError):
        r.ok = False  # type: ignore[misc]


def test_against_the_real_udp_server(tmp_path):
    events: list[tuple[int, dict]] = []
    with LyingNtpServer() as srv:
        clock = LegalClock(SntpSource("127.0.0.1", srv.port, timeout=0.5),
                           emit=lambda i, p: events.append((i, p)),
                           state_path=tmp_path / "lt.json")
        clock.boot(None)
        srv.lie.skew_s = 120.0  # first sync: the RTC is far off, no values to flag yet
        assert clock.sync().recovered
        assert clock.now_ms() / 1000 == pytest.approx(time.time() + 120, abs=1.0)
        srv.lie.skew_s = 121.0  # 1 s off: silently corrected
        result = clock.sync()
        assert result.ok and abs(result.offset_ms - 1000) < 500 and result.invalid_from_ms is None
        srv.lie.skew_s = 200.0  # 79 s: values since the last sync are flagged
        result = clock.sync()
        assert result.invalid_from_ms is not None and not clock.time_valid_at(
            result.invalid_from_ms)
        srv.lie.kiss = "DENY"
        result = clock.sync()
        assert not result.ok and result.code == "kiss" and clock.valid
        srv.lie.kiss, srv.lie.silent = None, True
        assert clock.sync().code == "timeout"
    # the timeout right after the kiss is the same failure streak: not logged again
    assert [i for i, _ in events] == [10067, 10073, 10067, 10067, 10072, 10068]
    assert os.path.exists(tmp_path / "lt.json")
