"""Fuzzing the public trigger surface: bad input raises a `TriggerError`, nothing else.

Random JSON documents (and valid documents with one part broken) go into `trigger_from_json`;
random arguments go into every constructor and method. Whatever comes in, only a
`TriggerError` (or a result) may come out: no `OverflowError`, `RecursionError`, `TypeError`
... A document that loads must also survive the round trip through its own JSON.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from triggers_strategies import any_triggers

import timecontrol.triggers as T

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))

MIN = datetime.min.replace(tzinfo=UTC)
MAX = datetime.max.replace(tzinfo=UTC)
# Aware datetimes whose UTC instant lies before year 1 or after year 9999.
TOO_EARLY = datetime.min.replace(tzinfo=timezone(timedelta(hours=5)))
TOO_LATE = datetime.max.replace(tzinfo=timezone(-timedelta(hours=5)))
EDGES = [MIN, MAX, TOO_EARLY, TOO_LATE, datetime(2025, 1, 1, tzinfo=UTC)]

KEYS = sorted({"type", "expr", "tz", "nonexistent", "ambiguous", "at", "days", "missing_day",
               "every", "anchor", "start", "end", "blocks", "points", "manual", "trigger",
               "triggers", "max_executions", "origin", "max_seconds", "seed", "symmetric",
               "search_limit"})  # fmt: skip
TYPES = ["cron", "daily", "weekly", "monthly", "date", "interval", "timepoints", "window",
         "limit", "jitter", "union", "intersection"]  # fmt: skip

# Values chosen to hit edges: huge and non-finite numbers, bools where numbers belong, dates
# at datetime's ends, strings that are nearly right.
ODD_VALUES: list[Any] = [
    None, True, False, -1, 0, 1, 1.5, 1e-7, 2**63, 10**400, -(10**30), 1e308, -1e308,
    math.nan, math.inf, -math.inf, 86400 * 366 * 51, "", "x", "last", "mon", "09:00",
    "* * * * *", "10-5 * * * *", "Europe/Berlin", "Europe", "UTC+05:30:15", "UTC-23:59",
    "0001-01-01T00:00:00+00:00", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59+00:00",
    "9999-12-31T23:59:59.999999-05:00", "2025-01-01T00:00", [], {}, [[]], [1, 2, 3],
    [[0, 10**20, 1]], ["mon", 0], {"type": "cron"}, {"type": "union", "triggers": []},
]  # fmt: skip

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([2**64, 10**400, -(10**400)])
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(ODD_VALUES[:30])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=25,
)
random_documents = st.builds(
    lambda kind, rest: {"type": kind, **rest},
    st.sampled_from(TYPES) | json_scalars,
    st.dictionaries(st.sampled_from(KEYS[1:]), json_values, max_size=6),
)


def _exercise(trigger: T.TriggerBase) -> None:
    """Every method, from instants across datetime's whole range: results or TriggerErrors."""
    spec = trigger.to_json()
    text = json.dumps(spec, allow_nan=False)  # plain JSON, as a store would write it
    assert T.trigger_from_json(json.loads(text)).to_json() == spec
    assert T.trigger_from_json(spec).to_json() == spec
    assert isinstance(trigger.explain(), str)
    for after in EDGES:
        fires = trigger.preview(2, after)
        assert all(f.tzinfo is not None and f > after for f in fires)


def _load(doc: object) -> None:
    try:
        trigger = T.trigger_from_json(doc)  # type: ignore[arg-type]
    except T.TriggerError:
        return
    _exercise(trigger)


@FUZZ
@given(doc=random_documents | json_values)
def test_random_documents_load_or_raise_trigger_errors(doc: object) -> None:
    _load(doc)


