"""Local calendar time for tariff profiles: days, billing periods and the registration grid.

Everything outside this module (and :mod:`smgw.tariff.calendar`) works in Unix milliseconds
(UTC). Here the profile's time zone (``EvaluationProfile.timezone``, an IANA name such as
``Europe/Berlin``) turns them into local days, which are 23, 24 or 25 hours long.

Rules (docs/tariffs.md, "Time and daylight saving"):

* A **local day** runs from the first instant of its date to the first instant of the next date.
  Normally that is local midnight; in a zone that skips midnight itself, it is the end of the
  skipped interval.
* The **registration grid** of a day is ``day_start + k * registration_period_s`` (elapsed real
  time) for every ``k`` that stays before the next day's start. With a registration period that
  divides one hour (the 15 minutes of German electricity) and a zone whose offsets are whole
  hours, that is simply every quarter hour of UTC: a 23-hour day has 92 registration periods, a
  25-hour day 100.
* **Billing periods** are local calendar periods: ``"day"``, ``"month"`` (= ``"P1M"``) or
  ``"P<n>M"``, which groups ``n`` calendar months, the first group starting with the month in
  which the profile becomes valid. A period starts at the first instant of its first day.
* A wall-clock time that does not exist (the skipped hour in spring) is taken as the first instant
  at or after it, i.e. the end of the skipped interval; an ambiguous one (the repeated hour in
  autumn) is its first occurrence. :func:`local_instant` implements this.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from bisect import bisect_left
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from smgw.tariff.profile import EvaluationProfile

_UTC = dt.timezone.utc
_MONTHS = re.compile(r"^P([1-9][0-9]{0,2})M$")
DAY_MS = 86_400_000


@functools.lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """The time zone ``name`` (cached; raises ``zoneinfo.ZoneInfoNotFoundError``/ValueError)."""
    return ZoneInfo(name)


def to_local(t_ms: int, tz: ZoneInfo) -> dt.datetime:
    """The aware local datetime of ``t_ms``."""
    return dt.datetime.fromtimestamp(t_ms / 1000, tz)


def local_date(t_ms: int, tz: ZoneInfo) -> dt.date:
    """The local calendar date the instant ``t_ms`` falls on."""
    return dt.datetime.fromtimestamp(t_ms // 1000, tz).date()


def _ms(d: dt.datetime) -> int:
    # exact: timedelta arithmetic, no float rounding
    return (d - dt.datetime(1970, 1, 1, tzinfo=_UTC)) // dt.timedelta(milliseconds=1)


def local_instant(day: dt.date, seconds: int, tz: ZoneInfo) -> int:
    """The instant (ms) at which the local wall clock of ``day`` first reads ``seconds`` after
    midnight, or, if that wall-clock time does not exist (spring gap), the first instant after
    the gap. Ambiguous times (autumn fold) give their first occurrence."""
    naive = dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=seconds)
    u0 = _ms(naive.replace(tzinfo=tz, fold=0))
    u1 = _ms(naive.replace(tzinfo=tz, fold=1))
    if u0 <= u1:            # normal (equal) or ambiguous: fold 0 is the first occurrence
        return u0
    # Non-existent: fold=1 applies the later offset (earlier instant), fold=0 the earlier offset
    # (later instant); the transition lies in (u1, u0]. Find the first whole second there whose
    # wall clock is >= the wanted time (before the transition it is earlier, after it later).
    lo, hi = u1 // 1000, u0 // 1000
    while lo < hi:
        mid = (lo + hi) // 2
        if dt.datetime.fromtimestamp(mid, tz).replace(tzinfo=None) >= naive:
            hi = mid
        else:
            lo = mid + 1
    return lo * 1000


@functools.lru_cache(maxsize=8192)
def _day_start(day: dt.date, tzname: str) -> int:
    return local_instant(day, 0, zone(tzname))


def day_start_ms(day: dt.date, tz: ZoneInfo | str) -> int:
    """The first instant of local date ``day``."""
    return _day_start(day, tz if isinstance(tz, str) else tz.key)


def day_bounds(day: dt.date, tz: ZoneInfo | str) -> tuple[int, int]:
    """``(start, end)`` of local date ``day`` (end = start of the next date)."""
    return day_start_ms(day, tz), day_start_ms(day + dt.timedelta(days=1), tz)


def day_of(t_ms: int, tz: ZoneInfo | str) -> tuple[int, int]:
    """The local day containing ``t_ms``."""
    z = zone(tz) if isinstance(tz, str) else tz
    d = local_date(t_ms, z)
    start, end = day_bounds(d, z.key)
    # Only in zones whose DST change skips midnight itself can the date's first instant lie
    # after t (t is then inside the skipped interval): t belongs to the day before.
    if t_ms < start:
        d -= dt.timedelta(days=1)
        start, end = day_bounds(d, z.key)
    # Likewise, where clocks fall back across midnight the wall clock shows the old date again
    # after the new date began: t belongs to the new date (days never overlap).
    elif t_ms >= end:
        start, end = day_bounds(d + dt.timedelta(days=1), z.key)
    return start, end


def _month_start(year: int, month: int, tzname: str) -> int:
    return _day_start(dt.date(year, month, 1), tzname)


def _month_index(d: dt.date) -> int:
    return d.year * 12 + d.month - 1


def _month_from_index(i: int) -> tuple[int, int]:
    return i // 12, i % 12 + 1


def months_of(billing_period: str | None) -> int | None:
    """Months per billing period (``"month"`` -> 1, ``"P3M"`` -> 3), None for "day"/None."""
    if billing_period == "month":
        return 1
    if billing_period is None or billing_period == "day":
        return None
    m = _MONTHS.match(billing_period)
    if not m:
        raise ValueError(f"not a billing period: {billing_period!r}")
    return int(m.group(1))


def days(p: EvaluationProfile, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
    """The local days whose start lies in ``[start_ms, end_ms)``, each as ``(start, end)``
    (23, 24 or 25 hours)."""
    tz = zone(p.timezone)
    out: list[tuple[int, int]] = []
    if end_ms <= start_ms:
        return out
    d = local_date(start_ms, tz)
    s = day_start_ms(d, tz)
    if s < start_ms:
        d += dt.timedelta(days=1)
        s = day_start_ms(d, tz)
    while s < end_ms:
        d += dt.timedelta(days=1)
        e = day_start_ms(d, tz)
        out.append((s, e))
        s = e
    return out


def _period_start_index(p: EvaluationProfile, month_idx: int) -> int:
    n = months_of(p.billing_period) or 1
    anchor = _month_index(local_date(p.valid_from_ms, zone(p.timezone)))
    return month_idx - (month_idx - anchor) % n


def period_of(p: EvaluationProfile, t_ms: int) -> tuple[int, int]:
    """The billing period ``(start, end)`` containing ``t_ms``."""
    if p.billing_period is None:
        raise ValueError(f"profile {p.name} (TAF {p.taf}) has no billing period")
    if p.billing_period == "day":
        return day_of(t_ms, p.timezone)
    n = months_of(p.billing_period)
    assert n is not None
    tz = zone(p.timezone)
    d = local_date(t_ms, tz)
    i = _period_start_index(p, _month_index(d))
    start = _month_start(*_month_from_index(i), tz.key)
    if t_ms < start:           # only in zones that skip the first hours of a month
        i -= n
        start = _month_start(*_month_from_index(i), tz.key)
    end = _month_start(*_month_from_index(i + n), tz.key)
    if t_ms >= end:
        start, end = end, _month_start(*_month_from_index(i + 2 * n), tz.key)
    return start, end


def billing_periods(p: EvaluationProfile, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
    """The complete billing periods ``(start, end)`` with ``start >= start_ms`` and
    ``end <= end_ms``, ascending. Empty for profiles without billing periods."""
    if p.billing_period is None or end_ms <= start_ms:
        return []
    if p.billing_period == "day":
        return [(s, e) for s, e in days(p, start_ms, end_ms) if e <= end_ms]
    n = months_of(p.billing_period)
    assert n is not None
    tz = zone(p.timezone)
    i = _period_start_index(p, _month_index(local_date(start_ms, tz)))
    out: list[tuple[int, int]] = []
    s = _month_start(*_month_from_index(i), tz.key)
    while True:
        e = _month_start(*_month_from_index(i + n), tz.key)
        if e > end_ms:
            break
        if s >= start_ms:
            out.append((s, e))
        i += n
        s = e
    return out


def windows(p: EvaluationProfile, start_ms: int, end_ms: int,
            period_s: int) -> list[tuple[int, int]]:
    """Consecutive windows of ``period_s`` aligned to local midnight, intersected with
    ``[start_ms, end_ms)``. A period that divides a day splits each local day into slices of
    ``period_s`` elapsed seconds (the last slice of a 23/25-hour day is shorter/longer only if the
    period does not divide an hour); a multiple of a day groups that many local days, counted
    from the day the profile becomes valid."""
    if end_ms <= start_ms or period_s <= 0:
        return []
    step = period_s * 1000
    out: list[tuple[int, int]] = []
    if DAY_MS % step == 0:
        for ds, de in days(p, day_of(start_ms, p.timezone)[0], end_ms):
            t = ds
            while t < de:
                s, e = t, min(t + step, de)
                t = e
                if e <= start_ms:
                    continue
                if s >= end_ms:
                    break
                out.append((max(s, start_ms), min(e, end_ms)))
        return out
    if step % DAY_MS:
        raise ValueError(f"a window of {period_s} s neither divides nor is a multiple of a day")
    n = step // DAY_MS
    tz = zone(p.timezone)
    anchor = local_date(p.valid_from_ms, tz)
    d = local_date(start_ms, tz)
    d -= dt.timedelta(days=(d - anchor).days % n)
    while True:
        s = day_start_ms(d, tz)
        d += dt.timedelta(days=n)
        e = day_start_ms(d, tz)
        if s >= end_ms:
            break
        if e > start_ms:
            out.append((max(s, start_ms), min(e, end_ms)))
    return out


def grid_step_ms(p: EvaluationProfile) -> int:
    return p.registration_period_s * 1000


def tolerance_ms(p: EvaluationProfile) -> int:
    """Capture tolerance: 1 % of the registration period (PTB: ±9 s at 900 s)."""
    return p.registration_period_s * 10


def registration_grid(p: EvaluationProfile, start_ms: int, end_ms: int) -> list[int]:
    """The registration grid instants in ``[start_ms, end_ms]`` (both inclusive), ascending."""
    if end_ms < start_ms:
        return []
    step = grid_step_ms(p)
    out: list[int] = []
    first_day = day_of(start_ms, p.timezone)[0]
    for ds, de in days(p, first_day, end_ms + 1):
        lo = ds if ds >= start_ms else ds + -(-(start_ms - ds) // step) * step
        hi = min(de - 1, end_ms)
        if lo <= hi:
            out.extend(range(lo, hi + 1, step))
    return out


def ceil_to_grid(p: EvaluationProfile, t_ms: int) -> int:
    """The first registration grid instant at or after ``t_ms``."""
    ds, de = day_of(t_ms, p.timezone)
    step = grid_step_ms(p)
    g = ds + -(-(t_ms - ds) // step) * step
    return g if g < de else de


def previous_grid(p: EvaluationProfile, t_ms: int) -> int:
    """The registration grid instant before ``t_ms`` (``t_ms`` itself on the grid or not)."""
    ds, _ = day_of(t_ms - 1, p.timezone)
    step = grid_step_ms(p)
    return ds + (t_ms - 1 - ds) // step * step


def nearest_grid(p: EvaluationProfile, t_ms: int) -> int:
    """The registration grid instant nearest to ``t_ms`` (the earlier one on a tie)."""
    before = previous_grid(p, t_ms + 1)    # <= t
    after = ceil_to_grid(p, t_ms)          # >= t
    return before if t_ms - before <= after - t_ms else after


def index_of(grid: list[int], t_ms: int) -> int:
    """Position of ``t_ms`` in a sorted grid list (bisect), or -1 if absent."""
    i = bisect_left(grid, t_ms)
    return i if i < len(grid) and grid[i] == t_ms else -1


def iso(t_ms: int, tz: ZoneInfo | str) -> str:
    """``t_ms`` as ISO 8601 local time with offset (milliseconds only when not whole seconds)."""
    z = zone(tz) if isinstance(tz, str) else tz
    d = dt.datetime.fromtimestamp(t_ms // 1000, z)
    if t_ms % 1000:
        return d.replace(microsecond=(t_ms % 1000) * 1000).isoformat(timespec="milliseconds")
    return d.isoformat(timespec="seconds")
