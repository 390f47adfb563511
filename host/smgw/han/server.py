"""The HAN HTTPS server: TLS only, on the configured addresses of the HAN and HAN-CLS
interfaces, with the faces registered on it (docs/han.md).

    server = HanServer(HanSettings(listen=(("192.168.1.200", 443),)), data, accounts,
                       keystore, supervisor.emit, supervisor.now_ms)
    server.add_face(portal.register)        # register(app, ctx) adds routes
    await server.start()                    # -> the bound (host, port) list
    ...
    await server.stop()

What every response gets, whatever the face: ``X-Frame-Options: DENY``,
``X-Content-Type-Options: nosniff``, ``Cache-Control: no-store``,
``Content-Security-Policy: default-src 'self'`` (a face may set its own), ``Referrer-Policy:
no-referrer``, ``Server: SMGW``, and -- for an authenticated request -- the ``session`` cookie
as the first ``Set-Cookie`` header when the client did not send it (han-clients.md §A.3), or a
deleting one after logout. A path no face serves is a JSON 404, a method a route does not take a
JSON 405; an unexpected error a JSON 500 (the details go to the process log only).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from aiohttp import web

from smgw.han.accounts import Accounts
from smgw.han.auth import PRINCIPAL_KEY, HanContext, session_cookies
from smgw.han.digest import DigestVerifier
from smgw.han.sessions import LockOut, Sessions
from smgw.han.tlsconf import ClientTrust, server_context

__all__ = ["HanServer", "HanSettings", "parse_address"]

log = logging.getLogger("smgw.han")

SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'",
    "Referrer-Policy": "no-referrer",
}


def parse_address(text: str) -> tuple[str, int]:
    """``"192.168.1.200:443"``, ``"[::1]:8443"`` -> (host, port)."""
    if not isinstance(text, str):
        raise ValueError(f"must be 'host:port', not {text!r}")
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r} must be 'host:port' (IPv6 as '[::1]:8443')")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, '[{host}]:{port}'")
    try:
        p = int(port)
    except ValueError:
        raise ValueError(f"{text!r}: the port must be a number") from None
    if not 0 <= p <= 65535:
        raise ValueError(f"{text!r}: the port must be 0..65535")
    return host, p


@dataclass(frozen=True)
class HanSettings:
    """The ``[han]`` configuration (docs/han.md)."""

    #: (host, port) of each interface to serve: the HAN and the HAN-CLS address
    listen: tuple[tuple[str, int], ...] = (("127.0.0.1", 8443),)
    idle_s: float = 600.0                   # session idle limit (seed 001 E-3)
    max_s: float = 172_800.0                # session absolute limit, 48 h
    lockout_failures: int = 5               # failed logins ...
    lockout_window_s: float = 300.0         # ... within this ...
    lockout_s: float = 300.0                # ... lock the account this long (10061)
    selftest_min_interval_s: float = 600.0  # on-demand self-tests (seed 001 E-4.4.3)
    nonce_lifetime_s: float = 600.0         # a Digest nonce is stale after this
    max_body_bytes: int = 64 * 1024         # request bodies (forms, JSON) are small
    keepalive_s: float = 75.0               # idle kept-alive connections are closed after

    def __post_init__(self) -> None:
        if not self.listen:
            raise ValueError("han.listen: at least one address is needed")
        if not 0 < self.idle_s <= self.max_s:
            raise ValueError("han.idle_s must be > 0 and not above han.max_session_s (max_s)")
        if self.lockout_failures < 1:
            raise ValueError("han.lockout_failures must be at least 1")
        for name in ("lockout_window_s", "lockout_s", "nonce_lifetime_s", "keepalive_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"han.{name} must be positive")
        if self.selftest_min_interval_s < 0:
            raise ValueError("han.selftest_min_interval_s must not be negative")
        if self.max_body_bytes < 1024:
            raise ValueError("han.max_body_bytes must be at least 1024")

    @classmethod
    def from_config(cls, han: Any) -> "HanSettings":
        """From the gateway configuration's ``[han]`` section (:class:`smgw.config.HanConfig`:
        ``listen`` strings, ``max_session_s``; ``enabled`` is the caller's business)."""
        return cls.from_mapping({
            "listen": list(han.listen), "idle_s": han.idle_s, "max_s": han.max_session_s,
            "lockout_failures": han.lockout_failures, "lockout_window_s": han.lockout_window_s,
            "lockout_s": han.lockout_s, "selftest_min_interval_s": han.selftest_min_interval_s})

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any]) -> "HanSettings":
        """From a config section: ``listen`` as a list of "host:port" strings, the rest as
        named above (``max_session_s`` is taken for ``max_s``, ``enabled`` is ignored). Errors
        name the key (``han.listen[1]: ...``)."""
        known = {f.name for f in fields(cls)}
        kw: dict[str, Any] = {}
        d = {("max_s" if k == "max_session_s" else k): v for k, v in d.items() if k != "enabled"}
        for k, v in d.items():
            if k not in known:
                raise ValueError(f"han.{k}: unknown key (known: {', '.join(sorted(known))})")
            if k == "listen":
                if isinstance(v, str) or not isinstance(v, Iterable):
                    raise ValueError("han.listen: must be a list of 'host:port' strings")
                addrs = []
                for i, a in enumerate(v):
                    try:
                        addrs.append(a if isinstance(a, tuple) else parse_address(a))
                    except ValueError as e:
                        raise ValueError(f"han.listen[{i}]: {e}") from None
                kw[k] = tuple(addrs)
            else:
                kw[k] = v
        return cls(**kw)


def _json_error(status: int, message: str, **extra: Any) -> web.Response:
    return web.json_response({"status": status, "error": message, **extra}, status=status)


