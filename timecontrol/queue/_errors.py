"""The queue's errors: each a `TimeControlError` naming the bad value and what is accepted."""

from __future__ import annotations

from .._exceptions import TimeControlError

__all__ = [
    "ItemNotFoundError",
    "PlanNotFoundError",
    "PromptError",
    "QueueArgumentError",
    "QueueError",
    "QueueStateError",
]


class QueueError(TimeControlError):
    """Base class of the experiment queue's errors."""


class QueueArgumentError(QueueError, ValueError, TypeError):
    """A bad argument to a queue call (a position out of range, kwargs that do not fit the
    plan, a mode that does not exist); nothing was changed or recorded."""


class ItemNotFoundError(QueueError, LookupError):
    """No queue item (or no queue) has the uid or name given."""


class PlanNotFoundError(QueueError, LookupError):
    """No plan is registered under the name given."""


class QueueStateError(QueueError, RuntimeError):
    """A queue call that the queue's (or the item's) current state does not allow, e.g.
    removing the item that is running, or resuming a queue that is not paused."""


class PromptError(QueueError, LookupError):
    """A prompt id that is not open, or a choice that the prompt does not offer."""
