"""Logging in over real TLS the way the HAN clients do (han-clients.md §A.2, §A.3, §B.2, §B.3):
Digest header shapes, nonce reuse and new handshakes, cookies, stale nonces, wrong passwords,
lock-out, sessions (idle, absolute, logout), roles, and client certificates."""

from __future__ import annotations

import asyncio
import shutil

import aiohttp
import pytest

from hankit import (
    PASSWORD,
    TECH_PASSWORD,
    Digest,
    digest_request,
    parse_challenge,
    run,
    running_server,
)
from smgw.han.accounts import Accounts, make_client_identity


def cookie_of(r: aiohttp.ClientResponse) -> str:
    first = r.headers.getall("Set-Cookie")[0]
    name, _, rest = first.partition("=")
    assert name == "session"
    return rest.split(";", 1)[0]


# ----------------------------------------------------------------------------- login, cookie

def test_login_sets_the_session_cookie_first_and_logs_once(tmp_path, keystore):
    async def go():
        async with running_server(tmp_path, keystore) as h, h.client() as http:
            d = Digest("demo", PASSWORD)
            r = await digest_request(http, "GET", h.url("/hello"), d)
            assert r.status == 200
            body = await r.json()
            assert body["account"] == "demo" and body["new"] and body["method"] == "digest"
            sid = cookie_of(r)
            first = r.headers.getall("Set-Cookie")[0]
            for attr in ("Path=/", "Secure", "HttpOnly"):
                assert attr in first
            assert "Domain" not in first
            # the same nonce with the next nc and the cookie: same session, no Set-Cookie
            r2 = await digest_request(http, "GET", h.url("/hello"), d,
                                      headers={"Cookie": f"session={sid}"})
            assert r2.status == 200 and not (await r2.json())["new"]
            assert "Set-Cookie" not in r2.headers
            # a client that never returns the cookie joins the account's session
            r3 = await digest_request(http, "GET", h.url("/hello"), Digest("demo", PASSWORD))
            assert (await r3.json())["token"] == body["token"]
            assert cookie_of(r3) == sid
            logins = h.events.of(10228)
            assert len(logins) == 1
            assert logins[0].status == "successful"
            assert logins[0].params["consumer"] == "demo"
            assert logins[0].params["consumer_log"] == "LV1"
            assert "demo" in logins[0].text
    run(go())


@pytest.mark.parametrize("cookie", [
    "session={sid}",                         # node-red, TRON4R, curl
    "session={sid}; Cookie={sid}",           # py-ppc-smgw / legacy ha-ppc-smgw
    "session={sid};secure;HttpOnly",         # openHAB copies the Set-Cookie value
    'other=1; session="{sid}"',
])
def test_cookie_shapes_clients_send(tmp_path, keystore, cookie):
    async def go():
        async with running_server(tmp_path, keystore) as h, h.client() as http:
            d = Digest("demo", PASSWORD, style="nodered")
            r = await digest_request(http, "GET", h.url("/hello"), d)
            sid = cookie_of(r)
            token = (await r.json())["token"]
            # log the account's session out from elsewhere? no: a second session must not be
            # created -- the cookie names the session
            r2 = await digest_request(http, "POST", h.url("/hello"), d,
                                      headers={"Cookie": cookie.format(sid=sid)},
                                      data="action=meterform")
            assert r2.status == 200
            assert (await r2.json())["token"] == token
            assert "Set-Cookie" not in r2.headers
    run(go())


def test_nodered_reuses_nonce_and_cnonce_with_growing_nc(tmp_path, keystore):
    async def go():
        async with running_server(tmp_path, keystore) as h, h.client() as http:
            d = Digest("demo", PASSWORD, style="nodered")
            r = await digest_request(http, "GET", h.url("/hello"), d)
            sid = cookie_of(r)
            nonce, cnonce = d.challenge["nonce"], d.cnonce
            for n in range(2, 6):
                r = await http.post(h.url("/hello"), data=f"tkn=x&action=meterform",
                                    headers={"Authorization": d.header("POST", "/hello"),
                                             "Cookie": f"session={sid}"})
                assert r.status == 200, await r.text()
                assert r.headers["X-Echo"] == "meterform"
            assert d.challenge["nonce"] == nonce and d.cnonce == cnonce and d.nc == 5
    run(go())


