"""Self-test results (:class:`Check`) and the checks of the gateway's own state.

Each check is a plain function of what it needs and returns a :class:`Check`: its failure code
from our catalogue (docs/self-test.md) and, when it fails, the operating-state cause it raises.
The known-answer tests are in :mod:`smgw.selftest.kat`, the host software manifest in
:mod:`smgw.selftest.software`; :mod:`smgw.selftest.runner` runs a list of them.

    check_firmware(link.fw_integrity)           ST-FW-HASH   firmware file hashes vs release
                                                ST-FW-NONE   no firmware hello: not checked
    check_database(store)                       ST-DB        PRAGMA quick_check
    check_log_chain(logbooks.verify_calibration) ST-LOG-CHAIN signed, chained calibration log
    check_time(clock.valid)                     ST-TIME      legal time valid
    check_link(up, counters, dropped_before)    ST-LINK      front-end reachable, nothing dropped
    check_disk(data_dir, min_free_bytes=...)    ST-DISK      storage headroom
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smgw.opstate import RULES, Cause

SEVERE = "severe"  # "schwerer Fehler" (10065): the cause needs the administrator
RECOVERABLE = "recoverable"  # "behebbarer Fehler" (10065): recovers once the condition is gone


@dataclass
class Check:
    """The result of one check. ``code`` names the check in our catalogue whether it passed or
    not; ``cause`` is what a failure raises (None: reported only, no change of state)."""

    code: str
    ok: bool
    detail: str = ""
    cause: Cause | None = None
    ms: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def severity(self) -> str | None:
        if self.ok:
            return None
        if self.cause is not None and RULES[self.cause].sticky:
            return SEVERE
        return RECOVERABLE

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "ok": self.ok, "detail": self.detail,
                "cause": self.cause.value if self.cause else None,
                "severity": self.severity, "ms": round(self.ms, 3), "data": self.data}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Check:
        return cls(code=str(d["code"]), ok=bool(d["ok"]), detail=str(d.get("detail", "")),
                   cause=Cause(d["cause"]) if d.get("cause") else None,
                   ms=float(d.get("ms", 0.0)), data=dict(d.get("data") or {}))


def timed(code: str, cause: Cause | None, fn: Callable[[], tuple[bool, str]]) -> Check:
    """Runs ``fn() -> (ok, detail)`` and wraps it in a Check; an exception is a failure."""
    t0 = time.perf_counter()
    try:
        ok, detail = fn()
    except Exception as e:  # noqa: BLE001 - a broken primitive is exactly what we look for
        ok, detail = False, f"{type(e).__name__}: {e}"
    return Check(code, ok, detail, cause if not ok else None,
                 (time.perf_counter() - t0) * 1000)


# ============================================================================ firmware

def check_firmware(result: Any) -> Check:
    """ST-FW-HASH: the file hashes the firmware reported in its hello against the release
    manifest. ``result`` is :func:`smgw.firmware.manifest.check_hello_files`'s ManifestCheck,
    its ``to_dict()`` (``FirmwareLink.fw_integrity``), ``{"ok": False, "error": ...}`` when the
    release manifest could not be read, or None when no firmware has said hello yet."""
    t0 = time.perf_counter()
    if result is None:
        # no hello: the front-end is not there (ST-LINK's matter), not an integrity finding;
        # reported so that the report says the firmware was not checked
        return Check("ST-FW-NONE", False, "no firmware hello yet: firmware not checked",
                     Cause.COMPONENT_FAILED, (time.perf_counter() - t0) * 1000)
    d = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    ms = (time.perf_counter() - t0) * 1000
    if d.get("ok"):
        return Check("ST-FW-HASH", True, d.get("summary", "firmware matches the release"),
                     ms=ms, data={"variant": d.get("variant"), "release": d.get("release")})
    if "error" in d and "summary" not in d:
        # the release manifest itself is unreadable: part of the host installation
        return Check("ST-FW-HASH", False, f"release manifest: {d['error']}",
                     Cause.SOFTWARE_INTEGRITY, ms)
    data = {k: d.get(k) for k in ("mismatched", "unknown", "missing", "ident_match")
            if d.get(k)}
    return Check("ST-FW-HASH", False, d.get("summary", "firmware differs from the release"),
                 Cause.FIRMWARE_INTEGRITY, ms, data)


# ============================================================================ database

def check_database(store: Any) -> Check:
    """ST-DB: ``store.integrity_check()`` (SQLite ``PRAGMA quick_check``) must say ['ok']. A
    list of strings (a result already obtained) is accepted too."""
    def run() -> tuple[bool, str]:
        rows = store if isinstance(store, list) else store.integrity_check()
        rows = [str(r) for r in rows]
        if rows == ["ok"]:
            return True, "quick_check ok"
        return False, "; ".join(rows[:5]) + (" ..." if len(rows) > 5 else "")
    return timed("ST-DB", Cause.DB_INTEGRITY, run)


# ============================================================================ calibration log

def check_log_chain(verify: Callable[[], Any]) -> Check:
    """ST-LOG-CHAIN: ``verify()`` returns an object with ``.ok`` and ``.problems`` (the
    logbooks' verification of the signed, chained calibration log)."""
    def run() -> tuple[bool, str]:
        res = verify()
        problems = [str(p) for p in (getattr(res, "problems", None) or [])]
        if getattr(res, "ok", False) and not problems:
            return True, "calibration log chain and signatures intact"
        shown = "; ".join(problems[:5]) + (f" (+{len(problems) - 5} more)"
                                          if len(problems) > 5 else "")
        return False, shown or "calibration log verification failed"
    return timed("ST-LOG-CHAIN", Cause.LOG_INTEGRITY, run)


# ============================================================================ time

def check_time(valid: bool | Callable[[], bool], detail: str = "") -> Check:
    """ST-TIME: the legal time is valid (``LegalClock.valid``)."""
    def run() -> tuple[bool, str]:
        ok = bool(valid() if callable(valid) else valid)
        return ok, detail or ("legal time valid" if ok else "legal time invalid")
    return timed("ST-TIME", Cause.TIME_INVALID, run)


# ============================================================================ link / front-end

def check_link(up: bool, counters: Mapping[str, Any] | None = None,
               dropped_before: int = 0) -> Check:
    """ST-LINK: the link to the front-end is up. ST-LINK-DROP: the firmware dropped records
    (its ``dropped`` counter grew past ``dropped_before``): measured values were lost, which
    is reported (a recoverable error in 10065) but changes no state."""
    t0 = time.perf_counter()
    if not up:
        return Check("ST-LINK", False, "link to the front-end firmware is down",
                     Cause.COMPONENT_FAILED, (time.perf_counter() - t0) * 1000)
    dropped = (counters or {}).get("dropped")
    if isinstance(dropped, int) and dropped > dropped_before:
        return Check("ST-LINK-DROP", False,
                     f"the firmware dropped {dropped - dropped_before} record(s) "
                     f"(outbox full; {dropped} since its boot)", None,
                     (time.perf_counter() - t0) * 1000, {"dropped": dropped})
    return Check("ST-LINK", True, "link up", ms=(time.perf_counter() - t0) * 1000,
                 data={"dropped": dropped} if isinstance(dropped, int) else {})


class LinkCheck:
    """ST-LINK over ``FirmwareLink.status()``: remembers the firmware's ``dropped`` counter
    between runs (per firmware boot), so only new drops fail the check."""

    def __init__(self, status: Callable[[], Mapping[str, Any]]) -> None:
        self._status = status
        self._boot: Any = None
        self._dropped = 0

    def __call__(self) -> Check:
        st = self._status()
        up = st.get("link") == "up"
        fw = st.get("firmware") or {}
        counters = (st.get("firmware_status") or {}).get("counters") or {}
        if fw.get("boot") != self._boot:
            self._boot, self._dropped = fw.get("boot"), 0  # counters restart with the firmware
        res = check_link(up, counters, self._dropped)
        if isinstance(counters.get("dropped"), int):
            self._dropped = counters["dropped"]
        return res


# ============================================================================ storage

def check_disk(path: Path | str, min_free_bytes: int = 0, min_free_fraction: float = 0.0,
               usage: Callable[[str], Any] = shutil.disk_usage) -> Check:
    """ST-DISK: free space on the file system of ``path`` is at least ``min_free_bytes`` and
    at least ``min_free_fraction`` of its size."""
    def run() -> tuple[bool, str]:
        u = usage(str(path))
        frac = u.free / u.total if u.total else 0.0
        text = f"{u.free // (1024 * 1024)} MiB free of {u.total // (1024 * 1024)} MiB " \
               f"({frac:.1%})"
        if u.free < min_free_bytes or frac < min_free_fraction:
            return False, f"{text}; the limit is {min_free_bytes // (1024 * 1024)} MiB " \
                          f"and {min_free_fraction:.0%}"
        return True, text
    return timed("ST-DISK", Cause.STORE_FULL, run)
