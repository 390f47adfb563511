"""IF_GW_CON: the machine-to-machine JSON interface of Theben CONEXA gateways, as the existing
clients speak it (theben-conexa-smgw and Home Assistant, ha-ppc-smgw, evcc, the C# exporter,
TRuDI). Facts and client constraints: ``../shared/design/han-clients.md`` §B; what the
consumer may fetch: seed 001 E-5.

Endpoints::

    GET|POST /smgw/m2m[/]              Digest login -> 307, Location /smgw/m2m/<user>.sm/json
    POST     /smgw/m2m/<user>.sm/json  {"method": ...} -> 200 application/json

Methods: ``smgw-info``, ``user-info``, ``usage-point-info``, ``readings``, ``log``,
``self-test``. Every answer is ``{"method", "version", "elapsed-time", <method>: {...}}`` with
every scalar a JSON string (clients compare ``taf-number == "7"`` and refuse numbers). Errors
are JSON too: ``{"method", "version", "error"}`` with 400 (bad JSON, bad or missing parameter,
range over 31 days), 401 (no login), 403 (self-test too soon or running, a technician), 404
(another user's endpoint, an unknown usage point), 405 (wrong HTTP method), 503 (the operating
state switched the HAN access off: minimal or ceased operation, seed 000 §2.6).

What the clients need and this face therefore does (§B.4):

* Usage points are the consumer's evaluation profiles: ``usage-point-id`` ``<profile>.sm``,
  ``taf-state`` running (active), ready (validity not begun) or archive (removed or over);
  TAF 7 usage points first (clients take the first running TAF 7).
* Two databases per usage point: ``origin`` (the original values of the profile's meter
  channels) and ``derived`` (what the TAF formed: TAF 7 register readings, TAF 1 billing
  registers, ...). ``databases[0]`` is ``origin`` (theben-conexa-smgw reads only that one).
* Channels are 12-hex OBIS (``0100010800ff``), ``scaler`` and ``unit`` strings. Energy is
  always raw 0.1 Wh (scaler ``-1``, unit ``30``), converted exactly from what the store holds
  (:func:`smgw.han.cosem.normalise`), because several clients divide by 10000 for kWh.
* ``readings``: ``fromtime < t <= totime`` (at most 31 days), or ``last-reading``; newest
  first; a channel appears only with at least one reading (clients index ``[0]``), and every
  channel of a ``readings`` answer is one ``usage-point-info`` lists.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from aiohttp import web

from smgw.han import cosem
from smgw.tariff.model import smgw_status

__all__ = [
    "API_VERSION",
    "M2mError",
    "MAX_LOG_COUNT",
    "MAX_RANGE_MS",
    "ROOT",
    "log_json",
    "readings_json",
    "register",
    "smgw_info_json",
    "usage_point_info_json",
    "user_info_json",
]

log = logging.getLogger("smgw.han.m2m")

ROOT = "/smgw/m2m"
API_VERSION = "1.3.0"
DAY_MS = 86_400_000
# 31 days; a range of 31 local days across the autumn DST change is an hour longer
MAX_RANGE_MS = 31 * DAY_MS + 3_600_000
MAX_LOG_COUNT = 1500
DATABASES = ("origin", "derived")
# allowed parameter combinations of "log" (seed 001 E-5.6 / IF_GW_CON)
LOG_COMBOS = (frozenset(), frozenset({"fromtime"}), frozenset({"totime"}),
              frozenset({"fromtime", "totime"}), frozenset({"fromindex"}),
              frozenset({"count"}), frozenset({"fromindex", "count"}),
              frozenset({"fromtime", "count"}), frozenset({"fromtime", "totime", "count"}))
LOG_LEVELS = {"FATAL": "4", "ERROR": "3", "WARNING": "2", "INFO": "1"}


class M2mError(Exception):
    """A request the face answers with ``status`` and a German ``message`` naming the
    parameter at fault."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# ------------------------------------------------------------------ small helpers


def userid(account: str) -> str:
    """The M2M user id of an account (stable: Home Assistant stores the endpoint)."""
    return f"{account}.sm"


def endpoint(account: str) -> str:
    return f"{ROOT}/{userid(account)}/json"


def usage_point_id(profile_name: str) -> str:
    return f"{profile_name}.sm"


