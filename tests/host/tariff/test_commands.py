"""Tariff control commands over a real engine and store, and the ``smgw profile`` / ``smgw tariff``
command line against a real control socket."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
from typing import Any

import pytest

from smgw.control import ControlServer
from smgw.security.keystore import KeyStore
from smgw.store import Store
from smgw.store.db import ReadingRow
from smgw.tariff import commands
from smgw.tariff.engine import TariffEngine
from smgw.tariff.store import TariffStore
from smgw.wan.outbox import Outbox

GW = "EOPN0000000001"
M1 = "0a01454d4800000001"
T0 = int(dt.datetime(2026, 1, 5, tzinfo=dt.timezone(dt.timedelta(hours=1))).timestamp() * 1000)
DAY = 86_400_000


def comm_text(emt: Any) -> str:
    return f"""
[profile]
kind = "communication"
name = "emt1"
url = "https://127.0.0.1:9443/smgw"
tls_cert = '''{emt.tls.cert_pem().decode()}'''
sig_cert = '''{emt.sig.cert_pem().decode()}'''
enc_cert = '''{emt.enc.cert_pem().decode()}'''
"""


TAF6 = f"""
[profile]
kind = "evaluation"
name = "taf6"
taf = 6
usage_point = "DE0006"
consumer = "LV1"
supplier = "Netzbetreiber"
recipients = ["emt1"]
valid_from = "2026-01-01T00:00:00+01:00"

[[channels]]
meter = "{M1}"
obis = "1-0:1.8.0"
"""


@pytest.fixture
def gw(tmp_path):
    # the socket path must stay short (AF_UNIX)
    data = tmp_path / "d"
    store = Store.open(data / "smgw.db")
    ks = KeyStore.load_or_create(tmp_path / "pki", GW)
    emt = ks.issue_emt("emt1")
    now = [T0 + 3 * DAY + 3_600_000]
    engine = TariffEngine(store, TariffStore(store), Outbox(store), ks,
                          lambda cat, params, status="successful": None, lambda: now[0])
    row = store.add_meter(M1, "lmn-wired", "sml", [], 60)
    t = T0 - 3_600_000
    while t <= now[0]:
        store.put_record(row, t // 1000, 0, None, t, t, b"f",
                         readings=[ReadingRow(row, "1-0:1.8.0", t // 60_000, 0, "Wh", None)])
        t += 3_600_000
    files = tmp_path / "profiles"
    files.mkdir()
    (files / "emt1.toml").write_text(comm_text(emt))
    (files / "taf6.toml").write_text(TAF6)
    yield data, engine, files
    store.close()


def test_handlers(gw):
    data, engine, files = gw
    h = commands.handlers(engine)
    with pytest.raises(ValueError, match="text"):
        h["profile-load"]({})
    assert h["profile-load"]({"path": str(files / "emt1.toml")})["kind"] == "communication"
    res = h["profile-load"]({"text": TAF6, "source": "taf6.toml"})
    assert (res["name"], res["taf"], res["channels"]) == ("taf6", 6, [f"{M1}/1-0:1.8.0"])
    engine.tick()
    assert [p["name"] for p in h["profiles"]({})["profiles"]] == ["emt1", "taf6"]
    vals = h["tariff-values"]({"profile": "taf6", "from": "2026-01-06", "to": "2026-01-08"})
    assert [v["target_ms"] for v in vals["values"]] == [T0 + DAY, T0 + 2 * DAY]
    assert all(v["signature"] and v["billing"] for v in vals["values"])
    assert h["tariff-values"]({"profile": "taf6", "limit": 1})["values"][0]["target_ms"] == T0
    with pytest.raises(ValueError, match="limit"):
        h["tariff-values"]({"profile": "taf6", "limit": 0})
    with pytest.raises(ValueError, match="ISO 8601"):
        h["tariff-values"]({"profile": "taf6", "from": "yesterday"})
    with pytest.raises(ValueError, match="no evaluation profile"):
        h["tariff-values"]({"profile": "emt1"})
    assert h["taf6-read"]({"profile": "taf6", "day": "2026-01-06"}) == {
        "profile": "taf6", "queued": 1}
    with pytest.raises(ValueError, match="recipient"):
        h["taf6-read"]({"profile": "taf6", "day": "2026-01-06", "recipient": "emt2"})
    d = h["deliveries"]({})
    assert d["pending"] == 1 and d["messages"][0]["period_start_ms"] == T0 + DAY
    with pytest.raises(ValueError, match="recipient of taf6"):
        h["profile-remove"]({"name": "emt1"})
    assert h["profile-remove"]({"name": "taf6"}) == {"removed": "taf6"}
    with pytest.raises(ValueError, match="no profile"):
        h["profile-remove"]({"name": "taf6"})


def _cli(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="smgw")
    p.add_argument("-c", "--config")
    p.add_argument("--data-dir")
    sub = p.add_subparsers(dest="command", required=True)
    commands.add_parser(sub)
    from smgw.tariff.cli import add_parser as add_tariff

    commands.add_tariff_commands(add_tariff(sub))
    return p.parse_args(argv)


def test_command_line_through_the_control_socket(gw, capsys):
    data, engine, files = gw

    async def main() -> list[int]:
        server = ControlServer(data / "smgw.sock", commands.handlers(engine))
        await server.start()
        try:
            codes = []
            # evaluation profile first on the command line: loaded after its recipient
            for argv in (["profile", "load", str(files / "taf6.toml"), str(files / "emt1.toml")],
                         ["profile", "list"], ["tariff", "values", "taf6", "--json"],
                         ["tariff", "read", "taf6", "2026-01-07"], ["tariff", "deliveries"],
                         ["profile", "remove", "taf6"]):
                args = _cli(["--data-dir", str(data), *argv])
                codes.append(await asyncio.to_thread(args.func, args))
                if argv[:2] == ["profile", "load"]:
                    engine.tick()
            return codes
        finally:
            await server.stop()

    assert asyncio.run(main()) == [0] * 6
    out = capsys.readouterr().out
    assert "communication profile emt1 version 1" in out and "evaluation profile taf6" in out
    assert "taf6                 TAF 6  active" in out
    values = json.loads(out[out.index("{"):out.index("\n}\n") + 2])
    assert len(values["values"]) == 4
    assert "1 message(s) queued" in out and "pending=1" in out
    assert "profile taf6 removed" in out


def test_rejected_file_is_reported_and_fails(gw, capsys):
    data, engine, files = gw
    bad = files / "bad.toml"
    bad.write_text(TAF6.replace("taf = 6", "taf = 5"))

    async def main() -> int:
        server = ControlServer(data / "smgw.sock", commands.handlers(engine))
        await server.start()
        try:
            args = _cli(["--data-dir", str(data), "profile", "load", str(bad)])
            return await asyncio.to_thread(args.func, args)
        finally:
            await server.stop()

    assert asyncio.run(main()) == 1
    assert "profile.taf" in capsys.readouterr().err
