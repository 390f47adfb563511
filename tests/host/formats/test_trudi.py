"""VDE AR 2418-6 documents for TRuDI (smgw.formats.trudi) against our own schema."""

from __future__ import annotations

import dataclasses
import datetime
import os
import shutil

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lxml import etree

from smgw.formats import FormatError
from smgw.formats.trudi import (
    NS_AR,
    NS_ESPI,
    SCHEMA_DIR,
    XSD_DIR_ENV,
    TrudiExport,
    trudi_document,
    validate,
)
from smgw.tariff.model import ERROR_STAGE, DerivedValue, Reading, smgw_status, status_fnn

GW = "EOPN0000000001"
UP = "DE0009999900000000000000000000042"
M1 = "0a01454d480000519725"
M2 = "1emh0005347109"
T0 = 1738364400000                  # 2025-02-01T00:00:00+01:00
FEB_END = 1740783600000             # 2025-03-01T00:00:00+01:00
DST_DAY = 1743289200000             # 2025-03-30T00:00:00+01:00 (23 h: 02:00 -> 03:00)
Q = 900_000


def ar(name: str) -> str:
    return f"{{{NS_AR}}}{name}"


def espi(name: str) -> str:
    return f"{{{NS_ESPI}}}{name}"


@pytest.fixture(scope="module")
def certs() -> list[tuple]:
    """The gateway's SIG certificate, its sub-CA and the HAN TLS certificate (real DER)."""
    out = []
    for cert_id, cert_type, cn in [(1, 1, "EOPN0000000001.sig"), (2, 2, "Test-Sub-CA"),
                                   (3, 3, "EOPN0000000001")]:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        now = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(cert_id)
                .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650))
                .sign(key, hashes.SHA256()))
        out.append((cert_id, cert_type, cert.public_bytes(serialization.Encoding.DER)))
    return out


def export(certs, taf: int, name: str, **kw) -> TrudiExport:
    base = dict(gateway_id=GW, usage_point=UP, customer_id="con-4711",
                invoicing_party="9900000000003", tariff_name=name, taf=taf,
                certificates=certs,
                firmware=[("smgw-host", "0.1.0", "3044022011"), ("smgw-mcu", "0.1.0", "")],
                system_time_ms=FEB_END + 3_600_000, meters=[M1],
                log=[{"seq": 7, "ts_ms": FEB_END + 60_000, "time_valid": True, "event": 10165,
                      "level": "INFO", "status": "successful", "params": {},
                      "text": f"Messwerte des Tarifprofils {name} übermittelt."}])
    base.update(kw)
    return TrudiExport(**base)


def sig(n: int) -> bytes:
    return bytes([n % 256]) * 64


def ovl(meter: str, times: list[int], start_value: int, step: int = 120) -> list[Reading]:
    return [Reading(meter, "1-0:1.8.0", t - 1000, start_value + k * step, -1, "Wh",
                    status=0x00000104)
            for k, t in enumerate(times)]


def register(name: str, taf: int, obis: str, value: int, stage: int | None = None,
             status: int | None = None, kind: str = "register",
             sources: tuple[str, ...] = ()) -> DerivedValue:
    return DerivedValue(profile=name, taf=taf, register=obis, owner=name,
                        period_start_ms=T0, period_end_ms=FEB_END, target_ms=FEB_END,
                        value=value, scaler=-1, unit="Wh",
                        status=smgw_status() if status is None else status, stage=stage,
                        kind=kind, sources=sources)


def taf1(certs) -> TrudiExport:
    name = "taf1-haus"
    originals = ovl(M1, [T0, FEB_END], 10_000) + ovl(M2, [T0, FEB_END], 50_000, step=30)
    derived = [(register(name, 1, "1-0:1.8.1", 150, sources=(M1, M2)), sig(1))]
    return export(certs, 1, name, meters=[M1, M2], original_values=originals, derived=derived)


def taf2(certs) -> TrudiExport:
    name = "taf2-haus"
    originals = ovl(M1, [T0 + k * Q for k in range(8)] + [FEB_END], 20_000)
    derived = [
        (register(name, 2, "1-0:1.8.0", 960, kind="sum"), sig(1)),
        (register(name, 2, "1-0:1.8.1", 600, stage=1), sig(2)),
        (register(name, 2, "1-0:1.8.2", 240, stage=2), sig(3)),
        (register(name, 2, f"1-0:1.8.{ERROR_STAGE}", 120, stage=ERROR_STAGE,
                  status=smgw_status(no_value=True)), sig(4)),
    ]
    return export(certs, 2, name, original_values=originals, derived=derived)


