"""Step 3: pause pauses the running plan and holds the queue (the run engine's own pause);
panic stops the queue. Interventions: cancel, abort, truncate. Virtual time, both backends."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from queue_support import running, settle, started_uids

from timecontrol.plans import PauseHeldError
from timecontrol.queue import ItemStatus, QueueStateError

vt = pytest.mark.timecontrol


def run_engine_states(engine: Any) -> list[str]:
    return [e.payload["to"] for e in engine.log.recent(kinds="run_engine.state")]


@vt
async def test_pause_is_the_run_engines_pause_and_holds_the_queue(virtual_clock: Any) -> None:
    async with running() as (engine, q):
        q.add("wait", {"seconds": 1, "steps": 4}, uid="a")
        q.add("wait", {"seconds": 1}, uid="b")
        q.start()
        await anyio.sleep(1.5)  # virtual: a is in its second step
        q.pause()
        await settle()
        assert engine.state == "paused"
        state = q.state()
        assert (state.status, state.activity) == ("paused", "paused")
        assert state.running is not None
        assert state.running.uid == "a"
        await anyio.sleep(100)  # virtual: nothing moves while paused
        assert started_uids(engine) == ["a"]
        await q.resume()
        assert q.state().status == "running"
        assert await q.wait() == "finished"
        assert started_uids(engine) == ["a", "b"]
        assert "paused" in run_engine_states(engine)
        assert [e.kind for e in engine.log.recent(kinds=["queue.paused", "queue.resumed"])] == [
            "queue.paused",
            "queue.resumed",
        ]
        # 1.5 s before the pause, 100 s paused, then the rest of a (replayed from its last
        # checkpoint: 3 s) and b (1 s).
        assert q.item("a").outcome.duration == pytest.approx(104.5)  # type: ignore[union-attr]


@vt
async def test_deferred_pause_lands_at_the_next_checkpoint() -> None:
    async with running() as (engine, q):
        q.add("wait", {"seconds": 1, "steps": 3}, uid="a")
        q.start()
        await anyio.sleep(0.5)  # virtual time
        q.pause(defer=True)
        await anyio.sleep(0.25)  # virtual time
        assert engine.state == "running"
        await anyio.sleep(0.5)  # the checkpoint at 1 s; virtual time
        assert engine.state == "paused"
        await q.resume()
        assert await q.wait() == "finished"
        assert q.item("a").status == ItemStatus.SUCCEEDED


@vt
async def test_a_pause_from_the_run_engine_itself_holds_the_queue_too() -> None:
    async with running() as (engine, q):
        q.add("wait", {"seconds": 2}, uid="a")
        q.add("wait", {"seconds": 2}, uid="b")
        q.start()
        await anyio.sleep(1)  # virtual time
        engine.request_pause()  # an operator's button on the engine, or Ctrl+C
        await settle()
        assert q.state().status == "paused"
        # Resumed through the run engine rather than the queue: the plan goes on in this
        # task; the queue learns from the Log that it ended and goes on with b.
        result = await engine.resume()
        assert result.exit_status == "success"
        assert await q.wait() == "finished"
        assert started_uids(engine) == ["a", "b"]
        assert q.item("a").status == ItemStatus.SUCCEEDED


@vt
async def test_pause_between_items_freezes_the_delay() -> None:
    async with running() as (engine, q):
        q.add("wait", {"seconds": 1}, uid="a", delay_after=10)
        q.add("wait", {"seconds": 1}, uid="b")
        q.start()
        await anyio.sleep(4)  # virtual: 3 s into the 10 s delay
        q.pause()
        state = q.state()
        assert (state.status, state.activity) == ("paused", "delay")
        assert state.delay_remaining == pytest.approx(7)
        await anyio.sleep(50)  # virtual time
        assert q.state().delay_remaining == pytest.approx(7)
        await q.resume()
        await anyio.sleep(6.5)  # virtual time
        assert started_uids(engine) == ["a"]
        await anyio.sleep(1)  # virtual time
        assert started_uids(engine) == ["a", "b"]
        await q.wait()


@vt
async def test_resume_is_refused_while_a_named_pause_holds() -> None:
    async with running() as (engine, q):
        q.add("wait", {"seconds": 2}, uid="a")
        q.start()
        await anyio.sleep(1)  # virtual time
        beam = {"ok": False}
        engine.request_pause(name="beam", callback=lambda: beam["ok"])
        await settle()
        with pytest.raises(PauseHeldError):
            await q.resume()
        assert q.state().status == "paused"
        beam["ok"] = True
        await q.resume()
        assert await q.wait() == "finished"


@vt
async def test_resume_and_pause_need_a_paused_or_executing_queue() -> None:
    async with running() as (_engine, q):
        with pytest.raises(QueueStateError, match="not paused"):
            await q.resume()
        with pytest.raises(QueueStateError, match="idle"):
            q.pause()
        with pytest.raises(QueueStateError, match="idle"):
            q.cancel()


@vt
async def test_panic_stops_the_queue_and_interrupts_the_running_item() -> None:
    async with running() as (engine, q):
        q.add("wait", {"seconds": 5}, uid="again")
        q.add("wait", {"seconds": 5}, uid="once", on_interrupt="skip")
        q.add("wait", {"seconds": 1}, uid="later")
        q.start()
        await anyio.sleep(1)  # virtual time
        engine.panic()
        assert await q.wait() == "panic"
        assert q.item("again").status == ItemStatus.PENDING  # interrupted, to re-run
        outcome = q.item("again").outcome
        assert outcome is not None
        assert (outcome.status, outcome.reason) == (ItemStatus.INTERRUPTED, "panic")
        with pytest.raises(QueueStateError, match="panicked"):
            q.start()
        engine.all_is_well()
        q.start()
        await anyio.sleep(7)  # again re-runs (5 s), once starts; virtual time
        engine.panic()
        assert await q.wait() == "panic"
        assert q.item("once").status == ItemStatus.INTERRUPTED  # not to run again
        engine.all_is_well()
        q.start()
        assert await q.wait() == "finished"
        assert started_uids(engine) == ["again", "again", "once", "later"]


@vt
async def test_panic_during_a_delay_stops_the_queue() -> None:
    async with running() as (engine, q):
        q.add("wait", uid="a", delay_after=60)
        q.add("wait", uid="b")
        q.start()
        await anyio.sleep(10)  # virtual time
        engine.panic()
        assert await q.wait() == "panic"
        assert started_uids(engine) == ["a"]
        engine.all_is_well()


@vt
async def test_cancel_lets_the_running_item_end_then_stops() -> None:
    async with running() as (engine, q):
        q.add("wait", {"seconds": 5}, uid="a")
        q.add("wait", uid="b")
        q.start()
        await anyio.sleep(1)  # virtual time
        q.cancel("lunch")
        assert q.state().status == "stopping"
        assert await q.wait() == "cancelled: lunch"
        assert q.item("a").status == ItemStatus.SUCCEEDED
        assert q.item("b").status == ItemStatus.PENDING
        (event,) = engine.log.recent(kinds="queue.intervention")
        assert event.payload == {"action": "cancel", "reason": "lunch"}
        assert event.subject == "a"


@vt
async def test_abort_ends_the_running_item_as_aborted_and_stops() -> None:
    async with running() as (engine, q):
        q.add("count", {"num": 10}, uid="a")
        q.add("wait", uid="b")
        q.start()
        await anyio.sleep(2.5)  # virtual time
        await q.abort("sample spilled")
        assert await q.wait() == "aborted: sample spilled"
        item = q.item("a")
        assert item.status == ItemStatus.ABORTED
        assert item.outcome is not None
        assert item.outcome.exit_status == "abort"
        (stop,) = engine.log.recent(kinds="run.stop")
        assert (stop.payload["exit_status"], stop.payload["reason"]) == ("abort", "sample spilled")
        assert q.item("b").status == ItemStatus.PENDING


@vt
async def test_abort_of_a_paused_item() -> None:
    async with running() as (_engine, q):
        q.add("wait", {"seconds": 5}, uid="a")
        q.start()
        await anyio.sleep(1)  # virtual time
        q.pause()
        await anyio.sleep(1)  # virtual time
        await q.abort()
        assert await q.wait() == "aborted"
        assert q.item("a").status == ItemStatus.ABORTED


@vt
async def test_truncate_ends_the_item_as_a_success_and_goes_on() -> None:
    async with running() as (engine, q):
        q.add("count", {"num": 10}, uid="a")
        q.add("wait", uid="b")
        q.start()
        await anyio.sleep(3.5)  # virtual time
        await q.truncate("enough points")
        assert await q.wait() == "finished"
        item = q.item("a")
        assert item.status == ItemStatus.TRUNCATED
        assert item.outcome is not None
        assert item.outcome.exit_status == "success"
        assert started_uids(engine) == ["a", "b"]
        actions = [e.payload["action"] for e in engine.log.recent(kinds="queue.intervention")]
        assert actions == ["truncate"]
        with pytest.raises(QueueStateError, match="no item is running"):
            await q.truncate()


@vt
async def test_stopping_the_engine_interrupts_the_running_item() -> None:
    async with running() as (engine, q):
        q.add("wait", {"seconds": 5}, uid="a")
        q.start()
        await anyio.sleep(1)  # virtual time
    assert q.item("a").status == ItemStatus.PENDING  # to re-run
    outcome = q.item("a").outcome
    assert outcome is not None
    assert outcome.status == ItemStatus.INTERRUPTED
    stopped = [e.payload["reason"] for e in engine.log.recent(kinds="queue.stopped")]
    assert stopped == ["the engine stopped"]


@vt
async def test_abort_and_truncate_right_after_a_pause() -> None:
    # The pause has landed (the run engine says paused) but the executor has not yet seen
    # the paused result: the run engine would refuse to end the plan in that window.
    async with running() as (_engine, q):
        q.add("wait", {"seconds": 5}, uid="a")
        q.add("wait", {"seconds": 5}, uid="b")
        q.start()
        await anyio.sleep(1)  # virtual time
        q.pause()
        await q.truncate()
        await anyio.sleep(1)  # virtual time
        q.pause()
        await q.abort()
        assert await q.wait() == "aborted"
        assert [i.status for i in q.items()] == [ItemStatus.TRUNCATED, ItemStatus.ABORTED]


@vt
async def test_a_bug_in_the_executor_stops_the_queue_visibly_not_the_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with running() as (engine, q):
        q.add("wait", uid="a")

        def broken(item: Any) -> None:
            raise KeyError("oops")

        monkeypatch.setattr(q, "_scheduled_stop", broken)
        q.start()
        assert await q.wait() == "error: KeyError: 'oops'"
        (stopped,) = engine.log.recent(kinds="queue.stopped")
        assert "KeyError" in stopped.payload["traceback"]
        assert engine.running
