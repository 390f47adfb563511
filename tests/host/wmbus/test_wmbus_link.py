"""EN 13757-4 link layer (smgw.wmbus.link): CRC-16 EN 13757, frame A/B detection and CRC
stripping, L/C/M/A fields, manufacturer codes and ids (design note meter-protocols.md §1.4-1.5).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smgw.wmbus import CATALOGUE_CHECKSUM, WmbusCrc, WmbusError, WmbusShort, WmbusSyntax
from smgw.wmbus.link import (
    Address,
    add_crcs,
    crc16,
    frame_a_length,
    id_bytes,
    id_text,
    manufacturer_bytes,
    manufacturer_code,
    manufacturer_value,
    parse_link,
    strip_crcs,
)

VECTORS = {v["name"]: v for v in json.loads(
    (Path(__file__).resolve().parents[2] / "vectors" / "wmbus_vectors.json").read_text("utf-8")
)["vectors"]}


def vec(name: str) -> bytes:
    return bytes.fromhex(VECTORS[name]["hex"])


V1 = vec("V1")  # no CRCs
V1A = vec("V1A")  # the same telegram with frame-A CRCs (§1.4)
V6 = vec("V6")  # frame B, 195 bytes, two CRCs
SON_A = vec("SON-A")  # real frame A with CRCs


# ---------------------------------------------------------------------------------------- CRC

@pytest.mark.parametrize("data, crc", [
    (b"123456789", 0xC2B7),
    (bytes.fromhex("01FD1F01"), 0xCC22),
    (bytes.fromhex("01FD1F00"), 0xF147),
    (bytes.fromhex("EE449ACE010000802307"), 0xAABC),
    (bytes.fromhex("3444EE4D813929271608"), 0x811D),
    (b"", 0xFFFF),
])
def test_crc16_check_values(data, crc):
    assert crc16(data) == crc


def test_frame_a_length():
    assert frame_a_length(0x2E) == 55  # §1.2: 1 + 46 + 2*4
    assert frame_a_length(10) == 1 + 10 + 4
    assert frame_a_length(9 + 16) == 1 + 25 + 4
    assert frame_a_length(9 + 17) == 1 + 26 + 6
    assert frame_a_length(255) == 1 + 255 + 2 * (1 + 16)


# --------------------------------------------------------------------------- M, ID, address

@pytest.mark.parametrize("code, value, wire", [
    ("KAM", 0x2C2D, "2D2C"), ("ELS", 0x1593, "9315"), ("APA", 0x0601, "0106"),
    ("EFE", 0x14C5, "C514"), ("TCH", 0x5068, "6850"), ("SON", 0x4DEE, "EE4D"),
    ("QDS", 0x4493, "9344"), ("AAA", 0x0421, "2104"),
])
def test_manufacturer_codes(code, value, wire):
    assert manufacturer_value(code) == value
    assert manufacturer_code(value) == code
    assert manufacturer_bytes(code).hex().upper() == wire
    assert manufacturer_code(value | 0x8000) == code  # bit 15 ignored


@pytest.mark.parametrize("bad", ["", "AB", "ABCD", "A1C", "ÄBC"])
def test_manufacturer_encode_rejects(bad):
    with pytest.raises(ValueError):
        manufacturer_value(bad)


def test_manufacturer_decode_never_fails():
    for v in range(0, 0x10000, 7):
        assert len(manufacturer_code(v)) == 3


def test_ids():
    assert id_text(bytes.fromhex("78563412")) == "12345678"
    assert id_bytes("12345678") == bytes.fromhex("78563412")
    assert id_text(bytes.fromhex("FFFFFFFF")) == "FFFFFFFF"  # not BCD: shown as hex
    for bad in ("1234567", "123456789", "1234567G"):
        with pytest.raises(ValueError):
            id_bytes(bad)


def test_address_orders():
    dll = Address.from_dll(bytes.fromhex("9315785634123303"))
    tpl = Address.from_tpl(bytes.fromhex("7856341293153303"))
    assert dll == tpl
    assert (dll.manufacturer, dll.id, dll.version, dll.device_type) == ("ELS", "12345678", 0x33, 3)
    assert dll.id_raw == bytes.fromhex("78563412") and dll.medium == "gas"


def test_parse_link_v1():
    h = parse_link(V1)
    assert (h.l, h.c, h.manufacturer, h.id, h.version, h.device_type, h.ci) == (
        0x2E, 0x44, "ELS", "12345678", 0x33, 0x03, 0x7A)
    assert h.c_name == "SND-NR" and h.medium == "gas"
    assert h.address.raw == bytes.fromhex("9315785634123303")


def test_parse_link_rejects():
    with pytest.raises(WmbusShort):
        parse_link(V1[:10])
    with pytest.raises(WmbusSyntax):
        parse_link(V1[:-1])  # L no longer len - 1


# -------------------------------------------------------------------------- frame detection

def test_no_crcs():
    assert strip_crcs(V1) == (V1, None)


def test_frame_a_constructed_v1():
    body, frame = strip_crcs(V1A)
    assert frame == "A" and body == V1
    assert len(V1A) == 55
    assert add_crcs(V1, "A") == V1A


def test_frame_a_real_sontex():
    body, frame = strip_crcs(SON_A)
    assert frame == "A" and body[0] == len(body) - 1 == 0x34
    assert body[:10] == SON_A[:10] and SON_A[10:12] == bytes.fromhex("811D")
    assert add_crcs(body, "A") == SON_A


def test_frame_b_long_v6():
    body, frame = strip_crcs(V6)
    assert frame == "B" and len(V6) == 195 and V6[0] == 0xC2
    assert body[0] == 190 == len(body) - 1
    assert V6[126:128] == bytes.fromhex("BEE3") and V6[-2:] == bytes.fromhex("F60B")
    assert body == V6[:1].replace(b"\xc2", b"\xbe") + V6[1:126] + V6[128:-2]
    assert add_crcs(body, "B") == V6


def test_frame_b_short_round_trip():
    framed = add_crcs(V1, "B")
    assert len(framed) == len(V1) + 2 and framed[0] == len(framed) - 1
    assert strip_crcs(framed) == (V1, "B")


@pytest.mark.parametrize("size", [11, 12, 50, 125, 126, 127, 128, 129, 200, 252])
def test_add_strip_round_trip_all_sizes(size):
    t = bytes([size - 1]) + bytes(range(1, size))
    for frame in ("A", "B"):
        framed = add_crcs(t, frame)
        assert strip_crcs(framed) == (t, frame)
        assert strip_crcs(framed, frame) == (t, frame)
    assert strip_crcs(t, "none") == (t, None)


def test_add_crcs_rejects_caller_bugs():
    with pytest.raises(ValueError):
        add_crcs(V1[:-1], "A")
    with pytest.raises(ValueError):
        add_crcs(V1, "C")
    with pytest.raises(ValueError):
        add_crcs(bytes([252]) + bytes(252), "B")  # 253 bytes + 4 CRC > 256
    with pytest.raises(ValueError):
        strip_crcs(V1, "X")


@pytest.mark.parametrize("name", ["V1A", "SON-A"])
def test_one_bit_flip_in_any_frame_a_block_fails_that_block(name):
    data = vec(name)
    n_blocks = 1 + (data[0] - 9 + 15) // 16
    starts = [0] + [12 + 18 * i for i in range(n_blocks - 1)]
    for block, start in enumerate(starts, 1):
        end = 12 if block == 1 else min(start + 18, len(data))
        for pos in range(1 if block == 1 else start, end):  # flipping L changes the layout
            for bit in (0x01, 0x80):
                bad = bytearray(data)
                bad[pos] ^= bit
                with pytest.raises(WmbusCrc) as e:
                    strip_crcs(bytes(bad))
                assert e.value.block == f"A{block}"
                assert e.value.catalogue_id == CATALOGUE_CHECKSUM == 10263


def test_frame_b_bad_crc():
    bad = bytearray(V6)
    bad[50] ^= 0x10
    with pytest.raises(WmbusCrc) as e:
        strip_crcs(bytes(bad), "B")
    assert e.value.block == "B1"
    bad = bytearray(V6)
    bad[150] ^= 0x10
    with pytest.raises(WmbusCrc) as e:
        strip_crcs(bytes(bad), "B")
    assert e.value.block == "B2"
    # auto: a frame B whose CRC fails cannot be told from a telegram without CRCs
    assert strip_crcs(bytes(bad)) == (bytes(bad), None)


def test_truncated_and_overlong():
    with pytest.raises(WmbusShort):
        strip_crcs(b"")
    with pytest.raises(WmbusShort, match="truncated"):
        strip_crcs(V1[:-1])
    with pytest.raises(WmbusShort, match="frame-A CRCs"):
        strip_crcs(V1A[:-1])  # between L+1 and the frame-A length
    with pytest.raises(WmbusSyntax) as e:
        strip_crcs(V1A + b"\x00")
    assert e.value.code == "length" and e.value.catalogue_id == 10274
    with pytest.raises(WmbusShort):
        strip_crcs(V1, "A")
    with pytest.raises(WmbusSyntax):
        strip_crcs(V1 + b"\x00", "none")


@pytest.mark.parametrize("l_field", range(0, 10))
def test_l_field_too_small(l_field):
    with pytest.raises(WmbusSyntax):
        strip_crcs(bytes([l_field]) + bytes(l_field))


def test_frame_b_impossible_lengths():
    for n in (129, 130):  # no room for a second block
        t = bytes([n - 1]) + bytes(n - 1)
        with pytest.raises(WmbusSyntax):
            strip_crcs(t, "B")
        assert strip_crcs(t) == (t, None)


def test_errors_are_value_errors():
    with pytest.raises(ValueError):
        strip_crcs(b"\x05")
    assert issubclass(WmbusCrc, WmbusError)
