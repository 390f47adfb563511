"""TariffStore over a real SQLite file: profiles, idempotent derived values, state."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from smgw.store import Store
from smgw.tariff.model import DerivedValue
from smgw.security.testpki import TestPki
from smgw.tariff.profile import CommunicationProfile, EvaluationProfile, parse_profile
from smgw.tariff.store import TariffStore

T0 = 1_767_222_000_000  # 2026-01-01 00:00 Europe/Berlin


@pytest.fixture
def db(tmp_path: Path):
    s = Store.open(tmp_path / "smgw.db")
    yield s
    s.close()


@pytest.fixture
def ts(db) -> TariffStore:
    return TariffStore(db)


def taf7(name: str = "taf7-a", consumer: str = "LV1", period: int = 900) -> EvaluationProfile:
    p = parse_profile(f"""
[profile]
kind = "evaluation"
name = "{name}"
taf = 7
usage_point = "DE0001"
consumer = "{consumer}"
supplier = "Lieferant"
recipients = ["emt1"]
valid_from = "2026-01-01T00:00:00+01:00"
registration_period_s = {period}

[[channels]]
meter = "0a01454d4800000001"
obis = "1-0:1.8.0"
""")
    assert isinstance(p, EvaluationProfile)
    return p


@pytest.fixture(scope="module")
def comm(tmp_path_factory) -> CommunicationProfile:
    pki = TestPki.create(tmp_path_factory.mktemp("pki"))
    t = pki.issue_triple("emt1")
    p = parse_profile(f"""
