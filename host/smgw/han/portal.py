"""Our consumer portal at ``/``: German HTML for a browser, on the HAN server's TLS
(docs/han-portal.md).

    server.add_face(portal.register)

Pages (all for consumer accounts; a service technician gets a "kein Zugriff" page, never data):

    GET  /                                   start page: system time and validity, firmware,
                                             gateway id, current readings, certificate, self-test
    GET  /zertifikat.pem                     the gateway's signature certificate
    POST /selbsttest                         on-demand self-test (refused within the minimum
                                             interval, with the time of the next allowed test)
    GET  /log, /log.csv                      the consumer log: time range, paging, CSV export
    GET  /messwerte                          usage points (evaluation profiles)
    GET  /messwerte/<profile>                its billing periods (TAF 7: days)
    GET  /messwerte/<profile>/<s>-<e>        one period: table and chart; with .csv, .json or
                                             .xml (TRuDI, VDE AR 2418-6) the downloads
    POST /abmelden, GET /anmelden            logout ("Sie sind abgemeldet"), log in again
    GET  /static/portal.css                  the style sheet (no login needed)

Login is what the HAN core does for every face (:meth:`HanContext.authenticate`): an enrolled
client certificate, else HTTP Digest (SHA-256 offered first, MD5 second; the browser asks for
name and password). The session cookie comes from the core. Logout ends the session and sets a
``abgemeldet`` marker cookie: a browser keeps sending its cached Digest credentials, so without
the marker the next click would log in again silently; with it the next page is the logout page
until the consumer chooses "Erneut anmelden", which answers with a fresh challenge (the browser
then asks for the password again).

In a degraded operating state (anything but normal operation) every page except the style sheet
is the "Kein Zugriff möglich" page (HTTP 503), before any login (seed 002 §7.6).

No JavaScript: reading works with scripts off, forms are plain POSTs carrying the session's form
token (checked on every POST), charts are server-rendered SVG (:mod:`smgw.han.render`).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web

from smgw.han import cosem

from smgw.han import render
from smgw.han.render import Bar, de_date, de_datetime, de_decimal, iso_local
from smgw.tariff.model import (
    SMGW_FATAL,
    SMGW_MANIPULATION,
    SMGW_NO_VALUE,
    SMGW_NOT_BILLING,
    SMGW_TIME_INVALID,
    SMGW_WARNING,
    status_ptb,
)

__all__ = ["Portal", "register"]

log = logging.getLogger("smgw.han.portal")

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

ALGORITHMS = ("SHA-256", "MD5")   # offered in this order; browsers take what they know
LOGGED_OUT = "abgemeldet"          # marker cookie after logout
LOG_PAGE = 50
LOG_DEFAULT_DAYS = 7
LOG_CSV_MAX = 100_000              # entries in one CSV download
CHART_PERIODS = 12                 # TAF 1/2: the chart shows this many periods up to the one shown

TAF_NAMES = {
    1: "Datensparsamer Tarif",
    2: "Zeitvariabler Tarif",
    6: "Ablesung von Messwerten im Bedarfsfall",
    7: "Zählerstandsgangmessung",
    9: "Abruf der Ist-Einspeisung",
    10: "Abruf von Netzzustandsdaten",
    14: "Hochfrequente Messwertbereitstellung",
}
OPSTATES = {"normal": "Normalbetrieb", "restricted": "eingeschränkter Betrieb",
            "minimal": "Minimalbetrieb", "ceased": "Betrieb eingestellt"}
LEVELS = {"INFO": "Info", "WARNING": "Warnung", "ERROR": "Fehler", "FATAL": "Fatal"}
OUTCOMES = {"successful": "erfolgreich", "failed": "fehlgeschlagen"}
TRIGGERS = {"start": "beim Start", "periodic": "regelmäßig", "consumer": "vom Letztverbraucher",
            "technician": "vom Servicetechniker", "gwa": "vom Gateway-Administrator"}
WEEKDAYS = ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag")
MONTHS = ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September",
          "Oktober", "November", "Dezember")
KINDS = {"sum": "Summe", "register": "Register", "reading": "Zählerstand", "min": "Minimum",
         "max": "Maximum", "mean": "Mittelwert"}
# OBIS C.D of electricity (A = 1) -> what it measures
_QUANTITY = {
    (1, 8): "Bezug (Wirkarbeit +A)",
    (2, 8): "Einspeisung (Wirkarbeit −A)",
    (3, 8): "Blindarbeit +R",
    (4, 8): "Blindarbeit −R",
    (16, 7): "Wirkleistung",
    (1, 7): "Wirkleistung Bezug",
    (2, 7): "Wirkleistung Einspeisung",
    (21, 7): "Wirkleistung L1", (41, 7): "Wirkleistung L2", (61, 7): "Wirkleistung L3",
    (36, 7): "Wirkleistung L1", (56, 7): "Wirkleistung L2", (76, 7): "Wirkleistung L3",
    (32, 7): "Spannung L1", (52, 7): "Spannung L2", (72, 7): "Spannung L3",
    (31, 7): "Strom L1", (51, 7): "Strom L2", (71, 7): "Strom L3",
    (14, 7): "Netzfrequenz",
}
_OBIS_RE = re.compile(r"^(\d+)-(\d+):(\d+)\.(\d+)\.(\d+)$")
_PERIOD_RE = r"{period:\d{1,15}-\d{1,15}}"


# ------------------------------------------------------------------ texts


def obis_name(obis: str) -> str:
    """German description of an OBIS code (``1-0:1.8.1`` -> ``Bezug (Wirkarbeit +A),
    Tarifstufe 1``); '' when unknown."""
    m = _OBIS_RE.match(obis)
    if not m:
        return ""
    a, _, c, d, e = (int(x) for x in m.groups())
    if a != 1:
        return {7: "Gas", 8: "Wasser (kalt)", 9: "Wasser (warm)", 6: "Wärme",
                5: "Kälte"}.get(a, "")
    q = _QUANTITY.get((c, d))
    if q is None:
        return ""
    if d == 8 and e == 63:
        return f"{q}, Fehlerregister"
    if d == 8 and e:
        return f"{q}, Tarifstufe {e}"
    if d == 8:
        return f"{q}, gesamt"
    return q


def _short_quantity(obis: str) -> str:
    m = _OBIS_RE.match(obis)
    if m and m.group(1) == "1" and m.group(4) == "8":
        return {"1": "Bezug", "2": "Einspeisung"}.get(m.group(3), "Verbrauch")
    return "Verbrauch"


def status_text(smgw: int | None, meter: int | None = None, *, meter_word: bool = False
                ) -> str:
    """What a status word means, in a few German words. ``meter_word``: ``smgw`` is a meter's
    own status word (the current readings), not the gateway's."""
    if meter_word:
        # FNN basic meter: 17 fatal error, 9/10 manipulation
        st = smgw or 0
        if st & (1 << 17):
            return "Fehler am Zähler"
        if st & ((1 << 9) | (1 << 10)):
            return "Manipulation gemeldet"
        return "in Ordnung"
    if smgw is None:
        return "–"
    parts = []
    if smgw & SMGW_FATAL:
        parts.append("fataler Fehler")
    if smgw & SMGW_MANIPULATION:
        parts.append("Manipulation gemeldet")
    if smgw & SMGW_TIME_INVALID:
        parts.append("Zeit ungültig")
    if smgw & SMGW_NO_VALUE:
        parts.append("kein Messwert")
    if smgw & SMGW_WARNING:
        parts.append("Warnung")
    if not parts and status_ptb(smgw, meter) == 0:
        parts.append("in Ordnung")
    if smgw & SMGW_NOT_BILLING:
        parts.append("nicht abrechnungsrelevant")
    return ", ".join(parts) or "auffällig"


