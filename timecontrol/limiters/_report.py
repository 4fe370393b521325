"""Aggregated "it happened again" events: counts instead of one event per call.

A call that goes straight through is the hot path: it must cost about as much as an
``await``, and appending an event costs several times that. So the routine events
(``limiter.called``, ``limiter.fed``) are written as counts: the first call at least
`report_every` seconds after the previous report writes how many calls there were since.
Throttles, rejections and trips are rare and interesting, so each is written as it happens.
"""

from __future__ import annotations

import math

from .._log import Log
from ._emit import emit
from ._errors import check_seconds

__all__ = ["Reporter"]


class Reporter:
    """Counts for one limiter, and when to write them next.

    ``every`` is None (never write counts), 0 (one event per call) or the seconds between
    aggregated events. ``due`` is the loop time at which the next count is due; the hot path
    compares against it and calls `tick` only when it has passed.
    """

    __slots__ = ("due", "every", "kind", "log", "reported", "subject", "total_key")

    def __init__(
        self, kind: str, total_key: str, subject: str, log: Log | None, every: float | None
    ) -> None:
        if every is not None:
            every = check_seconds(every, "report_every", zero=True)
        self.kind = kind
        self.total_key = total_key
        self.subject = subject
        self.log = log
        self.every = every
        self.reported = 0
        # -inf: the first tick only starts the period (or, with every=0, writes at once).
        self.due = math.inf if every is None else -math.inf

    def restart(self) -> None:
        """Forget the schedule (a new event loop, with another time base)."""
        self.due = math.inf if self.every is None else -math.inf

    def tick(self, now: float, total: int) -> None:
        """Called by the hot path once `due` has passed: write the count if one is due."""
        every = self.every
        if every is None:
            return
        if every == 0:
            self.write(total)
            return
        if self.due == -math.inf:
            self.due = now + every
            return
        self.due = now + every
        self.write(total)

    def write(self, total: int) -> None:
        """Write the count since the previous report now (nothing if there is none)."""
        count = total - self.reported
        # Counts made while no Log was there to take them are kept for the next report.
        if count > 0 and emit(
            self.log, self.kind, self.subject, {"count": count, self.total_key: total}
        ):
            self.reported = total
