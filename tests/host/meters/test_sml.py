"""SML decoder (smgw.meters.sml): the real dumps of design note §4.7, every quirk of §4.8, the
transport and message CRCs, hostile input and round trips through a small SML encoder.

The encoder below writes SML the way the design note describes it (TL bytes, lists, messages
with X-25 or KERMIT CRCs, escaping and padding); frames the note has no dump for are built with
it, so every test frame has correct CRCs unless a test breaks one on purpose.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smgw.meters import sml
from smgw.meters.sml import SmlError, crc_kermit, crc_x25, decode_frame, decode_transport

VECTORS = json.loads((Path(__file__).resolve().parents[2] / "vectors" / "sml_dumps.json")
                     .read_text("utf-8"))["frames"]
BY_ID = {v["id"]: v for v in VECTORS}


def frame_of(vid: str) -> bytes:
    return bytes.fromhex(BY_ID[vid]["hex"])


# ------------------------------------------------------------------------------ SML encoder

ESC = b"\x1b\x1b\x1b\x1b"
OPT = b"\x01"


def tl(typ: int, n: int, is_list: bool = False) -> bytes:
    """TL bytes for type bits ``typ`` and ``n`` data bytes (or ``n`` list elements)."""
    k = 1
    while True:
        total = n if is_list else n + k
        if total < 16 ** k:
            break
        k += 1
    nibbles = [(total >> (4 * (k - 1 - i))) & 0xF for i in range(k)]
    out = bytearray()
    for i, nib in enumerate(nibbles):
        more = 0x80 if i < k - 1 else 0
        out.append(more | (typ if i == 0 else 0) | nib)
    return bytes(out)


def octets(b: bytes | None) -> bytes:
    return OPT if b is None else tl(0x00, len(b)) + b


def uint(v: int | None, size: int | None = None) -> bytes:
    if v is None:
        return OPT
    size = size or max(1, (v.bit_length() + 7) // 8)
    return tl(0x60, size) + v.to_bytes(size, "big")


def signed_size(v: int) -> int:
    return max(1, ((v if v >= 0 else ~v).bit_length() + 8) // 8)


def sint(v: int | None, size: int | None = None) -> bytes:
    if v is None:
        return OPT
    size = size or signed_size(v)
    return tl(0x50, size) + v.to_bytes(size, "big", signed=True)


def boolean(v: bool) -> bytes:
    return b"\x42" + (b"\x01" if v else b"\x00")


def lst(*items: bytes) -> bytes:
    return tl(0x70, len(items), True) + b"".join(items)


def sec_index(v: int, size: int = 4) -> bytes:
    return lst(uint(1, 1), uint(v, size))


def message(body_tag: int, body: bytes, *, tid: bytes = b"\x01", crc: str = "x25",
            tag_size: int = 4, break_crc: bool = False) -> bytes:
    # the list header says 6 elements; the last two (crc16, end marker) follow the covered part
    head = tl(0x70, 6, True) + octets(tid) + uint(0, 1) + uint(0, 1) + lst(
        uint(body_tag, tag_size), body)
    if crc == "x25":
        c = crc_x25(head)
        field = b"\x63" + c.to_bytes(2, "little")  # LSB first
    else:
        c = crc_kermit(head)
        field = b"\x63" + c.to_bytes(2, "big")  # MSB first
    if break_crc:
        field = field[:1] + bytes([field[1] ^ 0xFF]) + field[2:]
    return head + field + b"\x00"


def open_res(server: bytes, *, req_file: bytes = b"\x00\x01", ref_time: bytes = OPT) -> bytes:
    return lst(OPT, OPT, octets(req_file), octets(server), ref_time, OPT)


def entry(obis: bytes, value: bytes, *, status: bytes = OPT, val_time: bytes = OPT,
          unit: int | None = None, scaler: int | None = None, signature: bytes | None = None
          ) -> bytes:
    return lst(octets(obis), status, val_time, uint(unit, 1) if unit is not None else OPT,
               sint(scaler, 1) if scaler is not None else OPT, value, octets(signature))


def get_list_res(server: bytes, entries: list[bytes], *, sensor_time: bytes = OPT,
                 list_signature: bytes | None = None) -> bytes:
    return lst(OPT, octets(server), OPT, sensor_time, lst(*entries), octets(list_signature), OPT)


def close_res(signature: bytes | None = None) -> bytes:
    return lst(octets(signature))


def sml_file(server: bytes, entries: list[bytes], *, crc: str = "x25", **kw) -> bytes:
    return (message(0x0101, open_res(server), tid=b"\x11", crc=crc)
            + message(0x0701, get_list_res(server, entries, **kw), tid=b"\x12", crc=crc)
            + message(0x0201, close_res(), tid=b"\x13", crc=crc))


def transport(payload: bytes, *, crc: str = "x25", pad: int | None = None) -> bytes:
    if pad is None:
        pad = -len(payload) % 4
    data = payload + b"\x00" * pad
    escaped = b"".join(ESC + ESC if data[i:i + 4] == ESC else data[i:i + 4]
                       for i in range(0, len(data), 4))
    body = ESC + b"\x01\x01\x01\x01" + escaped + ESC + b"\x1a" + bytes([pad])
    if crc == "x25":
        return body + crc_x25(body).to_bytes(2, "little")
    return body + crc_kermit(body).to_bytes(2, "big")


SERVER = bytes.fromhex("0901454d480000abd62a")  # 1EMH0011261482
OBIS_180 = bytes.fromhex("0100010800ff")
OBIS_1670 = bytes.fromhex("0100100700ff")


def one_reading(value: bytes, *, obis: bytes = OBIS_180, server: bytes = SERVER, **kw
                ) -> sml.Reading:
    f = decode_frame(transport(sml_file(server, [entry(obis, value, **kw)])))
    assert f.crc_ok and f.messages_crc_ok, f.errors
    (r,) = f.readings
    return r


# --------------------------------------------------------------------------------- CRC basics


def test_crc_check_values():
    assert crc_x25(b"123456789") == 0x906E
    assert crc_kermit(b"123456789") == 0x2189


def test_message_crc_worked_example_from_the_design_note():
    covered = bytes.fromhex("7605128E14CF620062007265000001017601010765425A4444330B090145425A"
                            "0100091F140101")
    assert len(covered) == 39
    assert crc_x25(covered) == 0x26DF  # sent as 63 DF 26


def test_encoder_reproduces_a_real_frame():
    """The test encoder is trustworthy: S1 re-encoded from its fields gives the same bytes."""
    s1 = frame_of("S1")
    t = decode_transport(s1)
    assert transport(t.payload) == s1


# ------------------------------------------------------------------------ real dumps (§4.7)


@pytest.mark.parametrize("vid", [v["id"] for v in VECTORS])
def test_real_dump_decodes_to_its_vector(vid):
    v = BY_ID[vid]
    frame = bytes.fromhex(v["hex"])
    assert len(frame) == v["length"]
    f = decode_frame(frame)
    exp = v["expect"]
    out = sml.to_json([f])["frames"][0]
    assert f.crc_ok is exp["crc_ok"] and f.crc_kind == exp["crc_kind"]
    assert out["server_id"] == exp["server_id"] and out["meter_id"] == exp["meter_id"]
    assert [[m.type, m.crc_ok] for m in f.messages] == exp["messages"]
    got = [{k: r[k] for k in e} for r, e in zip(out["readings"], exp["readings"])]
    assert got == exp["readings"]
    assert len(out["readings"]) == len(exp["readings"])
    t = decode_transport(frame)
    assert t.padding == exp["padding"] and list(t.quirks) == exp["transport_quirks"]


@pytest.mark.parametrize("vid", [v["id"] for v in VECTORS if "doc_values" in v])
def test_real_dump_values_match_the_design_note(vid):
    """Independent of the vector file: the numbers the design note lists for each dump."""
    v = BY_ID[vid]
    f = decode_frame(bytes.fromhex(v["hex"]))
    by_obis = {r.obis: r for r in f.readings}
    for obis, doc_value in v["doc_values"].items():
        r = by_obis[obis]
        if r.raw_type in ("int", "uint"):
            assert Decimal(r.value) == Decimal(doc_value), obis
            # exact: as many fraction digits as the scaler says, no float rounding
            assert len(r.value.partition(".")[2]) == max(0, -(r.scaler or 0)), obis
        else:
            assert r.value == doc_value, obis


@pytest.mark.parametrize("vid", [v["id"] for v in VECTORS if v.get("doc_facts")])
def test_real_dump_facts_match_the_design_note(vid):
    """The other facts the design note states per dump (meter id, times, raw values, ...)."""
    v = BY_ID[vid]
    frame = bytes.fromhex(v["hex"])
    f = decode_frame(frame)
    by_obis = {r.obis: r for r in f.readings}
    gl = next(m.body for m in f.messages if m.type == "GetList.Res")
    for key, want in v["doc_facts"].items():
        kind, _, obis = key.partition("_1-0:")
        obis = "1-0:" + obis if obis else ""
        if key == "meter_id":
            got = f.meter_id
        elif key == "act_sensor_time":
            got = gl.act_sensor_time
        elif key == "client_id":
            got = gl.client_id.hex()
        elif key == "public_key_bytes":
            got = len(by_obis["129-129:199.130.5"].raw)
        elif key == "padding":
            got = decode_transport(frame).padding
        elif key == "crc_kind":
            got = f.crc_kind
        elif kind == "status":
            got = by_obis[obis].status
        elif kind == "raw":
            got = by_obis[obis].raw
        elif kind == "val_time":
            got = by_obis[obis].val_time["value"]
        else:
            raise AssertionError(f"no check for doc fact {key!r}")
        assert got == want, key


def test_s1_facts():
    f = decode_frame(frame_of("S1"))
    assert f.meter_id == "1EBZ0100597780"
    gl = f.messages[1].body
    assert gl.act_sensor_time == {"kind": "secIndex", "value": 98854144}
    r = {r.obis: r for r in f.readings}["1-0:1.8.0"]
    assert (r.raw, r.scaler, r.unit, r.unit_code, r.status) == (2887714975495, -5, "Wh", 30,
                                                                 0x010180)
    assert r.value == "28877149.75495"


def test_s2_long_list_and_client_id():
    f = decode_frame(frame_of("S2"))
    assert f.meter_id == "1EFR3347014668"
    assert len(f.messages[1].body.readings) == 22  # F1 06
    assert f.messages[1].body.client_id == bytes.fromhex("ffffffffffff")
    assert f.messages[0].tag == 0x0101  # sent as 63 0101


def test_s3_public_key_and_negative_power():
    f = decode_frame(frame_of("S3"))
    r = {r.obis: r for r in f.readings}
    key = r["129-129:199.130.5"]
    assert key.raw_type == "octets" and len(key.raw) == 48 and key.value is None
    assert key.name == "meter public key"
    assert r["1-0:16.7.0"].raw == -514 and r["1-0:16.7.0"].value == "-51.4"
    assert r["1-0:0.0.0"].value == "1EMH0011261482"
    assert decode_transport(frame_of("S3")).padding == 0


def test_s5_dzg_positive_scaler_and_padding_4():
    f = decode_frame(frame_of("S5"))
    r = {r.obis: r for r in f.readings}
    assert (r["1-0:1.8.0"].raw, r["1-0:1.8.0"].scaler, r["1-0:1.8.0"].value) == (0x344F, 3,
                                                                                 "13391000")
    # text items carry unit 0 and scaler 0: no unit symbol, text value unchanged
    flag = r["1-0:96.50.1*1"]
    assert (flag.value, flag.unit_code, flag.unit, flag.scaler) == ("DZG", 0, None, 0)
    assert flag.val_time == {"kind": "secIndex", "value": 0}  # sent shortened: 62 00
    assert f.quirks == ["padding-4"]


def test_kermit_frame_s6():
    frame = frame_of("S6")
    assert frame[-2:] == b"\x75\x02"
    t = decode_transport(frame)
    assert (t.crc_ok, t.crc_kind, t.crc_sent) == (True, "kermit", 0x7502)
    f = decode_frame(frame)
    assert all(m.crc_kind == "kermit" and m.crc_ok for m in f.messages)
    r = {r.obis: r.value for r in f.readings}
    assert r["1-0:1.8.0"] == "10793898.7" and r["1-0:2.8.0"] == "13609890.0"
    assert r["1-0:1.8.0*98"] == "128500"


@pytest.mark.parametrize("vid", ["EBZ-anon-OK", "EBZ-anon-ERR"])
def test_message_crc_mismatch_is_reported_not_raised(vid):
    f = decode_frame(frame_of(vid))
    assert f.crc_ok is True  # the transport CRC is good
    assert [m.crc_ok for m in f.messages] == [False, False, True]
    assert not f.messages_crc_ok
    assert len(f.errors) == 2 and "message 1 (GetList.Res): CRC mismatch" in f.errors[1]
    assert f.readings and all(r.message_crc_ok is False for r in f.readings)
    out = sml.to_json([f])["frames"][0]
    assert out["message_crc_ok"] is False
    assert all(r["message_crc_ok"] is False for r in out["readings"])


# ------------------------------------------------------------------------ quirks (§4.8)


@pytest.mark.parametrize("encoded,raw,raw_type", [
    ("6401a2b3", 0x01A2B3, "uint"),  # Unsigned24
    ("54fffffe", -2, "int"),  # Integer24, sign-extended from 3 bytes
    ("54800000", -(1 << 23), "int"),
    ("547fffff", (1 << 23) - 1, "int"),
    ("660102030405", 0x0102030405, "uint"),  # Unsigned40
    ("56ff00000001", -(1 << 32) + 1, "int"),  # Integer40
    ("58ffffffffffff85", -123, "int"),  # Integer56
    ("52f7", -9, "int"),
    ("62ff", 255, "uint"),
    ("59ffffffffffffffff", -1, "int"),
    ("69ffffffffffffffff", (1 << 64) - 1, "uint"),
])
def test_quirk1_shortened_integers_of_any_length(encoded, raw, raw_type):
    r = one_reading(bytes.fromhex(encoded), unit=27, scaler=-1)
    assert (r.raw, r.raw_type) == (raw, raw_type)
    assert Decimal(r.value) == Decimal(raw).scaleb(-1)


def test_quirk1_shortened_status_and_scaler():
    r = one_reading(uint(1234), status=uint(0x010180, 3), unit=30, scaler=-5)
    assert r.status == 0x010180 and r.value == "0.01234"


@pytest.mark.parametrize("tag_size", [2, 4])
def test_quirk2_tags_short_and_long(tag_size):
    payload = (message(0x0101, open_res(SERVER), tag_size=tag_size)
               + message(0x0701, get_list_res(SERVER, [entry(OBIS_180, uint(5), unit=30)]),
                         tag_size=tag_size)
               + message(0x0201, close_res(), tag_size=tag_size))
    f = decode_frame(transport(payload))
    assert [m.type for m in f.messages] == ["PublicOpen.Res", "GetList.Res", "PublicClose.Res"]
    assert f.readings[0].value == "5"


def test_quirk3_kermit_fallback_constructed():
    frame = transport(sml_file(SERVER, [entry(OBIS_180, uint(7), unit=30)], crc="kermit"),
                      crc="kermit")
    f = decode_frame(frame)
    assert (f.crc_ok, f.crc_kind) == (True, "kermit")
    assert [m.crc_kind for m in f.messages] == ["kermit"] * 3


def test_quirk3_kermit_byte_order_matters():
    """KERMIT is accepted MSB first only; the same value LSB first is a CRC error."""
    frame = transport(sml_file(SERVER, [entry(OBIS_180, uint(7))]), crc="kermit")
    swapped = frame[:-2] + frame[-1:] + frame[-2:-1]
    if swapped != frame:
        with pytest.raises(SmlError) as e:
            decode_frame(swapped)
        assert e.value.code == "crc"


def test_quirk4_bare_unsigned32_valtime():
    r = one_reading(uint(5), val_time=uint(0x05E37033, 4), unit=30)
    assert r.val_time == {"kind": "secIndex", "value": 0x05E37033}
    assert "bare-valtime" in r.quirks


def test_quirk4_three_element_time_list_bare_and_in_the_choice():
    triple = lst(uint(0x671B6322, 4), sint(60, 2), sint(60, 2))
    bare = one_reading(uint(5), val_time=triple)
    assert bare.val_time["kind"] == "localTimestamp" and "time-list3" in bare.quirks
    assert bare.val_time["iso"] == "2024-10-25T11:21:38+02:00"
    proper = one_reading(uint(5), val_time=lst(uint(3, 1), triple))
    assert proper.val_time == bare.val_time and proper.quirks == ()


def test_quirk4_time_kinds():
    assert one_reading(uint(5), val_time=lst(uint(2, 1), uint(1700000000, 4))).val_time == {
        "kind": "timestamp", "value": 1700000000, "iso": "2023-11-14T22:13:20Z"}
    assert one_reading(uint(5), val_time=lst(uint(1, 1), uint(0, 1))).val_time == {
        "kind": "secIndex", "value": 0}  # shortened secIndex 62 00
    with pytest.raises(SmlError, match="unknown SML_Time choice 9"):
        one_reading(uint(5), val_time=lst(uint(9, 1), uint(0, 4)))


DZG6 = bytes.fromhex("0a01445a4700") + (61234567).to_bytes(4, "big")  # 1DZG0061234567
DZG4 = bytes.fromhex("0a01445a4700") + (42123440).to_bytes(4, "big")  # 1DZG0042123440


def test_quirk5_dzg_dvs74_positive_power_as_short_signed():
    r = one_reading(bytes.fromhex("538025"), obis=OBIS_1670, server=DZG6, unit=27, scaler=-2)
    assert (r.raw, r.value, r.raw_type) == (0x8025, "328.05", "uint")
    assert "dzg-dvs74" in r.quirks


def test_quirk5_dzg_fix_only_in_the_affected_range_and_obis():
    unaffected = one_reading(bytes.fromhex("538025"), obis=OBIS_1670, server=DZG4, unit=27,
                             scaler=-2)
    assert unaffected.value == "-327.31" and unaffected.quirks == ()
    other_obis = one_reading(bytes.fromhex("538025"), obis=bytes.fromhex("0100240700ff"),
                             server=DZG6, scaler=-2)
    assert other_obis.value == "-327.31"
    # DZG never compresses real negative values: 4-byte signed values stay negative
    negative = one_reading(bytes.fromhex("55fffe1393"), obis=OBIS_1670, server=DZG6, scaler=-2)
    assert negative.value == "-1260.61" and negative.quirks == ()


def test_quirk5_dzg_fix_can_be_forced():
    payload = sml_file(DZG4, [entry(OBIS_1670, bytes.fromhex("538025"), scaler=-2)])
    assert decode_frame(transport(payload), dzg_fix="on").readings[0].value == "328.05"
    payload = sml_file(DZG6, [entry(OBIS_1670, bytes.fromhex("538025"), scaler=-2)])
    assert decode_frame(transport(payload), dzg_fix="off").readings[0].value == "-327.31"
    with pytest.raises(ValueError):
        decode_frame(transport(payload), dzg_fix="maybe")


def test_quirk6_negative_power_keeps_sign_and_status_word():
    r = one_reading(sint(-514, 4), obis=OBIS_1670, status=uint(0x1C0104, 3), unit=27, scaler=-1)
    assert (r.value, r.status) == ("-51.4", 0x1C0104)


def test_quirk7_signatures():
    sig = bytes(range(48))
    payload = (message(0x0101, open_res(SERVER))
               + message(0x0701, get_list_res(
                   SERVER, [entry(OBIS_180, uint(1), unit=30, signature=b"\xAA" * 20)],
                   list_signature=sig))
               + message(0x0201, close_res(b"\x55" * 64)))
    f = decode_frame(transport(payload))
    assert f.readings[0].signature == b"\xAA" * 20
    assert f.messages[1].body.list_signature == sig
    assert f.messages[2].body.global_signature == b"\x55" * 64
    out = sml.to_json([f])["frames"][0]
    assert out["readings"][0]["signature"] == "aa" * 20
    assert out["messages"][2]["global_signature"] == "55" * 64


# ------------------------------------------------------------------------- values and types


@pytest.mark.parametrize("raw,scaler,text", [
    (55432991, -1, "5543299.1"), (0, -2, "0.00"), (5, -3, "0.005"), (-5, -3, "-0.005"),
    (-514, -1, "-51.4"), (13391, 3, "13391000"), (7, None, "7"), (7, 0, "7"),
    (102400000, -5, "1024.00000"), (-1, 2, "-100"),
])
def test_scaled_decimal_is_exact(raw, scaler, text):
    assert sml.scaled_decimal(raw, scaler) == text


def test_octet_boolean_and_list_values():
    assert one_reading(octets(b"03.00")).value == "03.00"
    binary = one_reading(octets(b"\x42\xbd"))
    assert (binary.value, binary.raw, binary.raw_type) == (None, b"\x42\xbd", "octets")
    assert one_reading(boolean(True)).value == "true"
    absent = one_reading(OPT)
    assert (absent.raw, absent.value, absent.raw_type) == (None, None, "none")
    listed = one_reading(lst(uint(1, 1), lst(uint(1, 1), uint(0x1E3F50, 4))))
    assert listed.raw_type == "list" and listed.raw == [1, [1, 0x1E3F50]]


def test_unit_255_and_unknown_units():
    assert one_reading(uint(3), unit=255).unit == ""
    r = one_reading(uint(3), unit=200)
    assert (r.unit, r.unit_code) == (None, 200)


def test_objname_not_six_bytes_is_shown_as_hex():
    r = one_reading(uint(3), obis=b"\x01\x02\x03")
    assert r.obis == "010203" and r.name is None


def test_escaped_data_in_the_payload():
    """1B1B1B1B inside the data is sent twice and comes back once."""
    value = ESC * 3 + b"x"
    for lead in range(4):  # shift the value across the 4-byte grid
        frame = transport(sml_file(SERVER, [entry(OBIS_180, octets(value),
                                                  signature=b"p" * (lead + 1))]))
        assert decode_frame(frame).readings[0].raw == value


def test_zero_fill_between_messages_is_skipped():
    payload = (message(0x0101, open_res(SERVER)) + b"\x00\x00"
               + message(0x0201, close_res()))
    assert len(decode_frame(transport(payload)).messages) == 2


def test_unknown_body_is_kept_as_a_tree():
    payload = message(0x0500, lst(octets(SERVER), lst(octets(OBIS_180)), OPT))
    (m,) = decode_frame(transport(payload)).messages
    assert m.type == "GetProcParameter.Req" and m.body == [SERVER, [OBIS_180], None]
    m2 = decode_frame(transport(message(0x4242, uint(1)))).messages[0]
    assert m2.type == "0x4242" and m2.body == 1


def test_server_id_falls_back_to_the_open_response():
    f = decode_frame(transport(message(0x0101, open_res(SERVER)) + message(0x0201,
                                                                            close_res())))
    assert f.server_id == SERVER and f.readings == []


# ----------------------------------------------------------------------- transport errors


def test_every_prefix_of_a_frame_is_truncated():
    s1 = frame_of("S1")
    for n in range(len(s1)):
        with pytest.raises(SmlError) as e:
            decode_frame(s1[:n])
        assert e.value.code == "truncated", (n, e.value)
        assert e.value.catalogue_id == 10274


def test_bad_transport_crc():
    s1 = bytearray(frame_of("S1"))
    s1[s1.index(bytes.fromhex("02a05939af07")) + 5] ^= 0x01  # last byte of the 1.8.0 value
    with pytest.raises(SmlError) as e:
        decode_frame(bytes(s1))
    assert e.value.code == "crc" and e.value.catalogue_id == 10263
    assert "transport CRC mismatch" in str(e.value)
    f = decode_frame(bytes(s1), strict_crc=False)
    assert f.crc_ok is False and f.crc_kind is None
    assert f.errors[0].startswith("transport CRC mismatch")
    assert [m.crc_ok for m in f.messages] == [True, False, True]  # the GetList.Res CRC too
    assert {r.obis: r.raw for r in f.readings}["1-0:1.8.0"] == 2887714975495 ^ 1


@pytest.mark.parametrize("mutate,code,text", [
    (lambda f: f + b"\x00", "syntax", "after the end of the frame"),
    (lambda f: b"\x00" + f, "syntax", "does not start"),
    (lambda f: f[:8] + ESC + b"\x02\x02\x02\x02" + f[8:], "escape", "unknown escape"),
    (lambda f: f[:8] + ESC + b"\x01\x01\x01\x01" + f[8:], "escape", "new start sequence"),
])
def test_framing_errors(mutate, code, text):
    with pytest.raises(SmlError, match=text) as e:
        decode_frame(mutate(frame_of("S1")))
    assert e.value.code == code


def test_padding_errors():
    payload = sml_file(SERVER, [entry(OBIS_180, uint(1))])
    aligned = payload + b"\x00" * (-len(payload) % 4)
    with pytest.raises(SmlError, match="padding count 5") as e:
        decode_transport(with_pp(transport(aligned + b"\x00" * 8, pad=0), 5))
    assert e.value.code == "padding"
    with pytest.raises(SmlError, match="not zero"):  # claim 3 padding bytes: 00 07 00
        decode_transport(with_pp(transport(aligned + b"\x00\x00\x07\x00", pad=0), 3))
    with pytest.raises(SmlError, match="only 0 data bytes"):
        decode_transport(with_pp(transport(b"", pad=0), 3))
    assert decode_transport(with_pp(transport(aligned + b"\x00" * 4, pad=0), 4)).payload \
        == aligned  # PP = 4 (DZG) is tolerated


def with_pp(frame: bytes, pp: int) -> bytes:
    """The frame with another padding count in its end sequence (and a matching CRC)."""
    body = frame[:-3] + bytes([pp])
    return body + crc_x25(body).to_bytes(2, "little")


def test_empty_file_and_garbage_payload():
    with pytest.raises(SmlError, match="no message"):
        decode_frame(transport(b""))
    with pytest.raises(SmlError, match="SML message must be a list") as e:
        decode_frame(transport(b"\x42\x00\x00\x00"))
    assert e.value.code == "syntax"


def test_oversized_frame():
    with pytest.raises(SmlError) as e:
        decode_transport(sml.START + b"\x00" * sml.MAX_FRAME_BYTES)
    assert e.value.code == "oversized"


def test_message_errors_name_the_place():
    bad_entry = lst(octets(OBIS_180), OPT, OPT, octets(b"x"), OPT, uint(1), OPT)
    with pytest.raises(SmlError) as e:
        decode_frame(transport(sml_file(SERVER, [entry(OBIS_180, uint(1)), bad_entry])))
    msg = str(e.value)
    assert msg.startswith("message 1 (GetList.Res): valList entry 1: 1-0:1.8.0: unit must be")
    assert e.value.code == "syntax" and e.value.catalogue_id == 10274


def test_wrong_end_of_message():
    m = message(0x0201, close_res())
    with pytest.raises(SmlError, match="does not end with 00"):
        decode_frame(transport(m[:-1] + b"\x01"))


# --------------------------------------------------------------------------- hostile input


def _in_message(body: bytes, tag: int = 0x4242) -> bytes:
    return transport(message(tag, body))


def test_deep_nesting_is_refused():
    deep = b"\x71" * 100_000 + OPT
    for frame in (_in_message(deep),
                  transport(sml_file(SERVER, [entry(OBIS_180, deep)]))):
        with pytest.raises(SmlError) as e:
            decode_frame(frame)
        assert e.value.code == "depth"


def test_huge_lengths_and_counts_are_refused_without_allocating():
    cases = {
        "8f8f8f8f8f0f": "truncated",  # octet string of 16 MB announced
        "8f8f8f8f8f8f0f": "oversized",  # TL of 7 bytes
        "ff8f8f8f8f0f": "truncated",  # list of 16 M elements announced
        "f80f": "truncated",  # list of 255 with nothing after it
        "8f9f0f": "syntax",  # continuation byte with type bits
        "9f0f": "syntax",  # unknown type 001
    }
    import tracemalloc

    for hexbody, code in cases.items():
        tracemalloc.start()
        try:
            with pytest.raises(SmlError) as e:
                decode_frame(_in_message(bytes.fromhex(hexbody)))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert e.value.code == code, (hexbody, e.value)
        assert peak < 1_000_000, (hexbody, peak)  # the announced sizes were never allocated
    with pytest.raises(SmlError) as e:
        decode_frame(transport(sml_file(SERVER, [entry(OBIS_180, bytes.fromhex("ff8f8f8f8f0f"))])))
    assert e.value.code == "truncated"


@pytest.mark.parametrize("hexbody,text", [
    ("6a0102030405060708090a", "integer of 9 bytes"),
    ("60", "shorter than its 1 TL bytes"),
    ("4301ff", "boolean of 2 bytes"),
    ("3100", "unknown SML type"),
    ("00", "end-of-message marker"),
])
def test_malformed_values(hexbody, text):
    with pytest.raises(SmlError, match=text):
        decode_frame(_in_message(bytes.fromhex(hexbody)))


# ---------------------------------------------------------------------------- split_frames


def test_split_frames_of_a_capture():
    frames = [frame_of(i) for i in ("S1", "S2", "S6", "S3")]
    capture = b"\x00\xff" + frames[0][200:] + frames[0] + frames[1] + b"junk" + frames[2] \
        + frames[3] + frames[3][:100]
    assert sml.split_frames(capture) == frames


def test_split_frames_keeps_escaped_data_inside_a_frame():
    frame = transport(sml_file(SERVER, [entry(OBIS_180, octets(ESC * 2 + b"\x1a\x00\x00\x00"),
                                              signature=b"ab")]))
    assert sml.split_frames(frame + frame) == [frame, frame]


def test_split_frames_skips_a_cut_off_frame():
    s1, s2 = frame_of("S1"), frame_of("S2")
    assert sml.split_frames(s1[:150] + s2) == [s2]
    assert sml.split_frames(b"") == [] and sml.split_frames(sml.START) == []


# --------------------------------------------------------------------------------- to_json


def test_to_json_shape():
    out = sml.to_json([decode_frame(frame_of("S3"))])
    (fr,) = out["frames"]
    assert {"server_id", "crc_ok", "readings"} <= set(fr)
    r = next(r for r in fr["readings"] if r["obis"] == "1-0:1.8.0")
    assert {k: r[k] for k in ("obis", "value", "unit", "scaler", "raw", "status")} == {
        "obis": "1-0:1.8.0", "value": "5543299.1", "unit": "Wh", "scaler": -1,
        "raw": 55432991, "status": 0x0102A0}
    assert fr["server_id"] == "0901454d480000abd62a"
    json.dumps(out)  # serialisable as it is


# ----------------------------------------------------------------------------------- fuzz

# SMGW_FUZZ_EXAMPLES=20000 for a long run
FUZZ = settings(max_examples=int(os.environ.get("SMGW_FUZZ_EXAMPLES", "400")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
REAL = [bytes.fromhex(v["hex"]) for v in VECTORS]


def _decode_only_sml_errors(data: bytes, strict: bool = False) -> None:
    try:
        f = decode_frame(data, strict_crc=strict)
    except SmlError as e:
        assert e.code in {"crc", "truncated", "escape", "syntax", "padding", "oversized",
                          "depth"}
        assert e.catalogue_id in (10263, 10274)
        return
    json.dumps(sml.to_json([f]))


@FUZZ
@given(st.binary(max_size=600))
def test_fuzz_random_bytes(data):
    _decode_only_sml_errors(data, strict=True)
    _decode_only_sml_errors(sml.START + data)
    _decode_only_sml_errors(transport(data))  # random SML file in a valid frame
    sml.split_frames(data)


@FUZZ
@given(st.sampled_from(REAL), st.data())
def test_fuzz_bit_flips_of_real_frames(frame, data):
    b = bytearray(frame)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(b) - 1))
        b[i] ^= 1 << data.draw(st.integers(0, 7))
    _decode_only_sml_errors(bytes(b))
    _decode_only_sml_errors(bytes(b), strict=True)
    # the same damage inside the SML file, with the transport re-framed around it
    payload = bytearray(decode_transport(frame).payload)
    i = data.draw(st.integers(0, len(payload) - 1))
    payload[i] ^= 1 << data.draw(st.integers(0, 7))
    _decode_only_sml_errors(transport(bytes(payload)))


@FUZZ
@given(st.sampled_from(REAL), st.data())
def test_fuzz_truncated_and_spliced_real_frames(frame, data):
    payload = decode_transport(frame).payload
    cut = data.draw(st.integers(0, len(payload)))
    _decode_only_sml_errors(transport(payload[:cut]))
    j = data.draw(st.integers(0, len(payload)))
    _decode_only_sml_errors(transport(payload[:cut] + payload[j:]))
    _decode_only_sml_errors(frame[:data.draw(st.integers(0, len(frame)))])


def _file_only_sml_errors(payload: bytes) -> None:
    """decode_file (no transport) on its own, and the same payload framed for decode_frame."""
    try:
        f = sml.decode_file(payload)
    except SmlError as e:
        assert e.catalogue_id == 10274 and e.code != "crc"
    else:
        assert f.crc_ok is None
        json.dumps(sml.to_json([f]))
    _decode_only_sml_errors(transport(payload), strict=True)


def raw_tl(typ: int, length: int, k: int) -> bytes:
    """A TL field of ``k`` bytes whose length nibbles say ``length`` -- whatever follows it (a
    TL may lie: announce more or fewer bytes or elements than there are)."""
    nibbles = [(length >> (4 * (k - 1 - i))) & 0xF for i in range(k)]
    return bytes((0x80 if i < k - 1 else 0) | (typ if i == 0 else 0) | nib
                 for i, nib in enumerate(nibbles))


# pieces of SML that a hostile or broken meter could send, glued together at random
hostile_token = st.one_of(
    st.sampled_from([b"\x00", b"\x01", OPT * 7, ESC, sml.START, b"\x1a", b"\x62\x1e",
                     b"\x52\xff", b"\x42\x01", OBIS_180]),
    # a TL of 1..8 bytes with any type and any length/count
    st.builds(raw_tl, st.sampled_from([0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70]),
              st.integers(0, (1 << 32) - 1), st.integers(1, 8)),
    # a length that lies: octet string / integer / list header followed by too few or too many
    st.builds(lambda t, n, tail: raw_tl(t, n, 1 if n < 16 else 2) + tail,
              st.sampled_from([0x00, 0x50, 0x60, 0x70]), st.integers(0, 255),
              st.binary(max_size=12)),
    # nesting: deep or wide
    st.integers(1, 3000).map(lambda d: b"\x71" * d + OPT),
    st.integers(1, 40).map(lambda d: b"\x72" * d + OPT * (d + 1)),
    st.binary(max_size=16),
)

# where the hostile bytes start: at the top, inside a message, in a GetList.Res valList entry
_MSG_HEAD = tl(0x70, 6, True) + octets(b"\x01") + uint(0, 1) + uint(0, 1) + tl(0x70, 2, True)
_GETLIST_HEAD = _MSG_HEAD + uint(0x0701, 2) + tl(0x70, 7, True) + OPT + octets(SERVER) + OPT + OPT
hostile_prefix = st.sampled_from([
    b"",
    _MSG_HEAD,
    _MSG_HEAD + uint(0x0101, 2),
    _GETLIST_HEAD,
    _GETLIST_HEAD + b"\x71" + tl(0x70, 7, True) + octets(OBIS_180),
    _GETLIST_HEAD + b"\x71" + tl(0x70, 7, True) + octets(OBIS_180) + OPT,  # at valTime
    message(0x0101, open_res(SERVER)),  # one good message first
])


@FUZZ
@given(hostile_prefix, st.lists(hostile_token, max_size=30))
def test_fuzz_hostile_structures(prefix, tokens):
    """Lying lengths and counts, huge TLs, deep and wide nesting, stray escapes, at every level:
    decode_file and decode_frame raise SmlError or decode, nothing else (no IndexError,
    RecursionError, MemoryError, ...)."""
    _file_only_sml_errors(prefix + b"".join(tokens))


@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_decode_file_random_bytes(data):
    _file_only_sml_errors(data)


@FUZZ
@given(st.lists(st.one_of(st.sampled_from([ESC, sml.START, ESC + b"\x1a", ESC + ESC, b"\x00",
                                          b"\x1a\x00\x12\x34", b"\x1b"]),
                          st.binary(max_size=12), st.sampled_from(REAL)), max_size=20))
def test_fuzz_split_frames(parts):
    """split_frames never raises, returns only pieces of its input that start with the start
    sequence and end with an end sequence, in order, without overlap; every real frame that is
    in the capture whole (and not swallowed by a preceding cut-off frame) comes out whole."""
    data = b"".join(parts)
    frames = sml.split_frames(data)
    pos = 0
    for fr_ in frames:
        i = data.find(fr_, pos)
        assert i >= pos and fr_.startswith(sml.START)
        assert fr_[-8:-3] == ESC + b"\x1a" and len(fr_) % 4 == 0
        pos = i + len(fr_)
        _decode_only_sml_errors(fr_)
    if parts and all(p in REAL for p in parts):
        assert frames == parts


def test_oversized_input_everywhere():
    big = sml.START + b"\x00" * (sml.MAX_FRAME_BYTES + 8)
    for call in (lambda: decode_frame(big), lambda: sml.decode_file(big[8:]),
                 lambda: decode_transport(big)):
        with pytest.raises(SmlError) as e:
            call()
        assert e.value.code == "oversized"
    assert sml.split_frames(big + frame_of("S1")) == [frame_of("S1")]


# ---------------------------------------------------------------------- round-trip property

obis_bytes = st.binary(min_size=6, max_size=6)
value_strategy = st.one_of(
    st.tuples(st.just("uint"), st.integers(0, (1 << 64) - 1)),
    st.tuples(st.just("int"), st.integers(-(1 << 63), (1 << 63) - 1)),
    st.tuples(st.just("octets"), st.one_of(
        st.binary(max_size=300),
        st.lists(st.sampled_from([ESC, b"\x1b", b"\x1a", b"\x00", b"ab"]), max_size=8)
        .map(b"".join))),
    st.tuples(st.just("bool"), st.booleans()),
)


@st.composite
def readings(draw):
    kind, v = draw(value_strategy)
    if kind == "uint":
        minimal = max(1, (v.bit_length() + 7) // 8)
        size = draw(st.integers(minimal, 8))
        enc = uint(v, size)
    elif kind == "int":
        size = draw(st.integers(signed_size(v), 8))
        enc = sint(v, size)
    elif kind == "octets":
        enc = octets(v) if v else OPT
        if not v:
            kind, v = "none", None
    else:
        enc = boolean(v)
    return {"obis": draw(obis_bytes), "kind": kind, "raw": v, "enc": enc,
            "status": draw(st.none() | st.integers(0, (1 << 64) - 1)),
            "unit": draw(st.none() | st.integers(0, 255)),
            "scaler": draw(st.none() | st.integers(-128, 127)),
            "sig": draw(st.none() | st.binary(min_size=1, max_size=80))}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(readings(), min_size=1, max_size=20), st.binary(min_size=1, max_size=20),
       st.sampled_from(["x25", "kermit"]))
def test_round_trip_random_readings(items, server, crc):
    entries = [entry(it["obis"], it["enc"], status=uint(it["status"]), unit=it["unit"],
                     scaler=it["scaler"], signature=it["sig"]) for it in items]
    frame = transport(sml_file(server, entries, crc=crc), crc=crc)
    f = decode_frame(frame, dzg_fix="off")
    assert f.crc_ok and f.messages_crc_ok and f.crc_kind == crc
    assert f.server_id == server and len(f.readings) == len(items)
    assert sml.split_frames(b"xx" + frame + frame) == [frame, frame]
    for it, r in zip(items, f.readings):
        assert r.obis_bytes == it["obis"]
        assert r.raw == it["raw"] and r.raw_type == it["kind"]
        assert (r.status, r.unit_code, r.scaler, r.signature) == (
            it["status"], it["unit"], it["scaler"], it["sig"])
        if it["kind"] in ("int", "uint"):
            assert Decimal(r.value) == Decimal(it["raw"]).scaleb(it["scaler"] or 0)
            assert len(r.value.partition(".")[2]) == max(0, -(it["scaler"] or 0))
    json.dumps(sml.to_json([f]))
