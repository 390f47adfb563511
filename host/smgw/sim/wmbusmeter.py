"""Simulated wireless M-Bus meters behind a simulated radio module (Amber AMB8465) on a serial
line: what a board with a wM-Bus UART module hears when meters are around.

    meters = default_meters(4, secret=b"smgw-sim")       # water, gas, heat, HCA; modes 5 and 7
    sim = WmbusRadioSim("/dev/pts/7", meters, rate_per_s=70, mode="T1").start()
    ...   sim.replay(0)                                 # meter 0's last telegram once more
    sim.stop(); print(sim.stats())

The module side speaks the AMB8465 command protocol toward the firmware driver (docs/amb8465.md):
frames ``FF CMD LEN PAYLOAD CS`` with CS = XOR of all bytes from the 0xFF through the payload.
Every request (``CMD``) gets its confirmation ``CMD | 0x80``: CMD_SET_MODE_REQ 0x04 (one mode
byte; the receive modes S1 = 0x03, T1 = 0x08, C1 = 0x0E, C1+T1 = 0x09), CMD_RESET_REQ 0x05,
CMD_SET_REQ 0x09 / CMD_GET_REQ 0x0A (the non-volatile parameter memory), CMD_SERIALNO_REQ 0x0B,
CMD_FWV_REQ 0x0C, CMD_RSSI_REQ 0x0D (channel RSSI). Received telegrams come as CMD_DATA_IND
0x03 whose payload is the telegram from its L-field *without* DLL CRCs (the module checks and
strips them) followed by one RSSI byte; LEN is the length of that payload (telegram + RSSI).
The RSSI byte is the transceiver's two's-complement value: dBm = byte/2 - 74 (byte < 128) or
(byte - 256)/2 - 74 (Amber manuals), the half truncated; the simulator sends whole dBm. ``l_field=False`` gives the variant some readers assume
(payload from the C-field, LEN standing in for the L-field).

Like the module, nothing is delivered before the driver chose a receive mode, and only
telegrams of that air mode: a T1 meter is not heard in C1 mode. A reset forgets the volatile
mode (the module falls back to the ``Mode_Preselect`` parameter, which is 0 = "no receive mode"
here until the driver sets it).

The meter side: each meter (a :class:`~smgw.wmbus.encode.Meter` and a value function ``t ->
[Value]``, t = simulated seconds since the start) transmits in turn, ``rate_per_s`` telegrams
per second in total, each telegram with the next access number (and, in mode 7, the next
message counter); with probability ``duplicate_prob`` a telegram goes out twice (meters and
repeaters do that). :meth:`WmbusRadioSim.send_now` puts any telegram on the air at once (a
replayed one, a hand-made one); :meth:`WmbusRadioSim.replay` re-sends a meter's last telegram.

The core (:class:`Amb8465`, :meth:`WmbusRadioSim.transmit`) works without a port or thread;
:meth:`WmbusRadioSim.run` is the loop over a port, :meth:`start` / :meth:`stop` run it in a
thread.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import hmac
import random
import select
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from typing import Any

from smgw.wmbus.encode import (
    DEVICE_TYPES,
    Meter,
    Value,
    crc16_en13757,
    telegram,
)

__all__ = [
    "AIR_MODES",
    "Amb8465",
    "ElectricityProfile",
    "GasProfile",
    "HcaProfile",
    "HeatProfile",
    "RadioStats",
    "WaterProfile",
    "WmbusRadioSim",
    "amb_frame",
    "default_meters",
    "derive_key",
    "rssi_byte",
    "rssi_dbm",
]

SOF = 0xFF
CMD_DATA_REQ = 0x00
CMD_DATA_IND = 0x03
CMD_SET_MODE_REQ = 0x04
CMD_RESET_REQ = 0x05
CMD_SET_CHANNEL_REQ = 0x06
CMD_SET_REQ = 0x09
CMD_GET_REQ = 0x0A
CMD_SERIALNO_REQ = 0x0B
CMD_FWV_REQ = 0x0C
CMD_RSSI_REQ = 0x0D
CNF = 0x80

# receive-mode byte (CMD_SET_MODE_REQ, Mode_Preselect) -> air modes heard
MODE_CODES: dict[int, frozenset[str]] = {
    0x03: frozenset({"S1"}),  # S2: collector, receives S1 and S1-m
    0x08: frozenset({"T1"}),  # T2 "other": collector, receives T1
    0x09: frozenset({"T1", "C1"}),  # C2/T2 "other": receives both
    0x0E: frozenset({"C1"}),  # C2 "other": collector, receives C1
}
AIR_MODES = ("S1", "T1", "C1")
MODE_CODE = {"S1": 0x03, "T1": 0x08, "C1": 0x0E, "C1T1": 0x09}

# non-volatile parameter memory positions used here (Amber parameter table)
P_UART_CMD_OUT_ENABLE = 0x05
P_RF_CHANNEL = 60
P_RSSI_ENABLE = 69
P_MODE_PRESELECT = 70
PARAM_SIZE = 0x80

SERIAL_NUMBER = bytes.fromhex("0A0B0C0D")  # product id 0x0A (made up), serial
FIRMWARE_VERSION = bytes([3, 4, 0])


def rssi_byte(dbm: float) -> int:
    """The module's RSSI byte for ``dbm``, rounded to whole dBm and kept in -138 .. -11:
    ``(2 * (d + 74)) & 0xFF``, which :func:`rssi_dbm` (and the firmware) reads back exactly
    (docs/amb8465.md §4)."""
    d = max(-138, min(-11, round(dbm)))
    return (2 * (d + 74)) & 0xFF


def rssi_dbm(byte: int) -> int:
    """dBm of an RSSI byte: byte/2 - 74 (byte < 128), (byte - 256)/2 - 74 (byte >= 128), the
    half truncated toward zero as C's ``/`` does (docs/amb8465.md §4, smgwfw.radio.rssi_dbm)."""
    s = byte - 256 if byte >= 128 else byte
    return int(s / 2) - 74


