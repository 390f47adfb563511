"""IF_GW_CON M2M JSON (smgw.han.m2m) over real TLS, spoken the way the existing clients speak it
(han-clients.md §B): theben-conexa-smgw with aiohttp's DigestAuthMiddleware and its 307 flow,
httpx following the redirect with the same Authorization, evcc's new handshake per request,
ha-ppc-smgw forcing MD5, raw values in 0.1 Wh, and a role matrix."""

from __future__ import annotations

import json
from decimal import Decimal

import aiohttp
import pytest

from fixtures_faces import (ALICE, BOB, GRID_MS, PARTIES, TECH_PASSWORD, TECH_USER, make_world,
                            serve)
from hankit import Digest, digest_request, run
from smgw.han import cosem, m2m
from smgw.security import valuesig

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def world(tmp_path_factory, keystore):
    w = make_world(tmp_path_factory.mktemp("m2m-world"), keystore)
    yield w
    w.close()


def endpoint(user: str) -> str:
    return f"/smgw/m2m/{user}.sm/json"


async def call(s, http, auth, user, body, **kw):
    r = await digest_request(http, "POST", s.url(endpoint(user)), auth, json=body, **kw)
    text = await r.text()
    return r, (json.loads(text) if r.headers.get("Content-Type") == "application/json"
               else text)


def assert_strings(o, path="$"):
    """Every scalar is a JSON string; only ``signature`` may be null."""
    if isinstance(o, dict):
        for k, v in o.items():
            if k == "signature" and v is None:
                continue
            assert_strings(v, f"{path}.{k}")
    elif isinstance(o, list):
        for i, v in enumerate(o):
            assert_strings(v, f"{path}[{i}]")
    else:
        assert isinstance(o, str), f"{path} is {o!r}, not a string"


# ------------------------------------------------------------------ documents (pure)


def test_derived_registers_follow_the_register_naming(world):
    p7 = world.tariff.profile(ALICE.taf7).profile
    p1 = world.tariff.profile(ALICE.taf1).profile
    assert m2m.derived_registers(p7) == ["1-0:1.8.0", "1-0:2.8.0"]
    assert m2m.derived_registers(p1) == ["1-0:1.8.1", "1-0:1.8.0"]


def test_user_info_document_orders_taf7_first_and_uses_strings(world):
    now = world.now_ms()
    points = [(world.tariff.profile(n), [(1, 2)]) for n in (ALICE.taf1, ALICE.taf7)]
    doc = m2m.user_info_json(points, now)
    ups = doc["usage-points"]
    assert [u["taf-number"] for u in ups] == ["7", "1"]
    assert ups[0]["usage-point-id"] == f"{ALICE.taf7}.sm"
    assert ups[0]["taf-state"] == "running"
    assert ups[0]["meter"] == [{"meter-id": ALICE.meter}]
    assert ups[0]["metering-point-id"] == ALICE.usage_point
    assert_strings(doc)


# ------------------------------------------------------------------ the clients


