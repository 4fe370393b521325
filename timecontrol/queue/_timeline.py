"""Items placed on a timeline the way the executor runs them, overlaps included.

Used by the ETA (from now, with the running items' expected rests) and by the dry run (from
the start, with learned or simulated durations). The rules are the executor's
(`._executor`, `._overlap`):

* an item starts once the one before it has ended and the delay after that one has passed;
* an item that declares an overlap, whose signal offset (from its start) is known, lets the
  next item start at its start + that offset + its ``overlap_delay`` — if that is before its
  own end, the next item is in the same queue, and needs none of its resources — beside it;
* an item that started beside another never lets a third one overlap (two at most): the item
  after it starts once both have ended, after the delay after the overlapping item.

Nothing known (an unknown duration counts as 0 s, an unknown signal offset as no overlap)
gives the serial timeline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["Lane", "Placed", "Slot", "place"]


@dataclass(frozen=True, slots=True)
class Slot:
    """One item to place.

    Attributes:
        uid: the item's uid.
        duration: its expected seconds (None: unknown, counted as 0).
        overlap_after: seconds from its start at which the next item may start beside it
            (its signal's learned offset plus its ``overlap_delay``); None: no overlap.
        resources: what it holds while it runs.
        queue: its queue (an overlap never crosses queues).
        delay_after: seconds waited after it before the next item.
    """

    uid: str
    duration: float | None
    overlap_after: float | None
    resources: frozenset[str]
    queue: str
    delay_after: float


@dataclass(frozen=True, slots=True)
class Lane:
    """An item on the timeline: when it starts and ends, and when the next may start beside
    it (None: it does not let one)."""

    slot: Slot
    start: float
    end: float
    overlap_at: float | None = None


@dataclass(frozen=True, slots=True)
class Placed:
    """An item placed: its start and end, and the uid of the item it runs beside."""

    uid: str
    start: float
    end: float
    overlaps: str | None


def _beside(front: Lane | None, side: Lane | None, slot: Slot) -> float | None:
    """When `slot` would start beside `front` (None: it does not overlap)."""
    if front is None or side is not None or front.overlap_at is None:
        return None
    if front.overlap_at >= front.end or slot.queue != front.slot.queue:
        return None
    if slot.resources & front.slot.resources:
        return None
    return front.overlap_at


def place(
    slots: Iterable[Slot],
    *,
    ready: float,
    front: Lane | None = None,
    side: Lane | None = None,
    stop: Callable[[Slot, float], bool] | None = None,
) -> tuple[list[Placed], float]:
    """Place `slots` in order; (the items placed, when the last of everything ends).

    `ready`: when the next item may start if nothing runs (now, or the end of a delay in
    progress). `front`, `side`: the items running now (the one in front, the overlapping
    one). `stop(slot, start)`: True to place nothing from `slot` on (a scheduled stop).
    """
    placed: list[Placed] = []
    end = max([ready] + [lane.end for lane in (front, side) if lane is not None])
    for slot in slots:
        overlaps = None
        start = _beside(front, side, slot)
        if start is not None and front is not None:
            overlaps = front.slot.uid
        elif side is not None:
            start = max(side.end, front.end if front is not None else side.end)
            start += side.slot.delay_after
        elif front is not None:
            start = front.end + front.slot.delay_after
        else:
            start = ready
        if stop is not None and stop(slot, start):
            break
        lane_end = start + (slot.duration or 0.0)
        placed.append(Placed(slot.uid, start, lane_end, overlaps))
        end = max(end, lane_end)
        if overlaps is not None:
            side = Lane(slot, start, lane_end)
        else:
            at = None if slot.overlap_after is None else start + slot.overlap_after
            front, side = Lane(slot, start, lane_end, at), None
    return placed, end
