"""The LED pattern engine: boot sequence, per-state patterns, precedence, timing measured by
sampling tick() every millisecond, phase alignment, counter wrap and input checks."""

import pytest

from smgwfw import leds as L
from smgwfw import messages as m

MASK30 = (1 << 30) - 1


def booted(t0=0):
    """An engine whose boot sequence is over (at t0 + 3000)."""
    e = L.LedEngine(t0)
    e.tick((t0 + L.BOOT_MS) & MASK30)
    return e


def state(e, t, op=m.OP_NORMAL, wan=m.WAN_UP, lmc=m.LMC_ADDRESSED, install=False,
          sec=m.SEC_NONE):
    e.set_state(op, wan, lmc, install, sec, t & MASK30)
    return tuple(e.patterns())


def samples(e, t0, n, led):
    """Levels of one LED at t0, t0+1, ... t0+n-1 (ms)."""
    return [(e.tick((t0 + i) & MASK30) >> led) & 1 for i in range(n)]


def runs(levels):
    """Run-length encoding: [(level, length), ...]."""
    out = []
    for v in levels:
        if out and out[-1][0] == v:
            out[-1][1] += 1
        else:
            out.append([v, 1])
    return [tuple(r) for r in out]


def inner_runs(levels):
    """Runs without the first and last (possibly cut) run."""
    return runs(levels)[1:-1]


def on_off(e, t0, led, n=3000):
    """Set of distinct (level, length) of complete runs."""
    return set(inner_runs(samples(e, t0, n, led)))


# --- boot ---------------------------------------------------------------------------------


def test_boot_all_four_blink_for_exactly_3s_then_off():
    e = L.LedEngine(0)
    assert tuple(e.patterns()) == (L.P_BLINK_250,) * 4
    lv = [e.tick(t) for t in range(4000)]
    # all four in phase during the 3 s: the mask is 0 or 15
    assert set(lv[:3000]) == {0, 15}
    assert runs([x == 15 for x in lv[:3000]]) == [(True, 250), (False, 250)] * 6
    assert set(lv[3000:]) == {0}
    assert e.changed
    assert tuple(e.patterns()) == (L.P_OFF,) * 4
    assert not e.changed


def test_boot_pattern_changes_exactly_at_3000():
    e = L.LedEngine(100)
    e.patterns()
    e.tick(3099)
    assert not e.changed
    assert tuple(e.patterns()) == (L.P_BLINK_250,) * 4
    e.tick(3100)
    assert e.changed
    assert tuple(e.patterns()) == (L.P_OFF,) * 4


def test_state_during_boot_is_shown_after_boot():
    e = L.LedEngine(0)
    assert state(e, 1000) == (L.P_BLINK_250,) * 4
    e.tick(2999)
    assert tuple(e.patterns()) == (L.P_BLINK_250,) * 4
    e.tick(3000)
    assert tuple(e.patterns()) == (L.P_ON, L.P_ON, L.P_ON, L.P_FLASH)


def test_security_does_not_preempt_boot_sequence():
    e = L.LedEngine(0)
    assert state(e, 10, sec=m.SEC_ALL) == (L.P_BLINK_250,) * 4
    e.tick(3000)
    assert tuple(e.patterns()) == (L.P_BLINK_50,) * 4


def test_after_boot_all_off_until_state():
    e = booted()
    assert all(e.tick(t) == 0 for t in range(3000, 8000, 7))
    e.flash_wmt(8000)
    assert e.tick(8001) == 0  # wMT is off (not flash) before the first state


# --- per-LED state ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "op,pwr",
    [
        (m.OP_BOOT, L.P_OFF),
        (m.OP_STARTING, L.P_BLINK_500),
        (m.OP_NORMAL, L.P_ON),
        (m.OP_RESTRICTED, L.P_BLINK_50),
        (m.OP_MINIMAL, L.P_BLINK_50),
        (m.OP_CEASED, L.P_BLINK_50),
        (m.OP_SOFT_LOCKDOWN, L.P_HEARTBEAT),
    ],
)
def test_pwr_per_op(op, pwr):
    e = booted()
    assert state(e, 4000, op=op)[L.PWR] == pwr


