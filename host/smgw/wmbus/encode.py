"""OMS / wireless M-Bus telegram generator: a :class:`Meter` description and a list of
:class:`Value` records in, telegram bytes out (starting with the L-field), built and encrypted
exactly as a meter would (design note ``meter-protocols.md`` §1-3).

    meter = Meter("ELS", "12345678", version=0x33, device_type=3, key=KEY, mode=5)
    values = [Value("volume", "m3", "28504.27", data_type="bcd8"),
              Value("datetime", None, "2008-05-31T23:50"),
              Value("error_flags", None, 0)]
    telegram(meter, values, access_number=0x2A, cfg_flags=CFG_SYNC)   # = vector V1 (frame A)

This module is the *other side* of the decoders in ``smgw.wmbus`` and shares no code with them
(its own CRC, address, DIF/VIF and crypto code), so a round trip through both catches a bug in
either. Everything here is a pure function of its arguments; randomness only comes from the
``random.Random`` handed to :func:`random_meter` / :func:`random_values`.

Layers, in telegram order:

* DLL ``L C M(2) ID(4) version type``; frame format A (a CRC after the 10-byte first block and
  after every 16 bytes), B (one CRC over the first 126 bytes, one over the rest; L counts the
  CRCs) or ``none`` (what a radio module delivers: L = number of bytes after L).
* optional raw ELL bytes (``ell=``, e.g. ``8C 00 75``), not interpreted.
* mode 7: AFL ``90 0F | FCL 2C00 | MCL 25 | MCR(4, LE) | MAC(8)``.
* TPL: short (CI 0x7A: ACC STS CFG), long (CI 0x72: ID M version type ACC STS CFG) or, in
  mode 0 only, none (CI 0x78). Mode 7 adds the CFG extension byte 0x10 (KDF-A, key id 0).
* APL: the records. Modes 5 and 7 encrypt ``2F 2F | records | 2F...`` (filled up to a multiple
  of 16 bytes) with AES-128-CBC; mode 5 with the IV ``M ID version type ACC x 8`` (the long
  header's address if there is one, else the DLL's), mode 7 with IV 0 and the KDF-A key from the
  message counter. ``clear_values`` go after the encrypted blocks, unencrypted (partial
  encryption, as in vector V3); the mode-7 MAC covers them too.

Record encoding (EN 13757-3, §3): DIF with function and storage bit 0, DIFEs only as many as the
storage number, tariff and subunit need; the VIF exponent follows the decimal's own scale
(``"28504.27"`` m3 -> VIF 0x14 = 10^-2 m3 with mantissa 2850427; ``"4.480"`` -> litres), moved
into the VIF's range when the value allows it exactly (``"9341E3"`` Wh -> kWh, mantissa 9341),
else ``ValueError``. Data types: signed integers ``int8`` .. ``int64`` (``uint*``: the same DIF,
unsigned range), BCD ``bcd2`` .. ``bcd12`` (negative: top nibble F), ``real32`` (integer
mantissa below 2^24, so the float is exact), dates ``G`` (date), ``F`` (date+time to the
minute) and ``I`` (to the second). Durations (``on_time``, ``operating_time``) are given in
seconds (or ``min``/``h``/``d``) and sent in the largest of s/min/h/d that divides them.
"""

from __future__ import annotations

import datetime as dt
import random
import re
import string
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Context, Decimal, InvalidOperation, localcontext

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

__all__ = [
    "CFG_SYNC",
    "DEVICE_TYPES",
    "FUNCTIONS",
    "QUANTITIES",
    "Meter",
    "Value",
    "afl_mac",
    "crc16_en13757",
    "encode_record",
    "encode_records",
    "frame_a",
    "frame_b",
    "id_bytes",
    "kdf_a",
    "manufacturer_bytes",
    "parse_record",
    "random_key",
    "random_meter",
    "random_value",
    "random_values",
    "secured_part",
    "telegram",
    "with_crcs",
]

# ------------------------------------------------------------------------ constants

CI_LONG = 0x72
CI_SHORT = 0x7A
CI_NONE = 0x78
CI_AFL = 0x90
CFG_SYNC = 0x2000  # CFG bit 13 "S": synchronous transmission (set in vector V1)
MCL_CMAC8 = 0x25  # AT = 5 (AES-CMAC-128, 8 bytes), MCMP: counter in the message
FCL_MCL_MCR_MAC = 0x2C00  # MCL, MCR and MAC present, single fragment
CFG_EXT_KDF_A = 0x10  # CFG extension: KDF-A, key id 0
FILLER = 0x2F

DEVICE_TYPES: dict[str, int] = {
    "other": 0x00, "oil": 0x01, "electricity": 0x02, "gas": 0x03, "heat": 0x04,
    "steam": 0x05, "warm_water": 0x06, "water": 0x07, "hca": 0x08,
    "compressed_air": 0x09, "cooling_outlet": 0x0A, "cooling_inlet": 0x0B,
    "heat_inlet": 0x0C, "heat_cooling": 0x0D, "bus": 0x0E, "unknown": 0x0F,
    "calorific_value": 0x14, "hot_water": 0x15, "cold_water": 0x16, "dual_water": 0x17,
    "pressure": 0x18, "ad_converter": 0x19, "smoke_detector": 0x1A, "room_sensor": 0x1B,
    "gas_detector": 0x1C, "breaker": 0x20, "valve": 0x21, "display": 0x25,
    "waste_water": 0x28, "garbage": 0x29, "communication_controller": 0x31,
    "repeater": 0x32, "radio_converter_system": 0x36, "radio_converter": 0x37,
    "wired_adapter": 0x38,
}

