"""The tariff engine over a real store file, a real key store (test PKI) and the real outbox:
values formed once, signed, delivered protected; restarts lose and double nothing; events."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from smgw.formats.k461 import parse_values
from smgw.security import cms
from smgw.security.keystore import KeyStore
from smgw.security.valuesig import verify_value
from smgw.store import Store
from smgw.store.db import ReadingRow
from smgw.tariff.engine import TariffEngine
from smgw.tariff.model import SMGW_THRESHOLD, SMGW_TIME_INVALID
from smgw.tariff.profile import ProfileError
from smgw.tariff.store import TariffStore
from smgw.wan.outbox import Outbox

GW = "EOPN0000000001"
M1 = "0a01454d4800000001"
M2 = "0a01454d4800000002"
MIN = 60_000
QH = 15 * MIN
HOUR = 60 * MIN
DAY = 24 * HOUR
BERLIN = dt.timezone(dt.timedelta(hours=1))  # January: CET


def ms(*a: int) -> int:
    return int(dt.datetime(*a, tzinfo=BERLIN).timestamp() * 1000)


T0 = ms(2026, 1, 5)  # a Monday, 00:00 local time


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> tuple[KeyStore, Any]:
    ks = KeyStore.load_or_create(tmp_path_factory.mktemp("pki"), GW)
    return ks, ks.issue_emt("emt1")


def comm_text(emt: Any, name: str = "emt1") -> str:
    return f"""
[profile]
kind = "communication"
name = "{name}"
url = "https://127.0.0.1:9443/smgw"
tls_cert = '''{emt.tls.cert_pem().decode()}'''
sig_cert = '''{emt.sig.cert_pem().decode()}'''
enc_cert = '''{emt.enc.cert_pem().decode()}'''
"""


def taf7_text(name: str = "taf7", sending: str = "", valid_from: str =
              "2026-01-01T00:00:00+01:00", meter: str = M1) -> str:
    return f"""
[profile]
kind = "evaluation"
name = "{name}"
taf = 7
usage_point = "DE0007"
consumer = "LV1"
supplier = "Lieferant"
recipients = ["emt1"]
valid_from = "{valid_from}"

[[channels]]
meter = "{meter}"
obis = "1-0:1.8.0"
{sending}"""


HOURLY = """
[[sending]]
trigger = "periodic"
period_s = 3600
"""

TAF1 = f"""
[profile]
kind = "evaluation"
name = "taf1"
taf = 1
usage_point = "DE0001"
consumer = "LV1"
supplier = "Lieferant"
recipients = ["emt1"]
valid_from = "2026-01-01T00:00:00+01:00"

[[channels]]
meter = "{M1}"
obis = "1-0:1.8.0"

[[channels]]
meter = "{M2}"
obis = "1-0:1.8.0"
sign = -1

[[sending]]
trigger = "periodic"
offset_s = 600
"""


def taf2_text(ht_from: str = "06:00") -> str:
    return f"""
[profile]
kind = "evaluation"
name = "taf2"
taf = 2
usage_point = "DE0002"
consumer = "LV1"
supplier = "Lieferant"
recipients = ["emt1"]
valid_from = "2026-01-01T00:00:00+01:00"
billing_period = "day"

[[channels]]
meter = "{M1}"
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
stage = 2

[[switching]]
days = ["weekdays"]
time = "{ht_from}"
stage = 1

[[switching]]
days = ["weekdays"]
time = "22:00"
stage = 2
"""


TAF6 = f"""
[profile]
kind = "evaluation"
name = "taf6"
taf = 6
usage_point = "DE0006"
consumer = "LV1"
supplier = "Netzbetreiber"
recipients = ["emt1"]
valid_from = "2025-11-01T00:00:00+01:00"

[[channels]]
meter = "{M1}"
obis = "1-0:1.8.0"
"""

TAF14 = f"""
[profile]
kind = "evaluation"
name = "taf14"
taf = 14
usage_point = "DE0014"
consumer = "LV1"
supplier = "Dienst"
recipients = ["emt1"]
valid_from = "2026-01-01T00:00:00+01:00"
registration_period_s = 60
aggregation = ["max"]
pseudonym = "PSEUDO-7"

