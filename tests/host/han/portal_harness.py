"""A complete HAN server with the portal, on real stores, for the portal tests (HTTP and
browser): the demo data (:func:`smgw.han.demo.prepare_demo`), a second consumer with a meter and
a usage point of their own, the real tariff engine forming the derived values, real logbooks,
operating state and self-test, the HAN core's server with TLS on a free port of 127.0.0.1.

The server runs on an asyncio loop in a thread of its own (the SQLite connections belong to
it); tests talk to it over HTTPS only, and reach into it with :meth:`PortalEnv.call`, which runs
a function on that thread. :class:`Client` is a small HTTPS client that does what a browser does:
cookies, HTTP Digest (preemptive after the first challenge, ``nc`` counting up), an optional
client certificate, and it verifies the server against the gateway's HAN certificate.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import re
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

GATEWAY_ID = "ESIM0000000042"
OTHER_METER = "0a01534d4701000000ff"   # the second consumer's meter
OTHER_USER, OTHER_PASSWORD, OTHER_CONSUMER = "nachbar", "nachbar-pw", "LV2"
OTHER_PROFILE = "nachbar-taf7"
OTHER_USAGE_POINT = "DE0001234567800000000000000000002"


def _other_profile(start_ms: int) -> str:
    import datetime as dt
    from zoneinfo import ZoneInfo

    iso = dt.datetime.fromtimestamp(start_ms / 1000, ZoneInfo("Europe/Berlin")).isoformat()
    return f"""[profile]
kind = "evaluation"
name = "{OTHER_PROFILE}"
taf = 7
usage_point = "{OTHER_USAGE_POINT}"
consumer = "{OTHER_CONSUMER}"
supplier = "Stadtwerke Nebenan"
recipients = ["emt1"]
valid_from = "{iso}"

