"""K461 profile_generic documents (smgw.formats.k461): round trip, strict and hostile parsing,
logbook export."""

from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from smgw.formats import FormatError
from smgw.formats.k461 import (
    KINDS,
    MAX_DOCUMENT_BYTES,
    NS_EXT,
    NS_PG,
    NS_TARIFF,
    cosem_id,
    log_document,
    logical_name,
    parse_values,
    values_document,
)
from smgw.logbook.store import Entry
from smgw.meters.obis import Obis
from smgw.meters.units import UNITS
from smgw.tariff.model import SMGW_NO_VALUE, DerivedValue, smgw_status

GW = "EOPN0000000001"
METER = "0a01454d480000519725"
T0 = 1738364400000            # 2025-02-01T00:00:00+01:00
DAY = 86_400_000


def value(**kw) -> DerivedValue:
    base = dict(profile="taf7-haus", taf=7, register="1-0:1.8.0", owner=METER,
                period_start_ms=T0, period_end_ms=T0 + 900_000, target_ms=T0 + 900_000,
                value=33440514, scaler=-1, unit="Wh", capture_ms=T0 + 899_123,
                kind="reading")
    base.update(kw)
    return DerivedValue(**base)


def ns(tag: str) -> str:
    prefix, local = tag.split(":")
    return "{%s}%s" % ({"ns1": NS_PG, "ns2": NS_EXT, "smgw": NS_TARIFF}[prefix], local)


# ------------------------------------------------------------------------------ round trip

_xml_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\ufffe\uffff"),
    min_size=1, max_size=24)
_ms = st.integers(0, 253402300799999)
_obis = st.builds(Obis, *[st.integers(0, 255)] * 6).map(str)
_symbols = sorted({sym for sym, _ in UNITS.values()})
_unit = st.one_of(st.sampled_from(_symbols), _xml_text.filter(lambda s: len(s) <= 32))


@st.composite
def derived(draw) -> DerivedValue:
    a, b = sorted((draw(_ms), draw(_ms)))
    return DerivedValue(
        profile=draw(_xml_text), taf=draw(st.integers(1, 14)), register=draw(_obis),
        owner=draw(st.one_of(_xml_text, st.sampled_from([METER, "taf2-haus"]))),
        period_start_ms=a, period_end_ms=b, target_ms=draw(_ms),
        value=draw(st.integers(-(1 << 63), (1 << 64) - 1)), scaler=draw(st.integers(-128, 127)),
        unit=draw(_unit), status=draw(st.integers(0, (1 << 32) - 1)),
        meter_status=draw(st.none() | st.integers(0, (1 << 32) - 1)),
        capture_ms=draw(st.none() | _ms), time_valid=draw(st.booleans()),
        billing=draw(st.booleans()), stage=draw(st.none() | st.integers(1, 63)),
        kind=draw(st.sampled_from(KINDS)),
        sources=tuple(draw(st.lists(_xml_text, max_size=3))))


_pairs = st.lists(st.tuples(derived(), st.none() | st.binary(min_size=1, max_size=72)),
                  max_size=12)


def grouped(values):
    """The order parse_values returns: by (register, owner) column, first appearance first."""
    cols: dict = {}
    for v, s in values:
        cols.setdefault((v.register, v.owner), []).append((v, s))
    return [p for col in cols.values() for p in col]


@settings(max_examples=300, deadline=None)
@given(_pairs)
def test_any_derived_values_survive_exactly(values):
    doc = values_document(values, GW)
    assert doc.isascii()
    assert parse_values(doc) == grouped(values)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(derived(), st.none() | st.binary(min_size=1, max_size=8)),
                min_size=1, max_size=6))
def test_documents_in_column_order_round_trip_unchanged(values):
    values = grouped(values)
    assert parse_values(values_document(values, GW)) == values


