"""What the scheduler needs from whoever runs it: the `JobHost` protocol.

The scheduler never constructs or reaches into the `Engine`. Its owner (the engine's
dispatcher) gives it a clock, the current Log, the Schedule and a way to register and submit
actions; the owner also drives its lifecycle (see `Scheduler`): ``_attach()`` right after it
opened a Log, ``_started()`` once dispatch runs, ``await _stopping()`` before the Log closes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

from .._dispatch import Action, jsonable
from .._hosts import IntentAction, IntentHost

__all__ = ["Action", "IntentAction", "JobHost", "jsonable"]

A = TypeVar("A", bound=Action)


@runtime_checkable
class JobHost(IntentHost, Protocol):
    """The part of its owner the scheduler uses: `IntentHost` (time, the Log, the Schedule
    and actions), a service task group and action registration."""

    @property
    def service_group(self) -> TaskGroup | None:
        """A task group for a part's long-lived task while dispatch runs (else None); its
        tasks are not counted as running actions. The alarms' reader runs there."""
        ...

    def action(self, func: A, /, *, name: str | None = None, record: bool = True) -> A:
        """Register an async function as an action under `name` (default: its own name);
        ``record=False`` writes no ``action.*`` events for its starts and successes."""
        ...