[[channels]]
meter = "{OTHER_METER}"
obis = "1-0:1.8.0"
"""


class PortalEnv:
    """Start with :meth:`start`, stop with :meth:`stop` (or use as a context manager)."""

    def __init__(self, root: Path, *, days: int = 2) -> None:
        self.root = Path(root)
        self.data_dir = self.root / "data"
        self.days = days
        self.gateway_id = GATEWAY_ID
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self.port = 0
        self.demo: Any = None
        self.events: list[tuple[int, dict[str, Any], str]] = []

    # -------------------------------------------------------------- lifecycle

    def __enter__(self) -> "PortalEnv":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def start(self) -> "PortalEnv":
        self._thread = threading.Thread(target=self._run, name="portal-env", daemon=True)
        self._thread.start()
        if not self._ready.wait(300):
            raise RuntimeError("the portal test server did not start within 300 s")
        if self._error is not None:
            raise RuntimeError(f"the portal test server failed to start: {self._error!r}"
                               ) from self._error
        return self

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(60)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn()`` on the server's thread (where the stores live); returns its result."""
        assert self.loop is not None

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(120)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    # -------------------------------------------------------------- the gateway parts

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # noqa: BLE001 - reported to start()
            self._error = e
            self._ready.set()

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def emit(self, cat: int, params: dict[str, Any] | None = None,
             status: str = "successful") -> str:
        """The catalogue event into the logbooks, routed like the gateway does: a
        ``consumer_log`` (or the meter's consumer) names the one consumer log it belongs to;
        "" means none."""
        from smgw.logbook.catalogue import event

        ev = event(cat)
        params = dict(params or {})
        status = str(params.pop("status", status))
        consumer_log = params.pop("consumer_log", None)
        text_params = {k: v for k, v in params.items() if k in ev.params}
        for k in ev.params:
            if k not in text_params and k not in ev.defaults:
                text_params[k] = "-"
        values = ev.resolve(text_params)
        text = ev.text.format_map(values)
        self.events.append((cat, dict(params), status))
        logs = set(ev.logs)
        if consumer_log is None and params.get("meter"):
            consumer_log = self.data.consumer_of_meter(str(params["meter"])) or ""
        consumers = ([consumer_log] if consumer_log else
                     [] if consumer_log == "" else ["LV1", OTHER_CONSUMER])
        if not consumers:
            logs.discard("consumer")
        if logs:
            clean = {k: v if isinstance(v, (int, str)) and not isinstance(v, bool) else str(v)
                     for k, v in values.items()}
            self.logbooks.append(cat, ev.level_for(status), status, clean, text, sorted(logs),
                                 consumers, skip_full=True)
        return text

    async def _main(self) -> None:
        from smgw.gateway import GatewayState
        from smgw.han import demo, portal
        from smgw.han.accounts import Accounts
        from smgw.han.data import HanData
        from smgw.han.server import HanServer, HanSettings
        from smgw.logbook.chain import Signer
        from smgw.logbook.store import Logbooks
        from smgw.opstate import OperatingState
        from smgw.security.keystore import KeyStore
        from smgw.selftest import checks as st_checks
        from smgw.selftest import kat
        from smgw.selftest.runner import SelfTest
        from smgw.store import Store
        from smgw.tariff.engine import TariffEngine
        from smgw.tariff.profile import parse_profile
        from smgw.tariff.store import TariffStore
        from smgw.wan.outbox import Outbox

        d = self.data_dir
        d.mkdir(parents=True, exist_ok=True)
        now = self.now_ms()
        self.store = store = Store.open(d / "smgw.db")
        self.demo = demo.prepare_demo(d, self.gateway_id, now, days=self.days, store=store)
        # the second consumer: a meter, a TAF 7 usage point and an account of their own
        rowid = store.add_meter(OTHER_METER, "lmn-wired", "sml", ["1-0:1.8.0"], 2)
        other_from = demo._window_start(now, 1)
        demo.backfill(store, rowid, OTHER_METER, self.demo.epoch_ms,
                      demo._grid_indices(self.demo.epoch_ms, other_from, other_from, now),
                      stream=demo.DEMO_STREAM + 1)
        self.tariff = tariff = TariffStore(store)
        text = _other_profile(other_from)
        tariff.put_profile(parse_profile(text, "test"), text, now)
        self.keystore = ks = KeyStore.load_or_create(d / "pki", self.gateway_id)
        engine = TariffEngine(store, tariff, Outbox(store), ks, emit=lambda *a, **k: None,
                              now_ms=self.now_ms)
        for _ in range(200):
            if not engine.tick():
                break
        self.logbooks = Logbooks.open(d / "logs.db", self.gateway_id,
                                      Signer.generate(self.gateway_id), clock=self.now_ms)
        self.ops = OperatingState(GatewayState(), self.emit, d / "opstate.json")
        self.ops.start()
        self.selftest = SelfTest([kat.sha256, lambda: st_checks.check_database(store)],
                                 self.ops, self.emit, path=d / "selftest.json")

        def info() -> dict[str, Any]:
            last = self.selftest.last()
            return {"gateway_id": self.gateway_id,
                    "firmware": [("smgw-host", "0.1.0", "a1b2c3"), ("smgwfw", "0.1.0", "d4e5f6")],
                    "time_valid": True, "opstate": self.ops.describe()["state"],
                    "selftest_last": last.to_dict() if last is not None else None}

        self.data = HanData(store, tariff, self.logbooks, ks, info, self.selftest.run,
                            self.now_ms)
        self.accounts = accounts = Accounts.open(d, self.gateway_id)
        accounts.add(OTHER_USER, "consumer", OTHER_PASSWORD, consumer=OTHER_CONSUMER)
        self.server = HanServer(HanSettings(listen=(("127.0.0.1", 0),)), self.data, accounts, ks,
                                self.emit, self.now_ms)
        self.server.add_face(portal.register)
        addrs = await self.server.start()
        self.port = addrs[0][1]
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self.server.stop()
            self.logbooks.close()
            store.close()

    # -------------------------------------------------------------- helpers for tests

    def han_cert_pem(self) -> bytes:
        return self.call(lambda: self.keystore.han.cert_pem())

    def client(self, user: str | None = None, password: str | None = None, *,
               cert: tuple[Path, Path] | None = None) -> "Client":
        return Client(self.url, self.han_cert_pem(), user, password, cert=cert)


# ------------------------------------------------------------------ a browser-like client


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    url: str

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


_CHALLENGE = re.compile(r'(\w+)=(?:"([^"]*)"|([^,\s]+))')