# DIF bits 5..4; several spellings accepted, the first one per code is the canonical name
FUNCTIONS: dict[str, int] = {
    "instantaneous": 0, "maximum": 1, "minimum": 2, "error": 3,
    "inst": 0, "max": 1, "min": 2, "value_during_error": 3, "during_error": 3,
    "error_state": 3,
}
FUNCTION_NAMES = {0: "instantaneous", 1: "maximum", 2: "minimum", 3: "error"}

# data type -> (DIF data field, length in bytes)
_INT_TYPES = {"int8": (0x1, 1), "int16": (0x2, 2), "int24": (0x3, 3), "int32": (0x4, 4),
              "int48": (0x6, 6), "int64": (0x7, 8)}
_UINT_TYPES = {"u" + k: v for k, v in _INT_TYPES.items()}
_BCD_TYPES = {"bcd2": (0x9, 1), "bcd4": (0xA, 2), "bcd6": (0xB, 3), "bcd8": (0xC, 4),
              "bcd12": (0xE, 6)}
_DATE_TYPES = {"G": (0x2, 2), "F": (0x4, 4), "I": (0x6, 6)}
DATA_TYPES = sorted([*_INT_TYPES, *_UINT_TYPES, *_BCD_TYPES, "real32", *_DATE_TYPES])


@dataclass(frozen=True)
class _Numeric:
    vif: bytes  # VIF bytes before the exponent code: b"" (primary) or b"\xfd"
    base: int  # VIF code for exponent emin
    emin: int
    emax: int
    default: tuple[str, ...]  # data types tried in order when none is given


_INT_DEFAULT = ("int32", "int48", "int64")
_SHORT_DEFAULT = ("int16", "int32", "int48", "int64")
_BCD_DEFAULT = ("bcd8", "bcd12")
_FLAGS_DEFAULT = ("uint16", "uint32", "uint48", "uint64")

# (quantity, unit) -> how it is coded. unit None = dimensionless / no unit.
QUANTITIES: dict[tuple[str, str | None], _Numeric] = {
    ("energy", "Wh"): _Numeric(b"", 0x00, -3, 4, _INT_DEFAULT),
    ("energy", "J"): _Numeric(b"", 0x08, 0, 7, _INT_DEFAULT),
    ("volume", "m3"): _Numeric(b"", 0x10, -6, 1, _INT_DEFAULT),
    ("mass", "kg"): _Numeric(b"", 0x18, -3, 4, _INT_DEFAULT),
    ("power", "W"): _Numeric(b"", 0x28, -3, 4, _INT_DEFAULT),
    ("power", "J/h"): _Numeric(b"", 0x30, 0, 7, _INT_DEFAULT),
    ("volume_flow", "m3/h"): _Numeric(b"", 0x38, -6, 1, _INT_DEFAULT),
    ("flow_temperature", "°C"): _Numeric(b"", 0x58, -3, 0, _SHORT_DEFAULT),
    ("return_temperature", "°C"): _Numeric(b"", 0x5C, -3, 0, _SHORT_DEFAULT),
    ("temperature_difference", "K"): _Numeric(b"", 0x60, -3, 0, _SHORT_DEFAULT),
    ("external_temperature", "°C"): _Numeric(b"", 0x64, -3, 0, _SHORT_DEFAULT),
    ("pressure", "bar"): _Numeric(b"", 0x68, -3, 0, _SHORT_DEFAULT),
    ("hca", None): _Numeric(b"", 0x6E, 0, 0, _INT_DEFAULT),
    ("fabrication_number", None): _Numeric(b"", 0x78, 0, 0, _BCD_DEFAULT),
    ("customer_location", None): _Numeric(b"\xfd", 0x10, 0, 0, _BCD_DEFAULT),
    ("error_flags", None): _Numeric(b"\xfd", 0x17, 0, 0, _FLAGS_DEFAULT),
}
# durations: VIF base, then s / min / h / d; values in seconds
DURATIONS: dict[str, int] = {"on_time": 0x20, "operating_time": 0x24}
DURATION_UNITS = {"s": 1, "min": 60, "h": 3600, "d": 86400}
# dates: quantity -> (VIF, default type, allowed types)
DATES: dict[str, tuple[int, str, tuple[str, ...]]] = {
    "date": (0x6C, "G", ("G",)),
    "datetime": (0x6D, "F", ("F", "I")),
}

_UNIT_ALIASES = {"m³": "m3", "m³/h": "m3/h", "degC": "°C", "C": "°C", "°c": "°C", "": None,
                 "none": None, "(none)": None}

_PREC = Context(prec=80)


def _unit(u: str | None) -> str | None:
    if u is None:
        return None
    return _UNIT_ALIASES.get(u, u)


# ------------------------------------------------------------------------ CRC, addresses


def _crc_table() -> list[int]:
    t = []
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x3D65) if c & 0x8000 else (c << 1)
        t.append(c & 0xFFFF)
    return t


_CRC_TABLE = _crc_table()


