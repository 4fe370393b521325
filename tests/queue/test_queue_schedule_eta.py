"""Step 6: scheduled start and (ETA-aware) stop, ETA and statistics learned from the Log,
and the dry run on virtual time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import anyio
import pytest
from queue_support import running, started_uids

from timecontrol import TimeControlError

vt = pytest.mark.timecontrol


async def _learn(q: Any, *runs: tuple[str, dict[str, Any]]) -> None:
    """Run these items once, so that the Log knows how long they take."""
    for plan, kwargs in runs:
        q.add(plan, kwargs)
    q.start()
    assert await q.wait() in ("finished", f"item {q.items()[-1].uid!r} failed")
    q.clear(finished_only=True)


@vt
async def test_a_scheduled_start_waits_for_its_wall_time(virtual_clock: Any) -> None:
    async with running() as (engine, q):
        q.add("wait", uid="a")
        at = virtual_clock.now() + timedelta(hours=2)
        q.start(at=at)
        await anyio.sleep(3600)  # virtual time
        state = q.state()
        assert (state.status, state.activity) == ("waiting", "waiting")
        assert started_uids(engine) == []
        await anyio.sleep(3601)  # virtual time
        assert started_uids(engine) == ["a"]
        (started,) = engine.log.recent(kinds="queue.item_started")
        assert started.at == at
        assert await q.wait() == "finished"
        before = engine.log.last_seq
        with pytest.raises(TimeControlError, match="'tomorrow'"):
            q.start(at="tomorrow")  # type: ignore[arg-type]
        assert engine.log.last_seq == before
        assert not q.executing


@vt
async def test_cancel_ends_the_wait_for_a_scheduled_start(virtual_clock: Any) -> None:
    async with running() as (engine, q):
        q.add("wait", uid="a")
        q.start(at=virtual_clock.time() + 600)
        await anyio.sleep(10)  # virtual time
        q.cancel()
        assert await q.wait() == "cancelled"
        assert started_uids(engine) == []


@vt
async def test_a_scheduled_stop_is_eta_aware(virtual_clock: Any) -> None:
    async with running() as (engine, q):
        await _learn(q, ("wait", {"seconds": 30}), ("wait", {"seconds": 100}))
        t0 = virtual_clock.time()
        q.add("wait", {"seconds": 30}, uid="a")  # ends at +30
        q.add("wait", {"seconds": 30}, uid="b")  # ends at +60
        q.add("wait", {"seconds": 100}, uid="long")  # would end at +160: after the stop
        q.add("wait", {"seconds": 30}, uid="c")
        q.schedule_stop(t0 + 120)
        q.start()
        reason = await q.wait()
        assert reason == "scheduled stop: item 'long' would end 40 s after it"
        assert started_uids(engine)[-2:] == ["a", "b"]
        # Done with: the next start is not stopped by it again.
        q.start()
        assert await q.wait() == "finished"


@vt
async def test_a_scheduled_stop_without_eta_lets_the_last_item_overrun(virtual_clock: Any) -> None:
    async with running() as (engine, q):
        await _learn(q, ("wait", {"seconds": 100}))
        t0 = virtual_clock.time()
        q.add("wait", {"seconds": 100}, uid="a")
        q.add("wait", {"seconds": 100}, uid="b")
        q.schedule_stop(t0 + 50, eta_aware=False)
        q.start()
        assert await q.wait() == "scheduled stop"
        assert started_uids(engine)[-1] == "a"  # started before the stop, not interrupted
        assert virtual_clock.time() - t0 == pytest.approx(100)


@vt
async def test_eta_and_statistics_are_learned_from_the_log(virtual_clock: Any) -> None:
    async with running() as (_engine, q):
        assert q.eta().unknown == 0
        q.add("wait", {"seconds": 10}, uid="new")
        eta = q.eta()
        assert (eta.seconds, eta.unknown, eta.items, eta.ends_at) == (0.0, 1, 1, None)
        q.remove("new")
        await _learn(q, ("wait", {"seconds": 10}), ("wait", {"seconds": 20}),
                     ("count", {"num": 3}), ("fail", {}))  # fmt: skip
        q.configure(delay_default=5)
        q.add("wait", {"seconds": 10}, uid="a")  # 10, known exactly
        q.add("wait", {"seconds": 99}, uid="b")  # median of the plan: 15
        q.add("count", {"num": 3}, uid="c")  # 3
        eta = q.eta()
        assert (eta.seconds, eta.unknown, eta.items) == (10 + 5 + 15 + 5 + 3, 0, 3)
        assert eta.ends_at == pytest.approx(virtual_clock.time() + 38)
        q.start()
        await anyio.sleep(4)  # 4 s into a; virtual time
        assert q.eta().seconds == pytest.approx(34)
        await q.wait()
        stats = await q.stats()
        assert stats["wait"].runs == 4
        assert stats["wait"].succeeded == 4
        assert stats["wait"].median_s == pytest.approx(15)
        assert stats["fail"].failed == 1
        assert stats["fail"].median_s is None
        assert stats["count"].min_s == pytest.approx(3)


@vt
async def test_a_dry_run_places_every_item_on_a_timeline(virtual_clock: Any) -> None:
    async with running() as (engine, q):
        await _learn(q, ("wait", {"seconds": 60}))
        q.configure(delay_before_first=10, delay_default=5)
        now = virtual_clock.time()
        q.add("wait", {"seconds": 60}, uid="a")
        q.add("count", {"num": 2}, uid="b")  # never ran: unknown
        q.add("wait", {"seconds": 60}, uid="c")
        before = engine.log.last_seq
        report = await q.dry_run()
        assert engine.log.last_seq == before  # nothing recorded
        assert [(i.uid, i.start - now, i.end - now, i.estimated) for i in report.items] == [
            ("a", 10, 70, True),
            ("b", 75, 75, False),
            ("c", 80, 140, True),
        ]
        assert (report.total_s, report.unknown, report.problems) == (140, 1, ())
        assert virtual_clock.time() == now  # virtual time: no time passed


@vt
async def test_a_dry_run_simulates_what_the_log_cannot_tell(virtual_clock: Any) -> None:
    async with running() as (_engine, q):
        q.add("count", {"num": 5}, uid="b")  # 5 readings, 1 s exposure: 5 s simulated
        q.add("fail", uid="f")
        report = await q.dry_run(simulate=True)
        (b, f) = report.items
        assert (b.uid, b.end - b.start) == ("b", pytest.approx(5))
        assert report.unknown == 0
        assert report.problems == ("item 'f': it failed in simulation: RuntimeError: boom",)
        assert f.problem is not None


@vt
async def test_a_dry_run_reports_items_that_no_longer_fit_and_a_scheduled_stop(
    virtual_clock: Any,
) -> None:
    async with running() as (_engine, q):
        await _learn(q, ("wait", {"seconds": 60}))
        q.add("wait", {"seconds": 60}, uid="a")
        q.add("wait", {"seconds": 60}, uid="b")
        q._model.items["a"].kwargs = {"seconds": 60, "colour": "red"}  # a store edited by hand
        q.schedule_stop(virtual_clock.time() + 90)
        report = await q.dry_run()
        assert [i.uid for i in report.items] == ["a"]
        assert report.stopped_by == "the scheduled stop, before item 'b'"
        assert "item 'a'" in report.problems[0]
        assert "colour" in report.problems[0]