def taf7(certs, day: int = DST_DAY, n: int = 92) -> TrudiExport:
    name = "taf7-haus"
    derived = []
    for k in range(1, n + 1):
        t = day + k * Q
        derived.append((DerivedValue(
            profile=name, taf=7, register="1-0:1.8.0", owner=M1, period_start_ms=t - Q,
            period_end_ms=t, target_ms=t, value=1_234_560 + 50 * k, scaler=-1, unit="Wh",
            meter_status=0x00000104, capture_ms=t - 1000 + (k % 3) * 700, kind="reading"),
            sig(k)))
    return export(certs, 7, name, derived=derived, window=(day, day + n * Q))


def tree(xml: bytes) -> etree._Element:
    return etree.fromstring(xml)


def qlns(root) -> list[str]:
    return [e.text for e in root.iter(ar("qualifiedLogicalName"))]


# -------------------------------------------------------------------- valid documents

def test_taf1_export_validates(certs):
    xml = trudi_document(taf1(certs))
    validate(xml)
    root = tree(xml)
    assert root.tag == ar("UsagePoints")
    assert qlns(root) == [f"0100010800ff.{M1}.sm", f"0100010800ff.{M2}.sm",
                          "0100010801ff.taf1-haus.sm"]
    mrs = root.findall(f"{ar('UsagePoint')}/{ar('MeterReading')}")
    # the derived register names its first contributing meter
    assert mrs[2].findtext(f"{ar('Meter')}/{ar('meterId')}") == M1
    block = mrs[2].find(ar("IntervalBlock"))
    assert block.findtext(f"{ar('interval')}/{ar('duration')}") == str(28 * 86400)
    assert block.findtext(f"{ar('interval')}/{ar('start')}") == "2025-02-01T00:00:00+01:00"
    reading = block.find(ar("IntervalReading"))
    assert reading.findtext(espi("value")) == "150"
    assert reading.findtext(f"{ar('timePeriod')}/{ar('start')}") == "2025-03-01T00:00:00+01:00"
    assert reading.findtext(ar("certId")) == "1"
    assert reading.findtext(ar("signature")) == sig(1).hex()


def test_taf2_export_with_error_register_validates(certs):
    xml = trudi_document(taf2(certs))
    validate(xml)
    root = tree(xml)
    # TRuDI wants >= 5 lists for a TAF 2 period: OVL + sum + >= 2 stages + error register
    assert qlns(root) == [f"0100010800ff.{M1}.sm", "0100010800ff.taf2-haus.sm",
                          "0100010801ff.taf2-haus.sm", "0100010802ff.taf2-haus.sm",
                          "010001083fff.taf2-haus.sm"]
    error = root.findall(f".//{ar('MeterReading')}")[-1]
    assert error.findtext(f"{ar('ReadingType')}/{ar('obisCode')}") == "010001083fff"
    assert error.findtext(f".//{ar('statusFNN')}") == "A004000020000000"
    # registers share one interval (the billing period); no measurementPeriod for them
    durations = {b.findtext(f"{ar('interval')}/{ar('duration')}")
                 for mr in root.findall(f".//{ar('MeterReading')}")[1:]
                 for b in mr.findall(ar("IntervalBlock"))}
    assert durations == {str(28 * 86400)}
    assert error.find(f"{ar('ReadingType')}/{ar('measurementPeriod')}") is None
    # the OVL carries its registration period and target times on the grid
    ovl_mr = root.find(f".//{ar('MeterReading')}")
    assert ovl_mr.findtext(f"{ar('ReadingType')}/{ar('measurementPeriod')}") == "900"
    first = ovl_mr.find(f".//{ar('IntervalReading')}")
    assert first.findtext(f"{ar('timePeriod')}/{ar('start')}") == "2025-01-31T23:59:59+01:00"
    assert first.findtext(ar("targetTime")) == "2025-02-01T00:00:00+01:00"
    assert first.find(ar("signature")) is None


