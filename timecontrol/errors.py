"""Every exception timecontrol raises, in one place.

All derive from `TimeControlError`; each names the bad value and what is accepted. Catch
`TimeControlError` to catch them all, or one class for one kind of mistake.
"""

from __future__ import annotations

from ._exceptions import (
    ClockError,
    EngineStateError,
    EventKindError,
    EventPayloadError,
    LogError,
    NaiveDatetimeError,
    StoreCorruptError,
    StoreError,
    StoreForeignError,
    StoreLockedError,
    StoreReadOnlyError,
    StoreVersionError,
    TimeControlError,
    UnknownActionError,
)
from .limiters import (
    LimiterConfigError,
    LimiterError,
    NotAsyncError,
    OverTimeLimit,
    SafetyActionError,
    UnderTimeLimit,
    WatchdogStateError,
)
from .plans import (
    IllegalMessageSequence,
    PauseHeldError,
    PlanArgumentError,
    RequestAbort,
    RequestStop,
    StatusFailed,
    UnknownCommandError,
)
from .scheduler import (
    ActionNotAllowedError,
    DuplicateJobError,
    JobArgumentsError,
    JobNotFoundError,
    JobOptionError,
    JobSpecError,
    PolicyError,
    SchedulerError,
    SchedulerLockedError,
)
from .triggers import (
    CronSyntaxError,
    IntervalError,
    TimePointError,
    TriggerError,
    UnknownTimeZoneError,
    WindowError,
)

__all__ = [
    "ActionNotAllowedError",
    "ClockError",
    "CronSyntaxError",
    "DuplicateJobError",
    "EngineStateError",
    "EventKindError",
    "EventPayloadError",
    "IllegalMessageSequence",
    "IntervalError",
    "JobArgumentsError",
    "JobNotFoundError",
    "JobOptionError",
    "JobSpecError",
    "LimiterConfigError",
    "LimiterError",
    "LogError",
    "NaiveDatetimeError",
    "NotAsyncError",
    "OverTimeLimit",
    "PauseHeldError",
    "PlanArgumentError",
    "PolicyError",
    "RequestAbort",
    "RequestStop",
    "SafetyActionError",
    "SchedulerError",
    "SchedulerLockedError",
    "StatusFailed",
    "StoreCorruptError",
    "StoreError",
    "StoreForeignError",
    "StoreLockedError",
    "StoreReadOnlyError",
    "StoreVersionError",
    "TimeControlError",
    "TimePointError",
    "TriggerError",
    "UnderTimeLimit",
    "UnknownActionError",
    "UnknownCommandError",
    "UnknownTimeZoneError",
    "WatchdogStateError",
    "WindowError",
]
