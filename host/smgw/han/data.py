"""The one read path of all HAN faces: what a consumer or technician may see, from the real
stores (measured values in :class:`smgw.store.Store`, profiles and derived values in
:class:`smgw.tariff.store.TariffStore`, the logbooks).

Consumer isolation is enforced here, not in the faces: every consumer method takes the
consumer id of the authenticated account and raises :class:`PermissionError` for a meter or a
profile that is not theirs (with the same message whether it exists or not). A consumer's
meters are the meters their evaluation profiles read; of those meters they see the original
values captured while one of their profiles was valid -- not those of an earlier tenant of the
same meter. Technicians (consumer ``None``) see no measured data at all (seed 000 §4: system
log, system information, self-test).

All methods are synchronous and short; they run on the gateway's loop thread, which owns the
SQLite connections.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from smgw.tariff.model import Reading

__all__ = ["HanData", "SelfTestBusy", "SelfTestRefused", "SelfTestTooSoon"]

WHO = ("consumer", "technician")
_FOREVER = 2 ** 62  # an open-ended validity as an SQL bound


class SelfTestRefused(Exception):
    """An on-demand self-test was not started."""


class SelfTestTooSoon(SelfTestRefused):
    """Within the minimum interval after the last on-demand test (seed 001 E-4.4.3: 600 s);
    ``next_allowed_ms`` is when the next one may start (legal time, ms)."""

    def __init__(self, next_allowed_ms: int) -> None:
        super().__init__(f"the next self-test may start at {next_allowed_ms} ms")
        self.next_allowed_ms = int(next_allowed_ms)


class SelfTestBusy(SelfTestRefused):
    """A self-test is running already."""


def _consumer(consumer: Any) -> str:
    if not isinstance(consumer, str) or not consumer:
        raise PermissionError("measured data and consumer logs are only for consumer accounts")
    return consumer


class HanData:
    """Read access for the HAN faces.

    ``info()`` returns the gateway facts the supervisor knows: ``gateway_id``, ``firmware``
    (list of ``(component, version, hash)``), ``time_valid``, ``opstate`` (text), and
    ``selftest_last`` (the last report as a dict or None); missing keys get defaults.
    ``selftest(trigger)`` runs the self-test (``Supervisor.run_selftest``); ``now_ms`` is the
    legal time."""

    def __init__(self, store: Any, tariff: Any, logbooks: Any, keystore: Any,
                 info: Callable[[], dict[str, Any]], selftest: Callable[[str], Any],
                 now_ms: Callable[[], int], *, selftest_min_interval_s: float = 600.0) -> None:
        self.store = store
        self.tariff = tariff
        self.logbooks = logbooks
        self.keystore = keystore
        self._info = info
        self._selftest = selftest
        self.now_ms = now_ms
        self.selftest_min_interval_ms = int(selftest_min_interval_s * 1000)
        self._last_on_demand_ms: int | None = None

    # ------------------------------------------------------------------ the gateway

    def smgw_info(self) -> dict[str, Any]:
        d = dict(self._info() or {})
        d.setdefault("gateway_id", getattr(self.keystore, "gateway_id", None))
        d.setdefault("firmware", [])
        d.setdefault("time_valid", False)
        d.setdefault("opstate", None)
        d.setdefault("selftest_last", None)
        d["time_ms"] = int(self.now_ms())
        d["selftest_next_allowed_ms"] = self.next_selftest_allowed_ms()
        return d

    def signature_certificate_pem(self) -> bytes:
        """The gateway's signature certificate (what checks the value signatures)."""
        return self.keystore.sig.cert_pem()

    def han_certificate_pem(self) -> bytes:
        return self.keystore.han.cert_pem()

    # ------------------------------------------------------------------ usage points, meters

    def usage_points(self, consumer: str, *, include_pending: bool = False) -> list[Any]:
        """The consumer's evaluation profiles (StoredProfile) that are or were in force:
        active now, valid from a time that has passed, or with formed values -- removed ones
        included (their values stay the consumer's). ``include_pending`` adds those whose
        validity has not begun."""
        consumer = _consumer(consumer)
        now = int(self.now_ms())
        out = []
        for p in self.tariff.profiles(kind="evaluation", consumer=consumer,
                                      include_removed=True):
            if (include_pending or p.active or p.profile.valid_from_ms <= now
                    or self.tariff.values(p.name, limit=1)):
                out.append(p)
        return out

    def meters(self, consumer: str) -> list[str]:
        """The meter ids the consumer's usage points read."""
        return sorted({ch.meter for p in self.usage_points(consumer)
                       for ch in p.profile.channels})

    def consumer_of_meter(self, meter: str) -> str | None:
        """The consumer whose active usage point reads ``meter`` (for routing meter events to
        a consumer log); None if none or ambiguous."""
        owners = {p.consumer for p in self.tariff.profiles(kind="evaluation")
                  if p.active and any(ch.meter == meter for ch in p.profile.channels)}
        return owners.pop() if len(owners) == 1 else None

    def _windows(self, consumer: str, meter: str) -> list[tuple[int, int | None]]:
        # when the consumer's profiles reading this meter were valid
        return [(p.profile.valid_from_ms, p.profile.valid_until_ms)
                for p in self.usage_points(consumer)
                if any(ch.meter == meter for ch in p.profile.channels)]

    def _own_meter(self, consumer: str, meter: str) -> list[tuple[int, int | None]]:
        w = self._windows(_consumer(consumer), meter)
        if not w:
            raise PermissionError(f"meter {meter!r} is not one of the consumer's meters")
        return w

    @staticmethod
    def _window_sql(windows: list[tuple[int, int | None]]) -> tuple[str, list[Any]]:
        parts, args = [], []
        for start, end in windows:
            if end is None:
                parts.append("r.capture_ms >= ?")
                args.append(int(start))
            else:
                parts.append("(r.capture_ms >= ? AND r.capture_ms < ?)")
                args += [int(start), int(end)]
        return "(" + " OR ".join(parts) + ")", args

    # ------------------------------------------------------------------ measured values

    def current(self, consumer: str) -> list[dict[str, Any]]:
        """The newest value of each channel of each of the consumer's meters (captured while
        their profiles were valid): dicts with meter, obis, value (int), scaler, unit, status,
        capture_ms, time_valid."""
        out: list[dict[str, Any]] = []
        for meter in self.meters(consumer):
            windows = self._windows(consumer, meter)
            rowids = [r[0] for r in self.store._read(
                "han current", "SELECT id FROM meters WHERE meter_id = ?", (meter,))]
            for rowid in rowids:
                # the channels by index skip-scan, then each channel's newest value per window:
                # a few index look-ups, however many values the meter has
                channels = [r[0] for r in self.store._read(
                    "han channels",
                    "WITH RECURSIVE o(obis) AS (SELECT min(obis) FROM readings WHERE meter = ? "
                    "UNION ALL SELECT (SELECT min(obis) FROM readings WHERE meter = ? AND "
                    "obis > o.obis) FROM o WHERE o.obis IS NOT NULL) "
                    "SELECT obis FROM o WHERE obis IS NOT NULL", (rowid, rowid))]
                for obis in channels:
                    best = None
                    for start, end in windows:
                        rows = self.store._read(
                            "han current",
                            "SELECT raw, scaler, unit, status, capture_ms, time_valid "
                            "FROM readings WHERE meter = ? AND obis = ? AND capture_ms >= ? "
                            "AND capture_ms < ? ORDER BY capture_ms DESC, id DESC LIMIT 1",
                            (rowid, obis, int(start), _FOREVER if end is None else int(end)))
                        if rows and (best is None or rows[0][4] > best[4]):
                            best = rows[0]
                    if best is not None:
                        raw, scaler, unit, status, capture, tv = best
                        out.append({"meter": meter, "obis": obis, "value": int(raw),
                                    "scaler": int(scaler or 0), "unit": unit or "",
                                    "status": status, "capture_ms": int(capture),
                                    "time_valid": bool(tv)})
        return out

    def readings(self, consumer: str, meter: str, obis: str | None, from_ms: int | None,
                 to_ms: int | None, limit: int | None = None, *,
                 newest_first: bool = False) -> list[Reading]:
        """Original values of one meter (one channel, or all with ``obis=None``) with
        ``from_ms <= capture_ms < to_ms``, in capture order (or newest first). Raises
        PermissionError for a meter that is not the consumer's."""
        windows = self._own_meter(consumer, meter)
        where, args = self._window_sql(windows)
        sql = ("SELECT r.obis, r.raw, r.scaler, r.unit, r.status, r.capture_ms, r.time_valid "
               "FROM readings r WHERE r.meter = (SELECT id FROM meters WHERE meter_id = ?) "
               f"AND r.capture_ms IS NOT NULL AND {where}")
        params: list[Any] = [meter, *args]
        if obis is not None:
            sql += " AND r.obis = ?"
            params.append(obis)
        if from_ms is not None:
            sql += " AND r.capture_ms >= ?"
            params.append(int(from_ms))
        if to_ms is not None:
            sql += " AND r.capture_ms < ?"
            params.append(int(to_ms))
        order = "DESC" if newest_first else "ASC"
        # one channel: the index order itself (no sort); all channels: by time, then OBIS
        second = "r.id" if obis is not None else "r.obis"
        sql += f" ORDER BY r.capture_ms {order}, {second} {order}"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [Reading(meter=meter, obis=o, capture_ms=int(t), value=int(raw),
                        scaler=int(sc or 0), unit=u or "", status=st, time_valid=bool(tv))
                for o, raw, sc, u, st, t, tv in self.store._read("han readings", sql,
                                                                  tuple(params))]

    # ------------------------------------------------------------------ derived values

    def _own_profile(self, consumer: str, profile: str) -> Any:
        consumer = _consumer(consumer)
        p = self.tariff.profile(profile)
        if p is None or p.kind != "evaluation" or p.consumer != consumer:
            raise PermissionError(f"usage point {profile!r} is not one of the consumer's")
        return p

    def derived(self, consumer: str, profile: str, from_ms: int | None = None,
                to_ms: int | None = None, *, register: str | None = None,
                limit: int | None = None, newest_first: bool = False) -> list[Any]:
        """Derived values (StoredValue) of the consumer's profile with
        ``from_ms <= target_ms < to_ms``."""
        self._own_profile(consumer, profile)
        return self.tariff.values(profile, from_ms, to_ms, register=register, limit=limit,
                                  newest_first=newest_first)

    def billing_periods(self, consumer: str, profile: str) -> list[tuple[int, int]]:
        """The periods the profile formed values for, oldest first."""
        self._own_profile(consumer, profile)
        return self.tariff.periods(profile)

    # ------------------------------------------------------------------ logs

    def consumer_log(self, consumer: str, from_ms: int | None = None, to_ms: int | None = None,
                     limit: int = 50, after: int | None = None) -> Any:
        """One page (:class:`smgw.logbook.store.Page`) of the consumer's own log,
        ``from_ms <= ts < to_ms``, oldest first; ``after`` = the previous page's
        ``next_after``."""
        return self.logbooks.query("consumer", consumer=_consumer(consumer), since_ms=from_ms,
                                   until_ms=to_ms, limit=limit, after_seq=after)

    def consumer_log_csv(self, consumer: str, from_ms: int | None = None,
                         to_ms: int | None = None) -> str:
        """The selection as the logbook CSV export (docs/logbooks.md)."""
        buf = io.StringIO()
        self.logbooks.export_csv("consumer", buf, consumer=_consumer(consumer),
                                 since_ms=from_ms, until_ms=to_ms)
        return buf.getvalue()

    def system_log(self, from_ms: int | None = None, to_ms: int | None = None,
                   limit: int = 10, after: int | None = None, level: str | None = None) -> Any:
        """One page of the system log (technicians; the face checks the role)."""
        return self.logbooks.query("system", since_ms=from_ms, until_ms=to_ms, limit=limit,
                                   after_seq=after, level=level)

    def system_log_csv(self, from_ms: int | None = None, to_ms: int | None = None) -> str:
        buf = io.StringIO()
        self.logbooks.export_csv("system", buf, since_ms=from_ms, until_ms=to_ms)
        return buf.getvalue()

    def calibration_log(self, from_ms: int | None = None, to_ms: int | None = None,
                        limit: int = 50, after: int | None = None) -> Any:
        """The calibration log is readable by every role (seed 002 §5)."""
        return self.logbooks.query("calibration", since_ms=from_ms, until_ms=to_ms,
                                   limit=limit, after_seq=after)

    # ------------------------------------------------------------------ self-test

    def next_selftest_allowed_ms(self) -> int:
        """When the next on-demand self-test may start (legal time ms; 0 = now)."""
        if self._last_on_demand_ms is None:
            return 0
        return self._last_on_demand_ms + self.selftest_min_interval_ms

    def selftest(self, who: str, consumer: str | None = None) -> dict[str, Any]:
        """Run the self-test on demand of a consumer or technician. Raises
        :class:`SelfTestTooSoon` within ``selftest_min_interval_s`` of the last on-demand test
        (whoever started it) and :class:`SelfTestBusy` while one runs. Returns the report as a
        dict (its result is in the logs too: 10063/10064/10065)."""
        if who not in WHO:
            raise ValueError(f"who must be one of {', '.join(WHO)}, not {who!r}")
        now = int(self.now_ms())
        nxt = self.next_selftest_allowed_ms()
        if now < nxt:
            raise SelfTestTooSoon(nxt)
        from smgw.selftest.runner import Busy, RateLimited

        try:
            # a consumer's test is logged in their consumer log only
            report = self._selftest(who, consumer) if consumer else self._selftest(who)
        except RateLimited as e:
            raise SelfTestTooSoon(e.next_allowed_ms) from None
        except Busy:
            raise SelfTestBusy("a self-test is running already") from None
        self._last_on_demand_ms = now
        if hasattr(report, "to_dict"):
            return report.to_dict()
        return dict(report) if isinstance(report, dict) else {"result": report}
