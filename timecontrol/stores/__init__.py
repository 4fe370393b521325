"""Durable stores. `SQLiteLog` keeps the Log's events in a SQLite file (the default store).

`SQLiteLog(path)` writes (one writer per file, `StoreLockedError` for a second one);
`SQLiteLog(path, readonly=True)` and `read_events(path)` only read, even while a writer runs.
"""

from __future__ import annotations

from .._exceptions import (
    StoreCorruptError,
    StoreError,
    StoreForeignError,
    StoreLockedError,
    StoreReadOnlyError,
    StoreVersionError,
)
from ._sqlite import SCHEMA_VERSION, SEQ_BLOCK, SQLiteLog, read_events

__all__ = [
    "SCHEMA_VERSION",
    "SEQ_BLOCK",
    "SQLiteLog",
    "StoreCorruptError",
    "StoreError",
    "StoreForeignError",
    "StoreLockedError",
    "StoreReadOnlyError",
    "StoreVersionError",
    "read_events",
]