[[channels]]
meter = "{M1}"
obis = "1-0:16.7.0"

[[sending]]
trigger = "periodic"
period_s = 900

[[sending]]
trigger = "threshold"
channel = 0
above = 11000
"""


class FailingOutbox(Outbox):
    """The real outbox, made to fail on its n-th add (a crash inside the transaction)."""

    def __init__(self, store: Store, fail_at: int) -> None:
        super().__init__(store)
        self.calls = 0
        self.fail_at = fail_at

    def add(self, *a: Any, **kw: Any) -> bool:
        self.calls += 1
        if self.calls == self.fail_at:
            raise OSError("power lost")
        return super().add(*a, **kw)


class Bench:
    """One gateway data directory: store, tariff store, outbox and engine on a test clock."""

    def __init__(self, tmp: Path, ks: KeyStore, now: int = T0, outbox_fail_at: int = 0,
                 **engine_kw: Any) -> None:
        self.tmp, self.ks, self.now = tmp, ks, now
        self.events: list[tuple[int, dict[str, Any]]] = []
        self.allowed = True
        self.time_ok = True
        self.engine_kw = engine_kw
        self.open(outbox_fail_at)

    def open(self, outbox_fail_at: int = 0) -> None:
        self.store = Store.open(self.tmp / "smgw.db")
        self.tariff = TariffStore(self.store)
        self.outbox = (FailingOutbox(self.store, outbox_fail_at) if outbox_fail_at
                       else Outbox(self.store))
        self.engine = TariffEngine(self.store, self.tariff, self.outbox, self.ks,
                                   self.emit, lambda: self.now, lambda: self.time_ok,
                                   lambda fn: self.allowed and fn == "processing",
                                   **self.engine_kw)

    def reopen(self, outbox_fail_at: int = 0) -> None:
        self.store.close()
        self.open(outbox_fail_at)

    def emit(self, cat: int, params: dict[str, Any], status: str = "successful") -> None:
        self.events.append((cat, dict(params)))

    def ids(self) -> list[int]:
        return [c for c, _ in self.events]

    def meter(self, meter_id: str) -> int:
        rows = {m.meter_id: m.id for m in self.store.meters()}
        if meter_id in rows:
            return rows[meter_id]
        return self.store.add_meter(meter_id, "lmn-wired", "sml", [], 60)

    def feed(self, meter_id: str, start: int, end: int, step: int, value: Any,
             obis: str = "1-0:1.8.0", time_valid: Any = True, stream: int = 0) -> None:
        """Readings captured at start, start+step, ... < end; value(t) gives the raw value."""
        row = self.meter(meter_id)
        t = start
        while t < end:
            tv = time_valid(t) if callable(time_valid) else time_valid
            self.store.put_record(stream or row, t // 1000, 0, None, t, t, b"frame",
                                  readings=[ReadingRow(row, obis, value(t), 0, "Wh", None, tv)])
            t += step

    def run(self, max_ticks: int = 200) -> int:
        for n in range(1, max_ticks + 1):
            if not self.engine.tick():
                return n
        raise AssertionError("the engine did not settle")

    def values(self, profile: str) -> list[Any]:
        return self.tariff.values(profile)

    def messages(self, emt: Any) -> list[tuple[Any, list[tuple[Any, bytes | None]]]]:
        out = []
        for d in self.outbox.pending():
            payload, signer = cms.unprotect(d.content, emt.enc, self.ks.roots)
            assert signer == self.ks.sig.cert
            out.append((d, parse_values(payload)))
        return out

    def close(self) -> None:
        self.store.close()


def energy(t: int) -> int:
    return 1_000_000 + (t - T0) // MIN * 10   # 10 Wh a minute


@pytest.fixture
def bench(tmp_path, pki):
    ks, emt = pki
    b = Bench(tmp_path / "gw", ks)
    b.meter(M1)
    b.meter(M2)
    b.engine.load(comm_text(emt))
    yield b
    b.close()


# ---------------------------------------------------------------------------- TAF 7


def test_taf7_values_once_per_grid_instant_signed_and_delivered(bench, pki):
    ks, emt = pki
    bench.engine.load(taf7_text(sending=HOURLY))
    bench.feed(M1, T0, T0 + 3 * HOUR + 2 * MIN, MIN, energy)
    bench.now = T0 + 3 * HOUR + 2 * MIN
    bench.run()
    vals = bench.values("taf7")
    assert [sv.value.target_ms for sv in vals] == [T0 + i * QH for i in range(13)]
    for sv in vals:
        v = sv.value
        assert (v.register, v.owner, v.taf, v.kind) == ("1-0:1.8.0", M1, 7, "reading")
        assert v.value == energy(v.target_ms) and v.capture_ms == v.target_ms
        assert v.period_end_ms == v.target_ms and v.period_start_ms == v.target_ms - QH
        assert v.billing and v.time_valid and not v.status & SMGW_TIME_INVALID
        assert verify_value(ks.sig.cert, v, GW, sv.signature)
    # one message per complete hour with the values of the registration periods in it
    # (stamped at their end: T0 closes the hour before T0), as stored
    msgs = bench.messages(emt)
    assert [(d.period_start_ms, d.period_end_ms, d.n_values) for d, _ in msgs] == [
        (T0 + h * HOUR, T0 + (h + 1) * HOUR, 1 if h < 0 else 4) for h in range(-1, 3)]
    assert [v.target_ms for v, _ in msgs[1][1]] == [T0 + i * QH for i in range(1, 5)]
    stored = {sv.value.key(): (sv.value, sv.signature) for sv in vals}
    for _, got in msgs:
        for v, sig in got:
            assert stored[v.key()] == (v, sig)

    # a day's load profile on demand: the values of the periods of that day
    assert bench.engine.on_demand("taf7", T0 + HOUR) == 1
    d, got = bench.messages(emt)[-1]
    assert [v.target_ms for v, _ in got] == [T0 + i * QH for i in range(1, 13)]
    assert (d.period_start_ms, d.period_end_ms) == (T0, T0 + DAY)
    bench.outbox.delivered(d.id, bench.now)

    # ticking again forms and sends nothing new
    state = bench.tariff.state("taf7")
    bench.run()
    assert len(bench.values("taf7")) == 13 and len(bench.outbox.pending()) == 4
    assert bench.tariff.state("taf7") == state


def test_taf7_waits_for_late_readings_and_gives_up_on_silent_meters(bench):
    bench.engine.load(taf7_text(sending=HOURLY))
    bench.feed(M1, T0, T0 + HOUR + 5 * MIN, MIN, energy)
    # the link is still delivering what the front-end captured: nothing given up yet
    bench.engine.settled = lambda: False
    bench.now = T0 + 5 * HOUR
    bench.run()
    assert bench.values("taf7")[-1].value.target_ms == T0 + HOUR
    # the backlog arrives: instants up to its newest reading are formed
    bench.feed(M1, T0 + HOUR + 5 * MIN, T0 + 2 * HOUR + 20 * MIN, MIN, energy)
    bench.run()
    assert bench.values("taf7")[-1].value.target_ms == T0 + 2 * HOUR + 15 * MIN
    # the meter then stays silent: once the readings are up to date the engine moves on,
    # leaving gaps (missing target times), and sends the hours that are complete
    bench.engine.settled = lambda: True
    bench.run()
    assert bench.tariff.state("taf7")["formed_until"] >= T0 + 4 * HOUR
    assert len(bench.values("taf7")) == 10
    assert [d.n_values for d in bench.outbox.pending()] == [1, 4, 4, 1]


def test_time_invalid_readings_are_flagged(bench):
    bench.engine.load(taf7_text())
    bench.feed(M1, T0, T0 + 2 * HOUR, MIN, energy,
               time_valid=lambda t: t >= T0 + HOUR)
    bench.now = T0 + 2 * HOUR
    bench.run()
    flags = {sv.value.target_ms: (sv.value.time_valid, bool(sv.value.status & SMGW_TIME_INVALID))
             for sv in bench.values("taf7")}
    assert flags[T0 + 45 * MIN] == (False, True)
    assert flags[T0 + HOUR] == (True, False)


def test_no_forming_without_permission_or_valid_time(bench):
    bench.engine.load(taf7_text())
    bench.feed(M1, T0, T0 + HOUR, MIN, energy)
    bench.now = T0 + HOUR
    bench.allowed = False
    bench.run()
    bench.allowed, bench.time_ok = True, False
    bench.run()
    assert bench.values("taf7") == []
    bench.time_ok = True
    bench.run()
    assert len(bench.values("taf7")) == 4


def _reference(tmp: Path, pki: Any, **kw: Any) -> Bench:
    ks, emt = pki
    b = Bench(tmp, ks, **kw)
    b.meter(M1)
    b.engine.load(comm_text(emt))
    b.engine.load(taf7_text(sending=HOURLY))
    b.feed(M1, T0, T0 + 6 * HOUR + 2 * MIN, MIN, energy)
    b.now = T0 + 6 * HOUR + 2 * MIN
    return b


def _outcome(b: Bench) -> tuple[list[tuple[Any, int]], list[str]]:
    vals = [(sv.value.key(), sv.value.value) for sv in b.values("taf7")]
    for sv in b.values("taf7"):
        assert verify_value(b.ks.sig.cert, sv.value, GW, sv.signature)
    return vals, [d.message_id for d in b.outbox.pending()]


def test_crash_between_and_inside_steps_loses_and_doubles_nothing(tmp_path, pki):
    ref = _reference(tmp_path / "ref", pki)
    ref.run()
    want = _outcome(ref)
    ref.close()
    assert len(want[0]) == 25 and len(want[1]) == 7

    # the same with small batches, a restart after every tick, and a crash inside a
    # transaction (the third message cannot be queued): nothing of that step is kept
    b = _reference(tmp_path / "crash", pki, batch=3, messages_per_tick=1)
    for _ in range(4):
        b.engine.tick()
        b.reopen()
    before = (len(b.values("taf7")), b.tariff.state("taf7"))
    b.reopen(outbox_fail_at=1)
    with pytest.raises(OSError):
        b.engine._step(b.tariff.profile("taf7").profile, b.now)
    assert (len(b.values("taf7")), b.tariff.state("taf7")) == before
    b.reopen()
    for _ in range(50):
        more = b.engine.tick()
        b.reopen()
        if not more:
            break
    b.run()
    assert _outcome(b) == want
    b.close()


# ---------------------------------------------------------------------------- TAF 1


def test_taf1_monthly_register_and_delivery_at_period_end(bench, pki):
    ks, emt = pki
    bench.engine.load(TAF1)
    start, end = ms(2026, 1, 1), ms(2026, 2, 1)
    bench.feed(M1, start - HOUR, end + 2 * HOUR, HOUR, lambda t: 5_000 + (t - start) // HOUR * 3)
    bench.feed(M2, start - HOUR, end + 2 * HOUR, HOUR, lambda t: 700 + (t - start) // HOUR)
    bench.now = end + 5 * MIN          # the period ended, its sending offset (10 min) not yet
    bench.run()
    assert bench.values("taf1") == []
    bench.now = end + 2 * HOUR
    bench.run()
    hours = (end - start) // HOUR
    regs = {(sv.value.register, sv.value.owner, sv.value.kind): sv for sv in bench.values("taf1")}
    assert regs[("1-0:1.8.1", M1, "register")].value.value == 3 * hours
    assert regs[("1-0:1.8.1", M2, "register")].value.value == hours
    total = regs[("1-0:1.8.1", "taf1", "sum")].value
    assert total.value == 3 * hours - hours
    assert (total.period_start_ms, total.period_end_ms, total.target_ms) == (start, end, end)
    for sv in regs.values():
        assert verify_value(ks.sig.cert, sv.value, GW, sv.signature)
    (d, got), = bench.messages(emt)
    assert (d.profile, d.comm_profile, d.period_start_ms, d.period_end_ms) == (
        "taf1", "emt1", start, end)
    # the registers and the four boundary readings they come from
    assert len(got) == d.n_values == len(bench.values("taf1")) == 7
    bench.run()
    assert len(bench.outbox.pending()) == 1
    # sent again on demand: the same values in a message of its own
    assert bench.engine.on_demand("taf1", start + 5 * DAY) == 1
    first, again = bench.messages(emt)
    assert first[0].message_id != again[0].message_id
    assert sorted(v.key() for v, _ in again[1]) == sorted(v.key() for v, _ in first[1])


# ---------------------------------------------------------------------------- TAF 2


def test_taf2_stages_and_switches_logged(bench):
    bench.engine.load(taf2_text())
    bench.feed(M1, T0 - QH, T0 + DAY + HOUR, QH, lambda t: 10_000 + (t - T0) // QH * 250)
    bench.now = T0 + DAY + HOUR
    bench.run()
    regs = {sv.value.register: sv.value.value for sv in bench.values("taf2")
            if sv.value.period_start_ms == T0}
    assert regs == {"1-0:1.8.1": 64 * 250, "1-0:1.8.2": 32 * 250, "1-0:1.8.63": 0,
                    "1-0:1.8.0": 96 * 250}
    switches = [p for c, p in bench.events if c == 10272]
    assert [(p["tariff_profile"], p["tariff_stage"], p["switch_time"]) for p in switches] == [
        ("taf2", 1, "2026-01-05T06:00:00+01:00"), ("taf2", 2, "2026-01-05T22:00:00+01:00")]
    assert all(p["consumer_log"] == "LV1" for p in switches)
    # formed once: no second set of switch events
    bench.run()
    assert len([c for c in bench.ids() if c == 10272]) == 2


# ---------------------------------------------------------------------------- TAF 6


def test_taf6_daily_readings_kept_42_days_and_read_on_demand(bench, pki):
    ks, emt = pki
    bench.engine.load(TAF6)
    first = ms(2025, 11, 20)
    bench.feed(M1, first, T0 + HOUR, 6 * HOUR, lambda t: (t - first) // HOUR)
    bench.now = T0 + HOUR
    bench.run()
    days = [sv.value.target_ms for sv in bench.values("taf6")]
    assert days[0] >= bench.now - 42 * DAY and days[-1] == T0
    assert all(b - a in (DAY,) for a, b in zip(days, days[1:]))
    assert bench.outbox.pending() == []       # TAF 6 sends on demand only
    n = bench.engine.on_demand("taf6", T0 - DAY + 5 * HOUR, None)
    assert n == 1
    (d, got), = bench.messages(emt)
    assert [v.target_ms for v, _ in got] == [T0 - DAY]
    assert verify_value(ks.sig.cert, got[0][0], GW, got[0][1])
    with pytest.raises(ValueError, match="no value of .taf6."):
        bench.engine.on_demand("taf6", ms(2025, 11, 1), None)
    # two days later the oldest two days are gone (10221)
    bench.feed(M1, T0 + 6 * HOUR, T0 + 2 * DAY + HOUR, 6 * HOUR, lambda t: (t - first) // HOUR)
    bench.now = T0 + 2 * DAY + HOUR
    bench.run()
    assert bench.values("taf6")[0].value.target_ms == days[2]
    assert 10221 in bench.ids()


# ---------------------------------------------------------------------------- TAF 14


def test_taf14_aggregates_threshold_and_pseudonym_nothing_stored(bench, pki):
    ks, emt = pki
    bench.now = T0
    bench.engine.load(TAF14)
    power = {T0 + 20 * MIN: 12_000}
    bench.feed(M1, T0, T0 + 31 * MIN, MIN, lambda t: power.get(t, 2_000 + (t - T0) // MIN),
               obis="1-0:16.7.0")
    bench.now = T0 + 31 * MIN
    bench.run()
    assert bench.values("taf14") == []     # not billing relevant: only deliveries
    with pytest.raises(ValueError, match="not stored"):
        bench.engine.on_demand("taf14", T0)
    msgs = bench.messages(emt)
    periodic = [(d, got) for d, got in msgs if d.period_end_ms - d.period_start_ms == QH]
    assert [d.period_start_ms for d, _ in periodic] == [T0, T0 + QH]
    maxes = [v for _, got in periodic for v, _ in got if v.kind == "max"]
    assert [m.value for m in maxes] == [2_014, 12_000]
    for _, got in msgs:
        for v, sig in got:
            assert sig is None and not v.billing and v.owner == "PSEUDO-7"
    alarms = [v for d, got in msgs if d not in [x for x, _ in periodic] for v, _ in got]
    assert [(v.target_ms, v.value, bool(v.status & SMGW_THRESHOLD)) for v in alarms] == [
        (T0 + 20 * MIN, 12_000, True)]


# ---------------------------------------------------------------------------- profiles


def test_profile_load_change_remove_are_logged(bench):
    e = bench.engine
    sp = e.load(taf2_text())
    assert (sp.name, sp.version, sp.kind) == ("taf2", 1, "evaluation")
    assert bench.events[-1] == (10166, {"tariff_profile": "taf2", "consumer_log": "LV1"})
    n = len(bench.events)
    e.load(taf2_text())                          # unchanged: nothing logged
    assert len(bench.events) == n
    bench.now = T0
    e.tick()                                     # valid from 2026-01-01: now active
    assert bench.events[-1] == (10215, {"profile_name": "taf2", "profile_domain": "DE0002",
                                        "consumer_log": "LV1"})
    e.load(taf2_text(ht_from="07:00"))
    assert [c for c, _ in bench.events[-2:]] == [10168, 10023]
    p = bench.events[-1][1]
    assert (p["parameter"], p["profile"]) == ("switching", "taf2")
    assert "weekdays" not in p["value_old"] and "06:00=1" in p["value_old"]
    assert "07:00=1" in p["value_new"]
    assert bench.tariff.profile("taf2").version == 2
    assert e.remove("taf2")
    assert [c for c, _ in bench.events[-2:]] == [10216, 10167]
    assert not e.remove("taf2")
    assert bench.tariff.profiles(kind="evaluation") == []


def test_rejected_profiles_are_logged(bench, pki):
    e = bench.engine
    with pytest.raises(ProfileError) as ei:
        e.load(taf7_text().replace("taf = 7", "taf = 3"), "bad.toml")
    assert ei.value.key == "profile.taf"
    cat, p = bench.events[-1]
    assert cat == 10219 and p["reason"].startswith("bad.toml: profile.taf: ")
    assert p["reason"].count("bad.toml") == 1
    with pytest.raises(ProfileError) as ei:
        e.load(taf7_text().replace('["emt1"]', '["emt9"]'))
    assert ei.value.key == "profile.recipients[0]"
    assert bench.events[-1][0] == 10219 and "emt9" in bench.events[-1][1]["reason"]
    with pytest.raises(ProfileError) as ei:
        e.load(taf7_text(meter="0a01454d48000000ff"))
    assert ei.value.key == "channels[0].meter"
    assert "no meter profile '0a01454d48000000ff'" in bench.events[-1][1]["reason"]
    with pytest.raises(ProfileError, match="cannot read"):
        e.load(Path("/nonexistent/taf.toml"))
    assert bench.events[-1][0] == 10219
    with pytest.raises(ProfileError):
        e.load(comm_text(pki[1]).replace("https://", "http://"))
    assert bench.events[-1][0] == 10217
    assert [p.name for p in bench.tariff.profiles()] == ["emt1"]


def test_a_used_communication_profile_cannot_be_removed(bench):
    bench.engine.load(taf7_text())
    with pytest.raises(ValueError, match="taf7"):
        bench.engine.remove("emt1")
    assert bench.engine.remove("taf7") and bench.engine.remove("emt1")
    assert bench.ids()[-1] == 10170


def test_a_profiles_directory_loads_communication_profiles_first(bench, pki, tmp_path):
    d = tmp_path / "profiles"
    d.mkdir()
    (d / "a-taf7.toml").write_text(taf7_text(sending=HOURLY).replace('"emt1"', '"emt2"'))
    (d / "b-emt2.toml").write_text(comm_text(pki[1], name="emt2"))
    (d / "c-bad.toml").write_text("[profile]\nkind = 'evaluation'\n")
    (d / "notes.txt").write_text("not a profile")
    got = bench.engine.load_dir(d)
    assert got["a-taf7.toml"] == "taf7" and got["b-emt2.toml"] == "emt2"
    assert got["c-bad.toml"].startswith("rejected: ") and "notes.txt" not in got
    assert [c for c, _ in bench.events[-3:]] == [10169, 10166, 10219]
    # loading the same directory again changes nothing and logs nothing but the rejection
    n = len(bench.events)
    bench.engine.load_dir(d)
    assert [c for c, _ in bench.events[n:]] == [10219]


def test_taf2_first_day_is_formed_from_the_readings_there_are(bench):
    bench.engine.load(taf2_text())
    start = T0 + 10 * HOUR
    bench.feed(M1, start, T0 + DAY + HOUR, QH, lambda t: 10_000 + (t - start) // QH * 250)
    bench.now = T0 + DAY + HOUR
    bench.run()
    regs = {sv.value.register: sv.value.value for sv in bench.values("taf2")
            if sv.value.period_start_ms == T0}
    # HT from 10:00 to 22:00, NT 22:00 to 24:00; what came before the first reading is not
    # accounted (a problem says so)
    assert regs == {"1-0:1.8.1": 48 * 250, "1-0:1.8.2": 8 * 250, "1-0:1.8.63": 0,
                    "1-0:1.8.0": 56 * 250}


def test_taf2_missing_start_counts_from_the_last_reading_before_into_the_error_register(bench):
    bench.engine.load(taf2_text())
    bench.feed(M1, T0 - 2 * HOUR, T0 - 30 * MIN, MIN, energy)
    bench.feed(M1, T0 + 31 * MIN, T0 + DAY + HOUR, MIN, energy)
    bench.now = T0 + DAY + HOUR
    bench.run()
    regs = {sv.value.register: sv.value.value for sv in bench.values("taf2")
            if sv.value.period_start_ms == T0}
    # from the reading at 23:15 (the last one on the grid before the gap) to the first one on
    # the grid after it (00:45): error register; then NT to 06:00, HT to 22:00, NT to 24:00
    assert regs == {"1-0:1.8.63": 90 * 10, "1-0:1.8.2": (315 + 120) * 10,
                    "1-0:1.8.1": 960 * 10, "1-0:1.8.0": (45 + 1440) * 10}


def test_readings_stamped_in_the_future_do_not_move_forming(bench):
    # a front-end whose clock was not yet set stamped its first captures months ahead
    bench.engine.load(taf7_text())
    bench.feed(M1, T0 + 300 * DAY, T0 + 300 * DAY + 10 * MIN, MIN, energy, stream=99)
    bench.now = T0 - 5 * MIN
    bench.run()
    assert bench.tariff.state("taf7") == {}      # no anchor taken from the future
    bench.feed(M1, T0 - 4 * MIN, T0 + HOUR + 2 * MIN, MIN, energy)
    bench.now = T0 + HOUR + 2 * MIN
    bench.run()
    assert [sv.value.target_ms for sv in bench.values("taf7")] == [T0 + i * QH for i in range(5)]
