"""The ``smgw`` command, run as a real subprocess (``python -m smgw.cli``)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from smgw import VERSION
from smgw.control import ControlServer
from smgw.service import status_line


def smgw(*args: str, cwd: Path, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "smgw.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------------ help, config


def test_help_lists_the_subcommands(tmp_path):
    r = smgw("--help", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: smgw")
    for sub in ("run", "status", "linktest", "config"):
        assert sub in r.stdout
    assert "--data-dir" in r.stdout and "--config" in r.stdout


def test_version(tmp_path):
    r = smgw("--version", cwd=tmp_path)
    assert r.returncode == 0
    assert r.stdout.strip() == f"smgw {VERSION}"


def test_no_subcommand_is_a_usage_error(tmp_path):
    r = smgw(cwd=tmp_path)
    assert r.returncode == 2
    assert "usage:" in r.stderr


def test_config_prints_the_defaults_as_json(tmp_path):
    r = smgw("config", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    cfg = json.loads(r.stdout)
    assert cfg["link"]["port"] == "sim"
    assert cfg["link"]["baudrate"] == 115200
    # relative default paths resolve against the working directory
    data_dir = Path(cfg["gateway"]["data_dir"])
    assert data_dir == tmp_path.resolve() / "var" or data_dir == tmp_path / "var"
    assert Path(cfg["control"]["socket"]) == data_dir / "smgw.sock"
    assert Path(cfg["sim"]["firmware_state_dir"]) == data_dir / "sim-board"
    assert not (tmp_path / "var").exists()  # showing the configuration creates nothing


def test_data_dir_option_moves_the_derived_paths(tmp_path):
    d = tmp_path / "elsewhere"
    r = smgw("--data-dir", str(d), "config", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    cfg = json.loads(r.stdout)
    assert Path(cfg["gateway"]["data_dir"]) == d
    assert Path(cfg["control"]["socket"]) == d / "smgw.sock"
    assert Path(cfg["sim"]["firmware_state_dir"]) == d / "sim-board"


def test_config_file_values_are_used(tmp_path):
    (tmp_path / "ok.toml").write_text('[gateway]\nid = "EOPN-TEST-7"\n[link]\nwindow = 4\n')
    r = smgw("-c", "ok.toml", "config", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    cfg = json.loads(r.stdout)
    assert cfg["gateway"]["id"] == "EOPN-TEST-7"
    assert cfg["link"]["window"] == 4
    assert cfg["link"]["port"] == "sim"


def test_unknown_config_key_exits_2_and_names_it(tmp_path):
    (tmp_path / "bad.toml").write_text("[link]\nbaud = 9600\n")
    r = smgw("-c", "bad.toml", "config", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stdout == ""
    assert "configuration error" in r.stderr
    assert "link.baud" in r.stderr
    assert "Traceback" not in r.stderr


def test_bad_config_value_exits_2(tmp_path):
    (tmp_path / "bad.toml").write_text("[link]\nwindow = 40\n")
    r = smgw("-c", "bad.toml", "status", cwd=tmp_path)
    assert r.returncode == 2
    assert "link.window" in r.stderr and "40" in r.stderr


def test_missing_config_file_exits_2(tmp_path):
    r = smgw("-c", "nope.toml", "config", cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "nope.toml" in r.stderr
    assert "Traceback" not in r.stderr


# ------------------------------------------------------------------ status without a gateway


def test_status_without_a_gateway_exits_1(tmp_path):
    d = tmp_path / "data"
    r = smgw("--data-dir", str(d), "status", cwd=tmp_path)
    assert r.returncode == 1
    assert "no gateway running" in r.stderr
    assert str(d / "smgw.sock") in r.stderr
    assert r.stdout == ""
    assert "Traceback" not in r.stderr
    assert not d.exists()


def test_status_json_without_a_gateway_exits_1(tmp_path):
    r = smgw("--data-dir", str(tmp_path), "status", "--json", cwd=tmp_path)
    assert r.returncode == 1
    assert "no gateway running" in r.stderr


# ------------------------------------------------------------------ status against a server


def full_status() -> dict[str, Any]:
    return {
        "gateway": {"id": "EOPN0000000042", "version": VERSION, "uptime_s": 12.5,
                    "operating_state": "normal", "wan": "up", "lmc": "none",
                    "firmware_install": False, "security": "none"},
        "port": "/dev/pts/9", "port_error": None, "link": "up", "up_since": 1.0,
        "firmware": {"version": "0.1.0", "board": "sim", "boot": 3, "reset": "power-on",
                     "durable_outbox": True, "files": {"smgwfw/link.py": "ab" * 32}},
        "leds": {"PWR": "on", "TLS": "on", "LMC": "off", "wMT": "flash"},
        "host_counters": {"tx_frames": 7, "rx_frames": 5, "bad_crc": 0},
        "firmware_status": {"counters": {"retransmits": 2, "bad_cobs": 0}},
        "linktest": {"host_received": None, "firmware_received": None},
    }


class FakeGateway:
    """A real ControlServer on a real socket, in a thread, answering with canned data."""

    def __init__(self, sock: Path, handlers: dict[str, Any]) -> None:
        self.sock, self.handlers = sock, handlers
        self.requests: list[dict[str, Any]] = []
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()

        def wrap(fn):
            def h(req):
                self.requests.append(req)
                return fn(req)
            return h

        server = ControlServer(self.sock, {k: wrap(v) for k, v in self.handlers.items()})
        await server.start()
        self._ready.set()
        await self._stop.wait()
        await server.stop()

    def __enter__(self) -> "FakeGateway":
        self._thread.start()
        assert self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)


def test_status_text_output(tmp_path):
    with FakeGateway(tmp_path / "smgw.sock", {"status": lambda r: full_status()}):
        r = smgw("--data-dir", str(tmp_path), "status", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == status_line(full_status())
    assert lines[0] == ("link=up fw 0.1.0 board=sim boot=3 state=normal "
                        "LEDs PWR=on TLS=on LMC=off wMT=flash")
    text = r.stdout
    assert "id=EOPN0000000042" in text and "uptime=12.5s" in text and "wan=up" in text
    assert "files=1" in text and "reset=power-on" in text
    assert "tx_frames=7" in text and "rx_frames=5" in text
    assert "bad_crc" not in text  # zero counters are left out
    assert "retransmits=2" in text


def test_status_json_output(tmp_path):
    with FakeGateway(tmp_path / "smgw.sock", {"status": lambda r: full_status()}) as fg:
        r = smgw("--data-dir", str(tmp_path), "status", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == full_status()
    assert fg.requests == [{"cmd": "status"}]


def test_status_refused_by_the_gateway_exits_1(tmp_path):
    def broken(req):
        raise RuntimeError("store is on fire")

    with FakeGateway(tmp_path / "smgw.sock", {"status": broken}):
        r = smgw("--data-dir", str(tmp_path), "status", cwd=tmp_path)
    assert r.returncode == 1
    assert "store is on fire" in r.stderr
    assert "Traceback" not in r.stderr


def test_linktest_sends_count_and_size(tmp_path):
    handlers = {"status": lambda r: full_status(),
                "linktest": lambda r: {"queued": r["count"], "size": r["size"]}}
    with FakeGateway(tmp_path / "smgw.sock", handlers) as fg:
        r = smgw("--data-dir", str(tmp_path), "linktest", "--count", "17", "--size", "33",
                 cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "queued 17 messages of 33 bytes each way" in r.stdout
    assert {"cmd": "linktest", "count": 17, "size": 33} in fg.requests


# ------------------------------------------------------------------ status_line


def test_status_line_minimal():
    st = {"link": "sync", "firmware": None, "leds": None,
          "gateway": {"operating_state": "starting"}}
    assert status_line(st) == "link=sync fw - state=starting LEDs unknown"


def test_status_line_with_firmware_and_leds():
    st = {"link": "up", "firmware": {"version": "1.2.3", "board": "rp2040", "boot": 17},
          "leds": {"PWR": "blink-500", "TLS": "off", "LMC": "heartbeat", "wMT": "flash"},
          "gateway": {"operating_state": "restricted"}}
    assert status_line(st) == ("link=up fw 1.2.3 board=rp2040 boot=17 state=restricted "
                               "LEDs PWR=blink-500 TLS=off LMC=heartbeat wMT=flash")


def test_status_line_tolerates_missing_optional_keys():
    assert status_line({"link": "up", "gateway": {"operating_state": "normal"}}) == \
        "link=up fw - state=normal LEDs unknown"


def test_demo_takes_the_data_dir_before_or_after_the_command():
    from smgw.cli import build_parser

    assert build_parser().parse_args(["demo", "--data-dir", "/x"]).data_dir == "/x"
    assert build_parser().parse_args(["--data-dir", "/y", "demo"]).data_dir == "/y"
    args = build_parser().parse_args(["demo", "--han-port", "9443"])
    assert args.han_port == 9443 and getattr(args, "data_dir", None) is None
