"""German numbers and times, consumption series and the SVG chart of the portal
(smgw.han.render)."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from lxml import etree

from smgw.han import render
from smgw.han.render import Bar

BERLIN = ZoneInfo("Europe/Berlin")


def ms(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=BERLIN).timestamp() * 1000)


# ------------------------------------------------------------------ numbers


@pytest.mark.parametrize("value,places,text", [
    (Decimal("1234.5678"), 4, "1.234,5678"),
    (Decimal("1234.5"), 4, "1.234,5000"),
    (Decimal("0"), 4, "0,0000"),
    (Decimal("-1234567.25"), 2, "-1.234.567,25"),
    (Decimal("999"), None, "999"),
    (Decimal("1000"), None, "1.000"),
    (Decimal("12.30"), None, "12,30"),
    (Decimal("0.00005"), 4, "0,0000"),       # half to even
    (Decimal("0.00015"), 4, "0,0002"),
    (12345678, 0, "12.345.678"),
])
def test_german_decimal(value, places, text):
    assert render.de_decimal(value, places) == text


def test_quantity_energy_in_kwh_with_four_decimals_exactly():
    # 0.1 Wh resolution, as SML meters send it
    assert render.quantity(123456789, -1, "Wh") == ("12.345,6789", "kWh")
    assert render.quantity("123456789", -1, "Wh") == ("12.345,6789", "kWh")
    assert render.quantity(5, 0, "Wh") == ("0,0050", "kWh")
    # a 64-bit register stays exact (no float anywhere)
    assert render.quantity(2**63 - 1, -1, "Wh")[0] == "922.337.203.685.477,5807"
    assert render.quantity(4213, -2, "W") == ("42,13", "W")
    assert render.quantity(2301, -1, "V") == ("230,1", "V")
    assert render.quantity(7, 3, "Wh") == ("7,0000", "kWh")
    assert render.display_unit("Wh") == "kWh" and render.display_unit(None) == ""


# ------------------------------------------------------------------ times


def test_local_times_and_iso_with_offset():
    t = ms(2022, 6, 27, 15, 7, 52)
    assert render.de_datetime(t) == "27.06.2022 15:07:52"
    assert render.de_datetime(t, seconds=False) == "27.06.2022 15:07"
    assert render.de_date(t) == "27.06.2022"
    assert render.de_time(t) == "15:07"
    assert render.iso_local(t) == "2022-06-27T15:07:52+02:00"
    assert render.iso_local(ms(2022, 1, 3, 0, 0, 0)) == "2022-01-03T00:00:00+01:00"
    assert render.de_datetime(None) == "–" and render.iso_local(None) == ""


def test_parse_local_accepts_date_inputs_and_german_writing():
    assert render.parse_local("2022-06-27") == ms(2022, 6, 27)
    assert render.parse_local("27.06.2022") == ms(2022, 6, 27)
    assert render.parse_local("2022-06-27", end=True) == ms(2022, 6, 28)
    assert render.parse_local("27.06.2022 15:07") == ms(2022, 6, 27, 15, 7)
    assert render.parse_local("2022-06-27T15:07") == ms(2022, 6, 27, 15, 7)
    assert render.parse_local("  ") is None and render.parse_local(None) is None
    with pytest.raises(ValueError, match="„31.02.2022“ ist kein Datum"):
        render.parse_local("31.02.2022")


def test_local_days_follow_daylight_saving_time():
    days = render.local_days(ms(2022, 3, 26), ms(2022, 3, 28))
    assert [(b - a) // 3_600_000 for a, b in days] == [24, 23]
    days = render.local_days(ms(2022, 10, 30), ms(2022, 10, 31))
    assert [(b - a) // 3_600_000 for a, b in days] == [25]
    assert render.local_day_start(ms(2022, 10, 30, 23, 59)) == ms(2022, 10, 30)


# ------------------------------------------------------------------ series


def test_interval_consumption_keeps_gaps_visible():
    step = 900_000
    pts = [(0, Decimal(10)), (step, Decimal("10.5")), (3 * step, Decimal(12))]
    out = render.interval_consumption(pts, [step, 2 * step, 3 * step], step)
    assert out == [(step, Decimal("0.5")), (2 * step, None), (3 * step, None)]


def test_nice_ticks():
    assert render.nice_ticks(Decimal("0.87")) == [Decimal(0), Decimal("0.2"), Decimal("0.4"),
                                                  Decimal("0.6"), Decimal("0.8"), Decimal("1.0")]
    assert render.nice_ticks(Decimal(0)) == [Decimal(0), Decimal(1)]
    t = render.nice_ticks(Decimal(1234))
    assert t[0] == 0 and t[-1] >= 1234 and len(t) <= 7


# ------------------------------------------------------------------ the chart


def _svg(markup: str) -> etree._Element:
    return etree.fromstring(str(markup).encode())


def test_bar_chart_is_accessible_svg_without_inline_style():
    bars = [Bar(f"{h:02d}:00", f"Stunde {h}", Decimal(h) / 10) for h in range(24)]
    bars[5] = Bar("05:00", "Stunde 5", None)
    out = render.bar_chart(bars, chart_id="c1", title="Bezug je Stunde", unit="kWh")
    svg = _svg(out)
    ns = {"s": "http://www.w3.org/2000/svg"}
    assert svg.get("role") == "img"
    assert svg.get("aria-labelledby") == "c1-t c1-d"
    assert svg.find("s:title", ns).text == "Bezug je Stunde"
    desc = svg.find("s:desc", ns).text
    assert "24 Werte" in desc and "Summe 27,1000 kWh" in desc and "1 ohne Wert" in desc
    assert "höchster Wert 2,3000 kWh (Stunde 23)" in desc
    rects = svg.findall(".//s:g[@class='bars']/s:rect", ns)
    assert len(rects) == 24
    assert sum(1 for r in rects if r.get("class") == "gap") == 1
    # every bar carries its value as a tooltip
    assert rects[10].find("s:title", ns).text == "Stunde 10: 1,0000 kWh"
    assert "style=" not in out and "<script" not in out


def test_bar_chart_draws_negative_values_below_zero_and_escapes_text():
    bars = [Bar("a", "<b>a</b>", Decimal(2)), Bar("b", "b", Decimal(-1))]
    out = render.bar_chart(bars, chart_id="x y", title="<script>", unit="kWh")
    assert "<script>" not in out and "&lt;script&gt;" in out
    svg = _svg(out)
    ns = {"s": "http://www.w3.org/2000/svg"}
    assert svg.get("id") == "x-y"
    zero = svg.find(".//s:line[@class='zero']", ns)
    y0 = float(zero.get("y1"))
    pos, neg = svg.findall(".//s:g[@class='bars']/s:rect", ns)
    assert float(pos.get("y")) + float(pos.get("height")) == pytest.approx(y0, abs=0.2)
    assert float(neg.get("y")) == pytest.approx(y0, abs=0.2) and neg.get("class") == "bar neg"


def test_bar_chart_of_no_values_still_renders():
    out = render.bar_chart([Bar("a", "a", None)], chart_id="e", title="leer", unit="kWh")
    assert re.search(r"1 Werte, Summe 0,0000 kWh, 1 ohne Wert", str(out))
    _svg(out)
