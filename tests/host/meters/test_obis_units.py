"""OBIS codes (smgw.meters.obis) and DLMS unit codes (smgw.meters.units)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smgw.meters.obis import Obis, ObisError, format_obis, obis_name, parse_obis
from smgw.meters.units import UNITS, unit_code, unit_name, unit_symbol

# ------------------------------------------------------------------------------------- OBIS


@pytest.mark.parametrize("text,wire,canonical", [
    ("1-0:1.8.0", "0100010800ff", "1-0:1.8.0"),
    ("1-0:1.8.0*255", "0100010800ff", "1-0:1.8.0"),
    ("1-0:1.8.0&255", "0100010800ff", "1-0:1.8.0"),
    ("1-0:1.8.0.255", "0100010800ff", "1-0:1.8.0"),
    ("0100010800FF", "0100010800ff", "1-0:1.8.0"),
    ("1-0:96.50.1*1", "010060320101", "1-0:96.50.1*1"),
    ("1-0:0.2.0*0", "010000020000", "1-0:0.2.0*0"),
    ("129-129:199.130.3*255", "8181c78203ff", "129-129:199.130.3"),
    ("1-0:1.8.0*96", "010001080060", "1-0:1.8.0*96"),
    (" 1-0:16.7.0 ", "0100100700ff", "1-0:16.7.0"),
])
def test_parse_and_format(text, wire, canonical):
    o = parse_obis(text)
    assert o.to_bytes().hex() == wire
    assert str(o) == canonical == format_obis(bytes.fromhex(wire))
    assert parse_obis(bytes.fromhex(wire)) == o
    assert parse_obis(o) is o


def test_full_form():
    assert format_obis("1-0:1.8.0", full=True) == "1-0:1.8.0*255"
    assert parse_obis("1-0:96.50.1*1").full == "1-0:96.50.1*1"


@pytest.mark.parametrize("bad", ["", "1.8.0", "1-0:1.8", "1-0:1.8.0*256", "256-0:1.8.0",
                                 "1-0:1.8.0*", "a-b:c.d.e", "0100010800", "1-0:1.8.0*1*2"])
def test_parse_rejects(bad):
    with pytest.raises(ObisError):
        parse_obis(bad)


def test_parse_rejects_wrong_byte_count_and_types():
    with pytest.raises(ObisError, match="6 bytes"):
        parse_obis(b"\x01\x00\x01")
    with pytest.raises(ObisError):
        parse_obis(123)  # type: ignore[arg-type]
    assert issubclass(ObisError, ValueError)


@given(st.binary(min_size=6, max_size=6))
def test_round_trip_any_six_bytes(raw):
    o = Obis.from_bytes(raw)
    assert parse_obis(str(o)).to_bytes() == raw
    assert parse_obis(o.full) == o


def test_str_of_parse_matches_reading_obis():
    """The meter ingest compares str(parse_obis(profile entry)) with Reading.obis."""
    from smgw.meters.sml import _obis_text

    for raw in (bytes.fromhex("0100010800ff"), bytes.fromhex("010060320101"),
                bytes.fromhex("8181c78205ff")):
        assert str(parse_obis(raw)) == _obis_text(raw)


@pytest.mark.parametrize("code,name", [
    ("1-0:1.8.0", "active energy import (+A), total"),
    ("1-0:1.8.1", "active energy import (+A), tariff 1"),
    ("1-0:2.8.2", "active energy export (−A), tariff 2"),
    ("1-0:16.7.0", "active power (+A)−(−A), sum of phases, instantaneous"),
    ("1-0:36.7.0", "active power (+A)−(−A) L1, instantaneous"),
    ("1-0:21.7.0", "active power import (+A) L1, instantaneous"),
    ("1-0:32.7.0", "voltage L1, instantaneous"),
    ("1-0:71.7.0", "current L3, instantaneous"),
    ("1-0:14.7.0", "supply frequency, instantaneous"),
    ("1-0:81.7.1", "phase angle U(L2) to U(L1)"),
    ("1-0:81.7.26", "phase angle I(L3) to U(L3)"),
    ("1-0:1.8.0*98", "active energy import (+A), total, historic value *98"),
    ("1-0:96.1.0", "device identification (server id)"),
    ("1-0:0.0.9", "device identification (server id, older eHZ)"),
    ("1-0:96.50.1*1", "manufacturer FLAG id"),
    ("129-129:199.130.5", "meter public key"),
    ("1-0:0.2.0*0", "firmware version"),
    ("1-0:96.5.0", "status word"),
])
def test_names(code, name):
    assert obis_name(code) == name
    assert parse_obis(code).name == name


def test_unknown_names():
    assert obis_name("7-0:3.1.0") is None  # gas: no table
    assert obis_name("1-0:200.7.0") is None
    assert obis_name("not obis") is None


# ------------------------------------------------------------------------------------ units


@pytest.mark.parametrize("code,symbol", [
    (27, "W"), (28, "VA"), (29, "var"), (30, "Wh"), (31, "VAh"), (32, "varh"), (33, "A"),
    (35, "V"), (44, "Hz"), (8, "°"), (9, "°C"), (13, "m³"), (14, "m³"), (15, "m³/h"),
    (19, "l"), (25, "J"), (52, "K"), (56, "%"), (57, "Ah"), (1, "a"), (2, "mo"), (3, "wk"),
    (4, "d"), (5, "h"), (6, "min"), (7, "s"), (38, "Ω"), (72, "dB"), (255, ""),
])
def test_unit_symbols(code, symbol):
    assert unit_symbol(code) == symbol


def test_unit_table_covers_the_standard_ranges():
    assert set(range(1, 58)) <= set(UNITS)
    assert set(range(60, 68)) | {70, 71, 72, 253, 254, 255} <= set(UNITS)
    assert all(isinstance(s, str) and isinstance(n, str) and n for s, n in UNITS.values())


def test_unknown_and_absent_units():
    for code in (None, 0, 58, 59, 100, 252):
        assert unit_symbol(code) is None and unit_name(code) is None


def test_unit_names_and_reverse_lookup():
    assert unit_name(30) == "active energy: watt hour"
    assert unit_name(255) == "count (no unit)"
    assert unit_code("Wh") == 30 and unit_code("m³") == 13 and unit_code("W") == 27
    assert unit_code("furlong") is None and unit_code("") is None
