"""Benchmarks of the tariff calculations (smgw.tariff), for ``make bench``.

``bench_taf2_replay_year()``: one meter, one year of 15-minute readings (35,040) through
:func:`smgw.tariff.replay.replay` with a two-stage TAF 2 profile (HT/NT, monthly billing
periods, both daylight-saving changes inside). Returns ``{"taf2_replay_year_s": seconds}``.

``bench_taf7_values()``: forming and signing TAF 7 values as the engine does it: 30 days of
15-minute readings of a two-register meter (import and export, 5,760 values) through
:func:`smgw.tariff.cases.form` one day at a time, each value signed with the gateway's SIG key
(ECDSA P-256, :func:`smgw.security.valuesig.sign_value`) and stored with its signature
(:meth:`smgw.tariff.store.TariffStore.put_values`, one transaction a day, SQLite WAL with
synchronous=FULL on the machine's disk). Returns ``{"taf7_values_per_s": values / second}``.

Run on its own: ``python tools/bench_tariff.py``.
"""

from __future__ import annotations

import json
import time

from smgw.tariff.model import Reading
from smgw.tariff.profile import parse_profile
from smgw.tariff.replay import replay

_PROFILE = """
[profile]
kind = "evaluation"
name = "bench-taf2"
taf = 2
usage_point = "DE0000000000000000000000000000001"
consumer = "LV1"
supplier = "Bench"
recipients = ["emt1"]
valid_from = "2026-01-01T00:00:00+01:00"
billing_period = "month"

[[channels]]
meter = "0a01454d4800000a1b2c"
obis = "1-0:1.8.0"

[[stages]]
number = 1
name = "HT"

[[stages]]
number = 2
name = "NT"

[[switching]]
days = ["all"]
time = "00:00"
stage = 2

[[switching]]
days = ["weekdays"]
time = "06:00"
stage = 1

[[switching]]
days = ["weekdays"]
time = "22:00"
stage = 2
"""

# 2026-01-01T00:00:00+01:00 .. 2027-01-01T00:00:00+01:00: 365 days, one hour less in March and
# one more in October = 35,040 quarter hours
_START_MS = 1_767_222_000_000
_N = 35_040


def _readings() -> list[Reading]:
    out = []
    v = 1_000_000
    for i in range(_N + 1):
        out.append(Reading("0a01454d4800000a1b2c", "1-0:1.8.0", _START_MS + i * 900_000, v))
        v += 40 + (i * 7919) % 90
    return out


def bench_taf2_replay_year() -> dict[str, float]:
    profile = parse_profile(_PROFILE, "bench")
    readings = _readings()
    t0 = time.perf_counter()
    result = replay(profile, readings)
    elapsed = time.perf_counter() - t0
    assert len(result["periods"]) == 12, len(result["periods"])
    total = sum(v["value"] for p in result["periods"] for v in p["values"] if v["kind"] == "sum")
    assert total == readings[-1].value - readings[0].value, "stages do not add up"
    return {"taf2_replay_year_s": round(elapsed, 3)}


_TAF7 = """
[profile]
kind = "evaluation"
name = "bench-taf7"
taf = 7
usage_point = "DE0000000000000000000000000000007"
consumer = "LV1"
supplier = "Bench"
recipients = ["emt1"]
valid_from = "2026-01-01T00:00:00+01:00"
registration_period_s = 900

[[channels]]
meter = "0a01454d4800000a1b2c"
obis = "1-0:1.8.0"

[[channels]]
meter = "0a01454d4800000a1b2c"
obis = "1-0:2.8.0"
"""


def bench_taf7_values(days: int = 30) -> dict[str, float]:
    import tempfile
    from pathlib import Path

    from smgw.security.keystore import KeyStore
    from smgw.security.valuesig import sign_value
    from smgw.store import Store
    from smgw.tariff.cases import form
    from smgw.tariff.store import TariffStore

    profile = parse_profile(_TAF7, "bench")
    imp, exp = profile.channels
    day_ms = 86_400_000
    with tempfile.TemporaryDirectory(prefix="smgw-bench-taf7-") as tmp:
        ks = KeyStore.load_or_create(Path(tmp) / "pki", "EBENCH0000000001")
        store = Store.open(Path(tmp) / "smgw.db")
        tariff = TariffStore(store)
        n = 0
        t0 = time.perf_counter()
        for d in range(days):
            a = _START_MS + d * day_ms
            pts = range(-1, 97)
            readings = {
                imp: [Reading(imp.meter, imp.obis, a + i * 900_000 - 1500, 10_000_000 + 100 * (
                    d * 96 + i), -1) for i in pts],
                exp: [Reading(exp.meter, exp.obis, a + i * 900_000 - 1500, 5_000_000 + 30 * (
                    d * 96 + i), -1) for i in pts]}
            res = form(profile, readings, a, a + day_ms)
            signed = [(v, sign_value(ks.sig, v, ks.gateway_id)) for v in res.values]
            with store._write("bench taf7") as conn:
                n += tariff.put_values(signed, a + day_ms, conn=conn)
        elapsed = time.perf_counter() - t0
        store.close()
    assert n == days * 96 * 2, n
    return {"taf7_values_per_s": round(n / elapsed, 1)}


if __name__ == "__main__":
    print(json.dumps({**bench_taf2_replay_year(), **bench_taf7_values()}))
