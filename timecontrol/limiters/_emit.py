"""Where limiter events go: the Log given to the limiter, else the running engine's Log.

Limiters are usually created at import time (as decorators), long before any engine exists, so
the Log is looked up when an event is written, never cached.
"""

from __future__ import annotations

from typing import Any

from .._dispatch import current_log
from .._events import reserve_kind
from .._exceptions import LogError
from .._log import Log

__all__ = ["KINDS", "emit"]

#: The event kinds limiters write, registered when `timecontrol.limiters` is imported.
KINDS: dict[str, str] = {
    "limiter.called": (
        "calls that went through a Command, aggregated: payload count (since the previous "
        "limiter.called event) and calls (in total)"
    ),
    "limiter.throttled": "a Command call started after waiting for its turn; payload waited",
    "limiter.rejected": (
        "a call was refused and not run: payload limit 'under' (UnderTimeLimit: elapsed, "
        "required) or 'over' (OverTimeLimit: elapsed, period, trips)"
    ),
    "limiter.fed": (
        "feeds of a Control watchdog, aggregated: payload count (since the previous "
        "limiter.fed event) and feeds (in total)"
    ),
    "limiter.tripped": (
        "a Control watchdog missed its deadline and runs its safety action: payload number, "
        "deadline, late, since_feed, period, cancelled (supervised scopes cancelled)"
    ),
    "limiter.trip_failed": "a watchdog's safety action raised: payload error, message",
    "limiter.started": (
        "a Control watchdog started watching: payload period, automatic (true when its "
        "first feed or guarded call started it, in the running engine)"
    ),
    "limiter.stopped": "a Control watchdog stopped watching: payload trips",
}

for _name, _doc in KINDS.items():
    reserve_kind(_name, _doc)


def emit(log: Log | None, kind: str, subject: str, payload: dict[str, Any]) -> bool:
    """Append an event to `log`, or else to the running engine's Log; False without either.

    A Log that has been closed takes nothing (False): recording is never a reason to refuse
    an instrument its command.
    """
    if log is None:
        log = current_log()
        if log is None:
            return False
    try:
        log._emit(kind, subject, payload)
    except LogError:
        return False
    return True
