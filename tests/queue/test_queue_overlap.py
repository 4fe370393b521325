"""Overlapping runs: the next item starts beside the current one once it has given a named
signal (plus a delay), on the queue's second run engine, unless it needs a resource the
current one holds. Virtual time, asyncio and trio, exact timestamps."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import anyio
import pytest
from queue_support import running, settle, started_uids

from timecontrol.plans import Msg, RunState
from timecontrol.queue import (
    SIDE_ENGINE,
    ItemStatus,
    Queue,
    QueueArgumentError,
    QueueStateError,
    signal,
)
from timecontrol.queue._model import QueueModel

vt = pytest.mark.timecontrol


def extract_plan(seconds: float = 10.0, signal_at: float = 4.0) -> Generator[Any, Any, None]:
    """Sleeps `seconds` in all and gives the signal ``equilibrated`` at `signal_at`."""
    yield Msg("checkpoint")
    yield Msg("sleep", None, signal_at)
    yield from signal("equilibrated")
    yield Msg("checkpoint")
    yield Msg("sleep", None, seconds - signal_at)


def _register(q: Queue) -> None:
    q.plan(extract_plan, name="extract")


def _times(engine: Any, kind: str, t0: float) -> dict[str, float]:
    return {e.subject: e.mono - t0 for e in engine.log.recent(kinds=kind)}


@vt
async def test_an_overlap_gated_by_a_signal_and_a_resource(virtual_clock: Any) -> None:
    async with running() as (engine, q):
        _register(q)
        # a gives its signal at 4 s; b may start 2 s later, beside it (it needs the
        # detector, a holds the pump).
        q.add("extract", {"seconds": 10, "signal_at": 4}, uid="a", overlap="equilibrated",
              overlap_delay=2, resources=("pump",))  # fmt: skip
        q.add("wait", {"seconds": 10}, uid="b", resources="detector")
        q.add("wait", {"seconds": 1}, uid="c")  # starts once a and b have both ended
        # d also signals, but e needs the pump d holds: no overlap, e waits for d's end.
        q.add("extract", {"seconds": 5, "signal_at": 1}, uid="d", overlap="equilibrated",
              resources=["pump", "detector"])  # fmt: skip
        q.add("wait", {"seconds": 2}, uid="e", resources=("pump",))
        t0 = virtual_clock.monotonic()
        q.start()
        await anyio.sleep(7)  # virtual: a runs, b runs beside it
        state = q.state()
        assert state.running is not None
        assert state.running.uid == "a"
        assert state.overlapping is not None
        assert state.overlapping.uid == "b"
        assert q.item("b").status == ItemStatus.RUNNING
        assert engine.run_engine.state == RunState.RUNNING
        await anyio.sleep(5)  # virtual: 12 s, a has ended, b goes on
        state = q.state()
        assert state.running is None
        assert state.overlapping is not None
        assert state.overlapping.uid == "b"
        assert state.activity == "waiting for the overlapping item"
        assert state.status == "running"
        assert await q.wait() == "finished"
        assert _times(engine, "queue.item_started", t0) == {
            "a": 0.0, "b": 6.0, "c": 16.0, "d": 17.0, "e": 22.0,
        }  # fmt: skip
        assert _times(engine, "queue.item_finished", t0) == {
            "a": 10.0, "b": 16.0, "c": 17.0, "d": 22.0, "e": 24.0,
        }  # fmt: skip
        signals = engine.log.recent(kinds="queue.signal")
        assert [(e.subject, e.payload["name"], e.mono - t0) for e in signals] == [
            ("a", "equilibrated", 4.0),
            ("d", "equilibrated", 18.0),
        ]
        (b_start,) = [e for e in engine.log.recent(kinds="queue.item_started") if e.subject == "b"]
        assert (b_start.payload["overlaps"], b_start.payload["run_engine"]) == ("a", SIDE_ENGINE)
        (refused,) = engine.log.recent(kinds="queue.overlap")
        assert (refused.subject, refused.payload) == (
            "d",
            {"next": "e", "started": False, "resources": ["pump"]},
        )
        # The overlap in the Log's order: b starts before a ends.
        order = [
            (e.kind.removeprefix("queue.item_"), e.subject)
            for e in engine.log.recent(kinds=["queue.item_started", "queue.item_finished"])
        ]
        assert order[:4] == [("started", "a"), ("started", "b"), ("finished", "a"),
                             ("finished", "b")]  # fmt: skip
        delays = engine.log.recent(kinds=["queue.delay_started", "queue.delay_ended"])
        assert [(e.kind, e.subject, e.mono - t0) for e in delays] == [
            ("queue.delay_started", "a", 4.0),
            ("queue.delay_ended", "a", 6.0),
        ]
        assert all(q.item(u).status == ItemStatus.SUCCEEDED for u in "abcde")


@vt
async def test_no_overlap_if_the_item_ends_before_its_signal_or_its_delay(
    virtual_clock: Any,
) -> None:
    async with running() as (engine, q):
        _register(q)
        q.add("wait", {"seconds": 3}, uid="a", overlap="equilibrated")  # never signals
        q.add("extract", {"seconds": 3, "signal_at": 1}, uid="b", overlap="equilibrated",
              overlap_delay=6)  # fmt: skip
        q.add("wait", {"seconds": 1}, uid="c")
        t0 = virtual_clock.monotonic()
        q.start()
        assert await q.wait() == "finished"
        assert _times(engine, "queue.item_started", t0) == {"a": 0.0, "b": 3.0, "c": 6.0}
        started = engine.log.recent(kinds="queue.item_started")
        assert not any("overlaps" in e.payload for e in started)
        (ended,) = engine.log.recent(kinds="queue.delay_ended")
        assert (ended.subject, ended.payload["how"], ended.mono - t0) == (
            "b",
            "the item ended",
            6.0,
        )


@vt
async def test_panic_during_an_overlap_stops_both() -> None:
    async with running() as (engine, q):
        _register(q)
        q.add("extract", {"seconds": 10, "signal_at": 1}, uid="a", overlap="equilibrated")
        q.add("wait", {"seconds": 10}, uid="b")
        q.add("wait", {"seconds": 1}, uid="c")
        q.start()
        await anyio.sleep(3)  # virtual: both run
        assert q.state().overlapping is not None
        side = q._side_re
        assert side is not None
        assert side.state == RunState.RUNNING
        engine.panic()
        assert engine.run_engine.state == side.state == RunState.PANICKED  # both, at once
        assert await q.wait() == "panic"
        assert q.item("a").status == q.item("b").status == ItemStatus.PENDING  # re-run
        finished = {e.subject: e.payload for e in engine.log.recent(kinds="queue.item_finished")}
        assert {u: (p["status"], p["reason"]) for u, p in finished.items()} == {
            "a": ("interrupted", "panic"),
            "b": ("interrupted", "panic"),
        }
        assert started_uids(engine) == ["a", "b"]
        with pytest.raises(QueueStateError, match="panicked"):
            q.start()
        engine.all_is_well()
        assert engine.run_engine.state == side.state == RunState.IDLE


@vt
async def test_a_panic_of_either_run_engine_reaches_the_other() -> None:
    async with running() as (engine, q):
        _register(q)
        q.add("extract", {"seconds": 10, "signal_at": 1}, uid="a", overlap="equilibrated")
        q.add("wait", {"seconds": 10}, uid="b")
        q.start()
        await anyio.sleep(3)  # virtual: both run
        side = q._side_re
        assert side is not None
        side.panic()  # not through the engine: the queue sees it in the Log
        await settle()
        assert engine.run_engine.state == RunState.PANICKED
        assert await q.wait() == "panic"
        engine.run_engine.all_is_well()  # the engine's own run engine only
        await settle()
        assert side.state == RunState.IDLE


@vt
async def test_pause_resume_and_abort_reach_both_items(virtual_clock: Any) -> None:
    async with running() as (engine, q):
        _register(q)
        q.add("extract", {"seconds": 10, "signal_at": 1}, uid="a", overlap="equilibrated")
        q.add("wait", {"seconds": 5, "steps": 2}, uid="b")  # 2 steps of 5 s
        q.add("wait", {"seconds": 1}, uid="c")
        t0 = virtual_clock.monotonic()
        q.start()
        await anyio.sleep(3)  # virtual: b is in its first step
        q.pause()
        await settle()
        side = q._side_re
        assert side is not None
        assert engine.run_engine.state == side.state == RunState.PAUSED
        assert q.state().status == "paused"
        await anyio.sleep(100)  # virtual: nothing moves
        assert started_uids(engine) == ["a", "b"]
        await q.resume()
        await settle()
        assert engine.run_engine.state == side.state == RunState.RUNNING
        assert await q.wait() == "finished"
        # a: 3 s, 100 s paused, then from its last checkpoint (at 1 s): 9 s more. b (from
        # 1 s): 2 s, paused, then its first step again (10 s).
        assert _times(engine, "queue.item_finished", t0) == {"a": 112.0, "b": 113.0, "c": 114.0}
        q.add("extract", {"seconds": 10, "signal_at": 1}, uid="d", overlap="equilibrated")
        q.add("wait", {"seconds": 10}, uid="e")
        q.add("wait", {"seconds": 1}, uid="f")
        q.start()
        await anyio.sleep(3)  # virtual: d and e run
        await q.abort("leak")
        assert await q.wait() == "aborted: leak"
        assert q.item("d").status == q.item("e").status == ItemStatus.ABORTED
        assert q.item("f").status == ItemStatus.PENDING


@vt
async def test_cancel_waits_for_both_and_truncate_ends_the_overlapping_one(
    virtual_clock: Any,
) -> None:
    async with running() as (engine, q):
        _register(q)
        q.add("extract", {"seconds": 4, "signal_at": 1}, uid="a", overlap="equilibrated")
        q.add("wait", {"seconds": 10}, uid="b")
        q.add("wait", {"seconds": 1}, uid="c")
        t0 = virtual_clock.monotonic()
        q.start()
        await anyio.sleep(2)  # virtual
        q.cancel("enough")
        await anyio.sleep(3)  # virtual: a has ended, b goes on
        assert q.executing
        assert q.state().status == "stopping"
        await q.truncate("b is done")  # no item in front: the overlapping one ends
        assert await q.wait() == "cancelled: enough"
        assert q.item("b").status == ItemStatus.TRUNCATED
        assert _times(engine, "queue.item_finished", t0) == {"a": 4.0, "b": 5.0}
        assert q.item("c").status == ItemStatus.PENDING


@vt
async def test_signals_from_python_and_bad_overlap_input() -> None:
    async with running() as (engine, q):
        _register(q)
        before = engine.log.last_seq
        for kwargs, match in (
            ({"overlap": ""}, "overlap must be None or the name of a signal"),
            ({"overlap": 3}, "overlap must be None"),
            ({"overlap_delay": -1}, "overlap_delay"),
            ({"resources": [1]}, "resources must be a str or a list of non-empty str"),
            ({"resources": ""}, "resources must be"),
        ):
            with pytest.raises(QueueArgumentError, match=match):
                q.add("wait", {"seconds": 1}, **kwargs)
        with pytest.raises(QueueStateError, match="needs a running item"):
            q.signal("equilibrated")
        with pytest.raises(QueueArgumentError, match="non-empty str"):
            q.signal("")
        with pytest.raises(QueueArgumentError, match="non-empty str"):
            next(signal(""))
        assert engine.log.last_seq == before
        q.add("wait", {"seconds": 5}, uid="a")
        q.add("wait", {"seconds": 1}, uid="b")
        edited = q.edit("a", overlap="ready", overlap_delay=1, resources=["pump", "pump"])
        assert (edited.overlap, edited.overlap_delay, edited.resources) == ("ready", 1.0, ("pump",))
        q.start()
        await anyio.sleep(2)  # virtual
        q.signal("ready")  # from code a plan calls, or the operator
        q.signal("ready")  # once per item run
        await anyio.sleep(1.5)  # virtual: 1 s later b started beside a
        assert q.state().overlapping is not None
        assert await q.wait() == "finished"
        assert [
            (e.subject, e.payload["name"]) for e in engine.log.recent(kinds="queue.signal")
        ] == [("a", "ready")]


def test_a_restart_settles_both_items_in_flight() -> None:
    from timecontrol._events import Event

    model = QueueModel()
    for seq, (kind, subject, payload) in enumerate(
        [
            ("queue.item_added", "a", {"item": {"plan": "wait"}, "queue": "main"}),
            ("queue.item_added", "b", {"item": {"plan": "wait"}, "queue": "main"}),
            ("queue.item_started", "a", {}),
            ("queue.item_started", "b", {"overlaps": "a"}),
        ],
        start=1,
    ):
        model.apply(Event(seq, float(seq), float(seq), kind, subject, payload))
    assert model.in_flight == ["a", "b"]
    assert model.running == "a"
    model.apply(Event(5, 5.0, 5.0, "queue.item_finished", "a", {"status": "succeeded"}))
    assert model.in_flight == ["b"]


@vt
async def test_an_engine_stop_during_an_overlap_interrupts_both(tmp_path: Any) -> None:
    store = tmp_path / "lab.sqlite"
    async with running(store) as (engine, q):
        _register(q)
        q.add("extract", {"seconds": 10, "signal_at": 1}, uid="a", overlap="equilibrated")
        q.add("wait", {"seconds": 10}, uid="b", on_interrupt="skip")
        q.start()
        await anyio.sleep(3)  # virtual: both run; then the engine stops
    async with running(store) as (engine, q):
        _register(q)
        assert q.item("a").status == ItemStatus.PENDING  # re-runs
        assert q.item("b").status == ItemStatus.INTERRUPTED  # never twice
        assert [o.reason for o in (q.item("a").outcome, q.item("b").outcome) if o] == [
            "cancelled",
            "cancelled",
        ]
        q.start()
        assert await q.wait() == "finished"
        assert started_uids(engine) == ["a"]
