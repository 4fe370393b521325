"""The queue as the timeline sees it: each item a `Slot` (learned duration and signal
offset, resources, delay after it), the running items as `Lane` s from now. Shared by the ETA
(`Queue.eta`) and the dry run (`._simulate`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._timeline import Lane, Slot

if TYPE_CHECKING:
    from ._items import ItemRecord
    from ._overlap import Overlap

__all__ = ["item_slot", "running_lanes"]


def item_slot(queue: Overlap, item: ItemRecord) -> Slot:
    """`item` as the Log knows it: its learned duration and, if it declares an overlap, the
    learned offset of its signal plus its ``overlap_delay`` (None if never seen)."""
    durations = queue._durations
    offset = None
    if item.overlap is not None:
        offset = durations.signal_offset(item.overlap, item.plan, item.kwargs, item.item_type)
    return Slot(
        uid=item.uid,
        duration=durations.estimate(item.plan, item.kwargs, item.item_type),
        overlap_after=None if offset is None else offset + item.overlap_delay,
        resources=frozenset(item.resources),
        queue=item.queue,
        delay_after=queue._delay_after(item),
    )


def running_lanes(queue: Overlap, at: float) -> tuple[Lane | None, Lane | None, float]:
    """The running items as lanes on a timeline where now is `at`: (the item in front, the
    overlapping one, when the next may start if none runs: `at`, or the end of the delay in
    progress). A running item's lane ends at its expected rest (0 if overdue or unknown)."""
    now = queue._clock.monotonic()
    delay = queue._delay
    overlap_delay = delay is not None and delay.reason == "overlap"
    ready = at + (delay.remaining if delay is not None and not overlap_delay else 0.0)
    front = side = None
    watch = queue._front_watch
    if watch is not None:
        slot = item_slot(queue, watch.item)
        elapsed = now - watch.t0
        end = at + max(0.0, (slot.duration or 0.0) - elapsed)
        front = Lane(slot, at - elapsed, end, _overlap_at(queue, watch.item, slot, at, elapsed))
    watch = queue._side_watch
    if watch is not None:
        slot = item_slot(queue, watch.item)
        elapsed = now - watch.t0
        side = Lane(slot, at - elapsed, at + max(0.0, (slot.duration or 0.0) - elapsed))
    return front, side, ready


def _overlap_at(
    queue: Overlap, item: ItemRecord, slot: Slot, at: float, elapsed: float
) -> float | None:
    """When the next item is expected to start beside the running `item` (None: not)."""
    if item.overlap is None or queue._side is not None:
        return None
    delay = queue._delay
    if delay is not None and delay.reason == "overlap":
        return at + delay.remaining  # signalled: its delay runs
    if (item.uid, item.attempts, item.overlap) in queue._signals_seen:
        return None  # signalled and its delay over, yet nothing beside it: serial
    if slot.overlap_after is None:
        return None  # never seen: serial
    offset = slot.overlap_after - item.overlap_delay
    return at + max(0.0, offset - elapsed) + item.overlap_delay
