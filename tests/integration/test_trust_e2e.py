"""The gateway process with its logbooks, legal time, operating state and self-test: events of a
normal start land in the calibration, system and consumer logs; a consumer may not read the
system log, the GWA no consumer log; a calibration-log entry edited on disk while the gateway
was stopped is found by the start self-test (minimal operation, LEDs) and by `smgw verify-log`
on an export."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from harness import Bench
from smgw.control import ControlError

pytestmark = pytest.mark.slow

HOST_CONFIG = """
[sim]
sml_meter = false
lmn_meters = 0
"""


def smgw(b: Bench, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "smgw.cli", "--data-dir", str(b.host_dir),
                           *args], capture_output=True, text=True, timeout=60)


def events_of(b: Bench, log: str, **kw) -> list[int]:
    return [e["event"] for e in b.cmd("log", log=log, limit=500, **kw)["entries"]]


def test_logs_roles_and_a_tampered_calibration_log(tmp_path):
    b = Bench(tmp_path, host_config=HOST_CONFIG)
    try:
        b.start_firmware()
        b.start_host()
        b.wait_up()
        st = b.wait_for(lambda s: (s.get("supervisor") or {}).get("selftest") is not None,
                        timeout=30, what="the start self-test")
        assert st["supervisor"]["selftest"]["ok"] is True
        assert st["supervisor"]["operating_state"]["state"] == "normal"
        b.cmd("meter-add", id="0a0145534d0000000077")
        cal = events_of(b, "calibration", role="gwa")
        assert {10067, 10064, 30300, 10020} <= set(cal)  # time sync, self-test, state, meter
        assert {10067, 10063, 10064, 30300, 10020} <= set(events_of(b, "system"))
        assert 10020 in events_of(b, "consumer", role="consumer", consumer="LV1")
        with pytest.raises(ControlError, match="may not read"):
            b.cmd("log", log="consumer", role="gwa", consumer="LV1")
        with pytest.raises(ControlError, match="may not read"):
            b.cmd("log", log="system", role="consumer")
        r = smgw(b, "selftest", "--role", "consumer")
        assert r.returncode == 0, r.stdout + r.stderr
        r = smgw(b, "selftest", "--role", "consumer")  # at once again: rate limited
        assert r.returncode != 0 and "next self-test" in r.stderr
    finally:
        b.close()

    # edit one calibration entry on disk while the gateway is down, as an attacker with the
    # file would: first dropping the database's own guards against changes
    db = sqlite3.connect(b.host_dir / "logs.db")
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall():
        db.execute(f'DROP TRIGGER "{name}"')
    (seq, text) = db.execute("SELECT seq, text FROM calibration_log ORDER BY seq LIMIT 1"
                             ).fetchone()
    db.execute("UPDATE calibration_log SET text=? WHERE seq=?", (text + " ", seq))
    db.commit()
    db.close()

    b2 = Bench(tmp_path, host_config=HOST_CONFIG)
    try:
        b2.start_firmware()
        b2.start_host()
        b2.wait_up()
        st = b2.wait_for(lambda s: s["gateway"]["operating_state"] == "minimal", timeout=30,
                         what="minimal operation after the tampered log was found")
        assert st["supervisor"]["operating_state"]["state"] == "minimal"
        report = st["supervisor"]["selftest"]
        failed = [c["code"] for c in report["checks"] if not c["ok"]]
        assert failed == ["ST-LOG-CHAIN"]
        assert st["gateway"]["operating_state"] == "minimal"  # what the LEDs show
        csv = tmp_path / "cal.csv"
        r = smgw(b2, "log", "calibration", "--role", "gwa", "--csv", str(csv))
        assert r.returncode == 0, r.stderr
        r = smgw(b2, "verify-log", "--cert", str(b2.host_dir / "keys" / "log-sign.crt.pem"),
                 "--gateway-id", "EOPN0000000001", str(csv))
        assert r.returncode == 1 and f"entry {seq}" in r.stdout
        assert 10065 in events_of(b2, "system")  # self-test failed, logged
    finally:
        b2.close()
