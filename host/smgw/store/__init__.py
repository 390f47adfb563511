"""Durable SQLite store of the gateway (see :mod:`smgw.store.db`)."""

from .db import (
    HelloRecord,
    MeterRow,
    ReadingRow,
    Store,
    StoredRecord,
    StoreError,
    StoreFullError,
    StoreIntegrityError,
)
from .migrations import MIGRATIONS, Migration

__all__ = [
    "MIGRATIONS",
    "HelloRecord",
    "MeterRow",
    "ReadingRow",
    "Migration",
    "Store",
    "StoreError",
    "StoreFullError",
    "StoreIntegrityError",
    "StoredRecord",
]