def _xor(data: bytes) -> int:
    c = 0
    for b in data:
        c ^= b
    return c


def amb_frame(cmd: int, payload: bytes = b"") -> bytes:
    """``FF CMD LEN PAYLOAD CS`` (LEN = len(PAYLOAD), CS = XOR from 0xFF through PAYLOAD)."""
    n = len(payload)
    if n > 255:
        raise ValueError(f"payload too long: {n}")
    head = bytes([SOF, cmd, n]) + bytes(payload)
    return head + bytes([_xor(head)])


@dataclass
class RadioStats:
    on_air: int = 0  # telegrams the meters sent (duplicates, replays, send_now included)
    delivered: int = 0  # CMD_DATA_IND frames written to the line
    duplicates: int = 0  # second copies sent by meters
    replays: int = 0  # replay() / send_now() telegrams
    not_heard: int = 0  # sent while the module was not receiving that air mode
    crc_dropped: int = 0  # send_now telegrams with CRCs that did not check (module drops them)
    too_long: int = 0  # telegrams longer than a CMD_DATA_IND can carry (module drops them)
    late_slots: int = 0  # transmission slots skipped because the loop fell behind
    tx_bytes: int = 0  # bytes written to the line (indications and confirmations)
    rx_bytes: int = 0
    commands: int = 0  # good request frames from the driver
    cs_errors: int = 0  # request frames with a bad checksum (ignored, as the module does)
    garbage_bytes: int = 0  # bytes before a 0xFF / of frames that could not be parsed
    unknown_commands: int = 0
    write_errors: int = 0


# ------------------------------------------------------------------------ the module


