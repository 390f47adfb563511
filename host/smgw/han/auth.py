"""Who is asking: the glue between the HAN faces and accounts, Digest, sessions and lock-out.

A face calls :meth:`HanContext.authenticate` (or :meth:`HanContext.guard`) at the start of a
handler. The order of seed 001 E-5.1: a client certificate enrolled for an account logs in as
that account; otherwise HTTP Digest. Every request is authenticated by itself -- the session
cookie is additional, never a replacement (han-clients.md §A.2).

Events (``emit(event_id, params, status=...)``, the form of :func:`smgw.events.emitter`):

* 10228 consumer login / 10174 technician login, once per session (not per request);
  ``status="failed"`` for a wrong password or unknown name (10228 for unknown names);
* 10061 when a name gets locked (:class:`smgw.han.sessions.LockOut`).

Every event carries ``consumer_log``: the consumer id whose consumer log it belongs to (``""``:
none, system log only) -- a login must not show up in another consumer's log. Further keys
(``account``, ``method``, ``reason``) are context.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from smgw.han.accounts import Account, Accounts
from smgw.han.digest import DigestError, DigestVerifier, Outcome, parse_authorization
from smgw.han.sessions import LockOut, Session, Sessions

__all__ = ["EV_CONSUMER_LOGIN", "EV_LOCKED", "EV_TECHNICIAN_LOGIN", "PRINCIPAL_KEY", "REASON_KEY",
           "HanContext", "Principal", "session_cookies"]

log = logging.getLogger("smgw.han.auth")

EV_CONSUMER_LOGIN = 10228
EV_TECHNICIAN_LOGIN = 10174
EV_LOCKED = 10061

PRINCIPAL_KEY = web.RequestKey("smgw_han_principal", object)
COOKIE = "session"
#: on a 401 response of :meth:`HanContext.authenticate`: why (missing, wrong, locked, ...)
REASON_KEY = web.ResponseKey("smgw_han_reason", str)

_TEXT_401 = "Anmeldung erforderlich."
_TEXT_LOCKED = ("Zu viele fehlgeschlagene Anmeldungen: die Anmeldung ist für {m} Minute(n) "
                "gesperrt.")
_TEXT_ENDED = "Die Sitzung ist beendet. Bitte melden Sie sich erneut an."


@dataclass(frozen=True)
class Principal:
    """An authenticated request."""

    account: str
    role: str                   # "consumer" | "technician"
    consumer: str | None        # the consumer id whose data this account sees
    method: str                 # "certificate" | "digest"
    session: Session
    new_session: bool           # this request began the session (the login was logged now)
    #: the request's cookie named a session that had ended (logout, idle, absolute, ...)
    previous_end: str | None = None

    @property
    def token(self) -> str:
        """The session's form token (``tkn``)."""
        return self.session.token


def session_cookies(request: web.BaseRequest) -> list[str]:
    """Every value of a cookie named exactly ``session`` in the request's Cookie headers.

    Parsed by hand, tolerant of what clients send: ``session=v; Cookie=v`` (py-ppc-smgw), the
    raw Set-Cookie value copied back (``session=v;secure;HttpOnly``, openHAB), quotes."""
    out = []
    for header in request.headers.getall("Cookie", ()):
        for part in header.split(";"):
            name, eq, value = part.partition("=")
            if eq and name.strip() == COOKIE:
                v = value.strip().strip('"')
                if v and v not in out:
                    out.append(v)
    return out


def _peer_cert(request: web.BaseRequest) -> bytes | None:
    transport = request.transport
    if transport is None:
        return None
    sslobj = transport.get_extra_info("ssl_object")
    if sslobj is None:
        return None
    try:
        return sslobj.getpeercert(binary_form=True)
    except ValueError:  # handshake not complete
        return None


def _printable(name: str, limit: int = 64) -> str:
    # an account name as the client sent it, safe for a log text
    clean = "".join(c if c.isprintable() else "?" for c in name)
    return clean[:limit] + ("…" if len(clean) > limit else "")


