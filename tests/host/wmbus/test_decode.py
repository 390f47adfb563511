"""Every published vector of design note meter-protocols.md §2.7 (and the unencrypted exercises
of §1.4 / §2.7) decodes to its listed values: header fields of every layer, the plaintext, the
JSON shape of the issue and the listed records (tests/vectors/wmbus_vectors.json).
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pytest

from smgw.wmbus import WmbusError, WmbusShort, WmbusSyntax
from smgw.wmbus.decode import Telegram, decode, decode_hex

DOC = json.loads(
    (Path(__file__).resolve().parents[2] / "vectors" / "wmbus_vectors.json").read_text("utf-8"))
VECTORS = DOC["vectors"]
BY_NAME = {v["name"]: v for v in VECTORS}
NAMES = [v["name"] for v in VECTORS]


def run(v: dict, **kw) -> Telegram:
    key = bytes.fromhex(v["key"]) if v["key"] else None
    return decode(bytes.fromhex(v["hex"]), key, **kw)


def test_every_section_2_7_vector_is_there():
    assert {f"V{i}" for i in range(1, 13)} <= set(NAMES)


# ------------------------------------------------------------------------------ headers

@pytest.mark.parametrize("name", NAMES)
def test_link_header(name):
    v = BY_NAME[name]
    t = run(v, decode_apl=False)
    h = t.link
    exp = v["link"]
    assert (h.c, h.manufacturer, h.id, h.version, h.device_type, h.ci) == (
        exp["c"], exp["manufacturer"], exp["id"], exp["version"], exp["device_type"],
        exp["ci"])
    assert t.frame == v["frame"]
    assert h.l == len(t.raw) - 1
    if "stripped_l" in v:
        assert h.l == v["stripped_l"]


@pytest.mark.parametrize("name", NAMES)
def test_ell_afl(name):
    v = BY_NAME[name]
    t = run(v, decode_apl=False)
    if v["ell"] is None:
        assert t.ell is None
    else:
        e = v["ell"]
        assert (t.ell.ci, t.ell.cc, t.ell.access_number) == (e["ci"], e["cc"], e["access_number"])
        if "receiver" in e:
            assert t.ell.receiver.to_json() == e["receiver"]
        if "session_number" in e:
            assert t.ell.session_number == e["session_number"]
            assert t.ell.encrypted is e["encrypted"]
            assert t.ell.payload_crc == e["payload_crc"]
    if v["afl"] is None:
        assert t.afl is None and t.counter is None
    else:
        a = v["afl"]
        assert (t.afl.fcl, t.afl.mcl, t.afl.counter) == (a["fcl"], a["mcl"], a["counter"])
        assert t.afl.mac.hex().upper() == a["mac"]
        assert t.counter == a["counter"] and t.afl.fragment_id == 0
        assert not t.afl.more_fragments and t.afl.auth_type == 5


@pytest.mark.parametrize("name", NAMES)
def test_tpl(name):
    v = BY_NAME[name]
    t = run(v, decode_apl=False)
    exp = v["tpl"]
    tp = t.tpl
    assert (tp.ci, tp.kind, tp.access_number, tp.status, tp.config) == (
        exp["ci"], exp["kind"], exp["access_number"], exp["status"], exp["config"])
    assert tp.security_mode == exp["security_mode"] == t.security_mode
    assert tp.encrypted_blocks == exp["encrypted_blocks"]
    assert tp.config_ext == exp.get("config_ext")
    if exp["meter"] is None:
        assert tp.meter is None
    else:
        assert tp.meter.to_json() == exp["meter"]


@pytest.mark.parametrize("name", NAMES)
def test_plaintext(name):
    v = BY_NAME[name]
    t = run(v, decode_apl=False)
    assert t.payload.hex().upper().startswith(v["plaintext_prefix"])
    if "clear_tail" in v:
        assert t.payload.hex().upper().endswith(v["clear_tail"])
    assert t.encrypted is (v["key"] is not None)


@pytest.mark.parametrize("name", NAMES)
def test_json_shape(name):
    v = BY_NAME[name]
    t = run(v, strict_apl=False)
    j = t.to_json()
    assert list(j)[:7] == ["manufacturer", "id", "version", "device_type", "access_number",
                           "security_mode", "records"]
    for k, want in v["json"].items():
        assert j[k] == want, k
    assert j["frame"] == v["frame"] and j["ci"] == v["tpl"]["ci"]
    assert j["link"]["id"] == v["link"]["id"]
    json.dumps(j)  # serialisable


def test_issue_json_example():
    """The issue's example output is V1's (plus further records and extra keys)."""
    j = run(BY_NAME["V1"]).to_json()
    want = {"manufacturer": "ELS", "id": "12345678", "version": 51, "device_type": 3,
            "access_number": 42, "security_mode": 5}
    assert {k: j[k] for k in want} == want
    assert j["records"][0] == {"storage": 0, "tariff": 0, "subunit": 0,
                               "function": "instantaneous", "quantity": "volume",
                               "unit": "m3", "value": "28504.27"}


# ------------------------------------------------------------------------------ records

def _same_value(got: str | None, want: str) -> bool:
    if got is None:
        return False
    if got == want:
        return True
    try:
        return Decimal(got) == Decimal(want)
    except InvalidOperation:
        pass
    try:
        return dt.datetime.fromisoformat(got) == dt.datetime.fromisoformat(want)
    except ValueError:
        return False


@pytest.mark.parametrize("name", [n for n in NAMES if BY_NAME[n]["records"] is not None])
def test_listed_records(name):
    v = BY_NAME[name]
    records = [r.to_json() for r in run(v).records]
    for want in v["records"]:
        keys = [k for k in want if k != "value"]
        match = [r for r in records if all(r.get(k) == want[k] for k in keys)
                 and _same_value(r.get("value"), want["value"])]
        assert match, f"{name}: no record like {want}; got {records}"


def test_v5_apator_register_format_decodes_to_its_total():
    """V5 (Apator 16-2): decrypted 2F2F, then Apator's own register format, not DIF/VIF; the
    manufacturer decoder (smgw.wmbus.mfct) reads register 0x10: 4848 l = 4.848 m3."""
    v = BY_NAME["V5"]
    t = run(v)
    assert [r.to_json() for r in t.records] == [
        {"storage": 0, "tariff": 0, "subunit": 0, "function": "instantaneous",
         "quantity": "volume", "unit": "m3", "value": "4.848"}]
    assert t.apl_error is None


def test_proprietary_plaintext_of_an_unknown_vendor_survives(monkeypatch):
    """Application data that is neither EN 13757-3 nor a known vendor format: strict decoding
    says so; strict_apl=False keeps the payload for later analysis."""
    from smgw.wmbus import mfct

    v = BY_NAME["V5"]

    saved = mfct.decoder_for
    mfct.decoder_for = lambda *a: None
    try:
        with pytest.raises(WmbusSyntax) as e:
            run(v)
        assert e.value.code.startswith("apl_") and e.value.catalogue_id == 10274
        t = run(v, strict_apl=False)
        assert t.records == [] and t.apl_error is not None
        assert bytes.fromhex("10F0120000") in t.payload
        assert "apl_error" in t.to_json()
    finally:
        mfct.decoder_for = saved


def test_v6_history():
    """V6's monthly history (storage 2, 4, ... 30) and the clear tail records."""
    recs = run(BY_NAME["V6"]).records
    storages = sorted(r.storage for r in recs if r.quantity == "energy" and r.storage >= 2)
    assert storages == list(range(2, 31, 2))
    assert {r.quantity: r.value for r in recs if r.storage == 0 and r.quantity in (
        "model_version", "parameter_set_id")} == {"model_version": "261",
                                                  "parameter_set_id": "4385"}