def test_structure_is_what_han_clients_read():
    """ns1/ns2 prefixes, object -> attributes -> capture_objects/buffer, entry_gateway_signed
    with long64 value, scaler, DLMS unit 30, status, capture time in whole UTC seconds."""
    sig = bytes(range(64))
    doc = values_document([(value(), sig), (value(register="1-0:2.8.0", value=7), None)], GW)
    assert doc.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<ns1:object ')
    assert doc.rstrip().endswith(b"</ns1:object>")
    root = etree.fromstring(doc)
    assert root.tag == ns("ns1:object") and root.get("class_id") == "7"
    assert root.get("id") == "0100630100ff.eopn0000000001.sm"
    caps = root.findall(f"{ns('ns1:attributes')}/{ns('ns1:capture_objects')}/"
                        f"{ns('ns1:capture_object')}")
    assert [c.findtext(ns("ns2:logical_name")) for c in caps] == [
        f"0100010800ff.{METER}.sm", f"0100020800ff.{METER}.sm"]
    cols = root.findall(f".//{ns('ns1:simple_data')}/{ns('ns1:column')}")
    assert [c.get("id") for c in cols] == ["1", "2"]
    e = cols[0].find(ns("ns1:entry_gateway_signed"))
    assert e.findtext(f"{ns('ns2:value')}/{ns('ns2:long64')}") == "33440514"
    assert e.findtext(ns("ns2:scaler")) == "-1"
    assert e.findtext(ns("ns2:unit")) == "30"
    assert e.findtext(f"{ns('ns2:status')}/{ns('ns2:double-long-unsigned')}") == "5"
    assert e.findtext(ns("ns2:capture_time")) == "2025-01-31T23:14:59Z"
    assert e.findtext(ns("ns2:smgw_signature")) == sig.hex()
    x = e.find(ns("smgw:value"))
    assert x.get("capture") == "2025-01-31T23:14:59.123Z"
    assert x.get("target") == "2025-01-31T23:15:00Z"
    # an unsigned value is a plain entry (extended register) without smgw_signature
    plain = cols[1][0]
    assert plain.tag == ns("ns1:entry") and plain.find(ns("ns2:smgw_signature")) is None


def test_billing_registers_use_the_billing_profile_name():
    v = value(taf=2, register="1-0:1.8.1", owner="TAF2 Haus", kind="register", capture_ms=None,
              stage=1, period_end_ms=T0 + 28 * DAY, target_ms=T0 + 28 * DAY)
    root = etree.fromstring(values_document([(v, b"\x01")], GW))
    assert root.get("id").startswith("0100620100ff.")
    assert root.find(f".//{ns('ns2:capture_time')}").text == "2025-02-28T23:00:00Z"
    cap = root.find(f".//{ns('ns1:capture_object')}")
    assert cap.findtext(ns("ns2:logical_name")) == "0100010801ff.taf2-haus.sm"
    assert cap.find(ns("smgw:column")).get("owner") == "TAF2 Haus"


@pytest.mark.parametrize("unit,code,extra", [("Wh", 30, None), ("W", 27, None), ("V", 35, None),
                                             ("A", 33, None), ("Hz", 44, None),
                                             ("varh", 32, None), ("VAh", 31, None),
                                             ("", 255, None), ("kWh", 254, "kWh")])
def test_unit_codes(unit, code, extra):
    root = etree.fromstring(values_document([(value(unit=unit), None)], GW))
    assert root.find(f".//{ns('ns2:unit')}").text == str(code)
    assert root.find(f".//{ns('smgw:value')}").get("unit") == extra


def test_pseudonym_hides_every_meter_id():
    vs = [(value(taf=10, kind="max", billing=False, sources=(METER, "1emh0005347109"),
                 status=smgw_status(billing=False)), None),
          (value(taf=10, owner="taf10-netz", profile="taf10-netz", kind="mean", billing=False),
           None)]
    doc = values_document(vs, GW, pseudonym="psd-77a1")
    assert METER.encode() not in doc and b"1emh0005347109" not in doc
    back = parse_values(doc)
    assert [v.owner for v, _ in back] == ["psd-77a1", "taf10-netz"]
    assert all(v.sources == () for v, _ in back)


