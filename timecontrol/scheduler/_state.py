"""A job's place in time: the runtime state the scheduler keeps per job (a state row on disk).

The definition (`Job`) is immutable; this is what moves: the next undecided fire time, runs
so far, slots taken, fire times in flight, the pending chain intent. It is a cache of the Log
in the sense of `timecontrol.stores._jobs`: a restart rebuilds it from the state row plus the
``job.*`` events written after it.
"""

from __future__ import annotations

import math
from collections import deque
from types import MappingProxyType
from typing import Any, Final, cast

import anyio

from ._grid import Grid
from ._host import Action
from ._job import Job

__all__ = ["NO_RUNS", "JobState"]

#: The inflight map of a job with nothing in flight (shared by idle jobs; writes raise).
NO_RUNS: Final = cast("dict[int, list[Any]]", MappingProxyType({}))


class JobState:
    """A job's runtime state (see the module docstring)."""

    __slots__ = (
        "fn",
        "grid",
        "grid_for",
        "grid_last",
        "inflight",
        "intent_seq",
        "job",
        "needs_first",
        "next",
        "running",
        "runs",
        "waiting",
    )

    def __init__(self, job: Job) -> None:
        self.job = job
        self.fn: Action | None = None
        # The trigger's fire times in integer arithmetic (plain intervals only; see _grid.py),
        # and the trigger it was made for.
        self.grid: Grid | None = None
        self.grid_for: object = None
        self.grid_last = math.nan  # the point the grid gave last (the chain asks after it)
        self.next: float | None = None  # the next undecided fire time
        self.runs = 0  # runs started (manual ones not counted)
        self.running = 0  # slots taken (running, or handed to a queued fire time)
        self.waiting: deque[anyio.Event] | None = None
        # run ref -> [scheduled, manual, started wall or None]: what a crash would interrupt.
        # Idle jobs (nearly all, nearly always) share one empty, read-only mapping; change it
        # through `add_run` / `drop_run` only.
        self.inflight: dict[int, list[Any]] = NO_RUNS
        self.intent_seq = 0  # seq of the pending chain intent, 0 if none
        self.needs_first = False  # first fire time still to compute (no clock at add time)

    def add_run(self, ref: int, entry: list[Any]) -> None:
        """Record a run (or queued fire time) in flight."""
        if self.inflight is NO_RUNS:
            self.inflight = {ref: entry}
        else:
            self.inflight[ref] = entry

    def drop_run(self, ref: int) -> None:
        """Forget a run in flight (if it is there)."""
        inflight = self.inflight
        if ref in inflight:
            if len(inflight) == 1:
                self.inflight = NO_RUNS
            else:
                del inflight[ref]
