"""Bad input, case by case: each raises a `TriggerError` naming the value, and changes nothing.

The fuzz tests (test_triggers_fuzz.py) throw random input at the same surface; these are the
readable examples, among them every case once reported: `window()` at `datetime.min`, huge
numbers in JSON, a union nested 10,000 deep, `next()` near `datetime.max`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from triggers_strategies import at

import timecontrol.triggers as T
from timecontrol._exceptions import NaiveDatetimeError as ProjectNaiveDatetimeError
from timecontrol.triggers._time import FIRST_INSTANT, LAST_INSTANT

MIN = datetime.min.replace(tzinfo=UTC)
MAX = datetime.max.replace(tzinfo=UTC)
TOO_EARLY = datetime.min.replace(tzinfo=timezone(timedelta(hours=5)))  # year 0 in UTC
TOO_LATE = datetime.max.replace(tzinfo=timezone(-timedelta(hours=5)))  # year 10000 in UTC
S = datetime(2025, 1, 1, tzinfo=UTC)
CRON = {"type": "cron", "expr": "* * * * *", "tz": "UTC"}

FAMILIES: list[Callable[[], T.TriggerBase]] = [
    lambda: T.cron("*/15 * * * *", tz="Pacific/Kiritimati"),  # UTC+14
    lambda: T.cron("59 23 31 12 *", tz="Pacific/Pago_Pago"),  # UTC-11
    lambda: T.daily("23:59", tz="America/Los_Angeles"),
    lambda: T.weekly("fri", "12:00", tz="Europe/Berlin", ambiguous="both"),
    lambda: T.monthly("last", "23:00", tz="Pacific/Apia", nonexistent="shift"),
    lambda: T.once("9999-12-31 23:00", tz="Pacific/Kiritimati"),
    lambda: T.once(datetime(9999, 12, 31, tzinfo=UTC)),
    lambda: T.interval(hours=1),
    lambda: T.interval(seconds=1 / 3, start=S),
    lambda: T.timepoints.pairs((5, 60), (3, 3600)),
    lambda: T.timepoints.block(3, 60, start=S).with_now(datetime(9999, 12, 31, 12, tzinfo=UTC)),
    lambda: T.cron("0 * * * *") | T.interval(minutes=7),
    lambda: T.cron("*/15 * * * *") & T.cron("*/10 * * * *"),
    lambda: T.cron("0 * * * *").window(start=MIN, end=MAX),
    lambda: T.cron("0 * * * *").limit(3),
    lambda: T.cron("0 * * * *", tz="Pacific/Kiritimati").jitter(1800, symmetric=True),
]


def _raises(error: type[Exception], build: Callable[[], object], *needles: str) -> str:
    with pytest.raises(error) as info:
        build()
    assert isinstance(info.value, T.TriggerError)
    message = str(info.value)
    for needle in needles:
        assert needle in message
    return message


# ----------------------------------------------------------------------------- datetime's ends


@pytest.mark.parametrize("build", FAMILIES)
def test_next_near_datetime_max_returns_none_not_overflow(
    build: Callable[[], T.TriggerBase],
) -> None:
    t = build()
    for after in (MAX, TOO_LATE, LAST_INSTANT.replace(tzinfo=UTC)):
        assert t.next(after) is None  # no more fire times
        assert t.preview(3, after) == []
    last = LAST_INSTANT.replace(tzinfo=UTC)
    for fire in t.preview(5, last - timedelta(days=1, hours=2)):
        assert fire <= last  # the last day of the calendar is not used


@pytest.mark.parametrize("build", FAMILIES)
def test_after_before_year_one_searches_from_the_first_instant(
    build: Callable[[], T.TriggerBase],
) -> None:
    first = FIRST_INSTANT.replace(tzinfo=UTC)
    for after in (MIN, TOO_EARLY):
        fires = build().preview(3, after)
        assert all(f >= first for f in fires)
        assert fires == sorted(fires)


def test_window_at_datetime_min_and_max() -> None:  # reported: raised OverflowError
    t = T.cron("0 * * * *").window(start=MIN, end=MAX)
    assert t.next(S) == S + timedelta(hours=1)
    assert t.next(MIN) == FIRST_INSTANT.replace(tzinfo=UTC)
    assert T.trigger_from_json(t.to_json()) == t


def test_instants_that_do_not_exist_in_utc_are_refused() -> None:
    _raises(T.TriggerError, lambda: T.interval(60, start=TOO_EARLY), "start=", "UTC")
    _raises(T.TriggerError, lambda: T.cron("* * * * *").window(end=TOO_LATE), "end=")
    _raises(T.TriggerError, lambda: T.once(TOO_LATE), "at=")
    spec = {"type": "date", "at": "0001-01-01T00:00:00+05:00"}
    _raises(T.TriggerError, lambda: T.trigger_from_json(spec), "0001-01-01")


def test_an_unbound_origin_never_binds_outside_the_range() -> None:
    t = T.interval(hours=1)
    assert t.next(MAX - timedelta(minutes=30)) is None
    assert not t.is_bound  # nothing to bind to: no trace left
    tp = T.timepoints.block(3, 60)
    assert tp.next(TOO_EARLY) == FIRST_INSTANT.replace(tzinfo=UTC) + timedelta(seconds=59.999999)
    assert T.trigger_from_json(tp.to_json()) == tp  # the bound start exists in JSON


# ----------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("build", "error", "needle"),
    [
        (lambda: T.interval(True), T.IntervalError, "True"),
        (lambda: T.interval(10**400), T.IntervalError, "out of range"),
        (lambda: T.interval(seconds=1e300), T.IntervalError, "1e+300"),
        (lambda: T.interval(math.nan), T.IntervalError, "nan"),
        (lambda: T.IntervalTrigger(10**400), T.IntervalError, "<int of about 400 digits>"),
        (lambda: T.IntervalTrigger(1e300), T.IntervalError, "50 years"),
        (lambda: T.IntervalTrigger(86400 * 366 * 51), T.IntervalError, "50 years"),
        (lambda: T.IntervalTrigger(timedelta.max), T.IntervalError, "50 years"),
        (lambda: T.timepoints.block(10**400, 1), T.TimePointError, "digits"),
        (lambda: T.timepoints.block(10**12, 60), T.TimePointError, "50 years"),
        (lambda: T.timepoints.block(True, 60), T.TimePointError, "count=True"),
        (lambda: T.timepoints.pairs((3, math.inf)), T.TimePointError, "inf"),
        (lambda: T.timepoints.offsets([10**400]), T.TimePointError, "digits"),
        (lambda: T.timepoints.offsets(5), T.TimePointError, "not a list"),  # type: ignore[arg-type]
        (lambda: T.TimePoints([(0, 1)]), T.TimePointError, "(0, 1)"),  # type: ignore[list-item]
        (lambda: T.cron("* * * * *").limit(10**400), T.WindowError, "digits"),
        (lambda: T.cron("* * * * *").limit(True), T.WindowError, "True"),
        (lambda: T.cron("* * * * *").jitter(math.inf), T.JitterError, "inf"),
        (lambda: T.cron("* * * * *").jitter(1, seed=10**400), T.JitterError, "digits"),
        (lambda: T.cron("* * * * *").jitter(1, symmetric=1), T.JitterError, "symmetric=1"),  # type: ignore[arg-type]
        (
            lambda: T.intersection(*[T.cron("* * * * *")] * 2, search_limit=10**9),
            T.TriggerError,
            "1,000,000",
        ),
        (lambda: T.monthly(10**400, "09:00"), T.CalendarError, "digits"),
        (lambda: T.weekly(True, "09:00"), T.CalendarError, "True"),
        (lambda: T.cron("* * * * *").preview(True, S), T.TriggerError, "n=True"),
        (lambda: T.cron("9" * 5000 + " * * * *"), T.CronSyntaxError, "minute field"),
    ],
)
def test_bad_numbers(build: Callable[[], object], error: type[Exception], needle: str) -> None:
    _raises(error, build, needle)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("every", 10**400),
        ("every", 1e308),
        ("every", -1e308),
        ("every", math.nan),
        ("every", True),
        ("every", 0),
        ("every", "60"),
        ("anchor", "9999-99-99"),
        ("anchor", 5),
        ("tz", "Europe"),  # a directory in the zone database
        ("tz", "x" * 10_000),  # too long for a file name
        ("tz", ["UTC"]),
    ],
)
def test_huge_or_wrong_json_values(key: str, value: Any) -> None:
    spec = {"type": "interval", "every": 60, "anchor": None, "tz": None, key: value}
    message = _raises(T.TriggerError, lambda: T.trigger_from_json(spec))
    assert len(message) < 1000  # a long value is shortened, not pasted in full


def test_durations_up_to_fifty_years_survive_json_to_the_microsecond() -> None:
    longest = timedelta(days=50 * 366) - timedelta(microseconds=1)
    t = T.IntervalTrigger(longest, start=S)
    back = T.trigger_from_json(t.to_json())
    assert isinstance(back, T.IntervalTrigger)
    assert back.every == longest
    assert back.to_json() == t.to_json()


# ----------------------------------------------------------------------------- types and naive


def test_naive_datetimes_raise_a_trigger_error_that_is_also_the_project_one() -> None:
    naive = datetime(2025, 1, 1)
    for build in (
        lambda: T.cron("* * * * *").next(naive),
        lambda: T.interval(60, start=naive),
        lambda: T.once(naive),
        lambda: T.timepoints.block(3, 60).with_now(naive),
        lambda: T.cron("* * * * *").window(start=naive),
        lambda: T.cron("* * * * *").limit(3, origin=naive),
        lambda: T.cron("* * * * *").jitter(3).shift(naive),
    ):
        with pytest.raises(T.NaiveDatetimeError) as info:
            build()
        assert isinstance(info.value, ProjectNaiveDatetimeError)
        assert isinstance(info.value, T.TriggerError)


@pytest.mark.parametrize("after", [None, 5, "2025-01-01", S.date(), S.timetz(), [S]])
def test_next_with_something_not_a_datetime(after: object) -> None:
    for build in FAMILIES:
        trigger = build()
        with pytest.raises(T.TriggerError, match="after="):
            trigger.next(after)  # type: ignore[arg-type]


def test_unprintable_values_still_make_a_message() -> None:
    class Awkward:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    _raises(T.UnknownTimeZoneError, lambda: T.cron("* * * * *", tz=Awkward()), "Awkward")


def test_offsets_with_seconds_keep_their_own_zone_name() -> None:
    odd = timezone(timedelta(hours=5, minutes=30, seconds=15))
    t = T.interval(60)
    t.next(datetime(2025, 1, 1, tzinfo=odd))
    assert t.to_json()["tz"] == "UTC+05:30:15"
    assert T.trigger_from_json(t.to_json()) == t
    # The shared zone cache did not mix the two offsets up.
    fire = T.cron("0 9 * * *", tz="UTC+05:30").next(S)
    assert fire is not None
    assert fire.isoformat() == "2025-01-01T09:00:00+05:30"


# ----------------------------------------------------------------------------- JSON shape


def test_a_union_nested_10000_deep_is_refused_without_recursion() -> None:  # reported
    doc: dict[str, Any] = CRON
    for _ in range(10_000):
        doc = {"type": "union", "triggers": [doc, CRON]}
    _raises(T.TriggerSpecError, lambda: T.trigger_from_json(doc), "32 levels")


def test_a_deep_list_inside_a_field_is_refused_without_recursion() -> None:
    deep: list[Any] = []
    for _ in range(10_000):
        deep = [deep]
    spec = {"type": "daily", "at": deep, "tz": "UTC"}
    _raises(T.TriggerSpecError, lambda: T.trigger_from_json(spec), "nests deeper")


def _windows_json(levels: int) -> dict[str, Any]:
    """A cron inside `levels - 1` windows, as JSON."""
    doc: dict[str, Any] = CRON
    for _ in range(levels - 1):
        doc = {"type": "window", "trigger": doc, "start": S.isoformat(), "end": None}
    return doc


def test_nesting_is_limited_to_32_levels_in_code_and_json() -> None:
    deepest: T.TriggerBase = T.cron("* * * * *")
    for _ in range(T.MAX_NESTING - 1):
        deepest = deepest.window(start=S)
    assert T.trigger_from_json(_windows_json(T.MAX_NESTING)) == deepest
    assert deepest.next(S) == S + timedelta(minutes=1)
    _raises(T.TriggerError, lambda: deepest.window(end=S), "33 levels", "32")
    _raises(T.TriggerError, lambda: deepest.limit(3), "33 levels")
    _raises(T.TriggerError, lambda: deepest | T.cron("0 * * * *"), "33 levels")
    too_deep = _windows_json(T.MAX_NESTING + 1)
    _raises(T.TriggerSpecError, lambda: T.trigger_from_json(too_deep), "32 trigger levels")


@pytest.mark.parametrize(
    "build",
    [
        lambda: T.cron("* * * * *"),
        lambda: T.daily("09:00"),
        lambda: T.weekly("mon", "09:00"),
        lambda: T.monthly(1, "09:00"),
        lambda: T.once(S),
        lambda: T.once("2025-01-01 09:00", tz="UTC"),
        lambda: T.interval(60),
        lambda: T.timepoints.block(3, 60),
        lambda: T.cron("* * * * *") | T.daily("09:00"),
        lambda: T.cron("* * * * *") & T.daily("09:00"),
        lambda: T.daily("09:00").window(start=S),
        lambda: T.daily("09:00").limit(3),
        lambda: T.daily("09:00").jitter(3),
    ],
)
def test_unknown_json_keys_are_refused(build: Callable[[], T.TriggerBase]) -> None:
    spec = build().to_json()
    assert T.trigger_from_json(spec).to_json() == spec
    _raises(
        T.TriggerSpecError,
        lambda: T.trigger_from_json({**spec, "evry": 60}),
        "'evry'",
        f"type {spec['type']!r}",
        "accepted keys",
    )


def test_a_failed_call_leaves_no_trace() -> None:
    t = T.timepoints.block(3, 60).limit(2)
    before = t.to_json()
    for bad in (datetime(2025, 1, 1), "now", None):
        with pytest.raises(T.TriggerError):
            t.next(bad)  # type: ignore[arg-type]
    assert t.to_json() == before
    assert not t.is_bound
    assert t.next(at("Europe/Berlin", 2025, 1, 1)) is not None
    assert t.is_bound