class Amb8465:
    """The module's UART side, sans I/O. :meth:`feed` takes bytes from the driver and returns
    the confirmations to write; :meth:`indication` turns a received telegram into the
    CMD_DATA_IND frame (or None when the module would not deliver it)."""

    def __init__(self, stats: RadioStats | None = None, *, channel_rssi_dbm: float = -105.0,
                 l_field: bool = True) -> None:
        self.stats = stats if stats is not None else RadioStats()
        self.l_field = l_field
        self.params = bytearray(PARAM_SIZE)
        self.params[P_UART_CMD_OUT_ENABLE] = 1
        self.params[P_RSSI_ENABLE] = 1
        self.params[P_MODE_PRESELECT] = 0  # no receive mode until the driver sets one
        self.params[P_RF_CHANNEL] = 0
        self.mode: int | None = None  # the volatile receive mode byte
        self.rssi_enabled = True
        self.channel_rssi_dbm = channel_rssi_dbm
        self.resets = 0
        self.command_log: list[tuple[int, bytes]] = []
        self._buf = bytearray()

    @property
    def heard(self) -> frozenset[str]:
        """Air modes the module receives now."""
        return MODE_CODES.get(self.mode or -1, frozenset())

    def feed(self, data: bytes) -> bytes:
        """Bytes from the driver -> the bytes the module answers."""
        self.stats.rx_bytes += len(data)
        self._buf += data
        out = bytearray()
        buf = self._buf
        while buf:
            if buf[0] != SOF:
                i = buf.find(SOF)
                n = len(buf) if i < 0 else i
                self.stats.garbage_bytes += n
                del buf[:n]
                continue
            if len(buf) < 3:
                break
            n = buf[2]
            if len(buf) < 4 + n:
                break
            frame = bytes(buf[:4 + n])
            if _xor(frame[:-1]) != frame[-1]:
                # a bad frame: skip its 0xFF and look for the next start
                self.stats.cs_errors += 1
                self.stats.garbage_bytes += 1
                del buf[:1]
                continue
            del buf[:4 + n]
            out += self._command(frame[1], frame[3:3 + n])
        return bytes(out)

    def _command(self, cmd: int, payload: bytes) -> bytes:
        self.stats.commands += 1
        self.command_log.append((cmd, payload))
        if cmd == CMD_SET_MODE_REQ and len(payload) == 1:
            self.mode = payload[0]
            return amb_frame(cmd | CNF, b"\x00")
        if cmd == CMD_RESET_REQ and not payload:
            self.reset()
            return amb_frame(cmd | CNF, b"\x00")
        if cmd == CMD_SET_REQ and len(payload) >= 2:
            pos, n = payload[0], payload[1]
            data = payload[2:]
            if pos + n > PARAM_SIZE:
                return amb_frame(cmd | CNF, b"\x02")  # invalid address
            if len(data) != n:
                return amb_frame(cmd | CNF, b"\x01")
            self.params[pos:pos + n] = data
            return amb_frame(cmd | CNF, b"\x00")
        if cmd == CMD_GET_REQ and len(payload) == 2:
            pos, n = payload
            n = max(0, min(n, PARAM_SIZE - pos))
            return amb_frame(cmd | CNF, bytes([pos, n]) + bytes(self.params[pos:pos + n]))
        if cmd == CMD_SET_CHANNEL_REQ and len(payload) == 1:
            self.params[P_RF_CHANNEL] = payload[0]
            return amb_frame(cmd | CNF, payload)
        if cmd == CMD_SERIALNO_REQ and not payload:
            return amb_frame(cmd | CNF, SERIAL_NUMBER)
        if cmd == CMD_FWV_REQ and not payload:
            return amb_frame(cmd | CNF, FIRMWARE_VERSION)
        if cmd == CMD_RSSI_REQ and not payload:
            return amb_frame(cmd | CNF, bytes([rssi_byte(self.channel_rssi_dbm)]))
        self.stats.unknown_commands += 1
        return b""

    def reset(self) -> None:
        """Software reset: the volatile mode is gone; the stored parameters take effect."""
        self.resets += 1
        pre = self.params[P_MODE_PRESELECT]
        self.mode = pre if pre in MODE_CODES else None
        self.rssi_enabled = bool(self.params[P_RSSI_ENABLE])
        self._buf.clear()

    def indication(self, tg: bytes, air_mode: str, rssi: int) -> bytes | None:
        """CMD_DATA_IND for telegram ``tg`` (from L, no CRCs) heard in ``air_mode`` with RSSI
        byte ``rssi``; None if the module does not receive that mode now."""
        if air_mode not in self.heard:
            return None
        payload = bytes(tg) if self.l_field else bytes(tg[1:])
        if self.rssi_enabled:
            payload += bytes([rssi])
        if len(payload) > 255:
            self.stats.too_long += 1  # more than a module frame carries: lost
            return None
        return amb_frame(CMD_DATA_IND, payload)


