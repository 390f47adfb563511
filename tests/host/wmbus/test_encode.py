"""The OMS telegram generator (smgw.wmbus.encode) against the published facts of
meter-protocols.md: the CRC check values, vectors V1, V2 and V3 rebuilt byte for byte from their
descriptions (mode 5 short and long header, mode 7 with KDF-A and the AFL CMAC, a radio
converter, ELL bytes, partial encryption), frame A and B CRC layouts (the Sontex frame-A line
and V6), every data type against records of real telegrams, the exponent choice, the CLI."""

from __future__ import annotations

import json
import random
import struct

import pytest

import omsgen  # tools/ is on sys.path (tests/conftest.py)
from smgw.wmbus.encode import (
    CFG_SYNC,
    Meter,
    Value,
    afl_mac,
    crc16_en13757,
    encode_record,
    encode_records,
    frame_a,
    frame_b,
    kdf_a,
    manufacturer_bytes,
    parse_record,
    random_meter,
    random_values,
    telegram,
    with_crcs,
)

H = bytes.fromhex

KEY_V1 = H("0102030405060708090A0B0C0D0E0F11")
K0F = bytes(range(16))
V1 = H("2E449315785634123303 7A2A0020255923 C95AAA26D1B2E7493B013EC4A6F6"
       " D3529B520EDFF0EA6DEFC99D6D69EBF3")
V1_FRAME_A = H("2E 44 93 15 78 56 34 12 33 03 33 63"
               " 7A 2A 00 20 25 59 23 C9 5A AA 26 D1 B2 E7 49 3B C2 AD"
               " 01 3E C4 A6 F6 D3 52 9B 52 0E DF F0 EA 6D EF C9 55 B2"
               " 9D 6D 69 EB F3 EC 8A")
V2 = H("530824484433221103378E80753A63665544330A31900F002C25B30A0000AF5D74DF73A600D9"
       "7278563412931533037500200710 9058475F4BC91DF878B80A1B0F98B629"
       " 024AAC727942BFC549233C0140829B93")
V3 = H("304493444433221155378C00757288776655934455080004100500DFE2A782146D1513581CD2F83F39"
       "040CFD1078563412")
V6_RAW = H(
    "C244C5140443054300048C200E900F002C25895E02003B0877D31DA840B17A0E009007100F8FAD4C4E6140"
    "0DA4F3B1F7E273CC4C5C07F93CD20B237345DB39F9A98F8415E1C4B7A25C86E4C22D05C3352FA7E2E56270"
    "31F14643063F1DC8FE2C32459B6F02E4234B447B18E4BFDA8C4DA9B1EDE6CF29D0B2122A3E8B9DEEBEE3E6"
    "DBE6617B4E709EC6B595179CB01C2C0BDE6723A345B708652880C114A58DA07C73AD9EB8ACB17FA0A88F19"
    "BC84CB1FC56672DE8A9603FD0C05010002FD0B2111F60B")
SONTEX_A = H("3444EE4D813929271608811D7A51000000046D1912A62B036E0000005170426CE1F1436E00000002FF"
             "2C00000259D6D0D4090265FC0902FD66A00044C4")

V1_VALUES = [Value("volume", "m3", "28504.27", data_type="bcd8"),
             Value("datetime", None, "2008-05-31T23:50"),
             Value("error_flags", None, 0)]


# ------------------------------------------------------------------ CRC and addresses


def test_crc_check_values():
    assert crc16_en13757(b"123456789") == 0xC2B7
    assert crc16_en13757(H("01FD1F01")) == 0xCC22
    assert crc16_en13757(H("01FD1F00")) == 0xF147
    assert crc16_en13757(H("EE449ACE010000802307")) == 0xAABC


@pytest.mark.parametrize("flag,wire", [("KAM", "2D2C"), ("ELS", "9315"), ("APA", "0106"),
                                       ("EFE", "C514"), ("TCH", "6850"), ("SON", "EE4D"),
                                       ("QDS", "9344")])
def test_manufacturer_codes(flag, wire):
    assert manufacturer_bytes(flag) == H(wire)


@pytest.mark.parametrize("bad", ["EL", "ELSX", "E1S", "ÄLS"])
def test_bad_manufacturer(bad):
    with pytest.raises(ValueError):
        Meter(bad, "12345678")


