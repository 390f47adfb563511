"""``smgw run`` on the simulated board, as a user starts it: one process that spawns its own pty
bridge and the sim firmware, answered by ``smgw status`` from other processes, stopped with
SIGINT."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from smgw.sim.firmware import FIRMWARE_DIR

pytestmark = pytest.mark.slow


class Gateway:
    def __init__(self, tmp: Path, new_session: bool = False) -> None:
        self.tmp = tmp
        self.data = tmp / "data"
        self.stderr_path = tmp / "gateway.stderr"
        self.lines: list[str] = []
        err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "smgw.cli", "--data-dir", str(self.data), "run"],
            cwd=tmp, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, text=True,
            start_new_session=new_session,
        )
        err.close()
        self.fw_pids: list[int] = []  # firmware pids seen, killed at teardown if still alive
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "smgw.cli", "--data-dir", str(self.data),
                               *args], cwd=self.tmp, capture_output=True, text=True, timeout=30)

    def status(self) -> dict[str, Any] | None:
        r = self.cli("status", "--json")
        return json.loads(r.stdout) if r.returncode == 0 else None

    def wait_for(self, cond, timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        st = None
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"gateway exited with {self.proc.returncode}\n" + \
                self.diag()
            st = self.status()
            if st is not None and cond(st):
                return st
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {what}; last status {st}\n{self.diag()}")

    def diag(self) -> str:
        out = "--- stdout\n" + "\n".join(self.lines[-30:])
        out += "\n--- stderr\n" + self.stderr_path.read_text(errors="replace")[-3000:]
        fwlog = self.data / "sim-firmware.log"
        if fwlog.exists():
            out += "\n--- sim-firmware.log\n" + fwlog.read_text(errors="replace")[-2000:]
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def gateway(tmp_path):
    g = Gateway(tmp_path)
    yield g
    g.stop()
    for pid in g.fw_pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); it is gone for our purposes once its parent reaps it
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def processes_using(state_dir: Path) -> list[int]:
    """Live processes whose environment names ``state_dir`` as the sim board's storage."""
    needle = f"SMGW_SIM_STATE={state_dir}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if needle in env and alive(int(entry.name)):
            pids.append(int(entry.name))
    return pids


def up_and_normal(st: dict[str, Any]) -> bool:
    return (st["link"] == "up" and bool(st.get("firmware"))
            and st["gateway"]["operating_state"] == "normal"
            and (st.get("leds") or {}).get("PWR") == "on")


def test_run_status_and_sigint(gateway):
    g = gateway
    st = g.wait_for(up_and_normal, 30, "link up, state normal, PWR on")
    g.fw_pids.append(st["sim"]["firmware_pid"])

    # the human-readable status line
    r = g.cli("status")
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    for part in ("link=up", "board=sim", "state=normal", "boot=1", "LEDs PWR=on"):
        assert part in first, first

    # --json: the firmware's own file hashes, as the firmware computed them
    files = st["firmware"]["files"]
    assert "smgwfw/link.py" in files and "smgwfw/app.py" in files and "smgwfw/leds.py" in files
    for name, digest in files.items():
        assert re.fullmatch(r"[0-9a-f]{64}", digest), (name, digest)
    for name in ("smgwfw/link.py", "smgwfw/app.py"):
        want = hashlib.sha256((FIRMWARE_DIR / name).read_bytes()).hexdigest()
        assert files[name] == want, name
    assert st["firmware"]["board"] == "sim"
    assert st["firmware"]["boot"] == 1
    assert st["sim"]["firmware_restarts"] == 0
    assert Path(st["sim"]["state_dir"]) == g.data / "sim-board"
    fw_pid = st["sim"]["firmware_pid"]
    assert alive(fw_pid)
    assert processes_using(g.data / "sim-board") == [fw_pid]

    # the gateway's own stdout: the banner, then status lines as they change
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any("LEDs PWR=on" in ln for ln in g.lines):
        time.sleep(0.2)
    assert any("LEDs PWR=on" in ln and "link=up" in ln for ln in g.lines), g.diag()
    assert g.lines[0].startswith("smgw ") and "simulated board" in g.lines[0], g.lines[:2]

    sock = g.data / "smgw.sock"
    assert sock.exists()
    g.proc.send_signal(signal.SIGINT)
    t0 = time.monotonic()
    code = g.proc.wait(10)
    assert code == 0, g.diag()
    assert time.monotonic() - t0 < 10
    assert not alive(fw_pid), "the sim firmware outlived the gateway"
    assert processes_using(g.data / "sim-board") == []
    assert not sock.exists(), "the control socket file was left behind"
    assert "Traceback" not in g.stderr_path.read_text(), g.diag()
    r = g.cli("status")
    assert r.returncode == 1 and "no gateway running" in r.stderr


def test_killed_firmware_is_restarted(gateway):
    g = gateway
    st = g.wait_for(up_and_normal, 30, "link up")
    old = st["sim"]["firmware_pid"]
    g.fw_pids.append(old)
    assert st["firmware"]["boot"] == 1

    os.kill(old, signal.SIGKILL)  # as a watchdog reset would hit a real board
    st = g.wait_for(lambda s: s["sim"]["firmware_restarts"] == 1 and s["link"] == "up"
                    and (s.get("firmware") or {}).get("boot") == 2
                    and (s.get("leds") or {}).get("PWR") == "on", 30,
                    "the firmware restarted and the link up again")
    new = st["sim"]["firmware_pid"]
    g.fw_pids.append(new)
    assert new != old and alive(new) and not alive(old)
    assert st["host_counters"]["peer_restarts"] >= 1
    assert st["gateway"]["operating_state"] == "normal"
    # exactly one restart: the supervisor does not keep spawning firmware processes
    time.sleep(1.5)
    st = g.status()
    assert st is not None
    assert st["sim"]["firmware_restarts"] == 1 and st["sim"]["firmware_pid"] == new

    g.proc.send_signal(signal.SIGINT)
    assert g.proc.wait(10) == 0
    assert not alive(new)


def test_ctrl_c_in_a_terminal_stops_cleanly(tmp_path):
    # Ctrl-C sends SIGINT to the whole foreground process group, the firmware child included
    g = Gateway(tmp_path, new_session=True)
    try:
        st = g.wait_for(up_and_normal, 30, "link up")
        fw_pid = st["sim"]["firmware_pid"]
        g.fw_pids.append(fw_pid)
        os.killpg(g.proc.pid, signal.SIGINT)
        assert g.proc.wait(10) == 0, g.diag()
        assert not alive(fw_pid)
        assert not (g.data / "smgw.sock").exists()
        assert "Traceback" not in g.stderr_path.read_text(), g.diag()
    finally:
        if g.proc.poll() is None:
            os.killpg(g.proc.pid, signal.SIGKILL)
            g.proc.wait()
        for pid in g.fw_pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
