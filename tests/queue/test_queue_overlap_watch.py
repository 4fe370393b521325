"""Conditionals and progress for every running item: the overlapping item's run documents
(on the queue's second run engine) are its own, with their own counters, and an action
applies to the item whose documents tripped it. Virtual time, asyncio and trio."""

from __future__ import annotations

import itertools
from collections.abc import Generator
from typing import Any

import anyio
import pytest
from queue_support import running, started_uids

from timecontrol.plans import Msg, SimDetector, count
from timecontrol.queue import SIDE_ENGINE, ItemStatus, Queue, signal

vt = pytest.mark.timecontrol


def _detector(name: str, first: float) -> SimDetector:
    """A detector reading first, first + 1, ... (1 s exposure)."""
    values = itertools.count(first)
    return SimDetector(name, lambda: float(next(values)), exposure=1.0)


def front_plan(det: str = "a", num: int = 10, signal_at: float = 2.0) -> Generator[Any, Any, Any]:
    """Sleeps `signal_at`, gives the signal ``ready``, then `num` readings of `det` (1 s)."""
    yield Msg("checkpoint")
    yield Msg("sleep", None, signal_at)
    yield from signal("ready")
    return (yield from count([_detector(det, 1.0)], num=num))


def side_plan(det: str = "b", num: int = 10, first: float = 100.0) -> Any:
    """`num` readings of `det` (1 s each), from `first` up."""
    return count([_detector(det, first)], num=num)


def _register(q: Queue) -> None:
    q.plan(front_plan, name="front")
    q.plan(side_plan, name="side")


def _times(engine: Any, kind: str, t0: float) -> dict[str, float]:
    return {e.subject: e.mono - t0 for e in engine.log.recent(kinds=kind)}


def _fired(engine: Any, t0: float) -> list[tuple[str, str, int, str, float]]:
    return [
        (e.subject, e.payload["action"], e.payload["seq_num"], e.payload["run_engine"], e.mono - t0)
        for e in engine.log.recent(kinds="queue.conditional_fired")
    ]


@vt
async def test_a_conditional_truncates_the_overlapping_item_only(virtual_clock: Any) -> None:
    async with running() as (engine, q):
        _register(q)
        q.add_conditional("b >= 103", "truncate", name="enough b")  # b reads 100, 101, ...
        q.add("front", {"num": 10}, uid="f", overlap="ready")
        q.add("side", {"num": 10}, uid="s")
        q.add("wait", {"seconds": 1}, uid="c")
        t0 = virtual_clock.monotonic()
        q.start()
        await anyio.sleep(4.5)  # virtual: f has 2 readings, s (from 2 s) 2
        state = q.state()
        assert state.running is not None
        assert state.overlapping is not None
        assert (state.running.uid, state.overlapping.uid) == ("f", "s")
        assert state.progress is not None
        assert state.overlapping_progress is not None
        assert (state.progress.events, state.progress.expected, state.progress.elapsed) == (
            2, 10, 4.5,
        )  # fmt: skip
        assert (state.overlapping_progress.events, state.overlapping_progress.expected) == (2, 10)
        assert state.overlapping_progress.elapsed == 2.5
        assert state.overlapping_progress.fraction == 0.2
        assert await q.wait() == "finished"
        assert _fired(engine, t0) == [("s", "truncate", 4, SIDE_ENGINE, 6.0)]
        assert q.item("s").status == ItemStatus.TRUNCATED
        assert q.item("f").status == ItemStatus.SUCCEEDED
        assert _times(engine, "queue.item_started", t0) == {"f": 0.0, "s": 2.0, "c": 12.0}
        assert _times(engine, "queue.item_finished", t0) == {"f": 12.0, "s": 6.0, "c": 13.0}
        assert q.state().overlapping_progress is None


@vt
async def test_each_item_counts_its_own_trips(virtual_clock: Any) -> None:
    async with running() as (engine, q):
        _register(q)
        # Both detectors are named x; each item must reach 3 trips on its own documents.
        q.add_conditional("x > 0", "truncate", ntrips=3, name="three")
        q.add("front", {"det": "x", "num": 10, "signal_at": 0.5}, uid="f", overlap="ready")
        q.add("side", {"det": "x", "num": 10}, uid="s")
        t0 = virtual_clock.monotonic()
        q.start()
        assert await q.wait() == "finished"
        assert sorted(_fired(engine, t0)) == [
            ("f", "truncate", 3, "run_engine", 3.5),
            ("s", "truncate", 3, SIDE_ENGINE, 3.5),
        ]
        assert q.item("f").status == q.item("s").status == ItemStatus.TRUNCATED
        assert _times(engine, "queue.item_finished", t0) == {"f": 3.5, "s": 3.5}


@vt
async def test_repeat_and_abort_apply_to_the_item_that_tripped_them(virtual_clock: Any) -> None:
    async with running() as (engine, q):
        _register(q)
        shared = _detector("b", 100.0)  # one detector for every probe: the copy reads on
        q.plan(lambda num=2: count([shared], num=num), name="probe")
        q.add_conditional("b == 101", "repeat", name="again", plans="probe")
        q.add("front", {"num": 6}, uid="f", overlap="ready")
        q.add("probe", {"num": 2}, uid="s")
        q.add("wait", {"seconds": 1}, uid="c")
        t0 = virtual_clock.monotonic()
        q.start()
        assert await q.wait() == "finished"
        (added,) = [
            e for e in engine.log.recent(kinds="queue.item_added") if "repeats" in e.payload
        ]
        assert added.payload["repeats"] == "s"
        copy = added.subject
        # The copy runs right after the overlapping item (once f and s have both ended).
        assert started_uids(engine) == ["f", "s", copy, "c"]
        assert _times(engine, "queue.item_started", t0) == {"f": 0.0, "s": 2.0, copy: 8.0,
                                                            "c": 10.0}  # fmt: skip
        q.remove_conditional("again")
        q.add_conditional("b == 101", "abort", name="spill", plans="side")
        q.add("front", {"num": 6}, uid="g", overlap="ready")
        q.add("side", {"num": 5}, uid="t")
        q.add("wait", {"seconds": 1}, uid="d")
        t1 = virtual_clock.monotonic()
        q.start()
        assert await q.wait() == "aborted by conditional 'spill'"
        # t is aborted at its second reading; g, in front, runs to its end; d never starts.
        assert q.item("t").status == ItemStatus.ABORTED
        assert q.item("g").status == ItemStatus.SUCCEEDED
        assert q.item("d").status == ItemStatus.PENDING
        finished = _times(engine, "queue.item_finished", t1)
        assert (finished["t"], finished["g"]) == (4.0, 8.0)


@vt
async def test_a_pause_conditional_pauses_the_overlapping_item(virtual_clock: Any) -> None:
    async with running() as (engine, q):
        _register(q)
        q.add_conditional("b == 101", "pause", name="look", plans="side")
        q.add("front", {"num": 4}, uid="f", overlap="ready")
        q.add("side", {"num": 3}, uid="s")
        t0 = virtual_clock.monotonic()
        q.start()
        await anyio.sleep(10)  # virtual: s paused at 4 s, f ended at 6 s
        state = q.state()
        assert (state.status, state.running) == ("paused", None)
        assert state.overlapping is not None
        assert state.overlapping.uid == "s"
        assert q.item("f").status == ItemStatus.SUCCEEDED
        await q.resume()
        assert await q.wait() == "finished"
        assert _fired(engine, t0) == [("s", "pause", 2, SIDE_ENGINE, 4.0)]
        assert q.item("s").status == ItemStatus.SUCCEEDED
