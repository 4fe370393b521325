"""Control, the over-limiter (a watchdog), under virtual time on asyncio and trio."""

from __future__ import annotations

import inspect

import anyio
import pytest

import timecontrol as tc
from timecontrol.limiters import (
    Control,
    LimiterConfigError,
    NotAsyncError,
    OverTimeLimit,
    SafetyActionError,
    WatchdogStateError,
    guarded_by,
    watchdog_of,
)
from timecontrol.testing import VirtualClock

vt = pytest.mark.timecontrol  # under virtual time, once on asyncio and once on trio


class Heater:
    """A fake heater: its safety action records when it was switched off."""

    def __init__(self, clock: VirtualClock, action_time: float = 0.0) -> None:
        self.clock = clock
        self.t0 = clock.monotonic()
        self.action_time = action_time
        self.offs: list[float] = []
        self.done: list[float] = []
        self.set_points: list[tuple[float, float]] = []

    def now(self) -> float:
        return self.clock.monotonic() - self.t0

    async def switch_off(self) -> None:
        self.offs.append(self.now())
        if self.action_time:
            await anyio.sleep(self.action_time)
        self.done.append(self.now())

    async def set_point(self, value: float) -> float:
        self.set_points.append((self.now(), value))
        return value


@vt
async def test_unfed_watchdog_trips_once_per_period_exactly_at_the_deadline(
    virtual_clock: VirtualClock,
) -> None:
    heater = Heater(virtual_clock)
    watchdog = Control(2.0, heater.switch_off, name="heater")
    async with watchdog:
        await anyio.sleep(7.0)  # virtual time
    assert heater.offs == [2.0, 4.0, 6.0]
    trip = watchdog.last_trip
    assert trip is not None
    assert (trip.number, trip.deadline - heater.t0, trip.late, trip.since_feed) == (3, 6.0, 0, 6.0)
    stats = watchdog.statistics()
    assert (stats.trips, stats.feeds, stats.calls, stats.rejected, stats.running) == (
        3,
        0,
        0,
        0,
        False,
    )


@vt
async def test_fed_in_time_never_trips(virtual_clock: VirtualClock) -> None:
    heater = Heater(virtual_clock)
    watchdog = Control(1.0, heater.switch_off)
    set_point = watchdog(heater.set_point)
    async with watchdog:
        for i in range(20):
            await anyio.sleep(0.75)  # virtual time
            if i % 3 == 0:
                await set_point(20.0)
            elif i % 3 == 1:
                watchdog.feed()
            else:
                with watchdog.guarded():
                    pass
    assert heater.offs == []
    stats = watchdog.statistics()
    assert (stats.feeds, stats.calls, stats.trips) == (20, 13, 0)
    assert stats.longest_gap == 0.75


@vt
async def test_the_deadline_moves_with_each_feed(virtual_clock: VirtualClock) -> None:
    heater = Heater(virtual_clock)
    watchdog = Control(1.0, heater.switch_off)
    async with watchdog:
        assert watchdog.deadline == heater.t0 + 1.0
        await anyio.sleep(0.5)  # virtual time
        watchdog.feed()
        assert watchdog.deadline == heater.t0 + 1.5
        await anyio.sleep(2.25)  # trips at 1.5 and 2.5; virtual time
        assert watchdog.deadline == heater.t0 + 3.5
        watchdog.feed()  # at 2.75
        await anyio.sleep(1.5)  # trips at 3.75; virtual time
    assert heater.offs == [1.5, 2.5, 3.75]
    assert watchdog.deadline is None


@vt
async def test_next_guarded_call_raises_once_and_is_not_run(virtual_clock: VirtualClock) -> None:
    heater = Heater(virtual_clock)
    watchdog = Control(2.0, heater.switch_off, name="heater")
    set_point = watchdog(heater.set_point)
    async with watchdog:
        await set_point(50.0)  # t=0
        await anyio.sleep(5.0)  # trips at 2 and 4; virtual time
        assert watchdog.tripped
        watchdog.feed()  # a plain feed never raises, and leaves the trip to be delivered
        with pytest.raises(OverTimeLimit) as info:
            await set_point(60.0)
        assert not watchdog.tripped
        await set_point(70.0)  # delivered: runs again
    err = info.value
    assert (err.limiter, err.elapsed, err.period, err.trips, err.deadline - heater.t0) == (
        "heater",
        0.0,
        2.0,
        2,
        4.0,
    )
    assert "heater: not fed for 0 s" in str(err)
    assert "tripped 2 times" in str(err)
    assert isinstance(err, tc.TimeControlError)
    assert heater.set_points == [(0.0, 50.0), (5.0, 70.0)]
    assert heater.offs == [2.0, 4.0]
    stats = watchdog.statistics()
    assert (stats.calls, stats.rejected, stats.feeds) == (2, 1, 3)


