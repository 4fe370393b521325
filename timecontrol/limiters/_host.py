"""Where a watchdog that nobody started can run: the running engine's task group.

A watchdog needs a task of its own (its deadline must pass while nobody calls it) inside a
task group (so that its safety action's failure ends something, loudly). A guarded call has
neither, so a `Control` that is fed before it was started asks here for the task group of the
engine it reports to. It gets one only when an engine is running and the call comes from
inside an event loop in this thread; otherwise the watchdog refuses the call.
"""

from __future__ import annotations

import asyncio
import sys

from anyio.abc import TaskGroup

from .._clock import Clock
from .._dispatch import current_dispatcher
from .._log import Log

__all__ = ["engine_host"]


def _in_event_loop() -> bool:
    """True inside a running asyncio or trio loop in this thread (the engine's must be the
    one: a task group takes new tasks only from its own loop's thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return True
    trio = sys.modules.get("trio")  # never imported here: trio runs only if it was imported
    if trio is None:
        return False
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return False
    return True


def engine_host() -> tuple[TaskGroup, Clock, Log] | None:
    """The running engine's task group, clock and Log, or None when there is none to start in.

    A missing or closing group means no host, hence a refusal, never an unwatched call.
    """
    if not _in_event_loop():
        return None
    dispatcher = current_dispatcher()
    if dispatcher is None:
        return None
    group = dispatcher.service_group
    if group is None:
        return None  # stopping: its task group takes no new work
    return group, dispatcher.clock, dispatcher.log
