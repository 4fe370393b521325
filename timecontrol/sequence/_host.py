"""What sequences need from whoever runs them: the `SequenceHost` protocol.

Sequences never construct or reach into the `timecontrol.Engine`. The owner (the engine's
dispatcher satisfies this protocol) gives them its Clock, its Log, its Schedule, its registered
actions and a way to submit intents: each sequence keeps one intent in the Schedule, for its
next point, so the dispatch gate (engine pause, panic) holds sequences exactly as it holds
scheduled jobs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .._dispatch import Action

if TYPE_CHECKING:
    from .._clock import Clock
    from .._log import Log
    from .._schedule import Intent, Schedule

__all__ = ["SequenceHost"]


@runtime_checkable
class SequenceHost(Protocol):
    """The narrow host sequences run on (satisfied by the engine's dispatcher)."""

    @property
    def clock(self) -> Clock:
        """The Clock every planned and actual time is read from."""
        ...

    @property
    def log(self) -> Log:
        """The current Log: every point and action record is an event in it."""
        ...

    @property
    def schedule(self) -> Schedule:
        """The Schedule the host dispatches from (a sequence withdraws its own intent)."""
        ...

    @property
    def actions(self) -> Mapping[str, Action]:
        """The user's registered actions by name (chains may name them)."""
        ...

    def intent_action(self, fn: Callable[[Intent], Awaitable[None]], name: str) -> None:
        """Register a quiet action called with its `Intent` (the sequences' runner)."""
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
        """Add an intent without a public submit's checks (the caller guarantees them)."""
        ...