@vt
async def test_guarded_block_raises_after_a_trip(virtual_clock: VirtualClock) -> None:
    watchdog = Control(1.0)  # no safety action: record and raise only
    async with watchdog:
        await anyio.sleep(1.5)  # virtual time
        with pytest.raises(OverTimeLimit):
            async with watchdog.guarded():
                pytest.fail("the block must not run")
        async with watchdog.guarded():
            pass
    assert watchdog.statistics().trips == 1


@vt
async def test_a_trip_cancels_supervised_scopes_instead_of_raising(
    virtual_clock: VirtualClock,
) -> None:
    heater = Heater(virtual_clock)
    watchdog = Control(1.0, heater.switch_off)
    set_point = watchdog(heater.set_point)
    async with watchdog:
        with watchdog.supervise() as scope:
            await set_point(1.0)
            await anyio.sleep(10.0)  # stuck: the trip at 1.0 cancels this; virtual time
            pytest.fail("not reached")
        assert scope.cancelled_caught
        assert heater.now() == 1.0
        assert not watchdog.tripped
        await set_point(2.0)  # the trip was delivered by the cancellation: no raise
    assert heater.offs == [1.0]
    assert heater.set_points == [(0.0, 1.0), (1.0, 2.0)]


@vt
async def test_safety_action_completes_when_the_watchdog_stops(virtual_clock: VirtualClock) -> None:
    heater = Heater(virtual_clock, action_time=1.0)
    watchdog = Control(2.0, heater.switch_off)
    async with watchdog:
        await anyio.sleep(2.5)  # virtual: the action runs 2.0..3.0; we leave midway
    assert heater.offs == [2.0]
    assert heater.done == [3.0]
    assert heater.now() == 3.0


@vt
async def test_safety_action_completes_under_outer_cancellation(
    virtual_clock: VirtualClock,
) -> None:
    heater = Heater(virtual_clock, action_time=1.0)
    watchdog = Control(2.0, heater.switch_off)
    with anyio.move_on_after(2.5):
        async with watchdog:
            await anyio.sleep_forever()
    assert heater.done == [3.0]
    assert not watchdog.running


@vt
async def test_deadlines_during_a_long_safety_action_do_not_trip_again(
    virtual_clock: VirtualClock,
) -> None:
    heater = Heater(virtual_clock, action_time=2.5)
    watchdog = Control(1.0, heater.switch_off)
    async with watchdog:
        await anyio.sleep(5.0)  # virtual time
    # 1.0 trips (runs to 3.5); 2.0 and 3.0 pass meanwhile; next deadline 4.0
    assert heater.offs == [1.0, 4.0]


@vt
async def test_a_failing_safety_action_is_loud(virtual_clock: VirtualClock) -> None:
    async def broken() -> None:
        raise OSError("heater unreachable")

    log = tc.Log()
    watchdog = Control(1.0, broken, name="heater", log=log)
    body_cancelled = False

    async def experiment() -> None:
        nonlocal body_cancelled
        async with watchdog:
            try:
                await anyio.sleep(5.0)  # virtual time
            except anyio.get_cancelled_exc_class():
                body_cancelled = True
                raise

    with pytest.raises(SafetyActionError) as info:
        await experiment()
    err = info.value
    assert isinstance(err.__cause__, OSError)
    assert "heater: the safety action" in str(err)
    assert "broken" in str(err)
    assert body_cancelled
    assert virtual_clock.elapsed() == 1.0
    assert watchdog.statistics().trips == 1
    assert not watchdog.running
    events = [(e.kind, e.payload) for e in log.recent()]
    assert [kind for kind, _ in events] == [
        "limiter.started",
        "limiter.tripped",
        "limiter.trip_failed",
        "limiter.stopped",
    ]
    assert events[2][1] == {"error": "OSError", "message": "heater unreachable"}


@vt
async def test_a_failing_safety_action_ends_the_task_group_it_runs_in(
    virtual_clock: VirtualClock,
) -> None:
    async def broken() -> None:
        raise OSError("heater unreachable")

    watchdog = Control(1.0, broken)
    with pytest.RaisesGroup(SafetyActionError):
        async with anyio.create_task_group() as tg:
            await watchdog.start(tg)


@vt
async def test_explicit_start_and_stop(virtual_clock: VirtualClock) -> None:
    heater = Heater(virtual_clock)
    watchdog = Control(1.0, heater.switch_off)
    async with anyio.create_task_group() as tg:
        await tg.start(watchdog.run)
        assert watchdog.running
        with pytest.raises(WatchdogStateError, match="already running"):
            await watchdog.run()
        with pytest.raises(WatchdogStateError, match="already running"):
            async with watchdog:
                pass
        await anyio.sleep(1.5)  # virtual time
        watchdog.stop()
    assert not watchdog.running
    assert heater.offs == [1.0]
    watchdog.stop()  # idempotent
    # Restart: the period starts again, and an undelivered trip is forgotten.
    assert watchdog.tripped
    async with anyio.create_task_group() as tg:
        await watchdog.start(tg)
        assert not watchdog.tripped
        await anyio.sleep(0.5)  # virtual time
        watchdog.stop()
    assert heater.offs == [1.0]


