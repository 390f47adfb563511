"""DKE K461 COSEM XML: derived values as a ``profile_generic`` object, logbook exports.

Facts from ``../shared/design/trudi-wan.md`` §2 and ``han-clients.md`` §A.7 (namespaces, the
object/attributes/capture_objects/buffer tree, ``entry_gateway_signed``, DLMS unit codes, UTC
capture times, the logbook entry with its ``evis`` identity). docs/formats.md describes the
documents element by element.

Values document (:func:`values_document`, read back by :func:`parse_values`)::

    ns1:object class_id=7 class_version=1 id=<profile OBIS>.<gateway>.sm
      ns1:attributes count=3
        ns2:logical_name id=1                       same as the object id
        ns1:capture_objects id=2 count=K            one capture_object per (register, owner)
          ns1:capture_object id=k
            ns2:logical_name                        <12-hex OBIS>.<owner>.sm
            ns2:class_id 4, ns2:class_version 0     an extended register
            smgw:column owner=...                   the owner exactly (the name is normalised)
        ns1:buffer id=3
          ns1:simple_data count=K
            ns1:column id=k count=M
              ns1:entry_gateway_signed id=j         (ns1:entry when the value is not signed)
                ns2:value/ns2:long64                (long64-unsigned from 2^63 on)
                ns2:scaler, ns2:unit                DLMS unit code (30 = Wh)
                ns2:status/ns2:double-long-unsigned the SMGW status word
                ns2:capture_time                    UTC, whole seconds, ...Z
                ns2:smgw_signature                  hex (signed entries only)
                smgw:value ...                      what K461 has no place for (below)
      smgw:document format=1 gateway=<gateway id>

``ns1`` = ``urn:k461-dke-de:profile_generic-1``, ``ns2`` = ``urn:k461-dke-de:extension-1``
(these prefixes, as existing HAN clients expect), ``smgw`` = :data:`NS_TARIFF`
(``urn:smgw-open:tariff-1``), our own extension carrying the rest of a
:class:`~smgw.tariff.model.DerivedValue`: profile, taf, target, period start/end, stage, kind,
time_valid, billing, meter_status, the capture time to the millisecond (K461's
``capture_time`` is whole seconds, the capture time or, for registers without one, the target
time), the source meters and the unit symbol where no DLMS code has it. A K461 reader that
ignores foreign elements still sees a plain ``profile_generic`` export.

The document is ASCII (non-ASCII characters as character references), so that byte-level tools
which cut or grep the XML keep working.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

from lxml import etree

from smgw.meters.obis import ObisError, parse_obis
from smgw.meters.units import UNITS, unit_code, unit_symbol
from smgw.tariff.model import DerivedValue

from . import FormatError
from . import _xml

__all__ = [
    "FormatError",
    "KINDS",
    "MAX_DOCUMENT_BYTES",
    "NS_EXT",
    "NS_PG",
    "NS_TARIFF",
    "cosem_id",
    "log_document",
    "logical_name",
    "parse_values",
    "values_document",
]

NS_PG = "urn:k461-dke-de:profile_generic-1"
NS_EXT = "urn:k461-dke-de:extension-1"
NS_TARIFF = "urn:smgw-open:tariff-1"
FORMAT_VERSION = "1"
_NSMAP = {"ns1": NS_PG, "ns2": NS_EXT, "smgw": NS_TARIFF}
_PREFIX = {ns: f"{p}:" for p, ns in _NSMAP.items()}

#: parse_values refuses larger documents (a month of 15-min values of ten registers is ~2 MB)
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024

KINDS = ("register", "reading", "min", "max", "mean", "sum")

# Logical names of the profile objects themselves: 1-0:98.1.0 (billing period data) for
# documents of TAF 1/2 registers only, 1-0:99.1.0 (load profile) otherwise; 0-0:99.98.3 is the
# logbook export's name (han-clients.md §A.7.4).
OBIS_BILLING_PROFILE = "0100620100ff"
OBIS_LOAD_PROFILE = "0100630100ff"
OBIS_LOGBOOK = "0000636203ff"

CLASS_PROFILE_GENERIC = 7
CLASS_EXTENDED_REGISTER = 4

_LONG64 = (-(1 << 63), (1 << 63) - 1)
_ULONG64 = (0, (1 << 64) - 1)
_U32 = (0, (1 << 32) - 1)
_UNIT_OTHER = 254          # DLMS "other unit": the symbol is in smgw:value/@unit
_UNIT_COUNT = 255          # DLMS "count": no unit, symbol ""
_HEX_RE = re.compile(r"^(?:[0-9a-fA-F]{2})+$")
_LN_RE = re.compile(r"^([0-9a-f]{12})\.([a-z0-9-]{1,63})\.([a-z]{1,5})$")
_ID_BAD = re.compile(r"[^a-z0-9-]")


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def cosem_id(name: str) -> str:
    """The middle part of a COSEM logical name for ``name``: lower case, every character
    outside ``[a-z0-9-]`` replaced by ``-``, at most 63 characters (``EOPN0000000001`` ->
    ``eopn0000000001``, ``TAF2 Haus`` -> ``taf2-haus``)."""
    return _ID_BAD.sub("-", name.lower())[:63] or "-"


def logical_name(obis: str, owner: str, suffix: str = "sm") -> str:
    """``logical_name("1-0:1.8.0", "1EMH0005347109")`` -> ``0100010800ff.1emh0005347109.sm``."""
    return f"{parse_obis(obis).to_bytes().hex()}.{cosem_id(owner)}.{suffix}"


# ===========================================================================================
# values: build

def _bool(b: bool) -> str:
    return "true" if b else "false"


def _check_value(i: int, v: DerivedValue, sig: bytes | None) -> None:
    """Everything the document must be able to carry unchanged (caller's data: values[i])."""
    w = f"values[{i}]"
    if not isinstance(v, DerivedValue):
        raise FormatError(f"must be a DerivedValue, not {type(v).__name__}", w)
    _xml.check_text(v.profile, f"{w}.profile")
    _xml.check_int(v.taf, f"{w}.taf", 1, 14)
    _xml.check_text(v.register, f"{w}.register", max_len=32)
    try:
        canon = str(parse_obis(v.register))
    except ObisError as e:
        raise FormatError(str(e), f"{w}.register") from None
    if canon != v.register:
        raise FormatError(f"{v.register!r} is not in canonical form ({canon!r})", f"{w}.register")
    _xml.check_text(v.owner, f"{w}.owner")
    for name in ("period_start_ms", "period_end_ms", "target_ms"):
        _xml.check_ms(getattr(v, name), f"{w}.{name}")
    if v.period_start_ms > v.period_end_ms:
        raise FormatError(f"period starts ({v.period_start_ms}) after it ends "
                          f"({v.period_end_ms})", f"{w}.period_start_ms")
    if v.capture_ms is not None:
        _xml.check_ms(v.capture_ms, f"{w}.capture_ms")
    _xml.check_int(v.value, f"{w}.value", _LONG64[0], _ULONG64[1])
    _xml.check_int(v.scaler, f"{w}.scaler", -128, 127)
    _xml.check_text(v.unit, f"{w}.unit", max_len=32, empty=True)
    _xml.check_int(v.status, f"{w}.status", *_U32)
    if v.meter_status is not None:
        _xml.check_int(v.meter_status, f"{w}.meter_status", *_U32)
    for name in ("time_valid", "billing"):
        if not isinstance(getattr(v, name), bool):
            raise FormatError("must be True or False", f"{w}.{name}")
    if v.stage is not None:
        _xml.check_int(v.stage, f"{w}.stage", 1, 63)
    if v.kind not in KINDS:
        raise FormatError(f"{v.kind!r} is not one of {', '.join(KINDS)}", f"{w}.kind")
    if not isinstance(v.sources, tuple):
        raise FormatError("must be a tuple of meter ids", f"{w}.sources")
    for k, s in enumerate(v.sources):
        _xml.check_text(s, f"{w}.sources[{k}]")
    if sig is not None and (not isinstance(sig, (bytes, bytearray)) or not sig):
        raise FormatError("a signature is non-empty bytes or None", f"{w} signature")


def _unit_code(symbol: str) -> tuple[int, bool]:
    """-> (DLMS code, whether the symbol must travel in smgw:value/@unit)."""
    if symbol == "":
        return _UNIT_COUNT, False
    code = unit_code(symbol)
    if code is None:
        return _UNIT_OTHER, True
    return code, False


def values_document(values: Sequence[tuple[DerivedValue, bytes | None]], gateway_id: str, *,
                    pseudonym: str | None = None) -> bytes:
    """The K461 document for ``values`` (each with the gateway's signature or ``None``).

    One ``capture_object``/``column`` per (register, owner), in the order the pairs first
    appear; entries in input order within their column. ``pseudonym`` (TAF 9/10/14): every
    meter id in the document — an owner other than the profile name, the source meters — is
    replaced by it. Raises FormatError naming ``values[i].<field>`` for what the format cannot
    carry."""
    _xml.check_text(gateway_id, "gateway_id", max_len=64)
    if pseudonym is not None:
        _xml.check_text(pseudonym, "pseudonym")
    columns: dict[tuple[str, str], list[tuple[DerivedValue, bytes | None]]] = {}
    for i, item in enumerate(values):
        if not isinstance(item, tuple) or len(item) != 2:
            raise FormatError("must be a (DerivedValue, signature) pair", f"values[{i}]")
        v, sig = item
        _check_value(i, v, sig)
        if pseudonym is not None:
            owner = v.owner if v.owner == v.profile else pseudonym
            v = dataclasses.replace(v, owner=owner, sources=())
        columns.setdefault((v.register, v.owner), []).append((v, sig))

    tafs = {v.taf for col in columns.values() for v, _ in col}
    prof_obis = OBIS_BILLING_PROFILE if tafs and tafs <= {1, 2} else OBIS_LOAD_PROFILE
    name = f"{prof_obis}.{cosem_id(gateway_id)}.sm"
    root = etree.Element(_q(NS_PG, "object"), nsmap=_NSMAP)
    root.set("class_id", str(CLASS_PROFILE_GENERIC))
    root.set("class_version", "1")
    root.set("id", name)
    attrs = etree.SubElement(root, _q(NS_PG, "attributes"), count="3")
    ln = etree.SubElement(attrs, _q(NS_EXT, "logical_name"), id="1")
    ln.text = name
    cap = etree.SubElement(attrs, _q(NS_PG, "capture_objects"), id="2", count=str(len(columns)))
    buf = etree.SubElement(attrs, _q(NS_PG, "buffer"), id="3")
    data = etree.SubElement(buf, _q(NS_PG, "simple_data"), count=str(len(columns)))
    for k, ((register, owner), entries) in enumerate(columns.items(), start=1):
        co = etree.SubElement(cap, _q(NS_PG, "capture_object"), id=str(k))
        etree.SubElement(co, _q(NS_EXT, "logical_name")).text = logical_name(register, owner)
        etree.SubElement(co, _q(NS_EXT, "class_id")).text = str(CLASS_EXTENDED_REGISTER)
        etree.SubElement(co, _q(NS_EXT, "class_version")).text = "0"
        etree.SubElement(co, _q(NS_TARIFF, "column"), owner=owner)
        col = etree.SubElement(data, _q(NS_PG, "column"), id=str(k), count=str(len(entries)))
        for j, (v, sig) in enumerate(entries, start=1):
            _entry(col, j, v, sig)
    etree.SubElement(root, _q(NS_TARIFF, "document"), format=FORMAT_VERSION, gateway=gateway_id)
    return _xml.declaration() + etree.tostring(root, encoding="ASCII", pretty_print=True)


def _entry(col: etree._Element, j: int, v: DerivedValue, sig: bytes | None) -> None:
    e = etree.SubElement(col, _q(NS_PG, "entry_gateway_signed" if sig is not None else "entry"),
                         id=str(j))
    value = etree.SubElement(e, _q(NS_EXT, "value"))
    kind = "long64" if v.value <= _LONG64[1] else "long64-unsigned"
    etree.SubElement(value, _q(NS_EXT, kind)).text = str(v.value)
    etree.SubElement(e, _q(NS_EXT, "scaler")).text = str(v.scaler)
    code, carry_symbol = _unit_code(v.unit)
    etree.SubElement(e, _q(NS_EXT, "unit")).text = str(code)
    status = etree.SubElement(e, _q(NS_EXT, "status"))
    etree.SubElement(status, _q(NS_EXT, "double-long-unsigned")).text = str(v.status)
    t = v.capture_ms if v.capture_ms is not None else v.target_ms
    etree.SubElement(e, _q(NS_EXT, "capture_time")).text = _xml.utc_text(t - t % 1000)
    if sig is not None:
        etree.SubElement(e, _q(NS_EXT, "smgw_signature")).text = bytes(sig).hex()
    x = etree.SubElement(e, _q(NS_TARIFF, "value"))
    x.set("profile", v.profile)
    x.set("taf", str(v.taf))
    x.set("kind", v.kind)
    x.set("target", _xml.utc_text(v.target_ms))
    x.set("period_start", _xml.utc_text(v.period_start_ms))
    x.set("period_end", _xml.utc_text(v.period_end_ms))
    if v.capture_ms is not None:
        x.set("capture", _xml.utc_text(v.capture_ms))
    x.set("time_valid", _bool(v.time_valid))
    x.set("billing", _bool(v.billing))
    if v.stage is not None:
        x.set("stage", str(v.stage))
    if v.meter_status is not None:
        x.set("meter_status", str(v.meter_status))
    if carry_symbol:
        x.set("unit", v.unit)
    for s in v.sources:
        etree.SubElement(x, _q(NS_TARIFF, "source")).text = s


# ===========================================================================================
# values: parse

def _name(el: etree._Element) -> str:
    """``ns1:entry`` style name of an element, for messages."""
    q = etree.QName(el)
    prefix = _PREFIX.get(q.namespace or "")
    return f"{prefix}{q.localname}" if prefix is not None else el.tag


def _where(el: etree._Element) -> str:
    return f"line {el.sourceline}: {_name(el)}"


def _kids(el: etree._Element) -> list[etree._Element]:
    """The element children of an element-only node (comments and PIs skipped); text other
    than white space between them is an error."""
    if el.text and el.text.strip():
        raise FormatError(f"unexpected text {el.text.strip()[:40]!r}", _where(el))
    out = []
    for c in el:
        if c.tail and c.tail.strip():
            raise FormatError(f"unexpected text {c.tail.strip()[:40]!r}", _where(el))
        if isinstance(c.tag, str):
            out.append(c)
        elif not isinstance(c, (etree._Comment, etree._ProcessingInstruction)):
            raise FormatError(f"unexpected node {c!r}", _where(el))
    return out


def _expect(el: etree._Element, names: Sequence[tuple[str, str]]) -> dict[str, etree._Element]:
    """The children of ``el``: exactly ``names`` (ns, local), in this order; keyed by
    ``ns2:value`` style names."""
    kids = _kids(el)
    got: dict[str, etree._Element] = {}
    i = 0
    for ns, local in names:
        key = f"{_PREFIX[ns]}{local}"
        if i < len(kids) and kids[i].tag == _q(ns, local):
            got[key] = kids[i]
            i += 1
        else:
            found = f"found {_name(kids[i])}" if i < len(kids) else "found nothing"
            raise FormatError(f"missing element {key} ({found})", _where(el))
    if i < len(kids):
        raise FormatError(f"unexpected element {_name(kids[i])}", _where(el))
    return got


def _attr(el: etree._Element, name: str, *, required: bool = True) -> str | None:
    v = el.get(name)
    if v is None and required:
        raise FormatError(f"attribute {name!r} missing", _where(el))
    return v


def _attrs_only(el: etree._Element, allowed: set[str]) -> None:
    extra = sorted(set(el.attrib) - allowed)
    if extra:
        raise FormatError(f"unexpected attribute {extra[0]!r}", _where(el))


def _count(el: etree._Element, n: int) -> None:
    c = _xml.parse_int(_attr(el, "count"), f"{_where(el)} @count", 0, 1 << 31)
    if c != n:
        raise FormatError(f"count={c} but it holds {n} entries", _where(el))


def _id(el: etree._Element, n: int) -> None:
    i = _xml.parse_int(_attr(el, "id"), f"{_where(el)} @id", 0, 1 << 31)
    if i != n:
        raise FormatError(f"id={i}, expected {n}", _where(el))


def _bool_attr(el: etree._Element, name: str) -> bool:
    v = _attr(el, name)
    if v not in ("true", "false"):
        raise FormatError(f"attribute {name!r} must be true or false, not {v!r}", _where(el))
    return v == "true"


def _text_attr(el: etree._Element, name: str, max_len: int = 256, required: bool = True
               ) -> str | None:
    v = _attr(el, name, required=required)
    if v is None:
        return None
    return _xml.check_text(v, f"{_where(el)} @{name}", max_len=max_len, empty=(name == "unit"))


def _leaf(el: etree._Element) -> str:
    if len(el):
        raise FormatError("must hold text only", _where(el))
    return el.text or ""


def parse_values(xml: bytes, *, max_bytes: int = MAX_DOCUMENT_BYTES
                 ) -> list[tuple[DerivedValue, bytes | None]]:
    """A :func:`values_document` back to its values, columns in document order.

    Strict: the tree, the counts and ids, every number's range, the logical names and the
    consistency of K461 part and extension are checked; anything else raises FormatError with
    the line and element. Hostile input is safe: see :mod:`smgw.formats._xml`."""
    root = _xml.parse(xml, max_bytes=max_bytes, what="K461 document")
    if root.tag != _q(NS_PG, "object"):
        raise FormatError(f"root element is {root.tag}, expected {{{NS_PG}}}object",
                          f"line {root.sourceline}")
    _attrs_only(root, {"class_id", "class_version", "id"})
    if _attr(root, "class_id") != str(CLASS_PROFILE_GENERIC):
        raise FormatError(f"class_id={root.get('class_id')!r}, expected 7 (profile generic)",
                          _where(root))
    obj_id = _attr(root, "id") or ""
    if not _LN_RE.match(obj_id):
        raise FormatError(f"id {obj_id!r} is not a COSEM logical name", _where(root))
    top = _expect(root, [(NS_PG, "attributes"), (NS_TARIFF, "document")])
    doc = top["smgw:document"]
    _attrs_only(doc, {"format", "gateway"})
    if _attr(doc, "format") != FORMAT_VERSION:
        raise FormatError(f"format {doc.get('format')!r} is not supported (only "
                          f"{FORMAT_VERSION})", _where(doc))
    gateway = _text_attr(doc, "gateway", max_len=64) or ""
    if obj_id.split(".")[1] != cosem_id(gateway):
        raise FormatError(f"object id {obj_id!r} does not name gateway {gateway!r}", _where(root))
    attrs = top["ns1:attributes"]
    _count(attrs, 3)
    a = _expect(attrs, [(NS_EXT, "logical_name"), (NS_PG, "capture_objects"), (NS_PG, "buffer")])
    for el in (attrs, *a.values()):
        _attrs_only(el, {"id", "count"})
    _id(a["ns2:logical_name"], 1)
    if _leaf(a["ns2:logical_name"]) != obj_id:
        raise FormatError(f"logical_name differs from the object id {obj_id!r}",
                          _where(a["ns2:logical_name"]))
    cap = a["ns1:capture_objects"]
    _id(cap, 2)
    caps = _kids(cap)
    _count(cap, len(caps))
    _id(a["ns1:buffer"], 3)
    data = _expect(a["ns1:buffer"], [(NS_PG, "simple_data")])["ns1:simple_data"]
    _attrs_only(data, {"count"})
    cols = _kids(data)
    _count(data, len(cols))
    if len(cols) != len(caps):
        raise FormatError(f"{len(caps)} capture objects but {len(cols)} columns", _where(data))
    out: list[tuple[DerivedValue, bytes | None]] = []
    seen: set[tuple[str, str]] = set()
    for k, (co, col) in enumerate(zip(caps, cols), start=1):
        register, owner = _capture_object(co, k)
        if (register, owner) in seen:
            raise FormatError(f"a second column for register {register} of {owner!r}",
                              _where(co))
        seen.add((register, owner))
        if col.tag != _q(NS_PG, "column"):
            raise FormatError(f"unexpected element {_name(col)} in ns1:simple_data", _where(col))
        _attrs_only(col, {"id", "count"})
        _id(col, k)
        entries = _kids(col)
        for j, e in enumerate(entries, start=1):
            out.append(_parse_entry(e, j, register, owner))
        _count(col, len(entries))
    return out


def _capture_object(co: etree._Element, k: int) -> tuple[str, str]:
    if co.tag != _q(NS_PG, "capture_object"):
        raise FormatError(f"unexpected element {_name(co)} in ns1:capture_objects", _where(co))
    _attrs_only(co, {"id"})
    _id(co, k)
    c = _expect(co, [(NS_EXT, "logical_name"), (NS_EXT, "class_id"), (NS_EXT, "class_version"),
                     (NS_TARIFF, "column")])
    name = _leaf(c["ns2:logical_name"]).strip()
    m = _LN_RE.match(name)
    if not m:
        raise FormatError(f"{name!r} is not a COSEM logical name (<12 hex>.<id>.<suffix>)",
                          _where(c["ns2:logical_name"]))
    if _leaf(c["ns2:class_id"]).strip() != str(CLASS_EXTENDED_REGISTER):
        raise FormatError(f"class_id {c['ns2:class_id'].text!r}, expected 4 (extended register)",
                          _where(c["ns2:class_id"]))
    if _leaf(c["ns2:class_version"]).strip() != "0":
        raise FormatError(f"class_version {c['ns2:class_version'].text!r}, expected 0",
                          _where(c["ns2:class_version"]))
    ext = c["smgw:column"]
    _attrs_only(ext, {"owner"})
    if _kids(ext):
        raise FormatError("must be empty", _where(ext))
    owner = _text_attr(ext, "owner") or ""
    if m.group(2) != cosem_id(owner) or m.group(3) != "sm":
        raise FormatError(f"{name!r} does not name owner {owner!r} (expected "
                          f"{m.group(1)}.{cosem_id(owner)}.sm)", _where(c["ns2:logical_name"]))
    return str(parse_obis(m.group(1))), owner


_ENTRY_SIGNED = [(NS_EXT, "value"), (NS_EXT, "scaler"), (NS_EXT, "unit"), (NS_EXT, "status"),
                 (NS_EXT, "capture_time"), (NS_EXT, "smgw_signature"), (NS_TARIFF, "value")]
_ENTRY_PLAIN = [n for n in _ENTRY_SIGNED if n[1] != "smgw_signature"]
_X_ATTRS = {"profile", "taf", "kind", "target", "period_start", "period_end", "capture",
            "time_valid", "billing", "stage", "meter_status", "unit"}


def _parse_entry(e: etree._Element, j: int, register: str, owner: str
                 ) -> tuple[DerivedValue, bytes | None]:
    if e.tag == _q(NS_PG, "entry_gateway_signed"):
        c = _expect(e, _ENTRY_SIGNED)
    elif e.tag == _q(NS_PG, "entry"):
        c = _expect(e, _ENTRY_PLAIN)
    else:
        raise FormatError(f"unexpected element {_name(e)} in ns1:column", _where(e))
    _attrs_only(e, {"id"})
    _id(e, j)
    vkids = _kids(c["ns2:value"])
    if len(vkids) != 1 or vkids[0].tag not in (_q(NS_EXT, "long64"),
                                               _q(NS_EXT, "long64-unsigned")):
        raise FormatError("must hold exactly one ns2:long64 or ns2:long64-unsigned",
                          _where(c["ns2:value"]))
    vel = vkids[0]
    lo, hi = _LONG64 if etree.QName(vel).localname == "long64" else _ULONG64
    value = _xml.parse_int(_leaf(vel), _where(vel), lo, hi)
    if hi == _ULONG64[1] and value <= _LONG64[1]:
        raise FormatError(f"{value} belongs in ns2:long64", _where(vel))
    scaler = _xml.parse_int(_leaf(c["ns2:scaler"]), _where(c["ns2:scaler"]), -128, 127)
    code = _xml.parse_int(_leaf(c["ns2:unit"]), _where(c["ns2:unit"]), 0, 255)
    if code not in UNITS:
        raise FormatError(f"{code} is not a DLMS unit code", _where(c["ns2:unit"]))
    skids = _kids(c["ns2:status"])
    if len(skids) != 1 or skids[0].tag != _q(NS_EXT, "double-long-unsigned"):
        raise FormatError("must hold exactly one ns2:double-long-unsigned", _where(c["ns2:status"]))
    status = _xml.parse_int(_leaf(skids[0]), _where(skids[0]), *_U32)
    t = _xml.parse_utc(_leaf(c["ns2:capture_time"]), _where(c["ns2:capture_time"]))
    sig = None
    if "ns2:smgw_signature" in c:
        h = _leaf(c["ns2:smgw_signature"]).strip()
        if not _HEX_RE.match(h):
            raise FormatError("not a non-empty hex string of whole bytes",
                              _where(c["ns2:smgw_signature"]))
        sig = bytes.fromhex(h)

    x = c["smgw:value"]
    _attrs_only(x, _X_ATTRS)
    w = _where(x)
    profile = _text_attr(x, "profile") or ""
    taf = _xml.parse_int(_attr(x, "taf"), f"{w} @taf", 1, 14)
    kind = _attr(x, "kind")
    if kind not in KINDS:
        raise FormatError(f"kind {kind!r} is not one of {', '.join(KINDS)}", w)
    target = _xml.parse_utc(_attr(x, "target"), f"{w} @target")
    start = _xml.parse_utc(_attr(x, "period_start"), f"{w} @period_start")
    end = _xml.parse_utc(_attr(x, "period_end"), f"{w} @period_end")
    if start > end:
        raise FormatError("period_start is after period_end", w)
    cap = x.get("capture")
    capture = None if cap is None else _xml.parse_utc(cap, f"{w} @capture")
    shown = target if capture is None else capture
    if t != shown - shown % 1000:
        raise FormatError(f"capture_time {_xml.utc_text(t)} is not the "
                          f"{'target' if capture is None else 'capture'} time "
                          f"{_xml.utc_text(shown)} in whole seconds", _where(c["ns2:capture_time"]))
    stage = x.get("stage")
    stage_n = None if stage is None else _xml.parse_int(stage, f"{w} @stage", 1, 63)
    ms = x.get("meter_status")
    meter_status = None if ms is None else _xml.parse_int(ms, f"{w} @meter_status", *_U32)
    symbol = _text_attr(x, "unit", max_len=32, required=False)
    if symbol is not None:
        if code != _UNIT_OTHER:
            raise FormatError(f"unit symbol {symbol!r} given for DLMS unit {code} (only for "
                              f"{_UNIT_OTHER}, other unit)", w)
        if unit_code(symbol) is not None or symbol == "":
            raise FormatError(f"unit symbol {symbol!r} has a DLMS code of its own", w)
    else:
        symbol = "" if code == _UNIT_COUNT else unit_symbol(code)
        if symbol == "" and code != _UNIT_COUNT:
            raise FormatError(f"DLMS unit {code} has no symbol; not used by this format",
                              _where(c["ns2:unit"]))
    sources = []
    for s in _kids(x):
        if s.tag != _q(NS_TARIFF, "source"):
            raise FormatError(f"unexpected element {_name(s)}", w)
        _attrs_only(s, set())
        sources.append(_xml.check_text(_leaf(s), _where(s)))
    v = DerivedValue(
        profile=profile, taf=taf, register=register, owner=owner, period_start_ms=start,
        period_end_ms=end, target_ms=target, value=value, scaler=scaler, unit=symbol or "",
        status=status, meter_status=meter_status, capture_ms=capture,
        time_valid=_bool_attr(x, "time_valid"), billing=_bool_attr(x, "billing"),
        stage=stage_n, kind=kind, sources=tuple(sources))
    return v, sig


# ===========================================================================================
# logbook export

_OUTCOME = {"successful": "SUCCESS", "failed": "FAILURE"}
_LEVELS = ("INFO", "WARNING", "ERROR", "FATAL")


def _field(e: Any, where: str, name: str, *alts: str) -> Any:
    """``e[name]`` of a dict or ``e.name`` of an object (the first of ``name, *alts`` there)."""
    for n in (name, *alts):
        if isinstance(e, Mapping):
            if n in e:
                return e[n]
        elif hasattr(e, n):
            return getattr(e, n)
    raise FormatError(f"has no {name!r}", where)


def _template(event_id: int) -> str | None:
    """The catalogue text of ``event_id`` with ``[name]`` placeholders (as PPC's exports
    carry it in a comment), or None for an id the catalogue does not know."""
    from smgw.logbook.catalogue import CatalogueError, event
    try:
        text = event(event_id).text
    except CatalogueError:
        return None
    return re.sub(r"\{(\w+)\}", r"[\1]", text)


def _comment(text: str) -> etree._Comment:
    text = text.replace("--", "- -")
    if text.endswith("-"):
        text += " "
    return etree.Comment(f" {text} ")


def log_document(entries: Sequence[Mapping[str, Any] | Any], gateway_id: str) -> bytes:
    """A logbook export as a K461 ``profile_generic`` logbook (han-clients.md §A.7.4).

    ``entries``: dicts (or :class:`smgw.logbook.store.Entry`) with ``seq``, ``ts_ms``,
    ``time_valid``, ``event`` (or ``event_id``), ``level``, ``status``, ``text``, ``params``;
    written in the given order. Each becomes ``ns1:entry`` with ``ns2:record_number`` (= seq)
    and ``ns2:event`` {timestamp (UTC Z), level, type/evis {vendor_id = the gateway's FLAG,
    event_id, event_sub_id 0}, outcome, message_extensions (the parameters in the text's
    order, ``smgw:name`` saying which) plus a comment with the message template}, and
    ``smgw:entry`` {time_valid, the German text}. UTF-8 (the texts are German)."""
    _xml.check_text(gateway_id, "gateway_id", max_len=64)
    name = f"{OBIS_LOGBOOK}.{cosem_id(gateway_id)}.sm"
    root = etree.Element(_q(NS_PG, "object"), nsmap=_NSMAP)
    root.set("class_id", str(CLASS_PROFILE_GENERIC))
    root.set("class_version", "1")
    root.set("id", name)
    attrs = etree.SubElement(root, _q(NS_PG, "attributes"), count="2")
    etree.SubElement(attrs, _q(NS_EXT, "logical_name"), id="1").text = name
    buf = etree.SubElement(attrs, _q(NS_PG, "buffer"), id="3")
    book = etree.SubElement(buf, _q(NS_PG, "logbook"), count=str(len(entries)))
    flag = gateway_id[1:4].upper() if len(gateway_id) >= 4 else gateway_id.upper()
    for i, e in enumerate(entries):
        w = f"entries[{i}]"
        seq = _xml.check_int(_field(e, w, "seq"), f"{w}.seq", 0, _U32[1])
        ts = _xml.check_ms(_field(e, w, "ts_ms"), f"{w}.ts_ms")
        event_id = _xml.check_int(_field(e, w, "event", "event_id"), f"{w}.event", 0, _U32[1])
        level = _field(e, w, "level")
        status = _field(e, w, "status")
        text = _xml.check_text(_field(e, w, "text"), f"{w}.text", max_len=16384, empty=True)
        params = _field(e, w, "params") or {}
        time_valid = bool(_field(e, w, "time_valid"))
        if level not in _LEVELS:
            raise FormatError(f"level {level!r} is not one of {', '.join(_LEVELS)}",
                              f"{w}.level")
        if status not in _OUTCOME:
            raise FormatError(f"status {status!r} is not successful or failed", f"{w}.status")
        if not isinstance(params, Mapping):
            raise FormatError("params must be a mapping", f"{w}.params")
        entry = etree.SubElement(book, _q(NS_PG, "entry"), id=str(i + 1))
        etree.SubElement(entry, _q(NS_EXT, "record_number")).text = str(seq)
        ev = etree.SubElement(entry, _q(NS_EXT, "event"))
        etree.SubElement(ev, _q(NS_EXT, "timestamp")).text = _xml.utc_text(ts - ts % 1000)
        etree.SubElement(ev, _q(NS_EXT, "level")).text = level
        evis = etree.SubElement(etree.SubElement(ev, _q(NS_EXT, "type")), _q(NS_EXT, "evis"))
        etree.SubElement(evis, _q(NS_EXT, "vendor_id")).text = flag
        etree.SubElement(evis, _q(NS_EXT, "event_id")).text = str(event_id)
        etree.SubElement(evis, _q(NS_EXT, "event_sub_id")).text = "0"
        etree.SubElement(ev, _q(NS_EXT, "outcome")).text = _OUTCOME[status]
        template = _template(event_id)
        order = re.findall(r"\[(\w+)\]", template) if template else []
        names = [n for n in order if n in params] + [n for n in params if n not in order]
        mx = etree.SubElement(ev, _q(NS_EXT, "message_extensions"), count=str(len(names)))
        for k, pname in enumerate(names, start=1):
            _xml.check_text(pname, f"{w}.params key", max_len=64)
            pval = _xml.check_text(str(params[pname]), f"{w}.params[{pname!r}]", max_len=4096,
                                   empty=True)
            m = etree.SubElement(mx, _q(NS_EXT, "message_extension"), id=str(k))
            m.set(_q(NS_TARIFF, "name"), pname)
            m.text = pval
        if template:   # inside message_extensions, or right after it when there are none
            (mx if names else ev).append(_comment(template))
        x = etree.SubElement(entry, _q(NS_TARIFF, "entry"), time_valid=_bool(time_valid))
        etree.SubElement(x, _q(NS_TARIFF, "text")).text = text
    etree.SubElement(root, _q(NS_TARIFF, "document"), format=FORMAT_VERSION, gateway=gateway_id)
    return _xml.declaration() + etree.tostring(root, encoding="UTF-8", pretty_print=True)
