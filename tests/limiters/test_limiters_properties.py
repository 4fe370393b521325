"""Properties of both limiters, for any arrival pattern, on both backends, under virtual time.

Each hypothesis example is run with `timecontrol.testing.run` once on asyncio and once on trio
and compared with a small reference model of the documented behaviour:

* Command: every caller is started at most once; it is started, refused (mode "raise") or
  gave up waiting (its patience ran out before its turn), exactly as the model says; starts
  happen in arrival order; consecutive starts (or end-to-start, with since="end") are never
  closer than the bound; and every start is at the earliest instant the bound allows (the
  limiter never waits longer than it must).
* Control: a watchdog fed in time never trips; one that is not trips once per missed deadline,
  exactly at it, and the first guarded call after a trip raises instead of running.

Times are multiples of 1/64 s so that virtual timestamps are exact binary fractions; events that
must not coincide with a deadline (patience, feeds, the end of a run) are offset by 1/128 or
1/256 s, since at a tie the order of two things due at the same instant is not specified.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal, cast

import anyio
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

import timecontrol as tc
from timecontrol.limiters import Command, Control, OverTimeLimit, UnderTimeLimit
from timecontrol.testing import Backend, run

BACKENDS: tuple[Backend, ...] = ("asyncio", "trio")
TICK = 1 / 64
PROPERTY_SETTINGS = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# -- Command ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    arrival: float
    duration: float
    patience: float | None  # gives up waiting after this long (None: waits for ever)


@dataclass(frozen=True)
class Spec:
    since: Literal["start", "end"]
    mode: Literal["wait", "raise"]
    interval: float | None
    rate: int | None
    per: float
    burst: bool
    callers: tuple[Caller, ...]

    def limiter(self) -> Command:
        return Command(
            self.interval,
            rate=self.rate,
            per=self.per,
            burst=self.burst,
            mode=self.mode,
            since=self.since,
        )


@st.composite
def command_specs(draw: st.DrawFn) -> Spec:
    since = cast(Literal["start", "end"], draw(st.sampled_from(["start", "end"])))
    # "wait" twice as often: it is where queues, timers and cancellations happen.
    mode = cast(Literal["wait", "raise"], draw(st.sampled_from(["wait", "wait", "raise"])))
    kind = draw(st.sampled_from(["interval", "rate", "burst", "interval+burst"]))
    if since == "end" and kind == "burst":
        kind = "interval+burst"  # a gap > 0 after each end (see below)
    interval = rate = None
    per, burst = 1.0, False
    if "interval" in kind:
        # 0 only when starts are counted: with since="end" and no gap, a refusal would
        # depend on whether the previous call's end or the new arrival runs first.
        interval = draw(st.integers(0 if since == "start" else 1, 32)) * TICK
    if kind == "rate":
        rate = draw(st.sampled_from([1, 2, 4, 8]))
        per = draw(st.integers(1, 16)) * rate * TICK  # one call every k ticks
    if "burst" in kind:
        rate, burst = draw(st.integers(2, 4)), True
        per = draw(st.integers(1, 64)) * TICK
    # How spread out the arrivals are: all at once, in a crowd, or scattered.
    spread = draw(st.sampled_from([0, 8, 40, 160]))
    callers = draw(
        st.lists(
            st.builds(
                Caller,
                arrival=st.integers(0, spread).map(lambda k: k * TICK),
                duration=st.integers(0, 24).map(lambda k: k * TICK),
                patience=st.none() | st.integers(0, 64).map(lambda k: k * TICK + TICK / 2),
            ),
            min_size=1,
            max_size=24,
        )
    )
    return Spec(since, mode, interval, rate, per, burst, tuple(callers))


@dataclass
class Observed:
    order: list[int] = field(default_factory=list)  # arrival order, as the calls were made
    starts: dict[int, float] = field(default_factory=dict)
    ends: dict[int, float] = field(default_factory=dict)
    start_order: list[int] = field(default_factory=list)
    runs: Counter[int] = field(default_factory=Counter)
    rejected: list[int] = field(default_factory=list)


async def run_command(spec: Spec) -> Observed:
    clock = tc.current_clock()
    t0 = clock.monotonic()
    limiter = spec.limiter()
    seen = Observed()

    async def body(i: int) -> None:
        seen.runs[i] += 1
        seen.starts[i] = clock.monotonic() - t0
        seen.start_order.append(i)
        # Patience is about waiting: once started, a call runs to its end.
        with anyio.CancelScope(shield=True):
            await anyio.sleep(spec.callers[i].duration)
        seen.ends[i] = clock.monotonic() - t0

    async def caller(i: int) -> None:
        me = spec.callers[i]
        await clock.sleep_until(t0 + me.arrival)
        seen.order.append(i)
        with anyio.move_on_after(math.inf if me.patience is None else me.patience):
            try:
                await limiter.call(body, i)
            except UnderTimeLimit:
                seen.rejected.append(i)

    # A deadlock would let virtual time jump here: it fails instead of hanging.
    with anyio.fail_after(3600):
        async with anyio.create_task_group() as tg:
            for i in range(len(spec.callers)):
                tg.start_soon(caller, i)
    return seen


def command_model(spec: Spec, order: list[int]) -> tuple[dict[int, float], set[int]]:
    """Expected start times (of the callers that start) and refused callers."""
    gap = spec.interval or 0.0
    window: tuple[int, float] | None = None
    if spec.rate is not None:
        if spec.burst:
            window = (spec.rate, spec.per)
        else:
            gap = max(gap, spec.per / spec.rate)
    starts: dict[int, float] = {}
    refused: set[int] = set()
    refs: list[float] = []  # what the bound counts from: starts, or ends with since="end"
    busy_until = -math.inf  # with since="end", calls never overlap
    for i in order:
        me = spec.callers[i]
        bound = -math.inf
        if refs:
            bound = refs[-1] + gap
            if window is not None and len(refs) >= window[0]:
                bound = max(bound, refs[-window[0]] + window[1])
        if spec.mode == "raise":
            if me.arrival < bound or me.arrival < busy_until:
                refused.add(i)
                continue
            start = me.arrival
        else:
            start = max(me.arrival, bound)
            if me.patience is not None and start > me.arrival + me.patience:
                continue  # gave up waiting: its place goes to the callers behind it
        starts[i] = start
        if spec.since == "end":
            busy_until = start + me.duration
            refs.append(busy_until)
        else:
            refs.append(start)
    return starts, refused


def check_command(spec: Spec, seen: Observed) -> None:
    n = len(spec.callers)
    # Every caller called exactly once, and no call ran twice.
    assert sorted(seen.order) == list(range(n))
    assert all(count == 1 for count in seen.runs.values())
    expected, refused = command_model(spec, seen.order)
    # What the examples exercised (see --hypothesis-show-statistics).
    event(f"{spec.mode}, since {spec.since}, burst={spec.burst}")
    event(f"callers who gave up waiting: {'some' if len(expected) + len(refused) < n else 'none'}")
    waited = sum(1 for i, t in expected.items() if t > spec.callers[i].arrival)
    event(f"calls that waited: {'0' if not waited else '1-4' if waited < 5 else '5+'}")
    assert set(seen.rejected) == refused
    assert set(seen.starts) == set(expected)  # nobody lost, nobody started who gave up
    for i, start in expected.items():
        assert seen.starts[i] == pytest.approx(start, abs=1e-9), (i, seen.starts, expected)
    # First come, first served.
    assert seen.start_order == [i for i in seen.order if i in expected]
    # Never closer than the bound: consecutive starts, or an end and the next start.
    limiter = spec.limiter()
    gap, window = limiter.min_gap, limiter.burst_window
    started = seen.start_order
    refs = [seen.ends[i] if spec.since == "end" else seen.starts[i] for i in started]
    for k in range(1, len(started)):
        assert seen.starts[started[k]] >= refs[k - 1] + gap - 1e-9
        if window is not None and k >= window[0]:
            assert seen.starts[started[k]] >= refs[k - window[0]] + window[1] - 1e-9


@PROPERTY_SETTINGS
@given(spec=command_specs())
def test_command_spacing_order_and_no_call_lost_or_repeated(spec: Spec) -> None:
    for backend in BACKENDS:
        seen = run(run_command, spec, backend=backend)
        check_command(spec, seen)


# -- Control ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchSpec:
    period: float
    events: tuple[tuple[float, Literal["feed", "guard"]], ...]  # sorted by time
    horizon: float


@st.composite
def watch_specs(draw: st.DrawFn, fed_in_time: bool = False) -> WatchSpec:
    period = draw(st.integers(4, 64)) * TICK
    kinds = st.sampled_from(cast(list[Literal["feed", "guard"]], ["feed", "guard"]))
    if fed_in_time:
        # Gaps shorter than the period, so that no deadline is ever reached.
        max_gap = math.ceil(period / TICK) - 1
        gaps = draw(st.lists(st.integers(1, max_gap), min_size=1, max_size=40))
        times = [sum(gaps[: k + 1]) * TICK - TICK / 2 for k in range(len(gaps))]
        horizon = times[-1] + period - TICK / 4
    else:
        ticks = draw(st.lists(st.integers(0, 400), max_size=30))
        times = sorted(k * TICK + TICK / 2 for k in ticks)
        horizon = (max(ticks, default=0) + draw(st.integers(0, 200))) * TICK + TICK / 4
    events = tuple((t, draw(kinds)) for t in times)
    return WatchSpec(period, events, horizon)


def watch_model(spec: WatchSpec) -> tuple[list[float], list[bool]]:
    """Expected trip times, and whether each guarded call raises."""
    period = spec.period
    fed, floor, pending = 0.0, -math.inf, False
    trips: list[float] = []
    raised: list[bool] = []

    def advance(until: float) -> None:
        nonlocal floor, pending
        while (deadline := max(fed + period, floor)) < until:
            trips.append(deadline)
            floor, pending = deadline + period, True
        assume(deadline != until)  # a feed exactly at the deadline: order not specified

    for when, kind in spec.events:
        advance(when)
        if kind == "guard" and pending:
            raised.append(True)  # delivered: raises, does not feed
            pending = False
            continue
        if kind == "guard":
            raised.append(False)
        fed = when
    advance(spec.horizon)
    return trips, raised


async def run_watchdog(spec: WatchSpec) -> tuple[list[float], list[bool], int]:
    clock = tc.current_clock()
    t0 = clock.monotonic()
    trips: list[float] = []
    raised: list[bool] = []

    async def switch_off() -> None:
        trips.append(clock.monotonic() - t0)

    watchdog = Control(spec.period, switch_off)

    @watchdog
    async def set_point() -> None:
        return None

    with anyio.fail_after(3600):  # no hang, ever: virtual time jumps to this and fails
        async with watchdog:
            for when, kind in spec.events:
                await clock.sleep_until(t0 + when)
                if kind == "feed":
                    watchdog.feed()
                    continue
                try:
                    await set_point()
                except OverTimeLimit:
                    raised.append(True)
                else:
                    raised.append(False)
            await clock.sleep_until(t0 + spec.horizon)
    return trips, raised, watchdog.statistics().trips


@PROPERTY_SETTINGS
@given(spec=watch_specs())
def test_watchdog_trips_once_per_missed_deadline_exactly_at_it(spec: WatchSpec) -> None:
    expected_trips, expected_raised = watch_model(spec)
    event(f"trips: {'0' if not expected_trips else '1-3' if len(expected_trips) < 4 else '4+'}")
    event(f"guarded calls refused: {'some' if any(expected_raised) else 'none'}")
    for backend in BACKENDS:
        trips, raised, count = run(run_watchdog, spec, backend=backend)
        assert trips == pytest.approx(expected_trips, abs=1e-9)
        assert count == len(expected_trips)
        assert raised == expected_raised


@settings(max_examples=100, deadline=None)
@given(spec=watch_specs(fed_in_time=True))
def test_watchdog_fed_in_time_never_trips(spec: WatchSpec) -> None:
    for backend in BACKENDS:
        trips, raised, count = run(run_watchdog, spec, backend=backend)
        assert trips == []
        assert count == 0
        assert not any(raised)
