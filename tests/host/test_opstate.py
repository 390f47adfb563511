"""Operating states: every cause and its state, recovery, events, LEDs, persistence, reset."""

from __future__ import annotations

import json

import pytest

from smgw.gateway import GatewayState
from smgw.logbook.catalogue import format_event
from smgw.opstate import (CEASED, FUNCTIONS, MINIMAL, NORMAL, OP_CODES, RESTRICTED, RULES,
                          STATES, Cause, OperatingState)
from smgwfw import messages as m
from smgwfw.leds import BOOT_MS, LedEngine, pattern_name

RESTRICTED_CAUSES = [c for c, r in RULES.items() if r.state == RESTRICTED]
MINIMAL_CAUSES = [c for c, r in RULES.items() if r.state == MINIMAL]
CEASED_CAUSES = [c for c, r in RULES.items() if r.state == CEASED]

# seed 000 §2.6 Tabelle 8: the cause -> state table as the seed writes it
SEED_TABLE = {
    Cause.TIME_INVALID: RESTRICTED,  # "Systemzeit ist ungültig"
    Cause.CONSUMER_LOG_FULL: RESTRICTED,  # "Speicherkapazität des Logbuchs für den Kunden"
    Cause.STORE_FULL: RESTRICTED,  # "Speicherplatz des Smart Meter Gateways ist erschöpft"
    Cause.METER_CERT_EXPIRED: RESTRICTED,  # "Zertifikat ... mit dem Zähler nicht mehr gültig"
    Cause.COMPONENT_FAILED: RESTRICTED,  # "Wesentliche Komponenten ... starten nicht"
    Cause.CALIBRATION_LOG_FULL: MINIMAL,  # "Speicherkapazität des Eichlogbuchs ist erschöpft"
    Cause.DB_INTEGRITY: MINIMAL,  # "Integritätsverletzung der Datenbank"
    Cause.COMPONENT_UNRECOVERABLE: CEASED,  # "... und kann nicht neu gestartet werden"
    Cause.SECURITY_VIOLATION: CEASED,  # "Verdacht auf eine Sicherheitsschutzverletzung"
}

# seed 000 §2.6 Tabelle 8, column "Auswirkung"
SEED_OFF = {
    NORMAL: set(),
    RESTRICTED: {"measuring", "processing", "sending"},
    MINIMAL: {"han", "measuring", "processing", "sending", "updates"},
    CEASED: set(FUNCTIONS),
}

# what the LED engine shows for each state's STATE message (PWR, TLS, LMC, wMT), with the WAN
# down and no meter: docs/leds.md
LEDS_NORMAL = ["on", "off", "off", "flash"]
LEDS_DEGRADED = ["blink-50", "off", "off", "flash"]
LEDS_SEC = {
    m.SEC_PWR_TLS: ["blink-50", "blink-50", "off", "off"],
    m.SEC_PWR_LMC: ["blink-50", "off", "blink-50", "off"],
    m.SEC_PWR_TLS_LMC: ["blink-50", "blink-50", "blink-50", "off"],
    m.SEC_PWR_WMT: ["blink-50", "off", "off", "blink-50"],
    m.SEC_ALL: ["blink-50"] * 4,
}


class Rec:
    """The emit callback; checks that the params fit smgw.events.emit and the catalogue."""

    def __init__(self) -> None:
        self.events: list[tuple[int, dict]] = []

    def __call__(self, event_id: int, params: dict) -> None:
        placeholders = {k: v for k, v in params.items() if k not in ("context", "status")}
        format_event(event_id, **placeholders)  # raises on a missing or unknown placeholder
        assert params.get("status", "successful") in ("successful", "failed")
        self.events.append((event_id, params))

    def ids(self) -> list[int]:
        out = [e for e, _ in self.events]
        self.events.clear()
        return out


def leds(g: GatewayState) -> list[str]:
    """The patterns the firmware's LED engine renders for the gateway's STATE."""
    e = LedEngine(0)
    e.tick(BOOT_MS)
    e.set_state(g.op, g.wan, g.lmc, g.install, g.security, BOOT_MS + 1)
    return [pattern_name(p) for p in e.patterns()]


def make(path=None, **kw):
    g, rec = GatewayState(), Rec()
    ops = OperatingState(g, rec, path, **kw)
    return ops, g, rec


def started(path=None, **kw):
    ops, g, rec = make(path, **kw)
    ops.start()
    assert rec.ids() == [30300]
    return ops, g, rec


# ============================================================================ the table

def test_seed_table_is_followed():
    for cause, state in SEED_TABLE.items():
        assert RULES[cause].state == state, cause
    assert set(RULES) == set(Cause)
    # the recoverable ones are exactly the restricted ones (docs/operating-states.md)
    assert [c for c, r in RULES.items() if not r.sticky] == RESTRICTED_CAUSES