def test_new_handshake_per_request_keeps_the_session_and_the_body(tmp_path, keystore):
    # TRON4R / curl --digest: unauthenticated POST (cookie and full body) -> 401 -> same POST
    async def go():
        async with running_server(tmp_path, keystore) as h, h.client() as http:
            r = await digest_request(http, "GET", h.url("/hello"), Digest("demo", PASSWORD))
            sid = cookie_of(r)
            token = (await r.json())["token"]
            for action in ("meterform", "showMeterValues", "logoutnot"):
                d = Digest("demo", PASSWORD)  # fresh: no challenge known
                r = await digest_request(http, "POST", h.url("/hello"), d,
                                         headers={"Cookie": f"session={sid}"},
                                         data=f"action={action}&tkn={token}")
                assert r.status == 200
                assert r.headers["X-Echo"] == action
                assert (await r.json())["token"] == token
            assert len(h.events.of(10228)) == 1
    run(go())


def test_first_request_may_be_a_post_without_cookie(tmp_path, keystore):
    # the bash/Python exporters start with POST action=meterform
    async def go():
        async with running_server(tmp_path, keystore) as h, h.client() as http:
            r = await digest_request(http, "POST", h.url("/hello"), Digest("demo", PASSWORD),
                                     data="action=meterform")
            assert r.status == 200 and r.headers["X-Echo"] == "meterform"
            assert cookie_of(r)
    run(go())


def test_no_content_type_and_text_plain_bodies_still_authenticate(tmp_path, keystore):
    async def go():
        async with running_server(tmp_path, keystore) as h, h.client() as http:
            for ctype in (None, "text/plain;charset=UTF-8"):
                hdrs = {"Content-Type": ctype} if ctype else {}
                r = await digest_request(http, "POST", h.url("/hello"),
                                         Digest("demo", PASSWORD), headers=hdrs,
                                         data=b"action=meterform")
                assert r.status == 200
    run(go())


# ----------------------------------------------------------------------------- failures

def test_stale_nonce_gets_401_stale_and_the_retry_works(tmp_path, keystore):
    async def go():
        async with running_server(tmp_path, keystore) as h, h.client() as http:
            d = Digest("demo", PASSWORD)
            assert (await digest_request(http, "GET", h.url("/hello"), d)).status == 200
            h.clock.advance(601)  # nonce lifetime 600 s
            r = await http.get(h.url("/hello"),
                               headers={"Authorization": d.header("GET", "/hello")})
            assert r.status == 401
            assert parse_challenge(r.headers["WWW-Authenticate"]).get("stale") == "true"
            d.learn(r.headers["WWW-Authenticate"])
            r = await http.get(h.url("/hello"),
                               headers={"Authorization": d.header("GET", "/hello")})
            assert r.status == 200
            assert not [e for e in h.events.of(10228) if e.status == "failed"]
            assert h.server.lockout.recent_failures("demo") == 0
    run(go())


def test_wrong_password_is_401_logged_failed_in_the_consumers_log(tmp_path, keystore):
    async def go():
        async with running_server(tmp_path, keystore) as h, h.client() as http:
            r = await digest_request(http, "GET", h.url("/hello"), Digest("demo", "falsch"))
            assert r.status == 401
            assert "WWW-Authenticate" in r.headers
            [ev] = h.events.of(10228)
            assert ev.status == "failed" and ev.level == "WARNING"
            assert ev.params["consumer_log"] == "LV1"
            assert "Set-Cookie" not in r.headers
    run(go())