@pytest.mark.parametrize(
    "wan,tls",
    [
        (m.WAN_DOWN, L.P_OFF),
        (m.WAN_CONNECTING, L.P_BLINK_250),
        (m.WAN_UP_SEAL, L.P_BLINK_250),
        (m.WAN_UP, L.P_ON),
    ],
)
def test_tls_per_wan(wan, tls):
    e = booted()
    assert state(e, 4000, wan=wan)[L.TLS] == tls


@pytest.mark.parametrize(
    "lmc,pat",
    [
        (m.LMC_NONE, L.P_OFF),
        (m.LMC_ADDRESSED, L.P_ON),
        (m.LMC_TIME_INVALID, L.P_BLINK_500),
        (m.LMC_BUS_OVERLOAD, L.P_HEARTBEAT),
    ],
)
def test_lmc_per_state(lmc, pat):
    e = booted()
    assert state(e, 4000, lmc=lmc)[L.LMC] == pat


def test_op_boot_from_host_is_all_off():
    e = booted()
    assert state(e, 4000, op=m.OP_BOOT) == (L.P_OFF,) * 4


def test_normal_shows_all_fields_and_other_leds_unaffected():
    e = booted()
    p = state(e, 4000, op=m.OP_STARTING, wan=m.WAN_CONNECTING, lmc=m.LMC_TIME_INVALID)
    assert p == (L.P_BLINK_500, L.P_BLINK_250, L.P_BLINK_500, L.P_FLASH)
    p = state(e, 5000, op=m.OP_NORMAL, wan=m.WAN_UP_SEAL, lmc=m.LMC_NONE)
    assert p == (L.P_ON, L.P_BLINK_250, L.P_OFF, L.P_FLASH)


def test_full_transition_matrix_is_deterministic_and_valid():
    # every combination renders to valid codes; the same state twice renders the same codes
    for op in range(m.OP_MAX + 1):
        for wan in range(m.WAN_MAX + 1):
            for lmc in range(m.LMC_MAX + 1):
                for inst in (False, True):
                    for sec in range(m.SEC_MAX + 1):
                        e = booted()
                        p = state(e, 4000, op, wan, lmc, inst, sec)
                        assert all(0 <= c <= L.P_MAX for c in p)
                        assert state(e, 4001, op, wan, lmc, inst, sec) == p
                        assert not e.changed


# --- precedence ---------------------------------------------------------------------------

SEC_EXPECT = {
    m.SEC_PWR_TLS: (1, 1, 0, 0),
    m.SEC_PWR_LMC: (1, 0, 1, 0),
    m.SEC_PWR_TLS_LMC: (1, 1, 1, 0),
    m.SEC_PWR_WMT: (1, 0, 0, 1),
    m.SEC_ALL: (1, 1, 1, 1),
}


@pytest.mark.parametrize("sec", sorted(SEC_EXPECT))
@pytest.mark.parametrize("install", [False, True])
@pytest.mark.parametrize("op", [m.OP_NORMAL, m.OP_SOFT_LOCKDOWN, m.OP_CEASED, m.OP_STARTING])
def test_security_patterns_win_over_install_and_state(sec, install, op):
    e = booted()
    p = state(e, 4000, op=op, install=install, sec=sec)
    assert p == tuple(L.P_BLINK_50 if b else L.P_OFF for b in SEC_EXPECT[sec])


def test_ceased_without_code_is_hard_lockdown():
    e = booted()
    assert state(e, 4000, op=m.OP_CEASED, install=True) == (L.P_BLINK_50,) * 4


def test_security_blinks_in_phase_50ms():
    e = booted()
    state(e, 4000, sec=m.SEC_PWR_TLS_LMC)
    lv = [e.tick(t) for t in range(4000, 5000)]
    assert set(lv) == {0, 0b0111}
    assert runs([x != 0 for x in lv]) == [(True, 50), (False, 50)] * 10


def test_sec_pwr_wmt_in_phase_and_ignores_flash():
    e = booted()
    state(e, 4000, sec=m.SEC_PWR_WMT)
    e.flash_wmt(4010)
    lv = [e.tick(t) for t in range(4000, 4400)]
    assert set(lv) == {0, 0b1001}