def test_logical_names():
    assert logical_name("1-0:1.8.0", "1EMH0005347109") == "0100010800ff.1emh0005347109.sm"
    assert cosem_id("TAF2 Haus_ü") == "taf2-haus--"
    assert len(cosem_id("x" * 100)) == 63


# ------------------------------------------------------------------- caller's bad values

@pytest.mark.parametrize("change,where", [
    (dict(register="1-0:1.8.0*255"), "values[0].register"),
    (dict(register="1.8.0"), "values[0].register"),
    (dict(profile="a\x00b"), "values[0].profile"),
    (dict(owner=""), "values[0].owner"),
    (dict(value=1 << 64), "values[0].value"),
    (dict(scaler=200), "values[0].scaler"),
    (dict(status=-1), "values[0].status"),
    (dict(kind="median"), "values[0].kind"),
    (dict(stage=64), "values[0].stage"),
    (dict(period_start_ms=T0 + DAY), "values[0].period_start_ms"),
    (dict(target_ms=-5), "values[0].target_ms"),
    (dict(sources=["x"]), "values[0].sources"),
])
def test_values_the_format_cannot_carry_are_refused(change, where):
    with pytest.raises(FormatError) as exc:
        values_document([(dataclasses.replace(value(), **change), None)], GW)
    assert exc.value.where == where


def test_empty_signature_is_refused():
    with pytest.raises(FormatError, match="signature"):
        values_document([(value(), b"")], GW)


# ---------------------------------------------------------------------- strict parsing

def good() -> bytes:
    return values_document([(value(), b"\xaa" * 64), (value(value=9), b"\xbb" * 64)], GW)


def mutate(fn) -> bytes:
    root = etree.fromstring(good())
    fn(root)
    return etree.tostring(root)


def first(root, tag):
    return root.find(f".//{ns(tag)}")


@pytest.mark.parametrize("fn,message", [
    (lambda r: first(r, "ns1:entry_gateway_signed").remove(
        first(r, "ns2:capture_time")), "missing element ns2:capture_time"),
    (lambda r: first(r, "ns1:entry_gateway_signed").remove(
        first(r, "smgw:value")), "missing element smgw:value"),
    (lambda r: setattr(first(r, "ns2:long64"), "text", "12.5"), "not an integer"),
    (lambda r: setattr(first(r, "ns2:long64"), "text", "9" * 30), "not an integer"),
    (lambda r: setattr(first(r, "ns2:scaler"), "text", "-129"), "outside -128..127"),
    (lambda r: setattr(first(r, "ns2:unit"), "text", "99"), "not a DLMS unit code"),
    (lambda r: setattr(first(r, "ns2:capture_time"), "text", "2025-01-31T23:14:59+01:00"),
     "not a UTC time"),
    (lambda r: setattr(first(r, "ns2:capture_time"), "text", "2025-01-31T23:14:58Z"),
     "is not the capture time"),
    (lambda r: setattr(first(r, "ns2:smgw_signature"), "text", "abc"), "hex"),
    (lambda r: first(r, "ns1:column").set("count", "3"), "count=3 but it holds 2"),
    (lambda r: first(r, "ns1:simple_data").set("count", "2"), "count=2 but it holds 1"),
    (lambda r: first(r, "ns1:entry_gateway_signed").set("id", "7"), "id=7, expected 1"),
    (lambda r: setattr(first(r, "ns1:capture_object").find(ns("ns2:logical_name")), "text",
                       "0100010800ff.someone-else.sm"), "does not name owner"),
    (lambda r: first(r, "smgw:value").set("kind", "median"), "kind 'median'"),
    (lambda r: first(r, "smgw:value").set("colour", "red"), "unexpected attribute 'colour'"),
    (lambda r: first(r, "smgw:value").set("time_valid", "yes"), "true or false"),
    (lambda r: first(r, "smgw:value").set("unit", "kWh"), "only for 254"),
    (lambda r: first(r, "ns2:value").append(etree.Element(ns("ns2:long64"))),
     "exactly one ns2:long64"),
    (lambda r: first(r, "ns1:column").append(etree.Element(ns("ns2:entry"))),
     "unexpected element ns2:entry"),
    (lambda r: r.find(ns("smgw:document")).set("format", "2"), "format '2' is not supported"),
    (lambda r: r.find(ns("smgw:document")).set("gateway", "EOTHER0000001"),
     "does not name gateway"),
    (lambda r: r.remove(r.find(ns("smgw:document"))), "missing element smgw:document"),
    (lambda r: r.set("class_id", "3"), "class_id='3'"),
    (lambda r: setattr(first(r, "ns2:scaler"), "tail", "junk"), "unexpected text 'junk'"),
])
def test_bad_documents_are_refused_with_a_specific_message(fn, message):
    with pytest.raises(FormatError) as exc:
        parse_values(mutate(fn))
    assert message in str(exc.value)
    assert re.search(r"line \d+", str(exc.value))


