"""Benchmarks of the HAN consumer portal (smgw.han.portal), for ``make bench``.

``bench_portal_period_ms()``: a store with 15 months of 15-minute readings of one two-way meter
(import and export registers, 43,800 instants), the derived values a TAF 7 and a TAF 1 usage
point formed from them (smgw.tariff.cases.form: 87,600 quarter-hour values, 15 monthly billing
periods), the logbooks, the key store; the HAN server with the portal on 127.0.0.1 over TLS.
One client (aiohttp, HTTP Digest, one kept-alive connection, session cookie) requests

* the TAF 1 billing-period page of the newest month (registers, chart of the last 12 periods,
  its table): ``han_portal_period_ms``, p95 of 100 requests after 5 warm-up requests;
* the TAF 7 page of one day in the middle of the 15 months (96 quarter hours of two registers,
  two charts, the table): ``han_portal_taf7_day_ms``, the same way.

The store is built directly (bulk inserts in one transaction, no fsync per value), which takes
about 10-20 s; what is measured is the request alone.

Run on its own: ``python tools/bench_han.py``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[1]
GATEWAY_ID = "EBENCH0000000001"
METER = "0a0153494d0100003039"
BERLIN = ZoneInfo("Europe/Berlin")
GRID_MS = 900_000


def _midnight(d: dt.date) -> int:
    return int(dt.datetime(d.year, d.month, d.day, tzinfo=BERLIN).timestamp() * 1000)


def _p95(samples: list[float]) -> float:
    return round(statistics.quantiles(samples, n=20)[-1] * 1000, 2)


def build_store(data_dir: Path, months: int, now_ms: int) -> dict[str, Any]:
    """The bench store: readings, profiles and derived values of ``months`` months up to the
    start of the current month."""
    from smgw.han import demo
    from smgw.store import Store
    from smgw.tariff.cases import form
    from smgw.tariff.model import Reading
    from smgw.tariff.periods import billing_periods
    from smgw.tariff.profile import parse_profile
    from smgw.tariff.store import TariffStore

    today = dt.datetime.fromtimestamp(now_ms / 1000, BERLIN).date()
    m = today.year * 12 + today.month - 1 - months
    first = dt.date(m // 12, m % 12 + 1, 1)
    start = _midnight(first)
    end = _midnight(today.replace(day=1))
    epoch = start
    meter = demo._meter(METER)
    store = Store.open(data_dir / "smgw.db")
    rowid = store.add_meter(METER, "lmn-wired", "sml", ["1-0:1.8.0", "1-0:2.8.0"], 2)
    records, rows = [], []
    imp_r: list[Reading] = []
    exp_r: list[Reading] = []
    for k in range((end - start) // GRID_MS + 1):
        t = start + k * GRID_MS
        capture = t - (k % 4) * 1000
        a, b = meter.registers_at((capture - epoch) / 1000)
        records.append((k + 1, 0x42454E43, k + 1, 1, None, capture, capture, b"", None))
        rows.append((rowid, k + 1, "1-0:1.8.0", str(a), -1, "Wh", 0x182, capture, capture, 1))
        rows.append((rowid, k + 1, "1-0:2.8.0", str(b), -1, "Wh", 0x182, capture, capture, 1))
        imp_r.append(Reading(METER, "1-0:1.8.0", capture, a, -1, "Wh", 0x182))
        exp_r.append(Reading(METER, "1-0:2.8.0", capture, b, -1, "Wh", 0x182))
    with store._write("bench readings") as conn:
        conn.executemany("INSERT INTO records(id, stream, rid, src, tick_ms, captured_ms, "
                         "received_ms, body, meta) VALUES (?,?,?,?,?,?,?,?,?)", records)
        conn.executemany("INSERT INTO readings(meter, record, obis, raw, scaler, unit, status, "
                         "capture_ms, receipt_ms, time_valid) VALUES (?,?,?,?,?,?,?,?,?,?)",
                         rows)
    tariff = TariffStore(store)
    texts = demo.demo_profile_texts(METER, "LV1", start, start)
    p7, p1 = (parse_profile(t, "bench") for t in texts)
    for p, t in ((p7, texts[0]), (p1, texts[1])):
        tariff.put_profile(p, t, now_ms)
    values = []
    for a, b in billing_periods(p1, start, end):
        res = form(p1, {p1.channels[0]: imp_r}, a, b)
        values += [(v, None) for v in res.values]
    readings = {p7.channels[0]: imp_r, p7.channels[1]: exp_r}
    for a, b in billing_periods(p1, start, end):     # TAF 7 formed month by month
        values += [(v, None) for v in form(p7, readings, a, b).values]
    with store._write("bench values") as conn:
        tariff.put_values(values, now_ms, conn=conn)
    n7 = len(tariff.values(p7.name))
    periods = tariff.periods(p1.name)
    if n7 < 2 * (end - start) // GRID_MS - 8 or len(periods) != months:
        raise RuntimeError(f"the bench store is incomplete: {n7} TAF 7 values, "
                           f"{len(periods)} TAF 1 periods")
    mid = dt.datetime.fromtimestamp((start + end) / 2000, BERLIN).date()
    day = (_midnight(mid), _midnight(mid + dt.timedelta(days=1)))
    return {"store": store, "tariff": tariff, "taf1": p1.name, "taf7": p7.name,
            "period": periods[-1], "day": day, "values": n7}


async def start_server(data_dir: Path, built: dict[str, Any], face: Any) -> tuple[Any, ...]:
    """The HAN server over the bench store with one face and the consumer ``demo``/``demo``:
    (server, logbooks, host, port, client SSL context). Shared by the portal and M2M benches."""
    from smgw.han.accounts import Accounts
    from smgw.han.data import HanData
    from smgw.han.server import HanServer, HanSettings
    from smgw.logbook.chain import Signer
    from smgw.logbook.store import Logbooks
    from smgw.security.keystore import KeyStore

    now = lambda: time.time_ns() // 1_000_000  # noqa: E731
    ks = KeyStore.load_or_create(data_dir / "pki", GATEWAY_ID)
    logbooks = Logbooks.open(data_dir / "logs.db", GATEWAY_ID, Signer.generate(GATEWAY_ID),
                             clock=now)
    info = {"gateway_id": GATEWAY_ID, "firmware": [("bench", "0", "")], "time_valid": True,
            "opstate": "normal"}
    data = HanData(built["store"], built["tariff"], logbooks, ks, lambda: info,
                   lambda who: {"ok": True}, now)
    accounts = Accounts.open(data_dir, GATEWAY_ID)
    accounts.add("demo", "consumer", "demo", consumer="LV1")
    server = HanServer(HanSettings(listen=(("127.0.0.1", 0),)), data, accounts, ks,
                       lambda *a, **k: None, now)
    server.add_face(face)
    (host, port), *_ = await server.start()
    return server, logbooks, host, port, ssl.create_default_context(
        cadata=ks.han.cert_pem().decode())


async def _measure(data_dir: Path, built: dict[str, Any], requests: int) -> dict[str, float]:
    import aiohttp

    from smgw.han import portal

    server, logbooks, host, port, ctx = await start_server(data_dir, built, portal.register)
    out: dict[str, float] = {}
    try:
        async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=ctx, limit=1),
                middlewares=(aiohttp.DigestAuthMiddleware("demo", "demo"),)) as s:
            pages = {
                "han_portal_period_ms": "/messwerte/{taf1}/{period[0]}-{period[1]}",
                "han_portal_taf7_day_ms": "/messwerte/{taf7}/{day[0]}-{day[1]}",
            }
            for metric, pattern in pages.items():
                url = f"https://{host}:{port}" + pattern.format(**built)
                times = []
                for i in range(requests + 5):
                    t0 = time.perf_counter()
                    async with s.get(url) as r:
                        body = await r.read()
                    dt_s = time.perf_counter() - t0
                    if r.status != 200 or b"<svg" not in body:
                        raise RuntimeError(f"{url}: HTTP {r.status}")
                    if i >= 5:
                        times.append(dt_s)
                out[metric] = _p95(times)
    finally:
        await server.stop()
        logbooks.close()
    return out


def bench_portal_period_ms(months: int = 15, requests: int = 100) -> dict[str, float]:
    """``{"han_portal_period_ms": p95 ms, "han_portal_taf7_day_ms": p95 ms}`` (module doc)."""
    logging.getLogger("smgw").setLevel(logging.ERROR)
    (REPO / "bench").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=REPO / "bench", prefix="hanbench-") as tmp:
        d = Path(tmp)
        built = build_store(d, months, time.time_ns() // 1_000_000)
        try:
            return asyncio.run(_measure(d, built, requests))
        finally:
            built["store"].close()


METRICS = {
    "han_portal_period_ms": "HAN portal: TAF 1 billing-period page, 15 months in the store "
                            "(p95, ms)",
    "han_portal_taf7_day_ms": "HAN portal: TAF 7 day page (96 quarter hours, 2 registers), "
                              "15 months in the store (p95, ms)",
}


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "host"))
    print(json.dumps(bench_portal_period_ms(), indent=2))
