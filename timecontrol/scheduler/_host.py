"""What the scheduler needs from whoever runs it: the `JobHost` protocol.

The scheduler never constructs or reaches into the `Engine`. Its owner (the engine's
dispatcher) gives it a clock, the current Log, the Schedule and a way to register and submit
actions; the owner also drives its lifecycle (see `Scheduler`): ``_attach()`` right after it
opened a Log, ``_started()`` once dispatch runs, ``await _stopping()`` before the Log closes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from .._clock import Clock
    from .._log import Log
    from .._schedule import Intent, Schedule

from .._dispatch import Action, jsonable

__all__ = ["Action", "IntentAction", "JobHost", "jsonable"]

#: An action called with its `Intent` (the scheduler's own, see `JobHost.intent_action`).
IntentAction = Callable[["Intent"], Awaitable[None]]
A = TypeVar("A", bound=Action)


@runtime_checkable
class JobHost(Protocol):
    """The part of its owner the scheduler uses: time, the Log, the Schedule and actions."""

    @property
    def clock(self) -> Clock:
        """The clock every fire time is read from (fixed for the host's life)."""
        ...

    @property
    def log(self) -> Log:
        """The current Log. The owner replaces it at each start; its ``sink`` may be a
        `SQLiteLog`, whose file then also keeps the jobs."""
        ...

    @property
    def schedule(self) -> Schedule:
        """The Schedule the host dispatches from (the scheduler cancels its own intents)."""
        ...

    @property
    def actions(self) -> Mapping[str, Action]:
        """The user's registered actions by name (a copy or a read-only view)."""
        ...

    @property
    def service_group(self) -> TaskGroup | None:
        """A task group for a part's long-lived task while dispatch runs (else None); its
        tasks are not counted as running actions. The alarms' reader runs there."""
        ...

    def action(self, func: A, /, *, name: str | None = None, record: bool = True) -> A:
        """Register an async function as an action under `name` (default: its own name);
        ``record=False`` writes no ``action.*`` events for its starts and successes."""
        ...

    def intent_action(self, fn: IntentAction, name: str) -> None:
        """Register a quiet action that is called with its `Intent` rather than its kwargs."""
        ...

    def submit_trusted(
        self,
        name: str,
        due: float,
        kwargs: dict[str, Any] | None,
        subject: str,
        priority: int = 0,
        reason: str = "",
    ) -> Intent:
        """Add an intent without the checks of a public submit: `name` is registered, `due`
        is finite POSIX seconds and `kwargs` is plain JSON (the caller guarantees it)."""
        ...