def test_install_blinks_pwr_tls_wmt_together_lmc_per_state():
    e = booted()
    p = state(e, 4000, op=m.OP_NORMAL, lmc=m.LMC_ADDRESSED, install=True)
    assert p == (L.P_BLINK_500, L.P_BLINK_500, L.P_ON, L.P_BLINK_500)
    lv = [e.tick(t) for t in range(4000, 7000)]
    assert set(lv) == {0b0100, 0b1111}
    assert runs([x == 0b1111 for x in lv]) == [(True, 500), (False, 500)] * 3


def test_install_wins_over_soft_lockdown_and_wakeup():
    e = booted()
    e.wakeup(3500)
    p = state(e, 4000, op=m.OP_SOFT_LOCKDOWN, install=True, lmc=m.LMC_BUS_OVERLOAD)
    assert p == (L.P_BLINK_500, L.P_BLINK_500, L.P_HEARTBEAT, L.P_BLINK_500)
    # install ends while the wake-up is still running: TLS shows the wake-up pulses
    p = state(e, 5000, op=m.OP_SOFT_LOCKDOWN, lmc=m.LMC_BUS_OVERLOAD)
    assert p == (L.P_HEARTBEAT, L.P_BLINK_125, L.P_HEARTBEAT, L.P_FLASH)


def test_soft_lockdown_only_pwr_heartbeat():
    e = booted()
    p = state(e, 4000, op=m.OP_SOFT_LOCKDOWN, wan=m.WAN_UP, lmc=m.LMC_ADDRESSED)
    assert p == (L.P_HEARTBEAT, L.P_ON, L.P_ON, L.P_FLASH)


def test_leaving_security_returns_to_state():
    e = booted()
    state(e, 4000, sec=m.SEC_ALL)
    assert state(e, 5000) == (L.P_ON, L.P_ON, L.P_ON, L.P_FLASH)


# --- timing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw,led,expect",
    [
        (dict(op=m.OP_STARTING), L.PWR, {(1, 500), (0, 500)}),
        (dict(wan=m.WAN_CONNECTING), L.TLS, {(1, 250), (0, 250)}),
        (dict(wan=m.WAN_UP_SEAL), L.TLS, {(1, 250), (0, 250)}),
        (dict(op=m.OP_RESTRICTED), L.PWR, {(1, 50), (0, 50)}),
        (dict(lmc=m.LMC_TIME_INVALID), L.LMC, {(1, 500), (0, 500)}),
    ],
)
def test_blink_periods(kw, led, expect):
    e = booted()
    state(e, 4000, **kw)
    assert on_off(e, 4000, led, 4000) == expect


@pytest.mark.parametrize("led,kw", [(L.PWR, dict(op=m.OP_SOFT_LOCKDOWN)),
                                    (L.LMC, dict(lmc=m.LMC_BUS_OVERLOAD))])
def test_heartbeat_shape(led, kw):
    e = booted()
    state(e, 4000, **kw)
    r = runs(samples(e, 4000, 6000, led))
    assert r == [(1, 150), (0, 150), (1, 150), (0, 1550)] * 3


def test_pattern_starts_with_on_segment_at_change():
    e = booted()
    state(e, 4321, op=m.OP_STARTING)
    assert samples(e, 4321, 501, L.PWR) == [1] * 500 + [0]


def test_combined_blinks_in_phase_across_leds():
    # PWR starting and LMC time-invalid share blink-500: identical level sequences
    e = booted()
    state(e, 4000, op=m.OP_STARTING, lmc=m.LMC_TIME_INVALID)
    lv = [e.tick(t) for t in range(4000, 8000)]
    assert all(((x >> L.PWR) & 1) == ((x >> L.LMC) & 1) for x in lv)
    # a later change of another LED keeps them aligned (common phase origin)
    state(e, 8123, wan=m.WAN_CONNECTING, op=m.OP_STARTING, lmc=m.LMC_TIME_INVALID)
    lv = [e.tick(t) for t in range(8123, 11000)]
    assert all(((x >> L.PWR) & 1) == ((x >> L.LMC) & 1) for x in lv)
    # TLS (250) is on whenever PWR (500) starts its on phase: edges coincide
    assert all((x >> L.TLS) & 1 for x in lv[0:250])


def test_repeated_identical_state_does_not_reset_phase():
    e = booted()
    state(e, 4000, op=m.OP_STARTING)
    e.patterns()
    state(e, 4700, op=m.OP_STARTING)
    assert not e.changed
    assert samples(e, 4700, 400, L.PWR) == [0] * 300 + [1] * 100


