"""The self-test runner: triggers, the 4-hour schedule, the consumer's rate limit, log events,
persisted reports, and the operating state its failures move."""

from __future__ import annotations

import threading

import pytest

from smgw.gateway import GatewayState
from smgw.logbook.catalogue import format_event
from smgw.opstate import CEASED, MINIMAL, NORMAL, RESTRICTED, Cause, OperatingState
from smgw.selftest import kat
from smgw.selftest.checks import Check, check_time
from smgw.selftest.runner import (CONSUMER_MIN_INTERVAL_S, INITIATORS, PERIOD_S, Busy,
                                  RateLimited, SelfTest)
from smgwfw import messages as m

T0 = 1_700_000_000.0


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class Rec:
    """The emit callback; checks that the params fit smgw.events.emit and the catalogue."""

    def __init__(self) -> None:
        self.events: list[tuple[int, dict]] = []

    def __call__(self, event_id: int, params: dict) -> None:
        placeholders = {k: v for k, v in params.items() if k not in ("context", "status", "consumer_log")}
        format_event(event_id, **placeholders)  # raises on a missing or unknown placeholder
        assert params.get("status", "successful") in ("successful", "failed")
        self.events.append((event_id, params))

    def ids(self) -> list[int]:
        out = [e for e, _ in self.events]
        self.events.clear()
        return out


class Switch:
    """A check whose result the test sets."""

    def __init__(self, code: str, cause: Cause | None) -> None:
        self.code, self.cause, self.ok = code, cause, True
        self.calls = 0

    def __call__(self) -> Check:
        self.calls += 1
        return Check(self.code, self.ok, "" if self.ok else "broken",
                     None if self.ok else self.cause)


@pytest.fixture
def env(tmp_path):
    clock, rec, g = Clock(), Rec(), GatewayState()
    ops = OperatingState(g, rec, tmp_path / "opstate.json", clock=clock)
    checks = {"time": Switch("ST-TIME", Cause.TIME_INVALID),
              "db": Switch("ST-DB", Cause.DB_INTEGRITY),
              "sw": Switch("ST-SW", Cause.SOFTWARE_INTEGRITY),
              "drop": Switch("ST-LINK-DROP", None)}

    def make(**kw):
        return SelfTest(list(checks.values()), ops, rec, clock=clock,
                        path=tmp_path / "selftest.json", **kw)
    return {"clock": clock, "rec": rec, "g": g, "ops": ops, "checks": checks, "make": make,
            "tmp": tmp_path}


def test_start_test_passes_before_the_state_is_announced(env):
    st, rec, ops = env["make"](), env["rec"], env["ops"]
    r = st.run("start")
    assert r.ok and r.trigger == "start" and r.started_ms == T0 * 1000
    assert [c.code for c in r.checks] == ["ST-TIME", "ST-DB", "ST-SW", "ST-LINK-DROP"]
    assert rec.events == [
        (10063, {"initiator": "das SMGW beim Start", "context": {"trigger": "start"}}),
        (10064, {"context": {"trigger": "start", "checks": 4}})]
    assert format_event(10063, initiator=INITIATORS["consumer"]) == \
        "Selbsttest gestartet, veranlasst durch den Letztverbraucher."
    rec.ids()
    ops.start()
    assert rec.ids() == [30300] and env["g"].op == m.OP_NORMAL


@pytest.mark.parametrize("trigger", sorted(INITIATORS))
def test_every_trigger_names_its_initiator(env, trigger):
    env["make"]().run(trigger)
    assert env["rec"].events[0] == (10063, {"initiator": INITIATORS[trigger],
                                            "context": {"trigger": trigger}})


def test_unknown_trigger(env):
    with pytest.raises(ValueError, match="unknown self-test trigger"):
        env["make"]().run("cron")
    assert env["rec"].events == []


# ============================================================================ failures

def test_failures_raise_their_causes_and_log_10065(env):
    st, rec, ops, c, g = env["make"](), env["rec"], env["ops"], env["checks"], env["g"]
    ops.start()
    rec.ids()
    c["time"].ok = False
    c["drop"].ok = False
    r = st.run("periodic")
    assert not r.ok and [x.code for x in r.failures] == ["ST-TIME", "ST-LINK-DROP"]
    assert rec.events[1] == (10065, {
        "recoverable": 2, "severe": 0, "errors": "ST-TIME: broken; ST-LINK-DROP: broken",
        "status": "failed",
        "context": {"codes": "ST-TIME, ST-LINK-DROP", "trigger": "periodic"}})
    assert rec.ids() == [10063, 10065, 10260]  # the result, then the state change
    assert ops.state == RESTRICTED and ops.held_by("selftest") == [Cause.TIME_INVALID]
    assert "ST-TIME: broken" in ops.describe()["causes"][0]["sources"]["selftest"]["detail"]

    # the time is valid again: the next test withdraws the cause
    c["time"].ok = True
    st.run("gwa")
    assert rec.ids() == [10063, 10065, 10261, 30300]  # drop still reported, state normal
    assert ops.state == NORMAL


