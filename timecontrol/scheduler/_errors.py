"""Errors raised by the scheduler.

Every class derives from `TimeControlError`; the ones that reject a bad value also derive from
`ValueError` (or `LookupError` for a missing job), so callers can catch them either way.
Messages name the bad value and what would have been accepted.
"""

from __future__ import annotations

from .._exceptions import EventPayloadError, StoreError, TimeControlError

__all__ = [
    "DuplicateJobError",
    "JobArgumentsError",
    "JobNotFoundError",
    "JobSpecError",
    "PolicyError",
    "SchedulerError",
    "SchedulerLockedError",
]


class SchedulerError(TimeControlError):
    """Base class of every scheduler error."""


class JobSpecError(SchedulerError, ValueError):
    """A job definition with a bad field (id, trigger, timeout, window, ...)."""


class PolicyError(JobSpecError):
    """An unknown policy name (conflict, coalesce) or a bad policy value (max_queue, grace)."""


class JobArgumentsError(JobSpecError, EventPayloadError):
    """Job keyword arguments that are not JSON (jobs are persisted; nothing is pickled)."""


class DuplicateJobError(SchedulerError, ValueError):
    """A job id that is already in use, added without ``replace_existing=True``."""


class JobNotFoundError(SchedulerError, LookupError):
    """No job with the given id."""


class SchedulerLockedError(SchedulerError, StoreError):
    """Another process already schedules jobs from the same SQLite file."""
