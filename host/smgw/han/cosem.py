"""How the compatible HAN faces (:mod:`smgw.han.m2m`, :mod:`smgw.han.ppc`) write what the store
holds: OBIS codes as 12 hex digits, DLMS unit codes, values on a fixed scaler, status words as
hex, times as UTC ``...Z`` or as local ``YYYY-MM-DD HH:MM:SS``. Pure functions, no I/O.

Values are exact: the store keeps an integer and a power-of-ten scaler; conversions use integer
and :class:`~decimal.Decimal` arithmetic, never floats. The clients of both dialects expect
energy as a raw integer in 0.1 Wh (scaler -1, DLMS unit 30): Home Assistant, evcc and the
PPC/Theben integrations divide the raw value by 10000 to get kWh
(``../shared/design/han-clients.md`` §B.4.4). :func:`normalise` puts every energy value on that
scaler; a meter that registers finer than 0.1 Wh is rounded down (a register shown never exceeds
what the meter counted). Other quantities get a fixed scaler per unit (:data:`TARGET_SCALER`),
rounded half to even where the meter is finer.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from smgw.meters.obis import ObisError, parse_obis
from smgw.meters.units import unit_code as _dlms_code
from smgw.tariff.model import lsb_first_hex, status_fnn

__all__ = [
    "LOCAL_TZ",
    "ObisError",
    "TARGET_SCALER",
    "iso_z",
    "kwh_text",
    "local_text",
    "han_switched_off",
    "normalise",
    "opstate",
    "obis_dotted",
    "obis_hex",
    "parse_iso",
    "register_name",
    "status_hex",
    "target_scaler",
    "unit_code",
]

LOCAL_TZ = "Europe/Berlin"

# unit symbols with an SI prefix -> (base symbol, power of ten)
_PREFIXED = {"kWh": ("Wh", 3), "MWh": ("Wh", 6), "kvarh": ("varh", 3), "Mvarh": ("varh", 6),
             "kVAh": ("VAh", 3), "MVAh": ("VAh", 6), "kW": ("W", 3), "MW": ("W", 6),
             "kvar": ("var", 3), "kVA": ("VA", 3), "kV": ("V", 3), "mA": ("A", -3),
             "kJ": ("J", 3), "MJ": ("J", 6), "GJ": ("J", 9), "m3": ("m³", 0),
             "m3/h": ("m³/h", 0)}

_ENERGY = {30, 31, 32}  # Wh, VAh, varh: counters, rounded down

#: the scaler each DLMS unit is written with (energy: 0.1 Wh); others default to -3
TARGET_SCALER: dict[int, int] = {30: -1, 31: -1, 32: -1, 27: -1, 28: -1, 29: -1, 35: -1,
                                 33: -3, 44: -2, 13: -3, 19: 0, 9: -1, 52: -1, 255: 0}


def obis_hex(obis: str) -> str:
    """``"1-0:1.8.0"`` (any form :func:`smgw.meters.obis.parse_obis` takes) ->
    ``"0100010800ff"``. Raises :class:`ObisError`."""
    return parse_obis(obis).to_bytes().hex()


def obis_dotted(obis: str) -> str:
    """``"0100010800ff"`` (or any form) -> ``"1-0:1.8.0"``."""
    return str(parse_obis(obis))


def _base(unit: str | None) -> tuple[str, int]:
    return _PREFIXED.get(unit or "", (unit or "", 0))


def unit_code(unit: str | None) -> int:
    """The DLMS unit code a value of ``unit`` is written with after :func:`normalise`
    (``"kWh"`` -> 30; no unit or an unknown one: 255, "count")."""
    return _dlms_code(_base(unit)[0]) or 255


def target_scaler(unit: str | None) -> int:
    """The scaler :func:`normalise` writes a value of ``unit`` with."""
    return TARGET_SCALER.get(unit_code(unit), -3)


@lru_cache(maxsize=128)
def _unit_info(unit: str | None) -> tuple[int, int, int]:
    """(power of the prefix, DLMS code, target scaler) of a unit symbol."""
    base, power = _base(unit)
    code = _dlms_code(base) or 255
    return power, code, TARGET_SCALER.get(code, -3)


def normalise(raw: int | str, scaler: int | None, unit: str | None) -> tuple[int, int, int]:
    """A stored value ``raw * 10**scaler unit`` as ``(value, scaler, dlms unit code)`` on the
    unit's fixed scaler: ``("171165808", -1, "Wh")`` -> ``(171165808, -1, 30)``,
    ``(17116, 0, "kWh")`` -> ``(171160000, -1, 30)``."""
    power, code, target = _unit_info(unit)
    exp = int(scaler or 0) + power - target
    value = int(raw)
    if exp >= 0:
        return value * 10 ** exp, target, code
    rounding = ROUND_FLOOR if code in _ENERGY else ROUND_HALF_EVEN
    q = Decimal(value).scaleb(exp).quantize(Decimal(1), rounding=rounding)
    return int(q), target, code


def kwh_text(raw: int | str, scaler: int | None, unit: str | None) -> tuple[str, str]:
    """A value as the PPC pages show it: energy in kWh with four decimals and a dot
    (``(33440514, -1, "Wh")`` -> ``("3344.0514", "kWh")``, rounded down like a register), other
    units in their own unit with the decimals the scaler gives."""
    base, power = _base(unit)
    v = Decimal(int(raw)).scaleb(int(scaler or 0) + power)
    if base in ("Wh", "varh", "VAh"):
        q = v.scaleb(-3).quantize(Decimal("0.0001"), rounding=ROUND_FLOOR)
        return f"{q:f}", "k" + base
    places = max(0, -(int(scaler or 0) + power))
    return f"{v.quantize(Decimal(1).scaleb(-places)):f}", base


@lru_cache(maxsize=1024)
def status_hex(smgw: int, meter: int | None) -> tuple[str, str, str]:
    """(cosem-status 16 hex, meter-status 8 hex, smgw-status 8 hex), lower case, each word
    LSB first as the Theben gateway and TRuDI write them; a missing meter word is the basic
    meter's identification word 0x00000004."""
    return (status_fnn(smgw, meter).lower(),
            lsb_first_hex(0x00000004 if meter is None else meter).lower(),
            lsb_first_hex(smgw).lower())


