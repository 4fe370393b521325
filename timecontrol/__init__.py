"""timecontrol: run lab experiments on time.

Async instrument coroutines run at time points, on cron and calendar schedules, no more often
than an instrument allows and no less often than a watchdog demands, inside an engine that can
pause, resume and panic; everything that happens is an immutable event in the Log.

The public face is this module (plus `timecontrol.testing`, `timecontrol.stores` and
`timecontrol.drivers`); everything else is private.
"""

from __future__ import annotations

import importlib

from ._clock import Clock, SystemClock, current_clock, ensure_aware, use_clock
from ._engine import Action, Engine, current_engine, jsonable
from ._events import EVENT_SCHEMA_VERSION, Event, EventKind, known_kinds, register_kind
from ._exceptions import (
    ClockError,
    EngineStateError,
    EventKindError,
    EventPayloadError,
    LogError,
    NaiveDatetimeError,
    StoreError,
    StoreVersionError,
    TimeControlError,
    UnknownActionError,
)
from ._log import Log, LogSink, Subscription
from ._schedule import Intent, Schedule
from .limiters import (
    Command,
    CommandStatistics,
    Control,
    ControlStatistics,
    LimiterConfigError,
    LimiterError,
    NotAsyncError,
    OverTimeLimit,
    SafetyActionError,
    Trip,
    UnderTimeLimit,
    WatchdogStateError,
    command,
    guarded_by,
    limited_by,
    limiter_of,
    watchdog_of,
)
from .plans import (
    IllegalMessageSequence,
    Msg,
    PauseHeldError,
    RequestAbort,
    RequestStop,
    RunEngine,
    RunResult,
    RunState,
    StatusFailed,
    UnknownCommandError,
)
from .scheduler import (
    DuplicateJobError,
    ExecutionRecord,
    Job,
    JobArgumentsError,
    JobNotFoundError,
    JobSpecError,
    JobStats,
    PolicyError,
    Scheduler,
    SchedulerError,
    SchedulerLockedError,
    SchedulerStats,
)
from .triggers import (
    CronSyntaxError,
    IntervalError,
    TimePointError,
    Trigger,
    TriggerError,
    UnknownTimeZoneError,
    WindowError,
    cron,
    daily,
    intersection,
    interval,
    monthly,
    once,
    timepoints,
    trigger_from_json,
    union,
    weekly,
)

__version__ = "0.1.0"

# The instruments' event kinds, so that any Log holding them reads back wherever timecontrol
# is imported (`timecontrol.drivers` is installed from the top-level drivers/ folder).
importlib.import_module("timecontrol.drivers._events")

__all__ = [
    "EVENT_SCHEMA_VERSION",
    "Action",
    "Clock",
    "ClockError",
    "Command",
    "CommandStatistics",
    "Control",
    "ControlStatistics",
    "CronSyntaxError",
    "DuplicateJobError",
    "Engine",
    "EngineStateError",
    "Event",
    "EventKind",
    "EventKindError",
    "EventPayloadError",
    "ExecutionRecord",
    "IllegalMessageSequence",
    "Intent",
    "IntervalError",
    "Job",
    "JobArgumentsError",
    "JobNotFoundError",
    "JobSpecError",
    "JobStats",
    "LimiterConfigError",
    "LimiterError",
    "Log",
    "LogError",
    "LogSink",
    "Msg",
    "NaiveDatetimeError",
    "NotAsyncError",
    "OverTimeLimit",
    "PauseHeldError",
    "PolicyError",
    "RequestAbort",
    "RequestStop",
    "RunEngine",
    "RunResult",
    "RunState",
    "SafetyActionError",
    "Schedule",
    "Scheduler",
    "SchedulerError",
    "SchedulerLockedError",
    "SchedulerStats",
    "StatusFailed",
    "StoreError",
    "StoreVersionError",
    "Subscription",
    "SystemClock",
    "TimeControlError",
    "TimePointError",
    "Trigger",
    "TriggerError",
    "Trip",
    "UnderTimeLimit",
    "UnknownActionError",
    "UnknownCommandError",
    "UnknownTimeZoneError",
    "WatchdogStateError",
    "WindowError",
    "__version__",
    "command",
    "cron",
    "current_clock",
    "current_engine",
    "daily",
    "ensure_aware",
    "guarded_by",
    "intersection",
    "interval",
    "jsonable",
    "known_kinds",
    "limited_by",
    "limiter_of",
    "monthly",
    "once",
    "register_kind",
    "timepoints",
    "trigger_from_json",
    "union",
    "use_clock",
    "watchdog_of",
    "weekly",
]