def test_unknown_user_failure_goes_to_the_system_log_only(tmp_path, keystore):
    async def go():
        async with running_server(tmp_path, keystore) as h, h.client() as http:
            r = await digest_request(http, "GET", h.url("/hello"), Digest("mallory" * 20, "x"))
            assert r.status == 401
            [ev] = h.events.of(10228)
            assert ev.status == "failed" and ev.params["consumer_log"] == ""
            assert len(ev.params["consumer"]) == 65  # cut to 64 characters and "…"
    run(go())


def test_replayed_request_is_refused_but_not_counted(tmp_path, keystore):
    async def go():
        async with running_server(tmp_path, keystore) as h, h.client() as http:
            d = Digest("demo", PASSWORD)
            await digest_request(http, "GET", h.url("/hello"), d)
            auth = d.header("GET", "/hello")
            assert (await http.get(h.url("/hello"), headers={"Authorization": auth})).status \
                == 200
            r = await http.get(h.url("/hello"), headers={"Authorization": auth})
            assert r.status == 401
            assert h.server.lockout.recent_failures("demo") == 0
    run(go())


def test_lockout_after_five_failures_emits_10061_and_unlocks_after_five_minutes(
        tmp_path, keystore):
    async def go():
        async with running_server(tmp_path, keystore) as h, h.client() as http:
            for i in range(5):
                r = await digest_request(http, "GET", h.url("/hello"), Digest("demo", f"x{i}"))
                assert r.status == 401
                h.clock.advance(30)
            [lock] = h.events.of(10061)
            assert lock.params["consumer_log"] == "LV1"
            assert lock.level == "WARNING"
            assert len([e for e in h.events.of(10228) if e.status == "failed"]) == 5
            # the right password is refused while locked, with a reason and Retry-After
            r = await digest_request(http, "GET", h.url("/hello"), Digest("demo", PASSWORD))
            assert r.status == 401 and "gesperrt" in await r.text()
            assert 0 < int(r.headers["Retry-After"]) <= 300
            # other accounts are not affected
            r = await digest_request(http, "GET", h.url("/tech"),
                                     Digest("service", TECH_PASSWORD))
            assert r.status == 200
            h.clock.advance(300)
            r = await digest_request(http, "GET", h.url("/hello"), Digest("demo", PASSWORD))
            assert r.status == 200
            assert len(h.events.of(10061)) == 1
    run(go())


def test_lockout_of_unknown_names_too(tmp_path, keystore):
    async def go():
        async with running_server(tmp_path, keystore) as h, h.client() as http:
            for i in range(5):
                await digest_request(http, "GET", h.url("/hello"), Digest("admin", str(i)))
            [lock] = h.events.of(10061)
            assert lock.params["consumer_log"] == ""
    run(go())


def test_malformed_and_foreign_schemes_get_a_challenge(tmp_path, keystore):
    async def go():
        async with running_server(tmp_path, keystore) as h, h.client() as http:
            for auth in ('Digest username="demo', "Basic ZGVtbzpwdw==",
                         'Digest username="demo", realm="eopn0000000001"'):
                r = await http.get(h.url("/hello"), headers={"Authorization": auth})
                assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Digest ")
            assert not h.events.entries
    run(go())


# ----------------------------------------------------------------------------- sessions

def test_logout_invalidates_the_session(tmp_path, keystore):
    async def go():
        async with running_server(tmp_path, keystore) as h, h.client() as http:
            d = Digest("demo", PASSWORD)
            r = await digest_request(http, "GET", h.url("/hello"), d)
            sid, token = cookie_of(r), (await r.json())["token"]
            r = await digest_request(http, "POST", h.url("/logout"), d,
                                     headers={"Cookie": f"session={sid}"})
            assert r.status == 200 and await r.text() == "abgemeldet"
            assert "Max-Age=0" in r.headers.getall("Set-Cookie")[0]
            assert h.server.sessions.get(sid) is None
            # the old cookie is dead: a new login (logged again), the old token is gone
            r = await digest_request(http, "GET", h.url("/hello"), d,
                                     headers={"Cookie": f"session={sid}"})
            body = await r.json()
            assert body["new"] and body["previous_end"] == "logout" and body["token"] != token
            assert cookie_of(r) != sid
            assert len(h.events.of(10228)) == 2
    run(go())


