"""A simulated SML push meter, like an eHZ on its info interface: every ``period_s`` it pushes an
SML file (PublicOpen.Res, GetList.Res, PublicClose.Res) with its energy registers and power.

Time ``t`` is simulated seconds since the meter started. A *profile* gives the power drawn at
every instant (watts, positive = import from the grid, negative = feed-in) and its exact
integral, so registers never drift: all energy bookkeeping is in integers (milliwatts times
milliseconds), registers are the integral floored to 0.1 Wh, hence monotone.

    meter = SmlMeter(bytes.fromhex("0A01534D4701000030 39"), DailyProfile(seed=7))
    frame = meter.frame_at(3600.0)          # one valid transport frame, pure function of t
    for chunk in meter.frames(43_200): ...  # a simulated day at one frame per 2 s, with faults
    meter.run("/dev/ttyUSB0")               # push frames in real time (or faster, speed=...)

Faults on demand (counted in ``meter.stats``): ``corrupt_every=N`` flips one payload byte of
every N-th frame (its transport CRC and the CRC of the message holding the byte then fail);
``garbage_every=N`` sends 1-32 random bytes before every N-th frame (never 0x1B, so the
garbage cannot fake an escape sequence or hide the next start sequence); ``kermit=True``
behaves like a Holley DTZ541: CRC-16/KERMIT everywhere, 3-byte transaction ids, long tags, no
actSensorTime, and the bare Unsigned32 valTime quirk.
"""

from __future__ import annotations

import math
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator

from smgw.meters import smlencode as enc
from smgw.meters.smlencode import Int, Raw, UInt

# 0.1 Wh = 360 J = 360e6 mW*ms
MWMS_PER_DWH = 360_000_000
DAY_MS = 86_400_000

# "1SIM0100012345": id type 0x0A, medium 1 (electricity), FLAG "SIM" (made up for the
# simulator), fabrication block 01, serial 00012345
DEFAULT_SERVER_ID = bytes.fromhex("0A01") + b"SIM" + b"\x01" + (12345).to_bytes(4, "big")


def _ms(t: float) -> int:
    if t < 0:
        raise ValueError(f"time must be >= 0, got {t}")
    return round(t * 1000)


# ------------------------------------------------------------------ profiles


class Profile:
    """Power over simulated time. Subclasses give ``power_mw(ms)`` and the exact cumulative
    ``energy_mwms(ms) -> (import, export)`` since t = 0, both nondecreasing in ``ms``."""

    feeds_in: bool = False

    def power_mw(self, ms: int) -> int:
        raise NotImplementedError

    def energy_mwms(self, ms: int) -> tuple[int, int]:
        raise NotImplementedError

    def power_w(self, t: float) -> float:
        return self.power_mw(_ms(t)) / 1000


class ConstantPower(Profile):
    """Constant ``watts`` (resolution 1 mW); negative means constant feed-in."""

    def __init__(self, watts: float) -> None:
        self.mw = round(watts * 1000)
        self.feeds_in = self.mw < 0

    def power_mw(self, ms: int) -> int:
        return self.mw

    def energy_mwms(self, ms: int) -> tuple[int, int]:
        if self.mw >= 0:
            return self.mw * ms, 0
        return 0, -self.mw * ms

    def __repr__(self) -> str:
        return f"ConstantPower({self.mw / 1000:g})"


@dataclass(frozen=True)
class _Household:
    base_w: float  # standby + always-on devices
    fridge_w: float
    fridge_period: int  # minutes
    fridge_on: int  # minutes on per period
    fridge_phase: int
    morning_w: float
    midday_w: float
    evening_w: float
    wake_h: float  # weekday wake-up hour
    dinner_h: float


