"""EN 13757-3 value information tables, as data: the primary VIF table, the extension tables FB
and FD (and FD FD), the combinable (orthogonal) VIFE table and its extension (VIFE 0x7C), the
record error codes.

Facts: design note ``meter-protocols.md`` §3.2, checked against the EN 13757-3:2018 tables as
public decoders reproduce them (exmbus, wmbusmeters, libmbus); differences are noted in
``docs/wmbus-apl.md``. :mod:`smgw.wmbus.apl` does the decoding; nothing here reads bytes.

A :class:`Vif` says what a record's value is: ``value = raw * scale * 10**exponent`` in
``unit``. Units are base units without prefixes: the exponent carries the prefix (VIF 0x06,
"kWh", is ``Vif("energy", "Wh", 3)``; FB 0x00, "0.1 MWh", is ``Vif("energy", "Wh", 5)``), so
that a quantity keeps one unit whatever resolution the meter picks. Energy stays in the unit
the meter sends (Wh, J or cal). Durations in s, min, h or d are given in seconds (``scale``
60, 3600, 86400); months and years stay what they are. Volume flow per minute or per second
is given per hour (``scale`` 60 and 3600), the issue's unit list having only m3/h. All these
conversions are exact: ``scale`` is an integer or 1/2^k.

``kind`` tells the decoder how to read the data:

``number``    a measured value: signed integer (type B), BCD (type A), real, scaled
``count``     an unsigned integer or BCD, not scaled (counters, numbers of things)
``id``        an identifier: unsigned integer or BCD as a decimal string, LVAR text as text
``bits``      a bit field (type D, e.g. error flags): unsigned integer
``mfct_id``   a manufacturer code: 16-bit integer -> three letters (FD 0x0A)
``date``      a date, type G only (VIF 0x6C)
``datetime``  a point in time; the data field picks the type: G (2 bytes), J (3, time of day),
              F (4), I (6), M (LVAR, kept as bytes)
``container`` bytes kept as they are (FD 0x3B wM-Bus container, FD 0x76, FD 0x73)
``raw``       meaning unknown (reserved codes, "any VIF", manufacturer VIF): data decoded by its
              data field, not scaled
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

__all__ = [
    "COMBINABLE",
    "COMBINABLE_EXT",
    "FB",
    "FD",
    "FD_FD",
    "PRIMARY",
    "RECORD_ERRORS",
    "VIF_ANY",
    "VIF_FB",
    "VIF_FD",
    "VIF_MANUFACTURER",
    "VIF_PLAIN_TEXT",
    "VIF_THIRD_TABLE",
    "Vif",
    "Vife",
]


@dataclass(frozen=True, slots=True)
class Vif:
    """One VIF (or FB/FD table code): ``quantity`` name, base ``unit`` ("" = none), power of ten
    ``exponent`` and exact ``scale`` applied to the raw value, and how to read it (``kind``)."""

    quantity: str
    unit: str = ""
    exponent: int = 0
    kind: str = "number"
    scale: Fraction = Fraction(1)


@dataclass(frozen=True, slots=True)
class Vife:
    """One combinable VIFE. ``name`` goes into the record's qualifiers; ``effect`` says what it
    does to the value:

    ``flag``       nothing but the qualifier (forward flow, at phase L1, average value ...)
    ``error``      a record error code: the record gets ``error`` = ``name`` (code 0x00 "none"
                   has effect ``flag``)
    ``exponent``   multiplicative correction: ``exponent`` is added (0x70..0x77, 0x7D)
    ``offset``     additive correction constant 10^``exponent`` x unit of the VIF (0x78..0x7B)
    ``per``        the unit becomes ``unit/<arg>`` (per hour, per litre ...)
    ``times``      the unit becomes ``unit*<arg>`` (multiplied by s ...)
    ``duration``   the value is a duration (of a limit exceed ...): seconds, ``scale`` per nn
    ``date``       the value is a date/time (date of begin of last limit exceed ...)
    ``count``      the value is a number of events (number of limit exceeds): unscaled, no unit
    ``profile``    compact profile: the data is a profile, kept as bytes
    ``unsigned``   data presented as type C (unsigned)
    ``bits``       data presented as type D (bit field)
    ``extension``  VIFE 0x7C: the next VIFE is from :data:`COMBINABLE_EXT`
    ``mfct``       VIFE 0x7F: all following VIFEs are manufacturer specific
    """

    name: str
    effect: str = "flag"
    exponent: int = 0
    arg: str = ""
    scale: Fraction = Fraction(1)


# VIF codes (extension bit cleared) the decoder handles itself
VIF_FB = 0x7B  # next byte: table FB
VIF_PLAIN_TEXT = 0x7C  # unit as text after the VIFEs: length, ASCII last character first
VIF_FD = 0x7D  # next byte: table FD
VIF_ANY = 0x7E  # "any VIF" (readout selection, to a meter)
VIF_MANUFACTURER = 0x7F  # VIFEs and data are manufacturer specific
VIF_THIRD_TABLE = 0xEF  # whole byte: next byte from the reserved third extension table

_S, _MIN, _H, _D = Fraction(1), Fraction(60), Fraction(3600), Fraction(86400)
_TIME_SCALES = (_S, _MIN, _H, _D)  # nn = 00 s, 01 min, 10 h, 11 d
_RATING = Fraction(1, 4096)  # HCA rating factors: x 2^-12


def _exp(base: int, count: int, quantity: str, unit: str, e0: int, kind: str = "number"
         ) -> dict[int, Vif]:
    """``count`` codes from ``base``: exponent e0, e0+1, ... (the n/nn/nnn bits)."""
    return {base + n: Vif(quantity, unit, e0 + n, kind) for n in range(count)}


def _time(base: int, quantity: str, kind: str = "number") -> dict[int, Vif]:
    """Four codes from ``base``: nn = s, min, h, d, given in seconds."""
    return {base + n: Vif(quantity, "s", 0, kind, sc) for n, sc in enumerate(_TIME_SCALES)}


def _one(code: int, quantity: str, unit: str = "", exponent: int = 0, kind: str = "number",
         scale: Fraction = Fraction(1)) -> dict[int, Vif]:
    return {code: Vif(quantity, unit, exponent, kind, scale)}


# ------------------------------------------------------------------ primary VIF table (§3.2)
# codes 0x7B..0x7F are handled by the decoder (see VIF_*); 0x6F is reserved
PRIMARY: dict[int, Vif] = {
    **_exp(0x00, 8, "energy", "Wh", -3),  # E000 0nnn  10^(nnn-3) Wh
    **_exp(0x08, 8, "energy", "J", 0),  # E000 1nnn  10^nnn J
    **_exp(0x10, 8, "volume", "m3", -6),  # E001 0nnn  10^(nnn-6) m3
    **_exp(0x18, 8, "mass", "kg", -3),  # E001 1nnn  10^(nnn-3) kg
    **_time(0x20, "on_time"),  # E010 00nn
    **_time(0x24, "operating_time"),  # E010 01nn
    **_exp(0x28, 8, "power", "W", -3),  # E010 1nnn  10^(nnn-3) W
    **_exp(0x30, 8, "power", "J/h", 0),  # E011 0nnn  10^nnn J/h
    **_exp(0x38, 8, "volume_flow", "m3/h", -6),  # E011 1nnn  10^(nnn-6) m3/h
    # E100 0nnn 10^(nnn-7) m3/min and E100 1nnn 10^(nnn-9) m3/s, given per hour
    **{0x40 + n: Vif("volume_flow", "m3/h", n - 7, "number", _MIN) for n in range(8)},
    **{0x48 + n: Vif("volume_flow", "m3/h", n - 9, "number", _H) for n in range(8)},
    **_exp(0x50, 8, "mass_flow", "kg/h", -3),  # E101 0nnn  10^(nnn-3) kg/h
    **_exp(0x58, 4, "flow_temperature", "°C", -3),  # E101 10nn  10^(nn-3) °C
    **_exp(0x5C, 4, "return_temperature", "°C", -3),  # E101 11nn
    **_exp(0x60, 4, "temperature_difference", "K", -3),  # E110 00nn  10^(nn-3) K
    **_exp(0x64, 4, "external_temperature", "°C", -3),  # E110 01nn
    **_exp(0x68, 4, "pressure", "bar", -3),  # E110 10nn  10^(nn-3) bar
    **_one(0x6C, "date", kind="date"),  # type G
    **_one(0x6D, "datetime", kind="datetime"),  # type F / I / J / M by data field
    **_one(0x6E, "hca"),  # units for heat cost allocator, dimensionless
    **_one(0x6F, "reserved", kind="raw"),
    **_time(0x70, "averaging_duration"),  # E111 00nn
    **_time(0x74, "actuality_duration"),  # E111 01nn
    **_one(0x78, "fabrication_number", kind="id"),
    **_one(0x79, "enhanced_identification", kind="id"),
    **_one(0x7A, "bus_address", kind="id"),
}

# ------------------------------------------------------------------ table FB (VIF 0xFB)
_RESERVED = Vif("reserved", kind="raw")

FB: dict[int, Vif] = {
    **_exp(0x00, 2, "energy", "Wh", 5),  # 10^(n-1) MWh
    **_exp(0x02, 2, "reactive_energy", "varh", 3),  # 10^n kvarh
    **_exp(0x04, 2, "apparent_energy", "VAh", 3),  # 10^n kVAh
    **_exp(0x08, 2, "energy", "J", 8),  # 10^(n-1) GJ
    **_exp(0x0C, 4, "energy", "cal", 5),  # 10^(nn-1) MCal
    **_exp(0x10, 2, "volume", "m3", 2),  # 10^(n+2) m3
    **_exp(0x14, 4, "reactive_power", "var", 0),  # 10^(nn-3) kvar
    **_exp(0x18, 2, "mass", "kg", 5),  # 10^(n+2) t
    **_exp(0x1A, 2, "relative_humidity", "%", -1),  # 10^(n-1) %
    **_one(0x20, "volume", "ft3"),
    **_one(0x21, "volume", "ft3", -1),
    **_exp(0x28, 2, "power", "W", 5),  # 10^(n-1) MW
    **_one(0x2A, "phase_voltage_voltage", "°", -1),  # phase U-U, 0.1 degree
    **_one(0x2B, "phase_voltage_current", "°", -1),  # phase U-I, 0.1 degree
    **_exp(0x2C, 4, "frequency", "Hz", -3),  # 10^(nn-3) Hz
    **_exp(0x30, 2, "power", "J/h", 8),  # 10^(n-1) GJ/h
    **_exp(0x34, 4, "apparent_power", "VA", 0),  # 10^(nn-3) kVA
    # E101 10nn .. E110 01nn: the temperatures in °F (used until 2004, reserved since)
    **_exp(0x58, 4, "flow_temperature", "°F", -3),
    **_exp(0x5C, 4, "return_temperature", "°F", -3),
    **_exp(0x60, 4, "temperature_difference", "°F", -3),
    **_exp(0x64, 4, "external_temperature", "°F", -3),
    # heat cost allocator rating factors (EN 834), x 2^-12 except Kq
    **_one(0x68, "hca_rating_factor_k", scale=_RATING),
    **_one(0x69, "hca_thermal_output_kq", "W"),
    **_one(0x6A, "hca_coupling_factor_kc", scale=_RATING),
    **_one(0x6B, "hca_coupling_factor_kcr", scale=_RATING),
    **_one(0x6C, "hca_coupling_factor_kch", scale=_RATING),
    **_one(0x6D, "hca_low_temperature_factor_kt", scale=_RATING),
    **_one(0x6E, "hca_display_scaling_factor_kd", scale=_RATING),
    **_exp(0x74, 4, "temperature_limit", "°C", -3),  # cold/warm temperature limit
    **_exp(0x78, 8, "cumulative_max_power", "W", -3),  # 10^(nnn-3) W
}
for _c in range(0x80):
    FB.setdefault(_c, _RESERVED)

# ------------------------------------------------------------------ table FD (VIF 0xFD)
_MONTH, _YEAR = "month", "year"

FD: dict[int, Vif] = {
    **_exp(0x00, 4, "credit", "currency", -3),  # 10^(nn-3) local currency units
    **_exp(0x04, 4, "debit", "currency", -3),
    **_one(0x08, "access_number", kind="count"),  # unique message identification
    **_one(0x09, "device_type", kind="id"),
    **_one(0x0A, "manufacturer", kind="mfct_id"),
    **_one(0x0B, "parameter_set_id", kind="id"),
    **_one(0x0C, "model_version", kind="id"),
    **_one(0x0D, "hardware_version", kind="id"),
    **_one(0x0E, "firmware_version", kind="id"),
    **_one(0x0F, "software_version", kind="id"),
    **_one(0x10, "customer_location", kind="id"),
    **_one(0x11, "customer", kind="id"),
    **_one(0x12, "access_code_user", kind="id"),
    **_one(0x13, "access_code_operator", kind="id"),
    **_one(0x14, "access_code_system_operator", kind="id"),
    **_one(0x15, "access_code_developer", kind="id"),
    **_one(0x16, "password", kind="id"),
    **_one(0x17, "error_flags", kind="bits"),  # type D
    **_one(0x18, "error_mask", kind="bits"),
    **_one(0x19, "security_key", kind="id"),
    **_one(0x1A, "digital_output", kind="bits"),
    **_one(0x1B, "digital_input", kind="bits"),
    **_one(0x1C, "baud_rate", "Bd", kind="count"),
    **_one(0x1D, "response_delay", kind="count"),  # in bit times
    **_one(0x1E, "retry", kind="count"),
    **_one(0x1F, "remote_control", kind="bits"),
    **_one(0x20, "first_storage_number", kind="count"),  # for cyclic storage
    **_one(0x21, "last_storage_number", kind="count"),
    **_one(0x22, "storage_block_size", kind="count"),
    **_one(0x23, "tariff_subunit_descriptor", kind="bits"),
    **_time(0x24, "storage_interval"),
    **_one(0x28, "storage_interval", _MONTH),
    **_one(0x29, "storage_interval", _YEAR),
    **_one(0x2A, "operator_data", kind="id"),
    **_one(0x2B, "time_point_second", "s"),
    **_time(0x2C, "duration_since_readout"),
    **_one(0x30, "tariff_start", kind="datetime"),
    **{0x30 + n: Vif("tariff_duration", "s", 0, "number", _TIME_SCALES[n]) for n in (1, 2, 3)},
    **_time(0x34, "tariff_period"),
    **_one(0x38, "tariff_period", _MONTH),
    **_one(0x39, "tariff_period", _YEAR),
    **_one(0x3A, "dimensionless"),
    **_one(0x3B, "wmbus_container", kind="container"),
    **_time(0x3C, "transmission_period"),  # period of nominal data transmissions
    **_exp(0x40, 16, "voltage", "V", -9),  # E100 nnnn  10^(nnnn-9) V
    **_exp(0x50, 16, "current", "A", -12),  # E101 nnnn  10^(nnnn-12) A
    **_one(0x60, "reset_counter", kind="count"),
    **_one(0x61, "cumulation_counter", kind="count"),
    **_one(0x62, "control_signal", kind="bits"),
    **_one(0x63, "day_of_week", kind="count"),
    **_one(0x64, "week_number", kind="count"),
    **_one(0x65, "day_change_time", kind="datetime"),  # time point of day change
    **_one(0x66, "parameter_activation_state", kind="bits"),
    **_one(0x67, "supplier_info", kind="id"),  # special supplier information
    **_one(0x68, "duration_since_cumulation", "s", scale=_H),  # E110 10pp: h, d, month, year
    **_one(0x69, "duration_since_cumulation", "s", scale=_D),
    **_one(0x6A, "duration_since_cumulation", _MONTH),
    **_one(0x6B, "duration_since_cumulation", _YEAR),
    **_one(0x6C, "battery_operating_time", "s", scale=_H),  # E110 11pp: h, d, month, year
    **_one(0x6D, "battery_operating_time", "s", scale=_D),
    **_one(0x6E, "battery_operating_time", _MONTH),
    **_one(0x6F, "battery_operating_time", _YEAR),
    **_one(0x70, "battery_change_datetime", kind="datetime"),
    **_one(0x71, "rf_level", "dBm"),
    **_one(0x72, "dst_info", kind="bits"),  # type K
    **_one(0x73, "listening_window", kind="container"),  # type L
    **_one(0x74, "remaining_battery_lifetime", "s", scale=_D),  # in days
    **_one(0x75, "meter_stopped_count", kind="count"),
    **_one(0x76, "manufacturer_container", kind="container"),
}
# 0x7D is the second-level table (FD FD xx), handled by the decoder
for _c in range(0x80):
    if _c != 0x7D:
        FD.setdefault(_c, _RESERVED)

# FD FD xx (EN 13757-3:2018 second-level table of FD)
FD_FD: dict[int, Vif] = {
    **_one(0x00, "selected_application", kind="id"),  # currently selected application
    **_one(0x02, "remaining_battery_lifetime", _MONTH),
    **_one(0x03, "remaining_battery_lifetime", _YEAR),
}
for _c in range(0x80):
    FD_FD.setdefault(_c, _RESERVED)

# ------------------------------------------------------------------ record error codes
# VIFE E000 xxxx / E001 xxxx from a meter (EN 13757-3 "codes for record errors")
RECORD_ERRORS: dict[int, str] = {
    0x01: "too_many_difes",
    0x02: "storage_number_not_implemented",
    0x03: "unit_number_not_implemented",
    0x04: "tariff_number_not_implemented",
    0x05: "function_not_implemented",
    0x06: "data_class_not_implemented",
    0x07: "data_size_not_implemented",
    0x0B: "too_many_vifes",
    0x0C: "illegal_vif_group",
    0x0D: "illegal_vif_exponent",
    0x0E: "vif_dif_mismatch",
    0x0F: "unimplemented_action",
    0x15: "no_data_available",
    0x16: "data_overflow",
    0x17: "data_underflow",
    0x18: "data_error",
    0x1C: "premature_end_of_record",
}


# ------------------------------------------------------------------ combinable VIFEs
def _v(name: str, effect: str = "flag", exponent: int = 0, arg: str = "",
       scale: Fraction = Fraction(1)) -> Vife:
    return Vife(name, effect, exponent, arg, scale)


_PER = ("s", "min", "h", "d", "week", "month", "year", "revolution")
_PER_UNIT = (("litre", "l"), ("m3", "m3"), ("kg", "kg"), ("kelvin", "K"), ("kwh", "kWh"),
             ("gj", "GJ"), ("kw", "kW"), ("kelvin_litre", "(K*l)"), ("volt", "V"),
             ("ampere", "A"))
_FIRST_LAST = ("first", "last")
_LOWER_UPPER = ("lower", "upper")
_BEGIN_END = ("begin", "end")

COMBINABLE: dict[int, Vife] = {
    0x00: _v("no_error"),
    **{c: _v(n, "error") for c, n in RECORD_ERRORS.items()},
    0x12: _v("average"),
    0x13: _v("inverse_compact_profile", "profile"),
    0x14: _v("relative_deviation"),
    0x1D: _v("standard_conform_data"),
    0x1E: _v("compact_profile_with_registers", "profile"),
    0x1F: _v("compact_profile", "profile"),
    **{0x20 + i: _v(f"per_{p}", "per", arg=p) for i, p in enumerate(_PER)},
    0x28: _v("increment_per_input_pulse_0"),
    0x29: _v("increment_per_input_pulse_1"),
    0x2A: _v("increment_per_output_pulse_0"),
    0x2B: _v("increment_per_output_pulse_1"),
    **{0x2C + i: _v(f"per_{name}", "per", arg=u) for i, (name, u) in enumerate(_PER_UNIT)},
    0x36: _v("times_s", "times", arg="s"),
    0x37: _v("times_s_per_v", "times", arg="s/V"),
    0x38: _v("times_s_per_a", "times", arg="s/A"),
    0x39: _v("start_datetime", "date"),
    0x3A: _v("uncorrected"),
    0x3B: _v("forward_flow"),  # accumulation only if positive contributions
    0x3C: _v("backward_flow"),  # accumulation of abs value only if negative contributions
    0x3D: _v("non_metric"),
    0x3E: _v("at_base_conditions"),
    0x3F: _v("obis_declaration"),
    0x40: _v("lower_limit"),
    0x48: _v("upper_limit"),
    0x41: _v("lower_limit_exceeds", "count"),
    0x49: _v("upper_limit_exceeds", "count"),
    # E100 uf1b: date/time of begin/end of first/last lower/upper limit exceed
    **{0x42 | u << 3 | f << 2 | b: _v(f"{_LOWER_UPPER[u]}_limit_exceed_{_FIRST_LAST[f]}_"
                                      f"{_BEGIN_END[b]}_datetime", "date")
       for u in (0, 1) for f in (0, 1) for b in (0, 1)},
    # E101 ufnn: duration of limit exceed
    **{0x50 | u << 3 | f << 2 | nn: _v(f"{_LOWER_UPPER[u]}_limit_exceed_{_FIRST_LAST[f]}_"
                                       "duration", "duration", scale=_TIME_SCALES[nn])
       for u in (0, 1) for f in (0, 1) for nn in range(4)},
    # E110 0fnn: duration of first/last (the record's event)
    **{0x60 | f << 2 | nn: _v(f"{_FIRST_LAST[f]}_duration", "duration",
                              scale=_TIME_SCALES[nn])
       for f in (0, 1) for nn in range(4)},
    0x68: _v("during_lower_limit_exceed"),
    0x69: _v("leakage"),
    0x6C: _v("during_upper_limit_exceed"),
    0x6D: _v("overflow"),
    # E110 1f1b (f, b not both of 0x68/0x69/0x6C/0x6D): date/time of begin/end of first/last
    0x6A: _v("first_begin_datetime", "date"),
    0x6B: _v("first_end_datetime", "date"),
    0x6E: _v("last_begin_datetime", "date"),
    0x6F: _v("last_end_datetime", "date"),
    **{0x70 + n: _v("multiplicative_correction", "exponent", n - 6) for n in range(8)},
    **{0x78 + n: _v("additive_correction", "offset", n - 3) for n in range(4)},
    0x7C: _v("extension", "extension"),
    0x7D: _v("multiplicative_correction", "exponent", 3),
    0x7E: _v("future_value"),
    0x7F: _v("manufacturer_specific_vife", "mfct"),
}
for _c in range(0x80):
    COMBINABLE.setdefault(_c, Vife(f"vife_{_c:02x}"))

# VIFE 0x7C: the next VIFE is from this table (EN 13757-3:2018)
COMBINABLE_EXT: dict[int, Vife] = {
    0x01: _v("at_phase_l1"),
    0x02: _v("at_phase_l2"),
    0x03: _v("at_phase_l3"),
    0x04: _v("at_neutral"),
    0x05: _v("between_phases_l1_l2"),
    0x06: _v("between_phases_l2_l3"),
    0x07: _v("between_phases_l3_l1"),
    0x08: _v("at_quadrant_q1"),
    0x09: _v("at_quadrant_q2"),
    0x0A: _v("at_quadrant_q3"),
    0x0B: _v("at_quadrant_q4"),
    0x0C: _v("delta_import_export"),
    0x10: _v("accumulation_of_absolute_value"),
    0x11: _v("type_c", "unsigned"),
    0x12: _v("type_d", "bits"),
    0x14: _v("direction_to_meter"),
    0x15: _v("direction_from_meter"),
}
for _c in range(0x80):
    COMBINABLE_EXT.setdefault(_c, Vife(f"vife_7c_{_c:02x}"))

del _c