def strip_crcs(raw: bytes, frame: str) -> bytes | None:
    """What the module does with a telegram on air: check and remove the DLL CRCs of frame
    ``"A"`` or ``"B"`` (``"none"``: as given). Returns the telegram with L = bytes after L, or
    None when a CRC is wrong or the length does not fit."""
    if frame == "none":
        return bytes(raw)
    if not raw:
        return None
    if frame == "A":
        n = raw[0] + 1  # bytes without CRCs
        spans = [(0, min(10, n))] + [(s, min(s + 16, n)) for s in range(10, n, 16)]
        out = bytearray()
        pos = 0
        for s, e in spans:
            blk = raw[pos:pos + (e - s)]
            crc = raw[pos + (e - s):pos + (e - s) + 2]
            if len(blk) != e - s or len(crc) != 2 or crc16_en13757(blk) != int.from_bytes(
                    crc, "big"):
                return None
            out += blk
            pos += e - s + 2
        return bytes(out) if pos == len(raw) else None
    if frame == "B":
        if len(raw) != raw[0] + 1:
            return None
        if len(raw) <= 128:
            body, crc = raw[:-2], raw[-2:]
            if crc16_en13757(body) != int.from_bytes(crc, "big"):
                return None
            data = body
        else:
            b1, c1, b2, c2 = raw[:126], raw[126:128], raw[128:-2], raw[-2:]
            if (crc16_en13757(b1) != int.from_bytes(c1, "big")
                    or crc16_en13757(b2) != int.from_bytes(c2, "big")):
                return None
            data = b1 + b2
        return bytes([len(data) - 1]) + data[1:]
    raise ValueError(f"frame must be A, B or none, got {frame!r}")


# ------------------------------------------------------------------------ meter profiles


def _ms(t: float) -> int:
    return max(0, round(t * 1000))


def _dec(n: int, places: int) -> str:
    """``n`` * 10^-places as an exact decimal string with ``places`` decimals."""
    return str(Decimal(n).scaleb(-places))


