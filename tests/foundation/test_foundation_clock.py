"""The Clock: conversions, aware datetimes only, and wall-clock sleeps that survive clock steps."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta, timezone

import anyio
import pytest

from timecontrol import Clock, SystemClock, TimeControlError, current_clock
from timecontrol._clock import ensure_aware, reset_clock, to_timestamp, use_clock
from timecontrol.errors import ClockError, NaiveDatetimeError
from timecontrol.testing import VirtualClock

START = datetime(2026, 3, 29, 0, 30, tzinfo=timezone(timedelta(hours=1)))
START_TS = START.timestamp()


# -- aware datetimes only -------------------------------------------------------------------


def test_ensure_aware_returns_an_aware_datetime_unchanged() -> None:
    value = datetime(2026, 3, 29, 2, 30, tzinfo=timezone(timedelta(hours=-5)))
    assert ensure_aware(value) is value


def test_ensure_aware_rejects_a_naive_datetime_naming_it() -> None:
    naive = datetime(2026, 3, 29, 2, 30, 15)
    with pytest.raises(NaiveDatetimeError) as info:
        ensure_aware(naive, "due")
    message = str(info.value)
    assert message.startswith("due 2026-03-29T02:30:15 is naive")
    assert "2026-03-29T02:30:15+00:00" in message  # what would be accepted
    assert isinstance(info.value, TimeControlError)
    assert isinstance(info.value, ValueError)


def test_ensure_aware_rejects_a_tzinfo_without_offset() -> None:
    class NoOffset(timezone.__base__):  # type: ignore[misc,name-defined]
        def utcoffset(self, dt: datetime | None) -> None:
            return None

    value = datetime(2026, 1, 1, tzinfo=NoOffset())
    with pytest.raises(NaiveDatetimeError, match="is naive"):
        ensure_aware(value)


def test_ensure_aware_rejects_what_is_not_a_datetime() -> None:
    with pytest.raises(NaiveDatetimeError, match=re.escape("got '2026-03-29' (str)")):
        ensure_aware("2026-03-29", "start")  # type: ignore[arg-type]


def test_to_timestamp_of_aware_datetimes_and_floats_is_exact() -> None:
    assert to_timestamp(START) == 1774740600.0
    assert to_timestamp(datetime(1970, 1, 1, tzinfo=UTC)) == 0.0
    assert to_timestamp(1774740600.25) == 1774740600.25
    assert to_timestamp(17) == 17.0
    assert type(to_timestamp(17)) is float


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), True, "12", None])
def test_to_timestamp_rejects_non_finite_and_non_numbers(bad: object) -> None:
    with pytest.raises(NaiveDatetimeError, match=re.escape(repr(bad))):
        to_timestamp(bad, "when")  # type: ignore[arg-type]


def test_to_timestamp_rejects_a_naive_datetime_naming_it() -> None:
    with pytest.raises(NaiveDatetimeError, match=r"^when 2026-03-29T02:30:00 is naive"):
        to_timestamp(datetime(2026, 3, 29, 2, 30), "when")


# -- SystemClock ----------------------------------------------------------------------------


class FixedWallClock(SystemClock):
    """A SystemClock whose wall time is set by the test: conversions become exact."""

    def __init__(self, wall: float, recheck: float = 1.0) -> None:
        super().__init__(recheck)
        self.wall = wall

    def time(self) -> float:
        return self.wall


def test_system_clock_is_a_clock_and_reads_the_system_time() -> None:
    clock = SystemClock()
    assert isinstance(clock, Clock)
    assert clock.recheck == 1.0
    before = time.time()
    wall = clock.time()
    after = time.time()
    assert before <= wall <= after
    now = clock.now()
    assert now.tzinfo is UTC
    assert before <= now.timestamp() <= time.time()
    assert repr(clock) == "SystemClock(recheck=1.0)"


@pytest.mark.parametrize("recheck", [0, -1.0, float("nan")])
def test_system_clock_rejects_a_non_positive_recheck(recheck: float) -> None:
    with pytest.raises(ValueError, match="recheck must be a positive number"):
        SystemClock(recheck)


def test_system_monotonic_outside_an_event_loop_is_the_os_monotonic_clock() -> None:
    # Jobs may be added at import time, before any loop runs: their events are stamped with
    # the OS monotonic clock, which is also what asyncio's loop reads.
    before = time.monotonic()
    value = SystemClock().monotonic()
    assert before <= value <= time.monotonic()


def test_virtual_monotonic_outside_its_run_is_a_clock_error() -> None:
    from timecontrol.testing import VirtualClock

    with pytest.raises(ClockError, match="inside an async context"):
        VirtualClock().monotonic()


def test_system_clock_monotonic_is_the_running_asyncio_loops_time() -> None:
    async def main() -> tuple[float, float, float]:
        loop = asyncio.get_running_loop()
        return loop.time(), SystemClock().monotonic(), loop.time()

    before, mono, after = asyncio.run(main())
    assert before <= mono <= after


def test_system_clock_monotonic_under_trio_is_trios_time() -> None:
    import trio

    async def main() -> tuple[float, float, float]:
        return trio.current_time(), SystemClock().monotonic(), trio.current_time()

    before, mono, after = trio.run(main)
    assert before <= mono <= after


def test_the_shared_system_clock_serves_one_event_loop_after_another() -> None:
    """Regression: sleep_until_wall kept one anyio.Event for all loops and broke the second."""
    import trio

    clock = current_clock()
    assert isinstance(clock, SystemClock)
    # A target already reached returns at once, but only after the first loop's sleep made
    # the clock create its wake-up event.
    asyncio.run(clock.sleep_until_wall(time.time() + 0.001))
    asyncio.run(clock.sleep_until_wall(time.time() + 0.001))
    trio.run(clock.sleep_until_wall, time.time() + 0.001)


@pytest.mark.timecontrol(backends=["asyncio", "trio"])
async def test_system_clock_conversions_with_a_fixed_wall_time() -> None:
    clock = FixedWallClock(wall=START_TS)
    await anyio.sleep(100)  # monotonic time is the (virtual) loop's
    assert clock.monotonic() == 100.0
    assert clock.now() == START
    assert clock.to_wall(100.0) == START
    assert clock.to_wall(160.5) == START + timedelta(seconds=60.5)
    assert clock.to_wall(40.0) == START - timedelta(minutes=1)
    assert clock.to_monotonic(START + timedelta(minutes=2)) == 220.0
    assert clock.to_monotonic(START_TS - 100) == 0.0
    assert clock.to_monotonic(clock.to_wall(123.0)) == 123.0
    with pytest.raises(NaiveDatetimeError):
        clock.to_monotonic(datetime(2026, 3, 29))
    # A wall-clock step moves every conversion made afterwards.
    clock.wall += 3600
    assert clock.to_wall(100.0) == START + timedelta(hours=1)
    assert clock.to_monotonic(START) == 100.0 - 3600


@pytest.mark.timecontrol
async def test_system_clock_sleep_until_is_on_the_monotonic_clock() -> None:
    clock = SystemClock()
    await clock.sleep_until(42.5)
    assert clock.monotonic() == 42.5


# -- SystemClock re-anchoring: a wall clock stepped under a sleeper ---------------------------


class SteppedWallClock(SystemClock):
    """Wall time runs with the loop's monotonic time; the test steps it like NTP would.

    Every wall-time reading is logged with the monotonic time it was taken at, so the test
    sees exactly when `sleep_until_wall` re-checked.
    """

    def __init__(self, base: float, recheck: float) -> None:
        super().__init__(recheck)
        self.base = base
        self.offset = 0.0
        self.reads: list[float] = []

    def time(self) -> float:
        mono = self.monotonic()
        self.reads.append(mono)
        return self.base + mono + self.offset


async def _sleep_and_step(
    clock: SteppedWallClock, target: float, step_at: float | None, step: float
) -> float:
    """Run `sleep_until_wall(target)`, step the wall clock at `step_at`; the monotonic return."""
    returned: list[float] = []

    async def sleeper() -> None:
        await clock.sleep_until_wall(target)
        returned.append(clock.monotonic())

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper)
        if step_at is not None:
            await anyio.sleep(step_at)
            clock.offset += step
    return returned[0]


@pytest.mark.timecontrol
async def test_system_clock_without_steps_rechecks_every_recheck_seconds() -> None:
    clock = SteppedWallClock(base=1_000_000.0, recheck=1.0)
    returned = await _sleep_and_step(clock, 1_000_000.0 + 5.5, None, 0.0)
    assert returned == 5.5
    # Whole `recheck` sleeps, then exactly the remainder: never past the target.
    assert clock.reads == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 5.5]


@pytest.mark.timecontrol
async def test_system_clock_step_forwards_fires_at_the_next_recheck_not_lost() -> None:
    clock = SteppedWallClock(base=1_000_000.0, recheck=2.0)
    target = 1_000_000.0 + 3600.0
    # At monotonic 10.5 the wall clock jumps 2 h ahead: the target is now in the past.
    returned = await _sleep_and_step(clock, target, 10.5, 7200.0)
    # The sleeper was asleep until its next recheck (12.0); it fires then, at most `recheck`
    # late, instead of waiting out the hour it had computed before the step.
    assert returned == 12.0
    assert clock.reads == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0]


@pytest.mark.timecontrol
async def test_system_clock_step_forwards_short_of_the_target_waits_the_rest() -> None:
    clock = SteppedWallClock(base=1_000_000.0, recheck=1.0)
    target = 1_000_000.0 + 60.0
    returned = await _sleep_and_step(clock, target, 10.5, 30.0)
    # Wall time reaches the target at monotonic 30: exactly when the sleeper returns.
    assert returned == 30.0
    reads = clock.reads
    assert reads == [float(i) for i in range(31)]


@pytest.mark.timecontrol
async def test_system_clock_step_backwards_never_fires_early() -> None:
    clock = SteppedWallClock(base=1_000_000.0, recheck=1.0)
    target = 1_000_000.0 + 60.0
    returned = await _sleep_and_step(clock, target, 10.5, -30.0)
    # The conversion made before the step said "monotonic 60"; wall time only reaches the
    # target at monotonic 90, and that is when it fires.
    assert returned == 90.0
    reads = clock.reads
    assert reads == [float(i) for i in range(91)]
    assert all(clock.base + r + (-30.0 if r > 10.5 else 0.0) < target for r in reads[:-1])


@pytest.mark.timecontrol
async def test_system_clock_sleep_until_wall_past_target_returns_at_once() -> None:
    clock = SteppedWallClock(base=1_000_000.0, recheck=1.0)
    await clock.sleep_until_wall(999_999.0)
    await clock.sleep_until_wall(datetime.fromtimestamp(1_000_000.0, UTC))
    assert clock.monotonic() == 0.0
    with pytest.raises(NaiveDatetimeError):
        await clock.sleep_until_wall(datetime(2026, 1, 1))


# -- VirtualClock wall steps ----------------------------------------------------------------


@pytest.mark.timecontrol(start="2026-03-29T00:30+01:00")
async def test_virtual_sleep_until_wall_without_steps_is_exact(
    virtual_clock: VirtualClock,
) -> None:
    target = START + timedelta(hours=1, seconds=0.5)
    await virtual_clock.sleep_until_wall(target)
    assert virtual_clock.now() == target
    assert virtual_clock.elapsed() == 3600.5


@pytest.mark.timecontrol(start="2026-03-29T00:30+01:00")
async def test_virtual_step_forwards_past_the_target_fires_at_once(
    virtual_clock: VirtualClock,
) -> None:
    target = START + timedelta(hours=1)
    fired: list[tuple[float, datetime]] = []

    async def sleeper() -> None:
        await virtual_clock.sleep_until_wall(target)
        fired.append((virtual_clock.elapsed(), virtual_clock.now()))

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper)
        await anyio.sleep(600)  # virtual time
        virtual_clock.step_wall(3 * 3600)
    # Not lost, not an hour late: at the instant of the step.
    assert fired == [(600.0, START + timedelta(seconds=600 + 3 * 3600))]


@pytest.mark.timecontrol(start="2026-03-29T00:30+01:00")
async def test_virtual_step_forwards_short_of_the_target_fires_when_wall_reaches_it(
    virtual_clock: VirtualClock,
) -> None:
    target = START + timedelta(hours=1)
    fired: list[tuple[float, datetime]] = []

    async def sleeper() -> None:
        await virtual_clock.sleep_until_wall(target)
        fired.append((virtual_clock.elapsed(), virtual_clock.now()))

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper)
        await anyio.sleep(600)  # virtual time
        virtual_clock.step_wall(1800)
    assert fired == [(1800.0, target)]


@pytest.mark.timecontrol(start="2026-03-29T00:30+01:00")
async def test_virtual_step_backwards_never_fires_early(virtual_clock: VirtualClock) -> None:
    target = START + timedelta(hours=1)
    fired: list[tuple[float, datetime]] = []

    async def sleeper() -> None:
        await virtual_clock.sleep_until_wall(target)
        fired.append((virtual_clock.elapsed(), virtual_clock.now()))

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper)
        await anyio.sleep(600)  # virtual time
        virtual_clock.step_wall(-1800)
        await anyio.sleep(3000)  # virtual 3600: where the pre-step conversion pointed
        assert fired == []
    assert fired == [(5400.0, target)]


@pytest.mark.timecontrol(start="2026-03-29T00:30+01:00")
async def test_one_step_wakes_every_wall_sleeper(virtual_clock: VirtualClock) -> None:
    fired: list[tuple[int, float]] = []

    async def sleeper(minutes: int) -> None:
        await virtual_clock.sleep_until_wall(START + timedelta(minutes=minutes))
        fired.append((minutes, virtual_clock.elapsed()))

    async with anyio.create_task_group() as tg:
        for minutes in (30, 60, 120):
            tg.start_soon(sleeper, minutes)
        await anyio.sleep(60)  # virtual time
        virtual_clock.step_wall(90 * 60)  # wall is now START + 91 min
    assert sorted(fired) == [(30, 60.0), (60, 60.0), (120, 60.0 + 29 * 60)]
    assert virtual_clock._step_waiters == set()  # nobody left registered


@pytest.mark.timecontrol
async def test_virtual_conversions_follow_wall_steps(virtual_clock: VirtualClock) -> None:
    await anyio.sleep(10)  # virtual time
    start = virtual_clock.start
    assert virtual_clock.to_wall(10.0) == start + timedelta(seconds=10)
    assert virtual_clock.to_monotonic(start + timedelta(seconds=70)) == 70.0
    virtual_clock.step_wall(-5)
    assert virtual_clock.now() == start + timedelta(seconds=5)
    assert virtual_clock.to_monotonic(start + timedelta(seconds=70)) == 75.0
    assert virtual_clock.monotonic() == 10.0  # monotonic time never steps


# -- current_clock --------------------------------------------------------------------------


def test_current_clock_defaults_to_the_system_clock_and_use_clock_overrides() -> None:
    default = current_clock()
    assert isinstance(default, SystemClock)
    assert current_clock() is default
    mine = VirtualClock()
    token = use_clock(mine)
    try:
        assert current_clock() is mine
    finally:
        reset_clock(token)
    assert current_clock() is default
