"""bluesky behaviours fixed after the oracle found them: a plan raising GeneratorExit, and
``deferred_pause_requested`` after a plan that ended before its deferred pause could land."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from plans_support import running

from timecontrol.plans import (
    Msg,
    RunEngineInterrupted,
    RunState,
    SimMotor,
    SyncRunEngine,
)
from timecontrol.plans._errors import PlanClosedError  # not yet in timecontrol.errors

vt = pytest.mark.timecontrol


def _yields_on_close(plan: Any, post: Any) -> Any:
    # Not a valid plan: it yields while being closed (bluesky's test_invalid_generator).
    try:
        yield from plan
    finally:
        yield from post


def _moves(motor: SimMotor, *values: float) -> Any:
    for value in values:
        yield Msg("set", motor, value)


def _raises_generator_exit(motor: SimMotor) -> Any:
    yield Msg("set", motor, -500)
    raise GeneratorExit("this one")


@vt
async def test_a_plan_raising_generator_exit_fails() -> None:
    motor = SimMotor("m", 0.0)
    async with running() as (engine, re_):
        with pytest.raises(PlanClosedError, match="GeneratorExit\\('this one'\\)") as info:
            await re_.run(_raises_generator_exit(motor))
        assert isinstance(info.value, ValueError)  # what bluesky raises
        cause = info.value.__cause__
        assert isinstance(cause, GeneratorExit)
        assert cause.args == ("this one",)
        assert re_.state is RunState.IDLE
        assert motor.position == -500
        [finished] = engine.log.recent(kinds="plan.finished")
        assert finished.payload["exit_status"] == "fail"
        assert "this one" in finished.payload["reason"]
        # The run engine takes the next plan.
        again = await re_.run(_moves(motor, 1.0))
        assert again.exit_status == "success"


@vt
async def test_a_suspension_pre_plan_raising_generator_exit_fails_the_plan() -> None:
    motor = SimMotor("m", 0.0)

    def base() -> Any:
        yield Msg("checkpoint")
        yield Msg("set", motor, 1.0)
        yield Msg("pause")

    async with running() as (engine, re_):
        first = await re_.run(_yields_on_close(base(), _moves(motor, 500)))
        assert first.paused
        re_.request_suspend(None, pre_plan=_raises_generator_exit(motor))
        with pytest.raises(PlanClosedError) as info:
            await re_.resume()
        assert isinstance(info.value.__cause__, GeneratorExit)
        # The paused plan below was closed, not thrown into: its `finally` (which yields,
        # so its clean-up is skipped and recorded) never moved the motor.
        assert motor.position == -500
        assert re_.state is RunState.IDLE
        [finished] = engine.log.recent(kinds="plan.finished")
        assert finished.payload["exit_status"] == "fail"
        [close] = engine.log.recent(kinds="plan.cleanup_failed")
        assert close.payload["step"] == "close plan"
        assert "tried to yield a value on close" in close.payload["error"]


@pytest.fixture
def RE() -> Iterator[SyncRunEngine]:
    run_engine = SyncRunEngine()
    yield run_engine
    run_engine.close()


def test_sync_generator_exit_raises_value_error_and_prints_bluesky_message(
    RE: SyncRunEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    motor = SimMotor("m", 0.0)

    def base() -> Any:
        yield Msg("set", motor, 1.0)
        yield Msg("pause")

    with pytest.raises(RunEngineInterrupted):
        RE(_yields_on_close(base(), _moves(motor, 500)))
    RE.request_suspend(None, pre_plan=_raises_generator_exit(motor))
    capsys.readouterr()
    with pytest.raises(ValueError, match="GeneratorExit") as info:
        RE.resume()
    assert isinstance(info.value.__cause__, GeneratorExit)
    assert info.value.__cause__.args[0] == "this one"
    out = capsys.readouterr().out
    assert out.startswith("The plan <generator object _yields_on_close")
    assert out.endswith(" tried to yield a value on close.  Please fix your plan.\n")
    assert RE.state == "idle"


def _asks_deferred_pause(RE: SyncRunEngine) -> Any:
    # Plan code runs on the loop: ask the run engine underneath directly.
    RE.run_engine.request_pause(defer=True)
    yield Msg("null")


def test_deferred_pause_asked_after_the_last_checkpoint_stays_requested(
    RE: SyncRunEngine,
) -> None:
    seen: list[bool] = []

    def plan() -> Any:
        yield Msg("checkpoint")
        yield from _asks_deferred_pause(RE)
        seen.append(RE.deferred_pause_requested)
        yield Msg("null")

    assert RE.deferred_pause_requested is False
    RE(plan())  # no checkpoint after the request: the plan ends without pausing
    assert seen == [True]
    assert RE.deferred_pause_requested is True  # bluesky's rule: until the next plan
    RE([Msg("null")])
    assert RE.deferred_pause_requested is False


def test_deferred_pause_that_lands_is_no_longer_requested(RE: SyncRunEngine) -> None:
    def plan() -> Any:
        yield from _asks_deferred_pause(RE)
        yield Msg("checkpoint")
        yield Msg("null")

    with pytest.raises(RunEngineInterrupted):
        RE(plan())
    assert RE.state == "paused"
    assert RE.deferred_pause_requested is False
    RE.resume()
    assert RE.deferred_pause_requested is False
    assert RE.state == "idle"


def test_sync_subscription_tokens_are_numbered_from_zero(RE: SyncRunEngine) -> None:
    engine_subscribers = dict(RE.run_engine._subscribers)  # e.g. the engine queue's
    seen: list[str] = []
    first = RE.subscribe(lambda name, doc: seen.append(f"a:{name}"))
    second = RE.subscribe(lambda name, doc: seen.append(f"b:{name}"), "start")
    assert (first, second) == (0, 1)
    RE([Msg("open_run"), Msg("close_run")])
    assert seen == ["a:start", "b:start", "a:stop"]
    RE.unsubscribe(0)
    seen.clear()
    RE([Msg("open_run"), Msg("close_run")])
    assert seen == ["b:start"]
    RE.unsubscribe(1)
    # Tokens not (or no longer) handed out remove nothing: the engine's own subscriptions
    # (the queue's holds run-engine token 1) stay.
    for token in (0, 1, 5, -1, [1]):
        RE.unsubscribe(token)  # type: ignore[arg-type]
    assert engine_subscribers
    assert RE.run_engine._subscribers == engine_subscribers
    seen.clear()
    RE([Msg("open_run"), Msg("close_run")])
    assert seen == []
    assert RE.subscribe(lambda name, doc: None) == 2


def test_sync_plan_subscribe_message_uses_the_same_numbering(RE: SyncRunEngine) -> None:
    tokens: list[int] = []
    seen: list[str] = []

    def plan() -> Any:
        token = yield Msg("subscribe", None, lambda name, doc: seen.append(name), "all")
        tokens.append(token)
        yield Msg("open_run")
        yield Msg("unsubscribe", None, token=token)
        yield Msg("close_run")

    RE(plan())
    assert tokens == [0]
    assert seen == ["start"]  # unsubscribed before the stop document
    assert RE.subscribe(lambda name, doc: None) == 1


class _PauseOnly:
    name = "pause_only"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause(self) -> None:
        self.calls.append("pause")


class _Pausable(_PauseOnly):
    name = "pausable"

    def resume(self) -> None:
        self.calls.append("resume")


@vt
async def test_only_devices_that_can_resume_are_paused_and_any_message_object_counts() -> None:
    pause_only, pausable = _PauseOnly(), _Pausable()

    def plan() -> Any:
        # `null` does nothing with them, but a message naming an object makes it seen
        yield Msg("null", pause_only)
        yield Msg("null", pausable)
        yield Msg("checkpoint")
        yield Msg("pause")
        yield Msg("null")

    async with running() as (_, re_):
        first = await re_.run(plan())
        assert first.paused
        assert pausable.calls == ["pause"]
        resumed = await re_.resume()
        assert resumed.exit_status == "success"
    assert pausable.calls == ["pause", "resume"]
    assert pause_only.calls == []  # it could never have been told the pause was over


def test_sync_plan_messages_install_bluesky_suspenders_for_good(RE: SyncRunEngine) -> None:
    ophyd = pytest.importorskip("ophyd")
    from bluesky.suspenders import SuspendBoolHigh

    signal = ophyd.Signal(name="sig", value=0)
    suspender = SuspendBoolHigh(signal)
    RE([Msg("install_suspender", None, suspender), Msg("null")])
    assert suspender in RE.suspenders
    assert suspender.RE is RE
    RE([Msg("remove_suspender", None, suspender), Msg("null")])
    assert suspender not in RE.suspenders
    assert suspender.RE is None


@vt
async def test_a_suspension_yields_bluesky_messages_then_replays(virtual_clock: Any) -> None:
    motor = SimMotor("m", 0.0)
    commands: list[str] = []
    asked: list[float] = []

    async def clears_at_three() -> None:
        await anyio.sleep(3.0)  # virtual time

    async with running() as (_, re_):

        def suspend_once(msg: Any) -> None:
            if not asked:  # the replay repeats this message: suspend only once
                asked.append(virtual_clock.monotonic())
                re_.request_suspend(
                    clears_at_three, pre_plan=[Msg("null")], post_plan=[Msg("null")]
                )

        re_.register_command("suspend_once", suspend_once)
        re_.msg_hook = lambda msg: commands.append(msg.command)
        plan = [Msg("checkpoint"), Msg("set", motor, 1.0), Msg("suspend_once"), Msg("null")]
        result = await re_.run(plan)
        assert result.exit_status == "success"
        assert virtual_clock.monotonic() - asked[0] == pytest.approx(3.0)
    assert commands == [
        "checkpoint",
        "set",
        "suspend_once",
        # bluesky's suspension: start, pre-plan, wait, resume, post-plan ...
        "_start_suspender",
        "rewindable",
        "null",
        "wait_for",
        "_resume_from_suspender",
        "null",
        "rewindable",
        # ... then the replay from the checkpoint, then the plan goes on
        "set",
        "suspend_once",
        "null",
    ]
