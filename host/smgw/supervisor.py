"""What makes the running gateway trustworthy for billing, wired together: the logbooks
(every catalogue event goes where the catalogue routes it), legal time (SNTP to the GWA's time
service, validity rules), the operating state (causes from all of these, the LEDs) and the
self-test (at start, every 4 hours, on demand).

The pieces are separate modules with their own tests (``smgw.logbook``, ``smgw.legaltime``,
``smgw.opstate``, ``smgw.selftest``); this module only connects them to each other and to the
gateway: which cause a log or clock condition raises, which check reads which component.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable

from cryptography.hazmat.primitives import serialization

from smgw import events
from smgw.legaltime.clock import LegalClock
from smgw.legaltime.sntp import SntpSource
from smgw.logbook.catalogue import event as catalogue_event
from smgw.logbook.chain import Signer
from smgw.logbook.store import LogbookError, LogLimits, Logbooks, LogStoreFullError
from smgw.opstate import Cause, OperatingState
from smgw.selftest import checks as st_checks
from smgw.selftest import kat, software
from smgw.selftest.runner import SelfTest
from smgw.sim.ntpserver import NtpServer

log = logging.getLogger("smgw.supervisor")

TICK_S = 1.0
START_TEST_WAIT_S = 10.0  # the start self-test waits this long for the firmware's hello
MIN_FREE_BYTES = 64 * 1024 * 1024
# capacity messages of the logbooks and the cause each raises
FULL_EVENTS = {10098: Cause.CALIBRATION_LOG_FULL, 10238: Cause.CONSUMER_LOG_FULL,
               10259: Cause.STORE_FULL}
EV_CONSUMER_LOG_ROOM = 10255  # a full consumer log has room again


class Supervisor:
    def __init__(self, cfg: Any, data_dir: Path, gateway_state: Any, store: Any,
                 link: Any, meter_consumer: Callable[[str], str | None] | None = None) -> None:
        self.cfg = cfg
        self.data_dir = data_dir
        self.gateway_state = gateway_state
        self.store = store
        self.link = link
        self.gateway_id = cfg.gateway.id
        self.consumers = list(cfg.logbook.consumers)
        self.meter_consumer = meter_consumer or (lambda meter: self.consumers[0])
        self.emit = events.emitter(log, fill={"smgw": self.gateway_id})
        self.ntp: NtpServer | None = None
        self.logbooks: Logbooks | None = None
        self.clock: LegalClock | None = None
        self.ops: OperatingState | None = None
        self.selftest: SelfTest | None = None
        self._task: asyncio.Task | None = None
        self._syncing = False
        self.sink_errors = 0
        self._owner = threading.get_ident()
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ start and stop

    def open(self) -> None:
        """Everything that must exist before the first event can be logged."""
        d = self.data_dir
        first_start = not (d / "logs.db").exists()
        keys = d / "keys"
        self.signer = Signer.load_or_create(keys, self.gateway_id)
        self.clock = LegalClock(self._time_source(), emit=self.emit,
                                state_path=d / "legal-time.json",
                                rtc_bridge_s=self.cfg.time.rtc_bridge_s,
                                sync_interval_s=self.cfg.time.sync_interval_s,
                                smallest_period_s=self.cfg.time.smallest_period_s,
                                gateway_id=self.gateway_id)
        lb = self.cfg.logbook
        self.logbooks = Logbooks.open(
            d / "logs.db", self.gateway_id, self.signer,
            LogLimits(calibration_entries=lb.calibration_entries,
                      system_entries=lb.system_entries, consumer_entries=lb.consumer_entries),
            clock=self.clock.now_ms, on_event=lambda i, level, p: self.emit(i, p),
            store_files=[d / "smgw.db"])
        events.set_sink(self._sink)
        self.ops = OperatingState(self.gateway_state, self.emit, d / "opstate.json",
                                  must_exist=not first_start)
        self.clock.boot(None)
        self._seal_software(first_start)
        link_check = st_checks.LinkCheck(self.link.status)
        checks: list[Callable[[], Any]] = [
            kat.sha256, kat.sha384, kat.aes128, kat.aes256, kat.aes_gcm, kat.aes_cmac,
            kat.ecdsa_p256, kat.ecdsa_brainpool_pct, kat.rng_repetition_count,
            kat.rng_adaptive_proportion,
            lambda: software.verify(d, self._seal_key().public()),
            lambda: st_checks.check_firmware(self.link.fw_integrity),
            lambda: st_checks.check_database(self.store),
            # the chain up to the signed head proves every entry's content (8 µs an entry);
            # every single signature is what `smgw verify-log` checks on an export
            lambda: st_checks.check_log_chain(
                lambda: self.logbooks.verify_calibration(signatures=False)),
            lambda: st_checks.check_time(lambda: self.clock.valid),
            link_check,
            lambda: st_checks.check_disk(d, MIN_FREE_BYTES),
        ]
        self.selftest = SelfTest(checks, self.ops, self.emit,
                                 period_s=self.cfg.logbook.selftest_interval_s,
                                 path=d / "selftest.json")

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._owner = threading.get_ident()
        self._task = asyncio.create_task(self._run(), name="supervisor")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self.clock:
            self.clock.save()
        events.set_sink(None)
        if self.logbooks:
            self.logbooks.close()
        if self.ntp:
            self.ntp.stop()

    def _time_source(self) -> SntpSource:
        server = self.cfg.time.server
        if server == "sim":
            # the simulated GWA time service: a real SNTP server on the loopback interface
            self.ntp = NtpServer().start()
            return SntpSource("127.0.0.1", self.ntp.port)
        host, _, port = server.rpartition(":") if ":" in server else (server, "", "")
        return SntpSource(host, int(port) if port else 123)

    def _seal_key(self) -> software.EcdsaKey:
        pem = (self.data_dir / "keys" / "log-sign.key.pem").read_bytes()
        return software.EcdsaKey(serialization.load_pem_private_key(pem, password=None))

    def _seal_software(self, first_start: bool) -> None:
        # An open project cannot ship a vendor signature: the gateway seals its own
        # installation at the first start and the self-test detects any change afterwards.
        # The simulated board is a development bench whose code changes with every edit, so
        # there the seal is renewed at each start (and says so).
        manifest = self.data_dir / "software-manifest.json"
        if first_start or not manifest.exists() or self.cfg.link.port == "sim":
            software.seal(self.data_dir, self._seal_key())
            if not first_start and self.cfg.link.port == "sim":
                log.info("development bench: the software manifest was sealed anew")

    # ------------------------------------------------------------------ events -> logbooks

    def _sink(self, cat: int, level: str, status: str, params: dict, text: str) -> None:
        lb = self.logbooks
        if lb is None:
            return
        if threading.get_ident() != self._owner:
            # an event from a worker thread (the time sync): the logbooks' SQLite connection
            # belongs to the gateway's thread, and the order of entries is kept there
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self._sink, cat, level, status, params, text)
            return
        ev = catalogue_event(cat)
        logs = sorted(ev.logs)
        consumers: list[str] = []
        if "consumer" in ev.logs:
            if "consumer_log" in params:
                # the reporter knows whose log it is (HAN logins, deliveries of a profile);
                # "" = nobody's (a technician's login) - never every consumer's
                consumers = [params["consumer_log"]] if params["consumer_log"] else []
            else:
                meter = params.get("meter")
                owner = self.meter_consumer(str(meter)) if meter else None
                consumers = [owner] if owner else list(self.consumers)
        clean = {str(k): v if isinstance(v, (int, str)) and not isinstance(v, bool) else str(v)
                 for k, v in params.items()}
        valid = self.clock.valid if self.clock else False
        try:
            # a full log takes what it still can (skip_full): its own "full" message says so
            lb.append(cat, level, status, clean, text, logs, consumers, time_valid=valid,
                      skip_full=True)
        except LogStoreFullError:
            self._cause(Cause.STORE_FULL, "log store full")
        except (LogbookError, ValueError) as e:
            self.sink_errors += 1
            log.error("logbook write failed", extra={"fields": {"cat": cat, "error": str(e)}})
        # the capacity messages switch the operating state (seed 000 Tabelle 13, §2.6)
        if cat in FULL_EVENTS:
            self._cause(FULL_EVENTS[cat], text)
        elif cat == EV_CONSUMER_LOG_ROOM and self.ops is not None:
            self.ops.clear_cause(Cause.CONSUMER_LOG_FULL, source="logbook")

    def _cause(self, cause: Cause, detail: str, source: str = "logbook") -> None:
        if self.ops is not None and not self.ops.is_active(cause):
            self.ops.raise_cause(cause, detail, source=source)

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        await self._sync(loop)
        # the start self-test wants the firmware's hello (its file hashes): wait a little
        t0 = time.monotonic()
        while self.link.fw_integrity is None and time.monotonic() - t0 < START_TEST_WAIT_S:
            await asyncio.sleep(0.1)
        self.run_selftest("start")
        self.ops.start()
        while True:
            await asyncio.sleep(TICK_S)
            self.clock.tick()
            self._time_cause()
            if self.clock.next_sync_in_s() <= 0 and not self._syncing:
                await self._sync(loop)
            if self.selftest.due():
                self.run_selftest("periodic")

    async def _sync(self, loop: asyncio.AbstractEventLoop) -> None:
        self._syncing = True
        try:
            res = await loop.run_in_executor(None, self.clock.sync)  # UDP, up to 2 s
        finally:
            self._syncing = False
        resync = getattr(self.link, "resync_time", None)
        if resync is not None and self.clock.valid:
            resync()  # the front-end stamps captures with the newly synchronised time
        if res.invalid_from_ms is not None and res.invalid_until_ms is not None:
            n = self.store.mark_time_invalid(res.invalid_from_ms, res.invalid_until_ms)
            log.warning("values flagged time-invalid after a large correction",
                        extra={"fields": {"count": n, "from_ms": res.invalid_from_ms,
                                          "until_ms": res.invalid_until_ms}})
        self._time_cause()

    def _time_cause(self) -> None:
        if self.clock.valid:
            if self.ops.is_active(Cause.TIME_INVALID):
                self.ops.clear_cause(Cause.TIME_INVALID, source="legal-time")
        elif not self.ops.is_active(Cause.TIME_INVALID):
            self.ops.raise_cause(Cause.TIME_INVALID, "legal time invalid", source="legal-time")

    def run_selftest(self, trigger: str, consumer_log: str | None = None) -> Any:
        return self.selftest.run(trigger, consumer_log)

    # ------------------------------------------------------------------ for the gateway

    def allows(self, function: str) -> bool:
        return self.ops is None or self.ops.allows(function)

    def time_valid_at(self, ts_ms: int | None) -> bool:
        return ts_ms is not None and self.clock is not None and self.clock.time_valid_at(ts_ms)

    def now_ms(self) -> int:
        return self.clock.now_ms()

    def status(self) -> dict[str, Any]:
        last = self.selftest.last() if self.selftest else None
        return {
            "operating_state": self.ops.describe() if self.ops else None,
            "time": self.clock.status() if self.clock else None,
            "selftest": None if last is None else last.to_dict()
            if hasattr(last, "to_dict") else str(last),
            "logbooks": self.logbooks.usage() if self.logbooks else None,
            "sink_errors": self.sink_errors,
        }