def test_meter_validation():
    with pytest.raises(ValueError, match="8 decimal digits"):
        Meter("ELS", "1234567")
    with pytest.raises(ValueError, match="key"):
        Meter("ELS", "12345678", mode=5)
    with pytest.raises(ValueError, match="mode"):
        Meter("ELS", "12345678", mode=6, key=K0F)
    with pytest.raises(ValueError, match="cannot be encrypted"):
        Meter("ELS", "12345678", mode=5, key=K0F, header="none")
    with pytest.raises(ValueError, match="frame"):
        Meter("ELS", "12345678", frame="C")


# ------------------------------------------------------------------ the published vectors


def v1_meter(frame: str = "none") -> Meter:
    return Meter("ELS", "12345678", version=0x33, device_type=0x03, key=KEY_V1, mode=5,
                 header="short", frame=frame)


def test_v1_byte_for_byte():
    """OMS Vol.2 N.2.1: same key, ACC 0x2A, CFG 0x2520 (S, mode 5, 2 blocks), the values."""
    assert telegram(v1_meter(), V1_VALUES, 0x2A, cfg_flags=CFG_SYNC) == V1


def test_v1_frame_a_as_in_the_design_note():
    assert telegram(v1_meter("A"), V1_VALUES, 0x2A, cfg_flags=CFG_SYNC) == V1_FRAME_A
    assert frame_a(V1) == V1_FRAME_A


def test_v1_plaintext_records():
    assert encode_records(V1_VALUES) == H("0C1427048502 046D32371F15 02FD170000")


def test_kdf_a_cen_tr_17167_f3():
    ident = H("78563412")
    assert kdf_a(K0F, 0xAB3, ident, 0x00) == H("ECCF39D475D730B8284FDFDC1995D52F")
    assert kdf_a(K0F, 0xAB3, ident, 0x01) == H("C9CD19FF5A9AAD5A6BBDA13BD2C4C7AD")


def test_cmac_rfc4493():
    from smgw.wmbus.encode import _cmac

    k = H("2b7e151628aed2a6abf7158809cf4f3c")
    assert _cmac(k, b"") == H("BB1D6929E95937287FA37D129B756746")
    assert _cmac(k, H("6bc1bee22e409f96e93d7e117393172a")) == H("070A16B46B4D4144F79BDD9DD04A287C")


def test_v2_mode7_afl_mac_byte_for_byte():
    """CEN/TR 17167 F.3: meter ELS 12345678 behind radio converter RAD 11223344 with ELL III;
    mode 7, MCR 0x0AB3, ACC 0x75, the V1 values: AFL MAC AF5D74DF73A600D9 and ciphertext."""
    meter = Meter("ELS", "12345678", 0x33, 0x03, K0F, 7, "long", "none")
    radio = Meter("RAD", "11223344", 0x03, 0x37)
    tg = telegram(meter, V1_VALUES, 0x75, counter=0xAB3, c_field=0x08,
                  ell=H("8E80753A63665544330A31"), radio=radio)
    assert tg == V2
    # L C M A (10) + ELL III (11) + 90 0F FCL(2) MCL: MCR at 26, MAC at 30, TPL at 38
    assert tg[21:26] == H("900F002C25")
    assert tg[26:30] == H("B30A0000")
    assert tg[30:38] == H("AF5D74DF73A600D9")


def test_v2_mac_input():
    """The MAC covers MCL, MCR and the TPL from its CI to the end."""
    kmac = kdf_a(K0F, 0xAB3, H("78563412"), 0x01)
    assert afl_mac(kmac, 0x25, 0xAB3, V2[38:]) == H("AF5D74DF73A600D9")


def test_v3_long_header_partial_encryption():
    """OMS N.5.3: ELL I, long TPL with the meter's address (IV from it, not from the DLL),
    status 0x04, one encrypted block, then clear records."""
    meter = Meter("QDS", "55667788", 0x55, 0x08, K0F, 5, "long", "none")
    radio = Meter("QDS", "11223344", 0x55, 0x37)
    values = [Value("hca", None, 1234, data_type="bcd6"),
              Value("date", None, "2007-04-30", storage=1),
              Value("hca", None, 23456, storage=1, data_type="bcd6")]
    clear = [Value("customer_location", None, "12345678")]
    assert telegram(meter, values, 0x00, status=0x04, ell=H("8C0075"), radio=radio,
                    clear_values=clear) == V3


