"""VDE AR 2418-6 XML for TRuDI: the consumer's billing data as TRuDI reads it.

Element facts from ``../shared/design/trudi-wan.md`` §1.4-§1.6; the document is checked against
our own schema (``schemas/ar2418-6-smgw.xsd`` importing ``schemas/espi-smgw.xsd``), written
from those facts, which also makes TRuDI's extra requirements (ids, Customer, a certificate, a
status per reading, ...) part of the schema. docs/formats.md lists the elements.

Shape of :func:`trudi_document`'s output (default namespace ``http://vde.de/AR_2418-6.xsd``,
``espi`` = ``http://naesb.org/espi``; ESPI children first in every extended element; no
attributes; times in the export's time zone with their offset)::

    UsagePoints
      GeneratorVersion?                      TrudiExport.generator
      UsagePoint
        espi:ServiceCategory/espi:kind       0 = electricity
        usagePointId, Customer/customerId, InvoicingParty/invoicingPartyId
        SMGW  certId+ smgwId FirmwareComponent* {name version? checksum?} SystemTime?
        Certificate+ {certId certType parentCertId? certContent (hex)}
        tariffName
        LogEntry* {recordNumber LogEvent{type{eventId eventSubId vendorId} level text outcome
                   timestamp}}
        MeterReading*                        original value lists first, then derived values
          Meter/meterId, meterReadingId
          ReadingType {espi:powerOfTenMultiplier 0, espi:uom, scaler, obisCode,
                       qualifiedLogicalName, measurementPeriod?}
          IntervalBlock+ {interval{duration start}
            IntervalReading+ {espi:value, timePeriod{duration 0, start = capture},
                              targetTime?, certId?, signature?, statusFNN | statusPTB}}

Original value lists are named ``<obis>.<meterId>.sm`` (TRuDI's OVL rule: the middle part is
exactly ``Meter/meterId``); derived values ``<obis>.<owner>.sm``, which is
``<obis>.<TAF profile id>.sm`` for computed registers (owner = profile name) and the meter id
for TAF 6/7 readings (TRuDI then treats them as original value lists, as it wants for TAF 7).
"""

from __future__ import annotations

import functools
import os
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from smgw.meters.obis import ObisError, parse_obis
from smgw.tariff.model import DerivedValue, Reading, smgw_status, status_fnn, status_ptb

from . import FormatError
from . import _xml

__all__ = [
    "ESPI_UOM",
    "FormatError",
    "NS_AR",
    "NS_ESPI",
    "SCHEMA_DIR",
    "TrudiExport",
    "XSD_DIR_ENV",
    "original_schema_dir",
    "trudi_document",
    "validate",
]

NS_AR = "http://vde.de/AR_2418-6.xsd"
NS_ESPI = "http://naesb.org/espi"
SCHEMA_DIR = Path(__file__).with_name("schemas")
SCHEMA_FILE = "ar2418-6-smgw.xsd"
#: environment variable naming a directory with the original schema set (AR_2418-6.xsd and
#: what it imports); :func:`validate` with ``original=True`` checks against it
XSD_DIR_ENV = "SMGW_AR2418_XSD_DIR"
ORIGINAL_SCHEMA_FILE = "AR_2418-6.xsd"
MAX_DOCUMENT_BYTES = 256 * 1024 * 1024

#: DLMS unit symbol -> ESPI uom code (AR 2418-6 uses ESPI's numbering)
ESPI_UOM = {
    "Wh": 72, "varh": 73, "VAh": 71, "W": 38, "var": 63, "VA": 61, "A": 5, "V": 29,
    "Hz": 33, "m³": 42, "m³/h": 125, "J": 31, "Ah": 106, "°": 9, "°C": 23, "dBm": 113,
}

_LEVEL = {"INFO": 1, "WARNING": 2, "ERROR": 3, "FATAL": 4}
_OUTCOME = {"successful": 0, "failed": 1}
_INT48 = (-(1 << 47), (1 << 47) - 1)
_STATUS_STYLES = ("fnn", "ptb", "both")


