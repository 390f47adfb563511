"""Durable SQLite store of the gateway (see :mod:`smgw.store.db`)."""

from .db import (
    HelloRecord,
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
    "Migration",
    "Store",
    "StoreError",
    "StoreFullError",
    "StoreIntegrityError",
    "StoredRecord",
]
