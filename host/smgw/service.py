"""The gateway process: opens the store, starts the link to the firmware (on the simulated board
when ``link.port = "sim"``), serves the control socket, and shuts down cleanly on SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from smgw import VERSION
from smgw.config import Config, auto_rto_ms
from smgw.control import ControlServer
from smgw.gateway import GatewayState
from smgw.link.serialport import SerialPort
from smgw.link.service import FirmwareLink
from smgw.sim.firmware import start_firmware
from smgw.sim.ptybridge import Noise, PtyBridge
from smgw.store import Store
from smgwfw import messages as m

log = logging.getLogger("smgw.service")

FIRMWARE_RESTART_S = 1.0


class SimBoard:
    """The simulated board: a pty 'cable' and the firmware process, restarted if it dies (as a
    watchdog would reset a real board)."""

    def __init__(self, cfg: Config) -> None:
        ln = cfg.sim.line_noise
        noise = Noise(ln.bit_error_rate, ln.drop_rate, ln.seed)
        self.bridge = PtyBridge(noise if noise.active else None).start()
        self.state_dir = Path(cfg.sim.firmware_state_dir)
        self.log_path = Path(cfg.gateway.data_dir) / "sim-firmware.log"
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self._task: asyncio.Task | None = None

    @property
    def host_port(self) -> str:
        return self.bridge.port_a

    async def start(self) -> None:
        self.proc = start_firmware(self.bridge.port_b, self.state_dir, self.log_path)
        self._task = asyncio.create_task(self._supervise(), name="sim-firmware")

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
                self.proc = start_firmware(self.bridge.port_b, self.state_dir, self.log_path)

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
        self.bridge.close()

    def status(self) -> dict[str, Any]:
        return {
            "firmware_pid": self.proc.pid if self.proc else None,
            "firmware_restarts": self.restarts,
            "line": vars(self.bridge.stats),
            "state_dir": str(self.state_dir),
        }


class Gateway:
    def __init__(self, cfg: Config, status_out: TextIO | None = None) -> None:
        self.cfg = cfg
        self.status_out = status_out
        self.state = GatewayState()
        self.started = time.time()
        self.store: Store | None = None
        self.sim: SimBoard | None = None
        self.link: FirmwareLink | None = None
        self.control: ControlServer | None = None
        self._last_line = ""

    async def run(self, stop: asyncio.Event) -> None:
        cfg = self.cfg
        data_dir = Path(cfg.gateway.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.store = Store.open(data_dir / "smgw.db")
            port_url = cfg.link.port
            if port_url == "sim":
                self.sim = SimBoard(cfg)
                port_url = self.sim.host_port
                await self.sim.start()
            lc = cfg.link
            rto = lc.rto_ms if isinstance(lc.rto_ms, int) else auto_rto_ms(
                lc.baudrate, lc.window, lc.max_payload)
            self.link = FirmwareLink(
                self.store, SerialPort(port_url, lc.baudrate), self.state, window=lc.window,
                max_payload=lc.max_payload, rto_ms=rto, hello_ms=lc.hello_interval_ms,
                version=VERSION,
            )
            await self.link.start()
            self.control = ControlServer(Path(cfg.control.socket), self._handlers())
            await self.control.start()
            log.info("gateway started", extra={"fields": {
                "id": cfg.gateway.id, "port": cfg.link.port, "data_dir": str(data_dir)}})
            self.state.update(op=m.OP_NORMAL)
            while not stop.is_set():
                self._print_status()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=0.5)
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        if self.control:
            await self.control.stop()
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
        }

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
        if self.sim:
            out["sim"] = self.sim.status()
        return out

    def _print_status(self) -> None:
        if self.status_out is None or self.link is None:
            return
        line = status_line(self.status())
        if line != self._last_line:
            self._last_line = line
            print(time.strftime("%H:%M:%S"), line, file=self.status_out, flush=True)


def status_line(st: dict[str, Any]) -> str:
    fw = st.get("firmware") or {}
    leds = st.get("leds") or {}
    led_txt = " ".join(f"{k}={v}" for k, v in leds.items()) if leds else "unknown"
    fw_txt = (f"fw {fw.get('version')} board={fw.get('board')} boot={fw.get('boot')}"
              if fw else "fw -")
    return (f"link={st['link']} {fw_txt} state={st['gateway']['operating_state']} "
            f"LEDs {led_txt}")


def run_gateway(cfg: Config, status_out: TextIO | None = sys.stdout) -> int:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await Gateway(cfg, status_out).run(stop)

    asyncio.run(main())
    return 0
