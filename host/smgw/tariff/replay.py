"""Replay: what an evaluation profile yields from a series of original readings, without a
running gateway (``smgw tariff replay``, docs/tariffs.md "Replay").

Readings come from a CSV file, one reading a line::

    meter id, OBIS, capture time (ISO 8601 with offset), value, unit, status[, time_valid]

``status`` (the meter's status word, decimal or ``0x`` hex) may be empty, ``time_valid``
(``true``/``false``/``1``/``0``, default true) may be left out. A first line naming the columns
(``meter,obis,time,value,unit,status``) is recognised and may put them in any order. Blank lines
and lines starting with ``#`` are skipped. Values are decimal numbers (``1234.5``) and are
converted exactly into the integer + power-of-ten form meters use: ``1234.5 kWh`` becomes raw
``12345``, scaler ``2``, unit ``Wh``.

:func:`replay` cuts the time range into the periods the TAF forms (billing periods for TAF 1/2,
days for TAF 6, sending periods for TAF 7/9/10/14), calls :func:`smgw.tariff.cases.form` for each
and returns the JSON-ready result.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from smgw.meters.obis import ObisError, parse_obis
from smgw.meters.units import unit_code
from smgw.tariff.cases import FormResult, ReadingIndex, form
from smgw.tariff.model import DerivedValue, Reading
from smgw.tariff.periods import (
    billing_periods,
    days,
    ceil_to_grid,
    day_of,
    iso,
    nearest_grid,
    previous_grid,
    windows,
)
from smgw.tariff.profile import EvaluationProfile

# unit as written -> (DLMS symbol stored, power of ten to add to the scaler)
UNIT_PREFIXES: dict[str, tuple[str, int]] = {
    "Wh": ("Wh", 0), "kWh": ("Wh", 3), "MWh": ("Wh", 6),
    "varh": ("varh", 0), "kvarh": ("varh", 3), "Mvarh": ("varh", 6),
    "VAh": ("VAh", 0), "kVAh": ("VAh", 3), "MVAh": ("VAh", 6),
    "W": ("W", 0), "kW": ("W", 3), "MW": ("W", 6),
    "var": ("var", 0), "kvar": ("var", 3), "Mvar": ("var", 6),
    "VA": ("VA", 0), "kVA": ("VA", 3), "MVA": ("VA", 6),
    "V": ("V", 0), "kV": ("V", 3), "mV": ("V", -3),
    "A": ("A", 0), "mA": ("A", -3),
    "Hz": ("Hz", 0), "deg": ("°", 0),
}

COLUMNS = ("meter", "obis", "time", "value", "unit", "status", "time_valid")
_HEADER_NAMES: dict[str, str] = {
    "meter": "meter", "meter_id": "meter", "meter id": "meter", "meterid": "meter",
    "obis": "obis",
    "time": "time", "capture": "time", "capture_time": "time", "capture time": "time",
    "timestamp": "time",
    "value": "value", "unit": "unit", "status": "status",
    "time_valid": "time_valid", "time valid": "time_valid",
}
_TRUE = {"1", "true", "yes"}
_FALSE = {"0", "false", "no"}


class CsvError(ValueError):
    """A readings file that cannot be used: the fault of whoever wrote it. Names the line
    (1-based, as an editor counts) and the column."""

    def __init__(self, source: str, line: int, column: str | None, message: str):
        self.source, self.line, self.column = source, line, column
        where = f"{source} line {line}" + (f", column {column}" if column else "")
        super().__init__(f"{where}: {message}")


def parse_value(text: str, unit: str) -> tuple[int, int, str]:
    """``("1234.5", "kWh") -> (12345, 2, "Wh")``: exact, no float. Raises ValueError naming
    what is wrong (the caller adds line and column)."""
    try:
        d = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a decimal number (write e.g. 1234.5)") from None
    if not d.is_finite():
        raise ValueError(f"{text!r} is not a finite number")
    sym, shift = unit_to_symbol(unit)
    sign, digits, exp = d.as_tuple()
    assert isinstance(exp, int)
    raw = int("".join(map(str, digits))) * (-1 if sign else 1)
    return raw, exp + shift, sym


def unit_to_symbol(unit: str) -> tuple[str, int]:
    """The DLMS unit symbol and the power of ten of ``unit`` (``"kWh" -> ("Wh", 3)``)."""
    u = unit.strip()
    if u in UNIT_PREFIXES:
        return UNIT_PREFIXES[u]
    if u and unit_code(u) is not None:
        return u, 0
    raise ValueError(f"unknown unit {unit!r} (e.g. Wh, kWh, W, kW, V, A, Hz)")


def _parse_time(text: str) -> int:
    s = text.strip()
    try:
        d = dt.datetime.fromisoformat(s)
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time "
                         f"(e.g. 2026-03-10T00:00:00+01:00)") from None
    if d.tzinfo is None or d.utcoffset() is None:
        raise ValueError(f"{text!r} has no UTC offset (add e.g. +01:00 or Z)")
    return (d - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)) // dt.timedelta(
        milliseconds=1)


def _parse_status(text: str) -> int | None:
    s = text.strip()
    if not s:
        return None
    try:
        v = int(s, 16) if s.lower().startswith("0x") else int(s, 10)
    except ValueError:
        raise ValueError(f"{text!r} is not a status word (decimal or 0x hex)") from None
    if not 0 <= v <= 0xFFFFFFFF:
        raise ValueError(f"{text!r} does not fit a 32-bit status word")
    return v


def _parse_meter(text: str) -> str:
    s = text.strip().lower()
    if not s or len(s) % 2 or any(c not in "0123456789abcdef" for c in s):
        raise ValueError(f"{text!r} is not a hex meter id (an even number of hex digits)")
    return s


def read_readings_csv(source: str | Path, text: str | None = None) -> list[Reading]:
    """Parse a readings CSV (the file ``source``, or ``text`` with ``source`` as its name)."""
    name = str(source)
    if text is None:
        try:
            text = Path(source).read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as e:
            raise CsvError(name, 0, None, f"cannot read: {e}") from None
    rows = csv.reader(io.StringIO(text))
    cols: dict[str, int] | None = None
    out: list[Reading] = []
    first = True
    it = iter(rows)
    while True:
        try:
            row = next(it)
        except StopIteration:
            break
        except csv.Error as e:   # e.g. a field over the csv module's size limit
            raise CsvError(name, rows.line_num, None, f"not readable as CSV: {e}") from None
        line = rows.line_num
        if not row or all(not c.strip() for c in row) or row[0].lstrip().startswith("#"):
            continue
        if first:
            first = False
            named = [_HEADER_NAMES.get(c.strip().lower()) for c in row]
            if any(named) and row[0].strip().lower() in _HEADER_NAMES:
                for i, (c, n) in enumerate(zip(row, named)):
                    if n is None:
                        raise CsvError(name, line, c.strip() or f"#{i + 1}",
                                       f"unknown column name (known: {', '.join(COLUMNS)})")
                if len(set(named)) != len(named):
                    raise CsvError(name, line, None, "a column is named twice")
                cols = {n: i for i, n in enumerate(named) if n}
                for need in COLUMNS[:5]:
                    if need not in cols:
                        raise CsvError(name, line, need, "missing in the header")
                continue
        if cols is None:
            cols = {c: i for i, c in enumerate(COLUMNS)}
            if not 5 <= len(row) <= 7:
                raise CsvError(name, line, None, f"expected 5 to 7 columns ({', '.join(COLUMNS)}"
                                                 f"), got {len(row)}")
        out.append(_row(name, line, row, cols))
    return out


def _row(name: str, line: int, row: list[str], cols: dict[str, int]) -> Reading:
    def cell(col: str) -> str:
        i = cols.get(col)
        if i is None:
            return ""
        if i >= len(row):
            if col in COLUMNS[:5]:
                raise CsvError(name, line, col, "missing (the line is too short)")
            return ""
        return row[i]

    if len(row) > max(cols.values()) + 1 and any(c.strip() for c in row[max(cols.values()) + 1:]):
        raise CsvError(name, line, None, f"{len(row)} columns, expected at most "
                                         f"{max(cols.values()) + 1}")
    col = "meter"
    try:
        meter = _parse_meter(cell("meter"))
        col = "obis"
        try:
            obis = str(parse_obis(cell("obis").strip()))
        except ObisError as e:
            raise ValueError(str(e)) from None
        col = "time"
        t = _parse_time(cell("time"))
        col = "value"
        raw_text, unit_text = cell("value"), cell("unit")
        try:
            unit_to_symbol(unit_text)
        except ValueError:
            col = "unit"
            raise
        raw, scaler, unit = parse_value(raw_text, unit_text)
        col = "status"
        status = _parse_status(cell("status"))
        col = "time_valid"
        tv_text = cell("time_valid").strip().lower()
        if tv_text and tv_text not in _TRUE | _FALSE:
            raise ValueError(f"{tv_text!r} is not true/false")
        time_valid = tv_text not in _FALSE
    except CsvError:
        raise
    except ValueError as e:
        raise CsvError(name, line, col, str(e)) from None
    return Reading(meter=meter, obis=obis, capture_ms=t, value=raw, scaler=scaler, unit=unit,
                   status=status, time_valid=time_valid)


# ------------------------------------------------------------------------------------- replay


def decimal_text(value: int, scaler: int) -> str:
    """``value * 10**scaler`` as exact decimal text (``(152340, -1) -> "15234.0"``)."""
    return format(Decimal(value).scaleb(scaler), "f")


def value_json(v: DerivedValue, tz: str) -> dict[str, Any]:
    return {
        "register": v.register, "owner": v.owner, "kind": v.kind, "stage": v.stage,
        "value": v.value, "scaler": v.scaler, "unit": v.unit,
        "decimal": decimal_text(v.value, v.scaler),
        "target": iso(v.target_ms, tz),
        "capture": iso(v.capture_ms, tz) if v.capture_ms is not None else None,
        "status": f"0x{v.status:08X}",
        "meter_status": f"0x{v.meter_status:08X}" if v.meter_status is not None else None,
        "time_valid": v.time_valid, "billing": v.billing, "sources": list(v.sources),
    }


def _windows(p: EvaluationProfile, start: int, end: int) -> list[tuple[int, int]]:
    if p.taf in (1, 2):
        return billing_periods(p, start, end)
    if p.taf == 6:
        return days(p, start, end)
    periodic = next((s.period_s for s in p.sending
                     if s.trigger == "periodic" and s.period_s), None)
    return windows(p, start, end, periodic or 86400)


def replay(p: EvaluationProfile, readings: Iterable[Reading], start_ms: int | None = None,
           end_ms: int | None = None) -> dict[str, Any]:
    """Form every period of ``p`` between ``start_ms`` and ``end_ms`` (default: the span of the
    readings of the profile's channels, within the profile's validity) and return
    ``{"profile", "taf", "timezone", "from", "to", "periods": [{"start", "end", "values",
    "switches", "problems"}], "problems", "unused_readings"}``."""
    chans = {(c.meter, c.obis): c for c in p.channels}
    grouped: dict[Any, list[Reading]] = {c: [] for c in p.channels}
    unused = 0
    for r in readings:
        ch = chans.get((r.meter, r.obis))
        if ch is None:
            unused += 1
        else:
            grouped[ch].append(r)
    idx = {ch: ReadingIndex(rs) for ch, rs in grouped.items()}
    tz = p.timezone
    out: dict[str, Any] = {"profile": p.name, "taf": p.taf, "timezone": tz, "from": None,
                           "to": None, "periods": [], "problems": [],
                           "unused_readings": unused}
    caps = [ix.captures[i] for ix in idx.values() for i in (0, -1) if len(ix)]
    if start_ms is None or end_ms is None:
        if not caps:
            out["problems"].append("no readings for the profile's channels "
                                   + ", ".join(f"{c.meter} {c.obis}" for c in p.channels))
            return out
        first, last = min(caps), max(caps)
        if p.taf in (9, 10, 14):     # whole registration periods around the readings
            lo, hi = previous_grid(p, first + 1), ceil_to_grid(p, last + 1)
        elif p.taf == 7:             # the grid instants of the first and last reading
            lo, hi = nearest_grid(p, first), nearest_grid(p, last)
        elif p.taf == 6:             # the days of the readings
            lo, hi = nearest_grid(p, first), day_of(nearest_grid(p, last), p.timezone)[1]
        else:                        # the billing periods between the readings
            lo, hi = nearest_grid(p, first), nearest_grid(p, last)
        start_ms = lo if start_ms is None else start_ms
        end_ms = hi if end_ms is None else end_ms
    start_ms = max(start_ms, p.valid_from_ms)
    if p.valid_until_ms is not None:
        end_ms = min(end_ms, p.valid_until_ms - (1 if p.taf == 7 else 0))
    out["from"], out["to"] = iso(start_ms, tz), iso(end_ms, tz)
    if end_ms < start_ms or (end_ms == start_ms and p.taf != 7):
        out["problems"].append("the range is empty (outside the profile's validity?)")
        return out
    # TAF 7 includes both ends: the grid instants in [start, end]
    wins = _windows(p, start_ms, end_ms + 1 if p.taf == 7 else end_ms)
    if p.taf == 7 and wins and wins[-1][1] == end_ms + 1:
        wins[-1] = (wins[-1][0], end_ms)
    if not wins:
        out["problems"].append("no complete period in the range")
    for s, e in wins:
        # TAF 7 forms the grid instants in (start, end]; the replay's first window also takes
        # its own start instant, so that the first reading of the range is not lost
        res: FormResult = form(p, idx, s - 1 if (p.taf == 7 and s == start_ms) else s, e)
        if p.taf == 7 and not res.values and not res.problems:
            continue        # a sliver of a window without any grid instant in it
        out["periods"].append({
            "start": iso(s, tz), "end": iso(e, tz),
            "values": [value_json(v, tz) for v in res.values],
            "switches": [{"time": iso(t, tz), "stage": st} for t, st in res.switches],
            "problems": res.problems,
        })
    return out