# --- wMT flash --------------------------------------------------------------------------------


def test_flash_is_250ms():
    e = booted()
    state(e, 4000)
    e.patterns()
    e.flash_wmt(5000)
    assert samples(e, 4990, 300, L.WMT) == [0] * 10 + [1] * 250 + [0] * 40
    assert not e.changed  # a telegram never changes the pattern codes


def test_flash_retriggerable():
    e = booted()
    state(e, 4000)
    e.flash_wmt(5000)
    first = samples(e, 5000, 200, L.WMT)
    e.flash_wmt(5200)
    assert runs(first + samples(e, 5200, 500, L.WMT)) == [(1, 450), (0, 250)]


def test_flash_only_on_wmt():
    e = booted()
    state(e, 4000, op=m.OP_BOOT)
    e.flash_wmt(5000)
    assert e.tick(5001) == 0
    state(e, 5002, op=m.OP_NORMAL, wan=m.WAN_DOWN, lmc=m.LMC_NONE)
    assert e.tick(5003) == (1 << L.PWR) | (1 << L.WMT)
    assert e.tick(5250) == 1 << L.PWR


# --- wake-up ----------------------------------------------------------------------------------


def test_wakeup_lasts_3s_with_125ms_pulses_then_state_pattern():
    e = booted()
    state(e, 4000, wan=m.WAN_UP)
    e.patterns()
    e.wakeup(5000)
    assert e.changed
    assert tuple(e.patterns())[L.TLS] == L.P_BLINK_125
    r = runs(samples(e, 5000, 3500, L.TLS))
    assert r == [(1, 125), (0, 125)] * 12 + [(1, 500)]
    assert e.changed
    assert tuple(e.patterns())[L.TLS] == L.P_ON


def test_wakeup_pattern_code_switches_at_3000():
    e = booted()
    state(e, 4000, wan=m.WAN_CONNECTING)
    e.wakeup(5000)
    e.tick(7999)
    assert e.patterns()[L.TLS] == L.P_BLINK_125
    e.tick(8000)
    assert e.patterns()[L.TLS] == L.P_BLINK_250


def test_wakeup_retrigger_extends():
    e = booted()
    state(e, 4000, wan=m.WAN_DOWN)
    e.wakeup(5000)
    e.tick(7000)
    e.wakeup(7000)
    e.tick(9999)
    assert e.patterns()[L.TLS] == L.P_BLINK_125
    e.tick(10000)
    assert e.patterns()[L.TLS] == L.P_OFF


def test_wakeup_hidden_by_security():
    e = booted()
    state(e, 4000, sec=m.SEC_PWR_LMC)
    e.wakeup(4100)
    assert e.patterns()[L.TLS] == L.P_OFF


# --- link lost --------------------------------------------------------------------------------


def test_link_lost_shows_starting():
    e = booted()
    state(e, 4000, install=True)
    e.wakeup(4000)
    e.link_lost(5000)
    assert tuple(e.patterns()) == (L.P_BLINK_500, L.P_OFF, L.P_OFF, L.P_FLASH)
    e.flash_wmt(5100)
    assert e.tick(5101) & (1 << L.WMT)
    assert state(e, 6000) == (L.P_ON, L.P_ON, L.P_ON, L.P_FLASH)


def test_link_lost_before_any_state_shows_starting():
    e = booted()
    e.link_lost(3500)
    assert tuple(e.patterns()) == (L.P_BLINK_500, L.P_OFF, L.P_OFF, L.P_FLASH)


@pytest.mark.parametrize("op,sec", [(m.OP_CEASED, m.SEC_NONE), (m.OP_NORMAL, m.SEC_PWR_TLS)])
def test_link_lost_keeps_security_latched(op, sec):
    e = booted()
    before = state(e, 4000, op=op, sec=sec)
    e.link_lost(5000)
    assert tuple(e.patterns()) == before


# --- changed flag -----------------------------------------------------------------------------