@dataclass
class TrudiExport:
    """Everything one TRuDI document holds for one usage point (evaluation profile)."""

    gateway_id: str                      # smgwId, e.g. "EOPN0000000001"
    usage_point: str                     # usagePointId (Zählpunkt)
    customer_id: str                     # the consumer's id (logical device name without .sm)
    invoicing_party: str                 # invoicingPartyId (the supplier)
    tariff_name: str                     # the evaluation profile's name
    taf: int                             # TAF 7: derived values must be readings
    #: (certId, certType 1 SIG / 2 sub-CA / 3 HAN TLS, DER or PEM bytes[, parentCertId]);
    #: without a parent, a type-1 certificate gets the only type-2 certificate as parent
    certificates: list[tuple]
    firmware: list[tuple[str, str, str]]  # (component, version, checksum)
    system_time_ms: int | None
    meters: list[str]                    # the meter ids behind the usage point
    original_values: list[Reading] = field(default_factory=list)
    derived: list[tuple[DerivedValue, bytes | None]] = field(default_factory=list)
    log: list[Mapping[str, Any]] = field(default_factory=list)   # consumer-log entries
    registration_period_s: int = 900
    service_kind: int = 0                # ServiceCategory/kind: 0 electricity
    timezone: str = "Europe/Berlin"
    status: str = "fnn"                  # which status to write: "fnn", "ptb" or "both"
    #: the query window [start, end) of the value lists (original values, TAF 6/7 readings),
    #: stretched by the capture tolerance; None: their span (on the registration grid)
    window: tuple[int, int] | None = None
    generator: str | None = None         # GeneratorVersion


# ===========================================================================================
# building

def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def _sub(parent: etree._Element, name: str, text: object | None = None, ns: str = NS_AR
         ) -> etree._Element:
    el = etree.SubElement(parent, _q(ns, name))
    if text is not None:
        el.text = str(text)
    return el


