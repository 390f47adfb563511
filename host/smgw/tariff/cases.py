"""The tariff application cases (TAF) as pure functions: readings in, derived values out.

:func:`form` is the one entry point; it does no I/O and keeps no state, so the engine, the replay
command and the tests all compute the same thing. What each case forms, how gaps and unusable
readings are treated and how registers are named is in docs/tariffs.md; in short:

* **Capture tolerance.** A reading stands for grid instant ``t`` if its capture time is within
  1 % of the registration period of ``t`` (PTB: ±9 s at 900 s); the nearest one wins (the
  earlier on a tie), and a usable reading is preferred to an unusable one.
* **Usable** (:meth:`Reading.usable`): legal time was valid and the meter reports neither
  manipulation nor a fatal error. Registers (TAF 1, 2) use usable readings only; an unusable one
  counts as missing. Readings (TAF 6, 7) are passed on with their status bits set instead.
* **TAF 1**: per channel ``end - start`` of the billing period (``1-0:C.D.1``, owner = meter),
  the signed sum over the channels (owner = profile), and the start/end readings themselves.
* **TAF 2**: the energy between consecutive valid grid readings goes to the stage in force if no
  switch lies between them, otherwise into the error register ``1-0:C.D.63``; ``1-0:C.D.0`` is
  the sum. Stages + error register = the meter's advance over the period, exactly.
* **TAF 6**: the reading at the start of each local day. **TAF 7**: the reading at every grid
  instant. **TAF 9/10/14**: min/max/mean over the window and the last reading (TAF 14: every
  reading), not billing relevant, pseudonym instead of the meter id when configured.

Values keep the meters' integer + power-of-ten form; when readings of one channel come with
different scalers, results use the smallest (exact, no rounding). Only the TAF 9/10/14 mean can
be fractional: it gets up to three more decimal places, rounded half to even.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import overload

from smgw.tariff.calendar import StageCalendar
from smgw.tariff.model import ERROR_STAGE, DerivedValue, Reading, smgw_status
from smgw.tariff.periods import (
    DAY_MS,
    days,
    iso,
    nearest_grid,
    previous_grid,
    registration_grid,
    tolerance_ms,
    zone,
)
from smgw.tariff.profile import Channel, EvaluationProfile, Sending

# how far back TAF 2 looks for a reference reading when the period's start reading is missing
TAF2_LOOKBACK_MS = 32 * DAY_MS


@dataclass
class FormResult:
    values: list[DerivedValue] = field(default_factory=list)
    switches: list[tuple[int, int]] = field(default_factory=list)   # TAF 2: (instant, new stage)
    problems: list[str] = field(default_factory=list)


class ReadingIndex(Sequence[Reading]):
    """The readings of one channel, sorted by capture time, with their capture times kept in a
    list for binary search. Build it once and pass it to :func:`form` many times (replay, engine
    catch-up) to avoid re-scanning."""

    __slots__ = ("readings", "captures")

    def __init__(self, readings: Iterable[Reading]) -> None:
        rs = list(readings)
        caps = [r.capture_ms for r in rs]
        if any(caps[i] > caps[i + 1] for i in range(len(caps) - 1)):
            rs.sort(key=lambda r: r.capture_ms)
            caps = [r.capture_ms for r in rs]
        self.readings: list[Reading] = rs
        self.captures: list[int] = caps

    def __len__(self) -> int:
        return len(self.readings)

    @overload
    def __getitem__(self, i: int) -> Reading: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Reading]: ...
    def __getitem__(self, i):  # type: ignore[no-untyped-def]
        return self.readings[i]

    def span(self, lo_ms: int, hi_ms: int) -> tuple[int, int]:
        """Index range of the readings captured in ``[lo_ms, hi_ms]``."""
        return bisect_left(self.captures, lo_ms), bisect_right(self.captures, hi_ms)

    def match(self, t_ms: int, tol_ms: int, *, usable_only: bool) -> Reading | None:
        """The reading standing for instant ``t_ms``: within ``tol_ms``, usable ones first, then
        the nearest, then the earlier."""
        lo, hi = self.span(t_ms - tol_ms, t_ms + tol_ms)
        best: Reading | None = None
        best_key: tuple[int, int] | None = None
        for i in range(lo, hi):
            r = self.readings[i]
            ok = r.usable()
            if usable_only and not ok:
                continue
            key = (0 if ok else 1, abs(r.capture_ms - t_ms))
            if best_key is None or key < best_key:
                best, best_key = r, key
        return best


def index(readings: Sequence[Reading]) -> ReadingIndex:
    return readings if isinstance(readings, ReadingIndex) else ReadingIndex(readings)


def reading_window(p: EvaluationProfile, start_ms: int, end_ms: int) -> tuple[int, int]:
    """The capture-time range ``[from, to]`` of readings :func:`form` may use for this call
    (what the engine should load)."""
    tol = tolerance_ms(p)
    if p.taf == 2:
        return start_ms - TAF2_LOOKBACK_MS, end_ms + tol
    if p.taf in (9, 10, 14):
        return start_ms, end_ms - 1
    if p.taf == 7:
        return start_ms + 1 - tol, end_ms + tol
    return start_ms - tol, end_ms + tol


def form(p: EvaluationProfile, readings: Mapping[Channel, Sequence[Reading]],
         start_ms: int, end_ms: int) -> FormResult:
    """Form the values of profile ``p`` for one call window:

    * TAF 1/2: the billing period ``[start, end)``;
    * TAF 6: every local day whose start lies in ``[start, end)``;
    * TAF 7: every registration grid instant in ``(start, end]``;
    * TAF 9/10/14: the aggregation window ``[start, end)``.

    ``readings`` maps each channel to its readings sorted by capture time (a
    :class:`ReadingIndex` is reused as is); a missing channel counts as no readings.
    """
    idx = {ch: index(readings.get(ch, ())) for ch in p.channels}
    res = FormResult()
    if end_ms <= start_ms:
        return res
    if p.taf == 1:
        _taf1(p, idx, start_ms, end_ms, res)
    elif p.taf == 2:
        _taf2(p, idx, start_ms, end_ms, res)
    elif p.taf == 6:
        _taf6(p, idx, start_ms, end_ms, res)
    elif p.taf == 7:
        _taf7(p, idx, start_ms, end_ms, res)
    elif p.taf in (9, 10, 14):
        _aggregate(p, idx, start_ms, end_ms, res)
    else:  # pragma: no cover - the profile validation rejects other TAFs
        raise ValueError(f"TAF {p.taf} is not supported")
    return res


# ------------------------------------------------------------------------------------ helpers


def register_obis(obis: str, e: int) -> str:
    """The channel OBIS with its E group replaced: ``("1-0:1.8.0", 2) -> "1-0:1.8.2"``."""
    return f"{obis.rsplit('.', 1)[0]}.{e}"


def _scaled(r: Reading, scaler: int) -> int:
    """``r.value`` expressed with the (smaller or equal) ``scaler``."""
    return r.value * 10 ** (r.scaler - scaler)


def _or_status(words: Iterable[int | None]) -> int | None:
    out: int | None = None
    for w in words:
        if w is not None:
            out = w if out is None else out | w
    return out


def _amount(value: int, scaler: int, unit: str) -> str:
    return f"{format(Decimal(value).scaleb(scaler), 'f')} {unit}"


def _label(ch: Channel) -> str:
    return f"{ch.meter} {ch.obis}"


def _reading_value(p: EvaluationProfile, ch: Channel, r: Reading, target: int,
                   period: tuple[int, int]) -> DerivedValue:
    """A reading passed on as it is (TAF 1 boundaries, TAF 6, TAF 7), status from the reading."""
    return DerivedValue(
        profile=p.name, taf=p.taf, register=ch.obis, owner=ch.meter,
        period_start_ms=period[0], period_end_ms=period[1], target_ms=target,
        value=r.value, scaler=r.scaler, unit=r.unit,
        status=smgw_status(time_valid=r.time_valid, billing=True, meter_status=r.status),
        meter_status=r.status, capture_ms=r.capture_ms, time_valid=r.time_valid,
        billing=True, kind="reading", sources=(ch.meter,))


# -------------------------------------------------------------------------------------- TAF 1


def _taf1(p: EvaluationProfile, idx: dict[Channel, ReadingIndex], start: int, end: int,
          res: FormResult) -> None:
    tol = tolerance_ms(p)
    tz = p.timezone
    parts: list[tuple[Channel, int, int, str, int | None]] = []
    for ch in p.channels:
        ix = idx[ch]
        a = ix.match(start, tol, usable_only=True)
        b = ix.match(end, tol, usable_only=True)
        for r, t, what in ((a, start, "start"), (b, end, "end")):
            if r is None:
                res.problems.append(f"{_label(ch)}: no valid reading at the period {what} "
                                    f"{iso(t, tz)} (±{tol // 1000} s); no register")
            else:
                res.values.append(_reading_value(p, ch, r, t, (start, end)))
        if a is None or b is None:
            continue
        if a.unit != b.unit:
            res.problems.append(f"{_label(ch)}: unit changed from {a.unit} to {b.unit} within "
                                f"the period; no register")
            continue
        sc = min(a.scaler, b.scaler)
        adv = _scaled(b, sc) - _scaled(a, sc)
        if adv < 0:
            res.problems.append(f"{_label(ch)}: the reading went down by "
                                f"{_amount(-adv, sc, a.unit)}; meter exchanged or rolled over?")
        ms = _or_status((a.status, b.status))
        res.values.append(DerivedValue(
            profile=p.name, taf=1, register=register_obis(ch.obis, 1), owner=ch.meter,
            period_start_ms=start, period_end_ms=end, target_ms=end, value=adv, scaler=sc,
            unit=a.unit, status=smgw_status(billing=True, meter_status=ms), meter_status=ms,
            billing=True, stage=1, kind="register", sources=(ch.meter,)))
        parts.append((ch, adv, sc, a.unit, ms))
    if len(parts) != len(p.channels):
        missing = [_label(ch) for ch in p.channels if ch not in {x[0] for x in parts}]
        res.problems.append(f"no sum register: no advance for {', '.join(missing)}")
        return
    units = {u for _, _, _, u, _ in parts}
    if len(units) > 1:
        res.problems.append(f"no sum register: the channels have different units "
                            f"({', '.join(sorted(units))})")
        return
    sc = min(s for _, _, s, _, _ in parts)
    total = sum(ch.sign * adv * 10 ** (s - sc) for ch, adv, s, _, _ in parts)
    ms = _or_status(m for *_, m in parts)
    res.values.append(DerivedValue(
        profile=p.name, taf=1, register=register_obis(p.channels[0].obis, 1), owner=p.name,
        period_start_ms=start, period_end_ms=end, target_ms=end, value=total, scaler=sc,
        unit=parts[0][3], status=smgw_status(billing=True, meter_status=ms), meter_status=ms,
        billing=True, stage=1, kind="sum", sources=tuple(ch.meter for ch in p.channels)))


# -------------------------------------------------------------------------------------- TAF 2


def _grid_reference(p: EvaluationProfile, ix: ReadingIndex, start: int, tol: int,
                    unit: str | None) -> tuple[Reading, int] | None:
    """The last usable reading before ``start`` that won its own grid instant: where the
    energy of a period whose start reading is missing is counted from."""
    i = bisect_left(ix.captures, start - tol)
    limit = start - TAF2_LOOKBACK_MS
    while i > 0:
        i -= 1
        r = ix.readings[i]
        if r.capture_ms < limit:
            break
        if not r.usable() or (unit is not None and r.unit != unit):
            continue
        g = nearest_grid(p, r.capture_ms)
        if g >= start or abs(r.capture_ms - g) > tol:
            continue
        if ix.match(g, tol, usable_only=True) is r:
            return r, g
    return None


def _taf2(p: EvaluationProfile, idx: dict[Channel, ReadingIndex], start: int, end: int,
          res: FormResult) -> None:
    tol = tolerance_ms(p)
    tz = zone(p.timezone)
    cal = StageCalendar(p)
    grid = registration_grid(p, start, end)
    if not grid or grid[0] != start or grid[-1] != end:
        raise ValueError(f"TAF 2 period {iso(start, tz)} .. {iso(end, tz)} does not start and "
                         f"end on the registration grid")
    n = len(grid)
    sw = cal.switches(start, end)
    res.switches = sw
    # stage of interval i = [grid[i], grid[i+1]); chg[i] counts stage changes at intervals 1..i
    stage: list[int] = []
    chg: list[int] = []
    cur = cal.stage_at(start)
    k = 0
    changes = 0
    for i in range(n - 1):
        while k < len(sw) and sw[k][0] <= grid[i]:
            cur = sw[k][1]
            k += 1
        if stage and cur != stage[-1]:
            changes += 1
        stage.append(cur)
        chg.append(changes)
    switch_at = {t: s for t, s in sw}
    numbers = [s.number for s in sorted(p.stages, key=lambda s: s.number)]
    for ch in p.channels:
        _taf2_channel(p, ch, idx[ch], grid, stage, chg, switch_at, numbers, tol, tz, res)


def _taf2_channel(p: EvaluationProfile, ch: Channel, ix: ReadingIndex, grid: list[int],
                  stage: list[int], chg: list[int], switch_at: dict[int, int],
                  numbers: list[int], tol: int, tz: dt.tzinfo, res: FormResult) -> None:
    start, end, n = grid[0], grid[-1], len(grid)
    lab = _label(ch)
    # 1. the valid reading of every grid instant (None = missing or unusable)
    rs: list[Reading | None] = [ix.match(g, tol, usable_only=True) for g in grid]
    unit: str | None = None
    for i, r in enumerate(rs):
        if r is None:
            continue
        if unit is None:
            unit = r.unit
        elif r.unit != unit:
            res.problems.append(f"{lab}: reading at {iso(grid[i], tz)} is in {r.unit}, not "
                                f"{unit}; treated as missing")
            rs[i] = None
    ref: tuple[Reading, int] | None = None
    if rs[0] is None:
        ref = _grid_reference(p, ix, start, tol, unit)
    used = [r for r in rs if r is not None]
    if ref is not None:
        used.append(ref[0])
        unit = unit or ref[0].unit
    if len(used) < 2:
        res.problems.append(f"{lab}: fewer than two valid readings for the period "
                            f"{iso(start, tz)} .. {iso(end, tz)}; no registers")
        return
    assert unit is not None
    sc = min(r.scaler for r in used)
    # 2. walk the segments between consecutive valid readings
    amounts = dict.fromkeys(numbers, 0)
    err = 0
    prev_i: int | None = None
    prev_v = 0
    if rs[0] is not None:
        prev_i, prev_v = 0, _scaled(rs[0], sc)
    elif ref is not None:
        prev_i, prev_v = -1, _scaled(ref[0], sc)
    for i in range(1, n):
        r = rs[i]
        if r is None:
            continue
        v = _scaled(r, sc)
        if prev_i is None:
            res.problems.append(f"{lab}: no valid reading at or before the period start; "
                                f"the energy before {iso(grid[i], tz)} is not accounted")
        elif prev_i == -1:
            assert ref is not None
            err += v - prev_v
            res.problems.append(
                f"{lab}: no valid reading at the period start; {_amount(v - prev_v, sc, unit)} "
                f"from {iso(ref[1], tz)} to {iso(grid[i], tz)} goes to the error register")
        else:
            e = v - prev_v
            if i - prev_i == 1 or chg[i - 1] == chg[prev_i]:
                amounts[stage[prev_i]] += e
                if i - prev_i > 1:
                    res.problems.append(
                        f"{lab}: no valid reading from {iso(grid[prev_i + 1], tz)} to "
                        f"{iso(grid[i - 1], tz)}; no switch in the gap, {_amount(e, sc, unit)} "
                        f"goes to stage {stage[prev_i]}")
            else:
                err += e
                at = next(iso(g, tz) for g in grid[prev_i + 1:i] if g in switch_at)
                res.problems.append(
                    f"{lab}: no valid reading from {iso(grid[prev_i + 1], tz)} to "
                    f"{iso(grid[i - 1], tz)} across the tariff switch at {at}; "
                    f"{_amount(e, sc, unit)} between {iso(grid[prev_i], tz)} and "
                    f"{iso(grid[i], tz)} goes to the error register")
            if e < 0:
                res.problems.append(f"{lab}: the reading went down by {_amount(-e, sc, unit)} "
                                    f"between "
                                    f"{iso(grid[prev_i], tz)} and {iso(grid[i], tz)}; "
                                    f"meter exchanged or rolled over?")
        prev_i, prev_v = i, v
    if rs[-1] is None and prev_i is not None and prev_i >= 0:
        res.problems.append(f"{lab}: no valid reading from {iso(grid[prev_i + 1], tz)} to the "
                            f"period end {iso(end, tz)}; that energy counts in the next period")
    ms = _or_status(r.status for r in used)
    status = smgw_status(billing=True, meter_status=ms)
    src = (ch.meter,)

    def dv(register: str, value: int, stage_no: int | None, kind: str) -> DerivedValue:
        return DerivedValue(profile=p.name, taf=2, register=register, owner=p.name,
                            period_start_ms=start, period_end_ms=end, target_ms=end,
                            value=value, scaler=sc, unit=unit, status=status, meter_status=ms,
                            billing=True, stage=stage_no, kind=kind, sources=src)

    for num in numbers:
        res.values.append(dv(register_obis(ch.obis, num), amounts[num], num, "register"))
    res.values.append(dv(register_obis(ch.obis, ERROR_STAGE), err, ERROR_STAGE, "register"))
    res.values.append(dv(register_obis(ch.obis, 0), sum(amounts.values()) + err, None, "sum"))


# ---------------------------------------------------------------------------------- TAF 6 / 7


def _taf6(p: EvaluationProfile, idx: dict[Channel, ReadingIndex], start: int, end: int,
          res: FormResult) -> None:
    tol = tolerance_ms(p)
    for ds, de in days(p, start, end):
        for ch in p.channels:
            r = idx[ch].match(ds, tol, usable_only=False)
            if r is None:
                res.problems.append(f"{_label(ch)}: no reading at the day start "
                                    f"{iso(ds, p.timezone)} (±{tol // 1000} s)")
            else:
                res.values.append(_reading_value(p, ch, r, ds, (ds, de)))


def _taf7(p: EvaluationProfile, idx: dict[Channel, ReadingIndex], start: int, end: int,
          res: FormResult) -> None:
    tol = tolerance_ms(p)
    grid = registration_grid(p, start, end)
    if grid and grid[0] == start:
        grid = grid[1:]
    if not grid:
        return
    prev = previous_grid(p, grid[0])
    for ch in p.channels:
        ix = idx[ch]
        missing: list[int] = []
        before = prev
        for g in grid:
            r = ix.match(g, tol, usable_only=False)
            if r is None:
                missing.append(g)
            else:
                res.values.append(_reading_value(p, ch, r, g, (before, g)))
            before = g
        res.problems.extend(_gap_problems(p, ch, missing))


def _gap_problems(p: EvaluationProfile, ch: Channel, missing: list[int]) -> list[str]:
    """Missing grid instants collapsed into runs: one problem line per run."""
    out: list[str] = []
    step = p.registration_period_s * 1000
    i = 0
    while i < len(missing):
        j = i
        while j + 1 < len(missing) and missing[j + 1] - missing[j] <= step:
            j += 1
        a, b = iso(missing[i], p.timezone), iso(missing[j], p.timezone)
        n = j - i + 1
        out.append(f"{_label(ch)}: gap, no reading at {a}" if n == 1 else
                   f"{_label(ch)}: gap, no reading at {n} grid instants from {a} to {b}")
        i = j + 1
    return out


# ---------------------------------------------------------------------------- TAF 9 / 10 / 14


def _mean(total: int, n: int, scaler: int) -> tuple[int, int]:
    q = Fraction(total, n)
    for extra in range(4):
        x = q * 10 ** extra
        if x.denominator == 1:
            return int(x), scaler - extra
    return round(q * 1000), scaler - 3


def _aggregate(p: EvaluationProfile, idx: dict[Channel, ReadingIndex], start: int, end: int,
               res: FormResult) -> None:
    tz = p.timezone
    for ch in p.channels:
        ix = idx[ch]
        lo, hi = ix.span(start, end - 1)
        rs = ix.readings[lo:hi]
        if not rs:
            res.problems.append(f"{_label(ch)}: no reading from {iso(start, tz)} to "
                                f"{iso(end, tz)}")
            continue
        unit = rs[-1].unit
        odd = [r for r in rs if r.unit != unit]
        if odd:
            res.problems.append(f"{_label(ch)}: {len(odd)} reading(s) not in {unit} left out")
            rs = [r for r in rs if r.unit == unit]
        owner = p.pseudonym or ch.meter
        sc = min(r.scaler for r in rs)
        vals = [_scaled(r, sc) for r in rs]
        tv = all(r.time_valid for r in rs)
        ms = _or_status(r.status for r in rs)
        status = smgw_status(time_valid=tv, billing=False, meter_status=ms)

        def dv(kind: str, value: int, scaler: int, target: int, capture: int | None,
               r: Reading | None = None) -> DerivedValue:
            if r is not None:      # a single reading keeps its own status
                return DerivedValue(
                    profile=p.name, taf=p.taf, register=ch.obis, owner=owner,
                    period_start_ms=start, period_end_ms=end, target_ms=target, value=value,
                    scaler=scaler, unit=unit,
                    status=smgw_status(time_valid=r.time_valid, billing=False,
                                       meter_status=r.status),
                    meter_status=r.status, capture_ms=capture, time_valid=r.time_valid,
                    billing=False, kind=kind, sources=(owner,))
            return DerivedValue(
                profile=p.name, taf=p.taf, register=ch.obis, owner=owner,
                period_start_ms=start, period_end_ms=end, target_ms=target, value=value,
                scaler=scaler, unit=unit, status=status, meter_status=ms, capture_ms=capture,
                time_valid=tv, billing=False, kind=kind, sources=(owner,))

        for agg in p.aggregation:
            if agg == "min":
                i = min(range(len(vals)), key=vals.__getitem__)
                res.values.append(dv("min", vals[i], sc, end, rs[i].capture_ms))
            elif agg == "max":
                i = max(range(len(vals)), key=vals.__getitem__)
                res.values.append(dv("max", vals[i], sc, end, rs[i].capture_ms))
            elif agg == "mean":
                v, s = _mean(sum(vals), len(vals), sc)
                res.values.append(dv("mean", v, s, end, None))
        for r in (rs if p.taf == 14 else rs[-1:]):
            res.values.append(dv("reading", r.value, r.scaler, r.capture_ms, r.capture_ms, r))


def threshold_crossings(p: EvaluationProfile, readings: Mapping[Channel, Sequence[Reading]],
                        start_ms: int, end_ms: int) -> list[tuple[int, Reading, str]]:
    """For the threshold sending rules of ``p``: every reading captured in ``[start, end)`` that
    crosses a threshold, as ``(index into p.sending, reading, "above" | "below")``. A reading
    crosses ``above`` when its raw value is greater than it and the channel's reading before
    was not (the first reading ever counts if it is beyond); likewise ``below``."""
    out: list[tuple[int, Reading, str]] = []
    for si, s in enumerate(p.sending):
        if s.trigger != "threshold" or s.channel is None:
            continue
        ch = p.channels[s.channel]
        ix = index(readings.get(ch, ()))
        lo, hi = ix.span(start_ms, end_ms - 1)
        prev = ix.readings[lo - 1] if lo > 0 else None
        for r in ix.readings[lo:hi]:
            for side, beyond in (("above", _above(s)), ("below", _below(s))):
                if beyond is None:
                    continue
                if beyond(r.value) and (prev is None or not beyond(prev.value)):
                    out.append((si, r, side))
            prev = r
    out.sort(key=lambda x: x[1].capture_ms)
    return out


def _above(s: Sending):  # type: ignore[no-untyped-def]
    return None if s.above is None else (lambda v, a=s.above: v > a)


def _below(s: Sending):  # type: ignore[no-untyped-def]
    return None if s.below is None else (lambda v, b=s.below: v < b)
