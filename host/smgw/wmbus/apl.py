"""EN 13757-3 application layer: the data records of a full frame, bytes -> :class:`Record`\\ s.

    from smgw.wmbus.apl import decode_records
    for r in decode_records(plaintext):          # the APL after decryption (2F2F ...)
        r.quantity, r.unit, r.value              # "volume", "m3", "28504.27"
        r.storage, r.tariff, r.subunit, r.function
        r.to_json()                              # what `smgw decode wmbus` prints per record

A record is ``DIF [DIFE ...] VIF [VIFE ...] data`` (design note ``meter-protocols.md`` §3):

* DIF/DIFE give the data field (length and coding), the function (instantaneous, maximum,
  minimum, value during error state) and the storage number, tariff and subunit, which the
  DIFEs extend bit by bit (at most 10 DIFEs).
* VIF/VIFE give the quantity, unit and power of ten (tables in :mod:`smgw.wmbus.vif`: primary,
  FB, FD, FD FD), then combinable VIFEs that correct the exponent, change the unit (per hour
  ...), mark the value (backward flow, at phase L1 ...) or carry a record error (at most 10
  VIFEs, the FB/FD table byte included). A plain-text VIF (0x7C/0xFC) brings its unit as text
  after the VIFEs; a manufacturer VIF (0x7F/0xFF) makes VIFEs and data the manufacturer's (the
  value is kept unscaled).
* Data: BCD (type A, top nibble F = negative), signed integers of 1/2/3/4/6/8 bytes (type B;
  unsigned for identifiers, counters and bit fields), real32 (type H), variable length
  (LVAR: text sent last character first, positive/negative BCD, binary), dates G, F, I and
  the time of day J.

Idle fillers 0x2F between records are skipped (so is the 2F2F marker a decryption leaves at
the start). DIF 0x0F/0x1F ends the records: the rest is manufacturer data, kept as bytes in a
last record of quantity ``manufacturer_specific``.

Values are exact: ``raw * 10**exponent`` by integer arithmetic, a decimal string with as many
fraction digits as the exponent says (``2850427`` x 10^-2 -> ``"28504.27"``, 0 l ->
``"0.000"``). Dates are ISO 8601 (``"2008-05-31"``, ``"2008-05-31T23:50"``, seconds only when
the type has them and they are not 0); periodic dates use ``X`` for the repeated field
(ISO 8601-2: ``"XXXX-01-01"`` = every year on 1 January).

Whose fault: bytes that cannot be records (truncated record, a DIFE/VIFE chain longer than the
standard allows, a reserved LVAR or DIF, an FB/FD VIF without its table byte) raise
:class:`AplError` (catalogue 10274, "unverständliche Syntax"). A record that can be read but
holds no usable value (invalid BCD digits, an integer of all ones, a date of all ones or that
does not exist, a record error VIFE, a VIF that does not fit its data field) is kept with
``value`` None and ``error`` set. Nothing reads
past the buffer, every loop consumes at least one byte, and nothing else escapes for any
input (fuzzed in ``tests/host/wmbus/test_apl.py``).
"""

from __future__ import annotations

import datetime as dt
import math
import struct
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any

from smgw.wmbus.vif import (
    COMBINABLE,
    COMBINABLE_EXT,
    FB,
    FD,
    FD_FD,
    PRIMARY,
    VIF_ANY,
    VIF_FB,
    VIF_FD,
    VIF_MANUFACTURER,
    VIF_PLAIN_TEXT,
    VIF_THIRD_TABLE,
    Vif,
)

__all__ = [
    "CATALOGUE_SYNTAX",
    "FUNCTIONS",
    "MAX_DIFE",
    "MAX_VIFE",
    "AplError",
    "Record",
    "decode_records",
    "manufacturer_code",
]

CATALOGUE_SYNTAX = 10274  # "Telegramm … hat eine unverständliche Syntax"
MAX_DIFE = 10  # EN 13757-3: at most 10 DIFEs ...
MAX_VIFE = 10  # ... and 10 VIFEs per record

