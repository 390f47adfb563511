"""Runs the self-test: at start, every 4 hours, and on demand (consumer, technician, GWA).

Seeds: 001 E-5.8 (at start and every 4 hours), 001 E-4.4.3 (consumer: once per 600 s, with a
countdown to the next allowed test), 002 §7.4 (consumer: once per 24 h, the next allowed time
shown), 000 §4.4 (technician), 000 Tabelle 13: 10063 started by [Initiator], 10064 passed,
10065 finished with [n] recoverable and [n] severe errors.

    st = SelfTest(checks, opstate, emit, path=data_dir / "selftest.json")
    # emit(event_id, params): params are smgw.events.emit's keyword arguments
    st.run("start")                     # before opstate.start()
    if st.due(): st.run("periodic")
    st.run("consumer")                  # RateLimited(next_allowed_ms) when too early
    st.last()                           # the last Report, also after a restart

Every failed check with a cause raises that cause in the operating state (source "selftest");
a cause the self-test raised before and no check reports any more is withdrawn (sticky ones
stay until the administrator resets them).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smgw.fileio import atomic_write
from smgw.opstate import Cause, OperatingState
from smgw.selftest.checks import RECOVERABLE, SEVERE, Check

log = logging.getLogger(__name__)

EV_STARTED = 10063  # INFO "Selbsttest wurde durch [Initiator] ausgelöst."
EV_PASSED = 10064  # INFO "Selbsttest wurde ohne Fehler abgeschlossen."
EV_FAILED = 10065  # WARNING "... mit [n] behebbaren Fehler(n) und [n] schweren Fehlern ..."

# trigger -> the [Initiator] of 10063 ("Selbsttest gestartet, veranlasst durch {initiator}.")
INITIATORS = {
    "start": "das SMGW beim Start",
    "periodic": "das SMGW (alle 4 Stunden)",
    "consumer": "den Letztverbraucher",
    "technician": "den Servicetechniker",
    "gwa": "den Gateway-Administrator",
}
PERIOD_S = 4 * 3600  # 001 E-5.8
CONSUMER_MIN_INTERVAL_S = 600  # 001 E-4.4.3; 002 §7.4 has 24 h
SOURCE = "selftest"
FORMAT = 1

CheckFn = Callable[[], Check | Iterable[Check]]


class RateLimited(Exception):
    """The consumer asked too early; ``next_allowed_ms`` is when the next test may start."""

    def __init__(self, next_allowed_ms: int) -> None:
        super().__init__(f"the next self-test is allowed at {next_allowed_ms} ms")
        self.next_allowed_ms = next_allowed_ms


class Busy(Exception):
    """A self-test is running already (002 §9.4 1900502)."""


@dataclass
class Report:
    ok: bool
    started_ms: int
    trigger: str
    checks: list[Check] = field(default_factory=list)
    finished_ms: int = 0

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "started_ms": self.started_ms, "finished_ms": self.finished_ms,
                "trigger": self.trigger, "checks": [c.to_dict() for c in self.checks]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Report:
        return cls(ok=bool(d["ok"]), started_ms=int(d["started_ms"]),
                   trigger=str(d["trigger"]),
                   checks=[Check.from_dict(c) for c in d.get("checks", [])],
                   finished_ms=int(d.get("finished_ms", 0)))


class SelfTest:
    def __init__(self, checks: list[CheckFn], opstate: OperatingState,
                 emit: Callable[[int, dict[str, Any]], None], *,
                 clock: Callable[[], float] = time.time,
                 consumer_min_interval_s: float = CONSUMER_MIN_INTERVAL_S,
                 period_s: float = PERIOD_S, path: Path | str | None = None) -> None:
        self.checks = list(checks)
        self.opstate = opstate
        self._emit = emit
        self._route: dict[str, str] = {}  # consumer-log routing of the running test
        self._clock = clock
        self.consumer_min_interval_s = consumer_min_interval_s
        self.period_s = period_s
        self._path = Path(path) if path is not None else None
        self._running = threading.Lock()
        self._last: Report | None = None
        self._last_consumer_ms: int | None = None
        self._load()

    # ------------------------------------------------------------------ schedule

    def last(self) -> Report | None:
        return self._last

    def next_due(self) -> float:
        """When the periodic test is due (clock seconds): 4 hours after the last test of any
        trigger, at once if there was none."""
        return self._last.started_ms / 1000 + self.period_s if self._last else 0.0

    def due(self, now: float | None = None) -> bool:
        return (self._clock() if now is None else now) >= self.next_due()

    def next_consumer_allowed_ms(self) -> int:
        if self._last_consumer_ms is None:
            return 0
        return self._last_consumer_ms + int(self.consumer_min_interval_s * 1000)

    # ------------------------------------------------------------------ run

    def run(self, trigger: str, consumer_log: str | None = None) -> Report:
        """Runs every check; ``consumer_log``: the consumer who started it, whose consumer log
        gets its entries (no one else's)."""
        self._route = {} if consumer_log is None else {"consumer_log": consumer_log}
        if trigger not in INITIATORS:
            raise ValueError(f"unknown self-test trigger {trigger!r}; "
                             f"known: {', '.join(INITIATORS)}")
        if not self._running.acquire(blocking=False):
            raise Busy("a self-test is running already")
        try:
            now_ms = int(self._clock() * 1000)
            if trigger == "consumer":
                allowed = self.next_consumer_allowed_ms()
                if now_ms < allowed:
                    raise RateLimited(allowed)
                self._last_consumer_ms = now_ms
            self._emit(EV_STARTED, {"initiator": INITIATORS[trigger],
                                    "context": {"trigger": trigger}, **self._route})
            report = Report(ok=True, started_ms=now_ms, trigger=trigger)
            for fn in self.checks:
                report.checks.extend(self._run_one(fn))
            report.ok = not report.failures
            report.finished_ms = int(self._clock() * 1000)
            self._last = report
            self._save()
            self._announce(report)
            self._apply(report)
            return report
        finally:
            self._running.release()

    def _run_one(self, fn: CheckFn) -> list[Check]:
        name = getattr(fn, "__qualname__", None) or type(fn).__name__
        t0 = time.perf_counter()
        try:
            res = fn()
            out = [res] if isinstance(res, Check) else list(res)
            if not all(isinstance(c, Check) for c in out):
                raise TypeError(f"{name} returned {res!r}, not Check(s)")
            return out
        except Exception as e:  # noqa: BLE001 - a check that cannot run is a finding itself
            log.exception("self-test check crashed", extra={"fields": {"check": name}})
            return [Check("ST-ERROR", False, f"{name}: {type(e).__name__}: {e}",
                          Cause.SELFTEST_ERROR, (time.perf_counter() - t0) * 1000)]

    def _announce(self, report: Report) -> None:
        fails = report.failures
        if not fails:
            context = {"trigger": report.trigger, "checks": len(report.checks)}
            self._emit(EV_PASSED, {"context": context, **self._route})
            log.info("self-test passed", extra={"fields": context})
            return
        params = {
            "recoverable": sum(1 for c in fails if c.severity == RECOVERABLE),
            "severe": sum(1 for c in fails if c.severity == SEVERE),
            "errors": "; ".join(f"{c.code}: {c.detail}" for c in fails),
            "status": "failed",
            "context": {"codes": ", ".join(c.code for c in fails), "trigger": report.trigger},
        }
        self._emit(EV_FAILED, {**params, **self._route})
        log.warning("self-test failed", extra={"fields": {
            k: v for k, v in params.items() if k != "context"} | params["context"]})

    def _apply(self, report: Report) -> None:
        # raise what failed, then withdraw what the self-test raised before and no longer
        # finds (in this order, so that one cause replacing another does not pass through
        # normal operation in the log)
        failing: dict[Cause, list[Check]] = {}
        for c in report.failures:
            if c.cause is not None:
                failing.setdefault(c.cause, []).append(c)
        for cause, checks in failing.items():
            self.opstate.raise_cause(cause, "; ".join(f"{c.code}: {c.detail}" for c in checks),
                                     source=SOURCE)
        for cause in self.opstate.held_by(SOURCE):
            if cause not in failing:
                self.opstate.clear_cause(cause, source=SOURCE)

    # ------------------------------------------------------------------ persistence

    def _save(self) -> None:
        if self._path is None:
            return
        doc = {"format": FORMAT, "last": self._last.to_dict() if self._last else None,
               "last_consumer_ms": self._last_consumer_ms}
        try:
            atomic_write(self._path, (json.dumps(doc, indent=1) + "\n").encode(), 0o600)
        except OSError as e:
            log.error("could not persist the self-test report", extra={"fields": {
                "path": str(self._path), "error": str(e)}})

    def _load(self) -> None:
        if self._path is None or not self._path.exists():
            return
        try:
            doc = json.loads(self._path.read_bytes())
            if doc.get("format") != FORMAT:
                raise ValueError(f"format {doc.get('format')!r}")
            self._last = Report.from_dict(doc["last"]) if doc.get("last") else None
            lc = doc.get("last_consumer_ms")
            self._last_consumer_ms = int(lc) if lc is not None else None
        except (OSError, ValueError, KeyError, TypeError) as e:
            # only the history is lost: the next test runs at once and writes a new file
            log.error("self-test report unreadable", extra={"fields": {
                "path": str(self._path), "error": str(e)}})
