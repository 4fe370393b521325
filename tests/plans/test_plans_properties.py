"""Properties of replay over random plans, and panic from the transient states."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from plans_support import docs, objs, running, states

from timecontrol.plans import Msg, SimSignal, SuspendBoolHigh
from timecontrol.testing import VirtualClock

# A plan is a list of steps: ("null", i), ("checkpoint",), ("clear",), ("pause", defer).
steps = st.lists(
    st.one_of(
        st.integers(0, 10**6).map(lambda i: ("null", i)),
        st.just(("checkpoint",)),
        st.just(("clear",)),
        st.booleans().map(lambda d: ("pause", d)),
    ),
    max_size=25,
)


def to_msgs(plan: list[tuple[Any, ...]]) -> list[Msg]:
    out = []
    for i, step in enumerate(plan):
        if step[0] == "null":
            out.append(Msg("null", f"{i}"))
        elif step[0] == "checkpoint":
            out.append(Msg("checkpoint"))
        elif step[0] == "clear":
            out.append(Msg("clear_checkpoint"))
        else:
            out.append(Msg("pause", None, defer=step[1]))
    return out


def model(plan: list[tuple[Any, ...]]) -> tuple[list[tuple[str, bool]], str]:
    """What the engine must log for `plan` (resuming at every pause), and the exit status."""
    logged: list[tuple[str, bool]] = []
    since: list[str] | None = []  # nulls since the last checkpoint; None after clear
    deferred = False
    for i, step in enumerate(plan):
        kind = step[0]
        if kind == "null":
            logged.append((f"{i}", False))
            if since is not None:
                since.append(f"{i}")
        elif kind == "checkpoint":
            since = []
            if deferred:
                deferred = False  # lands here; nothing to replay
        elif kind == "clear":
            since = None
        elif step[1]:
            deferred = True
        else:
            if since is None:
                return logged, "abort"
            logged.extend((name, True) for name in since)
            deferred = False  # a hard pause takes a pending deferred one with it
    return logged, "success"


@settings(max_examples=60, deadline=None)
@given(steps)
def test_replay_matches_the_model(plan: list[tuple[Any, ...]]) -> None:
    async def main() -> tuple[list[tuple[str | None, bool]], str | None]:
        async with running() as (engine, re):
            result = await re.run(to_msgs(plan))
            while result.paused:
                result = await re.resume()
            return objs(engine, "null"), result.exit_status

    logged, status = VirtualClock().run(main)
    expected_logged, expected_status = model(plan)
    assert status == expected_status
    assert logged == expected_logged


vt = pytest.mark.timecontrol


@vt
async def test_panic_while_suspending_ends_the_run_with_fail() -> None:
    async with running() as (engine, re):
        interlock = SimSignal("interlock", 0)
        re.install_suspender(SuspendBoolHigh(interlock))

        async def trouble() -> None:
            await anyio.sleep(1)  # virtual time
            interlock.put(1)
            await anyio.sleep(1)  # virtual time
            re.panic()

        plan = [Msg("open_run"), Msg("checkpoint"), Msg("sleep", None, 10), Msg("close_run")]
        async with anyio.create_task_group() as tg:
            tg.start_soon(trouble)
            result = await re.run(plan)
        assert result.exit_status == "fail"
        assert result.reason == "panic"
        assert states(engine) == ["running", "suspending", "panicked"]
        assert docs(engine, "stop")[0]["exit_status"] == "fail"
        re.all_is_well()
        assert re.state == "idle"


@vt
async def test_panic_while_stopping_still_cleans_up() -> None:
    async with running() as (engine, re):

        def plan() -> Any:
            yield Msg("open_run")
            yield Msg("checkpoint")
            try:
                yield Msg("pause")
            finally:
                yield Msg("sleep", None, 5)  # a slow plan clean-up
                yield Msg("null", "never")

        assert (await re.run(plan())).paused

        async def panicker() -> None:
            await anyio.sleep(1)  # virtual time
            re.panic()

        async with anyio.create_task_group() as tg:
            tg.start_soon(panicker)
            result = await re.stop()
        assert result.exit_status == "fail"
        assert result.reason == "panic"
        assert ("never", False) not in objs(engine, "null")
        assert docs(engine, "stop")[0]["exit_status"] == "fail"
        assert states(engine)[-2:] == ["stopping", "panicked"]
        re.all_is_well()
        assert re.state == "idle"


@vt
async def test_pause_requests_are_refused_while_ending() -> None:
    async with running() as (_engine, re):
        errors: list[str] = []

        def plan() -> Any:
            yield Msg("checkpoint")
            try:
                yield Msg("pause")
            finally:
                try:
                    re.request_pause()
                except Exception as exc:
                    errors.append(str(exc))
                yield Msg("null")

        assert (await re.run(plan())).paused
        await re.stop()
        assert errors
        assert "stopping" in errors[0]


@vt
async def test_panic_cancelling_the_job_that_runs_the_plan() -> None:
    async with running() as (engine, re):
        outcome: list[str] = []

        @engine.action
        async def experiment() -> None:
            try:
                await re.run([Msg("open_run"), Msg("checkpoint"), Msg("sleep", None, 60)])
            except anyio.get_cancelled_exc_class():
                outcome.append("cancelled")
                raise

        engine.submit(experiment)
        await anyio.sleep(5)  # virtual time
        re.panic()
        await anyio.sleep(1)  # virtual time
        assert outcome == ["cancelled"]
        assert re.state == "panicked"
        (stop,) = docs(engine, "stop")
        assert stop["exit_status"] == "fail"
        assert stop["reason"] == "panic"
        assert [e.payload["action"] for e in engine.log.recent(kinds="action.cancelled")] == [
            "experiment"
        ]
        re.all_is_well()
        assert re.state == "idle"