@pytest.mark.parametrize("state", STATES)
def test_allows_per_state(state):
    cause = {NORMAL: None, RESTRICTED: Cause.TIME_INVALID, MINIMAL: Cause.DB_INTEGRITY,
             CEASED: Cause.SECURITY_VIOLATION}[state]
    ops, _, _ = started()
    if cause:
        ops.raise_cause(cause)
    assert ops.state == state
    assert {f for f in FUNCTIONS if not ops.allows(f)} == SEED_OFF[state]
    assert ops.describe()["switched_off"] == [f for f in FUNCTIONS if f in SEED_OFF[state]]


def test_unknown_function_and_cause_are_rejected():
    ops, _, _ = started()
    with pytest.raises(ValueError, match="unknown function"):
        ops.allows("tariffing")
    with pytest.raises(ValueError):
        ops.raise_cause("disk-on-fire")


# ============================================================================ transitions

@pytest.mark.parametrize("cause", list(Cause), ids=lambda c: c.value)
def test_each_cause_moves_to_its_state_with_one_event_and_its_leds(cause):
    ops, g, rec = started()
    assert leds(g) == LEDS_NORMAL
    state = ops.raise_cause(cause, "why")
    assert state == RULES[cause].state == ops.state
    expected_event = {RESTRICTED: 10260, MINIMAL: 10260, CEASED: 10271}[state]
    events = list(rec.events)
    assert rec.ids() == [expected_event]
    context = events[0][1]["context"]
    assert context["state"] == state and context["previous"] == NORMAL
    assert cause.value in context["causes"]
    assert g.op == OP_CODES[state]
    if state == CEASED:
        assert g.security == RULES[cause].security != m.SEC_NONE
        assert leds(g) == LEDS_SEC[g.security]
    else:
        assert g.security == m.SEC_NONE
        assert leds(g) == LEDS_DEGRADED
    # raising it again (same or another source, same or new detail) changes nothing visible
    ops.raise_cause(cause, "why")
    ops.raise_cause(cause, "still", source="other")
    assert rec.ids() == []
    assert ops.state == state


@pytest.mark.parametrize("cause", RESTRICTED_CAUSES, ids=lambda c: c.value)
def test_restricted_causes_recover_when_cleared(cause):
    ops, g, rec = started()
    ops.raise_cause(cause)
    rec.ids()
    assert ops.clear_cause(cause) is True
    assert ops.state == NORMAL
    assert rec.ids() == [10261, 30300]  # measuring resumed, normal operation
    assert (g.op, g.security) == (m.OP_NORMAL, m.SEC_NONE)
    assert leds(g) == LEDS_NORMAL


@pytest.mark.parametrize("cause", MINIMAL_CAUSES + CEASED_CAUSES, ids=lambda c: c.value)
def test_sticky_causes_do_not_recover_when_cleared(cause):
    ops, g, rec = started()
    ops.raise_cause(cause)
    rec.ids()
    before = (g.op, g.security)
    assert ops.clear_cause(cause) is False
    assert ops.state == RULES[cause].state
    assert rec.ids() == []
    assert (g.op, g.security) == before


def test_state_is_the_worst_active_cause_and_recovers_to_the_worst_remaining():
    ops, g, rec = started()
    ops.raise_cause(Cause.TIME_INVALID)
    assert rec.ids() == [10260]
    ops.raise_cause(Cause.STORE_FULL)  # same state: no event
    assert rec.ids() == []
    ops.raise_cause(Cause.DB_INTEGRITY)
    assert ops.state == MINIMAL and g.op == m.OP_MINIMAL
    assert rec.ids() == [10260]  # restricted -> minimal: measuring stays stopped, new state
    ops.clear_cause(Cause.TIME_INVALID)
    ops.clear_cause(Cause.STORE_FULL)
    assert ops.state == MINIMAL and rec.ids() == []
    ops.raise_cause(Cause.METER_CERT_EXPIRED)
    ops.administrator_reset("gwa")  # minimal cause gone, the certificate is still expired
    assert ops.state == RESTRICTED and g.op == m.OP_RESTRICTED
    assert [(e, p["context"].get("by")) for e, p in rec.events] == [(10260, "gwa")]
    rec.ids()
    ops.clear_cause(Cause.METER_CERT_EXPIRED)
    assert ops.state == NORMAL and rec.ids() == [10261, 30300]


