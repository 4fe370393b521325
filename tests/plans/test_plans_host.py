"""The run engine's host: the narrow `PlanHost`, the one front door, and the loop-level verbs
(panic, request_pause, all_is_well) from any thread or task, before the first run and after.

Threads here are plain `threading.Thread`s. A test waits for one without blocking the loop
through ``anyio.to_thread.run_sync(thread.join)``: the thread's call was handed to the loop
before the thread ended, and both asyncio and trio run handed-over calls in the order they
arrived, so the call has been applied by the time the join returns to the test.
"""

from __future__ import annotations

import ast
import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from plans_support import running, states

import timecontrol.plans
from timecontrol import Engine, EngineStateError, Log, TimeControlError
from timecontrol.plans import Msg, PlanArgumentError, RunEngine, SimMotor
from timecontrol.plans._loop import LoopHandle

vt = pytest.mark.timecontrol


class FakeHost:
    """Exactly the `PlanHost` members, and nothing else: a Log, a Clock, a gate."""

    def __init__(self) -> None:
        self.log = Log()
        self.clock = self.log.clock
        self.running = True
        self.holds: set[str] = set()
        self.cancels = 0
        self.hold_threads: list[int] = []  # which thread each hold came from

    def hold_dispatch(self, holder: str) -> None:
        self.holds.add(holder)
        self.hold_threads.append(threading.get_ident())

    def release_dispatch(self, holder: str) -> None:
        self.holds.discard(holder)

    def cancel_running(self) -> int:
        self.cancels += 1
        return 0


class FakeFacade:
    """Looks like the `timecontrol.Engine` facade: owns its parts, has a run engine."""

    _owns_parts = True

    def __init__(self) -> None:
        self.host = FakeHost()
        self.run_engine = RunEngine(self.host, handle_sigint=False)

    def panic(self) -> None:
        self.run_engine.panic()


class LazyFacade:
    """A facade that builds its run engine on first use, through ``RunEngine(self)``."""

    _owns_parts = True

    def __init__(self) -> None:
        self._host = FakeHost()
        self._run_engine: RunEngine | None = None
        self.log, self.clock, self.running = self._host.log, self._host.clock, True
        self.hold_dispatch = self._host.hold_dispatch
        self.release_dispatch = self._host.release_dispatch
        self.cancel_running = self._host.cancel_running

    @property
    def run_engine(self) -> RunEngine:
        if self._run_engine is None:
            self._run_engine = RunEngine(self)
        return self._run_engine


async def in_plain_thread(fn: Callable[[], object]) -> None:
    """Call `fn` in a plain thread; return once it (and the call it handed over) is done."""
    failures: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    await anyio.to_thread.run_sync(thread.join)
    if failures:
        raise failures[0]


def blocked_until_interrupted(re: RunEngine, operator: Callable[[], object]) -> Any:
    """A plan that starts `operator` in a plain thread (once), then waits until interrupted."""
    started: list[threading.Thread] = []

    async def wait_for_operator() -> None:
        if not started:
            started.append(threading.Thread(target=operator))
            started[0].start()
            await anyio.sleep_forever()  # no deadline: virtual time cannot jump past it

    yield Msg("open_run")
    yield Msg("checkpoint")
    yield Msg("call", wait_for_operator)
    yield Msg("null", "after")
    yield Msg("close_run")


# -- the narrow host ---------------------------------------------------------------------------


def test_plans_package_never_imports_the_engine() -> None:
    package = Path(timecontrol.plans.__file__).parent
    offenders = []
    for path in sorted(package.glob("*.py")):
        if path.name == "__main__.py":
            continue  # the demo script is an application of the library, not a part of it
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                module = "." * node.level + (node.module or "")
                names = {alias.name for alias in node.names}
                if "_engine" in module or "Engine" in names or module in ("..", "timecontrol"):
                    offenders.append(f"{path.name}: from {module} import {sorted(names)}")
            elif isinstance(node, ast.Import):
                offenders += [
                    f"{path.name}: import {a.name}" for a in node.names if "timecontrol" in a.name
                ]
    assert offenders == []


@vt
async def test_plans_run_on_a_bare_plan_host() -> None:
    host = FakeHost()
    re = RunEngine(host, handle_sigint=False)
    motor = SimMotor("m")
    result = await re.run([Msg("open_run"), Msg("set", motor, 2.0), Msg("wait"), Msg("close_run")])
    assert result.exit_status == "success"
    assert motor.position == 2.0
    assert [e.payload["to"] for e in host.log.recent(kinds="run_engine.state")] == [
        "running",
        "idle",
    ]
    assert [e.kind for e in host.log.recent(kinds=["run.start", "run.stop"])] == [
        "run.start",
        "run.stop",
    ]
    host.running = False
    with pytest.raises(EngineStateError, match="not running"):
        await re.run([Msg("null")])


