"""OBIS codes (IEC 62056-61): the six bytes ``A B C D E F`` that name a meter value.

Text form used everywhere in the gateway (readings, meter profiles, the CLI)::

    A-B:C.D.E        when F = 255 ("current value"), e.g. 1-0:1.8.0
    A-B:C.D.E*F      otherwise,                     e.g. 1-0:96.50.1*1, 1-0:0.2.0*0

:func:`parse_obis` also accepts ``*255``, ``&F`` and ``.F`` for the last group and the 12-digit
hex of the wire bytes (``0100010800ff``); ``str(parse_obis(x))`` is always the form above, so it
compares equal to :attr:`smgw.meters.sml.Reading.obis`.

:func:`obis_name` describes a code: first an exact table (the codes German eHZ/mME/MSB meters
push, design note meter-protocols.md §4.6), then, for electricity (A = 1), a name built from the
value groups C (quantity), D (processing) and E (tariff / angle), so that 1-0:2.8.3 reads
"active energy export (−A), tariff 3" without a table row of its own.
"""

from __future__ import annotations

import re
from typing import NamedTuple


class ObisError(ValueError):
    """Text or bytes that are not an OBIS code (the caller's input, not a meter's)."""


class Obis(NamedTuple):
    a: int
    b: int
    c: int
    d: int
    e: int
    f: int = 255

    @classmethod
    def from_bytes(cls, raw: bytes) -> Obis:
        if len(raw) != 6:
            raise ObisError(f"an OBIS code has 6 bytes, got {len(raw)}: {bytes(raw).hex()}")
        return cls(*raw)

    def to_bytes(self) -> bytes:
        return bytes(self)

    def __str__(self) -> str:
        s = f"{self.a}-{self.b}:{self.c}.{self.d}.{self.e}"
        return s if self.f == 255 else f"{s}*{self.f}"

    @property
    def full(self) -> str:
        """Always with the F group: ``1-0:1.8.0*255``."""
        return f"{self.a}-{self.b}:{self.c}.{self.d}.{self.e}*{self.f}"

    @property
    def name(self) -> str | None:
        return obis_name(self)


_TEXT = re.compile(r"^(\d{1,3})-(\d{1,3}):(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:[*&.](\d{1,3}))?$")
_HEX = re.compile(r"^[0-9a-fA-F]{12}$")


def parse_obis(text: str | bytes | Obis) -> Obis:
    """``"1-0:1.8.0"``, ``"1-0:1.8.0*255"``, ``"0100010800ff"`` or 6 wire bytes -> Obis."""
    if isinstance(text, Obis):
        return text
    if isinstance(text, (bytes, bytearray, memoryview)):
        return Obis.from_bytes(bytes(text))
    if not isinstance(text, str):
        raise ObisError(f"an OBIS code is text or 6 bytes, not {type(text).__name__}")
    s = text.strip()
    if _HEX.match(s):
        return Obis.from_bytes(bytes.fromhex(s))
    m = _TEXT.match(s)
    if not m:
        raise ObisError(f"not an OBIS code: {text!r} (expected A-B:C.D.E or A-B:C.D.E*F, "
                        f"e.g. 1-0:1.8.0)")
    groups = [int(g) for g in m.groups(default="255")]
    if any(g > 255 for g in groups):
        raise ObisError(f"not an OBIS code: {text!r} (each group is 0..255)")
    return Obis(*groups)


def format_obis(code: bytes | str | Obis, *, full: bool = False) -> str:
    """Wire bytes (or any form :func:`parse_obis` takes) -> ``1-0:1.8.0`` (``full``: ``*255``)."""
    o = parse_obis(code)
    return o.full if full else str(o)


# ---------------------------------------------------------------------------------------- names
# Exact names: (A, B, C, D, E, F) -> text. F = None matches any F.

