"""A TR-03109 meter on the RS-485 HDLC bus (simulated, on a pty), the real firmware on the sim
board timing the bus, the real host as bus master: address assignment, symmetric pairing, TLS
with the pinned certificates, polled SML values in the store; the meter unplugged and plugged
in again (new address, same pairing); then an impostor with the meter's server id but another
key pair, which is rejected (logged with 10214) and gives no values."""

from __future__ import annotations

import time

import pytest

from harness import Bench
from smgw.lmn import security
from smgw.sim.lmnmeter import LmnBus, LmnMeter, sim_sid
from smgw.sim.ptybridge import PtyBridge
from smgw.sim.smlmeter import ConstantPower
from smgw.store import Store

pytestmark = pytest.mark.slow

BAUD = 115200
HOST_CONFIG = """
[sim]
sml_meter = false
lmn_meters = 0
[lmn]
invite_s = 0.5
keepalive_s = 0.3
retry_s = 1.5
max_misses = 3
"""


def readings(st, mid):
    return next((m["readings"] for m in st["meters"]["meters"] if m["id"] == mid), 0)


def host_log(b) -> str:
    return (b.tmp / "host.log").read_text(errors="replace")


def bus_state(b, mid):
    lmn = b.cmd("meters")["lmn"]
    return next(m for m in lmn["meters"] if m["id"] == mid)


def test_pairing_reconnect_and_a_rejected_impostor(tmp_path):
    cable = PtyBridge().start()
    sid = sim_sid(7)
    mid = sid.hex()
    key = bytes(range(16))
    meter = LmnMeter(sid, ConstantPower(1800.0), pairing_key=key, orphan_s=2.0, speed=60.0)
    bus = LmnBus(cable.port_a, [meter], baud=BAUD).start()
    b = Bench(tmp_path, fw_env={"SMGW_SIM_LMN_PORT": cable.port_b,
                                "SMGW_SIM_LMN_BAUD": str(BAUD)}, host_config=HOST_CONFIG)
    try:
        b.start_firmware()
        b.start_host()
        b.wait_up()
        b.cmd("meter-add", id=mid, protocol="sml-tls", key=key.hex(), period_s=1,
              obis=["1-0:1.8.0", "1-0:2.8.0", "1-0:16.7.0"])

        # 1. address, pairing, TLS, values
        st = b.wait_for(lambda s: readings(s, mid) >= 3 * 3, timeout=60,
                        what="three polls of the paired meter stored")
        assert st["gateway"]["lmc"] == "addressed"
        state = bus_state(b, mid)
        assert state["paired"] and state["tls"] and state["state"] == "linked"
        assert meter.station.paired and meter.station.key != key  # switched to K_op
        logs = host_log(b)
        for cat in (10175, 10198, 10186):
            assert f"cat={cat}" in logs, cat
        assert "cat=10214" not in logs

        # 2. unplugged: the gateway gives the address up; plugged in again: a new address,
        #    the same pairing (no second key exchange), values again
        meter.unplug()
        b.wait_for(lambda s: bus_state(b, mid)["address"] is None, timeout=30,
                   what="the unplugged meter given up")
        time.sleep(2.5)  # longer than the meter's orphan time: it forgets its address too
        n = readings(b.status(), mid)
        meter.plug()
        b.wait_for(lambda s: readings(s, mid) >= n + 3 * 3, timeout=60,
                   what="values again after the meter was plugged in")
        logs = host_log(b)
        assert logs.count("cat=10175") == 2 and logs.count("cat=10186") == 1

        # 3. the meter swapped for an impostor that copied everything but the private key
        meter.unplug()
        impostor = LmnMeter(sid, ConstantPower(1.0), identity=security.make_identity(mid),
                            pinned_gateway_cert=meter.station.pinned_gateway_cert,
                            orphan_s=2.0)
        bus.add(impostor)
        b.wait_for(lambda s: "cat=10214" in host_log(b), timeout=60,
                   what="the impostor rejected with 10214")
        n = readings(b.status(), mid)
        time.sleep(3)  # retries after lmn.retry_s are rejected as well
        assert readings(b.status(), mid) == n
        assert not bus_state(b, mid)["tls"]
        rejected = [ln for ln in host_log(b).splitlines() if "cat=10214" in ln]
        assert rejected and all("Zertifikat" in ln for ln in rejected)
    finally:
        b.close()
        bus.stop()
        cable.close()

    # every stored poll once, registers never going backwards
    store = Store.open(tmp_path / "host" / "smgw.db")
    try:
        (mt,) = store.meters()
        rows = store.readings_of(mt.id, "1-0:1.8.0")
        values = [int(raw) for _, raw, _ in rows]
        assert values == sorted(values) and len(values) >= 6
        records = [rec for rec, _, _ in rows]
        assert len(records) == len(set(records))
        assert mt.lmn_cert == meter.identity.cert_der  # pinned at pairing
    finally:
        store.close()