FUNCTIONS = ("instantaneous", "maximum", "minimum", "error")  # DIF bits 5..4

# DIF data field -> data length in bytes (0xD: LVAR, 0xF: special function)
_LENGTH = (0, 1, 2, 3, 4, 4, 6, 8, 0, 1, 2, 3, 4, -1, 6, -1)
_INT_FIELDS = frozenset((0x1, 0x2, 0x3, 0x4, 0x6, 0x7))
_BCD_FIELDS = frozenset((0x9, 0xA, 0xB, 0xC, 0xE))
_REAL = 0x5
_LVAR = 0xD
_NO_DATA = frozenset((0x0, 0x8))  # no data; selection for readout
_DATE_TYPES = {0x2: "date_g", 0x3: "time_j", 0x4: "datetime_f", 0x6: "datetime_i"}
_MFCT_DIFS = (0x0F, 0x1F)  # rest is manufacturer data; 0x1F: more records follow
_FILLER = 0x2F

_MANUFACTURER = Vif("manufacturer_specific", kind="raw")
_THIRD_TABLE = Vif("reserved", kind="raw")
_ANY = Vif("any", kind="raw")


class AplError(ValueError):
    """The bytes are not a sequence of EN 13757-3 data records: the meter's fault.

    ``code``: ``truncated`` (a record ends early: DIFE/VIF/VIFE, plain-text unit, LVAR or
    data beyond the buffer), ``too_many_difes`` / ``too_many_vifes`` (chain longer than 10),
    ``reserved_dif`` (special-function DIF 0x3F..0x7F or a data field 0xF with extension
    bit), ``reserved_lvar`` (LVAR 0xCA..0xCF, 0xDA..0xDF, 0xF7..0xFF: the length is unknown),
    ``vif`` (VIF 0xFB/0xFD, or FD 0x7D, without the byte that names the table entry).
    ``offset``: position in the APL bytes. ``catalogue_id``: 10274."""

    catalogue_id = CATALOGUE_SYNTAX

    def __init__(self, code: str, message: str, offset: int | None = None) -> None:
        super().__init__(message if offset is None else f"{message} (at APL byte {offset})")
        self.code = code
        self.reason = message
        self.offset = offset


@dataclass(slots=True)
class Record:
    """One data record.

    ``storage``/``tariff``/``subunit``: from DIF bit 6 and the DIFEs; ``function``: one of
    :data:`FUNCTIONS`; ``quantity``/``unit``: see ``docs/wmbus-apl.md`` (unit "" = none);
    ``value``: exact decimal string, ISO 8601 date/time or text, None when there is no value
    (no data, bytes only, or ``error``); ``raw``: the data as decoded before scaling (int for
    integers and BCD, float for reals, str for text, bytes for containers, profiles, invalid
    BCD and manufacturer data, int of the bytes for dates); ``exponent``: the power of ten
    applied; ``dif``/``dife``/``vif``/``vife``: the header bytes as sent (``vif`` None for the
    manufacturer-data record); ``data_type``: ``none``, ``int``, ``bcd``, ``real``, ``text``,
    ``bytes``, ``compact_profile``, ``date_g``, ``datetime_f``, ``datetime_i``, ``time_j``,
    ``datetime_m``, ``manufacturer``; ``qualifiers``: names of the VIFEs and flags that
    qualify the value (``backward_flow``, ``per_h``, ``at_phase_l1``, ``summer_time`` ...);
    ``error``: why a record has no value (``invalid_bcd``, ``invalid_date``, ``no_value``,
    ``vif_dif_mismatch``, ``not_a_number``, a record error code such as
    ``no_data_available``); ``offset``: position of the DIF in the APL bytes;
    ``more_records_follow``: DIF 0x1F (the meter continues in its next telegram)."""

    storage: int
    tariff: int
    subunit: int
    function: str
    quantity: str
    unit: str
    value: str | None
    raw: int | float | str | bytes | None = None
    exponent: int = 0
    dif: int = 0
    dife: tuple[int, ...] = ()
    vif: int | None = None
    vife: tuple[int, ...] = ()
    data_type: str = "none"
    qualifiers: list[str] = field(default_factory=list)
    error: str | None = None
    offset: int = 0
    more_records_follow: bool = False

    @property
    def header(self) -> bytes:
        """DIF, DIFEs, VIF and VIFEs as sent (for matching records like "0C13")."""
        vif = () if self.vif is None else (self.vif,)
        return bytes((self.dif, *self.dife, *vif, *self.vife))

    def to_json(self) -> dict[str, Any]:
        """``{"storage", "tariff", "subunit", "function", "quantity", "unit", "value"}`` plus,
        when there are any, ``qualifiers``, ``error``, ``raw`` (hex, for byte values) and
        ``more_records_follow``."""
        d: dict[str, Any] = {"storage": self.storage, "tariff": self.tariff,
                             "subunit": self.subunit, "function": self.function,
                             "quantity": self.quantity, "unit": self.unit, "value": self.value}
        if self.qualifiers:
            d["qualifiers"] = list(self.qualifiers)
        if self.error is not None:
            d["error"] = self.error
        if isinstance(self.raw, bytes):
            d["raw"] = self.raw.hex()
        if self.more_records_follow:
            d["more_records_follow"] = True
        return d