def test_one_cause_replacing_another_does_not_pass_through_normal(env):
    st, rec, ops, c = env["make"](), env["rec"], env["ops"], env["checks"]
    disk = Switch("ST-DISK", Cause.STORE_FULL)
    st.checks.append(disk)
    ops.start()
    c["time"].ok = False
    st.run("periodic")
    assert rec.ids() == [30300, 10063, 10065, 10260]
    c["time"].ok, disk.ok = True, False
    st.run("periodic")
    assert rec.ids() == [10063, 10065]  # still restricted: no 10261/30300/10260 flapping
    assert ops.active() == [Cause.STORE_FULL]


def test_severe_failure_moves_to_minimal_and_stays(env):
    st, rec, ops, c = env["make"](), env["rec"], env["ops"], env["checks"]
    ops.start()
    rec.ids()
    c["db"].ok = False
    st.run("technician")
    assert rec.events[1][1]["severe"] == 1 and rec.events[1][1]["recoverable"] == 0
    assert ops.state == MINIMAL and env["g"].op == m.OP_MINIMAL
    rec.ids()
    c["db"].ok = True
    assert st.run("gwa").ok
    assert ops.state == MINIMAL  # sticky: the administrator must reset
    assert rec.ids() == [10063, 10064]
    ops.administrator_reset("gwa")
    assert ops.state == NORMAL


def test_integrity_failure_ceases_operation(env):
    st, rec, ops, c, g = env["make"](), env["rec"], env["ops"], env["checks"], env["g"]
    c["sw"].ok = False
    c["time"].ok = False
    st.run("start")
    ops.start()
    assert ops.state == CEASED
    assert (g.op, g.security) == (m.OP_CEASED, m.SEC_PWR_TLS_LMC)
    assert rec.ids() == [10063, 10065, 10271]
    assert not any(ops.allows(f) for f in ("measuring", "han", "interfaces"))


def test_a_restart_with_passing_checks_does_not_leave_ceased(env, tmp_path):
    env["checks"]["sw"].ok = False
    env["make"]().run("start")
    assert env["ops"].state == CEASED
    env["checks"]["sw"].ok = True  # e.g. the changed file was put back
    rec, g = Rec(), GatewayState()
    ops = OperatingState(g, rec, tmp_path / "opstate.json")  # the restart
    st = SelfTest(list(env["checks"].values()), ops, rec, path=tmp_path / "selftest.json")
    assert st.run("start").ok
    ops.start()
    assert ops.state == CEASED and rec.ids() == [10063, 10064, 10271]
    assert g.op == m.OP_CEASED
    ops.administrator_reset("gwa")
    assert ops.state == NORMAL


def test_kat_failure_ceases_operation(env, monkeypatch):
    ops, rec = env["ops"], env["rec"]
    ops.start()
    rec.ids()
    st = SelfTest(list(kat.CHECKS), ops, rec, clock=env["clock"])
    assert st.run("periodic").ok
    monkeypatch.setattr(kat, "SHA256_VECTORS", [(b"abc", "00" * 32)])
    r = st.run("periodic")
    assert [x.code for x in r.failures] == ["ST-KAT-SHA256"]
    assert ops.state == CEASED and env["g"].security == m.SEC_PWR_TLS
    assert rec.ids() == [10063, 10064, 10063, 10065, 10271]


def test_stuck_rng_ceases_operation(env):
    ops = env["ops"]
    st = SelfTest([lambda: kat.rng_repetition_count(lambda n: bytes(n))], ops, env["rec"],
                  clock=env["clock"])
    assert not st.run("start").ok
    assert ops.state == CEASED and ops.active() == [Cause.CRYPTO_SELFTEST]


