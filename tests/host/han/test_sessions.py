"""Sessions (idle 10 min, absolute 48 h, logout, one per account) and the lock-out."""

from __future__ import annotations

import pytest

from hankit import Clock
from smgw.han.sessions import LockOut, Sessions


def sessions(clock, **kw):
    return Sessions(clock_ms=clock, **kw)


def test_login_creates_then_continues_the_accounts_session():
    c = Clock()
    s = sessions(c)
    a, new = s.login("demo", "consumer", "LV1", "digest")
    assert new and a.token and a.id != a.token
    b, new2 = s.login("demo", "consumer", "LV1", "certificate")
    assert b is a and not new2
    other, new3 = s.login("anna", "consumer", "LV2", "digest")
    assert new3 and other.id != a.id
    assert len(s) == 2


def test_idle_expiry_and_touch():
    c = Clock()
    s = sessions(c, idle_s=600, max_s=172_800)
    a, _ = s.login("demo", "consumer", "LV1", "digest")
    c.advance(599)
    assert s.get(a.id) is a
    s.touch(a)
    c.advance(599)
    assert s.get(a.id) is a
    c.advance(1)
    assert s.get(a.id) is None
    assert s.ended(a.id) == "idle"
    b, new = s.login("demo", "consumer", "LV1", "digest")
    assert new and b.id != a.id


def test_absolute_expiry_despite_activity():
    c = Clock()
    s = sessions(c, idle_s=600, max_s=172_800)
    a, _ = s.login("demo", "consumer", "LV1", "digest")
    for _ in range(48 * 6 - 1):  # a request every 10 minutes minus a second
        c.advance(599)
        assert s.get(a.id) is a
        s.touch(a)
    c.advance(172_800 - (48 * 6 - 1) * 599)
    assert s.get(a.id) is None
    assert s.ended(a.id) == "absolute"


def test_logout_ends_and_is_remembered():
    c = Clock()
    s = sessions(c)
    a, _ = s.login("demo", "consumer", "LV1", "digest")
    assert s.end(a.id)
    assert not s.end(a.id)
    assert s.get(a.id) is None
    assert s.ended(a.id) == "logout"
    s.forget_ended(a.id)
    assert s.ended(a.id) is None


def test_changed_role_or_consumer_replaces_the_session():
    c = Clock()
    s = sessions(c)
    a, _ = s.login("demo", "consumer", "LV1", "digest")
    b, new = s.login("demo", "consumer", "LV2", "digest")
    assert new and s.get(a.id) is None and s.ended(a.id) == "replaced"
    assert s.of_account("demo") is b


def test_session_count_is_bounded():
    c = Clock()
    s = sessions(c, max_sessions=3, remember_ended=1)
    ids = [s.login(f"u{i}", "consumer", "LV1", "digest")[0].id for i in range(5)]
    assert [x.id for x in s.live()] == ids[2:]
    assert s.ended(ids[0]) is None and s.ended(ids[1]) == "replaced"  # only 1 remembered


def test_limits_are_checked():
    with pytest.raises(ValueError):
        Sessions(idle_s=700, max_s=600)


# ----------------------------------------------------------------------------- lock-out

def test_five_failures_within_five_minutes_lock_for_five_minutes():
    c = Clock()
    lo = LockOut(clock_ms=c)
    for i in range(4):
        assert not lo.failed("demo")
        c.advance(60)
    assert lo.failed("demo")           # the 5th within 5 minutes locks
    until = lo.locked_until("demo")
    assert until == c.ms + 300_000
    assert not lo.failed("demo")       # failing while locked does not lock again
    c.advance(299)
    assert lo.locked_until("demo") is not None
    c.advance(1)
    assert lo.locked_until("demo") is None
    assert lo.locked_until("other") is None


def test_failures_spread_over_more_than_the_window_do_not_lock():
    c = Clock()
    lo = LockOut(clock_ms=c)
    for _ in range(10):
        assert not lo.failed("demo")
        c.advance(76)  # 4 failures span 228 s, the 5th is 304 s after the first
    assert lo.locked_until("demo") is None
    assert lo.recent_failures("demo") == 3  # at 532, 608, 684 s; now 760 s


def test_success_clears_the_count():
    c = Clock()
    lo = LockOut(clock_ms=c)
    for _ in range(4):
        lo.failed("demo")
    lo.succeeded("demo")
    assert not lo.failed("demo")
    assert lo.recent_failures("demo") == 1


def test_names_tracked_are_bounded():
    c = Clock()
    lo = LockOut(clock_ms=c, max_names=10)
    for i in range(100):
        lo.failed(f"guess{i}")
    assert len(lo._fails) == 10