# -- one front door ----------------------------------------------------------------------------


def test_run_engine_of_a_facade_is_its_own() -> None:
    facade = FakeFacade()
    own = facade.run_engine
    token = own.subscribe(lambda name, doc: None)
    assert RunEngine(facade) is own
    assert own.subscribe(lambda name, doc: None) == token + 1  # __init__ did not reset it
    assert own.host is facade.host
    # options given with the facade apply to its run engine, checked first
    assert RunEngine(facade, yield_every=7, metadata={"a": 1}) is own
    assert (own.yield_every, own.md, own.handle_sigint) == (7, {"a": 1}, False)
    with pytest.raises(PlanArgumentError, match="yield_every"):
        RunEngine(facade, handle_sigint=True, yield_every=0)
    assert (own.yield_every, own.handle_sigint) == (7, False)  # nothing changed
    with pytest.raises(PlanArgumentError, match="renamed"):
        RunEngine(facade, name="other")
    with pytest.raises(PlanArgumentError, match="accepted"):
        RunEngine(facade, colour="red")


def test_facade_building_its_run_engine_lazily_gets_one() -> None:
    facade = LazyFacade()
    own = RunEngine(facade)
    assert own is facade.run_engine is RunEngine(facade)
    assert own.host is facade


@vt
async def test_engine_panic_stops_a_plan_run_through_run_engine_of_the_facade() -> None:
    facade = FakeFacade()
    re = RunEngine(facade)

    async def operator() -> None:
        await anyio.sleep(1)  # virtual time
        facade.panic()

    async with anyio.create_task_group() as tg:
        tg.start_soon(operator)
        result = await re.run([Msg("checkpoint"), Msg("sleep", None, 10), Msg("null")])
    assert (result.exit_status, result.reason) == ("fail", "panic")
    assert facade.run_engine.state == "panicked"
    assert facade.host.holds == {"run_engine.panic"}


@vt
async def test_real_engine_panic_stops_a_plan_run_through_run_engine_of_it() -> None:
    async with Engine() as engine:
        re = RunEngine(engine)
        assert re is engine.run_engine

        async def operator() -> None:
            await anyio.sleep(1)  # virtual time
            engine.panic()

        async with anyio.create_task_group() as tg:
            tg.start_soon(operator)
            result = await re.run([Msg("checkpoint"), Msg("sleep", None, 10), Msg("null")])
        assert (result.exit_status, result.reason) == ("fail", "panic")
        assert engine.state == "panicked"
        engine.all_is_well()
        assert engine.state == "idle"


# -- panic, request_pause, all_is_well from any thread -----------------------------------------


@vt
async def test_panic_and_all_is_well_from_a_plain_thread_before_any_run() -> None:
    async with running() as (engine, re):
        await in_plain_thread(re.panic)
        assert re.state == "panicked"
        assert "run_engine.panic" in engine.dispatch_holds
        with pytest.raises(EngineStateError, match="all_is_well"):
            await re.run([Msg("null")])
        await in_plain_thread(re.all_is_well)
        assert re.state == "idle"
        assert "run_engine.panic" not in engine.dispatch_holds
        assert states(engine) == ["panicked", "idle"]
        assert (await re.run([Msg("null")])).exit_status == "success"


@vt
async def test_request_pause_from_a_plain_thread_before_any_run_is_refused_quietly() -> None:
    async with running() as (engine, re):
        await in_plain_thread(re.request_pause)
        (event,) = engine.log.recent(kinds="run_engine.pause_requested")
        assert event.payload["source"] == "thread"
        assert "idle" in event.payload["refused"]
        assert re.state == "idle"


@vt
async def test_panic_from_a_plain_thread_while_a_plan_runs() -> None:
    async with running() as (engine, re):
        result = await re.run(blocked_until_interrupted(re, re.panic))
        assert (result.exit_status, result.reason) == ("fail", "panic")
        assert re.state == "panicked"
        assert [d.payload["exit_status"] for d in engine.log.recent(kinds="run.stop")] == ["fail"]
        await in_plain_thread(re.all_is_well)
        assert re.state == "idle"
        assert "run_engine.panic" not in engine.dispatch_holds


