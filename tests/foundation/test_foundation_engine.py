"""The engine skeleton, black-box: submit, dispatch on virtual time, outcomes as events."""

from __future__ import annotations

import asyncio
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from timecontrol import Engine, EngineStateError, Event, TimeControlError, current_engine
from timecontrol._dispatch import jsonable
from timecontrol.errors import EventPayloadError, NaiveDatetimeError, UnknownActionError
from timecontrol.stores import SQLiteLog, read_events
from timecontrol.testing import VirtualClock

START = datetime(2026, 3, 29, 0, 30, tzinfo=timezone(timedelta(hours=1)))
T0 = START.timestamp()


def outcomes(events: list[Event]) -> list[tuple[str, str, float]]:
    """(kind, subject, seconds after START) of every action event."""
    return [(e.kind, e.subject, e.wall - T0) for e in events if e.kind.startswith("action.")]


@pytest.mark.timecontrol(start="2026-03-29T00:30+01:00")
async def test_submitted_actions_run_at_exactly_their_times(virtual_clock: VirtualClock) -> None:
    engine = Engine()
    ran: list[tuple[str, float, datetime]] = []

    @engine.action
    async def sample(volume_ul: float) -> float:
        ran.append(("sample", volume_ul, virtual_clock.now()))
        await anyio.sleep(5)  # virtual time
        return volume_ul * 2

    async with engine:
        assert engine.running
        assert engine.clock is virtual_clock
        late = engine.submit("sample", at=START + timedelta(minutes=10), kwargs={"volume_ul": 3})
        early = engine.submit(sample, at=T0 + 60, kwargs={"volume_ul": 1.5}, subject="job-1")
        assert (late.seq, early.seq) == (1, 2)
        assert len(engine.schedule) == 2
        await engine.wait_idle()
        assert virtual_clock.now() == START + timedelta(minutes=10, seconds=5)
        events = engine.log.recent()
    assert not engine.running
    assert ran == [
        ("sample", 1.5, START + timedelta(minutes=1)),
        ("sample", 3, START + timedelta(minutes=10)),
    ]
    assert events[0].kind == "engine.started"
    assert events[0].payload == {"pid": os.getpid()}
    assert outcomes(events) == [
        ("action.started", "job-1", 60.0),
        ("action.succeeded", "job-1", 65.0),
        ("action.started", "sample", 600.0),  # no subject: the action's name
        ("action.succeeded", "sample", 605.0),
    ]
    started, succeeded = events[1], events[2]
    assert started.payload == {"seq": 2, "action": "sample", "due": T0 + 60, "late": 0.0}
    assert succeeded.payload == {"seq": 2, "action": "sample", "duration": 5.0, "result": 3.0}
    assert events[4].payload["result"] == 6


# The order the coroutines *begin* in is asyncio's here; trio starts one batch of new tasks
# in an arbitrary order. The recorded dispatch order is deterministic on both (next test).
@pytest.mark.timecontrol(start="2026-03-29T00:30+01:00", backends=["asyncio"])
async def test_same_instant_runs_in_priority_then_submission_order() -> None:
    engine = Engine()
    order: list[str] = []

    @engine.action
    async def mark(name: str) -> None:
        order.append(name)

    async with engine:
        at = START + timedelta(hours=1)
        for name, priority in (("c", 1), ("a", -1), ("b", 0), ("d", 1)):
            engine.submit(mark, at=at, kwargs={"name": name}, priority=priority)
        engine.submit(mark, kwargs={"name": "now"})  # default: now
        await engine.wait_idle()
    assert order == ["now", "a", "b", "c", "d"]


@pytest.mark.timecontrol(start="2026-03-29T00:30+01:00")
async def test_same_instant_dispatch_is_recorded_in_due_priority_seq_order() -> None:
    engine = Engine()

    @engine.action
    async def mark(name: str) -> None:
        await anyio.lowlevel.checkpoint()

    async with engine:
        at = START + timedelta(hours=1)
        for name, priority in (("c", 1), ("a", -1), ("b", 0), ("d", 1), ("e", -1)):
            engine.submit(mark, at=at, kwargs={"name": name}, priority=priority, subject=name)
        await engine.wait_idle()
    started = [e.subject for e in engine.log.recent(kinds="action.started")]
    assert started == ["a", "e", "b", "c", "d"]


