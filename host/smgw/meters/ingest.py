"""From a captured frame to original measured values in the store.

The firmware sends every frame it captured on a meter interface as a durable RECORD (the bytes,
the capture time, the front-end's own check result). Here it is decoded and matched to a meter
profile; the raw frame, the values of the profile's channels and the link cursor are then written
in one transaction (``Store.put_record``), so a value is durable before its frame is acknowledged
and is never written twice. A frame that cannot be used (bad checksum, bad syntax, unknown meter)
is still kept raw, and logged with its catalogue id.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import cbor2

from smgw.events import emit
from smgw.meters import sml
from smgw.meters import status as meter_status
from smgw.store import MeterRow, ReadingRow, Store
from smgwfw import messages as m

log = logging.getLogger("smgw.meters")

# what the firmware's LMN frame detectors report (smgwfw.lmn); kept as names in the record meta
CHECK_OK = ("x25", "kermit", "ok")
PROTOCOLS = ("sml", "sml-tls", "wmbus")


class MeterIngest:
    def __init__(self, store: Store,
                 time_valid: Callable[[int | None], bool] | None = None,
                 now_ms: Callable[[], int] | None = None) -> None:
        self.store = store
        self.now_ms = now_ms or (lambda: int(time.time() * 1000))  # receipt times: legal time
        # whether a capture time lies where the legal time was valid (smgw.legaltime); without
        # a legal clock: whenever the front-end had a time at all
        self.time_valid = time_valid or (lambda ts: ts is not None)
        self.stored_frames = 0
        self.rejected_frames = 0
        self.unknown_meters: dict[str, int] = {}
        self.meter_errors: dict[str, tuple[str, int] | None] = {}
        self.duplicates = 0  # wM-Bus copies of a telegram already stored
        self.replays = 0  # wM-Bus telegrams with an old counter or access number (10264)
        self.reload()

    def reload(self) -> None:
        self.meters: dict[str, MeterRow] = {mt.meter_id: mt for mt in self.store.meters()}
        # values stored per meter, counted once here and then kept up to date in memory, so
        # status queries cost nothing while values stream in
        self.values = {mt.id: self.store.count_readings(mt.id) for mt in self.meters.values()}

    # ------------------------------------------------------------------ profiles

    def add_meter(self, meter_id: str, protocol: str = "sml", interface: str = "lmn-wired",
                  obis: list[str] | None = None, period_s: int | None = None,
                  key: bytes | None = None, lmn_cert: bytes | None = None) -> int:
        """protocol "sml": an SML push meter (info interface, optical head); "sml-tls": a
        TR-03109 meter on the HDLC bus, polled inside TLS (docs/lmn-wired.md), which needs a
        pairing key (16 bytes) or its pinned LMN certificate (DER)."""
        meter_id = _norm_id(meter_id)
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol {protocol!r} is not supported ({', '.join(PROTOCOLS)})")
        if interface not in ("lmn-wired", "lmn-wireless"):
            raise ValueError(f"unknown interface {interface!r}")
        if protocol == "wmbus":
            interface = "lmn-wireless"
            if key is not None and len(key) != 16:
                raise ValueError(f"a wM-Bus key (AES-128) must be 16 bytes, got {len(key)}")
            if lmn_cert is not None:
                raise ValueError("a wM-Bus meter has no LMN certificate")
            if len(bytes.fromhex(meter_id)) != 8:
                raise ValueError("a wM-Bus meter id is its link address: manufacturer, id, "
                                 "version and type as 8 bytes of hex (e.g. 9315785634123303)")
        elif protocol == "sml-tls":
            if key is None and lmn_cert is None:
                raise ValueError("an sml-tls meter needs its pairing key or its LMN certificate")
            if key is not None and len(key) != 16:
                raise ValueError(f"the pairing key must be 16 bytes, got {len(key)}")
        elif key is not None or lmn_cert is not None:
            raise ValueError("keys and certificates belong to sml-tls and wmbus meters only")
        from smgw.meters.obis import parse_obis

        channels = [str(parse_obis(o)) for o in (obis or [])]
        mid = self.store.add_meter(meter_id, interface, protocol, channels, period_s, key,
                                   lmn_cert)
        self.reload()
        emit(log, 10207, profile=meter_id)
        emit(log, 10020, meter=meter_id)
        return mid

    def remove_meter(self, meter_id: str) -> bool:
        meter_id = _norm_id(meter_id)
        if not self.store.remove_meter(meter_id):
            return False
        self.reload()
        emit(log, 10208, profile=meter_id)
        emit(log, 10022, meter=meter_id)
        return True

    # ------------------------------------------------------------------ records

    def record(self, stream: int, rid: int, msg: dict[int, Any]) -> bool:
        """Stores one RECORD message; returns False for a duplicate. Store errors propagate
        (the caller then leaves the record unacknowledged)."""
        body = msg[m.K_REC_BODY]
        src = msg[m.K_REC_SRC]
        meta = msg.get(m.K_REC_META) if isinstance(msg.get(m.K_REC_META), dict) else {}
        tick = msg.get(m.K_REC_TICK) if isinstance(msg.get(m.K_REC_TICK), int) else None
        captured = msg.get(m.K_REC_TIME) if isinstance(msg.get(m.K_REC_TIME), int) else None
        received = self.now_ms()
        readings: list[ReadingRow] = []
        counters = None
        if src == m.SRC_LMN_WIRED and meta.get("proto", "sml") == "sml":
            readings = self._sml_readings(body, meta, captured)
        elif src == m.SRC_LMN_WIRELESS and meta.get("proto") == "wmbus":
            readings, counters = self._wmbus_readings(body, meta, captured)
        stored = self.store.put_record(stream, rid, src, tick, captured, received, body,
                                       cbor2.dumps(meta) if meta else None, readings,
                                       counters)
        if stored:
            self.stored_frames += 1
            if readings:
                mid = readings[0].meter
                self.values[mid] = self.values.get(mid, 0) + len(readings)
        return stored

    def _sml_readings(self, body: bytes, meta: dict, captured: int | None) -> list[ReadingRow]:
        check = meta.get("check")
        if check is not None and check not in CHECK_OK:
            # the front-end saw a damaged frame; its server id cannot be trusted either
            self.rejected_frames += 1
            emit(log, 10263, meter="unbekannt")
            return []
        try:
            f = sml.decode_frame(body)
        except sml.SmlError as e:
            self.rejected_frames += 1
            if e.catalogue_id == 10263:
                emit(log, 10263, meter="unbekannt")
            else:
                emit(log, 10274, meter="unbekannt", protocol="SML", reason=str(e))
            return []
        meter_id = f.server_id.hex() if f.server_id else ""
        meter = self.meters.get(meter_id)
        if meter is None:
            n = self.unknown_meters.get(meter_id, 0)
            self.unknown_meters[meter_id] = n + 1
            if n == 0:  # once per unknown meter, not per telegram
                log.warning("frame from a meter without a profile; values not taken",
                            extra={"fields": {"meter": meter_id or "?"}})
            return []
        emit(log, 10164, meter=meter_id)
        self._check_status(meter_id, f)
        wanted = set(meter.obis)
        out = []
        if not f.messages_crc_ok:
            emit(log, 10263, meter=meter_id)  # values of a message whose CRC is wrong: not taken
        for r in f.readings:
            if wanted and r.obis not in wanted:
                continue
            if not isinstance(r.raw, int) or not r.message_crc_ok:
                continue  # text/octet values (ids, firmware versions) are not measured values
            out.append(ReadingRow(meter.id, r.obis, r.raw, r.scaler, r.unit, r.status,
                                  time_valid=self.time_valid(captured)))
        return out

    def _wmbus_readings(self, body: bytes, meta: dict, captured: int | None
                        ) -> tuple[list[ReadingRow], tuple[int, int | None, int | None] | None]:
        # docs/wmbus.md: the meter is known by its link address (M-field, A-field, version,
        # type: 8 bytes as hex); its key is in the profile; replays are rejected by the
        # transmission counter (mode 7) or the access number (otherwise)
        from smgw.wmbus import decode as wd

        if meta.get("crc") not in (None, "ok"):
            self.rejected_frames += 1
            emit(log, 10263, meter="unbekannt")
            return [], None
        if len(body) < 12:
            self.rejected_frames += 1
            emit(log, 10274, meter="unbekannt", protocol="wM-Bus", reason="zu kurz")
            return [], None
        meter_id = body[2:10].hex()
        meter = self.meters.get(meter_id)
        if meter is None or meter.protocol != "wmbus":
            n = self.unknown_meters.get(meter_id, 0)
            self.unknown_meters[meter_id] = n + 1
            if n == 0:
                log.warning("telegram from a meter without a profile; values not taken",
                            extra={"fields": {"meter": meter_id}})
            return [], None
        try:
            t = wd.decode(body, meter.key, expect_encrypted=meter.key is not None)
        except wd.WmbusError as e:
            self.rejected_frames += 1
            cat = e.catalogue_id if e.catalogue_id in (10262, 10263) else 10274
            if cat == 10274:
                emit(log, 10274, meter=meter_id, protocol="wM-Bus", reason=str(e))
            elif cat == 10262:
                emit(log, 10262, meter=meter_id, reason=str(e))
            else:
                emit(log, 10263, meter=meter_id)
            return [], None
        last_counter, last_access = self.store.rx_counters(meter.id)
        acc = t.tpl.access_number if t.tpl is not None else None
        if t.counter is not None:
            ahead = last_counter is None or t.counter > last_counter
            repeat = last_counter is not None and t.counter == last_counter
            expected, received = (last_counter or 0) + 1, t.counter
        elif acc is not None and last_access is not None:
            d = (acc - last_access) % 256
            ahead, repeat = 0 < d < 128, d == 0
            expected, received = (last_access + 1) % 256, acc
        else:
            ahead, repeat, expected, received = True, False, None, acc
        if repeat or (not ahead and meta.get("dup")):
            # a meter's second copy or a repeater's (the front-end saw the same bytes moments
            # ago): its values are stored once already; not a replay
            self.duplicates += 1
            return [], None
        if not ahead:
            self.rejected_frames += 1
            self.replays += 1
            emit(log, 10264, meter=meter_id, counter_expected=expected,
                 counter_received=received)
            return [], None
        emit(log, 10164, meter=meter_id)
        wanted = set(meter.obis)
        out = []
        for r in t.records:
            row = _wmbus_row(meter.id, r, self.time_valid(captured))
            if row is not None and (not wanted or row.obis in wanted):
                out.append(row)
        return out, (meter.id, t.counter, acc)

    def polled(self, meter_id: str, frame: bytes, received_ms: int | None = None) -> bool:
        """Stores the SML answer of a polled (sml-tls) meter. Its record id in the meter's own
        host-side stream is the meter's secIndex + 1, so an answer repeated by the meter is
        never stored twice. Returns False for such a repeat or an unusable answer."""
        meter = self.meters.get(meter_id)
        if meter is None:
            return False
        received = self.now_ms() if received_ms is None else received_ms
        try:
            f = sml.decode_frame(frame)
        except sml.SmlError as e:
            self.rejected_frames += 1
            if e.catalogue_id == 10263:
                emit(log, 10263, meter=meter_id)
            else:
                emit(log, 10274, meter=meter_id, protocol="SML", reason=str(e))
            return False
        sec = None
        for msg in f.messages:
            t = getattr(msg.body, "act_sensor_time", None)
            if isinstance(t, dict) and t.get("kind") == "secIndex":
                sec = t.get("value")
        if not isinstance(sec, int) or sec < 0 or (f.server_id and f.server_id.hex() != meter_id):
            self.rejected_frames += 1
            emit(log, 10274, meter=meter_id, protocol="SML",
                 reason="Antwort ohne secIndex oder von einem anderen Zähler")
            return False
        emit(log, 10164, meter=meter_id)
        self._check_status(meter_id, f)
        wanted = set(meter.obis)
        if not f.messages_crc_ok:
            emit(log, 10263, meter=meter_id)
        valid = self.time_valid(received)
        readings = [ReadingRow(meter.id, r.obis, r.raw, r.scaler, r.unit, r.status, valid)
                    for r in f.readings if isinstance(r.raw, int) and r.message_crc_ok
                    and (not wanted or r.obis in wanted)]
        # record ids start at 1; a meter's secIndex starts at 0
        stored = self.store.put_record(-meter.id, sec + 1, m.SRC_LMN_WIRED, None, received,
                                       received, frame, cbor2.dumps({"proto": "sml-tls"}),
                                       readings)
        if stored:
            self.stored_frames += 1
            self.values[meter.id] = self.values.get(meter.id, 0) + len(readings)
        return stored

    def _check_status(self, meter_id: str, f: sml.SmlFile) -> None:
        # 10033 (error) / 10037 (fatal) when a meter's status word starts to report one, and
        # again when it changes: not for every telegram that repeats it
        worst = None
        maker = meter_status.manufacturer_of(f.server_id)
        for r in f.readings:
            if r.status is None:
                continue
            st = meter_status.classify(r.status, maker)
            if st.severity != "ok" and (worst is None or st.severity == "fatal"):
                worst = st
        key = None if worst is None else (worst.severity, worst.code)
        if key == self.meter_errors.get(meter_id):
            return
        self.meter_errors[meter_id] = key
        if worst is not None:
            emit(log, 10037 if worst.severity == "fatal" else 10033, meter=meter_id,
                 code=f"0x{worst.code:X} {worst.text}")

    def status(self) -> dict[str, Any]:
        return {
            "meters": [{"id": mt.meter_id, "interface": mt.interface, "protocol": mt.protocol,
                        "obis": mt.obis, "readings": self.values.get(mt.id, 0)}
                       for mt in self.meters.values()],
            "frames_stored": self.stored_frames,
            "frames_rejected": self.rejected_frames,
            "duplicates": self.duplicates,
            "replays": self.replays,
            "unknown_meters": dict(self.unknown_meters),
        }


# wM-Bus records that identify or describe rather than measure: kept in the raw telegram only
NOT_MEASURED = frozenset({"date", "datetime", "fabrication_number", "customer_location",
                          "customer", "error_flags", "model_version", "access_number",
                          "manufacturer_specific", "reserved", "parameter_set_id",
                          "firmware_version", "hardware_version", "software_version"})


def wmbus_channel(r: Any) -> str:
    """The channel name a wM-Bus record is stored under (there is no OBIS code on the radio):
    quantity, storage, tariff, subunit and function, e.g. ``volume/s0/t0/u0/instantaneous``."""
    return f"{r.quantity}/s{r.storage}/t{r.tariff}/u{r.subunit}/{r.function}"


def _wmbus_row(meter: int, r: Any, time_valid: bool) -> ReadingRow | None:
    # exact decimal -> integer raw value and scaler (28504.27 -> 2850427, -2); dates, texts and
    # manufacturer data are kept in the record's raw telegram, not as measured values
    from decimal import Decimal, InvalidOperation

    if r.value is None or r.quantity in NOT_MEASURED:
        return None
    try:
        d = Decimal(str(r.value))
    except InvalidOperation:
        return None
    if not d.is_finite():
        return None
    sign, digits, exp = d.as_tuple()
    raw = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
    return ReadingRow(meter, wmbus_channel(r), raw, int(exp), r.unit or None, None, time_valid)


def _norm_id(meter_id: str) -> str:
    s = meter_id.strip().lower().replace(" ", "").replace(":", "")
    try:
        bytes.fromhex(s)
    except ValueError:
        raise ValueError(f"meter id must be the server id in hex, got {meter_id!r}") from None
    if not 2 <= len(s) <= 40:
        raise ValueError(f"meter id of {len(s) // 2} bytes is not a server id")
    return s