def test_ended_session_asks_a_browser_face_for_the_password_again(tmp_path, keystore):
    async def go():
        async with running_server(tmp_path, keystore) as h, h.client() as http:
            d = Digest("demo", PASSWORD)
            r = await digest_request(http, "GET", h.url("/portal"), d)
            sid = cookie_of(r)
            h.clock.advance(601)  # idle
            r = await http.get(h.url("/portal"), headers={
                "Cookie": f"session={sid}", "Authorization": d.header("GET", "/portal")})
            assert r.status == 401  # stale nonce first
            d.learn(r.headers["WWW-Authenticate"])
            r = await http.get(h.url("/portal"), headers={
                "Cookie": f"session={sid}", "Authorization": d.header("GET", "/portal")})
            assert r.status == 401 and "Sitzung ist beendet" in await r.text()
            d.learn(r.headers["WWW-Authenticate"])
            r = await http.get(h.url("/portal"), headers={
                "Cookie": f"session={sid}", "Authorization": d.header("GET", "/portal")})
            assert r.status == 200 and (await r.json())["new"]
    run(go())


def test_idle_expiry_after_ten_minutes(tmp_path, keystore):
    async def go():
        async with running_server(tmp_path, keystore) as h, h.client() as http:
            d = Digest("demo", PASSWORD)
            r = await digest_request(http, "GET", h.url("/hello"), d)
            sid = cookie_of(r)
            h.clock.advance(599)
            r = await digest_request(http, "GET", h.url("/hello"), d,
                                     headers={"Cookie": f"session={sid}"})
            assert not (await r.json())["new"]
            h.clock.advance(600)
            r = await digest_request(http, "GET", h.url("/hello"), d,
                                     headers={"Cookie": f"session={sid}"})
            body = await r.json()
            assert body["new"] and body["previous_end"] == "idle"
            assert len(h.events.of(10228)) == 2
    run(go())


def test_absolute_expiry_after_48_hours_of_activity(tmp_path, keystore):
    async def go():
        async with running_server(tmp_path, keystore) as h, h.client() as http:
            r = await digest_request(http, "GET", h.url("/hello"), Digest("demo", PASSWORD))
            sid = cookie_of(r)
            for _ in range(48 * 2):  # a request every 30 minutes is not possible: 9 minutes
                h.clock.advance(540)
                s = h.server.sessions.get(sid)
                if s is None:
                    break
                h.server.sessions.touch(s)
            elapsed = 0
            while h.server.sessions.get(sid) is not None:
                h.clock.advance(540)
                elapsed += 540
                s = h.server.sessions.get(sid)
                if s is not None:
                    h.server.sessions.touch(s)
            assert h.server.sessions.ended(sid) == "absolute"
            r = await digest_request(http, "GET", h.url("/hello"), Digest("demo", PASSWORD),
                                     headers={"Cookie": f"session={sid}"})
            body = await r.json()
            assert body["new"] and body["previous_end"] == "absolute"
    run(go())


def test_roles(tmp_path, keystore):
    async def go():
        async with running_server(tmp_path, keystore) as h, h.client() as http:
            r = await digest_request(http, "GET", h.url("/tech"), Digest("demo", PASSWORD))
            assert r.status == 403
            r = await digest_request(http, "GET", h.url("/tech"),
                                     Digest("service", TECH_PASSWORD))
            assert r.status == 200
            body = await r.json()
            assert body["role"] == "technician" and body["consumer"] is None
            [ev] = h.events.of(10174)
            assert ev.params["technician"] == "service" and ev.params["consumer_log"] == ""
            r = await digest_request(http, "GET", h.url("/tech"), Digest("service", "bad"))
            assert r.status == 401
            assert h.events.of(10174)[-1].status == "failed"
            r = await http.get(h.url("/tech"))
            assert r.status == 401 and "WWW-Authenticate" in r.headers
    run(go())