def _flag(v: Any, key: str) -> bool:
    """A boolean parameter as clients send it: JSON true/false or "true"/"false"."""
    if v is None:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("true", "false"):
        return v.strip().lower() == "true"
    raise M2mError(400, f"Parameter '{key}': erwartet true oder false, nicht {v!r}")


def _time(v: Any, key: str) -> int:
    try:
        return cosem.parse_iso(v)
    except (ValueError, TypeError):
        raise M2mError(400, f"Parameter '{key}': ungültige Zeitangabe {v!r} "
                            "(erwartet YYYY-MM-DDThh:mm:ssZ)") from None


def _count(v: Any, key: str, low: int, high: int | None) -> int:
    try:
        if isinstance(v, bool):
            raise ValueError
        n = int(v, 10) if isinstance(v, str) else int(v)
        if isinstance(v, float) and v != n:
            raise ValueError
    except (ValueError, TypeError, OverflowError):   # OverflowError: JSON Infinity
        raise M2mError(400, f"Parameter '{key}': keine ganze Zahl: {v!r}") from None
    if n < low or (high is not None and n > high):
        limit = f"{low}..{high}" if high is not None else f">= {low}"
        raise M2mError(400, f"Parameter '{key}': {n} liegt nicht im Bereich {limit}")
    return n


def _taf_state(sp: Any, now_ms: int) -> str:
    p = sp.profile
    if sp.removed_ms is not None:
        return "archive"
    if sp.active:
        return "running"
    if p.valid_until_ms is not None and p.valid_until_ms <= now_ms:
        return "archive"
    return "ready"


def derived_registers(p: Any) -> list[str]:
    """The registers a TAF forms from profile ``p``'s channels (contracts: register naming):
    TAF 1 the channel OBIS with E = 1, TAF 2 one per stage plus the error register 63 and the
    sum E = 0, then (TAF 1/2: the readings at the period boundaries) the channel OBIS itself;
    every other TAF the channel OBIS."""
    out: list[str] = []

    def add(o: str) -> None:
        if o not in out:
            out.append(o)

    obis = []
    for ch in p.channels:
        try:
            obis.append(cosem.parse_obis(ch.obis))
        except cosem.ObisError:
            continue
    for ob in obis:
        if p.taf == 1:
            add(str(ob._replace(e=1)))
        elif p.taf == 2:
            for st in p.stages:
                add(str(ob._replace(e=st.number)))
            add(str(ob._replace(e=63)))
    for ob in obis:
        add(str(ob))
    return out


def _channel_unit(obis: str, units: dict[str, str]) -> str:
    """The unit of a channel: what its values carry, else what the OBIS code says
    (C.8 energy in Wh, C.7 power in W)."""
    if obis in units:
        return units[obis]
    try:
        ob = cosem.parse_obis(obis)
    except cosem.ObisError:
        return ""
    if ob.a == 1 and ob.d in (8, 9, 29):
        return "varh" if ob.c in (3, 4, 5, 6, 7, 8) else "Wh"
    if ob.a == 1 and ob.d in (4, 5, 7, 24, 25, 27):
        return "var" if ob.c in (3, 4) else "W"
    return ""


def _channel(obis: str, unit: str) -> dict[str, str]:
    return {"obis": cosem.obis_hex(obis), "scaler": str(cosem.target_scaler(unit)),
            "unit": str(cosem.unit_code(unit))}


# ------------------------------------------------------------------ documents (pure)


def envelope(method: str, body: dict[str, Any] | None, started: float) -> dict[str, Any]:
    ms = max(0, int((time.perf_counter() - started) * 1000))
    out: dict[str, Any] = {"elapsed-time": f"{ms} miliseconds", "method": method,
                           "version": API_VERSION}
    if body is not None:
        out[method] = body
    return out


def _fw_version(firmware: Sequence[Sequence[str]]) -> tuple[str, str]:
    """(version, hash) of the gateway firmware as one component: the versions of all
    components joined, the hash over all component hashes (SHA-256, 64 hex)."""
    import hashlib

    if not firmware:
        return "unbekannt", hashlib.sha256(b"").hexdigest()
    version = "-".join(str(v) for _, v, *_ in firmware)
    if len(firmware) == 1 and len(str(firmware[0][2] if len(firmware[0]) > 2 else "")) == 64:
        return version, str(firmware[0][2]).lower()
    h = hashlib.sha256()
    for comp in firmware:
        h.update(("|".join(str(x) for x in comp) + "\n").encode())
    return version, h.hexdigest()


