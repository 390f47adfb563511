"""The PPC-style HAN CGI: ``/cgi-bin/hanservice.cgi`` for consumers and
``/cgi-bin/hanservicetech.cgi`` for service technicians, as the existing PPC clients
(py-ppc-smgw, ha-ppc-smgw, TRON4R, node-red, openHAB, the exporter scripts, TRuDI) and the
technician's manual (seed 000 §4, §6.2) expect them. Client facts: ``../shared/design/
han-clients.md`` §A; the markup: :mod:`smgw.han.ppc_html`.

Every request is Digest- (or client-certificate-) authenticated by
:meth:`smgw.han.auth.HanContext.authenticate`; the core keeps one session per account and sets
the ``session`` cookie. This face adds what the CGI needs on top:

* **One URL, many actions.** GET (or a POST without ``action``) is the welcome page; every
  other action is the form field ``action`` of a POST. The form is read from the body whatever
  the Content-Type (none, ``text/plain``), plus the query string; when a field repeats, the last
  value counts (a form's hidden ``action`` comes before the button's).
* **tkn**: the session's token is printed into every form; a missing or different ``tkn`` is
  never a reason to refuse (clients send none, the login page's or the last page's).
* **Handles**: ``mid`` (a meter) and ``tid`` (an evaluation profile) are HMACs of the session,
  the kind of form and the meter or profile name: opaque, stable within a session, different in
  every session, and only ever resolved against the logged-in consumer's own meters and
  profiles (a handle from another session or consumer is "Unerlaubter Zugriff", 403).
* **Times**: ``from``/``to`` are local time ``YYYY-MM-DD HH:MM:SS`` (the space as ``+``, ``%20``
  or raw), or a date alone (``to``: the end of that day); both ends inclusive. Years before 2000
  are "Ungültige Zeitangabe".
* **Exports** are DER CMS SignedData (attached) by the gateway's signature identity:
  ``exportMeterValues`` a DKE K461 ``profile_generic`` document of the meter's register readings
  (:func:`smgw.formats.k461.values_document`), ``exportMeterProfile`` a K461 LMN container of
  the meter's data, ``exportLogData`` the consumer log (:func:`smgw.formats.k461.log_document`).
  More than 1000 records, or none, are answered with a 200 text page as the real gateway does.

The meter history (``showMeterValues``, ``exportMeterValues``) is the meter's register readings
as the consumer's TAF 6/7 usage points formed them (the signed 15-minute values); a meter no
such usage point reads shows its original values instead (and has nothing to export).

While the operating state switches the HAN access off (minimal or ceased operation, seed 000
§2.6) the consumer CGI answers 503 "Kein Zugriff möglich"; the technician CGI stays available
for the diagnosis.

The technician CGI (seed 000 §4): start page, "Logs" (system log of a time range, 10 entries a
page), "Systeminformationen", "Selbsttest", "Abmelden", and the error messages of seed 000 §6.2
with their meaning. Technicians see no measured data and no consumer log.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from smgw.han import cosem
from smgw.han import ppc_html as H
from smgw.tariff.model import status_ptb

__all__ = [
    "MAX_EXPORT_RECORDS",
    "PAGE_ROWS",
    "TECH_PAGE_ROWS",
    "PpcFace",
    "parse_ppc_time",
    "ppc_build",
    "ppc_versions",
    "register",
]

log = logging.getLogger("smgw.han.ppc")

PAGE_ROWS = 500            # TRON4R reads a day (~200 rows) from page 1
TECH_PAGE_ROWS = 10        # seed 000 §4.2: groups of 10 entries
CONSUMER_LOG_ROWS = 100
MAX_EXPORT_RECORDS = 1000  # real PPC: "Es sind nur 1000 erlaubt"
MIN_YEAR = 2000            # 1970 is "Ungültige Zeitangabe" on the real gateway
DEVICE_PREFIX = "0000600100ff"   # 0-0:96.1.0 device identification: <prefix>.<meter>.sm

NO_DATA = "Keine Daten vorhanden."
FORBIDDEN = "Unerlaubter Zugriff"
TOO_MANY = ("Die Abfrage liefert {n} Datens&auml;tze zur&uuml;ck. Es sind nur {limit} erlaubt. "
            "Schr&auml;nken Sie die Abfrageparameter ein.")
# seed 000 §6.2 (exact texts; the hints are ours)
T_RELOGIN = "Sie müssen das Fenster schließen und sich erneut anmelden"
T_NO_PERSISTENCE = "Keine Verbindung zum Persistenzdienst"
T_NO_ENTRIES = "Keine Einträge vorhanden"
T_BAD_TIME = "Ungültige Zeitangabe {value}"
T_DB_ERROR = "Datenbankfehler {result}"
T_NO_DATA = NO_DATA
T_INVALID_SESSION = "Invalide Session"
T_UNKNOWN_ACTION = "Unbekannte Aktion {action}"

HINT_RETRY = ("Stellen Sie die Anfrage erneut über die Oberfläche. Bleibt der Fehler, starten "
              "Sie das Smart Meter Gateway neu; danach wenden Sie sich an Ihren Auftraggeber.")
HINT_INTERNAL = ("Interner Fehler des Smart Meter Gateways. Führen Sie wenn möglich den "
                 "Selbsttest aus; bleibt der Fehler, wenden Sie sich an den Gateway-"
                 "Administrator.")


# ------------------------------------------------------------------ pure helpers


def parse_ppc_time(text: str | None, *, end: bool = False, tz: str = cosem.LOCAL_TZ
                   ) -> int | None:
    """A ``from``/``to`` value as Unix ms; None for an empty one. ``YYYY-MM-DD HH:MM:SS``
    (also with ``T``, or without seconds) in local time, or ``YYYY-MM-DD`` (the start of that
    day, with ``end=True`` the start of the next). Raises ValueError."""
    t = (text or "").strip()
    if not t:
        return None
    t = re.sub(r"\s+", " ", t.replace("T", " "))
    for fmt, date_only in (("%Y-%m-%d %H:%M:%S", False), ("%Y-%m-%d %H:%M", False),
                           ("%Y-%m-%d", True)):
        try:
            naive = dt.datetime.strptime(t, fmt)
        except ValueError:
            continue
        if naive.year < MIN_YEAR:
            raise ValueError(f"year {naive.year} before {MIN_YEAR}")
        try:
            if date_only and end:
                naive += dt.timedelta(days=1)
            return int(naive.replace(tzinfo=cosem.zone(tz)).timestamp() * 1000)
        except OverflowError:   # 9999-12-31 as an end date: not a 500
            raise ValueError(f"not a time: {text!r}") from None
    raise ValueError(f"not a time: {text!r}")


def ppc_build(version: str) -> str:
    """A five-digit build number for a ``major.minor.patch`` version, as the PPC pages show
    firmware versions (``0.1.0`` -> ``30100``, ``1.2.3`` -> ``40203``). 3xxxx marks our scheme
    and stays above the minimum builds TRuDI asks a PPC gateway for (24052 / 25334)."""
    nums = [int(n) for n in re.findall(r"\d+", version or "")][:3] + [0, 0, 0]
    major, minor, patch = nums[0], min(nums[1], 99), min(nums[2], 99)
    return f"{min(99999, 30000 + (major * 100 + minor) * 100 + patch):05d}"


def ppc_versions(firmware: Sequence[Sequence[Any]]) -> tuple[str, list[tuple[str, str, str]]]:
    """(``<bootstream>-<services>`` for the footer, the rows of the swversions table).

    ``firmware`` = [(component, version, hash)] of the gateway: the metrology firmware is the
    "bootstream", the host software the "services" (PPC's two components); the real
    components follow with their own versions."""
    comps = [(str(c[0]), str(c[1]), str(c[2]) if len(c) > 2 and c[2] else "-")
             for c in firmware]

    def pick(words: tuple[str, ...]) -> tuple[str, str, str] | None:
        return next((c for c in comps if any(w in c[0].lower() for w in words)), None)

    services = pick(("host", "service", "smgw", "software")) or (comps[0] if comps else None)
    boot = pick(("frontend", "firmware", "mcu", "boot", "fw")) or (
        next((c for c in comps if c is not services), services))
    b = ppc_build(boot[1]) if boot else "00000"
    s = ppc_build(services[1]) if services else "00000"
    rows = [("smgw-bootstream", b, boot[2] if boot else "-"),
            ("smgw-services", s, services[2] if services else "-")]
    rows += comps
    return f"{b}-{s}", rows


def _valid(status: int, meter_status: int | None) -> bool:
    return status_ptb(status, meter_status) <= 1


def _reg_key(obis: str) -> tuple[int, str]:
    try:
        o = cosem.parse_obis(obis)
    except cosem.ObisError:
        return (9, obis)
    if (o.c, o.d) == (1, 8):
        return (0 if o.e == 0 else 1, f"{o.e:03d}")
    if (o.c, o.d) == (2, 8):
        return (2 if o.e == 0 else 3, f"{o.e:03d}")
    return (5, obis_hex_or(obis))


def obis_hex_or(obis: str) -> str:
    try:
        return cosem.obis_hex(obis)
    except cosem.ObisError:
        return obis


def _dotted(obis: str) -> str:
    try:
        return cosem.obis_dotted(obis)
    except cosem.ObisError:
        return obis


def reading_row(r: Any) -> H.ValueRow:
    """An original value (Reading or the dict of HanData.current) as a table row."""
    get = r.get if isinstance(r, dict) else (lambda k: getattr(r, k))
    value, unit = cosem.kwh_text(get("value"), get("scaler"), get("unit"))
    word = 0x5 if get("time_valid") else 0x205
    ok = bool(get("time_valid")) and _valid(word, get("status"))
    obis = get("obis")
    return H.ValueRow(timestamp=cosem.local_text(int(get("capture_ms"))),
                      status="gültig" if ok else "ungültig", value=value, unit=unit,
                      valid="1" if ok else "2", name=cosem.register_name(obis),
                      obis=_dotted(obis), sign="-")


def derived_row(sv: Any) -> H.ValueRow:
    """A register reading the TAF formed (StoredValue) as a table row (at its target time)."""
    v = sv.value
    value, unit = cosem.kwh_text(v.value, v.scaler, v.unit)
    ok = v.time_valid and _valid(v.status, v.meter_status)
    return H.ValueRow(timestamp=cosem.local_text(v.target_ms),
                      status="gültig" if ok else "ungültig", value=value, unit=unit,
                      valid="1" if ok else "2", name=cosem.register_name(v.register),
                      obis=_dotted(v.register),
                      sign=sv.signature.hex() if sv.signature else "-")


def register_row(sv: Any) -> H.RegisterRow:
    v = sv.value
    value, unit = cosem.kwh_text(v.value, v.scaler, v.unit)
    ok = v.time_valid and _valid(v.status, v.meter_status)
    cap = v.capture_ms if v.capture_ms is not None else v.target_ms
    return H.RegisterRow(timestamp=cosem.local_text(cap), target=cosem.local_text(v.target_ms),
                         value=value, unit=unit, obis=_dotted(v.register),
                         quality="gültig" if ok else "ungültig", owner=v.owner,
                         period=f"{cosem.local_text(v.period_start_ms)} - "
                                f"{cosem.local_text(v.period_end_ms)}")


def log_row(e: Any) -> H.LogRow:
    return H.LogRow(time=cosem.local_text(e.ts_ms), level=e.level, event_id=str(e.event_id),
                    text=e.text,
                    outcome="erfolgreich" if e.status == "successful" else "fehlgeschlagen")


def lmn_container(*, meter: str, device_type: str, active: bool, samplerate_s: int,
                  com_type: str, obis: Sequence[str]) -> bytes:
    """The meter's data as a DKE K461 LMN container (han-clients.md §A.7.3), ASCII XML."""
    from lxml import etree

    ns = {"klc": "urn:k461-dke-de:kaf_lmn_container-1",
          "adevs": "urn:k461-dke-de:abstract_device_setup-1",
          "adls": "urn:k461-dke-de:abstract_device_lmn_setup-1",
          "ems": "urn:k461-dke-de:e_meter_sensor_setup-1",
          "cox": "urn:k461-dke-de:extension-1"}

    def q(p: str, n: str) -> str:
        return f"{{{ns[p]}}}{n}"

    name = f"{DEVICE_PREFIX}.{meter}.sm"
    root = etree.Element(q("klc", "container"), nsmap=ns)
    root.set("id", f"{meter}.sm")
    dev = etree.SubElement(root, q("klc", "e_meter_device_object"), class_id="32809",
                           class_version="0", id=name)
    values = [obis_hex_or(o) for o in obis]
    attrs = etree.SubElement(dev, q("ems", "attributes"), count="7")
    fields = [("cox", "logical_name", name), ("adevs", "device_identifier", meter),
              ("adevs", "device_type", device_type), ("adevs", "active", "1" if active else "0"),
              ("adevs", "samplerate", str(samplerate_s)), ("adls", "com_type", com_type)]
    for i, (p, n, text) in enumerate(fields, start=1):
        etree.SubElement(attrs, q(p, n), id=str(i)).text = text
    vals = etree.SubElement(attrs, q("ems", "values"), id=str(len(fields) + 1),
                            count=str(len(values)))
    for k, v in enumerate(values, start=1):
        etree.SubElement(vals, q("ems", "value"), id=str(k)).text = v
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n'
            + etree.tostring(root, encoding="ASCII", pretty_print=True))


