"""The gateway process: opens the store, starts the link to the firmware (on the simulated board
when ``link.port = "sim"``), serves the control socket, and shuts down cleanly on SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, TextIO

from smgw import VERSION
from smgw.config import Config, auto_rto_ms
from smgw.control import ControlServer
from smgw.fileio import atomic_write
from smgw.gateway import GatewayState
from smgw.link.serialport import SerialPort
from smgw.link.service import FirmwareLink
from smgw.lmn.service import LmnService
from smgw.hanservice import HanService
from smgw.market import Market
from smgw.meters.ingest import MeterIngest
from smgw.sim.firmware import start_firmware
from smgw.sim.ptybridge import Noise, PtyBridge
from smgw.sim.lmnmeter import LmnBus, LmnMeter, load_or_create_meter, sim_sid
from smgw.sim.wmbusmeter import WmbusRadioSim, default_meters
from smgw.wmbus.encode import id_bytes, manufacturer_bytes
from smgw.sim.smlmeter import DailyProfile, SmlMeter
from smgw.store import Store
from smgw.supervisor import Supervisor
from smgwfw import messages as m

log = logging.getLogger("smgw.service")

FIRMWARE_RESTART_S = 1.0


class SimBoard:
    """The simulated board: a pty 'cable' and the firmware process, restarted if it dies (as a
    watchdog would reset a real board)."""

    # the simulated meter's channels: import and export registers and the signed power
    METER_OBIS = ["1-0:1.8.0", "1-0:2.8.0", "1-0:16.7.0"]

    def __init__(self, cfg: Config, meter_kw: dict[str, Any] | None = None) -> None:
        ln = cfg.sim.line_noise
        noise = Noise(ln.bit_error_rate, ln.drop_rate, ln.seed)
        self.bridge = PtyBridge(noise if noise.active else None).start()
        self.state_dir = Path(cfg.sim.firmware_state_dir)
        self.log_path = Path(cfg.gateway.data_dir) / "sim-firmware.log"
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self._task: asyncio.Task | None = None
        # an SML push meter on the wired LMN, on a cable of its own
        self.meter: SmlMeter | None = None
        self.meter_bridge: PtyBridge | None = None
        self._meter_stop = threading.Event()
        self._meter_thread: threading.Thread | None = None
        self._fw_env: dict[str, str] = {}
        if cfg.sim.sml_meter:
            self.meter_bridge = PtyBridge().start()
            # meter_kw: the demo continues its backfilled registers (smgw.han.demo)
            kw = {"profile": DailyProfile(seed=1, pv_peak_w=3000.0), **(meter_kw or {})}
            self.meter = SmlMeter(period_s=cfg.sim.sml_meter_period_s, two_way=True, **kw)
            self._fw_env["SMGW_SIM_METER_PORT"] = self.meter_bridge.port_b
        # TR-03109 meters on an RS-485 HDLC bus of their own; their keys and pairing state are
        # kept under the data directory, so a restarted simulation is still the same meters
        self.lmn_meters: list[LmnMeter] = []
        self.lmn_bridge: PtyBridge | None = None
        self.lmn_bus: LmnBus | None = None
        if cfg.sim.lmn_meters:
            self.lmn_bridge = PtyBridge().start()
            key_dir = Path(cfg.gateway.data_dir) / "sim-lmn-meters"
            self.lmn_meters = [
                load_or_create_meter(key_dir, sim_sid(n), secret=b"smgw-sim",
                                     profile=DailyProfile(seed=10 + n, pv_peak_w=0.0),
                                     seed=n, orphan_s=max(3.0, 4 * cfg.lmn.keepalive_s))
                for n in range(1, cfg.sim.lmn_meters + 1)]
            self._fw_env["SMGW_SIM_LMN_PORT"] = self.lmn_bridge.port_b
            self._fw_env["SMGW_SIM_LMN_BAUD"] = str(cfg.sim.lmn_baudrate)
            self._lmn_baud = cfg.sim.lmn_baudrate
        # wireless M-Bus meters (water, gas, heat, HCA, electricity; OMS modes 5 and 7) heard by
        # a simulated AMB8465 radio module on the board's radio UART
        self.radio_bridge: PtyBridge | None = None
        self.radio: WmbusRadioSim | None = None
        self.wmbus_meters: list[tuple[str, bytes | None]] = []  # (meter id, key)
        if cfg.sim.wmbus_meters:
            self.radio_bridge = PtyBridge().start()
            meters = default_meters(cfg.sim.wmbus_meters, frame="none")
            self.radio = WmbusRadioSim(self.radio_bridge.port_a, meters,
                                       rate_per_s=cfg.sim.wmbus_rate_per_s, mode="T1",
                                       duplicate_prob=0.3, baud=115200)
            # a real meter keeps its transmission counter and access number across power
            # cycles: the simulated ones continue where the last run left them (saved at stop),
            # so a restarted bench is not taken for a replay (10264)
            self._radio_state = self.state_dir / "wmbus-meters.json"
            self._load_radio_state()
            self.wmbus_meters = [
                ((manufacturer_bytes(mt.manufacturer) + id_bytes(mt.id)
                  + bytes([mt.version, mt.device_type])).hex(), mt.key)
                for mt, _ in meters]
            self._fw_env["SMGW_SIM_RADIO_PORT"] = self.radio_bridge.port_b
            self._fw_env["SMGW_SIM_RADIO_BAUD"] = "115200"

    @property
    def meter_id(self) -> str | None:
        return self.meter.server_id.hex() if self.meter else None

    @property
    def host_port(self) -> str:
        return self.bridge.port_a

    async def start(self) -> None:
        self.proc = start_firmware(self.bridge.port_b, self.state_dir, self.log_path,
                                   **self._fw_env)
        self._task = asyncio.create_task(self._supervise(), name="sim-firmware")
        if self.meter and self.meter_bridge:
            meter, port = self.meter, self.meter_bridge.port_a
            self._meter_thread = threading.Thread(
                target=lambda: meter.run(port, stop_event=self._meter_stop),
                name="sim-meter", daemon=True)
            self._meter_thread.start()
        if self.radio is not None:
            self.radio.start()
        if self.lmn_bridge is not None:
            self.lmn_bus = LmnBus(self.lmn_bridge.port_a, self.lmn_meters,
                                  baud=self._lmn_baud).start()

    async def _supervise(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            assert self.proc is not None
            code = self.proc.poll()
            if code is not None:
                self.restarts += 1
                log.error("sim firmware exited; restarting it", extra={"fields": {
                    "exit_code": code, "log": str(self.log_path)}})
                await asyncio.sleep(FIRMWARE_RESTART_S)
                self.proc = start_firmware(self.bridge.port_b, self.state_dir, self.log_path,
                                           **self._fw_env)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._meter_stop.set()
        if self._meter_thread:
            self._meter_thread.join(timeout=5)
        if self.meter_bridge:
            self.meter_bridge.close()
        if self.lmn_bus:
            self.lmn_bus.stop()
        if self.radio:
            self.radio.stop()
            self._save_radio_state()
        if self.radio_bridge:
            self.radio_bridge.close()
        if self.lmn_bridge:
            self.lmn_bridge.close()
        self.bridge.close()

    def _load_radio_state(self) -> None:
        try:
            saved = json.loads(self._radio_state.read_text())
        except (OSError, ValueError):
            return
        for slot in self.radio.slots if self.radio else ():
            st = saved.get(str(slot.meter.id)) if isinstance(saved, dict) else None
            if isinstance(st, list) and len(st) == 2:
                # a few telegrams may have been sent after the last save (a killed process)
                slot.counter = (int(st[0]) + 16) & 0xFFFFFFFF
                slot.access_number = (int(st[1]) + 16) & 0xFF

    def _save_radio_state(self) -> None:
        if self.radio is None:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self._radio_state, json.dumps(
            {str(slot.meter.id): [slot.counter, slot.access_number]
             for slot in self.radio.slots}).encode())

    def status(self) -> dict[str, Any]:
        return {
            "firmware_pid": self.proc.pid if self.proc else None,
            "firmware_restarts": self.restarts,
            "line": vars(self.bridge.stats),
            "state_dir": str(self.state_dir),
            "meter": None if self.meter is None else {
                "id": self.meter_id, "frames_sent": self.meter.stats.frames},
            "lmn_bus": None if self.lmn_bus is None else self.lmn_bus.stats(),
            "radio": None if self.radio is None else self.radio.stats(),
        }


class Gateway:
    def __init__(self, cfg: Config, status_out: TextIO | None = None,
                 on_started: Callable[["Gateway"], None] | None = None,
                 sim_meter: dict[str, Any] | None = None) -> None:
        self.cfg = cfg
        self.on_started = on_started
        self.sim_meter = sim_meter or {}
        self.status_out = status_out
        self.state = GatewayState()
        self.started = time.time()
        self.store: Store | None = None
        self.sim: SimBoard | None = None
        self.link: FirmwareLink | None = None
        self.control: ControlServer | None = None
        self.ingest: MeterIngest | None = None
        self.lmn: LmnService | None = None
        self.supervisor: Supervisor | None = None
        self.market: Market | None = None
        self.han: HanService | None = None
        self._last_line = ""
        self._last_print = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        cfg = self.cfg
        data_dir = Path(cfg.gateway.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.store = Store.open(data_dir / "smgw.db")
            port_url = cfg.link.port
            if port_url == "sim":
                self.sim = SimBoard(cfg, self.sim_meter)
                port_url = self.sim.host_port
                await self.sim.start()
            lc = cfg.link
            rto = lc.rto_ms if isinstance(lc.rto_ms, int) else auto_rto_ms(
                lc.baudrate, lc.window, lc.max_payload)
            self.ingest = MeterIngest(self.store)
            self.link = FirmwareLink(
                self.store, SerialPort(port_url, lc.baudrate), self.state, self.ingest,
                window=lc.window,
                max_payload=lc.max_payload, rto_ms=rto, hello_ms=lc.hello_interval_ms,
                version=VERSION,
            )
            # logbooks, legal time, operating state and self-test: open before anything logs
            # an event worth keeping
            self.supervisor = Supervisor(cfg, data_dir, self.state, self.store, self.link)
            self.supervisor.open()
            self.ingest.time_valid = self.supervisor.time_valid_at
            self.ingest.now_ms = self.supervisor.now_ms
            self.link.legal_now_ms = self.supervisor.now_ms
            self.link.measuring = lambda: self.supervisor.allows("measuring")
            if self.sim and self.sim.meter_id and self.sim.meter_id not in self.ingest.meters:
                self.ingest.add_meter(self.sim.meter_id, obis=SimBoard.METER_OBIS,
                                      period_s=round(cfg.sim.sml_meter_period_s) or None)
            for lm in self.sim.lmn_meters if self.sim else ():
                # the simulated meters' profiles with the pairing keys a GWA would enter
                if lm.sid.hex() not in self.ingest.meters:
                    self.ingest.add_meter(lm.sid.hex(), protocol="sml-tls",
                                          obis=SimBoard.METER_OBIS,
                                          period_s=max(1, round(cfg.sim.sml_meter_period_s)),
                                          key=lm.pairing_key)
            for mid, key in self.sim.wmbus_meters if self.sim else ():
                # the simulated radio meters' profiles with the keys a GWA would enter
                if mid not in self.ingest.meters:
                    self.ingest.add_meter(mid, protocol="wmbus", key=key)
            lm = cfg.lmn
            self.lmn = LmnService(self.link, self.ingest, self.state, cfg.gateway.id,
                                  data_dir / "lmn-keys", baud=self._lmn_baud(),
                                  listen_ms=lm.listen_ms, invite_s=lm.invite_s,
                                  keepalive_s=lm.keepalive_s, retry_s=lm.retry_s,
                                  max_misses=lm.max_misses)
            self.lmn.measuring = lambda: self.supervisor.allows("measuring")
            self.lmn.time_valid = lambda: bool(self.supervisor.clock and self.supervisor.clock.valid)
            # tariff application cases and delivery to market participants
            self.market = Market(cfg, data_dir, self.store, self.supervisor,
                                 settled=self._link_settled)
            self.supervisor.meter_consumer = self._meter_consumer
            await self.link.start()
            await self.lmn.start()
            await self.supervisor.start()
            await self.market.start(sim=self.sim is not None)
            if cfg.han.enabled:
                self.han = HanService(cfg, data_dir, self.store, self.supervisor, self.market,
                                      self.link.status)
                await self.han.start()
            if self.on_started is not None:
                self.on_started(self)
            self.control = ControlServer(Path(cfg.control.socket), self._handlers())
            await self.control.start()
            log.info("gateway started", extra={"fields": {
                "id": cfg.gateway.id, "port": cfg.link.port, "data_dir": str(data_dir)}})
            while not stop.is_set():
                self._print_status()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=0.5)
        finally:
            await self._shutdown()

    def _lmn_baud(self) -> int:
        return self.cfg.sim.lmn_baudrate if self.sim else 115200

    def _link_settled(self) -> bool:
        # the front-end has had time to deliver what it captured while the host was down, so a
        # silent channel is really silent (the tariff engine then records the gap)
        lk = self.link
        return bool(lk and lk.link.up and lk.up_since is not None
                    and time.time() - lk.up_since > 10)

    def _meter_consumer(self, meter: str) -> str | None:
        # a meter's consumer-log entries go to the consumer whose usage point reads it
        owner = self.market.consumer_of_meter(meter) if self.market else None
        return owner or self.cfg.logbook.consumers[0]

    async def _shutdown(self) -> None:
        if self.control:
            await self.control.stop()
        if self.han:
            await self.han.stop()
        if self.market:
            await self.market.stop()
        if self.lmn:
            await self.lmn.stop()
        if self.supervisor:
            await self.supervisor.stop()
        if self.link:
            await self.link.stop()
        if self.sim:
            await self.sim.stop()
        if self.store:
            self.store.close()
        log.info("gateway stopped")

    # ------------------------------------------------------------------ control commands

    def _handlers(self) -> dict[str, Any]:
        return {
            "status": lambda req: self.status(),
            "linktest": self._cmd_linktest,
            "state": self._cmd_state,
            "refresh": self._cmd_refresh,
            "meter-add": self._cmd_meter_add,
            "meter-remove": self._cmd_meter_remove,
            "meters": lambda req: {**self.ingest.status(),
                                   "lmn": self.lmn.status() if self.lmn else None},
            "readings": self._cmd_readings,
            "log": self._cmd_log,
            "selftest": self._cmd_selftest,
            "opstate": lambda req: self.supervisor.status(),
            "opstate-reset": self._cmd_opstate_reset,
            **(self.market.handlers() if self.market else {}),
        }

    # roles that may read each log (seed 000 §10, 002 §5): the GWA never reads consumer logs,
    # a consumer reads only their own, the calibration log is readable by everyone
    _LOG_ROLES = {"calibration": ("gwa", "technician", "consumer"),
                  "system": ("gwa", "technician"), "consumer": ("consumer",)}

    def _cmd_log(self, req: dict[str, Any]) -> dict[str, Any]:
        name = str(req.get("log", "system"))
        role = str(req.get("role", "technician"))
        if name not in self._LOG_ROLES:
            raise ValueError(f"no log {name!r} (calibration, system, consumer)")
        if role not in self._LOG_ROLES[name]:
            raise ValueError(f"the role {role!r} may not read the {name} log")
        consumer = req.get("consumer")
        if name == "consumer" and consumer not in self.cfg.logbook.consumers:
            raise ValueError(f"no consumer {consumer!r} "
                             f"({', '.join(self.cfg.logbook.consumers)})")
        lb = self.supervisor.logbooks
        kw = dict(consumer=consumer if name == "consumer" else None,
                  since_ms=req.get("since_ms"), until_ms=req.get("until_ms"),
                  level=req.get("level"))
        if req.get("csv"):
            import io

            buf = io.StringIO()
            n = lb.export_csv(name, buf, **kw)
            return {"csv": buf.getvalue(), "rows": n}
        page = lb.query(name, limit=int(req.get("limit") or 50), after_seq=req.get("after"),
                        **kw)
        return {"entries": [{"seq": e.seq, "ts_ms": e.ts_ms, "time_valid": e.time_valid,
                             "event": e.event_id, "level": e.level, "status": e.status,
                             "text": e.text, "params": e.params, "consumer": e.consumer}
                            for e in page.entries], "next_after": page.next_after}

    def _cmd_selftest(self, req: dict[str, Any]) -> dict[str, Any]:
        from smgw.selftest.runner import RateLimited

        role = str(req.get("role", "technician"))
        if role not in ("consumer", "technician", "gwa"):
            raise ValueError(f"unknown role {role!r}")
        try:
            report = self.supervisor.run_selftest(role)
        except RateLimited as e:
            raise ValueError(f"a consumer may start the next self-test at "
                             f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(e.next_allowed_ms / 1000))}"
                             f" (next_allowed_ms={e.next_allowed_ms})") from None
        return report.to_dict()

    def _cmd_opstate_reset(self, req: dict[str, Any]) -> dict[str, Any]:
        by = str(req.get("by") or "")
        if not by:
            raise ValueError("an administrator reset must name who does it (by)")
        self.supervisor.ops.administrator_reset(by)
        return self.supervisor.status()

    def _cmd_meter_add(self, req: dict[str, Any]) -> dict[str, Any]:
        from smgw.store import StoreError

        key = req.get("key")
        cert = req.get("cert")
        try:
            self.ingest.add_meter(str(req.get("id", "")), str(req.get("protocol", "sml")),
                                  str(req.get("interface", "lmn-wired")),
                                  list(req.get("obis") or []), req.get("period_s"),
                                  bytes.fromhex(key) if key else None,
                                  _cert_der(cert) if cert else None)
        except StoreError as e:
            raise ValueError(str(e)) from None
        if self.lmn:
            self.lmn.reload()
        return self.ingest.status()

    def _cmd_meter_remove(self, req: dict[str, Any]) -> dict[str, Any]:
        if not self.ingest.remove_meter(str(req.get("id", ""))):
            raise ValueError(f"no meter {req.get('id')!r}")
        if self.lmn:
            self.lmn.reload()
        return self.ingest.status()

    def _cmd_readings(self, req: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for mt in self.ingest.meters.values():
            out[mt.meter_id] = [
                {"obis": o, "raw": raw, "scaler": sc, "unit": u, "status": st,
                 "capture_ms": t}
                for o, raw, sc, u, st, t in self.store.latest_readings(mt.id)]
        return out

    def _cmd_linktest(self, req: dict[str, Any]) -> dict[str, Any]:
        count, size = req.get("count", 1000), req.get("size", 100)
        if not isinstance(count, int) or not isinstance(size, int):
            raise ValueError("count and size must be integers")
        assert self.link is not None
        self.link.linktest(count, size)
        return {"queued": count, "size": size}

    def _cmd_state(self, req: dict[str, Any]) -> dict[str, Any]:
        changes = {k: v for k, v in req.items() if k != "cmd"}
        self.state.update(**changes)
        return self.state.describe()

    def _cmd_refresh(self, req: dict[str, Any]) -> None:
        assert self.link is not None
        self.link.request_status()

    def status(self) -> dict[str, Any]:
        assert self.link is not None and self.store is not None
        out: dict[str, Any] = {
            "gateway": {"id": self.cfg.gateway.id, "version": VERSION,
                        "uptime_s": round(time.time() - self.started, 1),
                        **self.state.describe()},
            **self.link.status(),
        }
        out["meters"] = self.ingest.status() if self.ingest else None
        out["lmn"] = self.lmn.status() if self.lmn else None
        out["supervisor"] = self.supervisor.status() if self.supervisor else None
        out["market"] = self.market.status() if self.market else None
        out["han"] = self.han.status() if self.han else None
        if self.sim:
            out["sim"] = self.sim.status()
        return out

    def _print_status(self) -> None:
        if self.status_out is None or self.link is None:
            return
        # twice a second: only what the line shows, not the full status (logbook usage etc.)
        line = status_line({**self.link.status(), "gateway": self.state.describe(),
                            "meters": self.ingest.status() if self.ingest else None})
        # a new line when the state changes, not for every stored value (once a minute then)
        key = line.rsplit(" values=", 1)[0]
        if key != self._last_line or time.monotonic() - self._last_print > 60:
            self._last_line = key
            self._last_print = time.monotonic()
            print(time.strftime("%H:%M:%S"), line, file=self.status_out, flush=True)


def _cert_der(text: str) -> bytes:
    # a certificate given as PEM text or as hex of its DER
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    t = text.strip()
    if t.startswith("-----BEGIN"):
        return x509.load_pem_x509_certificate(t.encode()).public_bytes(Encoding.DER)
    return bytes.fromhex(t)


def status_line(st: dict[str, Any]) -> str:
    fw = st.get("firmware") or {}
    leds = st.get("leds") or {}
    led_txt = " ".join(f"{k}={v}" for k, v in leds.items()) if leds else "unknown"
    fw_txt = (f"fw {fw.get('version')} board={fw.get('board')} boot={fw.get('boot')}"
              if fw else "fw -")
    line = (f"link={st['link']} {fw_txt} state={st['gateway']['operating_state']} "
            f"LEDs {led_txt}")
    if st.get("meters") is not None:
        meters = st["meters"].get("meters") or []
        values = sum(mt["readings"] for mt in meters)
        line += f" meters={len(meters)} values={values}"
    return line


def run_gateway(cfg: Config, status_out: TextIO | None = sys.stdout, **gateway_kw: Any) -> int:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await Gateway(cfg, status_out, **gateway_kw).run(stop)

    asyncio.run(main())
    return 0
