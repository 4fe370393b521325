"""Step 1: items and queues, edited while the queue runs; loop and ignore-failures modes;
several queues one after another. On virtual time, on asyncio and trio."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from queue_support import running, started_uids

from timecontrol import TimeControlError
from timecontrol.queue import (
    ItemNotFoundError,
    ItemStatus,
    PlanNotFoundError,
    QueueArgumentError,
    QueueStateError,
)

vt = pytest.mark.timecontrol


def uids(queue: Any, name: str | None = None) -> list[str]:
    return [i.uid for i in queue.items(name)]


@vt
async def test_add_insert_move_edit_remove_skip_clear_are_one_event_each() -> None:
    async with running() as (engine, q):
        a = q.add("wait", {"seconds": 1}, uid="a")
        c = q.add("wait", uid="c")
        b = q.add("wait", after="a", uid="b")
        z = q.add("wait", position=0, uid="z")
        q.add("wait", before="c", uid="bc")
        q.add("wait", position=-1, uid="end")
        assert uids(q) == ["z", "a", "b", "bc", "c", "end"]
        before = engine.log.last_seq
        q.move("z", position=-1)
        assert uids(q) == ["a", "b", "bc", "c", "end", "z"]
        q.move("c", after="a")
        q.move("end", before="a")
        assert uids(q) == ["end", "a", "c", "b", "bc", "z"]
        q.edit("b", kwargs={"seconds": 5}, metadata={"sample": "S1"}, item_type="blank")
        q.skip("bc")
        q.remove("z")
        assert engine.log.last_seq - before == 6  # one event per edit
        item = q.item("b")
        assert (item.kwargs, item.metadata, item.item_type) == (
            {"seconds": 5},
            {"sample": "S1"},
            "blank",
        )
        assert q.item("bc").skip
        q.unskip("bc")
        assert not q.item("bc").skip
        with pytest.raises(ItemNotFoundError, match="'z'"):
            q.item("z")
        assert q.clear() == ["end", "a", "c", "b", "bc"]
        assert q.items() == []
        assert (a.plan, b.queue, c.status) == ("wait", "main", ItemStatus.PENDING)
        assert z.uid == "z"


@vt
async def test_snapshots_are_copies() -> None:
    async with running() as (_engine, q):
        kwargs = {"seconds": 1}
        item = q.add("wait", kwargs)
        kwargs["seconds"] = 99
        item.kwargs["seconds"] = 42
        assert q.item(item.uid).kwargs == {"seconds": 1}


BAD_ADDS: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"plan": "nope"}, PlanNotFoundError, "no plan named 'nope'.*registered plans"),
    ({"plan": "wait", "kwargs": {"secs": 1}}, QueueArgumentError, "'secs'.*parameters are"),
    ({"plan": "wait", "kwargs": {"seconds": "1"}}, QueueArgumentError, "seconds as int or float"),
    ({"plan": "count", "kwargs": {"num": True}}, QueueArgumentError, "num as int, got True"),
    ({"plan": "wait", "kwargs": {"seconds": (1,)}}, QueueArgumentError, "survive JSON"),
    ({"plan": "wait", "kwargs": {"seconds": float("nan")}}, QueueArgumentError, "JSON"),
    ({"plan": "wait", "kwargs": {1: 2}}, QueueArgumentError, "str keys"),
    ({"plan": "wait", "metadata": {"t": object()}}, QueueArgumentError, "not JSON"),
    ({"plan": "wait", "position": 7}, QueueArgumentError, "position 7 is outside"),
    ({"plan": "wait", "position": "0"}, QueueArgumentError, "position must be an int"),
    ({"plan": "wait", "after": "ghost"}, ItemNotFoundError, "'ghost'"),
    ({"plan": "wait", "after": "x", "position": 0}, QueueArgumentError, "at most one"),
    ({"plan": "wait", "queue": "other"}, ItemNotFoundError, "no queue named 'other'"),
    ({"plan": "wait", "uid": "x"}, QueueArgumentError, "uid 'x' is in the queue already"),
    ({"plan": "wait", "on_interrupt": "retry"}, QueueArgumentError, "'retry'"),
    ({"plan": "wait", "delay_after": -1}, QueueArgumentError, "delay_after.*got -1"),
    ({"plan": "wait", "item_type": ""}, QueueArgumentError, "item_type"),
    ({"plan": "wait", "skip": "yes"}, QueueArgumentError, "skip must be True or False"),
    ({"plan": 3}, QueueArgumentError, "plan must be"),
]


@vt
@pytest.mark.parametrize(("args", "error", "match"), BAD_ADDS)
async def test_bad_input_raises_naming_the_value_and_leaves_no_trace(
    args: dict[str, Any], error: type[Exception], match: str
) -> None:
    async with running() as (engine, q):
        q.add("wait", uid="x")
        before, items = engine.log.last_seq, q.items()
        with pytest.raises(error, match=match) as info:
            q.add(**args)
        assert isinstance(info.value, TimeControlError)
        assert engine.log.last_seq == before
        assert q.items() == items


@vt
async def test_bad_edits_raise_and_change_nothing() -> None:
    async with running() as (engine, q):
        q.add("wait", uid="x")
        q.add("wait", uid="y")
        before = engine.log.last_seq
        with pytest.raises(QueueArgumentError, match="takes some of"):
            q.edit("x", colour="red")
        with pytest.raises(QueueArgumentError, match="takes some of"):
            q.edit("x")
        with pytest.raises(QueueArgumentError, match=r"'seconds'.*parameters"):
            q.edit("x", plan="count", kwargs={"seconds": 1})
        with pytest.raises(QueueArgumentError, match="relative to itself"):
            q.move("x", after="x")
        with pytest.raises(ItemNotFoundError):
            q.remove("ghost")
        with pytest.raises(QueueStateError, match="only a finished item"):
            q.requeue("x")
        with pytest.raises(QueueArgumentError, match="exists already"):
            q.add_queue("main")
        with pytest.raises(QueueArgumentError, match="cannot be removed"):
            q.remove_queue("main")
        with pytest.raises(QueueArgumentError, match="loop must be True or False"):
            q.set_mode(loop=1)  # type: ignore[arg-type]
        assert engine.log.last_seq == before
        assert uids(q) == ["x", "y"]


@vt
async def test_plans_register_by_name_and_refuse_clashes() -> None:
    async with running() as (_engine, q):

        @q.plan
        def shutter(open: bool = True) -> Any:
            yield from ()

        assert "shutter" in q.plans
        with pytest.raises(QueueArgumentError, match="already registered"):
            q.plan(lambda: iter(()), name="shutter")
        with pytest.raises(QueueArgumentError, match="needs a name"):
            q.plan(lambda: iter(()))
        with pytest.raises(QueueArgumentError, match="callable"):
            q.plan(3)  # type: ignore[call-overload]
        q.add("shutter", {"open": False})
        with pytest.raises(QueueArgumentError, match="open as bool"):
            q.add("shutter", {"open": 1})


@vt
async def test_edits_while_running_take_effect_before_the_next_item() -> None:
    async with running() as (engine, q):
        q.add("wait", {"seconds": 10}, uid="a")
        q.add("wait", {"seconds": 1}, uid="b")
        q.add("wait", {"seconds": 1}, uid="c")
        q.start()
        await anyio.sleep(5)  # virtual: item a runs
        assert q.state().running is not None
        assert q.state().running.uid == "a"  # type: ignore[union-attr]
        for verb in (lambda: q.remove("a"), lambda: q.move("a", position=2),
                     lambda: q.edit("a", kwargs={}), lambda: q.skip("a")):  # fmt: skip
            with pytest.raises(QueueStateError, match=r"'a'.*running"):
                verb()
        q.add("wait", {"seconds": 2}, after="a", uid="d")
        q.move("c", before="b")
        q.remove("b")
        q.edit("c", kwargs={"seconds": 3})
        assert await q.wait() == "finished"
        assert started_uids(engine) == ["a", "d", "c"]
        started = {e.subject: e.payload for e in engine.log.recent(kinds="queue.item_started")}
        assert started["c"]["kwargs"] == {"seconds": 3}
        assert [i.status for i in q.items()] == [ItemStatus.SUCCEEDED] * 3


@vt
async def test_skipped_items_are_passed_over_and_run_once_unskipped() -> None:
    async with running() as (engine, q):
        for uid in "abc":
            q.add("wait", uid=uid)
        q.skip("b")
        q.start()
        assert await q.wait() == "finished"
        assert started_uids(engine) == ["a", "c"]
        assert q.state().items_left == 0
        q.unskip("b")
        assert q.state().items_left == 1
        q.start()
        await q.wait()
        assert started_uids(engine) == ["a", "c", "b"]


@vt
async def test_failure_stops_the_queue_unless_failures_are_ignored() -> None:
    async with running() as (engine, q):
        q.add("wait", uid="a")
        q.add("fail", {"message": "pump jammed"}, uid="f")
        q.add("wait", uid="b")
        q.start()
        assert await q.wait() == "item 'f' failed"
        failed = q.item("f")
        assert failed.status == ItemStatus.FAILED
        assert failed.outcome is not None
        assert "pump jammed" in failed.outcome.reason
        assert failed.outcome.exit_status == "fail"
        assert q.item("b").status == ItemStatus.PENDING
        q.set_mode(ignore_failures=True)
        q.requeue("f")
        q.start()
        assert await q.wait() == "finished"
        assert started_uids(engine) == ["a", "f", "f", "b"]


@vt
async def test_a_plan_that_cannot_be_built_fails_its_item() -> None:
    async with running() as (_engine, q):
        q.add("count", {"num": 0}, uid="bad")  # count() itself refuses num=0
        q.start()
        assert await q.wait() == "item 'bad' failed"
        outcome = q.item("bad").outcome
        assert outcome is not None
        assert "could not be built" in outcome.reason
        assert "num must be an int >= 1" in outcome.reason


@vt
async def test_loop_mode_starts_over_until_switched_off(virtual_clock: Any) -> None:
    async with running() as (engine, q):
        q.set_mode(loop=True)
        q.add("wait", {"seconds": 1}, uid="a")
        q.add("wait", {"seconds": 1}, uid="b")
        q.start()
        await anyio.sleep(5.5)  # virtual: a b | a b | a . (rounds 0, 1, 2)
        q.set_mode(loop=False)
        assert await q.wait() == "finished"
        assert started_uids(engine) == ["a", "b"] * 3
        rounds = [e.payload["round"] for e in engine.log.recent(kinds="queue.looped")]
        assert rounds == [1, 2]
        assert q.queues()[0].round == 2


@vt
async def test_a_loop_of_only_skipped_items_does_not_spin() -> None:
    async with running() as (engine, q):
        q.set_mode(loop=True)
        q.add("wait", uid="a", skip=True)
        q.start()
        assert await q.wait() == "finished"
        assert started_uids(engine) == []


@vt
async def test_several_queues_run_one_after_another() -> None:
    async with running() as (engine, q):
        q.add_queue("evening")
        q.add_queue("morning", position=0)
        assert [i.name for i in q.queues()] == ["morning", "main", "evening"]
        q.add("wait", {"seconds": 1}, queue="evening", uid="e1")
        q.add("wait", {"seconds": 1}, queue="main", uid="m1")
        q.add("wait", {"seconds": 1}, queue="morning", uid="a1")
        q.add("wait", {"seconds": 5}, queue="morning", uid="a2")
        q.start()
        await anyio.sleep(2.5)  # virtual: a2 runs
        q.add("wait", queue="main", position=0, uid="m0")
        q.move("e1", queue="main", position=0)
        assert await q.wait() == "finished"
        assert started_uids(engine) == ["a1", "a2", "e1", "m0", "m1"]
        assert q.item("e1").queue == "main"
        q.add("wait", queue="evening", uid="e2")
        info = q.remove_queue("evening")
        assert info.items == ("e2",)
        with pytest.raises(ItemNotFoundError):
            q.item("e2")


@vt
async def test_items_left_counts_pending_unskipped() -> None:
    async with running() as (_engine, q):
        q.add("wait", uid="a")
        q.add("wait", uid="b", skip=True)
        q.add("wait", uid="c")
        state = q.state()
        assert state.items_left == 2
        assert [i.uid for i in state.pending] == ["a", "c"]
        assert state.status == "idle"