def crc16_en13757(data: bytes) -> int:
    """CRC-16 EN 13757: polynomial 0x3D65, init 0, not reflected, final XOR 0xFFFF
    (check value for b"123456789": 0xC2B7)."""
    c = 0
    t = _CRC_TABLE
    for b in data:
        c = ((c << 8) & 0xFFFF) ^ t[(c >> 8) ^ b]
    return c ^ 0xFFFF


def manufacturer_bytes(flag: str) -> bytes:
    """Three letters A-Z -> the M-field as sent (2 bytes, little-endian):
    ``"ELS"`` -> ``93 15``."""
    f = flag.upper()
    if len(f) != 3 or not all("A" <= c <= "Z" for c in f):
        raise ValueError(f"manufacturer must be three letters A-Z, got {flag!r}")
    v = (ord(f[0]) - 64) << 10 | (ord(f[1]) - 64) << 5 | (ord(f[2]) - 64)
    return v.to_bytes(2, "little")


def id_bytes(ident: str) -> bytes:
    """Eight decimal digits -> the identification number as sent (BCD, LSB first):
    ``"12345678"`` -> ``78 56 34 12``."""
    if len(ident) != 8 or not ident.isdigit() or not ident.isascii():
        raise ValueError(f"id must be 8 decimal digits, got {ident!r}")
    return bytes.fromhex(ident)[::-1]


# ------------------------------------------------------------------------ descriptions


@dataclass(frozen=True)
class Meter:
    """What a meter is: address (``manufacturer`` letters, ``id`` 8 digits, ``version``,
    ``device_type``), its security (``mode`` 0, 5 or 7 with the 16-byte ``key``), its transport
    header (``"short"``, ``"long"``, or ``"none"`` in mode 0) and the frame format its radio
    sends (``"A"``, ``"B"`` or ``"none"`` = without DLL CRCs, as a radio module delivers it)."""

    manufacturer: str
    id: str
    version: int = 0
    device_type: int = 0x07
    key: bytes | None = None
    mode: int = 0
    header: str = "short"
    frame: str = "A"

    def __post_init__(self) -> None:
        manufacturer_bytes(self.manufacturer)
        id_bytes(self.id)
        for name in ("version", "device_type"):
            v = getattr(self, name)
            if not isinstance(v, int) or not 0 <= v <= 255:
                raise ValueError(f"{name} must be 0..255, got {v!r}")
        if self.mode not in (0, 5, 7):
            raise ValueError(f"security mode must be 0, 5 or 7, got {self.mode!r}")
        if self.mode and (not isinstance(self.key, bytes | bytearray) or len(self.key) != 16):
            raise ValueError(f"mode {self.mode} needs a 16-byte key")
        if self.header not in ("short", "long", "none"):
            raise ValueError(f"header must be short, long or none, got {self.header!r}")
        if self.header == "none" and self.mode:
            raise ValueError("a telegram without transport header cannot be encrypted")
        if self.frame not in ("A", "B", "none"):
            raise ValueError(f"frame must be A, B or none, got {self.frame!r}")

    @property
    def address(self) -> bytes:
        """M(2) ID(4) version type, as in the DLL (and the mode-5 IV)."""
        return (manufacturer_bytes(self.manufacturer) + id_bytes(self.id)
                + bytes([self.version, self.device_type]))

    @property
    def tpl_address(self) -> bytes:
        """ID(4) M(2) version type, as in a long transport header."""
        return (id_bytes(self.id) + manufacturer_bytes(self.manufacturer)
                + bytes([self.version, self.device_type]))


@dataclass(frozen=True)
class Value:
    """One data record: ``quantity`` and ``unit`` (see :data:`QUANTITIES`, :data:`DURATIONS`,
    :data:`DATES`), ``value`` as an exact decimal (``str``, ``int`` or ``Decimal``; dates ISO
    8601 or ``datetime.date``/``datetime``), the DIF/DIFE fields and an optional data type
    (default: per quantity, see :data:`QUANTITIES`)."""

    quantity: str
    unit: str | None
    value: str | int | Decimal | dt.date
    storage: int = 0
    tariff: int = 0
    subunit: int = 0
    function: str = "instantaneous"
    data_type: str | None = None

    def expected(self) -> dict[str, object]:
        """The record as a correct decoder reports it (``smgw decode wmbus`` JSON): numbers as
        exact plain decimal strings in the quantity's base unit (durations in s), dates ISO
        8601 (``YYYY-MM-DD``, ``YYYY-MM-DDTHH:MM`` or ``...:SS``), unit None when there is none.
        """
        q = self.quantity
        if q in DATES:
            d = _as_datetime(self.value, q)
            text = (d.date().isoformat() if q == "date"
                    else d.strftime("%Y-%m-%dT%H:%M:%S" if d.second else "%Y-%m-%dT%H:%M"))
            unit = None
        elif q in DURATIONS:
            text = _plain(_duration_seconds(self))
            unit = "s"
        else:
            text = _plain(_decimal(self.value))
            unit = _unit(self.unit)
        return {"storage": self.storage, "tariff": self.tariff, "subunit": self.subunit,
                "function": FUNCTION_NAMES[_function(self.function)], "quantity": q,
                "unit": unit, "value": text}


def _plain(d: Decimal | int) -> str:
    """Exact decimal without exponent notation: 9341E3 -> "9341000", 4.480 -> "4.480"."""
    return format(Decimal(d), "f")


