"""What the queue needs from whoever hosts it: the `QueueHost` protocol.

The queue never constructs or reaches into the `timecontrol.Engine`. Its owner (the engine's
dispatcher satisfies this protocol) gives it a Clock, the current Log and a task group for
its executor; the run engine is handed to the queue separately. The owner drives the queue's
lifecycle: ``_attach()`` right after it opened a Log, ``_started()`` once dispatch runs, and
``await _stopping()`` before the Log closes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from .._clock import Clock
    from .._log import Log

__all__ = ["QueueHost"]


@runtime_checkable
class QueueHost(Protocol):
    """The narrow host a `Queue` runs on (satisfied by the engine's dispatcher)."""

    @property
    def clock(self) -> Clock:
        """The Clock delays, prompt timeouts and scheduled starts and stops are timed by."""
        ...

    @property
    def log(self) -> Log:
        """The current Log: the queue's state and every edit are events in it, and a restart
        reads them back from its durable store."""
        ...

    @property
    def running(self) -> bool:
        """True while the host runs (its Log takes events): the queue executes only then."""
        ...

    @property
    def service_group(self) -> TaskGroup | None:
        """A task group for the queue's executor while the host runs (else None)."""
        ...
