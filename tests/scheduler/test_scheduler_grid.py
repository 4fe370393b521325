"""The scheduler's integer fast path for interval triggers gives bit for bit what the trigger
itself gives (with the scheduler's rule for fire times rounded below themselves)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from timecontrol.scheduler._grid import grid_of
from timecontrol.triggers import interval

ANCHORS = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2300, 1, 1), timezones=st.just(UTC)
)
PERIODS = st.one_of(
    st.integers(1, 10_000),  # microseconds
    st.integers(1, 86_400 * 1_000_000),
    st.sampled_from([100_000, 1_000_000, 3_600_000_000, 86_400_000_000]),
)


def _slow(trigger: object, after: float, t: float) -> float | None:
    nxt = trigger.next(datetime.fromtimestamp(after, UTC))  # type: ignore[attr-defined]
    if nxt is None:
        return None
    s: float = nxt.timestamp()
    if s <= t:
        nxt = trigger.next(nxt)  # type: ignore[attr-defined]
        s = nxt.timestamp()
    return s


@settings(max_examples=400, deadline=None)
@given(anchor=ANCHORS, period_us=PERIODS, offset=st.floats(-1e6, 1e9), steps=st.integers(1, 6))
def test_grid_matches_the_trigger(
    anchor: datetime, period_us: int, offset: float, steps: int
) -> None:
    trigger = interval(period_us / 1e6, anchor=anchor)
    grid = grid_of(trigger)
    if grid is None:
        return  # a period the trigger rounds to zero microseconds is not on the fast path
    after = anchor.timestamp() + offset
    last = math.nan
    for _ in range(steps):
        fast = grid.next_after(after, after, last)
        slow = _slow(trigger, after, after)
        if fast is None:
            return  # the trigger decides there
        assert fast == slow
        after = last = fast