def test_changed_flag():
    e = L.LedEngine(0)
    assert e.changed
    e.patterns()
    assert not e.changed
    e.tick(100)
    assert not e.changed
    e.set_state(m.OP_NORMAL, m.WAN_UP, m.LMC_NONE, False, m.SEC_NONE, 200)
    assert not e.changed  # during boot: codes unchanged
    e.tick(3000)
    assert e.changed
    e.patterns()
    e.set_state(m.OP_NORMAL, m.WAN_UP, m.LMC_NONE, False, m.SEC_NONE, 3001)
    assert not e.changed
    e.flash_wmt(3002)
    e.tick(3003)
    assert not e.changed
    e.set_state(m.OP_NORMAL, m.WAN_DOWN, m.LMC_NONE, False, m.SEC_NONE, 3004)
    assert e.changed
    e.patterns()
    e.wakeup(3005)
    assert e.changed


def test_patterns_returns_same_buffer():
    e = booted()
    assert e.patterns() is e.patterns()
    assert len(e.patterns()) == 4


# --- counter wrap -----------------------------------------------------------------------------


def test_diff_wraps():
    assert L._diff(5, MASK30 - 4) == 10
    assert L._diff(MASK30 - 4, 5) == -10
    assert L._diff(1 << 29, 0) == -(1 << 29)
    assert L._diff((1 << 29) - 1, 0) == (1 << 29) - 1


def test_boot_across_wrap():
    t0 = MASK30 - 1000
    e = L.LedEngine(t0)
    lv = [e.tick((t0 + i) & MASK30) for i in range(4000)]
    assert runs([x == 15 for x in lv[:3000]]) == [(True, 250), (False, 250)] * 6
    assert set(lv[3000:]) == {0}


def test_blink_and_flash_across_wrap():
    t0 = MASK30 - 2345
    e = booted(t0)
    state(e, t0 + 3000, op=m.OP_STARTING)
    assert on_off(e, t0 + 3000, L.PWR, 5000) == {(1, 500), (0, 500)}
    e.flash_wmt(MASK30 - 100)
    assert runs(samples(e, MASK30 - 100, 400, L.WMT)) == [(1, 250), (0, 150)]


def test_wakeup_across_wrap():
    t0 = MASK30 - 5000
    e = booted(t0)
    state(e, t0 + 3000, wan=m.WAN_UP)
    e.wakeup(MASK30 - 1000)
    r = runs(samples(e, MASK30 - 1000, 3200, L.TLS))
    assert r == [(1, 125), (0, 125)] * 12 + [(1, 200)]


def test_long_uptime_keeps_phase():
    # sample sparsely over ~7 days of ticks (crossing the wrap several times)
    e = booted()
    state(e, 4000, op=m.OP_STARTING)
    t = 4000
    step = 997_003  # < 2**29, not a multiple of the period
    for _ in range(600):
        t += step
        lvl = e.tick(t & MASK30) & 1
        assert lvl == (1 if (t - 4000) % 1000 < 500 else 0)


def test_tick_returns_int():
    e = booted()
    state(e, 4000, install=True)
    for t in range(4000, 4100):
        v = e.tick(t)
        assert type(v) is int and 0 <= v <= 15


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        (-1, 0, 0, False, 0),
        (m.OP_MAX + 1, 0, 0, False, 0),
        (0, m.WAN_MAX + 1, 0, False, 0),
        (0, -1, 0, False, 0),
        (0, 0, m.LMC_MAX + 1, False, 0),
        (0, 0, 0, 2, 0),
        (0, 0, 0, False, m.SEC_MAX + 1),
        (0, 0, 0, False, -1),
        ("1", 0, 0, False, 0),
        (None, 0, 0, False, 0),
        (1.0, 0, 0, False, 0),
        (0, 0, 0, None, 0),
        (True, 0, 0, False, 0),
        (0, 0, 0, False, True),
    ],
)
def test_bad_state_raises_and_leaves_patterns(args):
    e = booted()
    before = state(e, 4000)
    with pytest.raises(ValueError):
        e.set_state(*args, 5000)
    assert tuple(e.patterns()) == before


def test_install_accepts_bool_and_01():
    e = booted()
    assert state(e, 4000, install=1)[L.PWR] == L.P_BLINK_500
    assert state(e, 4001, install=0)[L.PWR] == L.P_ON


def test_pattern_names():
    names = [L.pattern_name(c) for c in range(L.P_MAX + 1)]
    assert names == ["off", "on", "blink-500", "blink-250", "blink-125", "blink-50",
                     "heartbeat", "flash"]
    assert L.pattern_name(99) == "unknown"
    assert L.pattern_name(-1) == "unknown"
    assert L.pattern_name("x") == "unknown"
