"""The gateway's operating state: normal, restricted, minimal or ceased operation.

Components report *causes* (time invalid, a log full, database integrity broken, a failed
self-test ...). The state is the worst state any active cause asks for. Each state switches
functions off (measuring, processing, sending, HAN, updates, all interfaces); the components ask
:meth:`OperatingState.allows` before doing their work. docs/operating-states.md has the table of
causes, states and seed references, and the reasons for every decision the seeds leave open.

Seeds: 000 = PPC manual §2.6 (Tabelle 8) and log ids 10260/10261/10271/30300, 001 = Theben D-2,
002 = EMH §8 (soft/hard lock-down) and §9.4.

    ops = OperatingState(gateway, emit, data_dir / "opstate.json")
    ops.raise_cause(Cause.TIME_INVALID, "36 h without sync", source="legaltime")
    ops.start()                         # after the start self-test: announce state, LEDs, log
    ops.allows("measuring")             # False while restricted
    ops.clear_cause(Cause.TIME_INVALID, source="legaltime")   # back to normal, 10261 + 30300
    ops.administrator_reset("gwa-1")    # the only way out of ceased and the sticky causes
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from smgw.gateway import GatewayState
from smgw.fileio import atomic_write
from smgwfw import messages as m

log = logging.getLogger(__name__)

NORMAL = "normal"
RESTRICTED = "restricted"
MINIMAL = "minimal"
CEASED = "ceased"
STATES = (NORMAL, RESTRICTED, MINIMAL, CEASED)  # from best to worst
_RANK = {s: i for i, s in enumerate(STATES)}

# what a component may ask for; "interfaces" are the network interfaces (WAN, HAN, LMN), not the
# UART to the front-end, which keeps running so the LEDs can show the state
FUNCTIONS = ("measuring", "processing", "sending", "han", "updates", "interfaces")

# seed 000 §2.6 Tabelle 8, column "Auswirkung"
SWITCHED_OFF: dict[str, frozenset[str]] = {
    NORMAL: frozenset(),
    RESTRICTED: frozenset({"measuring", "processing", "sending"}),
    MINIMAL: frozenset({"han", "measuring", "processing", "sending", "updates"}),
    CEASED: frozenset(FUNCTIONS),
}

OP_CODES = {NORMAL: m.OP_NORMAL, RESTRICTED: m.OP_RESTRICTED, MINIMAL: m.OP_MINIMAL,
            CEASED: m.OP_CEASED}

# log catalogue ids (seed 000 Tabelle 13)
EV_MEASURING_STOPPED = 10260  # ERROR "Der Messbetrieb wird eingestellt."
EV_MEASURING_RESUMED = 10261  # INFO "Der Messbetrieb wird wieder aufgenommen."
EV_OPERATION_CEASED = 10271  # ERROR "Der Betrieb wird eingestellt."
EV_NORMAL_OPERATION = 30300  # INFO "Normalbetrieb aufgenommen."

FORMAT = 1
DEFAULT_SOURCE = "default"


class Cause(str, Enum):
    """Why the gateway leaves normal operation. The value is the name stored and logged."""

    # restricted: recovers by itself once the condition is gone
    TIME_INVALID = "time-invalid"
    CONSUMER_LOG_FULL = "consumer-log-full"
    SYSTEM_LOG_FULL = "system-log-full"
    STORE_FULL = "store-full"
    METER_CERT_EXPIRED = "meter-certificate-expired"
    COMPONENT_FAILED = "component-failed"
    # minimal: the GWA must look (sticky)
    CALIBRATION_LOG_FULL = "calibration-log-full"
    DB_INTEGRITY = "database-integrity"
    LOG_INTEGRITY = "log-integrity"
    SELFTEST_ERROR = "selftest-error"
    # ceased: security violation (sticky)
    CRYPTO_SELFTEST = "crypto-selftest"
    FIRMWARE_INTEGRITY = "firmware-integrity"
    SOFTWARE_INTEGRITY = "software-integrity"
    COMPONENT_UNRECOVERABLE = "component-unrecoverable"
    SECURITY_VIOLATION = "security-violation"


@dataclass(frozen=True)
class Rule:
    state: str
    sticky: bool  # only administrator_reset() removes it
    security: int = m.SEC_NONE  # the LED security pattern while ceased (seed 000 §2.4)
    seeds: str = ""


RULES: dict[Cause, Rule] = {
    Cause.TIME_INVALID: Rule(RESTRICTED, False, seeds="000 §2.6; 001 D-2.2; 002 §8"),
    Cause.CONSUMER_LOG_FULL: Rule(RESTRICTED, False, seeds="000 §2.6, 10238, 10255"),
    Cause.SYSTEM_LOG_FULL: Rule(RESTRICTED, False, seeds="silent (000 10239: a ring)"),
    Cause.STORE_FULL: Rule(RESTRICTED, False, seeds="000 §2.6, 10259; 001 D-2.2; 002 §8"),
    Cause.METER_CERT_EXPIRED: Rule(RESTRICTED, False, seeds="000 §2.6, 10275"),
    Cause.COMPONENT_FAILED: Rule(RESTRICTED, False, seeds="000 §2.6"),
    Cause.CALIBRATION_LOG_FULL: Rule(MINIMAL, True, seeds="000 §2.6, 10098; 002 19008"),
    Cause.DB_INTEGRITY: Rule(MINIMAL, True, seeds="000 §2.6; 002 §9.4 600214"),
    Cause.LOG_INTEGRITY: Rule(MINIMAL, True, seeds="002 §9.4 1400005/1400012; 000 §2.6"),
    Cause.SELFTEST_ERROR: Rule(MINIMAL, True, seeds="002 §9.4 1900008"),
    Cause.CRYPTO_SELFTEST: Rule(CEASED, True, m.SEC_PWR_TLS,
                                seeds="000 §2.6, §4.4; 002 §9.4 1900010"),
    Cause.FIRMWARE_INTEGRITY: Rule(CEASED, True, m.SEC_PWR_LMC,
                                   seeds="000 §4.4; 001 D-2.1; 002 §8"),
    Cause.SOFTWARE_INTEGRITY: Rule(CEASED, True, m.SEC_PWR_TLS_LMC,
                                   seeds="000 §4.4; 001 D-2.1"),
    Cause.COMPONENT_UNRECOVERABLE: Rule(CEASED, True, m.SEC_PWR_WMT, seeds="000 §2.6"),
    Cause.SECURITY_VIOLATION: Rule(CEASED, True, m.SEC_ALL, seeds="000 §2.6, §2.4"),
}


class OperatingState:
    """The worst state of the active causes, persisted, announced on every change.

    ``gateway`` receives ``op``/``security`` for the LEDs; ``emit(event_id, params)`` writes the
    log events, ``params`` being the keyword arguments of :func:`smgw.events.emit` (the text's
    placeholders, ``context``, ``status``): ``emit=lambda i, p: events.emit(log, i, **p)``.
    Nothing is announced before :meth:`start` (the gateway is still "starting" and the start
    self-test is running): :meth:`start` announces the state once, then every change.
    ``path`` (JSON) keeps the causes across restarts; ``must_exist`` says the gateway has run
    before, so a missing file is a lost file (database integrity), not a first start.
    Thread-safe; ``emit`` and the gateway update run under the lock, in the caller's thread.
    """

    def __init__(self, gateway: GatewayState | None,
                 emit: Callable[[int, dict[str, Any]], None],
                 path: Path | str | None = None, *, clock: Callable[[], float] = time.time,
                 must_exist: bool = False) -> None:
        self._gateway = gateway
        self._emit = emit
        self._path = Path(path) if path is not None else None
        self._clock = clock
        self._lock = threading.RLock()
        # cause -> source -> {"detail": str, "since_ms": int}
        self._causes: dict[Cause, dict[str, dict[str, Any]]] = {}
        self._started = False
        self._announced: str | None = None  # the state last announced (events, LEDs)
        self.last_reset: dict[str, Any] | None = None
        self._load(must_exist)

    # ------------------------------------------------------------------ queries

    @property
    def state(self) -> str:
        with self._lock:
            return self._worst(self._causes)

    @property
    def started(self) -> bool:
        return self._started

    def allows(self, function: str) -> bool:
        if function not in FUNCTIONS:
            raise ValueError(f"unknown function {function!r}; known: {', '.join(FUNCTIONS)}")
        return function not in SWITCHED_OFF[self.state]

    def active(self) -> list[Cause]:
        with self._lock:
            return sorted(self._causes, key=lambda c: (-_RANK[RULES[c].state], c.value))

    def is_active(self, cause: Cause | str) -> bool:
        with self._lock:
            return Cause(cause) in self._causes

    def held_by(self, source: str) -> list[Cause]:
        """The causes ``source`` has raised and not (yet) withdrawn."""
        with self._lock:
            return [c for c in self.active() if source in self._causes[c]]

    def security_code(self) -> int:
        """The LED security pattern: none unless ceased; one ceased cause shows its own
        pattern, several (or an unspecific one) show all four LEDs blinking."""
        with self._lock:
            codes = {RULES[c].security for c in self._causes if RULES[c].state == CEASED}
        if not codes:
            return m.SEC_NONE
        return codes.pop() if len(codes) == 1 else m.SEC_ALL

    def describe(self) -> dict[str, Any]:
        with self._lock:
            state = self._worst(self._causes)
            return {
                "state": state,
                "switched_off": [f for f in FUNCTIONS if f in SWITCHED_OFF[state]],
                "causes": [{"cause": c.value, "state": RULES[c].state,
                            "sticky": RULES[c].sticky,
                            "sources": {s: dict(v) for s, v in self._causes[c].items()}}
                           for c in self.active()],
                "last_reset": self.last_reset,
            }

    # ------------------------------------------------------------------ changes

    def start(self) -> str:
        """Announces the current state (LEDs and log); from now on every change is announced."""
        with self._lock:
            self._started = True
            self._announce()
            self._save()  # from the first start on, a missing file is a finding
            return self._worst(self._causes)

    def raise_cause(self, cause: Cause | str, detail: str = "",
                    source: str = DEFAULT_SOURCE) -> str:
        """Activates ``cause`` for ``source``; returns the resulting state."""
        cause = Cause(cause)
        with self._lock:
            holders = self._causes.setdefault(cause, {})
            entry = holders.get(source)
            if entry is None:
                holders[source] = {"detail": str(detail), "since_ms": self._now_ms()}
                log.warning("operating-state cause raised", extra={"fields": {
                    "cause": cause.value, "source": source, "detail": str(detail)}})
            elif entry["detail"] == str(detail):
                return self._worst(self._causes)
            else:
                entry["detail"] = str(detail)
            self._save()
            self._announce()
            return self._worst(self._causes)

    def clear_cause(self, cause: Cause | str, source: str = DEFAULT_SOURCE) -> bool:
        """Withdraws ``source``'s report of ``cause``. The cause ends when no source holds it.
        A sticky cause is not withdrawn (only :meth:`administrator_reset` ends it): returns
        False then, and when ``source`` did not hold the cause."""
        cause = Cause(cause)
        with self._lock:
            holders = self._causes.get(cause)
            if not holders or source not in holders:
                return False
            if RULES[cause].sticky:
                log.info("sticky operating-state cause needs the administrator", extra={
                    "fields": {"cause": cause.value, "source": source}})
                return False
            del holders[source]
            if not holders:
                del self._causes[cause]
            self._save()
            self._announce()
            return True

    def administrator_reset(self, by: str) -> str:
        """The GWA ends every sticky cause (and so ceased operation). Causes that recover by
        themselves stay: they describe conditions that still hold until their component
        clears them. Run a self-test afterwards: a fault that is still there returns."""
        if not by:
            raise ValueError("administrator_reset needs the administrator's name")
        with self._lock:
            removed = [c.value for c in self._causes if RULES[c].sticky]
            self._causes = {c: h for c, h in self._causes.items() if not RULES[c].sticky}
            self.last_reset = {"by": by, "at_ms": self._now_ms(), "removed": removed}
            log.warning("operating state reset by the administrator", extra={"fields": {
                "by": by, "removed": removed}})
            self._save()
            self._announce(by)
            return self._worst(self._causes)

    # ------------------------------------------------------------------ internals

    @staticmethod
    def _worst(causes: Iterable[Cause]) -> str:
        worst = NORMAL
        for c in causes:
            s = RULES[c].state
            if _RANK[s] > _RANK[worst]:
                worst = s
        return worst

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _announce(self, by: str | None = None) -> None:
        # one announcement per state change: the events of seed 000 Tabelle 13 and the LEDs
        if not self._started:
            return
        state = self._worst(self._causes)
        security = self.security_code()
        if self._gateway is not None and (self._gateway.op != OP_CODES[state]
                                          or self._gateway.security != security):
            self._gateway.update(op=OP_CODES[state], security=security)
        previous = self._announced
        if state == previous:
            return
        self._announced = state
        # these events have no placeholders: the facts travel as context (smgw.events.emit)
        context: dict[str, Any] = {"state": state, "previous": previous or "starting",
                                   "causes": ", ".join(c.value for c in self.active())}
        if by:
            context["by"] = by
        log.log(logging.INFO if state == NORMAL else logging.WARNING, "operating state %s", state,
                extra={"fields": context})
        if state == NORMAL:
            if previous is not None and "measuring" in SWITCHED_OFF[previous]:
                self._emit(EV_MEASURING_RESUMED, {"context": dict(context)})
            self._emit(EV_NORMAL_OPERATION, {"context": dict(context)})
        elif state == CEASED:
            self._emit(EV_OPERATION_CEASED, {"context": context})
        else:
            # restricted or minimal: measuring stops (or stays stopped with another cause set)
            self._emit(EV_MEASURING_STOPPED, {"context": context})

    def _save(self) -> None:
        if self._path is None:
            return
        doc = {
            "format": FORMAT,
            "state": self._worst(self._causes),
            "causes": {c.value: h for c, h in sorted(self._causes.items(),
                                                     key=lambda kv: kv[0].value)},
            "last_reset": self.last_reset,
        }
        data = (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode("utf-8")
        try:
            atomic_write(self._path, data, 0o600)
        except OSError as e:
            # the state itself is still right in memory; the next change tries again
            log.error("could not persist the operating state", extra={"fields": {
                "path": str(self._path), "error": str(e)}})

    def _load(self, must_exist: bool) -> None:
        if self._path is None:
            return
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            if must_exist:
                self._causes[Cause.DB_INTEGRITY] = {"opstate": {
                    "detail": f"{self._path} is missing", "since_ms": self._now_ms()}}
                self._save()
            return
        except OSError as e:
            raw = None
            problem = f"cannot read {self._path}: {e}"
        else:
            problem = ""
        causes: dict[Cause, dict[str, dict[str, Any]]] = {}
        if raw is not None:
            try:
                doc = json.loads(raw)
                if not isinstance(doc, dict) or doc.get("format") != FORMAT:
                    raise ValueError(f"not an operating-state file of format {FORMAT}")
                for name, holders in doc.get("causes", {}).items():
                    if not isinstance(holders, dict):
                        raise ValueError(f"cause {name}: bad holders")
                    try:
                        cause = Cause(name)
                    except ValueError:
                        # a cause this version does not know: keep the gateway out of normal
                        # operation rather than forget it
                        cause = Cause.SECURITY_VIOLATION if doc.get("state") == CEASED \
                            else Cause.DB_INTEGRITY
                        holders = {"opstate": {"detail": f"unknown cause {name!r}",
                                               "since_ms": self._now_ms()}}
                    valid = {str(s): {"detail": str(v.get("detail", "")),
                                      "since_ms": int(v.get("since_ms", 0))}
                             for s, v in holders.items() if isinstance(v, dict)}
                    if valid:  # a cause nobody holds could never be cleared
                        causes.setdefault(cause, {}).update(valid)
                if doc.get("state") in STATES and _RANK[doc["state"]] > _RANK[
                        self._worst(causes)]:
                    raise ValueError(f"state {doc['state']} without its causes")
                reset = doc.get("last_reset")
                self.last_reset = reset if isinstance(reset, dict) else None
            except (ValueError, TypeError, AttributeError) as e:
                problem = f"{self._path} is damaged: {e}"
        if problem:
            # a damaged state file may hide ceased operation: keep the worst it may have
            # recorded in view of the administrator
            was_ceased = b'"ceased"' in (raw or b"")
            cause = Cause.SECURITY_VIOLATION if was_ceased else Cause.DB_INTEGRITY
            causes.setdefault(cause, {})["opstate"] = {"detail": problem,
                                                       "since_ms": self._now_ms()}
            log.error("operating-state file damaged", extra={"fields": {"problem": problem}})
        self._causes = causes
        if problem:
            self._save()