# ------------------------------------------------------------------------------ records


def decode_records(data: bytes) -> list[Record]:
    """All data records of ``data`` (the APL of a full frame, after decryption). Raises
    :class:`AplError` when the bytes are not records; see the module docstring."""
    buf = bytes(data)
    n = len(buf)
    out: list[Record] = []
    i = 0
    while i < n:
        start = i
        dif = buf[i]
        i += 1
        if dif == _FILLER:
            continue
        if dif in _MFCT_DIFS:
            out.append(Record(0, 0, 0, FUNCTIONS[0], "manufacturer_specific", "", None,
                              raw=buf[i:], dif=dif, data_type="manufacturer", offset=start,
                              more_records_follow=dif == 0x1F))
            break
        df = dif & 0x0F
        if df == 0x0F:
            raise AplError("reserved_dif", f"DIF 0x{dif:02x} is a reserved special function"
                           + (" (global readout request, to meters only)"
                              if dif == 0x7F else ""), start)
        dife: list[int] = []
        ext = dif & 0x80
        while ext:
            if i >= n:
                raise AplError("truncated", "record ends in its DIFEs", start)
            if len(dife) == MAX_DIFE:
                raise AplError("too_many_difes", f"more than {MAX_DIFE} DIFEs", start)
            ext = buf[i] & 0x80
            dife.append(buf[i])
            i += 1
        if i >= n:
            raise AplError("truncated", "record ends before its VIF", start)
        vif = buf[i]
        i += 1
        vife: list[int] = []
        ext = vif & 0x80
        while ext:
            if i >= n:
                raise AplError("truncated", "record ends in its VIFEs", start)
            if len(vife) == MAX_VIFE:
                raise AplError("too_many_vifes", f"more than {MAX_VIFE} VIFEs", start)
            ext = buf[i] & 0x80
            vife.append(buf[i])
            i += 1
        plain: str | None = None
        if vif & 0x7F == VIF_PLAIN_TEXT:
            if i >= n:
                raise AplError("truncated", "record ends before its plain-text unit", start)
            ln = buf[i]
            if i + 1 + ln > n:
                raise AplError("truncated", f"plain-text unit of {ln} bytes goes past the "
                               "end", start)
            plain = buf[i + 1:i + 1 + ln][::-1].decode("latin-1")
            i += 1 + ln
        lvar: int | None = None
        if df == _LVAR:
            if i >= n:
                raise AplError("truncated", "record ends before its LVAR byte", start)
            lvar = buf[i]
            i += 1
            length = _lvar_length(lvar, start)
        else:
            length = _LENGTH[df]
        if i + length > n:
            raise AplError("truncated", f"record data of {length} bytes goes past the end "
                           f"({n - i} left)", start)
        payload = buf[i:i + length]
        i += length
        out.append(_record(start, dif, tuple(dife), vif, tuple(vife), plain, lvar, payload))
    return out