def test_taf7_export_across_the_dst_change_validates(certs):
    xml = trudi_document(taf7(certs))
    validate(xml)
    root = tree(xml)
    assert qlns(root) == [f"0100010800ff.{M1}.sm"]       # an original value list for TRuDI
    mr = root.find(f".//{ar('MeterReading')}")
    assert mr.findtext(f"{ar('Meter')}/{ar('meterId')}") == M1
    assert mr.findtext(f"{ar('ReadingType')}/{ar('measurementPeriod')}") == "900"
    targets = [e.text for e in mr.iter(ar("targetTime"))]
    assert len(targets) == 92
    assert "2025-03-30T01:45:00+01:00" in targets and "2025-03-30T03:00:00+02:00" in targets
    assert targets[-1] == "2025-03-31T00:00:00+02:00"
    # a 23-hour day, stretched to the last capture 0.4 s after 24:00
    assert mr.findtext(f"{ar('IntervalBlock')}/{ar('interval')}/{ar('duration')}") == \
        str(23 * 3600 + 1)
    starts = [e.findtext(ar("start")) for e in mr.iter(ar("timePeriod"))]
    assert starts[:3] == ["2025-03-30T00:14:59.700+01:00", "2025-03-30T00:30:00.400+01:00",
                          "2025-03-30T00:44:59+01:00"]


def test_document_shape(certs):
    """ESPI children first, no attributes, the SMGW block, certificates and the log."""
    xml = trudi_document(taf2(certs), check=False)
    root = tree(xml)
    assert xml.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<UsagePoints ')
    assert root.nsmap == {None: NS_AR, "espi": NS_ESPI}
    assert all(not el.attrib for el in root.iter())
    up = root.find(ar("UsagePoint"))
    assert [etree.QName(c).localname for c in up][:8] == [
        "ServiceCategory", "usagePointId", "Customer", "InvoicingParty", "SMGW", "Certificate",
        "Certificate", "Certificate"]
    assert up[0].tag == espi("ServiceCategory")
    smgw = up.find(ar("SMGW"))
    assert [c.text for c in smgw.findall(ar("certId"))] == ["1", "2", "3"]
    assert smgw.findtext(ar("smgwId")) == GW
    comps = smgw.findall(ar("FirmwareComponent"))
    assert [c.findtext(ar("name")) for c in comps] == ["smgw-host", "smgw-mcu"]
    assert comps[1].find(ar("checksum")) is None
    assert smgw.findtext(ar("SystemTime")) == "2025-03-01T01:00:00+01:00"
    sig_cert = up.find(ar("Certificate"))
    assert sig_cert.findtext(ar("parentCertId")) == "2"       # the only sub-CA
    assert bytes.fromhex(sig_cert.findtext(ar("certContent"))) == certs[0][2]
    log = up.find(ar("LogEntry"))
    assert log.findtext(ar("recordNumber")) == "7"
    ev = log.find(ar("LogEvent"))
    assert [etree.QName(c).localname for c in ev] == ["type", "level", "text", "outcome",
                                                      "timestamp"]
    assert ev.findtext(f"{ar('type')}/{ar('eventId')}") == "10165"
    assert ev.findtext(ar("timestamp")) == "2025-03-01T00:01:00+01:00"
    rt = up.find(f"{ar('MeterReading')}/{ar('ReadingType')}")
    assert [c.tag for c in rt][:2] == [espi("powerOfTenMultiplier"), espi("uom")]
    assert rt.findtext(espi("uom")) == "72"


def test_log_entries_from_the_logbook_store(certs):
    from smgw.logbook.store import Entry
    e = taf7(certs, n=2)
    e.log = [Entry(seq=3, ts_ms=DST_DAY + 5000, time_valid=True, event_id=10174,
                   level="WARNING", status="failed", params={}, text="Anmeldung fehlgeschlagen",
                   consumer="LV1")]
    ev = tree(trudi_document(e)).find(f".//{ar('LogEvent')}")
    assert ev.findtext(f"{ar('type')}/{ar('eventId')}") == "10174"
    assert (ev.findtext(ar("level")), ev.findtext(ar("outcome"))) == ("2", "1")


# -------------------------------------------------------------------- status words