_EXACT: dict[tuple[int, int, int, int, int, int | None], str] = {
    (1, 0, 96, 1, 0, 255): "device identification (server id)",
    (1, 0, 0, 0, 9, 255): "device identification (server id, older eHZ)",
    (1, 0, 0, 0, 0, 255): "ownership / customer number",
    (1, 0, 96, 50, 1, 1): "manufacturer FLAG id",
    (1, 0, 96, 50, 1, None): "manufacturer-specific information",
    (1, 0, 96, 50, 4, None): "manufacturer-specific information (version)",
    (129, 129, 199, 130, 3, 255): "manufacturer id",
    (129, 129, 199, 130, 5, 255): "meter public key",
    (1, 0, 96, 5, 0, 255): "status word",
    (1, 0, 0, 2, 0, 0): "firmware version",
    (1, 0, 96, 90, 2, 1): "firmware checksum",
    (1, 0, 97, 97, 0, 0): "error register",
}

# C group for electricity: quantity. Energy/power wording is chosen by D below.
_C_ELECTRICITY: dict[int, str] = {
    1: "active {kind} import (+A)",
    2: "active {kind} export (−A)",
    3: "reactive {kind} import (+R)",
    4: "reactive {kind} export (−R)",
    5: "reactive {kind} QI",
    6: "reactive {kind} QII",
    7: "reactive {kind} QIII",
    8: "reactive {kind} QIV",
    9: "apparent {kind} import (+S)",
    10: "apparent {kind} export (−S)",
    11: "current, any phase",
    12: "voltage, any phase",
    13: "power factor",
    14: "supply frequency",
    15: "active {kind} |+A|+|−A|",
    16: "active {kind} (+A)−(−A), sum of phases",
    31: "current L1",
    51: "current L2",
    71: "current L3",
    91: "current neutral",
    32: "voltage L1",
    52: "voltage L2",
    72: "voltage L3",
    33: "power factor L1",
    53: "power factor L2",
    73: "power factor L3",
    34: "frequency L1",
    54: "frequency L2",
    74: "frequency L3",
    81: "phase angle",
}
# per-phase groups: 20 + n (L1), 40 + n (L2), 60 + n (L3) with n = 1..10 like C = 1..10,
# and n = 15/16 like C = 15/16
for _base, _phase in ((20, "L1"), (40, "L2"), (60, "L3")):
    for _n in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 16):
        _C_ELECTRICITY.setdefault(_base + _n, f"{_C_ELECTRICITY[_n]} {_phase}"
                                  .replace(", sum of phases", ""))

_D: dict[int, str] = {
    2: "cumulative maximum",
    3: "cumulative minimum",
    4: "current average",
    5: "last average",
    6: "maximum",
    7: "instantaneous",
    8: "register",
    9: "register (time integral 2)",
    29: "register (time integral 5)",
}

# C = 81, D = 7: E names the two phasors
_ANGLES: dict[int, str] = {
    1: "U(L2) to U(L1)", 2: "U(L3) to U(L1)", 4: "I(L1) to U(L1)", 15: "I(L2) to U(L2)",
    26: "I(L3) to U(L3)", 0: "U(L1) to U(L1)", 10: "U(L3) to U(L2)", 21: "U(L1) to U(L3)",
}


def obis_name(code: bytes | str | Obis) -> str | None:
    """A readable name for ``code``, or ``None`` if nothing is known about it."""
    try:
        o = parse_obis(code)
    except ObisError:
        return None
    exact = _EXACT.get(tuple(o)) or _EXACT.get((o.a, o.b, o.c, o.d, o.e, None))
    if exact:
        return exact
    if o.a != 1 or o.c not in _C_ELECTRICITY:
        return None
    quantity = _C_ELECTRICITY[o.c]
    kind = "energy" if o.d in (8, 9, 29) else "power"
    name = quantity.format(kind=kind)
    if o.c == 81 and o.d == 7:
        angle = _ANGLES.get(o.e)
        name = f"phase angle {angle}" if angle else f"phase angle (E={o.e})"
    elif o.d in (8, 9, 29):
        name += ", total" if o.e == 0 else f", tariff {o.e}"
    elif o.d in _D:
        name += f", {_D[o.d]}"
        if o.e:
            name += f" (E={o.e})"
    else:
        name += f" (D={o.d}, E={o.e})"
    if o.f != 255:
        name += f", historic value *{o.f}"
    return name
