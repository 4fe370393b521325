"""ETA and dry run with overlapping runs: when an item's signal comes (its offset from the
item's start) is learned from the Log, and the next item is placed beside it at signal +
``overlap_delay`` when resources allow; serial when nothing is known. Exact figures on
virtual time, asyncio and trio."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st
from queue_support import running

from timecontrol.plans import Msg
from timecontrol.queue import Queue, signal

vt = pytest.mark.timecontrol


def extract_plan(seconds: float = 10.0, signal_at: float = 4.0) -> Generator[Any, Any, None]:
    """Sleeps `seconds` in all and gives the signal ``equilibrated`` at `signal_at`."""
    yield Msg("checkpoint")
    yield Msg("sleep", None, signal_at)
    yield from signal("equilibrated")
    yield Msg("sleep", None, seconds - signal_at)


async def _learn(q: Queue) -> None:
    """Run extract (10 s, signal at 4 s), wait 10 s and wait 1 s once, one after another."""
    q.plan(extract_plan, name="extract")
    q.add("extract", {"seconds": 10, "signal_at": 4})
    q.add("wait", {"seconds": 10})
    q.add("wait", {"seconds": 1})
    q.start()
    assert await q.wait() == "finished"
    q.clear(finished_only=True)


def _pair(q: Queue, **first: Any) -> None:
    q.add("extract", {"seconds": 10, "signal_at": 4}, uid="a", overlap="equilibrated",
          overlap_delay=2, **first)  # fmt: skip
    q.add("wait", {"seconds": 10}, uid="b", resources=["detector"])
    q.add("wait", {"seconds": 1}, uid="c")


@vt
async def test_the_eta_counts_an_overlap_learned_from_the_log(virtual_clock: Any) -> None:
    async with running() as (engine, q):
        await _learn(q)
        (learned,) = engine.log.recent(kinds="queue.signal")
        assert (learned.payload["offset"], learned.payload["plan"]) == (4.0, "extract")
        _pair(q)
        # a 0-10 s, b beside it 6-16 s (signal at 4 s + 2 s), c 16-17 s: 17 s, not 21.
        eta = q.eta()
        assert (eta.seconds, eta.unknown, eta.items) == (17.0, 0, 3)
        assert eta.ends_at == virtual_clock.time() + 17.0
        t0 = virtual_clock.monotonic()
        q.start()
        expected = {3.0: 14.0, 5.0: 12.0, 7.0: 10.0, 12.0: 5.0, 16.5: 0.5}
        for at, seconds in expected.items():
            await anyio.sleep(at - (virtual_clock.monotonic() - t0))  # virtual
            assert q.eta().seconds == seconds, at
        assert await q.wait() == "finished"
        assert virtual_clock.monotonic() - t0 == 17.0  # as forecast


@vt
async def test_serial_when_the_signal_is_unknown_or_a_resource_is_held() -> None:
    async with running() as (_engine, q):
        await _learn(q)
        _pair(q, resources=["detector"])  # b needs the detector a holds: no overlap
        assert q.eta().seconds == 21.0  # 10 + 10 + 1
        q.clear()
        q.add("wait", {"seconds": 10}, uid="a", overlap="equilibrated")  # never signalled
        q.add("wait", {"seconds": 10}, uid="b")
        assert q.eta().seconds == 20.0
        q.add_queue("later")
        q.clear()
        _pair(q)
        q.remove("c")
        assert q.eta().seconds == 16.0  # b beside a
        q.move("b", queue="later")  # overlaps stay within a queue
        assert q.eta().seconds == 20.0


@vt
async def test_the_dry_run_places_an_overlap(virtual_clock: Any) -> None:
    async with running() as (engine, q):
        await _learn(q)
        q.configure(delay_default=3)
        _pair(q)
        now = virtual_clock.time()
        before = engine.log.last_seq
        report = await q.dry_run()
        assert engine.log.last_seq == before
        # b beside a at 6 s; c after both ended and b's delay: 16 + 3.
        assert [(i.uid, i.start - now, i.end - now, i.overlaps) for i in report.items] == [
            ("a", 0.0, 10.0, None),
            ("b", 6.0, 16.0, "a"),
            ("c", 19.0, 20.0, None),
        ]
        assert (report.total_s, report.unknown) == (20.0, 0)
        q.schedule_stop(now + 18)  # c would end at 20 s: it is not placed
        report = await q.dry_run()
        assert [i.uid for i in report.items] == ["a", "b"]
        assert report.stopped_by == "the scheduled stop, before item 'c'"


@vt
async def test_the_simulated_dry_run_times_the_signals(virtual_clock: Any) -> None:
    async with running() as (_engine, q):
        q.plan(extract_plan, name="extract")
        _pair(q)  # nothing learned yet
        report = await q.dry_run()
        assert [(i.uid, i.end - i.start) for i in report.items] == [
            ("a", 0.0), ("b", 0.0), ("c", 0.0),
        ]  # fmt: skip
        assert report.unknown == 3
        now = virtual_clock.time()
        report = await q.dry_run(simulate=True)
        assert [(i.uid, i.start - now, i.end - now, i.overlaps, i.estimated)
                for i in report.items] == [
            ("a", 0.0, 10.0, None, False),
            ("b", 6.0, 16.0, "a", False),
            ("c", 16.0, 17.0, None, False),
        ]  # fmt: skip
        assert (report.total_s, report.unknown, report.problems) == (17.0, 0, ())


@vt
async def test_signal_offsets_are_read_back_from_the_store(tmp_path: Any) -> None:
    store = tmp_path / "lab.sqlite"
    async with running(store) as (_engine, q):
        await _learn(q)
    async with running(store) as (_engine, q):
        q.plan(extract_plan, name="extract")
        _pair(q)
        assert q.eta().seconds == 17.0


def test_two_items_at_most_run_at_once() -> None:
    from timecontrol.queue._timeline import Slot, place

    def slot(uid: str, duration: float, overlap_after: float | None, delay: float) -> Slot:
        return Slot(uid, duration, overlap_after, frozenset(), "main", delay)

    # a lets b start at 2 s; b would let c start 1 s after it, but b runs beside a: c waits
    # for both, then b's delay (5 s); c lets d start at 3 s; d outlasts c.
    placed, end = place(
        [slot("a", 10, 2, 100), slot("b", 4, 1, 5), slot("c", 6, 3, 0), slot("d", 8, None, 0)],
        ready=1.0,
    )
    assert [(p.uid, p.start, p.end, p.overlaps) for p in placed] == [
        ("a", 1.0, 11.0, None),
        ("b", 3.0, 7.0, "a"),
        ("c", 16.0, 22.0, None),
        ("d", 19.0, 27.0, "c"),
    ]
    assert end == 27.0
    # An overlap that would start after its item's end does not happen.
    placed, end = place([slot("a", 3, 3, 1), slot("b", 2, None, 0)], ready=0.0)
    assert [(p.uid, p.start, p.overlaps) for p in placed] == [("a", 0.0, None), ("b", 4.0, None)]
    assert end == 6.0


_slots = st.lists(
    st.builds(
        lambda i, d, o, r, q, dl: (i, d, o, r, q, dl),
        st.integers(0, 10**6),
        st.one_of(st.none(), st.integers(0, 50).map(float)),
        st.one_of(st.none(), st.integers(0, 60).map(float)),
        st.frozensets(st.sampled_from(["pump", "detector"]), max_size=2),
        st.sampled_from(["main", "later"]),
        st.integers(0, 5).map(float),
    ),
    max_size=12,
)


@given(_slots, st.integers(0, 10).map(float))
def test_the_timeline_keeps_the_executors_rules(raw: list[Any], ready: float) -> None:
    from timecontrol.queue._timeline import Slot, place

    slots = [Slot(f"i{n}", d, o, r, q, dl) for n, (_, d, o, r, q, dl) in enumerate(raw)]
    placed, end = place(slots, ready=ready)
    assert [p.uid for p in placed] == [s.uid for s in slots]  # every item, in order
    by_uid = {s.uid: s for s in slots}
    for k in range(1, len(placed)):
        before, item = placed[k - 1], placed[k]
        first = by_uid[before.uid]
        if item.overlaps is None:  # once everything before it has ended
            assert item.start >= max(p.end for p in placed[:k])
        else:  # beside the item before it: same queue, no shared resource, before its end
            assert item.overlaps == before.uid
            assert before.overlaps is None  # two at most
            assert by_uid[item.uid].queue == first.queue
            assert not by_uid[item.uid].resources & first.resources
            assert before.start <= item.start < before.end
    # Never more than two at once.
    for p in placed:
        assert sum(1 for o in placed if o.start <= p.start < o.end) <= 2
    assert end == max([ready] + [p.end for p in placed])
    if all(s.overlap_after is None for s in slots):  # nothing known: serial
        t = ready
        for p, s in zip(placed, slots, strict=True):
            assert (p.start, p.end) == (t, t + (s.duration or 0.0))
            t = p.end + s.delay_after
