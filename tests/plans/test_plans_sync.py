"""SyncRunEngine: bluesky's blocking RE(plan) over an Engine whose loop runs in a thread.

These tests run on the real clock: the run engine's loop lives in a background thread, which
a virtual clock (bound to the test's own loop) cannot drive. Plans sleep at most a few tenths
of a second.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import timecontrol as tc
from timecontrol import EngineStateError
from timecontrol.plans import (
    Msg,
    PlanArgumentError,
    RunEngineResult,
    SimDetector,
    SimMotor,
    SyncRunEngine,
    count,
    scan,
)
from timecontrol.plans._compat import RunEngineInterruptedBase

main_thread_only = pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(),
    reason="signal handlers can only be installed in the main thread",
)


@pytest.fixture
def RE() -> Iterator[SyncRunEngine]:
    run_engine = SyncRunEngine()
    yield run_engine
    run_engine.close()


def slow_plan(seconds: float = 0.4) -> Any:
    yield Msg("checkpoint")
    yield Msg("sleep", None, seconds)
    yield Msg("null", "A")
    yield Msg("checkpoint")
    yield Msg("null", "B")
    return "done"


def pause_soon(RE: SyncRunEngine, after: float = 0.1, defer: bool = False) -> threading.Timer:
    timer = threading.Timer(after, RE.request_pause, kwargs={"defer": defer})
    timer.start()
    return timer


def test_call_blocks_and_returns_the_run_uids(RE: SyncRunEngine) -> None:
    names: list[str] = []
    RE.subscribe(lambda name, doc: names.append(name))
    uids = RE(count([SimDetector("det")], num=2), sample="x")
    assert isinstance(uids, tuple)
    assert len(uids) == 1
    assert names == ["start", "descriptor", "event", "event", "stop"]
    assert RE.state == "idle"
    assert RE.md["scan_id"] == 1
    assert RE.md["versions"]["timecontrol"] == tc.__version__


def test_call_returns_result_gives_bluesky_fields() -> None:
    with SyncRunEngine(call_returns_result=True) as RE:
        result = RE(slow_plan(0.0))
        assert isinstance(result, RunEngineResult)
        assert result.plan_result == "done"
        assert result.exit_status == "success"
        assert not result.interrupted
        assert result.run_start_uids == ()
        assert result.exception is None


def test_a_pause_raises_run_engine_interrupted_and_resume_goes_on(RE: SyncRunEngine) -> None:
    seen: list[Any] = []
    RE.msg_hook = seen.append
    pause_soon(RE)
    with pytest.raises(RunEngineInterruptedBase) as info:
        RE(slow_plan())
    assert "RE.resume()" in str(info.value)
    assert RE.state == "paused"
    RE.call_returns_result = True
    result = RE.resume()
    assert isinstance(result, RunEngineResult)
    assert result.plan_result == "done"
    assert RE.state == "idle"
    # the interrupted sleep was replayed, so it shows twice in the hook
    assert [m.command for m in seen].count("sleep") == 2


def test_the_interruption_is_also_bluesky_run_engine_interrupted(RE: SyncRunEngine) -> None:
    from bluesky.utils import RunEngineInterrupted

    from timecontrol import plans

    assert plans.RunEngineInterrupted is RunEngineInterrupted
    pause_soon(RE)
    with pytest.raises(RunEngineInterrupted):
        RE(slow_plan())
    RE.abort("enough")


@pytest.mark.parametrize(
    ("verb", "status", "reason"),
    [("stop", "success", "stop"), ("abort", "abort", "why"), ("halt", "abort", "halt")],
)
def test_stop_abort_halt_from_paused(
    RE: SyncRunEngine, verb: str, status: str, reason: str
) -> None:
    stops: list[dict[str, Any]] = []
    RE.subscribe(lambda name, doc: stops.append(doc), "stop")
    motor = SimMotor("m")
    pause_soon(RE, 0.05)
    with pytest.raises(RunEngineInterruptedBase):
        RE(scan([SimDetector("det", exposure=0.2)], motor, 0, 1, 5))
    args = ("why",) if verb == "abort" else ()
    uids = getattr(RE, verb)(*args)
    assert RE.state == "idle"
    assert uids == (stops[-1]["run_start"],)
    assert stops[-1]["exit_status"] == status
    assert stops[-1]["reason"] == reason


def test_stop_while_running_from_another_thread_waits_for_the_end(RE: SyncRunEngine) -> None:
    # As in bluesky: the blocked RE(plan) raises RunEngineInterrupted (a request ended the
    # plan), and stop() returns the run uids once the plan has cleaned up.
    results: list[Any] = []
    timer = threading.Timer(0.1, lambda: results.append(RE.stop()))
    timer.start()
    with pytest.raises(RunEngineInterruptedBase):
        RE(count([SimDetector("det")], num=None, delay=0.05))
    timer.join()
    assert len(results) == 1
    assert len(results[0]) == 1
    assert RE.state == "idle"


def test_stop_from_a_subscriber_does_not_deadlock(RE: SyncRunEngine) -> None:
    def on_event(name: str, doc: dict[str, Any]) -> None:
        if doc["seq_num"] == 2:
            RE.stop()

    RE.subscribe(on_event, "event")
    with pytest.raises(RunEngineInterruptedBase):
        RE(count([SimDetector("det")], num=None, delay=0.01))
    assert RE.state == "idle"


def test_a_failing_plan_raises_and_the_next_one_runs(RE: SyncRunEngine) -> None:
    def bad() -> Any:
        yield Msg("open_run")
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        RE(bad())
    assert RE.state == "idle"
    assert len(RE(count([SimDetector("det")]))) == 1


def test_subs_are_for_one_plan_and_survive_its_pause(RE: SyncRunEngine) -> None:
    every: list[str] = []
    starts: list[str] = []
    pause_soon(RE)
    with pytest.raises(RunEngineInterruptedBase):
        RE(
            count([SimDetector("d", exposure=0.05)], num=5),
            {"all": [lambda name, doc: every.append(name)], "start": []},
        )
    RE.resume()  # the subscription is still there while paused and after
    assert every[0] == "start"
    assert every[-1] == "stop"
    assert every.count("event") == 5
    RE(count([SimDetector("d")]), lambda name, doc: starts.append(name))
    assert starts == ["start", "descriptor", "event", "stop"]
    RE(count([SimDetector("d")]))
    assert starts == ["start", "descriptor", "event", "stop"]  # gone after its plan
    assert every.count("start") == 1


def test_bad_subs_are_refused(RE: SyncRunEngine) -> None:
    with pytest.raises(PlanArgumentError, match="subs must be"):
        RE(count([SimDetector("d")]), 42)


def test_request_pause_when_idle_is_refused_in_the_caller(RE: SyncRunEngine) -> None:
    with pytest.raises(EngineStateError, match="idle"):
        RE.request_pause()


def test_scheduled_jobs_run_between_calls(RE: SyncRunEngine) -> None:
    ticks: list[float] = []

    async def tick() -> None:
        ticks.append(time.monotonic())

    RE.call_in_loop(RE.engine.action, tick)
    RE.call_in_loop(lambda: RE.engine.add_job("tick", tc.interval(0.02), id="tick"))
    # Real time on purpose: SyncRunEngine runs its loop in a real thread, as in IPython,
    # and the "user" is thinking between two cells (jobs must run meanwhile).
    time.sleep(0.3)  # real time on purpose (not virtual: a thread runs the loop)
    assert len(ticks) >= 5
    RE(count([SimDetector("d")]))


def test_close_halts_a_paused_plan_and_stops_the_engine() -> None:
    RE = SyncRunEngine()
    pause_soon(RE)
    with pytest.raises(RunEngineInterruptedBase):
        RE(count([SimDetector("d", exposure=0.05)], num=10))
    engine = RE.engine
    RE.close()
    RE.close()  # idempotent
    assert not engine.running
    assert [e.payload["exit_status"] for e in engine.log.recent(kinds="run.stop")] == ["abort"]
    with pytest.raises(EngineStateError, match="closed"):
        RE(count([SimDetector("d")]))


def test_engine_argument_is_checked() -> None:
    with pytest.raises(PlanArgumentError, match=r"timecontrol\.Engine"):
        SyncRunEngine(engine="lab")
    engine = tc.Engine()
    with SyncRunEngine(engine=engine) as RE:
        assert RE.engine is engine
        with pytest.raises(EngineStateError, match="already running"):
            SyncRunEngine(engine=engine)


@main_thread_only
def test_ctrl_c_pauses_at_the_next_checkpoint_and_restores_the_handler(
    RE: SyncRunEngine,
) -> None:
    previous = signal.getsignal(signal.SIGINT)
    timer = threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    seen: list[Any] = []
    RE.msg_hook = seen.append
    with pytest.raises(RunEngineInterruptedBase):
        RE(slow_plan())
    assert signal.getsignal(signal.SIGINT) is previous
    assert RE.state == "paused"
    assert [m.command for m in seen][-1] == "checkpoint"  # deferred: after the sleep
    RE.resume()
    assert [m.command for m in seen].count("sleep") == 1  # nothing replayed


@main_thread_only
def test_no_sigint_handler_with_empty_context_managers() -> None:
    entered: list[str] = []

    class Manager:
        def __init__(self, run_engine: SyncRunEngine) -> None:
            entered.append("made")

        def __enter__(self) -> None:
            assert signal.getsignal(signal.SIGINT) is previous
            entered.append("in")

        def __exit__(self, *exc: object) -> None:
            entered.append("out")

    previous = signal.getsignal(signal.SIGINT)
    with SyncRunEngine(context_managers=[Manager]) as RE:
        RE(count([SimDetector("d")]))
    assert entered == ["made", "in", "out"]
