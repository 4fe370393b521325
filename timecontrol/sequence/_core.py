"""The sequence's model: its points, its timeline, and the one intent it keeps armed.

A sequence keeps at most one intent in the host's Schedule: for its next point (the earliest
pending one by ``(planned, index)``). The host dispatches it, so the dispatch gate (engine
pause, panic) holds sequences as it holds jobs. Its action runs that one point's chain, then
arms the next: points never overlap, a point that falls due while another runs waits for
it, and a point inserted or triggered meanwhile simply joins the order.
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING, Any, Final

import anyio

from . import _kinds as k
from ._point import CANCELLED, FAILED, INTERRUPTED, PENDING, SKIPPED, SUCCEEDED, Point

if TYPE_CHECKING:
    from .._schedule import Intent
    from ._args import Step
    from ._host import SequenceHost

__all__ = ["ACTION_NAME", "CANCELLED_STATE", "CREATED", "FINISHED", "PAUSED", "RUNNING_STATE",
           "SequenceCore"]  # fmt: skip

#: The internal action behind every sequence's intents (routed by subject, the name).
ACTION_NAME: Final = "timecontrol.sequence"

CREATED: Final = "created"
RUNNING_STATE: Final = "running"
PAUSED: Final = "paused"
FINISHED: Final = "finished"
CANCELLED_STATE: Final = "cancelled"


class SequenceCore:
    """The state of one sequence and the arming of its next point."""

    def __init__(
        self,
        host: SequenceHost,
        name: str,
        steps: tuple[Step, ...],
        kwargs: dict[str, dict[str, Any]],
        on_error: str,
        on_pause: str,
    ) -> None:
        self._host = host
        self._name = name
        self._steps = steps
        self._kwargs = kwargs
        self._on_error = on_error
        self._on_pause = on_pause
        self._state: str = CREATED
        self._start: float | None = None
        self._points: dict[int, Point] = {}
        self._heap: list[tuple[float, int]] = []  # (planned, index); stale entries skipped
        self._manual_pending: set[int] = set()
        self._pending = 0
        self._running: Point | None = None
        self._intent: Intent | None = None
        self._paused_at: float | None = None
        self._joined: anyio.Event | None = None

    # -- helpers ------------------------------------------------------------------------------

    def _emit(self, kind: str, payload: dict[str, Any]) -> None:
        self._host.log._emit(kind, self._name, payload)

    def _now(self) -> float:
        return self._host.clock.time()

    def _new_point(
        self,
        kind: str,
        offset: float,
        shift: float,
        chain: tuple[Step, ...],
        kwargs: dict[str, dict[str, Any]],
        metadata: dict[str, Any],
        planned: float | None = None,
    ) -> Point:
        point = Point(self._name, len(self._points), kind, offset, shift, chain, kwargs, metadata)
        self._points[point.index] = point
        self._pending += 1
        if self._start is not None:
            self._plan(point, planned)
        return point

    def _plan(self, point: Point, planned: float | None = None) -> None:
        """Set a pending point's planned time (from the start unless given: a manual point
        is due exactly now) and queue it for arming."""
        assert self._start is not None
        point.planned = self._start + point.offset + point.shift if planned is None else planned
        heapq.heappush(self._heap, (point.planned, point.index))
        if point.manual:
            self._manual_pending.add(point.index)

    def _rebuild(self) -> None:
        self._heap = [
            (p.planned, p.index)
            for p in self._points.values()
            if p.status == PENDING and p.planned is not None
        ]
        heapq.heapify(self._heap)

    # -- the next point -----------------------------------------------------------------------

    def _next_point(self) -> Point | None:
        """The earliest pending point that may run now: any while running, only manual ones
        while paused (a manual trigger is an explicit request; the timeline waits)."""
        if self._state == PAUSED:
            manual = [self._points[i] for i in self._manual_pending]
            return min(manual, key=lambda p: (p.planned, p.index), default=None)
        if self._state != RUNNING_STATE:
            return None
        heap, points = self._heap, self._points
        while heap:
            planned, index = heap[0]
            point = points[index]
            if point.status == PENDING and point.planned == planned:
                return point
            heapq.heappop(heap)
        return None

    def _arm(self) -> None:
        """Keep the one intent pointed at the next point (or withdraw it)."""
        if self._running is not None or self._start is None:
            return  # the running point arms the next when it ends
        point = self._next_point()
        if point is None:
            self._disarm()
            if self._state == RUNNING_STATE and self._pending == 0:
                self._finish()
            return
        assert point.planned is not None
        current = self._intent
        if current is not None and current.due == point.planned:
            return
        self._disarm()
        self._intent = self._host.submit_trusted(
            ACTION_NAME, point.planned, None, self._name, 0, f"point {point.index}"
        )

    def _disarm(self) -> None:
        intent, self._intent = self._intent, None
        if intent is not None:
            # Quietly: the sequence's own bookkeeping intent, not a user's cancellation.
            self._host.schedule.cancel(intent)

    # -- ends ---------------------------------------------------------------------------------

    def _close_point(self, point: Point, status: str, reason: str = "") -> None:
        """A point is over: record its summary (the ``sequence.point`` event) and wake its
        waiters."""
        if point.status == PENDING:
            self._pending -= 1
        point.status = status
        point.reason = reason
        self._manual_pending.discard(point.index)
        if status in (SUCCEEDED, FAILED) or point.started is not None:
            point.completed = self._now()
        self._emit(k.POINT, point.record().to_json())
        point._finished()

    def _counts(self) -> dict[str, int]:
        counts = dict.fromkeys((SUCCEEDED, FAILED, SKIPPED, CANCELLED, INTERRUPTED), 0)
        for point in self._points.values():
            if point.status in counts:
                counts[point.status] += 1
        return counts

    def _finish(self) -> None:
        self._state = FINISHED
        self._emit(k.FINISHED, {"points": len(self._points), **self._counts()})
        self._wake()

    def _wake(self) -> None:
        joined, self._joined = self._joined, None
        if joined is not None:
            joined.set()

    def _over(self) -> bool:
        return self._state in (FINISHED, CANCELLED_STATE) and self._running is None
