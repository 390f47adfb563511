"""The TAF 2 stage calendar (smgw.tariff.calendar): day types, special days, DST rules."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st
from tafcalc_helpers import ms, profile, utc

from smgw.tariff.calendar import StageCalendar
from smgw.tariff.periods import day_bounds, registration_grid

ALL_DAYS = [
    {"days": ["all"], "time": "00:00", "stage": 2},
    {"days": ["all"], "time": "06:00", "stage": 1},
    {"days": ["all"], "time": "22:00", "stage": 2},
]


def cal(switching=None, **kw) -> StageCalendar:
    p = profile(2, switching=switching or ALL_DAYS, **kw)
    return StageCalendar(p)


def test_weekday_switches_and_weekend():
    c = StageCalendar(profile(2))      # HT 06-22 on weekdays, NT otherwise
    tue = day_bounds(dt.date(2026, 3, 10), "Europe/Berlin")
    assert c.switches(*tue) == [(ms(2026, 3, 10, 6), 1), (ms(2026, 3, 10, 22), 2)]
    sat = day_bounds(dt.date(2026, 3, 14), "Europe/Berlin")
    assert c.switches(*sat) == []
    assert c.stage_at(ms(2026, 3, 14, 12)) == 2
    assert c.stage_at(ms(2026, 3, 10, 5, 59)) == 2
    assert c.stage_at(ms(2026, 3, 10, 6)) == 1
    assert c.stage_at(ms(2026, 3, 10, 21, 59, 59)) == 1
    assert c.stage_at(ms(2026, 3, 10, 22)) == 2


def test_special_day_is_treated_as_its_day_type():
    special = [{"date": "2026-12-25", "day": "sun"}]
    c = StageCalendar(profile(2, special_days=special))
    assert c.day_type(dt.date(2026, 12, 25)) == "sun"
    assert c.stage_at(ms(2026, 12, 25, 12)) == 2           # a Friday, but NT all day
    assert c.stage_at(ms(2026, 12, 24, 12)) == 1


def test_holiday_day_type():
    sw = ALL_DAYS[:1] + [{"days": ["weekdays"], "time": "06:00", "stage": 1},
                         {"days": ["weekdays"], "time": "22:00", "stage": 2},
                         {"days": ["holiday"], "time": "12:00", "stage": 3}]
    c = StageCalendar(profile(2, switching=sw, special_days=[{"date": "2026-05-01",
                                                              "day": "holiday"}],
                              stages=[{"number": n, "name": f"T{n}"} for n in (1, 2, 3)]))
    assert c.switches(*day_bounds(dt.date(2026, 5, 1), "Europe/Berlin")) == [
        (ms(2026, 5, 1, 12), 3)]
    assert c.stage_at(ms(2026, 5, 2, 0)) == 2


def test_spring_change_switches_at_the_right_utc_instants():
    c = cal()
    s, e = day_bounds(dt.date(2026, 3, 29), "Europe/Berlin")
    assert (s, e) == (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))
    assert c.switches(s, e) == [(utc(2026, 3, 29, 4), 1), (utc(2026, 3, 29, 20), 2)]


def test_autumn_change_switches_at_the_right_utc_instants():
    c = cal()
    s, e = day_bounds(dt.date(2026, 10, 25), "Europe/Berlin")
    assert (s, e) == (utc(2026, 10, 24, 22), utc(2026, 10, 25, 23))
    assert c.switches(s, e) == [(utc(2026, 10, 25, 5), 1), (utc(2026, 10, 25, 21), 2)]


def test_switch_in_the_skipped_hour_happens_at_its_end():
    sw = ALL_DAYS + [{"days": ["all"], "time": "02:30", "stage": 3}]
    c = cal(sw, stages=[{"number": n, "name": f"T{n}"} for n in (1, 2, 3)])
    s, e = day_bounds(dt.date(2026, 3, 29), "Europe/Berlin")
    got = c.switches(s, e)
    assert got[0] == (utc(2026, 3, 29, 1), 3)              # 03:00 CEST, first grid instant
    assert utc(2026, 3, 29, 1) in registration_grid(c.profile, s, e)
    assert c.stage_at(utc(2026, 3, 29, 0, 59)) == 2
    # a normal day: 02:30 local
    s, e = day_bounds(dt.date(2026, 3, 30), "Europe/Berlin")
    assert c.switches(s, e)[0] == (ms(2026, 3, 30, 2, 30), 3)


def test_two_switches_in_the_skipped_hour_fall_together_and_the_later_wins():
    sw = ALL_DAYS + [{"days": ["all"], "time": "02:00", "stage": 3},
                     {"days": ["all"], "time": "02:45", "stage": 4}]
    c = cal(sw, stages=[{"number": n, "name": f"T{n}"} for n in (1, 2, 3, 4)])
    s, e = day_bounds(dt.date(2026, 3, 29), "Europe/Berlin")
    assert c.switches(s, e)[0] == (utc(2026, 3, 29, 1), 4)


def test_ambiguous_switch_happens_once_at_the_first_occurrence():
    sw = ALL_DAYS + [{"days": ["all"], "time": "02:30", "stage": 3},
                     {"days": ["all"], "time": "03:00", "stage": 2}]
    c = cal(sw, stages=[{"number": n, "name": f"T{n}"} for n in (1, 2, 3)])
    s, e = day_bounds(dt.date(2026, 10, 25), "Europe/Berlin")
    got = c.switches(s, e)
    assert got[:2] == [(utc(2026, 10, 25, 0, 30), 3), (utc(2026, 10, 25, 2), 2)]
    # the second 02:30 (CET, 01:30 UTC) does not switch again: stage 3 throughout
    assert c.stage_at(utc(2026, 10, 25, 1, 30)) == 3
    assert c.stage_at(utc(2026, 10, 25, 0, 29)) == 2


def test_switching_point_that_keeps_the_stage_is_not_a_switch():
    sw = ALL_DAYS + [{"days": ["all"], "time": "12:00", "stage": 1}]
    c = cal(sw)
    s, e = day_bounds(dt.date(2026, 6, 1), "Europe/Berlin")
    assert [t for t, _ in c.switches(s, e)] == [ms(2026, 6, 1, 6), ms(2026, 6, 1, 22)]


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=ms(2025, 1, 1), max_value=ms(2028, 1, 1)),
       st.integers(min_value=1, max_value=40 * 86_400_000))
def test_switches_agree_with_stage_at(start, length):
    c = StageCalendar(profile(2))
    end = start + length
    cur = c.stage_at(start)
    for t, s in c.switches(start, end):
        assert start <= t < end
        assert s != cur and c.stage_at(t) == s and c.stage_at(t - 1) == cur
        cur = s
    assert c.stage_at(end - 1) == cur
