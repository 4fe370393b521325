"""Interval triggers: absolute time across DST, anchors, exactness and bad input."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from triggers_strategies import at, iso_utc

import timecontrol.triggers as T
from timecontrol._exceptions import NaiveDatetimeError

BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"


def u(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def gaps(values: list[datetime]) -> set[float]:
    return {(b - a).total_seconds() for a, b in pairwise(values)}


@pytest.mark.parametrize(
    ("zone", "anchor", "expected"),
    [
        # Berlin spring forward: 01:00 CET, then 03:00 CEST: still 3600 s apart.
        (BERLIN, (2025, 3, 30, 0, 0), ["01:00+0100", "03:00+0200", "04:00+0200"]),
        # Berlin fall back: 02:00 CEST, then 02:00 CET.
        (BERLIN, (2025, 10, 26, 1, 0), ["02:00+0200", "02:00+0100", "03:00+0100"]),
        (NEW_YORK, (2025, 3, 9, 0, 0), ["01:00-0500", "03:00-0400", "04:00-0400"]),
        (NEW_YORK, (2025, 11, 2, 0, 0), ["01:00-0400", "01:00-0500", "02:00-0500"]),
    ],
)
def test_hourly_interval_is_absolute_across_dst(
    zone: str, anchor: tuple[int, ...], expected: list[str]
) -> None:
    t = T.interval(hours=1, anchor=at(zone, *anchor))
    fires = t.preview(3, at(zone, *anchor))
    assert [f.strftime("%H:%M%z") for f in fires] == expected
    assert gaps(fires) == {3600.0}


def test_daily_interval_drifts_against_the_wall_clock() -> None:
    t = T.interval(days=1, anchor=at(BERLIN, 2025, 3, 29, 9, 0))
    fires = t.preview(3, u(2025, 3, 29))
    assert [f.strftime("%d %H:%M%z") for f in fires] == [
        "29 09:00+0100",
        "30 10:00+0200",  # 24 h later; use daily() for "09:00 local every day"
        "31 10:00+0200",
    ]


def test_anchor_is_first_fire_and_phase() -> None:
    anchor = u(2025, 1, 1, 12, 0, 7)
    t = T.interval(minutes=15, anchor=anchor)
    assert t.next(u(2020, 1, 1)) == anchor  # anchor in the future: it fires first
    assert t.next(anchor) == anchor + timedelta(minutes=15)
    # Far later: still on the anchor's phase, computed, not iterated.
    far = t.next(u(2035, 6, 1))
    assert far is not None
    assert (far - anchor) % timedelta(minutes=15) == timedelta(0)
    assert far - timedelta(minutes=15) <= u(2035, 6, 1) < far


def test_unanchored_binds_on_first_call_and_preview_does_not_bind() -> None:
    t = T.interval(30)
    assert not t.is_bound
    assert t.preview(2, u(2025, 1, 1)) == [u(2025, 1, 1, 0, 0, 30), u(2025, 1, 1, 0, 1)]
    assert not t.is_bound  # previewing did not start it
    assert t.next(u(2025, 1, 1, 10)) == u(2025, 1, 1, 10, 0, 30)
    assert t.is_bound
    assert t.anchor == u(2025, 1, 1, 10, 0, 30)
    assert t.next(u(2025, 1, 1, 10, 0, 45)) == u(2025, 1, 1, 10, 1)


def test_unanchored_binding_is_absolute_even_from_a_zoneinfo_after() -> None:
    # 01:30 CET + 1 h must be 03:30 CEST (absolute), not 02:30 (which does not exist).
    t = T.interval(hours=1)
    fire = t.next(at(BERLIN, 2025, 3, 30, 1, 30))
    assert fire is not None
    assert fire.isoformat() == "2025-03-30T03:30:00+02:00"


def test_microsecond_exact_after_many_periods() -> None:
    t = T.interval(0.1, anchor=u(2025, 1, 1))
    fire = t.next(u(2025, 1, 1) + timedelta(seconds=100_000 - 0.05))
    assert fire == u(2025, 1, 1) + timedelta(seconds=100_000)


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"seconds": 1}, "every 1 second"),
        ({"minutes": 15}, "every 15 minutes"),
        ({"hours": 1}, "every 1 hour"),
        ({"days": 2}, "every 2 days"),
        ({"weeks": 1}, "every 1 week"),
        ({"seconds": 1.5}, "every 1.5 s"),
    ],
)
def test_seconds_to_weeks(kwargs: dict[str, float], text: str) -> None:
    t = T.interval(anchor=u(2025, 1, 1), tz=BERLIN, **kwargs)
    assert t.explain().startswith(text + " of absolute time, from 2025-01-01 01:00:00+01:00")
    fires = t.preview(3, u(2024, 12, 31))
    assert gaps(fires) == {timedelta(**kwargs).total_seconds()}


@pytest.mark.parametrize(
    ("build", "needle"),
    [
        (lambda: T.interval(0), "0"),
        (lambda: T.interval(-5), "-5"),
        (lambda: T.interval(minutes=-1), "'minutes': -1"),
        (lambda: T.interval(math.nan), "nan"),
        (lambda: T.interval(math.inf), "inf"),
        (lambda: T.IntervalTrigger(timedelta(0)), "timedelta(0)"),
        (lambda: T.IntervalTrigger(-timedelta(hours=1)), "(-3600 s) is negative"),
        (lambda: T.IntervalTrigger("1h"), "'1h'"),  # type: ignore[arg-type]
        (lambda: T.interval(True), "True"),  # type: ignore[arg-type]
    ],
)
def test_bad_intervals(build: object, needle: str) -> None:
    with pytest.raises(T.IntervalError) as info:
        build()  # type: ignore[operator]
    assert needle in str(info.value)


def test_naive_anchor_and_after() -> None:
    with pytest.raises(NaiveDatetimeError, match="anchor"):
        T.interval(60, anchor=datetime(2025, 1, 1))
    with pytest.raises(NaiveDatetimeError, match="after"):
        T.interval(60).next(datetime(2025, 1, 1))


def test_json_round_trip_keeps_a_bound_anchor() -> None:
    t = T.interval(0.25)
    first = t.next(at(BERLIN, 2025, 7, 1, 12))
    d = t.to_json()
    assert d == {"type": "interval", "every": 0.25, "anchor": first.isoformat(), "tz": BERLIN}
    back = T.trigger_from_json(d)
    assert back == t
    assert iso_utc(back.preview(5, first)) == iso_utc(t.preview(5, first))


# ----------------------------------------------------------------------------- start= and the grid

STARTS = [
    u(2025, 1, 1, 9, 0, 0, 123456),
    u(2025, 6, 30, 23, 59, 59, 999999),
    at(BERLIN, 2025, 3, 30, 1, 30, 0).replace(microsecond=1),  # 30 min before spring forward
    at(BERLIN, 2025, 10, 26, 1, 59, 59).replace(microsecond=654321),  # before the fall back
    at(NEW_YORK, 2025, 11, 2, 0, 45).replace(microsecond=500000),
]


@pytest.mark.parametrize("start", STARTS, ids=lambda s: s.isoformat())
@pytest.mark.parametrize(
    "every_us",
    [100_000, 333_333, 3_600_000_000],  # seconds=0.1, seconds=1/3, seconds=3600
    ids=["0.1s", "1/3s", "3600s"],
)
def test_start_fixes_the_grid_to_the_microsecond(start: datetime, every_us: int) -> None:
    # The reported bug: fires at hh:59:59.999999 instead of on the start's grid.
    seconds = {100_000: 0.1, 333_333: 1 / 3, 3_600_000_000: 3600}[every_us]
    every = timedelta(microseconds=every_us)
    t = T.interval(seconds=seconds, start=start)
    assert t.every == every
    assert t.anchor == start
    grid = [start.astimezone(UTC) + k * every for k in range(12)]
    # From before the start, from the start itself, and from between two grid points.
    assert t.preview(12, start - timedelta(seconds=1)) == grid
    assert t.preview(11, start) == grid[1:]
    assert t.preview(10, grid[1] + every / 2) == grid[2:]
    # Far from the start: still exactly on the grid (integer arithmetic, no float drift).
    k = 10**7  # ten million periods on (for hours: in the year 3166)
    point = start.astimezone(UTC) + k * every
    assert t.next(point - timedelta(microseconds=1)) == point
    assert t.next(point) == point + every


@pytest.mark.parametrize("start", STARTS[2:], ids=lambda s: s.isoformat())
def test_start_grid_is_absolute_across_dst(start: datetime) -> None:
    fires = T.interval(hours=1, start=start).preview(4, start - timedelta(hours=1))
    assert gaps(fires) == {3600.0}  # elapsed time, whatever the clocks do
    assert len({f.utcoffset() for f in fires}) == 2  # the change falls inside
    assert all(f.microsecond == start.microsecond for f in fires)
    assert all((f - start) % timedelta(hours=1) == timedelta(0) for f in fires)


@given(
    start=st.datetimes(
        min_value=datetime(1990, 1, 1),
        max_value=datetime(2060, 1, 1),
        timezones=st.sampled_from([UTC, ZoneInfo(BERLIN), ZoneInfo(NEW_YORK)]),
    ),
    every_us=st.sampled_from([100_000, 333_333, 3_600_000_000]) | st.integers(1, 10**11),
    delta_us=st.integers(-(10**13), 10**13),
)
@settings(max_examples=300, deadline=None)
def test_next_is_the_first_grid_point_after(start: datetime, every_us: int, delta_us: int) -> None:
    every = timedelta(microseconds=every_us)
    t = T.IntervalTrigger(every, start=start)
    s = start.astimezone(UTC)  # (PEP 495: a time in a gap equals nothing in another zone)
    after = s + timedelta(microseconds=delta_us)
    fire = t.next(after)
    assert fire is not None
    assert (fire - s) % every == timedelta(0)
    assert fire > after
    assert fire == s or fire - every <= after


def test_start_and_anchor_are_one_thing() -> None:
    s = u(2025, 1, 1, 12, 0, 0, 7)
    assert T.interval(minutes=5, start=s) == T.interval(minutes=5, anchor=s)
    assert T.interval(minutes=5, start=s).to_json()["anchor"] == s.isoformat()
    with pytest.raises(T.IntervalError, match="only one"):
        T.interval(minutes=5, start=s, anchor=s)
    with pytest.raises(NaiveDatetimeError, match="start="):
        T.interval(minutes=5, start=datetime(2025, 1, 1))
