"""HAN sessions and the lock-out after failed logins.

A session ends after ``idle_s`` without a request (10 minutes) and ``max_s`` after it began
(48 hours) (seed 001 E-3, Theben HAN TLS limits), or at logout. Every request is authenticated
by itself (client certificate or Digest); the session is what makes a login one event in the
logs, carries the ``tkn`` form token and the faces' per-session state (``data``), and is named
by the ``session`` cookie.

One live session per account (the PPC behaviour that clients expect, han-clients.md §A.3): a
login while the account has a live session continues that session instead of being refused,
so a browser, TRuDI and a polling integration of the same account do not lock each other out,
and clients that never return the cookie (aiohttp refuses cookies from IP addresses) do not
make a new session, and a new login entry, with every request.

Lock-out: ``failures`` failed logins of one account name within ``window_s`` lock Digest logins
of that name for ``lock_s`` (5 / 5 min / 5 min, 10061). Names that do not exist are tracked the
same way, so the answers do not tell which accounts exist.

Times come from ``clock_ms``, a monotonic millisecond clock (corrections of the legal time do
not stretch or cut sessions); tests inject their own.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LockOut", "Session", "Sessions"]


def _monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


@dataclass
class Session:
    id: str                 # the cookie value
    token: str              # the form token (tkn) of this session
    account: str
    role: str
    consumer: str | None
    method: str             # how it began: "certificate" | "digest"
    created_ms: int
    last_ms: int
    #: per-session state of the faces (e.g. the PPC face's meter handles)
    data: dict[str, Any] = field(default_factory=dict)


class Sessions:
    def __init__(self, *, idle_s: float = 600.0, max_s: float = 172_800.0,
                 clock_ms: Callable[[], int] | None = None, max_sessions: int = 1000,
                 remember_ended: int = 1000) -> None:
        if not 0 < idle_s <= max_s:
            raise ValueError(f"need 0 < idle_s <= max_s, got idle_s={idle_s}, max_s={max_s}")
        self.idle_ms = int(idle_s * 1000)
        self.max_ms = int(max_s * 1000)
        self.clock_ms = clock_ms or _monotonic_ms
        self.max_sessions = max_sessions
        self._live: OrderedDict[str, Session] = OrderedDict()   # by id, oldest first
        self._by_account: dict[str, str] = {}
        # id -> why it ended (logout, idle, absolute, replaced, account), for the faces that
        # want to tell "session expired" from "never logged in"
        self._ended: OrderedDict[str, str] = OrderedDict()
        self._remember = remember_ended

    # ------------------------------------------------------------------ expiry

    def _why_over(self, s: Session, now: int) -> str | None:
        if now - s.created_ms >= self.max_ms:
            return "absolute"
        if now - s.last_ms >= self.idle_ms:
            return "idle"
        return None

    def _drop(self, sid: str, reason: str) -> Session | None:
        s = self._live.pop(sid, None)
        if s is None:
            return None
        if self._by_account.get(s.account) == sid:
            del self._by_account[s.account]
        self._ended[sid] = reason
        while len(self._ended) > self._remember:
            self._ended.popitem(last=False)
        return s

    def expire(self) -> int:
        """End every session over its idle or absolute limit; returns how many."""
        now = self.clock_ms()
        over = [(sid, why) for sid, s in self._live.items()
                if (why := self._why_over(s, now)) is not None]
        for sid, why in over:
            self._drop(sid, why)
        return len(over)

    # ------------------------------------------------------------------ use

    def get(self, sid: str | None) -> Session | None:
        """The live session ``sid`` (None if unknown or over; an over one is ended here)."""
        if not sid:
            return None
        s = self._live.get(sid)
        if s is None:
            return None
        why = self._why_over(s, self.clock_ms())
        if why is not None:
            self._drop(sid, why)
            return None
        return s

    def of_account(self, account: str) -> Session | None:
        return self.get(self._by_account.get(account))

    def touch(self, s: Session) -> None:
        s.last_ms = self.clock_ms()

    def login(self, account: str, role: str, consumer: str | None, method: str
              ) -> tuple[Session, bool]:
        """The account's session after a successful login: its live session if it has one
        with the same role and consumer (``(s, False)``), else a new one (``(s, True)``),
        which ends an older one of the account."""
        old = self.of_account(account)
        if old is not None:
            if old.role == role and old.consumer == consumer:
                self.touch(old)
                return old, False
            self._drop(old.id, "replaced")
        self.expire()
        while len(self._live) >= self.max_sessions:
            self._drop(next(iter(self._live)), "replaced")
        now = self.clock_ms()
        s = Session(id=secrets.token_urlsafe(24), token=secrets.token_hex(16), account=account,
                    role=role, consumer=consumer, method=method, created_ms=now, last_ms=now)
        self._live[s.id] = s
        self._by_account[account] = s.id
        return s, True

    def end(self, sid: str, reason: str = "logout") -> bool:
        """End a session (logout); False if it was not live."""
        return self._drop(sid, reason) is not None

    def end_account(self, account: str, reason: str = "account") -> bool:
        sid = self._by_account.get(account)
        return sid is not None and self.end(sid, reason)

    def ended(self, sid: str | None) -> str | None:
        """Why the session ``sid`` ended (None: live or never seen)."""
        return self._ended.get(sid) if sid else None

    def forget_ended(self, sid: str) -> None:
        self._ended.pop(sid, None)

    def live(self) -> list[Session]:
        self.expire()
        return list(self._live.values())

    def __len__(self) -> int:
        return len(self.live())


class LockOut:
    """Counts failed logins per account name and locks a name for a while."""

    def __init__(self, *, failures: int = 5, window_s: float = 300.0, lock_s: float = 300.0,
                 clock_ms: Callable[[], int] | None = None, max_names: int = 10_000) -> None:
        if failures < 1 or window_s <= 0 or lock_s <= 0:
            raise ValueError("lock-out needs failures >= 1, window_s > 0 and lock_s > 0")
        self.failures = failures
        self.window_ms = int(window_s * 1000)
        self.lock_ms = int(lock_s * 1000)
        self.clock_ms = clock_ms or _monotonic_ms
        self.max_names = max_names
        self._fails: OrderedDict[str, deque[int]] = OrderedDict()
        self._locked: dict[str, int] = {}

    def locked_until(self, name: str) -> int | None:
        """When the lock of ``name`` ends (clock ms), None if it is not locked."""
        until = self._locked.get(name)
        if until is None:
            return None
        if self.clock_ms() >= until:
            del self._locked[name]
            return None
        return until

    def failed(self, name: str) -> bool:
        """Count a failed login; True when this failure locked the name."""
        now = self.clock_ms()
        q = self._fails.get(name)
        if q is None:
            q = self._fails[name] = deque()
            while len(self._fails) > self.max_names:
                self._fails.popitem(last=False)
        else:
            self._fails.move_to_end(name)
        q.append(now)
        while q and now - q[0] >= self.window_ms:
            q.popleft()
        if len(q) >= self.failures and self.locked_until(name) is None:
            self._locked[name] = now + self.lock_ms
            q.clear()
            return True
        return False

    def succeeded(self, name: str) -> None:
        self._fails.pop(name, None)

    def recent_failures(self, name: str) -> int:
        now = self.clock_ms()
        q = self._fails.get(name) or ()
        return sum(1 for t in q if now - t < self.window_ms)