def test_theben_conexa_smgw_flow(world, tmp_path):
    """theben-conexa-smgw: DigestAuthMiddleware, POST /smgw/m2m without body, exactly 307 with
    a path Location, then smgw-info, user-info, usage-point-info (databases[0]), readings."""

    async def main():
        async with serve(world, tmp_path) as s:
            conn = aiohttp.TCPConnector(ssl=False)
            mw = aiohttp.DigestAuthMiddleware(ALICE.user, ALICE.password)
            async with aiohttp.ClientSession(connector=conn, middlewares=(mw,)) as http:
                base = f"https://127.0.0.1:{s.port}"
                r = await http.post(base + "/smgw/m2m", headers={"content-type":
                                                                 "application/json"},
                                    allow_redirects=False)
                assert r.status == 307
                loc = r.headers["Location"]
                assert loc == "/smgw/m2m/alice.sm/json"
                url = base + loc

                async def post(body):
                    resp = await http.post(url, json=body)
                    assert resp.status == 200, await resp.text()
                    assert resp.headers["Content-Type"] == "application/json"
                    return await resp.json()

                info = await post({"method": "smgw-info"})
                assert info["version"] and info["smgw-info"]["smgw-id"] == "eopn0000000001"
                assert len(info["smgw-info"]["firmware-info"]["hash"]) == 64
                assert f'{info["smgw-info"]["firmware-info"]["hash"]:.8}'
                users = (await post({"method": "user-info"}))["user-info"]["usage-points"]
                chosen = None
                for up in users:           # the library's selection rule
                    if up["taf-state"] == "archive":
                        continue
                    if up["taf-number"] == "7":
                        chosen = up
                        break
                    if up["taf-number"] == "1":
                        chosen = up
                assert chosen["usage-point-id"] == f"{ALICE.taf7}.sm"
                assert chosen["usage-point-name"] and chosen["start-time"]
                upi = (await post({"method": "usage-point-info", "usage-point-id":
                                   chosen["usage-point-id"], "database": "origin"}))
                db = upi["usage-point-info"]["databases"][0]
                assert db["database"] == "origin"
                scaler = {}
                for ch in db["channels"]:
                    assert int(ch["unit"]) in (26, 30)
                    scaler[ch["obis"]] = int(ch["scaler"])
                rd = await post({"method": "readings", "usage-point-id":
                                 chosen["usage-point-id"], "database": "origin",
                                 "last-reading": "true"})
                got = {}
                for ch in rd["readings"]["channels"]:
                    assert ch["obis"] in scaler
                    first = ch["readings"][0]
                    assert isinstance(first["value"], str)
                    got[ch["obis"]] = Decimal(first["value"]).scaleb(scaler[ch["obis"]])
                last = 192
                assert got == {"0100010800ff": Decimal(ALICE.tenth_wh("1-0:1.8.0", last))
                               / 10,
                               "0100020800ff": Decimal(ALICE.tenth_wh("1-0:2.8.0", last))
                               / 10}
                # what HA, ha-ppc-smgw and evcc compute: raw / 10000 = kWh
                imp = rd["readings"]["channels"][0]["readings"][0]
                assert Decimal(imp["value"]) / 10000 == Decimal(ALICE.raw("1-0:1.8.0",
                                                                          last)) / 10000

    run(main())


def test_httpx_redirect_with_the_same_authorization(world, tmp_path):
    """LorbusChris/klacol: POST /smgw/m2m/ with the method body; httpx follows the 307 and
    sends the same body with the same Authorization (uri of the root, same nonce and nc)."""

    async def main():
        async with serve(world, tmp_path) as s, s.client() as http:
            body = {"method": "readings", "usage-point-id": f"{ALICE.taf7}.sm",
                    "database": "origin", "last-reading": True}
            r = await http.post(s.url("/smgw/m2m/"), json=body, allow_redirects=False)
            assert r.status == 401
            auth = Digest(ALICE.user, ALICE.password, style="httpx")
            auth.learn(r.headers["WWW-Authenticate"])
            header = auth.header("POST", "/smgw/m2m/")
            r = await http.post(s.url("/smgw/m2m/"), json=body, allow_redirects=False,
                                headers={"Authorization": header})
            assert r.status == 307
            r = await http.post(s.url(r.headers["Location"]), json=body,
                                headers={"Authorization": header})
            assert r.status == 200
            doc = await r.json()
            assert doc["readings"]["records"] == "2"

    run(main())


def test_evcc_new_handshake_every_request_and_forced_md5(world, tmp_path):
    """evcc: every request unauthenticated first; ha-ppc-smgw answers with MD5 whatever was
    announced; a client choosing SHA-256 works too."""

    async def main():
        async with serve(world, tmp_path) as s, s.client() as http:
            for style, alg in (("httpx", None), ("httpx", "MD5"), ("httpx", "SHA-256")):
                auth = Digest(BOB.user, BOB.password, style=style, force_algorithm=alg)
                for _ in range(2):
                    r, doc = await call(s, http, auth, BOB.user, {"method": "user-info"},
                                        preemptive=False)
                    assert r.status == 200, doc
                    names = [u["usage-point-name"] for u in doc["user-info"]["usage-points"]]
                    assert names == [BOB.taf7, BOB.taf1]

    run(main())


# ------------------------------------------------------------------ readings


@pytest.mark.parametrize("party", PARTIES, ids=lambda p: p.user)
def test_readings_history_in_tenth_wh_newest_first(world, tmp_path, party):
    async def main():
        async with serve(world, tmp_path) as s, s.client() as http:
            auth = Digest(party.user, party.password)
            body = {"method": "readings", "usage-point-id": f"{party.taf7}.sm",
                    "database": "origin", "fromtime": cosem.iso_z(world.grid(0)),
                    "totime": cosem.iso_z(world.grid(96)), "last-reading": "false"}
            r, doc = await call(s, http, auth, party.user, body)
            assert r.status == 200, doc
            assert_strings(doc)
            chans = doc["readings"]["channels"]
            assert [c["obis"] for c in chans] == ["0100010800ff", "0100020800ff"]
            assert doc["readings"]["records"] == str(2 * 96)
            for c, obis in zip(chans, ("1-0:1.8.0", "1-0:2.8.0")):
                ks = list(range(96, 0, -1))          # fromtime < capture <= totime, newest first
                assert [e["value"] for e in c["readings"]] == [
                    str(party.tenth_wh(obis, k)) for k in ks]
                assert [e["target-time"] for e in c["readings"]] == [
                    cosem.iso_z(world.grid(k)) for k in ks]
                first = c["readings"][0]
                assert first["capture-time"] == cosem.iso_z(world.capture(96))
                assert first["owner-number"] == f"{party.meter}.sm"
                assert len(first["cosem-status"]) == 16 and len(first["meter-status"]) == 8
                assert first["smgw-status"] == "a0000000" and first["signature"] is None

    run(main())