# ------------------------------------------------------------------ times


@lru_cache(maxsize=8)
def zone(tz: str) -> ZoneInfo:
    return ZoneInfo(tz)


def iso_z(ms: int) -> str:
    """UTC to the second: ``2026-08-14T18:29:57Z``."""
    return dt.datetime.fromtimestamp(ms // 1000, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> int:
    """``YYYY-MM-DDThh:mm:ss[.f](Z|±hh:mm)`` (no zone: UTC) -> Unix ms. Raises ValueError."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("empty time")
    t = text.strip()
    if t.endswith(("Z", "z")):
        t = t[:-1] + "+00:00"
    d = dt.datetime.fromisoformat(t)
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.timezone.utc)
    return int(d.timestamp() * 1000)


def local_text(ms: int, tz: str = LOCAL_TZ) -> str:
    """Local wall time to the second: ``2026-05-14 12:00:01``."""
    return dt.datetime.fromtimestamp(ms // 1000, zone(tz)).strftime("%Y-%m-%d %H:%M:%S")


# ------------------------------------------------------------------ gateway state

_OPSTATES = {"normal": "Normalbetrieb", "restricted": "Eingeschränkter Betrieb",
             "minimal": "Minimalbetrieb", "ceased": "Betrieb eingestellt"}


def opstate(value: object) -> tuple[str, str]:
    """(state, German text) of the operating state as the gateway reports it: a state name
    (``normal``, ``restricted``, ``minimal``, ``ceased``), the supervisor's description dict
    (``{"state": ...}``) or free text."""
    if isinstance(value, dict):
        value = value.get("state")
    text = str(value or "").strip()
    key = text.lower()
    if key in _OPSTATES:
        return key, _OPSTATES[key]
    for k, german in _OPSTATES.items():
        if german.lower() == key:
            return k, german
    return ("unknown", text) if text else ("unknown", "unbekannt")


def han_switched_off(value: object) -> bool:
    """Whether the operating state switches the HAN data access off (seed 000 §2.6: minimal
    operation and ceased operation); an unknown state does not."""
    from smgw.opstate import SWITCHED_OFF

    key = opstate(value)[0]
    return key in SWITCHED_OFF and "han" in SWITCHED_OFF[key]


# ------------------------------------------------------------------ names

_NAMES = {(1, 8): "Wirkarbeit Bezug", (2, 8): "Wirkarbeit Lieferung",
          (1, 7): "Wirkleistung Bezug", (2, 7): "Wirkleistung Lieferung",
          (16, 7): "Wirkleistung", (3, 8): "Blindarbeit Bezug", (4, 8): "Blindarbeit Lieferung",
          (32, 7): "Spannung L1", (52, 7): "Spannung L2", (72, 7): "Spannung L3",
          (31, 7): "Strom L1", (51, 7): "Strom L2", (71, 7): "Strom L3", (14, 7): "Frequenz"}


def register_name(obis: str) -> str:
    """A German name for a register (``1-0:1.8.0`` -> ``Wirkarbeit Bezug``); tariff stages
    and other registers get a generic name."""
    try:
        h = obis_hex(obis)
    except ObisError:
        return "Register"
    a, c, d, e = int(h[0:2], 16), int(h[4:6], 16), int(h[6:8], 16), int(h[8:10], 16)
    if a == 7 or a == 8 or a == 9:
        return {7: "Gasvolumen", 8: "Kaltwasservolumen", 9: "Warmwasservolumen"}[a]
    if a == 6:
        return "Wärmeenergie"
    name = _NAMES.get((c, d), "Register")
    if d == 8 and e not in (0, 255):
        name += f" Tarifstufe {e}"
    return name
