"""Suspenders: trip, wait, pre/post plans, replay; already tripped; pause during a suspension."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from plans_support import docs, objs, running, states

from timecontrol.plans import (
    Msg,
    SimDetector,
    SimSignal,
    SuspendBoolHigh,
    SuspendBoolLow,
    SuspendCeil,
    SuspendFloor,
    SuspendPredicate,
    SuspendWhen,
    count,
    install_suspender,
)

vt = pytest.mark.timecontrol


@vt
async def test_suspension_round_trip_with_pre_and_post_plans(virtual_clock: Any) -> None:
    async with running() as (engine, re):
        t0 = virtual_clock.monotonic()
        beam = SimSignal("beam", 1.0)
        shutter = SimSignal("shutter", 1)
        det = SimDetector("det", exposure=1.0)
        suspender = SuspendFloor(
            beam,
            0.5,
            resume_thresh=0.8,
            sleep=2.0,
            pre_plan=[Msg("set", shutter, 0, group="s"), Msg("wait", None, group="s")],
            post_plan=lambda: [Msg("set", shutter, 1, group="s"), Msg("wait", None, group="s")],
            tripped_message="beam lost",
        )
        re.install_suspender(suspender)
        shutter_log: list[tuple[float, Any]] = []
        shutter.subscribe(
            lambda value, **_: shutter_log.append((virtual_clock.monotonic() - t0, value)),
            run=False,
        )

        async def beam_trouble() -> None:
            await anyio.sleep(2.5)  # during the third exposure (2..3 s); virtual time
            beam.put(0.1)
            await anyio.sleep(5)  # virtual time
            beam.put(0.7)  # above the floor but below resume_thresh: still suspended
            await anyio.sleep(2)  # virtual time
            beam.put(0.9)  # at 9.5 s: clears; resumes after sleep=2

        async with anyio.create_task_group() as tg:
            tg.start_soon(beam_trouble)
            result = await re.run(count([det], num=5))
        assert result.exit_status == "success"
        assert not result.paused
        assert shutter_log == [(2.5, 0), (pytest.approx(11.5), 1)]
        # third point re-taken after the suspension: 11.5 + 3 exposures of 1 s
        assert virtual_clock.monotonic() - t0 == pytest.approx(14.5)
        events = docs(engine, "event")
        assert [e["seq_num"] for e in events] == [1, 2, 3, 4, 5]
        assert states(engine) == ["running", "suspending", "running", "idle"]
        (suspended,) = engine.log.recent(kinds="plan.suspended")
        assert "beam lost" in suspended.payload["justification"]
        assert "beam = 0.1" in suspended.payload["justification"]
        triggers = objs(engine, "trigger")
        assert triggers.count(("det", True)) == 1  # the interrupted trigger was replayed
        assert det.calls["pause"] == 1
        assert det.calls["resume"] == 1


@vt
async def test_already_tripped_suspender_makes_the_run_wait_first(virtual_clock: Any) -> None:
    async with running() as (engine, re):
        t0 = virtual_clock.monotonic()
        interlock = SimSignal("interlock", 1)
        re.install_suspender(SuspendBoolHigh(interlock))

        async def clear_later() -> None:
            await anyio.sleep(30)  # virtual time
            interlock.put(0)

        async with anyio.create_task_group() as tg:
            tg.start_soon(clear_later)
            result = await re.run([Msg("null", "first")])
        assert result.exit_status == "success"
        assert virtual_clock.monotonic() - t0 == pytest.approx(30)
        null_event = list(engine.log.recent(kinds="plan.msgs"))[-1]
        assert null_event.mono - t0 == pytest.approx(30)  # nothing ran before it cleared
        assert states(engine) == ["running", "suspending", "running", "idle"]


@vt
async def test_pause_during_a_suspension(virtual_clock: Any) -> None:
    async with running() as (engine, re):
        t0 = virtual_clock.monotonic()
        beam = SimSignal("beam", 1.0)
        re.install_suspender(SuspendFloor(beam, 0.5))

        def plan() -> Any:
            yield Msg("checkpoint")
            yield Msg("null", "A")
            yield Msg("sleep", None, 10)
            yield Msg("null", "B")

        async def trouble() -> None:
            await anyio.sleep(2)  # virtual time
            beam.put(0.0)
            await anyio.sleep(3)  # virtual time
            re.request_pause(defer=True)  # during a suspension every pause is hard

        async with anyio.create_task_group() as tg:
            tg.start_soon(trouble)
            result = await re.run(plan())
        assert result.paused
        assert re.state == "paused"
        assert virtual_clock.monotonic() - t0 == pytest.approx(5)
        # Resuming while the beam is still down suspends again; restore it later.
        async with anyio.create_task_group() as tg:

            async def restore() -> None:
                await anyio.sleep(4)  # virtual time
                beam.put(1.0)

            tg.start_soon(restore)
            result = await re.resume()
        assert result.exit_status == "success"
        # resumed at 5, beam back at 9, then the replay of A and the full sleep(10)
        assert virtual_clock.monotonic() - t0 == pytest.approx(19)
        assert objs(engine, "null") == [("A", False), ("A", True), ("B", False)]
        assert states(engine) == [
            "running",
            "suspending",
            "pausing",
            "paused",
            "running",
            "suspending",
            "running",
            "idle",
        ]


@vt
async def test_suspension_after_clear_checkpoint_aborts() -> None:
    async with running() as (engine, re):
        beam = SimSignal("beam", 1.0)
        re.install_suspender(SuspendFloor(beam, 0.5))

        async def trouble() -> None:
            await anyio.sleep(1)  # virtual time
            beam.put(0.0)

        plan = [Msg("open_run"), Msg("clear_checkpoint"), Msg("sleep", None, 5), Msg("close_run")]
        async with anyio.create_task_group() as tg:
            tg.start_soon(trouble)
            result = await re.run(plan)
        assert result.exit_status == "abort"
        assert "clear_checkpoint" in result.reason
        assert docs(engine, "stop")[0]["exit_status"] == "abort"


@vt
async def test_predicate_suspender_is_polled_and_plan_installed(virtual_clock: Any) -> None:
    async with running() as (engine, re):
        t0 = virtual_clock.monotonic()
        flag = {"bad": False}
        suspender = SuspendPredicate(lambda: flag["bad"], poll=0.5)

        def plan() -> Any:
            yield from install_suspender(suspender)
            yield Msg("checkpoint")
            yield Msg("sleep", None, 10)
            yield Msg("null", "end")

        async def trouble() -> None:
            await anyio.sleep(3.2)  # virtual time
            flag["bad"] = True  # noticed at the next poll, 3.5
            await anyio.sleep(4)  # virtual time
            flag["bad"] = False  # noticed at 7.5

        async with anyio.create_task_group() as tg:
            tg.start_soon(trouble)
            result = await re.run(plan())
        assert result.exit_status == "success"
        assert virtual_clock.monotonic() - t0 == pytest.approx(17.5)
        assert suspender not in re.suspenders  # plan-installed: gone with the plan
        assert "suspending" in states(engine)


@vt
async def test_suspender_validation_and_variants() -> None:
    sig = SimSignal("s", 5.0)
    with pytest.raises(ValueError, match="resume_thresh"):
        SuspendFloor(sig, 2.0, resume_thresh=1.0)
    with pytest.raises(ValueError, match="resume_thresh"):
        SuspendCeil(sig, 2.0, resume_thresh=3.0)
    with pytest.raises(TypeError, match="get"):
        SuspendWhen(object(), bool)
    with pytest.raises(ValueError, match="sleep"):
        SuspendBoolLow(sig, sleep=-1)
    ceil = SuspendCeil(sig, 4.0, resume_thresh=3.0)
    assert ceil.check() is True
    sig.put(3.5)
    assert ceil.check() is True  # hysteresis
    sig.put(3.0)
    assert ceil.check() is False
    low = SuspendBoolLow(sig)
    sig.put(0)
    assert low.check() is True
    assert repr(low) == "SuspendBoolLow('s')"
