"""The test EMT receiver: what it checks, what it writes, and that it keeps one copy of each
message across retransmissions and its own restarts."""

from __future__ import annotations

import asyncio
import csv
import json
from dataclasses import replace

import aiohttp
import pytest

from smgw.security.testpki import TestPki
from smgw.tariff.model import (
    SMGW_ID_BITS,
    SMGW_NOT_BILLING,
    DerivedValue,
    lsb_first_hex,
    smgw_status,
)
from smgw.wan.emtserver import CSV_COLUMNS, EmtReceiver
from smgw.wan.push import PushError, client_context, push
from wanbench import APRIL_MS, GW, MARCH_MS, Env, taf1_values


def _push(env: Env, url: str, content: bytes, message_id: str = "m-1", **kw):
    args = dict(message_id=message_id, gateway_id=GW, client=env.keystore.tls,
                roots=env.keystore.roots, server_cert=env.emt.tls.cert, timeout_s=10)
    args.update(kw)
    return push(url, content, **args)


async def _post(env: Env, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """A request push() would not make (other headers), with the gateway's TLS identity."""
    ctx = client_context(env.keystore.tls, env.keystore.roots)
    async with aiohttp.ClientSession() as s:
        async with s.post(url, data=body, headers=headers, ssl=ctx) as r:
            return r.status, await r.text()


def _serve(rx: EmtReceiver, body):
    async def main():
        url = await rx.start()
        try:
            return await body(url)
        finally:
            await rx.stop()
    return asyncio.run(main())


def _rows(rx: EmtReceiver) -> list[dict[str, str]]:
    with open(rx.csv_path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_stores_a_verified_message_as_json_and_csv(env: Env) -> None:
    seen: list[dict] = []
    rx = env.receiver(on_message=seen.append)
    values = taf1_values()

    async def body(url):
        return await _push(env, url, env.message(values), message_id="taf1-march")

    assert _serve(rx, body) == 201
    assert rx.stats == {"requests": 1, "received": 1, "duplicates": 0, "rejected": 0,
                        "values": 2, "bad_signatures": 0}
    rows = _rows(rx)
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert rows[0] == {
        "message_id": "taf1-march", "profile": "taf1-lv1", "taf": "1", "register": "1-0:1.8.1",
        "owner": "taf1-lv1", "period_start": "2026-02-28T23:00:00Z",
        "period_end": "2026-03-31T22:00:00Z", "target_time": "2026-03-31T22:00:00Z",
        "capture_time": "", "value": "123456", "scaler": "0", "unit": "Wh",
        "status_fnn": "A0000000" + "20000000", "time_valid": "true", "billing": "true",
        "signature_ok": "true"}
    assert [r["register"] for r in rows] == ["1-0:1.8.1", "1-0:1.8.2"]
    doc = json.loads((rx.out_dir / "messages" / "taf1-march.json").read_text())
    assert doc["gateway_id"] == GW and doc["n_values"] == 2 and doc["bad_signatures"] == 0
    assert "CN=" + GW in doc["signer"] and len(doc["values"]) == 2
    assert doc["values"][1]["sources"] == ["1emh0011261482"]
    assert [s["message_id"] for s in seen] == ["taf1-march"]


def test_duplicates_are_acknowledged_once_stored_also_after_a_restart(env: Env) -> None:
    content = env.message()

    async def twice(url):
        return [await _push(env, url, content), await _push(env, url, content)]

    assert _serve(env.receiver(), twice) == [201, 200]
    rx = env.receiver()  # same out_dir: a restarted EMT

    async def once(url):
        return await _push(env, url, content)

    assert _serve(rx, once) == 200
    assert rx.stats["duplicates"] == 1 and rx.stats["received"] == 0
    assert len(_rows(rx)) == 2
    assert rx.received() == [(GW, "m-1")]


def test_value_signatures_are_checked_one_by_one(env: Env) -> None:
    good, tampered, unsigned = taf1_values(n=3)
    info = DerivedValue(profile="taf1-lv1", taf=1, register="1-0:16.7.0", owner="taf1-lv1",
                        period_start_ms=MARCH_MS, period_end_ms=APRIL_MS, target_ms=APRIL_MS,
                        value=4200, scaler=-1, unit="W", billing=False, kind="mean",
                        status=smgw_status(billing=False))
    pairs = env.signed([good, tampered])
    pairs[1] = (replace(tampered, value=tampered.value + 1), pairs[1][1])  # value altered
    pairs += [(unsigned, None), (info, None)]
    rx = env.receiver()

    async def body(url):
        return await _push(env, url, env.message(pairs=pairs))

    assert _serve(rx, body) == 201  # taken: the EMT must see what it got
    assert [r["signature_ok"] for r in _rows(rx)] == ["true", "false", "false", ""]
    assert rx.stats["bad_signatures"] == 2 and rx.stats["values"] == 4
    # the SMGW word of the informative value says "not for billing" (bit 1; LSB first: 0x40..)
    assert _rows(rx)[3]["status_fnn"][:8] == lsb_first_hex(SMGW_ID_BITS | SMGW_NOT_BILLING) \
        == "E0000000"


def test_cms_from_elsewhere_is_refused(env: Env) -> None:
    other_pki = TestPki.create(env.tmp / "other-pki")
    stranger = other_pki.issue_triple(GW)           # same name, other PKI
    other_gw = env.keystore.issue_emt("EOPN0000000002")  # same PKI, another gateway
    other_emt = env.keystore.issue_emt("emt2")
    cases = {
        "signer of another PKI": env.message(signer=stranger.sig),
        "signer is another gateway": env.message(signer=other_gw.sig),
        "encrypted for another EMT": env.message(recipient=other_emt.enc),
    }
    rx = env.receiver()

    async def body(url):
        out = {}
        for i, (name, content) in enumerate(cases.items()):
            with pytest.raises(PushError) as ei:
                await _push(env, url, content, message_id=f"m-{i}")
            out[name] = ei.value
        with pytest.raises(PushError) as ei:
            await _push(env, url, b"\x30\x03\x02\x01\x01", message_id="garbage")
        out["garbage"] = ei.value
        return out

    got = _serve(rx, body)
    assert {k: e.status for k, e in got.items()} == {
        "signer of another PKI": 403, "signer is another gateway": 403,
        "encrypted for another EMT": 403, "garbage": 400}
    assert "not by " + GW in str(got["signer is another gateway"])
    assert not any(e.retryable for e in got.values())
    assert rx.stats["rejected"] == 4 and rx.stats["received"] == 0
    assert _rows(rx) == [] and list((rx.out_dir / "messages").iterdir()) == []


def test_bad_headers_are_400(env: Env) -> None:
    content = env.message()
    good = {"Content-Type": "application/pkcs7-mime", "X-SMGW-Id": GW,
            "X-SMGW-Message-Id": "m-1"}
    rx = env.receiver()

    async def body(url):
        return [
            await _post(env, url, content, {**good, "Content-Type": "application/json"}),
            await _post(env, url, content, {k: v for k, v in good.items()
                                            if k != "X-SMGW-Message-Id"}),
            await _post(env, url, content, {**good, "X-SMGW-Message-Id": "../x"}),
            await _post(env, url, b"", good),
            await _post(env, url, content, good),
        ]

    got = _serve(rx, body)
    assert [s for s, _ in got] == [400, 400, 400, 400, 201]
    assert "Content-Type application/json" in got[0][1]


def test_a_message_stored_but_not_acknowledged_comes_again_as_duplicate(env: Env) -> None:
    rx = env.receiver()
    content = env.message()

    async def body(url):
        rx.drop_connection_next(1, after_store=True)
        with pytest.raises(PushError) as ei:
            await _push(env, url, content)
        return ei.value.retryable, await _push(env, url, content)

    assert _serve(rx, body) == (True, 200)
    assert len(_rows(rx)) == 2 and rx.stats["received"] == 1


def test_rows_of_an_unacknowledged_message_are_cut_on_restart(env: Env) -> None:
    """A crash after the CSV append but before the message id was recorded: the rows go, the
    gateway sends the message again, and the rows are there once."""
    rx = env.receiver()
    first, second = env.message(), env.message(taf1_values(profile="taf1-lv2"))

    async def body(url):
        return await _push(env, url, first, message_id="first")

    assert _serve(rx, body) == 201
    good = rx.csv_path.read_bytes()
    with open(rx.csv_path, "ab") as f:     # rows of "second" from the crashed attempt
        f.write(b"second,taf1-lv2,1,1-0:1.8.1,taf1-lv2,2026-02-28T23:00:00Z,partial")
    rx = env.receiver()

    async def again(url):
        return await _push(env, url, second, message_id="second")

    assert _serve(rx, again) == 201
    data = rx.csv_path.read_bytes()
    assert data.startswith(good) and data.count(b"second,") == 2
    assert [r["message_id"] for r in _rows(rx)] == ["first", "first", "second", "second"]
