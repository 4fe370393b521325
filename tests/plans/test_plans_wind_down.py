"""The end of a drive: once the state reads idle (or paused), the next verb is accepted.

A drive's task group (suspender watchers, the server of requested suspensions) takes a
scheduling round to wind down after the plan has ended. The state must not turn ``idle`` or
``paused`` before that is over: a caller woken by the state change (a state hook, a Log
subscriber) and calling ``run()``/``resume()`` at once must be accepted, not refused.
"""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest
from plans_support import running, states

from timecontrol.plans import Msg, RunResult, RunState, SimMotor, Suspender

vt = pytest.mark.timecontrol


def _short_plan(motor: SimMotor, value: float) -> Any:
    yield Msg("checkpoint")
    yield Msg("set", motor, value)


class _Watched(Suspender):
    """A suspender with a poll (so the drive starts a watcher task) that never trips."""

    def __init__(self) -> None:
        super().__init__(poll=0.5)

    def check(self) -> bool:
        return False


@vt
@pytest.mark.parametrize("watcher", [False, True], ids=["plain", "watched"])
async def test_run_from_a_state_hook_reacting_to_idle_is_accepted(watcher: bool) -> None:
    motor = SimMotor("m", 0.0)
    results: list[RunResult | BaseException] = []
    async with running() as (engine, re_), anyio.create_task_group() as tg:
        if watcher:
            re_.install_suspender(_Watched())

        async def second() -> None:
            try:
                results.append(await re_.run(_short_plan(motor, 2.0)))
            except Exception as exc:  # what the old code did: EngineStateError
                results.append(exc)

        def hook(new: str, old: str) -> None:
            if new == "idle" and not results:
                results.append(re_.state)  # the state the hook saw
                tg.start_soon(second)

        re_.state_hook = hook
        first = await re_.run(_short_plan(motor, 1.0))
        assert first.exit_status == "success"
    # the task group waited for `second`
    assert len(results) == 2
    assert results[0] is RunState.IDLE
    second_result = results[1]
    assert isinstance(second_result, RunResult), second_result
    assert second_result.exit_status == "success"
    assert motor.position == 2.0
    assert states(engine) == ["running", "idle", "running", "idle"]


@vt
async def test_run_from_a_log_subscriber_reacting_to_idle_is_accepted() -> None:
    motor = SimMotor("m", 0.0)
    async with running() as (engine, re_):
        re_.install_suspender(_Watched())
        outcomes: list[Any] = []

        async def queue_like() -> None:
            # What the queue does: wait for the run engine's idle, then run the next plan.
            async with engine.log.subscribe(kinds="run_engine.state") as sub:
                async for event in sub:
                    if event.payload["to"] == "idle":
                        try:
                            outcomes.append(await re_.run(_short_plan(motor, 3.0)))
                        except Exception as exc:
                            outcomes.append(exc)
                        return

        async with anyio.create_task_group() as tg:
            tg.start_soon(queue_like)
            await anyio.lowlevel.checkpoint()  # the subscriber is in place
            first = await re_.run(_short_plan(motor, 1.0))
        assert first.exit_status == "success"
        assert len(outcomes) == 1
        assert isinstance(outcomes[0], RunResult), outcomes[0]
        assert motor.position == 3.0


@vt
async def test_resume_from_a_state_hook_reacting_to_paused_is_accepted() -> None:
    motor = SimMotor("m", 0.0)
    async with running() as (_, re_), anyio.create_task_group() as tg:
        re_.install_suspender(_Watched())
        resumed: list[Any] = []

        async def resume() -> None:
            try:
                resumed.append(await re_.resume())
            except Exception as exc:
                resumed.append(exc)

        def hook(new: str, old: str) -> None:
            if new == "paused":
                tg.start_soon(resume)

        def plan() -> Any:
            yield Msg("checkpoint")
            yield Msg("pause")
            yield Msg("set", motor, 5.0)

        re_.state_hook = hook
        first = await re_.run(plan())
        assert first.paused
    # the task group waited for `resume`
    assert len(resumed) == 1
    assert isinstance(resumed[0], RunResult), resumed[0]
    assert resumed[0].exit_status == "success"
    assert motor.position == 5.0
    assert re_.state is RunState.IDLE
