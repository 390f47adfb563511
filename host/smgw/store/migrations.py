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

_V5_TARIFFS = """
-- Evaluation profiles (Auswerteprofile) and communication profiles of market participants, as
-- loaded (docs/tariffs.md). A change replaces body/source and bumps version; a removed profile
-- keeps its row (removed_ms) so the values it formed stay explained.
CREATE TABLE tariff_profiles (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,          -- 'evaluation' | 'communication'
    taf         INTEGER,                -- evaluation profiles: 1, 2, 6, 7, 9, 10, 14
    consumer    TEXT,                   -- evaluation profiles: the consumer (LV) it belongs to
    body        TEXT NOT NULL,          -- canonical JSON of the validated profile
    source      TEXT NOT NULL,          -- the profile text as loaded
    version     INTEGER NOT NULL,
    active      INTEGER NOT NULL DEFAULT 0,
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL,
    removed_ms  INTEGER
);

-- Values formed by the tariff application cases. Forming is idempotent: the unique key is what
-- the value stands for, so forming a period again after a crash inserts nothing twice.
CREATE TABLE derived_values (
    id              INTEGER PRIMARY KEY,
    profile         TEXT NOT NULL,
    taf             INTEGER NOT NULL,
    register        TEXT NOT NULL,      -- OBIS of the register (1-0:1.8.1 = stage 1, E=63 error)
    owner           TEXT NOT NULL,      -- meter id (readings) or profile name (computed)
    period_start_ms INTEGER NOT NULL,
    period_end_ms   INTEGER NOT NULL,
    target_ms       INTEGER NOT NULL,
    capture_ms      INTEGER,
    value           TEXT NOT NULL,      -- integer as text (64-bit unsigned registers exist)
    scaler          INTEGER NOT NULL,
    unit            TEXT NOT NULL,
    status          INTEGER NOT NULL,   -- SMGW status word
    meter_status    INTEGER,
    time_valid      INTEGER NOT NULL,
    billing         INTEGER NOT NULL,
    stage           INTEGER,
    kind            TEXT NOT NULL,
    sources         TEXT NOT NULL,      -- JSON list of contributing meters
    signature       BLOB,               -- gateway value signature (r||s), billing values only
    created_ms      INTEGER NOT NULL,
    UNIQUE (profile, register, owner, target_ms)
);
CREATE INDEX derived_by_profile ON derived_values (profile, target_ms);

-- Per evaluation profile: how far the engine has formed and sent (JSON), moved in the same
-- transaction as the values and deliveries it covers.
CREATE TABLE tariff_state (
    profile TEXT PRIMARY KEY,
    state   TEXT NOT NULL
);

-- Protected messages for market participants, kept until the recipient acknowledged them.
-- message_id is derived from what the message covers, so forming it again is a no-op and the
-- receiver can drop a retransmission it already has.
CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY,
    message_id      TEXT NOT NULL UNIQUE,
    profile         TEXT NOT NULL,
    comm_profile    TEXT NOT NULL,
    period_start_ms INTEGER,
    period_end_ms   INTEGER,
    n_values        INTEGER NOT NULL,
    content         BLOB NOT NULL,      -- CMS: SignedData(AuthEnvelopedData(payload))
    created_ms      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    last_error      TEXT,
    failure_logged  INTEGER NOT NULL DEFAULT 0,
    delivered_ms    INTEGER
);
CREATE INDEX deliveries_due ON deliveries (delivered_ms, next_attempt_ms);
"""

MIGRATIONS: list[Migration] = [
    Migration(1, "initial schema", _V1_INITIAL),
    Migration(2, "meter profiles and original measured values", _V2_METERS),
    Migration(3, "pinned LMN certificates of wired meters", _V3_LMN_SECURITY),
    Migration(4, "replay counters of wireless meters", _V4_WMBUS_COUNTERS),
    Migration(5, "evaluation profiles, derived values and deliveries", _V5_TARIFFS),
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
