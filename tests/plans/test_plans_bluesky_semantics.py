"""bluesky's run-engine semantics: NoReplayAllowed, record_interruptions, and a pause requested
by a function the plan calls inside the replay window."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from plans_support import docs, objs, running

from timecontrol.plans import Msg, SimDetector
from timecontrol.plans._compat import NoReplayAllowedBase

vt = pytest.mark.timecontrol
asyncio_only = pytest.mark.timecontrol(backends=["asyncio"])


class Refuser(SimDetector):
    """A detector whose pause() refuses replay (sync or async, ours or bluesky's class)."""

    def __init__(self, error: type[BaseException], *, is_async: bool = False) -> None:
        super().__init__("refuser")
        self.error = error
        self.is_async = is_async

    def pause(self) -> Any:
        super().pause()
        if self.is_async:

            async def refuse() -> None:
                raise self.error()

            return refuse()
        raise self.error()


def sleepy_plan(det: Any) -> Any:
    yield Msg("open_run")
    yield Msg("checkpoint")
    yield Msg("null", "A")
    yield Msg("create", name="primary")
    yield Msg("read", det)
    yield Msg("save")
    yield Msg("sleep", None, 5)
    yield Msg("null", "B")
    yield Msg("close_run")


async def pause_and_resume(re: Any, plan: Any, after: float = 1.0) -> Any:
    async def pauser() -> None:
        await anyio.sleep(after)
        re.request_pause()

    async with anyio.create_task_group() as tg:
        tg.start_soon(pauser)
        result = await re.run(plan)
    assert result.paused
    return await re.resume()


@vt
@pytest.mark.parametrize("is_async", [False, True])
async def test_no_replay_allowed_skips_the_replay(virtual_clock: Any, is_async: bool) -> None:
    async with running() as (engine, re):
        det = Refuser(NoReplayAllowedBase, is_async=is_async)
        t0 = virtual_clock.monotonic()
        result = await pause_and_resume(re, sleepy_plan(det))
        assert result.exit_status == "success"
        assert objs(engine, "null") == [("A", False), ("B", False)]  # nothing replayed
        assert len(docs(engine, "event")) == 1
        assert virtual_clock.monotonic() - t0 == pytest.approx(1)  # the cut sleep is not re-run
        (paused,) = engine.log.recent(kinds="plan.paused")
        assert paused.payload == {"replay": 0, "no_replay": ["refuser"]}


@vt
async def test_without_the_refusal_the_window_is_replayed() -> None:
    async with running() as (engine, re):
        result = await pause_and_resume(re, sleepy_plan(SimDetector("plain")))
        assert result.exit_status == "success"
        assert objs(engine, "null") == [("A", False), ("A", True), ("B", False)]
        assert [e["seq_num"] for e in docs(engine, "event")] == [1, 1]


@asyncio_only
async def test_bluesky_no_replay_allowed_is_honoured_and_public() -> None:
    from bluesky.utils import NoReplayAllowed

    from timecontrol import plans

    assert plans.NoReplayAllowed is NoReplayAllowed
    async with running() as (engine, re):
        result = await pause_and_resume(re, sleepy_plan(Refuser(NoReplayAllowed)), after=0.05)
        assert result.exit_status == "success"
        assert objs(engine, "null") == [("A", False), ("B", False)]


@vt
async def test_other_pause_errors_are_logged_and_the_window_replayed() -> None:
    async with running() as (engine, re):
        result = await pause_and_resume(re, sleepy_plan(Refuser(RuntimeError)))
        assert result.exit_status == "success"
        assert objs(engine, "null") == [("A", False), ("A", True), ("B", False)]
        (failed,) = engine.log.recent(kinds="plan.cleanup_failed")
        assert failed.payload["step"] == "pause"
