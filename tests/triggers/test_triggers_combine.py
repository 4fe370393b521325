"""One-shot dates, union/intersection, window, max_executions, jitter, and JSON revival."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from triggers_strategies import at, iso_utc

import timecontrol.triggers as T
from timecontrol._exceptions import NaiveDatetimeError, TimeControlError

BERLIN = "Europe/Berlin"


def u(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# ----------------------------------------------------------------------------- one-shot


def test_once_at_an_instant() -> None:
    when = at(BERLIN, 2025, 6, 1, 9, 30)
    t = T.once(when)
    assert t.next(u(2025, 1, 1)) == when
    assert t.next(u(2025, 1, 1)).isoformat() == "2025-06-01T09:30:00+02:00"  # type: ignore[union-attr]
    assert t.next(when) is None
    assert t.preview(5, u(2025, 1, 1)) == [when]
    assert t.explain() == "once, at 2025-06-01 09:30:00+02:00"


@pytest.mark.parametrize(
    ("wall", "kwargs", "expected"),
    [
        ("2025-06-01 09:30", {}, ["2025-06-01T09:30:00+02:00"]),
        ("2025-03-30T02:30", {}, ["2025-03-30T03:00:00+02:00"]),  # in the gap: its end
        ("2025-03-30T02:30", {"nonexistent": "shift"}, ["2025-03-30T03:30:00+02:00"]),
        ("2025-03-30T02:30", {"nonexistent": "skip"}, []),
        ("2025-10-26T02:30", {}, ["2025-10-26T02:30:00+02:00"]),
        ("2025-10-26T02:30", {"ambiguous": "last"}, ["2025-10-26T02:30:00+01:00"]),
        (
            "2025-10-26T02:30",
            {"ambiguous": "both"},
            ["2025-10-26T02:30:00+02:00", "2025-10-26T02:30:00+01:00"],
        ),
    ],
)
def test_once_at_a_wall_clock_time(wall: str, kwargs: dict[str, Any], expected: list[str]) -> None:
    t = T.once(wall, tz=BERLIN, **kwargs)
    assert [f.isoformat() for f in t.preview(5, u(2025, 1, 1))] == expected
    assert T.trigger_from_json(t.to_json()) == t


def test_once_bad_input() -> None:
    with pytest.raises(NaiveDatetimeError, match="no tz"):
        T.once(datetime(2025, 1, 1))
    with pytest.raises(T.TriggerError, match="already carries a UTC offset"):
        T.once(u(2025, 1, 1), tz=BERLIN)
    with pytest.raises(T.TriggerError, match="'tomorrow'"):
        T.once("tomorrow", tz=BERLIN)
    with pytest.raises(T.UnknownTimeZoneError, match="'Berlin'"):
        T.once("2025-01-01 09:00", tz="Berlin")


# ----------------------------------------------------------------------------- combinations


def test_union_deduplicates_shared_instants() -> None:
    hourly = T.cron("0 * * * *")
    half_hourly = T.interval(minutes=30, anchor=u(2025, 1, 1))
    both = hourly | half_hourly
    fires = both.preview(4, u(2025, 1, 1))
    assert iso_utc(fires) == [
        "2025-01-01T00:30:00",
        "2025-01-01T01:00:00",  # both fire: once
        "2025-01-01T01:30:00",
        "2025-01-01T02:00:00",
    ]
    assert isinstance(both, T.UnionTrigger)
    assert len((both | T.cron("15 * * * *")).children) == 3  # flattened
    assert both.explain() == (
        "either (every hour, on the hour, UTC) or (every 30 minutes of absolute time, from "
        "2025-01-01 00:00:00+00:00, UTC)"
    )


def test_union_across_zones_orders_by_instant() -> None:
    tokyo = T.daily("09:00", "Asia/Tokyo")  # 00:00 UTC
    berlin = T.daily("00:30", BERLIN)  # 23:30 UTC in winter
    fires = T.union(tokyo, berlin).preview(3, u(2025, 1, 1, 12))
    assert iso_utc(fires) == ["2025-01-01T23:30:00", "2025-01-02T00:00:00", "2025-01-02T23:30:00"]


def test_intersection() -> None:
    t = T.cron("*/15 * * * *") & T.cron("*/10 * * * *")
    assert [f.strftime("%H:%M") for f in t.preview(3, u(2025, 1, 1))] == ["00:30", "01:00", "01:30"]
    weekday_mornings = T.intersection(
        T.interval(hours=1, anchor=u(2025, 1, 1)), T.weekly(["sat"], ["06:00", "07:00"])
    )
    assert iso_utc(weekday_mornings.preview(3, u(2025, 1, 1))) == [
        "2025-01-04T06:00:00",
        "2025-01-04T07:00:00",
        "2025-01-11T06:00:00",
    ]


def test_intersection_that_never_coincides_gives_up() -> None:
    t = T.intersection(T.daily("09:00"), T.daily("10:00"), search_limit=50)
    assert t.next(u(2025, 1, 1)) is None
    with pytest.raises(T.TriggerError, match="at least two"):
        T.intersection(T.daily("09:00"))


# ----------------------------------------------------------------------------- window


def test_window_is_inclusive_at_both_ends() -> None:
    t = T.cron("0 * * * *").window(start=u(2025, 1, 1, 3), end=u(2025, 1, 1, 5))
    assert iso_utc(t.preview(10, u(2025, 1, 1))) == [
        "2025-01-01T03:00:00",
        "2025-01-01T04:00:00",
        "2025-01-01T05:00:00",
    ]
    assert t.next(u(2025, 1, 1, 5)) is None


def test_window_start_given_in_a_dst_zone() -> None:
    # 03:00 CEST on the spring-forward day is 01:00 UTC; wall-clock arithmetic would miss it.
    t = T.interval(minutes=30, anchor=u(2025, 3, 30)).window(start=at(BERLIN, 2025, 3, 30, 3))
    assert iso_utc([t.next(u(2025, 3, 29))]) == ["2025-03-30T01:00:00"]  # type: ignore[list-item]


def test_window_errors() -> None:
    with pytest.raises(T.WindowError) as info:
        T.cron("* * * * *").window(start=u(2025, 2, 1), end=u(2025, 1, 1))
    assert "end=2025-01-01T00:00:00+00:00 is before start=2025-02-01T00:00:00+00:00" in str(
        info.value
    )
    with pytest.raises(T.WindowError, match="needs a start, an end"):
        T.cron("* * * * *").window()
    with pytest.raises(NaiveDatetimeError):
        T.cron("* * * * *").window(start=datetime(2025, 1, 1))


# ----------------------------------------------------------------------------- limit


def test_limit_counts_fire_times_not_calls() -> None:
    t = T.cron("0 * * * *").limit(3)
    first = t.next(u(2025, 1, 1))  # binds the origin
    assert t.origin == u(2025, 1, 1)
    assert t.next(u(2025, 1, 1)) == first  # asking again uses nothing up
    assert iso_utc(t.preview(10, u(2025, 1, 1))) == [
        "2025-01-01T01:00:00",
        "2025-01-01T02:00:00",
        "2025-01-01T03:00:00",
    ]
    assert t.next(u(2025, 1, 1, 3)) is None
    assert t.next(u(2024, 12, 31)) == first  # before the origin: the first one
    assert t.explain() == (
        "every hour, on the hour, UTC, at most 3 times (counted from 2025-01-01 00:00:00+00:00)"
    )


def test_limit_resumes_from_json_mid_way() -> None:
    t = T.interval(60).limit(5)
    fires = [t.next(u(2025, 1, 1))]
    fires.append(t.next(fires[-1]))  # type: ignore[arg-type]
    revived = T.trigger_from_json(json.loads(json.dumps(t.to_json())))
    assert revived == t
    rest = revived.preview(10, fires[-1])  # type: ignore[arg-type]
    assert len(fires) + len(rest) == 5
    assert rest == t.preview(10, fires[-1])  # type: ignore[arg-type]


def test_limit_inside_a_window() -> None:
    t = T.cron("0 * * * *").window(start=u(2025, 1, 1, 10)).limit(2, origin=u(2025, 1, 1))
    assert iso_utc(t.preview(5, u(2025, 1, 1))) == ["2025-01-01T10:00:00", "2025-01-01T11:00:00"]


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3"])
def test_limit_errors(bad: object) -> None:
    with pytest.raises(T.WindowError, match=repr(bad).replace(".", r"\.")):
        T.cron("* * * * *").limit(bad)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- jitter


def test_jitter_is_deterministic_bounded_and_seeded() -> None:
    base = T.cron("0 * * * *")
    a = base.jitter(120, seed=7)
    b = T.cron("0 * * * *").jitter(120, seed=7)
    c = base.jitter(120, seed=8)
    after = u(2025, 1, 1)
    fa, fb, fc = a.preview(50, after), b.preview(50, after), c.preview(50, after)
    assert fa == fb
    assert fa != fc
    # The 00:00 base itself may be delayed past `after`: pair from 2 minutes earlier.
    bases = base.preview(50, after - timedelta(minutes=2))
    offsets = [(f - g).total_seconds() for f, g in zip(fa, bases, strict=True)]
    assert all(0 <= o < 120 for o in offsets)
    assert len(set(offsets)) > 40  # actually spread out
    assert T.trigger_from_json(a.to_json()).preview(50, after) == fa
    assert (
        a.explain()
        == "every hour, on the hour, UTC, each delayed by up to 2 minutes (jitter seed 7)"
    )


def test_symmetric_jitter_can_move_earlier_and_still_finds_every_fire() -> None:
    base = T.cron("0 * * * *")
    t = base.jitter(600, seed=3, symmetric=True)
    fires = t.preview(48, u(2025, 1, 1))

    def nearest_hour(f: datetime) -> datetime:
        return (f + timedelta(minutes=30)).replace(minute=0, second=0, microsecond=0)

    shifts = [(f - nearest_hour(f)).total_seconds() for f in fires]
    assert min(shifts) < 0 < max(shifts)
    assert all(-600 <= s < 600 for s in shifts)
    assert all(x < y for x, y in pairwise(fires))
    # A fire jittered to before its base is still found from just before it.
    early = next(f for f, s in zip(fires, shifts, strict=False) if s < 0)
    assert t.next(early - timedelta(microseconds=1)) == early


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"max_seconds": -1}, "-1"),
        ({"max_seconds": float("nan")}, "nan"),
        ({"max_seconds": 5, "seed": -1}, "seed=-1"),
        ({"max_seconds": 5, "seed": True}, "seed=True"),
        ({"max_seconds": 5, "seed": 1.5}, "seed=1.5"),
    ],
)
def test_jitter_errors(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(T.JitterError) as info:
        T.cron("* * * * *").jitter(**kwargs)
    assert needle in str(info.value)


# ----------------------------------------------------------------------------- JSON revival

ALL = [
    T.cron("*/15 9-17 * * 1-5", BERLIN),
    T.daily("09:00", BERLIN),
    T.weekly(["mon"], "09:00"),
    T.monthly("last", "08:00"),
    T.interval(hours=1, anchor=u(2025, 1, 1)),
    T.timepoints.pairs((6, 60), (10, 120), start=u(2025, 1, 1)),
    T.once(u(2025, 6, 1)),
    T.once("2025-06-01 09:00", tz=BERLIN),
    T.cron("0 * * * *") | T.daily("09:30"),
    T.cron("0 * * * *") & T.daily("09:00"),
    T.cron("0 * * * *").window(end=u(2026, 1, 1)),
    T.cron("0 * * * *").limit(3),
    T.cron("0 * * * *").jitter(1.5, seed=2, symmetric=True),
]


@pytest.mark.parametrize("trigger", ALL, ids=lambda t: type(t).__name__)
def test_every_family_is_a_trigger_with_plain_json(trigger: T.TriggerBase) -> None:
    assert isinstance(trigger, T.Trigger)
    d = trigger.to_json()
    assert isinstance(d["type"], str)
    assert json.loads(json.dumps(d)) == d  # plain JSON types only
    assert T.trigger_from_json(d) == trigger
    assert trigger.explain()
    with pytest.raises(NaiveDatetimeError):
        trigger.next(datetime(2025, 1, 1))


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ([], "not a JSON object"),
        ({"type": "sometimes"}, "'sometimes'"),
        ({}, "None"),
        ({"type": "cron"}, "'expr'"),
        ({"type": "cron", "expr": 5, "tz": "UTC"}, "expr=5"),
        ({"type": "cron", "expr": "* * * * *", "tz": 5}, "tz=5"),
        ({"type": "interval", "every": "1h"}, "every='1h'"),
        ({"type": "interval", "every": 60, "anchor": "yesterday"}, "anchor='yesterday'"),
        ({"type": "interval", "every": 60, "anchor": "2025-01-01T00:00"}, "*with* a UTC offset"),
        ({"type": "timepoints", "blocks": [[0, 6]]}, "[[0, 6]]"),
        ({"type": "limit", "trigger": {"type": "daily"}, "max_executions": 3}, "'at'"),
        ({"type": "limit", "trigger": "x", "max_executions": 3}, "trigger='x'"),
        ({"type": "union", "triggers": {}}, "triggers={}"),
        (
            {
                "type": "jitter",
                "trigger": {"type": "cron", "expr": "* * * * *", "tz": "UTC"},
                "max_seconds": 1,
                "seed": 0,
                "symmetric": "yes",
            },
            "symmetric='yes'",
        ),
    ],
)
def test_bad_specs(spec: Any, needle: str) -> None:
    with pytest.raises(T.TriggerSpecError) as info:
        T.trigger_from_json(spec)
    assert needle in str(info.value)
    assert isinstance(info.value, TimeControlError)


def test_bad_preview_count() -> None:
    with pytest.raises(T.TriggerError, match="n=-1"):
        T.daily("09:00").preview(-1, u(2025, 1, 1))
    assert T.daily("09:00").preview(0, u(2025, 1, 1)) == []


def test_triggers_are_unhashable_values() -> None:
    with pytest.raises(TypeError):
        hash(T.daily("09:00"))
    assert T.daily("09:00") == T.daily("09:00:00")
    assert T.daily("09:00") != T.daily("09:01")
    assert T.daily("09:00") != "09:00"


def test_wrapped_unbound_origins_bind_at_the_callers_after() -> None:
    after = u(2025, 1, 1, 12)
    jittered = T.interval(60).jitter(10, seed=1)
    jittered.next(after)
    assert T.trigger_from_json(jittered.to_json()["trigger"]).anchor == after + timedelta(
        seconds=60
    )
    windowed = T.timepoints.block(3, 60).window(start=u(2025, 1, 2))
    assert windowed.next(after) is None  # all three points lie before the window opens
    assert windowed.trigger.start == after  # type: ignore[attr-defined]
