"""Editing the queue: items and queues added, moved, edited, removed, skipped, cleared.

Every edit checks everything first, raises a `QueueArgumentError` (or `ItemNotFoundError`,
`QueueStateError`) naming the bad value and leaves no trace when something is wrong, and
otherwise writes exactly one event, which is then applied to the model. Edits may be made
while the queue runs: the executor picks the next item from the model at the moment it
starts it, so an edit always takes effect before the next item starts. The running item
itself cannot be moved, edited, removed or skipped.
"""

from __future__ import annotations

import uuid
from typing import Any

from ._core import QueueCore
from ._delays import check_seconds
from ._errors import QueueArgumentError, QueueStateError
from ._items import FINAL_STATUSES, ItemRecord, ItemStatus, QueueInfo, QueueItem
from ._model import DEFAULT_QUEUE
from ._registry import check_json

__all__ = ["Edits"]

_EDITABLE = (
    "plan", "kwargs", "metadata", "item_type", "delay_after", "on_interrupt", "overlap",
    "overlap_delay", "resources",
)  # fmt: skip


def _check_item_type(value: object) -> str | None:
    if value is None or (isinstance(value, str) and value):
        return value
    raise QueueArgumentError(f"item_type must be None or a non-empty str, got {value!r}")


def _check_on_interrupt(value: object) -> str:
    if value not in ("rerun", "skip"):
        raise QueueArgumentError(
            f"on_interrupt must be 'rerun' (run it again after a crash or panic) or 'skip' "
            f"(leave it recorded as interrupted), got {value!r}"
        )
    return str(value)


def _check_delay(value: object) -> float | None:
    return None if value is None else check_seconds(value, "delay_after", QueueArgumentError)


def _check_overlap(value: object) -> str | None:
    if value is None or (isinstance(value, str) and value):
        return value
    raise QueueArgumentError(
        f"overlap must be None or the name of a signal (a non-empty str, e.g. "
        f"'equilibrated'), got {value!r}"
    )


