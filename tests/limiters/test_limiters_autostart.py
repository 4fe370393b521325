"""A watchdog is never fed without watching: fed or called through while not running, it
starts itself in the running engine, or refuses the call and changes nothing.

Virtual time, once on asyncio and once on trio (`@pytest.mark.timecontrol`).
"""

from __future__ import annotations

import anyio
import anyio.to_thread
import pytest

import timecontrol as tc
from timecontrol.limiters import (
    Control,
    OverTimeLimit,
    SafetyActionError,
    WatchdogStateError,
    guarded_by,
)
from timecontrol.testing import VirtualClock

vt = pytest.mark.timecontrol


class Heater:
    """A fake heater: its safety action and its set-points record when they happened."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.t0 = clock.monotonic()
        self.offs: list[float] = []
        self.set_points: list[tuple[float, float]] = []

    def now(self) -> float:
        return self.clock.monotonic() - self.t0

    async def switch_off(self) -> None:
        self.offs.append(self.now())

    async def set_point(self, value: float) -> float:
        self.set_points.append((self.now(), value))
        return value


def started_events(engine: tc.Engine, name: str) -> list[tuple[str, dict[str, object]]]:
    kinds = ("limiter.started", "limiter.stopped")
    return [(e.kind, dict(e.payload)) for e in engine.log.recent(subjects=name, kinds=kinds)]


@vt
async def test_first_guarded_call_starts_it_in_the_engine_and_it_trips_on_time(
    virtual_clock: VirtualClock,
) -> None:
    heater = Heater(virtual_clock)
    watchdog = Control(2.0, heater.switch_off, name="heater")
    set_point = watchdog(heater.set_point)
    async with tc.Engine() as engine:
        await anyio.sleep(1.0)  # virtual time; nothing watches yet, so nothing trips
        assert not watchdog.running
        await set_point(50.0)  # t=1: starts the watch, and feeds it
        assert (watchdog.running, watchdog.automatic) == (True, True)
        assert watchdog.deadline == heater.t0 + 3.0
        await anyio.sleep(4.5)  # unfed: trips at 3 and 5; virtual time
        assert heater.offs == [3.0, 5.0]
        with pytest.raises(OverTimeLimit) as info:
            await set_point(60.0)
        assert info.value.trips == 2
        await set_point(70.0)  # delivered once: runs (and feeds) again
        stats = watchdog.statistics()
        assert (stats.calls, stats.feeds, stats.rejected, stats.trips) == (2, 2, 1, 2)
    # The engine's stop ends the watch, and the Log says both.
    assert not watchdog.running
    assert heater.set_points == [(1.0, 50.0), (5.5, 70.0)]
    assert started_events(engine, "heater") == [
        ("limiter.started", {"period": 2.0, "automatic": True}),
        ("limiter.stopped", {"trips": 2}),
    ]


@vt
async def test_a_feed_or_a_guarded_block_starts_it_too(virtual_clock: VirtualClock) -> None:
    heater = Heater(virtual_clock)
    by_feed = Control(1.0, heater.switch_off, name="by-feed")
    by_block = Control(1.5, name="by-block")
    async with tc.Engine():
        by_feed.feed()
        with by_block.guarded():
            pass
        assert by_feed.automatic
        assert by_block.automatic
        await anyio.sleep(2.5)  # virtual time
        assert heater.offs == [1.0, 2.0]
        assert by_block.tripped
        assert by_block.statistics().trips == 1


@vt
async def test_per_instance_watchdogs_start_on_their_own_first_call(
    virtual_clock: VirtualClock,
) -> None:
    t0 = virtual_clock.monotonic()
    offs: list[tuple[str, float]] = []

    class Oven:
        def __init__(self, name: str) -> None:
            self.name = name
            self.watchdog = Control(1.0, self.switch_off, name=name)

        async def switch_off(self) -> None:
            offs.append((self.name, virtual_clock.monotonic() - t0))

        @guarded_by("watchdog")
        async def set_point(self, value: float) -> float:
            return value

    a, b = Oven("a"), Oven("b")
    async with tc.Engine():
        await a.set_point(20.0)  # t=0: a watches; b was never used, so it does not
        await anyio.sleep(0.5)  # virtual time
        await b.set_point(20.0)  # t=0.5: b watches from now
        await anyio.sleep(1.25)  # virtual time
    assert offs == [("a", 1.0), ("b", 1.5)]


@vt
async def test_without_an_engine_a_guarded_call_is_refused_and_nothing_changes(
    virtual_clock: VirtualClock,
) -> None:
    heater = Heater(virtual_clock)
    log = tc.Log()
    watchdog = Control(2.0, heater.switch_off, name="heater", log=log)
    set_point = watchdog(heater.set_point)
    before = watchdog.statistics()
    with pytest.raises(WatchdogStateError) as info:
        await set_point(50.0)
    message = str(info.value)
    assert message.startswith("heater: this watchdog is not running")
    assert "async with watchdog:" in message
    assert "watchdog.start(task_group)" in message
    assert isinstance(info.value, tc.TimeControlError)
    with pytest.raises(WatchdogStateError, match="this feed was refused"):
        watchdog.feed()
    with pytest.raises(WatchdogStateError, match="this guarded call was refused"):
        async with watchdog.guarded():
            pytest.fail("the block must not run")
    assert heater.set_points == []  # the coroutine never ran
    assert watchdog.statistics() == before
    assert not watchdog.running
    assert log.recent() == []
    # Started as it says, it works as ever.
    async with watchdog:
        await set_point(50.0)
    assert heater.set_points == [(0.0, 50.0)]


@vt
async def test_a_refused_call_keeps_an_undelivered_trip(virtual_clock: VirtualClock) -> None:
    heater = Heater(virtual_clock)
    watchdog = Control(1.0, heater.switch_off, name="heater")
    set_point = watchdog(heater.set_point)
    async with watchdog:
        await anyio.sleep(1.5)  # trips at 1; virtual time
    before = watchdog.statistics()
    assert watchdog.tripped
    with pytest.raises(WatchdogStateError):
        await set_point(1.0)
    assert watchdog.tripped
    assert watchdog.statistics() == before
    assert heater.set_points == []


@vt
async def test_a_feed_from_another_thread_is_refused(virtual_clock: VirtualClock) -> None:
    # A task group takes new tasks only from its own loop's thread: no start from elsewhere.
    watchdog = Control(1.0, name="heater")
    async with tc.Engine():
        with pytest.raises(WatchdogStateError, match="not running"):
            await anyio.to_thread.run_sync(watchdog.feed)
    assert watchdog.statistics().feeds == 0


@vt
async def test_stop_then_the_next_call_starts_it_again(virtual_clock: VirtualClock) -> None:
    heater = Heater(virtual_clock)
    watchdog = Control(1.0, heater.switch_off, name="heater")
    set_point = watchdog(heater.set_point)
    async with tc.Engine() as engine:
        await set_point(1.0)
        watchdog.stop()
        assert not watchdog.running
        # Its task has not ended yet: neither a new watch nor an unwatched call.
        with pytest.raises(WatchdogStateError, match="still stopping"):
            await set_point(2.0)
        await anyio.sleep(3.0)  # stopped: no trips; virtual time
        assert heater.offs == []
        await set_point(3.0)  # t=3: a new watch
        await anyio.sleep(1.5)  # virtual time
    assert heater.offs == [4.0]
    assert heater.set_points == [(0.0, 1.0), (3.0, 3.0)]
    assert [kind for kind, _ in started_events(engine, "heater")] == [
        "limiter.started",
        "limiter.stopped",
        "limiter.started",
        "limiter.stopped",
    ]


@vt
async def test_starting_it_by_hand_after_it_started_itself_says_why_not(
    virtual_clock: VirtualClock,
) -> None:
    watchdog = Control(1.0, name="heater")
    async with tc.Engine():
        watchdog.feed()
        with pytest.raises(WatchdogStateError) as info:
            async with watchdog:
                pass
        assert "already running (it started itself at its first feed" in str(info.value)
        assert watchdog.automatic


@vt
async def test_a_failing_safety_action_ends_the_engine_it_started_in(
    virtual_clock: VirtualClock,
) -> None:
    async def broken() -> None:
        raise OSError("heater unreachable")

    watchdog = Control(1.0, broken, name="heater")
    engine = tc.Engine()

    async def experiment() -> None:
        async with engine:
            watchdog.feed()
            await anyio.sleep(5.0)  # virtual time; cancelled at 1.0 by the failure

    with pytest.raises(SafetyActionError, match="heater: the safety action"):
        await experiment()
    assert virtual_clock.elapsed() == 1.0
    assert not watchdog.running
    (failed,) = engine.log.recent(kinds="limiter.trip_failed")
    assert failed.payload == {"error": "OSError", "message": "heater unreachable"}