def _csv_decimal(d: Decimal) -> str:
    return f"{d:f}".replace(".", ",")


def _minutes(seconds: float) -> str:
    m = round(seconds / 60)
    return "einer Minute" if m == 1 else f"{m} Minuten"


# ------------------------------------------------------------------ the face


def register(app: web.Application, ctx: Any) -> None:
    """Adds the portal's routes to the HAN server's application."""
    Portal(ctx).add_routes(app)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Portal:
    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
            undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        self.css = (STATIC / "portal.css").read_bytes()
        self.css_url = "/static/portal.css?v=" + hashlib.sha256(self.css).hexdigest()[:12]

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/static/portal.css", self.stylesheet)
        r.add_get("/", self._page(self.start))
        r.add_get("/zertifikat.pem", self._page(self.certificate))
        r.add_post("/selbsttest", self._page(self.selftest))
        r.add_get("/log", self._page(self.consumer_log))
        r.add_get("/log.csv", self._page(self.consumer_log_csv))
        r.add_get("/messwerte", self._page(self.usage_points))
        r.add_get("/messwerte/{profile}", self._page(self.periods))
        r.add_get("/messwerte/{profile}/" + _PERIOD_RE, self._page(self.period))
        for ext in ("csv", "json", "xml"):
            r.add_get(f"/messwerte/{{profile}}/{_PERIOD_RE}.{ext}",
                      self._page(self.download, ext=ext))
        r.add_post("/abmelden", self.logout)
        r.add_get("/anmelden", self.login_again)

    # -------------------------------------------------------------- rendering

    def _tz(self) -> str:
        return render.LOCAL_TZ

    def html(self, template: str, status: int = 200, *, principal: Any = None,
             headers: dict[str, str] | None = None, **values: Any) -> web.Response:
        ctx = {
            "gateway_id": self.ctx.gateway_id,
            "static_url": self.css_url,
            "tz_name": "Europe/Berlin",
            "user": principal.account if principal is not None else None,
            "consumer": principal.consumer if principal is not None else None,
            "via_cert": principal is not None and principal.method == "certificate",
            "token": principal.token if principal is not None else "",
            "active": "",
            **values,
        }
        body = self.env.get_template(template).render(**ctx)
        return web.Response(text=body, status=status, content_type="text/html",
                            charset="utf-8", headers=headers)

    def message(self, status: int, title: str, paragraphs: Sequence[str], *,
                principal: Any = None, kind: str = "info", back_url: str | None = None,
                back_text: str | None = None, headers: dict[str, str] | None = None,
                **values: Any) -> web.Response:
        return self.html("portal_message.html", status, principal=principal, headers=headers,
                         title=title, heading=title, paragraphs=list(paragraphs), kind=kind,
                         back_url=back_url, back_text=back_text, **values)

    def not_found(self, principal: Any) -> web.Response:
        return self.message(404, "Nicht gefunden",
                            ["Diese Seite gibt es nicht, oder sie gehört nicht zu Ihren Daten."],
                            principal=principal, kind="error", back_url="/messwerte",
                            back_text="Zu den Messwerten")

    # -------------------------------------------------------------- access

    def blocked(self) -> web.Response | None:
        """The "Kein Zugriff möglich" page while the operating state switches the HAN off."""
        try:
            state = self.ctx.data.smgw_info().get("opstate")
        except Exception:  # noqa: BLE001 - no state known: no access either
            log.exception("operating state unknown; HAN portal closed")
            state = "unknown"
        if isinstance(state, dict):
            state = state.get("state")
        # the same rule as the M2M and CGI faces: the HAN is off in minimal and ceased
        # operation (seed 000 §2.6); restricted operation still shows the consumer their data
        if state is None or (state != "unknown" and not cosem.han_switched_off(state)):
            return None
        return self.message(
            503, "Kein Zugriff möglich",
            ["Zurzeit ist leider kein Zugriff möglich.",
             "Das Smart-Meter-Gateway arbeitet zurzeit nur mit eingeschränktem Funktionsumfang. Der "
             "Gateway-Administrator wurde bereits informiert. Bitte versuchen Sie es später "
             "erneut."],
            kind="error", headers={"Retry-After": "600"})

    def unauthorized(self, challenge: web.Response) -> web.Response:
        """The core's 401 with a German page as its body (what the browser shows when the
        login dialog is cancelled)."""
        from smgw.han.auth import REASON_KEY

        reason = challenge.get(REASON_KEY, "missing")
        if reason == "locked":
            text = ["Zu viele fehlgeschlagene Anmeldungen: Die Anmeldung ist für einige "
                    "Minuten gesperrt.", "Bitte versuchen Sie es später erneut."]
        elif reason == "session-ended":
            text = ["Ihre Sitzung ist beendet. Bitte melden Sie sich erneut an."]
        else:
            text = ["Bitte melden Sie sich mit Ihrem Benutzernamen und Passwort oder mit Ihrem "
                    "Client-Zertifikat an.",
                    "Die Zugangsdaten erhalten Sie von Ihrem Messstellenbetreiber."]
        resp = self.message(401, "Anmeldung erforderlich", text, kind="error",
                            back_url="/anmelden", back_text="Anmelden")
        for k in ("WWW-Authenticate", "Retry-After"):
            for v in challenge.headers.getall(k, ()):
                resp.headers.add(k, v)
        resp[REASON_KEY] = reason
        return resp

    @staticmethod
    def _client_cert(request: web.BaseRequest) -> bytes | None:
        t = request.transport
        obj = t.get_extra_info("ssl_object") if t is not None else None
        if obj is None:
            return None
        try:
            return obj.getpeercert(binary_form=True)
        except ValueError:
            return None

    def logged_out_page(self, status: int = 200,
                        headers: dict[str, str] | None = None) -> web.Response:
        return self.message(status, "Abgemeldet", ["Sie sind abgemeldet.",
                                                   "Ihre Sitzung wurde beendet."],
                            kind="ok", back_url="/anmelden", back_text="Erneut anmelden",
                            headers=headers)

    def _page(self, fn: Callable[..., Awaitable[web.StreamResponse]], **kw: Any) -> Handler:
        """A consumer page: blocked state, logout marker, login, role check, then ``fn``."""

        async def handler(request: web.Request) -> web.StreamResponse:
            b = self.blocked()
            if b is not None:
                return b
            if request.cookies.get(LOGGED_OUT):
                return self.logged_out_page()
            p = await self.ctx.authenticate(request, algorithms=ALGORITHMS, ended="challenge")
            if isinstance(p, web.Response):
                return self.unauthorized(p) if p.status == 401 else p
            if p.role != "consumer" or not p.consumer:
                return self.message(
                    403, "Kein Zugriff",
                    ["Das Portal zeigt Messwerte und das Letztverbraucher-Log eines "
                     "Letztverbrauchers. Mit einem Servicetechniker-Zugang haben Sie hier "
                     "keinen Zugriff.",
                     "Die Funktionen für Servicetechniker finden Sie unter "
                     "/cgi-bin/hanservicetech.cgi."],
                    kind="error", logout_token=p.token)
            if request.method == "POST":
                form = await request.post()
                if form.get("token") != p.token:
                    return self.message(
                        403, "Formular abgelaufen",
                        ["Das Formular gehört nicht zu Ihrer aktuellen Sitzung. Bitte laden "
                         "Sie die Seite neu und versuchen Sie es noch einmal."],
                        principal=p, kind="error", back_url="/")
            try:
                return await fn(request, p, **kw)
            except PermissionError:
                return self.not_found(p)

        return handler

    # -------------------------------------------------------------- static, login, logout

    async def stylesheet(self, request: web.Request) -> web.Response:
        return web.Response(body=self.css, content_type="text/css", charset="utf-8",
                            headers={"Cache-Control": "public, max-age=86400"})

    async def logout(self, request: web.Request) -> web.StreamResponse:
        b = self.blocked()
        if b is not None:
            return b
        marker = {"Set-Cookie": f"{LOGGED_OUT}=1; Path=/; Secure; HttpOnly; SameSite=Strict"}
        if request.cookies.get(LOGGED_OUT):
            return self.logged_out_page(headers=marker)
        p = await self.ctx.authenticate(request, algorithms=ALGORITHMS, ended="challenge")
        if isinstance(p, web.Response):
            return self.logged_out_page(headers=marker)
        form = await request.post()
        if form.get("token") != p.token:
            return self.message(403, "Formular abgelaufen",
                                ["Bitte laden Sie die Seite neu und melden Sie sich dann ab."],
                                principal=p, kind="error", back_url="/")
        self.ctx.logout(p)
        return self.logged_out_page(headers=marker)

    async def login_again(self, request: web.Request) -> web.StreamResponse:
        b = self.blocked()
        if b is not None:
            return b
        clear = f"{LOGGED_OUT}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict"
        if request.cookies.get(LOGGED_OUT):
            der = self._client_cert(request)
            if der and self.ctx.accounts.by_cert_der(der) is not None:
                raise web.HTTPSeeOther("/", headers={"Set-Cookie": clear})
            # a fresh challenge: the browser drops the credentials it cached and asks again
            resp = self.unauthorized(self.ctx.challenge(ALGORITHMS, reason="missing"))
            resp.headers.add("Set-Cookie", clear)
            return resp
        p = await self.ctx.authenticate(request, algorithms=ALGORITHMS, ended="challenge")
        if isinstance(p, web.Response):
            return self.unauthorized(p) if p.status == 401 else p
        raise web.HTTPSeeOther("/")

    # -------------------------------------------------------------- start page

    def _system(self, info: dict[str, Any]) -> dict[str, Any]:
        fw = []
        for c in info.get("firmware") or ():
            name, version, digest = (list(c) + ["", "", ""])[:3]
            fw.append({"name": name, "version": version or "–", "hash": digest or "–"})
        t = int(info.get("time_ms") or self.ctx.now_ms())
        state = info.get("opstate")
        if isinstance(state, dict):
            state = state.get("state")
        return {"time_text": de_datetime(t), "time_iso": iso_local(t),
                "time_valid": bool(info.get("time_valid")), "firmware": fw,
                "opstate_text": OPSTATES.get(state or "normal", str(state))}

    def _selftest_view(self, info: dict[str, Any]) -> dict[str, str]:
        last = info.get("selftest_last")
        if isinstance(last, dict) and last.get("started_ms"):
            result = "bestanden" if last.get("ok") else "nicht bestanden"
            trig = TRIGGERS.get(str(last.get("trigger")), str(last.get("trigger") or ""))
            last_text = f"{de_datetime(int(last['started_ms']))}, {result}" + (
                f" (ausgelöst {trig})" if trig else "")
        else:
            last_text = "–"
        nxt = int(info.get("selftest_next_allowed_ms") or 0)
        now = int(info.get("time_ms") or self.ctx.now_ms())
        next_text = "jetzt" if nxt <= now else f"ab {de_datetime(nxt)}"
        return {"last_text": last_text, "next_text": next_text}

    async def start(self, request: web.Request, p: Any) -> web.Response:
        data = self.ctx.data
        info = data.smgw_info()
        meters: dict[str, list[dict[str, Any]]] = {m: [] for m in data.meters(p.consumer)}
        for c in data.current(p.consumer):
            value, unit = render.quantity(c["value"], c["scaler"], c["unit"])
            meters.setdefault(c["meter"], []).append({
                "obis": c["obis"], "name": obis_name(c["obis"]),
                "time_text": de_datetime(c["capture_ms"]), "time_iso": iso_local(c["capture_ms"]),
                "value": value, "unit": unit,
                "status": (status_text(c.get("status"), meter_word=True)
                           if c.get("time_valid", True) else "Zeit ungültig")})
        for rows in meters.values():
            rows.sort(key=lambda r: _obis_key(r["obis"]))
        return self.html("portal_start.html", principal=p, title="Startseite", active="start",
                         sys=self._system(info), selftest=self._selftest_view(info),
                         meters=[{"meter_id": m, "rows": rows} for m, rows in meters.items()])

    async def certificate(self, request: web.Request, p: Any) -> web.Response:
        pem = self.ctx.data.signature_certificate_pem()
        name = f"{self.ctx.gateway_id}-signaturzertifikat.pem"
        return web.Response(body=pem, content_type="application/x-pem-file",
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})

    async def selftest(self, request: web.Request, p: Any) -> web.Response:
        from smgw.han.data import SelfTestBusy, SelfTestTooSoon

        try:
            report = self.ctx.data.selftest("consumer", p.consumer)
        except SelfTestTooSoon as e:
            interval = getattr(self.ctx.settings, "selftest_min_interval_s", 600.0)
            day, time = de_date(e.next_allowed_ms), render.de_time(e.next_allowed_ms,
                                                                   seconds=True)
            return self.message(
                429, "Selbsttest nicht möglich",
                [f"Ein Selbsttest kann nur alle {_minutes(interval)} ausgelöst werden.",
                 f"Der nächste Selbsttest ist am {day} um {time} Uhr möglich."],
                principal=p, kind="error", back_url="/", back_text="Zur Startseite",
                headers={"Retry-After": str(max(1, (e.next_allowed_ms
                                                    - int(self.ctx.now_ms())) // 1000))})
        except SelfTestBusy:
            return self.message(409, "Selbsttest läuft",
                                ["Ein Selbsttest läuft bereits. Sein Ergebnis steht gleich in "
                                 "Ihrem Letztverbraucher-Log."],
                                principal=p, kind="error", back_url="/",
                                back_text="Zur Startseite")
        ok = bool(report.get("ok", True)) if isinstance(report, dict) else True
        return self.message(
            200, "Selbsttest",
            ["Der Selbsttest wurde ausgelöst und ist abgeschlossen: "
             + ("bestanden." if ok else "nicht bestanden."),
             "Das Ergebnis steht in Ihrem Letztverbraucher-Log."],
            principal=p, kind="ok" if ok else "error", back_url="/",
            back_text="Zur Startseite")

    # -------------------------------------------------------------- consumer log

    def _log_range(self, request: web.Request) -> tuple[int | None, int | None, str, str,
                                                         str | None]:
        q = request.query
        if "von" not in q and "bis" not in q:
            # the last LOG_DEFAULT_DAYS local days, today included (noon steps: DST-proof)
            noon = render.local_day_start(int(self.ctx.now_ms())) + 12 * 3_600_000
            start = render.local_day_start(noon - (LOG_DEFAULT_DAYS - 1) * 86_400_000)
            return (start, None, _iso_date(start), "", None)
        von, bis = q.get("von", "").strip(), q.get("bis", "").strip()
        try:
            a = render.parse_local(von)
            b = render.parse_local(bis, end=True)
        except ValueError as e:
            return (None, None, von, bis, str(e))
        if a is not None and b is not None and b <= a:
            return (a, b, von, bis,
                    "„Bis“ liegt vor „Von“; es werden keine Einträge gezeigt.")
        return (a, b, von, bis, None)

    async def consumer_log(self, request: web.Request, p: Any) -> web.Response:
        a, b, von, bis, error = self._log_range(request)
        after = request.query.get("nach")
        page_no = _int(request.query.get("seite"), 1)
        entries: list[dict[str, Any]] = []
        next_url = None
        query = _query(von=von, bis=bis)
        if error is None:
            page = self.ctx.data.consumer_log(p.consumer, a, b, limit=LOG_PAGE,
                                              after=_int(after, None))
            for e in page.entries:
                entries.append({"seq": e.seq, "time_text": de_datetime(e.ts_ms),
                                "time_iso": iso_local(e.ts_ms), "time_valid": e.time_valid,
                                "level": LEVELS.get(e.level, e.level),
                                "status": OUTCOMES.get(e.status, e.status), "text": e.text,
                                "event": e.event_id})
            if page.next_after is not None:
                more = _query(von=von, bis=bis, nach=page.next_after, seite=page_no + 1)
                next_url = f"/log?{more}"
        range_text = _range_text(a, b)
        return self.html("portal_log.html", principal=p, title="Letztverbraucher-Log",
                         active="log", von=_date_value(von), bis=_date_value(bis), error=error,
                         entries=entries, next_url=next_url, page_no=page_no, query=query,
                         range_text=range_text)

    async def consumer_log_csv(self, request: web.Request, p: Any) -> web.Response:
        a, b, von, bis, error = self._log_range(request)
        if error is not None:
            return self.message(400, "Ungültiger Zeitraum", [error], principal=p, kind="error",
                                back_url="/log")
        text = self._log_csv(p, a, b)
        stamp = dt.datetime.fromtimestamp(int(self.ctx.now_ms()) / 1000, ZoneInfo(self._tz()))
        name = f"letztverbraucher-log-{p.consumer}-{stamp:%Y%m%d-%H%M%S}.csv"
        return web.Response(text=text, content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{name}"'})

    def _log_csv(self, p: Any, a: int | None, b: int | None) -> str:
        """The selection as a German CSV (semicolons, UTF-8 with BOM), oldest first."""
        buf = io.StringIO()
        buf.write("\ufeff")
        w = csv.writer(buf, delimiter=";", lineterminator="\r\n")
        w.writerow(["Nr.", "Zeitpunkt", "Zeit gültig", "Stufe", "Ergebnis", "Ereignis",
                    "Meldung"])
        after = None
        n = 0
        while n < LOG_CSV_MAX:
            page = self.ctx.data.consumer_log(p.consumer, a, b, limit=1000, after=after)
            for e in page.entries:
                w.writerow([e.seq, iso_local(e.ts_ms), "ja" if e.time_valid else "nein",
                            LEVELS.get(e.level, e.level), OUTCOMES.get(e.status, e.status),
                            e.event_id, e.text])
            n += len(page.entries)
            if page.next_after is None:
                break
            after = page.next_after
        return buf.getvalue()

    # -------------------------------------------------------------- usage points, periods

    def _profiles(self, p: Any) -> list[Any]:
        return self.ctx.data.usage_points(p.consumer)

    def _profile(self, p: Any, name: str) -> Any:
        sp = next((x for x in self._profiles(p) if x.name == name), None)
        if sp is None:
            raise PermissionError(name)
        return sp

    def _up_view(self, sp: Any) -> dict[str, Any]:
        ep = sp.profile
        tz = ep.timezone
        if ep.valid_until_ms is None:
            valid = f"ab {de_date(ep.valid_from_ms, tz)}"
        else:
            valid = f"{de_date(ep.valid_from_ms, tz)} bis {de_date(ep.valid_until_ms, tz)}"
        now = int(self.ctx.now_ms())
        if sp.removed_ms is not None:
            state = "gelöscht"
        elif sp.active:
            state = "aktiv"
        elif ep.valid_from_ms > now:
            state = "noch nicht gültig"
        else:
            state = "beendet"
        return {"name": sp.name, "taf": ep.taf, "taf_name": TAF_NAMES.get(ep.taf, ""),
                "usage_point": ep.usage_point, "supplier": ep.supplier,
                "meters": ", ".join(sorted({ch.meter for ch in ep.channels})),
                "valid": valid, "state": state, "url": f"/messwerte/{sp.name}"}

    async def usage_points(self, request: web.Request, p: Any) -> web.Response:
        ups = [self._up_view(sp) for sp in self._profiles(p)]
        return self.html("portal_usage_points.html", principal=p, title="Messwerte",
                         active="values", usage_points=ups)

    def _taf7_days(self, p: Any, sp: Any) -> list[tuple[int, int]]:
        data = self.ctx.data
        first = data.derived(p.consumer, sp.name, limit=1)
        last = data.derived(p.consumer, sp.name, limit=1, newest_first=True)
        if not first or not last:
            return []
        tz = sp.profile.timezone
        # a day holds the instants in (00:00, 24:00]; a first value at a midnight is only the
        # reference of the day after it
        a = render.local_day_start(first[0].value.target_ms, tz)
        b = render.local_day_start(last[0].value.target_ms - 1, tz)
        return render.local_days(a, b + 1, tz) if b >= a else []

    def _period_list(self, p: Any, sp: Any) -> list[tuple[int, int]]:
        if sp.profile.taf == 7:
            return self._taf7_days(p, sp)
        return self.ctx.data.billing_periods(p.consumer, sp.name)

    async def periods(self, request: web.Request, p: Any) -> web.Response:
        sp = self._profile(p, request.match_info["profile"])
        tz = sp.profile.timezone
        periods = self._period_list(p, sp)
        groups: list[dict[str, Any]] = []
        for a, b in reversed(periods):
            d = dt.datetime.fromtimestamp(a / 1000, ZoneInfo(tz))
            if sp.profile.taf == 7:
                title = f"{MONTHS[d.month - 1]} {d.year}"
                text = f"{WEEKDAYS[d.weekday()]}, {d:%d.%m.%Y}"
            else:
                title = str(d.year)
                text = _period_text(a, b, tz)
            if not groups or groups[-1]["title"] != title:
                groups.append({"title": title, "periods": []})
            groups[-1]["periods"].append({"text": text,
                                          "url": f"/messwerte/{sp.name}/{a}-{b}"})
        if sp.profile.taf == 7:
            heading = "Tage"
            intro = ("Die Zählerstandsgangmessung bildet alle 15 Minuten einen Zählerstand. "
                     "Wählen Sie einen Tag, um seine Viertelstundenwerte zu sehen.")
        else:
            heading = "Abrechnungszeiträume"
            intro = "Wählen Sie einen Abrechnungszeitraum, um seine Werte zu sehen."
        return self.html("portal_periods.html", principal=p, title=f"{sp.name}: {heading}",
                         active="values", up=self._up_view(sp), heading=heading, intro=intro,
                         groups=groups)

    def _check_period(self, p: Any, sp: Any, text: str) -> tuple[int, int, list]:
        """(start, end, the profile's period list) for a period in the URL; PermissionError
        (-> 404) for one the profile does not have."""
        a_s, _, b_s = text.partition("-")
        a, b = int(a_s), int(b_s)
        periods = self._period_list(p, sp)
        if (a, b) not in periods:
            raise PermissionError(text)
        return a, b, periods

    # -------------------------------------------------------------- one period

    def _values(self, p: Any, sp: Any, a: int, b: int) -> list[Any]:
        """The stored values of the period: TAF 7 the grid instants in [a, b] (the one at a
        is the reference for the first quarter hour), otherwise the values formed for exactly
        this period."""
        vals = self.ctx.data.derived(p.consumer, sp.name, a, b + 1)
        if sp.profile.taf == 7:
            return vals
        # a reading at the period start is stored once, as the end reading of the period
        # before (same register, owner and instant): it is this period's start reading too
        return [v for v in vals if (v.value.period_start_ms, v.value.period_end_ms) == (a, b)
                or (v.value.kind == "reading" and v.value.target_ms == a)]

    async def period(self, request: web.Request, p: Any) -> web.Response:
        sp = self._profile(p, request.match_info["profile"])
        a, b, periods = self._check_period(p, sp, request.match_info["period"])
        tz = sp.profile.timezone
        i = periods.index((a, b))
        prev_url = f"/messwerte/{sp.name}/{periods[i - 1][0]}-{periods[i - 1][1]}" if i else None
        next_url = (f"/messwerte/{sp.name}/{periods[i + 1][0]}-{periods[i + 1][1]}"
                    if i + 1 < len(periods) else None)
        values = self._values(p, sp, a, b)
        view: dict[str, Any] = {"registers": [], "series": None, "charts": [], "problems": []}
        if sp.profile.taf == 7:
            view.update(self._taf7_view(sp, a, b, values))
            heading = f"Viertelstundenwerte vom {de_date(a, tz)}"
        else:
            view.update(self._register_view(p, sp, a, b, values, periods[:i + 1]))
            heading = f"Abrechnungszeitraum {_period_text(a, b, tz)}"
        return self.html("portal_period.html", principal=p, title=heading, active="values",
                         up=self._up_view(sp), heading=heading,
                         period_text=_period_text(a, b, tz),
                         period_long=f"{de_datetime(a, tz)} bis {de_datetime(b, tz)}",
                         base_url=f"/messwerte/{sp.name}/{a}-{b}", prev_url=prev_url,
                         next_url=next_url, **view)

    def _taf7_view(self, sp: Any, a: int, b: int, values: list[Any]) -> dict[str, Any]:
        ep = sp.profile
        tz = ep.timezone
        step = ep.registration_period_s * 1000
        cols = [(ch.meter, ch.obis) for ch in ep.channels]
        several = len({m for m, _ in cols}) > 1
        by: dict[tuple[str, str], dict[int, Any]] = {c: {} for c in cols}
        for sv in values:
            by.setdefault((sv.value.owner, sv.value.register), {})[sv.value.target_ms] = sv.value
        # the instants of the day up to the newest formed value (today: no empty future rows)
        last = max((sv.value.target_ms for sv in values), default=a)
        grid = list(range(a + step, min(b, last) + 1, step))
        head = [{"text": "Registrierzeitpunkt", "num": False}]
        charts = []
        series_cols = []
        for meter, obis in cols:
            col = by[(meter, obis)]
            unit = next((v.unit for v in col.values()), "Wh")
            shown = render.display_unit(unit)
            label = f"{meter} {obis}" if several else obis
            head.append({"text": f"{label} Zählerstand ({shown})", "num": True})
            head.append({"text": f"{_short_quantity(obis)} ({shown})", "num": True})
            points = [(t, render.to_decimal(v.value, v.scaler)) for t, v in sorted(col.items())]
            cons = dict(render.interval_consumption(points, grid, step))
            series_cols.append((col, cons, unit))
            bars = [Bar(_hour_label(t, b, tz),
                        f"{de_date(t - step, tz)} {render.de_time(t - step, tz)}–"
                        f"{render.de_time(t, tz)}",
                        None if cons[t] is None else render.scaled(cons[t], unit))
                    for t in grid]
            q = _short_quantity(obis)
            charts.append({
                "svg": render.bar_chart(bars, chart_id=f"chart-{len(charts)}",
                                        title=f"{q} je Viertelstunde am {de_date(a, tz)} "
                                              f"({label})", unit=shown, label_at="end"),
                "caption": f"{q} je Viertelstunde in {shown}, {label}.",
                "table_caption": "Viertelstundenwerte"})
        head.append({"text": "Erfassungszeitpunkt", "num": False})
        head.append({"text": "Status", "num": False})
        rows = []
        for t in grid:
            cells = []
            capture = None
            statuses = []
            for col, cons, unit in series_cols:
                v = col.get(t)
                if v is None:
                    cells += [{"text": "–", "num": True}, {"text": "–", "num": True}]
                    statuses.append("kein Wert")
                    continue
                capture = capture or v.capture_ms
                val, _ = render.quantity(v.value, v.scaler, v.unit)
                c = cons.get(t)
                cells.append({"text": val, "num": True})
                cells.append({"text": "–" if c is None else de_decimal(render.scaled(c, unit), 4)
                              if unit in ("Wh", "varh", "VAh") else de_decimal(c), "num": True})
                statuses.append(status_text(v.status, v.meter_status))
            uniq = list(dict.fromkeys(statuses))
            cells.append({"text": render.de_time(capture, tz, seconds=True) if capture else "–",
                          "num": False})
            cells.append({"text": ", ".join(uniq), "num": False})
            rows.append({"time_text": "24:00" if t == b else render.de_time(t, tz),
                         "time_iso": iso_local(t, tz), "cells": cells})
        missing = sum(1 for t in grid for col, _, _ in series_cols if t not in col)
        problems = []
        if values and missing:
            problems.append(f"Zu {missing} Zeitpunkten liegt kein Wert vor (Lücke). Lücken "
                            "werden nicht aufgefüllt.")
        return {"series": {"caption": "Viertelstundenwerte", "head": head, "rows": rows},
                "charts": charts, "problems": problems}

    def _register_view(self, p: Any, sp: Any, a: int, b: int, values: list[Any],
                       history: list[tuple[int, int]]) -> dict[str, Any]:
        ep = sp.profile
        tz = ep.timezone
        order = {"sum": 0, "register": 1, "reading": 2}
        regs = []
        for sv in sorted(values, key=lambda s: (order.get(s.value.kind, 3), s.value.register,
                                                s.value.owner, s.value.target_ms)):
            v = sv.value
            val, unit = render.quantity(v.value, v.scaler, v.unit)
            name = obis_name(v.register)
            if v.kind == "sum":
                name = f"{name} – Verbrauch im Zeitraum (Summe)"
            elif v.kind == "register":
                name = f"{name} – Verbrauch im Zeitraum" + (
                    f", Zähler {v.owner}" if v.owner != ep.name else "")
            elif v.kind == "reading":
                name = ("Zählerstand zu Beginn" if v.target_ms == a else "Zählerstand am Ende") \
                    + f", Zähler {v.owner}"
            else:
                name = f"{name} – {KINDS.get(v.kind, v.kind)}"
            regs.append({"register": v.register, "name": name,
                         "time_text": de_datetime(v.target_ms, tz),
                         "time_iso": iso_local(v.target_ms, tz), "value": val, "unit": unit,
                         "status": status_text(v.status, v.meter_status),
                         "signed": "ja" if sv.signature else "nein"})
        # chart: the period's sum register(s) next to the periods before it
        hist = history[-CHART_PERIODS:]
        charts = []
        rows = []
        head = [{"text": "Zeitraum", "num": False}]
        if hist:
            older = self.ctx.data.derived(p.consumer, sp.name, hist[0][0], b + 1)
            sums: dict[str, dict[tuple[int, int], Any]] = {}
            for sv in older:
                v = sv.value
                if v.kind == "sum":
                    sums.setdefault(v.register, {})[(v.period_start_ms, v.period_end_ms)] = v
            for reg, per in sorted(sums.items()):
                unit = next(iter(per.values())).unit
                shown = render.display_unit(unit)
                head.append({"text": f"{_short_quantity(reg)} {reg} ({shown})", "num": True})
                bars = []
                for s, e in hist:
                    v = per.get((s, e))
                    val = None if v is None else render.scaled(
                        render.to_decimal(v.value, v.scaler), unit)
                    bars.append(Bar(_short_period(s, e, tz), _period_text(s, e, tz), val))
                charts.append({
                    "svg": render.bar_chart(bars, chart_id=f"chart-{len(charts)}",
                                            title=f"{_short_quantity(reg)} je "
                                                  f"Abrechnungszeitraum ({reg})", unit=shown),
                    "caption": f"{_short_quantity(reg)} in den letzten {len(hist)} "
                               f"Abrechnungszeiträumen in {shown}; der letzte Balken ist der "
                               f"gewählte Zeitraum.",
                    "table_caption": "Verbrauch je Abrechnungszeitraum"})
            for s, e in hist:
                cells = []
                for reg, per in sorted(sums.items()):
                    v = per.get((s, e))
                    cells.append({"text": "–" if v is None else
                                  render.quantity(v.value, v.scaler, v.unit)[0], "num": True})
                rows.append({"time_text": _period_text(s, e, tz), "time_iso": iso_local(s, tz),
                             "cells": cells})
        series = ({"caption": "Verbrauch je Abrechnungszeitraum", "head": head, "rows": rows}
                  if charts else None)
        problems = [] if values else ["Für diesen Zeitraum wurden keine Werte gebildet."]
        return {"registers": regs, "series": series, "charts": charts, "problems": problems}

    # -------------------------------------------------------------- downloads

    async def download(self, request: web.Request, p: Any, ext: str) -> web.Response:
        sp = self._profile(p, request.match_info["profile"])
        a, b, _ = self._check_period(p, sp, request.match_info["period"])
        tz = sp.profile.timezone
        values = self._values(p, sp, a, b)
        if sp.profile.taf == 7:
            values = [v for v in values if a < v.value.target_ms <= b]
        z = ZoneInfo(tz)
        fa = dt.datetime.fromtimestamp(a / 1000, z).strftime("%Y%m%d")
        fb = dt.datetime.fromtimestamp(b / 1000, z).strftime("%Y%m%d")
        stem = f"{sp.name}_{fa}-{fb}"
        if ext == "csv":
            body = self._csv(sp, values).encode("utf-8-sig")
            ctype = "text/csv"
        elif ext == "json":
            body = json.dumps(self._json(p, sp, a, b, values), ensure_ascii=False,
                              indent=1).encode()
            ctype = "application/json"
        else:
            body = self._trudi(p, sp, a, b, values)
            ctype = "application/xml"
            stem += "_trudi"
        return web.Response(body=body, content_type=ctype, charset="utf-8", headers={
            "Content-Disposition": f'attachment; filename="{stem}.{ext}"'})

    def _csv(self, sp: Any, values: list[Any]) -> str:
        """Semicolon-separated, decimal comma, UTF-8 with BOM: what a German spreadsheet
        opens as it is. Energy in kWh with every digit the meter gave."""
        tz = sp.profile.timezone
        buf = io.StringIO()
        w = csv.writer(buf, delimiter=";", lineterminator="\r\n")
        w.writerow(["Zeitpunkt", "Erfassungszeitpunkt", "Zeitraum Beginn", "Zeitraum Ende",
                    "Zähler/Profil", "Register", "Art", "Wert", "Einheit", "Status SMGW",
                    "Status Zähler", "Status PTB", "Zeit gültig", "Signatur"])
        for sv in sorted(values, key=lambda s: (s.value.target_ms, s.value.owner,
                                                s.value.register)):
            v = sv.value
            d = render.scaled(render.to_decimal(v.value, v.scaler), v.unit)
            w.writerow([iso_local(v.target_ms, tz), iso_local(v.capture_ms, tz),
                        iso_local(v.period_start_ms, tz), iso_local(v.period_end_ms, tz),
                        v.owner, v.register, KINDS.get(v.kind, v.kind), _csv_decimal(d),
                        render.display_unit(v.unit), f"{v.status:08X}",
                        "" if v.meter_status is None else f"{v.meter_status:08X}",
                        status_ptb(v.status, v.meter_status),
                        "ja" if v.time_valid else "nein",
                        sv.signature.hex() if sv.signature else ""])
        return buf.getvalue()

    def _json(self, p: Any, sp: Any, a: int, b: int, values: list[Any]) -> dict[str, Any]:
        ep = sp.profile
        tz = ep.timezone
        out = []
        for sv in sorted(values, key=lambda s: (s.value.target_ms, s.value.owner,
                                                s.value.register)):
            v = sv.value
            out.append({
                "register": v.register, "owner": v.owner, "kind": v.kind, "stage": v.stage,
                "target": iso_local(v.target_ms, tz), "target_ms": v.target_ms,
                "capture": iso_local(v.capture_ms, tz) or None, "capture_ms": v.capture_ms,
                "period_start": iso_local(v.period_start_ms, tz),
                "period_end": iso_local(v.period_end_ms, tz),
                "value": str(v.value), "scaler": v.scaler, "unit": v.unit,
                "value_decimal": f"{render.to_decimal(v.value, v.scaler):f}",
                "status": f"{v.status:08X}",
                "meter_status": None if v.meter_status is None else f"{v.meter_status:08X}",
                "status_ptb": status_ptb(v.status, v.meter_status),
                "time_valid": v.time_valid, "billing": v.billing,
                "signature": sv.signature.hex() if sv.signature else None})
        return {"gateway_id": self.ctx.gateway_id, "consumer": p.consumer,
                "profile": sp.name, "taf": ep.taf, "usage_point": ep.usage_point,
                "supplier": ep.supplier, "timezone": tz,
                "period": {"start": iso_local(a, tz), "end": iso_local(b, tz), "start_ms": a,
                           "end_ms": b},
                "created": iso_local(int(self.ctx.now_ms()), tz), "values": out}

    def _trudi(self, p: Any, sp: Any, a: int, b: int, values: list[Any]) -> bytes:
        from cryptography.hazmat.primitives.serialization import Encoding

        from smgw.formats.trudi import TrudiExport, trudi_document

        data = self.ctx.data
        info = data.smgw_info()
        ep = sp.profile
        certs: list[tuple] = [(1, 1, data.signature_certificate_pem())]
        ks = getattr(data, "keystore", None)
        chain = getattr(getattr(ks, "sig", None), "chain", ()) or ()
        if chain:
            certs.append((2, 2, chain[0].public_bytes(Encoding.DER)))
        log_entries: list[Any] = []
        after = None
        while True:
            page = data.consumer_log(p.consumer, a, b, limit=1000, after=after)
            log_entries += page.entries
            if page.next_after is None or len(log_entries) >= 10_000:
                break
            after = page.next_after
        fw = [tuple(str(x or "") for x in (list(c) + ["", "", ""])[:3])
              for c in info.get("firmware") or ()]
        e = TrudiExport(
            gateway_id=self.ctx.gateway_id, usage_point=ep.usage_point,
            customer_id=p.consumer, invoicing_party=ep.supplier, tariff_name=sp.name,
            taf=ep.taf, certificates=certs, firmware=fw,
            system_time_ms=int(info.get("time_ms") or self.ctx.now_ms()),
            meters=sorted({ch.meter for ch in ep.channels}),
            derived=[(sv.value, sv.signature) for sv in values], log=log_entries,
            registration_period_s=ep.registration_period_s, timezone=ep.timezone,
            generator="SMGW-Portal")
        return trudi_document(e)


# ------------------------------------------------------------------ small helpers


def _obis_key(obis: str) -> tuple:
    m = _OBIS_RE.match(obis)
    return tuple(int(x) for x in m.groups()) if m else (999, obis)


def _int(text: str | None, default: Any) -> Any:
    try:
        n = int(text) if text not in (None, "") else default
    except ValueError:
        return default
    # beyond SQLite's INTEGER: would be an OverflowError (500) in the query
    return default if isinstance(n, int) and abs(n) >= 2 ** 63 else n


def _query(**kw: Any) -> str:
    from urllib.parse import urlencode

    return urlencode({k: v for k, v in kw.items() if v not in (None, "")})


def _iso_date(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, ZoneInfo(render.LOCAL_TZ)).strftime("%Y-%m-%d")


def _date_value(text: str) -> str:
    """A filter field's value as a date input wants it (YYYY-MM-DD), if it is a date."""
    try:
        ms = render.parse_local(text)
    except ValueError:
        return text
    return "" if ms is None else _iso_date(ms)


def _range_text(a: int | None, b: int | None) -> str:
    if a is None and b is None:
        return "(alle)"
    if b is None:
        return f"ab {de_date(a)}"
    last = de_date(b - 1)
    if a is None:
        return f"bis {last}"
    return f"vom {de_date(a)} bis {last}"


def _period_text(a: int, b: int, tz: str) -> str:
    """A period as dates: the end is exclusive, so a day reads "27.06.2022" and a month
    "01.06.2022 – 30.06.2022"."""
    first, last = de_date(a, tz), de_date(b - 1, tz)
    return first if first == last else f"{first} – {last}"


def _hour_label(t: int, end: int, tz: str) -> str:
    """Axis label of a quarter hour ending at ``t``: every third full hour, else none."""
    d = dt.datetime.fromtimestamp(t / 1000, ZoneInfo(tz))
    if d.minute or d.hour % 3:
        return ""
    return "24:00" if t == end else f"{d:%H:%M}"


def _short_period(a: int, b: int, tz: str) -> str:
    z = ZoneInfo(tz)
    da = dt.datetime.fromtimestamp(a / 1000, z)
    db = dt.datetime.fromtimestamp((b - 1) / 1000, z)
    if da.date() == db.date():
        return da.strftime("%d.%m.")
    if da.day == 1 and (db + dt.timedelta(days=1)).day == 1 and da.month == db.month:
        return da.strftime("%m/%Y")
    return f"{da:%d.%m.}–{db:%d.%m.}"
