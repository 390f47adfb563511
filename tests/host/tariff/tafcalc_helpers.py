"""Shared builders for the smgw.tariff calculation tests (profile documents, readings)."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from smgw.tariff.model import Reading
from smgw.tariff.profile import EvaluationProfile

BERLIN = ZoneInfo("Europe/Berlin")
METER = "0a01454d4800000a1b2c"
METER2 = "0a01454d4800000d3e4f"
Q = 900_000  # one registration period (15 min) in ms


def ms(*args: int, tz: dt.tzinfo = BERLIN) -> int:
    """Local wall-clock time -> Unix ms (fold 0)."""
    d = dt.datetime(*args, tzinfo=tz)
    return (d - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)) // dt.timedelta(
        milliseconds=1)


def utc(*args: int) -> int:
    return ms(*args, tz=dt.timezone.utc)


BASE: dict[str, Any] = {
    "profile": {
        "kind": "evaluation", "name": "p", "taf": 7, "usage_point": "DE0000000000000000001",
        "consumer": "LV1", "supplier": "Stadtwerke", "recipients": ["emt1"],
        "valid_from": "2026-01-01T00:00:00+01:00",
    },
    "channels": [{"meter": METER, "obis": "1-0:1.8.0"}],
}

HT_NT: dict[str, Any] = {
    "stages": [{"number": 1, "name": "HT"}, {"number": 2, "name": "NT"}],
    "switching": [
        {"days": ["all"], "time": "00:00", "stage": 2},
        {"days": ["weekdays"], "time": "06:00", "stage": 1},
        {"days": ["weekdays"], "time": "22:00", "stage": 2},
    ],
}


def doc(taf: int = 7, *, profile: dict[str, Any] | None = None,
        **tables: Any) -> dict[str, Any]:
    """A profile document: BASE with ``taf``, profile keys merged, tables replaced (a value of
    None removes the key/table). TAF 2 gets the HT/NT tables unless given."""
    d = copy.deepcopy(BASE)
    d["profile"]["taf"] = taf
    if taf == 2:
        d.update(copy.deepcopy(HT_NT))
    for k, v in (profile or {}).items():
        if v is None:
            d["profile"].pop(k, None)
        else:
            d["profile"][k] = v
    for k, v in tables.items():
        if v is None:
            d.pop(k, None)
        else:
            d[k] = v
    return d


def profile(taf: int = 7, **kw: Any) -> EvaluationProfile:
    return EvaluationProfile.from_json(doc(taf, **kw))


def series(start_ms: int, values: list[int], *, step: int = Q, meter: str = METER,
           obis: str = "1-0:1.8.0", **kw: Any) -> list[Reading]:
    return [Reading(meter, obis, start_ms + i * step, v, **kw) for i, v in enumerate(values)]