def test_mode7_needs_a_counter_and_counter_changes_everything():
    meter = Meter("ELS", "12345678", 0x33, 3, K0F, 7)
    with pytest.raises(ValueError, match="counter"):
        telegram(meter, V1_VALUES, 1)
    a = telegram(meter, V1_VALUES, 1, counter=5)
    b = telegram(meter, V1_VALUES, 1, counter=6)
    assert a[:13] == b[:13] and a[17:] != b[17:]
    with pytest.raises(ValueError, match="mode 7"):
        telegram(Meter("ELS", "12345678"), V1_VALUES, 1, counter=5)


# ------------------------------------------------------------------ frame formats


def strip_a(raw: bytes) -> bytes:
    """Frame A without its CRCs, by the block layout (for the tests only)."""
    out, pos = bytearray(raw[:10]), 12
    while pos < len(raw):
        out += raw[pos:pos + 16][:len(raw) - pos - 2]
        pos += 18
    return bytes(out)


def test_frame_a_sontex_line():
    raw = strip_a(SONTEX_A)
    assert raw[0] == len(raw) - 1 == 0x34
    assert frame_a(raw) == SONTEX_A
    assert SONTEX_A[10:12] == H("811D")


def test_frame_b_long_v6():
    """V6: 195 bytes, CRC over 0..125 at 126..127 (0xBEE3), CRC over 128..192 (0xF60B)."""
    body = V6_RAW[:126] + V6_RAW[128:-2]
    raw = bytes([len(body) - 1]) + body[1:]
    assert raw[0] == 190
    assert frame_b(raw) == V6_RAW
    assert V6_RAW[126:128] == H("BEE3")


@pytest.mark.parametrize("n", [11, 50, 125, 126])
def test_frame_b_short_one_crc(n):
    raw = bytes([n - 1]) + bytes(range(1, n))
    out = frame_b(raw)
    assert len(out) == n + 2 and out[0] == n + 1
    assert out[-2:] == crc16_en13757(out[:-2]).to_bytes(2, "big")


@pytest.mark.parametrize("n", [127, 128, 200, 252])
def test_frame_b_two_crcs(n):
    raw = bytes([n - 1]) + bytes(i & 0xFF for i in range(1, n))
    out = frame_b(raw)
    assert len(out) == n + 4 and out[0] == n + 3
    assert out[126:128] == crc16_en13757(out[:126]).to_bytes(2, "big")
    assert out[-2:] == crc16_en13757(out[128:-2]).to_bytes(2, "big")


def test_frame_b_too_long():
    with pytest.raises(ValueError, match="frame B"):
        frame_b(bytes([252]) + bytes(252))


