"""Queue items and queues as users see them: frozen snapshots, plain JSON inside.

The queue keeps mutable records internally (`ItemRecord`); every read hands out a frozen
`QueueItem` whose dicts are copies, so that a caller changing what it was given cannot change
the queue behind the Log's back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, Literal

import msgspec

__all__ = [
    "FINAL_STATUSES",
    "ItemOutcome",
    "ItemRecord",
    "ItemStatus",
    "OnInterrupt",
    "QueueInfo",
    "QueueItem",
    "json_copy",
]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode

#: What to do with an item that was running when the process died (or the engine stopped,
#: or a panic ended it): run it again from its start, or leave it recorded as interrupted.
OnInterrupt = Literal["rerun", "skip"]


class ItemStatus(StrEnum):
    """Where an item stands; compares equal to its lowercase name (``"pending"``)."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TRUNCATED = "truncated"  # ended early on purpose (truncate, a stop): a success
    ABORTED = "aborted"
    INTERRUPTED = "interrupted"  # the process died, the engine stopped or a panic ended it


#: Statuses after which an item does not run again (unless its queue loops).
FINAL_STATUSES: Final = frozenset(
    {
        ItemStatus.SUCCEEDED,
        ItemStatus.FAILED,
        ItemStatus.TRUNCATED,
        ItemStatus.ABORTED,
        ItemStatus.INTERRUPTED,
    }
)


def json_copy(value: Any) -> Any:
    """A deep copy of a plain JSON value (a round trip through msgspec: fast and exact)."""
    return _decode(_encode(value))


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    """How an item's latest run ended.

    Attributes:
        status: the item's status after it (succeeded, failed, truncated, aborted,
            interrupted).
        exit_status: the plan's exit status (success, abort, fail), None if it never ran.
        reason: why it ended early, or the error.
        plan_uid: the run engine's id of the plan execution ("" if none).
        run_uids: the runs the plan opened (subjects of their ``run.*`` documents).
        duration: seconds from the item's start to its end (pauses included).
    """

    status: ItemStatus
    exit_status: str | None
    reason: str
    plan_uid: str
    run_uids: tuple[str, ...]
    duration: float


@dataclass(frozen=True, slots=True)
class QueueItem:
    """One item of a queue (a snapshot; the queue changes only through its methods).

    Attributes:
        uid: the item's id (its address for every edit).
        plan: the registered name of its plan.
        kwargs: the plan's keyword arguments (JSON).
        metadata: added to the start document of every run the plan opens (JSON).
        item_type: an optional type (delays per type, statistics per type).
        queue: the name of the queue it belongs to.
        skip: True while it is to be passed over (`Queue.skip` / `Queue.unskip`).
        status: pending, running, or how its latest run ended.
        on_interrupt: ``"rerun"`` or ``"skip"`` (see `OnInterrupt`).
        delay_after: seconds to wait after it before the next item (None: by type/default).
        attempts: how many times it has started.
        outcome: how its latest run ended (None until one has).
        overlap: the name of a signal (``queue.signal``) after which, plus `overlap_delay`
            seconds, the next item may start while this one still runs (None: no overlap).
        overlap_delay: seconds from that signal to the next item's start.
        resources: what it holds while it runs (a pump, a detector): an item that needs one
            of them never overlaps it.
    """

    uid: str
    plan: str
    kwargs: dict[str, Any]
    metadata: dict[str, Any]
    item_type: str | None
    queue: str
    skip: bool
    status: ItemStatus
    on_interrupt: OnInterrupt
    delay_after: float | None
    attempts: int
    outcome: ItemOutcome | None
    overlap: str | None = None
    overlap_delay: float = 0.0
    resources: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """One queue of the execution: its name, modes and items (uids, in order)."""

    name: str
    loop: bool
    ignore_failures: bool
    round: int
    items: tuple[str, ...]


@dataclass(slots=True)
class ItemRecord:
    """The queue's own mutable record of an item (see `QueueItem` for the fields)."""

    uid: str
    plan: str
    kwargs: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    item_type: str | None = None
    queue: str = "main"
    skip: bool = False
    status: ItemStatus = ItemStatus.PENDING
    on_interrupt: OnInterrupt = "rerun"
    delay_after: float | None = None
    attempts: int = 0
    outcome: ItemOutcome | None = None
    started_wall: float | None = None  # wall time of the current run's start
    overlap: str | None = None
    overlap_delay: float = 0.0
    resources: tuple[str, ...] = ()

    @property
    def runnable(self) -> bool:
        """Pending and not to be skipped: the executor may start it."""
        return self.status is ItemStatus.PENDING and not self.skip

    def spec(self) -> dict[str, Any]:
        """The item's definition as JSON (what ``queue.item_added`` records)."""
        return {
            "uid": self.uid,
            "plan": self.plan,
            "kwargs": self.kwargs,
            "metadata": self.metadata,
            "item_type": self.item_type,
            "skip": self.skip,
            "on_interrupt": self.on_interrupt,
            "delay_after": self.delay_after,
            "overlap": self.overlap,
            "overlap_delay": self.overlap_delay,
            "resources": list(self.resources),
        }

    def snapshot(self) -> QueueItem:
        """A frozen copy for callers."""
        return QueueItem(
            uid=self.uid,
            plan=self.plan,
            kwargs=json_copy(self.kwargs),
            metadata=json_copy(self.metadata),
            item_type=self.item_type,
            queue=self.queue,
            skip=self.skip,
            status=self.status,
            on_interrupt=self.on_interrupt,
            delay_after=self.delay_after,
            attempts=self.attempts,
            outcome=self.outcome,
            overlap=self.overlap,
            overlap_delay=self.overlap_delay,
            resources=self.resources,
        )
