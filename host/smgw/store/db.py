"""SQLite store: the durable heart of the gateway ("nothing measured is lost").

Every public write method is exactly one ``BEGIN IMMEDIATE ... COMMIT``
transaction on a connection in autocommit mode (``isolation_level=None``), with
``journal_mode=WAL`` and ``synchronous=FULL``: when a method returns, its effect
is durable; when it raises, nothing of it was written.

The store is meant for single-threaded use from the asyncio loop thread (calls
are short and synchronous).
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from . import migrations as _migrations
from .migrations import Migration

__all__ = [
    "HelloRecord",
    "Store",
    "StoreError",
    "StoreFullError",
    "StoreIntegrityError",
    "StoredRecord",
]

log = logging.getLogger("smgw.store")

HOST_STREAM_KEY = "host_stream_id"


class StoreError(Exception):
    """Any store failure (wraps sqlite3 errors)."""


class StoreIntegrityError(StoreError):
    """The database file is corrupt (quick_check failed or not a database)."""


class StoreFullError(StoreError):
    """SQLITE_FULL: disk (or max_page_count) full.  The transaction was rolled back."""


@dataclass(frozen=True)
class StoredRecord:
    id: int
    stream: int
    rid: int
    src: int
    tick_ms: int | None
    captured_ms: int | None
    received_ms: int
    body: bytes
    meta: bytes | None


@dataclass(frozen=True)
class ReadingRow:
    """One measured value to store with its record (``meter`` is the meters.id)."""

    meter: int
    obis: str
    raw: int | str
    scaler: int | None
    unit: str | None
    status: int | None
    time_valid: bool = True


@dataclass(frozen=True)
class MeterRow:
    id: int
    meter_id: str
    interface: str
    protocol: str
    obis: list[str]
    period_s: int | None
    key: bytes | None
    created_ms: int
    removed_ms: int | None
    lmn_cert: bytes | None = None


@dataclass(frozen=True)
class HelloRecord:
    id: int
    seen_ms: int
    stream: int | None
    fw_version: str | None
    board: str | None
    boot_counter: int | None
    files: dict[str, bytes] | None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _is_full(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.Error):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and (code & 0xFF) == sqlite3.SQLITE_FULL:
        return True
    return "database or disk is full" in str(exc)


def _is_corrupt(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and (code & 0xFF) in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return True
    msg = str(exc)
    return "malformed" in msg or "not a database" in msg


class Store:
    """Gateway database.  Create with :meth:`Store.open`."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._host_stream: int | None = None
        #: wall clock in ms, replaceable in tests
        self.now_ms = _now_ms

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def open(
        cls,
        path: Path | str,
        *,
        check_integrity: bool = False,
        busy_timeout_ms: int = 5000,
        migrations: list[Migration] | None = None,
    ) -> "Store":
        """Open or create the database at ``path`` and apply pending migrations.

        Raises StoreIntegrityError when the file is not a (healthy) database and
        StoreError when its schema is newer than this code knows.
        """
        path = Path(path)
        migs = _migrations.MIGRATIONS if migrations is None else migrations
        _migrations.check_migrations(migs)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{path}: cannot create directory: {exc}") from exc
        try:
            conn = sqlite3.connect(
                str(path),
                isolation_level=None,
                check_same_thread=True,
                timeout=busy_timeout_ms / 1000,
            )
        except sqlite3.Error as exc:
            raise StoreError(f"{path}: cannot open database: {exc}") from exc
        store = cls(conn, path)
        try:
            store._configure(busy_timeout_ms)
            if check_integrity:
                store._quick_check()
            store._migrate(migs)
        except BaseException:
            conn.close()
            raise
        return store

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None  # type: ignore[assignment]

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._conn is None

    # ------------------------------------------------------------------ internals

    def _wrap(self, exc: sqlite3.Error, what: str) -> StoreError:
        if _is_full(exc):
            return StoreFullError(f"{self.path}: {what}: database or disk is full ({exc})")
        if _is_corrupt(exc):
            return StoreIntegrityError(f"{self.path}: {what}: database is corrupt ({exc})")
        return StoreError(f"{self.path}: {what}: {exc}")

    def _c(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self.path}: store is closed")
        return self._conn

    @contextmanager
    def _write(self, what: str) -> Iterator[sqlite3.Connection]:
        """One BEGIN IMMEDIATE ... COMMIT transaction; rolled back on any error."""
        conn = self._c()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._wrap(exc, what) from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:  # pragma: no cover - rollback failure
                    log.exception("rollback failed")
            if isinstance(exc, sqlite3.Error):
                raise self._wrap(exc, what) from exc
            raise

    def _read(self, what: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._c().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._wrap(exc, what) from exc

    def _configure(self, busy_timeout_ms: int) -> None:
        conn = self._c()
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            raise self._wrap(exc, "configure") from exc
        if str(mode).lower() != "wal":
            log.warning("journal_mode WAL not available, using %s", mode,
                        extra={"fields": {"path": str(self.path)}})

    def _quick_check(self) -> None:
        try:
            rows = self._c().execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreIntegrityError(f"{self.path}: integrity check failed: {exc}") from exc
        result = [str(r[0]) for r in rows]
        if result != ["ok"]:
            raise StoreIntegrityError(
                f"{self.path}: integrity check failed: " + "; ".join(result[:20])
            )

    def _migrate(self, migs: list[Migration]) -> None:
        latest = _migrations.latest_version(migs)
        with self._write("create schema_migrations") as conn:
            conn.execute(_migrations.SCHEMA_MIGRATIONS_DDL)
            applied = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
        current = max(applied, default=0)
        if current > latest:
            raise StoreError(
                f"{self.path}: database schema version {current} is newer than this "
                f"software supports ({latest}); refusing to open it (upgrade smgw)"
            )
        missing = [m for m in migs if m.version not in applied]
        if missing and missing[0].version < current:
            raise StoreError(
                f"{self.path}: inconsistent schema_migrations: version {missing[0].version} "
                f"missing but {current} applied"
            )
        for m in missing:
            with self._write(f"migration {m.version} ({m.name})") as conn:
                # re-check under the write lock (another process may have migrated)
                if conn.execute(
                    "SELECT 1 FROM schema_migrations WHERE version = ?", (m.version,)
                ).fetchone():
                    continue
                if isinstance(m.step, str):
                    for stmt in _migrations.split_sql(m.step):
                        conn.execute(stmt)
                else:
                    m.step(conn)
                conn.execute(
                    "INSERT INTO schema_migrations(version, name, applied_ms) VALUES (?, ?, ?)",
                    (m.version, m.name, self.now_ms()),
                )
            log.info("applied schema migration %d (%s)", m.version, m.name,
                     extra={"fields": {"path": str(self.path), "version": m.version}})

    # ------------------------------------------------------------------ schema / health

    def schema_version(self) -> int:
        rows = self._read("schema_version", "SELECT max(version) FROM schema_migrations")
        return int(rows[0][0] or 0)

    def applied_migrations(self) -> list[tuple[int, str, int]]:
        """[(version, name, applied_ms)] in version order."""
        return [
            (int(v), n, int(a))
            for v, n, a in self._read(
                "applied_migrations",
                "SELECT version, name, applied_ms FROM schema_migrations ORDER BY version",
            )
        ]

    def integrity_check(self) -> list[str]:
        """Run ``PRAGMA quick_check``; returns ['ok'] when healthy."""
        try:
            return [str(r[0]) for r in self._c().execute("PRAGMA quick_check").fetchall()]
        except sqlite3.DatabaseError as exc:
            return [str(exc)]

    # ------------------------------------------------------------------ link cursors

    def cursor(self, stream: int) -> int:
        """Highest durable record id stored for ``stream`` (0 when unknown)."""
        rows = self._read(
            "cursor", "SELECT last_rid FROM link_cursor WHERE stream = ?", (stream,)
        )
        return int(rows[0][0]) if rows else 0

    def cursors(self) -> dict[int, int]:
        rows = self._read("cursors", "SELECT stream, last_rid FROM link_cursor ORDER BY stream")
        return {int(s): int(r) for s, r in rows}

    @staticmethod
    def _cursor_in_tx(conn: sqlite3.Connection, stream: int) -> int:
        row = conn.execute(
            "SELECT last_rid FROM link_cursor WHERE stream = ?", (stream,)
        ).fetchone()
        return int(row[0]) if row else 0

    def _set_cursor_in_tx(self, conn: sqlite3.Connection, stream: int, rid: int) -> None:
        conn.execute(
            "INSERT INTO link_cursor(stream, last_rid, updated_ms) VALUES (?, ?, ?) "
            "ON CONFLICT(stream) DO UPDATE SET last_rid = excluded.last_rid, "
            "updated_ms = excluded.updated_ms",
            (stream, rid, self.now_ms()),
        )

    @staticmethod
    def _check_rid(rid: int) -> None:
        if isinstance(rid, bool) or not isinstance(rid, int) or rid < 1:
            raise ValueError(f"record id must be an integer >= 1, got {rid!r}")

    def advance_cursor(self, stream: int, rid: int) -> bool:
        """Move the cursor of ``stream`` forward to ``rid`` (never backwards).

        Returns True if it moved.
        """
        self._check_rid(rid)
        with self._write("advance_cursor") as conn:
            if rid <= self._cursor_in_tx(conn, stream):
                return False
            self._set_cursor_in_tx(conn, stream, rid)
            return True

    # ------------------------------------------------------------------ records

    def put_record(
        self,
        stream: int,
        rid: int,
        src: int,
        tick_ms: int | None,
        captured_ms: int | None,
        received_ms: int,
        body: bytes,
        meta: bytes | None = None,
        readings: list[ReadingRow] | None = None,
        counters: tuple[int, int | None, int | None] | None = None,
    ) -> bool:
        """Store a record, the measured values decoded from it, and advance the stream cursor,
        in one transaction: a value is durable before its frame can be acknowledged.

        Returns False (nothing written) if ``rid <= cursor(stream)`` (duplicate).
        Record ids per stream are strictly increasing; gaps are allowed.
        """
        self._check_rid(rid)
        with self._write("put_record") as conn:
            if rid <= self._cursor_in_tx(conn, stream):
                return False
            cur = conn.execute(
                "INSERT INTO records(stream, rid, src, tick_ms, captured_ms, received_ms, "
                "body, meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (stream, rid, src, tick_ms, captured_ms, received_ms,
                 bytes(body), None if meta is None else bytes(meta)),
            )
            record = cur.lastrowid
            for r in readings or ():
                conn.execute(
                    "INSERT INTO readings(meter, record, obis, raw, scaler, unit, status, "
                    "capture_ms, receipt_ms, time_valid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (r.meter, record, r.obis, str(r.raw), r.scaler, r.unit, r.status,
                     captured_ms, received_ms, 1 if r.time_valid else 0),
                )
            if counters is not None:
                # (meter row id, transmission counter, access number) the record was accepted
                # with: the replay check's state moves in the same transaction as the values
                conn.execute("UPDATE meters SET rx_counter=coalesce(?, rx_counter), "
                             "rx_access=coalesce(?, rx_access) WHERE id=?",
                             (counters[1], counters[2], counters[0]))
            self._set_cursor_in_tx(conn, stream, rid)
            return True

    def rx_counters(self, meter: int) -> tuple[int | None, int | None]:
        """(highest transmission counter, last access number) accepted from a wireless meter."""
        rows = self._read("rx_counters", "SELECT rx_counter, rx_access FROM meters WHERE id=?",
                          (meter,))
        return (rows[0][0], rows[0][1]) if rows else (None, None)

    # ------------------------------------------------------------------ meters and readings

    def add_meter(self, meter_id: str, interface: str, protocol: str, obis: list[str],
                  period_s: int | None = None, key: bytes | None = None,
                  lmn_cert: bytes | None = None) -> int:
        """A new meter profile; a removed profile with the same id is brought back."""
        with self._write("add_meter") as conn:
            row = conn.execute("SELECT id, removed_ms FROM meters WHERE meter_id = ?",
                               (meter_id,)).fetchone()
            if row is not None and row[1] is None:
                raise StoreError(f"meter {meter_id} exists already")
            if row is not None:
                conn.execute(
                    "UPDATE meters SET interface=?, protocol=?, obis=?, period_s=?, key=?, "
                    "lmn_cert=?, removed_ms=NULL WHERE id=?",
                    (interface, protocol, json.dumps(obis), period_s, key, lmn_cert, row[0]))
                return int(row[0])
            cur = conn.execute(
                "INSERT INTO meters(meter_id, interface, protocol, obis, period_s, key, "
                "lmn_cert, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (meter_id, interface, protocol, json.dumps(obis), period_s, key, lmn_cert,
                 self.now_ms()))
            return int(cur.lastrowid)

    def set_meter_security(self, meter_id: str, key: bytes | None, lmn_cert: bytes | None
                           ) -> None:
        """After a pairing: the operational key replaces the pairing key, the meter's
        certificate is pinned."""
        with self._write("set_meter_security") as conn:
            conn.execute("UPDATE meters SET key=?, lmn_cert=? WHERE meter_id=? "
                         "AND removed_ms IS NULL", (key, lmn_cert, meter_id))

    def remove_meter(self, meter_id: str) -> bool:
        with self._write("remove_meter") as conn:
            cur = conn.execute(
                "UPDATE meters SET removed_ms=? WHERE meter_id=? AND removed_ms IS NULL",
                (self.now_ms(), meter_id))
            return cur.rowcount > 0

    def meters(self, include_removed: bool = False) -> list[MeterRow]:
        sql = ("SELECT id, meter_id, interface, protocol, obis, period_s, key, created_ms, "
               "removed_ms, lmn_cert FROM meters")
        if not include_removed:
            sql += " WHERE removed_ms IS NULL"
        return [MeterRow(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6], r[7], r[8], r[9])
                for r in self._read("meters", sql + " ORDER BY id")]

    def mark_time_invalid(self, from_ms: int, until_ms: int) -> int:
        """Flags the values captured in [from_ms, until_ms] as captured without valid legal time
        (a large clock correction showed the clock was off); returns how many. The values stay:
        flagged, never silently accepted and never deleted."""
        with self._write("mark_time_invalid") as conn:
            cur = conn.execute(
                "UPDATE readings SET time_valid=0 WHERE capture_ms BETWEEN ? AND ? "
                "AND time_valid=1", (from_ms, until_ms))
            return cur.rowcount

    def count_readings(self, meter: int | None = None, time_valid: bool | None = None) -> int:
        if time_valid is not None:
            rows = self._read("count_readings",
                              "SELECT count(*) FROM readings WHERE time_valid=?"
                              + ("" if meter is None else " AND meter=?"),
                              (1 if time_valid else 0,) + (() if meter is None else (meter,)))
            return int(rows[0][0])
        if meter is None:
            rows = self._read("count_readings", "SELECT count(*) FROM readings")
        else:
            rows = self._read("count_readings", "SELECT count(*) FROM readings WHERE meter=?",
                              (meter,))
        return int(rows[0][0])

    def latest_readings(self, meter: int) -> list[tuple[str, str, int | None, str | None,
                                                        int | None, int | None]]:
        """The newest value of each OBIS channel: (obis, raw, scaler, unit, status, capture_ms)."""
        return [tuple(r) for r in self._read(
            "latest_readings",
            "SELECT obis, raw, scaler, unit, status, capture_ms FROM readings WHERE id IN "
            "(SELECT max(id) FROM readings WHERE meter=? GROUP BY obis) ORDER BY obis",
            (meter,))]

    def readings_of(self, meter: int, obis: str, limit: int = 100_000
                    ) -> list[tuple[int, str, int | None]]:
        """(record, raw, capture_ms) of one channel in arrival order."""
        return [tuple(r) for r in self._read(
            "readings_of",
            "SELECT record, raw, capture_ms FROM readings WHERE meter=? AND obis=? "
            "ORDER BY id LIMIT ?", (meter, obis, limit))]

    def count_records(self, stream: int | None = None) -> int:
        if stream is None:
            rows = self._read("count_records", "SELECT count(*) FROM records")
        else:
            rows = self._read(
                "count_records", "SELECT count(*) FROM records WHERE stream = ?", (stream,)
            )
        return int(rows[0][0])

    def iter_records(
        self, stream: int | None = None, after_id: int = 0, limit: int = 1000
    ) -> list[StoredRecord]:
        """Up to ``limit`` records with ``id > after_id`` in id (= arrival) order.

        Page with ``after_id = page[-1].id``.  Returns a list, so no SQLite
        cursor stays open across awaits.
        """
        cols = "id, stream, rid, src, tick_ms, captured_ms, received_ms, body, meta"
        if stream is None:
            rows = self._read(
                "iter_records",
                f"SELECT {cols} FROM records WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            )
        else:
            rows = self._read(
                "iter_records",
                f"SELECT {cols} FROM records WHERE stream = ? AND id > ? ORDER BY id LIMIT ?",
                (stream, after_id, limit),
            )
        return [StoredRecord(*r) for r in rows]

    # ------------------------------------------------------------------ linktest

    def put_linktest(self, stream: int, rid: int, n: int, data_ok: bool) -> bool:
        """Count one linktest message; dedup and cursor exactly like put_record.

        The first message seen on a stream is never counted out of order.
        """
        self._check_rid(rid)
        with self._write("put_linktest") as conn:
            if rid <= self._cursor_in_tx(conn, stream):
                return False
            row = conn.execute(
                "SELECT last_n FROM linktest_rx WHERE stream = ?", (stream,)
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO linktest_rx(stream, received, last_n, out_of_order, bad_data) "
                    "VALUES (?, 1, ?, 0, ?)",
                    (stream, n, 0 if data_ok else 1),
                )
            else:
                ooo = 0 if n == int(row[0]) + 1 else 1
                conn.execute(
                    "UPDATE linktest_rx SET received = received + 1, last_n = ?, "
                    "out_of_order = out_of_order + ?, bad_data = bad_data + ? WHERE stream = ?",
                    (n, ooo, 0 if data_ok else 1, stream),
                )
            self._set_cursor_in_tx(conn, stream, rid)
            return True

    def linktest_stats(self, stream: int) -> dict[str, int]:
        """{'stream', 'received', 'last_n', 'out_of_order', 'bad_data'} (zeros if unknown)."""
        rows = self._read(
            "linktest_stats",
            "SELECT received, last_n, out_of_order, bad_data FROM linktest_rx WHERE stream = ?",
            (stream,),
        )
        received, last_n, ooo, bad = rows[0] if rows else (0, 0, 0, 0)
        return {
            "stream": stream,
            "received": int(received),
            "last_n": int(last_n),
            "out_of_order": int(ooo),
            "bad_data": int(bad),
        }

    # ------------------------------------------------------------------ host outbox

    def outbox_append(self, payload: bytes) -> int:
        """Durably queue a host->firmware message; returns its rid (never reused)."""
        with self._write("outbox_append") as conn:
            cur = conn.execute(
                "INSERT INTO host_outbox(payload, created_ms) VALUES (?, ?)",
                (bytes(payload), self.now_ms()),
            )
            return int(cur.lastrowid)

    def outbox_extend(
        self, payloads: list[bytes], meta: dict[str, bytes | str | int | float | None] | None = None
    ) -> list[tuple[int, bytes]]:
        """Durably queue several messages, and set ``meta`` keys, in one transaction; returns
        ``[(rid, payload)]`` in order. All or nothing."""
        out: list[tuple[int, bytes]] = []
        with self._write("outbox_extend") as conn:
            now = self.now_ms()
            for payload in payloads:
                cur = conn.execute(
                    "INSERT INTO host_outbox(payload, created_ms) VALUES (?, ?)",
                    (bytes(payload), now),
                )
                out.append((int(cur.lastrowid), bytes(payload)))
            for key, value in (meta or {}).items():
                conn.execute(
                    "INSERT INTO meta(key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )
        return out

    def outbox_pending(self, limit: int | None = None) -> list[tuple[int, bytes]]:
        """Unacknowledged messages ``[(rid, payload)]`` ordered by rid."""
        sql = "SELECT rid, payload FROM host_outbox ORDER BY rid"
        params: tuple[Any, ...] = ()
        if limit is not None:
            sql += " LIMIT ?"
            params = (limit,)
        return [(int(r), bytes(p)) for r, p in self._read("outbox_pending", sql, params)]

    def outbox_ack_upto(self, rid: int) -> int:
        """Delete all messages with ``rid <=`` the given rid; returns how many."""
        with self._write("outbox_ack_upto") as conn:
            return conn.execute("DELETE FROM host_outbox WHERE rid <= ?", (rid,)).rowcount

    # ------------------------------------------------------------------ meta

    def meta_get(self, key: str, default: Any = None) -> Any:
        rows = self._read("meta_get", "SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else default

    def meta_set(self, key: str, value: bytes | str | int | float | None) -> None:
        with self._write("meta_set") as conn:
            conn.execute(
                "INSERT INTO meta(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def host_stream_id(self) -> int:
        """The host's durable outbox stream id: random 31-bit, non-zero, created once."""
        if self._host_stream is not None:
            return self._host_stream
        with self._write("host_stream_id") as conn:
            row = conn.execute(
                "SELECT value FROM meta WHERE key = ?", (HOST_STREAM_KEY,)
            ).fetchone()
            if row is not None and isinstance(row[0], int) and row[0] > 0:
                sid = int(row[0])
            else:
                sid = secrets.randbelow(2**31 - 1) + 1
                conn.execute(
                    "INSERT INTO meta(key, value) VALUES (?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (HOST_STREAM_KEY, sid),
                )
        self._host_stream = sid
        return sid

    # ------------------------------------------------------------------ firmware hellos

    def record_hello(
        self,
        seen_ms: int,
        stream: int | None,
        fw_version: str | None,
        board: str | None,
        boot_counter: int | None,
        files: dict[str, bytes] | None = None,
    ) -> int:
        """Remember a firmware hello; ``files`` maps file name -> sha256 digest."""
        import cbor2

        blob = None if files is None else cbor2.dumps({str(k): bytes(v) for k, v in files.items()})
        with self._write("record_hello") as conn:
            cur = conn.execute(
                "INSERT INTO fw_hello(seen_ms, stream, fw_version, board, boot_counter, files) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (seen_ms, stream, fw_version, board, boot_counter, blob),
            )
            return int(cur.lastrowid)

    def last_hello(self) -> HelloRecord | None:
        rows = self._read(
            "last_hello",
            "SELECT id, seen_ms, stream, fw_version, board, boot_counter, files "
            "FROM fw_hello ORDER BY id DESC LIMIT 1",
        )
        if not rows:
            return None
        import cbor2

        r = rows[0]
        files = None if r[6] is None else cbor2.loads(r[6])
        return HelloRecord(r[0], r[1], r[2], r[3], r[4], r[5], files)
