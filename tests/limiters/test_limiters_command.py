"""Command, the under-limiter, under virtual time on asyncio and trio: exact timestamps."""

from __future__ import annotations

import inspect
import itertools
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
from anyio.abc import TaskStatus

import timecontrol as tc
from timecontrol.limiters import (
    Command,
    LimiterConfigError,
    NotAsyncError,
    UnderTimeLimit,
    command,
    limited_by,
    limiter_of,
)
from timecontrol.testing import VirtualClock, run

vt = pytest.mark.timecontrol  # under virtual time, once on asyncio and once on trio


class Recorder:
    """Records (label, loop time relative to the start) for each call of `hit`."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.t0 = clock.monotonic()
        self.starts: list[tuple[object, float]] = []
        self.ends: list[tuple[object, float]] = []

    def now(self) -> float:
        return self.clock.monotonic() - self.t0

    async def hit(self, label: object, duration: float = 0.0) -> object:
        self.starts.append((label, self.now()))
        if duration:
            await anyio.sleep(duration)
        self.ends.append((label, self.now()))
        return label


async def _arrive(fn: Any, *args: Any, task_status: TaskStatus[None]) -> None:
    task_status.started()
    await fn(*args)  # no checkpoint since `started`: the call is made before `start` returns


async def gather(*calls: tuple[Any, ...]) -> None:
    """Call each ``(fn, *args)`` in its own task, in this order, at the same instant."""
    async with anyio.create_task_group() as tg:
        for call in calls:
            await tg.start(_arrive, *call)


@vt
async def test_interval_spaces_concurrent_callers_in_arrival_order(
    virtual_clock: VirtualClock,
) -> None:
    rec = Recorder(virtual_clock)
    limited = Command(interval=0.5)(rec.hit)
    await gather(*[(limited, i) for i in range(5)])
    assert rec.starts == [(0, 0.0), (1, 0.5), (2, 1.0), (3, 1.5), (4, 2.0)]
    stats = limiter_of(limited).statistics()
    assert (stats.calls, stats.throttled, stats.rejected, stats.cancelled) == (5, 4, 0, 0)
    assert stats.total_wait == 0.5 + 1.0 + 1.5 + 2.0
    assert stats.longest_wait == 2.0
    assert stats.mean_wait == 1.25
    assert stats.waiting == 0


@vt
async def test_first_call_goes_at_once_and_late_calls_do_not_wait(
    virtual_clock: VirtualClock,
) -> None:
    rec = Recorder(virtual_clock)
    limited = Command(interval=1.0)(rec.hit)
    await limited("a")
    await anyio.sleep(0.25)  # virtual time
    await limited("b")  # 0.75 s early: waits
    await anyio.sleep(3.0)  # virtual time
    await limited("c")  # long after: straight through
    assert rec.starts == [("a", 0.0), ("b", 1.0), ("c", 4.0)]
    assert limiter_of(limited).statistics().throttled == 1


@vt
async def test_rate_without_burst_is_evenly_spread(virtual_clock: VirtualClock) -> None:
    rec = Recorder(virtual_clock)
    limited = Command(rate=4)(rec.hit)  # 4 per second: one every 0.25 s, no initial burst
    await gather(*[(limited, i) for i in range(6)])
    assert [t for _, t in rec.starts] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25]


@vt
async def test_rate_with_per(virtual_clock: VirtualClock) -> None:
    rec = Recorder(virtual_clock)
    limited = Command(rate=3, per=60)(rec.hit)  # 3 a minute
    await gather(*[(limited, i) for i in range(3)])
    assert [t for _, t in rec.starts] == [0.0, 20.0, 40.0]


@vt
async def test_burst_is_a_sliding_window(virtual_clock: VirtualClock) -> None:
    rec = Recorder(virtual_clock)
    limited = Command(rate=3, per=1.0, burst=True)(rec.hit)
    await gather(*[(limited, i) for i in range(7)])
    # Three at once, then each waits for the start three calls back plus a second.
    assert [t for _, t in rec.starts] == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0]


@vt
async def test_burst_and_interval_combine(virtual_clock: VirtualClock) -> None:
    rec = Recorder(virtual_clock)
    limited = Command(0.25, rate=2, per=1.0, burst=True)(rec.hit)
    await gather(*[(limited, i) for i in range(5)])
    assert [t for _, t in rec.starts] == [0.0, 0.25, 1.0, 1.25, 2.0]


@vt
async def test_since_end_counts_from_the_end_and_serialises(virtual_clock: VirtualClock) -> None:
    rec = Recorder(virtual_clock)
    limited = Command(interval=0.5, since="end")(rec.hit)
    await gather(*[(limited, i, 0.25) for i in range(3)])
    assert rec.starts == [(0, 0.0), (1, 0.75), (2, 1.5)]
    assert rec.ends == [(0, 0.25), (1, 1.0), (2, 1.75)]


@vt
async def test_since_end_counts_from_a_failed_call_too(virtual_clock: VirtualClock) -> None:
    rec = Recorder(virtual_clock)
    limiter = Command(interval=1.0, since="end")

    @limiter
    async def fails() -> None:
        await anyio.sleep(0.5)  # virtual time
        raise OSError("instrument said no")

    with pytest.raises(OSError, match="said no"):
        await fails()
    await limiter.call(rec.hit, "next")
    assert rec.starts == [("next", 1.5)]


@vt
async def test_raise_mode_reports_elapsed_and_required_and_does_not_run(
    virtual_clock: VirtualClock,
) -> None:
    rec = Recorder(virtual_clock)
    limited = Command(interval=2.0, mode="raise", name="balance")(rec.hit)
    await limited("a")
    await anyio.sleep(0.5)  # virtual time
    with pytest.raises(UnderTimeLimit) as info:
        await limited("b")
    err = info.value
    assert (err.limiter, err.elapsed, err.required, err.retry_after) == ("balance", 0.5, 2.0, 1.5)
    assert "balance: 0.5 s since the previous call, at least 2 s required" in str(err)
    assert isinstance(err, tc.TimeControlError)
    await anyio.sleep(1.5)  # virtual time
    await limited("c")
    assert rec.starts == [("a", 0.0), ("c", 2.0)]
    stats = limiter_of(limited).statistics()
    assert (stats.calls, stats.rejected, stats.throttled) == (2, 1, 0)


@vt
async def test_raise_mode_with_burst_names_the_window(virtual_clock: VirtualClock) -> None:
    limiter = Command(rate=2, per=1.0, burst=True, mode="raise")
    rec = Recorder(virtual_clock)
    await limiter.call(rec.hit, 1)
    await anyio.sleep(0.25)  # virtual time
    await limiter.call(rec.hit, 2)
    with pytest.raises(UnderTimeLimit) as info:
        await limiter.call(rec.hit, 3)
    assert (info.value.elapsed, info.value.required, info.value.retry_after) == (0.25, 1.0, 0.75)


@vt
async def test_raise_mode_since_end_while_running(virtual_clock: VirtualClock) -> None:
    limiter = Command(interval=0.5, since="end", mode="raise", name="pump")
    errors: list[UnderTimeLimit] = []
    rec = Recorder(virtual_clock)

    async def second() -> None:
        await anyio.sleep(0.25)  # virtual time
        try:
            await limiter.call(rec.hit, "second")
        except UnderTimeLimit as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(limiter.call, rec.hit, "first", 1.0)
        tg.start_soon(second)
    (err,) = errors
    assert err.retry_after is None
    assert err.elapsed == 0.0
    assert err.required == 0.5
    assert "still running" in str(err)


@vt
async def test_cancelled_waiter_gives_its_slot_back(virtual_clock: VirtualClock) -> None:
    rec = Recorder(virtual_clock)
    limited = Command(interval=1.0)(rec.hit)

    async def impatient(label: str, patience: float) -> None:
        with anyio.move_on_after(patience):
            await limited(label)

    await gather(
        (limited, "a"),
        (impatient, "b", 0.5),  # would start at 1.0; gives up at 0.5
        (limited, "c"),  # moves up: starts at 1.0, not 2.0
        (impatient, "d", 5.0),  # patient enough: starts at 2.0
        (limited, "e"),
    )
    assert rec.starts == [("a", 0.0), ("c", 1.0), ("d", 2.0), ("e", 3.0)]
    stats = limiter_of(limited).statistics()
    assert (stats.calls, stats.cancelled) == (4, 1)


@vt
async def test_cancelling_the_head_wakes_the_next(virtual_clock: VirtualClock) -> None:
    rec = Recorder(virtual_clock)
    limiter = Command(interval=1.0, since="end")

    async def impatient() -> None:
        with anyio.move_on_after(0.25):
            await limiter.call(rec.hit, "b")

    await gather((limiter.call, rec.hit, "a", 0.5), (impatient,), (limiter.call, rec.hit, "c"))
    assert rec.starts == [("a", 0.0), ("c", 1.5)]


@vt
async def test_one_limiter_shared_by_several_coroutines(virtual_clock: VirtualClock) -> None:
    rec = Recorder(virtual_clock)
    bus = Command(interval=0.25, name="gpib0")

    @bus
    async def read_balance() -> object:
        return await rec.hit("balance")

    @bus
    async def read_thermometer() -> object:
        return await rec.hit("thermo")

    await gather((read_balance,), (read_thermometer,), (read_balance,))
    assert rec.starts == [("balance", 0.0), ("thermo", 0.25), ("balance", 0.5)]
    assert limiter_of(read_balance) is limiter_of(read_thermometer) is bus
    assert bus.statistics().calls == 3


@vt
async def test_async_context_manager(virtual_clock: VirtualClock) -> None:
    rec = Recorder(virtual_clock)
    settle = Command(interval=0.5, since="end")

    async def dose(label: str) -> None:
        async with settle:
            await rec.hit(label, 0.25)

    await gather((dose, "x"), (dose, "y"))
    assert rec.starts == [("x", 0.0), ("y", 0.75)]


@vt
async def test_call_passes_arguments_and_result(virtual_clock: VirtualClock) -> None:
    limiter = Command(interval=1.0)

    async def add(a: int, b: int = 0) -> int:
        return a + b

    assert await limiter.call(add, 1, b=2) == 3
    assert await limiter.call(add, 4) == 4
    assert virtual_clock.elapsed() == 1.0


@vt
async def test_per_instance_limiters_for_methods(virtual_clock: VirtualClock) -> None:
    rec = Recorder(virtual_clock)

    class Balance:
        def __init__(self, name: str) -> None:
            self.name = name

        @command(interval=1.0)
        async def weigh(self, tag: int) -> object:
            """Read the weight."""
            return await rec.hit((self.name, tag))

    left, right = Balance("left"), Balance("right")
    await gather((left.weigh, 1), (right.weigh, 1), (left.weigh, 2), (right.weigh, 2))
    assert sorted(rec.starts, key=lambda s: (s[1], str(s[0]))) == [
        (("left", 1), 0.0),
        (("right", 1), 0.0),
        (("left", 2), 1.0),
        (("right", 2), 1.0),
    ]
    lim = limiter_of(left.weigh)
    assert isinstance(lim, Command)
    assert lim is limiter_of(Balance.weigh, left) is not limiter_of(right.weigh)
    assert lim.name.endswith("Balance.weigh[left]")
    assert lim.statistics().calls == 2
    with pytest.raises(LimiterConfigError, match="per instance"):
        limiter_of(Balance.weigh)


@vt
async def test_shared_method_limiter(virtual_clock: VirtualClock) -> None:
    rec = Recorder(virtual_clock)

    class Pump:
        @command(interval=1.0, shared=True)
        async def go(self, tag: str) -> object:
            return await rec.hit(tag)

    await gather((Pump().go, "a"), (Pump().go, "b"))
    assert rec.starts == [("a", 0.0), ("b", 1.0)]


@vt
async def test_limited_by_attribute(virtual_clock: VirtualClock) -> None:
    rec = Recorder(virtual_clock)
    bus = Command(interval=0.5, name="bus")

    class Instrument:
        def __init__(self, name: str, bus: Command) -> None:
            self.name = name
            self.bus = bus

        @limited_by("bus")
        async def query(self) -> object:
            return await rec.hit(self.name)

    a, b = Instrument("a", bus), Instrument("b", bus)
    await gather((a.query,), (b.query,), (a.query,))
    assert rec.starts == [("a", 0.0), ("b", 0.5), ("a", 1.0)]
    assert limiter_of(a.query) is bus

    class Broken:
        bus = "not a limiter"

        @limited_by("bus")
        async def query(self) -> None: ...

    with pytest.raises(LimiterConfigError, match=r"expected a Command at instance\.bus"):
        await Broken().query()


@vt
async def test_per_instance_needs_weak_references() -> None:
    class Slotted:
        __slots__ = ()

        @command(interval=1.0)
        async def go(self) -> None: ...

    with pytest.raises(LimiterConfigError, match="__weakref__"):
        await Slotted().go()


@vt
async def test_per_instance_works_for_unhashable_instances(virtual_clock: VirtualClock) -> None:
    rec = Recorder(virtual_clock)

    @dataclass
    class Thing:  # eq=True makes it unhashable
        name: str

        @command(interval=1.0)
        async def go(self) -> object:
            return await rec.hit(self.name)

    a, b = Thing("x"), Thing("x")  # equal, but two instruments
    await gather((a.go,), (b.go,))
    assert [t for _, t in rec.starts] == [0.0, 0.0]


def test_decorators_keep_name_doc_signature_and_coroutine_nature() -> None:
    async def weigh(self: object, settle: float = 0.5, *, unit: str = "g") -> float:
        """Read the balance."""
        return 1.0

    for decorated in (
        Command(interval=1.0)(weigh),
        command(interval=1.0)(weigh),
        limited_by("bus")(weigh),
    ):
        assert decorated.__name__ == "weigh"
        assert decorated.__doc__ == "Read the balance."
        assert inspect.signature(decorated) == inspect.signature(weigh)
        assert inspect.iscoroutinefunction(decorated)
        assert decorated.__wrapped__ is weigh  # type: ignore[attr-defined]


def test_engine_action_accepts_a_limited_function() -> None:
    engine = tc.Engine()

    @engine.action
    @command(interval=1.0)
    async def sample(volume_ul: float) -> float:
        return volume_ul

    assert "sample" in engine.actions


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "needs a bound"),
        ({"interval": -1}, r"interval must be a finite number >= 0.*-1"),
        ({"interval": float("nan")}, "interval must be"),
        ({"interval": True}, "interval must be"),
        ({"interval": "1"}, "interval must be"),
        ({"rate": 0}, r"rate must be a finite number > 0.*got 0"),
        ({"rate": -5}, "rate must be"),
        ({"rate": 5, "per": 0}, "per must be"),
        ({"rate": 2.5, "burst": True}, "whole number"),
        ({"interval": 1, "burst": True}, "burst=True needs a rate"),
        ({"interval": 1, "mode": "block"}, "mode must be 'wait' or 'raise'"),
        ({"interval": 1, "since": "middle"}, "since must be 'start' or 'end'"),
        ({"interval": 1, "name": ""}, "name must be"),
        ({"interval": 1, "spin": 1.0}, "spin must be at most"),
        ({"interval": 1, "report_every": -1}, "report_every must be"),
        ({"interval": 1, "clock": object()}, "clock must be"),
    ],
)
def test_bad_settings_are_refused_at_decoration_time(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(LimiterConfigError, match=match) as info:
        command(**kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, tc.TimeControlError)
    assert isinstance(info.value, ValueError)
    with pytest.raises(LimiterConfigError, match=match):
        Command(**kwargs)  # type: ignore[arg-type]


def test_sync_functions_are_refused_at_decoration_time() -> None:
    def read() -> float:
        return 1.0

    for decorate in (Command(interval=1.0), command(interval=1.0), limited_by("bus")):
        with pytest.raises(NotAsyncError, match=r"must be an async function.*read") as info:
            decorate(read)  # type: ignore[arg-type]
        assert isinstance(info.value, TypeError)
    with pytest.raises(LimiterConfigError, match="attribute of the instance"):
        limited_by("not an attribute")
    with pytest.raises(LimiterConfigError, match="was not decorated"):
        limiter_of(read)


def test_async_callable_objects_are_accepted() -> None:
    class Reader:
        async def __call__(self) -> float:
            return 1.0

    assert inspect.iscoroutinefunction(Command(interval=1.0)(Reader()))


@vt
async def test_events_go_to_the_running_engine(virtual_clock: VirtualClock) -> None:
    rec = Recorder(virtual_clock)
    limiter = Command(interval=1.0, name="balance", report_every=5.0)
    refuser = Command(interval=1.0, name="strict", mode="raise")
    async with tc.Engine() as engine:
        await limiter.call(rec.hit, 1)  # straight through: counted, not written
        await limiter.call(rec.hit, 2)  # waits 1 s: limiter.throttled
        await refuser.call(rec.hit, 3)
        with pytest.raises(UnderTimeLimit):
            await refuser.call(rec.hit, 4)
        await anyio.sleep(5.0)  # virtual time
        await limiter.call(rec.hit, 5)  # the count is due: limiter.called
        events = engine.log.recent(
            kinds=["limiter.called", "limiter.throttled", "limiter.rejected"]
        )
    got = [(e.kind, e.subject, e.mono - rec.t0, e.payload) for e in events]
    assert got == [
        ("limiter.throttled", "balance", 1.0, {"waited": 1.0, "calls": 2}),
        ("limiter.rejected", "strict", 1.0, {
            "limit": "under", "elapsed": 0.0, "required": 1.0, "retry_after": 1.0, "calls": 1
        }),
        ("limiter.called", "balance", 6.0, {"count": 3, "calls": 3}),
    ]  # fmt: skip


@vt
async def test_report_every_zero_writes_each_call_and_none_writes_no_counts() -> None:
    each = Command(interval=0.0, name="each", report_every=0)
    never = Command(interval=0.0, name="never", report_every=None)

    async def noop() -> None:
        return None

    async with tc.Engine() as engine:
        for _ in range(3):
            await each.call(noop)
            await never.call(noop)
        never.report()  # writes what was counted, even with report_every=None
        events = engine.log.recent(kinds="limiter.called")
    assert [(e.subject, e.payload["count"]) for e in events] == [
        ("each", 1),
        ("each", 1),
        ("each", 1),
        ("never", 3),
    ]


@vt
async def test_events_to_an_explicit_log(virtual_clock: VirtualClock) -> None:
    log = tc.Log()
    limiter = Command(interval=1.0, name="x", log=log)
    rec = Recorder(virtual_clock)
    await limiter.call(rec.hit, 1)
    await limiter.call(rec.hit, 2)
    limiter.report()
    assert [e.kind for e in log.recent()] == ["limiter.throttled", "limiter.called"]


@vt
async def test_no_engine_no_events_and_counts_wait_for_a_log() -> None:
    limiter = Command(interval=0.0, name="later")

    async def noop() -> None:
        return None

    await limiter.call(noop)
    limiter.report()  # nowhere to write: kept
    async with tc.Engine() as engine:
        await limiter.call(noop)
        limiter.report()
        (event,) = engine.log.recent(kinds="limiter.called")
    assert event.payload == {"count": 2, "calls": 2}


def test_a_limiter_follows_each_new_loop() -> None:
    """A module-level limiter used by several runs (tests, backends) starts afresh in each."""
    limiter = Command(interval=100.0)
    starts: list[float] = []

    async def main() -> None:
        clock = tc.current_clock()
        await anyio.sleep(500.0)  # virtual: 2nd run's time < the 1st's last start
        t0 = clock.monotonic()
        await limiter.call(anyio.sleep, 0)
        await limiter.call(anyio.sleep, 0)
        starts.append(clock.monotonic() - t0)

    for backend in ("asyncio", "trio", "asyncio"):
        run(main, backend=backend)
    assert starts == [100.0, 100.0, 100.0]


def test_repr_and_properties() -> None:
    limiter = Command(0.5, rate=3, per=2.0, burst=True, name="x")
    assert repr(limiter) == (
        "Command(interval=0.5, rate=3.0, per=2.0, burst=True, mode='wait', since='start', name='x')"
    )
    assert limiter.min_gap == 0.5
    assert limiter.burst_window == (3, 2.0)
    assert (limiter.mode, limiter.since) == ("wait", "start")
    assert Command(rate=4).min_gap == 0.25
    assert Command(rate=1, burst=True).burst_window is None  # one per window: an interval
    assert limiter.statistics().as_dict()["name"] == "x"


@vt
async def test_async_with_in_start_mode_waits_its_turn(virtual_clock: VirtualClock) -> None:
    rec = Recorder(virtual_clock)
    limiter = Command(interval=0.5, mode="wait")

    async def step(label: str) -> None:
        async with limiter:
            await rec.hit(label, 2.0)  # long calls overlap: only starts are spaced

    await gather((step, "a"), (step, "b"), (step, "c"))
    assert rec.starts == [("a", 0.0), ("b", 0.5), ("c", 1.0)]
    assert rec.ends == [("a", 2.0), ("b", 2.5), ("c", 3.0)]


@vt
async def test_per_instance_since_end_and_errors(virtual_clock: VirtualClock) -> None:
    rec = Recorder(virtual_clock)

    class Valve:
        name = "v1"

        @command(interval=1.0, since="end")
        async def switch(self, fail: bool) -> None:
            await rec.hit("switch", 0.5)
            if fail:
                raise OSError("stuck")

    valve = Valve()
    with pytest.raises(OSError, match="stuck"):
        await valve.switch(True)
    await valve.switch(False)
    assert rec.starts == [("switch", 0.0), ("switch", 1.5)]
    limiter = limiter_of(valve.switch)
    assert limiter.since == "end"
    assert limiter.name.endswith("Valve.switch[v1]")


@vt
async def test_shared_since_end_decorator_releases_on_error(virtual_clock: VirtualClock) -> None:
    rec = Recorder(virtual_clock)
    pump = Command(interval=0.25, since="end")

    @pump
    async def dose(fail: bool) -> None:
        await rec.hit("dose", 0.25)
        if fail:
            raise OSError("clogged")

    with pytest.raises(OSError, match="clogged"):
        await dose(True)
    await dose(False)
    assert rec.starts == [("dose", 0.0), ("dose", 0.5)]


@vt
async def test_simultaneous_callers_with_no_gap_keep_their_order(
    virtual_clock: VirtualClock,
) -> None:
    rec = Recorder(virtual_clock)
    limiter = Command(interval=1.0, rate=2, per=1.0, burst=True)  # the window binds
    limited = limiter(rec.hit)
    await gather(*[(limited, i) for i in range(5)])
    assert rec.starts == [(0, 0.0), (1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0)]
    zero = Command(interval=0.0)(rec.hit)
    rec.starts.clear()
    await gather(*[(zero, i) for i in range(4)])
    assert [label for label, _ in rec.starts] == [0, 1, 2, 3]


def test_copy_is_independent() -> None:
    original = Command(0.5, rate=3, per=2.0, burst=True, mode="raise", since="end", name="a")
    twin = original.copy(name="b")
    assert repr(twin) == repr(original).replace("'a'", "'b'")
    assert twin is not original
    assert original.copy().name == "a"


def test_on_the_real_clock_waiting_calls_keep_order_and_the_bound() -> None:
    """A smoke test of the real-clock path (spin and margin): order and bound, loosely."""

    async def main(limiter: Command, starts: list[tuple[int, float]]) -> None:
        clock = tc.current_clock()
        assert isinstance(clock, tc.SystemClock)

        async def hit(i: int) -> None:
            starts.append((i, clock.monotonic()))

        await gather(*[(limiter.call, hit, i) for i in range(5)])

    for backend, spin in (("asyncio", 0.001), ("trio", 0.001), ("asyncio", 0.0)):
        starts: list[tuple[int, float]] = []
        limiter = Command(interval=0.004, spin=spin)
        anyio.run(main, limiter, starts, backend=backend)
        assert [i for i, _ in starts] == [0, 1, 2, 3, 4]
        times = [t for _, t in starts]
        # Loose on purpose (no timing assertions in tests): the bound itself, less 1 ms.
        assert all(b - a >= 0.003 for a, b in itertools.pairwise(times))
        assert limiter.statistics().throttled == 4


@vt
async def test_a_closed_log_never_stops_a_command(virtual_clock: VirtualClock) -> None:
    log = tc.Log()
    limiter = Command(interval=1.0, name="x", log=log, report_every=0)
    rec = Recorder(virtual_clock)
    await log.aclose()
    await limiter.call(rec.hit, 1)
    await limiter.call(rec.hit, 2)  # waits: limiter.throttled has nowhere to go
    assert [t for _, t in rec.starts] == [0.0, 1.0]
