"""HanData over the real stores: consumer isolation (meters, time windows, profiles, logs),
current values, readings, derived values and periods, logs, the self-test rate limit."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest

from hankit import GATEWAY_ID, Clock
from smgw import events
from smgw.han.data import HanData, SelfTestBusy, SelfTestTooSoon
from smgw.logbook.chain import Signer
from smgw.logbook.store import Logbooks
from smgw.opstate import OperatingState
from smgw.selftest import kat
from smgw.selftest.checks import Check
from smgw.selftest.runner import SelfTest
from smgw.store import Store
from smgw.store.db import ReadingRow
from smgw.tariff.model import DerivedValue
from smgw.tariff.profile import Channel, parse_profile
from smgw.tariff.store import TariffStore

REPO = Path(__file__).resolve().parents[3]
T0 = 1_767_222_000_000          # 2026-01-01T00:00:00+01:00
DAY = 86_400_000
Q = 900_000
M_A, M_B, M_C = "0a01454d4800000a0001", "0a01454d4800000a0002", "0a01454d4800000a0003"


class World:
    """A store with three meters, profiles of three consumers, readings, derived values and
    logbooks -- everything real, in a temporary directory."""

    def __init__(self, tmp: Path, keystore) -> None:
        self.clock = Clock(T0 + 30 * DAY)
        self.store = Store.open(tmp / "smgw.db")
        self.tariff = TariffStore(self.store)
        signer = Signer.load_or_create(tmp / "keys", GATEWAY_ID)
        self.logbooks = Logbooks.open(tmp / "logs.db", GATEWAY_ID, signer, clock=self.clock)
        self.keystore = keystore
        rows = {m: self.store.add_meter(m, "lmn-wired", "sml", [], 900) for m in (M_A, M_B, M_C)}
        base = parse_profile((REPO / "examples/profiles/taf7-15min.toml").read_text())

        def prof(name, consumer, meter, start, until=None):
            return dataclasses.replace(
                base, name=name, consumer=consumer, valid_from_ms=start, valid_until_ms=until,
                channels=(Channel(meter, "1-0:1.8.0"), Channel(meter, "1-0:2.8.0")))

        # LV0 had meter A for the first 10 days, LV1 has it since; LV2 has meter B; meter C
        # belongs to nobody; LV1 also has a profile that starts in the future
        for p in (prof("old-tenant", "LV0", M_A, T0, T0 + 10 * DAY),
                  prof("lv1-taf7", "LV1", M_A, T0 + 10 * DAY),
                  prof("lv2-taf7", "LV2", M_B, T0),
                  prof("lv1-future", "LV1", M_C, T0 + 100 * DAY)):
            self.tariff.put_profile(p, "test", T0)
        self.tariff.set_active("lv1-taf7", True)
        self.tariff.set_active("lv2-taf7", True)
        rid = 0
        for day in range(20):
            for m in (M_A, M_B, M_C):
                rid += 1
                t = T0 + day * DAY
                self.store.put_record(1, rid, 0, None, t, t, b"", readings=[
                    ReadingRow(rows[m], "1-0:1.8.0", 1000 + day, -1, "Wh", 0),
                    ReadingRow(rows[m], "1-0:2.8.0", 10 + day, -1, "Wh", 0)])
        vals = [(DerivedValue("lv1-taf7", 7, "1-0:1.8.0", M_A, T0 + d * DAY - Q, T0 + d * DAY,
                              T0 + d * DAY, 1000 + d, -1, "Wh"), b"\x01" * 64)
                for d in range(10, 20)]
        vals.append((DerivedValue("lv2-taf7", 7, "1-0:1.8.0", M_B, T0, T0 + Q, T0 + Q, 5, -1,
                                  "Wh"), None))
        self.tariff.put_values(vals, T0)
        self.tests: list[str] = []
        self.opstate = OperatingState(None, lambda i, p: None)
        self.runner = SelfTest([kat.sha256, self._probe], self.opstate, lambda i, p: None,
                               clock=lambda: self.clock.ms / 1000)
        self.probe = None
        self.data = HanData(self.store, self.tariff, self.logbooks, keystore,
                            info=lambda: {"gateway_id": GATEWAY_ID, "time_valid": True,
                                          "firmware": [("smgw-host", "0.1.0", "ab" * 32)]},
                            selftest=self.runner.run, now_ms=self.clock)

    def _probe(self) -> Check:
        if self.probe is not None:
            self.probe()
        return Check("ST-PROBE", True)

    def close(self) -> None:
        self.logbooks.close()
        self.store.close()


@pytest.fixture
def world(tmp_path, keystore):
    w = World(tmp_path, keystore)
    yield w
    w.close()


def test_usage_points_and_meters_are_the_consumers_own(world):
    d = world.data
    assert [p.name for p in d.usage_points("LV1")] == ["lv1-taf7"]
    assert [p.name for p in d.usage_points("LV1", include_pending=True)] == [
        "lv1-future", "lv1-taf7"]
    assert d.meters("LV1") == [M_A]
    assert d.meters("LV2") == [M_B]
    assert d.meters("LV9") == []
    assert d.consumer_of_meter(M_A) == "LV1" and d.consumer_of_meter(M_C) is None


def test_technicians_see_no_measured_data(world):
    for fn in (lambda: world.data.meters(None), lambda: world.data.current(None),
               lambda: world.data.readings(None, M_A, None, None, None),
               lambda: world.data.derived(None, "lv1-taf7"),
               lambda: world.data.consumer_log(None)):
        with pytest.raises(PermissionError):
            fn()


def test_readings_only_of_own_meters_and_own_time(world):
    d = world.data
    rs = d.readings("LV1", M_A, "1-0:1.8.0", None, None)
    # the earlier tenant's first 10 days are not LV1's
    assert [r.capture_ms for r in rs] == [T0 + day * DAY for day in range(10, 20)]
    assert rs[0].value == 1010 and rs[0].scaler == -1 and rs[0].unit == "Wh"
    assert rs[0].meter == M_A and rs[0].time_valid
    both = d.readings("LV1", M_A, None, T0 + 12 * DAY, T0 + 14 * DAY)
    assert [(r.capture_ms, r.obis) for r in both] == [
        (T0 + 12 * DAY, "1-0:1.8.0"), (T0 + 12 * DAY, "1-0:2.8.0"),
        (T0 + 13 * DAY, "1-0:1.8.0"), (T0 + 13 * DAY, "1-0:2.8.0")]
    newest = d.readings("LV1", M_A, "1-0:1.8.0", None, None, limit=2, newest_first=True)
    assert [r.value for r in newest] == [1019, 1018]
    old = d.readings("LV0", M_A, "1-0:1.8.0", None, None)
    assert [r.capture_ms for r in old] == [T0 + day * DAY for day in range(10)]
    for consumer, meter in (("LV1", M_B), ("LV2", M_A), ("LV1", M_C), ("LV1", "ffff")):
        with pytest.raises(PermissionError, match="not one of the consumer's meters"):
            d.readings(consumer, meter, None, None, None)


def test_current_values(world):
    cur = world.data.current("LV1")
    assert [(c["meter"], c["obis"], c["value"], c["capture_ms"]) for c in cur] == [
        (M_A, "1-0:1.8.0", 1019, T0 + 19 * DAY), (M_A, "1-0:2.8.0", 29, T0 + 19 * DAY)]
    assert cur[0]["scaler"] == -1 and cur[0]["unit"] == "Wh" and cur[0]["time_valid"]
    assert {c["meter"] for c in world.data.current("LV2")} == {M_B}
    # the earlier tenant sees the last value of their time, not LV1's
    assert [c["value"] for c in world.data.current("LV0")] == [1009, 19]


def test_derived_values_and_periods(world):
    d = world.data
    vs = d.derived("LV1", "lv1-taf7")
    assert [v.value.value for v in vs] == list(range(1010, 1020))
    assert vs[0].signature == b"\x01" * 64
    some = d.derived("LV1", "lv1-taf7", T0 + 12 * DAY, T0 + 14 * DAY)
    assert [v.value.target_ms for v in some] == [T0 + 12 * DAY, T0 + 13 * DAY]
    assert d.derived("LV1", "lv1-taf7", limit=1, newest_first=True)[0].value.value == 1019
    assert d.billing_periods("LV1", "lv1-taf7")[0] == (T0 + 10 * DAY - Q, T0 + 10 * DAY)
    for consumer, prof in (("LV1", "lv2-taf7"), ("LV2", "lv1-taf7"), ("LV1", "nope"),
                           ("LV1", "emt1")):
        with pytest.raises(PermissionError, match="not one of the consumer's"):
            d.derived(consumer, prof)
        with pytest.raises(PermissionError):
            d.billing_periods(consumer, prof)


def test_consumer_log_is_only_the_consumers(world):
    lb = world.logbooks
    lb.append(10228, "INFO", "successful", {"consumer": "demo"}, "LV1 login", ["consumer"],
              ["LV1"])
    lb.append(10228, "INFO", "successful", {"consumer": "anna"}, "LV2 login", ["consumer"],
              ["LV2"])
    lb.append(10004, "INFO", "successful", {}, "system", ["system"])
    page = world.data.consumer_log("LV1")
    assert [e.text for e in page.entries] == ["LV1 login"]
    assert [e.text for e in world.data.consumer_log("LV2").entries] == ["LV2 login"]
    assert "LV1 login" in world.data.consumer_log_csv("LV1")
    assert "LV2 login" not in world.data.consumer_log_csv("LV1")
    assert [e.text for e in world.data.system_log().entries] == ["system"]
    assert "system" in world.data.system_log_csv()
    for i in range(12):
        lb.append(10004, "INFO", "successful", {}, f"s{i}", ["system"])
    p1 = world.data.system_log(limit=10)
    p2 = world.data.system_log(limit=10, after=p1.next_after)
    assert len(p1.entries) == 10 and len(p2.entries) == 3 and p2.next_after is None


def test_smgw_info_and_certificates(world, keystore):
    info = world.data.smgw_info()
    assert info["gateway_id"] == GATEWAY_ID and info["time_ms"] == world.clock.ms
    assert info["firmware"][0][0] == "smgw-host" and info["time_valid"] is True
    assert info["opstate"] is None and info["selftest_last"] is None
    assert info["selftest_next_allowed_ms"] == 0
    assert world.data.signature_certificate_pem() == keystore.sig.cert_pem()
    assert world.data.han_certificate_pem() == keystore.han.cert_pem()


def test_selftest_rate_limit(world):
    d = world.data
    report = d.selftest("consumer")
    assert report["ok"] and report["trigger"] == "consumer"
    assert {c["code"] for c in report["checks"]} >= {"ST-KAT-SHA256", "ST-PROBE"}
    world.clock.advance(599)
    with pytest.raises(SelfTestTooSoon) as e:
        d.selftest("technician")  # within 10 minutes of the last on-demand test, whoever
    assert e.value.next_allowed_ms == world.clock.ms + 1000
    assert d.smgw_info()["selftest_next_allowed_ms"] == e.value.next_allowed_ms
    world.clock.advance(1)
    assert d.selftest("technician")["trigger"] == "technician"
    with pytest.raises(ValueError):
        d.selftest("gwa")


def test_selftest_refusals_of_the_runner_are_translated(world):
    d = HanData(world.store, world.tariff, world.logbooks, world.keystore, info=dict,
                selftest=world.runner.run, now_ms=world.clock, selftest_min_interval_s=0)
    d.selftest("consumer")
    world.clock.advance(60)
    with pytest.raises(SelfTestTooSoon) as e:  # the runner's own consumer limit (600 s)
        d.selftest("consumer")
    assert e.value.next_allowed_ms == world.clock.ms + 540_000
    seen = []

    def again():
        try:
            d.selftest("technician")
        except SelfTestBusy as exc:
            seen.append(exc)

    world.probe = again
    d.selftest("technician")
    assert len(seen) == 1


def test_selftest_events_reach_the_recording_sink(world):
    # the runner's own emit is real: run it through the events module
    rec = []
    old = events.get_sink()
    events.set_sink(lambda *a: rec.append(a))
    try:
        emit = events.emitter(logging.getLogger("test"))
        runner = SelfTest([kat.sha256], world.opstate, emit, clock=lambda: world.clock.ms / 1000)
        d = HanData(world.store, world.tariff, world.logbooks, world.keystore, info=dict,
                    selftest=runner.run, now_ms=world.clock)
        d.selftest("consumer")
    finally:
        events.set_sink(old)
    assert [a[0] for a in rec] == [10063, 10064]
    assert "Letztverbraucher" in rec[0][4]
