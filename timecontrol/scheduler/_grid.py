"""Fire times of plain interval triggers in integer microseconds, without datetimes.

The scheduler asks a job's trigger for its next fire time once per run. For the most common
trigger, `IntervalTrigger` (``anchor + k × every``, absolute time), that question is a few
integer operations, while the trigger's own `next` (an aware `datetime` in, another out, plus
the float conversions around it) costs several microseconds -- about as much as the rest of a
run's dispatch. `Grid` answers it with the trigger's exact arithmetic:

* ``after`` (POSIX seconds) becomes whole microseconds exactly as
  ``datetime.fromtimestamp(after, UTC)`` rounds it (split, scale, round half to even);
* the next fire time is the first grid point strictly after that, in microseconds;
* it becomes POSIX seconds exactly as ``datetime.timestamp()`` computes them (an integer
  number of microseconds divided by 10**6, correctly rounded);
* a job's chain asks for the point after the one it got last time (`next_after`'s `last`):
  below 2**32 s (the year 2106) that point is recovered from its float with one rounding,
  and the answer is one addition.

So the result is bit for bit the float `Scheduler` got from the trigger (and the scheduler's
rule for a fire time rounded below itself is applied the same way). Only exact
`IntervalTrigger` instances that are bound (have an anchor) qualify, and only far from the
ends of `datetime`'s range, where the trigger may return None; anything else goes to the
trigger itself. Grids are immutable and shared by every job with the same anchor and period.
"""

from __future__ import annotations

import math
import weakref
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from ..triggers._interval import IntervalTrigger

__all__ = ["Grid", "grid_of", "unbound_interval"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US: Final = timedelta(microseconds=1)
_US: Final = 1_000_000
# Keep clear of datetime's range (years 1 and 9999), where the trigger itself overflows (and
# local offsets add up to a day): there the trigger answers.
_LOW_US: Final = 2 * 86_400 * _US  # also keeps clear of negative timestamps
_HIGH_US: Final = (datetime(9999, 12, 29, tzinfo=UTC) - _EPOCH) // _ONE_US
_LOW_S: Final = _LOW_US / _US
_HIGH_S: Final = _HIGH_US / _US
# Below 2**32 s a grid point's float is within 0.24 us of it, and ``s * 1e6`` adds at most
# 0.25 us of rounding: ``round(s * 1e6)`` is the point again.
_MEMO_S: Final = float(2**32)

_grids: weakref.WeakValueDictionary[tuple[int, int], Grid] = weakref.WeakValueDictionary()


class Grid:
    """``anchor + k × every`` in whole microseconds since the epoch (see the module doc)."""

    __slots__ = ("__weakref__", "anchor_us", "every_us")

    def __init__(self, anchor_us: int, every_us: int) -> None:
        self.anchor_us = anchor_us
        self.every_us = every_us

    def next_after(self, after: float, t: float, last: float) -> float | None:
        """The first grid point strictly after `after` (POSIX seconds) and after `t`, as
        `IntervalTrigger.next` and the scheduler's rounding rule find it; None when `after`
        or the answer lies where the trigger itself must decide (near year 1 or 9999).

        `t` is the time `after` came from: a fire time that ``fromtimestamp`` rounds below
        itself gives that fire time back, and the scheduler then takes the next one.
        `last` is the point this grid returned last time for the asking job (or NaN).
        """
        e = self.every_us
        if after == last and after < _MEMO_S:
            r = round(after * 1e6) + e  # `after` is a grid point: the next one
        elif _LOW_S < after < _HIGH_S:
            u = _to_us(after)
            a = self.anchor_us
            r = a if u < a else a + ((u - a) // e + 1) * e
        else:
            return None
        s = r / _US
        if s <= t:
            r += e
            s = r / _US
        return s if r < _HIGH_US else None

    def point(self, k: int) -> float:
        """The `k`-th grid point (k = 0 is the anchor) as POSIX seconds, as the trigger
        returns it (``datetime.timestamp()`` of whole microseconds)."""
        return (self.anchor_us + k * self.every_us) / _US

    def index_at_or_before(self, t: float) -> int | None:
        """The largest k with ``point(k) <= t`` (compared as floats, exactly as the scheduler
        compares fire times), or None where the trigger itself must decide (see above).

        This is how a backlog of any length is counted without walking it: the fire times
        from ``point(i)`` to ``point(j)`` are ``j - i + 1``.
        """
        if not _LOW_S < t < _HIGH_S:
            return None
        k = (_to_us(t) - self.anchor_us) // self.every_us
        # The microsecond rounding is at most one step off: settle it on the floats.
        while self.point(k + 1) <= t:
            k += 1
        while self.point(k) > t:
            k -= 1
        return k


def _to_us(t: float) -> int:
    """`t` in whole microseconds, rounded as ``datetime.fromtimestamp(t, UTC)`` does it:
    split, scale, round half to even, carry."""
    frac, whole = math.modf(t)
    us = round(frac * 1e6)
    if us >= _US:
        us -= _US
        whole += 1.0
    elif us < 0:
        us += _US
        whole -= 1.0
    return int(whole) * _US + us


def grid_of(trigger: Any) -> Grid | None:
    """The (shared) `Grid` of a bound, plain `IntervalTrigger`; None for any other trigger."""
    if type(trigger) is not IntervalTrigger:
        return None
    anchor = trigger.anchor
    if anchor is None:
        return None  # binds at its first next(); the trigger does that itself
    every_us = trigger.every // _ONE_US
    if every_us <= 0:
        return None
    key = ((anchor - _EPOCH) // _ONE_US, every_us)
    grid = _grids.get(key)
    if grid is None:
        grid = _grids[key] = Grid(*key)
    return grid


def unbound_interval(trigger: Any) -> bool:
    """True for a plain `IntervalTrigger` still waiting for its anchor (bound by next())."""
    return type(trigger) is IntervalTrigger and trigger.anchor is None