class _Profile:
    """A value function ``t -> [Value]`` with exact, monotone registers: consumption at a
    constant rate per meter (from ``seed``), integrated in integers. ``start``: the meter's
    clock at t = 0 (default: now, to the minute); the values are a pure function of ``t``."""

    def __init__(self, seed: int, start: dt.datetime | None = None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        s = start if start is not None else dt.datetime.now()
        self.start = s.replace(second=0, microsecond=0, tzinfo=None)

    def now(self, t: float) -> dt.datetime:
        return self.start + dt.timedelta(milliseconds=_ms(t))

    def billing_date(self, t: float) -> dt.date:
        n = self.now(t)
        return dt.date(n.year, n.month, 1)

    def __call__(self, t: float) -> list[Value]:
        raise NotImplementedError


class WaterProfile(_Profile):
    """Water meter: volume (litres, int32), volume at the last billing date (storage 1) and
    that date, flow (l/h), date/time (type F), error flags."""

    def __init__(self, seed: int, start: dt.datetime | None = None) -> None:
        super().__init__(seed, start)
        self.start_l = self.rng.randint(10_000, 900_000)
        self.ml_per_s = self.rng.randint(5, 60)  # 18 .. 216 l/h

    def litres(self, t: float) -> int:
        return self.start_l + self.ml_per_s * _ms(t) // 1_000_000

    def __call__(self, t: float) -> list[Value]:
        now = self.now(t)
        bill = self.billing_date(t)
        t_bill = max(0.0, (dt.datetime(bill.year, bill.month, bill.day) - self.start)
                     .total_seconds())
        return [
            Value("volume", "m3", _dec(self.litres(t), 3)),
            Value("datetime", None, now.strftime("%Y-%m-%dT%H:%M")),
            Value("volume_flow", "m3/h", _dec(self.ml_per_s * 36, 4)),  # 3.6 l/h per ml/s
            Value("error_flags", None, 0),
            Value("date", None, bill.isoformat(), storage=1),
            Value("volume", "m3", _dec(self.litres(t_bill), 3), storage=1),
        ]


class GasProfile(_Profile):
    """Gas meter like vector V1: volume (BCD, 10^-2 m3), date/time, error flags."""

    def __init__(self, seed: int, start: dt.datetime | None = None) -> None:
        super().__init__(seed, start)
        self.start_l = self.rng.randint(1_000_000, 50_000_000)
        self.ml_per_s = self.rng.randint(100, 900)  # 0.36 .. 3.2 m3/h

    def __call__(self, t: float) -> list[Value]:
        dal = (self.start_l + self.ml_per_s * _ms(t) // 1_000_000) // 10  # 10^-2 m3
        return [
            Value("volume", "m3", _dec(dal, 2), data_type="bcd8"),
            Value("datetime", None, self.now(t).strftime("%Y-%m-%dT%H:%M")),
            Value("error_flags", None, 0),
        ]


class HeatProfile(_Profile):
    """Heat meter: energy (kWh), volume (litres), power (W), flow (l/h), flow and return
    temperatures (0.1 °C), temperature difference (0.01 K), date/time, error flags, billing
    date and energy at it (storage 1)."""

    def __init__(self, seed: int, start: dt.datetime | None = None) -> None:
        super().__init__(seed, start)
        self.start_wh = self.rng.randint(1_000, 50_000) * 1000
        self.power_w = self.rng.randint(500, 9000)
        self.flow_c = self.rng.randint(450, 750)  # 0.1 °C
        self.dt_c = self.rng.randint(50, 250)  # 0.1 K
        # flow from power and dT: m3/h = P / (1.163 * dT) kWh/m3K, in litres per hour
        self.l_per_h = max(1, round(self.power_w / (1.163 * self.dt_c / 10)))

    def wh(self, t: float) -> int:
        return self.start_wh + self.power_w * _ms(t) // 3_600_000

    def __call__(self, t: float) -> list[Value]:
        now = self.now(t)
        bill = self.billing_date(t)
        t_bill = max(0.0, (dt.datetime(bill.year, bill.month, bill.day) - self.start)
                     .total_seconds())
        litres = self.l_per_h * _ms(t) // 3_600_000
        ret = self.flow_c - self.dt_c
        return [
            Value("energy", "Wh", f"{self.wh(t) // 1000}E3"),
            Value("volume", "m3", _dec(litres, 3)),
            Value("power", "W", str(self.power_w)),
            Value("volume_flow", "m3/h", _dec(self.l_per_h, 3)),
            Value("flow_temperature", "°C", _dec(self.flow_c, 1)),
            Value("return_temperature", "°C", _dec(ret, 1)),
            Value("temperature_difference", "K", _dec(self.dt_c * 10, 2)),
            Value("datetime", None, now.strftime("%Y-%m-%dT%H:%M")),
            Value("error_flags", None, 0),
            Value("date", None, bill.isoformat(), storage=1),
            Value("energy", "Wh", f"{self.wh(t_bill) // 1000}E3", storage=1),
        ]


class HcaProfile(_Profile):
    """Heat cost allocator: units now, set date and units at it (storage 1), radiator and
    room temperatures (0.01 °C), date/time."""

    def __init__(self, seed: int, start: dt.datetime | None = None) -> None:
        super().__init__(seed, start)
        self.start_units = self.rng.randint(0, 5000)
        self.units_per_h = self.rng.randint(1, 30)
        self.radiator = self.rng.randint(2500, 5500)
        self.room = self.rng.randint(1800, 2400)

    def units(self, t: float) -> int:
        return self.start_units + self.units_per_h * _ms(t) // 3_600_000

    def __call__(self, t: float) -> list[Value]:
        bill = self.billing_date(t)
        t_bill = max(0.0, (dt.datetime(bill.year, bill.month, bill.day) - self.start)
                     .total_seconds())
        return [
            Value("datetime", None, self.now(t).strftime("%Y-%m-%dT%H:%M")),
            Value("hca", None, self.units(t), data_type="bcd6"),
            Value("date", None, bill.isoformat(), storage=1),
            Value("hca", None, self.units(t_bill), storage=1, data_type="bcd6"),
            Value("flow_temperature", "°C", _dec(self.radiator, 2)),
            Value("external_temperature", "°C", _dec(self.room, 2)),
        ]


class ElectricityProfile(_Profile):
    """Electricity meter: import energy (0.1 Wh, int48) in tariffs 1 and 2 and total, power."""

    def __init__(self, seed: int, start: dt.datetime | None = None) -> None:
        super().__init__(seed, start)
        self.start_dwh = self.rng.randint(10**6, 10**9)
        self.power_w = self.rng.randint(100, 4000)

    def __call__(self, t: float) -> list[Value]:
        dwh = self.start_dwh + self.power_w * _ms(t) // 360_000
        t1 = dwh * 2 // 3
        return [
            Value("energy", "Wh", _dec(dwh, 1), data_type="int48"),
            Value("energy", "Wh", _dec(t1, 1), tariff=1, data_type="int48"),
            Value("energy", "Wh", _dec(dwh - t1, 1), tariff=2, data_type="int48"),
            Value("power", "W", str(self.power_w)),
            Value("datetime", None, self.now(t).strftime("%Y-%m-%dT%H:%M")),
        ]


PROFILES: dict[str, tuple[type[_Profile], int]] = {
    "water": (WaterProfile, DEVICE_TYPES["water"]),
    "gas": (GasProfile, DEVICE_TYPES["gas"]),
    "heat": (HeatProfile, DEVICE_TYPES["heat"]),
    "hca": (HcaProfile, DEVICE_TYPES["hca"]),
    "electricity": (ElectricityProfile, DEVICE_TYPES["electricity"]),
}


def derive_key(secret: bytes, meter_id: str) -> bytes:
    """A deterministic 16-byte meter key from ``secret`` and the meter id (HMAC-SHA256,
    truncated), so that a bench prints the same keys every run. Real meters get random keys
    from the manufacturer."""
    return hmac.new(bytes(secret), b"SMGW-SIM-WMBUS" + meter_id.encode(),
                    hashlib.sha256).digest()[:16]


def default_meters(
    n: int = 4,
    *,
    secret: bytes = b"smgw-sim",
    kinds: Sequence[str] = ("water", "gas", "heat", "hca", "electricity"),
    modes: Sequence[int] = (5, 7),
    manufacturer: str = "SIM",
    first_id: int = 1,
    frame: str = "A",
    start: dt.datetime | None = None,
) -> list[tuple[Meter, Callable[[float], Sequence[Value]]]]:
    """``n`` simulated meters: kinds and security modes in turn, ids ``first_id``, ... (8
    digits), keys from :func:`derive_key`; long headers for every third meter; clocks starting
    at ``start`` (default: now). The FLAG "SIM" is made up (as for the SML simulators)."""
    start = start if start is not None else dt.datetime.now()
    out = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        cls, dtype = PROFILES[kind]
        ident = f"{first_id + i:08d}"
        mode = modes[i % len(modes)]
        meter = Meter(manufacturer, ident, version=1, device_type=dtype,
                      key=derive_key(secret, ident) if mode else None, mode=mode,
                      header="long" if i % 3 == 2 else "short", frame=frame)
        out.append((meter, cls(seed=first_id + i, start=start)))
    return out


# ------------------------------------------------------------------------ the radio


@dataclass
class _Tx:
    telegram: bytes  # from L, no CRCs
    meter: int | None  # index, None for send_now
    kind: str  # "new", "duplicate", "replay"


@dataclass
class _MeterSlot:
    meter: Meter
    value_fn: Callable[[float], Sequence[Value]]
    rssi_dbm: float
    access_number: int
    counter: int
    sent: int = 0
    last: bytes | None = None
    errors: int = 0
    history: collections.deque = field(default_factory=lambda: collections.deque(maxlen=64))


class WmbusRadioSim:
    """Meters on the air and the AMB8465 module that hears them, on ``port`` (a device path or
    pyserial URL opened at ``baud``, or an open object with ``write`` and a non-blocking
    ``read``). ``meters``: ``(Meter, value_fn)`` pairs; ``rate_per_s``: telegrams per second,
    all meters together (0 = only :meth:`send_now`); ``mode``: the air mode the meters send in
    (``"T1"``, ``"C1"`` or ``"S1"``); ``duplicate_prob``: chance that a telegram is sent a second
    time (in the next slot); ``seed``: first access numbers, RSSI levels, duplicates;
    ``speed``: simulated seconds per wall second for the value functions; ``l_field``: see
    :class:`Amb8465`."""

    def __init__(
        self,
        port: Any,
        meters: Iterable[tuple[Meter, Callable[[float], Sequence[Value]]]] = (),
        rate_per_s: float = 10.0,
        mode: str = "T1",
        duplicate_prob: float = 0.0,
        seed: int = 0,
        *,
        baud: int = 9600,
        speed: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        rssi_noise_db: float = 2.0,
        l_field: bool = True,
    ) -> None:
        if mode not in AIR_MODES:
            raise ValueError(f"mode must be one of {', '.join(AIR_MODES)}, got {mode!r}")
        if rate_per_s < 0:
            raise ValueError("rate_per_s must be >= 0")
        if not 0.0 <= duplicate_prob <= 1.0:
            raise ValueError("duplicate_prob must be in 0..1")
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.port = port
        self.baud = baud
        self.rate_per_s = float(rate_per_s)
        self.air_mode = mode
        self.duplicate_prob = duplicate_prob
        self.speed = speed
        self.clock = clock
        self.rssi_noise_db = rssi_noise_db
        self.rng = random.Random(seed)
        self.counters = RadioStats()
        self.module = Amb8465(self.counters, l_field=l_field)
        self.slots: list[_MeterSlot] = []
        self._next = 0  # round robin
        self._queue: collections.deque[_Tx] = collections.deque()  # duplicates
        self._urgent: collections.deque[_Tx] = collections.deque()  # send_now / replay
        self._lock = threading.RLock()
        self._t0: float | None = None
        self._k = 0  # slots used since t0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.error: OSError | None = None  # why run() ended, if the line failed
        self.last_error: str | None = None  # the last telegram a value function spoiled
        for meter, fn in meters:
            self.add(meter, fn)

    def add(self, meter: Meter, value_fn: Callable[[float], Sequence[Value]]) -> int:
        """Adds a meter; returns its index."""
        if self.air_mode == "T1" and meter.frame == "B":
            raise ValueError(f"meter {meter.id}: T1 carries frame format A only")
        with self._lock:
            self.slots.append(_MeterSlot(
                meter, value_fn, rssi_dbm=self.rng.uniform(-95.0, -55.0),
                access_number=self.rng.randrange(256),
                counter=self.rng.randrange(1, 1 << 20)))
            return len(self.slots) - 1

    # -------------------------------------------------------------- sans-I/O core

    def sim_t(self, now: float) -> float:
        if self._t0 is None:
            self._t0 = now
        return max(0.0, now - self._t0) * self.speed

    def make_telegram(self, index: int, now: float) -> bytes:
        """Meter ``index``'s next telegram (from L, no CRCs): values at ``now``, next access
        number and counter."""
        s = self.slots[index]
        values = s.value_fn(self.sim_t(now))
        m = s.meter if s.meter.frame == "none" else _no_frame(s.meter)
        tg = telegram(m, values, s.access_number,
                      counter=s.counter if m.mode == 7 else None)
        s.access_number = (s.access_number + 1) & 0xFF
        s.counter = (s.counter + 1) & 0xFFFFFFFF
        s.sent += 1
        s.last = tg
        s.history.append(tg)
        return tg

    def _rssi(self, index: int | None) -> int:
        base = self.slots[index].rssi_dbm if index is not None else -70.0
        # whole dBm (rssi_byte rounds): the driver reads back exactly what was sent
        return rssi_byte(base + self.rng.uniform(-self.rssi_noise_db, self.rssi_noise_db))

    def transmit(self, tx: _Tx) -> bytes:
        """``tx`` goes on the air: the bytes the module writes to the line (empty if it does
        not hear it)."""
        st = self.counters
        st.on_air += 1
        if tx.kind == "duplicate":
            st.duplicates += 1
        elif tx.kind == "replay":
            st.replays += 1
        if self.air_mode not in self.module.heard:
            st.not_heard += 1
            return b""
        wire = self.module.indication(tx.telegram, self.air_mode, self._rssi(tx.meter))
        if wire is None:
            return b""
        st.delivered += 1
        return wire

    def next_slot(self, now: float) -> bytes:
        """One transmission slot at ``now``: a pending duplicate, else the next meter's new
        telegram (which may be scheduled for a duplicate). Returns the line bytes."""
        with self._lock:
            if self._queue:
                return self.transmit(self._queue.popleft())
            if not self.slots:
                return b""
            i = self._next
            self._next = (self._next + 1) % len(self.slots)
            try:
                tg = self.make_telegram(i, now)
            except ValueError as e:  # a value function gave what cannot be sent: skip the slot
                self.slots[i].errors += 1
                self.last_error = f"meter {self.slots[i].meter.id}: {e}"
                return b""
            tx = _Tx(tg, i, "new")
            if self.duplicate_prob and self.rng.random() < self.duplicate_prob:
                self._queue.append(_Tx(tg, i, "duplicate"))
            return self.transmit(tx)

    def urgent(self) -> bytes:
        """The line bytes of pending :meth:`send_now` / :meth:`replay` telegrams."""
        out = bytearray()
        with self._lock:
            while self._urgent:
                out += self.transmit(self._urgent.popleft())
        return bytes(out)

    def send_now(self, tg: bytes, *, frame: str = "none", meter: int | None = None) -> bool:
        """Puts ``tg`` on the air at once (the loop sends it before the next slot). ``frame``:
        ``"A"``/``"B"`` if ``tg`` still has its DLL CRCs (the module checks and strips them; a
        bad one and the telegram is dropped: returns False). ``meter``: whose RSSI to use."""
        raw = strip_crcs(bytes(tg), frame)
        with self._lock:
            if raw is None:
                self.counters.crc_dropped += 1
                return False
            self._urgent.append(_Tx(raw, meter, "replay"))
        return True

    def replay(self, index: int, back: int = 1) -> bytes:
        """Re-sends meter ``index``'s ``back``-th last telegram (1 = the last); returns it."""
        with self._lock:
            h = self.slots[index].history
            if len(h) < back:
                raise ValueError(f"meter {index} has sent only {len(h)} telegrams")
            tg = h[-back]
            self._urgent.append(_Tx(tg, index, "replay"))
            return tg

    def feed(self, data: bytes) -> bytes:
        """Bytes from the driver -> confirmations to write."""
        with self._lock:
            return self.module.feed(data)

    # -------------------------------------------------------------- I/O

    def _open(self) -> tuple[Any, bool]:
        if isinstance(self.port, str):
            import serial

            return serial.serial_for_url(self.port, baudrate=self.baud, timeout=0,
                                         write_timeout=2), True
        return self.port, False

    def _read(self, ser: Any, readable: bool) -> bytes:
        n = getattr(ser, "in_waiting", None)
        if n is None:
            return ser.read(4096) or b""
        if n:
            return ser.read(n)
        if readable:
            return ser.read(1)  # a hang-up shows as an error on this read
        return b""

    def _wait(self, ser: Any, timeout: float) -> bool:
        try:
            fd = ser.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None
        if fd is not None:
            return bool(select.select([fd], [], [], max(0.0, timeout))[0])
        time.sleep(min(max(0.0, timeout), 0.001))
        return False

    def _write(self, ser: Any, data: bytes) -> None:
        if not data:
            return
        try:
            ser.write(data)
        except Exception as e:
            # pyserial's write timeout (an OSError subclass): the line is stuck, the bytes are
            # lost, as a module's UART buffer would overflow
            if type(e).__name__ != "SerialTimeoutException":
                raise
            self.counters.write_errors += 1
            return
        self.counters.tx_bytes += len(data)

    def run(self, stop_event: threading.Event | None = None) -> None:
        """The loop: answer the driver, send due slots at ``rate_per_s``, until ``stop_event``."""
        stop = stop_event if stop_event is not None else self._stop
        ser, owned = self._open()
        readable = False
        try:
            t0 = self.clock()
            self.sim_t(t0)
            self._k = 0
            while not stop.is_set():
                try:
                    data = self._read(ser, readable)
                except OSError as e:
                    self.error = e
                    break
                if data:
                    self._write(ser, self.feed(data))
                self._write(ser, self.urgent())
                now = self.clock()
                if self.rate_per_s > 0:
                    due = t0 + self._k / self.rate_per_s
                    if now >= due:
                        # fell behind by more than half a second: skip slots, never burst
                        behind = int((now - due) * self.rate_per_s)
                        if behind > max(1, self.rate_per_s / 2):
                            self.counters.late_slots += behind
                            self._k += behind
                        self._write(ser, self.next_slot(now))
                        self._k += 1
                    wait = t0 + self._k / self.rate_per_s - self.clock()
                else:
                    wait = 0.01
                readable = self._wait(ser, min(0.01, wait))
        except OSError as e:
            self.error = e
        finally:
            if owned:
                ser.close()

    def start(self) -> WmbusRadioSim:
        if self._thread is not None:
            raise RuntimeError("radio already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, args=(self._stop,), name="wmbus-radio",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> WmbusRadioSim:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stats(self) -> dict[str, Any]:
        """Counters of the line and of each meter (sent, access number and counter next)."""
        with self._lock:
            return {
                "radio": asdict(self.counters),
                "module": {"mode": self.module.mode, "resets": self.module.resets,
                           "heard": sorted(self.module.heard)},
                "air_mode": self.air_mode,
                "meters": [{"manufacturer": s.meter.manufacturer, "id": s.meter.id,
                            "mode": s.meter.mode, "sent": s.sent,
                            "next_access_number": s.access_number,
                            "next_counter": s.counter, "errors": s.errors}
                           for s in self.slots],
                "line_error": None if self.error is None else str(self.error),
                "last_error": self.last_error,
            }

    def meters_info(self) -> list[dict[str, Any]]:
        """What a bench user enters into the gateway's meter profiles: address and key."""
        return [{"manufacturer": s.meter.manufacturer, "id": s.meter.id,
                 "version": s.meter.version, "device_type": s.meter.device_type,
                 "mode": s.meter.mode, "key": s.meter.key.hex().upper() if s.meter.key else None}
                for s in self.slots]


def _no_frame(meter: Meter) -> Meter:
    return replace(meter, frame="none")