def test_readings_range_rules(world, tmp_path):
    async def main():
        async with serve(world, tmp_path) as s, s.client() as http:
            auth = Digest(ALICE.user, ALICE.password)
            up = f"{ALICE.taf7}.sm"
            t = world.end_ms
            cases = [
                ({"fromtime": cosem.iso_z(t - 31 * 86_400_000), "totime": cosem.iso_z(t)}, 200),
                ({"fromtime": cosem.iso_z(t - 31 * 86_400_000 - 3_600_000),
                  "totime": cosem.iso_z(t)}, 200),      # 31 local days over the DST change
                ({"fromtime": cosem.iso_z(t - 31 * 86_400_000 - 3_601_000),
                  "totime": cosem.iso_z(t)}, 400),
                ({"fromtime": cosem.iso_z(t), "totime": cosem.iso_z(t - 1000)}, 400),
                ({"totime": cosem.iso_z(t)}, 400),
                ({"fromtime": "gestern", "totime": cosem.iso_z(t)}, 400),
                ({"last-reading": "vielleicht"}, 400),
                ({"database": "daily", "last-reading": True}, 400),
            ]
            for extra, status in cases:
                r, doc = await call(s, http, auth, ALICE.user,
                                    {"method": "readings", "usage-point-id": up, **extra})
                assert r.status == status, (extra, doc)
                if status == 400:
                    assert r.headers["Content-Type"] == "application/json"
                    assert doc["error"] and doc["method"] == "readings"
            # the error names the parameter at fault
            r, doc = await call(s, http, auth, ALICE.user, {
                "method": "readings", "usage-point-id": up, "fromtime": "gestern",
                "totime": cosem.iso_z(t)})
            assert "fromtime" in doc["error"]

    run(main())


def test_channel_filter_and_derived_database(world, tmp_path, keystore):
    async def main():
        async with serve(world, tmp_path) as s, s.client() as http:
            auth = Digest(ALICE.user, ALICE.password)
            r, doc = await call(s, http, auth, ALICE.user, {
                "method": "readings", "usage-point-id": f"{ALICE.taf7}.sm",
                "database": "origin", "last-reading": "true",
                "channels": [{"channel": "0100020800ff"}]})
            assert [c["obis"] for c in doc["readings"]["channels"]] == ["0100020800ff"]
            # derived: the TAF 7 register readings with the gateway's value signatures
            r, doc = await call(s, http, auth, ALICE.user, {
                "method": "readings", "usage-point-id": f"{ALICE.taf7}.sm",
                "database": "derived", "fromtime": cosem.iso_z(world.grid(90)),
                "totime": cosem.iso_z(world.grid(96))})
            assert r.status == 200, doc
            stored = {(sv.value.register, sv.value.target_ms): sv
                      for sv in world.tariff.values(ALICE.taf7, world.grid(91),
                                                    world.grid(96) + 1)}
            n = 0
            for c in doc["readings"]["channels"]:
                for e in c["readings"]:
                    sv = stored[(cosem.obis_dotted(c["obis"]),
                                 cosem.parse_iso(e["target-time"]))]
                    assert e["signature"] == sv.signature.hex()
                    assert valuesig.verify_value(keystore.sig.cert, sv.value,
                                                 "EOPN0000000001", bytes.fromhex(e["signature"]))
                    assert e["value"] == str(cosem.normalise(sv.value.value, sv.value.scaler,
                                                             sv.value.unit)[0])
                    n += 1
            assert n == 12
            # TAF 1: the register of the last complete month, in 0.1 Wh
            r, doc = await call(s, http, auth, ALICE.user, {
                "method": "readings", "usage-point-id": f"{ALICE.taf1}.sm",
                "database": "derived", "last-reading": True})
            c, boundary = doc["readings"]["channels"]
            assert (c["obis"], boundary["obis"]) == ("0100010801ff", "0100010800ff")
            assert len(c["readings"]) == 1 and c["readings"][0]["owner-number"] == \
                f"{ALICE.taf1}.sm"
            m0, m1 = world.billing_period
            k0, k1 = (m0 - world.start_ms) // GRID_MS, (m1 - world.start_ms) // GRID_MS
            assert c["readings"][0]["value"] == str(ALICE.tenth_wh("1-0:1.8.0", k1)
                                                    - ALICE.tenth_wh("1-0:1.8.0", k0))
            assert c["readings"][0]["target-time"] == cosem.iso_z(m1)

    run(main())


