"""A status that fails while the plan runs fails the plan, waited for or not (bluesky 1.16).

bluesky throws the failure (``FailedStatus``) into the plan at its next message; a ``wait``
that raises it does not raise it again; failures after the plan ended, or of moves the run
engine itself stopped for a pause, do not count.
"""

from __future__ import annotations

import math
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
    SimStatus,
    StatusFailed,
    SyncRunEngine,
)

vt = pytest.mark.timecontrol


class Failing:
    """A movable whose ``set`` returns a status that fails after `after` seconds (0: at once),
    or a coroutine that raises (``coroutine=True``)."""

    def __init__(self, name: str, after: float = 0.0, *, coroutine: bool = False) -> None:
        self.name = name
        self.after = after
        self.coroutine = coroutine
        self.statuses: list[SimStatus] = []

    def set(self, value: float) -> Any:
        if self.coroutine:
            return self._fail_later(value)
        status = SimStatus(math.inf)  # finished only by `finish`
        self.statuses.append(status)
        if self.after == 0:  # else finished by `fail_now`
            status.finish(False, LookupError(f"{self.name}: movement to {value} failed"))
        return status

    async def _fail_later(self, value: float) -> None:
        await anyio.sleep(self.after)
        raise LookupError(f"{self.name}: movement to {value} failed")

    def fail_now(self) -> None:
        for status in self.statuses:
            status.finish(False, LookupError(f"{self.name}: failed late"))

    def stop(self, *, success: bool = False) -> None:
        # A device whose stop fails the running move's status, whatever `success` says.
        for status in self.statuses:
            status.finish(False, LookupError(f"{self.name}: stopped"))

    def read(self) -> dict[str, Any]:
        return {self.name: {"value": 0.0, "timestamp": 0.0}}

    def describe(self) -> dict[str, Any]:
        return {self.name: {"source": "test", "dtype": "number", "shape": []}}


@vt
async def test_a_failed_set_the_plan_never_waits_for_fails_the_plan() -> None:
    device = Failing("dev")
    reached: list[str] = []

    def plan() -> Any:
        yield Msg("set", device, 10)  # no wait
        reached.append("after set")
        yield Msg("null")

    async with running() as (engine, re_):
        with pytest.raises(StatusFailed) as info:
            await re_.run(plan())
        assert isinstance(info.value.__cause__, LookupError)
        assert reached == []  # thrown at the yield of the 'set' itself
        [finished] = engine.log.recent(kinds="plan.finished")
        assert finished.payload["exit_status"] == "fail"
        assert re_.state is RunState.IDLE


@vt
@pytest.mark.parametrize("coroutine", [False, True], ids=["status", "coroutine"])
async def test_a_later_failure_reaches_the_plan_at_its_next_message(
    virtual_clock: Any, coroutine: bool
) -> None:
    device = Failing("dev", after=1.0, coroutine=coroutine)
    caught: list[tuple[float, str]] = []

    def plan() -> Any:
        yield Msg("set", device, 3, group="g")
        try:
            yield Msg("sleep", None, 2.0)  # the move fails at t=1 during this sleep
        except StatusFailed as exc:
            caught.append((virtual_clock.monotonic() - t0, repr(exc.__cause__)))
        yield Msg("null")
        return "carried on"

    async with running() as (_engine, re_):
        t0 = virtual_clock.monotonic()
        if not coroutine:
            async with anyio.create_task_group() as tg:

                async def fail_at_one() -> None:
                    await anyio.sleep(1.0)  # virtual time
                    device.fail_now()

                tg.start_soon(fail_at_one)
                result = await re_.run(plan())
        else:
            result = await re_.run(plan())
        # Thrown into the plan at the 'sleep' when it ended (the next message boundary).
        assert [t for t, _ in caught] == [2.0]
        assert "LookupError" in caught[0][1]
        assert result.exit_status == "success"
        assert result.plan_result == "carried on"


@vt
async def test_a_wait_that_raises_the_failure_does_not_raise_it_twice() -> None:
    device = Failing("dev", after=1.0, coroutine=True)
    caught: list[str] = []

    def plan() -> Any:
        yield Msg("set", device, 3, group="g")
        try:
            yield Msg("wait", None, group="g")
        except StatusFailed:
            caught.append("wait")
        yield Msg("null")
        yield Msg("null")
        return "done"

    async with running() as (_, re_):
        result = await re_.run(plan())
    assert caught == ["wait"]
    assert result.exit_status == "success"
    assert result.plan_result == "done"


@vt
async def test_a_move_stopped_by_a_pause_does_not_fail_the_plan() -> None:
    device = Failing("dev", after=math.inf)

    def moves_and_pauses() -> Any:
        yield Msg("checkpoint")
        yield Msg("set", device, 10.0)  # its status fails when the pause stops the device
        yield Msg("pause")
        yield Msg("null")
        return "moved"

    async with running() as (_, re_):
        first = await re_.run(moves_and_pauses())
        assert first.paused
        assert device.statuses[0].done
        assert not device.statuses[0].success
        resumed = await re_.resume()  # replays the move; the plan ends without waiting
        assert resumed.exit_status == "success"
        assert resumed.plan_result == "moved"
        assert len(device.statuses) == 2


@vt
async def test_a_status_failing_after_its_plan_ended_is_pardoned() -> None:
    device = Failing("dev", after=math.inf)

    def leaves_a_status_running() -> Any:
        yield Msg("set", device, 100.0)  # never waited for, still running at the end

    async with running() as (_, re_):
        first = await re_.run(leaves_a_status_running())
        assert first.exit_status == "success"

        def fails_the_old_status() -> Any:
            yield Msg("null")
            device.fail_now()  # the first plan's status fails during this plan
            yield Msg("null")
            yield Msg("null")

        again = await re_.run(fails_the_old_status())
        assert again.exit_status == "success"
        assert device.statuses[0].done
        assert not device.statuses[0].success


@pytest.fixture
def RE() -> Iterator[SyncRunEngine]:
    run_engine = SyncRunEngine()
    yield run_engine
    run_engine.close()


@pytest.mark.parametrize("wait", [True, False])
def test_sync_abs_set_fails_as_bluesky(RE: SyncRunEngine, wait: bool) -> None:
    """bluesky's test_abs_set_fails, with ophyd's StatusBase."""
    ophyd = pytest.importorskip("ophyd")
    from bluesky.plan_stubs import abs_set
    from bluesky.utils import FailedStatus

    class FailingMovable(ophyd.Device):  # type: ignore[misc]
        def set(self, value: Any) -> Any:
            status = ophyd.StatusBase()
            status.set_exception(LookupError("Movement failed"))
            return status

    with pytest.raises(FailedStatus):
        RE(abs_set(FailingMovable(name="failing_device"), 10, wait=wait))
    assert RE.state == "idle"


def test_sync_pause_stopping_a_move_does_not_fail_the_plan(RE: SyncRunEngine) -> None:
    motor = SimMotor("m", 0.0, velocity=1000.0)

    def plan() -> Any:
        yield Msg("checkpoint")
        yield Msg("set", motor, 5.0)
        yield Msg("pause")
        yield Msg("null")

    with pytest.raises(RunEngineInterrupted):
        RE(plan())
    RE.resume()
    assert RE.state == "idle"
