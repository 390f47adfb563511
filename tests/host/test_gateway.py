"""GatewayState: what the host tells the firmware to show on the LEDs."""

from __future__ import annotations

import cbor2
import pytest

from smgw.gateway import LMC_NAMES, OP_NAMES, SEC_NAMES, WAN_NAMES, GatewayState
from smgwfw import messages as m
from smgwfw.leds import LedEngine

RANGES = {"op": m.OP_MAX, "wan": m.WAN_MAX, "lmc": m.LMC_MAX, "security": m.SEC_MAX}


def test_initial_state():
    g = GatewayState()
    assert (g.op, g.wan, g.lmc, g.install, g.security) == (
        m.OP_STARTING, m.WAN_DOWN, m.LMC_NONE, False, m.SEC_NONE)
    assert g.describe() == {"operating_state": "starting", "wan": "down", "lmc": "none",
                            "firmware_install": False, "security": "none"}


@pytest.mark.parametrize("field,hi", sorted(RANGES.items()))
def test_every_value_in_range_is_accepted(field, hi):
    g = GatewayState()
    for v in range(hi + 1):
        g.update(**{field: v})
        assert getattr(g, field) == v


@pytest.mark.parametrize("field,hi", sorted(RANGES.items()))
@pytest.mark.parametrize("bad", ["below", "above", "str", "float", "none", "true", "false"])
def test_bad_values_are_rejected_and_change_nothing(field, hi, bad):
    value = {"below": -1, "above": hi + 1, "str": "1", "float": 1.0, "none": None,
             "true": True, "false": False}[bad]
    g = GatewayState()
    calls = []
    g.subscribe(lambda: calls.append(1))
    before = g.describe()
    with pytest.raises(ValueError) as ei:
        g.update(**{field: value})
    assert field in str(ei.value)
    assert g.describe() == before
    assert calls == []  # no STATE goes to the firmware for a refused change


def test_unknown_field_is_rejected():
    g = GatewayState()
    calls = []
    g.subscribe(lambda: calls.append(1))
    with pytest.raises(ValueError) as ei:
        g.update(mode=2)
    assert "mode" in str(ei.value)
    assert calls == []
    with pytest.raises(ValueError):
        g.update(_subscribers=[])  # no way to reach internals through update()
    assert len(g._subscribers) == 1


@pytest.mark.parametrize("value,expected", [(True, True), (False, False), (1, True), (0, False)])
def test_install_is_stored_as_bool(value, expected):
    g = GatewayState()
    g.update(install=value)
    assert g.install is expected
    assert g.to_message()[m.K_STATE_INSTALL] is expected


def test_subscribers_are_called_once_per_update_in_order():
    g = GatewayState()
    calls: list[tuple[str, int]] = []
    g.subscribe(lambda: calls.append(("a", g.op)))
    g.subscribe(lambda: calls.append(("b", g.wan)))
    g.update(op=m.OP_NORMAL, wan=m.WAN_UP)
    # subscribers run after all fields are set: they see the complete new state
    assert calls == [("a", m.OP_NORMAL), ("b", m.WAN_UP)]
    g.update(lmc=m.LMC_ADDRESSED)
    assert len(calls) == 4


def test_update_with_one_bad_field_changes_nothing():
    g = GatewayState()
    calls = []
    g.subscribe(lambda: calls.append(1))
    with pytest.raises(ValueError):
        g.update(op=m.OP_NORMAL, wan=99)
    assert calls == []
    assert g.op == m.OP_STARTING


def test_to_message_keys_and_values():
    g = GatewayState()
    g.update(op=m.OP_SOFT_LOCKDOWN, wan=m.WAN_UP_SEAL, lmc=m.LMC_BUS_OVERLOAD, install=True,
             security=m.SEC_PWR_WMT)
    msg = g.to_message()
    assert msg == {
        m.K_TYPE: m.T_STATE,
        m.K_STATE_OP: m.OP_SOFT_LOCKDOWN,
        m.K_STATE_WAN: m.WAN_UP_SEAL,
        m.K_STATE_LMC: m.LMC_BUS_OVERLOAD,
        m.K_STATE_INSTALL: True,
        m.K_STATE_SECURITY: m.SEC_PWR_WMT,
    }
    # the exact wire numbers, so a renumbering of the catalogue cannot slip through unnoticed
    assert msg == {0: 1, 2: 6, 3: 2, 4: 3, 5: True, 6: 4}
    assert cbor2.loads(cbor2.dumps(msg)) == msg
    assert m.K_STATE_WAKEUP not in msg


def test_every_state_the_host_can_hold_is_accepted_by_the_firmware_led_engine():
    # what to_message() produces must pass the firmware's own STATE checks (app.py/leds.py)
    for op in range(m.OP_MAX + 1):
        for sec in range(m.SEC_MAX + 1):
            g = GatewayState()
            g.update(op=op, security=sec, wan=m.WAN_MAX, lmc=m.LMC_MAX, install=True)
            msg = cbor2.loads(cbor2.dumps(g.to_message()))
            eng = LedEngine(0)
            eng.set_state(msg[m.K_STATE_OP], msg[m.K_STATE_WAN], msg[m.K_STATE_LMC],
                          msg[m.K_STATE_INSTALL], msg[m.K_STATE_SECURITY], 0)


def test_describe_names_every_value():
    assert set(OP_NAMES) == set(range(m.OP_MAX + 1))
    assert set(WAN_NAMES) == set(range(m.WAN_MAX + 1))
    assert set(LMC_NAMES) == set(range(m.LMC_MAX + 1))
    assert set(SEC_NAMES) == set(range(m.SEC_MAX + 1))
    for names in (OP_NAMES, WAN_NAMES, LMC_NAMES, SEC_NAMES):
        assert len(set(names.values())) == len(names)  # no two values share a name
    g = GatewayState()
    g.update(op=m.OP_NORMAL, wan=m.WAN_UP, lmc=m.LMC_TIME_INVALID, security=m.SEC_ALL,
             install=1)
    assert g.describe() == {"operating_state": "normal", "wan": "up",
                            "lmc": "addressed-time-invalid", "firmware_install": True,
                            "security": "all"}
    g.update(op=m.OP_CEASED, wan=m.WAN_CONNECTING, lmc=m.LMC_BUS_OVERLOAD,
             security=m.SEC_PWR_TLS_LMC, install=False)
    assert g.describe() == {"operating_state": "ceased", "wan": "connecting",
                            "lmc": "bus-overload", "firmware_install": False,
                            "security": "pwr+tls+lmc"}
    assert OP_NAMES[m.OP_SOFT_LOCKDOWN] == "soft-lockdown"
    assert WAN_NAMES[m.WAN_UP_SEAL] == "up-seal"