def test_account_removed_while_logged_in_ends_its_session(tmp_path, keystore):
    async def go():
        async with running_server(tmp_path, keystore) as h, h.client() as http:
            r = await digest_request(http, "GET", h.url("/hello"), Digest("demo", PASSWORD))
            sid = cookie_of(r)
            Accounts.open(tmp_path, "EOPN0000000001").remove("demo")
            r = await digest_request(http, "GET", h.url("/hello"), Digest("demo", PASSWORD),
                                     headers={"Cookie": f"session={sid}"})
            assert r.status == 401
            assert h.server.sessions.ended(sid) == "account"
    run(go())


def test_account_changed_is_noticed_at_the_next_handshake(tmp_path, keystore):
    async def go():
        async with running_server(tmp_path, keystore) as h:
            async with h.client() as http:
                r = await digest_request(http, "GET", h.url("/hello"), Digest("demo", PASSWORD))
                sid = cookie_of(r)
            Accounts.open(tmp_path, "EOPN0000000001").remove("demo")
            async with h.client() as http:  # a new connection: the TLS handshake looks first
                r = await http.get(h.url("/hello"))
                assert r.status == 401
            assert h.server.sessions.ended(sid) == "account"
    run(go())


# ----------------------------------------------------------------------------- other clients

def test_aiohttp_digest_middleware_and_the_m2m_redirect(tmp_path, keystore):
    # theben-conexa-smgw: aiohttp's DigestAuthMiddleware, POST /smgw/m2m without body,
    # exactly 307, Location an absolute path; then POSTs to the location
    async def go():
        async with running_server(tmp_path, keystore) as h:
            mw = aiohttp.DigestAuthMiddleware("demo", PASSWORD)
            async with h.client(middlewares=(mw,)) as http:
                r = await http.post(h.url("/smgw/m2m"),
                                    headers={"Content-Type": "application/json"},
                                    allow_redirects=False)
                assert r.status == 307
                loc = r.headers["Location"]
                assert loc == "/smgw/m2m/demo.sm/json"
                for _ in range(3):
                    r = await http.post(h.url(loc), json={"method": "smgw-info"})
                    assert r.status == 200
                    assert (await r.json())["user"] == "demo"
            assert len(h.events.of(10228)) == 1
    run(go())


def test_httpx_style_redirect_carries_the_same_authorization(tmp_path, keystore):
    # LorbusChris / klacol: POST /smgw/m2m/ with body, follow_redirects=True: the 307 target
    # gets the same Authorization (uri of the root, same nonce and nc)
    async def go():
        async with running_server(tmp_path, keystore) as h, h.client() as http:
            d = Digest("demo", PASSWORD)
            body = '{"method":"user-info"}'
            r = await digest_request(http, "POST", h.url("/smgw/m2m/"), d, data=body,
                                     allow_redirects=False)
            assert r.status == 307
            auth = r.request_info.headers["Authorization"]
            r2 = await http.post(h.url(r.headers["Location"]), data=body,
                                 headers={"Authorization": auth})
            assert r2.status == 200 and (await r2.json())["got"] == body
            # only once
            r3 = await http.post(h.url(r.headers["Location"]), data=body,
                                 headers={"Authorization": auth})
            assert r3.status == 401
    run(go())


def test_sha256_offered_first_md5_answer_accepted(tmp_path, keystore):
    async def go():
        async with running_server(tmp_path, keystore) as h, h.client() as http:
            r = await http.get(h.url("/sha"))
            assert [parse_challenge(v)["algorithm"]
                    for v in r.headers.getall("WWW-Authenticate")] == ["SHA-256", "MD5"]
            for force in ("SHA-256", "MD5"):
                d = Digest("demo", PASSWORD, force_algorithm=force)
                r = await digest_request(http, "GET", h.url("/sha"), d)
                assert r.status == 200
            mw = aiohttp.DigestAuthMiddleware("demo", PASSWORD)
            async with h.client(middlewares=(mw,)) as http2:
                assert (await http2.get(h.url("/sha"))).status == 200
    run(go())


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_digest_and_cookie_jar(tmp_path, keystore):
    async def go():
        async with running_server(tmp_path, keystore) as h:
            jar = tmp_path / "jar"
            ca = tmp_path / "han.pem"
            ca.write_bytes(keystore.han.cert_pem())
            for _ in range(2):
                p = await asyncio.create_subprocess_exec(
                    "curl", "-sS", "--digest", "-u", f"demo:{PASSWORD}", "--cacert", str(ca),
                    "-c", str(jar), "-b", str(jar), "-d", "action=meterform",
                    h.url("/hello"), stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE)
                out, err = await p.communicate()
                assert p.returncode == 0, err
                assert b'"account": "demo"' in out
            assert "session" in jar.read_text()
            assert len(h.events.of(10228)) == 1
    run(go())


