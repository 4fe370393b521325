"""The Schedule: what *will* happen, as immutable intents in a heap.

Intents are ordered by ``(due, priority, seq)``: the earliest first, then the smaller
priority, then the one scheduled first, so that the order of things due at the same instant is
deterministic. Cancelling an intent never mutates it: the Schedule remembers the cancelled
sequence numbers and drops those intents when they reach the top of the heap.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec

from ._clock import to_timestamp

__all__ = ["Intent", "Schedule"]


class Intent(msgspec.Struct, frozen=True, order=True, gc=False):
    """Something the engine intends to do at a wall time.

    The field order *is* the sort order: ``due``, then ``priority``, then ``seq`` (which is
    unique, so later fields never take part in a comparison).

    Attributes:
        due: wall time, POSIX seconds (UTC); see `due_at`.
        priority: smaller sorts first among intents due at the same instant (default 0).
        seq: the Schedule's sequence number, unique and increasing.
        action: the registered name of the coroutine function to run.
        subject: what it is for (a job id, a plan id); copied into the events it produces.
        kwargs: JSON keyword arguments for the action, or None.
        reason: why it exists, e.g. ``"trigger"``, ``"manual"``, ``"retry"``.
    """

    due: float
    priority: int
    seq: int
    action: str
    subject: str = ""
    kwargs: dict[str, Any] | None = None
    reason: str = ""

    @property
    def due_at(self) -> datetime:
        """The due time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.due, UTC)


class Schedule:
    """A priority queue of `Intent`s with O(log n) push/pop/peek and O(1) amortised cancel.

    Not thread-safe: it belongs to the engine's loop like everything on the hot path.
    """

    __slots__ = ("_cancelled", "_heap", "_live", "_next_seq")

    def __init__(self) -> None:
        self._heap: list[Intent] = []
        self._live: set[int] = set()  # seqs that are pending and not cancelled
        self._cancelled: set[int] = set()  # seqs still in the heap but cancelled
        self._next_seq = 1

    def add(
        self,
        due: datetime | float,
        action: str,
        *,
        subject: str = "",
        kwargs: dict[str, Any] | None = None,
        priority: int = 0,
        reason: str = "",
    ) -> Intent:
        """Create an intent with the next sequence number and push it."""
        intent = Intent(
            to_timestamp(due, "due"), priority, self._next_seq, action, subject, kwargs, reason
        )
        self._next_seq += 1
        heapq.heappush(self._heap, intent)
        self._live.add(intent.seq)
        return intent

    def push(self, intent: Intent) -> None:
        """Push an existing intent (e.g. one restored from a store), keeping its `seq`."""
        if intent.seq in self._live or intent.seq in self._cancelled:
            raise ValueError(f"an intent with seq {intent.seq} is already in this Schedule")
        if intent.seq >= self._next_seq:
            self._next_seq = intent.seq + 1
        heapq.heappush(self._heap, intent)
        self._live.add(intent.seq)

    def cancel(self, intent: Intent | int) -> bool:
        """Cancel an intent (or its seq). True if it was pending, False if not here any more."""
        seq = intent if isinstance(intent, int) else intent.seq
        if seq not in self._live:
            return False
        self._live.discard(seq)
        self._cancelled.add(seq)
        # Lazy deletion keeps cancel O(1) amortised; compact when the dead outnumber the live
        # so memory stays bounded under a cancel-heavy workload.
        if len(self._cancelled) > 64 and len(self._cancelled) * 2 > len(self._heap):
            self._compact()
        return True

    def _compact(self) -> None:
        cancelled = self._cancelled
        self._heap = [i for i in self._heap if i.seq not in cancelled]
        heapq.heapify(self._heap)
        self._cancelled = set()

    def _drop_cancelled_top(self) -> None:
        heap, cancelled = self._heap, self._cancelled
        while heap and heap[0].seq in cancelled:
            cancelled.discard(heapq.heappop(heap).seq)

    def peek(self) -> Intent | None:
        """The next intent without removing it, or None when empty."""
        if self._cancelled:
            self._drop_cancelled_top()
        return self._heap[0] if self._heap else None

    def pop(self) -> Intent | None:
        """Remove and return the next intent, or None when empty."""
        if self._cancelled:
            self._drop_cancelled_top()
        if not self._heap:
            return None
        intent = heapq.heappop(self._heap)
        self._live.discard(intent.seq)
        return intent

    def pop_due(self, now: float) -> Intent | None:
        """Remove and return the next intent if it is due at wall time `now`, else None."""
        if self._cancelled:
            self._drop_cancelled_top()
        heap = self._heap
        if heap and heap[0].due <= now:
            intent = heapq.heappop(heap)
            self._live.discard(intent.seq)
            return intent
        return None

    def __len__(self) -> int:
        return len(self._live)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __iter__(self) -> Iterator[Intent]:
        """The pending intents in dispatch order (a snapshot; the Schedule is not consumed)."""
        cancelled = self._cancelled
        return iter(sorted(i for i in self._heap if i.seq not in cancelled))

    def __contains__(self, intent: object) -> bool:
        return isinstance(intent, Intent) and intent.seq in self._live

    def __repr__(self) -> str:
        nxt = self.peek()
        return f"<Schedule pending={len(self)} next={nxt.due_at.isoformat() if nxt else None}>"
