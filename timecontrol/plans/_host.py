"""What the run engine needs from whoever hosts it: a Log, a Clock and the dispatch gate.

The run engine never imports the `timecontrol.Engine` facade. It runs on any *host* that
satisfies `PlanHost`: in practice the engine's dispatcher, which owns the Log, the Clock and
the gate that holds scheduled dispatch. Keeping the dependency this narrow is what lets the
import graph run one way (facade on top, parts in the middle, dispatcher and Log at the bottom)
and lets tests run plans on a small fake host.

`is_facade` recognises the facade by duck type (an ``_owns_parts`` attribute set to True and a
``run_engine`` attribute), so that ``RunEngine(engine)`` can hand back the engine's own run
engine instead of building a second one that the engine's ``panic()`` would not reach.
"""

from __future__ import annotations

from typing import Any, Protocol

from .._clock import Clock
from .._log import Log

__all__ = ["PlanHost", "is_facade"]


class PlanHost(Protocol):
    """The narrow host a `RunEngine` runs on (satisfied by the engine's dispatcher).

    Every member is used from the host's own loop thread only: the run engine hands calls
    made from other threads to that loop first.
    """

    @property
    def log(self) -> Log:
        """The Log every plan message, state change and run document is recorded in."""
        ...

    @property
    def clock(self) -> Clock:
        """The Clock that times ``sleep`` messages, suspender polls and document stamps."""
        ...

    @property
    def running(self) -> bool:
        """True while the host runs (its Log takes events): plans only run then."""
        ...

    def hold_dispatch(self, holder: str) -> None:
        """Stop starting scheduled work until `holder` releases (a pause, a panic)."""
        ...

    def release_dispatch(self, holder: str) -> None:
        """Withdraw `holder`'s hold."""
        ...

    def cancel_running(self) -> int:
        """Cancel every running scheduled action (on panic); return how many."""
        ...


def is_facade(host: Any) -> bool:
    """True for the `timecontrol.Engine` facade (or a look-alike), which owns a run engine."""
    return getattr(host, "_owns_parts", False) is True