@pytest.mark.timecontrol
async def test_cancel_running_counts_only_running_actions() -> None:
    engine = Engine()

    @engine.action
    async def quick() -> None:
        await anyio.sleep(1)  # virtual time

    @engine.action
    async def slow() -> None:
        await anyio.sleep(3600)  # virtual time

    async with engine:
        engine.submit(quick)
        await engine.wait_idle()
        assert engine.cancel_running() == 0
        engine.submit(slow)
        engine.submit(slow)
        await anyio.sleep(10)  # virtual time
        assert engine.running_actions == 2
        assert engine.cancel_running() == 2
        await engine.wait_idle()
    assert len(engine.log.recent(kinds="action.cancelled")) == 2


@pytest.mark.timecontrol
async def test_unencodable_results_subjects_and_kwargs_never_crash_the_engine() -> None:
    engine = Engine()

    @engine.action
    async def odd(kind: str) -> object:
        if kind == "surrogate":
            return "bad \udc80 text"
        if kind == "cycle":
            loop: list[object] = []
            loop.append(loop)
            return loop
        raise RuntimeError("broken \udc80 message")

    async with engine:
        for kind in ("surrogate", "cycle", "raise"):
            engine.submit(odd, kwargs={"kind": kind}, subject=kind)
        with pytest.raises(EventPayloadError, match="subject"):
            engine.submit(odd, kwargs={"kind": "x"}, subject="\udc80")
        with pytest.raises(EventPayloadError, match="subject"):
            engine.submit(odd, kwargs={"kind": "x"}, subject=7)  # type: ignore[arg-type]
        with pytest.raises(EventPayloadError):
            engine.submit(odd, kwargs={"kind": "\udc80"})
        with pytest.raises(EventPayloadError, match="unchanged"):
            engine.submit(odd, kwargs={"kind": ("a", "b")})  # type: ignore[dict-item]
        await engine.wait_idle()
    results = {e.subject: e.payload["result"] for e in engine.log.recent(kinds="action.succeeded")}
    assert set(results) == {"surrogate", "cycle"}
    assert all(set(r) == {"repr"} for r in results.values())
    failed = engine.log.recent(kinds="action.failed")
    assert [e.subject for e in failed] == ["raise"]
    assert "\\udc80" in failed[0].payload["message"]


@pytest.mark.timecontrol
async def test_a_failing_action_records_its_error() -> None:
    engine = Engine()

    @engine.action
    async def broken(code: int) -> None:
        await anyio.sleep(2)  # virtual time
        raise ValueError(f"pump {code} stalled")

    async with engine:
        engine.submit(broken, kwargs={"code": 7}, subject="pump")
        await engine.wait_idle()
        failed = engine.log.recent(kinds="action.failed")
        assert engine.running  # the engine carries on
    assert len(failed) == 1
    payload = failed[0].payload
    assert failed[0].subject == "pump"
    assert payload["error"] == "ValueError"
    assert payload["message"] == "pump 7 stalled"
    assert payload["duration"] == 2.0
    assert payload["traceback"].startswith("Traceback (most recent call last):")
    assert "in broken" in payload["traceback"]
    assert payload["traceback"].rstrip().endswith("ValueError: pump 7 stalled")


@pytest.mark.timecontrol
async def test_wrong_kwargs_fail_the_action_not_the_engine() -> None:
    engine = Engine()

    @engine.action
    async def needs(x: int) -> int:
        return x

    async with engine:
        engine.submit(needs, kwargs={"y": 1})
        engine.submit(needs, kwargs={"x": 1}, at=engine.clock.time() + 1)
        await engine.wait_idle()
        kinds = [e.kind for e in engine.log.recent() if e.kind.startswith("action.")]
        failed = engine.log.recent(kinds="action.failed")[0]
    assert kinds == ["action.started", "action.failed", "action.started", "action.succeeded"]
    assert failed.payload["error"] == "TypeError"
    assert "'y'" in failed.payload["message"]


@pytest.mark.timecontrol
async def test_results_that_are_not_json_are_recorded_by_repr() -> None:
    engine = Engine()

    class Reading:
        def __repr__(self) -> str:
            return "Reading(3.2 V)"

    @engine.action
    async def measure() -> Reading:
        return Reading()

    async with engine:
        engine.submit(measure)
        await engine.wait_idle()
        result = engine.log.recent(kinds="action.succeeded")[0].payload["result"]
    assert result == {"repr": "Reading(3.2 V)"}
    assert jsonable([1, "a"]) == [1, "a"]


# -- bad input at submit --------------------------------------------------------------------