def test_crashing_check_is_a_failure_of_its_own(env):
    def broken():
        raise KeyError("who knows")

    def not_a_check():
        return "fine"

    ops = env["ops"]
    st = SelfTest([broken, not_a_check, lambda: check_time(True)], ops, env["rec"],
                  clock=env["clock"])
    r = st.run("gwa")
    assert [x.code for x in r.failures] == ["ST-ERROR", "ST-ERROR"]
    assert "broken" in r.failures[0].detail and "not Check" in r.failures[1].detail
    assert ops.state == MINIMAL and ops.active() == [Cause.SELFTEST_ERROR]


def test_a_check_may_return_several(env):
    st = SelfTest([lambda: [Check("A", True), Check("B", True)]], env["ops"], env["rec"],
                  clock=env["clock"])
    assert [c.code for c in st.run("gwa").checks] == ["A", "B"]


# ============================================================================ schedule

def test_periodic_every_four_hours(env):
    clock, st = env["clock"], env["make"]()
    assert PERIOD_S == 4 * 3600
    assert st.due()  # never run
    st.run("start")
    assert not st.due()
    clock.t += PERIOD_S - 1
    assert not st.due()
    assert st.next_due() == T0 + PERIOD_S
    clock.t += 1
    assert st.due()
    st.run("periodic")
    assert not st.due() and st.next_due() == T0 + 2 * PERIOD_S
    # any test restarts the period
    clock.t += 3600
    st.run("technician")
    assert st.next_due() == clock.t + PERIOD_S
    assert not st.due(clock.t + PERIOD_S - 0.001) and st.due(clock.t + PERIOD_S)


def test_consumer_rate_limit(env):
    clock, st = env["clock"], env["make"]()
    assert CONSUMER_MIN_INTERVAL_S == 600
    assert st.next_consumer_allowed_ms() == 0
    st.run("consumer")
    env["rec"].ids()
    clock.t += 599
    with pytest.raises(RateLimited) as ei:
        st.run("consumer")
    assert ei.value.next_allowed_ms == int((T0 + 600) * 1000)
    assert env["rec"].events == []  # nothing started, nothing logged
    # technician and GWA are not limited, and do not move the consumer's limit
    st.run("technician")
    st.run("gwa")
    st.run("periodic")
    assert st.next_consumer_allowed_ms() == int((T0 + 600) * 1000)
    clock.t += 1
    assert st.run("consumer").ok


def test_configurable_consumer_interval(env):
    clock, st = env["clock"], env["make"](consumer_min_interval_s=24 * 3600)  # seed 002 §7.4
    st.run("consumer")
    clock.t += 23 * 3600
    with pytest.raises(RateLimited) as ei:
        st.run("consumer")
    assert ei.value.next_allowed_ms == int((T0 + 24 * 3600) * 1000)


def test_only_one_test_at_a_time(env):
    entered, release = threading.Event(), threading.Event()

    def slow():
        entered.set()
        release.wait(5)
        return Check("SLOW", True)

    st = SelfTest([slow], env["ops"], env["rec"], clock=env["clock"])
    t = threading.Thread(target=st.run, args=("periodic",))
    t.start()
    assert entered.wait(5)
    with pytest.raises(Busy):
        st.run("gwa")
    release.set()
    t.join(5)
    assert st.run("gwa").ok


# ============================================================================ persistence

def test_last_report_and_rate_limit_survive_a_restart(env):
    clock, c = env["clock"], env["checks"]
    st = env["make"]()
    assert st.last() is None
    c["drop"].ok = False
    st.run("consumer")
    st2 = env["make"]()
    last = st2.last()
    assert last is not None and not last.ok and last.trigger == "consumer"
    assert [x.code for x in last.failures] == ["ST-LINK-DROP"]
    assert last.to_dict() == st.last().to_dict()
    assert st2.next_due() == T0 + PERIOD_S
    clock.t += 10
    with pytest.raises(RateLimited):
        st2.run("consumer")


def test_damaged_report_file_is_only_history(env):
    (env["tmp"] / "selftest.json").write_text("{oops")
    st = env["make"]()
    assert st.last() is None and st.due()
    assert st.run("start").ok
    assert env["make"]().last().ok


def test_a_consumers_test_is_logged_for_that_consumer_only(env):
    # the entries of a self-test a consumer started go to their consumer log, no one else's
    st, rec = env["make"](), env["rec"]
    st.run("consumer", consumer_log="LV2")
    assert [p.get("consumer_log") for _, p in rec.events] == ["LV2", "LV2"]
    rec.events.clear()
    env["clock"].t += 3600
    st.run("periodic")
    assert all("consumer_log" not in p for _, p in rec.events)
