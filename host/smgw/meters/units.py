"""DLMS/COSEM unit codes (IEC 62056-62, the DLMS Blue Book unit enumeration) -> symbols.

SML list entries carry the unit as this one-byte code (``SML_ListEntry.unit``, Unsigned8), e.g.
30 = Wh, 27 = W, 35 = V. The table is data: ``UNITS[code] = (symbol, quantity)``. Codes that
the standard leaves unassigned (0, 58, 59, 68, 69, 73..252) are not in it; :func:`unit_symbol`
returns ``None`` for them and the decoder keeps the code.

Code 255 is "count": a number without a unit (counters, status values). Its symbol is the empty
string, so that "no unit field" (``None``) and "dimensionless" (``""``) stay distinct.
"""

from __future__ import annotations

# code: (symbol, quantity / unit name). Symbols use the Unicode characters the standard prints
# (superscripts, degree sign, Ohm); the names are ours.
UNITS: dict[int, tuple[str, str]] = {
    1: ("a", "time: year"),
    2: ("mo", "time: month"),
    3: ("wk", "time: week"),
    4: ("d", "time: day"),
    5: ("h", "time: hour"),
    6: ("min", "time: minute"),
    7: ("s", "time: second"),
    8: ("°", "phase angle: degree"),
    9: ("°C", "temperature: degree Celsius"),
    10: ("currency", "local currency"),
    11: ("m", "length: metre"),
    12: ("m/s", "speed: metre per second"),
    13: ("m³", "volume: cubic metre"),
    14: ("m³", "corrected volume: cubic metre"),
    15: ("m³/h", "volume flux: cubic metre per hour"),
    16: ("m³/h", "corrected volume flux: cubic metre per hour"),
    17: ("m³/d", "volume flux: cubic metre per day"),
    18: ("m³/d", "corrected volume flux: cubic metre per day"),
    19: ("l", "volume: litre"),
    20: ("kg", "mass: kilogram"),
    21: ("N", "force: newton"),
    22: ("Nm", "energy: newton metre"),
    23: ("Pa", "pressure: pascal"),
    24: ("bar", "pressure: bar"),
    25: ("J", "energy: joule"),
    26: ("J/h", "thermal power: joule per hour"),
    27: ("W", "active power: watt"),
    28: ("VA", "apparent power: volt-ampere"),
    29: ("var", "reactive power: var"),
    30: ("Wh", "active energy: watt hour"),
    31: ("VAh", "apparent energy: volt-ampere hour"),
    32: ("varh", "reactive energy: var hour"),
    33: ("A", "current: ampere"),
    34: ("C", "electrical charge: coulomb"),
    35: ("V", "voltage: volt"),
    36: ("V/m", "electric field strength: volt per metre"),
    37: ("F", "capacitance: farad"),
    38: ("Ω", "resistance: ohm"),
    39: ("Ωm²/m", "resistivity: ohm square metre per metre"),
    40: ("Wb", "magnetic flux: weber"),
    41: ("T", "magnetic flux density: tesla"),
    42: ("A/m", "magnetic field strength: ampere per metre"),
    43: ("H", "inductance: henry"),
    44: ("Hz", "frequency: hertz"),
    45: ("1/(Wh)", "active energy meter constant (pulses per watt hour)"),
    46: ("1/(varh)", "reactive energy meter constant (pulses per var hour)"),
    47: ("1/(VAh)", "apparent energy meter constant (pulses per volt-ampere hour)"),
    48: ("V²h", "volt-squared hour"),
    49: ("A²h", "ampere-squared hour"),
    50: ("kg/s", "mass flux: kilogram per second"),
    51: ("S", "conductance: siemens"),
    52: ("K", "temperature: kelvin"),
    53: ("1/(V²h)", "volt-squared hour meter constant"),
    54: ("1/(A²h)", "ampere-squared hour meter constant"),
    55: ("1/m³", "volume meter constant (pulses per cubic metre)"),
    56: ("%", "percentage"),
    57: ("Ah", "ampere hour"),
    60: ("Wh/m³", "energy per volume"),
    61: ("J/m³", "calorific value: joule per cubic metre"),
    62: ("Mol %", "molar fraction of gas composition"),
    63: ("g/m³", "mass density: gram per cubic metre"),
    64: ("Pa s", "dynamic viscosity: pascal second"),
    65: ("J/kg", "specific energy: joule per kilogram"),
    66: ("g/cm²", "pressure: gram per square centimetre"),
    67: ("atm", "pressure: atmosphere"),
    70: ("dBm", "signal strength: decibel milliwatt"),
    71: ("dBµV", "signal strength: decibel microvolt"),
    72: ("dB", "logarithmic unit: decibel"),
    253: ("", "reserved"),
    254: ("other", "other unit"),
    255: ("", "count (no unit)"),
}


def unit_symbol(code: int | None) -> str | None:
    """The symbol of DLMS unit ``code`` ("Wh" for 30); ``None`` for an absent or unknown code."""
    if code is None:
        return None
    entry = UNITS.get(code)
    return entry[0] if entry else None


def unit_name(code: int | None) -> str | None:
    """A readable description of DLMS unit ``code``; ``None`` for an absent or unknown code."""
    if code is None:
        return None
    entry = UNITS.get(code)
    return entry[1] if entry else None


def unit_code(symbol: str) -> int | None:
    """The first (lowest) code with this symbol: ``unit_code("Wh") == 30``, ``"m³"`` -> 13."""
    if not symbol:
        return None
    for code, (sym, _) in UNITS.items():
        if sym == symbol:
            return code
    return None