@pytest.mark.parametrize("party", PARTIES, ids=lambda p: p.user)
def test_every_channel_has_a_reading_listed_in_usage_point_info(world, tmp_path, party):
    async def main():
        async with serve(world, tmp_path) as s, s.client() as http:
            auth = Digest(party.user, party.password)
            r, ui = await call(s, http, auth, party.user, {"method": "user-info"})
            for up in ui["user-info"]["usage-points"]:
                upid = up["usage-point-id"]
                r, upi = await call(s, http, auth, party.user,
                                    {"method": "usage-point-info", "usage-point-id": upid})
                assert_strings(upi)
                dbs = upi["usage-point-info"]["databases"]
                assert dbs[0]["database"] == "origin"
                for db in dbs:
                    listed = {c["obis"] for c in db["channels"]}
                    assert all(c["unit"] == "30" and c["scaler"] == "-1"
                               for c in db["channels"])
                    r, rd = await call(s, http, auth, party.user, {
                        "method": "readings", "usage-point-id": upid,
                        "database": db["database"], "last-reading": "true"})
                    chans = rd["readings"]["channels"]
                    assert chans, (upid, db["database"])
                    for c in chans:
                        assert c["readings"], c["obis"]
                        assert c["obis"] in listed

    run(main())


# ------------------------------------------------------------------ log, self-test, errors


def test_log_parameter_combinations(world, tmp_path):
    async def main():
        async with serve(world, tmp_path) as s, s.client() as http:
            auth = Digest(BOB.user, BOB.password)
            r, doc = await call(s, http, auth, BOB.user, {"method": "log"})
            assert r.status == 200
            assert_strings(doc)
            entries = doc["log"]["entries"]
            assert entries and all(e["subject-identity"] == BOB.consumer for e in entries)
            assert not any(ALICE.taf7 in e["message"] for e in entries)
            assert {e["level"] for e in entries} <= {"1", "2", "3", "4"}
            idx = [int(e["index"]) for e in entries]
            assert idx == sorted(idx)
            r, doc = await call(s, http, auth, BOB.user, {"method": "log", "count": "2"})
            assert [e["index"] for e in doc["log"]["entries"]] == [str(i) for i in idx[-2:]]
            r, doc = await call(s, http, auth, BOB.user,
                                {"method": "log", "fromindex": str(idx[1]), "count": 1})
            assert [int(e["index"]) for e in doc["log"]["entries"]] == [idx[1]]
            t1 = entries[1]["time"]
            r, doc = await call(s, http, auth, BOB.user,
                                {"method": "log", "fromtime": t1, "totime": t1})
            assert [e["index"] for e in doc["log"]["entries"]] == [entries[1]["index"]]
            for bad in ({"count": "1501"}, {"count": "0"}, {"fromindex": "1", "fromtime": t1},
                        {"totime": t1, "count": "3"}, {"fromtime": "nie"}):
                r, doc = await call(s, http, auth, BOB.user, {"method": "log", **bad})
                assert r.status == 400, bad

    run(main())


def test_self_test_started_then_refused_for_ten_minutes(world, tmp_path):
    async def main():
        async with serve(world, tmp_path) as s, s.client() as http:
            auth = Digest(ALICE.user, ALICE.password)
            r, doc = await call(s, http, auth, ALICE.user, {"method": "self-test"})
            assert r.status == 200 and doc["self-test"]["state"] == "started"
            r, doc = await call(s, http, auth, ALICE.user, {"method": "self-test"})
            assert r.status == 403 and "Selbsttest" in doc["error"]
            s.clock.advance(601)
            auth = Digest(ALICE.user, ALICE.password)
            r, doc = await call(s, http, auth, ALICE.user, {"method": "self-test"})
            assert r.status == 200
            assert any(cat == 10063 for cat, _, _ in s.emit.events)

    run(main())


