"""Runs the real firmware (``firmware/main.py``) under CPython with the sim board."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
FIRMWARE_DIR = REPO / "firmware"
SIM_BOARD_DIR = REPO / "boards" / "sim"


def firmware_command() -> list[str]:
    return [sys.executable, "-u", str(FIRMWARE_DIR / "main.py")]


def firmware_env(port: str, state_dir: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SIM_BOARD_DIR), str(FIRMWARE_DIR)])
    env["SMGW_SIM_PORT"] = port
    env["SMGW_SIM_STATE"] = str(state_dir)
    env.update(extra)
    return env


def start_firmware(port: str, state_dir: Path, log_path: Path | None = None,
                   **extra: str) -> subprocess.Popen:
    """Starts the sim-board firmware process on ``port``; its output goes to ``log_path``."""
    if not (FIRMWARE_DIR / "main.py").exists():
        raise FileNotFoundError(
            f"firmware not found at {FIRMWARE_DIR}: the sim board runs from a source checkout"
        )
    state_dir.mkdir(parents=True, exist_ok=True)
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            firmware_command(), env=firmware_env(port, state_dir, **extra),
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    finally:
        if log_path:
            out.close()