def test_ceased_is_sticky_even_when_lower_causes_come_and_go():
    ops, g, rec = started()
    ops.raise_cause(Cause.FIRMWARE_INTEGRITY)
    assert rec.ids() == [10271]
    ops.raise_cause(Cause.TIME_INVALID)
    ops.clear_cause(Cause.TIME_INVALID)
    ops.clear_cause(Cause.FIRMWARE_INTEGRITY)
    assert ops.state == CEASED and rec.ids() == []
    assert (g.op, g.security) == (m.OP_CEASED, m.SEC_PWR_LMC)
    assert not any(ops.allows(f) for f in FUNCTIONS)


def test_several_ceased_causes_show_all_four_leds():
    ops, g, rec = started()
    ops.raise_cause(Cause.CRYPTO_SELFTEST)
    assert g.security == m.SEC_PWR_TLS and leds(g) == LEDS_SEC[m.SEC_PWR_TLS]
    ops.raise_cause(Cause.SOFTWARE_INTEGRITY)
    assert g.security == m.SEC_ALL and leds(g) == ["blink-50"] * 4
    assert rec.ids() == [10271]  # one state change, one event; the LEDs follow the causes


def test_ceased_without_a_specific_pattern_renders_as_hard_lockdown():
    # the firmware shows OP_CEASED with SEC_NONE as all four blinking (docs/leds.md)
    g = GatewayState()
    g.update(op=m.OP_CEASED)
    assert leds(g) == ["blink-50"] * 4


def test_degraded_states_keep_wan_and_meter_leds():
    ops, g, _ = started()
    g.update(wan=m.WAN_UP, lmc=m.LMC_ADDRESSED)
    ops.raise_cause(Cause.STORE_FULL)
    assert leds(g) == ["blink-50", "on", "on", "flash"]
    ops.raise_cause(Cause.SECURITY_VIOLATION)
    assert leds(g) == ["blink-50"] * 4


def test_sources_hold_a_cause_together():
    ops, _, rec = started()
    ops.raise_cause(Cause.TIME_INVALID, source="legaltime")
    ops.raise_cause(Cause.TIME_INVALID, source="selftest")
    assert ops.held_by("selftest") == [Cause.TIME_INVALID]
    assert ops.clear_cause(Cause.TIME_INVALID, source="legaltime") is True
    assert ops.state == RESTRICTED
    assert ops.clear_cause(Cause.TIME_INVALID, source="legaltime") is False  # not held
    assert ops.clear_cause(Cause.TIME_INVALID, source="selftest") is True
    assert ops.state == NORMAL
    assert rec.ids() == [10260, 10261, 30300]


# ============================================================================ start

def test_nothing_is_announced_before_start():
    ops, g, rec = make()
    ops.raise_cause(Cause.TIME_INVALID)
    ops.raise_cause(Cause.CRYPTO_SELFTEST)
    ops.clear_cause(Cause.TIME_INVALID)
    assert rec.events == [] and g.op == m.OP_STARTING  # PWR still blinks "starting"
    assert ops.state == CEASED and not ops.allows("interfaces")
    assert ops.start() == CEASED
    assert rec.ids() == [10271]
    assert (g.op, g.security) == (m.OP_CEASED, m.SEC_PWR_TLS)


def test_start_into_restricted_logs_measuring_stopped_only():
    ops, g, rec = make()
    ops.raise_cause(Cause.TIME_INVALID)
    ops.start()
    assert rec.ids() == [10260]
    ops.clear_cause(Cause.TIME_INVALID)
    assert rec.ids() == [10261, 30300]


def test_without_gateway_events_still_flow():
    rec = Rec()
    ops = OperatingState(None, rec)
    ops.start()
    ops.raise_cause(Cause.STORE_FULL)
    assert rec.ids() == [30300, 10260]


# ============================================================================ administrator

def test_administrator_reset_leaves_ceased():
    ops, g, rec = started()
    ops.raise_cause(Cause.SECURITY_VIOLATION, "tamper")
    ops.raise_cause(Cause.CALIBRATION_LOG_FULL)
    rec.ids()
    assert ops.administrator_reset("gwa-1") == NORMAL
    assert [(e, p["context"]["by"], p["context"]["previous"]) for e, p in rec.events] == [
        (10261, "gwa-1", CEASED), (30300, "gwa-1", CEASED)]
    assert (g.op, g.security) == (m.OP_NORMAL, m.SEC_NONE)
    assert leds(g) == LEDS_NORMAL
    assert ops.last_reset["by"] == "gwa-1"
    assert sorted(ops.last_reset["removed"]) == ["calibration-log-full", "security-violation"]
    with pytest.raises(ValueError):
        ops.administrator_reset("")


def test_reset_in_normal_operation_changes_nothing_visible():
    ops, g, rec = started()
    assert ops.administrator_reset("gwa") == NORMAL
    assert rec.ids() == []


