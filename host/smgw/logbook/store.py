"""Durable logbooks: the calibration log (Eichlog), the system log, one consumer log per consumer.

One SQLite file (``logs.db``) in the style of :mod:`smgw.store.db`: autocommit connection,
``journal_mode=WAL``, ``synchronous=FULL``, every public write is one ``BEGIN IMMEDIATE ...
COMMIT``: when :meth:`Logbooks.append` returns, the entry is on disk (the WAL is fsynced at the
commit); when it raises, nothing of it was written. Meant for single-threaded use from the
gateway's loop thread.

What each log keeps and when it is full (seed 000 §10 Tabelle 13, seed 002 §5) is in
docs/logbooks.md; in short:

* calibration log: never overwritten, every entry chained and signed (:mod:`.chain`), the signed
  head in the ``meta`` table rewritten in the same transaction. Remaining capacity 50 % / 25 %
  -> 10235, below 10 % -> 10097, full -> 10098 and :class:`CalibrationLogFull` on every further
  append (the one exception: the 10098 entry itself).
* system log: a ring; when full the oldest entries are deleted, 10239 says so (once when the ring
  first turns, again after each further full turn). Remaining 50/25/10 % -> 10254.
* consumer logs: entries are never changed, and deleted only once older than the retention time
  (``consumer_retention_days`` >= 15 months). Remaining 50/25 % -> 10236, below 10 % -> 10237;
  at capacity the expired entries are deleted (10253); with nothing expired the log is
  exhausted: 10238 and :class:`ConsumerLogFull`; space back (>= 10 % or no longer exhausted)
  -> 10255.
* the whole store (this file, its WAL, ``store_files``, and the free disk) against
  ``store_bytes``: remaining 50 % -> 10256, 30 % -> 10257, 20 % -> 10258, below 2 % -> 10259.

Each threshold message is given once per crossing (remembered in ``meta``) and re-armed when the
level is back above it. The messages go to ``on_event(event_id, level, params)`` after the
commit (queued durably in ``meta`` first, so a crash between commit and delivery delivers them
on the next append); without ``on_event`` the store writes them into the logs itself, in the same
transaction, with the texts and routing of :mod:`smgw.logbook.catalogue`.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, TextIO

from smgw.store import migrations as _mig
from smgw.store.migrations import Migration

from . import chain as _chain
from .chain import Head, Signer, Verifier, VerifyResult, canonical_json

__all__ = [
    "CalibrationLogFull",
    "ConsumerLogFull",
    "Entry",
    "LogFull",
    "LogIntegrityError",
    "LogLimits",
    "LogStoreFullError",
    "LogbookError",
    "Logbooks",
    "Page",
    "Signer",
    "Verifier",
]

log = logging.getLogger("smgw.logbook")

LOGS = ("calibration", "system", "consumer")
LEVELS = ("INFO", "WARNING", "ERROR", "FATAL")
STATUSES = ("successful", "failed")
DB_NAME = "logs.db"

# capacity messages (seed 000 Tabelle 13)
EV_CAL_INFO, EV_CAL_WARN, EV_CAL_FULL = 10235, 10097, 10098
EV_SYS_INFO, EV_SYS_RING = 10254, 10239
EV_CON_INFO, EV_CON_WARN, EV_CON_FULL, EV_CON_RING, EV_CON_BACK = 10236, 10237, 10238, 10253, 10255
EV_STORE_INFO, EV_STORE_30, EV_STORE_20, EV_STORE_FULL = 10256, 10257, 10258, 10259

_LEVEL_OF = {10235: "INFO", 10097: "WARNING", 10098: "FATAL", 10254: "INFO", 10239: "INFO",
             10236: "INFO", 10237: "WARNING", 10238: "ERROR", 10253: "INFO", 10255: "INFO",
             10256: "INFO", 10257: "WARNING", 10258: "WARNING", 10259: "ERROR"}

_MAX_INT = 2 ** 53  # JSON numbers stay exact (RFC 8785)
_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
_MAX_TEXT = 4000
_MAX_VALUE = 1000
_DAY_MS = 86_400_000


# --------------------------------------------------------------------------------------------
# errors


class LogbookError(Exception):
    """Any logbook failure (wraps sqlite3 errors); the message says whose fault it is."""


class LogIntegrityError(LogbookError):
    """The log database is corrupt, or the calibration log does not end at its signed head."""


class LogStoreFullError(LogbookError):
    """SQLITE_FULL: the disk is full; the transaction was rolled back."""


class LogFull(LogbookError):
    """A log that must not be overwritten is full; nothing of the append was written."""

    def __init__(self, message: str, log: str, consumer: str | None = None):
        super().__init__(message)
        self.log = log
        self.consumer = consumer


class CalibrationLogFull(LogFull):
    """The calibration log is full (10098): the gateway has to be replaced."""


class ConsumerLogFull(LogFull):
    """A consumer log is full of entries younger than the retention time (10238)."""


# --------------------------------------------------------------------------------------------
# data


@dataclass(frozen=True)
class LogLimits:
    """Capacities and thresholds. Percentages are of *remaining* capacity, as in the seed.

    Defaults for a real gateway (docs/logbooks.md): about 10 calibration-relevant events a day
    for 15 years fit 200 000 entries (~60 MB with hash and signature); the system log keeps the
    last 200 000 events (weeks of keep-alives and connections); a consumer log 50 000 entries
    (about 100 a day over the 460-day retention).
    """

    calibration_entries: int = 200_000
    calibration_warn_pct: int = 10  # 10097 below this
    calibration_info_pcts: tuple[int, ...] = (50, 25)  # 10235 below each
    system_entries: int = 200_000
    system_info_pcts: tuple[int, ...] = (50, 25, 10)  # 10254 below each
    consumer_entries: int = 50_000
    consumer_warn_pct: int = 10  # 10237 below this
    consumer_info_pcts: tuple[int, ...] = (50, 25)  # 10236 below each
    consumer_retention_days: int = 460  # >= the longest 15 calendar months (458 days)
    store_bytes: int = 512 * 1024 * 1024
    store_info_pcts: tuple[int, ...] = (50,)  # 10256 below each
    store_warn_pct: int = 30  # 10257
    store_critical_pct: int = 20  # 10258
    store_full_pct: int = 2  # 10259: "exhausted" leaves room to log that and stop measuring

    def __post_init__(self) -> None:
        for name in ("calibration_entries", "system_entries", "consumer_entries",
                     "store_bytes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"LogLimits.{name} must be a positive integer, not {v!r}")
        for name in ("calibration_warn_pct", "consumer_warn_pct", "store_warn_pct",
                     "store_critical_pct", "store_full_pct"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 < v < 100:
                raise ValueError(f"LogLimits.{name} must be a percentage 1..99, not {v!r}")
        for name in ("calibration_info_pcts", "system_info_pcts", "consumer_info_pcts",
                     "store_info_pcts"):
            v = tuple(getattr(self, name))
            if any(isinstance(p, bool) or not isinstance(p, int) or not 0 < p < 100 for p in v):
                raise ValueError(f"LogLimits.{name} must hold percentages 1..99, not {v!r}")
            object.__setattr__(self, name, v)
        if not self.store_full_pct < self.store_critical_pct < self.store_warn_pct:
            raise ValueError("LogLimits: store_full_pct < store_critical_pct < store_warn_pct "
                             "is required")
        if (isinstance(self.consumer_retention_days, bool)
                or not isinstance(self.consumer_retention_days, int)
                or self.consumer_retention_days < 458):
            raise ValueError("LogLimits.consumer_retention_days must be at least 458 days "
                             "(15 months, seed 002 §5.2), not "
                             f"{self.consumer_retention_days!r}")


@dataclass(frozen=True)
class Entry:
    """One log entry. ``hash`` and ``sig`` only in the calibration log, ``consumer`` only in a
    consumer log."""

    seq: int
    ts_ms: int
    time_valid: bool
    event_id: int
    level: str
    status: str
    params: dict[str, str | int]
    text: str
    consumer: str | None = None
    hash: bytes | None = None
    sig: bytes | None = None


@dataclass(frozen=True)
class Page:
    entries: list[Entry]
    #: pass as ``after_seq`` for the next page; None when this was the last page
    next_after: int | None


@dataclass
class _Tx:
    """What one write transaction has decided so far."""

    ts_ms: int  # of the entry being written (and of the store's own messages with it)
    time_valid: bool  # whether the legal time is valid now
    now_ms: int  # the legal time now: what the retention of consumer entries is measured from
    fired: list[tuple[int, dict[str, Any], str | None]] = field(default_factory=list)
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)


# --------------------------------------------------------------------------------------------
# schema

_V1 = """
-- Small facts: gateway id, the signed calibration head, threshold states, queued events.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value
);

