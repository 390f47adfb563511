"""Schema migrations for the gateway store.

Each migration is ``(version, name, step)`` where ``step`` is either SQL text
(one or more statements) or a callable ``step(conn: sqlite3.Connection)``.
Migrations run in version order, each inside its own ``BEGIN IMMEDIATE``
transaction together with the row recording it in ``schema_migrations``, so a
migration is either fully applied or not at all.

Rules: never edit a released migration; append a new one with the next
version number.  Versions are contiguous, starting at 1.
"""

from __future__ import annotations

import sqlite3
from typing import Callable, NamedTuple, Union

Step = Union[str, Callable[[sqlite3.Connection], None]]


class Migration(NamedTuple):
    version: int
    name: str
    step: Step


# Created outside the migration list (it is what records the migrations).
SCHEMA_MIGRATIONS_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT,
    applied_ms INTEGER
)
"""

_V1_INITIAL = """
-- Per peer stream: the highest durable record id already stored
-- (receive-side dedup across restarts).
CREATE TABLE link_cursor (
    stream     INTEGER PRIMARY KEY,
    last_rid   INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);

-- Raw captures from the firmware, written once.
CREATE TABLE records (
    id          INTEGER PRIMARY KEY,
    stream      INTEGER NOT NULL,
    rid         INTEGER NOT NULL,
    src         INTEGER NOT NULL,
    tick_ms     INTEGER,
    captured_ms INTEGER,
    received_ms INTEGER NOT NULL,
    body        BLOB NOT NULL,
    meta        BLOB,
    UNIQUE (stream, rid)
);

-- Durable host->firmware messages, kept until the firmware acknowledges them.
CREATE TABLE host_outbox (
    rid        INTEGER PRIMARY KEY AUTOINCREMENT,
    payload    BLOB NOT NULL,
    created_ms INTEGER NOT NULL
);

-- Small facts such as the host's own stream id.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB
);

-- Each firmware hello seen (files = CBOR map name -> sha256 bytes).
CREATE TABLE fw_hello (
    id           INTEGER PRIMARY KEY,
    seen_ms      INTEGER NOT NULL,
    stream       INTEGER,
    fw_version   TEXT,
    board        TEXT,
    boot_counter INTEGER,
    files        BLOB
);

-- Host-side linktest receiver counters.
CREATE TABLE linktest_rx (
    stream       INTEGER PRIMARY KEY,
    received     INTEGER NOT NULL,
    last_n       INTEGER NOT NULL,
    out_of_order INTEGER NOT NULL,
    bad_data     INTEGER NOT NULL
);
"""

_V2_METERS = """
-- Meter profiles: which meters the gateway accepts values from, and how to read them.
CREATE TABLE meters (
    id           INTEGER PRIMARY KEY,
    meter_id     TEXT NOT NULL UNIQUE,   -- the meter's server id, lower-case hex
    interface    TEXT NOT NULL,          -- 'lmn-wired' | 'lmn-wireless'
    protocol     TEXT NOT NULL,          -- 'sml' | ...
    obis         TEXT NOT NULL,          -- JSON list of OBIS channels kept; [] keeps all
    period_s     INTEGER,                -- expected sample period
    key          BLOB,                   -- meter key, where the protocol needs one
    created_ms   INTEGER NOT NULL,
    removed_ms   INTEGER                 -- set when removed; its values stay
);

-- The original measured-value list: one row per value a meter sent, written once, in the same
-- transaction as the record it came in and the link cursor that acknowledges it.
CREATE TABLE readings (
    id           INTEGER PRIMARY KEY,
    meter        INTEGER NOT NULL REFERENCES meters(id),
    record       INTEGER NOT NULL REFERENCES records(id),
    obis         TEXT NOT NULL,
    raw          TEXT NOT NULL,          -- the integer as sent (text: SML allows 64-bit unsigned)
    scaler       INTEGER,
    unit         TEXT,
    status       INTEGER,
    capture_ms   INTEGER,                -- when the front-end captured the frame (unix ms)
    receipt_ms   INTEGER NOT NULL,       -- when the host stored it
    time_valid   INTEGER NOT NULL DEFAULT 1,
    UNIQUE (record, obis)
);
CREATE INDEX readings_by_meter ON readings (meter, obis, capture_ms);
"""

_V3_LMN_SECURITY = """
-- TR-03109 LMN meters (docs/lmn-wired.md): the meter's pinned LMN certificate (DER), learnt at
-- pairing or entered with the profile. meters.key holds the pairing key, replaced by the
-- operational key after the first pairing.
ALTER TABLE meters ADD COLUMN lmn_cert BLOB;
"""

_V4_WMBUS_COUNTERS = """
-- Wireless meters (wM-Bus/OMS): the highest transmission counter (AFL MCR, mode 7) or the last
-- access number (mode 5) accepted per meter, written in the same transaction as the values it
-- let through, so a replayed telegram is rejected across restarts (10264).
ALTER TABLE meters ADD COLUMN rx_counter INTEGER;
ALTER TABLE meters ADD COLUMN rx_access INTEGER;
"""

MIGRATIONS: list[Migration] = [
    Migration(1, "initial schema", _V1_INITIAL),
    Migration(2, "meter profiles and original measured values", _V2_METERS),
    Migration(3, "pinned LMN certificates of wired meters", _V3_LMN_SECURITY),
    Migration(4, "replay counters of wireless meters", _V4_WMBUS_COUNTERS),
]


def latest_version(migrations: list[Migration] | None = None) -> int:
    ms = MIGRATIONS if migrations is None else migrations
    return ms[-1].version if ms else 0


def check_migrations(migrations: list[Migration]) -> None:
    """Raise ValueError unless versions are 1, 2, 3, ... in order."""
    for i, m in enumerate(migrations, start=1):
        if m.version != i:
            raise ValueError(f"migration #{i} has version {m.version}; expected {i}")
        if not (isinstance(m.step, str) or callable(m.step)):
            raise ValueError(f"migration {m.version} step must be SQL text or a callable")


def split_sql(script: str) -> list[str]:
    """Split SQL text into complete statements (sqlite3.complete_statement aware).

    Needed because ``Connection.executescript`` would COMMIT our open transaction.
    """
    statements: list[str] = []
    buf: list[str] = []
    for ch in script:
        buf.append(ch)
        if ch == ";":
            candidate = "".join(buf)
            if sqlite3.complete_statement(candidate):
                if _strip_comments(candidate).strip(" \t\r\n;"):
                    statements.append(candidate.strip())
                buf = []
    rest = "".join(buf)
    if _strip_comments(rest).strip():
        statements.append(rest.strip())
    return statements


def _strip_comments(sql: str) -> str:
    lines = []
    for line in sql.splitlines():
        if line.lstrip().startswith("--"):
            continue
        lines.append(line)
    return "\n".join(lines)


check_migrations(MIGRATIONS)
