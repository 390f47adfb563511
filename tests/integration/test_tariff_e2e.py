"""Simulated meter -> firmware (sim board) -> gateway (`smgw run`) -> tariff profiles TAF 1, 2 and
7 -> protected delivery to a test EMT, which verifies every signature. The gateway is killed
with SIGKILL while the EMT holds a message it already stored but has not acknowledged; after
the restart nothing is lost and nothing is duplicated.

Time: billing periods are a day at least (TAF 2), a month for TAF 1, and TAF 7 registers every
15 minutes. Instead of waiting for them, the gateway's legal time comes from an SNTP server in
this test that serves the real clock plus an offset: the gateway starts at 2026-01-31 23:57:20
local time, so a month, a day and a registration period all end 160 seconds later. The
firmware stamps captures with the gateway's legal time, so meter readings, tariff periods,
profiles and the EMT all live on that shifted but steadily running clock. What a test this short
cannot show (a TAF 1 register needs a reading at the start of its month) the unit tests of the
engine show on stored readings (tests/host/tariff/test_engine.py).

Needs the tariff engine and the delivery worker running in `smgw run` (smgw.service) and the
`smgw profile` command (smgw.cli).
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from harness import Bench
from smgw.security.keystore import KeyStore
from smgw.sim.ntpserver import NtpServer
from smgw.sim.ptybridge import PtyBridge
from smgw.sim.smlmeter import DailyProfile, SmlMeter
from smgw.wan.emtserver import EmtReceiver

pytestmark = pytest.mark.slow

GW = "EOPN0000000001"
CET = dt.timezone(dt.timedelta(hours=1))
BOUNDARY = dt.datetime(2026, 2, 1, tzinfo=CET)            # month, day and 15-min period end
START = BOUNDARY - dt.timedelta(seconds=160)               # legal time when the test starts
BOUNDARY_MS = int(BOUNDARY.timestamp() * 1000)
OBIS = ["1-0:1.8.0", "1-0:2.8.0", "1-0:16.7.0"]


class EmtThread:
    """The test EMT on its own event loop thread."""

    def __init__(self, out: Path, triple: Any, roots: list[Any]) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="emt", daemon=True)
        self.thread.start()
        self.emt = EmtReceiver(out, triple, roots)
        self.url = self.call(self.emt.start())

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def do(self, fn: Any) -> Any:
        async def run() -> Any:
            return fn()
        return self.call(run())

    def stop(self) -> None:
        self.call(self.emt.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


def profiles(meter: str, url: str, emt: Any) -> dict[str, str]:
    common = f"""
usage_point = "DE0009990000000000000000000000001"
consumer = "LV1"
supplier = "Stadtwerke Test"
recipients = ["emt1"]
valid_from = "2026-01-01T00:00:00+01:00"
"""
    return {
        "emt1.toml": f"""
[profile]
kind = "communication"
name = "emt1"
url = "{url}"
retry_min_s = 1
retry_max_s = 4
tls_cert = '''{emt.tls.cert_pem().decode()}'''
sig_cert = '''{emt.sig.cert_pem().decode()}'''
enc_cert = '''{emt.enc.cert_pem().decode()}'''
""",
        "taf1.toml": f"""
[profile]
kind = "evaluation"
name = "taf1-net"
taf = 1
{common}
[[channels]]
meter = "{meter}"
obis = "1-0:1.8.0"

[[channels]]
meter = "{meter}"
obis = "1-0:2.8.0"
sign = -1
""",
        "taf2.toml": f"""
[profile]
kind = "evaluation"
name = "taf2-day"
taf = 2
{common}
billing_period = "day"
registration_period_s = 60

[[channels]]
meter = "{meter}"
obis = "1-0:1.8.0"

[[stages]]
number = 1
name = "HT"

[[stages]]
number = 2
name = "NT"

[[switching]]
days = ["all"]
time = "00:00"
stage = 1

[[switching]]
days = ["all"]
time = "23:59"
stage = 2
""",
        "taf7.toml": f"""
[profile]
kind = "evaluation"
name = "taf7-qh"
taf = 7
{common}
[[channels]]
meter = "{meter}"
obis = "1-0:1.8.0"

[[channels]]
meter = "{meter}"
obis = "1-0:2.8.0"

[[sending]]
trigger = "periodic"
period_s = 900
""",
    }


def smgw(b: Bench, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "smgw.cli", "-c", str(b.tmp / "host.toml"),
                           "--data-dir", str(b.host_dir), *args],
                          capture_output=True, text=True, timeout=60)


def wait(cond: Any, timeout: float, what: str, b: Bench) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}\n{b.logs()}")


def test_taf_1_2_7_delivered_signed_once_across_a_kill(tmp_path):
    ntp = NtpServer(offset_s=START.timestamp() - time.time()).start()
    host_config = f"""
[time]
server = "127.0.0.1:{ntp.port}"

[sim]
sml_meter = false
lmn_meters = 0
wmbus_meters = 0

[tariff]
tick_s = 0.5
sim_emt = false