def _decimal(v: object) -> Decimal:
    if isinstance(v, bool):
        raise ValueError(f"not a number: {v!r}")
    if isinstance(v, int | Decimal):
        d = Decimal(v)
    elif isinstance(v, str):
        try:
            d = Decimal(v.strip())
        except InvalidOperation:
            raise ValueError(f"not an exact decimal: {v!r}") from None
    else:
        raise ValueError(f"value must be a decimal string, int or Decimal, got {v!r}")
    if not d.is_finite():
        raise ValueError(f"not a finite number: {v!r}")
    return d


def _function(name: str) -> int:
    try:
        return FUNCTIONS[name]
    except KeyError:
        raise ValueError(f"unknown function {name!r}: use one of "
                         f"{', '.join(FUNCTION_NAMES.values())}") from None


# ------------------------------------------------------------------------ records


def _dif(data_field: int, v: Value) -> bytes:
    fn = _function(v.function)
    for name in ("storage", "tariff", "subunit"):
        x = getattr(v, name)
        if not isinstance(x, int) or x < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {x!r}")
    if v.storage >= 1 << 41 or v.tariff >= 1 << 20 or v.subunit >= 1 << 10:
        raise ValueError("storage/tariff/subunit too large for 10 DIFEs "
                         f"({v.storage}/{v.tariff}/{v.subunit})")
    out = [data_field | fn << 4 | (v.storage & 1) << 6]
    st, ta, su = v.storage >> 1, v.tariff, v.subunit
    while st or ta or su:
        out[-1] |= 0x80
        out.append((st & 0x0F) | (ta & 3) << 4 | (su & 1) << 6)
        st, ta, su = st >> 4, ta >> 2, su >> 1
    return bytes(out)


def _mantissa(d: Decimal, emin: int, emax: int, what: str) -> tuple[int, int]:
    """(m, e) with m * 10^e == d exactly, e in [emin, emax], e = d's own exponent when
    possible."""
    with localcontext(_PREC):
        e = d.as_tuple().exponent
        assert isinstance(e, int)
        if e > emax:
            e = emax
        elif e < emin:
            e = emin
        m = d.scaleb(-e)
        if m != m.to_integral_value():
            raise ValueError(f"{what}: {d} cannot be sent exactly with an exponent in "
                             f"10^{emin}..10^{emax}")
        return int(m), e


def _int_bytes(m: int, dtype: str) -> tuple[int, bytes]:
    if dtype in _INT_TYPES:
        df, n = _INT_TYPES[dtype]
        if not -(1 << (8 * n - 1)) <= m < 1 << (8 * n - 1):
            raise ValueError(f"{m} does not fit {dtype}")
        return df, m.to_bytes(n, "little", signed=True)
    if dtype in _UINT_TYPES:
        df, n = _UINT_TYPES[dtype]
        if not 0 <= m < 1 << (8 * n):
            raise ValueError(f"{m} does not fit {dtype}")
        return df, m.to_bytes(n, "little")
    if dtype in _BCD_TYPES:
        df, n = _BCD_TYPES[dtype]
        digits = 2 * n
        if 0 <= m < 10**digits:
            s = f"{m:0{digits}d}"
        elif -(10 ** (digits - 1)) < m < 0:
            s = "F" + f"{-m:0{digits - 1}d}"
        else:
            raise ValueError(f"{m} does not fit {dtype}")
        return df, bytes.fromhex(s)[::-1]
    if dtype == "real32":
        if not -(1 << 24) < m < 1 << 24:
            raise ValueError(f"{m} is not exact as real32 (mantissa must be below 2^24)")
        return 0x5, struct.pack("<f", float(m))
    raise ValueError(f"unknown data type {dtype!r} for a number: use one of "
                     f"{', '.join(t for t in DATA_TYPES if t not in _DATE_TYPES)}")


def _fits(m: int, dtype: str) -> bool:
    try:
        _int_bytes(m, dtype)
    except ValueError:
        return False
    return True


def _as_datetime(v: object, quantity: str) -> dt.datetime:
    if isinstance(v, dt.datetime):
        d = v
    elif isinstance(v, dt.date):
        d = dt.datetime(v.year, v.month, v.day)
    elif isinstance(v, str):
        try:
            d = dt.datetime.fromisoformat(v.strip())
        except ValueError:
            raise ValueError(f"{quantity}: not an ISO 8601 date/time: {v!r}") from None
    else:
        raise ValueError(f"{quantity}: not a date: {v!r}")
    if d.tzinfo is not None or d.microsecond:
        raise ValueError(f"{quantity}: local time without fractions of a second, got {v!r}")
    if quantity == "date" and (d.hour or d.minute or d.second):
        raise ValueError(f"date: no time of day allowed, got {v!r} (use datetime)")
    if not 2000 <= d.year <= 2099:
        raise ValueError(f"{quantity}: year must be 2000..2099, got {d.year}")
    return d


def _date_g(d: dt.datetime) -> bytes:
    y = d.year - 2000
    return bytes([(y & 7) << 5 | d.day, (y >> 3) << 4 | d.month])


def _date_f(d: dt.datetime) -> bytes:
    # hundred-year bits (b6..5 of byte 1) = 1 for 20xx, as real meters send (V1, V6)
    return bytes([d.minute, 1 << 5 | d.hour]) + _date_g(d)


def _date_i(d: dt.datetime) -> bytes:
    # second | minute | day of week (1 = Monday) << 5, hour | date as type G | week 0
    return bytes([d.second, d.minute, d.isoweekday() << 5 | d.hour]) + _date_g(d) + b"\x00"


