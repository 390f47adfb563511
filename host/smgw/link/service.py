"""The firmware link service: drives the shared protocol core from asyncio and hands what arrives
to the store.

Durability rule (DEVELOPERS.md "nothing measured is lost"): a durable message from the firmware
is acknowledged only after the store has committed it together with the stream cursor, in one
SQLite transaction. If the store fails (disk full), the message stays unacknowledged and is
offered again later; the firmware keeps it in its journal meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from typing import Any, Callable

import cbor2

from smgw.firmware.manifest import ManifestError, check_hello_files, load_manifest
from smgw.gateway import GatewayState
from smgw.link.serialport import PortError, SerialPort
from smgw.meters.ingest import MeterIngest
from smgw.store import Store, StoreError
from smgwfw import cbor as fwcbor
from smgwfw import link as lk
from smgwfw import messages as m
from smgwfw.app import pattern
from smgwfw.leds import pattern_name

log = logging.getLogger("smgw.link")

_MASK = 0x3FFFFFFF
RETRY_STORE_S = 1.0
TIME_RESYNC_S = 60.0
STATUS_POLL_S = 5.0  # how fresh the firmware's counters in `smgw status` are

EVENT_NAMES = {
    m.EV_BOOT: "boot",
    m.EV_OUTBOX_DROP: "outbox_drop",
    m.EV_STORAGE_ERROR: "storage_error",
    m.EV_PEER_ERROR: "peer_error",
    m.EV_RADIO_ERROR: "radio_error",
}
ERROR_NAMES = {
    m.ERR_BAD_CBOR: "bad_cbor",
    m.ERR_NOT_A_MESSAGE: "not_a_message",
    m.ERR_UNKNOWN_TYPE: "unknown_type",
    m.ERR_BAD_FIELD: "bad_field",
    m.ERR_NOT_SUPPORTED: "not_supported",
}


def _fields(**kw: Any) -> dict[str, Any]:
    return {"fields": kw}


def now_ms() -> int:
    return int(time.monotonic() * 1000) & _MASK


class _Deferred(Exception):
    """A firmware message that may not be handled now; it stays unacknowledged."""


class FirmwareLink:
    def __init__(self, store: Store, port: SerialPort, gateway: GatewayState,
                 ingest: MeterIngest, *,
                 window: int = 8, max_payload: int = 1024, rto_ms: int = 200,
                 hello_ms: int = 500, version: str = "") -> None:
        self.store = store
        self.ingest = ingest
        self.port = port
        self.gateway = gateway
        self.link = lk.Link(
            "host",
            store.host_stream_id(),
            lambda: int.from_bytes(os.urandom(4), "big"),
            info={"host": version},
            cursors=store.cursors(),
            incarnation=int.from_bytes(os.urandom(4), "big") & 0x3FFFFFFF,
            window=window,
            max_payload=max_payload,
            rto_ms=rto_ms,
            hello_ms=hello_ms,
            queue_len=64,
            queue_bytes=64 * 1024,
        )
        self._outq: deque[tuple[int, bytes]] = deque(store.outbox_pending())
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._store_blocked_until = 0.0
        self._acked_upto = 0
        self._state_dirty = True
        self._last_time_sync = 0.0
        self._last_status_poll = 0.0
        self.fw_hello: dict | None = None
        self.fw_integrity: dict | None = None
        self.fw_leds: list[str] | None = None
        self.fw_status: dict | None = None
        self.fw_linktest: dict | None = None
        self.fw_events: deque[dict] = deque(maxlen=20)
        self.up_since: float | None = None
        self.port_error: str | None = None
        self.records_stored = 0
        self.store_errors = 0
        self.lmn: Any = None  # the wired LMN bus master's service (smgw.lmn.service), if any
        # the legal time the firmware stamps captures with (the supervisor's clock, once set)
        self.legal_now_ms: Callable[[], int] = lambda: int(time.time() * 1000)
        # whether the operating state lets the gateway measure (store meter records)
        self.measuring: Callable[[], bool] = lambda: True
        gateway.subscribe(self._on_gateway_change)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.port.start(loop, self._on_data, self._on_port_error)
        self._task = asyncio.create_task(self._timer(), name="link-timer")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self.port.close()

    async def _timer(self) -> None:
        while True:
            self._process()
            delay = self.link.next_deadline(now_ms()) / 1000
            if self._store_blocked_until:
                delay = min(delay, max(0.0, self._store_blocked_until - time.monotonic()))
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.001, delay))
            except asyncio.TimeoutError:
                pass

    def kick(self) -> None:
        """Something was queued on the link: send it now rather than at the next timer."""
        self._wake.set()

    def _on_data(self, data: bytes) -> None:
        self.link.receive(data, now_ms())
        self._process()

    def _on_port_error(self, err: str) -> None:
        self.port_error = err
        log.error("serial port failed", extra=_fields(port=self.port.url, error=err))

    # ------------------------------------------------------------------ the pump

    def _process(self) -> None:
        now = now_ms()
        link = self.link
        self._handle_events()
        if link.up:
            self._feed_outbox()
            if self._state_dirty:
                self._state_dirty = not link.send(self.gateway.to_message())
            if time.monotonic() - self._last_status_poll > STATUS_POLL_S:
                if link.send({m.K_TYPE: m.T_GET_STATUS}):
                    self._last_status_poll = time.monotonic()
            if time.monotonic() - self._last_time_sync > TIME_RESYNC_S:
                if link.send({m.K_TYPE: m.T_TIME, m.K_TIME_UNIX_MS: self.legal_now_ms()}):
                    self._last_time_sync = time.monotonic()
        while True:
            f = link.poll(now)
            if f is None:
                break
            try:
                self.port.write(bytes(f))
            except PortError as e:
                self._on_port_error(str(e))
                break
        self._handle_events()

    def _feed_outbox(self) -> None:
        link = self.link
        while self._outq:
            rid, payload = self._outq[0]
            msg = cbor2.loads(payload)
            msg[m.K_RID] = rid
            body = fwcbor.dumps(msg)  # deterministic key order, as the firmware writes
            if not link.can_send(len(body)):
                return
            link.send(body, rid)
            self._outq.popleft()

    def _handle_events(self) -> None:
        if self._store_blocked_until and time.monotonic() < self._store_blocked_until:
            return
        self._store_blocked_until = 0.0
        try:
            self._drain_events()
        finally:
            if self._acked_upto:
                # an ack frame often covers several messages: one transaction for all of them
                try:
                    self.store.outbox_ack_upto(self._acked_upto)
                except StoreError as e:
                    log.error("could not clear acknowledged outbox entries",
                              extra=_fields(error=str(e)))
                self._acked_upto = 0

    def _drain_events(self) -> None:
        link = self.link
        while True:
            ev = link.next_event()
            if ev is None:
                return
            kind, val = ev
            if kind == lk.EV_MESSAGE:
                try:
                    self._on_message(val)
                except _Deferred:
                    # measuring is switched off (operating state): the firmware keeps the
                    # record, unacknowledged, until it may be stored
                    link.retry_later()
                    self._store_blocked_until = time.monotonic() + RETRY_STORE_S
                    return
                except Exception as e:
                    # Not consumed, so not acknowledged: the firmware keeps the message and it is
                    # offered again later. A full disk and a bug in a handler are treated alike,
                    # because acknowledging what was not stored would lose it for good.
                    self.store_errors += 1
                    if isinstance(e, StoreError):
                        log.error("store failed; the firmware keeps the message for a retry",
                                  extra=_fields(error=str(e)))
                    else:
                        log.exception("handling a firmware message failed; kept for a retry",
                                      extra=_fields(type=val.get(m.K_TYPE)))
                    link.retry_later()
                    self._store_blocked_until = time.monotonic() + RETRY_STORE_S
                    return
                link.consumed()
                continue
            try:
                self._on_link_event(kind, val)
            except Exception:
                log.exception("handling a link event failed", extra=_fields(event=kind))

    def _on_link_event(self, kind: int, val: Any) -> None:
        if kind == lk.EV_ACKED:
            self._acked_upto = max(self._acked_upto, val)
        elif kind == lk.EV_UP:
            self._on_up(val)
            if self.lmn is not None:
                self.lmn.on_link_change()
        elif kind == lk.EV_DOWN:
            self.up_since = None
            log.warning("link down", extra=_fields(reason=val))
            if self.lmn is not None:
                self.lmn.on_link_change()
        elif kind == lk.EV_PEER_RESTART:
            info = val.get(lk.H_INFO, {})
            log.warning("firmware restarted", extra=_fields(boot=info.get("boot"),
                                                            reset=info.get("reset")))
        elif kind == lk.EV_ERROR:
            code, detail = val
            log.warning("link protocol error", extra=_fields(
                code=ERROR_NAMES.get(code, code), detail=detail))

    def _on_up(self, hello: dict) -> None:
        info = hello.get(lk.H_INFO, {}) if isinstance(hello, dict) else {}
        self.fw_hello = info if isinstance(info, dict) else {}
        self.up_since = time.time()
        files = self.fw_hello.get("files", {})
        try:
            self.store.record_hello(
                seen_ms=int(time.time() * 1000), stream=hello.get(lk.H_STREAM),
                fw_version=str(self.fw_hello.get("fw", "")),
                board=str(self.fw_hello.get("board", "")),
                boot_counter=self.fw_hello.get("boot") if isinstance(
                    self.fw_hello.get("boot"), int) else None,
                files={str(k): v for k, v in files.items() if isinstance(v, bytes)}
                if isinstance(files, dict) else {},
            )
        except StoreError as e:
            log.error("could not record the firmware hello", extra=_fields(error=str(e)))
        self._check_integrity(files)
        log.info("link up", extra=_fields(
            fw_version=self.fw_hello.get("fw"), board=self.fw_hello.get("board"),
            boot=self.fw_hello.get("boot"), files=len(files) if isinstance(files, dict) else 0))
        self._state_dirty = True
        self._last_time_sync = 0.0
        self._last_status_poll = 0.0

    def _check_integrity(self, files: Any) -> None:
        # the hashes the firmware reports for its own files, against the release manifest
        try:
            result = check_hello_files(load_manifest(), files if isinstance(files, dict) else {})
        except ManifestError as e:
            self.fw_integrity = {"ok": False, "error": str(e)}
            log.error("firmware integrity not checkable", extra=_fields(error=str(e)))
            return
        self.fw_integrity = {**result.to_dict(), "summary": result.summary()}
        if result.ok:
            log.info("firmware matches the release manifest",
                     extra=_fields(variant=result.variant))
        else:
            log.error("firmware does not match the release manifest",
                      extra=_fields(summary=result.summary()))

    def _on_message(self, msg: dict) -> None:
        t = msg[m.K_TYPE]
        link = self.link
        stream = link.peer_stream()
        rid = msg.get(m.K_RID, 0)
        if t == m.T_LINKTEST:
            n, data = msg.get(m.K_LT_N), msg.get(m.K_LT_DATA)
            if not isinstance(n, int) or not isinstance(data, bytes):
                link.reject(m.ERR_BAD_FIELD, "linktest: n and data required", t)
                return
            ok = data == pattern(n, len(data))
            if rid:
                self.store.put_linktest(stream, rid, n, ok)
        elif t == m.T_RECORD:
            body = msg.get(m.K_REC_BODY)
            src = msg.get(m.K_REC_SRC)
            if not rid or not isinstance(body, bytes) or not isinstance(src, int):
                link.reject(m.ERR_BAD_FIELD, "record: rid, src and body required", t)
                return
            if not self.measuring():
                raise _Deferred()
            if self.ingest.record(stream, rid, msg):
                self.records_stored += 1
        elif t == m.T_LEDS:
            pats = msg.get(m.K_LEDS_PATTERNS)
            if not isinstance(pats, list) or len(pats) != 4:
                link.reject(m.ERR_BAD_FIELD, "leds: four patterns required", t)
                return
            self.fw_leds = [pattern_name(p) if isinstance(p, int) else "?" for p in pats]
            log.debug("leds", extra=_fields(pwr=self.fw_leds[0], tls=self.fw_leds[1],
                                            lmc=self.fw_leds[2], wmt=self.fw_leds[3]))
        elif t == m.T_STATUS:
            self.fw_status = {
                "uptime_ms": msg.get(m.K_STATUS_UPTIME),
                "counters": msg.get(m.K_STATUS_COUNTERS),
                "outbox": msg.get(m.K_STATUS_OUTBOX),
                "mem_free": msg.get(m.K_STATUS_MEM_FREE),
            }
        elif t == m.T_LINKTEST_REPORT:
            self.fw_linktest = {
                "received": msg.get(m.K_LTR_RECEIVED), "last_n": msg.get(m.K_LTR_LAST),
                "out_of_order": msg.get(m.K_LTR_OUT_OF_ORDER),
                "bad_data": msg.get(m.K_LTR_BAD_DATA),
            }
        elif t == m.T_EVENT:
            code = msg.get(m.K_EVENT_CODE)
            params = msg.get(m.K_EVENT_PARAMS, [])
            ev = {"event": EVENT_NAMES.get(code, code), "params": params, "ts": time.time()}
            self.fw_events.append(ev)
            level = logging.INFO if code == m.EV_BOOT else logging.WARNING
            log.log(level, "firmware event", extra=_fields(event=ev["event"], params=params))
        elif t in (m.T_LMN_RX, m.T_LMN_DONE):
            problem = self.lmn.on_message(msg) if self.lmn is not None else None
            if problem:
                link.reject(m.ERR_BAD_FIELD, problem, t)
        elif t == m.T_ERROR:
            log.warning("firmware rejected a message", extra=_fields(
                code=ERROR_NAMES.get(msg.get(m.K_ERROR_CODE), msg.get(m.K_ERROR_CODE)),
                detail=msg.get(m.K_ERROR_DETAIL), ref=msg.get(m.K_ERROR_REF)))
        elif t in (m.T_STATE, m.T_TIME, m.T_GET_STATUS, m.T_LINKTEST_GEN, m.T_RELEASE,
                   m.T_LMN_TX):
            link.reject(m.ERR_NOT_SUPPORTED, "firmware may not send this type", t)
        else:
            link.reject(m.ERR_UNKNOWN_TYPE, "unknown message type", t)

    # ------------------------------------------------------------------ commands

    def _on_gateway_change(self) -> None:
        self._state_dirty = True
        self._wake.set()

    def request_status(self) -> None:
        if self.link.up:
            self.link.send({m.K_TYPE: m.T_GET_STATUS})
            self._wake.set()

    def linktest(self, count: int, size: int) -> None:
        """Queues ``count`` durable linktest messages of ``size`` bytes each way: the host's go
        through its SQLite outbox, the firmware's are generated on the board."""
        if not 0 <= count <= 1_000_000 or not 0 <= size <= self.link.max_payload - 32:
            raise ValueError("count must be 0..1000000 and size 0..max_payload-32")
        # host->firmware test numbers continue across tests: the firmware checks n == last + 1
        start = int(self.store.meta_get("linktest_tx_n") or 0) + 1
        payloads = [
            cbor2.dumps({m.K_TYPE: m.T_LINKTEST, m.K_LT_N: n, m.K_LT_DATA: pattern(n, size)})
            for n in range(start, start + count)
        ]
        payloads.append(cbor2.dumps(
            {m.K_TYPE: m.T_LINKTEST_GEN, m.K_LTG_COUNT: count, m.K_LTG_SIZE: size}))
        self._outq.extend(self.store.outbox_extend(payloads, meta={"linktest_tx_n": start + count - 1}))
        self._wake.set()

    # ------------------------------------------------------------------ status

    def resync_time(self) -> None:
        """Send the legal time to the front-end at the next poll (after a synchronisation):
        its capture stamps must not run on the old time for up to a minute."""
        self._last_time_sync = float("-inf")

    def status(self) -> dict[str, Any]:
        link = self.link
        stream = link.peer_stream()
        return {
            "port": self.port.url,
            "port_error": self.port_error,
            "link": "up" if link.up else "sync",
            "up_since": self.up_since,
            "firmware": None if self.fw_hello is None else {
                "version": self.fw_hello.get("fw"),
                "board": self.fw_hello.get("board"),
                "boot": self.fw_hello.get("boot"),
                "reset": self.fw_hello.get("reset"),
                "durable_outbox": self.fw_hello.get("durable"),
                "files": {k: v.hex() for k, v in self.fw_hello.get("files", {}).items()
                          if isinstance(v, bytes)},
                "integrity": self.fw_integrity,
            },
            "leds": None if self.fw_leds is None else dict(
                zip(("PWR", "TLS", "LMC", "wMT"), self.fw_leds)),
            "host_counters": dict(link.counters),
            "rtt_ms": link.rtt()[0],
            "rto_ms": link.rtt()[1],
            "host_outbox": {"queued_in_link": link.queued(), "waiting": len(self._outq)},
            "firmware_status": self.fw_status,
            "firmware_events": list(self.fw_events),
            "linktest": {
                "host_received": self.store.linktest_stats(stream) if stream else None,
                "firmware_received": self.fw_linktest,
            },
            "records_stored": self.records_stored,
            "store_errors": self.store_errors,
        }
