"""TRANSITIONAL: run a `Scheduler` on the Engine from before the dispatcher split.

That Engine builds its scheduler lazily as ``Scheduler(engine)`` and knows nothing of the
lifecycle hooks. This module adapts it, by duck type and without importing it: the engine is
wrapped as a `JobHost`, its start and stop callbacks drive ``_attach`` / ``_started`` /
``_stopping``, and the one scheduler per engine is remembered here so that the engine's own
rebuilding after a stop gets the same scheduler back. Delete this module once the Engine
builds its scheduler from its dispatcher and calls the hooks itself.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ._host import Action, IntentAction

if TYPE_CHECKING:
    from .._clock import Clock
    from .._log import Log
    from .._schedule import Intent, Schedule
    from ._scheduler import Scheduler

__all__ = ["is_legacy_engine", "legacy_host", "legacy_scheduler", "remember"]

A = TypeVar("A", bound=Action)
_schedulers: weakref.WeakKeyDictionary[Any, Scheduler] = weakref.WeakKeyDictionary()


def is_legacy_engine(host: object) -> bool:
    """An Engine that predates the dispatcher: private hook names, no lifecycle calls."""
    return hasattr(host, "_intent_action") and not hasattr(host, "intent_action")


def legacy_scheduler(host: object) -> Scheduler | None:
    """The scheduler already made for this legacy engine, if any."""
    try:
        return _schedulers.get(host)
    except TypeError:
        return None


class _EngineHost:
    """A legacy Engine seen as a `JobHost`."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine

    @property
    def clock(self) -> Clock:
        clock: Clock = self._engine.clock
        return clock

    @property
    def log(self) -> Log:
        log: Log = self._engine.log
        return log

    @property
    def schedule(self) -> Schedule:
        schedule: Schedule = self._engine.schedule
        return schedule

    @property
    def actions(self) -> Mapping[str, Action]:
        actions: Mapping[str, Action] = self._engine.actions
        return actions

    def action(self, func: A, /, *, name: str | None = None, record: bool = True) -> A:
        registered: A = self._engine.action(func, name=name, record=record)
        return registered

    def intent_action(self, fn: IntentAction, name: str) -> None:
        self._engine._intent_action(fn, name)

    def submit_trusted(
        self,
        name: str,
        due: float,
        kwargs: dict[str, Any] | None,
        subject: str,
        priority: int = 0,
        reason: str = "",
    ) -> Intent:
        intent: Intent = self._engine._submit_trusted(
            name, due, kwargs, subject, priority, reason
        )
        return intent


def legacy_host(engine: Any) -> _EngineHost:
    """`engine` as a `JobHost`."""
    return _EngineHost(engine)


def remember(engine: Any, scheduler: Scheduler) -> None:
    """Tie `scheduler` to `engine`: the engine's start and stop drive its lifecycle."""
    _schedulers[engine] = scheduler

    async def started() -> None:
        if engine.log is not scheduler._log:
            scheduler._attach()
        scheduler._started()

    async def stopping() -> None:
        await scheduler._stopping()

    engine.on_start(started)
    engine.on_stop(stopping)
