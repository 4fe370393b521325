"""The host protocol the dispatcher offers to parts that keep intents in its Schedule.

The scheduler (`timecontrol.scheduler.JobHost`) and sampling sequences
(`timecontrol.sequence.SequenceHost`) both run on the engine's dispatcher through these
members: its Clock, its current Log, its Schedule, the user's actions, a quiet action called
with its `Intent`, and a checked-by-the-caller submit. Each part's own protocol extends this
one with what only it needs, so the shared contract is declared once, in the core.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ._clock import Clock
    from ._dispatch import Action
    from ._log import Log
    from ._schedule import Intent, Schedule

__all__ = ["IntentAction", "IntentHost"]

#: An action called with its `Intent` rather than its kwargs (a part's own runner).
IntentAction = Callable[["Intent"], Awaitable[None]]


@runtime_checkable
class IntentHost(Protocol):
    """Time, the Log, the Schedule and actions: what an intent-keeping part runs on."""

    @property
    def clock(self) -> Clock:
        """The Clock every planned and actual time is read from (fixed for the host's life)."""
        ...

    @property
    def log(self) -> Log:
        """The current Log. The owner replaces it at each start; its ``sink`` may be a
        `SQLiteLog`, whose file then also keeps the parts' state."""
        ...

    @property
    def schedule(self) -> Schedule:
        """The Schedule the host dispatches from (a part withdraws its own intents)."""
        ...

    @property
    def actions(self) -> Mapping[str, Action]:
        """The user's registered actions by name (a copy or a read-only view)."""
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
