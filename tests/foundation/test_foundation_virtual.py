"""Virtual time on asyncio and trio, `timecontrol.testing.run`, and the pytest plugin."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import anyio
import pytest
import sniffio

from timecontrol import SystemClock, current_clock
from timecontrol.errors import ClockError, NaiveDatetimeError
from timecontrol.testing import DEFAULT_START, VirtualClock, VirtualEventLoop, run

START = datetime(2026, 3, 29, 0, 30, tzinfo=timezone(timedelta(hours=1)))
BACKENDS = ["asyncio", "trio"]


# -- a simulated day ------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_simulated_day_of_minute_timers_is_fast_and_exact(backend: str) -> None:
    async def day() -> list[tuple[float, datetime]]:
        clock = current_clock()
        stamps = []
        for _ in range(1440):
            await anyio.sleep(60)  # virtual time
            stamps.append((clock.monotonic(), clock.now()))
        return stamps

    # The one real-time measurement of the suite: virtual time must not cost real time.
    t0 = time.perf_counter()
    stamps = run(day, start=START, backend=backend)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - t0
    assert elapsed < 1.0
    assert stamps == [
        (60.0 * i, START + timedelta(minutes=i)) for i in range(1, 1441)
    ]  # exact, every one


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_simulated_day_of_concurrent_timers_fires_in_order(backend: str) -> None:
    async def day() -> list[tuple[int, float]]:
        fired: list[tuple[int, float]] = []

        async def timer(minute: int) -> None:
            await anyio.sleep(minute * 60)
            fired.append((minute, anyio.current_time()))

        async with anyio.create_task_group() as tg:
            for minute in reversed(range(1, 1441)):
                tg.start_soon(timer, minute)
        return fired

    t0 = time.perf_counter()
    fired = run(day, backend=backend)  # type: ignore[arg-type]
    assert time.perf_counter() - t0 < 1.0
    assert fired == [(m, m * 60.0) for m in range(1, 1441)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_virtual_year_of_daily_timers_is_exact(backend: str, hang_guard: None) -> None:
    """Regression: past 2**23 s (97 days) of virtual time the asyncio loop spun forever.

    asyncio runs timers due before ``time() + clock_resolution``; a fixed 1 ns resolution is
    lost to rounding at that magnitude, so a timer due exactly now never ran.
    """

    async def year() -> list[float]:
        await anyio.sleep(0.25)  # off the whole seconds, as real schedules are; virtual time
        stamps = []
        for _ in range(366):
            await anyio.sleep(86_400)  # virtual time
            stamps.append(anyio.current_time())
        await anyio.sleep_until(2.0**25 + 0.125)
        stamps.append(anyio.current_time())
        return stamps

    stamps = run(year, backend=backend)  # type: ignore[arg-type]
    assert stamps[:-1] == [0.25 + 86_400.0 * i for i in range(1, 367)]
    assert stamps[-1] == 2.0**25 + 0.125


@pytest.mark.parametrize("backend", BACKENDS)
def test_sleep_until_lands_exactly_on_the_deadline(backend: str, hang_guard: None) -> None:
    deadlines = [1e-7, 0.1, 0.30000000000000004, 7.000001, 1e6 + 1 / 3, 9e6 + 0.7, 2.0**24]

    async def main() -> list[float]:
        seen = []
        for deadline in deadlines:
            await anyio.sleep_until(deadline)
            seen.append(anyio.current_time())
        return seen

    assert run(main, backend=backend) == deadlines  # type: ignore[arg-type]


# -- wall time from a chosen start ----------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_wall_time_follows_virtual_time_from_an_aware_start(backend: str) -> None:
    berlin = ZoneInfo("Europe/Berlin")

    async def main() -> list[datetime]:
        clock = current_clock()
        seen = [clock.now()]
        await anyio.sleep(3600)  # virtual time
        seen.append(clock.now())
        await anyio.sleep(3600)  # across the spring-forward gap at 02:00 CET; virtual time
        seen.append(clock.now())
        return seen

    seen = run(main, start="2026-03-29T00:30+01:00", backend=backend)  # type: ignore[arg-type]
    assert seen == [START, START + timedelta(hours=1), START + timedelta(hours=2)]
    assert all(d.tzinfo is UTC for d in seen)
    assert seen[0] == datetime(2026, 3, 28, 23, 30, tzinfo=UTC)
    local = [d.astimezone(berlin).strftime("%H:%M%z") for d in seen]
    assert local == ["00:30+0100", "01:30+0100", "03:30+0200"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_current_clock_inside_run_is_the_virtual_clock(backend: str) -> None:
    clock = VirtualClock(START)

    async def main() -> tuple[object, float, float, str]:
        inner = current_clock()
        return inner, clock.time(), clock.elapsed(), sniffio.current_async_library()

    inner, wall, elapsed, library = clock.run(main, backend=backend)  # type: ignore[arg-type]
    assert inner is clock
    assert wall == START.timestamp()
    assert elapsed == 0.0
    assert library == backend
    assert isinstance(current_clock(), SystemClock)  # restored outside


def test_run_passes_arguments_returns_the_result_and_raises_errors() -> None:
    async def add(a: int, b: int) -> int:
        await anyio.sleep(1)  # virtual time
        return a + b

    assert run(add, 2, 3) == 5

    async def fail() -> None:
        await anyio.sleep(1)  # virtual time
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        run(fail, backend="trio")
    assert isinstance(current_clock(), SystemClock)


def test_virtual_clock_start_validation() -> None:
    assert VirtualClock().start == DEFAULT_START
    assert VirtualClock("2026-03-29T00:30+01:00").start == START
    with pytest.raises(NaiveDatetimeError, match="2026-03-29T00:30:00 is naive"):
        VirtualClock("2026-03-29T00:30")
    with pytest.raises(NaiveDatetimeError):
        VirtualClock(datetime(2026, 3, 29))
    with pytest.raises(ClockError, match="'next tuesday' is not an ISO 8601 datetime"):
        VirtualClock("next tuesday")
    with pytest.raises(ClockError, match="unknown backend 'curio'"):
        VirtualClock().run(anyio.sleep, 0, backend="curio")  # type: ignore[arg-type]
    assert repr(VirtualClock(START)) == "VirtualClock(start='2026-03-29T00:30:00+01:00')"


@pytest.mark.parametrize("backend", BACKENDS)
def test_advance_and_advance_to(backend: str) -> None:
    clock = VirtualClock(START)

    async def main() -> tuple[float, float, datetime]:
        await clock.advance(90)
        first = clock.elapsed()
        await clock.advance_to(START + timedelta(hours=2))
        return first, clock.elapsed(), clock.now()

    assert clock.run(main, backend=backend) == (  # type: ignore[arg-type]
        90.0,
        7200.0,
        START + timedelta(hours=2),
    )


def test_one_virtual_clock_runs_again_on_either_backend() -> None:
    clock = VirtualClock(START)

    async def main() -> datetime:
        await clock.sleep_until_wall(clock.now() + timedelta(minutes=5))
        return clock.now()

    # Each run starts again at `start`; the wall sleeper's wake-up belongs to its own loop.
    assert clock.run(main) == START + timedelta(minutes=5)
    assert clock.run(main, backend="trio") == START + timedelta(minutes=5)
    assert clock.run(main) == START + timedelta(minutes=5)


def test_virtual_event_loop_only_moves_forward() -> None:
    loop = VirtualEventLoop()
    try:
        assert loop.time() == 0.0
        loop.advance(2.5)
        assert loop.time() == 2.5
        with pytest.raises(ValueError, match="only moves forward"):
            loop.advance(-1)
        assert loop.time() == 2.5
    finally:
        loop.close()


# -- the pytest plugin, used directly -------------------------------------------------------

_seen_backends: list[str] = []


@pytest.mark.timecontrol
async def test_plugin_marker_runs_on_both_backends(timecontrol_backend: str) -> None:
    assert sniffio.current_async_library() == timecontrol_backend
    _seen_backends.append(timecontrol_backend)


def test_plugin_marker_ran_asyncio_then_trio() -> None:
    # Runs after the test above (pytest keeps file order): both parametrizations ran.
    assert _seen_backends == ["asyncio", "trio"]


@pytest.mark.timecontrol(start="2026-03-29T00:30+01:00")
async def test_plugin_virtual_clock_fixture(virtual_clock: VirtualClock) -> None:
    assert current_clock() is virtual_clock
    assert virtual_clock.now() == START
    await anyio.sleep(3600)  # virtual time
    assert virtual_clock.now() == START + timedelta(hours=1)
    assert virtual_clock.elapsed() == 3600.0


@pytest.mark.timecontrol(backends=["trio"])
async def test_plugin_backends_argument(timecontrol_backend: str) -> None:
    assert timecontrol_backend == "trio"
    assert sniffio.current_async_library() == "trio"


# -- the pytest plugin, seen from outside (pytester) ----------------------------------------


@pytest.fixture
def pytester(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester project configured like a user's (quiet about pytest-asyncio's defaults)."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    return pytester


def test_plugin_in_a_users_test_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from datetime import UTC, datetime, timedelta

        import anyio
        import pytest
        import sniffio

        import timecontrol


        @pytest.mark.timecontrol(start="2026-03-29T00:30+01:00")
        async def test_hourly(virtual_clock):
            await anyio.sleep(3600)  # virtual time
            assert virtual_clock.now() == datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
            assert timecontrol.current_clock() is virtual_clock


        @pytest.mark.timecontrol(backends=["asyncio"])
        async def test_asyncio_only():
            assert sniffio.current_async_library() == "asyncio"


        @pytest.mark.timecontrol
        async def test_failing_is_reported():
            await anyio.sleep(5)  # virtual time
            assert anyio.current_time() == 4


        @pytest.mark.timecontrol
        class TestOnAClass:
            async def test_method(self, virtual_clock):
                await anyio.sleep(1)  # virtual time
                assert virtual_clock.elapsed() == 1


        def test_plain_tests_are_untouched():
            assert timecontrol.current_clock() is not None
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--strict-markers", "-v")
    result.assert_outcomes(passed=6, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_hourly?asyncio? PASSED*",
            "*test_hourly?trio? PASSED*",
            "*test_asyncio_only?asyncio? PASSED*",
            "*test_failing_is_reported?asyncio? FAILED*",
            "*test_failing_is_reported?trio? FAILED*",
            "*TestOnAClass::test_method?asyncio? PASSED*",
            "*TestOnAClass::test_method?trio? PASSED*",
            "*test_plain_tests_are_untouched PASSED*",
        ]
    )


def test_plugin_rejects_a_sync_test_and_an_unknown_backend(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_sync="""
        import pytest

        @pytest.mark.timecontrol
        def test_sync():
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "test_sync.py")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*needs an 'async def' test*"])

    pytester.makepyfile(
        test_curio="""
        import pytest

        @pytest.mark.timecontrol(backends=["curio"])
        async def test_curio():
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "test_curio.py")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*unknown backend 'curio'; expected 'asyncio' or 'trio'*"])


def test_plugin_works_with_pytest_asyncio_auto_mode(pytester: pytest.Pytester) -> None:
    """Regression: in ``asyncio_mode = auto`` pytest-asyncio wraps every coroutine test in a
    sync function first, and the plugin refused it as "not an async def test"."""
    pytester.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    pytester.makepyfile(
        """
        import anyio
        import pytest
        import sniffio


        @pytest.mark.timecontrol
        async def test_virtual(virtual_clock, timecontrol_backend):
            await anyio.sleep(3600)  # virtual time
            assert virtual_clock.elapsed() == 3600
            assert sniffio.current_async_library() == timecontrol_backend


        class TestGrouped:
            @pytest.mark.timecontrol(backends=["trio"])
            async def test_method(self, virtual_clock):
                await anyio.sleep(1)  # virtual time
                assert virtual_clock.elapsed() == 1


        async def test_left_to_pytest_asyncio():
            import asyncio
            await asyncio.sleep(0)
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


def test_plugin_declares_its_marker(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.timecontrol(start=None*"])


@pytest.mark.timecontrol(start="2026-03-29T00:30+01:00")
async def test_waiting_on_the_sqlite_writer_does_not_let_virtual_time_jump(
    virtual_clock: VirtualClock, tmp_path: Path
) -> None:
    # A far timer is pending while the loop waits for the writer thread: without holding
    # jumps, virtual time would leap to that timer during every flush and query.
    from timecontrol import Log
    from timecontrol.stores import SQLiteLog

    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.sleep, 3600)
        log = Log(sink=SQLiteLog(tmp_path / "hold.sqlite"))
        before = virtual_clock.elapsed()
        for i in range(50):
            log.append("log.note", "x", {"i": i})
            await log.flush()
        events = await log.query()
        await log.aclose()
        assert virtual_clock.elapsed() == before
        assert len(events) == 50
        tg.cancel_scope.cancel()