class HanContext:
    """What a face gets: the data, the accounts and sessions, and authentication.

    Attributes: ``data`` (:class:`smgw.han.data.HanData`), ``accounts``, ``sessions``,
    ``lockout``, ``verifier`` (Digest), ``settings`` (:class:`smgw.han.server.HanSettings`),
    ``emit``, ``now_ms`` (legal time, ms), ``gateway_id``, ``realm``."""

    def __init__(self, *, settings: Any, data: Any, accounts: Accounts, sessions: Sessions,
                 lockout: LockOut, verifier: DigestVerifier, emit: Callable[..., Any],
                 now_ms: Callable[[], int], gateway_id: str,
                 on_accounts_changed: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.data = data
        self.accounts = accounts
        self.sessions = sessions
        self.lockout = lockout
        self.verifier = verifier
        self.emit = emit
        self.now_ms = now_ms
        self.gateway_id = gateway_id
        self._on_accounts_changed = on_accounts_changed

    @property
    def realm(self) -> str:
        return self.accounts.realm

    # ------------------------------------------------------------------ for the faces

    def principal(self, request: web.BaseRequest) -> Principal | None:
        """The principal :meth:`authenticate` established for this request, if any."""
        return request.get(PRINCIPAL_KEY)

    async def authenticate(self, request: web.Request, *, algorithms: Sequence[str] = ("MD5",),
                           uri_paths: Collection[str] = (), ended: str = "renew"
                           ) -> Principal | web.Response:
        """The request's :class:`Principal`, or the 401 response to send (Digest challenge,
        one ``WWW-Authenticate`` header per entry of ``algorithms``; ``resp[REASON_KEY]`` says
        why: missing, malformed, invalid, wrong, unknown-user, stale, replay, locked,
        session-ended).

        ``uri_paths``: paths the Digest ``uri`` may name besides the request's own (a redirect
        root whose credentials clients carry to the target, han-clients.md §B.3).
        ``ended="challenge"``: a request whose cookie names a session that has ended gets one
        401 (a browser then asks for the password again: "Neuanmeldung erforderlich"); the
        default ``"renew"`` logs in again at once (what polling clients need)."""
        p = request.get(PRINCIPAL_KEY)
        if p is not None:
            return p
        if ended not in ("renew", "challenge"):
            raise ValueError(f"ended must be 'renew' or 'challenge', not {ended!r}")
        self.refresh_accounts()
        acct: Account | None = None
        method = "certificate"
        der = _peer_cert(request)
        if der:
            acct = self.accounts.by_cert_der(der)
        if acct is None:
            method = "digest"
            res = self._digest(request, algorithms, uri_paths)
            if isinstance(res, web.Response):
                return res
            acct = res
        cookies = session_cookies(request)
        session, new, previous = self._session(cookies, acct, method, ended)
        if session is None:
            return self.challenge(algorithms, reason="session-ended", text=_TEXT_ENDED)
        p = Principal(acct.name, acct.role, acct.consumer, method, session, new, previous)
        request[PRINCIPAL_KEY] = p
        return p

    async def guard(self, request: web.Request, *roles: str, **kw: Any) -> Principal:
        """:meth:`authenticate` and :meth:`require` in one: raises the 401 (challenge) or 403
        as an ``HTTPException``."""
        p = await self.authenticate(request, **kw)
        if isinstance(p, web.Response):
            headers: CIMultiDict[str] = CIMultiDict()
            for k in ("WWW-Authenticate", "Retry-After"):
                for v in p.headers.getall(k, ()):
                    headers.add(k, v)
            raise web.HTTPUnauthorized(headers=headers, text=p.text)
        return self.require(request, *roles)

    def require(self, request: web.BaseRequest, *roles: str) -> Principal:
        """The request's principal if its role is one of ``roles`` (any role if none given);
        raises 403 (``HTTPForbidden``) for another role, 401 if it was not authenticated."""
        p = self.principal(request)
        if p is None:
            raise web.HTTPUnauthorized(text=_TEXT_401)
        if roles and p.role not in roles:
            raise web.HTTPForbidden(text="Für diese Funktion fehlt die Berechtigung.")
        return p

    def challenge(self, algorithms: Sequence[str] = ("MD5",), *, stale: bool = False,
                  reason: str = "missing", text: str = _TEXT_401,
                  retry_after_s: int | None = None) -> web.Response:
        """A 401 with a fresh Digest challenge."""
        headers: CIMultiDict[str] = CIMultiDict()
        for v in self.verifier.challenge(algorithms, stale=stale):
            headers.add("WWW-Authenticate", v)
        if retry_after_s is not None:
            headers["Retry-After"] = str(retry_after_s)
        resp = web.Response(status=401, text=text, headers=headers)
        resp[REASON_KEY] = reason
        return resp

    def logout(self, request_or_principal: web.BaseRequest | Principal) -> bool:
        """End the session of this request (its cookie is cleared in the response)."""
        p = (request_or_principal if isinstance(request_or_principal, Principal)
             else self.principal(request_or_principal))
        return p is not None and self.sessions.end(p.session.id, "logout")

    # ------------------------------------------------------------------ internals

    def refresh_accounts(self) -> None:
        """Take over changes of the accounts file (the CLI of another process): sessions of
        removed or changed accounts end, new client certificates are trusted."""
        try:
            changed = self.accounts.reload_if_changed()
        except ValueError as e:
            # a broken file (edited by hand): keep serving with the accounts as they were
            log.error("HAN accounts file unreadable; keeping the previous accounts",
                      extra={"fields": {"error": str(e)}})
            return
        if changed:
            for s in self.sessions.live():
                a = self.accounts.get(s.account)
                if a is None or a.role != s.role or a.consumer != s.consumer:
                    self.sessions.end(s.id, "account")
            if self._on_accounts_changed is not None:
                self._on_accounts_changed()

    def _digest(self, request: web.Request, algorithms: Sequence[str],
                uri_paths: Collection[str]) -> Account | web.Response:
        header = next((h for h in request.headers.getall("Authorization", ())
                       if h.strip()[:7].lower() == "digest "), None)
        if header is None:
            return self.challenge(algorithms, reason="missing")
        try:
            params = parse_authorization(header)
        except DigestError as e:
            log.info("malformed Digest credentials", extra={"fields": {"error": str(e)}})
            return self.challenge(algorithms, reason="malformed")
        user = params.get("username") or ""
        until = self.lockout.locked_until(user) if user else None
        if until is not None:
            minutes = max(1, -(-(until - self.lockout.clock_ms()) // 60_000))
            return self.challenge(algorithms, reason="locked",
                                  text=_TEXT_LOCKED.format(m=minutes),
                                  retry_after_s=max(1, (until - self.lockout.clock_ms()) // 1000))
        raw_path = request.raw_path.split("?", 1)[0]
        out = self.verifier.verify(request.method, params, self.accounts.ha1, raw_path,
                                   uri_paths)
        if out.status in ("wrong", "unknown-user"):
            self._failed(user, out)
            return self.challenge(algorithms, reason=out.status)
        if out.status in ("stale", "replay"):
            return self.challenge(algorithms, stale=True, reason=out.status)
        if out.status != "ok":
            log.info("Digest credentials not accepted", extra={"fields": {
                "user": _printable(user), "detail": out.detail}})
            return self.challenge(algorithms, reason="invalid")
        acct = self.accounts.get(user)
        if acct is None:  # removed between the HA1 lookup and now: cannot happen in one thread
            return self.challenge(algorithms, reason="unknown-user")
        self.lockout.succeeded(user)
        return acct

    def _failed(self, user: str, out: Outcome) -> None:
        acct = self.accounts.get(user)
        name = _printable(user)
        consumer_log = acct.consumer if acct is not None and acct.consumer else ""
        ctx = {"account": name, "method": "digest", "reason": out.status,
               "consumer_log": consumer_log}
        try:
            if acct is not None and acct.role == "technician":
                self.emit(EV_TECHNICIAN_LOGIN, {"technician": name, **ctx}, status="failed")
            else:
                self.emit(EV_CONSUMER_LOGIN,
                          {"consumer": name, "errors": "Benutzername oder Passwort falsch",
                           **ctx}, status="failed")
        except Exception:  # noqa: BLE001 - logging must not turn a 401 into a 500
            log.exception("could not log a failed HAN login")
        if self.lockout.failed(user):
            log.warning("HAN login locked after repeated failures", extra={"fields": {
                "account": name, "lock_s": self.lockout.lock_ms // 1000}})
            try:
                self.emit(EV_LOCKED, {"account": name, "consumer_log": consumer_log,
                                      "lock_s": self.lockout.lock_ms // 1000})
            except Exception:  # noqa: BLE001
                log.exception("could not log a HAN lock-out")

    def _session(self, cookies: list[str], acct: Account, method: str, ended: str
                 ) -> tuple[Session | None, bool, str | None]:
        for sid in cookies:
            s = self.sessions.get(sid)
            if (s is not None and s.account == acct.name and s.role == acct.role
                    and s.consumer == acct.consumer):
                self.sessions.touch(s)
                return s, False, None
        previous = next((r for sid in cookies if (r := self.sessions.ended(sid))), None)
        if previous is not None and ended == "challenge" and method == "digest":
            for sid in cookies:
                self.sessions.forget_ended(sid)
            return None, False, previous
        s, new = self.sessions.login(acct.name, acct.role, acct.consumer, method)
        if new:
            self._logged_in(acct, method)
        return s, new, previous

    def _logged_in(self, acct: Account, method: str) -> None:
        ctx = {"account": acct.name, "method": method, "consumer_log": acct.consumer or ""}
        try:
            if acct.role == "technician":
                self.emit(EV_TECHNICIAN_LOGIN, {"technician": acct.name, **ctx})
            else:
                self.emit(EV_CONSUMER_LOGIN, {"consumer": acct.name, **ctx})
        except Exception:  # noqa: BLE001
            log.exception("could not log a HAN login")