-- Per log ('calibration', 'system', 'consumer:<id>'): the oldest kept and the last given seq
-- (seqs are never reused) and how many entries were deleted (ring or retention).
CREATE TABLE counters (
    log        TEXT PRIMARY KEY,
    first_seq  INTEGER NOT NULL,
    last_seq   INTEGER NOT NULL,
    deleted    INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL
);

CREATE TABLE calibration_log (
    seq        INTEGER PRIMARY KEY,
    ts_ms      INTEGER NOT NULL,
    time_valid INTEGER NOT NULL,
    event_id   INTEGER NOT NULL,
    level      TEXT NOT NULL,
    status     TEXT NOT NULL,
    params     TEXT NOT NULL,
    text       TEXT NOT NULL,
    hash       BLOB NOT NULL,
    sig        BLOB NOT NULL
);
CREATE INDEX calibration_log_time ON calibration_log (ts_ms, seq);

CREATE TABLE system_log (
    seq        INTEGER PRIMARY KEY,
    ts_ms      INTEGER NOT NULL,
    time_valid INTEGER NOT NULL,
    event_id   INTEGER NOT NULL,
    level      TEXT NOT NULL,
    status     TEXT NOT NULL,
    params     TEXT NOT NULL,
    text       TEXT NOT NULL
);
CREATE INDEX system_log_time ON system_log (ts_ms, seq);

CREATE TABLE consumer_log (
    consumer   TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    ts_ms      INTEGER NOT NULL,
    time_valid INTEGER NOT NULL,
    event_id   INTEGER NOT NULL,
    level      TEXT NOT NULL,
    status     TEXT NOT NULL,
    params     TEXT NOT NULL,
    text       TEXT NOT NULL,
    PRIMARY KEY (consumer, seq)
) WITHOUT ROWID;
CREATE INDEX consumer_log_time ON consumer_log (consumer, ts_ms, seq);