def test_request_and_error_shapes(world, tmp_path):
    async def main():
        async with serve(world, tmp_path) as s, s.client() as http:
            auth = Digest(ALICE.user, ALICE.password)
            url = s.url(endpoint(ALICE.user))
            body = json.dumps({"method": "user-info"}, separators=(", ", ": ")).encode()
            for ctype in ("application/json", "application/json; charset=utf-8", None):
                hdrs = {"X-Content-Length": str(len(body)), "Accept": "application/json"}
                if ctype:
                    hdrs["Content-Type"] = ctype
                r = await digest_request(http, "POST", url, auth, data=body, headers=hdrs)
                assert r.status == 200 and r.headers["Content-Type"] == "application/json"
            for raw, status in ((b"{not json", 400), (b"[]", 400), (b"{}", 400),
                                (b'{"method": "reboot"}', 400)):
                r = await digest_request(http, "POST", url, auth, data=raw, headers=JSON)
                assert r.status == status
                assert r.headers["Content-Type"] == "application/json"
                assert (await r.json())["error"]
            r = await digest_request(http, "GET", url, auth)
            assert r.status == 405
            r, doc = await call(s, http, auth, ALICE.user, {
                "method": "usage-point-info", "usage-point-id": "gibtsnicht.sm"})
            assert r.status == 404

    run(main())


def test_no_access_while_the_han_is_switched_off(world, tmp_path):
    async def main():
        async with serve(world, tmp_path) as s, s.client() as http:
            auth = Digest(ALICE.user, ALICE.password)
            s.info["opstate"] = "minimal"
            r, doc = await call(s, http, auth, ALICE.user, {"method": "user-info"})
            assert r.status == 503 and r.headers["Retry-After"] and doc["error"]
            s.info["opstate"] = "restricted"
            r, doc = await call(s, http, auth, ALICE.user, {"method": "user-info"})
            assert r.status == 200

    run(main())


# ------------------------------------------------------------------ roles


def test_role_matrix(world, tmp_path):
    """Every method x {Alice, Bob, technician, anonymous} x own/foreign usage point."""
    methods = [
        {"method": "smgw-info"}, {"method": "user-info"}, {"method": "log"},
        {"method": "usage-point-info", "usage-point-id": "{up}"},
        {"method": "readings", "usage-point-id": "{up}", "database": "origin",
         "last-reading": "true"},
        {"method": "readings", "usage-point-id": "{up}", "database": "derived",
         "last-reading": "true"},
    ]
    roles = {"alice": (ALICE.user, ALICE.password), "bob": (BOB.user, BOB.password),
             "tech": (TECH_USER, TECH_PASSWORD), "anon": None}

    def fill(body, up):
        return {k: (v.format(up=up) if isinstance(v, str) else v) for k, v in body.items()}

    async def main():
        async with serve(world, tmp_path) as s, s.client() as http:
            for role, cred in roles.items():
                auth = Digest(*cred) if cred else None
                # the root
                if auth is None:
                    r = await http.post(s.url("/smgw/m2m"), allow_redirects=False)
                    assert r.status == 401 and "WWW-Authenticate" in r.headers
                else:
                    r = await digest_request(http, "POST", s.url("/smgw/m2m"), auth,
                                             allow_redirects=False)
                    assert r.status == (403 if role == "tech" else 307), role
                for owner in (ALICE, BOB):
                    up = f"{owner.taf7}.sm"
                    for body in methods:
                        b = fill(body, up)
                        path = endpoint(owner.user)
                        if auth is None:
                            r = await http.post(s.url(path), json=b)
                            assert r.status == 401, (role, b)
                            continue
                        r = await digest_request(http, "POST", s.url(path), auth, json=b)
                        doc = await r.json()
                        me = role == owner.user
                        if role == "tech":
                            assert r.status == 403, b
                        elif not me:
                            # another consumer's endpoint does not exist for this login
                            assert r.status == 404, (role, b, doc)
                        else:
                            assert r.status == 200, (role, b, doc)
                        # and through the own endpoint, the other's usage point is unknown
                        if role in ("alice", "bob") and not me and "usage-point-id" in b:
                            r = await digest_request(http, "POST",
                                                     s.url(endpoint(role)), auth, json=b)
                            assert r.status == 404, (role, b)
                            assert owner.meter not in await r.text()
            # nothing of Alice's in anything Bob gets
            auth = Digest(BOB.user, BOB.password)
            for body in methods:
                r = await digest_request(http, "POST", s.url(endpoint(BOB.user)), auth,
                                         json=fill(body, f"{BOB.taf7}.sm"))
                text = await r.text()
                assert ALICE.meter not in text and ALICE.taf7 not in text
                assert ALICE.usage_point not in text

    run(main())
