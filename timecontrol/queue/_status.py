"""What the queue is doing, in one value: `QueueState`, `Progress`, `Eta`, `DryRun`.

`Queue.state()` answers in one call what bluesky-queueserver needs three racing calls for
(its issue #370): the running item and its progress, the items left, open prompts, the delay
in progress. Its `status` stays ``running`` from `start` until the queue stops, through
delays and between items, so a display never flickers to idle between two items (its
issue #326); `last_stop` says why it last stopped (``"finished"`` when it ran out of items).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ._items import QueueItem
from ._prompts import Prompt

__all__ = ["DryRun", "DryRunItem", "Eta", "Progress", "QueueState", "QueueStatus"]

QueueStatus = Literal["idle", "waiting", "running", "paused", "stopping"]


@dataclass(frozen=True, slots=True)
class Progress:
    """How far the running item is.

    Attributes:
        events: event documents its runs have produced so far.
        expected: events its runs announced (``num_points`` in their start documents).
        elapsed: seconds since it started (pauses included).
        estimate: seconds it is expected to take, learned from the Log (None: unknown).
        fraction: ``events / expected`` when announced, else ``elapsed / estimate``
            (capped at 1), else None.
    """

    events: int
    expected: int | None
    elapsed: float
    estimate: float | None
    fraction: float | None


@dataclass(frozen=True, slots=True)
class QueueState:
    """The queue at one moment (see the module docstring).

    Attributes:
        status: ``idle`` (not executing), ``waiting`` (for a scheduled start), ``running``,
            ``paused`` (its plan or the queue itself holds), ``stopping`` (after the running
            item).
        activity: what the executor does: ``starting``, ``waiting``, ``delay``,
            ``checking``, ``item``, ``paused``, ``waiting for the run engine``; None when idle.
        running: the item in flight (None between items).
        progress: its progress (None between items).
        queue: the queue of the running item.
        items_left: pending, unskipped items still to run (not counting the running one).
        pending: those items, in the order they will run.
        prompts: open questions (answer them with `Queue.answer`).
        delay_remaining: seconds left of the delay in progress (None: no delay).
        run_engine: the run engine's state (``idle``, ``running``, ``paused``, ...).
        last_stop: why the queue last stopped (None if it has not).
        eta_s: seconds until the queue is expected to have run out of items, counting what
            is known (see `Queue.eta`).
        overlapping: the item that started beside the running one (an overlap), or that
            the queue waits for once the running one has ended (None: no overlap).
        overlapping_progress: the overlapping item's progress, from its own run documents
            (on the queue's second run engine); None without an overlapping item.
    """

    status: QueueStatus
    activity: str | None
    running: QueueItem | None
    progress: Progress | None
    queue: str | None
    items_left: int
    pending: tuple[QueueItem, ...]
    prompts: tuple[Prompt, ...]
    delay_remaining: float | None
    run_engine: str
    last_stop: str | None
    eta_s: float | None
    overlapping: QueueItem | None = None
    overlapping_progress: Progress | None = None


@dataclass(frozen=True, slots=True)
class Eta:
    """When the queue is expected to run out of items (a looping queue: one round).

    Attributes:
        seconds: expected seconds left, counting the items with a known estimate.
        unknown: items whose duration the Log cannot tell yet (not counted in `seconds`).
        items: items counted (the running one included).
        ends_at: wall time of the expected end (POSIX seconds; None if `unknown`).
    """

    seconds: float
    unknown: int
    items: int
    ends_at: float | None


@dataclass(frozen=True, slots=True)
class DryRunItem:
    """One item as a dry run sees it: when it would start and end, and what is wrong.

    `estimated`: its duration was learned from the Log (else simulated, or unknown: 0 s).
    `overlaps`: the uid of the item it would start beside (an overlap), else None.
    """

    uid: str
    plan: str
    start: float
    end: float
    estimated: bool
    problem: str | None
    overlaps: str | None = None


@dataclass(frozen=True, slots=True)
class DryRun:
    """What a dry run found (see `Queue.dry_run`).

    Attributes:
        items: the items that would run, in order, on the simulated timeline.
        start: wall time it starts from (POSIX seconds).
        total_s: seconds from `start` to the end of the last item.
        unknown: items whose duration is unknown (counted as 0 s, or as simulated).
        stopped_by: why it would stop before the end (a scheduled stop), else None.
        problems: every problem found (unknown plans, kwargs that no longer fit, plans that
            failed in simulation), each naming its item.
    """

    items: tuple[DryRunItem, ...]
    start: float
    total_s: float
    unknown: int
    stopped_by: str | None
    problems: tuple[str, ...]