# ============================================================================ persistence

def test_causes_survive_a_restart_and_ceased_needs_the_administrator(tmp_path):
    path = tmp_path / "opstate.json"
    ops, _, _ = started(path)
    ops.raise_cause(Cause.SOFTWARE_INTEGRITY, "smgw/service.py changed", source="selftest")
    ops.raise_cause(Cause.TIME_INVALID, source="legaltime")
    doc = json.loads(path.read_text())
    assert doc["state"] == CEASED
    assert doc["causes"]["software-integrity"]["selftest"]["detail"] == \
        "smgw/service.py changed"
    assert [p.name for p in tmp_path.iterdir()] == ["opstate.json"]  # no temporary left

    ops2, g2, rec2 = make(path)  # restart
    assert ops2.state == CEASED
    assert ops2.active() == [Cause.SOFTWARE_INTEGRITY, Cause.TIME_INVALID]
    ops2.start()
    assert rec2.ids() == [10271]
    assert (g2.op, g2.security) == (m.OP_CEASED, m.SEC_PWR_TLS_LMC)
    assert ops2.clear_cause(Cause.SOFTWARE_INTEGRITY, source="selftest") is False
    ops2.clear_cause(Cause.TIME_INVALID, source="legaltime")
    ops2.administrator_reset("gwa")
    assert ops2.state == NORMAL

    ops3, _, rec3 = make(path)  # the reset is persisted too
    assert ops3.state == NORMAL and ops3.last_reset["by"] == "gwa"
    ops3.start()
    assert rec3.ids() == [30300]


def test_missing_file_on_first_start_is_normal(tmp_path):
    ops, _, _ = make(tmp_path / "opstate.json")
    assert ops.state == NORMAL
    assert not (tmp_path / "opstate.json").exists()


def test_missing_file_when_it_must_exist_is_an_integrity_violation(tmp_path):
    ops, _, _ = make(tmp_path / "opstate.json", must_exist=True)
    assert ops.state == MINIMAL and ops.active() == [Cause.DB_INTEGRITY]
    assert (tmp_path / "opstate.json").exists()


@pytest.mark.parametrize("content,state", [
    (b"{not json", MINIMAL),
    (b'{"format": 99}', MINIMAL),
    (b'{"format": 1, "causes": {"x": 3}}', MINIMAL),
    (b'{"format": 1, "state": "ceased", "causes": {"crypto-selftest": {}}}', CEASED),
    (b'{"format": 1, "state": "ceased", "causes": {}}', CEASED),  # causes removed by hand
    (b'{"format": 1, "state": "ceased", "causes": {"crypto-selftest": ', CEASED),  # truncated
])
def test_damaged_file_does_not_recover_silently(tmp_path, content, state):
    path = tmp_path / "opstate.json"
    path.write_bytes(content)
    ops, _, _ = make(path)
    assert ops.state == state
    assert "opstate" in ops.describe()["causes"][0]["sources"]
    assert json.loads(path.read_text())["state"] == state  # rewritten in good form


def test_cause_without_holders_is_dropped(tmp_path):
    path = tmp_path / "opstate.json"
    path.write_text(json.dumps({"format": 1, "state": "restricted", "causes": {
        "store-full": {}, "time-invalid": {"legaltime": {"detail": "", "since_ms": 1}}}}))
    ops, _, _ = make(path)
    assert ops.active() == [Cause.TIME_INVALID]
    assert ops.clear_cause(Cause.TIME_INVALID, source="legaltime")
    assert ops.state == NORMAL


def test_unknown_cause_from_a_newer_version_keeps_the_state(tmp_path):
    path = tmp_path / "opstate.json"
    path.write_text(json.dumps({"format": 1, "state": "ceased", "causes": {
        "quantum-decoherence": {"selftest": {"detail": "", "since_ms": 1}}}}))
    ops, _, _ = make(path)
    assert ops.state == CEASED


def test_persistence_failure_keeps_the_state_in_memory(tmp_path):
    ops, _, _ = started(tmp_path / "gone" / "opstate.json")
    ops.raise_cause(Cause.STORE_FULL)  # the directory does not exist: logged, not raised
    assert ops.state == RESTRICTED


def test_describe():
    ops, _, _ = started()
    ops.raise_cause(Cause.STORE_FULL, "3 % free", source="capacity")
    ops.raise_cause(Cause.DB_INTEGRITY, "page 7", source="selftest")
    d = ops.describe()
    assert d["state"] == MINIMAL
    assert [c["cause"] for c in d["causes"]] == ["database-integrity", "store-full"]
    assert d["causes"][0]["sticky"] is True
    assert d["causes"][1]["sources"]["capacity"]["detail"] == "3 % free"
