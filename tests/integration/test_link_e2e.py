"""Host and sim firmware over a real pty pair, as separate processes: 10,000 messages each way
through a damaged line, and kills of either process mid-stream. Nothing acknowledged is lost or
doubled, and everything arrives in order."""

import pytest

from harness import Bench, fw_rx, host_rx
from smgw.sim.ptybridge import Noise

pytestmark = pytest.mark.slow


@pytest.fixture
def bench(tmp_path):
    benches = []

    def make(**kw):
        b = Bench(tmp_path, **kw)
        benches.append(b)
        return b

    yield make
    for b in benches:
        b.close()


def exactly(stats, n):
    # received counts every delivery, last_n is the highest number: equal and in order means
    # each of 1..n arrived once
    return (stats.get("received") == n and stats.get("last_n") == n
            and stats.get("out_of_order") == 0 and stats.get("bad_data") == 0)


def test_10000_messages_each_way_through_bit_errors_and_dropped_bytes(bench):
    b = bench(noise=Noise(bit_error_rate=2e-4, drop_rate=2e-4, seed=11))
    b.start_firmware()
    b.start_host()
    b.wait_up()
    b.cmd("linktest", count=10_000, size=100)
    st = b.wait_for(lambda s: exactly(host_rx(s), 10_000) and exactly(fw_rx(s), 10_000)
                    or host_rx(s).get("received", 0) > 10_000
                    or (fw_rx(s).get("received") or 0) > 10_000,
                    timeout=600, what="10,000 messages each way", refresh=True)
    assert exactly(host_rx(st), 10_000), host_rx(st)
    assert exactly(fw_rx(st), 10_000), fw_rx(st)
    line = st["sim"] if "sim" in st else None
    assert line is None  # the host runs against a real port here, not its own sim board
    assert b.bridge.stats.flipped > 100 and b.bridge.stats.dropped > 100
    c = st["host_counters"]
    assert c["bad_crc"] + c["bad_cobs"] + c["bad_length"] > 0
    assert c["retransmits"] > 0 or st["firmware_status"]["counters"]["retransmits"] > 0


@pytest.mark.parametrize("victim", ["firmware", "host"])
def test_killed_process_loses_and_doubles_nothing(bench, victim):
    b = bench()
    b.start_firmware()
    b.start_host()
    b.wait_up()
    b.cmd("linktest", count=4000, size=100)
    st = b.wait_for(lambda s: host_rx(s).get("received", 0) >= 1000, 120, "a first part")
    getattr(b, f"kill_{victim}")()  # SIGKILL: no chance to flush or say goodbye
    assert host_rx(st)["received"] < 4000  # the kill really was mid-stream
    getattr(b, f"start_{victim}")()
    st = b.wait_for(lambda s: exactly(host_rx(s), 4000) and exactly(fw_rx(s), 4000),
                    timeout=300, what=f"all 4000 each way after the {victim} restart",
                    refresh=True)
    if victim == "firmware":
        assert st["firmware"]["boot"] == 2  # it really was a new firmware incarnation
        assert st["host_counters"]["peer_restarts"] >= 1
    else:
        assert st["firmware"]["boot"] == 1  # the firmware kept running throughout