def smgw_state(info: dict[str, Any]) -> str:
    """The gateway's status word (8 hex, LSB first like the value status words): the time
    validity bit, and the fatal bit when the gateway has ceased operation."""
    fatal = cosem.opstate(info.get("opstate"))[0] == "ceased"
    word = smgw_status(time_valid=bool(info.get("time_valid")), fatal=fatal)
    return cosem.status_hex(word, None)[2]


def smgw_info_json(info: dict[str, Any], *, han_cert_pem: bytes | None = None,
                   sig_cert_der: bytes | None = None, sub_ca_der: bytes | None = None
                   ) -> dict[str, Any]:
    """The ``smgw-info`` object from :meth:`smgw.han.data.HanData.smgw_info`."""
    version, digest = _fw_version(info.get("firmware") or [])
    wan = []
    if sig_cert_der is not None:
        wan.append({"cert-index": "0", "sig": sig_cert_der.hex(),
                    "sub-ca": (sub_ca_der or b"").hex()})
    return {
        "firmware-info": {"component": "Firmware", "version": version, "hash": digest},
        "smgw-id": str(info.get("gateway_id") or "").lower(),
        "smgw-state": smgw_state(info),
        "smgw-time": cosem.iso_z(int(info["time_ms"])),
        "certificates": {"han": {"tls": (han_cert_pem or b"").hex()}, "wan": wan},
    }