@pytest.mark.timecontrol
async def test_submit_rejects_bad_input_naming_it() -> None:
    engine = Engine()

    @engine.action
    async def sample(volume_ul: float = 1.0) -> None:
        pass

    async with engine:
        with pytest.raises(UnknownActionError) as info:
            engine.submit("smaple")
        assert "'smaple'" in str(info.value)
        assert "['sample']" in str(info.value)  # what is registered
        assert isinstance(info.value, LookupError)
        with pytest.raises(EventPayloadError, match="are not JSON"):
            engine.submit("sample", kwargs={"volume_ul": object()})
        with pytest.raises(EventPayloadError, match="must be a dict with str keys"):
            engine.submit("sample", kwargs={1: 2})  # type: ignore[dict-item]
        with pytest.raises(NaiveDatetimeError, match=r"^at 2026-03-29T01:00:00 is naive"):
            engine.submit("sample", at=datetime(2026, 3, 29, 1, 0))
        assert len(engine.schedule) == 0  # nothing was scheduled by any of them
        assert engine.log.recent(kinds=["action.started", "action.failed"]) == []


def test_actions_must_be_async_and_names_unique() -> None:
    engine = Engine()

    def sync_fn() -> None:
        pass

    with pytest.raises(TimeControlError, match="must be an async function"):
        engine.action(sync_fn)  # type: ignore[type-var]

    async def a() -> None:
        pass

    async def other() -> None:
        pass

    assert engine.action(a) is a
    assert engine.action(a) is a  # the same function again is fine
    with pytest.raises(TimeControlError, match="an action named 'a' is already registered"):
        engine.action(name="a")(other)
    assert engine.action(name="b")(other) is other
    assert sorted(engine.actions) == ["a", "b"]


# -- durable store --------------------------------------------------------------------------


@pytest.mark.timecontrol(start="2026-03-29T00:30+01:00")
async def test_engine_with_a_store_path_writes_a_readable_file(tmp_path: Path) -> None:
    path = tmp_path / "lab.sqlite"
    engine = Engine(store=path)

    @engine.action
    async def sample() -> str:
        await anyio.sleep(1)  # virtual time
        return "ok"

    async with engine:
        engine.submit(sample, at=START + timedelta(seconds=30), subject="s1")
        await engine.wait_idle()
    events = read_events(path)
    assert [e.kind for e in events] == [
        "engine.started",
        "action.started",
        "action.succeeded",
        "engine.stopped",
    ]
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert [e.wall - T0 for e in events] == [0.0, 30.0, 31.0, 31.0]
    assert events[2].payload["result"] == "ok"
    assert events[3].payload == {"pending": 0}

    # A second run on the same file continues its numbering.
    async with Engine(store=str(path)) as again:
        again.log.append("log.note")
    assert [e.seq for e in read_events(path)][-3:] == [5, 6, 7]


@pytest.mark.timecontrol
async def test_engine_accepts_a_log_sink(tmp_path: Path) -> None:
    sink = SQLiteLog(tmp_path / "sink.sqlite")
    async with Engine(store=sink) as engine:
        assert engine.log.sink is sink
    assert [e.kind for e in read_events(sink.path)] == ["engine.started", "engine.stopped"]
    with pytest.raises(TimeControlError, match="store must be None, a path"):
        _ = Engine(store=42).log  # type: ignore[arg-type]


@pytest.mark.timecontrol
async def test_stopping_cancels_running_actions_and_records_it(tmp_path: Path) -> None:
    path = tmp_path / "lab.sqlite"
    engine = Engine(store=path)

    @engine.action
    async def long_scan() -> None:
        await anyio.sleep(3600)  # virtual time

    async with engine:
        engine.submit(long_scan)
        engine.submit(long_scan, at=engine.clock.time() + 7200)  # still pending at stop
        await anyio.sleep(10)  # virtual time
    events = read_events(path)
    assert [e.kind for e in events] == [
        "engine.started",
        "action.started",
        "action.cancelled",
        "engine.stopped",
    ]
    assert events[2].payload["duration"] == 10.0
    assert events[3].payload == {"pending": 1}


# -- dispatch gate and cancel_running -------------------------------------------------------


