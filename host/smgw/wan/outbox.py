"""The outbox: protected messages for market participants, kept until acknowledged.

A thin layer over the store's ``deliveries`` table (migration 5). Every method is one
transaction of the :class:`~smgw.store.db.Store` (durable when it returns), except
:meth:`Outbox.add` with ``conn``, which joins a transaction the caller already holds — the
tariff engine adds a message in the same transaction as the values it covers, so either both
exist after a crash or neither does.

Rules the table keeps:

- ``message_id`` is unique: adding a message again is a no-op (``add`` returns False), so forming a
  period twice never sends it twice;
- a message is never deleted before it was delivered (:meth:`prune_delivered` only removes
  delivered ones);
- ``attempts``/``next_attempt_ms``/``last_error`` record the retries, ``failure_logged`` that
  10269 was already written for it.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

from smgw.store.db import Store

__all__ = ["Delivery", "Outbox", "MESSAGE_ID_RE"]

#: what a message id may look like: it travels in an HTTP header and names a file at the EMT
MESSAGE_ID_RE = re.compile(r"[A-Za-z0-9_~:+=@-][A-Za-z0-9._~:+=@-]{0,199}")

#: a stored error text is cut to this many characters
MAX_ERROR_CHARS = 500

_COLUMNS = ("id, message_id, profile, comm_profile, period_start_ms, period_end_ms, n_values, "
            "content, attempts, next_attempt_ms, last_error, delivered_ms, created_ms, "
            "failure_logged")


@dataclass(frozen=True)
class Delivery:
    """One row of the outbox."""

    id: int
    message_id: str
    profile: str                  # evaluation profile the values come from
    comm_profile: str             # communication profile of the recipient
    period_start_ms: int | None
    period_end_ms: int | None
    n_values: int
    content: bytes                # CMS: SignedData(AuthEnvelopedData(payload))
    attempts: int
    next_attempt_ms: int
    last_error: str | None
    delivered_ms: int | None
    created_ms: int = 0
    failure_logged: bool = False


def _row(r: tuple) -> Delivery:
    return Delivery(
        id=int(r[0]), message_id=str(r[1]), profile=str(r[2]), comm_profile=str(r[3]),
        period_start_ms=None if r[4] is None else int(r[4]),
        period_end_ms=None if r[5] is None else int(r[5]),
        n_values=int(r[6]), content=bytes(r[7]), attempts=int(r[8]),
        next_attempt_ms=int(r[9]), last_error=r[10],
        delivered_ms=None if r[11] is None else int(r[11]),
        created_ms=int(r[12]), failure_logged=bool(r[13]),
    )


class Outbox:
    """The deliveries of one :class:`Store` (same SQLite file as the values they carry)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # ------------------------------------------------------------------ writing

    def add(self, message_id: str, profile: str, comm_profile: str,
            period_start_ms: int | None, period_end_ms: int | None, n_values: int,
            content: bytes, now_ms: int, conn: sqlite3.Connection | None = None) -> bool:
        """Queue a message, due at once. False (and nothing changed) when ``message_id`` is
        already in the outbox, delivered or not.

        ``conn``: the connection of an open write transaction of the same store (what
        ``store._write()`` yields); the row then commits or rolls back with that transaction.
        """
        if not isinstance(message_id, str) or not MESSAGE_ID_RE.fullmatch(message_id):
            raise ValueError(f"message_id {message_id!r}: 1-200 characters of "
                             "A-Z a-z 0-9 . _ ~ : + = @ -, not starting with '.' (caller's bug)")
        if not profile or not comm_profile:
            raise ValueError(f"message {message_id}: profile and comm_profile must be set")
        if not isinstance(content, (bytes, bytearray)) or not content:
            raise ValueError(f"message {message_id}: content must be non-empty bytes")
        sql = ("INSERT OR IGNORE INTO deliveries (message_id, profile, comm_profile, "
               "period_start_ms, period_end_ms, n_values, content, created_ms, next_attempt_ms) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
        params = (message_id, profile, comm_profile, period_start_ms, period_end_ms,
                  int(n_values), bytes(content), int(now_ms), int(now_ms))
        if conn is not None:
            if conn is not self.store._c():
                raise ValueError("conn is not a connection of this outbox's store")
            if not conn.in_transaction:
                raise ValueError("conn has no open transaction (use store._write())")
            return conn.execute(sql, params).rowcount == 1
        with self.store._write("outbox add") as c:
            return c.execute(sql, params).rowcount == 1

    def delivered(self, id: int, now_ms: int) -> None:
        """The recipient acknowledged message ``id`` (idempotent: the first time counts)."""
        with self.store._write("outbox delivered") as c:
            c.execute("UPDATE deliveries SET delivered_ms = ? "
                      "WHERE id = ? AND delivered_ms IS NULL", (int(now_ms), int(id)))

    def failed(self, id: int, now_ms: int, error: str, next_attempt_ms: int) -> int:
        """Count a failed attempt of message ``id`` and schedule the next one; returns the
        number of attempts so far. ``now_ms`` is accepted for symmetry with :meth:`delivered`."""
        del now_ms
        with self.store._write("outbox failed") as c:
            n = c.execute(
                "UPDATE deliveries SET attempts = attempts + 1, last_error = ?, "
                "next_attempt_ms = ? WHERE id = ? AND delivered_ms IS NULL",
                (str(error)[:MAX_ERROR_CHARS], int(next_attempt_ms), int(id))).rowcount
            row = (c.execute("SELECT attempts FROM deliveries WHERE id = ?", (int(id),))
                   .fetchone() if n else None)
        if row is None:
            raise KeyError(f"delivery {id}: not in the outbox or already delivered")
        return int(row[0])

    def mark_failure_logged(self, id: int) -> None:
        """10269 was written for message ``id``: do not write it again."""
        with self.store._write("outbox failure_logged") as c:
            c.execute("UPDATE deliveries SET failure_logged = 1 WHERE id = ?", (int(id),))

    def retry_now(self, comm_profile: str | None = None, now_ms: int = 0) -> int:
        """Make every undelivered message (of ``comm_profile``) due at ``now_ms`` — after an
        operator fixed the recipient. Returns how many were rescheduled."""
        sql = "UPDATE deliveries SET next_attempt_ms = ? WHERE delivered_ms IS NULL"
        params: tuple = (int(now_ms),)
        if comm_profile is not None:
            sql += " AND comm_profile = ?"
            params += (comm_profile,)
        with self.store._write("outbox retry_now") as c:
            return c.execute(sql, params).rowcount

    def prune_delivered(self, before_ms: int) -> int:
        """Delete messages acknowledged before ``before_ms``; undelivered ones always stay."""
        with self.store._write("outbox prune") as c:
            return c.execute("DELETE FROM deliveries WHERE delivered_ms IS NOT NULL "
                             "AND delivered_ms < ?", (int(before_ms),)).rowcount

    # ------------------------------------------------------------------ reading

    def get(self, id: int) -> Delivery | None:
        rows = self.store._read("outbox get", f"SELECT {_COLUMNS} FROM deliveries WHERE id = ?",
                                (int(id),))
        return _row(rows[0]) if rows else None

    def by_message_id(self, message_id: str) -> Delivery | None:
        rows = self.store._read("outbox by_message_id",
                                f"SELECT {_COLUMNS} FROM deliveries WHERE message_id = ?",
                                (message_id,))
        return _row(rows[0]) if rows else None

    def due(self, now_ms: int, limit: int = 20) -> list[Delivery]:
        """Undelivered messages whose next attempt is due, the longest-waiting first."""
        return [_row(r) for r in self.store._read(
            "outbox due",
            f"SELECT {_COLUMNS} FROM deliveries WHERE delivered_ms IS NULL "
            "AND next_attempt_ms <= ? ORDER BY next_attempt_ms, id LIMIT ?",
            (int(now_ms), int(limit)))]

    def pending(self) -> list[Delivery]:
        """All undelivered messages in the order they were added."""
        return [_row(r) for r in self.store._read(
            "outbox pending",
            f"SELECT {_COLUMNS} FROM deliveries WHERE delivered_ms IS NULL ORDER BY id")]

    def next_due_ms(self) -> int | None:
        """When the next undelivered message is due (None: nothing pending)."""
        rows = self.store._read("outbox next_due",
                                "SELECT min(next_attempt_ms) FROM deliveries "
                                "WHERE delivered_ms IS NULL")
        return None if rows[0][0] is None else int(rows[0][0])

    def stats(self) -> dict:
        """Counts for status displays: pending, delivered, failing (pending with at least one
        failed attempt), failure_logged (pending and reported by 10269), oldest_pending_ms."""
        r = self.store._read(
            "outbox stats",
            "SELECT total(delivered_ms IS NULL), total(delivered_ms IS NOT NULL), "
            "total(delivered_ms IS NULL AND attempts > 0), "
            "total(delivered_ms IS NULL AND failure_logged), "
            "min(CASE WHEN delivered_ms IS NULL THEN created_ms END) FROM deliveries")[0]
        return {"pending": int(r[0]), "delivered": int(r[1]), "failing": int(r[2]),
                "failure_logged": int(r[3]),
                "oldest_pending_ms": None if r[4] is None else int(r[4])}