def _lvar_length(lvar: int, start: int) -> int:
    if lvar < 0xC0:
        return lvar  # text (or container bytes)
    if lvar <= 0xC9:
        return lvar - 0xC0  # positive BCD, 2 digits a byte
    if 0xD0 <= lvar <= 0xD9:
        return lvar - 0xD0  # negative BCD
    if 0xE0 <= lvar <= 0xEF:
        return lvar - 0xE0  # binary
    if 0xF0 <= lvar <= 0xF4:
        return 4 * (lvar - 0xEC)  # binary, 16 .. 32 bytes
    if lvar == 0xF5:
        return 48
    if lvar == 0xF6:
        return 64
    raise AplError("reserved_lvar", f"LVAR 0x{lvar:02x} is reserved (length unknown)", start)


def _vif_info(vif: int, vife: tuple[int, ...], start: int) -> tuple[Vif, tuple[int, ...]]:
    """The table entry of the VIF and the VIFEs left to combine."""
    v = vif & 0x7F
    if vif == VIF_THIRD_TABLE:
        return _THIRD_TABLE, ()  # reserved table: its VIFEs mean nothing we know
    if v in (VIF_FB, VIF_FD):
        if not vife:
            raise AplError("vif", f"VIF 0x{vif:02x} without its extension-table byte", start)
        code = vife[0] & 0x7F
        if v == VIF_FB:
            return FB[code], vife[1:]
        if code != 0x7D:
            return FD[code], vife[1:]
        if len(vife) < 2:
            raise AplError("vif", "VIF FD 0x7D without its second-level table byte", start)
        return FD_FD[vife[1] & 0x7F], vife[2:]
    if v == VIF_MANUFACTURER:
        return _MANUFACTURER, ()  # VIFEs and data are the manufacturer's
    if v == VIF_ANY:
        return _ANY, vife
    return PRIMARY[v], vife  # (0x7C, plain text, is handled by _record)


