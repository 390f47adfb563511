"""The TAF 2 tariff calendar: which tariff stage applies when.

A profile's ``[[switching]]`` entries say "on these day types, from this local wall-clock time
on, stage N applies". A date's day type is its special day entry if it has one, else its weekday
(``mon`` … ``sun``). Every day type in use has an entry at 00:00 (the profile validation
insists), so a day's stages never depend on the day before.

Daylight saving (docs/tariffs.md, "Time and daylight saving"):

* Switching times are local wall-clock times; the instant is computed per date with the zone's
  rules, so 06:00 is 04:00 UTC in summer and 05:00 UTC in winter.
* A switching time that does not exist on that date (02:00–02:59 on the spring change day in
  Europe) switches at the next existing registration grid instant, i.e. the end of the skipped
  hour (03:00 CEST = 01:00 UTC). Several switching times inside the skipped hour then fall on
  the same instant and the latest of them wins.
* A switching time that occurs twice (02:00–02:59 on the autumn change day) switches once, at
  its first occurrence (still in summer time); the repeated wall-clock hour does not switch
  again.
* Switches therefore always happen on the registration grid of the local day
  (:func:`smgw.tariff.periods.registration_grid`).
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_right

from smgw.tariff.periods import day_bounds, day_of, local_date, local_instant, zone
from smgw.tariff.profile import WEEKDAYS, EvaluationProfile


class StageCalendar:
    """Stages of one TAF 2 profile over time. Per-date results are cached."""

    def __init__(self, p: EvaluationProfile) -> None:
        self.profile = p
        self.tz = zone(p.timezone)
        self.step_ms = p.registration_period_s * 1000
        table: dict[str, list[tuple[int, int]]] = {}
        for sp in p.switching:
            for d in sp.days:
                table.setdefault(d, []).append((sp.seconds, sp.stage))
        self._table = {d: sorted(v) for d, v in table.items()}
        self._special = {sd.date: sd.day for sd in p.special_days}
        self._days: dict[dt.date, tuple[list[int], list[int]]] = {}

    def day_type(self, day: dt.date) -> str:
        return self._special.get(day) or WEEKDAYS[day.weekday()]

    def day_switches(self, day: dt.date) -> tuple[list[int], list[int]]:
        """The switching instants of local date ``day`` and the stage from each on (ascending,
        one entry per instant; the first is the day's start)."""
        hit = self._days.get(day)
        if hit is not None:
            return hit
        ds, de = day_bounds(day, self.tz.key)
        instants: list[int] = []
        stages: list[int] = []
        for sec, stage in self._table.get(self.day_type(day), ()):
            u = local_instant(day, sec, self.tz)
            g = ds + -(-(u - ds) // self.step_ms) * self.step_ms   # up to the grid
            g = min(max(g, ds), de)
            if g >= de:
                continue
            if instants and instants[-1] == g:
                stages[-1] = stage           # same instant (skipped hour): the later one wins
            else:
                instants.append(g)
                stages.append(stage)
        if len(self._days) > 4096:
            self._days.clear()
        self._days[day] = (instants, stages)
        return instants, stages

    def stage_at(self, t_ms: int) -> int:
        """The stage in force at instant ``t_ms``."""
        ds, _ = day_of(t_ms, self.tz)
        day = local_date(ds, self.tz)
        for _ in range(2):
            instants, stages = self.day_switches(day)
            i = bisect_right(instants, t_ms) - 1
            if i >= 0:
                return stages[i]
            day -= dt.timedelta(days=1)       # before the day's first switch: the day before
            t_ms = day_bounds(day, self.tz.key)[1] - 1
        raise ValueError(f"profile {self.profile.name}: no tariff stage defined at {t_ms}")

    def switches(self, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
        """Every instant in ``[start_ms, end_ms)`` at which the stage changes, with the new
        stage, ascending. A switching point that keeps the current stage is not a switch."""
        if end_ms <= start_ms:
            return []
        out: list[tuple[int, int]] = []
        cur = self.stage_at(start_ms - 1)
        ds, _ = day_of(start_ms, self.tz)
        day = local_date(ds, self.tz)
        while True:
            d_start, _ = day_bounds(day, self.tz.key)
            if d_start >= end_ms:
                break
            instants, stages = self.day_switches(day)
            for t, s in zip(instants, stages):
                if t < start_ms:
                    continue
                if t >= end_ms:
                    break
                if s != cur:
                    out.append((t, s))
                    cur = s
            day += dt.timedelta(days=1)
        return out