# ----------------------------------------------------------------------------- certificates

def test_client_certificate_login_over_tls(tmp_path, keystore, client_cert):
    cert, key, pem = client_cert

    async def go():
        accounts = Accounts.open(tmp_path, "EOPN0000000001")
        accounts.add("anna", "consumer", None, consumer="LV2", cert_pem=pem)
        async with running_server(tmp_path, keystore, accounts=accounts) as h:
            async with h.client(cert=cert, key=key) as http:
                for _ in range(2):
                    r = await http.get(h.url("/hello"))
                    assert r.status == 200
                    body = await r.json()
                    assert body["account"] == "anna" and body["method"] == "certificate"
            [ev] = h.events.of(10228)
            assert ev.params["consumer"] == "anna" and ev.params["method"] == "certificate"
            assert ev.params["consumer_log"] == "LV2"
            # without a certificate: Digest is asked for
            async with h.client() as http:
                assert (await http.get(h.url("/hello"))).status == 401
    run(go())


def test_unenrolled_certificate_fails_the_handshake(tmp_path, keystore, client_cert):
    cert, key, _ = client_cert

    async def go():
        async with running_server(tmp_path, keystore) as h:
            async with h.client(cert=cert, key=key) as http:
                with pytest.raises(aiohttp.ClientError):
                    await http.get(h.url("/hello"))
    run(go())


def test_certificate_enrolled_and_removed_while_running(tmp_path, keystore, client_cert):
    cert, key, pem = client_cert

    async def go():
        async with running_server(tmp_path, keystore) as h:
            # the CLI (another process) enrols it: the next handshake trusts it
            Accounts.open(tmp_path, "EOPN0000000001").add("anna", "consumer", "pw",
                                                            consumer="LV2", cert_pem=pem)
            async with h.client(cert=cert, key=key) as http:
                r = await http.get(h.url("/hello"))
                assert r.status == 200 and (await r.json())["account"] == "anna"
            a = Accounts.open(tmp_path, "EOPN0000000001")
            a.remove_cert("anna", a.get("anna").certs[0].sha256)
            async with h.client(cert=cert, key=key) as http:
                r = await http.get(h.url("/hello"))
                assert r.status == 401  # maps to no account any more: Digest
                r = await digest_request(http, "GET", h.url("/hello"), Digest("anna", "pw"))
                assert r.status == 200 and (await r.json())["method"] == "digest"
    run(go())


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_with_client_certificate(tmp_path, keystore, client_cert):
    cert, key, pem = client_cert

    async def go():
        accounts = Accounts.open(tmp_path, "EOPN0000000001")
        accounts.add("anna", "consumer", None, consumer="LV2", cert_pem=pem)
        async with running_server(tmp_path, keystore, accounts=accounts) as h:
            p = await asyncio.create_subprocess_exec(
                "curl", "-sS", "-k", "--cert", str(cert), "--key", str(key), h.url("/hello"),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            out, err = await p.communicate()
            assert p.returncode == 0, err
            assert b'"method": "certificate"' in out
    run(go())


def test_make_client_identity_is_a_tls_client_certificate():
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    _, pem = make_client_identity("x")
    c = x509.load_pem_x509_certificate(pem)
    eku = c.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
