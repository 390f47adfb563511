"""EN 13757-3 value information tables (smgw.wmbus.vif): every entry's quantity, unit and
exponent against the tables of design note meter-protocols.md §3.2 (restated here row by
row), and each one decoded end to end through smgw.wmbus.apl.decode_records."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest

from smgw.wmbus import vif as V
from smgw.wmbus.apl import decode_records

S, MIN, H, D = 1, 60, 3600, 86400

# (first code, number of codes, quantity, unit, exponent of the first code, scale)
# exponents step by one per code; for time codes the scale steps s/min/h/d instead
PRIMARY_ROWS = [
    (0x00, 8, "energy", "Wh", -3, 1),  # 10^(n-3) Wh
    (0x08, 8, "energy", "J", 0, 1),  # 10^n J
    (0x10, 8, "volume", "m3", -6, 1),  # 10^(n-6) m3
    (0x18, 8, "mass", "kg", -3, 1),  # 10^(n-3) kg
    (0x20, 4, "on_time", "s", None, None),
    (0x24, 4, "operating_time", "s", None, None),
    (0x28, 8, "power", "W", -3, 1),
    (0x30, 8, "power", "J/h", 0, 1),
    (0x38, 8, "volume_flow", "m3/h", -6, 1),
    (0x40, 8, "volume_flow", "m3/h", -7, 60),  # m3/min given per hour
    (0x48, 8, "volume_flow", "m3/h", -9, 3600),  # m3/s given per hour
    (0x50, 8, "mass_flow", "kg/h", -3, 1),
    (0x58, 4, "flow_temperature", "°C", -3, 1),
    (0x5C, 4, "return_temperature", "°C", -3, 1),
    (0x60, 4, "temperature_difference", "K", -3, 1),
    (0x64, 4, "external_temperature", "°C", -3, 1),
    (0x68, 4, "pressure", "bar", -3, 1),
    (0x6C, 1, "date", "", 0, 1),
    (0x6D, 1, "datetime", "", 0, 1),
    (0x6E, 1, "hca", "", 0, 1),
    (0x6F, 1, "reserved", "", 0, 1),
    (0x70, 4, "averaging_duration", "s", None, None),
    (0x74, 4, "actuality_duration", "s", None, None),
    (0x78, 1, "fabrication_number", "", 0, 1),
    (0x79, 1, "enhanced_identification", "", 0, 1),
    (0x7A, 1, "bus_address", "", 0, 1),
]

FB_ROWS = [
    (0x00, 2, "energy", "Wh", 5, 1),  # 10^(n-1) MWh
    (0x02, 2, "reactive_energy", "varh", 3, 1),  # 10^n kvarh
    (0x04, 2, "apparent_energy", "VAh", 3, 1),  # 10^n kVAh
    (0x08, 2, "energy", "J", 8, 1),  # 10^(n-1) GJ
    (0x0C, 4, "energy", "cal", 5, 1),  # 10^(nn-1) MCal
    (0x10, 2, "volume", "m3", 2, 1),  # 10^(n+2) m3
    (0x14, 4, "reactive_power", "var", 0, 1),  # 10^(nn-3) kvar
    (0x18, 2, "mass", "kg", 5, 1),  # 10^(n+2) t
    (0x1A, 2, "relative_humidity", "%", -1, 1),  # 10^(n-1) %
    (0x20, 1, "volume", "ft3", 0, 1),
    (0x21, 1, "volume", "ft3", -1, 1),
    (0x28, 2, "power", "W", 5, 1),  # 10^(n-1) MW
    (0x2A, 1, "phase_voltage_voltage", "°", -1, 1),
    (0x2B, 1, "phase_voltage_current", "°", -1, 1),
    (0x2C, 4, "frequency", "Hz", -3, 1),
    (0x30, 2, "power", "J/h", 8, 1),  # 10^(n-1) GJ/h
    (0x34, 4, "apparent_power", "VA", 0, 1),  # 10^(nn-3) kVA
    (0x58, 4, "flow_temperature", "°F", -3, 1),
    (0x5C, 4, "return_temperature", "°F", -3, 1),
    (0x60, 4, "temperature_difference", "°F", -3, 1),
    (0x64, 4, "external_temperature", "°F", -3, 1),
    (0x68, 1, "hca_rating_factor_k", "", 0, Fraction(1, 4096)),
    (0x69, 1, "hca_thermal_output_kq", "W", 0, 1),
    (0x6A, 1, "hca_coupling_factor_kc", "", 0, Fraction(1, 4096)),
    (0x6B, 1, "hca_coupling_factor_kcr", "", 0, Fraction(1, 4096)),
    (0x6C, 1, "hca_coupling_factor_kch", "", 0, Fraction(1, 4096)),
    (0x6D, 1, "hca_low_temperature_factor_kt", "", 0, Fraction(1, 4096)),
    (0x6E, 1, "hca_display_scaling_factor_kd", "", 0, Fraction(1, 4096)),
    (0x74, 4, "temperature_limit", "°C", -3, 1),
    (0x78, 8, "cumulative_max_power", "W", -3, 1),
]
FB_RESERVED = ({0x06, 0x07, 0x0A, 0x0B, 0x12, 0x13, *range(0x1C, 0x20), *range(0x22, 0x28),
                0x32, 0x33, *range(0x38, 0x58), 0x6F, *range(0x70, 0x74)})

FD_ROWS = [
    (0x00, 4, "credit", "currency", -3, 1),
    (0x04, 4, "debit", "currency", -3, 1),
    (0x24, 4, "storage_interval", "s", None, None),
    (0x28, 1, "storage_interval", "month", 0, 1),
    (0x29, 1, "storage_interval", "year", 0, 1),
    (0x2B, 1, "time_point_second", "s", 0, 1),
    (0x2C, 4, "duration_since_readout", "s", None, None),
    (0x31, 1, "tariff_duration", "s", 0, MIN),
    (0x32, 1, "tariff_duration", "s", 0, H),
    (0x33, 1, "tariff_duration", "s", 0, D),
    (0x34, 4, "tariff_period", "s", None, None),
    (0x38, 1, "tariff_period", "month", 0, 1),
    (0x39, 1, "tariff_period", "year", 0, 1),
    (0x3A, 1, "dimensionless", "", 0, 1),
    (0x3C, 4, "transmission_period", "s", None, None),
    (0x40, 16, "voltage", "V", -9, 1),  # 10^(nnnn-9) V
    (0x50, 16, "current", "A", -12, 1),  # 10^(nnnn-12) A
    (0x68, 1, "duration_since_cumulation", "s", 0, H),
    (0x69, 1, "duration_since_cumulation", "s", 0, D),
    (0x6A, 1, "duration_since_cumulation", "month", 0, 1),
    (0x6B, 1, "duration_since_cumulation", "year", 0, 1),
    (0x6C, 1, "battery_operating_time", "s", 0, H),
    (0x6D, 1, "battery_operating_time", "s", 0, D),
    (0x6E, 1, "battery_operating_time", "month", 0, 1),
    (0x6F, 1, "battery_operating_time", "year", 0, 1),
    (0x71, 1, "rf_level", "dBm", 0, 1),
    (0x74, 1, "remaining_battery_lifetime", "s", 0, D),
]
# the FD codes without unit or exponent: (code, quantity, kind)
FD_NAMED = [
    (0x08, "access_number", "count"), (0x09, "device_type", "id"),
    (0x0A, "manufacturer", "mfct_id"), (0x0B, "parameter_set_id", "id"),
    (0x0C, "model_version", "id"), (0x0D, "hardware_version", "id"),
    (0x0E, "firmware_version", "id"), (0x0F, "software_version", "id"),
    (0x10, "customer_location", "id"), (0x11, "customer", "id"),
    (0x12, "access_code_user", "id"), (0x13, "access_code_operator", "id"),
    (0x14, "access_code_system_operator", "id"), (0x15, "access_code_developer", "id"),
    (0x16, "password", "id"), (0x17, "error_flags", "bits"), (0x18, "error_mask", "bits"),
    (0x19, "security_key", "id"), (0x1A, "digital_output", "bits"),
    (0x1B, "digital_input", "bits"), (0x1C, "baud_rate", "count"),
    (0x1D, "response_delay", "count"), (0x1E, "retry", "count"),
    (0x1F, "remote_control", "bits"), (0x20, "first_storage_number", "count"),
    (0x21, "last_storage_number", "count"), (0x22, "storage_block_size", "count"),
    (0x23, "tariff_subunit_descriptor", "bits"), (0x2A, "operator_data", "id"),
    (0x30, "tariff_start", "datetime"), (0x3B, "wmbus_container", "container"),
    (0x60, "reset_counter", "count"), (0x61, "cumulation_counter", "count"),
    (0x62, "control_signal", "bits"), (0x63, "day_of_week", "count"),
    (0x64, "week_number", "count"), (0x65, "day_change_time", "datetime"),
    (0x66, "parameter_activation_state", "bits"), (0x67, "supplier_info", "id"),
    (0x70, "battery_change_datetime", "datetime"), (0x72, "dst_info", "bits"),
    (0x73, "listening_window", "container"), (0x75, "meter_stopped_count", "count"),
    (0x76, "manufacturer_container", "container"),
]

# the issue's unit list for the quantities it names (energy may also come in "cal" via FB)
ISSUE_UNITS = {"Wh", "J", "m3", "kg", "W", "J/h", "m3/h", "°C", "K", "bar", "s", ""}
ISSUE_QUANTITIES = {"energy", "volume", "mass", "power", "volume_flow", "flow_temperature",
                    "return_temperature", "temperature_difference", "external_temperature",
                    "hca", "date", "datetime", "error_flags", "fabrication_number",
                    "customer_location", "on_time", "operating_time"}


def _expand(rows):
    for code, count, quantity, unit, e0, scale in rows:
        for n in range(count):
            if e0 is None:  # s / min / h / d
                yield code + n, quantity, unit, 0, (S, MIN, H, D)[n]
            else:
                yield code + n, quantity, unit, e0 + n, scale


@pytest.mark.parametrize("table,rows", [(V.PRIMARY, PRIMARY_ROWS), (V.FB, FB_ROWS),
                                        (V.FD, FD_ROWS)], ids=["primary", "FB", "FD"])
def test_table_rows(table, rows):
    for code, quantity, unit, exponent, scale in _expand(rows):
        e = table[code]
        assert (e.quantity, e.unit, e.exponent, e.scale) == (quantity, unit, exponent,
                                                            Fraction(scale)), hex(code)


def test_primary_covers_every_code_but_the_decoder_s_own():
    assert set(V.PRIMARY) == set(range(0x7B))
    own = {V.VIF_FB, V.VIF_PLAIN_TEXT, V.VIF_FD, V.VIF_ANY, V.VIF_MANUFACTURER}
    assert own == set(range(0x7B, 0x80)) and V.VIF_THIRD_TABLE == 0xEF
    assert {c for c, *_ in _expand(PRIMARY_ROWS)} == set(range(0x7B))


def test_fb_fd_cover_all_codes():
    assert set(V.FB) == set(range(0x80))
    assert set(V.FD) == set(range(0x80)) - {0x7D}  # 0x7D: FD FD second level
    assert set(V.FD_FD) == set(range(0x80))
    listed = {c for c, *_ in _expand(FB_ROWS)}
    for c in range(0x80):
        assert (V.FB[c].quantity == "reserved") == (c in FB_RESERVED), hex(c)
        assert (c in listed) != (c in FB_RESERVED), hex(c)
    fd_listed = {c for c, *_ in _expand(FD_ROWS)} | {c for c, *_ in FD_NAMED}
    assert fd_listed == set(range(0x77)), sorted(set(range(0x77)) ^ fd_listed)
    for c in range(0x77, 0x80):
        if c != 0x7D:
            assert V.FD[c].quantity == "reserved"
    assert V.FD_FD[0x00].quantity == "selected_application"
    assert (V.FD_FD[0x02].unit, V.FD_FD[0x03].unit) == ("month", "year")


@pytest.mark.parametrize("code,quantity,kind", FD_NAMED)
def test_fd_named_entries(code, quantity, kind):
    e = V.FD[code]
    assert (e.quantity, e.kind, e.exponent) == (quantity, kind, 0)


def test_kinds_units_and_scales_are_consistent():
    kinds = {"number", "count", "id", "bits", "mfct_id", "date", "datetime", "container", "raw"}
    for table in (V.PRIMARY, V.FB, V.FD, V.FD_FD):
        for code, e in table.items():
            assert e.kind in kinds and re.fullmatch(r"[a-z][a-z0-9_]*", e.quantity), hex(code)
            den = e.scale.denominator
            while den % 2 == 0:
                den //= 2
            assert den == 1 and e.scale > 0  # exact in decimal
            if e.quantity in ISSUE_QUANTITIES and table is V.PRIMARY:
                assert e.unit in ISSUE_UNITS, (hex(code), e)
            if e.kind != "number":
                assert e.exponent == 0 and e.scale == 1, hex(code)
    assert {e.quantity for e in V.PRIMARY.values()} >= ISSUE_QUANTITIES - {"error_flags",
                                                                           "customer_location"}
    assert {V.FD[0x17].quantity, V.FD[0x10].quantity} == {"error_flags", "customer_location"}


NUMERIC = [(t, c, e) for t in (V.PRIMARY, V.FB, V.FD)
           for c, e in t.items() if e.kind == "number" and e.quantity != "reserved"]


@pytest.mark.parametrize("table,code,entry", NUMERIC,
                         ids=[f"{'P' if t is V.PRIMARY else 'FB' if t is V.FB else 'FD'}"
                              f"{c:02x}" for t, c, _ in NUMERIC])
def test_every_numeric_entry_decodes_end_to_end(table, code, entry):
    prefix = b"" if table is V.PRIMARY else (b"\xfb" if table is V.FB else b"\xfd")
    vif = bytes([code]) if not prefix else prefix + bytes([code])
    for raw in (1, 12345, -7):
        rec = decode_records(b"\x04" + vif + raw.to_bytes(4, "little", signed=True))[0]
        assert (rec.quantity, rec.unit, rec.exponent) == (entry.quantity, entry.unit,
                                                          entry.exponent)
        x = Fraction(raw) * entry.scale * Fraction(10) ** entry.exponent
        assert Fraction(rec.value) == x  # exact
        if entry.scale.denominator == 1 and entry.exponent < 0:
            assert len(rec.value.split(".")[1]) == -entry.exponent  # resolution kept
        if entry.exponent >= 0 and entry.scale.denominator == 1:
            assert "." not in rec.value


def test_examples_from_the_design_note():
    def value(hexstr: str) -> tuple[str, str, str | None]:
        r = decode_records(bytes.fromhex(hexstr))[0]
        return r.quantity, r.unit, r.value

    assert value("0403" + "01000000") == ("energy", "Wh", "1")  # 0x03 = Wh
    assert value("0406" + "01000000") == ("energy", "Wh", "1000")  # 0x06 = kWh
    assert value("0407" + "01000000") == ("energy", "Wh", "10000")  # 0x07 = 10 kWh
    assert value("040b" + "01000000") == ("energy", "J", "1000")  # kJ
    assert value("040e" + "01000000") == ("energy", "J", "1000000")  # MJ
    assert value("0413" + "01000000") == ("volume", "m3", "0.001")  # litre
    assert value("0416" + "01000000") == ("volume", "m3", "1")  # m3
    assert value("042b" + "01000000") == ("power", "W", "1")
    assert value("042e" + "01000000") == ("power", "W", "1000")  # kW
    assert value("043b" + "01000000") == ("volume_flow", "m3/h", "0.001")  # l/h
    assert value("0443" + "01000000") == ("volume_flow", "m3/h", "0.0060")  # 1e-4 m3/min
    assert value("044b" + "01000000") == ("volume_flow", "m3/h", "0.003600")  # 1e-6 m3/s
    assert value("0422" + "02000000") == ("on_time", "s", "7200")  # 2 h
    assert value("0427" + "02000000") == ("operating_time", "s", "172800")  # 2 d
    assert value("0421" + "02000000") == ("on_time", "s", "120")  # 2 min
    assert value("0259" + "950a") == ("flow_temperature", "°C", "27.09")
    assert value("0261" + "0500") == ("temperature_difference", "K", "0.05")
    assert value("026a" + "0500") == ("pressure", "bar", "0.5")
    assert value("02fb00" + "0100") == ("energy", "Wh", "100000")  # 0.1 MWh
    assert value("02fb09" + "0100") == ("energy", "J", "1000000000")  # 1 GJ
    assert value("02fb0d" + "0100") == ("energy", "cal", "1000000")  # 1 MCal
    assert value("02fb68" + "0010") == ("hca_rating_factor_k", "", "1")  # 4096 * 2^-12
    assert value("02fb68" + "0100") == ("hca_rating_factor_k", "", "0.000244140625")
    assert value("02fb1a" + "0100") == ("relative_humidity", "%", "0.1")
    assert value("02fd48" + "fe08") == ("voltage", "V", "230.2")  # 10^-1 V
    assert value("02fd59" + "fe08") == ("current", "A", "2.302")  # 10^-3 A
    assert value("02fd74" + "6d01") == ("remaining_battery_lifetime", "s", "31536000")


def test_combinable_table():
    C = V.COMBINABLE
    assert set(C) == set(range(0x80)) and set(V.COMBINABLE_EXT) == set(range(0x80))
    for code, name in V.RECORD_ERRORS.items():
        assert (C[code].effect, C[code].name) == ("error", name)
    assert V.RECORD_ERRORS[0x15] == "no_data_available" and C[0x00].effect == "flag"
    assert [C[0x20 + i].arg for i in range(8)] == ["s", "min", "h", "d", "week", "month",
                                                   "year", "revolution"]
    assert [C[c].exponent for c in range(0x70, 0x78)] == list(range(-6, 2))
    assert [C[c].exponent for c in range(0x78, 0x7C)] == [-3, -2, -1, 0]
    assert (C[0x7D].effect, C[0x7D].exponent) == ("exponent", 3)
    assert C[0x7C].effect == "extension" and C[0x7F].effect == "mfct"
    assert C[0x3B].name == "forward_flow" and C[0x3C].name == "backward_flow"
    for c in range(0x50, 0x68):
        assert C[c].effect == "duration" and C[c].scale == (S, MIN, H, D)[c & 3]
    dates = {0x39, 0x42, 0x43, 0x46, 0x47, 0x4A, 0x4B, 0x4E, 0x4F, 0x6A, 0x6B, 0x6E, 0x6F}
    assert {c for c, v in C.items() if v.effect == "date"} == dates
    assert {c for c, v in C.items() if v.effect == "profile"} == {0x13, 0x1E, 0x1F}
    assert {c for c, v in C.items() if v.effect == "count"} == {0x41, 0x49}
    assert [V.COMBINABLE_EXT[c].name for c in (1, 2, 3, 4)] == [
        "at_phase_l1", "at_phase_l2", "at_phase_l3", "at_neutral"]
    assert V.COMBINABLE_EXT[0x11].effect == "unsigned" and V.COMBINABLE_EXT[0x12].effect == "bits"
    names = [v.name for v in C.values()]
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", n) for n in names)