def test_wrong_namespaces_are_refused():
    doc = good()
    with pytest.raises(FormatError, match="root element is .*expected"):
        parse_values(doc.replace(NS_PG.encode(), b"urn:k461-dke-de:profile_generic-2"))
    with pytest.raises(FormatError, match="missing element ns2:logical_name"):
        parse_values(doc.replace(NS_EXT.encode(), b"urn:example:extension"))
    with pytest.raises(FormatError, match="missing element smgw:document"):
        parse_values(doc.replace(NS_TARIFF.encode(), b"urn:smgw-open:tariff-9"))


def test_not_xml_at_all():
    for bad, message in [(b"", "empty"), (b"   ", "empty"), (b"<a>", "not well-formed"),
                         (b"\xff\xfe<\x00", "not well-formed"), ("<a/>", "must be bytes")]:
        with pytest.raises(FormatError, match=message):
            parse_values(bad)


# ---------------------------------------------------------------------- hostile input

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<ns1:object xmlns:ns1="urn:k461-dke-de:profile_generic-1" class_id="7" id="&lol9;"/>"""


def test_billion_laughs_is_refused():
    with pytest.raises(FormatError, match="DOCTYPE"):
        parse_values(BILLION_LAUGHS)


def test_external_entities_are_never_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-PASSWORD")
    doc = good().replace(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
                         f'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY xxe SYSTEM '
                         f'"file://{secret}">]>\n'.encode())
    doc = doc.replace(b"<ns2:scaler>-1</ns2:scaler>", b"<ns2:scaler>&xxe;</ns2:scaler>", 1)
    with pytest.raises(FormatError) as exc:
        parse_values(doc)
    assert "DOCTYPE" in str(exc.value) and "TOP-SECRET" not in str(exc.value)


def test_external_dtd_and_network_are_not_touched():
    doc = (b'<?xml version="1.0"?>\n<!DOCTYPE x SYSTEM "http://192.0.2.1/evil.dtd">\n'
           + good().split(b"\n", 1)[1])
    with pytest.raises(FormatError, match="DOCTYPE"):
        parse_values(doc)
    # the same in UTF-16
    with pytest.raises(FormatError, match="DOCTYPE"):
        parse_values(doc.decode().replace('"1.0"?>', '"1.0" encoding="UTF-16"?>', 1)
                     .encode("utf-16"))


def test_undeclared_entity_is_not_well_formed():
    doc = good().replace(b"<ns2:scaler>-1</ns2:scaler>", b"<ns2:scaler>&x;</ns2:scaler>", 1)
    with pytest.raises(FormatError, match="not well-formed"):
        parse_values(doc)


def test_huge_documents_are_refused_before_parsing():
    with pytest.raises(FormatError, match=f"more than the limit of {MAX_DOCUMENT_BYTES}"):
        parse_values(b" " * (MAX_DOCUMENT_BYTES + 1))
    doc = good()
    with pytest.raises(FormatError, match="more than the limit of 1000"):
        parse_values(doc, max_bytes=1000)


def test_deep_nesting_is_refused():
    deep = b"<a>" * 5000 + b"</a>" * 5000
    with pytest.raises(FormatError, match="not well-formed"):
        parse_values(deep)


# ------------------------------------------------------------------------------ logbook

def entries():
    return [
        {"seq": 41, "ts_ms": T0 + 1234, "time_valid": True, "event": 10165, "level": "INFO",
         "status": "successful", "params": {"comm_profile": "emt1", "tariff_profile": "taf7",
                                            "start": "01.02.2025", "end": "02.02.2025"},
         "text": "Messwerte des Tarifprofils taf7 von 01.02.2025 bis 02.02.2025 an den "
                 "Marktteilnehmer mit Kommunikationsprofil emt1 übermittelt."},
        Entry(seq=42, ts_ms=T0 + 5000, time_valid=False, event_id=10269, level="ERROR",
              status="failed", params={}, text="Übermittlung fehlgeschlagen"),
    ]


def test_log_document():
    doc = log_document(entries(), GW)
    root = etree.fromstring(doc)
    assert root.tag == ns("ns1:object") and root.get("id") == "0000636203ff.eopn0000000001.sm"
    assert root.findtext(f"{ns('ns1:attributes')}/{ns('ns2:logical_name')}") == root.get("id")
    es = root.findall(f".//{ns('ns1:logbook')}/{ns('ns1:entry')}")
    assert [e.findtext(ns("ns2:record_number")) for e in es] == ["41", "42"]
    ev = es[0].find(ns("ns2:event"))
    assert ev.findtext(ns("ns2:timestamp")) == "2025-01-31T23:00:01Z"
    assert ev.findtext(ns("ns2:level")) == "INFO"
    assert ev.findtext(f"{ns('ns2:type')}/{ns('ns2:evis')}/{ns('ns2:event_id')}") == "10165"
    assert ev.findtext(f"{ns('ns2:type')}/{ns('ns2:evis')}/{ns('ns2:vendor_id')}") == "OPN"
    assert ev.findtext(ns("ns2:outcome")) == "SUCCESS"
    mx = ev.find(ns("ns2:message_extensions"))
    assert mx.get("count") == "4"
    # parameters in the order of the text's placeholders, the template in a comment
    assert [m.text for m in mx.findall(ns("ns2:message_extension"))] == [
        "taf7", "01.02.2025", "02.02.2025", "emt1"]
    comment = [c for c in mx if isinstance(c, etree._Comment)][0].text
    assert "[tariff_profile]" in comment and "[comm_profile]" in comment
    assert "übermittelt" in es[0].findtext(f"{ns('smgw:entry')}/{ns('smgw:text')}")
    second = es[1].find(ns("ns2:event"))
    assert second.findtext(ns("ns2:outcome")) == "FAILURE"
    assert second.find(ns("ns2:message_extensions")).get("count") == "0"
    assert es[1].find(ns("smgw:entry")).get("time_valid") == "false"


@pytest.mark.parametrize("change,where", [({"level": "DEBUG"}, "entries[0].level"),
                                          ({"status": "ok"}, "entries[0].status"),
                                          ({"seq": -1}, "entries[0].seq"),
                                          ({"text": "a\x07"}, "entries[0].text")])
def test_log_document_refuses_bad_entries(change, where):
    e = {**entries()[0], **change}
    with pytest.raises(FormatError) as exc:
        log_document([e], GW)
    assert exc.value.where == where


def test_log_document_without_a_field_names_it():
    e = dict(entries()[0])
    del e["ts_ms"]
    with pytest.raises(FormatError, match=r"entries\[0\]: has no 'ts_ms'"):
        log_document([e], GW)


def test_no_value_status_survives():
    v = value(status=smgw_status(no_value=True), meter_status=0x00020104)
    (back, _), = parse_values(values_document([(v, None)], GW))
    assert back.status & SMGW_NO_VALUE and back.meter_status == 0x00020104
