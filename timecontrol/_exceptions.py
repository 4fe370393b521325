"""The exception hierarchy: every error timecontrol raises derives from `TimeControlError`.

Messages name the offending value and say what would have been accepted, so that a
scientist reading a traceback at 3 a.m. knows what to change without opening the source.
"""

from __future__ import annotations

__all__ = [
    "ClockError",
    "EngineStateError",
    "EventKindError",
    "EventPayloadError",
    "LogError",
    "NaiveDatetimeError",
    "StoreCorruptError",
    "StoreError",
    "StoreForeignError",
    "StoreLockedError",
    "StoreReadOnlyError",
    "StoreVersionError",
    "TimeControlError",
    "UnknownActionError",
]


class TimeControlError(Exception):
    """Base class of every error raised by timecontrol."""


class NaiveDatetimeError(TimeControlError, ValueError):
    """A naive `datetime` was given where an aware one (with a tzinfo) is required."""


class ClockError(TimeControlError):
    """A clock was used outside the context it belongs to (e.g. no running event loop)."""


class EventKindError(TimeControlError, ValueError):
    """An event kind that is not registered (in code, or read back from a file)."""


class EventPayloadError(TimeControlError, TypeError):
    """An event payload that cannot be represented as JSON."""


class LogError(TimeControlError):
    """The Log was used in a way it does not support (e.g. appending after close)."""


class StoreError(TimeControlError):
    """A durable store could not be opened, read or written."""


class StoreVersionError(StoreError):
    """A store file was written by a newer (or unknown) schema version; it is left untouched."""


class StoreLockedError(StoreError):
    """Another writer (in this process or another) already has the store file open.

    One writer per file: a second one would reuse sequence numbers and run jobs twice. The
    file is identified by what it is, not by its name, so a symlink, a relative path or a
    hard link reaches the same lock. Readers (``readonly=True``) never take it.
    """


class StoreCorruptError(StoreError):
    """A store file is damaged: not a SQLite file, truncated, failing SQLite's checks, a
    timecontrol table with the wrong columns, or a stored row that cannot be read back.

    A damaged file is refused before anything is written to it; its bytes are left as they
    were.
    """


class StoreForeignError(StoreError):
    """A SQLite file that another program made (another application id, or tables without
    timecontrol's schema); it is refused and left untouched."""


class StoreReadOnlyError(StoreError):
    """Work that would write was asked of a store opened read-only."""


class UnknownActionError(TimeControlError, LookupError):
    """An action name that is not registered with the engine."""


class EngineStateError(TimeControlError, RuntimeError):
    """An engine operation that is not allowed in the engine's current state."""