@vt
async def test_per_instance_watchdog_with_guarded_by(virtual_clock: VirtualClock) -> None:
    t0 = virtual_clock.monotonic()
    offs: list[tuple[str, float]] = []

    class Oven:
        def __init__(self, name: str, period: float) -> None:
            self.name = name
            self.watchdog = Control(period, self.switch_off, name=name)

        async def switch_off(self) -> None:
            offs.append((self.name, virtual_clock.monotonic() - t0))

        @guarded_by("watchdog")
        async def set_point(self, value: float) -> float:
            """Tell the oven its set-point."""
            return value

    a, b = Oven("a", 1.0), Oven("b", 1.0)
    assert watchdog_of(a.set_point) is a.watchdog
    async with a.watchdog, b.watchdog:
        for _ in range(3):
            await anyio.sleep(0.75)  # virtual time
            assert await a.set_point(20.0) == 20.0  # a is fed, b is not
    assert offs == [("b", 1.0), ("b", 2.0)]


@vt
async def test_events_go_to_the_running_engine(virtual_clock: VirtualClock) -> None:
    heater = Heater(virtual_clock)
    watchdog = Control(1.0, heater.switch_off, name="oven", report_every=0)
    set_point = watchdog(heater.set_point)
    async with tc.Engine() as engine:
        async with watchdog:
            await set_point(1.0)
            await anyio.sleep(1.5)  # virtual time
            with pytest.raises(OverTimeLimit):
                await set_point(2.0)
        events = [
            (e.kind, e.mono - heater.t0, e.payload) for e in engine.log.recent(subjects="oven")
        ]
    assert events == [
        ("limiter.started", 0.0, {"period": 1.0, "automatic": False}),
        ("limiter.fed", 0.0, {"count": 1, "feeds": 1}),
        ("limiter.tripped", 1.0, {
            "number": 1, "deadline": heater.t0 + 1.0, "late": 0.0, "since_feed": 1.0,
            "period": 1.0, "cancelled": 0,
        }),
        ("limiter.rejected", 1.5, {"limit": "over", "elapsed": 1.5, "period": 1.0, "trips": 1}),
        ("limiter.stopped", 1.5, {"trips": 1}),
    ]  # fmt: skip


def test_decorator_keeps_the_signature() -> None:
    watchdog = Control(1.0)

    async def set_point(value: float, *, ramp: float = 0.0) -> float:
        """Set it."""
        return value

    for decorated in (watchdog(set_point), guarded_by("watchdog")(set_point)):
        assert decorated.__name__ == "set_point"
        assert decorated.__doc__ == "Set it."
        assert inspect.signature(decorated) == inspect.signature(set_point)
        assert inspect.iscoroutinefunction(decorated)


def test_bad_input_is_refused() -> None:
    async def off() -> None: ...

    def sync_off() -> None: ...

    for period in (0, -1, float("inf"), "10", None, True):
        with pytest.raises(LimiterConfigError, match="period must be a finite number > 0"):
            Control(period, off)  # type: ignore[arg-type]
    with pytest.raises(NotAsyncError, match=r"on_trip \(the safety action\) must be an async"):
        Control(1.0, sync_off)  # type: ignore[arg-type]
    with pytest.raises(NotAsyncError):
        Control(1.0)(sync_off)  # type: ignore[arg-type]
    with pytest.raises(NotAsyncError):
        guarded_by("watchdog")(sync_off)  # type: ignore[arg-type]
    with pytest.raises(LimiterConfigError, match="name must be"):
        Control(1.0, name="")
    with pytest.raises(LimiterConfigError, match="report_every"):
        Control(1.0, report_every=-2)
    with pytest.raises(LimiterConfigError, match="attribute of the instance"):
        guarded_by("")


@vt
async def test_guarded_by_needs_a_control(virtual_clock: VirtualClock) -> None:
    class NoWatchdog:
        @guarded_by("watchdog")
        async def go(self) -> None: ...

    with pytest.raises(LimiterConfigError, match="has no attribute 'watchdog'"):
        await NoWatchdog().go()


def test_repr_and_statistics_before_start() -> None:
    watchdog = Control(10.0, name="heater")
    assert repr(watchdog) == "<Control 'heater' period=10.0 stopped trips=0>"
    stats = watchdog.statistics()
    assert stats.last_feed is None
    assert stats.deadline is None
    assert not stats.running
    assert stats.as_dict()["name"] == "heater"
    assert watchdog.last_trip is None