@dataclass
class Client:
    base: str
    ca_pem: bytes
    user: str | None
    password: str | None
    cert: tuple[Path, Path] | None = None
    cookies: dict[str, str] = field(default_factory=dict)
    challenges: int = 0
    _dig: dict[str, str] | None = None
    _nc: int = 0

    def __post_init__(self) -> None:
        ctx = ssl.create_default_context(cadata=self.ca_pem.decode())
        ctx.check_hostname = True
        if self.cert is not None:
            ctx.load_cert_chain(str(self.cert[0]), str(self.cert[1]))
        self._ctx = ctx
        u = urlsplit(self.base)
        self._host, self._port = u.hostname, u.port
        self._conn: http.client.HTTPSConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _authorization(self, method: str, uri: str) -> str | None:
        if self._dig is None or self.user is None:
            return None
        c = self._dig
        alg = c.get("algorithm", "MD5")
        h = hashlib.sha256 if alg.upper().startswith("SHA-256") else hashlib.md5

        def H(s: str) -> str:
            return h(s.encode()).hexdigest()

        self._nc += 1
        nc = f"{self._nc:08x}"
        cnonce = secrets.token_hex(8)
        ha1 = H(f"{self.user}:{c['realm']}:{self.password}")
        ha2 = H(f"{method}:{uri}")
        resp = H(f"{ha1}:{c['nonce']}:{nc}:{cnonce}:auth:{ha2}")
        return (f'Digest username="{self.user}", realm="{c["realm"]}", nonce="{c["nonce"]}", '
                f'uri="{uri}", algorithm={alg}, response="{resp}", qop=auth, nc={nc}, '
                f'cnonce="{cnonce}"' + (f', opaque="{c["opaque"]}"' if "opaque" in c else ""))

    def _once(self, method: str, path: str, body: bytes | None,
              headers: dict[str, str]) -> Reply:
        h = dict(headers)
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        auth = self._authorization(method, path)
        if auth:
            h["Authorization"] = auth
        for attempt in range(2):
            if self._conn is None:
                self._conn = http.client.HTTPSConnection(self._host, self._port,
                                                         context=self._ctx, timeout=60)
            try:
                self._conn.request(method, path, body=body, headers=h)
                r = self._conn.getresponse()
                data = r.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt:
                    raise
        for v in r.headers.get_all("Set-Cookie") or ():
            name, _, rest = v.partition("=")
            value = rest.split(";", 1)[0]
            if "max-age=0" in v.lower().replace(" ", "") or not value:
                self.cookies.pop(name.strip(), None)
            else:
                self.cookies[name.strip()] = value
        return Reply(r.status, r.headers, data, path)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, prefer: str = "SHA-256") -> Reply:
        r = self._once(method, path, body, headers or {})
        if r.status == 401 and self.user is not None:
            self.challenges += 1
            offers = [dict((k, a or b) for k, a, b in _CHALLENGE.findall(v))
                      for v in r.headers.get_all("WWW-Authenticate") or ()]
            pick = next((o for o in offers if o.get("algorithm", "MD5") == prefer), None)
            self._dig = pick or offers[0]
            self._nc = 0
            r = self._once(method, path, body, headers or {})
        return r

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, form: dict[str, str], **kw: Any) -> Reply:
        from urllib.parse import urlencode

        return self.request("POST", path, urlencode(form).encode(),
                            {"Content-Type": "application/x-www-form-urlencoded"}, **kw)


def form_token(html: str) -> str:
    m = re.search(r'name="token" value="([^"]*)"', html)
    assert m, "no form token on the page"
    return m.group(1)


def artifacts_dir() -> Path:
    """``test-artifacts/portal/`` under the repository (gitignored)."""
    repo = Path(__file__).resolve().parents[3]
    d = repo / "test-artifacts" / "portal"
    d.mkdir(parents=True, exist_ok=True)
    return d


__all__ = ["Client", "PortalEnv", "Reply", "artifacts_dir", "form_token",
           "GATEWAY_ID", "OTHER_USER", "OTHER_PASSWORD", "OTHER_CONSUMER", "OTHER_PROFILE",
           "OTHER_METER"]