class HanServer:
    """aiohttp application + TLS sites. ``now_ms`` is the legal time (logs, displays);
    ``clock_ms`` the monotonic clock of sessions, nonces and lock-out (tests inject it)."""

    def __init__(self, cfg: HanSettings, data: Any, accounts: Accounts, keystore: Any,
                 emit: Callable[..., Any], now_ms: Callable[[], int], *,
                 clock_ms: Callable[[], int] | None = None) -> None:
        self.cfg = cfg
        self.keystore = keystore
        self.accounts = accounts
        clock = clock_ms or (lambda: time.monotonic_ns() // 1_000_000)
        self.sessions = Sessions(idle_s=cfg.idle_s, max_s=cfg.max_s, clock_ms=clock)
        self.lockout = LockOut(failures=cfg.lockout_failures, window_s=cfg.lockout_window_s,
                               lock_s=cfg.lockout_s, clock_ms=clock)
        self.verifier = DigestVerifier(accounts.realm, lifetime_s=cfg.nonce_lifetime_s,
                                       clock_ms=clock)
        self.ctx = HanContext(settings=cfg, data=data, accounts=accounts,
                              sessions=self.sessions, lockout=self.lockout,
                              verifier=self.verifier, emit=emit, now_ms=now_ms,
                              gateway_id=keystore.gateway_id,
                              on_accounts_changed=self._trust_new_certs)
        self.app = web.Application(client_max_size=cfg.max_body_bytes,
                                   middlewares=[self._errors])
        self.app.on_response_prepare.append(self._on_prepare)
        self._runner: web.AppRunner | None = None
        self._trust: ClientTrust | None = None
        self.addresses: list[tuple[str, int]] = []

    # ------------------------------------------------------------------ faces

    def add_face(self, register: Callable[[web.Application, HanContext], None]) -> None:
        """``register(app, ctx)`` adds the face's routes (before :meth:`start`)."""
        if self._runner is not None:
            raise RuntimeError("faces must be added before the HAN server starts")
        register(self.app, self.ctx)

    # ------------------------------------------------------------------ start and stop

    async def start(self) -> list[tuple[str, int]]:
        """Bind every ``listen`` address with TLS; returns the bound (host, port) list (port 0
        in the settings picks a free port)."""
        if self._runner is not None:
            raise RuntimeError("the HAN server is running already")
        han = self.keystore.han
        ssl_ctx, self._trust = server_context(han.cert_pem(), han.key_pem(),
                                              client_certs=self.accounts.client_cert_pems())
        ssl_ctx.sni_callback = self._on_client_hello
        runner = web.AppRunner(self.app, access_log=None, keepalive_timeout=self.cfg.keepalive_s,
                               max_line_size=8190, max_field_size=8190, max_headers=64,
                               shutdown_timeout=5.0)
        await runner.setup()
        try:
            for host, port in self.cfg.listen:
                site = web.TCPSite(runner, host, port, ssl_context=ssl_ctx)
                await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.addresses = [(str(a[0]), int(a[1])) for a in runner.addresses]
        log.info("HAN server listening", extra={"fields": {"urls": ", ".join(self.urls)}})
        return list(self.addresses)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            log.info("HAN server stopped")

    @property
    def urls(self) -> list[str]:
        return [f"https://[{h}]:{p}/" if ":" in h else f"https://{h}:{p}/"
                for h, p in self.addresses]

    # ------------------------------------------------------------------ client certificates

    def _trust_new_certs(self) -> None:
        if self._trust is not None:
            n = self._trust.add(self.accounts.client_cert_pems())
            if n:
                log.info("HAN client certificates enrolled", extra={"fields": {"new": n}})

    def _on_client_hello(self, sslobj: Any, server_name: str | None, ctx: Any) -> None:
        # every handshake: a certificate enrolled with the CLI a moment ago must verify now
        try:
            self.ctx.refresh_accounts()
        except Exception:  # noqa: BLE001 - nothing here may break the handshake
            log.exception("HAN accounts could not be refreshed")
        return None

    # ------------------------------------------------------------------ every response

    @web.middleware
    async def _errors(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        exc = request.match_info.http_exception
        if exc is not None:  # no route: the router's 404/405, as JSON
            if exc.status == 405:
                allowed = sorted(getattr(exc, "allowed_methods", ()) or ())
                resp = _json_error(405, "Methode nicht erlaubt", method=request.method,
                                   allowed=allowed)
                if allowed:
                    resp.headers["Allow"] = ",".join(allowed)
                return resp
            return _json_error(exc.status, "Nicht gefunden" if exc.status == 404
                               else exc.reason, path=request.path)
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("HAN request failed", extra={"fields": {
                "method": request.method, "path": request.path}})
            return _json_error(500, "Interner Fehler")

    async def _on_prepare(self, request: web.BaseRequest, resp: web.StreamResponse) -> None:
        h = resp.headers
        for k, v in SECURITY_HEADERS.items():
            h.setdefault(k, v)
        h["Server"] = "SMGW"
        p = request.get(PRINCIPAL_KEY)
        if p is None:
            return
        sent = session_cookies(request)
        if self.sessions.get(p.session.id) is not None:
            if p.session.id in sent:
                return
            cookie = f"session={p.session.id}; Path=/; Secure; HttpOnly; SameSite=Strict"
        elif p.session.id in sent:
            cookie = "session=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict"
        else:
            return
        others = h.getall("Set-Cookie", [])
        h.popall("Set-Cookie", None)
        h.add("Set-Cookie", cookie)   # first: node-red reads set-cookie[0]
        for c in others:
            h.add("Set-Cookie", c)
