"""timecontrol: run lab experiments on time.

Async instrument coroutines run at time points, on cron and calendar schedules, no more often
than an instrument allows and no less often than a watchdog demands, inside an engine that can
pause, resume and panic; everything that happens is an immutable event in the Log.

The public face is this module (plus `timecontrol.testing`, `timecontrol.stores` and
`timecontrol.drivers`); everything else is private.
"""

from __future__ import annotations

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

__version__ = "0.1.0"

__all__ = [
    "EVENT_SCHEMA_VERSION",
    "Action",
    "Clock",
    "ClockError",
    "Engine",
    "EngineStateError",
    "Event",
    "EventKind",
    "EventKindError",
    "EventPayloadError",
    "Intent",
    "Log",
    "LogError",
    "LogSink",
    "NaiveDatetimeError",
    "Schedule",
    "StoreError",
    "StoreVersionError",
    "Subscription",
    "SystemClock",
    "TimeControlError",
    "UnknownActionError",
    "__version__",
    "current_clock",
    "current_engine",
    "ensure_aware",
    "jsonable",
    "known_kinds",
    "register_kind",
    "use_clock",
]