@vt
async def test_request_pause_from_a_plain_thread_while_a_plan_runs() -> None:
    async with running() as (engine, re):
        result = await re.run(blocked_until_interrupted(re, re.request_pause))
        assert result.paused
        assert "run_engine.pause" in engine.dispatch_holds
        (event,) = engine.log.recent(kinds="run_engine.pause_requested")
        assert event.payload["source"] == "thread"
        await in_plain_thread(re.panic)  # paused: stays paused under the panic
        assert re.state == "panicked"
        await in_plain_thread(re.all_is_well)
        assert re.state == "paused"
        result = await re.resume()
        assert result.exit_status == "success"
        assert states(engine) == [
            "running",
            "pausing",
            "paused",
            "panicked",
            "paused",
            "running",
            "idle",
        ]


@vt
async def test_loop_is_learnt_when_the_host_starts() -> None:
    host = FakeHost()
    # Built in a thread without a loop: it cannot know the host's loop yet.
    re = await anyio.to_thread.run_sync(lambda: RunEngine(host, handle_sigint=False))
    re._started()  # the host's lifecycle hook, called on its loop
    await in_plain_thread(re.panic)
    assert re.state == "panicked"
    assert host.holds == {"run_engine.panic"}
    assert host.hold_threads == [threading.get_ident()]  # applied on the loop's thread
    assert host.cancels == 1


def test_panic_from_a_thread_after_the_loop_closed_is_applied_not_dropped() -> None:
    host = FakeHost()

    async def build() -> RunEngine:
        return RunEngine(host, handle_sigint=False)

    re = asyncio.run(build())  # learns that loop, which then closes
    thread = threading.Thread(target=re.panic)
    thread.start()
    thread.join()
    assert re.state == "panicked"
    assert host.holds == {"run_engine.panic"}
    assert host.hold_threads == [thread.ident]  # no loop left: applied where it was called


def test_loop_handle_reports_a_closed_loop() -> None:
    async def make() -> LoopHandle:
        return LoopHandle()

    handle = asyncio.run(make())
    assert handle.call_soon(print) is False
    assert LoopHandle.current() is None  # no loop here


@vt
async def test_panic_when_idle_and_all_is_well() -> None:
    async with running() as (engine, re):
        re.all_is_well()  # a no-op when all is well
        re.panic()
        assert re.state == "panicked"
        assert engine.dispatch_holds == {"run_engine.panic"}
        with pytest.raises(EngineStateError, match="all_is_well"):
            await re.run([Msg("null")])
        re.all_is_well()
        assert re.state == "idle"
        assert engine.dispatch_holds == frozenset()
        kinds = [
            e.kind
            for e in engine.log.recent(kinds=["run_engine.panicked", "run_engine.all_is_well"])
        ]
        assert kinds == ["run_engine.panicked", "run_engine.all_is_well"]


# Threads run in real time: let virtual time wait a little before it jumps past them.
@pytest.mark.timecontrol(autojump_threshold=0.05)
async def test_pause_from_a_thread() -> None:
    async with running() as (_engine, re):

        def plan() -> Any:
            yield Msg("checkpoint")
            yield Msg("sleep", None, 5)

        async def from_thread() -> None:
            await anyio.sleep(1)  # virtual time
            await anyio.to_thread.run_sync(re.request_pause)

        async with anyio.create_task_group() as tg:
            tg.start_soon(from_thread)
            assert (await re.run(plan())).paused
        assert (await re.resume()).exit_status == "success"


# -- request_pause arguments ---------------------------------------------------------------


@vt
async def test_request_pause_callback_without_a_name_is_an_argument_error() -> None:
    async with running() as (engine, re):
        seen: list[BaseException] = []

        def plan() -> Any:
            yield Msg("checkpoint")
            try:
                re.request_pause(callback=lambda: True)
            except TimeControlError as exc:
                seen.append(exc)
            yield Msg("null")

        assert (await re.run(plan())).exit_status == "success"  # no pause happened
        (error,) = seen
        assert isinstance(error, PlanArgumentError)
        assert "needs a name" in str(error)
        with pytest.raises(PlanArgumentError, match="needs a name"):
            re.request_pause(defer=True, callback=lambda: True)
        with pytest.raises(PlanArgumentError, match="callable"):
            re.request_pause(name="beam", callback="yes")  # type: ignore[arg-type]
        assert engine.log.recent(kinds="run_engine.pause_requested") == []
