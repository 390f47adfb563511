"""The tariff engine: runs the loaded evaluation profiles over the stored readings.

Per profile it forms what has become complete since it last looked — a billing period (TAF 1,
TAF 2), a day (TAF 6), the registration grid instants (TAF 7), a sending window (TAF 9/10/14) —
with the pure calculations of :func:`smgw.tariff.cases.form`, signs the billing-relevant values
(:mod:`smgw.security.valuesig`), and stores the values, its progress and the protected messages
for the recipients (:mod:`smgw.security.cms`, :class:`smgw.wan.outbox.Outbox`) in ONE
transaction. After a crash either all of that exists or none of it; forming again is a no-op
where it exists (unique value keys, message ids derived from content), so nothing is lost and
nothing is doubled.

When is an instant complete? Readings of one meter arrive in capture order, so a grid instant
``t`` is complete for a channel once a reading captured after ``t + tolerance`` is stored
(tolerance = 1 % of the registration period, PTB ±9 s at 900 s). A channel that stays silent
is given up on after ``tolerance + latency + missing_wait`` — and only while ``settled()`` says
the readings are up to date (after a restart the front-end first delivers what it captured
meanwhile): the instant then becomes a gap, visible as a missing target time.

Sending (only with a ``periodic`` rule; :meth:`TariffEngine.on_demand` sends stored values
again): TAF 1/2 form and send each billing period once its sending offset has passed; TAF 7
collects the values of the registration periods inside a sending window (values are stamped at
their period end, so a daily message holds 00:15 .. 24:00) and sends them when the window is
formed and its offset has passed; TAF 6 readings are kept ``retention_days`` (42) and sent on
demand only; TAF 9/10/14 aggregates are formed per sending window, new readings go out at once
(``adhoc``) or when they cross a threshold (``threshold``): nothing but the delivery is stored.

Forming needs the operating state's permission (``allowed("processing")``) and valid legal
time; catching up after downtime is done in bounded batches per :meth:`tick`, so the event
loop stays responsive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smgw import events
from smgw.store import Store
from smgw.tariff.model import DerivedValue, Reading, smgw_status
from smgw.tariff.payload import NOT_BILLING_TAFS, build_payload, message_id
from smgw.tariff.store import StoredProfile, TariffStore, profile_kind

log = logging.getLogger("smgw.tariff")

__all__ = ["TariffEngine", "sending_windows"]

DAY_MS = 86_400_000
DAY_S = 86_400
TAF6_RETENTION_DAYS = 42
ADHOC_CATCH_UP_MS = 3_600_000     # TAF 9/10/14 ad-hoc/threshold: readings looked at per tick


def _local_iso(ms: int, tz: str) -> str:
    from smgw.tariff.periods import iso

    return iso(ms, tz)


def sending_windows(p: Any, period_s: int, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
    """Complete sending windows ``[s, e)`` with ``start_ms <= s`` and ``e <= end_ms``, aligned
    to local midnight (:func:`smgw.tariff.periods.windows`)."""
    from smgw.tariff.periods import windows

    if end_ms <= start_ms:
        return []
    margin = period_s * 1000 + DAY_MS
    return [(s, e) for s, e in windows(p, start_ms - margin, end_ms + margin, period_s)
            if s >= start_ms and e <= end_ms]


def window_of(p: Any, period_s: int, t_ms: int) -> tuple[int, int]:
    """The sending window containing ``t_ms``."""
    margin = period_s * 1000 + DAY_MS
    for s, e in sending_windows(p, period_s, t_ms - margin, t_ms + margin):
        if s <= t_ms < e:
            return s, e
    raise AssertionError("no sending window contains t")  # pragma: no cover


@dataclass
class _Formed:
    """What one step of a profile produced, committed in one transaction."""

    values: list[tuple[DerivedValue, bytes | None]]
    messages: list[tuple[int | None, int | None, list[tuple[DerivedValue, bytes | None]], str]]
    state: dict[str, Any]
    switches: list[tuple[int, int]]
    problems: list[str]
    prune_before: int | None = None


class TariffEngine:
    def __init__(self, store: Store, tariff: TariffStore, outbox: Any, keystore: Any,
                 emit: Callable[..., Any] | None = None,
                 now_ms: Callable[[], int] | None = None,
                 time_valid: Callable[[], bool] | None = None,
                 allowed: Callable[[str], bool] | None = None, *,
                 latency_ms: int = 2000, missing_wait_ms: int | None = None,
                 settled: Callable[[], bool] | None = None,
                 on_queued: Callable[[], Any] | None = None,
                 batch: int = 192, messages_per_tick: int = 8) -> None:
        """``emit(cat, params)`` raises catalogue events (the shape of
        :func:`smgw.events.emitter`'s function, which is the default);
        ``now_ms`` is legal time; ``time_valid()`` whether it is valid now; ``allowed(fn)``
        asks the operating state. ``latency_ms``: how long a reading may take from capture to
        the store; ``missing_wait_ms``: how long beyond that a silent channel is waited for
        (default: one registration period); ``settled()``: whether stored readings are up to
        date (the link delivered its backlog); ``on_queued()`` is called after messages were
        added to the outbox (the delivery worker's ``wake``); ``batch``: grid instants / days
        formed per profile and tick."""
        self.store = store
        self.tariff = tariff
        self.outbox = outbox
        self.keystore = keystore
        self.emit = emit or events.emitter(log)
        self.now_ms = now_ms or store.now_ms
        self.time_valid = time_valid or (lambda: True)
        self.allowed = allowed or (lambda fn: True)
        self.latency_ms = latency_ms
        self.missing_wait_ms = missing_wait_ms
        self.settled = settled or (lambda: True)
        self.on_queued = on_queued
        self.batch = max(1, batch)
        self.messages_per_tick = max(1, messages_per_tick)
        self.formed = 0          # values formed since start (for status)
        self.errors: dict[str, str] = {}
        self._certs: dict[tuple[str, int], Any] = {}
        self._rows: dict[str, int] | None = None

    # ------------------------------------------------------------------ profiles

    def load(self, path_or_text: Path | str, source_name: str | None = None) -> StoredProfile:
        """Validates and stores a profile given as a file (Path) or TOML text (str); logs
        10166/10168 (evaluation) or 10169/10171 (communication), 10023 for each changed
        billing parameter, and 10219/10217 for a rejected profile (then raises
        :class:`smgw.tariff.profile.ProfileError`)."""
        from smgw.tariff.profile import ProfileError, parse_profile

        if isinstance(path_or_text, Path):
            source = source_name or str(path_or_text)
            try:
                text = path_or_text.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                err = ProfileError("", f"cannot read the profile: {e}", source=source)
                self._rejected(None, err)
                raise err from None
        else:
            text, source = path_or_text, source_name or "<text>"
        try:
            p = parse_profile(text, source)
            kind = profile_kind(p)
            self._check(p, kind, source)
        except ProfileError as e:
            self._rejected(text, e)
            raise
        now = self.now_ms()
        before = self.tariff.profile(p.name)
        try:
            action, _version = self.tariff.put_profile(p, text, now)
        except ValueError as e:  # the name belongs to a profile of the other kind
            err = ProfileError("profile.name", str(e).removeprefix("name: "), source=source)
            self._rejected(text, err)
            raise err from None
        ctx = self._ctx(p)
        if kind == "evaluation":
            if action == "added":
                self._event(10166, tariff_profile=p.name, **ctx)
            elif action == "changed":
                self._event(10168, tariff_profile=p.name, **ctx)
                if before is not None and before.removed_ms is None and \
                        before.kind == "evaluation":
                    self._param_changes(before.profile, p, ctx)
        elif action == "added":
            self._event(10169, comm_profile=p.name)
        elif action == "changed":
            self._event(10171, comm_profile=p.name)
        log.info("profile %s %s", p.name, action,
                 extra={"fields": {"profile": p.name, "kind": kind, "action": action,
                                   "source": source}})
        stored = self.tariff.profile(p.name)
        assert stored is not None
        return stored

    def load_dir(self, directory: Path) -> dict[str, str]:
        """Loads every ``*.toml`` in ``directory`` (``tariff.profiles_dir`` at start),
        communication profiles first. Returns file name -> profile name, or why it was
        rejected (rejections are logged; the other files still load)."""
        from smgw.tariff.profile import ProfileError

        out: dict[str, str] = {}
        texts = []
        for f in sorted(Path(directory).glob("*.toml")):
            try:
                text = f.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                err = ProfileError("", f"cannot read the profile: {e}", source=str(f))
                self._rejected(None, err)
                out[f.name] = f"rejected: {err}"
                continue
            texts.append((0 if _looks_communication(text) else 1, f, text))
        for _, f, text in sorted(texts, key=lambda x: (x[0], x[1])):
            try:
                out[f.name] = self.load(text, str(f)).name
            except ProfileError as e:
                out[f.name] = f"rejected: {e}"
        return out

    def _param_changes(self, old: Any, new: Any, ctx: dict[str, Any]) -> None:
        a = old.billing_parameters() if old.billing_relevant else {}
        b = new.billing_parameters() if new.billing_relevant else {}
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                self._event(10023, parameter=key, profile=new.name,
                            value_old=a.get(key, "-"), value_new=b.get(key, "-"), **ctx)

    def _rejected(self, text: str | None, e: Exception) -> None:
        # a communication profile has its own rejection event; which kind the text meant to be
        # is read from profile.kind even when the rest could not be parsed
        comm = text is not None and _looks_communication(text)
        self._event(10217 if comm else 10219, reason="; ".join(str(e).splitlines()))

    def _check(self, p: Any, kind: str, source: str) -> None:
        """What only the running gateway can check: recipients and meters exist."""
        from smgw.tariff.profile import ProfileError

        if kind != "evaluation":
            return
        errors = []
        comm = {sp.name for sp in self.tariff.profiles(kind="communication")}
        for i, r in enumerate(p.recipients):
            if r not in comm:
                errors.append((f"profile.recipients[{i}]",
                               f"no communication profile {r!r} is loaded (load it first)"))
        meters = {m.meter_id for m in self.store.meters()}
        for i, ch in enumerate(p.channels):
            if ch.meter not in meters:
                errors.append((f"channels[{i}].meter",
                               f"no meter profile {ch.meter!r} (smgw meter add)"))
        if errors:
            raise ProfileError("", errors=errors, source=source)

    def remove(self, name: str) -> bool:
        """Removes a profile (its values stay); logs 10167 (10170 for a communication
        profile, refused while an evaluation profile sends to it) and 10216 when it was
        active. False if there is no such profile."""
        sp = self.tariff.profile(name)
        if sp is None or sp.removed_ms is not None:
            return False
        if sp.kind == "communication":
            users = [e.name for e in self.tariff.profiles(kind="evaluation")
                     if name in e.profile.recipients]
            if users:
                raise ValueError(f"communication profile {name!r} is a recipient of "
                                 f"{', '.join(users)}: remove or change those first")
        if not self.tariff.remove_profile(name, self.now_ms()):
            return False
        if sp.kind == "evaluation":
            ctx = self._ctx(sp.profile)
            if sp.active:
                self._event(10216, profile_name=name, profile_domain=sp.profile.usage_point,
                            **ctx)
            self._event(10167, tariff_profile=name, **ctx)
        else:
            self._event(10170, comm_profile=name)
        return True

    def comm_profile(self, name: str) -> Any:
        """The loaded communication profile of that name (for the delivery worker)."""
        sp = self.tariff.profile(name)
        if sp is None or sp.removed_ms is not None or sp.kind != "communication":
            return None
        return sp.profile

    def consumer_of(self, name: str) -> str | None:
        """The consumer an evaluation profile belongs to (for the delivery worker's
        consumer-log entries)."""
        sp = self.tariff.profile(name)
        return sp.consumer if sp is not None else None

    @staticmethod
    def _ctx(p: Any) -> dict[str, Any]:
        # whose consumer log an event of this profile belongs to (``consumer_log``: not a
        # placeholder of the texts, :func:`smgw.events.emitter` passes it as context and the
        # supervisor's logbook sink routes by it)
        consumer = getattr(p, "consumer", None)
        return {"consumer_log": consumer} if consumer else {}

    def _event(self, cat: int, **params: Any) -> None:
        self.emit(cat, params)

    # ------------------------------------------------------------------ the loop

    async def run(self, stop: asyncio.Event, interval_s: float = 1.0) -> None:
        """Ticks until ``stop`` is set; at once again while catching up."""
        while not stop.is_set():
            more = False
            try:
                more = self.tick()
            except Exception:  # noqa: BLE001 - a bug in one tick must not end the engine
                log.exception("tariff engine tick failed")
            if more:
                await asyncio.sleep(0)
                continue
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)

    def tick(self) -> bool:
        """One round over all evaluation profiles. Returns True when there is more to catch
        up (call again soon)."""
        self._rows = self._meter_rows()
        try:
            return self._tick()
        finally:
            self._rows = None

    def _tick(self) -> bool:
        now = self.now_ms()
        profiles = self.tariff.profiles(kind="evaluation")
        for sp in profiles:
            self._validity(sp, now)
        if not self.allowed("processing") or not self.time_valid():
            return False
        more = False
        for sp in profiles:
            try:
                more |= self._step(sp.profile, now)
                self.errors.pop(sp.name, None)
            except Exception as e:  # noqa: BLE001 - one broken profile must not stop the rest
                if self.errors.get(sp.name) != str(e):
                    log.exception("tariff profile failed", extra={"fields": {
                        "profile": sp.name}})
                self.errors[sp.name] = str(e)
        return more

    def _validity(self, sp: StoredProfile, now: int) -> None:
        p = sp.profile
        active = p.valid_from_ms <= now and (p.valid_until_ms is None or now < p.valid_until_ms)
        if active == sp.active:
            return
        self.tariff.set_active(sp.name, active)
        self._event(10215 if active else 10216, profile_name=sp.name,
                    profile_domain=p.usage_point, **self._ctx(p))

    # ------------------------------------------------------------------ readings

    def _meter_rows(self) -> dict[str, int]:
        # meter id -> store row: read once per tick (it is asked per profile and channel)
        if self._rows is not None:
            return self._rows
        return {m.meter_id: m.id for m in self.store.meters(include_removed=True)}

    def _channel_rows(self, mid: int | None, ch: Any, sql_tail: str,
                      params: tuple[Any, ...]) -> list[Reading]:
        if mid is None:
            return []
        rows = self.store._read(
            "tariff readings",
            "SELECT raw, scaler, unit, status, capture_ms, time_valid FROM readings "
            "WHERE meter=? AND obis=? AND capture_ms IS NOT NULL AND " + sql_tail,
            (mid, ch.obis) + params)
        return [Reading(meter=ch.meter, obis=ch.obis, capture_ms=int(t), value=int(raw),
                        scaler=int(sc or 0), unit=unit or "", status=st, time_valid=bool(tv))
                for raw, sc, unit, st, t, tv in rows]

    def readings(self, p: Any, start_ms: int, end_ms: int) -> dict[Any, list[Reading]]:
        """The stored readings of the profile's channels captured in [start_ms, end_ms],
        sorted by capture time."""
        rows_of = self._meter_rows()
        return {ch: self._channel_rows(rows_of.get(ch.meter), ch,
                                       "capture_ms BETWEEN ? AND ? ORDER BY capture_ms, id",
                                       (start_ms, end_ms))
                for ch in p.channels}

    def _last_before(self, p: Any, t_ms: int) -> dict[Any, list[Reading]]:
        """Per channel the last reading captured before ``t_ms`` (or nothing)."""
        rows_of = self._meter_rows()
        return {ch: self._channel_rows(rows_of.get(ch.meter), ch,
                                       "capture_ms < ? ORDER BY capture_ms DESC, id DESC "
                                       "LIMIT 1", (t_ms,))
                for ch in p.channels}

    def _capture_edge(self, p: Any, which: str, now: int) -> list[int | None]:
        """Per channel the first (``which="min"``) or last (``"max"``) capture time stored,
        not counting captures after ``now`` (a front-end whose clock was still off). One
        aggregate per query: SQLite then reads it off the index."""
        rows_of = self._meter_rows()
        out: list[int | None] = []
        for ch in p.channels:
            mid = rows_of.get(ch.meter)
            out.append(None if mid is None else self.store._read(
                "tariff capture edge",
                f"SELECT {which}(capture_ms) FROM readings WHERE meter=? AND obis=? "
                "AND capture_ms <= ?", (mid, ch.obis, now))[0][0])
        return out

    def _near(self, p: Any, instants: Sequence[int]) -> dict[Any, list[Reading]]:
        """The readings captured within the tolerance of ``instants``: all that the register
        and reading cases look at (a meter sending every second has 900 readings per
        15-minute period, of which one or two matter)."""
        tol = self._tol(p)
        spans: list[list[int]] = []
        for t in sorted(instants):
            if spans and t - tol <= spans[-1][1]:
                spans[-1][1] = t + tol
            else:
                spans.append([t - tol, t + tol])
        rows_of = self._meter_rows()
        out: dict[Any, list[Reading]] = {}
        for ch in p.channels:
            mid = rows_of.get(ch.meter)
            out[ch] = [r for lo, hi in spans for r in self._channel_rows(
                mid, ch, "capture_ms BETWEEN ? AND ? ORDER BY capture_ms, id", (lo, hi))]
        return out

    def _reference(self, p: Any, ch: Any, start_ms: int) -> list[Reading]:
        """TAF 2 without a usable reading at the period start: the readings around the last
        grid instant before it that has a usable reading (within the case's look-back), from
        which the energy is counted into the error register."""
        from smgw.tariff.cases import TAF2_LOOKBACK_MS
        from smgw.tariff.periods import nearest_grid

        mid = self._meter_rows().get(ch.meter)
        tol = self._tol(p)
        limit = start_ms - TAF2_LOOKBACK_MS
        cursor = start_ms - tol
        while cursor > limit:
            page = self._channel_rows(mid, ch, "capture_ms < ? AND capture_ms >= ? "
                                      "ORDER BY capture_ms DESC, id DESC LIMIT 1000",
                                      (cursor, limit))
            for r in page:
                g = nearest_grid(p, r.capture_ms)
                if r.usable() and g < start_ms and abs(r.capture_ms - g) <= tol:
                    return self._channel_rows(mid, ch, "capture_ms BETWEEN ? AND ? "
                                              "ORDER BY capture_ms, id", (g - tol, g + tol))
            if len(page) < 1000:
                break
            cursor = page[-1].capture_ms
        return []

    @staticmethod
    def _tol(p: Any) -> int:
        return p.registration_period_s * 10  # 1 % of the registration period, in ms

    def _horizon(self, p: Any, now: int) -> int:
        """Instants ``t <= horizon`` are complete: every channel has a reading captured after
        ``t + tolerance``, or waiting for a silent channel has ended."""
        tol = self._tol(p)
        lasts = self._capture_edge(p, "max", now)
        seen = min(lasts) - tol - 1 if lasts and all(x is not None for x in lasts) else None
        wait = self.missing_wait_ms if self.missing_wait_ms is not None \
            else p.registration_period_s * 1000
        given_up = now - tol - self.latency_ms - wait if self.settled() else None
        cands = [x for x in (seen, given_up) if x is not None]
        if not cands:
            return -(2**62)
        h = min(max(cands), now - tol)
        if p.valid_until_ms is not None:
            h = min(h, p.valid_until_ms)
        return h

    def _anchor(self, p: Any, created_ms: int, now: int) -> int | None:
        """Where forming starts: the profile's validity start, but not before the first
        stored reading (TAF 6/7; TAF 1/2: the billing period it falls in) or before the
        profile was loaded (TAF 9/10/14)."""
        if p.taf in NOT_BILLING_TAFS:
            return max(p.valid_from_ms, created_ms)
        firsts = [t for t in self._capture_edge(p, "min", now) if t is not None]
        if not firsts:
            return None
        first = min(firsts) - p.registration_period_s * 1000
        if p.taf in (1, 2):
            # the billing period the readings begin in is formed too (its registers cover
            # what there is, the problems say what is missing)
            from smgw.tariff.periods import period_of

            first = period_of(p, max(first, p.valid_from_ms))[0]
        return max(p.valid_from_ms, first)

    # ------------------------------------------------------------------ forming

    def _step(self, p: Any, now: int) -> bool:
        st = self.tariff.state(p.name)
        if "anchor" not in st:
            sp = self.tariff.profile(p.name)
            anchor = self._anchor(p, sp.created_ms if sp else now, now)
            if anchor is None or anchor > now:   # nothing to form yet (or not valid yet)
                return False
            st = {**st, "anchor": anchor}
            self.tariff.set_state(p.name, st)
        horizon = self._horizon(p, now)
        if p.taf in (1, 2):
            formed, more = self._billing(p, st, horizon, now)
        elif p.taf == 6:
            formed, more = self._daily(p, st, horizon, now)
        elif p.taf == 7:
            formed, more = self._grid(p, st, horizon, now)
        elif p.taf in NOT_BILLING_TAFS:
            formed, more = self._not_billing(p, st, horizon, now)
        else:
            raise ValueError(f"taf: {p.taf} is not supported by the engine")
        if formed is not None:
            self._commit(p, formed, now)
        return more

    def _form(self, p: Any, start_ms: int, end_ms: int) -> Any:
        from smgw.tariff.cases import form, reading_window
        from smgw.tariff.periods import days, registration_grid

        if p.taf in NOT_BILLING_TAFS:       # aggregates: every reading of the window
            return form(p, self.readings(p, *reading_window(p, start_ms, end_ms)),
                        start_ms, end_ms)
        if p.taf == 1:
            instants = [start_ms, end_ms]
        elif p.taf == 6:
            instants = [d for d, _ in days(p, start_ms, end_ms)]
        else:
            instants = registration_grid(p, start_ms, end_ms)
        rd = self._near(p, instants)
        if p.taf == 2:
            tol = self._tol(p)
            for ch, rs in rd.items():
                if not any(r.usable() and abs(r.capture_ms - start_ms) <= tol for r in rs):
                    rd[ch] = self._reference(p, ch, start_ms) + rs
        return form(p, rd, start_ms, end_ms)

    def _sign(self, values: Sequence[DerivedValue]) -> list[tuple[DerivedValue, bytes | None]]:
        from smgw.security.valuesig import sign_value

        ks = self.keystore
        return [(v, sign_value(ks.sig, v, ks.gateway_id) if v.billing else None)
                for v in values]

    def _offset_ms(self, p: Any) -> int:
        for s in p.sending:
            if s.trigger == "periodic":
                return int(s.offset_s or 0) * 1000
        return 0

    def _billing(self, p: Any, st: dict[str, Any], horizon: int, now: int
                 ) -> tuple[_Formed | None, bool]:
        """TAF 1/2: the next complete billing period, formed and sent once its sending offset
        has passed (late readings have that long to arrive)."""
        from smgw.tariff.periods import billing_periods

        done = int(st.get("formed_until", st["anchor"]))
        end = min(horizon, now - self._offset_ms(p))
        periods = billing_periods(p, done, end) if end > done else []
        if not periods:
            return None, False
        s, e = periods[0]
        res = self._form(p, s, e)
        values = self._sign(res.values)
        periodic = any(x.trigger == "periodic" for x in p.sending)
        msgs = [(s, e, values, "")] if values and periodic else []
        return _Formed(values, msgs, {**st, "formed_until": e}, list(res.switches),
                       list(res.problems)), len(periods) > 1

    def _daily(self, p: Any, st: dict[str, Any], horizon: int, now: int
               ) -> tuple[_Formed | None, bool]:
        """TAF 6: the reading at the start of each local day, kept ``retention_days`` (42),
        sent only on demand."""
        from smgw.tariff.periods import days

        done = int(st.get("formed_until", st["anchor"]))
        todo = days(p, done, horizon + 1) if horizon >= done else []
        keep = (p.retention_days or TAF6_RETENTION_DAYS) * DAY_MS
        prune = now - keep
        if not todo:
            if int(st.get("pruned_until", 0)) < prune - DAY_MS:
                return _Formed([], [], {**st, "pruned_until": prune}, [], [], prune), False
            return None, False
        batch = todo[:self.batch]
        start, last = batch[0][0], batch[-1][0]
        res = self._form(p, start, last + 1)
        values = self._sign([v for v in res.values if v.target_ms >= prune])
        return _Formed(values, [], {**st, "formed_until": last + 1, "pruned_until": prune},
                       [], list(res.problems), prune), len(todo) > len(batch)

    def _grid(self, p: Any, st: dict[str, Any], horizon: int, now: int
              ) -> tuple[_Formed | None, bool]:
        """TAF 7: every registration grid instant; one message per sending period."""
        from smgw.tariff.periods import registration_grid

        done = int(st.get("formed_until", st["anchor"] - 1))
        grid = registration_grid(p, done + 1, horizon) if horizon > done else []
        batch = grid[:self.batch]
        new_st = dict(st)
        values: list[tuple[DerivedValue, bytes | None]] = []
        problems: list[str] = []
        if batch:
            res = self._form(p, done, batch[-1])
            values = self._sign(res.values)
            problems = list(res.problems)
            done = batch[-1]
        if p.valid_until_ms is not None and horizon >= p.valid_until_ms and \
                len(batch) == len(grid):
            done = max(done, p.valid_until_ms)  # everything up to the end of validity formed
        new_st["formed_until"] = done
        # sending: complete windows whose values are all formed and whose offset has passed
        # (a profile that only sends on demand has no periodic rule: nothing goes out here)
        period_s = self._period_s(p)
        msgs = []
        wins: list[tuple[int, int]] = []
        sent = int(st.get("sent_until", window_of(p, period_s or DAY_S, st["anchor"])[0]))
        if period_s:
            end = min(done, now - self._offset_ms(p))
            if p.valid_until_ms is not None:
                end = min(end, p.valid_until_ms)
            fresh = {v.key(): (v, sig) for v, sig in values}
            wins = sending_windows(p, period_s, sent, end)
            for s, e in wins[:self.messages_per_tick]:
                covered = {sv.value.key(): (sv.value, sv.signature)
                           for sv in self._sent_values(p, s, e)}
                covered.update({k: x for k, x in fresh.items() if s < k[3] <= e})
                if covered:
                    msgs.append((s, e, sorted(covered.values(), key=_order), ""))
                sent = e
        new_st["sent_until"] = sent
        more = len(grid) > len(batch) or len(wins) > self.messages_per_tick
        if not values and not msgs and new_st == st:
            return None, more
        return _Formed(values, msgs, new_st, [], problems), more

    @staticmethod
    def _period_s(p: Any) -> int | None:
        for s in p.sending:
            if s.trigger == "periodic" and s.period_s:
                return int(s.period_s)
        return None

    def _not_billing(self, p: Any, st: dict[str, Any], horizon: int, now: int
                     ) -> tuple[_Formed | None, bool]:
        """TAF 9/10/14: min/max/mean per periodic window, every new reading (``adhoc``),
        threshold crossings; only the deliveries are stored."""
        new_st = dict(st)
        msgs = []
        more = False
        period_s = self._period_s(p)
        if period_s:
            # the first complete window after the profile was loaded
            first = window_of(p, period_s, st["anchor"])
            sent = int(st.get("sent_until",
                              first[0] if first[0] == st["anchor"] else first[1]))
            # a window [s, e) is complete once a reading captured at or after e is stored
            end = min(horizon + self._tol(p) + 1, now - self._offset_ms(p))
            wins = sending_windows(p, period_s, sent, end)
            for s, e in wins[:self.messages_per_tick]:
                res = self._form(p, s, e)
                if res.values:
                    msgs.append((s, e, [(v, None) for v in res.values], ""))
                sent = e
            new_st["sent_until"] = sent
            more = len(wins) > self.messages_per_tick
        triggers = {s.trigger for s in p.sending}
        if triggers & {"adhoc", "threshold"}:
            seen = int(st.get("seen_until", st["anchor"]))   # readings < seen are handled
            upto = min(horizon + self._tol(p), now) + 1
            if upto > seen + ADHOC_CATCH_UP_MS:             # after downtime: an hour a tick
                upto, more = seen + ADHOC_CATCH_UP_MS, True
            if upto > seen:
                vals = self._new_readings(p, seen, upto, "adhoc" in triggers)
                if vals:
                    msgs.append((seen, upto, vals, ""))
                new_st["seen_until"] = upto
        if not msgs and new_st == st:
            return None, more
        return _Formed([], msgs, new_st, [], []), more

    def _new_readings(self, p: Any, start: int, end: int, adhoc: bool
                      ) -> list[tuple[DerivedValue, None]]:
        """The readings captured in [start, end) that go out at once: all of them
        (``adhoc``) or the threshold crossings (status bit 16)."""
        from smgw.tariff.cases import threshold_crossings

        rd = self.readings(p, start, end - 1)
        before = self._last_before(p, start)
        full = {ch: before.get(ch, []) + rd.get(ch, []) for ch in p.channels}
        crossed = {(r.meter, r.obis, r.capture_ms)
                   for _, r, _ in threshold_crossings(p, full, start, end)}
        out: list[tuple[DerivedValue, None]] = []
        for ch in p.channels:
            for r in rd.get(ch, []):
                hit = (r.meter, r.obis, r.capture_ms) in crossed
                if not (hit or adhoc):
                    continue
                owner = p.pseudonym or r.meter
                out.append((DerivedValue(
                    profile=p.name, taf=p.taf, register=r.obis, owner=owner,
                    period_start_ms=r.capture_ms, period_end_ms=r.capture_ms,
                    target_ms=r.capture_ms, value=r.value, scaler=r.scaler, unit=r.unit,
                    status=smgw_status(time_valid=r.time_valid, billing=False,
                                       meter_status=r.status, threshold=hit),
                    meter_status=r.status, capture_ms=r.capture_ms, time_valid=r.time_valid,
                    billing=False, kind="reading", sources=(owner,)), None))
        out.sort(key=_order)
        return out

    # ------------------------------------------------------------------ storing and sending

    def _recipients(self, p: Any, only: str | None = None) -> list[tuple[str, Any]]:
        from cryptography import x509

        out = []
        for name in p.recipients:
            if only is not None and name != only:
                continue
            sp = self.tariff.profile(name)
            if sp is None or sp.removed_ms is not None or sp.kind != "communication":
                log.warning("recipient of a profile is not loaded; nothing sent to it",
                            extra={"fields": {"profile": p.name, "comm_profile": name}})
                continue
            cert = self._certs.get((name, sp.version))
            if cert is None:
                pem = sp.profile.enc_cert
                cert = x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str)
                                                      else pem)
                self._certs[(name, sp.version)] = cert
            out.append((name, cert))
        return out

    def _protect(self, p: Any, msgs: Sequence[tuple[int | None, int | None,
                                                     Sequence[tuple[DerivedValue, bytes | None]],
                                                     str]],
                 only: str | None = None) -> list[tuple[str, str, int | None, int | None, int,
                                                        bytes]]:
        """(message id, recipient, start, end, n, content) for each message and recipient."""
        from smgw.security.cms import protect

        ks = self.keystore
        out = []
        recipients = self._recipients(p, only)
        for s, e, vals, extra in msgs:
            payload = build_payload(vals, ks.gateway_id, p.taf, p.pseudonym)
            keys = [v.key() for v, _ in vals]
            for name, cert in recipients:
                mid = message_id(p.name, name, s, e, keys, extra)
                out.append((mid, name, s, e, len(vals), protect(payload, ks.sig, cert)))
        return out

    def _commit(self, p: Any, f: _Formed, now: int) -> None:
        # the expensive part (CMS) before the transaction: the write lock is held briefly
        deliveries = self._protect(p, f.messages)
        with self.store._write("tariff-tick") as conn:
            n = self.tariff.put_values(f.values, now, conn=conn) if f.values else 0
            for mid, name, s, e, nv, content in deliveries:
                self.outbox.add(mid, p.name, name, s, e, nv, content, now, conn=conn)
            pruned = (self.tariff.prune(p.name, f.prune_before, conn=conn)
                      if f.prune_before is not None else 0)
            self.tariff.set_state(p.name, f.state, conn=conn)
        self.formed += n
        if deliveries and self.on_queued is not None:
            self.on_queued()
        ctx = self._ctx(p)
        for t, stage in f.switches:
            self._event(10272, tariff_profile=p.name, tariff_stage=stage,
                      switch_time=_local_iso(t, p.timezone), **ctx)
        if pruned:
            self._event(10221, profile_name=p.name, evaluation_profile=p.name,
                      cutoff=_local_iso(f.prune_before, p.timezone), **ctx)
        for problem in f.problems:
            log.warning("tariff: %s", problem, extra={"fields": {"profile": p.name}})

    # ------------------------------------------------------------------ on demand

    def _sent_values(self, p: Any, start: int, end: int) -> list[Any]:
        """The stored values a message about ``[start, end)`` carries: TAF 7 the values of
        the registration periods inside it (stamped at their end: target in (start, end], so
        a day's load profile runs 00:15 .. 24:00); TAF 6 the reading at the day start; TAF 1/2
        the registers of the billing period and the readings at its two boundaries."""
        if p.taf == 7:
            return self.tariff.values(p.name, start + 1, end + 1)
        if p.taf == 6:
            return self.tariff.values(p.name, start, end)
        return [sv for sv in self.tariff.values(p.name, start, end + 1)
                if sv.value.kind == "reading" or sv.value.period_end_ms == end]

    def on_demand(self, profile: str, day_ms: int, recipient: str | None = None) -> int:
        """Sends stored values again, to the profile's recipients (or only ``recipient``):
        TAF 6 the reading of the local day containing ``day_ms`` (the read-out on demand),
        TAF 7 that day's load profile, TAF 1/2 the billing period containing it. Returns how
        many messages were queued."""
        from smgw.tariff.periods import day_of, period_of

        sp = self.tariff.profile(profile)
        if sp is None or sp.removed_ms is not None or sp.kind != "evaluation":
            raise ValueError(f"profile: no evaluation profile {profile!r}")
        p = sp.profile
        if p.taf not in (1, 2, 6, 7):
            raise ValueError(f"profile: {profile!r} is TAF {p.taf}; its values are not stored "
                             "and cannot be sent again")
        if recipient is not None and recipient not in p.recipients:
            raise ValueError(f"recipient: {recipient!r} is not a recipient of {profile!r} "
                             f"({', '.join(p.recipients)})")
        start, end = period_of(p, day_ms) if p.taf in (1, 2) else day_of(day_ms, p.timezone)
        vals = [(sv.value, sv.signature) for sv in self._sent_values(p, start, end)]
        if not vals:
            kept = (f" (kept {p.retention_days or TAF6_RETENTION_DAYS} days)" if p.taf == 6
                    else "")
            raise ValueError(f"day: no value of {profile!r} for {_local_iso(start, p.timezone)}"
                             f" .. {_local_iso(end, p.timezone)}{kept}")
        now = self.now_ms()
        deliveries = self._protect(p, [(start, end, vals, f"on-demand@{now}")], recipient)
        n = 0
        with self.store._write("on-demand") as conn:
            for mid, name, s, e, nv, content in deliveries:
                n += bool(self.outbox.add(mid, p.name, name, s, e, nv, content, now,
                                          conn=conn))
        if n and self.on_queued is not None:
            self.on_queued()
        return n

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        out = []
        for sp in self.tariff.profiles(kind="evaluation"):
            out.append({"name": sp.name, "taf": sp.taf, "active": sp.active,
                        "version": sp.version, "state": self.tariff.state(sp.name),
                        "error": self.errors.get(sp.name)})
        return {"profiles": out, "formed": self.formed}


def _looks_communication(text: str) -> bool:
    """Whether profile text means to be a communication profile (also when it is invalid)."""
    import tomllib

    try:
        return tomllib.loads(text)["profile"]["kind"] == "communication"
    except Exception:  # noqa: BLE001 - not TOML or no kind: treated as an evaluation profile
        return False


def _order(x: tuple[DerivedValue, bytes | None]) -> tuple[int, str, str]:
    v = x[0]
    return (v.target_ms, v.register, v.owner)
