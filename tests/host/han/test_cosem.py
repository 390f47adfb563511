"""How the compatible faces write stored values (smgw.han.cosem): OBIS as 12 hex, DLMS units,
exact conversion to the 0.1 Wh the clients expect, status words, times."""

from __future__ import annotations

import pytest

from smgw.han import cosem


@pytest.mark.parametrize("text, hexed", [
    ("1-0:1.8.0", "0100010800ff"), ("1-0:2.8.0*255", "0100020800ff"),
    ("1-0:1.8.1", "0100010801ff"), ("0100010800FF", "0100010800ff"),
    ("0-0:96.1.0*0", "0000600100" + "00"),
])
def test_obis_hex_and_back(text, hexed):
    assert cosem.obis_hex(text) == hexed
    assert cosem.obis_hex(cosem.obis_dotted(hexed)) == hexed


def test_obis_rejects_garbage():
    with pytest.raises(cosem.ObisError):
        cosem.obis_hex("1.8.0")


@pytest.mark.parametrize("raw, scaler, unit, out", [
    ("171165808", -1, "Wh", (171165808, -1, 30)),      # already 0.1 Wh
    (17116, 0, "Wh", (171160, -1, 30)),                # whole Wh
    (17116, 0, "kWh", (171160000, -1, 30)),            # kWh
    (12, 3, "Wh", (120000, -1, 30)),                   # scaler above
    (123456, -3, "Wh", (1234, -1, 30)),                # mWh: rounded down, never up
    (123459, -3, "Wh", (1234, -1, 30)),
    (5, -1, "varh", (5, -1, 32)),
    (-15, -2, "W", (-2, -1, 27)),                      # power: half to even
    (23015, -2, "V", (2302, -1, 35)),
    (42, 0, None, (42, 0, 255)),
])
def test_normalise_is_exact(raw, scaler, unit, out):
    assert cosem.normalise(raw, scaler, unit) == out


def test_normalise_big_registers_stay_exact():
    big = 2 ** 62 + 12345
    assert cosem.normalise(big, 0, "Wh") == (big * 10, -1, 30)


@pytest.mark.parametrize("raw, scaler, unit, out", [
    (33440514, -1, "Wh", ("3344.0514", "kWh")),
    (3344051, 0, "Wh", ("3344.0510", "kWh")),
    (123456789, -3, "Wh", ("123.4567", "kWh")),
    (2301, -1, "V", ("230.1", "V")),
    (7, 0, "W", ("7", "W")),
])
def test_kwh_text(raw, scaler, unit, out):
    assert cosem.kwh_text(raw, scaler, unit) == out


def test_status_words_lsb_first():
    assert cosem.status_hex(0x5, None) == ("a000000020000000", "20000000", "a0000000")
    cosem_st, meter, smgw = cosem.status_hex(0x205, 0x4)   # time invalid
    assert len(cosem_st) == 16 and len(meter) == 8 and len(smgw) == 8
    assert smgw != "a0000000"


def test_times():
    ms = cosem.parse_iso("2026-08-14T18:29:57Z")
    assert cosem.iso_z(ms) == "2026-08-14T18:29:57Z"
    assert cosem.parse_iso("2026-08-14T20:29:57+02:00") == ms
    assert cosem.parse_iso("2026-08-14T18:29:57") == ms          # no zone: UTC
    assert cosem.local_text(ms) == "2026-08-14 20:29:57"          # Europe/Berlin, summer
    with pytest.raises(ValueError):
        cosem.parse_iso("14.08.2026")


def test_register_names():
    assert cosem.register_name("1-0:1.8.0") == "Wirkarbeit Bezug"
    assert cosem.register_name("1-0:2.8.0") == "Wirkarbeit Lieferung"
    assert cosem.register_name("1-0:1.8.2") == "Wirkarbeit Bezug Tarifstufe 2"
    assert cosem.unit_code("kWh") == 30 and cosem.target_scaler("kWh") == -1
