"""Digest (RFC 7616) server side: the RFC's vectors, parsing the header shapes clients send,
nonce lifetime, nc tracking, and the redirect quirk (han-clients.md §A.2, §B.2, §B.3)."""

from __future__ import annotations

import pytest

from hankit import Clock, Digest, nodered_parse, parse_challenge
from smgw.han.digest import (
    DigestError,
    DigestVerifier,
    canonical_algorithm,
    ha1,
    parse_authorization,
    request_digest,
)

# RFC 7616 §3.9.1
RFC = dict(user="Mufasa", password="Circle of Life", realm="http-auth@example.org",
           uri="/dir/index.html", nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
           cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", nc="00000001")
RFC_MD5 = "8ca523f5e9506fed4657c9700eebdbec"
RFC_SHA256 = "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
REALM = "eopn0000000001"


@pytest.mark.parametrize("alg,expected", [("MD5", RFC_MD5), ("SHA-256", RFC_SHA256)])
def test_rfc7616_example_responses(alg, expected):
    h = ha1(alg, RFC["user"], RFC["realm"], RFC["password"])
    got = request_digest(alg, h, nonce=RFC["nonce"], nc=RFC["nc"], cnonce=RFC["cnonce"],
                         method="GET", uri=RFC["uri"])
    assert got == expected


def test_rfc7616_example_header_parses_and_verifies_as_stale_nonce():
    # the RFC's own Authorization header (SHA-256); the nonce is not ours, the password right:
    # "stale" (challenge again with stale=true), never a failed login
    header = ('Digest username="Mufasa", realm="http-auth@example.org", '
              'uri="/dir/index.html", algorithm=SHA-256, '
              f'nonce="{RFC["nonce"]}", nc=00000001, cnonce="{RFC["cnonce"]}", qop=auth, '
              f'response="{RFC_SHA256}", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"')
    params = parse_authorization(header)
    assert params["response"] == RFC_SHA256 and params["nc"] == "00000001"
    v = DigestVerifier(RFC["realm"], clock_ms=Clock())
    stored = {a: ha1(a, "Mufasa", RFC["realm"], "Circle of Life") for a in ("MD5", "SHA-256")}
    out = v.verify("GET", params, lambda u, a: stored[a] if u == "Mufasa" else None,
                   "/dir/index.html")
    assert out.status == "stale"
    bad = {**stored, "SHA-256": ha1("SHA-256", "Mufasa", RFC["realm"], "wrong")}
    out = v.verify("GET", params, lambda u, a: bad[a], "/dir/index.html")
    assert out.status == "wrong"


# ----------------------------------------------------------------------------- parsing

def test_parse_nodered_shape():
    h = ('Digest username="u",realm="r",nonce="n",uri="/cgi-bin/hanservice.cgi",cnonce="c",'
         'nc=00000002,algorithm=MD5,response="abc",qop="auth"')
    p = parse_authorization(h)
    assert p == {"username": "u", "realm": "r", "nonce": "n", "uri": "/cgi-bin/hanservice.cgi",
                 "cnonce": "c", "nc": "00000002", "algorithm": "MD5", "response": "abc",
                 "qop": "auth"}


def test_parse_httpx_shape_commas_inside_quotes_and_escapes():
    h = ('digest  username="a, b" , realm = "r\\"q" ,, nonce="n", uri="/x?a=1,2", '
         'response="f", qop=auth, nc=00000001, cnonce="c", algorithm=SHA-256')
    p = parse_authorization(h)
    assert p["username"] == "a, b"
    assert p["realm"] == 'r"q'
    assert p["uri"] == "/x?a=1,2"
    assert p["qop"] == "auth" and p["algorithm"] == "SHA-256"


def test_parse_username_star():
    p = parse_authorization("Digest username*=UTF-8''J%C3%A4s%C3%B8n%20Doe, realm=\"r\"")
    assert p["username"] == "Jäsøn Doe"


@pytest.mark.parametrize("bad", [
    'Basic dXNlcjpwdw==',
    'Digest username="u", username="v"',
    'Digest username="u',
    'Digest username',
    "Digest username*=UTF-8''x, username=\"x\"",
    'Digest =x',
])
def test_parse_rejects(bad):
    with pytest.raises(DigestError):
        parse_authorization(bad)


@pytest.mark.parametrize("name,expected", [
    (None, ("MD5", False)), ("md5", ("MD5", False)), ("SHA-256", ("SHA-256", False)),
    ("SHA256", ("SHA-256", False)), ("MD5-sess", ("MD5", True)),
    ("sha-256-SESS", ("SHA-256", True))])
def test_algorithm_spellings(name, expected):
    assert canonical_algorithm(name) == expected


def test_unknown_algorithm():
    with pytest.raises(DigestError, match="SHA-512"):
        canonical_algorithm("SHA-512")


# ----------------------------------------------------------------------------- challenge

def test_challenge_is_one_header_node_red_can_read():
    v = DigestVerifier(REALM, clock_ms=Clock())
    [c] = v.challenge()
    p = parse_challenge(c)
    assert p["realm"] == REALM and p["qop"] == "auth" and p["algorithm"] == "MD5"
    assert "," not in p["nonce"] and '"' not in p["nonce"]
    # node-red's parser (split on commas, after the last '="') gets the same values
    nr = nodered_parse(c)
    assert nr["realm"] == REALM and nr["nonce"] == p["nonce"] and nr["qop"] == "auth"
    assert "stale" not in c


def test_challenge_per_algorithm_and_stale():
    v = DigestVerifier(REALM, clock_ms=Clock())
    cs = v.challenge(("SHA-256", "MD5"), stale=True)
    assert [parse_challenge(c)["algorithm"] for c in cs] == ["SHA-256", "MD5"]
    assert all(c.endswith(", stale=true") for c in cs)
    assert len({parse_challenge(c)["nonce"] for c in cs}) == 1


@pytest.mark.parametrize("realm", ["", 'a"b', "a,b"])
def test_realm_must_be_quotable(realm):
    with pytest.raises(ValueError):
        DigestVerifier(realm)


# ----------------------------------------------------------------------------- verification

class Fixture:
    def __init__(self, **kw):
        self.clock = Clock()
        self.v = DigestVerifier(REALM, clock_ms=self.clock, **kw)
        self.store = {(u, a): ha1(a, u, REALM, pw) for u, pw in (("demo", "pw"),)
                      for a in ("MD5", "SHA-256")}

    def ha1_of(self, user, alg):
        return self.store.get((user, alg))

    def client(self, password="pw", **kw):
        d = Digest("demo", password, **kw)
        d.learn(self.v.challenge()[0])
        return d

    def check(self, d, path="/cgi-bin/hanservice.cgi", method="POST", uri=None, nc=None,
              uri_paths=()):
        h = d.header(method, uri or path, nc=nc)
        return self.v.verify(method, parse_authorization(h), self.ha1_of, path, uri_paths)


def test_ok_and_reused_nonce_with_growing_nc():
    f = Fixture()
    d = f.client(style="nodered")
    for _ in range(5):  # one nonce, nc 1..5, one cnonce (node-red)
        assert f.check(d).status == "ok"
    assert f.v.tracked_nonces() == 1


def test_same_nc_again_is_a_replay_not_a_failure():
    f = Fixture()
    d = f.client()
    assert f.check(d, nc=1).status == "ok"
    assert f.check(d, nc=1).status == "replay"


def test_nc_out_of_order_is_accepted_once():
    f = Fixture()
    d = f.client()
    assert f.check(d, nc=3).status == "ok"
    assert f.check(d, nc=2).status == "ok"
    assert f.check(d, nc=2).status == "replay"


def test_nc_far_behind_is_a_replay():
    f = Fixture(nc_window=4)
    d = f.client()
    for nc in range(1, 11):
        assert f.check(d, nc=nc).status == "ok"
    assert f.check(d, nc=2).status == "replay"


def test_new_handshake_per_request():
    f = Fixture()
    for _ in range(3):
        assert f.check(f.client()).status == "ok"


def test_nonce_expires_stale():
    f = Fixture(lifetime_s=600)
    d = f.client()
    assert f.check(d).status == "ok"
    f.clock.advance(601)
    assert f.check(d).status == "stale"


def test_wrong_password_and_unknown_user():
    f = Fixture()
    assert f.check(f.client(password="nope")).status == "wrong"
    d = Digest("mallory", "pw")
    d.learn(f.v.challenge()[0])
    assert f.check(d).status == "unknown-user"


def test_nonce_of_another_server_run_is_stale_when_the_password_is_right():
    f = Fixture()
    other = DigestVerifier(REALM, clock_ms=f.clock)
    d = Digest("demo", "pw")
    d.learn(other.challenge()[0])
    assert f.check(d).status == "stale"


def test_answer_with_another_algorithm_than_announced():
    # ha-ppc-smgw forces MD5; a client may also answer SHA-256 or -sess to an MD5 challenge
    f = Fixture()
    for alg in ("MD5", "SHA-256", "MD5-sess", "SHA-256-sess"):
        d = Digest("demo", "pw", force_algorithm=alg)
        d.learn(f.v.challenge(("SHA-256",))[0])
        assert f.check(d).status == "ok", alg


@pytest.mark.parametrize("change,detail", [
    (lambda h: h.replace("qop=auth", "qop=auth-int"), "qop"),
    (lambda h: h.replace(", qop=auth", ""), "qop missing"),
    (lambda h: h.replace(f'realm="{REALM}"', 'realm="other"'), "realm"),
    (lambda h: h.replace("nc=00000001", "nc=1"), "nc"),
    (lambda h: h.replace("algorithm=MD5", "algorithm=SHA-512"), "SHA-512"),
    (lambda h: h + ", userhash=true", "userhash"),
])
def test_invalid_requests(change, detail):
    f = Fixture()
    d = f.client()
    h = change(d.header("POST", "/cgi-bin/hanservice.cgi", nc=1))
    out = f.v.verify("POST", parse_authorization(h), f.ha1_of, "/cgi-bin/hanservice.cgi")
    assert out.status == "invalid" and detail in out.detail


def test_uri_must_name_the_path_absolute_form_and_query_allowed():
    f = Fixture()
    d = f.client()
    assert f.check(d, path="/x", uri="/y").status == "invalid"
    assert f.check(d, path="/x", uri="https://192.168.1.200/x").status == "ok"
    assert f.check(d, path="/x", uri="/x?page=2", method="GET").status == "ok"
    assert f.check(d, path="/smgw/m2m/demo.sm/json", uri="/smgw/m2m/",
                   uri_paths=("/smgw/m2m/",)).status == "ok"


def test_redirect_replay_is_accepted_once():
    # httpx follows the 307 of /smgw/m2m/ with the same Authorization (same nonce, nc, uri)
    f = Fixture()
    d = f.client()
    roots = ("/smgw/m2m", "/smgw/m2m/")
    h = d.header("POST", "/smgw/m2m/")
    p = parse_authorization(h)
    assert f.v.verify("POST", p, f.ha1_of, "/smgw/m2m/", roots).status == "ok"
    assert f.v.verify("POST", p, f.ha1_of, "/smgw/m2m/demo.sm/json", roots).status == "ok"
    assert f.v.verify("POST", p, f.ha1_of, "/smgw/m2m/demo.sm/json", roots).status == "replay"
    # not for a path that is not a redirect root, and not late
    h2 = d.header("POST", "/smgw/m2m/")
    p2 = parse_authorization(h2)
    assert f.v.verify("POST", p2, f.ha1_of, "/smgw/m2m/", roots).status == "ok"
    f.clock.advance(61)
    assert f.v.verify("POST", p2, f.ha1_of, "/smgw/m2m/demo.sm/json", roots).status == "replay"
    h3 = d.header("POST", "/cgi-bin/hanservice.cgi")
    p3 = parse_authorization(h3)
    assert f.v.verify("POST", p3, f.ha1_of, "/cgi-bin/hanservice.cgi", roots).status == "ok"
    assert f.v.verify("POST", p3, f.ha1_of, "/cgi-bin/hanservice.cgi", roots).status == "replay"


def test_nonce_state_is_pruned_after_its_lifetime():
    f = Fixture(lifetime_s=60)
    for _ in range(3):
        assert f.check(f.client()).status == "ok"
    assert f.v.tracked_nonces() == 3
    f.clock.advance(120)
    assert f.check(f.client()).status == "ok"
    assert f.v.tracked_nonces() == 1
