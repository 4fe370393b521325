"""Limiters for async instrument coroutines: not too often (`Command`), not too seldom (`Control`).

* `Command` — the under-limiter. Calls are spaced at least `interval` apart and/or at most
  `rate` per `per` seconds, counted from each call's start or (``since="end"``, for settling
  times) from its end. Callers wait first come, first served (``mode="wait"``) or get
  `UnderTimeLimit` (``mode="raise"``). Share one between coroutines, decorate with it, or use
  ``async with limiter:``.
* `Control` — the over-limiter, a watchdog. It must be fed at least every `period`; when a
  deadline passes it runs a safety action shielded from cancellation, records the trip and
  raises `OverTimeLimit` at the next guarded call (or cancels the scopes it supervises).
  It is never fed without watching: the first feed or guarded call of one that is not
  running starts it in the running engine, or, with none, raises `WatchdogStateError`.
* `command(...)`, `limited_by("attr")`, `guarded_by("attr")`: decorators for methods, with one
  limiter per instance. `limiter_of(fn)` / `watchdog_of(fn)` find the limiter behind a
  decorated function.

Both work on asyncio and trio, read time only through the Clock (virtual in tests), keep
`statistics()`, and write their events (``limiter.*``) to the running engine's Log.
"""

from __future__ import annotations

from ._command import Command, Mode, Since
from ._control import Control, SafetyAction
from ._decorate import (
    CommandDecorator,
    command,
    guarded_by,
    limited_by,
    limiter_of,
    watchdog_of,
)
from ._emit import KINDS as EVENT_KINDS
from ._errors import (
    LimiterConfigError,
    LimiterError,
    NotAsyncError,
    OverTimeLimit,
    SafetyActionError,
    UnderTimeLimit,
    WatchdogStateError,
)
from ._stats import CommandStatistics, ControlStatistics, Trip

__all__ = [
    "EVENT_KINDS",
    "Command",
    "CommandDecorator",
    "CommandStatistics",
    "Control",
    "ControlStatistics",
    "LimiterConfigError",
    "LimiterError",
    "Mode",
    "NotAsyncError",
    "OverTimeLimit",
    "SafetyAction",
    "SafetyActionError",
    "Since",
    "Trip",
    "UnderTimeLimit",
    "WatchdogStateError",
    "command",
    "guarded_by",
    "limited_by",
    "limiter_of",
    "watchdog_of",
]