def _check_resources(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise QueueArgumentError(
            f"resources must be a str or a list of non-empty str (e.g. ('pump', 'detector')), "
            f"got {value!r}"
        )
    return tuple(dict.fromkeys(value))


def _check_overlap_fields(changes: dict[str, Any]) -> dict[str, Any]:
    """The checked overlap fields among `changes` (those present only)."""
    clean: dict[str, Any] = {}
    if "overlap" in changes:
        clean["overlap"] = _check_overlap(changes["overlap"])
    if "overlap_delay" in changes:
        clean["overlap_delay"] = check_seconds(
            changes["overlap_delay"], "overlap_delay", QueueArgumentError
        )
    if "resources" in changes:
        clean["resources"] = list(_check_resources(changes["resources"]))
    return clean


class Edits(QueueCore):
    """The editing verbs of `Queue` (see the module docstring)."""

    # -- where ---------------------------------------------------------------------------------

    def _place(
        self,
        queue: str | None,
        position: int | None,
        after: str | None,
        before: str | None,
        moving: str | None = None,
    ) -> tuple[str, int]:
        """The target queue and index for an add or a move (`moving`: the item moved, which
        does not count in the target's positions)."""
        given = [k for k, v in (("position", position), ("after", after), ("before", before))
                 if v is not None]  # fmt: skip
        if len(given) > 1:
            raise QueueArgumentError(f"give at most one of position, after, before; got {given}")
        anchor_uid = after if after is not None else before
        if anchor_uid is not None:
            anchor = self._item(anchor_uid)
            if anchor.uid == moving:
                raise QueueArgumentError(f"cannot place item {moving!r} relative to itself")
            if queue is not None and queue != anchor.queue:
                raise QueueArgumentError(
                    f"item {anchor.uid!r} is in queue {anchor.queue!r}, not {queue!r}"
                )
            queue = anchor.queue
        name = self._queue_name(DEFAULT_QUEUE if queue is None else queue)
        uids = [u for u in self._model.queues[name].uids if u != moving]
        if anchor_uid is not None:
            return name, uids.index(anchor_uid) + (1 if after is not None else 0)
        if position is None:
            return name, len(uids)
        if isinstance(position, bool) or not isinstance(position, int):
            raise QueueArgumentError(f"position must be an int, got {position!r}")
        if not -len(uids) - 1 <= position <= len(uids):
            raise QueueArgumentError(
                f"position {position} is outside queue {name!r}, which has {len(uids)} items "
                f"(accepted: 0 to {len(uids)}, or negative from the end)"
            )
        return name, position if position >= 0 else len(uids) + 1 + position

    # -- items ---------------------------------------------------------------------------------

    def add(
        self,
        plan: str,
        kwargs: dict[str, Any] | None = None,
        *,
        queue: str | None = None,
        position: int | None = None,
        after: str | None = None,
        before: str | None = None,
        metadata: dict[str, Any] | None = None,
        item_type: str | None = None,
        delay_after: float | None = None,
        on_interrupt: str = "rerun",
        skip: bool = False,
        uid: str | None = None,
        overlap: str | None = None,
        overlap_delay: float = 0.0,
        resources: str | tuple[str, ...] | list[str] = (),
    ) -> QueueItem:
        """Add an item: plan `plan` (a registered name) with JSON `kwargs`.

        It goes to the end of `queue` (default ``"main"``), or at `position` (an index into
        that queue's items, negative from the end), or right `after` / `before` the item with
        that uid (in that item's queue). `kwargs` are checked against the plan's signature
        now. `metadata` joins the start document of every run the plan opens; `item_type`
        selects delays and statistics; `delay_after` overrides the delay that follows it;
        `on_interrupt` says what a crash, stop or panic during it leads to (``"rerun"`` or
        ``"skip"``: ``"skip"`` also makes its start durable before the plan runs, so that it
        never runs twice). `uid` (default: a new one) addresses it in every other call.
        `overlap` names a signal (``queue.signal``) after which, plus `overlap_delay`
        seconds, the next item may start while this one still runs, unless it needs one of
        this item's `resources` (docs/queue.md, "Overlapping runs").
        """
        self._ensure_ready()
        args = check_json(kwargs, "kwargs")
        md = check_json(metadata, "metadata")
        if not isinstance(plan, str):
            raise QueueArgumentError(f"plan must be a registered plan's name (str), got {plan!r}")
        self._plans.check_kwargs(plan, args)
        over = _check_overlap_fields(
            {"overlap": overlap, "overlap_delay": overlap_delay, "resources": resources}
        )
        spec = ItemRecord(
            uid=self._new_uid(uid),
            plan=plan,
            kwargs=args,
            metadata=md,
            item_type=_check_item_type(item_type),
            skip=self._check_flag(skip, "skip"),
            on_interrupt="skip" if _check_on_interrupt(on_interrupt) == "skip" else "rerun",
            delay_after=_check_delay(delay_after),
            overlap=over["overlap"],
            overlap_delay=over["overlap_delay"],
            resources=tuple(over["resources"]),
        )
        name, index = self._place(queue, position, after, before)
        self._record("queue.item_added", spec.uid,
                     {"item": spec.spec(), "queue": name, "index": index})  # fmt: skip
        return self._model.items[spec.uid].snapshot()

    def _new_uid(self, uid: object) -> str:
        if uid is None:
            return uuid.uuid4().hex[:16]
        if not isinstance(uid, str) or not uid:
            raise QueueArgumentError(f"uid must be None or a non-empty str, got {uid!r}")
        if uid in self._model.items:
            raise QueueArgumentError(f"an item with uid {uid!r} is in the queue already")
        return uid

    def move(
        self,
        uid: str,
        *,
        queue: str | None = None,
        position: int | None = None,
        after: str | None = None,
        before: str | None = None,
    ) -> QueueItem:
        """Move an item: to `position` of `queue` (default: its own queue; no position: its
        end), or right `after` / `before` another item."""
        self._ensure_ready()
        item = self._item(uid)
        self._not_running(item, "move")
        if queue is None and after is None and before is None:
            queue = item.queue
        name, index = self._place(queue, position, after, before, moving=item.uid)
        self._record("queue.item_moved", item.uid,
                     {"queue": name, "index": index, "from": item.queue})  # fmt: skip
        return item.snapshot()

    def edit(self, uid: str, **changes: Any) -> QueueItem:
        """Change an item that is not running: any of `plan`, `kwargs`, `metadata`,
        `item_type`, `delay_after`, `on_interrupt`, `overlap`, `overlap_delay`, `resources`
        (checked as in `add`; new kwargs replace the old ones and are checked against the
        plan, the new one if it changes too)."""
        self._ensure_ready()
        item = self._item(uid)
        self._not_running(item, "edit")
        unknown = sorted(set(changes) - set(_EDITABLE))
        if unknown or not changes:
            raise QueueArgumentError(
                f"edit() takes some of {list(_EDITABLE)}, got {unknown or 'nothing'}"
            )
        clean: dict[str, Any] = {}
        for key in ("kwargs", "metadata"):
            if key in changes:
                clean[key] = check_json(changes[key], key)
        if "item_type" in changes:
            clean["item_type"] = _check_item_type(changes["item_type"])
        if "delay_after" in changes:
            clean["delay_after"] = _check_delay(changes["delay_after"])
        if "on_interrupt" in changes:
            clean["on_interrupt"] = _check_on_interrupt(changes["on_interrupt"])
        clean.update(_check_overlap_fields(changes))
        plan = changes.get("plan", item.plan)
        if not isinstance(plan, str):
            raise QueueArgumentError(f"plan must be a registered plan's name, got {plan!r}")
        if "plan" in changes or "kwargs" in changes:
            self._plans.check_kwargs(plan, clean.get("kwargs", item.kwargs))
            if "plan" in changes:
                clean["plan"] = plan
        self._record("queue.item_edited", item.uid, {"changes": clean})
        return item.snapshot()

    def remove(self, uid: str) -> QueueItem:
        """Remove an item that is not running (its history stays in the Log)."""
        self._ensure_ready()
        item = self._item(uid)
        self._not_running(item, "remove")
        snapshot = item.snapshot()
        self._record("queue.item_removed", item.uid, {"queue": item.queue})
        return snapshot

    def skip(self, uid: str) -> QueueItem:
        """Pass over an item (it stays in the queue, pending, until `unskip`)."""
        return self._set_skip(uid, True)

    def unskip(self, uid: str) -> QueueItem:
        """Let a skipped item run again."""
        return self._set_skip(uid, False)

    def _set_skip(self, uid: str, skip: bool) -> QueueItem:
        self._ensure_ready()
        item = self._item(uid)
        self._not_running(item, "skip" if skip else "unskip")
        if item.skip != skip:
            self._record("queue.item_skipped" if skip else "queue.item_unskipped", item.uid, {})
        return item.snapshot()

    def requeue(self, uid: str) -> QueueItem:
        """Make a finished item (succeeded, failed, interrupted, ...) pending again."""
        self._ensure_ready()
        item = self._item(uid)
        if item.status not in FINAL_STATUSES:
            raise QueueStateError(
                f"item {item.uid!r} is {item.status.value}; only a finished item can be requeued"
            )
        self._record("queue.item_requeued", item.uid, {"reason": "requeue()"})
        return item.snapshot()

    def clear(self, queue: str | None = None, *, finished_only: bool = False) -> list[str]:
        """Remove every item of `queue` (default: of every queue) but the running one; with
        `finished_only`, only items that have ended. Returns the uids removed."""
        self._ensure_ready()
        names = self._model.order if queue is None else [self._queue_name(queue)]
        self._check_flag(finished_only, "finished_only")
        uids = [
            i.uid
            for name in names
            for i in self._model.ordered(name)
            if i.status is not ItemStatus.RUNNING
            and (not finished_only or i.status in FINAL_STATUSES)
        ]
        if uids:
            self._record("queue.cleared", queue or "", {"uids": uids})
        return uids

    # -- queues --------------------------------------------------------------------------------

    def add_queue(
        self,
        name: str,
        *,
        loop: bool = False,
        ignore_failures: bool = False,
        position: int | None = None,
    ) -> QueueInfo:
        """Add a queue; queues run one after another, in order (at `position`, default last).

        `loop`: when its items have all ended, it starts over (until the mode is changed);
        `ignore_failures`: a failed item does not stop the execution.
        """
        self._ensure_ready()
        if not isinstance(name, str) or not name:
            raise QueueArgumentError(f"a queue name must be a non-empty str, got {name!r}")
        if name in self._model.queues:
            raise QueueArgumentError(f"a queue named {name!r} exists already")
        order = self._model.order
        if position is None:
            position = len(order)
        if (
            isinstance(position, bool)
            or not isinstance(position, int)
            or not (0 <= position <= len(order))
        ):
            raise QueueArgumentError(
                f"position must be an int from 0 to {len(order)}, got {position!r}"
            )
        self._record("queue.queue_added", name, {
            "loop": self._check_flag(loop, "loop"),
            "ignore_failures": self._check_flag(ignore_failures, "ignore_failures"),
            "index": position,
        })  # fmt: skip
        return self._model.queues[name].info()

    def remove_queue(self, name: str) -> QueueInfo:
        """Remove a queue and its items (not ``"main"``, nor one whose item is running)."""
        self._ensure_ready()
        record = self._model.queues[self._queue_name(name)]
        if name == DEFAULT_QUEUE:
            raise QueueArgumentError(f"the default queue {DEFAULT_QUEUE!r} cannot be removed")
        for uid in record.uids:
            self._not_running(self._model.items[uid], "remove the queue of")
        info = record.info()
        self._record("queue.queue_removed", name, {"items": list(record.uids)})
        return info

    def set_mode(
        self,
        queue: str = DEFAULT_QUEUE,
        *,
        loop: bool | None = None,
        ignore_failures: bool | None = None,
    ) -> QueueInfo:
        """Change a queue's modes (see `add_queue`); takes effect at the next item."""
        self._ensure_ready()
        name = self._queue_name(queue)
        changes: dict[str, bool] = {}
        if loop is not None:
            changes["loop"] = self._check_flag(loop, "loop")
        if ignore_failures is not None:
            changes["ignore_failures"] = self._check_flag(ignore_failures, "ignore_failures")
        if changes:
            self._record("queue.mode", name, changes)
        return self._model.queues[name].info()

    # -- reading -------------------------------------------------------------------------------

    def item(self, uid: str) -> QueueItem:
        """One item, by uid (`ItemNotFoundError` if there is none)."""
        self._ensure_ready()
        return self._item(uid).snapshot()

    def items(self, queue: str | None = None) -> list[QueueItem]:
        """Every item in execution order (of one queue, or of all queues in their order)."""
        self._ensure_ready()
        name = None if queue is None else self._queue_name(queue)
        return [i.snapshot() for i in self._model.ordered(name)]

    def queues(self) -> list[QueueInfo]:
        """The queues in execution order."""
        self._ensure_ready()
        return [self._model.queues[name].info() for name in self._model.order]