[profile]
kind = "communication"
name = "emt1"
url = "https://127.0.0.1:9443/values"
tls_cert = '''{t.tls.cert_pem().decode()}'''
sig_cert = '''{t.sig.cert_pem().decode()}'''
enc_cert = '''{t.enc.cert_pem().decode()}'''
""")
    assert isinstance(p, CommunicationProfile)
    return p


def value(target_ms: int, v: int = 100, profile: str = "taf7-a", **kw) -> DerivedValue:
    args = dict(profile=profile, taf=7, register="1-0:1.8.0", owner="0a01454d4800000001",
                period_start_ms=target_ms - 900_000, period_end_ms=target_ms,
                target_ms=target_ms, value=v, scaler=-1, unit="Wh", capture_ms=target_ms + 3)
    args.update(kw)
    return DerivedValue(**args)


# ---------------------------------------------------------------- profiles


def test_profile_add_unchanged_change_remove(ts: TariffStore):
    p = taf7()
    assert ts.put_profile(p, "text v1", 10) == ("added", 1)
    assert ts.put_profile(p, "text v1", 20) == ("unchanged", 1)
    sp = ts.profile("taf7-a")
    assert sp.profile == p and sp.kind == "evaluation" and sp.taf == 7
    assert sp.consumer == "LV1" and sp.version == 1 and not sp.active
    assert sp.created_ms == 10 and sp.updated_ms == 10 and sp.removed_ms is None

    p2 = taf7(period=1800)
    assert ts.put_profile(p2, "text v2", 30) == ("changed", 2)
    sp = ts.profile("taf7-a")
    assert sp.profile == p2 and sp.source == "text v2" and sp.version == 2
    assert sp.created_ms == 10 and sp.updated_ms == 30

    ts.set_active("taf7-a", True)
    assert ts.profile("taf7-a").active
    assert ts.remove_profile("taf7-a", 40)
    assert not ts.remove_profile("taf7-a", 41)
    assert not ts.remove_profile("nope", 41)
    gone = ts.profile("taf7-a")
    assert gone.removed_ms == 40 and not gone.active
    assert ts.profiles() == []
    assert [x.name for x in ts.profiles(include_removed=True)] == ["taf7-a"]

    # loaded again after removal: added, next version
    assert ts.put_profile(p, "text v3", 50) == ("added", 3)
    assert ts.profile("taf7-a").removed_ms is None


def test_profiles_filter_by_kind_and_consumer(ts: TariffStore, comm):
    ts.put_profile(taf7("a"), "", 1)
    ts.put_profile(taf7("b", consumer="LV2"), "", 1)
    ts.put_profile(comm, "", 1)
    assert [p.name for p in ts.profiles()] == ["a", "b", "emt1"]
    assert [p.name for p in ts.profiles(kind="evaluation")] == ["a", "b"]
    assert [p.name for p in ts.profiles(kind="communication")] == ["emt1"]
    assert [p.name for p in ts.profiles(consumer="LV2")] == ["b"]
    assert ts.profile("emt1").profile == comm and ts.profile("emt1").taf is None
    with pytest.raises(ValueError, match="kind"):
        ts.profiles(kind="tariff")


def test_a_name_is_one_kind(ts: TariffStore, comm):
    ts.put_profile(taf7("emt1"), "", 1)
    with pytest.raises(ValueError, match="evaluation"):
        ts.put_profile(comm, "", 2)


# ---------------------------------------------------------------- values


def test_put_values_is_idempotent_and_round_trips(ts: TariffStore):
    v1 = value(T0 + 900_000, 5, status=0x205, meter_status=0x104, time_valid=False)
    v2 = value(T0 + 1_800_000, 7, sources=("m1", "m2"))
    assert ts.put_values([(v1, b"s" * 64), (v2, None)], 99) == 2
    # forming again: nothing new, the first signature stays
    assert ts.put_values([(v1, b"x" * 64), (v2, b"y" * 64)], 100) == 0
    got = ts.values("taf7-a")
    assert [s.value for s in got] == [v1, v2]
    assert got[0].signature == b"s" * 64 and got[1].signature is None
    assert got[0].created_ms == 99


def test_big_unsigned_register_value(ts: TariffStore):
    big = 2**64 - 1
    ts.put_values([(value(T0, big), None)], 1)
    assert ts.values("taf7-a")[0].value.value == big


def test_values_range_register_limit_order(ts: TariffStore):
    vals = [value(T0 + i * 900_000, i) for i in range(6)]
    vals.append(value(T0 + 900_000, 50, register="1-0:2.8.0"))
    vals.append(value(T0, 1, profile="other"))
    ts.put_values([(v, None) for v in vals], 1)
    # [from, to)
    got = ts.values("taf7-a", T0 + 900_000, T0 + 3 * 900_000)
    assert [(s.value.target_ms, s.value.register) for s in got] == [
        (T0 + 900_000, "1-0:1.8.0"), (T0 + 900_000, "1-0:2.8.0"), (T0 + 1_800_000, "1-0:1.8.0")]
    assert len(ts.values("taf7-a")) == 7
    assert len(ts.values("taf7-a", from_ms=T0 + 5 * 900_000)) == 1
    assert len(ts.values("taf7-a", to_ms=T0)) == 0
    assert [s.value.value for s in ts.values("taf7-a", register="1-0:2.8.0")] == [50]
    assert [s.value.value for s in ts.values("taf7-a", limit=2)] == [0, 1]
    assert [s.value.value for s in ts.values("taf7-a", register="1-0:1.8.0", limit=2,
                                             newest_first=True)] == [5, 4]


def test_periods(ts: TariffStore):
    a = dict(period_start_ms=T0, period_end_ms=T0 + 10)
    b = dict(period_start_ms=T0 + 10, period_end_ms=T0 + 20)
    ts.put_values([(value(T0 + 10, 1, register="1-0:1.8.1", **a), None),
                   (value(T0 + 10, 1, register="1-0:1.8.2", **a), None),
                   (value(T0 + 20, 1, **b), None)], 1)
    assert ts.periods("taf7-a") == [(T0, T0 + 10), (T0 + 10, T0 + 20)]
    assert ts.periods("nope") == []


def test_prune(ts: TariffStore):
    ts.put_values([(value(T0 + i * 900_000, i), None) for i in range(5)], 1)
    ts.put_values([(value(T0, 1, profile="keep"), None)], 1)
    assert ts.prune("taf7-a", T0 + 2 * 900_000) == 2
    assert [s.value.value for s in ts.values("taf7-a")] == [2, 3, 4]
    assert len(ts.values("keep")) == 1


# ---------------------------------------------------------------- state and transactions


def test_state_round_trip(ts: TariffStore, tmp_path: Path):
    assert ts.state("taf7-a") == {}
    ts.set_state("taf7-a", {"formed_ms": T0, "sent": [1, 2]})
    ts.set_state("taf7-a", {"formed_ms": T0 + 1})
    assert ts.state("taf7-a") == {"formed_ms": T0 + 1}
    ts.store.close()
    with Store.open(tmp_path / "smgw.db") as again:
        assert TariffStore(again).state("taf7-a") == {"formed_ms": T0 + 1}


def test_joining_a_transaction(ts: TariffStore, db: Store):
    with db._write("tariff-tick") as conn:
        ts.put_values([(value(T0), None)], 1, conn=conn)
        ts.set_state("taf7-a", {"formed_ms": T0}, conn=conn)
    assert len(ts.values("taf7-a")) == 1 and ts.state("taf7-a") == {"formed_ms": T0}

    # an error later in the same transaction takes the values and the state back with it
    with pytest.raises(RuntimeError):
        with db._write("tariff-tick") as conn:
            ts.put_values([(value(T0 + 900_000), None)], 1, conn=conn)
            ts.set_state("taf7-a", {"formed_ms": T0 + 900_000}, conn=conn)
            raise RuntimeError("crash before commit")
    assert len(ts.values("taf7-a")) == 1 and ts.state("taf7-a") == {"formed_ms": T0}


def test_conn_must_be_in_a_transaction(ts: TariffStore, tmp_path: Path):
    other = sqlite3.connect(str(tmp_path / "x.db"), isolation_level=None)
    with pytest.raises(ValueError, match="transaction"):
        ts.put_values([(value(T0), None)], 1, conn=other)
    other.close()
