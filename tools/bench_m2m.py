"""Benchmark of the IF_GW_CON M2M face (smgw.han.m2m), for ``make bench``.

``bench_han_m2m_readings_ms()``: the store of ``tools/bench_han.py`` with one month of
15-minute readings of one two-way meter (import and export) and the TAF 7 / TAF 1 usage points
formed from them; the HAN server with the M2M face on 127.0.0.1 over TLS. One client (aiohttp
with ``DigestAuthMiddleware`` like theben-conexa-smgw, one kept-alive connection) requests

* ``readings`` of the TAF 7 usage point, database ``origin``, the whole month
  (``fromtime``/``totime``, about 2 x 2,900 values): ``han_m2m_readings_ms``, p95 of 100
  requests after 5 warm-up requests;
* ``readings`` with ``last-reading`` (what Home Assistant and evcc poll):
  ``han_m2m_last_reading_ms``, the same way.

Run on its own: ``python tools/bench_m2m.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


async def _measure(data_dir: Path, built: dict[str, Any], requests: int) -> dict[str, float]:
    import aiohttp

    from bench_han import _p95, start_server
    from smgw.han import cosem, m2m

    server, logbooks, host, port, ctx = await start_server(data_dir, built, m2m.register)
    a, b = built["period"]
    up = f"{built['taf7']}.sm"
    bodies = {
        "han_m2m_readings_ms": {"method": "readings", "usage-point-id": up,
                                "database": "origin", "fromtime": cosem.iso_z(a),
                                "totime": cosem.iso_z(b)},
        "han_m2m_last_reading_ms": {"method": "readings", "usage-point-id": up,
                                    "database": "origin", "last-reading": "true"},
    }
    out: dict[str, float] = {}
    try:
        async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=ctx, limit=1),
                middlewares=(aiohttp.DigestAuthMiddleware("demo", "demo"),)) as s:
            base = f"https://{host}:{port}"
            async with s.post(base + "/smgw/m2m", allow_redirects=False) as r:
                if r.status != 307:
                    raise RuntimeError(f"/smgw/m2m: HTTP {r.status}, not 307")
                url = base + r.headers["Location"]
            for metric, body in bodies.items():
                times = []
                for i in range(requests + 5):
                    t0 = time.perf_counter()
                    async with s.post(url, json=body) as r:
                        doc = await r.json()
                    dt_s = time.perf_counter() - t0
                    if r.status != 200 or not doc["readings"]["channels"]:
                        raise RuntimeError(f"{metric}: HTTP {r.status}: {doc}")
                    if i >= 5:
                        times.append(dt_s)
                out[metric] = _p95(times)
                if metric == "han_m2m_readings_ms":
                    out["han_m2m_readings_records"] = int(doc["readings"]["records"])
    finally:
        await server.stop()
        logbooks.close()
    return out


def bench_han_m2m_readings_ms(requests: int = 100) -> dict[str, float]:
    """``{"han_m2m_readings_ms": p95 ms, "han_m2m_last_reading_ms": p95 ms,
    "han_m2m_readings_records": n}`` (module doc)."""
    from bench_han import build_store

    logging.getLogger("smgw").setLevel(logging.ERROR)
    (REPO / "bench").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=REPO / "bench", prefix="m2mbench-") as tmp:
        d = Path(tmp)
        built = build_store(d, 1, time.time_ns() // 1_000_000)
        try:
            return asyncio.run(_measure(d, built, requests))
        finally:
            built["store"].close()


METRICS = {
    "han_m2m_readings_ms": "HAN IF_GW_CON: readings of one month of 15-min values, one usage "
                           "point, kept-alive TLS (p95, ms)",
    "han_m2m_last_reading_ms": "HAN IF_GW_CON: readings with last-reading (p95, ms)",
    "han_m2m_readings_records": "HAN IF_GW_CON: values in that one-month answer (count)",
}


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "host"))
    sys.path.insert(0, str(REPO / "tools"))
    print(json.dumps(bench_han_m2m_readings_ms(), indent=2))