@pytest.mark.timecontrol(start="2026-03-29T00:30+01:00")
async def test_hold_dispatch_delays_due_intents_until_released() -> None:
    engine = Engine()
    ran: list[float] = []

    @engine.action
    async def tick() -> None:
        ran.append(engine.clock.time() - T0)

    async with engine:
        engine.hold_dispatch("pause")
        engine.hold_dispatch("panic")
        assert engine.dispatch_holds == {"pause", "panic"}
        engine.submit(tick, at=T0 + 10)
        engine.submit(tick, at=T0 + 20)
        await anyio.sleep(25)  # virtual time
        assert ran == []  # both due, neither started
        engine.release_dispatch("pause")
        await anyio.sleep(5)  # virtual time
        assert ran == []  # "panic" still holds
        engine.release_dispatch("panic")
        engine.release_dispatch("never-held")  # harmless
        assert engine.dispatch_holds == frozenset()
        await engine.wait_idle()
        started = engine.log.recent(kinds="action.started")
        engine.submit(tick, at=T0 + 40)
        await engine.wait_idle()
    assert ran == [30.0, 30.0, 40.0]
    assert sorted(e.payload["late"] for e in started) == [10.0, 20.0]


@pytest.mark.timecontrol
async def test_hold_while_sleeping_towards_an_intent_holds_it() -> None:
    engine = Engine()
    ran: list[float] = []

    @engine.action
    async def tick() -> None:
        ran.append(anyio.current_time())

    async with engine:
        engine.submit(tick, at=engine.clock.time() + 60)
        await anyio.sleep(30)  # the loop is asleep until the intent's due time; virtual time
        engine.hold_dispatch("pause")
        await anyio.sleep(60)  # virtual time
        assert ran == []
        engine.release_dispatch("pause")
        await engine.wait_idle()
    assert ran == [90.0]


@pytest.mark.timecontrol
async def test_a_submit_earlier_than_the_next_intent_wakes_the_loop() -> None:
    engine = Engine()
    ran: list[tuple[str, float]] = []

    @engine.action
    async def mark(name: str) -> None:
        ran.append((name, anyio.current_time()))

    async with engine:
        now = engine.clock.time()
        engine.submit(mark, at=now + 3600, kwargs={"name": "later"})
        await anyio.sleep(10)  # virtual time
        engine.submit(mark, at=now + 20, kwargs={"name": "sooner"})
        await engine.wait_idle()
    assert ran == [("sooner", 20.0), ("later", 3600.0)]


@pytest.mark.timecontrol(start="2026-03-29T00:30+01:00")
async def test_cancel_running_records_cancelled_and_the_engine_carries_on() -> None:
    engine = Engine()

    @engine.action
    async def scan(n: int) -> int:
        await anyio.sleep(100)  # virtual time
        return n

    async with engine:
        now = engine.clock.time()
        engine.submit(scan, kwargs={"n": 1}, subject="a")
        engine.submit(scan, kwargs={"n": 2}, subject="b")
        await anyio.sleep(5)  # virtual time
        assert engine.cancel_running() == 2
        await anyio.lowlevel.checkpoint()
        engine.submit(scan, kwargs={"n": 3}, subject="c", at=now + 10)
        await engine.wait_idle()
        assert engine.running_actions == 0
        events = engine.log.recent()
    # Same-instant events sorted: their order is the backend's (see above).
    assert sorted(outcomes(events), key=lambda o: (o[2], o[0], o[1])) == [
        ("action.started", "a", 0.0),
        ("action.started", "b", 0.0),
        ("action.cancelled", "a", 5.0),
        ("action.cancelled", "b", 5.0),
        ("action.started", "c", 10.0),
        ("action.succeeded", "c", 110.0),
    ]
    cancelled = [e for e in events if e.kind == "action.cancelled"]
    assert [e.payload["duration"] for e in cancelled] == [5.0, 5.0]


@pytest.mark.timecontrol
async def test_cancel_a_pending_intent() -> None:
    engine = Engine()
    ran: list[int] = []

    @engine.action
    async def job(n: int) -> None:
        ran.append(n)

    async with engine:
        now = engine.clock.time()
        keep = engine.submit(job, kwargs={"n": 1}, at=now + 10)
        drop = engine.submit(job, kwargs={"n": 2}, at=now + 5, subject="x")
        assert engine.cancel(drop) is True
        assert engine.cancel(drop) is False
        await engine.wait_idle()
        assert engine.cancel(keep) is False  # already ran
        cancelled = engine.log.recent(kinds="intent.cancelled")
    assert ran == [1]
    assert [(e.subject, e.payload) for e in cancelled] == [("x", {"seq": 2, "action": "job"})]


# -- lifecycle ------------------------------------------------------------------------------


