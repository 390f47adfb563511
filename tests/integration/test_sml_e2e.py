"""A simulated SML push meter -> pty -> the real firmware (sim board, wired LMN port) -> link ->
host -> SQLite: 24 simulated hours at one telegram every 2 s (43,200 telegrams) arrive complete,
decoded, and stored once each, with the exact register values the meter sent."""

from __future__ import annotations

import os
import threading
import time
import tty

import pytest

from harness import Bench
from smgw.meters import sml
from smgw.sim.smlmeter import DailyProfile, SmlMeter
from smgw.store import Store

pytestmark = pytest.mark.slow

N = int(os.environ.get("SMGW_SML_E2E_N", "43200"))  # 24 h / 2 s
AHEAD = 10  # telegrams (~3.3 KB) the meter may be ahead of the store: less than a pty buffer
OBIS = ["1-0:1.8.0", "1-0:2.8.0", "1-0:16.7.0"]


def test_24_simulated_hours_arrive_complete_decoded_and_once(tmp_path):
    meter = SmlMeter(profile=DailyProfile(seed=3, pv_peak_w=2500.0), period_s=2.0, two_way=True)
    frames = list(meter.frames(N))
    # 24 hours pass as fast as the chain can take them: the meter never runs more than AHEAD
    # telegrams in front of what the gateway has stored. (A pty does not hold a fast writer
    # back reliably - it discards what its buffer cannot take - and a real meter's line does not
    # wait either; the pacing only compresses time, it never hides a loss.)
    master, slave = os.openpty()
    tty.setraw(slave)
    b = Bench(tmp_path, fw_env={"SMGW_SIM_METER_PORT": os.ttyname(slave),
                                "SMGW_SIM_JOURNAL_BYTES": str(64 * 1024 * 1024)})
    try:
        b.start_firmware()
        b.start_host()
        b.wait_up()
        meter_id = meter.server_id.hex()
        b.cmd("meter-add", id=meter_id, obis=OBIS)

        stored = [0]

        def feed():
            for i, chunk in enumerate(frames):
                while i - stored[0] > AHEAD:
                    time.sleep(0.005)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(master, view):]

        writer = threading.Thread(target=feed, daemon=True)
        writer.start()
        def progress(s):
            stored[0] = s["meters"]["frames_stored"]
            return s["meters"]["meters"][0]["readings"] >= N * len(OBIS)

        st = b.wait_for(progress, timeout=900, what=f"{N} telegrams' values in the store",
                        interval=0.01)
        writer.join(timeout=10)
        assert st["meters"]["meters"][0]["readings"] == N * len(OBIS)
        assert st["meters"]["frames_rejected"] == 0
    finally:
        b.close()
        os.close(master)
        os.close(slave)

    # every telegram once, in order, with exactly the values the meter sent
    expected = {o: [] for o in OBIS}
    for f in frames:
        for r in sml.decode_frame(f).readings:
            if r.obis in expected:
                expected[r.obis].append(str(r.raw))
    store = Store.open(tmp_path / "host" / "smgw.db")
    try:
        (mt,) = store.meters()
        for obis in OBIS:
            rows = store.readings_of(mt.id, obis, limit=N + 10)
            assert [raw for _, raw, _ in rows] == expected[obis], obis
            records = [rec for rec, _, _ in rows]
            assert records == sorted(set(records))  # one value per record, records in order
        assert store.count_records() == N
    finally:
        store.close()
