"""The queue's state as a fold over its Log events.

`QueueModel.apply` is the only place the queue's state changes: a live edit writes its event
and applies that same event; a restart applies the stored events in Log order. Memory and
recovery therefore cannot disagree. `apply` is tolerant: an event naming an item or a queue
that is not there (a store edited by hand, events of a newer version) changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Final

from .._events import Event
from ._items import (
    FINAL_STATUSES,
    ItemOutcome,
    ItemRecord,
    ItemStatus,
    QueueInfo,
)

__all__ = ["DEFAULT_QUEUE", "QueueModel", "QueueRecord"]

#: The queue that exists from the start; items go there unless told otherwise.
DEFAULT_QUEUE: Final = "main"


class QueueRecord:
    """One queue: its modes and its items' uids in order."""

    __slots__ = ("ignore_failures", "loop", "name", "round", "uids")

    def __init__(self, name: str, *, loop: bool = False, ignore_failures: bool = False) -> None:
        self.name = name
        self.loop = loop
        self.ignore_failures = ignore_failures
        self.round = 0
        self.uids: list[str] = []

    def info(self) -> QueueInfo:
        """A frozen snapshot."""
        return QueueInfo(self.name, self.loop, self.ignore_failures, self.round, tuple(self.uids))


class QueueModel:
    """Queues, items and the executor's durable flags, built by `apply`."""

    def __init__(self) -> None:
        self.queues: dict[str, QueueRecord] = {DEFAULT_QUEUE: QueueRecord(DEFAULT_QUEUE)}
        self.order: list[str] = [DEFAULT_QUEUE]
        self.items: dict[str, ItemRecord] = {}
        #: The items in flight (started, not yet finished), oldest first: two while one
        #: overlaps another.
        self.in_flight: list[str] = []
        #: True between ``queue.started`` and ``queue.stopped``.
        self.executing = False
        self.settings: dict[str, Any] = {}
        self.schedule: dict[str, Any] = {}
        #: The conditionals' definitions by name, in the order they were added (compiled
        #: by `Conditionals.sync`): recorded like the items, so a restart brings them back.
        self.conditionals: dict[str, dict[str, Any]] = {}
        self.last_seq = 0
        self._handlers: dict[str, Callable[[Event], None]] = {
            "queue.queue_added": self._queue_added,
            "queue.queue_removed": self._queue_removed,
            "queue.mode": self._mode,
            "queue.item_added": self._item_added,
            "queue.item_moved": self._item_moved,
            "queue.item_edited": self._item_edited,
            "queue.item_removed": self._item_removed,
            "queue.item_skipped": lambda e: self._set_skip(e, True),
            "queue.item_unskipped": lambda e: self._set_skip(e, False),
            "queue.cleared": self._cleared,
            "queue.item_started": self._item_started,
            "queue.item_finished": self._item_finished,
            "queue.item_requeued": self._item_requeued,
            "queue.looped": self._looped,
            "queue.started": self._started,
            "queue.stopped": self._stopped,
            "queue.settings": self._settings,
            "queue.schedule": self._schedule,
            "queue.conditional": self._conditional,
        }

    @property
    def running(self) -> str | None:
        """The oldest item in flight, if any."""
        return self.in_flight[0] if self.in_flight else None

    # -- reading -----------------------------------------------------------------------------

    def ordered(self, queue: str | None = None) -> Iterator[ItemRecord]:
        """Every item in execution order (of one queue, or of all queues in their order)."""
        names = self.order if queue is None else [queue]
        for name in names:
            for uid in self.queues[name].uids:
                yield self.items[uid]

    def next_step(self) -> ItemRecord | QueueRecord | None:
        """What the executor does next: the first pending, unskipped item in execution order;
        or a looping queue whose round is over (it starts over before later queues run);
        or None when nothing is left to run."""
        for name in self.order:
            record = self.queues[name]
            items = [self.items[uid] for uid in record.uids]
            for item in items:
                if item.runnable:
                    return item
            if (
                record.loop
                and any(not i.skip for i in items)
                and all(i.status in FINAL_STATUSES or i.skip for i in items)
            ):
                return record
        return None

    def runnable(self) -> list[ItemRecord]:
        """Every pending, unskipped item in execution order."""
        return [item for item in self.ordered() if item.runnable]

    # -- the fold ----------------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        """Apply one of the queue's state events (others are ignored)."""
        handler = self._handlers.get(event.kind)
        if handler is not None:
            handler(event)
        self.last_seq = max(self.last_seq, event.seq)

    def _queue_added(self, event: Event) -> None:
        p = event.payload
        name = event.subject
        if name in self.queues:
            return
        self.queues[name] = QueueRecord(
            name, loop=bool(p.get("loop")), ignore_failures=bool(p.get("ignore_failures"))
        )
        index = _clamp(p.get("index"), len(self.order))
        self.order.insert(index, name)

    def _queue_removed(self, event: Event) -> None:
        record = self.queues.get(event.subject)
        if record is None or event.subject == DEFAULT_QUEUE:
            return
        for uid in record.uids:
            self.items.pop(uid, None)
        del self.queues[event.subject]
        self.order.remove(event.subject)

    def _mode(self, event: Event) -> None:
        record = self.queues.get(event.subject)
        if record is None:
            return
        p = event.payload
        if "loop" in p:
            record.loop = bool(p["loop"])
        if "ignore_failures" in p:
            record.ignore_failures = bool(p["ignore_failures"])

    def _item_added(self, event: Event) -> None:
        p = event.payload
        spec = p.get("item")
        record = self.queues.get(p.get("queue", DEFAULT_QUEUE))
        if not isinstance(spec, dict) or record is None or event.subject in self.items:
            return
        item = ItemRecord(
            uid=event.subject,
            plan=str(spec.get("plan", "")),
            kwargs=dict(spec.get("kwargs") or {}),
            metadata=dict(spec.get("metadata") or {}),
            item_type=spec.get("item_type"),
            queue=record.name,
            skip=bool(spec.get("skip", False)),
            on_interrupt="skip" if spec.get("on_interrupt") == "skip" else "rerun",
            delay_after=spec.get("delay_after"),
            overlap=spec.get("overlap"),
            overlap_delay=float(spec.get("overlap_delay") or 0.0),
            resources=tuple(spec.get("resources") or ()),
        )
        self.items[item.uid] = item
        record.uids.insert(_clamp(p.get("index"), len(record.uids)), item.uid)

    def _item_moved(self, event: Event) -> None:
        item = self.items.get(event.subject)
        target = self.queues.get(event.payload.get("queue", ""))
        if item is None or target is None:
            return
        self.queues[item.queue].uids.remove(item.uid)
        item.queue = target.name
        target.uids.insert(_clamp(event.payload.get("index"), len(target.uids)), item.uid)

    def _item_edited(self, event: Event) -> None:
        item = self.items.get(event.subject)
        changes = event.payload.get("changes")
        if item is None or not isinstance(changes, dict):
            return
        for key, value in changes.items():
            if key in ("plan", "item_type", "delay_after", "overlap"):
                setattr(item, key, value)
            elif key == "overlap_delay":
                item.overlap_delay = float(value or 0.0)
            elif key == "resources":
                item.resources = tuple(value or ())
            elif key in ("kwargs", "metadata"):
                setattr(item, key, dict(value or {}))
            elif key == "on_interrupt":
                item.on_interrupt = "skip" if value == "skip" else "rerun"

    def _item_removed(self, event: Event) -> None:
        item = self.items.pop(event.subject, None)
        if item is not None:
            self.queues[item.queue].uids.remove(item.uid)
            if item.uid in self.in_flight:
                self.in_flight.remove(item.uid)

    def _set_skip(self, event: Event, skip: bool) -> None:
        item = self.items.get(event.subject)
        if item is not None:
            item.skip = skip

    def _cleared(self, event: Event) -> None:
        for uid in event.payload.get("uids") or ():
            self._item_removed(Event(event.seq, event.mono, event.wall, event.kind, uid))

    def _item_started(self, event: Event) -> None:
        item = self.items.get(event.subject)
        if item is None:
            return
        item.status = ItemStatus.RUNNING
        item.attempts += 1
        item.started_wall = event.wall
        if item.uid not in self.in_flight:
            self.in_flight.append(item.uid)

    def _item_finished(self, event: Event) -> None:
        item = self.items.get(event.subject)
        if item is None:
            return
        p = event.payload
        try:
            status = ItemStatus(str(p.get("status")))
        except ValueError:
            status = ItemStatus.FAILED
        item.status = status
        item.outcome = ItemOutcome(
            status=status,
            exit_status=p.get("exit_status"),
            reason=str(p.get("reason", "")),
            plan_uid=str(p.get("plan_uid", "")),
            run_uids=tuple(p.get("run_uids") or ()),
            duration=float(p.get("duration") or 0.0),
        )
        item.started_wall = None
        if item.uid in self.in_flight:
            self.in_flight.remove(item.uid)

    def _item_requeued(self, event: Event) -> None:
        item = self.items.get(event.subject)
        if item is not None and item.status is not ItemStatus.RUNNING:
            item.status = ItemStatus.PENDING

    def _looped(self, event: Event) -> None:
        record = self.queues.get(event.subject)
        if record is None:
            return
        record.round = int(event.payload.get("round", record.round + 1))
        for uid in record.uids:
            item = self.items[uid]
            if item.status in FINAL_STATUSES:
                item.status = ItemStatus.PENDING

    def _started(self, event: Event) -> None:
        self.executing = True

    def _stopped(self, event: Event) -> None:
        self.executing = False

    def _settings(self, event: Event) -> None:
        self.settings.update(event.payload)

    def _schedule(self, event: Event) -> None:
        self.schedule.update(event.payload)

    def _conditional(self, event: Event) -> None:
        if event.payload.get("removed"):
            self.conditionals.pop(event.subject, None)
        elif isinstance(event.payload.get("condition"), str):
            self.conditionals.pop(event.subject, None)  # (replaced: it moves to the end)
            self.conditionals[event.subject] = dict(event.payload)


def _clamp(index: object, length: int) -> int:
    """A recorded index, clamped to the list (an append if missing)."""
    if isinstance(index, int) and not isinstance(index, bool):
        return max(0, min(index, length))
    return length