def _record(start: int, dif: int, dife: tuple[int, ...], vif: int, vife: tuple[int, ...],
            plain: str | None, lvar: int | None, payload: bytes) -> Record:
    # ---- DIF / DIFE: storage, tariff, subunit, function
    storage = (dif >> 6) & 1
    tariff = subunit = 0
    for k, e in enumerate(dife):
        storage |= (e & 0x0F) << (1 + 4 * k)
        tariff |= ((e >> 4) & 3) << (2 * k)
        subunit |= ((e >> 6) & 1) << k
    df = dif & 0x0F

    # ---- VIF / VIFE: what the value is
    if vif & 0x7F == VIF_PLAIN_TEXT:
        info, rest = Vif("plain_text", plain or ""), vife
    else:
        info, rest = _vif_info(vif, vife, start)
    quantity, unit, exponent, kind, scale = (info.quantity, info.unit, info.exponent,
                                             info.kind, info.scale)
    quals: list[str] = []
    error: str | None = None
    offset: int | None = None  # additive correction, power of ten in the VIF's unit
    profile = unsigned = False
    j = 0
    while j < len(rest):
        ve = COMBINABLE[rest[j] & 0x7F]
        j += 1
        if ve.effect == "mfct":
            quals.append(ve.name)
            break  # the VIFEs after 0x7F are the manufacturer's
        if ve.effect == "extension":
            if j >= len(rest):
                quals.append(ve.name)
                continue
            ve = COMBINABLE_EXT[rest[j] & 0x7F]
            j += 1
        eff = ve.effect
        if eff == "exponent":
            exponent += ve.exponent
            continue
        if eff == "error":
            error = error or ve.name
            continue
        quals.append(ve.name)
        if eff == "offset":
            offset = ve.exponent + info.exponent
        elif eff == "per":
            unit = f"{unit}/{ve.arg}" if unit else f"1/{ve.arg}"
        elif eff == "times":
            unit = f"{unit}*{ve.arg}" if unit else ve.arg
        elif eff == "duration":
            unit, exponent, scale, kind = "s", 0, ve.scale, "number"
        elif eff == "date":
            unit, kind = "", "datetime"
        elif eff == "count":
            unit, exponent, scale, kind = "", 0, Fraction(1), "count"
        elif eff == "profile":
            profile = True
        elif eff == "unsigned":
            unsigned = True
        elif eff == "bits":
            kind = "bits"

    # ---- data
    rec = Record(storage, tariff, subunit, FUNCTIONS[(dif >> 4) & 3], quantity, unit, None,
                 exponent=exponent, dif=dif, dife=dife, vif=vif, vife=vife,
                 qualifiers=quals, offset=start)
    if df in _NO_DATA:
        rec.error = error
        return rec
    if profile or kind == "container":
        rec.data_type = "compact_profile" if profile else "bytes"
        rec.raw = payload
        rec.error = error
        return rec
    if kind in ("date", "datetime"):
        _date_value(rec, kind, df, payload)
        if error is not None:
            rec.error, rec.value = error, None
        return rec

    signed = kind == "number" and not unsigned
    if kind != "number":
        rec.exponent = 0
    if df in _INT_FIELDS:
        rec.data_type = "int"
        rec.raw = int.from_bytes(payload, "little", signed=signed)
        if kind == "number" and len(payload) > 1 and payload.count(0xFF) == len(payload):
            rec.error = error or "no_value"  # FF..FF: the meters' "no value" (V10)
            return rec
    elif df in _BCD_FIELDS:
        rec.data_type = "bcd"
        rec.raw = _bcd(payload)
    elif df == _REAL:
        rec.data_type = "real"
        rec.raw = struct.unpack("<f", payload)[0]
    else:  # LVAR
        assert lvar is not None
        if lvar < 0xC0:
            rec.data_type = "text"
            rec.raw = payload[::-1].decode("latin-1")
        elif lvar < 0xE0:
            rec.data_type = "bcd"
            rec.raw = _bcd(payload) if lvar <= 0xC9 else _negative_bcd(payload)
        else:
            rec.data_type = "int"
            rec.raw = int.from_bytes(payload, "little", signed=signed)
    if rec.raw is None:  # invalid BCD digits: a meter's "no value" filler
        rec.raw = payload
        rec.error = error or "invalid_bcd"
        return rec
    if error is not None:
        rec.error = error
        return rec

    raw = rec.raw
    if isinstance(raw, str):
        rec.value = raw
    elif isinstance(raw, float):
        if not math.isfinite(raw):
            rec.error = "not_a_number"
        elif kind == "number":
            rec.value = _real_value(raw, payload, exponent, scale, offset)
        else:
            rec.value = _real_value(raw, payload, 0, Fraction(1), None)
    elif kind == "number":
        assert isinstance(raw, int)
        rec.value = _scaled(raw, exponent, scale, offset)
    elif kind == "mfct_id" and df == 0x2:
        assert isinstance(raw, int)
        rec.value = manufacturer_code(raw)
    else:  # count, id, bits, raw: unscaled
        rec.value = str(raw)
    return rec


# ------------------------------------------------------------------------------ numbers


def _bcd(b: bytes) -> int | None:
    """Type A: digits little-endian by byte; top nibble 0xF = negative; None when a nibble is
    not a digit."""
    if not b:
        return 0
    h = b[::-1].hex()
    if h.isdigit():
        return int(h)
    if h[0] == "f" and (len(h) == 1 or h[1:].isdigit()):
        return -int(h[1:])
    return None