def _duration_seconds(v: Value) -> int:
    unit = v.unit if v.unit is not None else "s"
    if unit not in DURATION_UNITS:
        raise ValueError(f"{v.quantity}: unit must be s, min, h or d, got {v.unit!r}")
    d = _decimal(v.value) * DURATION_UNITS[unit]
    if d != d.to_integral_value():
        raise ValueError(f"{v.quantity}: {v.value} {unit} is not a whole number of seconds")
    return int(d)


def encode_record(v: Value) -> bytes:
    """One data record ``DIF [DIFE...] VIF [VIFE] data`` for ``v``; ``ValueError`` when the
    value cannot be sent exactly."""
    q = v.quantity
    if q in DATES:
        vif, default, allowed = DATES[q]
        dtype = v.data_type or default
        d = _as_datetime(v.value, q)
        if v.data_type is None and q == "datetime" and d.second:
            dtype = "I"
        if dtype not in allowed:
            raise ValueError(f"{q}: data type must be one of {', '.join(allowed)}, got {dtype!r}")
        if dtype == "F" and d.second:
            raise ValueError(f"{q}: type F has no seconds ({v.value!r}); use type I")
        data = {"G": _date_g, "F": _date_f, "I": _date_i}[dtype](d)
        return _dif(_DATE_TYPES[dtype][0], v) + bytes([vif]) + data
    if q in DURATIONS:
        secs = _duration_seconds(v)
        for k, unit in reversed(list(enumerate(DURATION_UNITS))):
            if secs % DURATION_UNITS[unit] == 0:
                break
        m = secs // DURATION_UNITS[unit]
        vif_b = bytes([DURATIONS[q] + k])
        df, data = _int_bytes(m, _choose_type(m, v.data_type, _INT_DEFAULT, q))
        return _dif(df, v) + vif_b + data
    unit = _unit(v.unit)
    spec = QUANTITIES.get((q, unit))
    if spec is None:
        known = sorted({f"{a} [{b or 'no unit'}]" for a, b in QUANTITIES}
                       | {f"{a} [s]" for a in DURATIONS} | set(DATES))
        raise ValueError(f"unknown quantity/unit {q!r} {v.unit!r}; known: {', '.join(known)}")
    m, e = _mantissa(_decimal(v.value), spec.emin, spec.emax, q)
    df, data = _int_bytes(m, _choose_type(m, v.data_type, spec.default, q))
    return _dif(df, v) + spec.vif + bytes([spec.base + e - spec.emin]) + data


def _choose_type(m: int, given: str | None, default: tuple[str, ...], what: str) -> str:
    if given is not None:
        if given in _DATE_TYPES:
            raise ValueError(f"{what}: data type {given} is for dates")
        return given
    for t in default:
        if _fits(m, t):
            return t
    raise ValueError(f"{what}: {m} does not fit any of {', '.join(default)}")


def encode_records(values: Iterable[Value]) -> bytes:
    """The data records of ``values``, concatenated (no 2F2F marker, no filler)."""
    return b"".join(encode_record(v) for v in values)


# ------------------------------------------------------------------------ security


