"""A bench on the test machine: a pty 'cable' (with optional line damage), the real firmware on
the sim board in its own process, and the real host gateway (``smgw run``) in another. Each can be
killed and restarted independently."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from smgw.control import ControlError, request
from smgw.sim.firmware import start_firmware
from smgw.sim.ptybridge import Noise, PtyBridge


class Bench:
    def __init__(self, tmp: Path, noise: Noise | None = None, fw_env: dict[str, str] | None = None,
                 host_config: str | None = None):
        self.tmp = tmp
        self.host_config = host_config  # TOML text for the host's configuration file
        self.bridge = PtyBridge(noise).start()
        self.fw_state = tmp / "fw"
        self.host_dir = tmp / "host"
        self.fw_env = fw_env or {}
        self.fw: subprocess.Popen | None = None
        self.host: subprocess.Popen | None = None

    # ---------------------------------------------------------------- processes

    def start_firmware(self) -> None:
        self.fw = start_firmware(self.bridge.port_b, self.fw_state, self.tmp / "fw.log",
                                 **self.fw_env)

    def start_host(self) -> None:
        self.host_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.tmp / "host.log", "ab")
        conf: list[str] = []
        if self.host_config is not None:
            (self.tmp / "host.toml").write_text(self.host_config)
            conf = ["-c", str(self.tmp / "host.toml")]
        self.host = subprocess.Popen(
            [sys.executable, "-m", "smgw.cli", *conf, "--data-dir", str(self.host_dir), "run",
             "--port", self.bridge.port_a],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        log.close()

    def kill_firmware(self) -> None:
        _kill(self.fw)

    def kill_host(self) -> None:
        _kill(self.host)

    def close(self) -> None:
        for p in (self.host, self.fw):
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    _kill(p)
        self.bridge.close()

    # ---------------------------------------------------------------- control

    @property
    def socket(self) -> Path:
        return self.host_dir / "smgw.sock"

    def cmd(self, cmd: str, **kw: Any) -> Any:
        return request(self.socket, cmd, **kw)

    def status(self) -> dict[str, Any] | None:
        try:
            return self.cmd("status")
        except ControlError:
            return None

    def wait_for(self, cond: Callable[[dict[str, Any]], bool], timeout: float,
                 what: str, refresh: bool = False, interval: float = 0.3) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        st = None
        while time.monotonic() < deadline:
            for p, name in ((self.fw, "firmware"), (self.host, "host")):
                if p is not None and p.poll() is not None and p.returncode not in (
                        -signal.SIGKILL, -signal.SIGTERM):
                    raise AssertionError(f"{name} died with {p.returncode}: {self.logs()}")
            if refresh:
                try:
                    self.cmd("refresh")
                except ControlError:
                    pass
            st = self.status()
            if st is not None and cond(st):
                return st
            time.sleep(interval)
        raise AssertionError(f"timed out waiting for {what}; last status: {st}\n{self.logs()}")

    def wait_up(self, timeout: float = 30) -> dict[str, Any]:
        return self.wait_for(lambda s: s["link"] == "up" and s.get("firmware"), timeout,
                             "the link to come up")

    def logs(self) -> str:
        out = []
        for name in ("host.log", "fw.log"):
            p = self.tmp / name
            if p.exists():
                out.append(f"--- {name} (tail)\n" + p.read_text(errors="replace")[-3000:])
        return "\n".join(out)


def _kill(p: subprocess.Popen | None) -> None:
    if p and p.poll() is None:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()


def host_rx(st: dict[str, Any]) -> dict[str, Any]:
    return st["linktest"]["host_received"] or {}


def fw_rx(st: dict[str, Any]) -> dict[str, Any]:
    return st["linktest"]["firmware_received"] or {}
