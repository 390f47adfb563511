"""What the portal shows, made presentable: German numbers and times, consumption series, and
the consumption chart as inline SVG. Pure functions, no I/O; :mod:`smgw.han.portal` calls them.

Numbers are exact: a value is an integer with a power-of-ten scaler (as meters send it) and is
turned into a :class:`~decimal.Decimal`, never a float, before it is formatted. Energy in Wh is
shown in kWh with four decimals (``1.234,5678 kWh``), like the consumer portals of the gateways
on the market (seed 002 §7.2 shows ``23.163,627000 kWh``).

Times are Unix milliseconds; the consumer sees local time (Europe/Berlin, or the usage point's
time zone) as ``27.06.2022 15:07:52``, downloads carry ISO 8601 with the offset.

The chart (:func:`bar_chart`) works without JavaScript and without inline styles (the HAN server
sends ``Content-Security-Policy: default-src 'self'``): colours come from presentation attributes
and the classes of ``static/portal.css``. It is an image for assistive technology
(``role="img"``, ``<title>``, ``<desc>`` with a summary); the page puts the same numbers in a
table next to it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from markupsafe import Markup, escape

from . import cosem

__all__ = [
    "Bar",
    "LOCAL_TZ",
    "bar_chart",
    "de_date",
    "de_datetime",
    "de_decimal",
    "de_time",
    "display_unit",
    "interval_consumption",
    "iso_local",
    "nice_ticks",
    "parse_local",
    "quantity",
    "to_decimal",
]

LOCAL_TZ = cosem.LOCAL_TZ

# unit -> (shown unit, power of ten to divide by, decimals shown)
_DISPLAY = {
    "Wh": ("kWh", 3, 4),
    "varh": ("kvarh", 3, 4),
    "VAh": ("kVAh", 3, 4),
}


_zone = cosem.zone   # one cached ZoneInfo lookup for both faces


# ------------------------------------------------------------------ numbers


def to_decimal(raw: int | str, scaler: int | None) -> Decimal:
    """``raw * 10**scaler`` exactly (``raw`` as stored: an integer or its text)."""
    return Decimal(int(raw)).scaleb(int(scaler or 0))


def de_decimal(value: Decimal | int, places: int | None = None) -> str:
    """German notation: ``.`` groups thousands, ``,`` before the decimals
    (``Decimal("1234.5")`` -> ``"1.234,5"``; ``places=4`` -> ``"1.234,5000"``)."""
    d = Decimal(value)
    if places is not None:
        d = d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    elif d == d.to_integral_value():
        d = d.quantize(Decimal(1))
    sign = "-" if d < 0 else ""
    text = f"{abs(d):f}"
    whole, _, frac = text.partition(".")
    groups = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    groups.insert(0, whole)
    out = sign + ".".join(groups)
    return f"{out},{frac}" if frac else out


def display_unit(unit: str | None) -> str:
    """The unit the portal shows a value of ``unit`` in (Wh -> kWh)."""
    if not unit:
        return ""
    return _DISPLAY.get(unit, (unit, 0, 0))[0]


def scaled(value: Decimal, unit: str | None) -> Decimal:
    """``value`` (in ``unit``) in the shown unit (:func:`display_unit`)."""
    if unit in _DISPLAY:
        return value.scaleb(-_DISPLAY[unit][1])
    return value


def quantity(raw: int | str, scaler: int | None, unit: str | None) -> tuple[str, str]:
    """(number, unit) as shown: ``(123456789, -1, "Wh")`` -> ``("12.345,6789", "kWh")``.
    Other units keep the decimals the scaler gives."""
    v = to_decimal(raw, scaler)
    if unit in _DISPLAY:
        shown, power, places = _DISPLAY[unit]
        return de_decimal(v.scaleb(-power), places), shown
    places = max(0, -int(scaler or 0))
    return de_decimal(v, places), unit or ""


# ------------------------------------------------------------------ times


def _local(ms: int, tz: str) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, _zone(tz))


def de_datetime(ms: int | None, tz: str = LOCAL_TZ, seconds: bool = True) -> str:
    """``27.06.2022 15:07:52`` (local time); ``–`` for no time."""
    if ms is None:
        return "–"
    return _local(ms, tz).strftime("%d.%m.%Y %H:%M:%S" if seconds else "%d.%m.%Y %H:%M")


def de_date(ms: int | None, tz: str = LOCAL_TZ) -> str:
    return "–" if ms is None else _local(ms, tz).strftime("%d.%m.%Y")


def de_time(ms: int | None, tz: str = LOCAL_TZ, seconds: bool = False) -> str:
    return "–" if ms is None else _local(ms, tz).strftime("%H:%M:%S" if seconds else "%H:%M")


def iso_local(ms: int | None, tz: str = LOCAL_TZ) -> str:
    """ISO 8601 with the local offset, second-exact: ``2022-06-27T15:07:52+02:00``."""
    if ms is None:
        return ""
    return _local(ms, tz).replace(microsecond=0).isoformat()


def parse_local(text: str | None, *, end: bool = False, tz: str = LOCAL_TZ) -> int | None:
    """A time a consumer typed into a filter form, as Unix ms; None for an empty field.

    Accepts what date inputs send (``2022-06-27``, ``2022-06-27T15:07``) and German writing
    (``27.06.2022``, ``27.06.2022 15:07``). A date alone means the start of that local day, or
    with ``end=True`` the start of the next day (so "bis 27.06." includes the 27th). Raises
    ValueError with a German message naming what was typed.
    """
    t = (text or "").strip()
    if not t:
        return None
    formats = (("%Y-%m-%dT%H:%M:%S", False), ("%Y-%m-%dT%H:%M", False),
               ("%Y-%m-%d %H:%M", False), ("%Y-%m-%d", True),
               ("%d.%m.%Y %H:%M:%S", False), ("%d.%m.%Y %H:%M", False), ("%d.%m.%Y", True))
    for fmt, date_only in formats:
        try:
            naive = dt.datetime.strptime(t, fmt)
        except ValueError:
            continue
        try:
            if date_only and end:
                naive += dt.timedelta(days=1)
            return int(naive.replace(tzinfo=_zone(tz)).timestamp() * 1000)
        except OverflowError:   # 31.12.9999 as an end date: not a 500
            break
    raise ValueError(f"„{t}“ ist kein Datum (erwartet z. B. 27.06.2022 oder 27.06.2022 15:00)")


def local_day_start(ms: int, tz: str = LOCAL_TZ) -> int:
    """Start of the local calendar day containing ``ms``."""
    d = _local(ms, tz).date()
    return int(dt.datetime(d.year, d.month, d.day, tzinfo=_zone(tz)).timestamp() * 1000)


def local_days(start_ms: int, end_ms: int, tz: str = LOCAL_TZ) -> list[tuple[int, int]]:
    """The local calendar days (23, 24 or 25 hours) covering [start, end)."""
    out = []
    zone = _zone(tz)
    d = _local(start_ms, tz).date()
    while True:
        a = int(dt.datetime(d.year, d.month, d.day, tzinfo=zone).timestamp() * 1000)
        if a >= end_ms:
            break
        n = d + dt.timedelta(days=1)
        b = int(dt.datetime(n.year, n.month, n.day, tzinfo=zone).timestamp() * 1000)
        out.append((a, b))
        d = n
    return out


# ------------------------------------------------------------------ series


def interval_consumption(points: Sequence[tuple[int, Decimal]], grid_ms: Sequence[int],
                         step_ms: int) -> list[tuple[int, Decimal | None]]:
    """Consumption per registration interval from register readings on a grid: for each grid
    instant ``t`` the difference ``value(t) - value(t - step)``; None where either is missing
    (a gap stays visible, it is never interpolated)."""
    by_t = dict(points)
    out: list[tuple[int, Decimal | None]] = []
    for t in grid_ms:
        a, b = by_t.get(t - step_ms), by_t.get(t)
        out.append((t, None if a is None or b is None else b - a))
    return out


# ------------------------------------------------------------------ chart


@dataclass(frozen=True)
class Bar:
    label: str            # axis label ("14:15", "27.06.")
    long_label: str       # for the tooltip and the summary ("27.06.2022 14:00–14:15")
    value: Decimal | None  # None: no value (a gap)


def nice_ticks(top: Decimal, count: int = 5) -> list[Decimal]:
    """Round tick values 0 .. >= top (steps of 1, 2, 2.5 or 5 times a power of ten)."""
    if top <= 0:
        return [Decimal(0), Decimal(1)]
    raw = top / count
    exp = raw.adjusted()
    base = Decimal(1).scaleb(exp)
    step = next(m * base for m in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5),
                                   Decimal(10)) if m * base >= raw)
    ticks = [Decimal(0)]
    while ticks[-1] < top:
        ticks.append(ticks[-1] + step)
    return ticks


def _fmt_tick(v: Decimal) -> str:
    v = v.normalize()
    places = max(0, -v.as_tuple().exponent) if isinstance(v.as_tuple().exponent, int) else 0
    return de_decimal(v, min(places, 4))


def bar_chart(bars: Sequence[Bar], *, chart_id: str, title: str, unit: str,
              width: int = 720, height: int = 260, places: int = 4,
              label_at: str = "center") -> Markup:
    """An inline SVG bar chart of ``bars`` (values already in ``unit``). Negative values are
    drawn below the zero line; gaps are marked on the axis. Every bar has a ``<title>`` (the
    browser's tooltip); the ``<desc>`` summarises the series for screen readers. Axis labels
    are the bars' non-empty ``label``s, under the bar's middle or, with ``label_at="end"``,
    under its right edge (an interval labelled by its end time)."""
    if label_at not in ("center", "end"):
        raise ValueError(f"label_at must be 'center' or 'end', not {label_at!r}")
    cid = "".join(c if c.isalnum() or c in "-_" else "-" for c in chart_id)
    left, right, top, bottom = 64, 24, 14, 42
    pw, ph = width - left - right, height - top - bottom
    values = [b.value for b in bars if b.value is not None]
    vmax = max([Decimal(0), *values])
    vmin = min([Decimal(0), *values])
    up = nice_ticks(vmax) if vmax > 0 else [Decimal(0)]
    down = [-t for t in nice_ticks(-vmin)] if vmin < 0 else [Decimal(0)]
    hi, lo = up[-1], down[-1]
    span = (hi - lo) or Decimal(1)

    def y(v: Decimal) -> float:
        return top + float((hi - v) / span) * ph

    n = max(1, len(bars))
    slot = pw / n
    bw = max(1.0, slot * 0.8)
    parts: list[str] = []
    total = sum(values, Decimal(0))
    gaps = sum(1 for b in bars if b.value is None)
    summary = f"{len(bars)} Werte, Summe {de_decimal(total, places)} {unit}"
    if values:
        imax = max(range(len(bars)), key=lambda i: bars[i].value
                   if bars[i].value is not None else Decimal("-Infinity"))
        summary += (f", höchster Wert {de_decimal(bars[imax].value, places)} {unit} "
                    f"({bars[imax].long_label})")
    if gaps:
        summary += f", {gaps} ohne Wert"
    summary += "."
    parts.append(f'<svg class="chart" id="{cid}" viewBox="0 0 {width} {height}" role="img" '
                 f'aria-labelledby="{cid}-t {cid}-d" xmlns="http://www.w3.org/2000/svg" '
                 f'preserveAspectRatio="xMidYMid meet">')
    parts.append(f'<title id="{cid}-t">{escape(title)}</title>')
    parts.append(f'<desc id="{cid}-d">{escape(summary)}</desc>')
    # grid lines and y labels
    parts.append('<g class="axis" aria-hidden="true">')
    for t in sorted(set(up) | set(down)):
        yy = y(t)
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{yy:.1f}" '
                     f'y2="{yy:.1f}" stroke="#d0d5dc" stroke-width="1"/>')
        parts.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end" '
                     f'font-size="12" fill="#333">{escape(_fmt_tick(t))}</text>')
    parts.append(f'<text x="4" y="{top + 2}" font-size="12" fill="#333" '
                 f'dominant-baseline="hanging" transform="rotate(-90 4 {top + 2})" '
                 f'text-anchor="end">{escape(unit)}</text>')
    zero = y(Decimal(0))
    parts.append(f'<line class="zero" x1="{left}" x2="{width - right}" y1="{zero:.1f}" '
                 f'y2="{zero:.1f}" stroke="#333" stroke-width="1"/>')
    # x labels: the non-empty ones, thinned to about 12
    labelled = [i for i, b in enumerate(bars) if b.label]
    every = max(1, -(-len(labelled) // 12))
    for i in labelled[::every]:
        b = bars[i]
        xx = left + slot * (i + 1) if label_at == "end" else left + slot * i + slot / 2
        parts.append(f'<text x="{xx:.1f}" y="{height - bottom + 16}" text-anchor="middle" '
                     f'font-size="12" fill="#333">{escape(b.label)}</text>')
    parts.append("</g>")
    parts.append('<g class="bars">')
    for i, b in enumerate(bars):
        x0 = left + slot * i + (slot - bw) / 2
        if b.value is None:
            tip = f"{b.long_label}: kein Wert"
            parts.append(f'<rect class="gap" x="{x0:.1f}" y="{zero - 3:.1f}" width="{bw:.1f}" '
                         f'height="6" fill="#b00020"><title>{escape(tip)}</title></rect>')
            continue
        y0, y1 = sorted((y(b.value), zero))
        cls = "bar neg" if b.value < 0 else "bar"
        fill = "#1b7f5b" if b.value < 0 else "#1f5fa8"
        tip = f"{b.long_label}: {de_decimal(b.value, places)} {unit}"
        parts.append(f'<rect class="{cls}" x="{x0:.1f}" y="{y0:.1f}" width="{bw:.1f}" '
                     f'height="{max(y1 - y0, 0.5):.1f}" fill="{fill}">'
                     f'<title>{escape(tip)}</title></rect>')
    parts.append("</g></svg>")
    return Markup("".join(parts))