@st.composite
def broken_documents(draw: st.DrawFn) -> object:
    """A valid document with one part replaced, removed, added to or nested deeper."""
    doc = draw(any_triggers()).to_json()
    if draw(st.booleans()):
        doc = {"type": "union", "triggers": [doc, draw(any_triggers()).to_json()]}
    node: dict[str, Any] = doc
    while True:  # walk down to a random trigger document inside
        inner = [v for v in node.values() if isinstance(v, dict)]
        inner += [x for v in node.values() if isinstance(v, list) for x in v if isinstance(x, dict)]
        if not inner or draw(st.booleans()):
            break
        node = draw(st.sampled_from(inner))
    key = draw(st.sampled_from(sorted(node)))
    action = draw(st.sampled_from(["replace", "replace", "delete", "add", "deepen"]))
    if action == "replace":
        node[key] = draw(st.sampled_from(ODD_VALUES) | json_values)
    elif action == "delete":
        del node[key]
    elif action == "add":
        node[draw(st.sampled_from(KEYS) | st.text(max_size=6))] = draw(json_values)
    else:
        for _ in range(draw(st.integers(1, 40))):
            doc = {"type": "window", "trigger": doc, "start": None, "end": MAX.isoformat()}
    return doc


@FUZZ
@given(doc=broken_documents())
def test_broken_valid_documents_load_or_raise_trigger_errors(doc: object) -> None:
    _load(doc)


# ----------------------------------------------------------------------------- constructors

ZONES: list[Any] = [
    UTC,
    ZoneInfo("Europe/Berlin"),
    ZoneInfo("Pacific/Kiritimati"),
    timezone(timedelta(hours=-5)),
    timezone(timedelta(hours=23, minutes=59)),
    timezone(timedelta(seconds=1)),
]
datetimes = st.datetimes(timezones=st.none() | st.sampled_from(ZONES)) | st.sampled_from(EDGES)
anything: st.SearchStrategy[Any] = st.deferred(
    lambda: (
        json_scalars
        | datetimes
        | st.timedeltas()
        | st.times()
        | st.sampled_from(ODD_VALUES)
        | st.sampled_from([*ZONES, time(9, 0, 0, 1), b"mon", object()])
        | st.lists(anything, max_size=3)
        | st.tuples(anything, anything)
    )
)
policy = st.sampled_from(["gap_end", "shift", "skip", "first", "last", "both"]) | anything


def _attempt(build: Callable[[], T.TriggerBase]) -> T.TriggerBase | None:
    try:
        return build()
    except T.TriggerError:
        return None


def _methods(trigger: T.TriggerBase, after: object, n: object) -> None:
    """Each method with one random argument: a result or a TriggerError."""
    # preview(10**300, ...) is a valid request for every fire time until year 9999: slow,
    # not wrong. Huge counts go to limit() and jitter() only.
    size = min(n, 4) if isinstance(n, int) else n
    for call in (
        lambda: trigger.next(after),  # type: ignore[arg-type]
        lambda: trigger.preview(size, after),  # type: ignore[arg-type]
        lambda: trigger.window(start=after),  # type: ignore[arg-type]
        lambda: trigger.window(end=after),  # type: ignore[arg-type]
        lambda: trigger.limit(n, origin=after),  # type: ignore[arg-type]
        lambda: trigger.jitter(n, seed=n, symmetric=after),  # type: ignore[arg-type]
    ):
        before = trigger.to_json()
        try:
            call()
        except T.TriggerError:
            assert trigger.to_json() == before  # a refused call leaves no trace


def _check(trigger: T.TriggerBase | None, after: object, n: object) -> None:
    if trigger is not None:
        _exercise(trigger)
        _methods(trigger, after, n)


small_counts = st.integers(-3, 4) | anything


@FUZZ
@given(a=anything, b=anything, c=policy, d=policy, after=anything, n=small_counts)
def test_wall_clock_constructors(
    a: object, b: object, c: object, d: object, after: object, n: object
) -> None:
    for build in (
        lambda: T.cron(a, b, nonexistent=c, ambiguous=d),  # type: ignore[arg-type]
        lambda: T.daily(a, b, nonexistent=c, ambiguous=d),  # type: ignore[arg-type]
        lambda: T.weekly(a, "09:00", b, nonexistent=c),  # type: ignore[arg-type]
        lambda: T.weekly(["mon"], a, ambiguous=d),  # type: ignore[arg-type]
        lambda: T.monthly(a, "09:00", b, missing_day=c),  # type: ignore[arg-type]
        lambda: T.monthly(31, a, missing_day=d),  # type: ignore[arg-type]
        lambda: T.once(a, b, nonexistent=c, ambiguous=d),  # type: ignore[arg-type]
        lambda: T.once(a),  # type: ignore[arg-type]
    ):
        _check(_attempt(build), after, n)


