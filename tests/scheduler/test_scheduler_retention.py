"""Retention: the daily clean-up, lifetime totals across clean-ups and restarts, executions by
id, and the dashboard figures (running, today, upcoming, per-job history)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from scheduler_helpers import Every, virtual

import timecontrol as tc
from timecontrol.scheduler import ExecutionNotFoundError, JobSpecError
from timecontrol.scheduler._retention import DAY, RETENTION
from timecontrol.testing import VirtualClock

START = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
T0 = START.timestamp()
HOUR = 3600.0


def make(path: Path | None, **options: Any) -> tc.Engine:
    engine = tc.Engine() if path is None else tc.Engine(store=path)
    if options:
        tc.Scheduler(engine, **options)

    @engine.action
    async def sample(fail: bool = False) -> float:
        await anyio.sleep(0.2)  # virtual time
        if fail:
            raise RuntimeError("no sample")
        return 1.0

    return engine


def retention_intents(engine: tc.Engine) -> list[float]:
    return [i.due for i in engine.schedule if i.action == RETENTION]


def run(main: Any, backend: str, start: datetime = START) -> Any:
    # Awaiting the store's thread with timers pending would let virtual time jump ahead:
    # a small autojump threshold gives the thread (real time) a chance to answer first.
    return VirtualClock(start, autojump_threshold=0.02).run(main, backend=backend)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_forty_days_keep_thirty_and_totals_stay_exact_across_a_restart(
    tmp_path: Path, backend: str
) -> None:
    path = tmp_path / "lab.sqlite"
    end = T0 + 40 * DAY + 10

    async def first() -> None:
        engine = make(path)
        sched = engine.scheduler
        engine.add_job("sample", Every(12 * HOUR, T0), id="h")  # 80 runs in 40 days
        engine.add_job("sample", Every(DAY, T0 + 1), id="f", kwargs={"fail": True})
        async with engine:
            assert retention_intents(engine) == [T0 + DAY]  # a day after the file's first event
            await anyio.sleep(end - engine.clock.time())
            sched.pause()  # nothing more runs while we read (reads wait for the store thread)
            assert retention_intents(engine) == [T0 + 41 * DAY]
            kept = await sched.history("h")
            stats = await sched.job_stats("h")
            fstats = await sched.job_stats("f")
            purges = engine.log.recent(kinds="scheduler.purged")
        await sched.aclose()
        # The last clean-up ran at T0 + 40 days: records that ended before T0 + 10 days are
        # gone (h's runs k = 1..19 end at 12k h + 0.2 s), every later one is kept.
        assert [r.scheduled.timestamp() for r in kept] == [
            T0 + 12 * k * HOUR for k in range(20, 81)
        ]
        # Daily, the first ones with nothing to delete (and no event).
        assert [p.payload["auto"] for p in purges] == [True] * 10
        assert [p.wall - T0 for p in purges] == [d * DAY for d in range(31, 41)]
        assert stats.total == stats.runs == stats.succeeded == 80
        assert stats.kept == 61
        assert stats.failed == 0
        assert stats.by_status == {"success": 80}
        assert stats.mean_duration == pytest.approx(0.2)
        assert stats.min_duration == pytest.approx(0.2)
        assert stats.max_duration == pytest.approx(0.2)
        assert stats.last_run is not None
        assert stats.last_run.scheduled.timestamp() == T0 + 960 * HOUR
        assert stats.next_run is not None
        assert stats.next_run.timestamp() == T0 + 972 * HOUR
        assert fstats.total == fstats.runs == fstats.failed == 40
        assert fstats.by_status == {"failure": 40}
        assert fstats.kept == 31  # runs k = 10..40 (k days + 1.2 s >= 10 days)

    run(first, backend)

    async def second() -> None:
        engine = make(path)
        engine.scheduler.pause()
        async with engine:
            stats = await engine.job_stats("h")
            fstats = await engine.job_stats("f")
            assert retention_intents(engine) == [T0 + 41 * DAY]  # remembered by the file
        assert (stats.total, stats.succeeded, stats.kept) == (80, 80, 61)
        assert (fstats.total, fstats.failed, fstats.kept) == (40, 40, 31)
        assert stats.mean_duration == pytest.approx(0.2)
        assert stats.last_run is not None
        assert stats.last_run.scheduled.timestamp() == T0 + 960 * HOUR

    run(second, backend, datetime.fromtimestamp(end, UTC))


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_per_job_retention_and_scheduler_default(tmp_path: Path, backend: str) -> None:
    path = tmp_path / "lab.sqlite"

    async def main() -> None:
        engine = make(path, retention=timedelta(days=3))
        sched = engine.scheduler
        assert sched.retention == 3 * DAY
        engine.add_job("sample", Every(6 * HOUR, T0), id="default")
        engine.add_job("sample", Every(6 * HOUR, T0), id="short", retention=timedelta(days=1))
        engine.add_job("sample", Every(6 * HOUR, T0), id="long", retention=10 * DAY)
        async with engine:
            await anyio.sleep(6 * DAY + 10)  # virtual time
            kept = {j: len(await sched.history(j)) for j in ("default", "short", "long")}
            totals = {j: (await sched.job_stats(j)).total for j in ("default", "short", "long")}
        await sched.aclose()
        # Cleaned at T0 + 6 days: keep runs ending after T0 + 3 days (k >= 12) or + 5 days.
        assert kept == {"default": 24 - 12 + 1, "short": 24 - 20 + 1, "long": 24}
        assert totals == {"default": 24, "short": 24, "long": 24}

    run(main, backend)


def test_bad_retention_is_refused_and_changes_nothing() -> None:
    engine = tc.Engine()
    with pytest.raises(JobSpecError, match="retention must be a positive duration"):
        tc.Scheduler(engine, retention=-5)
    with pytest.raises(JobSpecError, match="'soon'"):
        engine.scheduler.retention = "soon"  # type: ignore[assignment]
    assert engine.scheduler.retention == 30 * DAY
    engine.scheduler.retention = None  # keep forever
    assert engine.scheduler.retention is None


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_purge_history_folds_into_totals_and_applies_retention(
    tmp_path: Path, backend: str
) -> None:
    path = tmp_path / "lab.sqlite"

    async def main() -> None:
        engine = make(path)
        sched = engine.scheduler
        engine.add_job("sample", Every(HOUR, T0), id="h")
        engine.add_job("sample", Every(HOUR, T0), id="s", retention=timedelta(hours=10))
        async with engine:
            await anyio.sleep(48 * HOUR + 10)  # virtual time; clean-ups at T0 + 1 and 2 days
            first = await sched.history("h")
            assert len(first) == 48  # the default retention (30 days) deletes nothing yet
            # The clean-up at T0 + 2 days kept s's runs ending after T0 + 38 h.
            assert [r.scheduled.timestamp() for r in await sched.history("s")] == [
                T0 + k * HOUR for k in range(38, 49)
            ]
            deleted = await sched.purge_history(timedelta(hours=24))
            assert len(await sched.history("h")) == 24
            stats = await sched.job_stats("h")
            assert (stats.total, stats.succeeded, stats.kept) == (48, 48, 24)
            assert (await sched.job_stats("s")).kept == 11
            assert await sched.purge_history() == 2  # s's own 10 hours: run 38 goes
            assert len(await sched.history("h")) == 24
            sstats = await sched.job_stats("s")
            assert (sstats.total, sstats.succeeded, sstats.kept) == (48, 48, 10)
            with pytest.raises(ExecutionNotFoundError, match=str(first[0].id)):
                await sched.execution(first[0].id)
            assert await sched.execution(first[-1].id) == first[-1]
        await sched.aclose()
        assert deleted == 2 * 24  # started + succeeded of h's first 24 runs

    run(main, backend)


@pytest.mark.parametrize("store", [False, True])
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_executions_by_id(tmp_path: Path, backend: str, store: bool) -> None:
    async def main() -> None:
        engine = make(tmp_path / "lab.sqlite" if store else None)
        sched = engine.scheduler
        engine.add_job("sample", Every(60.0, T0), id="a")
        engine.add_job("sample", Every(70.0, T0), id="b", kwargs={"fail": True})
        async with engine:
            await anyio.sleep(200)  # virtual time
            records = await sched.history()
            for record in records:
                assert record.id == record.seq
                assert await sched.execution(record.id) == record
            started = engine.log.recent(kinds="job.started")[0].seq
            for bad in (started, engine.log.last_seq + 5):
                with pytest.raises(
                    ExecutionNotFoundError, match=f"no execution record with id {bad}"
                ):
                    await sched.execution(bad)
            for odd in ("1", 0, True, 1.0):
                with pytest.raises(JobSpecError, match="positive int"):
                    await sched.execution(odd)  # type: ignore[arg-type]
        assert [(r.job_id, r.status) for r in records] == [
            ("a", "success"),
            ("b", "failure"),
            ("a", "success"),
            ("b", "failure"),
            ("a", "success"),
        ]

    run(main, backend)


@virtual(start="2026-03-10T23:00:00+00:00")
async def test_running_today_upcoming_and_history_figures() -> None:
    engine = make(None)
    sched = engine.scheduler
    t0 = engine.clock.time()

    @engine.action
    async def slow() -> None:
        await anyio.sleep(600)  # virtual time

    engine.add_job("slow", Every(1800.0, t0), id="slow")
    engine.add_job("sample", Every(1200.0, t0), id="a")
    engine.add_job("sample", Every(1500.0, t0), id="b", kwargs={"fail": True})
    engine.add_job("sample", Every(60.0, t0), id="off", enabled=False)
    async with engine:
        # 23:30:01; today started at midnight (UTC) 23 h ago
        await anyio.sleep(1800 + 1)  # virtual time
        assert sched.running() == {"slow": 1}
        stats = await sched.stats(upcoming=4)
        astats = await sched.job_stats("a")
        bstats = await sched.job_stats("b")
        await anyio.sleep(3600)  # past midnight: a new day (virtual time)
        tomorrow = await sched.stats()
    assert stats.running == 1
    assert stats.today == {"success": 1, "failure": 1}  # a at 23:20, b at 23:25
    assert (stats.jobs, stats.enabled, stats.disabled) == (4, 3, 1)
    # Upcoming jobs: each enabled job's next fire time, earliest first (the paused one has
    # none), at most `upcoming` of them.
    assert [(j, w.timestamp() - t0) for j, w in stats.upcoming] == [
        ("a", 2400.0),
        ("b", 3000.0),
        ("slow", 3600.0),
    ]
    assert [j for j, _ in (await sched.stats(upcoming=2)).upcoming] == ["a", "b"]
    assert (astats.total, astats.succeeded, astats.failed) == (1, 1, 0)
    assert astats.mean_duration == pytest.approx(0.2)
    assert astats.next_run is not None
    assert astats.next_run.timestamp() == t0 + 2400
    assert (bstats.total, bstats.failed, bstats.kept) == (1, 1, 1)
    assert bstats.last_run is not None
    assert bstats.last_run.status == "failure"
    # 00:30:01: since midnight, a at 00:00 and 00:20, slow 00:00-00:10, b at 00:15.
    assert tomorrow.today == {"success": 3, "failure": 1}
    assert tomorrow.running == 1  # slow again, since 00:30


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_clean_up_timer_leaves_an_idle_engine_idle(tmp_path: Path, backend: str) -> None:
    async def main() -> None:
        engine = make(tmp_path / "lab.sqlite")
        engine.add_job("sample", Every(HOUR, T0, count=3), id="three")
        async with engine:
            assert retention_intents(engine) == [T0 + DAY]
            await engine.wait_idle()  # the job's chain ends: the clean-up is withdrawn
            assert retention_intents(engine) == []
            assert engine.clock.time() == pytest.approx(T0 + 3 * HOUR + 0.2)
            engine.add_job("sample", Every(HOUR, engine.clock.time()), id="again")
            assert len(retention_intents(engine)) == 1
            engine.remove_job("again")
            assert retention_intents(engine) == []
        # In memory nothing is deleted, so there is no clean-up at all.
        memory = make(None)
        memory.add_job("sample", Every(HOUR, T0), id="h")
        async with memory:
            assert retention_intents(memory) == []

    run(main, backend)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_totals_table_is_plain_sql(tmp_path: Path, backend: str) -> None:
    path = tmp_path / "lab.sqlite"

    async def main() -> None:
        engine = make(path)
        engine.add_job("sample", Every(HOUR, T0), id="h")
        engine.add_job("sample", Every(2 * HOUR, T0), id="f", kwargs={"fail": True})
        async with engine:
            await anyio.sleep(10 * HOUR + 1)  # virtual time
            await engine.scheduler.purge_history(HOUR * 5)
        await engine.scheduler.aclose()

    run(main, backend)
    rows = sorted(
        sqlite3.connect(path).execute(
            "SELECT job_id, status, count, dur_n, round(dur_sum, 6) FROM scheduler_totals"
        )
    )
    # Runs ending before T0 + 5 h + 1 s: h at 1..5 h, f at 2 and 4 h.
    assert rows == [("f", "failure", 2, 2, 0.4), ("h", "success", 5, 5, 1.0)]
