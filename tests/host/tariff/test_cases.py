"""The tariff application cases (smgw.tariff.cases.form): worked examples for every TAF,
trudi-wan.md section 4.1, both daylight-saving changes, gaps, status words; property tests."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tafcalc_helpers import BERLIN, METER, METER2, Q, doc, ms, profile, series, utc

from smgw.tariff.cases import ReadingIndex, form, reading_window, threshold_crossings
from smgw.tariff.model import (
    METER_FATAL_BIT,
    SMGW_FATAL,
    SMGW_ID_BITS,
    SMGW_MANIPULATION,
    SMGW_NOT_BILLING,
    SMGW_TIME_INVALID,
    Reading,
)
from smgw.tariff.profile import EvaluationProfile

MANIPULATED = 1 << 9


def by_register(values, owner=None):
    return {v.register: v for v in values if owner is None or v.owner == owner}


def ch(p: EvaluationProfile, i: int = 0):
    return p.channels[i]


# ------------------------------------------------------------------------------------ TAF 1


def taf1(**kw) -> EvaluationProfile:
    return profile(1, profile={"valid_from": "2017-01-01T00:00:00+01:00", **kw.pop("prof", {})},
                   **kw)


def test_taf1_october_2017_worked_example():
    """trudi-wan.md 4.1: 1 000 000 -> 1 152 340 (Wh x 10) gives 1.8.1 = 152 340 = 15 234.0 Wh
    over 2 682 000 s."""
    p = taf1()
    s, e = ms(2017, 10, 1), ms(2017, 11, 1)
    assert e - s == 2_682_000_000
    rs = [Reading(METER, "1-0:1.8.0", s, 1_000_000, -1),
          Reading(METER, "1-0:1.8.0", ms(2017, 10, 15), 1_070_000, -1),
          Reading(METER, "1-0:1.8.0", e, 1_152_340, -1)]
    res = form(p, {ch(p): rs}, s, e)
    assert res.problems == [] and res.switches == []
    reg = by_register(res.values, METER)
    assert reg["1-0:1.8.1"].value == 152_340 and reg["1-0:1.8.1"].scaler == -1
    assert reg["1-0:1.8.1"].kind == "register" and reg["1-0:1.8.1"].target_ms == e
    total = by_register(res.values, "p")["1-0:1.8.1"]
    assert (total.value, total.scaler, total.unit, total.kind) == (152_340, -1, "Wh", "sum")
    assert total.status == SMGW_ID_BITS and total.billing and total.time_valid
    assert (total.period_start_ms, total.period_end_ms) == (s, e)
    readings = [v for v in res.values if v.kind == "reading"]
    assert [(v.target_ms, v.value, v.capture_ms) for v in readings] == [
        (s, 1_000_000, s), (e, 1_152_340, e)]


def test_taf1_sum_and_difference_of_two_meters_with_different_scalers():
    p = taf1(channels=[{"meter": METER, "obis": "1-0:1.8.0"},
                       {"meter": METER2, "obis": "1-0:1.8.0", "sign": -1}])
    s, e = ms(2026, 2, 1), ms(2026, 3, 1)
    a = [Reading(METER, "1-0:1.8.0", s, 1_000_000, -1), Reading(METER, "1-0:1.8.0", e,
                                                              1_152_340, -1)]
    b = [Reading(METER2, "1-0:1.8.0", s + 3000, 50_000), Reading(METER2, "1-0:1.8.0", e - 4000,
                                                                 53_000)]
    res = form(p, {ch(p, 0): a, ch(p, 1): b}, s, e)
    assert res.problems == []
    assert by_register(res.values, METER2)["1-0:1.8.1"].value == 3_000
    total = by_register(res.values, "p")["1-0:1.8.1"]
    assert (total.value, total.scaler) == (152_340 - 30_000, -1)     # 12 234.0 Wh
    assert total.sources == (METER, METER2)


def test_taf1_capture_tolerance_nearest_and_usable():
    p = taf1()
    s, e = ms(2026, 2, 1), ms(2026, 3, 1)
    rs = [Reading(METER, "1-0:1.8.0", s - 9_000, 100),              # within 9 s
          Reading(METER, "1-0:1.8.0", s + 2_000, 101),              # nearer: wins
          Reading(METER, "1-0:1.8.0", e - 1_000, 500, time_valid=False),   # nearest, unusable
          Reading(METER, "1-0:1.8.0", e + 5_000, 505)]
    res = form(p, {ch(p): rs}, s, e)
    assert by_register(res.values, METER)["1-0:1.8.1"].value == 505 - 101
    # 10 s off is outside 1 % of 900 s: no register, a problem, no sum
    late = [Reading(METER, "1-0:1.8.0", s, 100), Reading(METER, "1-0:1.8.0", e + 10_000, 200)]
    res = form(p, {ch(p): late}, s, e)
    assert [v.kind for v in res.values] == ["reading"]
    assert any("no valid reading at the period end" in x for x in res.problems)
    assert any("no sum register" in x for x in res.problems)


def test_taf1_missing_readings_in_the_period_do_not_matter_but_boundaries_do():
    p = taf1()
    s, e = ms(2026, 2, 1), ms(2026, 3, 1)
    # only the two boundary readings: enough
    res = form(p, {ch(p): [Reading(METER, "1-0:1.8.0", s, 7), Reading(METER, "1-0:1.8.0", e,
                                                                         9)]}, s, e)
    assert by_register(res.values, "p")["1-0:1.8.1"].value == 2
    # manipulated start reading: unusable, no register
    res = form(p, {ch(p): [Reading(METER, "1-0:1.8.0", s, 7, status=MANIPULATED),
                           Reading(METER, "1-0:1.8.0", e, 9)]}, s, e)
    assert not any(v.kind in ("register", "sum") for v in res.values)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([1, -1]), st.integers(0, 10**12),
                          st.integers(0, 10**9), st.integers(-3, 3)), min_size=1, max_size=6))
def test_taf1_sum_is_the_signed_sum_of_the_parts(parts):
    meters = [f"{i:02x}" * 5 for i in range(len(parts))]
    p = taf1(channels=[{"meter": m, "obis": "1-0:1.8.0", "sign": sg}
                       for m, (sg, *_) in zip(meters, parts)])
    s, e = ms(2026, 4, 1), ms(2026, 5, 1)
    readings = {c: [Reading(c.meter, c.obis, s, start, sc), Reading(c.meter, c.obis, e,
                                                                    start + adv, sc)]
                for c, (_, start, adv, sc) in zip(p.channels, parts)}
    res = form(p, readings, s, e)
    total = by_register(res.values, "p")["1-0:1.8.1"]
    per = [v for v in res.values if v.kind == "register"]
    assert len(per) == len(parts)
    exact = sum(sg * adv * 10 ** sc for sg, _, adv, sc in parts) if all(
        sc >= 0 for *_, sc in parts) else None
    ref = sum(c.sign * v.value * 10 ** (v.scaler - total.scaler)
              for c, v in zip(p.channels, per))
    assert total.value == ref
    if exact is not None:
        assert total.value * 10 ** total.scaler == exact


# ------------------------------------------------------------------------------------ TAF 2

DAY = (ms(2026, 3, 10), ms(2026, 3, 11))      # a Tuesday in winter time


def ht_nt_day_values() -> list[int]:
    """trudi-wan.md 4.1: 00:00 100 000, 06:00 101 200, 21:30 108 900, 22:00 109 200,
    22:30 109 300, 24:00 109 600 (Wh), one value per quarter hour."""
    vals = [100_000]
    for q in range(96):
        h = q / 4
        inc = 50 if h < 6 or h >= 22 else (150 if h >= 21.5 else (125 if q - 24 < 12 else 124))
        vals.append(vals[-1] + inc)
    assert (vals[24], vals[86], vals[88], vals[90], vals[96]) == (101_200, 108_900, 109_200,
                                                                  109_300, 109_600)
    return vals


def taf2_day(**kw) -> EvaluationProfile:
    return profile(2, profile={"billing_period": "day"}, **kw)


def stages_of(res, owner="p"):
    reg = by_register(res.values, owner)
    return {k: reg[k].value for k in ("1-0:1.8.1", "1-0:1.8.2", "1-0:1.8.63", "1-0:1.8.0")}


def test_taf2_ht_nt_day():
    p = taf2_day()
    res = form(p, {ch(p): series(DAY[0], ht_nt_day_values())}, *DAY)
    assert stages_of(res) == {"1-0:1.8.1": 8_000, "1-0:1.8.2": 1_600, "1-0:1.8.63": 0,
                              "1-0:1.8.0": 9_600}
    assert res.switches == [(ms(2026, 3, 10, 6), 1), (ms(2026, 3, 10, 22), 2)]
    assert res.problems == []
    v = by_register(res.values)["1-0:1.8.63"]
    assert (v.stage, v.kind, v.owner, v.target_ms, v.billing) == (63, "register", "p", DAY[1],
                                                                  True)
    assert by_register(res.values)["1-0:1.8.0"].kind == "sum"


def test_taf2_gap_without_switch_stays_in_the_stage():
    p = taf2_day()
    rs = [r for i, r in enumerate(series(DAY[0], ht_nt_day_values())) if i not in (41, 42, 43)]
    res = form(p, {ch(p): rs}, *DAY)
    assert stages_of(res) == {"1-0:1.8.1": 8_000, "1-0:1.8.2": 1_600, "1-0:1.8.63": 0,
                              "1-0:1.8.0": 9_600}
    assert len(res.problems) == 1 and "no switch in the gap" in res.problems[0]
    assert "10:15:00+01:00 to 2026-03-10T10:45:00+01:00" in res.problems[0]


def test_taf2_gap_across_a_switch_goes_to_the_error_register():
    """trudi-wan.md 4.1: 21:45..22:15 missing -> HT 7 700, error 400, NT 1 500, sum 9 600."""
    p = taf2_day()
    rs = [r for i, r in enumerate(series(DAY[0], ht_nt_day_values())) if i not in (87, 88, 89)]
    res = form(p, {ch(p): rs}, *DAY)
    assert stages_of(res) == {"1-0:1.8.1": 7_700, "1-0:1.8.2": 1_500, "1-0:1.8.63": 400,
                              "1-0:1.8.0": 9_600}
    assert len(res.problems) == 1
    assert "tariff switch at 2026-03-10T22:00:00+01:00" in res.problems[0]
    assert "400 Wh" in res.problems[0]


def test_taf2_unusable_readings_count_as_missing():
    p = taf2_day()
    rs = series(DAY[0], ht_nt_day_values())
    rs[87] = dataclasses.replace(rs[87], status=MANIPULATED)
    rs[88] = dataclasses.replace(rs[88], time_valid=False)
    rs[89] = dataclasses.replace(rs[89], status=METER_FATAL_BIT)
    res = form(p, {ch(p): rs}, *DAY)
    assert stages_of(res)["1-0:1.8.63"] == 400 and stages_of(res)["1-0:1.8.0"] == 9_600
    # a usable duplicate within the tolerance replaces an unusable one
    rs.insert(89, Reading(METER, "1-0:1.8.0", rs[88].capture_ms + 4_000, rs[88].value))
    res = form(p, {ch(p): rs}, *DAY)
    assert stages_of(res)["1-0:1.8.63"] == 0


def test_taf2_status_words_come_from_the_inputs():
    p = taf2_day()
    rs = series(DAY[0], ht_nt_day_values())
    rs[10] = dataclasses.replace(rs[10], status=0x0000_0104)    # harmless meter bits
    rs[20] = dataclasses.replace(rs[20], status=0x0000_0004)
    res = form(p, {ch(p): rs}, *DAY)
    for v in res.values:
        assert v.meter_status == 0x104 and v.status == SMGW_ID_BITS and v.time_valid


def dst_readings(day_start: int, day_end: int, ht_from: int, ht_to: int):
    """Readings every 15 min (UTC grid) with +100 per HT quarter hour and +1 per NT one; the
    HT window is given in UTC, independently of the calendar under test."""
    rs, v, t = [], 0, day_start
    while t <= day_end:
        rs.append(Reading(METER, "1-0:1.8.0", t, v))
        v += 100 if ht_from <= t < ht_to else 1
        t += Q
    return rs


ALL_DAYS = [{"days": ["all"], "time": "00:00", "stage": 2},
            {"days": ["all"], "time": "06:00", "stage": 1},
            {"days": ["all"], "time": "22:00", "stage": 2}]


def test_taf2_spring_dst_day():
    p = taf2_day(switching=ALL_DAYS)
    s, e = utc(2026, 3, 28, 23), utc(2026, 3, 29, 22)            # 23 h
    rs = dst_readings(s, e, utc(2026, 3, 29, 4), utc(2026, 3, 29, 20))
    assert len(rs) == 93                                          # 92 quarter hours
    res = form(p, {ch(p): rs}, s, e)
    assert res.switches == [(utc(2026, 3, 29, 4), 1), (utc(2026, 3, 29, 20), 2)]
    assert stages_of(res) == {"1-0:1.8.1": 64 * 100, "1-0:1.8.2": 28, "1-0:1.8.63": 0,
                              "1-0:1.8.0": 6_428}


def test_taf2_autumn_dst_day():
    p = taf2_day(switching=ALL_DAYS)
    s, e = utc(2026, 10, 24, 22), utc(2026, 10, 25, 23)          # 25 h
    rs = dst_readings(s, e, utc(2026, 10, 25, 5), utc(2026, 10, 25, 21))
    assert len(rs) == 101                                         # 100 quarter hours
    res = form(p, {ch(p): rs}, s, e)
    assert res.switches == [(utc(2026, 10, 25, 5), 1), (utc(2026, 10, 25, 21), 2)]
    assert stages_of(res) == {"1-0:1.8.1": 64 * 100, "1-0:1.8.2": 36, "1-0:1.8.63": 0,
                              "1-0:1.8.0": 6_436}


def test_taf2_switch_in_the_skipped_hour():
    sw = ALL_DAYS + [{"days": ["all"], "time": "02:30", "stage": 3},
                     {"days": ["all"], "time": "04:00", "stage": 2}]
    p = taf2_day(switching=sw, stages=[{"number": n, "name": f"T{n}"} for n in (1, 2, 3)])
    s, e = utc(2026, 3, 28, 23), utc(2026, 3, 29, 22)
    # stage 3 from 03:00 CEST (01:00 UTC) to 04:00 CEST (02:00 UTC): four quarter hours
    rs = dst_readings(s, e, utc(2026, 3, 29, 1), utc(2026, 3, 29, 2))
    res = form(p, {ch(p): rs}, s, e)
    assert res.switches[:2] == [(utc(2026, 3, 29, 1), 3), (utc(2026, 3, 29, 2), 2)]
    assert by_register(res.values)["1-0:1.8.3"].value == 400


def test_taf2_month_across_the_spring_change():
    p = profile(2, switching=ALL_DAYS)
    s, e = ms(2026, 3, 1), ms(2026, 4, 1)
    assert (e - s) // Q == 31 * 96 - 4
    rs = series(s, [i * 3 for i in range((e - s) // Q + 1)])
    res = form(p, {ch(p): rs}, s, e)
    st_ = stages_of(res)
    assert st_["1-0:1.8.0"] == 3 * (31 * 96 - 4) and st_["1-0:1.8.63"] == 0
    assert st_["1-0:1.8.1"] == 3 * 64 * 31                      # 16 h HT every day
    assert len(res.switches) == 62


def test_taf2_billing_month_with_missing_readings():
    """March 2026, HT 06-22 every day; the meter is silent from Sunday 29th 03:00 CEST (the
    spring change night) to Monday 30th 12:00, and for 30 minutes on the 10th (no switch)."""
    p = profile(2, switching=ALL_DAYS)
    s, e = ms(2026, 3, 1), ms(2026, 4, 1)
    gap_from, gap_to = ms(2026, 3, 29, 3), ms(2026, 3, 30, 12)
    rs, v, t = [], 0, s
    inc = {}
    while t <= e:
        if not (gap_from < t < gap_to or ms(2026, 3, 10, 10) < t < ms(2026, 3, 10, 10, 45)):
            rs.append(Reading(METER, "1-0:1.8.0", t, v))
        inc[t] = 20 if 6 <= dt.datetime.fromtimestamp(t / 1000, BERLIN).hour < 22 else 5
        v += inc[t]
        t += Q
    res = form(p, {ch(p): rs}, s, e)
    st_ = stages_of(res)
    in_gap = sum(inc[t] for t in range(gap_from, gap_to, Q))
    assert (gap_to - gap_from) // Q == 33 * 4                      # 03:00 CEST .. 12:00 next day
    assert st_["1-0:1.8.63"] == in_gap
    assert st_["1-0:1.8.0"] == v - inc[e] == rs[-1].value - rs[0].value
    assert st_["1-0:1.8.1"] + st_["1-0:1.8.2"] + st_["1-0:1.8.63"] == st_["1-0:1.8.0"]
    ht_total = sum(i for t, i in inc.items() if t < e and i == 20)
    assert st_["1-0:1.8.1"] == ht_total - sum(inc[t] for t in range(gap_from, gap_to, Q)
                                              if inc[t] == 20)
    # the gap on the 10th lies inside HT: it stays in HT, one problem line each
    assert sum("no switch in the gap" in x for x in res.problems) == 1
    assert sum("goes to the error register" in x for x in res.problems) == 1


def test_taf2_missing_start_reading_uses_the_previous_grid_reading():
    p = taf2_day()
    s, e = DAY
    vals = ht_nt_day_values()
    before = [Reading(METER, "1-0:1.8.0", s - 2 * Q, 99_900),
              Reading(METER, "1-0:1.8.0", s - Q + 120_000, 99_970)]   # off grid: ignored
    rs = before + series(s, vals)[2:]                            # 00:00 and 00:15 missing
    res = form(p, {ch(p): rs}, s, e)
    st_ = stages_of(res)
    assert st_["1-0:1.8.63"] == vals[2] - 99_900
    assert st_["1-0:1.8.0"] == vals[-1] - 99_900
    assert st_["1-0:1.8.2"] == 1_600 - (vals[2] - vals[0])
    assert any("no valid reading at the period start" in x for x in res.problems)


def test_taf2_missing_end_reading_counts_in_the_next_period():
    p = taf2_day()
    vals = ht_nt_day_values()
    rs = series(DAY[0], vals)[:-2]                                # 23:45 and 24:00 missing
    res = form(p, {ch(p): rs}, *DAY)
    assert stages_of(res)["1-0:1.8.0"] == vals[-3] - vals[0]
    assert any("counts in the next period" in x for x in res.problems)


def test_taf2_without_readings_forms_nothing():
    p = taf2_day()
    res = form(p, {}, *DAY)
    assert res.values == [] and "fewer than two valid readings" in res.problems[0]
    assert len(res.switches) == 2


def test_taf2_period_must_be_on_the_grid():
    p = taf2_day()
    with pytest.raises(ValueError, match="registration grid"):
        form(p, {}, DAY[0] + 1, DAY[1])


@settings(max_examples=120, deadline=None)
@given(incs=st.lists(st.integers(0, 5000), min_size=192, max_size=192),
       missing=st.sets(st.integers(0, 192), max_size=120),
       bad=st.dictionaries(st.integers(0, 192), st.sampled_from(["time", "manip", "fatal"]),
                           max_size=40),
       jitter=st.lists(st.integers(-9000, 9000), min_size=193, max_size=193),
       program=st.lists(st.tuples(st.integers(1, 95), st.integers(1, 3)), max_size=6),
       keep_ends=st.booleans())
def test_taf2_stages_and_error_register_add_up_to_the_advance(incs, missing, bad, jitter,
                                                             program, keep_ends):
    sw = [{"days": ["all"], "time": "00:00", "stage": 1}]
    seen = {0}
    for q, stg in program:
        if q not in seen:
            seen.add(q)
            sw.append({"days": ["all"], "time": f"{q // 4:02d}:{q % 4 * 15:02d}", "stage": stg})
    p = taf2_day(switching=sw, stages=[{"number": n, "name": f"T{n}"} for n in (1, 2, 3)])
    s, e = ms(2026, 10, 24), ms(2026, 10, 26)          # two days, the second one 25 h long
    n = (e - s) // Q
    assert n == 196
    vals = [10**6]
    for i in range(n):
        vals.append(vals[-1] + incs[i % len(incs)])
    rs = []
    for i, v in enumerate(vals):
        if i in missing and not (keep_ends and i in (0, n)):
            continue
        r = Reading(METER, "1-0:1.8.0", s + i * Q + jitter[i % len(jitter)], v)
        kind = bad.get(i)
        if kind and not (keep_ends and i in (0, n)):
            r = dataclasses.replace(r, time_valid=False) if kind == "time" else \
                dataclasses.replace(r, status=MANIPULATED if kind == "manip" else METER_FATAL_BIT)
        rs.append(r)
    res = form(p, {ch(p): ReadingIndex(rs)}, s, e)
    valid = [r for r in rs if r.usable()]
    if len(valid) < 2:
        return
    reg = by_register(res.values)
    total = reg["1-0:1.8.0"].value
    parts = sum(reg[f"1-0:1.8.{k}"].value for k in (1, 2, 3, 63))
    assert parts == total
    assert total == valid[-1].value - valid[0].value
    if keep_ends:
        assert total == vals[-1] - vals[0]                       # the meter's advance
    if not missing and not bad:
        assert reg["1-0:1.8.63"].value == 0


# ------------------------------------------------------------------------------------ TAF 6


def test_taf6_daily_readings_over_the_dst_change():
    p = profile(6)
    s, e = ms(2026, 3, 28), ms(2026, 3, 31)
    rs = [Reading(METER, "1-0:1.8.0", ms(2026, 3, 28), 100),
          Reading(METER, "1-0:1.8.0", ms(2026, 3, 28, 12), 150),
          Reading(METER, "1-0:1.8.0", ms(2026, 3, 29) + 5000, 200, time_valid=False),
          Reading(METER, "1-0:1.8.0", ms(2026, 3, 31), 300)]
    res = form(p, {ch(p): rs}, s, e)
    assert [(v.target_ms, v.value) for v in res.values] == [(ms(2026, 3, 28), 100),
                                                             (ms(2026, 3, 29), 200)]
    v0, v1 = res.values
    assert v0.period_end_ms - v0.period_start_ms == 24 * 3_600_000
    assert v1.period_end_ms - v1.period_start_ms == 23 * 3_600_000
    assert v1.capture_ms == ms(2026, 3, 29) + 5000 and not v1.time_valid
    assert v1.status & SMGW_TIME_INVALID and v0.status == SMGW_ID_BITS
    assert v0.owner == METER and v0.register == "1-0:1.8.0" and v0.kind == "reading"
    assert res.problems == ["0a01454d4800000a1b2c 1-0:1.8.0: no reading at the day start "
                            "2026-03-30T00:00:00+02:00 (±9 s)"]


# ------------------------------------------------------------------------------------ TAF 7


def test_taf7_readings_on_the_grid_with_status_bits_and_gaps():
    p = profile(7)
    s = ms(2026, 3, 10)
    rs = series(s, list(range(0, 1000, 10)))[:10]                # 00:00 .. 02:15
    rs[3] = dataclasses.replace(rs[3], time_valid=False)
    rs[4] = dataclasses.replace(rs[4], status=MANIPULATED)
    rs[5] = dataclasses.replace(rs[5], status=METER_FATAL_BIT)
    rs[6] = dataclasses.replace(rs[6], capture_ms=rs[6].capture_ms + 8_000)
    del rs[8]                                                     # 02:00 missing
    res = form(p, {ch(p): rs}, s, s + 10 * Q)                     # (00:00, 02:30]
    targets = [v.target_ms for v in res.values]
    assert targets == [s + i * Q for i in (1, 2, 3, 4, 5, 6, 7, 9)]
    v = {t: x for t, x in zip(targets, res.values)}
    assert v[s + 3 * Q].status == SMGW_ID_BITS | SMGW_TIME_INVALID and not v[s + 3 * Q].time_valid
    assert v[s + 4 * Q].status & SMGW_MANIPULATION
    assert v[s + 5 * Q].status & SMGW_FATAL
    assert v[s + 6 * Q].capture_ms == s + 6 * Q + 8_000
    assert v[s + Q].status == SMGW_ID_BITS and v[s + Q].billing
    assert (v[s + Q].period_start_ms, v[s + Q].period_end_ms) == (s, s + Q)
    assert res.problems == [
        "0a01454d4800000a1b2c 1-0:1.8.0: gap, no reading at 2026-03-10T02:00:00+01:00",
        "0a01454d4800000a1b2c 1-0:1.8.0: gap, no reading at 2026-03-10T02:30:00+01:00"]


def test_taf7_gap_runs_are_collapsed():
    p = profile(7)
    s = ms(2026, 3, 10)
    res = form(p, {ch(p): series(s, [1, 2])}, s, s + 8 * Q)
    assert len(res.values) == 1
    assert res.problems == ["0a01454d4800000a1b2c 1-0:1.8.0: gap, no reading at 7 grid "
                            "instants from 2026-03-10T00:30:00+01:00 to "
                            "2026-03-10T02:00:00+01:00"]


@pytest.mark.parametrize("start,end,count", [
    (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22), 92),
    (utc(2026, 10, 24, 22), utc(2026, 10, 25, 23), 100),
])
def test_taf7_dst_days(start, end, count):
    p = profile(7)
    rs = series(start, list(range(count + 1)))
    res = form(p, {ch(p): rs}, start, end)
    assert len(res.values) == count and res.problems == []
    assert res.values[-1].target_ms == end


def test_taf7_one_point_per_tick_and_window_helper():
    p = profile(7)
    s = ms(2026, 3, 10, 12)
    rs = series(s - Q, [5, 6, 7])
    res = form(p, {ch(p): rs}, s, s + Q)
    assert [(v.target_ms, v.value) for v in res.values] == [(s + Q, 7)]
    lo, hi = reading_window(p, s, s + Q)
    assert lo <= s + Q - 9000 and hi >= s + Q + 9000


# ---------------------------------------------------------------------------- TAF 9 / 10 / 14


def test_taf9_aggregates_pseudonym_not_billing():
    p = profile(9, profile={"registration_period_s": 60, "aggregation": ["min", "max", "mean"],
                            "pseudonym": "pv-7f3a"},
                channels=[{"meter": METER, "obis": "1-0:2.7.0"}])
    s = ms(2026, 6, 1, 12)
    rs = series(s, [4000, 5200, 3100, 6100], step=60_000, obis="1-0:2.7.0", unit="W")
    rs.append(Reading(METER, "1-0:2.7.0", s + Q, 9999, unit="W"))     # next window
    res = form(p, {ch(p): rs}, s, s + Q)
    got = {v.kind: v for v in res.values}
    assert set(got) == {"min", "max", "mean", "reading"}
    assert (got["min"].value, got["min"].capture_ms) == (3100, s + 120_000)
    assert (got["max"].value, got["max"].capture_ms) == (6100, s + 180_000)
    assert (got["mean"].value, got["mean"].scaler) == (4600, 0)
    assert (got["reading"].value, got["reading"].target_ms) == (6100, s + 180_000)
    for v in res.values:
        assert v.owner == "pv-7f3a" and not v.billing and METER not in v.sources
        assert v.status == SMGW_ID_BITS | SMGW_NOT_BILLING and v.unit == "W"
        assert v.register == "1-0:2.7.0"


def test_taf10_mean_precision_and_time_validity():
    p = profile(10, profile={"registration_period_s": 60, "aggregation": ["mean", "min"]},
                channels=[{"meter": METER, "obis": "1-0:32.7.0"}])
    s = ms(2026, 6, 1, 12)
    rs = [Reading(METER, "1-0:32.7.0", s, 2301, -1, "V"),
          Reading(METER, "1-0:32.7.0", s + 60_000, 2302, -1, "V"),
          Reading(METER, "1-0:32.7.0", s + 120_000, 23, 1, "V", time_valid=False)]
    res = form(p, {ch(p): rs}, s, s + Q)
    got = {v.kind: v for v in res.values}
    # (2301 + 2302 + 2300) / 3 = 2301 exactly, at scaler -1
    assert (got["mean"].value, got["mean"].scaler) == (2301, -1)
    assert (got["min"].value, got["min"].scaler) == (2300, -1)
    assert not got["mean"].time_valid and got["mean"].status & SMGW_TIME_INVALID
    assert got["reading"].value == 23 and got["reading"].scaler == 1
    assert got["mean"].owner == METER                              # no pseudonym configured
    p2 = dataclasses.replace(p, aggregation=("mean",))
    res = form(p2, {ch(p): rs[:2]}, s, s + Q)
    assert [(v.value, v.scaler) for v in res.values if v.kind == "mean"] == [(23015, -2)]
    res = form(p2, {ch(p): [rs[0], rs[0], rs[1]]}, s, s + Q)
    assert [(v.value, v.scaler) for v in res.values if v.kind == "mean"] == [(2301333, -4)]


def test_taf14_every_reading_and_thresholds():
    p = profile(14, profile={"registration_period_s": 60, "aggregation": ["max"]},
                channels=[{"meter": METER, "obis": "1-0:1.8.0"},
                          {"meter": METER, "obis": "1-0:16.7.0"}],
                sending=[{"trigger": "adhoc"},
                         {"trigger": "threshold", "channel": 1, "above": 11000, "below": 100}])
    s = ms(2026, 6, 1, 12)
    energy = series(s, [10, 11, 13, 20], step=60_000)
    power = series(s - 60_000, [12000, 500, 12000, 11000, 50, 80], step=60_000,
                   obis="1-0:16.7.0", unit="W")
    res = form(p, {ch(p, 0): energy, ch(p, 1): power}, s, s + 240_000)
    e_vals = [v for v in res.values if v.register == "1-0:1.8.0"]
    assert [v.kind for v in e_vals] == ["max", "reading", "reading", "reading", "reading"]
    assert [v.value for v in e_vals[1:]] == [10, 11, 13, 20]
    cross = threshold_crossings(p, {ch(p, 1): power}, s, s + 240_000)
    assert [(i, r.capture_ms, side) for i, r, side in cross] == [
        (1, s + 60_000, "above"), (1, s + 180_000, "below")]


def test_form_is_pure_and_accepts_unsorted_readings():
    p = profile(7)
    s = ms(2026, 3, 10)
    rs = series(s, [1, 2, 3, 4])
    a = form(p, {ch(p): rs[::-1]}, s, s + 3 * Q)
    b = form(p, {ch(p): rs}, s, s + 3 * Q)
    assert a == b and len(a.values) == 3
    assert form(p, {ch(p): rs}, s, s) .values == []


def test_doc_helper_builds_valid_profiles():
    for taf in (1, 2, 6, 7, 9, 10, 14):
        kw = {"registration_period_s": 60} if taf in (9, 10, 14) else {}
        assert EvaluationProfile.from_json(doc(taf, profile=kw)).taf == taf
