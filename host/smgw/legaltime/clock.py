"""The gateway's legal time: synchronised from the GWA's time service, valid or not.

Rules (seed 000 Tabelle 13 logs 10041, 10067-10073; seed 001 D-2.2; seed 002 §2.6, §9.3.4;
TR-03109-1), details and decisions in ``docs/legal-time.md``:

- Legal time runs on the monotonic clock from an anchor (the last synchronisation, or the RTC
  read once at boot), so a jump of the OS wall clock never moves it. Between syncs it is not
  slewed: each good sync steps it to the server's time.
- A good sync whose correction exceeds 3 % of the smallest registration period (27 s for 15 min)
  makes the values captured since the last good sync time-invalid: 10072 with the range, which
  :class:`SyncResult` also reports so the store can flag those values.
- Time is invalid after a power loss longer than the RTC bridges (10041; 48 h, seed 002 §2.6),
  36 h after the last good sync (10071, exactly then, once), and from the first start until
  the first sync. It becomes valid again only by a good sync (10073).
- Every sync logs 10067; a failed one logs 10068 (hours without sync) and, when the server did
  not answer, 10069: the first failure of a streak, then at most once per
  ``failure_log_interval_s``. Retries back off from ``retry_min_s`` to ``retry_max_s``.
- The state (last sync, last known legal time and wall time, validity, invalid intervals) is
  written atomically (temp file, fsync, rename, fsync of the directory).

Thread safety: the public methods may be called from several threads; the source is queried
outside the lock and the ``emit`` callback is called outside it (it may call ``now_ms()``).
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from smgw.fileio import atomic_write
from .sntp import TimeSample, TimeSource, TimeSourceError

STATE_VERSION = 1
NO_ANSWER = ("timeout", "network")  # failure codes that mean "server did not answer" (10069)

# reasons for invalid time, as reported by status()["reason"] and in 10073's "cause"
NEVER_SYNCHRONISED = "never_synchronised"
STATE_UNREADABLE = "state_unreadable"
POWER_LOSS = "power_loss"
SYNC_OVERDUE = "sync_overdue"

Emit = Callable[[int, dict[str, Any]], None]


@dataclass(frozen=True)
class SyncResult:
    """Outcome of :meth:`LegalClock.sync`.

    ``offset_ms`` is the correction applied (server time minus legal time before the sync).
    ``invalid_from_ms``/``invalid_until_ms`` (inclusive, legal-time ms as stamped on values)
    are set when a too large correction made the values in that range time-invalid (10072).
    ``code``/``reason`` describe a failure (a :class:`TimeSourceError` code, or ``delay``).
    """

    ok: bool
    valid: bool
    server: str | None = None
    offset_ms: int | None = None
    delay_ms: int | None = None
    remote_ms: int | None = None
    invalid_from_ms: int | None = None
    invalid_until_ms: int | None = None
    recovered: bool = False
    code: str | None = None
    reason: str | None = None
    events: tuple[int, ...] = ()


class LegalClock:
    """Legal time of the gateway. Call :meth:`boot` once, then :meth:`tick` periodically and
    :meth:`sync` whenever :meth:`next_sync_in_s` reaches 0."""

    def __init__(self, source: TimeSource, *, emit: Emit, state_path: Path,
                 wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 rtc_bridge_s: float = 48 * 3600,  # RTC power reserve, seed 002 §2.6
                 max_unsync_s: float = 36 * 3600,
                 sync_interval_s: float = 6 * 3600,
                 smallest_period_s: float = 900,
                 retry_min_s: float = 60, retry_max_s: float = 3600,
                 max_delay_s: float = 5.0, persist_interval_s: float = 600,
                 failure_log_interval_s: float = 6 * 3600,
                 max_intervals: int = 1000, gateway_id: str = "") -> None:
        self._source, self._emit, self._path = source, emit, Path(state_path)
        self._wall, self._mono = wall, monotonic
        self.rtc_bridge_s, self.max_unsync_s = rtc_bridge_s, max_unsync_s
        self.sync_interval_s, self.smallest_period_s = sync_interval_s, smallest_period_s
        self.tolerance_ms = 0.03 * smallest_period_s * 1000
        self.retry_min_s, self.retry_max_s = retry_min_s, retry_max_s
        self.max_delay_s, self.persist_interval_s = max_delay_s, persist_interval_s
        self.failure_log_interval_s = failure_log_interval_s
        self.max_intervals, self.gateway_id = max_intervals, gateway_id
        self._lock = threading.RLock()
        m = monotonic()
        self._anchor_mono, self._anchor_ms = m, wall() * 1000.0
        self._boot_mono = m
        self._last_sync_ms: int | None = None
        self._last_server: str | None = None
        self._last_offset_ms: int | None = None
        self._valid, self._reason = False, NEVER_SYNCHRONISED
        self._invalid_since_ms: int | None = self.now_ms()
        self._intervals: list[list[int]] = []  # closed [from, until] ranges, inclusive
        self._failures = 0
        self._failure_logged_mono = -math.inf
        self._next_sync_mono = m
        self._persisted_mono = -math.inf

    # ---------------------------------------------------------------------------- reading

    def now_ms(self) -> int:
        """Legal time in Unix milliseconds (also while invalid: then it is a best guess)."""
        with self._lock:
            return math.floor(self._legal_at(self._mono()))

    @property
    def valid(self) -> bool:
        events = self._advance()
        self._send(events)
        return self._valid

    def time_valid_at(self, ts_ms: int) -> bool:
        """Whether a value stamped ``ts_ms`` has valid time: False inside an invalid range and,
        while the time is invalid, from the start of the current invalid stretch on."""
        self._send(self._advance())
        with self._lock:
            if not self._valid and self._invalid_since_ms is not None \
                    and ts_ms >= self._invalid_since_ms:
                return False
            return not any(a <= ts_ms <= b for a, b in self._intervals)

    def next_sync_in_s(self) -> float:
        with self._lock:
            return max(0.0, self._next_sync_mono - self._mono())

    def status(self) -> dict[str, Any]:
        self._send(self._advance())
        with self._lock:
            now = self.now_ms()
            return {
                "valid": self._valid,
                "reason": None if self._valid else self._reason,
                "now_ms": now,
                "last_sync_ms": self._last_sync_ms,
                "since_sync_s": None if self._last_sync_ms is None
                else (now - self._last_sync_ms) / 1000,
                "last_offset_ms": self._last_offset_ms,
                "server": self._last_server,
                "invalid_since_ms": None if self._valid else self._invalid_since_ms,
                "invalid_ranges": len(self._intervals),
                "consecutive_failures": self._failures,
                "next_sync_in_s": self.next_sync_in_s(),
                "tolerance_ms": self.tolerance_ms,
                "max_unsync_s": self.max_unsync_s,
                "rtc_bridge_s": self.rtc_bridge_s,
            }

    # ---------------------------------------------------------------------------- driving

    def boot(self, power_off_s: float | None) -> None:
        """Restores the persisted state at start. ``power_off_s``: how long the gateway was
        without power, if known (else estimated from the RTC and the last persisted time)."""
        events: list[tuple[int, dict[str, Any]]] = []
        with self._lock:
            m, wall_ms = self._mono(), self._wall() * 1000.0
            self._boot_mono = self._next_sync_mono = m
            self._anchor_mono, self._anchor_ms = m, wall_ms
            try:
                st = self._load()
            except (OSError, ValueError, KeyError, TypeError):
                st, self._reason = None, STATE_UNREADABLE
            if st is None:
                self._valid = False
                self._invalid_since_ms = self.now_ms()
                self._persist_locked()
                return
            self._anchor_ms = wall_ms + (st["legal_ms"] - st["wall_ms"])
            self._last_sync_ms = st["last_sync_ms"]
            self._last_server = st["server"]
            self._last_offset_ms = st["last_offset_ms"]
            self._valid, self._reason = st["valid"], st["reason"]
            self._invalid_since_ms = st["invalid_since_ms"]
            self._intervals = [list(r) for r in st["intervals"]]
            estimated = power_off_s is None
            if estimated:
                power_off_s = (wall_ms - st["wall_ms"]) / 1000
            rtc_backwards = wall_ms < st["wall_ms"]
            if self._last_sync_ms is None:
                self._valid, self._reason = False, self._reason or NEVER_SYNCHRONISED
            if rtc_backwards or power_off_s > self.rtc_bridge_s:
                events.append((10041, {"smgw": self.gateway_id,
                                       "power_off_s": round(power_off_s),
                                       "rtc_bridge_s": round(self.rtc_bridge_s),
                                       "estimated": estimated,
                                       "rtc_backwards": rtc_backwards}))
                if not self._valid and self._invalid_since_ms is not None:
                    # close the stretch of the old time scale; the RTC's new one may even lie
                    # before it, so the open stretch restarts at the time read now
                    self._add_interval(self._invalid_since_ms,
                                       max(self._invalid_since_ms, st["legal_ms"]))
                self._valid, self._reason = False, POWER_LOSS
                self._invalid_since_ms = self.now_ms()
            events += self._advance_locked()
            self._persist_locked()
        self._send(events)

    def tick(self) -> float:
        """Periodic housekeeping: time validity (10071 at 36 h), state saved every
        ``persist_interval_s``. Returns seconds until the next sync is due."""
        events = self._advance()
        with self._lock:
            if self._mono() - self._persisted_mono >= self.persist_interval_s:
                self._persist_locked()
        self._send(events)
        return self.next_sync_in_s()

    def save(self) -> None:
        """Persists the state now (at an orderly shutdown)."""
        with self._lock:
            self._persist_locked()

    def sync(self) -> SyncResult:
        """Queries the source once and applies the answer (or records the failure)."""
        server = getattr(self._source, "server", None)
        try:
            sample = self._source.query()
        except TimeSourceError as e:
            return self._failed(e.code, e.reason, server)
        except OSError as e:
            return self._failed("network", str(e), server)
        if sample.delay_s > self.max_delay_s:
            return self._failed("delay", f"round trip {sample.delay_s:.3f} s exceeds "
                                         f"{self.max_delay_s} s", sample.server)
        return self._apply(sample)

    # ---------------------------------------------------------------------------- internals

    def _legal_at(self, m: float) -> float:
        return self._anchor_ms + (m - self._anchor_mono) * 1000.0

    def _apply(self, sample: TimeSample) -> SyncResult:
        events: list[tuple[int, dict[str, Any]]] = []
        with self._lock:
            events += self._advance_locked()
            m, now_mono = sample.at_monotonic, self._mono()
            if sample.server_time_s is not None:
                remote_ms = sample.server_time_s * 1000.0
            else:
                remote_ms = (self._wall() - (now_mono - m) + sample.offset_s) * 1000.0
            offset_ms = round(remote_ms - self._legal_at(m))
            old_now = math.floor(self._legal_at(now_mono))  # last stamp of the old time scale
            was_valid, cause = self._valid, self._reason
            # a correction can only be blamed on the clock if it ran on since the last sync:
            # not after the first start and not after the RTC lost the time (10041)
            continuous = self._last_sync_ms is not None \
                and (was_valid or cause == SYNC_OVERDUE)
            self._anchor_mono, self._anchor_ms = m, remote_ms
            delay_ms = round(sample.delay_s * 1000)
            events.append((10067, {"profile": sample.server, "remote_time": iso_utc(remote_ms),
                                   "seconds": round(offset_ms / 1000, 3),
                                   "offset_ms": offset_ms,
                                   "remote_timestamp_ms": round(remote_ms),
                                   "delay_ms": delay_ms, "stratum": sample.stratum}))
            inv_from = inv_until = None
            if continuous and abs(offset_ms) > self.tolerance_ms:
                assert self._last_sync_ms is not None
                inv_from, inv_until = self._last_sync_ms, old_now
                self._add_interval(inv_from, inv_until)
                events.append((10072, {"profile": sample.server, "offset_ms": offset_ms,
                                       "tolerance_ms": round(self.tolerance_ms),
                                       "invalid_from_ms": inv_from,
                                       "invalid_until_ms": inv_until}))
            if not was_valid:
                since = self._invalid_since_ms if self._invalid_since_ms is not None else old_now
                self._add_interval(since, max(since, old_now))
                events.append((10073, {"profile": sample.server, "cause": cause,
                                       "invalid_since_ms": since,
                                       "invalid_until_ms": max(since, old_now)}))
            self._valid, self._reason, self._invalid_since_ms = True, None, None
            self._last_sync_ms = round(remote_ms)
            self._last_server, self._last_offset_ms = sample.server, offset_ms
            self._failures = 0
            self._next_sync_mono = m + self.sync_interval_s
            self._persist_locked()
            result = SyncResult(ok=True, valid=True, server=sample.server, offset_ms=offset_ms,
                                delay_ms=delay_ms, remote_ms=round(remote_ms),
                                invalid_from_ms=inv_from, invalid_until_ms=inv_until,
                                recovered=not was_valid, events=tuple(e for e, _ in events))
        self._send(events)
        return result

    def _failed(self, code: str, reason: str, server: str | None) -> SyncResult:
        events: list[tuple[int, dict[str, Any]]] = []
        with self._lock:
            m = self._mono()
            self._failures += 1
            backoff = self.retry_min_s * 2 ** min(self._failures - 1, 30)
            self._next_sync_mono = m + min(backoff, self.retry_max_s)
            # the first failure of a streak is logged, then at most one per interval: 10068
            # and 10069 go to the Eichlog, whose capacity is finite (10097/10098)
            if self._failures == 1 \
                    or m - self._failure_logged_mono >= self.failure_log_interval_s:
                self._failure_logged_mono = m
                if code in NO_ANSWER:
                    events.append((10069, {"profile": server, "code": code, "reason": reason}))
                if self._last_sync_ms is not None:
                    unsynced_s = (self._legal_at(m) - self._last_sync_ms) / 1000
                else:
                    unsynced_s = m - self._boot_mono
                events.append((10068, {"hours": max(0, math.floor(unsynced_s / 3600)),
                                       "profile": server, "code": code, "reason": reason}))
            events += self._advance_locked()
            result = SyncResult(ok=False, valid=self._valid, server=server, code=code,
                                reason=reason, events=tuple(e for e, _ in events))
        self._send(events)
        return result

    def _advance(self) -> list[tuple[int, dict[str, Any]]]:
        with self._lock:
            return self._advance_locked()

    def _advance_locked(self) -> list[tuple[int, dict[str, Any]]]:
        """Turns the time invalid the moment the last good sync is max_unsync_s old (10071)."""
        if not self._valid or self._last_sync_ms is None:
            return []
        deadline_ms = self._last_sync_ms + round(self.max_unsync_s * 1000)
        if self._legal_at(self._mono()) < deadline_ms:
            return []
        self._valid, self._reason, self._invalid_since_ms = False, SYNC_OVERDUE, deadline_ms
        self._persist_locked()
        return [(10071, {"last_sync_ms": self._last_sync_ms,
                         "hours": math.floor(self.max_unsync_s / 3600),
                         "invalid_from_ms": deadline_ms})]

    def _add_interval(self, a: int, b: int) -> None:
        self._intervals.append([a, b])
        del self._intervals[:-self.max_intervals]

    def _send(self, events: list[tuple[int, dict[str, Any]]]) -> None:
        for event_id, params in events:
            self._emit(event_id, params)

    # ---------------------------------------------------------------------------- persistence

    def _load(self) -> dict[str, Any] | None:
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            return None
        st = json.loads(raw)
        if st.get("version") != STATE_VERSION:
            raise ValueError(f"state version {st.get('version')!r}")
        for key in ("legal_ms", "wall_ms"):
            if not isinstance(st[key], (int, float)):
                raise TypeError(key)
        return st

    def _persist_locked(self) -> None:
        m = self._mono()
        state = {
            "version": STATE_VERSION,
            "legal_ms": math.floor(self._legal_at(m)),
            "wall_ms": math.floor(self._wall() * 1000),
            "last_sync_ms": self._last_sync_ms,
            "server": self._last_server,
            "last_offset_ms": self._last_offset_ms,
            "valid": self._valid,
            "reason": self._reason,
            "invalid_since_ms": self._invalid_since_ms,
            "intervals": self._intervals,
        }
        atomic_write(self._path, json.dumps(state, indent=1).encode(), 0o600)
        self._persisted_mono = m


def iso_utc(ms: float) -> str:
    """``2025-06-15T15:06:40.123Z``: Unix milliseconds as an ISO 8601 UTC timestamp."""
    t = datetime.fromtimestamp(math.floor(ms) / 1000, tz=timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{math.floor(ms) % 1000:03d}Z"
