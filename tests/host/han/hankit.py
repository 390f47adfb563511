"""Test kit for the HAN server and its faces: a Digest client that can imitate each client's
header shape, a controllable clock, an event recorder, a trivial face, and a running server.

Faces' tests import it (``from hankit import ...``): pytest puts this directory on sys.path.

    async with running_server(tmp_path, keystore, faces=[my_face.register]) as h:
        async with h.client() as http:
            r = await digest_get(http, h.url("/"), Digest("demo", "pw"))
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import ssl
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import aiohttp
from aiohttp import web

from smgw import events
from smgw.han.accounts import Accounts
from smgw.han.server import HanServer, HanSettings

GATEWAY_ID = "EOPN0000000001"
PASSWORD = "geheim-1"
TECH_PASSWORD = "service-1"

# ----------------------------------------------------------------------------------- clock


class Clock:
    """A millisecond clock the test moves forward by hand."""

    def __init__(self, start_ms: int = 1_000_000) -> None:
        self.ms = start_ms

    def __call__(self) -> int:
        return self.ms

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)


# ----------------------------------------------------------------------------------- events


@dataclass
class Recorded:
    cat: int
    level: str
    status: str
    params: dict[str, Any]
    text: str


class EventRecorder:
    """The sink of :mod:`smgw.events` during a test; ``emit`` is the real emitter."""

    def __init__(self) -> None:
        self.entries: list[Recorded] = []
        self.emit = events.emitter(logging.getLogger("test.han"))

    def __call__(self, cat: int, level: str, status: str, params: Any, text: str) -> None:
        self.entries.append(Recorded(cat, level, status, dict(params), text))

    def of(self, cat: int) -> list[Recorded]:
        return [e for e in self.entries if e.cat == cat]


@contextlib.contextmanager
def recording() -> Any:
    rec = EventRecorder()
    old = events.get_sink()
    events.set_sink(rec)
    try:
        yield rec
    finally:
        events.set_sink(old)


# ----------------------------------------------------------------------------------- digest


def parse_challenge(value: str) -> dict[str, str]:
    """The parameters of a WWW-Authenticate Digest challenge (a test's own small parser)."""
    assert value.startswith("Digest "), value
    out = {}
    for m in re.finditer(r'(\w+)=(?:"([^"]*)"|([^,\s]+))', value[7:]):
        out[m.group(1).lower()] = m.group(2) if m.group(2) is not None else m.group(3)
    return out


def nodered_parse(value: str) -> dict[str, str]:
    """How node-red's ppc.js reads a challenge: split on ',', take the text after the last
    '="' minus one trailing character (han-clients.md §A.2)."""
    out = {}
    for part in value.split(","):
        key = part.strip().split("=", 1)[0].replace("Digest ", "").strip()
        out[key] = part[part.rfind('="') + 2:-1] if '="' in part else part.split("=", 1)[1]
    return out


class Digest:
    """A Digest client. ``style``: "httpx" (``qop=auth`` unquoted, ", " separators),
    "nodered" (no spaces, quoted qop, algorithm=MD5 always, one cnonce for ever), "curl".
    ``force_algorithm`` answers with that algorithm whatever the challenge said (ha-ppc-smgw's
    Theben client forces MD5)."""

    def __init__(self, user: str, password: str, *, style: str = "httpx",
                 force_algorithm: str | None = None) -> None:
        self.user, self.password, self.style = user, password, style
        self.force_algorithm = force_algorithm
        self.challenge: dict[str, str] | None = None
        self.nc = 0
        self.cnonce = os.urandom(8).hex()

    def learn(self, www_authenticate: str) -> None:
        self.challenge = parse_challenge(www_authenticate)
        self.nc = 0

    def _h(self, alg: str, s: str) -> str:
        fn = hashlib.sha256 if alg.upper().startswith("SHA-256") else hashlib.md5
        return fn(s.encode()).hexdigest()

    def header(self, method: str, uri: str, *, nc: int | None = None) -> str:
        assert self.challenge is not None, "no challenge learnt yet"
        ch = self.challenge
        alg = self.force_algorithm or ch.get("algorithm") or "MD5"
        if self.style == "nodered":
            alg = "MD5"
        if nc is None:
            self.nc += 1
            nc = self.nc
        if self.style != "nodered":
            self.cnonce = os.urandom(8).hex()
        ncs = f"{nc:08x}"
        ha1 = self._h(alg, f"{self.user}:{ch['realm']}:{self.password}")
        if alg.lower().endswith("-sess"):
            ha1 = self._h(alg, f"{ha1}:{ch['nonce']}:{self.cnonce}")
        ha2 = self._h(alg, f"{method}:{uri}")
        resp = self._h(alg, f"{ha1}:{ch['nonce']}:{ncs}:{self.cnonce}:auth:{ha2}")
        if self.style == "nodered":
            return (f'Digest username="{self.user}",realm="{ch["realm"]}",nonce="{ch["nonce"]}",'
                    f'uri="{uri}",cnonce="{self.cnonce}",nc={ncs},algorithm=MD5,'
                    f'response="{resp}",qop="auth"')
        parts = [f'username="{self.user}"', f'realm="{ch["realm"]}"', f'nonce="{ch["nonce"]}"',
                 f'uri="{uri}"', f'response="{resp}"', f'algorithm={alg}', 'qop=auth',
                 f'nc={ncs}', f'cnonce="{self.cnonce}"']
        return "Digest " + ", ".join(parts)


async def digest_request(http: aiohttp.ClientSession, method: str, url: str, auth: Digest, *,
                         uri: str | None = None, headers: dict[str, str] | None = None,
                         preemptive: bool = True, **kw: Any) -> aiohttp.ClientResponse:
    """One request the way most clients do it: with the learnt challenge if there is one
    (``preemptive``), else (or after a 401) unauthenticated first, then once more with
    credentials. Returns the final response (body read)."""
    from yarl import URL

    u = URL(url)
    target = uri or u.raw_path_qs
    hdrs = dict(headers or {})
    if preemptive and auth.challenge is not None:
        r = await http.request(method, url, headers={**hdrs, "Authorization":
                                                     auth.header(method, target)}, **kw)
        await r.read()
        if r.status != 401:
            return r
    else:
        r = await http.request(method, url, headers=hdrs, **kw)
        await r.read()
        if r.status != 401:
            return r
    auth.learn(r.headers["WWW-Authenticate"])
    r = await http.request(method, url, headers={**hdrs, "Authorization":
                                                 auth.header(method, target)}, **kw)
    await r.read()
    return r


# ----------------------------------------------------------------------------------- face


def trivial_face(app: web.Application, ctx: Any) -> None:
    """A face for the core's tests: /hello (GET/POST, any role), /tech (technicians),
    /logout, /smgw/m2m (307 to /smgw/m2m/<user>.sm/json), /big (POST, reads the body),
    /boom (raises), /portal (renews nothing: ended="challenge")."""
    m2m_uris = ("/smgw/m2m", "/smgw/m2m/")

    def show(p: Any) -> web.Response:
        return web.json_response({"account": p.account, "role": p.role,
                                  "consumer": p.consumer, "method": p.method,
                                  "token": p.token, "new": p.new_session,
                                  "previous_end": p.previous_end})

    async def hello(request: web.Request) -> web.StreamResponse:
        p = await ctx.authenticate(request)
        if isinstance(p, web.Response):
            return p
        if request.method == "POST":
            # a form whatever the Content-Type (han-clients.md §A.4)
            form = parse_qs(await request.text())
            resp = show(p)
            resp.headers["X-Echo"] = form.get("action", [""])[0]
            return resp
        return show(p)

    async def sha(request: web.Request) -> web.StreamResponse:
        p = await ctx.authenticate(request, algorithms=("SHA-256", "MD5"))
        return p if isinstance(p, web.Response) else show(p)

    async def portal(request: web.Request) -> web.StreamResponse:
        p = await ctx.authenticate(request, ended="challenge")
        return p if isinstance(p, web.Response) else show(p)

    async def tech(request: web.Request) -> web.StreamResponse:
        return show(await ctx.guard(request, "technician"))

    async def logout(request: web.Request) -> web.StreamResponse:
        p = await ctx.guard(request)
        ctx.logout(p)
        return web.Response(text="abgemeldet")

    async def m2m_root(request: web.Request) -> web.StreamResponse:
        p = await ctx.authenticate(request, uri_paths=m2m_uris)
        if isinstance(p, web.Response):
            return p
        return web.Response(status=307, headers={"Location": f"/smgw/m2m/{p.account}.sm/json"})

    async def m2m_json(request: web.Request) -> web.StreamResponse:
        p = await ctx.authenticate(request, uri_paths=m2m_uris)
        if isinstance(p, web.Response):
            return p
        if request.match_info["user"] != f"{p.account}.sm":
            raise web.HTTPNotFound()
        body = await request.read()
        return web.json_response({"user": p.account, "got": body.decode()})

    async def big(request: web.Request) -> web.StreamResponse:
        data = await request.read()
        return web.json_response({"bytes": len(data)})

    async def boom(request: web.Request) -> web.StreamResponse:
        raise RuntimeError("secret detail")

    app.router.add_route("GET", "/hello", hello)
    app.router.add_route("POST", "/hello", hello)
    app.router.add_get("/sha", sha)
    app.router.add_get("/portal", portal)
    app.router.add_get("/tech", tech)
    app.router.add_post("/logout", logout)
    app.router.add_route("*", "/smgw/m2m", m2m_root)
    app.router.add_route("*", "/smgw/m2m/", m2m_root)
    app.router.add_post("/smgw/m2m/{user}/json", m2m_json)
    app.router.add_post("/big", big)
    app.router.add_get("/boom", boom)


# ----------------------------------------------------------------------------------- server


def client_ssl(keystore: Any, cert: Path | None = None, key: Path | None = None,
               *, max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """A client context that verifies the gateway's HAN certificate (pinned, as a consumer
    does after the first visit), optionally with a client certificate."""
    ctx = ssl.create_default_context(cadata=keystore.han.cert_pem().decode())
    if max_version is not None:
        ctx.maximum_version = max_version
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


@dataclass
class Harness:
    server: HanServer
    keystore: Any
    accounts: Accounts
    clock: Clock
    events: EventRecorder
    tmp: Path
    data: Any = None
    host: str = "127.0.0.1"
    port: int = 0
    ports: list[int] = field(default_factory=list)

    def url(self, path: str = "/") -> str:
        return f"https://{self.host}:{self.port}{path}"

    def client(self, *, cert: Path | None = None, key: Path | None = None,
               cookies: bool = False, **kw: Any) -> aiohttp.ClientSession:
        """A client session verifying the HAN certificate; no cookie jar unless asked."""
        conn = aiohttp.TCPConnector(ssl=client_ssl(self.keystore, cert, key), force_close=False)
        jar = aiohttp.CookieJar(unsafe=True) if cookies else aiohttp.DummyCookieJar()
        return aiohttp.ClientSession(connector=conn, cookie_jar=jar, **kw)


@contextlib.asynccontextmanager
async def running_server(tmp: Path, keystore: Any, *,
                         faces: Sequence[Callable[[web.Application, Any], None]] = (trivial_face,),
                         settings: HanSettings | None = None, data: Any = None,
                         accounts: Accounts | None = None, clock: Clock | None = None,
                         consumers: Iterable[tuple[str, str]] = (("demo", "LV1"),),
                         technicians: Iterable[str] = ("service",)) -> Any:
    """A started HanServer on 127.0.0.1 (free port) with the given faces, accounts made from
    ``consumers`` ((name, consumer id), password PASSWORD) and ``technicians`` (password
    TECH_PASSWORD) unless ``accounts`` is given, and an event recorder as the logbook sink."""
    clock = clock or Clock()
    if accounts is None:
        accounts = Accounts.open(tmp / "han-accounts.json", GATEWAY_ID)
        for name, consumer in consumers:
            accounts.add(name, "consumer", PASSWORD, consumer=consumer)
        for name in technicians:
            accounts.add(name, "technician", TECH_PASSWORD)
    settings = settings or HanSettings(listen=(("127.0.0.1", 0),))
    with recording() as rec:
        server = HanServer(settings, data, accounts, keystore, rec.emit, lambda: clock.ms,
                           clock_ms=clock)
        for f in faces:
            server.add_face(f)
        addrs = await server.start()
        h = Harness(server, keystore, accounts, clock, rec, tmp, data=data,
                    port=addrs[0][1], ports=[a[1] for a in addrs])
        try:
            yield h
        finally:
            await server.stop()


def run(coro: Any) -> Any:
    """Run a coroutine in a fresh event loop (the tests have no async plugin)."""
    return asyncio.run(coro)