# ------------------------------------------------------------------------------ the API

def test_non_full_frames_keep_payload_without_records():
    """A compact frame (CI 0x79) and manufacturer-specific APL (0xA0) are kept as bytes."""
    for ci in (0x79, 0xA0):
        t = decode(bytes([11, 0x44, 0x93, 0x15, 0x78, 0x56, 0x34, 0x12, 0x33, 0x03, ci,
                          0xAB]))
        assert t.records == [] and t.payload == b"\xab" and t.tpl.kind == "none"
        assert t.to_json()["content"] == ("compact" if ci == 0x79 else "manufacturer")


def test_unknown_ci_and_layer_order():
    base = bytes.fromhex("449315785634123303")
    for ci in (0x00, 0x51, 0xC0, 0x86):
        with pytest.raises(WmbusSyntax) as e:
            decode(bytes([11]) + base + bytes([ci, 0]))
        assert e.value.code == "unsupported"
    with pytest.raises(WmbusSyntax, match="out of order"):  # ELL after AFL
        decode(bytes([16]) + base + bytes.fromhex("90020000") + bytes.fromhex("8C0000"))


def test_truncated_headers():
    v1 = bytes.fromhex(BY_NAME["V1"]["hex"])
    for cut in range(11, 15):  # inside the short TPL header
        t = bytes([cut - 1]) + v1[1:cut]
        with pytest.raises(WmbusShort):
            decode(t)


def test_decode_hex_and_rssi():
    v = BY_NAME["V1"]
    t = decode_hex(" ".join([v["hex"][:20], v["hex"][20:]]), v["key"], rssi=-71.5)
    assert t.rssi == -71.5 and t.to_json()["rssi"] == -71.5
    with pytest.raises(WmbusSyntax):
        decode_hex("zz")


def test_frame_hint():
    v = BY_NAME["V6"]
    assert run(v, frame="B", decode_apl=False).frame == "B"
    with pytest.raises(WmbusError):
        run(v, frame="A")


def test_meter_identity_prefers_the_long_tpl():
    t = run(BY_NAME["V2"])
    assert (t.link.manufacturer, t.link.id) == ("RAD", "11223344")
    assert (t.manufacturer, t.id, t.version, t.device_type) == ("ELS", "12345678", 0x33, 3)
    t = run(BY_NAME["V4"])
    assert t.meter == t.link.address and t.access_number == 0x91  # no TPL header: ELL ACC
