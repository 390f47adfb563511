"""Simulated wired-LMN meters (docs/lmn-wired.md): several meters on one RS-485 bus, each a
:class:`~smgw.lmn.station.MeterStation` (registration, HDLC link, pairing, TLS) that answers
the gateway's SML GetList requests from a consumption profile.

    meters = [LmnMeter(sim_sid(n), DailyProfile(seed=n)) for n in (1, 2)]
    bus = LmnBus("/dev/pts/7", meters, baud=115200).start()
    ...   meters[1].unplug(); meters[1].plug()
    bus.stop(); print(bus.stats())

The registers come from the profiles and arithmetic of ``smgw.sim.smlmeter`` (exact integer
energy, monotone registers) on the meter's own time: simulated seconds since it started,
``speed`` times the bus clock. An answer is the SML file ``Open.Res, GetList.Res, Close.Res``
(transport v1, X-25) with 1-0:1.8.0, 1-0:2.8.0, 1-0:16.7.0 and ``actSensorTime`` = secIndex
= whole simulated seconds since the start.

:class:`LmnBus` is the wire: it reads what the gateway writes, cuts it into HDLC frames, gives
each good frame with its end time to every plugged meter, and writes their answers at the
times they ask for. Answers whose air times overlap collide as on a real bus: their bytes are
XOR-ed into one garbled transmission (the gateway then sees a bad check, or noise). The pty
(or adapter) only carries the gateway's bytes to the bus, so meters never hear each other;
they ignore frames not sent by the gateway anyway.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import select
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from smgw.lmn import hdlc, security
from smgw.lmn.station import MeterStation
from smgw.meters import sml
from smgw.meters import smlencode as enc
from smgw.meters.smlencode import Int
from smgw.sim.smlmeter import ConstantPower, Profile, SmlMeter

__all__ = ["BusStats", "LmnBus", "LmnMeter", "derive_pairing_key", "load_or_create_meter",
           "sim_sid"]

DEFAULT_BAUD = 115200


def sim_sid(n: int) -> bytes:
    """Server id of simulated LMN meter ``n`` (1..): id type 0x0A, medium 1, FLAG "SIM" (made
    up, as for the push simulator), fabrication block 02 (wired LMN; the push meter uses 01),
    serial n: ``sim_sid(1)`` prints as 1SIM0200000001."""
    if not 0 <= n <= 0xFFFFFFFF:
        raise ValueError(f"meter number must be 0..2**32-1, got {n}")
    return bytes.fromhex("0A01") + b"SIM" + b"\x02" + n.to_bytes(4, "big")


def derive_pairing_key(secret: bytes, sid: bytes) -> bytes:
    """A deterministic 16-byte pairing key for ``sid`` from ``secret`` (HMAC-SHA256, truncated):
    a bench can print the same keys on every run. Real meters get random keys from the
    manufacturer."""
    return hmac.new(bytes(secret), b"SMGW-SIM-LMN-PAIR" + bytes(sid), hashlib.sha256).digest()[:16]


# ------------------------------------------------------------------------ a meter


class LmnMeter:
    """One simulated wired meter. ``identity``: any ``security.Identity`` (default: a new one
    with CN = sid in hex; pass another to make an impostor with the same sid but another key).
    ``pairing_key``: K (default: random, see ``.pairing_key``); with ``pinned_gateway_cert``
    and no key the meter is paired already (and cannot pair again). ``speed``: simulated seconds
    per bus-clock second. ``seed`` fixes the registration slots. ``on_paired(meter)`` is
    called after a pairing (to keep ``station.key`` and ``station.pinned_gateway_cert``)."""

    def __init__(
        self,
        sid: bytes | str = sim_sid(1),
        profile: Profile | None = None,
        *,
        identity: security.Identity | None = None,
        pairing_key: bytes | None = None,
        pinned_gateway_cert: bytes | None = None,
        start_wh: float = 0.0,
        start_export_wh: float = 0.0,
        speed: float = 1.0,
        seed: int = 0,
        orphan_s: float = 60.0,
        turnaround_ms: float = 2.0,
        status: int = 0x182,
        on_paired: Callable[[LmnMeter], None] | None = None,
    ) -> None:
        if isinstance(sid, str):
            sid = bytes.fromhex(sid)
        self.sid = bytes(sid)
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.speed = float(speed)
        # the register arithmetic of the push meter: exact integer energy from the profile
        self.registers = SmlMeter(self.sid, profile if profile is not None else ConstantPower(500),
                                  start_wh=start_wh, start_export_wh=start_export_wh,
                                  two_way=True, status=status)
        self.identity = identity if identity is not None else security.make_identity(
            self.sid.hex())
        if pairing_key is None and pinned_gateway_cert is None:
            pairing_key = os.urandom(security.KEY_LEN)
        self.pairing_key = pairing_key  # K as handed to the GWA; station.key is the current key
        self._on_paired = on_paired
        self.station = MeterStation(
            self.sid, self.identity, pairing_key, self.answer,
            random.Random(f"{seed}:{self.sid.hex()}"), orphan_s, turnaround_ms,
            pinned_gateway_cert=pinned_gateway_cert, on_paired=self._paired)
        self.plugged = True
        self.t0: float | None = None  # bus-clock time of the meter's start
        self._now = 0.0

    def __repr__(self) -> str:
        st = self.station
        return (f"LmnMeter({self.sid.hex()}, address={st.address}, linked={st.linked}, "
                f"paired={st.paired}, tls_up={st.tls_up}, plugged={self.plugged})")

    @property
    def profile(self) -> Profile:
        return self.registers.profile

    # -------------------------------------------------------------- time and values

    def start(self, now: float) -> None:
        """The meter starts counting at bus-clock ``now`` (the bus calls this when it gets it)."""
        if self.t0 is None:
            self.t0 = now

    def sim_t(self, now: float) -> float:
        """Simulated seconds since the meter started."""
        if self.t0 is None:
            self.t0 = now
        return max(0.0, now - self.t0) * self.speed

    def readings_at(self, t: float) -> list[dict[str, Any]]:
        imp, exp = self.registers.registers_at(t)
        mw = self.profile.power_mw(round(t * 1000))
        st = self.registers.status
        return [
            {"obis": "1-0:1.8.0", "status": st, "unit": 30, "scaler": -1, "value": imp},
            {"obis": "1-0:2.8.0", "status": st, "unit": 30, "scaler": -1, "value": exp},
            {"obis": "1-0:16.7.0", "unit": 27, "scaler": -2, "value": Int(round(mw / 10))},
        ]

    def answer(self, request: bytes) -> bytes:
        """The SML answer to any well-framed SML file (``request``): Open.Res, GetList.Res with
        the registers at the current time, Close.Res, echoing the request's transaction ids,
        reqFileId, clientId and listName where it has them. ``SmlError`` (a ValueError) for a
        request that is not a good SML frame."""
        req = sml.decode_frame(request)
        t = self.sim_t(self._now)
        ms = round(t * 1000)
        tids = [m.transaction_id for m in req.messages]
        ids: int | list[bytes] = tids if len(tids) == 3 and all(tids) else (ms * 4) & 0xFFFFFFFF
        opts: dict[str, Any] = {"list_name": enc.LIST_NAME}
        for m in req.messages:
            body = m.body if isinstance(m.body, list) else []
            if m.type == "PublicOpen.Req" and len(body) >= 3:
                if isinstance(body[1], bytes):
                    opts["client_id"] = body[1]
                if isinstance(body[2], bytes):
                    opts["req_file_id"] = body[2]
            elif m.type == "GetList.Req" and len(body) >= 5 and isinstance(body[4], bytes):
                opts["list_name"] = body[4]
        return enc.encode_file(self.sid, self.readings_at(t), transaction_id=ids,
                               act_sensor_time=int(t) & 0xFFFFFFFF, **opts)

    # -------------------------------------------------------------- the bus side

    def plug(self) -> None:
        self.plugged = True

    def unplug(self) -> None:
        """Off the bus: hears nothing and sends nothing; its orphan timer still runs, so after
        ``orphan_s`` it has forgotten its address and registers again when plugged back."""
        self.plugged = False

    def on_frame(self, frame: hdlc.Frame, end_s: float) -> list[tuple[float, bytes]]:
        if not self.plugged:
            return []
        self.start(end_s)
        self._now = end_s
        return self.station.on_frame(frame, end_s)

    def tick(self, now: float) -> None:
        self.station.tick(now)

    def _paired(self, station: MeterStation) -> None:
        if self._on_paired is not None:
            self._on_paired(self)


def load_or_create_meter(key_dir: str | os.PathLike, sid: bytes, *,
                         secret: bytes | None = None, **kwargs: Any) -> LmnMeter:
    """A meter whose identity, pairing key and pairing state live in ``key_dir`` (created on
    the first run), so that a restarted simulator is still the meter the gateway paired with:

    * ``<sid>.key.pem`` / ``<sid>.crt.pem`` -- the meter's key and certificate,
    * ``<sid>.json`` -- ``pairing_key`` (K, for the gateway profile), after a pairing ``key``
      (K_op) and ``gateway_cert`` (the pinned gateway certificate, DER in hex).

    A new K is random, or derived from ``secret`` (:func:`derive_pairing_key`)."""
    d = Path(key_dir)
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = sid.hex()
    identity = security.load_or_create(d, name, name)
    state_path = d / f"{name}.json"
    state: dict[str, Any] = {}
    if state_path.exists():
        state = json.loads(state_path.read_text())
    if "pairing_key" not in state:
        k = derive_pairing_key(secret, sid) if secret is not None else os.urandom(16)
        state["pairing_key"] = k.hex()
        _write_json(state_path, state)

    def save(meter: LmnMeter) -> None:
        st = meter.station
        state["key"] = st.key.hex() if st.key is not None else None
        state["gateway_cert"] = st.pinned_gateway_cert.hex() if st.pinned_gateway_cert else None
        _write_json(state_path, state)

    gw = state.get("gateway_cert")
    meter = LmnMeter(sid, identity=identity,
                     pairing_key=bytes.fromhex(state["pairing_key"]),
                     pinned_gateway_cert=bytes.fromhex(gw) if gw else None,
                     on_paired=save, **kwargs)
    if state.get("key"):
        meter.station.key = bytes.fromhex(state["key"])  # K_op after a pairing
    return meter


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)


# ------------------------------------------------------------------------ the bus


@dataclass
class BusStats:
    rx_bytes: int = 0
    frames: int = 0  # good frames from the line
    errors: int = 0  # bad frames from the line (HdlcError)
    garbage_bytes: int = 0
    transmissions: int = 0  # writes to the line (a collision counts once)
    tx_frames: int = 0  # frames the meters sent (every member of a collision)
    tx_bytes: int = 0
    collisions: int = 0  # transmissions that were two or more overlapping answers
    collided_frames: int = 0
    dropped_unplugged: int = 0  # scheduled answers of meters unplugged before they were due


class LmnBus:
    """Meters on one serial line. ``port``: a device path or pyserial URL (opened at ``baud``,
    8N1, non-blocking), or an open object with ``write(bytes)`` and a non-blocking
    ``read(n)`` (a ``serial.Serial`` opened with ``timeout=0``; ``in_waiting`` and
    ``fileno()`` are used when present). ``clock`` gives seconds (default
    ``time.monotonic``); everything the meters see and do is timed on it.

    The core is usable without a port or thread: :meth:`receive` (bytes from the line at a
    time), :meth:`due` (what to write at a time), :meth:`tick`. :meth:`run` is the loop over a
    port; :meth:`start` / :meth:`stop` run it in a thread."""

    def __init__(self, port: Any, meters: Iterable[LmnMeter] = (), *, baud: int = DEFAULT_BAUD,
                 clock: Callable[[], float] = time.monotonic,
                 silence_s: float | None = None) -> None:
        if baud <= 0:
            raise ValueError("baud must be > 0")
        self.port = port
        self.baud = baud
        self.clock = clock
        # a frame cut off by silence: 20 character times, at least 5 ms
        self.silence_s = silence_s if silence_s is not None else max(0.005, 200 / baud)
        self.meters: list[LmnMeter] = []
        self.decoder = hdlc.StreamDecoder()
        self._stats = BusStats()
        self.error_codes: dict[str, int] = {}
        self._pending: list[tuple[float, int, LmnMeter, bytes]] = []
        self._seq = 0
        self._lock = threading.RLock()
        self._last_rx = 0.0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ser: Any = None
        self.error: OSError | None = None  # why run() ended, if the line failed
        for m in meters:
            self.add(m)

    def add(self, meter: LmnMeter) -> LmnMeter:
        with self._lock:
            meter.start(self.clock())
            self.meters.append(meter)
        return meter

    def air_s(self, nbytes: int) -> float:
        return hdlc.air_time_s(nbytes, self.baud)

    # -------------------------------------------------------------- sans-I/O core

    def receive(self, data: bytes, now: float) -> list[hdlc.Frame | hdlc.HdlcError]:
        """Bytes read from the line at ``now``: frames go to the plugged meters (ending at
        ``now``), their answers are scheduled. Returns what the decoder found."""
        with self._lock:
            self._stats.rx_bytes += len(data)
            if data:
                self._last_rx = now
            out = self.decoder.feed(data)
            self._dispatch(out, now)
            return out

    def idle(self, now: float) -> list[hdlc.Frame | hdlc.HdlcError]:
        """Checks for a frame cut off by silence on the line."""
        with self._lock:
            if self.decoder.held > 1 and now - self._last_rx > self.silence_s:
                out = self.decoder.flush()
                self._dispatch(out, now)
                return out
            return []

    def _dispatch(self, items: list[hdlc.Frame | hdlc.HdlcError], now: float) -> None:
        s = self._stats
        s.garbage_bytes = self.decoder.garbage_bytes
        for item in items:
            if isinstance(item, hdlc.HdlcError):
                s.errors += 1
                self.error_codes[item.code] = self.error_codes.get(item.code, 0) + 1
                continue
            s.frames += 1
            for m in self.meters:
                for start, wire in m.on_frame(item, now):
                    self._seq += 1
                    self._pending.append((start, self._seq, m, wire))
        self._pending.sort(key=lambda p: (p[0], p[1]))

    def next_due(self) -> float | None:
        with self._lock:
            return self._pending[0][0] if self._pending else None

    def due(self, now: float) -> list[bytes]:
        """The transmissions to write at ``now``: answers whose start time has come, each group
        of answers with overlapping air times XOR-ed into one (a collision)."""
        out: list[bytes] = []
        with self._lock:
            while self._pending and self._pending[0][0] <= now:
                group = [self._pending.pop(0)]
                end = group[0][0] + self.air_s(len(group[0][3]))
                # every answer that starts before the line is free again joins the collision
                while self._pending and self._pending[0][0] < end:
                    p = self._pending.pop(0)
                    group.append(p)
                    end = max(end, p[0] + self.air_s(len(p[3])))
                live = [p for p in group if p[2].plugged]
                self._stats.dropped_unplugged += len(group) - len(live)
                if live:
                    out.append(self._combine(live))
        return out

    def _combine(self, group: list[tuple[float, int, LmnMeter, bytes]]) -> bytes:
        s = self._stats
        s.transmissions += 1
        s.tx_frames += len(group)
        if len(group) == 1:
            wire = group[0][3]
        else:
            s.collisions += 1
            s.collided_frames += len(group)
            t0 = group[0][0]
            char_s = self.air_s(1)
            placed = [(round((start - t0) / char_s), w) for start, _, _, w in group]
            buf = bytearray(max(off + len(w) for off, w in placed))
            for off, w in placed:
                for i, b in enumerate(w):
                    buf[off + i] ^= b
            wire = bytes(buf)
        s.tx_bytes += len(wire)
        return wire

    def tick(self, now: float) -> None:
        with self._lock:
            for m in self.meters:
                m.tick(now)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            meters = {}
            for m in self.meters:
                st = m.station
                meters[m.sid.hex()] = {
                    "address": st.address, "linked": st.linked, "paired": st.paired,
                    "tls_up": st.tls_up, "plugged": m.plugged, **asdict(st.counters)}
            return {"bus": asdict(self._stats), "errors": dict(self.error_codes),
                    "line_error": None if self.error is None else str(self.error),
                    "meters": meters}

    # -------------------------------------------------------------- I/O

    def _open(self) -> tuple[Any, bool]:
        if isinstance(self.port, str):
            import serial

            return serial.serial_for_url(self.port, baudrate=self.baud, timeout=0,
                                         write_timeout=5), True
        return self.port, False

    def _read(self, ser: Any, readable: bool) -> bytes:
        n = getattr(ser, "in_waiting", None)
        if n is None:
            return ser.read(4096) or b""
        if n:
            return ser.read(n)
        if readable:
            # select said readable but nothing waits: a hang-up (the other end of a pty closed);
            # a read makes pyserial say so instead of the loop spinning
            return ser.read(1)
        return b""

    def _wait(self, ser: Any, timeout: float) -> bool:
        try:
            fd = ser.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None
        if fd is not None:
            return bool(select.select([fd], [], [], timeout)[0])
        time.sleep(min(timeout, 0.001))
        return False

    def run(self, stop_event: threading.Event | None = None) -> None:
        """The loop: read, dispatch, write due answers, tick; until ``stop_event`` is set."""
        stop = stop_event if stop_event is not None else self._stop
        ser, owned = self._open()
        self._ser = ser
        self.error = None
        readable = False
        try:
            while not stop.is_set():
                now = self.clock()
                try:
                    data = self._read(ser, readable)
                except OSError as e:  # the line went away (adapter unplugged, pty closed)
                    self.error = e
                    break
                if data:
                    self.receive(data, now)
                else:
                    self.idle(now)
                for wire in self.due(self.clock()):
                    try:
                        ser.write(wire)
                    except OSError as e:
                        self.error = e
                        return
                self.tick(now)
                nxt = self.next_due()
                wait = 0.005 if nxt is None else max(0.0, min(0.005, nxt - self.clock()))
                readable = self._wait(ser, wait) if wait > 0 else False
        finally:
            self._ser = None
            if owned:
                ser.close()

    def start(self) -> LmnBus:
        if self._thread is not None:
            raise RuntimeError("bus already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, args=(self._stop,), name="lmn-bus",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> LmnBus:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