def _aes_cbc(key: bytes, iv: bytes, data: bytes) -> bytes:
    enc = Cipher(algorithms.AES(bytes(key)), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def _cmac(key: bytes, data: bytes) -> bytes:
    c = CMAC(algorithms.AES(bytes(key)))
    c.update(data)
    return c.finalize()


def kdf_a(key: bytes, counter: int, meter_id: bytes, dc: int = 0x00) -> bytes:
    """KDF-A (EN 13757-7): ``CMAC(key, DC | MCR(4, LE) | ID(4, as sent) | 07 x 7)``.
    ``dc`` 0x00 = Kenc, 0x01 = Kmac (meter -> partner)."""
    if not 0 <= counter <= 0xFFFFFFFF:
        raise ValueError(f"message counter must be 0..2^32-1, got {counter}")
    if len(meter_id) != 4:
        raise ValueError("meter id must be 4 bytes as sent")
    return _cmac(key, bytes([dc]) + counter.to_bytes(4, "little") + bytes(meter_id) + b"\x07" * 7)


def afl_mac(kmac: bytes, mcl: int, counter: int, tpl: bytes, length: int = 8) -> bytes:
    """The AFL MAC: ``CMAC(Kmac, MCL | MCR(4, LE) | TPL CI .. end)`` truncated to ``length``."""
    return _cmac(kmac, bytes([mcl]) + counter.to_bytes(4, "little") + bytes(tpl))[:length]


def _padded(records: bytes) -> bytes:
    plain = b"\x2f\x2f" + records
    return plain + bytes([FILLER]) * (-len(plain) % 16)


def secured_part(
    meter: Meter,
    values: Sequence[Value],
    access_number: int,
    *,
    counter: int | None = None,
    status: int = 0,
    cfg_flags: int = 0,
    clear_values: Sequence[Value] = (),
) -> bytes:
    """Everything after the DLL (and ELL): ``[AFL] CI TPL-header APL``, encrypted per
    ``meter.mode``. ``cfg_flags`` are ORed into the configuration word (e.g. :data:`CFG_SYNC`;
    mode and block count are set here); ``status`` is the TPL status byte."""
    if not 0 <= access_number <= 255:
        raise ValueError(f"access number must be 0..255, got {access_number}")
    if not 0 <= status <= 255:
        raise ValueError(f"status must be 0..255, got {status}")
    if not 0 <= cfg_flags <= 0xFFFF or cfg_flags & 0x1FF0:
        raise ValueError(f"cfg_flags {cfg_flags:#x} must not touch the mode or block bits")
    records = encode_records(values)
    clear = encode_records(clear_values)
    if meter.header == "none":
        if counter is not None:
            raise ValueError("a message counter needs mode 7")
        return bytes([CI_NONE]) + records + clear
    if meter.header == "long":
        ci, addr = CI_LONG, meter.tpl_address
    else:
        ci, addr = CI_SHORT, b""
    head = bytes([ci]) + addr + bytes([access_number, status])
    if meter.mode == 0:
        if counter is not None:
            raise ValueError("a message counter needs mode 7")
        return head + cfg_flags.to_bytes(2, "little") + records + clear
    assert meter.key is not None
    plain = _padded(records)
    blocks = len(plain) // 16
    if blocks > 15:
        raise ValueError(f"{len(plain)} bytes to encrypt: more than 15 blocks")
    cfg = (cfg_flags | meter.mode << 8 | blocks << 4).to_bytes(2, "little")
    if meter.mode == 5:
        # the meter's own address: the DLL's with a short header, the long header's
        # otherwise (behind a radio converter the DLL carries the converter's)
        iv = meter.address + bytes([access_number]) * 8
        return head + cfg + _aes_cbc(meter.key, iv, plain) + clear
    # mode 7: KDF-A from the message counter, CBC with IV 0, AFL with the CMAC
    if counter is None:
        raise ValueError("mode 7 needs the message counter (counter=)")
    ident = id_bytes(meter.id)
    kenc = kdf_a(meter.key, counter, ident, 0x00)
    kmac = kdf_a(meter.key, counter, ident, 0x01)
    tpl = head + cfg + bytes([CFG_EXT_KDF_A]) + _aes_cbc(kenc, bytes(16), plain) + clear
    mac = afl_mac(kmac, MCL_CMAC8, counter, tpl)
    afl_body = (FCL_MCL_MCR_MAC.to_bytes(2, "little") + bytes([MCL_CMAC8])
                + counter.to_bytes(4, "little") + mac)
    return bytes([CI_AFL, len(afl_body)]) + afl_body + tpl


# ------------------------------------------------------------------------ frames


def frame_a(raw: bytes) -> bytes:
    """Frame format A from a telegram without CRCs (L = bytes after L): a CRC (big-endian)
    after the first 10 bytes and after every following 16 bytes (the last block shorter)."""
    _check_raw(raw)
    out = bytearray()
    for start, end in _blocks_a(len(raw)):
        blk = raw[start:end]
        out += blk + crc16_en13757(blk).to_bytes(2, "big")
    return bytes(out)


def _blocks_a(n: int) -> list[tuple[int, int]]:
    spans = [(0, 10)]
    for s in range(10, n, 16):
        spans.append((s, min(s + 16, n)))
    return spans


def frame_b(raw: bytes) -> bytes:
    """Frame format B from a telegram without CRCs: L counts the CRC bytes too; one CRC at the
    end when the frame fits 128 bytes, else one over bytes 0..125 (at 126..127) and one over
    the rest."""
    _check_raw(raw)
    n = len(raw)
    if n + 2 <= 128:
        data = bytes([n + 1]) + raw[1:]
        return data + crc16_en13757(data).to_bytes(2, "big")
    if n + 4 > 256:
        raise ValueError(f"telegram too long for frame B: {n} bytes without CRCs (max 252)")
    data = bytes([n + 3]) + raw[1:]
    b1, b2 = data[:126], data[126:]
    return (b1 + crc16_en13757(b1).to_bytes(2, "big")
            + b2 + crc16_en13757(b2).to_bytes(2, "big"))


def _check_raw(raw: bytes) -> None:
    if len(raw) < 11 or raw[0] != len(raw) - 1:
        raise ValueError("need a telegram without CRCs whose L-field counts the bytes after it")


def with_crcs(raw: bytes, frame: str) -> bytes:
    """``raw`` (without CRCs) in frame format ``"A"``, ``"B"`` or ``"none"`` (unchanged)."""
    if frame == "A":
        return frame_a(raw)
    if frame == "B":
        return frame_b(raw)
    if frame == "none":
        _check_raw(raw)
        return bytes(raw)
    raise ValueError(f"frame must be A, B or none, got {frame!r}")


def telegram(
    meter: Meter,
    values: Sequence[Value],
    access_number: int,
    *,
    counter: int | None = None,
    c_field: int = 0x44,
    status: int = 0,
    cfg_flags: int = 0,
    clear_values: Sequence[Value] = (),
    ell: bytes = b"",
    radio: Meter | None = None,
) -> bytes:
    """The telegram ``meter`` sends with ``values``: from the L-field, in ``meter.frame``
    format, encrypted per ``meter.mode``. ``access_number``: TPL ACC (0..255); ``counter``: the
    AFL message counter (mode 7 only, required there); ``c_field``: DLL C (0x44 SND-NR);
    ``status``/``cfg_flags``: see :func:`secured_part`; ``clear_values``: records after the
    encrypted blocks, sent in clear; ``ell``: raw ELL bytes (with their CI) between DLL and
    the rest; ``radio``: a radio converter whose address goes into the DLL (the meter's own
    address is then only in the long transport header)."""
    if not 0 <= c_field <= 255:
        raise ValueError(f"C-field must be 0..255, got {c_field}")
    if radio is not None and meter.header != "long":
        raise ValueError("behind a radio converter the meter needs a long transport header")
    dll = (radio or meter).address
    body = bytes([c_field]) + dll + bytes(ell) + secured_part(
        meter, values, access_number, counter=counter, status=status, cfg_flags=cfg_flags,
        clear_values=clear_values)
    if len(body) > 255:
        raise ValueError(f"telegram too long: L would be {len(body)} (max 255)")
    return with_crcs(bytes([len(body)]) + body, meter.frame)


# ------------------------------------------------------------------------ CLI record syntax

_NUM_RE = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(.*?)\s*$")

# unit as typed -> (quantity unit, power of ten)
_INPUT_UNITS: dict[str, tuple[str | None, int]] = {
    "Wh": ("Wh", 0), "kWh": ("Wh", 3), "MWh": ("Wh", 6), "GWh": ("Wh", 9),
    "J": ("J", 0), "kJ": ("J", 3), "MJ": ("J", 6), "GJ": ("J", 9),
    "m3": ("m3", 0), "m³": ("m3", 0), "l": ("m3", -3), "L": ("m3", -3),
    "kg": ("kg", 0), "t": ("kg", 3), "g": ("kg", -3),
    "W": ("W", 0), "kW": ("W", 3), "MW": ("W", 6),
    "J/h": ("J/h", 0), "kJ/h": ("J/h", 3), "MJ/h": ("J/h", 6), "GJ/h": ("J/h", 9),
    "m3/h": ("m3/h", 0), "m³/h": ("m3/h", 0), "l/h": ("m3/h", -3),
    "°C": ("°C", 0), "C": ("°C", 0), "degC": ("°C", 0), "K": ("K", 0), "bar": ("bar", 0),
    "mbar": ("bar", -3),
}
_DEFAULT_UNITS = {"energy": "Wh", "volume": "m3", "mass": "kg", "power": "W",
                  "volume_flow": "m3/h", "flow_temperature": "°C",
                  "return_temperature": "°C", "temperature_difference": "K",
                  "external_temperature": "°C", "pressure": "bar"}


def parse_record(spec: str) -> Value:
    """``QUANTITY=VALUE[UNIT][,storage=N][,tariff=N][,subunit=N][,function=F][,type=T]``:
    ``volume=28504.27m3,type=bcd8``, ``energy=9341kWh``, ``flow_temperature=22.5°C``,
    ``on_time=5h``, ``datetime=2008-05-31T23:50``, ``date=2007-04-30,storage=1``,
    ``hca=1234,type=bcd6``, ``error_flags=0``. Prefixed units keep the digits as typed
    (``9341kWh`` = 9341E3 Wh: sent with the kWh VIF)."""
    parts = [p.strip() for p in spec.split(",")]
    head, *opts = parts
    q, sep, raw = head.partition("=")
    q = q.strip()
    if not sep or not q:
        raise ValueError(f"record {spec!r}: expected QUANTITY=VALUE")
    kw: dict[str, object] = {}
    for o in opts:
        k, sep, val = o.partition("=")
        k = k.strip()
        if not sep:
            raise ValueError(f"record {spec!r}: option {o!r} is not NAME=VALUE")
        if k in ("storage", "tariff", "subunit"):
            kw[k] = int(val, 0)
        elif k == "function":
            _function(val)
            kw[k] = FUNCTION_NAMES[FUNCTIONS[val]]
        elif k in ("type", "data_type"):
            kw["data_type"] = val.strip()
        else:
            raise ValueError(f"record {spec!r}: unknown option {k!r}")
    if q in DATES:
        return Value(q, None, raw.strip(), **kw)  # type: ignore[arg-type]
    m = _NUM_RE.match(raw)
    if not m:
        raise ValueError(f"record {spec!r}: {raw!r} is not NUMBER[UNIT]")
    number, unit_text = Decimal(m.group(1)), m.group(2)
    if q in DURATIONS:
        unit = unit_text or "s"
        if unit not in DURATION_UNITS:
            raise ValueError(f"record {spec!r}: duration unit must be s, min, h or d")
        return Value(q, unit, str(number), **kw)  # type: ignore[arg-type]
    if not unit_text:
        unit: str | None = _DEFAULT_UNITS.get(q)
        power = 0
    elif unit_text in _INPUT_UNITS:
        unit, power = _INPUT_UNITS[unit_text]
    else:
        raise ValueError(f"record {spec!r}: unknown unit {unit_text!r}")
    value = number.scaleb(power) if power else number
    v = Value(q, unit, str(value), **kw)  # type: ignore[arg-type]
    encode_record(v)  # fail early, with the reason
    return v


# ------------------------------------------------------------------------ random meters

_COMMON_TYPES = [0x02, 0x03, 0x04, 0x06, 0x07, 0x08, 0x0C, 0x0D, 0x15, 0x16, 0x1B]


def random_key(rng: random.Random) -> bytes:
    return bytes(rng.randrange(256) for _ in range(16))


def random_meter(rng: random.Random, *, security_modes: Sequence[int] = (0, 5, 7),
                 frames: Sequence[str] = ("A", "B", "none")) -> Meter:
    """A meter with a random address (any three letters, 8 digits, version, a common device
    type), security mode (with a random key), transport header and frame format."""
    mode = rng.choice(list(security_modes))
    header = rng.choice(["short", "long"] + (["none"] if mode == 0 else []))
    return Meter(
        manufacturer="".join(rng.choice(string.ascii_uppercase) for _ in range(3)),
        id=f"{rng.randrange(10**8):08d}",
        version=rng.randrange(256),
        device_type=rng.choice(_COMMON_TYPES),
        key=random_key(rng) if mode else None,
        mode=mode,
        header=header,
        frame=rng.choice(list(frames)),
    )


def _rand_int(rng: random.Random, dtype: str, signed: bool) -> int:
    """A random mantissa for ``dtype``, spread over the magnitudes, never an all-ones
    pattern (meters use 0xFF...FF for "no value")."""
    if dtype in _BCD_TYPES:
        digits = 2 * _BCD_TYPES[dtype][1]
        hi = 10 ** rng.randint(1, digits) - 1
        m = rng.randint(0, hi)
        if signed and rng.random() < 0.15:
            m = -rng.randint(1, 10 ** min(digits - 1, rng.randint(1, digits)) - 1)
        return m
    if dtype == "real32":
        m = rng.randint(0, (1 << rng.randint(1, 24)) - 1)
        return -m if signed and rng.random() < 0.3 else m
    unsigned = dtype.startswith("u")
    n = (_UINT_TYPES if unsigned else _INT_TYPES)[dtype][1]
    bits = 8 * n - 1  # also unsigned: top bit clear, so signed/unsigned readings agree
    while True:
        m = rng.randint(0, (1 << rng.randint(1, bits)) - 1)
        if signed and not unsigned and rng.random() < 0.3:
            m = -m
        if m != -1 and m != (1 << bits) - 1:
            return m


def _rand_dtype(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.55:
        return rng.choice(list(_INT_TYPES))
    if r < 0.9:
        return rng.choice(list(_BCD_TYPES))
    return "real32"


def _rand_fields(rng: random.Random) -> dict[str, object]:
    r = rng.random()
    storage = (0 if r < 0.55 else 1 if r < 0.7 else rng.randint(2, 15) if r < 0.9
               else rng.randint(16, (1 << 13) - 1))
    r = rng.random()
    tariff = 0 if r < 0.75 else rng.randint(1, 3) if r < 0.95 else rng.randint(4, 63)
    r = rng.random()
    subunit = 0 if r < 0.8 else 1 if r < 0.95 else rng.randint(2, 7)
    fn = rng.choices(list(FUNCTION_NAMES.values()), weights=[70, 10, 10, 10])[0]
    return {"storage": storage, "tariff": tariff, "subunit": subunit, "function": fn}


def random_value(rng: random.Random) -> Value:
    """One random record: any quantity of :data:`QUANTITIES`, :data:`DURATIONS` or
    :data:`DATES`, any data type and exponent it allows, random storage/tariff/subunit/
    function."""
    kinds = list(QUANTITIES) + [(q, "s") for q in DURATIONS] + [(q, None) for q in DATES]
    q, unit = rng.choice(kinds)
    f = _rand_fields(rng)
    if q in DATES:
        day = dt.date(2000, 1, 1) + dt.timedelta(days=rng.randrange(80 * 365))
        if q == "date":
            return Value(q, None, day.isoformat(), **f)  # type: ignore[arg-type]
        t = dt.datetime(day.year, day.month, day.day, rng.randrange(24), rng.randrange(60))
        if rng.random() < 0.4:
            t = t.replace(second=rng.randrange(60))
        return Value(q, None, t.isoformat(), **f)  # type: ignore[arg-type]
    if q in DURATIONS:
        dtype = rng.choice(["int16", "int32", "bcd8", "bcd6"])
        # the encoder sends the largest unit that divides the seconds: the mantissa it sends
        # is at most m, so it fits dtype too
        m = _rand_int(rng, dtype, signed=False)
        unit_s = rng.choice(list(DURATION_UNITS.values()))
        return Value(q, "s", str(m * unit_s), data_type=dtype, **f)  # type: ignore[arg-type]
    spec = QUANTITIES[(q, unit)]
    if q in ("fabrication_number", "customer_location"):
        dtype = rng.choice(list(_BCD_TYPES))
        m = _rand_int(rng, dtype, signed=False)
    elif q == "error_flags":
        dtype = rng.choice(["uint8", "uint16", "uint24", "uint32"])
        m = _rand_int(rng, dtype, signed=False)
    else:
        dtype = _rand_dtype(rng)
        m = _rand_int(rng, dtype, signed=True)
    e = rng.randint(spec.emin, spec.emax)
    with localcontext(_PREC):
        d = Decimal(m).scaleb(e)
    return Value(q, unit, str(d), data_type=dtype, **f)  # type: ignore[arg-type]


def random_values(rng: random.Random, *, max_records: int = 10, max_bytes: int = 150
                  ) -> list[Value]:
    """1..``max_records`` random records whose encoding takes at most ``max_bytes`` (so that
    any meter of :func:`random_meter` can send them in one telegram, frame B included)."""
    out: list[Value] = []
    size = 0
    for _ in range(rng.randint(1, max_records)):
        v = random_value(rng)
        n = len(encode_record(v))
        if size + n > max_bytes:
            break
        out.append(v)
        size += n
    return out