class DailyProfile(Profile):
    """A household: night base load with a cycling fridge, a morning peak (later on weekends),
    a small midday bump and an evening peak, plus appliance events (kettle, cooking, washing
    machine) and a little noise. Optional PV (``pv_peak_w``) subtracts a midday bell with
    per-day cloudiness; net power below zero is feed-in.

    Power is constant within each minute and in whole watts. The household (base load, peak
    sizes, habits) comes from ``seed``; each day's events from ``(seed, day)``; everything is
    deterministic, whatever the process or platform. ``start_s`` is the time of day (seconds
    after midnight) at meter t = 0; day 0 is a Monday.
    """

    SLOT_MS = 60_000
    SLOTS = 1440

    def __init__(self, seed: int, *, pv_peak_w: float = 0.0, start_s: float = 0.0) -> None:
        self.seed = int(seed)
        self.pv_peak_w = float(pv_peak_w)
        self.feeds_in = self.pv_peak_w > 0
        self.start_ms = _ms(start_s)
        r = random.Random(self.seed)
        self.household = _Household(
            base_w=r.uniform(90, 200),
            fridge_w=r.uniform(60, 120),
            fridge_period=r.randint(40, 70),
            fridge_on=r.randint(12, 25),
            fridge_phase=r.randrange(70),
            morning_w=r.uniform(400, 900),
            midday_w=r.uniform(100, 400),
            evening_w=r.uniform(700, 1400),
            wake_h=r.uniform(5.8, 7.5),
            dinner_h=r.uniform(17.5, 19.5),
        )
        self._days: dict[int, tuple[list[int], list[int], list[int]]] = {}
        self._cum: list[tuple[int, int]] = [(0, 0)]  # energy (W*slot) before day d, absolute
        self._offset = self._absolute_energy(self.start_ms)

    # -------------------------------------------------------------- the curve

    def day_watts(self, day: int) -> list[int]:
        """The 1440 per-minute net power values (W) of simulated day ``day`` (0 = first)."""
        return list(self._day(day)[0])

    def _make_day(self, day: int) -> list[int]:
        h = self.household
        r = random.Random(self.seed * 1_000_003 + day)
        weekend = day % 7 in (5, 6)
        wake = h.wake_h + (1.5 if weekend else 0.0) + r.uniform(-0.4, 0.4)
        dinner = h.dinner_h + r.uniform(-0.5, 0.5)
        load = [0.0] * self.SLOTS
        for m in range(self.SLOTS):
            x = m / 60.0
            w = h.base_w
            if (m + h.fridge_phase) % h.fridge_period < h.fridge_on:
                w += h.fridge_w
            if x > wake - 0.5:
                w += h.morning_w * math.exp(-(((x - wake - 0.8) / 0.9) ** 2))
            w += h.midday_w * (1.6 if weekend else 1.0) * math.exp(-(((x - 12.75) / 1.3) ** 2))
            w += h.evening_w * math.exp(-(((x - dinner - 1.0) / 1.8) ** 2))
            w *= 1.0 + r.uniform(-0.06, 0.06)
            load[m] = w

        def event(start_h: float, minutes: int, watts: float) -> None:
            s = int(start_h * 60)
            for m in range(max(0, s), min(self.SLOTS, s + minutes)):
                load[m] += watts

        for _ in range(r.randint(1, 2)):  # kettle / coffee in the morning
            event(wake + r.uniform(0.0, 1.0), r.randint(2, 4), 2000)
        event(dinner + r.uniform(-0.3, 0.2), r.randint(25, 50), r.uniform(1500, 2800))  # cooking
        if r.random() < (0.7 if weekend else 0.35):  # washing machine: heat, then drum
            s = r.uniform(9.0, 16.0)
            event(s, 15, 2000)
            event(s + 0.25, 75, 250)
        if r.random() < 0.5:  # evening kettle
            event(dinner + r.uniform(1.5, 3.0), 3, 2000)
        if self.pv_peak_w > 0:
            clear = r.uniform(0.25, 1.0)
            for m in range(self.SLOTS):
                x = m / 60.0
                if 6.0 < x < 20.0:
                    cloud = 1.0 - (1.0 - clear) * r.random()
                    load[m] -= self.pv_peak_w * cloud * math.sin(math.pi * (x - 6.0) / 14.0) ** 2
        return [round(w) for w in load]

    def _day(self, day: int) -> tuple[list[int], list[int], list[int]]:
        d = self._days.get(day)
        if d is None:
            watts = self._make_day(day)
            imp = [0] * (self.SLOTS + 1)
            exp = [0] * (self.SLOTS + 1)
            a = b = 0
            for i, w in enumerate(watts):
                if w > 0:
                    a += w
                else:
                    b -= w
                imp[i + 1] = a
                exp[i + 1] = b
            if len(self._days) >= 8:
                self._days.pop(next(iter(self._days)))
            d = self._days[day] = (watts, imp, exp)
        return d

    # -------------------------------------------------------------- Profile API

    def _absolute_energy(self, abs_ms: int) -> tuple[int, int]:
        day, r = divmod(abs_ms, DAY_MS)
        while len(self._cum) <= day:
            _, imp, exp = self._day(len(self._cum) - 1)
            a, b = self._cum[-1]
            self._cum.append((a + imp[-1], b + exp[-1]))
        watts, imp, exp = self._day(day)
        slot, within = divmod(r, self.SLOT_MS)
        a, b = self._cum[day]
        w = watts[slot] if slot < self.SLOTS else 0
        ia = (a + imp[slot]) * self.SLOT_MS * 1000 + max(w, 0) * 1000 * within
        ib = (b + exp[slot]) * self.SLOT_MS * 1000 + max(-w, 0) * 1000 * within
        return ia, ib

    def power_mw(self, ms: int) -> int:
        day, r = divmod(ms + self.start_ms, DAY_MS)
        return self._day(day)[0][r // self.SLOT_MS] * 1000

    def energy_mwms(self, ms: int) -> tuple[int, int]:
        a, b = self._absolute_energy(ms + self.start_ms)
        return a - self._offset[0], b - self._offset[1]

    def __repr__(self) -> str:
        return f"DailyProfile({self.seed}, pv_peak_w={self.pv_peak_w:g})"


def parse_profile(spec: str) -> Profile:
    """``constant:WATTS`` | ``daily:SEED`` | ``daily:SEED:pv=PEAK_W`` (CLI syntax)."""
    kind, _, rest = spec.partition(":")
    if kind == "constant" and rest:
        return ConstantPower(float(rest))
    if kind == "daily" and rest:
        seed, *opts = rest.split(":")
        kwargs: dict[str, float] = {}
        for o in opts:
            k, _, v = o.partition("=")
            if k == "pv":
                kwargs["pv_peak_w"] = float(v)
            elif k == "start":
                hh, _, mm = v.partition("h")
                kwargs["start_s"] = float(hh) * 3600 + float(mm or 0) * 60
            else:
                raise ValueError(f"unknown daily profile option {o!r}")
        return DailyProfile(int(seed), **kwargs)
    raise ValueError(f"bad profile {spec!r}: use constant:WATTS or daily:SEED[:pv=W]")


# ------------------------------------------------------------------ the meter


@dataclass
class MeterStats:
    frames: int = 0
    corrupted: int = 0
    garbage: int = 0
    garbage_bytes: int = 0
    bytes: int = 0


class SmlMeter:
    """``profile``: a Profile (default 500 W constant). ``start_wh`` / ``start_export_wh``:
    register values at t = 0. ``two_way``: send 2.8.0 too (default: if the profile feeds in).
    ``crc``: "x25" or "kermit"; ``kermit=True`` also switches to the DTZ541 message layout.
    ``status``: the status word sent with the energy registers. ``sec_index0``: secIndex at
    t = 0."""

    def __init__(
        self,
        server_id: bytes | str = DEFAULT_SERVER_ID,
        profile: Profile | None = None,
        period_s: float = 2.0,
        start_wh: float = 0.0,
        crc: str = "x25",
        *,
        start_export_wh: float = 0.0,
        two_way: bool | None = None,
        kermit: bool = False,
        corrupt_every: int | None = None,
        garbage_every: int | None = None,
        fault_seed: int = 0,
        status: int = 0x182,
        sec_index0: int = 0,
    ) -> None:
        if isinstance(server_id, str):
            server_id = bytes.fromhex(server_id)
        self.server_id = bytes(server_id)
        self.profile = profile if profile is not None else ConstantPower(500)
        if period_s <= 0:
            raise ValueError("period_s must be > 0")
        self.period_s = float(period_s)
        if start_wh < 0 or start_export_wh < 0:
            raise ValueError("register start values must be >= 0")
        self.start_dwh = round(start_wh * 10)
        self.start_export_dwh = round(start_export_wh * 10)
        self.kermit = bool(kermit)
        self.crc = "kermit" if kermit else crc
        if self.crc not in ("x25", "kermit"):
            raise ValueError(f"crc must be 'x25' or 'kermit', got {crc!r}")
        self.two_way = self.profile.feeds_in if two_way is None else bool(two_way)
        for name, v in (("corrupt_every", corrupt_every), ("garbage_every", garbage_every)):
            if v is not None and v < 1:
                raise ValueError(f"{name} must be >= 1")
        self.corrupt_every = corrupt_every
        self.garbage_every = garbage_every
        self.fault_seed = fault_seed
        self.status = status
        self.sec_index0 = sec_index0
        self.stats = MeterStats()
        flag = self.server_id[2:5]
        self.flag = flag.decode("ascii") if len(self.server_id) == 10 and flag.isalpha() else None

    # -------------------------------------------------------------- values

    def registers_at(self, t: float) -> tuple[int, int]:
        """(import, export) registers at ``t`` in 0.1 Wh."""
        a, b = self.profile.energy_mwms(_ms(t))
        return self.start_dwh + a // MWMS_PER_DWH, self.start_export_dwh + b // MWMS_PER_DWH

    def power_w(self, t: float) -> float:
        return self.profile.power_mw(_ms(t)) / 1000

    def sec_index_at(self, t: float) -> int:
        return (self.sec_index0 + int(_ms(t) // 1000)) & 0xFFFFFFFF

    def readings_at(self, t: float) -> list[dict[str, Any]]:
        ms = _ms(t)
        imp, exp = self.registers_at(t)
        mw = self.profile.power_mw(ms)
        sid = self.server_id
        if self.kermit:  # Holley DTZ541 layout (see design note 4.7, S4)
            vt = Raw(enc.uint(self.sec_index_at(t), 4))
            st = UInt(self.status, 4)
            out: list[dict[str, Any]] = []
            if self.flag:
                out.append({"obis": "1-0:96.50.1*1", "value": self.flag})
            out.append({"obis": "1-0:96.1.0", "value": sid})
            out.append({"obis": "1-0:1.8.0", "status": st, "val_time": vt, "unit": 30,
                        "scaler": -1, "value": imp})
            if self.two_way:
                out.append({"obis": "1-0:2.8.0", "status": st, "val_time": vt, "unit": 30,
                            "scaler": -1, "value": exp})
            out.append({"obis": "1-0:16.7.0", "unit": 27, "scaler": 0,
                        "value": Int(round(mw / 1000))})
            return out
        out = []
        if self.flag:
            out.append({"obis": "129-129:199.130.3", "value": self.flag})
        out.append({"obis": "1-0:96.1.0", "value": sid})
        out.append({"obis": "1-0:1.8.0", "status": self.status, "unit": 30, "scaler": -1,
                    "value": imp})
        if self.two_way:
            out.append({"obis": "1-0:2.8.0", "status": self.status, "unit": 30, "scaler": -1,
                        "value": exp})
        out.append({"obis": "1-0:16.7.0", "unit": 27, "scaler": -2, "value": Int(round(mw / 10))})
        return out

    # -------------------------------------------------------------- frames

    def frame_at(self, t: float) -> bytes:
        """The valid transport frame the meter sends at ``t``; a pure function of ``t`` (the
        transaction ids derive from it too)."""
        ms = _ms(t)
        if self.kermit:
            return enc.encode_file(
                self.server_id,
                self.readings_at(t),
                transaction_id=((ms * 4) & 0xFFFFFF).to_bytes(3, "big"),
                act_sensor_time=None,
                crc=self.crc,
                req_file_id=self.sec_index_at(t).to_bytes(6, "big"),
                tag_width=4,
            )
        return enc.encode_file(
            self.server_id,
            self.readings_at(t),
            transaction_id=(ms * 4) & 0xFFFFFFFF,
            act_sensor_time=self.sec_index_at(t),
            crc=self.crc,
            list_name=enc.LIST_NAME,
        )

    def _fault_rng(self) -> random.Random:
        return random.Random(self.fault_seed)

    def _chunk(self, k: int, t: float, rng: random.Random) -> bytes:
        """Frame number ``k`` (0-based) at ``t`` with the requested faults applied."""
        frame = self.frame_at(t)
        n = k + 1
        if self.corrupt_every and n % self.corrupt_every == 0:
            frame = corrupt(frame, rng)
            self.stats.corrupted += 1
        garbage = b""
        if self.garbage_every and n % self.garbage_every == 0:
            garbage = bytes(rng.choice(_GARBAGE_BYTES) for _ in range(rng.randint(1, 32)))
            self.stats.garbage += 1
            self.stats.garbage_bytes += len(garbage)
        self.stats.frames += 1
        chunk = garbage + frame
        self.stats.bytes += len(chunk)
        return chunk

    def frames(
        self, n: int, start_t: float = 0.0, period: float | None = None
    ) -> Iterator[bytes]:
        """``n`` consecutive pushes at ``start_t + k * period`` (default ``period_s``), faults
        included: each item is the bytes the meter writes for one push (garbage, if any, then
        the frame). Fault counting starts at this call's first frame."""
        period = self.period_s if period is None else period
        rng = self._fault_rng()
        for k in range(n):
            yield self._chunk(k, start_t + k * period, rng)

    def run(
        self,
        port: Any,
        *,
        speed: float = 1.0,
        count: int | None = None,
        stop_event: threading.Event | None = None,
        baudrate: int = 9600,
        start_t: float = 0.0,
    ) -> int:
        """Writes a push every ``period_s / speed`` wall seconds to ``port`` (a pyserial URL or
        device path, or an open object with ``write``); simulated time advances ``period_s``
        per push. Stops after ``count`` pushes or when ``stop_event`` is set; returns the number
        written. The first push goes out at once."""
        if speed <= 0:
            raise ValueError("speed must be > 0")
        owned = isinstance(port, str)
        if owned:
            import serial

            ser = serial.serial_for_url(port, baudrate=baudrate, write_timeout=10)
        else:
            ser = port
        interval = self.period_s / speed
        rng = self._fault_rng()
        sent = 0
        t0 = time.monotonic()
        try:
            while count is None or sent < count:
                if stop_event is not None and stop_event.is_set():
                    break
                delay = t0 + sent * interval - time.monotonic()
                if delay > 0:
                    if stop_event is not None:
                        if stop_event.wait(delay):
                            break
                    else:
                        time.sleep(delay)
                ser.write(self._chunk(sent, start_t + sent * self.period_s, rng))
                if hasattr(ser, "flush"):
                    ser.flush()
                sent += 1
        finally:
            if owned:
                ser.close()
        return sent


_GARBAGE_BYTES = bytes(b for b in range(256) if b != 0x1B)


def corrupt(frame: bytes, rng: random.Random) -> bytes:
    """Flips bits of one byte inside the SML file data so the CRCs fail but the framing stays:
    never touches a 0x1B byte, never makes one, so no escape sequence appears or vanishes."""
    end = frame.rfind(enc.END)
    pad = frame[end + len(enc.END)]
    candidates = [i for i in range(len(enc.START), end - pad) if frame[i] != 0x1B]
    i = rng.choice(candidates)
    while True:
        new = frame[i] ^ rng.randrange(1, 256)
        if new != 0x1B:
            break
    out = bytearray(frame)
    out[i] = new
    return bytes(out)