class _Ctx:
    def __init__(self, e: TrudiExport):
        try:
            self.tz = zoneinfo.ZoneInfo(e.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise FormatError(f"unknown time zone {e.timezone!r}", "timezone") from None
        self.period_ms = _xml.check_int(e.registration_period_s, "registration_period_s",
                                        1, 86400 * 31) * 1000
        if e.status not in _STATUS_STYLES:
            raise FormatError(f"{e.status!r} is not one of {', '.join(_STATUS_STYLES)}",
                              "status")
        self.status = e.status
        self.sig_cert: int | None = None

    def time(self, ms: int) -> str:
        return _xml.local_text(ms, self.tz)


def trudi_document(e: TrudiExport, *, check: bool = True) -> bytes:
    """The AR 2418-6 document for ``e`` (UTF-8). With ``check`` (default) it is validated
    against our schema before it is returned, so a FormatError names any field that does not
    fit (too long, out of range) instead of handing TRuDI a document it rejects."""
    ctx = _Ctx(e)
    root = etree.Element(_q(NS_AR, "UsagePoints"), nsmap={None: NS_AR, "espi": NS_ESPI})
    if e.generator is not None:
        _sub(root, "GeneratorVersion", _xml.check_text(e.generator, "generator"))
    up = _sub(root, "UsagePoint")
    _sub(_sub(up, "ServiceCategory", ns=NS_ESPI), "kind", e.service_kind, ns=NS_ESPI)
    _sub(up, "usagePointId", _xml.check_text(e.usage_point, "usage_point"))
    _sub(_sub(up, "Customer"), "customerId", _xml.check_text(e.customer_id, "customer_id",
                                                             max_len=64))
    _sub(_sub(up, "InvoicingParty"), "invoicingPartyId",
         _xml.check_text(e.invoicing_party, "invoicing_party", max_len=64))
    certs = _certificates(e.certificates)
    ctx.sig_cert = next((c[0] for c in certs if c[1] == 1), None)
    smgw = _sub(up, "SMGW")
    for cert_id, *_ in certs:
        _sub(smgw, "certId", cert_id)
    _sub(smgw, "smgwId", _xml.check_text(e.gateway_id, "gateway_id", max_len=32))
    for i, comp in enumerate(e.firmware):
        if not isinstance(comp, tuple) or len(comp) != 3:
            raise FormatError("must be (component, version, checksum)", f"firmware[{i}]")
        fc = _sub(smgw, "FirmwareComponent")
        _sub(fc, "name", _xml.check_text(comp[0], f"firmware[{i}].name", max_len=64))
        if comp[1]:
            _sub(fc, "version", _xml.check_text(comp[1], f"firmware[{i}].version"))
        if comp[2]:
            _sub(fc, "checksum", _xml.check_text(comp[2], f"firmware[{i}].checksum"))
    if e.system_time_ms is not None:
        _sub(smgw, "SystemTime", ctx.time(_xml.check_ms(e.system_time_ms, "system_time_ms")))
    for cert_id, cert_type, parent, content in certs:
        c = _sub(up, "Certificate")
        _sub(c, "certId", cert_id)
        _sub(c, "certType", cert_type)
        if parent is not None:
            _sub(c, "parentCertId", parent)
        _sub(c, "certContent", content.hex())
    _sub(up, "tariffName", _xml.check_text(e.tariff_name, "tariff_name"))
    flag = e.gateway_id[1:4].upper() if len(e.gateway_id) >= 4 else None
    for i, entry in enumerate(e.log):
        _log_entry(up, ctx, i, entry, flag)
    names: set[str] = set()
    for mr in (*_original_readings(e, ctx), *_derived_readings(e, ctx)):
        qln = mr.findtext(f"{_q(NS_AR, 'ReadingType')}/{_q(NS_AR, 'qualifiedLogicalName')}")
        if qln in names:
            raise FormatError(f"two value lists named {qln} (the same meter and OBIS in "
                              f"original_values and derived?); pass each list once",
                              "derived")
        names.add(qln)
        up.append(mr)
    xml = _xml.declaration() + etree.tostring(root, encoding="UTF-8", pretty_print=True)
    if check:
        validate(xml)
    return xml


def _certificates(certs: Sequence[tuple]) -> list[tuple[int, int, int | None, bytes]]:
    out: list[tuple[int, int, int | None, bytes]] = []
    if not certs:
        raise FormatError("at least one certificate is needed (TRuDI requires the gateway's "
                          "signature certificate)", "certificates")
    for i, c in enumerate(certs):
        w = f"certificates[{i}]"
        if not isinstance(c, tuple) or len(c) not in (3, 4):
            raise FormatError("must be (certId, certType, content[, parentCertId])", w)
        cert_id = _xml.check_int(c[0], f"{w}.certId", 0, 255)
        cert_type = _xml.check_int(c[1], f"{w}.certType", 1, 3)
        if not isinstance(c[2], (bytes, bytearray)) or not c[2]:
            raise FormatError("content must be the certificate's bytes (DER or PEM)", w)
        parent = c[3] if len(c) == 4 else None
        if parent is not None:
            _xml.check_int(parent, f"{w}.parentCertId", 0, 255)
        if any(o[0] == cert_id for o in out):
            raise FormatError(f"certId {cert_id} is used twice", w)
        out.append((cert_id, cert_type, parent, bytes(c[2])))
    sub_cas = [o[0] for o in out if o[1] == 2]
    if len(sub_cas) == 1:
        out = [(i, t, sub_cas[0] if t == 1 and p is None and len(certs[k]) == 3 else p, b)
               for k, (i, t, p, b) in enumerate(out)]
    known = {o[0] for o in out}
    for i, o in enumerate(out):
        if o[2] is not None and o[2] not in known:
            raise FormatError(f"parentCertId {o[2]} is not one of the certificates",
                              f"certificates[{i}]")
    return out


def _field(e: Any, name: str, *alts: str) -> Any:
    for n in (name, *alts):
        if isinstance(e, Mapping):
            if n in e:
                return e[n]
        elif hasattr(e, n):
            return getattr(e, n)
    return None


def _log_entry(up: etree._Element, ctx: _Ctx, i: int, entry: Any, flag: str | None) -> None:
    w = f"log[{i}]"
    seq = _xml.check_int(_field(entry, "seq"), f"{w}.seq", 0, (1 << 32) - 1)
    ts = _xml.check_ms(_field(entry, "ts_ms"), f"{w}.ts_ms")
    event_id = _xml.check_int(_field(entry, "event", "event_id"), f"{w}.event", 0, (1 << 32) - 1)
    level = _field(entry, "level")
    if level not in _LEVEL:
        raise FormatError(f"level {level!r} is not one of {', '.join(_LEVEL)}", f"{w}.level")
    status = _field(entry, "status")
    if status not in _OUTCOME:
        raise FormatError(f"status {status!r} is not successful or failed", f"{w}.status")
    text = _xml.check_text(_field(entry, "text") or "", f"{w}.text", max_len=16384, empty=True)
    le = _sub(up, "LogEntry")
    _sub(le, "recordNumber", seq)
    ev = _sub(le, "LogEvent")
    t = _sub(ev, "type")
    _sub(t, "eventId", event_id)
    _sub(t, "eventSubId", 0)
    if flag:
        _sub(t, "vendorId", flag)
    _sub(ev, "level", _LEVEL[level])
    if text:
        _sub(ev, "text", text)
    _sub(ev, "outcome", _OUTCOME[status])
    _sub(ev, "timestamp", ctx.time(ts))


# ------------------------------------------------------------------------------ meter readings

@dataclass(slots=True)
class _Point:
    """One IntervalReading before it is written."""

    value: int
    scaler: int
    unit: str
    start: int                  # timePeriod/start: the capture time (target for registers)
    target: int | None          # targetTime
    sig: bytes | None
    smgw: int                   # SMGW status word
    meter: int | None           # meter status word
    where: str                  # "derived[3]": the input it came from, for messages
    period: tuple[int, int] | None


def _obis(text: str, where: str) -> tuple[str, tuple[int, ...]]:
    try:
        o = parse_obis(text)
    except ObisError as err:
        raise FormatError(str(err), where) from None
    return o.to_bytes().hex(), tuple(o)


def _original_readings(e: TrudiExport, ctx: _Ctx) -> list[etree._Element]:
    groups: dict[tuple[str, str], list[_Point]] = {}
    for i, r in enumerate(e.original_values):
        w = f"original_values[{i}]"
        if not isinstance(r, Reading):
            raise FormatError(f"must be a Reading, not {type(r).__name__}", w)
        _xml.check_text(r.meter, f"{w}.meter", max_len=64)
        hex_, _ = _obis(r.obis, f"{w}.obis")
        _xml.check_ms(r.capture_ms, f"{w}.capture_ms")
        grid = round(r.capture_ms / ctx.period_ms) * ctx.period_ms
        target = grid if abs(r.capture_ms - grid) * 100 <= ctx.period_ms else None
        smgw = smgw_status(time_valid=r.time_valid, meter_status=r.status)
        groups.setdefault((r.meter, r.obis), []).append(_Point(
            r.value, r.scaler, r.unit, r.capture_ms, target, None, smgw, r.status, w, None))
    out = []
    for (meter, obis), points in sorted(groups.items(),
                                        key=lambda kv: (kv[0][0], _obis(kv[0][1], "")[1])):
        points.sort(key=lambda p: p.start)
        if e.window is not None:
            start, end = _in_window(e.window, points, ctx)
        else:
            start = min(p.start for p in points) // ctx.period_ms * ctx.period_ms
            end = -(-max(p.start for p in points) // ctx.period_ms) * ctx.period_ms
            end = max(end, start + ctx.period_ms)
        out.append(_meter_reading(e, ctx, meter, obis, meter, points, [(start, end, points)],
                                  measurement_period=True))
    return out


def _window(w: tuple[int, int]) -> tuple[int, int]:
    if not isinstance(w, tuple) or len(w) != 2:
        raise FormatError("must be (start_ms, end_ms)", "window")
    s, t = _xml.check_ms(w[0], "window[0]"), _xml.check_ms(w[1], "window[1]")
    if t <= s:
        raise FormatError("ends before it starts", "window")
    return s, t


def _in_window(w: tuple[int, int], points: list[_Point], ctx: _Ctx) -> tuple[int, int]:
    """The interval of a value list with a query window: the window, stretched to the capture
    times that lie just outside it (by at most the capture tolerance, 1 % of the registration
    period, e.g. 00:00:00.4 for the 24:00 value); anything further out is the caller's error."""
    start, end = _window(w)
    tol = ctx.period_ms // 100
    for p in points:
        if not start - tol <= p.start <= end + tol:
            raise FormatError(f"capture time {ctx.time(p.start)} is outside the window "
                              f"{ctx.time(start)} .. {ctx.time(end)}", p.where)
    return min(start, *(p.start for p in points)), max(end, *(p.start for p in points))


def _derived_readings(e: TrudiExport, ctx: _Ctx) -> list[etree._Element]:
    groups: dict[tuple[str, str], list[tuple[DerivedValue, _Point]]] = {}
    for i, item in enumerate(e.derived):
        w = f"derived[{i}]"
        if not isinstance(item, tuple) or len(item) != 2 or not isinstance(item[0],
                                                                            DerivedValue):
            raise FormatError("must be a (DerivedValue, signature) pair", w)
        v, sig = item
        if sig is not None and (not isinstance(sig, (bytes, bytearray)) or not sig):
            raise FormatError("a signature is non-empty bytes or None", f"{w} signature")
        _xml.check_text(v.owner, f"{w}.owner")
        _obis(v.register, f"{w}.register")
        for name in ("period_start_ms", "period_end_ms", "target_ms"):
            _xml.check_ms(getattr(v, name), f"{w}.{name}")
        start = v.capture_ms if v.capture_ms is not None else v.target_ms
        _xml.check_ms(start, f"{w}.capture_ms")
        p = _Point(v.value, v.scaler, v.unit, start, v.target_ms,
                   bytes(sig) if sig is not None else None, v.status, v.meter_status, w,
                   (v.period_start_ms, v.period_end_ms))
        groups.setdefault((v.register, v.owner), []).append((v, p))
    if e.taf == 7:
        for (register, owner), items in groups.items():
            if any(v.kind != "reading" for v, _ in items):
                raise FormatError(f"a TAF 7 export holds readings only (TRuDI accepts nothing "
                                  f"but original value lists there), not the {items[0][0].kind} "
                                  f"{register} of {owner!r}", items[0][1].where)
    out = []
    for (register, owner), items in sorted(groups.items(),
                                           key=lambda kv: (kv[0][1], _obis(kv[0][0], "")[1])):
        values = [v for v, _ in items]
        points = sorted((p for _, p in items), key=lambda p: (p.target, p.start))
        readings = all(v.kind == "reading" for v in values)
        if readings:
            if e.window is not None:
                blocks = [(*_in_window(e.window, points, ctx), points)]
            else:
                s = min(min(p.period[0], p.start, p.target) for p in points)
                t = max(max(p.period[1], p.start, p.target) for p in points)
                blocks = [(s, max(t, s + 1000), points)]
        else:
            by_period: dict[tuple[int, int], list[_Point]] = {}
            for p in points:
                by_period.setdefault(p.period, []).append(p)
            blocks = [(s, t, ps) for (s, t), ps in sorted(by_period.items())]
        # Meter/meterId: the owner for readings (its meter id); for computed registers the
        # first meter that contributed, else the usage point's first meter
        sources = [m for v in values for m in v.sources]
        if readings or owner in e.meters:
            meter = owner
        elif sources or e.meters:
            meter = (sources or e.meters)[0]
        else:
            raise FormatError(f"register {register} of {owner!r} needs a meter id (no "
                              f"sources and TrudiExport.meters is empty)", "meters")
        measurement = readings and values[0].taf == 7
        out.append(_meter_reading(e, ctx, meter, register, owner, points, blocks,
                                  measurement_period=measurement))
    return out


def _meter_reading(e: TrudiExport, ctx: _Ctx, meter: str, obis: str, middle: str,
                   points: list[_Point], blocks: list[tuple[int, int, list[_Point]]],
                   *, measurement_period: bool) -> etree._Element:
    obis_hex, _ = _obis(obis, points[0].where)
    units = {p.unit for p in points}
    if len(units) != 1:
        raise FormatError(f"values of {obis} of {middle!r} come in several units "
                          f"({', '.join(sorted(units))})", points[0].where)
    unit = units.pop()
    uom = ESPI_UOM.get(unit)
    if uom is None:
        raise FormatError(f"unit {unit!r} has no AR 2418-6 (ESPI) uom code; known: "
                          f"{', '.join(ESPI_UOM)}", f"{points[0].where}.unit")
    scaler = min(p.scaler for p in points)
    mr = etree.Element(_q(NS_AR, "MeterReading"))
    _sub(_sub(mr, "Meter"), "meterId", _xml.check_text(meter, f"{points[0].where} meter id",
                                                      max_len=64))
    mrid = f"{e.usage_point}.{middle}.{obis}"
    qln = f"{obis_hex}.{middle}.sm"
    _sub(mr, "meterReadingId", mrid if len(mrid) <= 256 else qln)
    rt = _sub(mr, "ReadingType")
    _sub(rt, "powerOfTenMultiplier", 0, ns=NS_ESPI)
    _sub(rt, "uom", uom, ns=NS_ESPI)
    _sub(rt, "scaler", scaler)
    _sub(rt, "obisCode", obis_hex)
    _sub(rt, "qualifiedLogicalName", qln)
    if measurement_period:
        _sub(rt, "measurementPeriod", ctx.period_ms // 1000)
    for start, end, ps in blocks:
        for p in ps:
            if not start <= p.start <= end:
                raise FormatError(f"capture time {ctx.time(p.start)} is outside the interval "
                                  f"{ctx.time(start)} .. {ctx.time(end)}", p.where)
        ib = _sub(mr, "IntervalBlock")
        iv = _sub(ib, "interval")
        _sub(iv, "duration", -(-(end - start) // 1000))
        _sub(iv, "start", ctx.time(start))
        for p in ps:
            _interval_reading(ib, ctx, p, scaler)
    return mr


def _interval_reading(ib: etree._Element, ctx: _Ctx, p: _Point, scaler: int) -> None:
    value = p.value * 10 ** (p.scaler - scaler)
    if not _INT48[0] <= value <= _INT48[1]:
        raise FormatError(f"{value} (scaler {scaler}) does not fit AR 2418-6's 48-bit value",
                          f"{p.where}.value")
    ir = _sub(ib, "IntervalReading")
    _sub(ir, "value", value, ns=NS_ESPI)
    tp = _sub(ir, "timePeriod")
    _sub(tp, "duration", 0)
    _sub(tp, "start", ctx.time(p.start))
    if p.target is not None:
        _sub(ir, "targetTime", ctx.time(p.target))
    if p.sig is not None:
        if ctx.sig_cert is not None:
            _sub(ir, "certId", ctx.sig_cert)
        _sub(ir, "signature", p.sig.hex())
    if not 0 <= p.smgw <= 0xFFFFFFFF or not 0 <= (p.meter or 0) <= 0xFFFFFFFF:
        raise FormatError("a status word is 32 bits", f"{p.where}.status")
    if ctx.status in ("fnn", "both"):
        _sub(ir, "statusFNN", status_fnn(p.smgw, p.meter))
    if ctx.status in ("ptb", "both"):
        _sub(ir, "statusPTB", status_ptb(p.smgw, p.meter))


# ===========================================================================================
# validation

class _LocalResolver(etree.Resolver):
    """Resolves every schema reference (import/include, also absolute URLs such as the W3C's
    xml.xsd) to the file of the same name in one directory; nothing else is loaded."""

    def __init__(self, directory: Path):
        super().__init__()
        self.directory = directory

    def resolve(self, system_url, public_id, context):
        name = (system_url or "").replace("\\", "/").rsplit("/", 1)[-1]
        path = self.directory / name
        if name and path.is_file():
            return self.resolve_filename(str(path), context)
        raise FormatError(f"schema {system_url!r} is not in {self.directory}")


@functools.lru_cache(maxsize=4)
def _schema(directory: str, filename: str) -> etree.XMLSchema:
    d = Path(directory)
    path = d / filename
    if not path.is_file():
        raise FormatError(f"schema file {path} not found")
    parser = _xml.parser()
    parser.resolvers.add(_LocalResolver(d))
    try:
        doc = etree.parse(str(path), parser)
        return etree.XMLSchema(doc)
    except (etree.XMLSchemaParseError, etree.XMLSyntaxError) as err:
        raise FormatError(f"schema {path} cannot be loaded: {err}") from None


def original_schema_dir() -> Path | None:
    """The directory of the original AR 2418-6 schema set named by ``SMGW_AR2418_XSD_DIR``,
    or None when the variable is not set."""
    d = os.environ.get(XSD_DIR_ENV)
    return Path(d) if d else None


_SHORT = {f"{{{NS_AR}}}": "", f"{{{NS_ESPI}}}": "espi:"}


def _short(text: str) -> str:
    for long, short in _SHORT.items():
        text = text.replace(long, short)
    return text


def validate(xml: bytes, *, original: bool = False, xsd_dir: Path | None = None) -> None:
    """Check an AR 2418-6 document against our schema (default), or against the original
    schema set (``original=True``: in ``xsd_dir`` or the directory named by
    ``SMGW_AR2418_XSD_DIR``, main file ``AR_2418-6.xsd``). Raises FormatError with the line,
    the element path and the schema's complaint for the first problem."""
    if original:
        d = xsd_dir or original_schema_dir()
        if d is None:
            raise FormatError(f"no original schema directory: set {XSD_DIR_ENV}")
        schema = _schema(str(Path(d).resolve()), ORIGINAL_SCHEMA_FILE)
    else:
        schema = _schema(str(SCHEMA_DIR.resolve()), SCHEMA_FILE)
    root = _xml.parse(xml, max_bytes=MAX_DOCUMENT_BYTES, what="AR 2418-6 document")
    if schema.validate(root):
        return
    err = schema.error_log.filter_from_errors()[0]
    path = _readable_path(root, err.path)
    raise FormatError(_short(err.message), f"line {err.line}: {path}" if path else
                      f"line {err.line}")


def _readable_path(root: etree._Element, xpath: str | None) -> str:
    """libxml2's ``/*/*/*[2]`` as ``/UsagePoints/UsagePoint/Customer``."""
    if not xpath:
        return ""
    try:
        found = root.getroottree().xpath(
            xpath, namespaces={k: v for k, v in root.nsmap.items() if k})
    except etree.XPathError:
        return xpath
    if not found or not isinstance(found[0], etree._Element):
        return xpath
    names = [_short(el.tag) for el in (found[0], *found[0].iterancestors())]
    return "/" + "/".join(reversed(names))