_COM_TYPES = {"lmn-wired": "LMN drahtgebunden", "lmn-wireless": "LMN drahtlos (wM-Bus)"}
_PROTOCOLS = {"sml": "SML", "sml-tls": "SML über TLS", "wmbus": "wM-Bus (OMS)"}


# ------------------------------------------------------------------ the face


class _Params:
    """Form fields of a request (query string and body); the last value of a name counts."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._d: dict[str, str] = {}
        for k, v in pairs:
            self._d[k] = v

    def get(self, name: str, default: str = "") -> str:
        return self._d.get(name, default)

    def __contains__(self, name: str) -> bool:
        return name in self._d


class _Refusal(Exception):
    """An answer that is a page saying why (``status`` 200 unless stated)."""

    def __init__(self, title: str, text: str, status: int = 200, detail: str | None = None,
                 raw: bool = False) -> None:
        super().__init__(text)
        self.title, self.text, self.status, self.detail, self.raw = (title, text, status,
                                                                      detail, raw)


class PpcFace:
    """Handlers of both CGIs; ``ctx`` is the :class:`smgw.han.auth.HanContext`."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self._secret = secrets.token_bytes(32)

    # -------------------------------------------------------------- plumbing

    @staticmethod
    async def _params(request: web.Request) -> _Params:
        pairs = parse_qsl(request.query_string, keep_blank_values=True)
        if request.body_exists:
            raw = await request.read()
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("latin-1")
            pairs += parse_qsl(text.strip(), keep_blank_values=True)
        return _Params(pairs)

    def _footer(self) -> tuple[str, str, dict[str, Any]]:
        info = self.ctx.data.smgw_info()
        fw, _ = ppc_versions(info.get("firmware") or [])
        sync_ms = info.get("last_sync_ms") or info.get("time_ms")
        return fw, cosem.local_text(int(sync_ms)), info

    def _page(self, cgi: str, p: Any, title: str, content: str, status: int = 200,
              info: tuple[str, str] | None = None) -> web.Response:
        fw, sync = info if info is not None else self._footer()[:2]
        menu = () if p is None else H.CONSUMER_MENU if cgi == H.CONSUMER_CGI else H.TECH_MENU
        text = H.layout(cgi=cgi, tkn=p.token if p is not None else "", title=title,
                        content=content, fwversion=fw, sync=sync, menu=menu)
        return web.Response(status=status, text=text, content_type="text/html",
                            charset="utf-8")

    def _refusal_page(self, cgi: str, p: Any, r: _Refusal) -> web.Response:
        if r.raw:  # the real gateway's bare text answers (exports)
            return web.Response(status=r.status, text=r.text, content_type="text/html",
                                charset="utf-8")
        return self._page(cgi, p, r.title, H.message(r.title, r.text, detail=r.detail),
                          r.status)

    def _handle(self, kind: str, session_id: str, name: str) -> str:
        mac = hmac.new(self._secret, f"{kind}\x00{session_id}\x00{name}".encode(),
                       hashlib.sha256)
        return mac.hexdigest()[:32]

    def _resolve(self, kinds: Sequence[str], p: Any, handle: str, names: Sequence[str],
                 param: str) -> str:
        """The meter/profile a handle of this session stands for (only among ``names``, the
        consumer's own)."""
        session_id = p.session.id
        if not handle:
            raise _Refusal("Fehler", f"Fehler: Parameter {param} fehlt.")
        for name in names:
            for kind in kinds:
                if hmac.compare_digest(self._handle(kind, session_id, name), handle):
                    return name
        log.info("PPC handle that this session did not issue", extra={"fields": {
            "param": param, "account": p.account}})
        raise _Refusal(FORBIDDEN, f"{FORBIDDEN}: {param} gehört nicht zu dieser Sitzung.",
                       status=403)

    @staticmethod
    def _range(params: _Params, *, now_ms: int) -> tuple[int, int, str, str]:
        """[from, to] (both inclusive) of the request and the texts to show for them (what
        was typed; missing: the start of today, now). Raises _Refusal for a bad time."""
        raw_from, raw_to = params.get("from").strip(), params.get("to").strip()
        try:
            start = parse_ppc_time(raw_from)
        except ValueError:
            raise _Refusal("Fehler", T_BAD_TIME.format(value=raw_from)) from None
        try:
            end = parse_ppc_time(raw_to, end=True)
        except ValueError:
            raise _Refusal("Fehler", T_BAD_TIME.format(value=raw_to)) from None
        if start is None:
            raw_from = cosem.local_text(now_ms)[:10] + " 00:00:00"
            start = parse_ppc_time(raw_from)
        if end is None:
            end, raw_to = now_ms, cosem.local_text(now_ms)
        if end < start:
            raise _Refusal("Fehler", T_BAD_TIME.format(value=raw_to))
        return start, end, " ".join(raw_from.split()), " ".join(raw_to.split())

    # -------------------------------------------------------------- consumer CGI

    async def consumer(self, request: web.Request) -> web.StreamResponse:
        cgi = H.CONSUMER_CGI
        p = await self.ctx.authenticate(request)
        if isinstance(p, web.StreamResponse):
            return p
        if p.role != "consumer" or not p.consumer:
            return self._page(cgi, None, FORBIDDEN, H.message(
                FORBIDDEN, f"{FORBIDDEN}: diese Seite ist nur für Letztverbraucher."), 403)
        if cosem.han_switched_off(self.ctx.data.smgw_info().get("opstate")):
            resp = self._page(cgi, None, "Kein Zugriff möglich", H.message(
                "Kein Zugriff möglich", "Zurzeit ist leider kein Zugriff möglich.",
                detail="Das Smart Meter Gateway arbeitet nicht im Normalbetrieb. Bitte "
                       "versuchen Sie es später erneut."), 503)
            resp.headers["Retry-After"] = "600"
            return resp
        params = await self._params(request)
        action = params.get("action").strip()
        handler = self._consumer_actions.get(action)
        try:
            if handler is None:
                raise _Refusal("Fehler", "Fehler: " + T_UNKNOWN_ACTION.format(action=action))
            return handler(self, p, params)
        except PermissionError:   # the data layer's own isolation check
            return self._refusal_page(cgi, p, _Refusal(FORBIDDEN, FORBIDDEN, status=403))
        except _Refusal as r:
            return self._refusal_page(cgi, p, r)

    def _welcome(self, p: Any, params: _Params) -> web.Response:
        fw, sync, info = self._footer()
        content = H.welcome(account=p.account, consumer=p.consumer,
                            gateway_id=str(info.get("gateway_id") or ""),
                            time_text=cosem.local_text(int(info["time_ms"])),
                            time_valid=bool(info.get("time_valid")))
        return self._page(H.CONSUMER_CGI, p, "Willkommen", content, info=(fw, sync))

    def _meters(self, p: Any) -> list[str]:
        return list(self.ctx.data.meters(p.consumer))

    def _meter(self, p: Any, params: _Params) -> str:
        return self._resolve(("mid", "mid-values"), p, params.get("mid").strip(),
                             self._meters(p), "mid")

    def _meterform(self, p: Any, params: _Params, selected: str | None = None) -> web.Response:
        meters = [(self._handle("mid", p.session.id, m), f"{DEVICE_PREFIX}.{m}.sm")
                  for m in self._meters(p)]
        sel = self._handle("mid", p.session.id, selected) if selected else None
        return self._page(H.CONSUMER_CGI, p, "Zähler",
                          H.meterform(cgi=H.CONSUMER_CGI, tkn=p.token, meters=meters,
                                      selected=sel))

    def _meterprofile(self, p: Any, params: _Params) -> web.Response:
        return self._meterform(p, params, selected=self._meter(p, params))

    def _meter_info(self, p: Any, meter: str) -> dict[str, Any]:
        """What the gateway knows about one of the consumer's meters (its meter profile)."""
        fn = getattr(self.ctx.data, "meter_info", None)
        if fn is not None:
            return dict(fn(p.consumer, meter) or {})
        store = getattr(self.ctx.data, "store", None)
        for row in (store.meters(include_removed=True) if store is not None else []):
            if row.meter_id == meter:
                return {"interface": row.interface, "protocol": row.protocol,
                        "obis": list(row.obis), "period_s": row.period_s,
                        "active": row.removed_ms is None}
        return {}

    def _grid_s(self, p: Any, meter: str) -> int:
        for sp in self.ctx.data.usage_points(p.consumer):
            if any(ch.meter == meter for ch in sp.profile.channels):
                return int(sp.profile.registration_period_s)
        return 900

    def _show_meter_profile(self, p: Any, params: _Params) -> web.Response:
        meter = self._meter(p, params)
        current = [c for c in self.ctx.data.current(p.consumer) if c["meter"] == meter]
        current.sort(key=lambda c: _reg_key(c["obis"]))
        info = self._meter_info(p, meter)
        obis = info.get("obis") or [c["obis"] for c in current]
        medium = "Elektrizität"
        try:
            a = cosem.parse_obis(obis[0]).a if obis else 1
            medium = {1: "Elektrizität", 6: "Wärme", 7: "Gas", 8: "Kaltwasser",
                      9: "Warmwasser"}.get(a, "Sonstiges")
        except cosem.ObisError:
            pass
        period = info.get("period_s") or self._grid_s(p, meter)
        meta = [("Zähler-ID", f"{meter}.sm"), ("Name", meter),
                ("Beschreibung", f"Zähler ({medium})"),
                ("Kommunikationstyp", _COM_TYPES.get(info.get("interface", ""),
                                                     info.get("interface") or "-")),
                ("Protokoll-Typ", _PROTOCOLS.get(info.get("protocol", ""),
                                                 info.get("protocol") or "-")),
                ("Protokoll-Version", "-"), ("Ausleseintervall", str(int(period))),
                ("Abfrageversuche", "-"), ("Zähleradresse", meter), ("Medium", medium)]
        rows = [reading_row(c) for c in current]
        return self._page(H.CONSUMER_CGI, p, "Zählerprofil",
                          H.meter_profile(meter_name=f"{meter}.sm", rows=rows, meta=meta))

    def _swversions(self, p: Any, params: _Params) -> web.Response:
        info = self.ctx.data.smgw_info()
        _, rows = ppc_versions(info.get("firmware") or [])
        return self._page(H.CONSUMER_CGI, p, "Software", H.swversions(rows))

    def _show_meter_values_form(self, p: Any, params: _Params) -> web.Response:
        meter = self._meter(p, params)
        now = int(self.ctx.now_ms())
        today = cosem.local_text(now)[:10]
        return self._page(H.CONSUMER_CGI, p, "Zählerstand", H.meter_values_form(
            cgi=H.CONSUMER_CGI, tkn=p.token,
            mid=self._handle("mid-values", p.session.id, meter), meter_name=f"{meter}.sm",
            from_text=f"{today} 00:00:00", to_text=cosem.local_text(now)))

    def _meter_profiles(self, p: Any, meter: str) -> list[Any]:
        """The consumer's usage points that form register readings of ``meter``."""
        return [sp for sp in self.ctx.data.usage_points(p.consumer)
                if sp.profile.taf in (6, 7)
                and any(ch.meter == meter for ch in sp.profile.channels)]

    def _series(self, p: Any, meter: str, start: int, end: int, limit: int | None
                ) -> list[Any] | None:
        """The meter's register readings in [start, end] newest first (StoredValue), or None
        if no usage point of the consumer forms them."""
        profiles = self._meter_profiles(p, meter)
        if not profiles:
            return None
        seen: dict[tuple[str, int], Any] = {}
        for sp in profiles:
            # newest first: `limit` values are `limit` rows when the profile reads one meter
            single = len({ch.meter for ch in sp.profile.channels}) == 1
            lim = limit if single else None
            for sv in self.ctx.data.derived(p.consumer, sp.name, start, end + 1, limit=lim,
                                            newest_first=True):
                v = sv.value
                if v.owner == meter:
                    seen.setdefault((v.register, v.target_ms), sv)
        out = sorted(seen.values(), key=lambda sv: (-sv.value.target_ms,
                                                    _reg_key(sv.value.register)))
        return out if limit is None else out[:limit]

    @staticmethod
    def _page_no(params: _Params) -> int:
        try:
            return max(1, min(10_000, int(params.get("page", "1") or 1)))
        except ValueError:
            return 1

    def _show_meter_values(self, p: Any, params: _Params) -> web.Response:
        meter = self._meter(p, params)
        now = int(self.ctx.now_ms())
        start, end, from_text, to_text = self._range(params, now_ms=now)
        page = self._page_no(params)
        need = page * PAGE_ROWS + 1
        series = self._series(p, meter, start, end, need)
        if series is not None:
            rows = [derived_row(sv) for sv in series]
        else:
            readings = self.ctx.data.readings(p.consumer, meter, None, start, end + 1,
                                              limit=need, newest_first=True)
            readings.sort(key=lambda r: (-r.capture_ms, _reg_key(r.obis)))
            rows = [reading_row(r) for r in readings]
        more = len(rows) > page * PAGE_ROWS
        rows = rows[(page - 1) * PAGE_ROWS:page * PAGE_ROWS]
        return self._page(H.CONSUMER_CGI, p, "Zählerstand", H.meter_values(
            cgi=H.CONSUMER_CGI, tkn=p.token, mid=params.get("mid").strip(),
            meter_name=f"{meter}.sm", from_text=from_text, to_text=to_text, page=page,
            rows=rows, more=more))

    # exports ---------------------------------------------------------

    def _sign(self, content: bytes) -> bytes:
        from smgw.security import cms

        return cms.sign(content, self.ctx.data.keystore.sig)

    @staticmethod
    def _cms_response(blob: bytes, filename: str) -> web.Response:
        return web.Response(body=blob, content_type="application/octet-stream", headers={
            "Content-Disposition": f'attachment; filename="{filename}"'})

    def _export_meter_values(self, p: Any, params: _Params) -> web.Response:
        from smgw.formats import k461

        meter = self._meter(p, params)
        start, end, _, _ = self._range(params, now_ms=int(self.ctx.now_ms()))
        series = self._series(p, meter, start, end, None) or []
        if not series:
            raise _Refusal(NO_DATA, NO_DATA, raw=True)
        if len(series) > MAX_EXPORT_RECORDS:
            raise _Refusal("Fehler", TOO_MANY.format(n=len(series), limit=MAX_EXPORT_RECORDS),
                           raw=True)
        series.sort(key=lambda sv: (_reg_key(sv.value.register), sv.value.target_ms))
        xml = k461.values_document([(sv.value, sv.signature) for sv in series],
                                   self.ctx.gateway_id)
        return self._cms_response(self._sign(xml), f"{meter}.sm_data.xml.cms")

    def _export_meter_profile(self, p: Any, params: _Params) -> web.Response:
        meter = self._meter(p, params)
        info = self._meter_info(p, meter)
        obis = info.get("obis") or sorted({c["obis"] for c in self.ctx.data.current(p.consumer)
                                           if c["meter"] == meter})
        xml = lmn_container(meter=meter, device_type="e-meter",
                            active=bool(info.get("active", True)),
                            samplerate_s=int(info.get("period_s") or self._grid_s(p, meter)),
                            com_type="TLS" if info.get("protocol") == "sml-tls" else
                            _PROTOCOLS.get(info.get("protocol", ""), "-"),
                            obis=obis)
        return self._cms_response(self._sign(xml), f"{meter}.sm_profile.xml.cms")

    def _export_log_data(self, p: Any, params: _Params) -> web.Response:
        from smgw.formats import k461

        start, end, _, _ = self._range(params, now_ms=int(self.ctx.now_ms()))
        page = self.ctx.data.consumer_log(p.consumer, start, end + 1,
                                          limit=MAX_EXPORT_RECORDS + 1)
        entries = list(page.entries)
        if not entries:
            raise _Refusal(NO_DATA, NO_DATA, raw=True)
        if len(entries) > MAX_EXPORT_RECORDS:
            n = len(entries)
            after = page.next_after
            while after is not None:   # count the rest for the message
                more = self.ctx.data.consumer_log(p.consumer, start, end + 1, limit=1000,
                                                  after=after)
                n += len(more.entries)
                after = more.next_after
            raise _Refusal("Fehler", TOO_MANY.format(n=n, limit=MAX_EXPORT_RECORDS), raw=True)
        xml = k461.log_document(entries, self.ctx.gateway_id)
        name = self.ctx.gateway_id.lower()
        return self._cms_response(self._sign(xml), f"{name}.sm_log.xml.cms")

    # tariff profiles -------------------------------------------------

    def _profiles(self, p: Any) -> list[Any]:
        return list(self.ctx.data.usage_points(p.consumer))

    def _profile(self, p: Any, params: _Params) -> Any:
        profiles = {sp.name: sp for sp in self._profiles(p)}
        name = self._resolve(("tid", "tid-values"), p, params.get("tid").strip(),
                             list(profiles), "tid")
        return profiles[name]

    def _tariffform(self, p: Any, params: _Params) -> web.Response:
        profiles = [(self._handle("tid", p.session.id, sp.name), sp.name)
                    for sp in self._profiles(p)]
        return self._page(H.CONSUMER_CGI, p, "Tarifprofile",
                          H.tariff_form(cgi=H.CONSUMER_CGI, tkn=p.token, profiles=profiles))

    def _show_tariff_profile(self, p: Any, params: _Params) -> web.Response:
        from smgw.tariff import periods as _periods

        sp = self._profile(p, params)
        prof = sp.profile
        now = int(self.ctx.now_ms())
        billing_s = "0"
        if prof.billing_period:
            a, b = _periods.period_of(prof, now)
            billing_s = str((b - a) // 1000)
        rows = [("Profil-ID", f"{sp.name}.sm"), ("Profilname", sp.name),
                ("TAF-Typ", f"TAF{prof.taf}"),
                ("Registerperiode (sek.)", str(prof.registration_period_s)),
                ("Abrechnungsperiode (sek.)", billing_s),
                ("Vorhaltezeit (Tage)", str(prof.retention_days or 0)),
                ("Beginn Validierungsperiode", cosem.local_text(prof.valid_from_ms)),
                ("Ende Validierungsperiode", "unbegrenzt" if prof.valid_until_ms is None
                 else cosem.local_text(prof.valid_until_ms)),
                ("Alias", prof.usage_point), ("Zählpunktbezeichnung", prof.usage_point),
                ("Tarifstufen", str(len(prof.stages) or 1)), ("Tag Beginn", "00:00:00"),
                ("Zustand", "aktiv" if sp.active else "inaktiv")]
        channels = [(_dotted(ch.obis), cosem.register_name(ch.obis), f"{ch.meter}.sm")
                    for ch in prof.channels]
        return self._page(H.CONSUMER_CGI, p, "Tarifprofil",
                          H.tariff_profile(name=sp.name, rows=rows, channels=channels))

    def _show_tarification_form(self, p: Any, params: _Params) -> web.Response:
        sp = self._profile(p, params)
        now = int(self.ctx.now_ms())
        today = cosem.local_text(now)[:10]
        return self._page(H.CONSUMER_CGI, p, "Tarifierung", H.tarification_form(
            cgi=H.CONSUMER_CGI, tkn=p.token,
            tid=self._handle("tid-values", p.session.id, sp.name), name=sp.name,
            from_text=f"{today} 00:00:00", to_text=cosem.local_text(now)))

    def _show_tarification(self, p: Any, params: _Params) -> web.Response:
        sp = self._profile(p, params)
        start, end, from_text, to_text = self._range(params, now_ms=int(self.ctx.now_ms()))
        page = self._page_no(params)
        need = page * PAGE_ROWS + 1
        values = self.ctx.data.derived(p.consumer, sp.name, start, end + 1, limit=need,
                                       newest_first=True)
        more = len(values) > page * PAGE_ROWS
        rows = [register_row(sv) for sv in values[(page - 1) * PAGE_ROWS:page * PAGE_ROWS]]
        return self._page(H.CONSUMER_CGI, p, "Tarifierung", H.tarification(
            cgi=H.CONSUMER_CGI, tkn=p.token, tid=params.get("tid").strip(), name=sp.name,
            from_text=from_text, to_text=to_text, page=page, rows=rows, more=more))

    # log, self-test, logout ------------------------------------------

    def _log(self, p: Any, params: _Params) -> web.Response:
        now = int(self.ctx.now_ms())
        if not params.get("from").strip() and not params.get("to").strip():
            today = cosem.local_text(now)[:10]
            return self._page(H.CONSUMER_CGI, p, "Logbuch", H.log_form(
                cgi=H.CONSUMER_CGI, tkn=p.token, action="log", title="Letztverbraucher-Logbuch",
                from_text=f"{today} 00:00:00", to_text=cosem.local_text(now), prefix="log"))
        start, end, from_text, to_text = self._range(params, now_ms=now)
        page = self._page_no(params)
        entries = self._log_page(lambda **kw: self.ctx.data.consumer_log(p.consumer, **kw),
                                 start, end, page, CONSUMER_LOG_ROWS)
        rows, more = entries
        return self._page(H.CONSUMER_CGI, p, "Logbuch", H.log_table(
            cgi=H.CONSUMER_CGI, tkn=p.token, action="log", title="Letztverbraucher-Logbuch",
            from_text=from_text, to_text=to_text, page=page, rows=rows, more=more,
            empty_text=NO_DATA))

    @staticmethod
    def _log_page(query: Callable[..., Any], start: int, end: int, page: int, size: int
                  ) -> tuple[list[H.LogRow], bool]:
        """Entries of page ``page`` (oldest first) of [start, end]; and whether more follow."""
        want = page * size + 1
        entries: list[Any] = []
        after = None
        while len(entries) < want:
            pg = query(from_ms=start, to_ms=end + 1, limit=min(1000, want - len(entries)),
                       after=after)
            entries += pg.entries
            if pg.next_after is None:
                break
            after = pg.next_after
        more = len(entries) > page * size
        return [log_row(e) for e in entries[(page - 1) * size:page * size]], more

    def _selftest(self, cgi: str, p: Any, who: str) -> web.Response:
        from smgw.han.data import SelfTestBusy, SelfTestTooSoon

        title = "Selbsttest"
        try:
            report = self.ctx.data.selftest(who, p.consumer)
        except SelfTestTooSoon as e:
            return self._page(cgi, p, title, H.message(
                title, "Der Selbsttest wurde nicht gestartet: ein weiterer Selbsttest ist erst "
                       f"ab {cosem.local_text(e.next_allowed_ms)} möglich.",
                headline_id="headline_selbsttest"))
        except SelfTestBusy:
            return self._page(cgi, p, title, H.message(
                title, "Der Selbsttest wurde nicht gestartet: es läuft bereits ein Selbsttest.",
                headline_id="headline_selbsttest"))
        ok = report.get("ok")
        result = ("Ergebnis: ohne Befund." if ok else "Ergebnis: mit Befund, siehe Log."
                  if ok is not None else "Das Ergebnis steht im Log.")
        return self._page(cgi, p, title, H.message(
            title, "Selbsttest OK.", headline_id="headline_selbsttest",
            detail="Der Selbsttest wurde gestartet. " + result))

    def _consumer_selftest(self, p: Any, params: _Params) -> web.Response:
        return self._selftest(H.CONSUMER_CGI, p, "consumer")

    def _logout(self, cgi: str, p: Any) -> web.Response:
        fw, sync, _ = self._footer()
        self.ctx.logout(p)
        return self._page(cgi, p, "Abmelden", H.message(
            "Abmelden", "Sie wurden abgemeldet.", headline_id="headline_abmelden"),
            info=(fw, sync))

    def _consumer_logout(self, p: Any, params: _Params) -> web.Response:
        return self._logout(H.CONSUMER_CGI, p)

    _consumer_actions: dict[str, Callable[..., web.Response]] = {
        "": _welcome,
        "welcomePage": _welcome,
        "meterform": _meterform,
        "meterprofile": _meterprofile,
        "showMeterProfile": _show_meter_profile,
        "swversions": _swversions,
        "showMeterValuesForm": _show_meter_values_form,
        "showMeterValues": _show_meter_values,
        "exportMeterValues": _export_meter_values,
        "exportMeterProfile": _export_meter_profile,
        "exportLogData": _export_log_data,
        "tariffform": _tariffform,
        "showTariffProfile": _show_tariff_profile,
        "showTarificationForm": _show_tarification_form,
        "showTarification": _show_tarification,
        "log": _log,
        "selftest": _consumer_selftest,
        "logout": _consumer_logout,
    }

    # -------------------------------------------------------------- technician CGI

    async def technician(self, request: web.Request) -> web.StreamResponse:
        cgi = H.TECH_CGI
        p = await self.ctx.authenticate(request, ended="challenge")
        if isinstance(p, web.StreamResponse):
            return self._relogin_401(p)
        if p.role != "technician":
            return self._page(cgi, None, FORBIDDEN, H.message(
                FORBIDDEN, f"{FORBIDDEN}: diese Seite ist nur für Servicetechniker."), 403)
        params = await self._params(request)
        action = params.get("action").strip()
        try:
            if request.method == "POST" and action:
                from smgw.han.auth import session_cookies

                if p.previous_end is not None:
                    raise _Refusal("Fehler", T_RELOGIN)
                if not session_cookies(request):
                    raise _Refusal("Fehler", T_INVALID_SESSION, detail=HINT_RETRY)
            handler = self._tech_actions.get(action)
            if handler is None:
                raise _Refusal("Fehler", T_UNKNOWN_ACTION.format(action=action),
                               detail=HINT_RETRY)
            return handler(self, p, params)
        except _Refusal as r:
            return self._refusal_page(cgi, p, r)

    def _relogin_401(self, resp: web.StreamResponse) -> web.Response:
        """The core's 401 (challenge kept) with the manual's message as the page."""
        out = web.Response(status=resp.status, content_type="text/html", charset="utf-8",
                           text="")
        for k in ("WWW-Authenticate", "Retry-After"):
            for v in resp.headers.getall(k, ()):
                out.headers.add(k, v)
        detail = getattr(resp, "text", None) or None
        fw, sync, _ = self._footer()
        out.text = H.layout(cgi=H.TECH_CGI, tkn="", title="Anmeldung", content=H.message(
            "Anmeldung", T_RELOGIN, detail=detail), fwversion=fw, sync=sync, menu=())
        return out

    def _tech_start(self, p: Any, params: _Params) -> web.Response:
        fw, sync, info = self._footer()
        rows = [("SMGW Id", f"{str(info.get('gateway_id') or '').lower()}.sm"),
                ("Aktuelle Uhrzeit ist", cosem.local_text(int(info["time_ms"]))),
                ("Angemeldet als", p.account)]
        content = ('<h1 id="headline_willkommen">Willkommen</h1>\n'
                   '<p id="div_willkommen">Anzeige f&uuml;r Servicetechniker. W&auml;hlen Sie '
                   "Logs, Systeminformationen, Selbsttest oder Abmelden.</p>\n"
                   + H.info_rows(rows, table_id="table_smgwinfo"))
        return self._page(H.TECH_CGI, p, "Willkommen", content, info=(fw, sync))

    def _tech_logs_form(self, p: Any, params: _Params) -> web.Response:
        now = int(self.ctx.now_ms())
        return self._page(H.TECH_CGI, p, "Logs", H.log_form(
            cgi=H.TECH_CGI, tkn=p.token, action="showLogs", title="Logs",
            from_text=cosem.local_text(now - 3_600_000), to_text=cosem.local_text(now),
            prefix="logs"))

    def _logbooks_ok(self) -> None:
        books = getattr(self.ctx.data, "logbooks", None)
        if books is None or getattr(books, "closed", False):
            raise _Refusal("Fehler", T_NO_PERSISTENCE, detail=HINT_INTERNAL)

    def _tech_show_logs(self, p: Any, params: _Params) -> web.Response:
        raw_from, raw_to = params.get("from").strip(), params.get("to").strip()
        if not raw_from and not raw_to:
            raise _Refusal("Fehler", T_NO_DATA, detail=HINT_RETRY)
        self._logbooks_ok()
        now = int(self.ctx.now_ms())
        try:
            start = parse_ppc_time(raw_from)
        except ValueError:
            raise _Refusal("Fehler", T_BAD_TIME.format(value=raw_from),
                           detail="Bitte wählen Sie einen anderen Startzeitpunkt.") from None
        try:
            end = parse_ppc_time(raw_to, end=True)
        except ValueError:
            raise _Refusal("Fehler", T_BAD_TIME.format(value=raw_to),
                           detail="Bitte wählen Sie einen anderen Endzeitpunkt.") from None
        start = 0 if start is None else start
        end = now if end is None else end
        if end < start:
            raise _Refusal("Fehler", T_BAD_TIME.format(value=raw_to),
                           detail="Der Endzeitpunkt liegt vor dem Startzeitpunkt.")
        page = self._page_no(params)
        from smgw.logbook.store import LogbookError

        try:
            rows, more = self._log_page(
                lambda **kw: self.ctx.data.system_log(**kw), start, end, page, TECH_PAGE_ROWS)
            if not rows and page == 1 and not self.ctx.data.system_log(limit=1).entries:
                # the system log always has the gateway's start entries: empty is an error
                raise _Refusal("Fehler", T_NO_ENTRIES, detail=HINT_INTERNAL)
        except LogbookError as e:
            if "closed" in str(e):
                raise _Refusal("Fehler", T_NO_PERSISTENCE, detail=HINT_INTERNAL) from None
            raise _Refusal("Fehler", T_DB_ERROR.format(result=e), detail=HINT_RETRY) from None
        return self._page(H.TECH_CGI, p, "Logs", H.log_table(
            cgi=H.TECH_CGI, tkn=p.token, action="showLogs", title="Logdaten",
            from_text=" ".join(raw_from.split()) or cosem.local_text(start),
            to_text=" ".join(raw_to.split()) or cosem.local_text(end), page=page,
            rows=rows, more=more,
            empty_text="Im gewählten Zeitraum gibt es keine Einträge im System-Log."))

    def _tech_sysinfo(self, p: Any, params: _Params) -> web.Response:
        fw, sync, info = self._footer()
        rows = [("Aktuelle Uhrzeit ist", cosem.local_text(int(info["time_ms"]))),
                ("Systemzeit", "gültig" if info.get("time_valid") else "ungültig"),
                ("Produktbezeichnung", "Smart Meter Gateway (smgw)"),
                ("SMGW Id", f"{str(info.get('gateway_id') or '').lower()}.sm"),
                ("Softwarestand", fw)]
        for comp, version, digest in ppc_versions(info.get("firmware") or [])[1][2:]:
            rows.append((f"Komponente {comp}", f"{version} (Prüfsumme {digest[:16]})"))
        rows.append(("Betriebszustand", cosem.opstate(info.get("opstate"))[1]))
        last = info.get("selftest_last")
        if isinstance(last, dict) and last.get("started_ms"):
            rows.append(("Letzter Selbsttest", cosem.local_text(int(last["started_ms"]))
                         + (" ohne Befund" if last.get("ok") else " mit Befund")))
        nxt = info.get("selftest_next_allowed_ms") or 0
        rows.append(("Nächster Selbsttest möglich ab",
                     "sofort" if nxt <= info["time_ms"] else cosem.local_text(int(nxt))))
        return self._page(H.TECH_CGI, p, "Systeminformationen", H.info_table(
            "Systeminformationen", rows, table_id="table_systeminfo",
            headline_id="headline_systeminfo"), info=(fw, sync))

    def _tech_selftest(self, p: Any, params: _Params) -> web.Response:
        return self._selftest(H.TECH_CGI, p, "technician")

    def _tech_logout(self, p: Any, params: _Params) -> web.Response:
        return self._logout(H.TECH_CGI, p)

    _tech_actions: dict[str, Callable[..., web.Response]] = {
        "": _tech_start,
        "logs": _tech_logs_form,
        "showLogs": _tech_show_logs,
        "sysinfo": _tech_sysinfo,
        "selftest": _tech_selftest,
        "logout": _tech_logout,
    }


def register(app: web.Application, ctx: Any) -> None:
    """Add both CGIs to the HAN server's application."""
    face = PpcFace(ctx)
    for method in ("GET", "POST"):
        app.router.add_route(method, H.CONSUMER_CGI, face.consumer)
        app.router.add_route(method, H.TECH_CGI, face.technician)
