"""Step 2: one call (`state()`) and one subscription give the running item, its progress,
the items left and open prompts, with no flicker to idle between items."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from queue_support import running, settle

from timecontrol.queue import QueueState

vt = pytest.mark.timecontrol


@vt
async def test_state_shows_the_running_item_and_its_progress() -> None:
    async with running() as (_engine, q):
        q.add("count", {"num": 4}, uid="c")  # 4 readings, 1 s exposure each
        q.add("wait", uid="w")
        q.start()
        await anyio.sleep(2.5)  # virtual
        state = q.state()
        assert state.status == "running"
        assert state.activity == "item"
        assert state.running is not None
        assert state.running.uid == "c"
        assert state.queue == "main"
        assert state.progress is not None
        assert (state.progress.events, state.progress.expected) == (2, 4)
        assert state.progress.fraction == 0.5
        assert state.progress.elapsed == pytest.approx(2.5)
        assert state.items_left == 1
        assert [i.uid for i in state.pending] == ["w"]
        assert state.run_engine == "running"
        await q.wait()
        state = q.state()
        assert (state.status, state.running, state.last_stop) == ("idle", None, "finished")


@vt
async def test_progress_falls_back_on_the_learned_duration() -> None:
    async with running() as (_engine, q):
        q.add("wait", {"seconds": 4}, uid="first")
        q.start()
        await q.wait()
        q.add("wait", {"seconds": 4}, uid="second")
        q.start()
        await anyio.sleep(1)  # virtual time
        progress = q.state().progress
        assert progress is not None
        assert progress.expected is None
        assert progress.estimate == 4.0
        assert progress.fraction == pytest.approx(0.25)
        assert q.state().eta_s == pytest.approx(3.0)


async def _collect(q: Any, out: list[QueueState]) -> None:
    async with q.subscribe() as feed:
        async for state in feed:
            out.append(state)
            if state.status == "idle" and state.last_stop is not None:
                return


@vt
async def test_one_subscription_never_flickers_to_idle_between_items() -> None:
    async with running() as (_engine, q):
        q.configure(delay_default=2)
        for uid in "abc":
            q.add("count", {"num": 2}, uid=uid)
        states: list[QueueState] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(_collect, q, states)
            await settle()  # the feed's first state is taken before the start
            q.start()
        statuses = [s.status for s in states]
        assert statuses[0] == "idle"  # before start
        assert statuses[-1] == "idle"
        assert states[-1].last_stop == "finished"
        middle = statuses[1:-1]
        assert middle
        assert set(middle) == {"running"}  # through items, delays and gaps
        seen = {s.running.uid for s in states if s.running is not None}
        assert seen == {"a", "b", "c"}
        assert any(s.activity == "delay" and s.delay_remaining for s in states)
        assert [s.items_left for s in states if s.running is not None][-1] == 0


@vt
async def test_state_lists_open_prompts() -> None:
    async with running() as (_engine, q):
        answers: list[str] = []

        async def operator_question() -> None:
            answers.append(await q.ask("Rinse the cell?", ["yes", "no"]))

        async with anyio.create_task_group() as tg:
            tg.start_soon(operator_question)
            await anyio.sleep(1)  # virtual time
            (prompt,) = q.state().prompts
            assert prompt.question == "Rinse the cell?"
            assert prompt.choices == ("yes", "no")
            q.answer(prompt.id, "no")
        assert answers == ["no"]
        assert q.state().prompts == ()


@vt
async def test_waiting_for_a_run_engine_busy_with_another_plan(virtual_clock: Any) -> None:
    from queue_support import wait_plan

    async with running() as (engine, q):
        q.add("wait", uid="a")
        async with anyio.create_task_group() as tg:
            tg.start_soon(engine.run, wait_plan(5))
            await anyio.sleep(1)  # virtual time
            q.start()
            await anyio.sleep(1)  # virtual time
            state = q.state()
            assert (state.status, state.activity) == ("running", "waiting for the run engine")
        await q.wait()
        (started,) = engine.log.recent(kinds="queue.item_started")
        assert started.wall - virtual_clock.time() == pytest.approx(-1.0)