@pytest.mark.timecontrol
async def test_current_engine_is_the_running_one() -> None:
    assert current_engine() is None
    outer = Engine()
    async with outer:
        assert current_engine() is outer
        inner = Engine()
        async with inner:
            assert current_engine() is inner
        assert current_engine() is outer
    assert current_engine() is None


@pytest.mark.timecontrol
async def test_an_engine_cannot_be_entered_twice() -> None:
    engine = Engine()
    async with engine:
        with pytest.raises(EngineStateError, match="already running"):
            await engine.__aenter__()


@pytest.mark.timecontrol(backends=["asyncio"])
async def test_start_and_stop_on_asyncio(virtual_clock: VirtualClock) -> None:
    engine = Engine()
    ran: list[float] = []

    @engine.action
    async def tick() -> None:
        ran.append(virtual_clock.elapsed())

    await engine.start()
    try:
        assert engine.running
        assert current_engine() is engine
        with pytest.raises(EngineStateError, match="already running"):
            await engine.start()
        engine.submit(tick, at=virtual_clock.time() + 30)
        await anyio.sleep(60)  # virtual time
        assert ran == [30.0]
        log = engine.log
        seen = [e.kind for e in log.recent()]
    finally:
        await engine.stop()
    assert seen == ["engine.started", "action.started", "action.succeeded"]
    assert not engine.running
    assert current_engine() is None
    assert log.last_seq == 4  # engine.stopped was the last thing it recorded
    with pytest.raises(EngineStateError, match="none is running"):
        await engine.stop()


@pytest.mark.timecontrol(backends=["trio"])
async def test_start_is_asyncio_only() -> None:
    with pytest.raises(EngineStateError, match="under trio use 'async with engine:'"):
        await Engine().start()


def test_start_outside_virtual_time_in_plain_asyncio() -> None:
    """`await engine.start()` as in ``python -m asyncio``, on the real clocks."""

    async def main() -> list[str]:
        engine = Engine()

        @engine.action
        async def hello() -> str:
            return "hi"

        await engine.start()
        engine.submit(hello)
        await asyncio.wait_for(engine.wait_idle(), timeout=30)
        kinds = [e.kind for e in engine.log.recent()]
        await engine.stop()
        return kinds

    assert asyncio.run(main()) == ["engine.started", "action.started", "action.succeeded"]


@pytest.mark.timecontrol(start="2026-03-29T00:30+01:00")
async def test_the_log_stays_readable_after_stop_and_a_restart_continues_it(
    tmp_path: Path,
) -> None:
    engine = Engine(store=tmp_path / "lab.sqlite")

    @engine.action
    async def ping() -> None:
        pass

    async with engine:
        engine.submit(ping)
        await engine.wait_idle()
    first = engine.log
    assert first.closed
    assert [e.kind for e in first.recent()] == [
        "engine.started",
        "action.started",
        "action.succeeded",
        "engine.stopped",
    ]
    async with engine:  # a restart opens the store again and continues its numbering
        assert engine.log is not first
        assert [(e.seq, e.kind) for e in engine.log.recent()] == [(5, "engine.started")]
    assert [e.seq for e in read_events(tmp_path / "lab.sqlite")] == [1, 2, 3, 4, 5, 6]


async def _run_across_a_wall_step(clock: VirtualClock, step: float) -> list[float]:
    """Submit an action due in 1 h, step the wall clock at 10 min; when did it run?"""
    engine = Engine()
    ran: list[float] = []

    @engine.action
    async def hourly() -> None:
        ran.append(clock.elapsed())

    async with engine:
        engine.submit(hourly, at=START + timedelta(hours=1))
        await anyio.sleep(600)  # virtual time
        clock.step_wall(step)
        await engine.wait_idle()
    return ran


@pytest.mark.timecontrol(start="2026-03-29T00:30+01:00")
async def test_a_wall_step_backwards_never_runs_an_action_early(
    virtual_clock: VirtualClock,
) -> None:
    # Wall time reaches the due time 30 min after the pre-step conversion said.
    assert await _run_across_a_wall_step(virtual_clock, -1800) == [5400.0]


@pytest.mark.timecontrol(start="2026-03-29T00:30+01:00")
async def test_a_wall_step_forwards_runs_a_due_action_at_once(
    virtual_clock: VirtualClock,
) -> None:
    # The wall clock jumps 2 h ahead at 10 min: the action is due, and runs then.
    assert await _run_across_a_wall_step(virtual_clock, 7200) == [600.0]
