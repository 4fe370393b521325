"""Durable stores. `SQLiteLog` keeps the Log's events in a SQLite file (the default store)."""

from __future__ import annotations

from ._sqlite import SCHEMA_VERSION, SQLiteLog, read_events

__all__ = ["SCHEMA_VERSION", "SQLiteLog", "read_events"]
