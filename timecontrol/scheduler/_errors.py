"""Errors raised by the scheduler.

Every class derives from `TimeControlError`; the ones that reject a bad value also derive from
`ValueError` (or `LookupError` for a missing job, `TypeError` for a keyword that does not
exist), so callers can catch them either way. Messages name the bad value and what would have
been accepted.
"""

from __future__ import annotations

from .._exceptions import (
    EventPayloadError,
    StoreLockedError,
    TimeControlError,
    UnknownActionError,
)

__all__ = [
    "ActionNotAllowedError",
    "DuplicateJobError",
    "ExecutionNotFoundError",
    "JobArgumentsError",
    "JobNotFoundError",
    "JobOptionError",
    "JobSpecError",
    "PolicyError",
    "SchedulerError",
    "SchedulerLockedError",
    "UnknownHookError",
]


class SchedulerError(TimeControlError):
    """Base class of every scheduler error."""


class JobSpecError(SchedulerError, ValueError):
    """A job definition with a bad field (id, trigger, timeout, window, ...)."""


class PolicyError(JobSpecError):
    """An unknown policy name (conflict, coalesce) or a bad policy value (max_queue, grace)."""


class JobArgumentsError(JobSpecError, EventPayloadError):
    """Job keyword arguments that are not JSON (jobs are persisted; nothing is pickled), or
    that the action's signature does not accept."""


class JobOptionError(JobSpecError, TypeError):
    """A keyword that `add_job` / `update_job` does not have (a misspelt option)."""


class ActionNotAllowedError(SchedulerError, UnknownActionError):
    """A ``"module:qualname"`` action outside the scheduler's `allowed_modules`.

    Such a reference is never imported: a job store must not make the process import code.
    """


class DuplicateJobError(SchedulerError, ValueError):
    """A job id that is already in use, added without ``replace_existing=True``."""


class JobNotFoundError(SchedulerError, LookupError):
    """No job with the given id."""


class ExecutionNotFoundError(SchedulerError, LookupError):
    """No execution record with the given id (never recorded, or deleted by retention)."""


class UnknownHookError(JobSpecError, LookupError):
    """A profile or hook name that is not registered (nor an allowed 'module:qualname')."""


#: Another process (or engine) already writes to the same store file. The store's own writer
#: lock (`StoreLockedError`, held by every `SQLiteLog` that writes) took over from the
#: scheduler's lock file; this is that class under its old name, for code that catches it.
SchedulerLockedError = StoreLockedError