-- Entries are written once. (Against our own bugs: whoever can write the file can drop these;
-- the chain is what detects that for the calibration log.)
CREATE TRIGGER calibration_log_no_update BEFORE UPDATE ON calibration_log
BEGIN SELECT RAISE(ABORT, 'calibration log entries are never changed'); END;
CREATE TRIGGER calibration_log_no_delete BEFORE DELETE ON calibration_log
BEGIN SELECT RAISE(ABORT, 'calibration log entries are never deleted'); END;
CREATE TRIGGER system_log_no_update BEFORE UPDATE ON system_log
BEGIN SELECT RAISE(ABORT, 'system log entries are never changed'); END;
CREATE TRIGGER consumer_log_no_update BEFORE UPDATE ON consumer_log
BEGIN SELECT RAISE(ABORT, 'consumer log entries are never changed'); END;
"""

MIGRATIONS: list[Migration] = [Migration(1, "logbooks", _V1)]
_mig.check_migrations(MIGRATIONS)

_COLS = "seq, ts_ms, time_valid, event_id, level, status, params, text"
_TABLE = {"calibration": "calibration_log", "system": "system_log", "consumer": "consumer_log"}

_HEAD_KEY = "calibration_head"
_PENDING_KEY = "pending_events"


# --------------------------------------------------------------------------------------------
# helpers


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _is_full(exc: BaseException) -> bool:
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


def _check_params(params: Any) -> dict[str, str | int]:
    if not isinstance(params, dict):
        raise ValueError(f"params must be a dict, not {type(params).__name__}")
    out: dict[str, str | int] = {}
    for k, v in params.items():
        if not isinstance(k, str) or not _KEY_RE.match(k):
            raise ValueError(f"parameter name {k!r} must be an identifier (letters, digits, _)")
        if isinstance(v, bool) or not isinstance(v, (str, int)):
            raise ValueError(f"parameter {k}: value must be str or int, not {type(v).__name__}")
        if isinstance(v, int) and abs(v) >= _MAX_INT:
            raise ValueError(f"parameter {k}: integer {v} too large (|v| < 2**53)")
        if isinstance(v, str):
            _check_str(v, f"parameter {k}", _MAX_VALUE)
        out[k] = v
    return out


def _check_str(s: Any, what: str, max_len: int) -> str:
    if not isinstance(s, str):
        raise ValueError(f"{what} must be a string")
    if len(s) > max_len:
        raise ValueError(f"{what} is longer than {max_len} characters")
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{what} is not valid Unicode text: {exc}") from None
    return s


def _check_consumer(c: Any) -> str:
    _check_str(c, "consumer id", 200)
    if not c or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in c):
        raise ValueError(f"consumer id {c!r} must be non-empty without control characters")
    return c


def _key(log_: str, consumer: str | None = None) -> str:
    return f"consumer:{consumer}" if log_ == "consumer" else log_


def _kind(key: str) -> str:
    return "consumer" if key.startswith("consumer:") else key


def _consumer_of(key: str) -> str | None:
    return key[len("consumer:"):] if key.startswith("consumer:") else None


# --------------------------------------------------------------------------------------------
# the logbooks


class Logbooks:
    """The three logs in one SQLite file. Create with :meth:`Logbooks.open`."""

    def __init__(self, conn: sqlite3.Connection, path: Path, gateway_id: str, signer: Signer,
                 limits: LogLimits, clock: Callable[[], int],
                 on_event: Callable[[int, str, dict[str, Any]], Any] | None,
                 store_files: Sequence[Path]) -> None:
        self._conn: sqlite3.Connection | None = conn
        self.path = path
        self.gateway_id = gateway_id
        self.signer = signer
        self.limits = limits
        self.clock = clock
        self.on_event = on_event
        self.store_files = tuple(Path(p) for p in store_files)
        self._verifier = signer.verifier()
        self._delivering = False
        self._maybe_pending = True  # until a look at meta says otherwise
        #: why calibration appends are refused (None: they are not)
        self._cal_blocked: str | None = None

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def open(cls, path: Path | str, gateway_id: str, signer: Signer,
             limits: LogLimits = LogLimits(), clock: Callable[[], int] | None = None, *,
             on_event: Callable[[int, str, dict[str, Any]], Any] | None = None,
             store_files: Iterable[Path | str] = (), busy_timeout_ms: int = 5000,
             check_integrity: bool = False) -> "Logbooks":
        """Open or create the logbooks at ``path`` (the database file; a directory means
        ``<dir>/logs.db``).

        ``clock`` gives the legal time in ms (default: the system clock); ``on_event`` receives
        the capacity messages (see the module doc); ``store_files`` are further files counted
        against ``limits.store_bytes`` (the gateway's measured-value database).

        Raises LogIntegrityError for a file that is not a healthy database and LogbookError when
        the file belongs to another gateway or its schema is newer than this code.
        """
        if not isinstance(gateway_id, str) or not gateway_id.strip():
            raise ValueError("gateway_id must be a non-empty string")
        if not isinstance(signer, Signer):
            raise ValueError("signer must be a smgw.logbook.chain.Signer")
        path = Path(path)
        if path.is_dir():
            path = path / DB_NAME
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LogbookError(f"{path}: cannot create directory: {exc}") from exc
        try:
            conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=True,
                                   timeout=busy_timeout_ms / 1000)
        except sqlite3.Error as exc:
            raise LogbookError(f"{path}: cannot open log database: {exc}") from exc
        self = cls(conn, path, gateway_id, signer, limits, clock or _now_ms, on_event,
                   [Path(p) for p in store_files])
        try:
            self._configure(busy_timeout_ms)
            if check_integrity:
                bad = self.integrity_check()
                if bad != ["ok"]:
                    raise LogIntegrityError(f"{path}: integrity check failed: "
                                            + "; ".join(bad[:20]))
            self._migrate()
            self._init_identity()
        except BaseException:
            conn.close()
            self._conn = None
            raise
        return self

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    def __enter__(self) -> "Logbooks":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._conn is None

    # ------------------------------------------------------------------ internals: sqlite

    def _c(self) -> sqlite3.Connection:
        if self._conn is None:
            raise LogbookError(f"{self.path}: logbooks are closed")
        return self._conn

    def _wrap(self, exc: sqlite3.Error, what: str) -> LogbookError:
        if _is_full(exc):
            return LogStoreFullError(f"{self.path}: {what}: database or disk is full ({exc})")
        if _is_corrupt(exc):
            return LogIntegrityError(f"{self.path}: {what}: log database is corrupt ({exc})")
        return LogbookError(f"{self.path}: {what}: {exc}")

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

    @contextmanager
    def _snapshot(self, what: str) -> Iterator[sqlite3.Connection]:
        """A read transaction: every SELECT inside sees the same state of the file."""
        conn = self._c()
        try:
            conn.execute("BEGIN")
        except sqlite3.Error as exc:
            raise self._wrap(exc, what) from exc
        try:
            yield conn
        except sqlite3.Error as exc:
            raise self._wrap(exc, what) from exc
        finally:
            if conn.in_transaction:
                try:
                    conn.execute("COMMIT")
                except sqlite3.Error:  # pragma: no cover
                    log.exception("ending a read transaction failed")

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
        except sqlite3.Error as exc:
            raise self._wrap(exc, "configure") from exc
        if str(mode).lower() != "wal":
            log.warning("journal_mode WAL not available, using %s", mode,
                        extra={"fields": {"path": str(self.path)}})

    def _migrate(self) -> None:
        latest = _mig.latest_version(MIGRATIONS)
        with self._write("create schema_migrations") as conn:
            conn.execute(_mig.SCHEMA_MIGRATIONS_DDL)
            applied = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
        current = max(applied, default=0)
        if current > latest:
            raise LogbookError(
                f"{self.path}: log database schema version {current} is newer than this "
                f"software supports ({latest}); refusing to open it (upgrade smgw)")
        for m in MIGRATIONS:
            if m.version in applied:
                continue
            with self._write(f"migration {m.version} ({m.name})") as conn:
                if conn.execute("SELECT 1 FROM schema_migrations WHERE version = ?",
                                (m.version,)).fetchone():
                    continue
                if isinstance(m.step, str):
                    for stmt in _mig.split_sql(m.step):
                        conn.execute(stmt)
                else:
                    m.step(conn)
                conn.execute("INSERT INTO schema_migrations(version, name, applied_ms) "
                             "VALUES (?, ?, ?)", (m.version, m.name, _now_ms()))

    def _init_identity(self) -> None:
        """Bind the file to the gateway; give an empty calibration log its signed head."""
        with self._write("initialise") as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'gateway_id'").fetchone()
            if row is None:
                self._meta_set(conn, "gateway_id", self.gateway_id)
            elif row[0] != self.gateway_id:
                raise LogbookError(
                    f"{self.path}: these logbooks belong to gateway {row[0]!r}, not "
                    f"{self.gateway_id!r} (wrong file or wrong gateway id in the configuration)")
            for key in ("calibration", "system"):
                self._counter(conn, key, create=True)
            head = self._head_in_tx(conn)
            if head is None:
                n = conn.execute("SELECT count(*) FROM calibration_log").fetchone()[0]
                if n == 0:
                    self._set_head(conn, 0, _chain.genesis(self.gateway_id))
                    head = self._head_in_tx(conn)
        if head is None:
            self._cal_blocked = ("the calibration log has entries but no signed head "
                                 "(altered or damaged file)")
        elif not self._verifier.verify(
                _chain.head_digest(self.gateway_id, head.seq, head.hash), head.sig):
            self._cal_blocked = ("the calibration log's head is not signed by this gateway's "
                                 "log-signature key (key replaced, or head altered)")
        if self._cal_blocked:
            log.error("calibration log: %s; appends to it are refused", self._cal_blocked,
                      extra={"fields": {"path": str(self.path)}})

    # ------------------------------------------------------------------ internals: meta

    @staticmethod
    def _meta_get(conn: sqlite3.Connection, key: str, default: Any = None) -> Any:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None else row[0]

    @staticmethod
    def _meta_set(conn: sqlite3.Connection, key: str, value: Any) -> None:
        conn.execute("INSERT INTO meta(key, value) VALUES (?, ?) "
                     "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))

    def _head_in_tx(self, conn: sqlite3.Connection) -> Head | None:
        raw = self._meta_get(conn, _HEAD_KEY)
        if raw is None:
            return None
        try:
            d = json.loads(raw)
            return Head(int(d["seq"]), bytes.fromhex(d["hash"]), bytes.fromhex(d["sig"]))
        except (ValueError, KeyError, TypeError):
            return Head(-1, b"", b"")  # unreadable: fails every check

    def _set_head(self, conn: sqlite3.Connection, seq: int, h: bytes) -> None:
        sig = self.signer.sign(_chain.head_digest(self.gateway_id, seq, h))
        self._meta_set(conn, _HEAD_KEY,
                       canonical_json({"seq": seq, "hash": h.hex(), "sig": sig.hex()}))

    def _counter(self, conn: sqlite3.Connection, key: str, create: bool = False
                 ) -> tuple[int, int, int] | None:
        """(first_seq, last_seq, deleted) of a log."""
        row = conn.execute("SELECT first_seq, last_seq, deleted FROM counters WHERE log = ?",
                           (key,)).fetchone()
        if row is None and create:
            conn.execute("INSERT INTO counters(log, first_seq, last_seq, deleted, created_ms) "
                         "VALUES (?, 1, 0, 0, ?)", (key, _now_ms()))
            return (1, 0, 0)
        return None if row is None else (int(row[0]), int(row[1]), int(row[2]))

    def _state(self, conn: sqlite3.Connection, tx: _Tx, key: str) -> dict[str, Any]:
        """The threshold state of a log ({name: value}); written back at the end of tx."""
        if key not in tx.states:
            raw = self._meta_get(conn, f"thresholds:{key}")
            try:
                tx.states[key] = dict(json.loads(raw)) if raw else {}
            except (ValueError, TypeError):
                tx.states[key] = {}
        return tx.states[key]

    def _save_states(self, conn: sqlite3.Connection, tx: _Tx) -> None:
        for key in sorted(tx.dirty):
            self._meta_set(conn, f"thresholds:{key}", canonical_json(tx.states[key]))
        tx.dirty.clear()

    def _capacity(self, key: str) -> int:
        kind = _kind(key)
        return {"calibration": self.limits.calibration_entries,
                "system": self.limits.system_entries,
                "consumer": self.limits.consumer_entries}[kind]

    # ------------------------------------------------------------------ append

    def append(self, event_id: int, level: str, status: str, params: dict[str, str | int],
               text: str, logs: Iterable[str], consumers: Iterable[str] = (),
               ts_ms: int | None = None, time_valid: bool = True, *,
               skip_full: bool = False) -> list[tuple[str, int]]:
        """Write one event to each log in ``logs`` ("calibration", "system", "consumer": one
        entry per id in ``consumers``; ``consumers`` is used only with "consumer") in one
        transaction, durable on return.

        Returns ``[(log, seq)]`` with ``log`` = "calibration", "system" or "consumer:<id>".
        A full calibration log raises :class:`CalibrationLogFull`, an exhausted consumer log
        :class:`ConsumerLogFull` -- and then nothing is written -- unless ``skip_full``: then
        the full logs are left out and the rest is written. ``ts_ms`` defaults to the clock.
        """
        logs = (logs,) if isinstance(logs, str) else tuple(logs)
        if not logs:
            raise ValueError("no log given: logs must name calibration, system or consumer")
        targets = self._targets(logs, consumers)
        if isinstance(event_id, bool) or not isinstance(event_id, int) or not \
                0 <= event_id < _MAX_INT:
            raise ValueError(f"event_id must be a non-negative integer, not {event_id!r}")
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
        params = _check_params(params)
        _check_str(text, "text", _MAX_TEXT)
        if ts_ms is None:
            ts_ms = int(self.clock())
        if isinstance(ts_ms, bool) or not isinstance(ts_ms, int) or abs(ts_ms) >= _MAX_INT:
            raise ValueError(f"ts_ms must be an integer (ms), not {ts_ms!r}")
        time_valid = bool(time_valid)

        self._deliver_pending()
        tx = _Tx(ts_ms, time_valid, int(self.clock()))
        with self._write("append") as conn:
            self._check_store(conn, tx)
            out = self._put(conn, tx, event_id, level, status, params, text, targets,
                            skip_full)
            self._finish(conn, tx)
        self._deliver_pending()
        return out

    def _targets(self, logs: Iterable[str], consumers: Iterable[str]) -> list[str]:
        if isinstance(logs, str):
            logs = (logs,)
        names = list(dict.fromkeys(logs))
        for n in names:
            if n not in LOGS:
                raise ValueError(f"unknown log {n!r} (one of {LOGS})")
        out = [n for n in ("calibration", "system") if n in names]
        if "consumer" in names:
            if isinstance(consumers, str):
                consumers = (consumers,)
            out += [_key("consumer", _check_consumer(c)) for c in dict.fromkeys(consumers)]
        return out

    def _put(self, conn: sqlite3.Connection, tx: _Tx, event_id: int, level: str, status: str,
             params: dict[str, Any], text: str, targets: list[str], skip_full: bool,
             internal: bool = False) -> list[tuple[str, int]]:
        params_json = canonical_json(params)
        plan = [k for k in targets
                if self._make_room(conn, tx, k, event_id, skip_full, internal)]
        out: list[tuple[str, int]] = []
        for key in plan:
            seq = self._insert(conn, key, tx.ts_ms, tx.time_valid, event_id, level, status,
                               params, params_json, text)
            out.append((key, seq))
        for key in plan:
            self._after_write(conn, tx, key)
        return out

    def _make_room(self, conn: sqlite3.Connection, tx: _Tx, key: str, event_id: int,
                   skip_full: bool, internal: bool = False) -> bool:
        """Whether ``key`` takes the entry; deletes what a ring or retention allows.

        ``internal``: a capacity message written by the store itself, which never makes the
        append it belongs to fail (a refused calibration log is left out).
        """
        kind = _kind(key)
        cap = self._capacity(key)
        if kind == "calibration":
            try:
                self._check_calibration_end(conn)
            except LogIntegrityError:
                if internal:
                    return False
                raise
            first, last, _ = self._counter(conn, key, create=True)
            if last < cap:
                return True
            state = self._state(conn, tx, key)
            if event_id == EV_CAL_FULL and not state.get("reserve"):
                state["reserve"] = True
                tx.dirty.add(key)
                return True
            if skip_full:
                return False
            raise CalibrationLogFull(
                f"the calibration log is full ({last} of {cap} entries): the gateway must be "
                "replaced (10098); the calibration log is never overwritten", "calibration")
        first, last, deleted = self._counter(conn, key, create=True)
        count = last - first + 1
        if kind == "system":
            if count >= cap:
                n = count - cap + 1
                conn.execute("DELETE FROM system_log WHERE seq < ?", (first + n,))
                conn.execute("UPDATE counters SET first_seq = ?, deleted = deleted + ? "
                             "WHERE log = ?", (first + n, n, key))
                self._ring_notice(conn, tx, deleted + n)
            return True
        # a consumer log
        consumer = _consumer_of(key)
        if count < cap:
            return True
        state = self._state(conn, tx, key)
        if self._purge_consumer(conn, tx, key, consumer):
            first, last, _ = self._counter(conn, key)
            count = last - first + 1
            if count < cap:
                return True
        if event_id == EV_CON_FULL and not state.get("reserve"):
            state["reserve"] = True
            tx.dirty.add(key)
            return True
        if skip_full:
            return False
        raise ConsumerLogFull(
            f"the consumer log of {consumer} is full of entries younger than the retention time "
            f"({count} of {cap} entries, {self.limits.consumer_retention_days} days; 10238)",
            "consumer", consumer)

    def _check_calibration_end(self, conn: sqlite3.Connection) -> None:
        if self._cal_blocked:
            raise LogIntegrityError(f"{self.path}: {self._cal_blocked}; calibration-log appends "
                                    "are refused until an administrator has looked at it")
        head = self._head_in_tx(conn)
        row = conn.execute("SELECT seq, hash FROM calibration_log ORDER BY seq DESC LIMIT 1"
                           ).fetchone()
        last_seq, last_hash = (int(row[0]), bytes(row[1])) if row else \
            (0, _chain.genesis(self.gateway_id))
        if head is None or head.seq != last_seq or head.hash != last_hash:
            raise LogIntegrityError(
                f"{self.path}: the calibration log does not end at its signed head (last entry "
                f"{last_seq}, head {head.seq if head else 'missing'}): entries were removed or "
                "altered; calibration-log appends are refused")

    def _insert(self, conn: sqlite3.Connection, key: str, ts_ms: int, time_valid: bool,
                event_id: int, level: str, status: str, params: dict[str, Any],
                params_json: str, text: str) -> int:
        kind = _kind(key)
        _, last, _ = self._counter(conn, key, create=True)
        seq = last + 1
        tv = 1 if time_valid else 0
        if kind == "calibration":
            head = self._head_in_tx(conn)  # checked by _check_calibration_end
            if head is None:  # pragma: no cover - _make_room refused it already
                raise LogIntegrityError(f"{self.path}: the calibration log has no signed head")
            seq = head.seq + 1  # the chain decides, whatever the counters say
            h = _chain.chain_hash(head.hash, _chain.canonical_bytes(
                seq, ts_ms, time_valid, event_id, level, status, params, text))
            sig = self.signer.sign(h)
            conn.execute(f"INSERT INTO calibration_log({_COLS}, hash, sig) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (seq, ts_ms, tv, event_id, level, status, params_json, text, h, sig))
            self._set_head(conn, seq, h)
        elif kind == "system":
            conn.execute(f"INSERT INTO system_log({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (seq, ts_ms, tv, event_id, level, status, params_json, text))
        else:
            conn.execute(f"INSERT INTO consumer_log(consumer, {_COLS}) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (_consumer_of(key), seq, ts_ms, tv, event_id, level, status,
                          params_json, text))
        conn.execute("UPDATE counters SET last_seq = ? WHERE log = ?", (seq, key))
        return seq

    # ------------------------------------------------------------------ thresholds

    def _fire(self, tx: _Tx, event_id: int, params: dict[str, Any],
              consumer: str | None = None) -> None:
        tx.fired.append((event_id, params, consumer))

    def _after_write(self, conn: sqlite3.Connection, tx: _Tx, key: str) -> None:
        """Threshold messages of one log after an entry went into it."""
        kind = _kind(key)
        cap = self._capacity(key)
        first, last, _ = self._counter(conn, key)
        count = last - first + 1
        state = self._state(conn, tx, key)
        before = dict(state)
        consumer = _consumer_of(key)
        lim = self.limits
        if kind == "consumer" and count >= cap and not state.get("full"):
            # full: the expired entries go now (with none, the log is exhausted: below)
            if self._purge_consumer(conn, tx, key, consumer):
                first, last, _ = self._counter(conn, key)
                count = last - first + 1
        remaining = max(0.0, (cap - count) * 100.0 / cap)

        if kind == "calibration":
            self._steps(tx, state, remaining, lim.calibration_info_pcts, EV_CAL_INFO, None)
            if remaining < lim.calibration_warn_pct and not state.get("warn"):
                state["warn"] = True
                self._fire(tx, EV_CAL_WARN, {})
            if count >= cap and not state.get("full"):
                state["full"] = True
                self._fire(tx, EV_CAL_FULL, {})
        elif kind == "system":
            self._steps(tx, state, remaining, lim.system_info_pcts, EV_SYS_INFO, None)
        else:
            self._steps(tx, state, remaining, lim.consumer_info_pcts, EV_CON_INFO, consumer)
            if remaining < lim.consumer_warn_pct:
                if not state.get("warn"):
                    state["warn"] = True
                    self._fire(tx, EV_CON_WARN, {"consumer": consumer}, consumer)
            if count >= cap and not state.get("full"):
                state["full"] = True
                self._fire(tx, EV_CON_FULL, {"consumer": consumer}, consumer)
            self._consumer_recovery(tx, state, count, cap, remaining, consumer)
        if state != before:
            tx.dirty.add(key)

    def _consumer_recovery(self, tx: _Tx, state: dict[str, Any], count: int, cap: int,
                           remaining: float, consumer: str | None) -> None:
        """Re-arm after deletions; 10255 when the log is usable (again) or above the warning
        level (again)."""
        back = False
        if state.get("full") and count < cap:
            state.pop("full", None)
            state.pop("reserve", None)
            back = True
        if remaining >= self.limits.consumer_warn_pct:
            if state.pop("warn", None):
                back = True
            state.pop("ring", None)
        if back:
            self._fire(tx, EV_CON_BACK, {"consumer": consumer, "percent": int(remaining)},
                       consumer)

    def _steps(self, tx: _Tx, state: dict[str, Any], remaining: float,
               pcts: tuple[int, ...], event_id: int, consumer: str | None) -> None:
        """The informational "remaining n %" steps: each once per crossing downwards."""
        for p in sorted(pcts, reverse=True):
            name = f"info{p}"
            if remaining < p:
                if not state.get(name):
                    state[name] = True
                    params: dict[str, Any] = {"percent": p}
                    if consumer is not None:
                        params = {"consumer": consumer, "percent": p}
                    self._fire(tx, event_id, params, consumer)
            elif state.get(name):
                state.pop(name)

    def _ring_notice(self, conn: sqlite3.Connection, tx: _Tx, overwritten: int) -> None:
        """10239 when the system ring first overwrites, and again after each full turn."""
        state = self._state(conn, tx, "system")
        last = state.get("ring_at")
        if last is None or overwritten - int(last) >= self.limits.system_entries:
            state["ring_at"] = overwritten
            tx.dirty.add("system")
            self._fire(tx, EV_SYS_RING, {})

    def _purge_consumer(self, conn: sqlite3.Connection, tx: _Tx, key: str,
                        consumer: str | None) -> int:
        """Delete the consumer entries older than the retention time, oldest first.

        Only with a valid legal time. Deletes a prefix in seq order and stops at the first entry
        with a valid time inside the retention; an entry without valid time goes only together
        with a later expired one (its own time says nothing). Fires 10253 once per crossing.
        """
        if not tx.time_valid:
            return 0
        cutoff = tx.now_ms - self.limits.consumer_retention_days * _DAY_MS
        upto = None
        for seq, ts, tv in conn.execute(
                "SELECT seq, ts_ms, time_valid FROM consumer_log WHERE consumer = ? "
                "ORDER BY seq", (consumer,)):
            if tv:
                if ts < cutoff:
                    upto = int(seq)
                else:
                    break
        if upto is None:
            return 0
        n = conn.execute("DELETE FROM consumer_log WHERE consumer = ? AND seq <= ?",
                         (consumer, upto)).rowcount
        conn.execute("UPDATE counters SET first_seq = ?, deleted = deleted + ? WHERE log = ?",
                     (upto + 1, n, key))
        state = self._state(conn, tx, key)
        if not state.get("ring"):
            state["ring"] = True
            self._fire(tx, EV_CON_RING, {"consumer": consumer}, consumer)
        tx.dirty.add(key)
        return n

    def store_usage(self) -> tuple[int, int]:
        """(bytes used by the logbooks and ``store_files``, bytes remaining of ``store_bytes``,
        counting the free disk as well)."""
        used = 0
        for p in (self.path, *self.store_files):
            for f in (p, Path(f"{p}-wal")):
                try:
                    used += f.stat().st_size
                except OSError:
                    pass
        try:
            free = shutil.disk_usage(self.path.parent).free
        except OSError:  # pragma: no cover
            free = self.limits.store_bytes
        return used, max(0, min(self.limits.store_bytes - used, free))

    def _check_store(self, conn: sqlite3.Connection, tx: _Tx) -> None:
        lim = self.limits
        _, remaining_bytes = self.store_usage()
        remaining = remaining_bytes * 100.0 / lim.store_bytes
        state = self._state(conn, tx, "store")
        before = dict(state)
        steps = [(f"info{p}", p, EV_STORE_INFO, {"percent": p}) for p in lim.store_info_pcts]
        steps += [("warn", lim.store_warn_pct, EV_STORE_30, {}),
                  ("critical", lim.store_critical_pct, EV_STORE_20, {}),
                  ("full", lim.store_full_pct, EV_STORE_FULL, {})]
        for name, pct, ev, params in sorted(steps, key=lambda s: -s[1]):
            if remaining < pct:
                if not state.get(name):
                    state[name] = True
                    self._fire(tx, ev, params)
            elif state.get(name) and remaining >= pct + 1:  # 1 % hysteresis: files breathe
                state.pop(name)
        if state != before:
            tx.dirty.add("store")

    # ------------------------------------------------------------------ capacity messages

    def _finish(self, conn: sqlite3.Connection, tx: _Tx) -> None:
        """Write the fired messages into the logs (no on_event) or queue them (on_event)."""
        if self.on_event is None:
            guard = 0
            while tx.fired:
                guard += 1
                if guard > 1000:  # pragma: no cover - a cascade cannot be this long
                    raise LogbookError("capacity messages do not settle")
                event_id, params, consumer = tx.fired.pop(0)
                level, text, logs = _describe(event_id, params)
                # a consumer's own message goes to that consumer; one that stops measuring
                # (10098, 10259) concerns every consumer
                concerned = (consumer,) if consumer else tuple(
                    r[0][len("consumer:"):] for r in conn.execute(
                        "SELECT log FROM counters WHERE log LIKE 'consumer:%' ORDER BY log"))
                targets = self._targets(logs, concerned)
                self._put(conn, tx, event_id, level, "successful", params, text, targets,
                          skip_full=True, internal=True)
        elif tx.fired:
            pending = self._pending(conn)
            pending += [[ev, _LEVEL_OF.get(ev, "INFO"), params] for ev, params, _ in tx.fired]
            tx.fired.clear()
            self._meta_set(conn, _PENDING_KEY, canonical_json(pending))
            self._maybe_pending = True
        self._save_states(conn, tx)

    def _pending(self, conn: sqlite3.Connection) -> list[list[Any]]:
        raw = self._meta_get(conn, _PENDING_KEY)
        try:
            return list(json.loads(raw)) if raw else []
        except (ValueError, TypeError):
            return []

    def _deliver_pending(self) -> None:
        """Hand queued capacity messages to ``on_event``, each removed once it returned."""
        if (self.on_event is None or self._delivering or self._conn is None
                or not self._maybe_pending):
            return
        self._delivering = True
        try:
            while True:
                with self._write("read pending events") as conn:
                    pending = self._pending(conn)
                if not pending:
                    self._maybe_pending = False
                    return
                event_id, level, params = pending[0]
                try:
                    self.on_event(int(event_id), str(level), dict(params))
                except Exception:
                    log.exception("on_event(%s) failed; delivered again with the next append",
                                  event_id)
                    return
                with self._write("remove delivered event") as conn:
                    rest = self._pending(conn)
                    if rest and rest[0] == pending[0]:
                        rest.pop(0)
                    self._meta_set(conn, _PENDING_KEY, canonical_json(rest))
        finally:
            self._delivering = False

    def deliver_pending(self) -> None:
        """Deliver capacity messages still queued (e.g. from before a restart) now."""
        self._deliver_pending()

    # ------------------------------------------------------------------ housekeeping

    def housekeeping(self, now_ms: int | None = None, time_valid: bool = True
                     ) -> dict[str, int]:
        """Delete expired entries of consumer logs that are full or below the warning level;
        returns {consumer: entries deleted}. Call it now and then (e.g. daily); appends do the
        same for a full log on their own."""
        now = int(self.clock()) if now_ms is None else int(now_ms)
        self._deliver_pending()
        tx = _Tx(now, bool(time_valid), now)
        out: dict[str, int] = {}
        with self._write("housekeeping") as conn:
            self._check_store(conn, tx)
            rows = conn.execute("SELECT log, first_seq, last_seq FROM counters "
                                "WHERE log LIKE 'consumer:%'").fetchall()
            for key, first, last in rows:
                cap = self._capacity(key)
                remaining = (cap - (last - first + 1)) * 100.0 / cap
                if remaining >= self.limits.consumer_warn_pct:
                    continue
                consumer = _consumer_of(key)
                n = self._purge_consumer(conn, tx, key, consumer)
                if n:
                    out[consumer] = n
                    first, last, _ = self._counter(conn, key)
                    count = last - first + 1
                    state = self._state(conn, tx, key)
                    self._steps(tx, state, max(0.0, (cap - count) * 100.0 / cap),
                                self.limits.consumer_info_pcts, EV_CON_INFO, consumer)
                    self._consumer_recovery(tx, state, count, cap,
                                            max(0.0, (cap - count) * 100.0 / cap), consumer)
                    tx.dirty.add(key)
            self._finish(conn, tx)
        self._deliver_pending()
        return out

    # ------------------------------------------------------------------ reading

    @staticmethod
    def _entry(row: Sequence[Any], consumer: str | None = None, signed: bool = False) -> Entry:
        return Entry(int(row[0]), int(row[1]), bool(row[2]), int(row[3]), row[4], row[5],
                     json.loads(row[6]), row[7], consumer,
                     bytes(row[8]) if signed else None, bytes(row[9]) if signed else None)

    def _where(self, log_: str, consumer: str | None, since_ms: int | None,
               until_ms: int | None, level: str | None) -> tuple[str, list[str], list[Any]]:
        if log_ not in LOGS:
            raise ValueError(f"unknown log {log_!r} (one of {LOGS})")
        where: list[str] = []
        args: list[Any] = []
        if log_ == "consumer":
            if consumer is None:
                raise ValueError("the consumer log needs a consumer id")
            where.append("consumer = ?")
            args.append(_check_consumer(consumer))
        elif consumer is not None:
            raise ValueError(f"the {log_} log has no consumer")
        if since_ms is not None:
            where.append("ts_ms >= ?")
            args.append(int(since_ms))
        if until_ms is not None:
            where.append("ts_ms < ?")
            args.append(int(until_ms))
        if level is not None:
            if level not in LEVELS:
                raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
            where.append("level = ?")
            args.append(level)
        return _TABLE[log_], where, args

    def query(self, log: str, *, consumer: str | None = None, since_ms: int | None = None,
              until_ms: int | None = None, limit: int = 100, after_seq: int | None = None,
              level: str | None = None) -> Page:
        """One page of entries with ``since_ms <= ts_ms < until_ms`` (and ``level``), in time
        order (ts_ms, then seq: the log's order unless the clock was set back).

        Keyset paging: pass ``next_after`` of a page as ``after_seq`` for the next one. If the
        entry ``after_seq`` has been overwritten meanwhile (system ring, consumer retention),
        paging continues with the oldest entry still there. Who may read which log is the
        caller's business (the GWA must not read consumer logs).
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise ValueError(f"limit must be 1..10000, not {limit!r}")
        self._where(log, consumer, since_ms, until_ms, level)  # checks the arguments
        signed = log == "calibration"
        cols = _COLS + (", hash, sig" if signed else "")
        with self._snapshot("query") as conn:
            cursor_ts = None
            if after_seq is not None:
                table, where, args = self._where(log, consumer, None, None, None)
                row = conn.execute(f"SELECT ts_ms FROM {table} WHERE "
                                   + " AND ".join([*where, "seq = ?"]),
                                   (*args, int(after_seq))).fetchone()
                cursor_ts = None if row is None else int(row[0])
            if cursor_ts is not None:
                # (ts_ms, seq) > cursor, spelled so that the index range starts at the cursor
                lower = cursor_ts if since_ms is None else max(int(since_ms), cursor_ts)
                table, where, args = self._where(log, consumer, lower, until_ms, level)
                where.append("(ts_ms > ? OR seq > ?)")
                args += [cursor_ts, int(after_seq)]
            else:
                table, where, args = self._where(log, consumer, since_ms, until_ms, level)
                if after_seq is not None:  # the cursor entry is gone (ring, retention)
                    where.append("seq > ?")
                    args.append(int(after_seq))
            sql = f"SELECT {cols} FROM {table}"
            if where:
                sql += " WHERE " + " AND ".join(where)
            sql += " ORDER BY ts_ms, seq LIMIT ?"
            rows = conn.execute(sql, (*args, limit + 1)).fetchall()
        entries = [self._entry(r, consumer, signed) for r in rows[:limit]]
        return Page(entries, entries[-1].seq if len(rows) > limit else None)

    def consumers(self) -> list[str]:
        """The consumers that have a log."""
        rows = self._read("consumers", "SELECT log FROM counters WHERE log LIKE 'consumer:%' "
                                       "ORDER BY log")
        return [r[0][len("consumer:"):] for r in rows]

    def head(self) -> Head | None:
        """The signed head of the calibration log."""
        with self._snapshot("head") as conn:
            return self._head_in_tx(conn)

    def _iter_seq_order(self, conn: sqlite3.Connection, log_: str, consumer: str | None,
                        since_ms: int | None, until_ms: int | None, level: str | None,
                        after_seq: int | None, limit: int | None) -> Iterator[Entry]:
        table, where, args = self._where(log_, consumer, since_ms, until_ms, level)
        signed = log_ == "calibration"
        if after_seq is not None:
            where.append("seq > ?")
            args.append(int(after_seq))
        sql = f"SELECT {_COLS}{', hash, sig' if signed else ''} FROM {table}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        cur = conn.execute(sql, args)
        while True:
            rows = cur.fetchmany(2000)
            if not rows:
                return
            for r in rows:
                yield self._entry(r, consumer, signed)

    # ------------------------------------------------------------------ verification, export

    def verify_calibration(self, signatures: bool = True) -> VerifyResult:
        """Check the whole calibration log in the database: chain from h_0, every signature
        (0.4 ms each; ``signatures=False`` relies on the chain up to the signed head) and the
        head. For the self-test and ``smgw`` diagnostics."""
        with self._snapshot("verify calibration log") as conn:
            head = self._head_in_tx(conn)
            return _chain.verify(
                self._iter_seq_order(conn, "calibration", None, None, None, None, None, None),
                head, self._verifier, self.gateway_id, signatures=signatures)

    def export_csv(self, log: str, out: TextIO, *, consumer: str | None = None,
                   since_ms: int | None = None, until_ms: int | None = None,
                   level: str | None = None, after_seq: int | None = None,
                   limit: int | None = None) -> int:
        """Write the selected entries (in seq order) as CSV to ``out``; returns the rows
        written. Format: docs/logbooks.md; check it with :func:`smgw.logbook.export.
        verify_export` or ``smgw verify-log``."""
        from . import export as _export

        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 1):
            raise ValueError(f"limit must be a positive integer, not {limit!r}")
        selection = {"since_ms": since_ms, "until_ms": until_ms, "level": level,
                     "after_seq": after_seq, "limit": limit}
        with self._snapshot("export") as conn:
            head = self._head_in_tx(conn) if log == "calibration" else None

            def prev_hash(seq: int) -> bytes:
                if seq == 1:
                    return _chain.genesis(self.gateway_id)
                row = conn.execute("SELECT hash FROM calibration_log WHERE seq = ?",
                                   (seq - 1,)).fetchone()
                return bytes(row[0]) if row else b""

            return _export.write_export(
                out, log, self.gateway_id,
                self._iter_seq_order(conn, log, consumer, since_ms, until_ms, level, after_seq,
                                     limit),
                signer=self.signer, head=head, consumer=consumer, selection=selection,
                prev_hash=prev_hash if log == "calibration" else None,
                exported_ms=int(self.clock()))

    @staticmethod
    def verify_export(csv_text: str, cert_pem: bytes | str, gateway_id: str) -> VerifyResult:
        """See :func:`smgw.logbook.export.verify_export`."""
        from .export import verify_export

        return verify_export(csv_text, cert_pem, gateway_id)

    def integrity_check(self) -> list[str]:
        """``PRAGMA quick_check`` of the file; ['ok'] when healthy."""
        try:
            return [str(r[0]) for r in self._c().execute("PRAGMA quick_check").fetchall()]
        except sqlite3.DatabaseError as exc:
            return [str(exc)]

    # ------------------------------------------------------------------ usage

    def usage(self) -> dict[str, Any]:
        """Entries, capacity and fill level per log, and the file and store figures."""
        used, remaining = self.store_usage()
        with self._snapshot("usage") as conn:
            rows = conn.execute("SELECT log, first_seq, last_seq, deleted FROM counters "
                                "ORDER BY log").fetchall()
            states = {k[len("thresholds:"):]: v for k, v in conn.execute(
                "SELECT key, value FROM meta WHERE key LIKE 'thresholds:%'")}
        out: dict[str, Any] = {
            "file_bytes": used,
            "store_bytes": self.limits.store_bytes,
            "store_remaining_pct": round(remaining * 100.0 / self.limits.store_bytes, 1),
            "consumers": {},
        }
        for key, first, last, deleted in rows:
            cap = self._capacity(key)
            n = max(0, last - first + 1)
            try:
                state = json.loads(states.get(key) or "{}")
            except ValueError:
                state = {}
            d = {"entries": n, "capacity": cap, "fill_pct": round(n * 100.0 / cap, 1),
                 "first_seq": first, "last_seq": last, "deleted": deleted,
                 "full": bool(state.get("full"))}
            if key.startswith("consumer:"):
                out["consumers"][key[len("consumer:"):]] = d
            else:
                out[key] = d
        out["system"]["overwritten"] = out["system"]["deleted"]
        return out


def _describe(event_id: int, params: dict[str, Any]) -> tuple[str, str, tuple[str, ...]]:
    """(level, German text, logs) of a capacity message, from the catalogue."""
    try:
        from . import catalogue as _cat

        ev = _cat.event(event_id)
        return ev.level, ev.format(**params), tuple(sorted(ev.logs))
    except (ImportError, KeyError, AttributeError):  # pragma: no cover - catalogue missing
        text = f"Logbuch-Meldung {event_id}: " + ", ".join(
            f"{k}={v}" for k, v in sorted(params.items()))
        logs: tuple[str, ...] = ("system",)
        if event_id in (EV_CAL_INFO, EV_CAL_WARN, EV_CAL_FULL, EV_STORE_FULL):
            logs = ("calibration", "system")
        if "consumer" in params:
            logs = ("consumer", "system")
        return _LEVEL_OF.get(event_id, "INFO"), text, logs