@pytest.mark.parametrize("word,fnn,ptb", [
    (0x00000005, "A000000020000000", "0"),     # identification bits only
    (0x00002005, "A004000020000000", "2"),     # + no value in the receive window
    (0x00002105, "A084000020000000", "4"),     # + fatal error
])
def test_status_words_match_the_worked_examples(certs, word, fnn, ptb):
    assert status_fnn(word, None) == fnn
    v = register("taf1-haus", 1, "1-0:1.8.1", 5, status=word)
    xml = trudi_document(export(certs, 1, "taf1-haus", derived=[(v, None)], status="both"))
    reading = tree(xml).find(f".//{ar('IntervalReading')}")
    assert reading.findtext(ar("statusFNN")) == fnn
    assert reading.findtext(ar("statusPTB")) == ptb
    assert reading.find(ar("signature")) is None and reading.find(ar("certId")) is None


def test_ptb_only_status(certs):
    xml = trudi_document(dataclasses.replace(taf2(certs), status="ptb"))
    root = tree(xml)
    assert root.find(f".//{ar('statusFNN')}") is None
    assert {e.text for e in root.iter(ar("statusPTB"))} == {"0", "2"}


# -------------------------------------------------------------------- schema negatives

def mutated(certs, fn) -> bytes:
    root = tree(trudi_document(taf7(certs, n=4)))
    fn(root.find(ar("UsagePoint")))
    return etree.tostring(root)


def swap_customer_and_invoicing_party(up):
    inv = up.find(ar("InvoicingParty"))
    up.remove(inv)
    up.insert(list(up).index(up.find(ar("Customer"))), inv)


@pytest.mark.parametrize("fn,message,element", [
    (swap_customer_and_invoicing_party, "InvoicingParty': This element is not expected",
     "/UsagePoints/UsagePoint/InvoicingParty"),
    (lambda up: setattr(up.find(f".//{espi('value')}"), "text", "12.5"),
     "'12.5' is not a valid value", "/UsagePoints/UsagePoint/MeterReading/IntervalBlock/"
     "IntervalReading/espi:value"),
    (lambda up: up.remove(up.find(ar("usagePointId"))),
     "Expected is ( usagePointId )", "/UsagePoints/UsagePoint/Customer"),
    (lambda up: up.find(ar("tariffName")).set("lang", "de"),
     "attribute 'lang' is not allowed", "/UsagePoints/UsagePoint/tariffName"),
    (lambda up: setattr(up.find(f".//{ar('timestamp')}"), "text", "2025-03-30T00:01:00"),
     "is not accepted by the pattern", "/UsagePoints/UsagePoint/LogEntry/LogEvent/timestamp"),
    (lambda up: setattr(up.find(f".//{ar('statusFNN')}"), "text", "a000000020000000"),
     "is not accepted by the pattern", None),
    (lambda up: up.find(f".//{ar('IntervalReading')}").remove(
        up.find(f".//{ar('statusFNN')}")), "Missing child element(s)", None),
    (lambda up: setattr(up.find(f".//{espi('value')}"), "text", str(1 << 47)),
     "maxInclusive", None),
    (lambda up: setattr(up.find(f".//{ar('certType')}"), "text", "4"), "maxInclusive", None),
    (lambda up: up.find(ar("SMGW")).remove(up.find(f"{ar('SMGW')}/{ar('smgwId')}")),
     "Expected is one of ( certId, smgwId )", "/UsagePoints/UsagePoint/SMGW/FirmwareComponent"),
    (lambda up: setattr(up.find(f"{ar('Customer')}/{ar('customerId')}"), "text", "c" * 65),
     "has a length of '65'; this exceeds the allowed maximum length of '64'",
     "/UsagePoints/UsagePoint/Customer/customerId"),
])
def test_schema_rejects_with_a_clear_message(certs, fn, message, element):
    with pytest.raises(FormatError) as exc:
        validate(mutated(certs, fn))
    text = str(exc.value)
    assert message in text
    assert text.startswith("line ")
    if element:
        assert f": {element}:" in text


