"""Scheduler policies under virtual time: conflict, misfire, coalesce, pause, alarms, history."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import anyio
import pytest
from scheduler_helpers import Every, covered, records_in, virtual

import timecontrol as tc
from timecontrol.scheduler import ExecutionRecord, Job, Scheduler


def setup(run_for: float = 0.0, fail: bool = False) -> tuple[tc.Engine, Scheduler, list[Any]]:
    engine = tc.Engine()
    calls: list[Any] = []

    @engine.action
    async def work(x: int = 0, duration: float = run_for) -> int:
        calls.append((tc.current_clock().time(), x))
        await anyio.sleep(duration)
        if fail:
            raise RuntimeError(f"bad reading {x}")
        return x * 2

    return engine, Scheduler(engine), calls


def exactly_once(records: list[ExecutionRecord], trigger: Every, t0: float, t1: float) -> None:
    expected = trigger.fire_times(t0, t1)
    got = covered(records, trigger)
    assert got == expected, (Counter(got) - Counter(expected), Counter(expected) - Counter(got))


@virtual()
async def test_skip_when_previous_run_overlaps_next_fire_time() -> None:
    engine, sched, _ = setup(run_for=1.5)
    t0 = engine.clock.time()
    trig = Every(1.0, t0)
    sched.add_job("work", trig, id="j")
    log = engine.log
    async with engine:
        await anyio.sleep(10.2)  # real time, not virtual: see the module docstring
    recs = records_in(log, "j")
    statuses = [r.status for r in sorted(recs, key=lambda r: r.scheduled)]
    # 1 runs until 2.5: 2 skipped; 3 runs; ... the run at 9 is cancelled by the stop.
    assert statuses[:4] == ["success", "skipped", "success", "skipped"]
    assert statuses[-2:] == ["cancelled", "skipped"]
    assert all("still going" in (r.reason or "") for r in recs if r.status == "skipped")
    exactly_once(recs, trig, t0, t0 + 10.2)


@virtual()
async def test_queue_is_bounded_and_runs_one_after_another() -> None:
    engine, sched, calls = setup(run_for=2.5)
    t0 = engine.clock.time()
    trig = Every(1.0, t0)
    sched.add_job("work", trig, id="q", conflict="queue", max_queue=1)
    log = engine.log
    async with engine:
        await anyio.sleep(8.2)  # real time, not virtual: see the module docstring
    recs = records_in(log, "q")
    by = Counter(r.status for r in recs)
    assert by["skipped"] >= 2
    assert all("queue full" in (r.reason or "") for r in recs if r.status == "skipped")
    starts = [t for t, _ in calls]
    assert all(b - a >= 2.5 for a, b in itertools.pairwise(starts))  # never overlapping
    exactly_once(recs, trig, t0, t0 + 8.2)


@virtual()
async def test_queued_fire_time_beyond_grace_at_its_real_start_is_missed() -> None:
    engine, sched, _ = setup(run_for=3.0)
    t0 = engine.clock.time()
    trig = Every(1.0, t0, count=2)
    sched.add_job("work", trig, id="q", conflict="queue", misfire_grace=1.0)
    log = engine.log
    async with engine:
        await anyio.sleep(10)  # real time, not virtual: see the module docstring
    recs = sorted(records_in(log, "q"), key=lambda r: r.scheduled)
    assert [r.status for r in recs] == ["success", "missed"]
    assert "misfire_grace" in (recs[1].reason or "")


@virtual()
async def test_concurrent_up_to_max_instances() -> None:
    engine, sched, _ = setup(run_for=2.5)
    t0 = engine.clock.time()
    trig = Every(1.0, t0, count=6)
    sched.add_job("work", trig, id="c", conflict="concurrent", max_instances=2)
    log = engine.log
    async with engine:
        await anyio.sleep(12)  # real time, not virtual: see the module docstring
        assert sched.running() == {}
    recs = sorted(records_in(log, "c"), key=lambda r: r.scheduled)
    assert [r.status for r in recs] == ["success", "success", "skipped"] * 2
    exactly_once(recs, trig, t0, t0 + 12)


@virtual()
@pytest.mark.parametrize(
    ("coalesce", "grace", "expect"),
    [
        # 1 on time, 2..6 settled at 6.5 (one run), 7..11 on time
        ("latest", None, {"coalesced": 4, "success": 7}),
        ("earliest", None, {"coalesced": 4, "success": 7}),
        # 2 and 3 are more than 2.5 s late at 6.5; 4 is exactly 2.5 s late: within grace
        ("latest", 2.5, {"missed": 2, "coalesced": 2, "success": 7}),
        # all: each goes through the conflict policy (skip): the first runs, 4 are skipped
        ("all", None, {"skipped": 4, "success": 7}),
    ],
)
async def test_scheduler_pause_then_misfire_and_coalesce(
    coalesce: str, grace: float | None, expect: dict[str, int]
) -> None:
    engine, sched, calls = setup(run_for=0.1)
    t0 = engine.clock.time()
    trig = Every(1.0, t0)
    sched.add_job("work", trig, id="p", coalesce=coalesce, misfire_grace=grace)
    log = engine.log
    async with engine:
        await anyio.sleep(1.5)  # fire time 1 runs; not virtual
        sched.pause()
        await anyio.sleep(5.0)  # fire times 2..6 fall due while paused (now 6.5); not virtual
        sched.resume()
        await anyio.sleep(5.0)  # 7..11 run on time; not virtual
    recs = records_in(log, "p")
    got = Counter()
    for r in recs:
        got[r.status] += r.count
    assert dict(got) == expect
    exactly_once(recs, trig, t0, t0 + 11.5)
    late_run = [t - t0 for t, _ in calls if 6 < t - t0 < 7]
    assert late_run == [6.5]
    if coalesce != "all":
        ran = next(
            r
            for r in recs
            if r.status == "success" and r.started and r.started.timestamp() - t0 == 6.5
        )
        assert ran.scheduled.timestamp() - t0 == (6.0 if coalesce == "latest" else 2.0)


@virtual()
async def test_engine_hold_is_a_late_dispatch_settled_by_the_policies() -> None:
    engine, sched, _ = setup()
    t0 = engine.clock.time()
    trig = Every(1.0, t0)
    sched.add_job("work", trig, id="h", misfire_grace=0.5)
    log = engine.log
    async with engine:
        await anyio.sleep(1.5)  # real time, not virtual: see the module docstring
        engine.hold_dispatch("panic")
        await anyio.sleep(3.0)  # real time, not virtual: see the module docstring
        engine.release_dispatch("panic")
        await anyio.sleep(1.0)  # real time, not virtual: see the module docstring
    recs = records_in(log, "h")
    # 2 and 3 are missed (one record), 4 is 0.5 s late at the release: within grace
    assert Counter(r.status for r in recs) == Counter({"success": 3, "missed": 1})
    exactly_once(recs, trig, t0, t0 + 5.5)


@virtual()
async def test_failure_timeout_alarms_and_a_broken_handler() -> None:
    engine, sched, _ = setup(run_for=0.5, fail=True)
    t0 = engine.clock.time()
    seen: list[tuple[str, str]] = []

    async def alarm(job: Job, record: ExecutionRecord) -> None:
        seen.append((job.id, record.status))

    def broken(job: Job, record: ExecutionRecord) -> None:
        raise ValueError("pager offline")

    sched.on_failure(alarm)
    sched.add_job("work", Every(1.0, t0, count=1), id="f", kwargs={"x": 7}, on_failure=broken)
    sched.add_job("work", Every(1.0, t0, count=1), id="t", kwargs={"duration": 5.0}, timeout=1.0)
    log = engine.log
    async with engine:
        await anyio.sleep(3)  # real time, not virtual: see the module docstring
    f = (records_in(log, "f"))[0]
    assert (f.status, f.error, f.message) == ("failure", "RuntimeError", "bad reading 7")
    assert "RuntimeError" in (f.traceback or "")
    t = (records_in(log, "t"))[0]
    assert t.status == "timeout"
    assert t.duration == pytest.approx(1.0)
    assert sorted(seen) == [("f", "failure"), ("t", "timeout")]
    broken_events = log.recent(kinds="scheduler.alarm_failed")
    assert len(broken_events) == 1
    assert broken_events[0].payload["message"] == "pager offline"


@virtual()
async def test_run_now_with_overrides_is_a_manual_fire_time() -> None:
    engine, sched, calls = setup()
    t0 = engine.clock.time()
    sched.add_job("work", Every(100.0, t0), id="m", kwargs={"x": 1})
    async with engine:
        await anyio.sleep(1)  # real time, not virtual: see the module docstring
        sched.run_job("m", x=5)
        rec = await sched.wait_job("m")
    assert rec.manual
    assert rec.status == "success"
    assert rec.result == 10
    assert calls[-1][1] == 5


@virtual()
async def test_pause_and_resume_a_job_records_the_fire_times_it_slept_through() -> None:
    engine, sched, _ = setup()
    t0 = engine.clock.time()
    trig = Every(1.0, t0)
    sched.add_job("work", trig, id="pj")
    log = engine.log
    async with engine:
        await anyio.sleep(2.5)  # real time, not virtual: see the module docstring
        sched.pause_job("pj")
        assert sched.next_run("pj") is None
        assert [j.id for j in sched.jobs(enabled=False)] == ["pj"]
        await anyio.sleep(4)  # real time, not virtual: see the module docstring
        sched.resume_job("pj")
        await anyio.sleep(2)  # real time, not virtual: see the module docstring
    recs = records_in(log, "pj")
    skipped = [r for r in recs if r.status == "skipped"]
    assert len(skipped) == 1
    assert skipped[0].count == 4
    assert skipped[0].reason == "the job was paused"
    exactly_once(recs, trig, t0, t0 + 8.5)


@virtual()
async def test_max_executions_and_window() -> None:
    engine, sched, _ = setup()
    t0 = engine.clock.time()
    sched.add_job("work", Every(1.0, t0), id="max", max_executions=3)
    sched.add_job("work", Every(1.0, t0), id="win", start=t0 + 3, end=t0 + 5)
    log = engine.log
    async with engine:
        await anyio.sleep(10)  # real time, not virtual: see the module docstring
        assert sched.next_run("max") is None
        assert sched.next_run("win") is None
    assert [r.scheduled.timestamp() - t0 for r in records_in(log, "max")] == [1, 2, 3]
    assert [r.scheduled.timestamp() - t0 for r in records_in(log, "win")] == [3, 4, 5]


@virtual()
async def test_history_figures_match_the_records() -> None:
    engine, sched, _ = setup(run_for=1.5)
    t0 = engine.clock.time()
    sched.add_job("work", Every(1.0, t0), id="s", tags=["absorbance", "daily"])
    sched.add_job("work", Every(60.0, t0), id="idle", tags=["daily"], enabled=False)
    async with engine:
        await anyio.sleep(9.9)  # real time, not virtual: see the module docstring
        stats = await sched.job_stats("s")
        overall = await sched.stats(upcoming=5)
        recs = await sched.history("s")
    runs = [r for r in recs if r.status == "success"]
    assert stats.total == len(recs)
    assert stats.succeeded == len(runs)
    assert stats.by_status == dict(Counter(r.status for r in recs))
    assert stats.mean_duration == pytest.approx(1.5)
    assert stats.max_duration == pytest.approx(1.5)
    assert stats.last_run is not None
    assert stats.last_run.seq == max(r.seq for r in runs)
    assert stats.next_run is not None
    assert stats.next_run.timestamp() == t0 + 10
    assert (overall.jobs, overall.enabled, overall.disabled) == (2, 1, 1)
    assert overall.jobs_by_tag == {"absorbance": 1, "daily": 2}
    assert overall.running == 1
    assert overall.upcoming == [("s", stats.next_run)]
    assert overall.today == dict(Counter(r.status for r in recs))


@virtual()
async def test_update_and_remove() -> None:
    engine, sched, _ = setup()
    t0 = engine.clock.time()
    sched.add_job("work", Every(1.0, t0), id="u")
    log = engine.log
    async with engine:
        await anyio.sleep(2.5)  # real time, not virtual: see the module docstring
        sched.update_job("u", trigger=Every(10.0, t0), kwargs={"x": 3})
        assert sched.next_run("u").timestamp() == t0 + 10  # type: ignore[union-attr]
        await anyio.sleep(10)  # real time, not virtual: see the module docstring
        sched.remove_job("u")
        assert "u" not in sched
        await anyio.sleep(20)  # real time, not virtual: see the module docstring
    recs = sorted(records_in(log, "u"), key=lambda r: r.scheduled)
    assert [(r.scheduled.timestamp() - t0, r.result) for r in recs] == [(1, 0), (2, 0), (10, 6)]
