"""Local days, billing periods and the registration grid (smgw.tariff.periods), DST included."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tafcalc_helpers import BERLIN, ms, profile, utc

from smgw.tariff.periods import (
    billing_periods,
    ceil_to_grid,
    day_bounds,
    day_of,
    days,
    iso,
    local_instant,
    nearest_grid,
    period_of,
    previous_grid,
    registration_grid,
    tolerance_ms,
    windows,
)

H = 3_600_000


@pytest.mark.parametrize("day,hours,points", [
    (dt.date(2026, 3, 29), 23, 92),     # spring: 02:00 CET -> 03:00 CEST
    (dt.date(2026, 10, 25), 25, 100),   # autumn: 03:00 CEST -> 02:00 CET
    (dt.date(2026, 6, 1), 24, 96),
])
def test_day_length_and_grid(day, hours, points):
    p = profile(7)
    s, e = day_bounds(day, BERLIN)
    assert e - s == hours * H
    grid = registration_grid(p, s, e)
    assert len(grid) == points + 1                      # both ends included
    assert grid[0] == s and grid[-1] == e
    assert all(b - a == 900_000 for a, b in zip(grid, grid[1:]))
    assert len(registration_grid(p, s, e - 1)) == points


def test_dst_day_bounds_in_utc():
    assert day_bounds(dt.date(2026, 3, 29), BERLIN) == (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))
    assert day_bounds(dt.date(2026, 10, 25), BERLIN) == (utc(2026, 10, 24, 22),
                                                          utc(2026, 10, 25, 23))


def test_local_instant_rules():
    # normal
    assert local_instant(dt.date(2026, 6, 1), 6 * 3600, BERLIN) == utc(2026, 6, 1, 4)
    # non-existent 02:30 on the spring day -> end of the gap, 03:00 CEST = 01:00 UTC
    assert local_instant(dt.date(2026, 3, 29), 2 * 3600 + 1800, BERLIN) == utc(2026, 3, 29, 1)
    assert local_instant(dt.date(2026, 3, 29), 2 * 3600, BERLIN) == utc(2026, 3, 29, 1)
    # ambiguous 02:30 in autumn -> first occurrence (CEST)
    assert local_instant(dt.date(2026, 10, 25), 2 * 3600 + 1800, BERLIN) == utc(2026, 10, 25, 0,
                                                                               30)


def test_days_and_day_of():
    p = profile(6)
    ds = days(p, ms(2026, 3, 28), ms(2026, 3, 31))
    assert [e - s for s, e in ds] == [24 * H, 23 * H, 24 * H]
    assert day_of(ms(2026, 3, 29, 12), BERLIN) == ds[1]
    # a start inside a day: that day is not included (its start is before)
    assert days(p, ms(2026, 3, 28, 1), ms(2026, 3, 30)) == ds[1:2]


def test_taf1_october_2017_has_the_extra_hour():
    """trudi-wan.md 4.1: 2017-10-01T00:00+02:00 .. 2017-11-01T00:00+01:00 = 2,682,000 s."""
    p = profile(1, profile={"valid_from": "2017-01-01T00:00:00+01:00"})
    periods = billing_periods(p, ms(2017, 10, 1), ms(2017, 11, 1))
    assert periods == [(ms(2017, 10, 1), ms(2017, 11, 1))]
    s, e = periods[0]
    assert e - s == 2_682_000_000
    assert iso(s, "Europe/Berlin") == "2017-10-01T00:00:00+02:00"
    assert iso(e, "Europe/Berlin") == "2017-11-01T00:00:00+01:00"


def test_billing_periods_are_complete_only():
    p = profile(1)
    got = billing_periods(p, ms(2026, 1, 15), ms(2026, 4, 10))
    assert got == [(ms(2026, 2, 1), ms(2026, 3, 1)), (ms(2026, 3, 1), ms(2026, 4, 1))]
    assert billing_periods(p, ms(2026, 2, 1), ms(2026, 2, 28)) == []


def test_multi_month_periods_anchor_at_validity():
    p = profile(1, profile={"valid_from": "2026-02-10T00:00:00+01:00", "billing_period": "P3M"})
    got = billing_periods(p, ms(2026, 1, 1), ms(2027, 1, 1))
    assert got == [(ms(2026, 2, 1), ms(2026, 5, 1)), (ms(2026, 5, 1), ms(2026, 8, 1)),
                   (ms(2026, 8, 1), ms(2026, 11, 1))]
    assert period_of(p, ms(2026, 12, 24)) == (ms(2026, 11, 1), ms(2027, 2, 1))
    assert period_of(p, ms(2026, 1, 31, 23, 59)) == (ms(2025, 11, 1), ms(2026, 2, 1))


def test_period_of_month_and_day():
    p = profile(2)
    assert period_of(p, ms(2026, 3, 29, 2, 30)) == (ms(2026, 3, 1), ms(2026, 4, 1))
    assert period_of(p, ms(2026, 4, 1)) == (ms(2026, 4, 1), ms(2026, 5, 1))
    d = profile(6)
    assert period_of(d, ms(2026, 10, 25, 23, 59)) == day_bounds(dt.date(2026, 10, 25), BERLIN)
    with pytest.raises(ValueError, match="no billing period"):
        period_of(profile(7), ms(2026, 1, 1))


def test_grid_neighbours_and_tolerance():
    p = profile(7)
    t = ms(2026, 3, 10, 10, 7)
    assert ceil_to_grid(p, t) == ms(2026, 3, 10, 10, 15)
    assert previous_grid(p, t) == ms(2026, 3, 10, 10)
    assert previous_grid(p, ms(2026, 3, 10, 10)) == ms(2026, 3, 10, 9, 45)
    assert nearest_grid(p, t) == ms(2026, 3, 10, 10)
    assert nearest_grid(p, ms(2026, 3, 10, 10, 8)) == ms(2026, 3, 10, 10, 15)
    assert tolerance_ms(p) == 9_000
    # across the spring gap: 01:45 CET is followed by 03:00 CEST
    assert ceil_to_grid(p, ms(2026, 3, 29, 1, 50)) == utc(2026, 3, 29, 1)


def test_windows_split_days_and_group_days():
    p = profile(9, profile={"registration_period_s": 60})
    w = windows(p, ms(2026, 3, 29), ms(2026, 3, 30), 3600)
    assert len(w) == 23
    w = windows(p, ms(2026, 3, 10, 0, 20), ms(2026, 3, 10, 2), 900)
    assert w[0] == (ms(2026, 3, 10, 0, 20), ms(2026, 3, 10, 0, 30))
    assert len(w) == 7
    w = windows(p, ms(2026, 1, 1), ms(2026, 1, 10), 2 * 86400)
    assert w == [(ms(2026, 1, d), ms(2026, 1, d + 2)) for d in (1, 3, 5, 7)] + [
        (ms(2026, 1, 9), ms(2026, 1, 10))]


@given(st.integers(min_value=ms(2020, 1, 1), max_value=ms(2035, 1, 1)))
def test_period_of_contains_and_tiles(t):
    p = profile(2)
    s, e = period_of(p, t)
    assert s <= t < e
    assert billing_periods(p, s, e) == [(s, e)]
    assert period_of(p, e)[0] == e and period_of(p, s - 1)[1] == s
    ds, de = day_of(t, BERLIN)
    assert ds <= t < de and (de - ds) in (23 * H, 24 * H, 25 * H)