def test_validate_refuses_hostile_input():
    with pytest.raises(FormatError, match="DOCTYPE"):
        validate(b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><UsagePoints/>')
    with pytest.raises(FormatError, match="not well-formed"):
        validate(b"<UsagePoints>")


# -------------------------------------------------------------------- caller's data

def test_too_long_usage_point_is_reported(certs):
    with pytest.raises(FormatError, match="usage_point: is 257 characters long, at most 256"):
        trudi_document(export(certs, 7, "x", usage_point="D" * 257))


@pytest.mark.parametrize("change,message", [
    (dict(certificates=[]), "at least one certificate"),
    (dict(status="both-ways"), "is not one of fnn, ptb, both"),
    (dict(timezone="Mars/Olympus"), "unknown time zone"),
    (dict(log=[{"seq": 1, "ts_ms": T0, "event": 1, "level": "DEBUG", "status": "successful",
                "text": "", "params": {}}]), "level 'DEBUG'"),
])
def test_bad_exports_are_refused(certs, change, message):
    with pytest.raises(FormatError, match=message):
        trudi_document(export(certs, 7, "x", **change))


def test_duplicate_cert_ids_and_units(certs):
    with pytest.raises(FormatError, match=r"certificates\[1\]: certId 1 is used twice"):
        trudi_document(export(certs, 7, "x", certificates=[certs[0], (1, 2, b"\x30")]))
    v = register("x", 1, "1-0:1.8.1", 5)
    with pytest.raises(FormatError, match="no AR 2418-6 \\(ESPI\\) uom code"):
        trudi_document(export(certs, 1, "x", derived=[(dataclasses.replace(v, unit=""), None)]))
    with pytest.raises(FormatError, match=r"derived\[0\].value: .* 48-bit"):
        trudi_document(export(certs, 1, "x",
                              derived=[(dataclasses.replace(v, value=1 << 50), None)]))


def test_taf7_exports_hold_readings_only(certs):
    e = taf7(certs, n=2)
    e.derived.append((register("taf7-haus", 7, "1-0:1.8.1", 5), None))
    with pytest.raises(FormatError, match=r"derived\[2\]: a TAF 7 export holds readings only"):
        trudi_document(e)


def test_the_same_list_twice_is_refused(certs):
    e = taf7(certs, n=3)
    e.original_values = [Reading(M1, "1-0:1.8.0", DST_DAY + Q, 1, -1, "Wh")]
    with pytest.raises(FormatError, match="two value lists named 0100010800ff"):
        trudi_document(e)


def test_readings_outside_the_window_are_refused(certs):
    e = taf7(certs, n=4)
    e.window = (DST_DAY, DST_DAY + 2 * Q)
    with pytest.raises(FormatError, match=r"derived\[2\]: capture time .* is outside the window"):
        trudi_document(e)


def test_captures_just_after_the_window_stretch_the_interval(certs):
    e = taf7(certs, n=2)              # the second value is captured 0.4 s after its target
    root = tree(trudi_document(e))
    assert root.findtext(f".//{ar('interval')}/{ar('duration')}") == "1801"


def test_mixed_scalers_are_brought_to_one(certs):
    e = taf1(certs)
    e.original_values[1] = Reading(M1, "1-0:1.8.0", FEB_END - 1000, 1012, 0, "Wh")
    root = tree(trudi_document(e))
    mr = root.find(f".//{ar('MeterReading')}")
    assert mr.findtext(f"{ar('ReadingType')}/{ar('scaler')}") == "-1"
    assert [v.text for v in mr.iter(espi("value"))] == ["10000", "10120"]


# -------------------------------------------------------------------- original schema set

def test_schema_directory_from_the_environment(tmp_path, monkeypatch, certs):
    """The mechanism behind SMGW_AR2418_XSD_DIR, shown with our own files standing in for the
    original set: references resolve inside the directory only."""
    shutil.copy(SCHEMA_DIR / "ar2418-6-smgw.xsd", tmp_path / "AR_2418-6.xsd")
    shutil.copy(SCHEMA_DIR / "espi-smgw.xsd", tmp_path / "espi-smgw.xsd")
    monkeypatch.setenv(XSD_DIR_ENV, str(tmp_path))
    xml = trudi_document(taf7(certs, n=3))
    validate(xml, original=True)
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(SCHEMA_DIR / "ar2418-6-smgw.xsd", broken / "AR_2418-6.xsd")
    with pytest.raises(FormatError, match="cannot be loaded|not in"):
        validate(xml, original=True, xsd_dir=broken)
    monkeypatch.delenv(XSD_DIR_ENV)
    with pytest.raises(FormatError, match=XSD_DIR_ENV):
        validate(xml, original=True)


@pytest.mark.skipif(not os.environ.get(XSD_DIR_ENV),
                    reason=f"{XSD_DIR_ENV} not set (directory with the original AR_2418-6.xsd, "
                           f"espi_derived.xsd, atom.xsd, xml.xsd)")
@pytest.mark.parametrize("build", [taf1, taf2, taf7])
def test_exports_validate_against_the_original_schema(certs, build):
    validate(trudi_document(build(certs)), original=True)
