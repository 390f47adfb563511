"""Evaluation and communication profiles, derived values and the engine's progress, in the
gateway's database (tables of store migration 5).

:class:`TariffStore` works on the same SQLite file as :class:`smgw.store.Store` and uses its
transactions: every public write is one transaction of its own, or joins an open one when
``conn`` is given (``with store._write("tariff-tick") as conn: ...``), so derived values, the
engine's state and the deliveries that carry them become durable together or not at all.

Forming is idempotent: a derived value is unique by what it stands for
(:meth:`DerivedValue.key`: profile, register, owner, target time), and ``put_values`` inserts a
value that exists already as nothing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from smgw.store import Store
from smgw.tariff.model import DerivedValue

__all__ = ["StoredProfile", "StoredValue", "TariffStore"]

KINDS = ("evaluation", "communication")

_VALUE_COLS = ("id, profile, taf, register, owner, period_start_ms, period_end_ms, target_ms, "
               "capture_ms, value, scaler, unit, status, meter_status, time_valid, billing, "
               "stage, kind, sources, signature, created_ms")


@dataclass(frozen=True)
class StoredProfile:
    """A loaded profile as stored: the validated profile, the text it was loaded from, and its
    life cycle (version counts changes; ``active`` is the engine's validity decision)."""

    name: str
    kind: str                   # "evaluation" | "communication"
    taf: int | None
    consumer: str | None
    version: int
    active: bool
    created_ms: int
    updated_ms: int
    removed_ms: int | None
    profile: Any                # EvaluationProfile | CommunicationProfile
    source: str


@dataclass(frozen=True)
class StoredValue:
    id: int
    value: DerivedValue
    signature: bytes | None
    created_ms: int


def profile_kind(p: Any) -> str:
    """'evaluation' or 'communication' for a profile object of :mod:`smgw.tariff.profile`."""
    from smgw.tariff.profile import CommunicationProfile, EvaluationProfile

    if isinstance(p, EvaluationProfile):
        return "evaluation"
    if isinstance(p, CommunicationProfile):
        return "communication"
    raise TypeError(f"not a profile: {type(p).__name__}")


def canonical_json(p: Any) -> str:
    """The canonical JSON text of a profile (what tells a change from a reload)."""
    return json.dumps(p.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _profile_from(kind: str, body: str) -> Any:
    from smgw.tariff.profile import CommunicationProfile, EvaluationProfile

    cls = EvaluationProfile if kind == "evaluation" else CommunicationProfile
    return cls.from_json(json.loads(body))


class TariffStore:
    """Profiles, derived values and per-profile state over a :class:`Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @contextmanager
    def _tx(self, what: str, conn: sqlite3.Connection | None) -> Iterator[sqlite3.Connection]:
        # join the caller's transaction, or open one of our own
        if conn is not None:
            if not conn.in_transaction:
                raise ValueError(f"{what}: conn must be an open transaction of the store")
            yield conn
            return
        with self.store._write(what) as own:
            yield own

    # ------------------------------------------------------------------ profiles

    def put_profile(self, p: Any, source: str, now_ms: int) -> tuple[str, int]:
        """Stores a validated profile under its name: ("added" | "changed" | "unchanged",
        version). A profile that was removed comes back as "added" with the next version.
        A name is either an evaluation or a communication profile, never both at once."""
        kind = profile_kind(p)
        body = canonical_json(p)
        taf = getattr(p, "taf", None) if kind == "evaluation" else None
        consumer = getattr(p, "consumer", None) if kind == "evaluation" else None
        with self.store._write("put_profile") as conn:
            row = conn.execute(
                "SELECT id, kind, body, version, removed_ms FROM tariff_profiles WHERE name=?",
                (p.name,)).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO tariff_profiles(name, kind, taf, consumer, body, source, "
                    "version, active, created_ms, updated_ms) VALUES (?,?,?,?,?,?,1,0,?,?)",
                    (p.name, kind, taf, consumer, body, source, now_ms, now_ms))
                return "added", 1
            rid, old_kind, old_body, version, removed = row
            if removed is None and old_kind != kind:
                raise ValueError(f"name: {p.name!r} is already a {old_kind} profile")
            if removed is None and old_body == body:
                return "unchanged", int(version)
            version = int(version) + 1
            if removed is not None:
                conn.execute(
                    "UPDATE tariff_profiles SET kind=?, taf=?, consumer=?, body=?, source=?, "
                    "version=?, active=0, created_ms=?, updated_ms=?, removed_ms=NULL "
                    "WHERE id=?", (kind, taf, consumer, body, source, version, now_ms, now_ms,
                                   rid))
                return "added", version
            conn.execute(
                "UPDATE tariff_profiles SET taf=?, consumer=?, body=?, source=?, version=?, "
                "updated_ms=? WHERE id=?", (taf, consumer, body, source, version, now_ms, rid))
            return "changed", version

    def remove_profile(self, name: str, now_ms: int) -> bool:
        """Marks a profile removed (its row and the values it formed stay); False if there
        is no such profile."""
        with self.store._write("remove_profile") as conn:
            cur = conn.execute(
                "UPDATE tariff_profiles SET removed_ms=?, active=0, updated_ms=? "
                "WHERE name=? AND removed_ms IS NULL", (now_ms, now_ms, name))
            return cur.rowcount > 0

    def set_active(self, name: str, active: bool) -> None:
        with self.store._write("set_active") as conn:
            conn.execute("UPDATE tariff_profiles SET active=? WHERE name=? AND removed_ms IS NULL",
                         (1 if active else 0, name))

    def profiles(self, kind: str | None = None, consumer: str | None = None,
                 include_removed: bool = False) -> list[StoredProfile]:
        """Stored profiles by name; removed ones only with ``include_removed``."""
        if kind is not None and kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        where, params = [], []
        if kind is not None:
            where.append("kind=?")
            params.append(kind)
        if consumer is not None:
            where.append("consumer=?")
            params.append(consumer)
        if not include_removed:
            where.append("removed_ms IS NULL")
        sql = ("SELECT name, kind, taf, consumer, version, active, created_ms, updated_ms, "
               "removed_ms, body, source FROM tariff_profiles")
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self.store._read("profiles", sql + " ORDER BY name", tuple(params))
        return [self._profile_row(r) for r in rows]

    def profile(self, name: str) -> StoredProfile | None:
        """The profile of that name, also a removed one (check ``removed_ms``)."""
        rows = self.store._read(
            "profile",
            "SELECT name, kind, taf, consumer, version, active, created_ms, updated_ms, "
            "removed_ms, body, source FROM tariff_profiles WHERE name=?", (name,))
        return self._profile_row(rows[0]) if rows else None

    @staticmethod
    def _profile_row(r: tuple[Any, ...]) -> StoredProfile:
        name, kind, taf, consumer, version, active, created, updated, removed, body, source = r
        return StoredProfile(name=name, kind=kind, taf=taf, consumer=consumer,
                             version=int(version), active=bool(active), created_ms=int(created),
                             updated_ms=int(updated), removed_ms=removed,
                             profile=_profile_from(kind, body), source=source)

    # ------------------------------------------------------------------ derived values

    def put_values(self, values: Sequence[tuple[DerivedValue, bytes | None]], now_ms: int,
                   conn: sqlite3.Connection | None = None) -> int:
        """Stores derived values with their signatures; a value whose key exists already is
        left as it is (forming again after a crash doubles nothing). Returns how many were
        new."""
        n = 0
        with self._tx("put_values", conn) as c:
            for v, sig in values:
                cur = c.execute(
                    "INSERT OR IGNORE INTO derived_values(profile, taf, register, owner, "
                    "period_start_ms, period_end_ms, target_ms, capture_ms, value, scaler, unit, "
                    "status, meter_status, time_valid, billing, stage, kind, sources, signature, "
                    "created_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (v.profile, v.taf, v.register, v.owner, v.period_start_ms, v.period_end_ms,
                     v.target_ms, v.capture_ms, str(int(v.value)), v.scaler, v.unit, v.status,
                     v.meter_status, 1 if v.time_valid else 0, 1 if v.billing else 0, v.stage,
                     v.kind, json.dumps(list(v.sources)),
                     None if sig is None else bytes(sig), now_ms))
                n += cur.rowcount
        return n

    def values(self, profile: str, from_ms: int | None = None, to_ms: int | None = None,
               register: str | None = None, limit: int | None = None,
               newest_first: bool = False) -> list[StoredValue]:
        """Values of a profile with ``from_ms <= target_ms < to_ms``, in target time order
        (then register, owner)."""
        where, params = ["profile=?"], [profile]
        if from_ms is not None:
            where.append("target_ms >= ?")
            params.append(from_ms)
        if to_ms is not None:
            where.append("target_ms < ?")
            params.append(to_ms)
        if register is not None:
            where.append("register=?")
            params.append(register)
        order = "DESC" if newest_first else "ASC"
        sql = (f"SELECT {_VALUE_COLS} FROM derived_values WHERE {' AND '.join(where)} "
               f"ORDER BY target_ms {order}, register {order}, owner {order}")
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [self._value_row(r) for r in self.store._read("values", sql, tuple(params))]

    @staticmethod
    def _value_row(r: tuple[Any, ...]) -> StoredValue:
        (vid, profile, taf, register, owner, ps, pe, target, capture, value, scaler, unit,
         status, meter_status, time_valid, billing, stage, kind, sources, sig, created) = r
        v = DerivedValue(profile=profile, taf=int(taf), register=register, owner=owner,
                         period_start_ms=int(ps), period_end_ms=int(pe), target_ms=int(target),
                         value=int(value), scaler=int(scaler), unit=unit, status=int(status),
                         meter_status=meter_status, capture_ms=capture,
                         time_valid=bool(time_valid), billing=bool(billing), stage=stage,
                         kind=kind, sources=tuple(json.loads(sources)))
        return StoredValue(id=int(vid), value=v, signature=None if sig is None else bytes(sig),
                           created_ms=int(created))

    def periods(self, profile: str) -> list[tuple[int, int]]:
        """The distinct (period_start_ms, period_end_ms) a profile formed values for."""
        rows = self.store._read(
            "periods",
            "SELECT DISTINCT period_start_ms, period_end_ms FROM derived_values WHERE profile=? "
            "ORDER BY period_start_ms, period_end_ms", (profile,))
        return [(int(a), int(b)) for a, b in rows]

    def prune(self, profile: str, before_ms: int, conn: sqlite3.Connection | None = None
              ) -> int:
        """Deletes a profile's values with ``target_ms < before_ms`` (TAF 6 retention);
        returns how many."""
        with self._tx("prune", conn) as c:
            return c.execute("DELETE FROM derived_values WHERE profile=? AND target_ms < ?",
                             (profile, before_ms)).rowcount

    # ------------------------------------------------------------------ engine state

    def state(self, profile: str) -> dict[str, Any]:
        """The engine's progress for a profile ({} before the first tick)."""
        rows = self.store._read("state", "SELECT state FROM tariff_state WHERE profile=?",
                                (profile,))
        return json.loads(rows[0][0]) if rows else {}

    def set_state(self, profile: str, state: dict[str, Any],
                  conn: sqlite3.Connection | None = None) -> None:
        text = json.dumps(state, sort_keys=True, separators=(",", ":"))
        with self._tx("set_state", conn) as c:
            c.execute("INSERT INTO tariff_state(profile, state) VALUES (?, ?) "
                      "ON CONFLICT(profile) DO UPDATE SET state=excluded.state", (profile, text))
