"""The sequences' errors: each a `TimeControlError` naming the bad value and what is accepted."""

from __future__ import annotations

from .._exceptions import TimeControlError

__all__ = ["PointNotFoundError", "SequenceArgumentError", "SequenceError", "SequenceMismatchError",
           "SequenceStateError"]  # fmt: skip


class SequenceError(TimeControlError):
    """Base class of the sampling sequences' errors."""


class SequenceArgumentError(SequenceError, ValueError, TypeError):
    """A bad argument to a sequence call (an unknown policy, a negative offset, kwargs for an
    action that is not in the chain); nothing was changed or recorded."""


class PointNotFoundError(SequenceError, LookupError):
    """No time point of the sequence has the index given."""


class SequenceStateError(SequenceError, RuntimeError):
    """A call that the sequence's (or the point's) current state does not allow, e.g. a manual
    trigger before `start`, resuming a sequence that is not paused, editing a point that ran."""


class SequenceMismatchError(SequenceStateError):
    """A re-declaration differs from the sequence of that name that the Log holds (its chain,
    time points, kwargs or policies); the message names each difference. Nothing was changed
    or recorded: pass ``replace=True`` (keep the progress, apply the new declaration) or
    ``reset=True`` (start afresh)."""
