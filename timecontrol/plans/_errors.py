"""Errors of the run engine; all derive from `timecontrol.TimeControlError`.

Some are raised to the caller (an illegal request), others are *thrown into the plan* at the
``yield`` of the message that caused them, so that a plan can catch them like any exception.
"""

from __future__ import annotations

from .._exceptions import EngineStateError, TimeControlError

__all__ = [
    "IllegalMessageSequence",
    "PauseHeldError",
    "PlanArgumentError",
    "PlanClosedError",
    "RequestAbort",
    "RequestStop",
    "StatusFailed",
    "UnknownCommandError",
    "WaitForTimeoutError",
]


class UnknownCommandError(TimeControlError, KeyError):
    """A message whose command is not registered; thrown into the plan, which may catch it."""

    def __str__(self) -> str:
        # KeyError would quote the whole message; keep it readable.
        return str(self.args[0]) if self.args else ""


class PlanArgumentError(TimeControlError, ValueError, TypeError):
    """A bad argument to the run engine, a message or a device: the message names the value
    and what is accepted.

    It is also a `ValueError` and a `TypeError`, which is what these errors were before they
    had a class of their own, so that existing ``except ValueError`` clauses keep working.
    """


class PlanClosedError(TimeControlError, ValueError):
    """A plan raised ``GeneratorExit`` itself (not while being closed): the run engine closes
    the whole plan stack, as for a halt, and the plan fails with this error.

    Its ``__cause__`` is the plan's ``GeneratorExit``. It is also a `ValueError`, which is what
    bluesky raises (from the ``GeneratorExit``) in that case.
    """


class IllegalMessageSequence(TimeControlError):
    """Messages in an order that cannot make sense (e.g. ``save`` without ``create``)."""


class PauseHeldError(EngineStateError):
    """`resume()` was refused because named pause requests still withhold permission.

    Attributes:
        names: the names of the pause requests whose callbacks did not allow resuming.
    """

    def __init__(self, names: list[str]) -> None:
        self.names = list(names)
        super().__init__(
            f"resume refused: pause requests {self.names} still hold; each is lifted once its "
            "callback returns True"
        )


class RequestStop(TimeControlError):
    """Thrown into a plan by `RunEngine.stop`: clean up and end; the run counts as a success."""

    #: The exit status a run closed because of it gets (bluesky's attribute of that name).
    exit_status = "success"


class RequestAbort(TimeControlError):
    """Thrown into a plan by `RunEngine.abort`: clean up and end; the run counts as aborted."""

    #: The exit status a run closed because of it gets (bluesky's attribute of that name).
    exit_status = "abort"


class StatusFailed(TimeControlError):
    """A device's status (a move, a trigger) finished unsuccessfully or was cancelled."""


class WaitForTimeoutError(TimeControlError, TimeoutError):
    """A ``wait`` or ``wait_for`` message ran out of its ``timeout`` (thrown into the plan)."""
