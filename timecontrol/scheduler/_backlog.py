"""Fire times due at once (a backlog): the one misfire rule, and spans counted without walking.

A backlog arises whenever a job's next fire time is dispatched late: after a pause, an engine
hold, a restart after downtime of any length. Its fire times are settled at once, each in
exactly one record, and a run of consecutive fire times with the same fate is *one* record
(first, last, count). So a 1 Hz job down for two days gets a handful of records for its
172,798 missed fire times, each with its exact count.

* `beyond_grace` is the misfire rule, the only one: the fire path, the backlog and the queue
  all ask it.
* For a plain interval trigger (`Grid`) the backlog is counted in closed form: the fire times
  from index i to j are ``j - i + 1``, and the grace window's edge is found by arithmetic and
  settled with `beyond_grace` itself.
* Any other trigger is walked one fire time at a time, keeping only counters (memory stays
  constant), up to `WALK_LIMIT` fire times per span; a longer span is closed by galloping to
  its end (`_tail`), and its record says ``count_exact: false`` (its count a lower bound).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final

from ._grid import Grid

__all__ = ["WALK_LIMIT", "Backlog", "Span", "beyond_grace", "settle"]

#: Fire times walked one by one per span for triggers without closed-form arithmetic.
WALK_LIMIT: Final = 200_000

After = Callable[[float], float | None]


def beyond_grace(grace: float | None, fire: float, now: float) -> bool:
    """The misfire rule: fire time `fire` starting at `now` is more than `grace` s late."""
    return grace is not None and now - fire > grace


class Span:
    """Consecutive fire times with one fate: the first, the last and how many."""

    __slots__ = ("before_last", "count", "exact", "first", "head", "keep", "last")

    def __init__(self, keep: int = 1) -> None:
        self.first = math.nan
        self.last = math.nan
        self.before_last: float | None = None  # the fire time before `last`, if in the span
        self.count = 0
        self.exact = True
        self.keep = keep
        self.head: list[float] = []  # the first `keep` fire times

    def add(self, t: float) -> None:
        """Append fire time `t` (later than every one before)."""
        if not self.count:
            self.first = t
        else:
            self.before_last = self.last
        self.last = t
        self.count += 1
        if len(self.head) < self.keep:
            self.head.append(t)

    def close_uncounted(self, last: float, before_last: float | None) -> None:
        """End the span at `last` after fire times that were not walked: the count becomes a
        lower bound (the walked ones plus `last`)."""
        if last > self.last:
            skipped_more = before_last is not None and before_last > self.last
            self.before_last = before_last if skipped_more else self.last
            self.last = last
            self.count += 2 if skipped_more else 1
            self.exact = False

    def payload(self) -> dict[str, Any]:
        """The record fields of this span: scheduled, last, count (and count_exact)."""
        out: dict[str, Any] = {"scheduled": self.first, "last": self.last, "count": self.count}
        if not self.exact:
            out["count_exact"] = False
        return out

    def __bool__(self) -> bool:
        return self.count > 0

    def __repr__(self) -> str:
        return f"<Span {self.first}..{self.last} count={self.count} exact={self.exact}>"


class Backlog:
    """A settled backlog: fire times beyond the grace (`missed`), those within it (`due`),
    and the first fire time after it (`next`)."""

    __slots__ = ("due", "missed", "next")

    def __init__(self, missed: Span, due: Span, nxt: float | None) -> None:
        self.missed = missed
        self.due = due
        self.next = nxt


def settle(
    after: After,
    grid: Grid | None,
    first: float,
    until: float,
    *,
    grace: float | None = None,
    now: float | None = None,
    keep: int = 2,
) -> Backlog:
    """The fire times from `first` (a fire time) up to `until`, split by the misfire rule.

    `after(t)` is the job's next fire time after `t` (window and limits included); `grid`
    the trigger's arithmetic when it has one; `grace` and `now` the misfire rule's inputs;
    `keep` how many of the due fire times to list (`Span.head`).
    """
    when = until if now is None else now
    if first > until:
        return Backlog(Span(), Span(keep), first)
    if grid is not None:
        counted = _settle_grid(after, grid, first, until, grace, when, keep)
        if counted is not None:
            return counted
    missed, due = Span(), Span(keep)
    t: float | None = first
    if grace is not None:
        t = _walk(after, t, until, missed, lambda x: not beyond_grace(grace, x, when))
        if t is not None and t <= until and beyond_grace(grace, t, when):
            # Too many to walk: jump to the grace window's edge, and end the span before it.
            edge = _grace_edge(after, t, until, grace, when)
            end = until if edge is None else math.nextafter(edge, -math.inf)
            before, last = _tail(after, end, missed.last)
            if last is not None:
                missed.close_uncounted(last, before)
            t = edge if edge is not None else after(missed.last)
    t = _walk(after, t, until, due, lambda x: False)
    if t is not None and t <= until:
        before, last = _tail(after, until, due.last)  # too many to walk: gallop to the end
        if last is not None:
            due.close_uncounted(last, before)
        t = after(due.last)
    return Backlog(missed, due, t)


def _walk(
    after: After, t: float | None, until: float, span: Span, stop: Callable[[float], bool]
) -> float | None:
    """Add fire times from `t` to `span` while they are due and not `stop`; returns the first
    one not added (None when the trigger ends). Stops after `WALK_LIMIT` fire times."""
    while t is not None and t <= until and not stop(t):
        if span.count >= WALK_LIMIT:
            return t
        span.add(t)
        t = after(t)
    return t


def _grace_edge(after: After, t: float, until: float, grace: float, now: float) -> float | None:
    """The first fire time after `t`, up to `until`, within `grace` (None if there is none)."""
    edge = after(max(t, now - grace - 1.0))
    while edge is not None and edge <= until and beyond_grace(grace, edge, now):
        edge = after(edge)
    return edge if edge is not None and edge <= until else None


def _tail(after: After, until: float, lo: float) -> tuple[float | None, float | None]:
    """The last two fire times in ``(lo, until]``, found by galloping back from `until`
    (``(None, None)`` if there is none; the first is None if there is only one)."""
    width = 1.0
    while True:
        x = max(lo, until - width)
        t = after(x)
        if t is not None and t <= until:
            before: float | None = None
            steps = 0
            while steps < WALK_LIMIT:
                nxt = after(t)
                if nxt is None or nxt > until:
                    break
                before, t = t, nxt
                steps += 1
            if before is not None or x <= lo:
                return before, t
        elif x <= lo:
            return None, None
        width *= 4


def _settle_grid(
    after: After,
    grid: Grid,
    first: float,
    until: float,
    grace: float | None,
    now: float,
    keep: int,
) -> Backlog | None:
    """`settle` in closed form for a plain interval trigger (None: let the walk decide)."""
    k0 = grid.index_at_or_before(first)
    hi = grid.index_at_or_before(until)
    if k0 is None or hi is None or grid.point(k0) != first:
        return None
    nxt_first = after(first)
    if nxt_first is not None and nxt_first != grid.point(k0 + 1):
        return None  # a window or a limit cuts the grid: walk it
    hi = max(hi, k0)
    if hi > k0 and after(grid.point(hi - 1)) != grid.point(hi):
        return None  # the trigger stops before `until` (a window, a limit): walk it
    kg = k0
    if grace is not None:
        edge = grid.index_at_or_before(now - grace)
        if edge is None:
            return None
        kg = min(max(edge, k0 - 1), hi)
        # Settle the edge with the rule itself, never with a second formula.
        while kg + 1 <= hi and beyond_grace(grace, grid.point(kg + 1), now):
            kg += 1
        while kg >= k0 and not beyond_grace(grace, grid.point(kg), now):
            kg -= 1
        kg += 1
    missed, due = Span(), Span(keep)
    if kg > k0:
        _grid_span(grid, missed, k0, kg - 1)
    if kg <= hi:
        _grid_span(grid, due, kg, hi)
    last = grid.point(hi)
    nxt = after(last)
    if nxt is not None and nxt <= until:
        return None  # the trigger goes on where the grid said it ends: walk it
    return Backlog(missed, due, nxt)


def _grid_span(grid: Grid, span: Span, lo: int, hi: int) -> None:
    span.first = grid.point(lo)
    span.last = grid.point(hi)
    span.count = hi - lo + 1
    span.before_last = grid.point(hi - 1) if hi > lo else None
    span.head = [grid.point(k) for k in range(lo, min(lo + span.keep, hi + 1))]
