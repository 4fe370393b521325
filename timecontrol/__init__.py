"""timecontrol: run lab experiments on time.

Async instrument coroutines run at time points, on cron and calendar schedules, no more often
than an instrument allows and no less often than a watchdog demands, inside an engine that can
pause, resume and panic; everything that happens is an immutable event in the Log.

This module holds what users type. Every exception is in `timecontrol.errors`, the extension
contracts in `timecontrol.abc`, and each part's full surface in its own package
(`timecontrol.triggers`, `.scheduler`, `.sequence`, `.limiters`, `.plans`, `.stores`,
`.testing`, `.drivers`).
"""

from __future__ import annotations

from . import abc, errors
from ._clock import Clock, SystemClock, current_clock
from ._engine import Engine, current_engine
from ._events import Event, register_kind
from ._exceptions import EngineStateError, StoreError, TimeControlError
from ._log import Log
from .limiters import Command, Control, OverTimeLimit, command, guarded_by, limited_by
from .plans import Msg, RunEngine, RunResult, RunState, StatusFailed
from .scheduler import (
    DuplicateJobError,
    ExecutionRecord,
    Job,
    JobNotFoundError,
    JobStats,
    Scheduler,
)
from .sequence import Sequence
from .triggers import (
    Trigger,
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

__version__ = "0.2.0"

__all__ = [
    "Clock",
    "Command",
    "Control",
    "DuplicateJobError",
    "Engine",
    "EngineStateError",
    "Event",
    "ExecutionRecord",
    "Job",
    "JobNotFoundError",
    "JobStats",
    "Log",
    "Msg",
    "OverTimeLimit",
    "RunEngine",
    "RunResult",
    "RunState",
    "Scheduler",
    "Sequence",
    "StatusFailed",
    "StoreError",
    "SystemClock",
    "TimeControlError",
    "Trigger",
    "__version__",
    "abc",
    "command",
    "cron",
    "current_clock",
    "current_engine",
    "daily",
    "errors",
    "guarded_by",
    "intersection",
    "interval",
    "limited_by",
    "monthly",
    "once",
    "register_kind",
    "timepoints",
    "trigger_from_json",
    "union",
    "weekly",
]