[han]
enabled = false
"""
    meter = SmlMeter(profile=DailyProfile(seed=5, pv_peak_w=0.0), period_s=1.0, two_way=True)
    cable = PtyBridge().start()
    stop_meter = threading.Event()
    b = Bench(tmp_path, fw_env={"SMGW_SIM_METER_PORT": cable.port_b}, host_config=host_config)
    # the gateway's PKI exists before it starts (as if installed); the EMT's triple comes from
    # the same test PKI
    ks = KeyStore.load_or_create(b.host_dir / "pki", GW)
    emt_triple = ks.issue_emt("emt1")
    emt = EmtThread(tmp_path / "emt", emt_triple, ks.roots)
    mthread = threading.Thread(target=lambda: meter.run(cable.port_a, stop_event=stop_meter),
                               daemon=True)
    try:
        b.start_firmware()
        b.start_host()
        b.wait_up()
        mthread.start()
        meter_id = meter.server_id.hex()
        b.cmd("meter-add", id=meter_id, obis=OBIS)
        # the firmware stamps captures with the time the link last sent it; until the link
        # passes on the synchronised legal time (within a minute of link-up) they carry the
        # machine's clock, months "ahead" - the engine leaves those alone
        wait(lambda: any(START.timestamp() * 1000 - 60_000 < (r["capture_ms"] or 0)
                         < BOUNDARY_MS for rs in b.cmd("readings").values() for r in rs),
             120, "readings stamped with the legal time", b)
        pdir = tmp_path / "profiles"
        pdir.mkdir()
        files = []
        for name, text in profiles(meter_id, emt.url, emt_triple).items():
            (pdir / name).write_text(text)
            files.append(str(pdir / name))
        r = smgw(b, "profile", "load", *files)
        assert r.returncode == 0, r.stdout + r.stderr
        listed = smgw(b, "profile", "list")
        assert "taf7-qh" in listed.stdout and "active" in listed.stdout, listed.stdout

        # the EMT stores the first message and then keeps the gateway waiting for the
        # acknowledgement: the gateway dies in the middle of that delivery
        emt.do(lambda: emt.emt.stall_next(1))
        wait(lambda: emt.emt.stats["received"] >= 1, 300, "the first message at the EMT", b)
        b.kill_host()
        # the stalled message is still in the outbox, not acknowledged
        assert len(delivered_rows(b)) < len(emt.do(emt.emt.received))

        b.start_host()
        b.wait_up()

        def settled() -> dict[str, Any] | None:
            d = b.cmd("deliveries")
            want = {"taf1-net", "taf2-day", "taf7-qh"}
            done = {m["profile"] for m in delivered_rows(b)}
            return d if d["pending"] == 0 and want <= done else None

        wait(settled, 180, "all three profiles' messages delivered", b)
        cal = [e["event"] for e in b.cmd("log", log="calibration", role="gwa",
                                         limit=1000)["entries"]]
        assert cal.count(10166) == 3            # three evaluation profiles installed
        assert 10272 in cal                     # the TAF 2 switch at 23:59
        sys_log = [e for e in b.cmd("log", log="system", limit=1000)["entries"]]
        assert 10165 in [e["event"] for e in sys_log]   # delivered
        assert 10269 not in [e["event"] for e in sys_log]
    finally:
        stop_meter.set()
        b.close()
        emt.stop()
        cable.close()
        ntp.stop()

    # the message the gateway was killed waiting for came again and was recognised
    assert emt.emt.stats["duplicates"] >= 1
    check_outcome(b, emt.emt, tmp_path / "emt")


def delivered_rows(b: Bench) -> list[dict[str, Any]]:
    db = sqlite3.connect(b.host_dir / "smgw.db")
    try:
        rows = db.execute("SELECT message_id, profile, n_values, delivered_ms FROM deliveries"
                          ).fetchall()
    finally:
        db.close()
    return [{"message_id": m, "profile": p, "n_values": n, "delivered_ms": d}
            for m, p, n, d in rows if d is not None]


def check_outcome(b: Bench, emt: EmtReceiver, out: Path) -> None:
    from smgw.store import Store
    from smgw.tariff.store import TariffStore

    gw_msgs = delivered_rows(b)
    got = [m for g, m in emt.received() if g == GW]
    # every message once at the EMT, exactly the gateway's messages
    assert len(got) == len(set(got))
    assert sorted(got) == sorted(m["message_id"] for m in gw_msgs)
    rows = list(csv.DictReader(open(out / "values.csv", newline="")))
    # no value row twice, all signatures good
    keys = [(r["message_id"], r["profile"], r["register"], r["owner"], r["target_time"])
            for r in rows]
    assert len(keys) == len(set(keys))
    assert sum(m["n_values"] for m in gw_msgs) == len(rows)
    assert all(r["signature_ok"] == "true" for r in rows if r["billing"] == "true"), rows
    # the billing values the gateway stored are the ones the EMT has
    store = Store.open(b.host_dir / "smgw.db")
    try:
        ts = TariffStore(store)
        for profile in ("taf1-net", "taf2-day", "taf7-qh"):
            stored = ts.values(profile)
            assert stored, profile
            at_emt = [r for r in rows if r["profile"] == profile]
            assert {(r["register"], r["owner"], r["value"]) for r in at_emt} <= {
                (sv.value.register, sv.value.owner, str(sv.value.value)) for sv in stored}
        regs = {sv.value.register: sv.value.value for sv in ts.values("taf2-day")}
        # energy before the switch at 23:59 is HT, after it NT; the stages add up to the sum
        assert regs["1-0:1.8.1"] > 0 and regs["1-0:1.8.2"] > 0
        assert regs["1-0:1.8.1"] + regs["1-0:1.8.2"] + regs["1-0:1.8.63"] == regs["1-0:1.8.0"]
        t7 = [sv.value.target_ms for sv in ts.values("taf7-qh")]
        assert BOUNDARY_MS in t7
    finally:
        store.close()
