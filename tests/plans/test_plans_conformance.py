"""Run engine conformance: the scenarios of issue 6, on virtual time, on asyncio and trio."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from plans_support import BadStopMotor, docs, objs, running, states

from timecontrol import EngineStateError
from timecontrol.plans import (
    Msg,
    PauseHeldError,
    RequestAbort,
    RequestStop,
    RunState,
    SimDetector,
    SimMotor,
    UnknownCommandError,
    count,
    logged_messages,
)

vt = pytest.mark.timecontrol


def nulls(n: int) -> Any:
    for i in range(n):
        yield Msg("null", f"n{i}")


# -- basics ------------------------------------------------------------------------------------


@vt
async def test_plan_of_nulls_succeeds_with_running_then_idle() -> None:
    async with running() as (engine, re):
        result = await re.run(nulls(5))
        assert result.exit_status == "success"
        assert not result.interrupted
        assert not result.paused
        assert states(engine) == ["running", "idle"]
        assert re.state == RunState.IDLE == "idle"
        assert [o for o, _ in objs(engine, "null")] == [f"n{i}" for i in range(5)]


@vt
async def test_requests_when_idle_are_refused() -> None:
    async with running() as (engine, re):
        with pytest.raises(EngineStateError, match="idle"):
            await re.resume()
        with pytest.raises(EngineStateError, match="idle"):
            await re.stop()
        with pytest.raises(EngineStateError, match="idle"):
            await re.abort("why")
        with pytest.raises(EngineStateError, match="idle"):
            await re.halt()
        with pytest.raises(EngineStateError, match="idle"):
            re.request_pause()
        with pytest.raises(EngineStateError, match="idle"):
            re.request_pause(defer=True)
        assert states(engine) == []  # nothing changed


@vt
async def test_new_run_while_paused_is_refused() -> None:
    async with running() as (_engine, re):
        result = await re.run([Msg("checkpoint"), Msg("pause"), Msg("null")])
        assert result.paused
        assert re.state == "paused"
        with pytest.raises(EngineStateError, match="paused"):
            await re.run(nulls(1))
        assert re.state == "paused"
        assert (await re.resume()).exit_status == "success"


@vt
async def test_run_takes_a_plan_not_a_function() -> None:
    async with running() as (_engine, re):
        with pytest.raises(TypeError, match="call it first"):
            await re.run(nulls)  # type: ignore[arg-type]


# -- checkpoints, rewind, pause -----------------------------------------------------------------


@vt
async def test_replay_since_checkpoint_but_not_the_pause() -> None:
    async with running() as (engine, re):

        def plan() -> Any:
            yield Msg("checkpoint")
            yield Msg("null", "A")
            yield Msg("null", "B")
            yield Msg("pause")
            yield Msg("null", "C")
            return "done"

        result = await re.run(plan())
        assert result.paused
        assert result.exit_status is None
        assert result.interrupted
        assert objs(engine, "null") == [("A", False), ("B", False)]
        result = await re.resume()
        assert result.exit_status == "success"
        assert result.plan_result == "done"
        assert objs(engine, "null") == [
            ("A", False),
            ("B", False),
            ("A", True),
            ("B", True),
            ("C", False),
        ]
        assert len(objs(engine, "pause")) == 1  # the pause itself is not replayed
        assert states(engine) == ["running", "pausing", "paused", "running", "idle"]


@vt
async def test_hard_pause_from_another_task_cuts_the_sleep_and_replays_it(
    virtual_clock: Any,
) -> None:
    async with running() as (engine, re):
        t0 = virtual_clock.monotonic()

        def plan() -> Any:
            yield Msg("checkpoint")
            slept = yield Msg("sleep", None, 10)
            yield Msg("null", "after")
            return slept

        async def pauser() -> None:
            await anyio.sleep(3)  # virtual time
            re.request_pause()

        async with anyio.create_task_group() as tg:
            tg.start_soon(pauser)
            result = await re.run(plan())
        assert result.paused
        assert virtual_clock.monotonic() - t0 == pytest.approx(3.0)  # at once, not after 10 s
        assert objs(engine, "null") == []
        result = await re.resume()
        assert result.exit_status == "success"
        # The sleep was replayed from the checkpoint: a full 10 s after the resume.
        assert virtual_clock.monotonic() - t0 == pytest.approx(13.0)
        assert objs(engine, "sleep") == [(None, False), (None, True)]
        assert objs(engine, "null") == [("after", False)]


@vt
async def test_deferred_pause_lands_at_the_next_checkpoint_and_replays_nothing(
    virtual_clock: Any,
) -> None:
    async with running() as (engine, re):
        t0 = virtual_clock.monotonic()

        def plan() -> Any:
            yield Msg("checkpoint")
            yield Msg("sleep", None, 10)
            yield Msg("null", "A")
            yield Msg("checkpoint")
            yield Msg("null", "B")

        async def pauser() -> None:
            await anyio.sleep(3)  # virtual time
            re.request_pause(defer=True)

        async with anyio.create_task_group() as tg:
            tg.start_soon(pauser)
            result = await re.run(plan())
        assert result.paused
        assert virtual_clock.monotonic() - t0 == pytest.approx(10.0)  # no fixed extra delay
        log = logged_messages(engine.log.recent(kinds="plan.msgs"))
        assert [m.command for m in log][-1] == "checkpoint"
        paused_at = engine.log.recent(kinds="plan.paused")[-1]
        assert paused_at.payload["replay"] == 0
        await re.resume()
        assert objs(engine, "null") == [("A", False), ("B", False)]  # nothing replayed
        assert virtual_clock.monotonic() - t0 == pytest.approx(10.0)


@vt
async def test_hard_pause_overrides_a_pending_deferred_one(virtual_clock: Any) -> None:
    async with running() as (_engine, re):
        t0 = virtual_clock.monotonic()

        def plan() -> Any:
            yield Msg("checkpoint")
            yield Msg("sleep", None, 10)
            yield Msg("checkpoint")

        async def pauser() -> None:
            await anyio.sleep(2)  # virtual time
            re.request_pause(defer=True)
            await anyio.sleep(2)  # virtual time
            re.request_pause(defer=False)

        async with anyio.create_task_group() as tg:
            tg.start_soon(pauser)
            result = await re.run(plan())
        assert result.paused
        assert virtual_clock.monotonic() - t0 == pytest.approx(4.0)
        result = await re.resume()
        assert result.exit_status == "success"
        assert virtual_clock.monotonic() - t0 == pytest.approx(14.0)


@vt
async def test_clear_checkpoint_then_pause_ends_as_abort() -> None:
    async with running() as (engine, re):

        def plan() -> Any:
            yield Msg("open_run")
            yield Msg("checkpoint")
            yield Msg("clear_checkpoint")
            yield Msg("null")
            yield Msg("pause")
            yield Msg("null", "never")

        result = await re.run(plan())
        assert not result.paused
        assert result.exit_status == "abort"
        assert "clear_checkpoint" in result.reason
        assert re.state == "idle"
        (stop,) = docs(engine, "stop")
        assert stop["exit_status"] == "abort"
        assert "clear_checkpoint" in stop["reason"]
        assert ("never", False) not in objs(engine, "null")


@vt
async def test_checkpoint_after_clear_checkpoint_makes_pauses_resumable_again() -> None:
    async with running() as (_engine, re):
        plan = [Msg("clear_checkpoint"), Msg("checkpoint"), Msg("pause"), Msg("null")]
        assert (await re.run(plan)).paused
        assert (await re.resume()).exit_status == "success"


@vt
async def test_rewinding_can_be_turned_off() -> None:
    async with running() as (engine, re):

        def plan() -> Any:
            assert (yield Msg("rewindable", None, False)) is False
            yield Msg("checkpoint")
            yield Msg("null", "A")
            yield Msg("pause")
            yield Msg("null", "B")

        assert (await re.run(plan())).paused
        await re.resume()
        assert objs(engine, "null") == [("A", False), ("B", False)]

    async with running() as (engine, re):
        re.rewindable = False  # the same, set from outside for the next plans
        assert (await re.run([Msg("checkpoint"), Msg("null", "A"), Msg("pause")])).paused
        await re.resume()
        assert objs(engine, "null") == [("A", False)]


@vt
async def test_stage_acts_as_a_checkpoint() -> None:
    async with running() as (engine, re):
        det = SimDetector("det")

        def plan() -> Any:
            yield Msg("checkpoint")
            yield Msg("null", "A")
            yield Msg("stage", det)
            yield Msg("null", "B")
            yield Msg("pause")
            yield Msg("unstage", det)

        assert (await re.run(plan())).paused
        await re.resume()
        assert objs(engine, "null") == [("A", False), ("B", False), ("B", True)]
        assert det.calls == {"stage": 1, "pause": 1, "resume": 1, "unstage": 1}


@vt
async def test_replayed_event_reuses_its_sequence_number() -> None:
    async with running() as (engine, re):
        det = SimDetector("det")

        def plan() -> Any:
            yield Msg("open_run")
            for i in range(3):
                yield Msg("checkpoint")
                yield Msg("trigger", det, group="g")
                yield Msg("wait", None, group="g")
                yield Msg("create", None, name="primary")
                yield Msg("read", det)
                yield Msg("save")
                if i == 1:
                    yield Msg("pause")
            yield Msg("close_run")

        assert (await re.run(plan())).paused
        await re.resume()
        events = docs(engine, "event")
        assert [e["seq_num"] for e in events] == [1, 2, 2, 3]
        assert [e["data"]["det"] for e in events] == [1.0, 2.0, 3.0, 4.0]
        assert len({e["uid"] for e in events}) == 4
        assert docs(engine, "stop")[0]["num_events"] == {"primary": 3}


@vt
async def test_pause_from_a_subscriber_or_the_plan_body_never_deadlocks() -> None:
    async with running() as (_engine, re):
        det = SimDetector("det")
        seen: list[int] = []

        def on_event(name: str, doc: dict[str, Any]) -> None:
            seen.append(doc["seq_num"])
            if seen == [1, 2]:
                re.request_pause()  # synchronously, from inside the engine's emit

        re.subscribe(on_event, "event")
        result = await re.run(count([det], num=4))
        assert result.paused
        assert seen == [1, 2]
        result = await re.resume()
        assert result.exit_status == "success"
        assert seen == [1, 2, 2, 3, 4]  # the point in progress was replayed

        def plan_that_pauses_itself() -> Any:
            yield Msg("checkpoint")
            re.request_pause()  # from the plan's own code, between messages
            yield Msg("null", "X")

        assert (await re.run(plan_that_pauses_itself())).paused
        await re.resume()


@vt
async def test_pause_from_a_scheduled_action() -> None:
    async with running() as (engine, re):

        @engine.action
        async def pause_it() -> None:
            re.request_pause()

        def plan() -> Any:
            yield Msg("checkpoint")
            yield Msg("sleep", None, 5)

        engine.submit(pause_it, at=engine.clock.time() + 1)
        assert (await re.run(plan())).paused
        assert (await re.resume()).exit_status == "success"


# -- ending --------------------------------------------------------------------------------------


def _cleanup_plan(motor: Any, det: Any, log: list[str]) -> Any:
    yield Msg("stage", det)
    yield Msg("open_run")
    yield Msg("set", motor, 5.0, group="m")
    try:
        yield Msg("checkpoint")
        yield Msg("pause")
        yield Msg("null", "after-pause")
    except (RequestStop, RequestAbort) as exc:
        log.append(type(exc).__name__)
        yield Msg("null", "plan-cleanup")
        raise


@vt
@pytest.mark.parametrize(
    ("how", "status", "plan_cleans_up"),
    [("stop", "success", True), ("abort", "abort", True), ("halt", "abort", False)],
)
async def test_stop_abort_halt_from_paused(how: str, status: str, plan_cleans_up: bool) -> None:
    async with running() as (engine, re):
        motor = SimMotor("m", velocity=1.0)
        det = SimDetector("det")
        caught: list[str] = []
        assert (await re.run(_cleanup_plan(motor, det, caught))).paused
        if how == "abort":
            result = await re.abort("sample melted")
        else:
            result = await getattr(re, how)()
        assert result.exit_status == status
        assert not result.paused
        assert result.interrupted
        assert re.state == "idle"
        (stop,) = docs(engine, "stop")
        assert stop["exit_status"] == status
        if how == "abort":
            assert result.reason == "sample melted" == stop["reason"]
        assert (("plan-cleanup", False) in objs(engine, "null")) is plan_cleans_up
        assert caught == (
            [{"stop": "RequestStop", "abort": "RequestAbort"}[how]] if plan_cleans_up else []
        )
        assert ("after-pause", False) not in objs(engine, "null")
        # the engine's own clean-up happens on every path
        assert not det.staged
        assert det.calls["unstage"] == 1
        assert motor.calls["stop"] >= 2  # once at the pause, once at the end
        ending = {"stop": "stopping", "abort": "aborting", "halt": "halting"}[how]
        assert states(engine) == ["running", "pausing", "paused", ending, "idle"]
        assert engine.dispatch_holds == frozenset()


@vt
@pytest.mark.parametrize("how", ["stop", "abort", "halt"])
async def test_stop_abort_halt_while_running_from_another_task(
    how: str, virtual_clock: Any
) -> None:
    async with running() as (engine, re):
        t0 = virtual_clock.monotonic()
        results: list[Any] = []

        async def ender() -> None:
            await anyio.sleep(2)  # virtual time
            results.append(await getattr(re, how)())

        plan = [Msg("open_run"), Msg("checkpoint"), Msg("sleep", None, 10), Msg("close_run")]
        async with anyio.create_task_group() as tg:
            tg.start_soon(ender)
            result = await re.run(plan)
        assert virtual_clock.monotonic() - t0 == pytest.approx(2.0)
        assert results == [result]
        assert result.exit_status == ("success" if how == "stop" else "abort")
        assert docs(engine, "stop")[0]["exit_status"] == result.exit_status


@vt
async def test_plan_exception_fails_and_the_next_run_works() -> None:
    async with running() as (engine, re):
        motor = SimMotor("m")

        def bad() -> Any:
            yield Msg("open_run")
            yield Msg("set", motor, 1.0)
            raise ValueError("bad plan")

        with pytest.raises(ValueError, match="bad plan") as info:
            await re.run(bad())
        assert any("exit_status 'fail'" in note for note in info.value.__notes__)
        assert re.state == "idle"
        (stop,) = docs(engine, "stop")
        assert stop["exit_status"] == "fail"
        assert "bad plan" in stop["reason"]
        assert motor.calls["stop"] == 1
        finished = engine.log.recent(kinds="plan.finished")[-1].payload
        assert finished["exit_status"] == "fail"
        assert states(engine) == ["running", "aborting", "idle"]
        assert (await re.run(nulls(2))).exit_status == "success"


@vt
async def test_unknown_command_is_catchable_in_the_plan() -> None:
    async with running() as (_engine, re):

        def plan() -> Any:
            try:
                yield Msg("no_such_command", None)
            except UnknownCommandError as exc:
                return f"caught: {exc}"
            return "not caught"

        assert (await re.run(plan())).plan_result.startswith("caught: unknown command 'no_such")
        with pytest.raises(UnknownCommandError):
            await re.run([Msg("nope")])
        assert re.state == "idle"


@vt
@pytest.mark.parametrize("path", ["success", "exception", "stop", "abort", "halt", "panic"])
async def test_cleanup_on_every_exit_even_if_a_device_stop_raises(path: str) -> None:
    async with running() as (engine, re):
        bad = BadStopMotor("bad")
        good = SimMotor("good", velocity=1.0)
        det = SimDetector("det")

        def plan() -> Any:
            yield Msg("stage", det)
            yield Msg("open_run")
            yield Msg("set", bad, 1.0, group="g")
            yield Msg("set", good, 1.0, group="g")
            yield Msg("checkpoint")
            if path == "exception":
                raise RuntimeError("boom")
            if path in ("stop", "abort", "halt"):
                yield Msg("pause")
            if path == "panic":
                yield Msg("call", panic_now)
                yield Msg("null", "never")

        def panic_now() -> None:
            re.panic()

        if path == "exception":
            with pytest.raises(RuntimeError, match="boom"):
                await re.run(plan())
        else:
            result = await re.run(plan())
            if path in ("stop", "abort", "halt"):
                assert result.paused
                result = await getattr(re, path)()
            expected = {"success": "success", "stop": "success", "panic": "fail"}
            assert result.exit_status == expected.get(path, "abort")
        assert good.calls["stop"] >= 1
        assert bad.calls["stop"] >= 1
        assert not det.staged
        assert len(docs(engine, "stop")) == 1
        failures = [e.payload for e in engine.log.recent(kinds="plan.cleanup_failed")]
        assert any(f["device"] == "bad" and f["step"] == "stop" for f in failures)
        if path == "panic":
            assert re.state == "panicked"
            assert ("never", False) not in objs(engine, "null")
            re.all_is_well()
        assert re.state == "idle"


@vt
async def test_a_device_that_hangs_in_stop_cannot_block_cleanup(virtual_clock: Any) -> None:
    class HangingMotor(SimMotor):
        async def stop(self, *, success: bool = False) -> None:  # type: ignore[override]
            await anyio.sleep_forever()

    async with running(cleanup_timeout=2.0) as (engine, re):
        t0 = virtual_clock.monotonic()
        good = SimMotor("good")
        result = await re.run([Msg("set", HangingMotor("hang"), 1), Msg("set", good, 1)])
        assert result.exit_status == "success"
        assert virtual_clock.monotonic() - t0 == pytest.approx(2.0)
        assert good.calls["stop"] == 1
        (failure,) = [e.payload for e in engine.log.recent(kinds="plan.cleanup_failed")]
        assert failure["device"] == "hang"
        assert "timed out" in failure["error"]


@vt
async def test_cancelling_the_caller_halts_the_plan_with_cleanup() -> None:
    async with running() as (engine, re):
        motor = SimMotor("m", velocity=0.1)
        with anyio.move_on_after(3):
            await re.run([Msg("open_run"), Msg("set", motor, 10), Msg("wait"), Msg("close_run")])
        assert re.state == "idle"
        assert motor.calls["stop"] == 1
        assert 0 < motor.position < 1
        (stop,) = docs(engine, "stop")
        assert stop["exit_status"] == "abort"
        assert stop["reason"] == "cancelled"


# -- panic ---------------------------------------------------------------------------------------


@vt
async def test_panic_while_running(virtual_clock: Any) -> None:
    async with running() as (engine, re):
        ran: list[str] = []

        @engine.action
        async def long_job() -> None:
            await anyio.sleep(100)  # virtual time

        @engine.action
        async def later_job() -> None:
            ran.append("later")

        engine.submit(long_job)
        motor = SimMotor("m", velocity=1.0)

        async def panicker() -> None:
            await anyio.sleep(2)  # virtual time
            re.panic()
            engine.submit(later_job)  # dispatch is held: it must not start

        plan = [Msg("open_run"), Msg("checkpoint"), Msg("set", motor, 10), Msg("wait"), Msg("null")]
        async with anyio.create_task_group() as tg:
            tg.start_soon(panicker)
            result = await re.run(plan)
        assert result.exit_status == "fail"
        assert result.reason == "panic"
        assert re.state == "panicked"
        assert motor.calls["stop"] == 1
        assert motor.position == pytest.approx(2.0)
        assert docs(engine, "stop")[0]["exit_status"] == "fail"
        assert [o for o, _ in objs(engine, "null")] == []  # nothing after the panic
        cancelled = engine.log.recent(kinds="action.cancelled")
        assert [e.payload["action"] for e in cancelled] == ["long_job"]
        with pytest.raises(EngineStateError, match="panicked"):
            await re.run(nulls(1))
        await anyio.sleep(5)  # virtual time
        assert ran == []
        re.all_is_well()
        assert re.state == "idle"
        await anyio.sleep(0.1)  # virtual time
        assert ran == ["later"]
        assert (await re.run(nulls(1))).exit_status == "success"
        assert "panicked" in states(engine)


@vt
async def test_panic_while_paused_blocks_resume_until_all_is_well() -> None:
    async with running() as (engine, re):
        assert (await re.run([Msg("checkpoint"), Msg("null", "A"), Msg("pause")])).paused
        re.panic()
        assert re.state == "panicked"
        with pytest.raises(EngineStateError, match="all_is_well"):
            await re.resume()
        with pytest.raises(EngineStateError, match="panicked"):
            await re.stop()
        re.all_is_well()
        assert re.state == "paused"
        assert (await re.resume()).exit_status == "success"
        assert states(engine) == [
            "running",
            "pausing",
            "paused",
            "panicked",
            "paused",
            "running",
            "idle",
        ]


# -- named pause requests --------------------------------------------------------------------


@vt
async def test_named_pause_requests_block_resume_until_their_callback_allows() -> None:
    async with running() as (engine, re):
        permissions = {"beam": False, "operator": False}

        def plan() -> Any:
            yield Msg("checkpoint")
            re.request_pause(name="beam", callback=lambda: permissions["beam"])
            yield Msg("null", "A")
            yield Msg("null", "B")

        assert (await re.run(plan())).paused
        re.request_pause(name="operator", callback=lambda: permissions["operator"])
        with pytest.raises(PauseHeldError) as info:
            await re.resume()
        assert sorted(info.value.names) == ["beam", "operator"]
        assert re.state == "paused"
        permissions["beam"] = True
        with pytest.raises(PauseHeldError) as info:
            await re.resume()
        assert info.value.names == ["operator"]
        refused = engine.log.recent(kinds="run_engine.resume_refused")
        assert [e.payload["holding"] for e in refused] == [["beam", "operator"], ["operator"]]
        permissions["operator"] = True
        assert (await re.resume()).exit_status == "success"


@vt
async def test_pause_holds_scheduled_dispatch_until_resume() -> None:
    async with running() as (engine, re):
        ran: list[float] = []

        @engine.action
        async def job() -> None:
            ran.append(engine.clock.monotonic())

        t0 = engine.clock.monotonic()
        assert (await re.run([Msg("checkpoint"), Msg("pause")])).paused
        assert engine.dispatch_holds == {"run_engine.pause"}
        engine.submit(job)
        await anyio.sleep(10)  # virtual time
        assert ran == []
        await re.resume()
        await anyio.sleep(0.1)  # virtual time
        assert ran == [pytest.approx(t0 + 10)]
        assert engine.dispatch_holds == frozenset()


@vt
async def test_run_needs_a_running_engine() -> None:
    from timecontrol import Engine
    from timecontrol.plans import RunEngine

    engine = Engine()
    re = RunEngine(engine, handle_sigint=False)
    with pytest.raises(EngineStateError, match="engine is not running"):
        await re.run(nulls(1))
    assert re.state == "idle"
    async with engine:
        assert (await re.run(nulls(1))).exit_status == "success"
