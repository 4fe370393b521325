"""A failed status raises StatusFailed, with the device's exception as its cause, whatever the
kind of status: a SimStatus, a coroutine from set()/trigger(), an ophyd status, an ophyd-async
AsyncStatus."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from plans_support import docs, running

from timecontrol import current_clock
from timecontrol.plans import Msg, SimStatus, StatusFailed

vt = pytest.mark.timecontrol
asyncio_only = pytest.mark.timecontrol(backends=["asyncio"])


class SimFailing:
    """set() returns a SimStatus that fails with ValueError a second later."""

    name = "sim_failing"

    def set(self, value: Any) -> SimStatus:
        status = SimStatus(current_clock().monotonic() + 10)

        async def fail_later() -> None:
            await anyio.sleep(1)  # virtual time
            status.finish(success=False, exc=ValueError(f"cannot reach {value}"))

        assert self.tg is not None
        self.tg.start_soon(fail_later)
        return status

    tg: Any = None


class CoroFailing:
    """set() and trigger() are coroutine functions that raise."""

    name = "coro_failing"

    async def set(self, value: Any) -> None:
        await anyio.sleep(0.5)  # virtual time
        raise ValueError(f"cannot reach {value}")

    async def trigger(self) -> None:
        raise ValueError("no trigger today")


class OphydFailing:
    """set() returns an ophyd Status that fails."""

    name = "ophyd_failing"

    def set(self, value: Any) -> Any:
        from ophyd.status import Status

        status = Status()
        status.set_exception(ValueError(f"cannot reach {value}"))
        return status


class OphydAsyncFailing:
    """set() returns an ophyd-async AsyncStatus that fails."""

    name = "ophyd_async_failing"

    def set(self, value: Any) -> Any:
        from ophyd_async.core import AsyncStatus

        async def move() -> None:
            await anyio.sleep(0.1)  # virtual time
            raise ValueError(f"cannot reach {value}")

        return AsyncStatus(move())


def set_and_wait(device: Any, caught: list[BaseException], command: str = "set") -> Any:
    yield Msg("open_run")
    args = (5,) if command == "set" else ()
    try:
        yield Msg(command, device, *args, group="g")
        yield Msg("wait", None, group="g")
    except StatusFailed as exc:
        caught.append(exc)
    yield Msg("close_run")


async def check(device: Any, command: str = "set") -> None:
    async with running() as (engine, re), anyio.create_task_group() as tg:
        device.tg = tg
        caught: list[BaseException] = []
        result = await re.run(set_and_wait(device, caught, command))
        assert result.exit_status == "success"
        (exc,) = caught
        assert isinstance(exc, StatusFailed)
        assert isinstance(exc.__cause__, ValueError)
        assert "cannot reach 5" in str(exc) or "no trigger" in str(exc)
        # uncaught, it fails the plan
        args = (5,) if command == "set" else ()
        plan = [Msg("open_run"), Msg(command, device, *args, group="h"), Msg("wait", None, "h")]
        with pytest.raises(StatusFailed) as info:
            await re.run(plan)
        assert isinstance(info.value.__cause__, ValueError)
        assert docs(engine, "stop")[-1]["exit_status"] == "fail"


@vt
async def test_sim_status(virtual_clock: Any) -> None:
    await check(SimFailing())


@vt
async def test_coroutine_set_and_trigger() -> None:
    await check(CoroFailing())
    await check(CoroFailing(), "trigger")


@asyncio_only
async def test_ophyd_status() -> None:
    pytest.importorskip("ophyd")
    await check(OphydFailing())


@asyncio_only
async def test_ophyd_async_status() -> None:
    pytest.importorskip("ophyd_async")
    await check(OphydAsyncFailing())


@asyncio_only
async def test_it_is_also_bluesky_failed_status() -> None:
    from bluesky.utils import FailedStatus

    async with running() as (_engine, re):
        caught: list[BaseException] = []

        def plan() -> Any:
            try:
                yield Msg("set", CoroFailing(), 1, group="g")
                yield Msg("wait", None, group="g")
            except FailedStatus as exc:
                caught.append(exc)

        await re.run(plan())
        assert isinstance(caught[0], StatusFailed)