@pytest.mark.parametrize("n", [11, 12, 26, 27, 28, 100, 256])
def test_frame_a_block_layout(n):
    raw = bytes([n - 1]) + bytes(i & 0xFF for i in range(1, n))
    out = frame_a(raw)
    blocks = 1 + -(-(n - 10) // 16)
    assert len(out) == n + 2 * blocks
    assert out[10:12] == crc16_en13757(out[:10]).to_bytes(2, "big")
    assert strip_a(out) == raw


def test_with_crcs_checks_l():
    with pytest.raises(ValueError, match="L-field"):
        with_crcs(H("2F44") + bytes(20), "A")
    assert with_crcs(V1, "none") == V1


def test_telegram_too_long():
    meter = Meter("ELS", "12345678")
    many = [Value("energy", "Wh", str(i), data_type="int64", storage=i) for i in range(30)]
    with pytest.raises(ValueError, match="too long"):
        telegram(meter, many, 0)
    with pytest.raises(ValueError, match="15 blocks"):
        telegram(Meter("ELS", "12345678", key=K0F, mode=5), many, 0)


# ------------------------------------------------------------------ records: data types


@pytest.mark.parametrize("value,record", [
    # vector V6 (Engelmann SensoStar)
    (Value("datetime", None, "2025-12-08T10:58"), "046D3A2A283C"),
    (Value("energy", "Wh", "9341E3"), "04067D240000"),
    (Value("volume", "m3", "1348.631"), "041317941400"),
    (Value("error_flags", None, 0, data_type="uint8"), "01FD1700"),
    (Value("date", None, "2024-12-31", storage=1), "426C1F3C"),
    (Value("energy", "Wh", "2853E3", storage=1), "4406250B0000"),
    (Value("energy", "Wh", "1E3", storage=2), "84010601000000"),
    # V4 (Kamstrup): 32-bit litres, storage 1, min flow temperature 8-bit
    (Value("volume", "m3", "6.408"), "041308190000"),
    (Value("volume", "m3", "6.408", storage=1), "441308190000"),
    (Value("flow_temperature", "°C", "127", storage=1, function="minimum", data_type="int8"),
     "615B7F"),
    # V9 (Elf 2): BCD energy, subunit 1, tariffs 1 and 2
    (Value("energy", "Wh", "144E3", data_type="bcd8"), "0C0644010000"),
    (Value("energy", "Wh", "1E3", subunit=1, data_type="bcd8"), "8C400601000000"),
    (Value("volume", "m3", "0.002", tariff=1, data_type="bcd8"), "8C101302000000"),
    (Value("volume", "m3", "0.002", tariff=2, data_type="bcd8"), "8C201302000000"),
    # V7 (Sontex): 16-bit temperatures at 10^-2, function maximum
    (Value("flow_temperature", "°C", "27.09", data_type="int16"), "0259950A"),
    (Value("external_temperature", "°C", "26.22", data_type="int16"), "02653E0A"),
    (Value("flow_temperature", "°C", "33.73", function="maximum", data_type="int16"),
     "12592D0D"),
    # V11: 10^2 Wh; V12: 24-bit integer at 10^-2 m3, storage 1; V3: BCD HCA units
    (Value("energy", "Wh", "0E2"), "040500000000"),
    (Value("volume", "m3", "465.96", storage=1, data_type="int24"), "431404B600"),
    (Value("hca", None, 1234, data_type="bcd6"), "0B6E341200"),
    (Value("customer_location", None, "12345678"), "0CFD1078563412"),
    # Qundis: BCD litres, storage 1; the G dates of the design note
    (Value("volume", "m3", "14.004", data_type="bcd8"), "0C1304400100"),
    (Value("volume", "m3", "6.240", storage=1, data_type="bcd8"), "4C1340620000"),
    (Value("date", None, "2020-12-31", storage=1), "426C9F2C"),
    (Value("date", None, "2010-12-31"), "026C5F1C"),
    (Value("date", None, "2007-04-30", storage=1), "426CFE04"),
    # storage 3 (DIF bit + DIFE), other data types
    (Value("volume", "m3", "1", storage=3, data_type="int8"), "C1011601"),
    (Value("hca", None, "-123", data_type="bcd4"), "0A6E23F1"),
    (Value("volume", "m3", "1", data_type="real32"), "05160000803F"),
    (Value("volume", "m3", "-2.5", data_type="real32"), "05150000C8C1"),  # -25.0 x 10^-1
    (Value("energy", "Wh", "-1", data_type="int48"), "0603FFFFFFFFFFFF"),
    (Value("energy", "Wh", "258", data_type="int64"), "07030201000000000000"),
    (Value("energy", "Wh", "7", data_type="bcd2"), "090307"),
    (Value("energy", "Wh", "123456789012", data_type="bcd12"), "0E03129078563412"),
    (Value("fabrication_number", None, "12345678"), "0C7878563412"),
    (Value("error_flags", None, 0), "02FD170000"),
    (Value("error_flags", None, 0x1234, data_type="uint16"), "02FD173412"),
])
def test_records(value, record):
    assert encode_record(value) == H(record)


def test_storage_tariff_subunit_difes():
    assert encode_record(Value("volume", "m3", "1", storage=3, data_type="int8")) == H("C1011601")
    # storage 33 = 1 | 16<<1: DIFE 0 (bits 4..1 = 0), DIFE 1 (bits 8..5 = 1)
    assert encode_record(Value("volume", "m3", "1", storage=33, data_type="int8")) == H(
        "C1 80 01 16 01")
    # tariff 5 = 01 | 01<<2, subunit 2 = 0 | 1<<1
    assert encode_record(Value("volume", "m3", "1", tariff=5, subunit=2, data_type="int8")
                         ) == H("81 90 50 16 01")


def test_type_i_and_f_dates():
    # 2021-04-09 is a Friday (day of week 5); type I has seconds
    assert encode_record(Value("datetime", None, "2021-04-09T13:24:05")) == H("066D0518ADA92400")
    assert encode_record(Value("datetime", None, "2021-04-09T13:24:00", data_type="I")) == H(
        "066D0018ADA92400")
    # type F: minute, hundred-year 1 | hour, date (as in V1 and V6)
    assert encode_record(Value("datetime", None, "2008-05-31T23:50")) == H("046D32371F15")
    with pytest.raises(ValueError, match="type F has no seconds"):
        encode_record(Value("datetime", None, "2008-05-31T23:50:01", data_type="F"))
    with pytest.raises(ValueError, match="year"):
        encode_record(Value("date", None, "1999-12-31"))
    with pytest.raises(ValueError, match="no time"):
        encode_record(Value("date", None, "2020-01-01T10:00"))


def test_durations_pick_the_largest_unit():
    assert encode_record(Value("on_time", "h", "5")) == H("042205000000")
    assert encode_record(Value("on_time", "s", "18000")) == H("042205000000")
    assert encode_record(Value("operating_time", "s", "86400")) == H("042701000000")
    assert encode_record(Value("operating_time", "s", "61")) == H("04243D000000")
    assert encode_record(Value("operating_time", "min", "3")) == H("042503000000")
    with pytest.raises(ValueError, match="whole number of seconds"):
        encode_record(Value("on_time", "s", "1.5"))


@pytest.mark.parametrize("value,vif,mantissa", [
    ("28504.27", 0x14, 2850427),  # scale 2 -> 10^-2 m3
    ("4.480", 0x13, 4480),  # scale 3 -> litres (trailing zero kept)
    ("4.48", 0x14, 448),
    ("12", 0x16, 12),
    ("1.2E+2", 0x17, 12),  # exponent 1 -> 10 m3
    ("1E+3", 0x17, 100),  # exponent 3 > 1: moved to 10^1
    ("0.0000010", 0x10, 1),  # exponent -7 < -6: trailing zero dropped
])
def test_exponent_from_scale(value, vif, mantissa):
    rec = encode_record(Value("volume", "m3", value, data_type="int32"))
    assert rec[1] == vif
    assert int.from_bytes(rec[2:], "little", signed=True) == mantissa


def test_values_that_cannot_be_sent_exactly():
    with pytest.raises(ValueError, match="exactly"):
        encode_record(Value("energy", "Wh", "1.23456"))
    with pytest.raises(ValueError, match="exactly"):
        encode_record(Value("flow_temperature", "°C", "20.0005"))
    with pytest.raises(ValueError, match="exactly"):
        encode_record(Value("hca", None, "1.5"))
    with pytest.raises(ValueError, match="does not fit"):
        encode_record(Value("volume", "m3", "300", data_type="int8"))
    with pytest.raises(ValueError, match="does not fit"):
        encode_record(Value("volume", "m3", "10000", data_type="bcd4"))
    with pytest.raises(ValueError, match="does not fit"):
        encode_record(Value("volume", "m3", "-1000", data_type="bcd4"))
    with pytest.raises(ValueError, match="does not fit"):
        encode_record(Value("error_flags", None, -1, data_type="uint8"))
    with pytest.raises(ValueError, match="real32"):
        encode_record(Value("volume", "m3", str(1 << 24), data_type="real32"))
    with pytest.raises(ValueError, match="unknown quantity"):
        encode_record(Value("voltage", "V", "230"))
    with pytest.raises(ValueError, match="unknown data type"):
        encode_record(Value("volume", "m3", "1", data_type="int12"))
    with pytest.raises(ValueError, match="not an exact decimal"):
        encode_record(Value("volume", "m3", "1,5"))
    with pytest.raises(ValueError, match="function"):
        encode_record(Value("volume", "m3", "1", function="average"))
    with pytest.raises(ValueError, match="10 DIFEs"):
        encode_record(Value("volume", "m3", "1", storage=1 << 41))


def test_default_data_types():
    assert encode_record(Value("energy", "Wh", "1"))[0] == 0x04  # int32
    assert encode_record(Value("energy", "Wh", str(1 << 40)))[0] == 0x06  # int48
    assert encode_record(Value("flow_temperature", "°C", "21.5"))[0] == 0x02  # int16
    assert encode_record(Value("fabrication_number", None, "123456789"))[0] == 0x0E  # bcd12


def test_expected_records():
    assert Value("energy", "Wh", "9341E3").expected() == {
        "storage": 0, "tariff": 0, "subunit": 0, "function": "instantaneous",
        "quantity": "energy", "unit": "Wh", "value": "9341000"}
    assert Value("on_time", "h", "5", function="max").expected()["value"] == "18000"
    assert Value("on_time", "h", "5", function="max").expected()["function"] == "maximum"
    assert Value("datetime", None, "2008-05-31T23:50:00").expected()["value"] == "2008-05-31T23:50"
    assert Value("datetime", None, "2008-05-31T23:50:07").expected()["value"] == (
        "2008-05-31T23:50:07")
    assert Value("date", None, "2007-04-30").expected()["value"] == "2007-04-30"
    assert Value("flow_temperature", "degC", "-3.50").expected()["unit"] == "°C"
    assert Value("hca", None, 5).expected()["unit"] is None


# ------------------------------------------------------------------ record syntax (CLI)


@pytest.mark.parametrize("spec,record", [
    ("volume=28504.27m3,type=bcd8", "0C1427048502"),
    ("energy=9341kWh", "04067D240000"),
    ("energy=2853kWh,storage=1", "4406250B0000"),
    ("volume=6408l", "041308190000"),
    ("flow_temperature=127C,storage=1,function=min,type=int8", "615B7F"),
    ("volume=0.002m3,tariff=2,type=bcd8", "8C201302000000"),
    ("datetime=2008-05-31T23:50", "046D32371F15"),
    ("date=2007-04-30,storage=1", "426CFE04"),
    ("error_flags=0", "02FD170000"),
    ("on_time=5h", "042205000000"),
    ("hca=1234,type=bcd6", "0B6E341200"),
    ("external_temperature=26.22°C,type=int16", "02653E0A"),
    ("energy=1.5", "04020F000000"),  # Wh by default, 10^-1 Wh
])
def test_parse_record(spec, record):
    assert encode_record(parse_record(spec)) == H(record)


@pytest.mark.parametrize("spec", ["volume", "volume=abc", "volume=1qm", "volume=1,storage",
                                  "volume=1,colour=red", "on_time=5y", "energy=1.23456Wh"])
def test_parse_record_errors(spec):
    with pytest.raises(ValueError):
        parse_record(spec)


# ------------------------------------------------------------------ random meters


def test_random_meters_and_values_always_encode():
    rng = random.Random(3)
    seen = set()
    for _ in range(500):
        m = random_meter(rng)
        vals = random_values(rng)
        assert 1 <= len(vals) <= 10
        tg = telegram(m, vals, rng.randrange(256),
                      counter=rng.randrange(1 << 32) if m.mode == 7 else None)
        seen.add((m.mode, m.header, m.frame))
        for v in vals:
            seen.add(v.quantity)
            seen.add(v.data_type)
        assert tg[0] == len(tg) - 1 or m.frame != "none"
    # every mode / header / frame combination and every quantity and data type came up
    assert {(mo, h, f) for mo in (5, 7) for h in ("short", "long") for f in "AB"} <= seen
    assert {"date", "datetime", "on_time", "hca", "error_flags", "real32", "bcd12", "int64",
            "volume_flow", "temperature_difference"} <= seen


def test_random_is_reproducible():
    a, b = random.Random(9), random.Random(9)
    assert random_meter(a) == random_meter(b)
    assert random_values(a) == random_values(b)


# ------------------------------------------------------------------ CLI


def test_cli_v1(capsys):
    rc = omsgen.main(["--manufacturer", "ELS", "--id", "12345678", "--version", "0x33",
                      "--type", "gas", "--mode", "5", "--key", KEY_V1.hex(), "--access", "0x2A",
                      "--sync", "--frame", "none", "--records", "volume=28504.27m3,type=bcd8",
                      "datetime=2008-05-31T23:50", "error_flags=0"])
    assert rc == 0
    assert capsys.readouterr().out.strip() == V1.hex().upper()


def test_cli_count_steps_access_number_and_counter(capsys):
    rc = omsgen.main(["--mode", "7", "--key", K0F.hex(), "--counter", "100", "--access", "255",
                      "--count", "3", "--frame", "none", "--json", "--records", "volume=1m3"])
    assert rc == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["access_number"] for x in lines] == [255, 0, 1]
    assert [x["counter"] for x in lines] == [100, 101, 102]
    for x in lines:
        tg = H(x["telegram"])
        assert struct.unpack_from("<I", tg, 15)[0] == x["counter"]
        assert x["records"][0]["value"] == "1"


def test_cli_random_json(capsys):
    assert omsgen.main(["--count", "5", "--random", "1", "--json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) == 5
    for x in lines:
        assert (x["key"] is None) == (x["security_mode"] == 0)
        assert x["records"]


def test_cli_errors(capsys):
    assert omsgen.main(["--records", "energy=1.23456Wh"]) == 2
    assert "exactly" in capsys.readouterr().err
    assert omsgen.main(["--mode", "5"]) == 2
    assert "key" in capsys.readouterr().err
    assert omsgen.main([]) == 2