def _negative_bcd(b: bytes) -> int | None:
    """LVAR 0xD0..0xD9: digits only, the sign is in the LVAR."""
    if not b:
        return 0
    h = b[::-1].hex()
    return -int(h) if h.isdigit() else None


def _fmt(m: int, e: int) -> str:
    """``m * 10**e`` exactly, with ``-e`` fraction digits when ``e`` < 0."""
    if e >= 0:
        return str(m * 10**e)
    digits = str(abs(m)).rjust(1 - e, "0")
    return f"{'-' if m < 0 else ''}{digits[:e]}.{digits[e:]}"


def _pow10_multiple(den: int) -> int:
    """Smallest k with ``den`` dividing 10**k (``den`` = 2^a 5^b, as the tables' scales)."""
    k = 0
    while (10**k) % den:
        k += 1
        if k > 64:
            raise AssertionError(f"scale denominator {den} has no finite decimal")
    return k


def _scaled(m: int, e: int, scale: Fraction, offset: int | None) -> str:
    """``m * scale * 10**e [+ 10**offset]`` as an exact decimal string."""
    m *= scale.numerator
    den = scale.denominator
    if den != 1:
        k = _pow10_multiple(den)
        m, e = m * (10**k // den), e - k
    if offset is not None:
        common = min(e, offset)
        m, e = m * 10 ** (e - common) + 10 ** (offset - common), common
    s = _fmt(m, e)
    if den != 1 and "." in s:  # a binary fraction has no "resolution" to keep
        s = s.rstrip("0").rstrip(".")
    return s


def _shortest_real(raw: float, payload: bytes) -> str:
    """The shortest decimal that reads back as the same float32 (``1.0`` -> ``"1"``)."""
    for p in range(1, 10):
        s = f"{raw:.{p}g}"
        try:
            if struct.pack("<f", float(s)) == payload:
                return s
        except OverflowError:
            continue
    return repr(raw)  # pragma: no cover -- 9 significant digits always round-trip


def _real_value(raw: float, payload: bytes, e: int, scale: Fraction, offset: int | None
                ) -> str:
    """A real scaled exactly: an integral float below 2^24 (where float32 holds every
    integer) like an integer (fraction digits from the exponent), else its shortest decimal
    times the scale, without trailing fraction zeros."""
    if raw.is_integer() and abs(raw) < 1 << 24:
        return _scaled(int(raw), e, scale, offset)
    with localcontext() as ctx:
        ctx.prec = 200
        d = Decimal(_shortest_real(raw, payload)) * scale.numerator / scale.denominator
        d = d.scaleb(e)
        if offset is not None:
            d += Decimal(1).scaleb(offset)
        s = format(d, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def manufacturer_code(v: int) -> str:
    """The 16-bit manufacturer id (as in the link layer) as three letters: 0x1593 -> "ELS"."""
    return "".join(chr(64 + ((v >> s) & 0x1F)) for s in (10, 5, 0))


# ------------------------------------------------------------------------------ dates


def _year(y: int, century: int | None = None) -> int | None:
    """Year field 0..99 -> 2000+y (type F: + 100 per hundred-year step above 1); None for
    100..126 (undefined)."""
    if y > 99:
        return None
    if century is None or century <= 1:
        return 2000 + y
    return 1900 + 100 * century + y


def _date_parts(b0: int, b1: int) -> tuple[int, int, int]:
    """Day, month, year field of a type G date (also bytes 2..3 of F, 3..4 of I)."""
    return b0 & 0x1F, b1 & 0x0F, ((b1 & 0xF0) >> 1) | (b0 >> 5)


def _iso_date(day: int, month: int, yfield: int, century: int | None,
              month_every: tuple[int, ...] = (15,)) -> str | None:
    """``YYYY-MM-DD`` with ``X`` for a periodic field (day 0, month 15, year 127); None when
    the date does not exist."""
    periodic = day == 0 or month in month_every or yfield == 127
    year = None if yfield == 127 else _year(yfield, century)
    if yfield != 127 and year is None:
        return None
    if month not in month_every and not 1 <= month <= 12:
        return None
    if day > 31:
        return None
    if not periodic:
        try:
            dt.date(year, month, day)  # type: ignore[arg-type]
        except ValueError:
            return None
    ys = "XXXX" if yfield == 127 else f"{year:04d}"
    ms = "XX" if month in month_every else f"{month:02d}"
    ds = "XX" if day == 0 else f"{day:02d}"
    return f"{ys}-{ms}-{ds}"


def _iso_time(hour: int, minute: int, second: int | None) -> str | None:
    """``HH:MM[:SS]`` with ``XX`` for a periodic field (hour 31, minute/second 63)."""
    if (hour != 31 and hour > 23) or (minute != 63 and minute > 59):
        return None
    if second is not None and second != 63 and second > 59:
        return None
    hs = "XX" if hour == 31 else f"{hour:02d}"
    ms = "XX" if minute == 63 else f"{minute:02d}"
    if second is None or second == 0:
        return f"{hs}:{ms}"
    return f"{hs}:{ms}:{'XX' if second == 63 else f'{second:02d}'}"


def _date_value(rec: Record, kind: str, df: int, b: bytes) -> None:
    """Decode a date/time record into ``rec`` (value or error)."""
    rec.exponent = 0
    rec.unit = ""
    if df == _LVAR:  # type M: kept as bytes
        rec.data_type, rec.raw = "datetime_m", b
        return
    rec.raw = int.from_bytes(b, "little")
    value: str | None
    if (df == 0x2 or (kind == "datetime" and df in _DATE_TYPES)) and b.count(0xFF) == len(b):
        rec.data_type = _DATE_TYPES[df]  # all ones: not set
        rec.error = "invalid_date"
        return
    if df == 0x2:  # type G
        rec.data_type = "date_g"
        value = _iso_date(*_date_parts(b[0], b[1]), None)
    elif kind == "date":
        rec.data_type = "int" if df in _INT_FIELDS else "bcd" if df in _BCD_FIELDS else "real"
        rec.error = "vif_dif_mismatch"  # VIF 0x6C is type G only
        return
    elif df == 0x4:  # type F
        rec.data_type = "datetime_f"
        if b[0] & 0x80:
            rec.qualifiers.append("time_invalid")  # IV bit: see docs/wmbus-apl.md
        if b[1] & 0x80:
            rec.qualifiers.append("summer_time")
        d = _iso_date(*_date_parts(b[2], b[3]), (b[1] >> 5) & 3)
        t = _iso_time(b[1] & 0x1F, b[0] & 0x3F, None)
        value = None if d is None or t is None else f"{d}T{t}"
    elif df == 0x6:  # type I
        rec.data_type = "datetime_i"
        if b[1] & 0x80:
            rec.qualifiers.append("time_invalid")
        if b[0] & 0x40:
            rec.qualifiers.append("summer_time")
        d = _iso_date(*_date_parts(b[3], b[4]), None, month_every=(0, 15))
        t = _iso_time(b[2] & 0x1F, b[1] & 0x3F, b[0] & 0x3F)
        value = None if d is None or t is None else f"{d}T{t}"
    elif df == 0x3:  # type J
        rec.data_type = "time_j"
        if rec.quantity == "datetime":
            rec.quantity = "time"
        t = _iso_time(b[2] & 0x1F, b[1] & 0x3F, b[0] & 0x3F)
        value = None if t is None else (t if t.count(":") == 2 else f"{t}:00")
    else:
        rec.data_type = "int" if df in _INT_FIELDS else "bcd" if df in _BCD_FIELDS else "real"
        rec.error = "vif_dif_mismatch"
        return
    if value is None:
        rec.error = "invalid_date"
    rec.value = value