cron_text = st.lists(
    st.sampled_from(["*", "*/7", "5", "10-5", "5-10", "MON-FRI", "FRI-MON", "L", "15W", "?",
                     "2#3", "L5", "99999999999999", "9" * 5000, "٣", "²", "0-7", "7-0", ",",
                     "1-5/0", "JAN-DEC"]),
    min_size=4, max_size=7,
).map(" ".join)  # fmt: skip


@FUZZ
@given(expr=cron_text | st.text(max_size=30), tz=st.sampled_from(["UTC", "Pacific/Apia"]))
def test_cron_expressions(expr: str, tz: str) -> None:
    _check(_attempt(lambda: T.cron(expr, tz)), MAX, 2)


@FUZZ
@given(a=anything, b=anything, c=anything, after=anything, n=small_counts)
def test_absolute_constructors(a: object, b: object, c: object, after: object, n: object) -> None:
    for build in (
        lambda: T.interval(a, minutes=b, anchor=c),  # type: ignore[arg-type]
        lambda: T.interval(hours=a, start=b, tz=c),  # type: ignore[arg-type]
        lambda: T.IntervalTrigger(a, anchor=b, tz=c),  # type: ignore[arg-type]
        lambda: T.timepoints.pairs(a, b, start=c),  # type: ignore[arg-type]
        lambda: T.timepoints.pairs((a, b), tz=c),  # type: ignore[arg-type]
        lambda: T.timepoints.block(a, b, start=c),  # type: ignore[arg-type]
        lambda: T.timepoints.offsets(a, start=b, tz=c),  # type: ignore[arg-type]
        lambda: T.timepoints.spacings(a, start=b),  # type: ignore[arg-type]
        lambda: T.TimePoints(a, b, c),  # type: ignore[arg-type]
        lambda: T.timepoints.block(3, 60).with_points(a, b),  # type: ignore[arg-type]
        lambda: T.timepoints.block(3, 60).with_block(a, b, after=c),  # type: ignore[arg-type]
        lambda: T.timepoints.block(3, 60).with_block(2, 5, shift_subsequent=a),  # type: ignore[arg-type]
        lambda: T.timepoints.block(3, 60).with_now(a),  # type: ignore[arg-type]
    ):
        _check(_attempt(build), after, n)


# Sparse children (yearly, daily), so that a limit or a jitter with a huge argument still
# answers quickly: what is fuzzed here is the handling of arguments, not the search speed.
YEARLY = T.cron("0 0 1 1 *")
DAILY = T.daily("00:00")


@FUZZ
@given(a=anything, b=anything, c=anything, after=anything, n=small_counts)
def test_combinators_and_modifiers(
    a: object, b: object, c: object, after: object, n: object
) -> None:
    for build in (
        lambda: T.union(a, b),  # type: ignore[arg-type]
        lambda: T.union(YEARLY, a),  # type: ignore[arg-type]
        lambda: T.intersection(YEARLY, DAILY, search_limit=a),  # type: ignore[arg-type]
        lambda: T.intersection(a, DAILY),  # type: ignore[arg-type]
        lambda: YEARLY.window(start=a, end=b),  # type: ignore[arg-type]
        lambda: YEARLY.limit(a, origin=b),  # type: ignore[arg-type]
        lambda: YEARLY.jitter(a, seed=b, symmetric=c),  # type: ignore[arg-type]
        lambda: T.WindowTrigger(a, start=b),  # type: ignore[arg-type]
        lambda: T.LimitTrigger(a, 3),  # type: ignore[arg-type]
        lambda: T.JitterTrigger(a, 1),  # type: ignore[arg-type]
    ):
        _check(_attempt(build), after, n)
    with contextlib.suppress(T.TriggerError):
        YEARLY.jitter(30).shift(a)  # type: ignore[arg-type]


@FUZZ
@given(trigger=any_triggers(), after=anything, n=small_counts)
def test_methods_of_valid_triggers_take_any_argument(
    trigger: T.TriggerBase, after: object, n: object
) -> None:
    _methods(trigger, after, n)
    _exercise(trigger)