def billing_periods(p: Any, formed: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """The periods a usage point lists: its billing periods (TAF 1/2), or for a TAF without
    billing periods (TAF 7: one per registration period) the local days its values fall in."""
    if p.billing_period is not None:
        return list(formed)
    from smgw.tariff.periods import day_of

    out: list[tuple[int, int]] = []
    for a, _ in formed:
        if out and out[-1][0] <= a < out[-1][1]:
            continue
        day = day_of(a, p.timezone)
        if not out or out[-1] != day:
            out.append(day)
    return out


def user_info_json(points: Sequence[tuple[Any, list[tuple[int, int]]]], now_ms: int
                   ) -> dict[str, Any]:
    """The ``user-info`` object from the consumer's usage points (StoredProfile) with their
    formed billing periods. TAF 7 first, then by name."""
    ordered = sorted(points, key=lambda t: (t[0].profile.taf != 7, t[0].name))
    ups = []
    for sp, periods in ordered:
        p = sp.profile
        meters: list[str] = []
        for ch in p.channels:
            if ch.meter not in meters:
                meters.append(ch.meter)
        ups.append({
            "billing-Periods": [{"start-time": cosem.iso_z(a), "end-time": cosem.iso_z(b)}
                                for a, b in periods],
            "capture-time": "00:00:00",
            "delivery-id": p.recipients[0] if p.recipients else "",
            "end-time": "" if p.valid_until_ms is None else cosem.iso_z(p.valid_until_ms),
            "meter": [{"meter-id": m} for m in meters],
            "metering-point-id": p.usage_point,
            "on-demand-profile-configured": "true" if any(
                s.trigger == "on-demand" for s in p.sending) else "false",
            "start-time": cosem.iso_z(p.valid_from_ms),
            "taf-number": str(p.taf),
            "taf-state": _taf_state(sp, now_ms),
            "usage-point-id": usage_point_id(sp.name),
            "usage-point-name": sp.name,
        })
    return {"usage-points": ups}


def database_channels(p: Any, database: str, units: dict[str, str]) -> list[dict[str, str]]:
    """The channels of one database of usage point ``p`` (unique by OBIS, profile order)."""
    if database == "origin":
        names = []
        for ch in p.channels:
            if ch.obis not in names:
                names.append(ch.obis)
    else:
        names = derived_registers(p)
    out, seen = [], set()
    for o in names:
        try:
            c = _channel(o, _channel_unit(o, units))
        except cosem.ObisError:
            continue
        if c["obis"] not in seen:
            seen.add(c["obis"])
            out.append(c)
    return out


def usage_point_info_json(sp: Any, databases: Sequence[str], units: dict[str, str],
                          taf_profile_hex: str = "") -> dict[str, Any]:
    """The ``usage-point-info`` object. ``units``: OBIS -> unit symbol of values seen."""
    p = sp.profile
    return {
        "databases": [{"database": d, "channels": database_channels(p, d, units)}
                      for d in databases],
        "emts": [f"{r}.sm" for r in p.recipients],
        "taf-profile": taf_profile_hex,
        "transparency-bit": "true",
        "usage-point-id": usage_point_id(sp.name),
        "usage-point-name": sp.name,
    }


def _nearest_grid(t_ms: int, step_ms: int) -> int:
    return (t_ms + step_ms // 2) // step_ms * step_ms


def origin_entry(r: Any, billing: bool, grid_ms: int) -> dict[str, Any]:
    """One original value (a :class:`smgw.tariff.model.Reading`) as a ``readings`` entry."""
    value, _, _ = cosem.normalise(r.value, r.scaler, r.unit)
    word = smgw_status(time_valid=r.time_valid, billing=billing, meter_status=r.status)
    cosem_st, meter_st, smgw_st = cosem.status_hex(word, r.status)
    return {"capture-time": cosem.iso_z(r.capture_ms),
            "cosem-status": cosem_st, "meter-status": meter_st,
            "owner-number": f"{r.meter}.sm", "signature": None, "smgw-status": smgw_st,
            "target-time": cosem.iso_z(_nearest_grid(r.capture_ms, grid_ms)),
            "value": str(value)}


def derived_entry(sv: Any) -> dict[str, Any]:
    """One derived value (a :class:`smgw.tariff.store.StoredValue`) as a ``readings``
    entry."""
    v = sv.value
    value, _, _ = cosem.normalise(v.value, v.scaler, v.unit)
    cosem_st, meter_st, smgw_st = cosem.status_hex(v.status, v.meter_status)
    return {"capture-time": cosem.iso_z(v.capture_ms if v.capture_ms is not None
                                        else v.target_ms),
            "cosem-status": cosem_st, "meter-status": meter_st,
            "owner-number": f"{v.owner}.sm",
            "signature": None if sv.signature is None else sv.signature.hex(),
            "smgw-status": smgw_st, "target-time": cosem.iso_z(v.target_ms),
            "value": str(value)}


def readings_json(channels: Iterable[tuple[str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """The ``readings`` object: ``channels`` = (obis, entries newest first); channels without
    an entry are left out (clients index ``readings[0]``)."""
    out = []
    n = 0
    for obis, entries in channels:
        if not entries:
            continue
        out.append({"obis": cosem.obis_hex(obis), "readings": entries})
        n += len(entries)
    return {"channels": out, "records": str(n)}


def log_entry(e: Any, consumer: str) -> dict[str, str]:
    """One consumer log entry (:class:`smgw.logbook.store.Entry`)."""
    return {"event-id": str(e.event_id),
            "event-sub-id": "0" if e.status == "successful" else "1",
            "index": str(e.seq), "level": LOG_LEVELS.get(e.level, "1"),
            "message": e.text,
            "outcome": "success" if e.status == "successful" else "failure",
            "subject-identity": consumer, "time": cosem.iso_z(e.ts_ms),
            "user-identity": consumer, "vendor-id": "smgw", "version": "1"}


def log_json(entries: Sequence[Any], consumer: str) -> dict[str, Any]:
    return {"entries": [log_entry(e, consumer) for e in entries], "records": str(len(entries))}


# ------------------------------------------------------------------ the face


class M2mFace:
    """The handlers; ``ctx`` is the :class:`smgw.han.auth.HanContext`."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self._taf_profile_cache: dict[tuple[str, int], str] = {}

    # -------------------------------------------------------------- plumbing

    @staticmethod
    def _json(doc: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
              ) -> web.Response:
        body = json.dumps(doc, ensure_ascii=True, separators=(",", ":")).encode()
        return web.Response(status=status, body=body, content_type="application/json",
                            headers=headers)

    def _error(self, method: str, status: int, message: str, started: float) -> web.Response:
        doc = envelope(method, None, started)
        doc["error"] = message
        return self._json(doc, status)

    async def _login(self, request: web.Request) -> Any:
        """The consumer principal, or the response to send (401 challenge / 403)."""
        p = await self.ctx.authenticate(request, uri_paths=(ROOT, ROOT + "/"))
        if isinstance(p, web.Response):
            return p
        if p.role != "consumer" or not p.consumer:
            return self._error("", 403, "Die M2M-Schnittstelle ist nur für Letztverbraucher.",
                               time.perf_counter())
        return p

    # -------------------------------------------------------------- routes

    async def root(self, request: web.Request) -> web.StreamResponse:
        p = await self._login(request)
        if isinstance(p, web.StreamResponse):
            return p
        # a relative Location: theben-conexa-smgw prepends https://<host> itself
        return web.Response(status=307, headers={"Location": endpoint(p.account)},
                            content_type="application/json", body=b"")

    async def endpoint(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        p = await self._login(request)
        if isinstance(p, web.StreamResponse):
            return p
        if request.match_info["user"] != userid(p.account):
            return self._error("", 404, "Unbekannte Benutzerkennung in der Adresse.", started)
        if cosem.han_switched_off(self.ctx.data.smgw_info().get("opstate")):
            resp = self._error("", 503, "Zurzeit ist kein Zugriff möglich: das Smart Meter "
                                        "Gateway arbeitet nicht im Normalbetrieb.", started)
            resp.headers["Retry-After"] = "600"
            return resp
        raw = await request.read()
        try:
            doc = json.loads(raw.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:   # deep nesting: 400
            return self._error("", 400, f"Anfrage ist kein gültiges JSON: {e}", started)
        if not isinstance(doc, dict):
            return self._error("", 400, "Anfrage muss ein JSON-Objekt sein.", started)
        method = doc.get("method")
        if not isinstance(method, str) or not method:
            return self._error("", 400, "Parameter 'method' fehlt.", started)
        handler = self._methods.get(method)
        if handler is None:
            return self._error(method, 400, f"Parameter 'method': unbekannte Methode "
                                            f"{method!r} (bekannt: {', '.join(self._methods)})",
                               started)
        try:
            body = handler(self, p, doc)
        except M2mError as e:
            return self._error(method, e.status, e.message, started)
        except PermissionError:   # the data layer's own isolation check
            return self._error(method, 404, "Nicht gefunden.", started)
        return self._json(envelope(method, body, started))

    # -------------------------------------------------------------- methods

    def _smgw_info(self, p: Any, doc: dict[str, Any]) -> dict[str, Any]:
        data = self.ctx.data
        info = data.smgw_info()
        ks = getattr(data, "keystore", None)
        sig_der = sub_der = None
        han_pem = None
        if ks is not None:
            from cryptography.hazmat.primitives.serialization import Encoding

            sig_der = ks.sig.cert.public_bytes(Encoding.DER)
            if ks.sig.chain:
                sub_der = ks.sig.chain[0].public_bytes(Encoding.DER)
            han_pem = data.han_certificate_pem()
        return smgw_info_json(info, han_cert_pem=han_pem, sig_cert_der=sig_der,
                              sub_ca_der=sub_der)

    def _points(self, p: Any) -> list[Any]:
        return self.ctx.data.usage_points(p.consumer)

    def _point(self, p: Any, doc: dict[str, Any]) -> Any:
        upid = doc.get("usage-point-id")
        if not isinstance(upid, str) or not upid:
            raise M2mError(400, "Parameter 'usage-point-id' fehlt.")
        for sp in self._points(p):
            if usage_point_id(sp.name) == upid:
                return sp
        # another consumer's usage point answers exactly like one that does not exist
        raise M2mError(404, f"Parameter 'usage-point-id': unbekannter Nutzungspunkt {upid!r}")

    @staticmethod
    def _databases(doc: dict[str, Any], default: Sequence[str]) -> list[str]:
        d = doc.get("database")
        if d is None or d == "":
            return list(default)
        if d not in DATABASES:
            raise M2mError(400, f"Parameter 'database': {d!r} gibt es hier nicht "
                                f"(vorhanden: {', '.join(DATABASES)})")
        return [d]

    def _user_info(self, p: Any, doc: dict[str, Any]) -> dict[str, Any]:
        data = self.ctx.data
        points = [(sp, billing_periods(sp.profile, data.billing_periods(p.consumer, sp.name)))
                  for sp in self._points(p)]
        return user_info_json(points, int(self.ctx.now_ms()))

    def _units(self, p: Any, sp: Any) -> dict[str, str]:
        meters = {ch.meter for ch in sp.profile.channels}
        return {c["obis"]: c["unit"] for c in self.ctx.data.current(p.consumer)
                if c["meter"] in meters}

    def _taf_profile(self, sp: Any) -> str:
        """The profile as the gateway holds it, signed by the gateway (CMS, hex)."""
        key = (sp.name, sp.version)
        if key not in self._taf_profile_cache:
            try:
                from smgw.security import cms

                blob = cms.sign(sp.source.encode("utf-8"), self.ctx.data.keystore.sig)
                self._taf_profile_cache[key] = blob.hex()
            except Exception:  # noqa: BLE001 - the profile copy is a courtesy, not the answer
                log.exception("could not sign the TAF profile for usage-point-info")
                return ""
        return self._taf_profile_cache[key]

    def _usage_point_info(self, p: Any, doc: dict[str, Any]) -> dict[str, Any]:
        sp = self._point(p, doc)
        dbs = self._databases(doc, DATABASES)
        return usage_point_info_json(sp, dbs, self._units(p, sp), self._taf_profile(sp))

    def _range(self, doc: dict[str, Any]) -> tuple[int, int]:
        if "fromtime" not in doc:
            raise M2mError(400, "Parameter 'fromtime' fehlt (oder 'last-reading': true).")
        if "totime" not in doc:
            raise M2mError(400, "Parameter 'totime' fehlt (oder 'last-reading': true).")
        a, b = _time(doc["fromtime"], "fromtime"), _time(doc["totime"], "totime")
        if b <= a:
            raise M2mError(400, "Parameter 'totime' muss nach 'fromtime' liegen.")
        if b - a > MAX_RANGE_MS:
            raise M2mError(400, "Zeitraum 'fromtime' bis 'totime' ist länger als 31 Tage.")
        return a, b

    @staticmethod
    def _channel_filter(doc: dict[str, Any]) -> set[str] | None:
        chans = doc.get("channels")
        if chans is None:
            return None
        if not isinstance(chans, list):
            raise M2mError(400, "Parameter 'channels': erwartet eine Liste "
                                '[{"channel": "0100010800ff"}]')
        out = set()
        for i, c in enumerate(chans):
            name = c.get("channel") if isinstance(c, dict) else c
            try:
                out.add(cosem.obis_hex(str(name)))
            except cosem.ObisError:
                raise M2mError(400, f"Parameter 'channels[{i}]': kein OBIS-Kennzeichen: "
                                    f"{name!r}") from None
        return out

    def _readings(self, p: Any, doc: dict[str, Any]) -> dict[str, Any]:
        sp = self._point(p, doc)
        (database,) = self._databases(doc, ("origin",))
        last = _flag(doc.get("last-reading"), "last-reading")
        start = end = None
        if not last:
            start, end = self._range(doc)
        wanted = self._channel_filter(doc)

        def keep(obis: str) -> bool:
            try:
                return wanted is None or cosem.obis_hex(obis) in wanted
            except cosem.ObisError:
                return False

        if database == "origin":
            return readings_json(self._origin(p, sp, keep, last, start, end))
        return readings_json(self._derived(p, sp, keep, last, start, end))

    def _origin(self, p: Any, sp: Any, keep: Callable[[str], bool], last: bool,
                start: int | None, end: int | None) -> list[tuple[str, list[dict[str, Any]]]]:
        data, prof = self.ctx.data, sp.profile
        grid = int(prof.registration_period_s) * 1000
        billing = bool(prof.billing_relevant)
        out = []
        for ch in prof.channels:
            if not keep(ch.obis):
                continue
            if last:
                rs = data.readings(p.consumer, ch.meter, ch.obis, None, None, limit=1,
                                   newest_first=True)
            else:
                # fromtime < t <= totime; the store selects from <= t < to
                rs = data.readings(p.consumer, ch.meter, ch.obis, start + 1, end + 1,
                                   newest_first=True)
            out.append((ch.obis, [origin_entry(r, billing, grid) for r in rs]))
        return out

    def _derived(self, p: Any, sp: Any, keep: Callable[[str], bool], last: bool,
                 start: int | None, end: int | None) -> list[tuple[str, list[dict[str, Any]]]]:
        """One channel per register: the computed register (owner = the usage point) where
        the TAF forms one, else the values of every meter (owner-number tells them apart)."""
        data = self.ctx.data
        registers = derived_registers(sp.profile)
        found: list[Any] = []
        if last:
            for reg in registers:
                if not keep(reg):
                    continue
                vs = data.derived(p.consumer, sp.name, register=reg, limit=1,
                                  newest_first=True)
                if vs:   # every owner's value at the newest target
                    t = vs[0].value.target_ms
                    found += data.derived(p.consumer, sp.name, t, t + 1, register=reg)
        else:
            found = [sv for sv in data.derived(p.consumer, sp.name, start + 1, end + 1,
                                               newest_first=True)
                     if sv.value.register in registers and keep(sv.value.register)]
        groups: dict[str, list[Any]] = {}
        for sv in found:
            groups.setdefault(sv.value.register, []).append(sv)
        out = []
        for reg in registers:
            svs = groups.get(reg)
            if not svs:
                continue
            own = [sv for sv in svs if sv.value.owner == sp.name]
            svs = own or svs
            svs.sort(key=lambda sv: (-sv.value.target_ms, sv.value.owner))
            out.append((reg, [derived_entry(sv) for sv in svs]))
        return out

    def _log(self, p: Any, doc: dict[str, Any]) -> dict[str, Any]:
        given = frozenset(k for k in ("fromtime", "totime", "fromindex", "count")
                          if doc.get(k) not in (None, ""))
        if given not in LOG_COMBOS:
            raise M2mError(400, "Unzulässige Kombination der Parameter "
                                f"{', '.join(sorted(given))} (erlaubt: fromtime, totime, "
                                "fromindex, count und fromindex+count, fromtime+count, "
                                "fromtime+totime+count).")
        start = _time(doc["fromtime"], "fromtime") if "fromtime" in given else None
        end = _time(doc["totime"], "totime") if "totime" in given else None
        if start is not None and end is not None and end < start:
            raise M2mError(400, "Parameter 'totime' liegt vor 'fromtime'.")
        count = (_count(doc["count"], "count", 1, MAX_LOG_COUNT) if "count" in given
                 else MAX_LOG_COUNT)
        first = _count(doc["fromindex"], "fromindex", 0, None) if "fromindex" in given else None
        until = None if end is None else end + 1000   # totime inclusive, to the second
        data = self.ctx.data
        if start is not None or first is not None:
            # the oldest `count` entries from fromtime / fromindex on
            entries: list[Any] = []
            after = None if first is None or first == 0 else first - 1
            while len(entries) < count:
                page = data.consumer_log(p.consumer, start, until,
                                         limit=min(1000, count - len(entries)), after=after)
                entries += [e for e in page.entries if first is None or e.seq >= first]
                if page.next_after is None:
                    break
                after = page.next_after
        else:
            # the newest `count` entries (up to totime)
            window: deque[Any] = deque(maxlen=count)
            after = None
            while True:
                page = data.consumer_log(p.consumer, None, until, limit=1000, after=after)
                window.extend(page.entries)
                if page.next_after is None:
                    break
                after = page.next_after
            entries = list(window)
        return log_json(entries, p.consumer)

    def _self_test(self, p: Any, doc: dict[str, Any]) -> dict[str, Any]:
        from smgw.han.data import SelfTestBusy, SelfTestTooSoon

        try:
            report = self.ctx.data.selftest("consumer", p.consumer)
        except SelfTestTooSoon as e:
            raise M2mError(403, "Selbsttest erst wieder ab "
                                f"{cosem.iso_z(e.next_allowed_ms)} möglich.") from None
        except SelfTestBusy:
            raise M2mError(403, "Ein Selbsttest läuft bereits.") from None
        ok = report.get("ok")
        return {"state": "started",
                "result": "" if ok is None else ("passed" if ok else "failed"),
                "next-allowed": cosem.iso_z(self.ctx.data.next_selftest_allowed_ms())}

    _methods: dict[str, Callable[..., Any]] = {
        "smgw-info": _smgw_info,
        "user-info": _user_info,
        "usage-point-info": _usage_point_info,
        "readings": _readings,
        "log": _log,
        "self-test": _self_test,
    }


def register(app: web.Application, ctx: Any) -> None:
    """Add the IF_GW_CON routes to the HAN server's application."""
    face = M2mFace(ctx)
    for path in (ROOT, ROOT + "/"):
        app.router.add_route("GET", path, face.root)
        app.router.add_route("POST", path, face.root)
    app.router.add_route("POST", ROOT + "/{user}/json", face.endpoint)
