"""Ctrl+C: real SIGINTs sent to the test process while a plan runs (asyncio, main thread)."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import anyio
import pytest
from plans_support import objs, running

from timecontrol.plans import Msg

pytestmark = pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(),
    reason="signal handlers can only be installed in the main thread",
)

asyncio_only = pytest.mark.timecontrol(backends=["asyncio"])


def plan() -> Any:
    yield Msg("checkpoint")
    yield Msg("sleep", None, 5)
    yield Msg("null", "A")
    yield Msg("checkpoint")
    yield Msg("sleep", None, 5)
    yield Msg("null", "B")


@asyncio_only
async def test_one_ctrl_c_is_a_deferred_pause(virtual_clock: Any) -> None:
    previous = signal.getsignal(signal.SIGINT)
    async with running(handle_sigint=True) as (engine, re):
        t0 = virtual_clock.monotonic()

        async def press() -> None:
            await anyio.sleep(1)  # real time, not virtual: see the module docstring
            assert signal.getsignal(signal.SIGINT) is not previous  # ours while running
            signal.raise_signal(signal.SIGINT)

        async with anyio.create_task_group() as tg:
            tg.start_soon(press)
            result = await re.run(plan())
        assert result.paused
        assert virtual_clock.monotonic() - t0 == pytest.approx(5)  # at the next checkpoint
        assert signal.getsignal(signal.SIGINT) is previous  # restored while paused
        (press_event,) = engine.log.recent(kinds="run_engine.sigint")
        assert press_event.payload == {"count": 1, "action": "deferred pause"}
        result = await re.resume()
        assert result.exit_status == "success"
        assert objs(engine, "null") == [("A", False), ("B", False)]  # nothing replayed
    assert signal.getsignal(signal.SIGINT) is previous


@asyncio_only
async def test_two_ctrl_c_within_10_s_are_a_hard_pause(virtual_clock: Any) -> None:
    previous = signal.getsignal(signal.SIGINT)
    async with running(handle_sigint=True) as (engine, re):
        t0 = virtual_clock.monotonic()

        async def press_twice() -> None:
            await anyio.sleep(1)  # real time, not virtual: see the module docstring
            os.kill(os.getpid(), signal.SIGINT)
            await anyio.sleep(0.5)  # real time, not virtual: see the module docstring
            os.kill(os.getpid(), signal.SIGINT)

        async with anyio.create_task_group() as tg:
            tg.start_soon(press_twice)
            result = await re.run(plan())
        assert result.paused
        assert virtual_clock.monotonic() - t0 == pytest.approx(1.5)  # at once
        actions = [e.payload["action"] for e in engine.log.recent(kinds="run_engine.sigint")]
        assert actions == ["deferred pause", "hard pause"]
        assert signal.getsignal(signal.SIGINT) is previous
        result = await re.resume()
        assert result.exit_status == "success"
        # the interrupted sleep was replayed in full
        assert virtual_clock.monotonic() - t0 == pytest.approx(11.5)


@asyncio_only
async def test_ctrl_c_more_than_10_s_apart_stays_deferred(virtual_clock: Any) -> None:
    async with running(handle_sigint=True) as (engine, re):

        def long_plan() -> Any:
            yield Msg("checkpoint")
            yield Msg("sleep", None, 30)
            yield Msg("checkpoint")

        async def press() -> None:
            await anyio.sleep(1)  # real time, not virtual: see the module docstring
            signal.raise_signal(signal.SIGINT)
            await anyio.sleep(15)  # real time, not virtual: see the module docstring
            signal.raise_signal(signal.SIGINT)

        async with anyio.create_task_group() as tg:
            tg.start_soon(press)
            result = await re.run(long_plan())
        assert result.paused
        actions = [e.payload["action"] for e in engine.log.recent(kinds="run_engine.sigint")]
        assert actions == ["deferred pause", "deferred pause"]
        await re.resume()


@asyncio_only
async def test_no_handler_when_disabled() -> None:
    previous = signal.getsignal(signal.SIGINT)
    async with running(handle_sigint=False) as (_engine, re):
        seen: list[Any] = []

        def plan_checking() -> Any:
            seen.append(signal.getsignal(signal.SIGINT))
            yield Msg("null")

        await re.run(plan_checking())
        assert seen == [previous]
