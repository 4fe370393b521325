"""Persistence: restart after downtime, the file lock, bad input, DST with real triggers."""

from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from scheduler_helpers import Every, covered, records_in, virtual

import timecontrol as tc
from timecontrol.scheduler import (
    DuplicateJobError,
    ExecutionRecord,
    JobArgumentsError,
    PolicyError,
    Scheduler,
    SchedulerLockedError,
)
from timecontrol.scheduler._records import RECORD_KINDS
from timecontrol.stores import read_events
from timecontrol.testing import VirtualClock
from timecontrol.triggers import cron, daily

START = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def make(path: Path) -> tuple[tc.Engine, Scheduler]:
    engine = tc.Engine(store=path)

    @engine.action
    async def sample(volume_ul: float = 10.0) -> float:
        await anyio.sleep(0.2)  # virtual time
        return volume_ul

    return engine, Scheduler(engine)


def file_records(path: Path, job_id: str) -> list[ExecutionRecord]:
    return [
        ExecutionRecord.from_event(e)
        for e in read_events(path, kinds=RECORD_KINDS, subjects=[job_id])
    ]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize(
    ("coalesce", "grace"), [("latest", None), ("earliest", 300.0), ("all", 30.0)]
)
def test_restart_after_downtime_settles_missed_fire_times(
    tmp_path: Path, backend: Any, coalesce: str, grace: float | None
) -> None:
    path = tmp_path / "lab.sqlite"
    anchor = START.timestamp()
    trig = Every(60.0, anchor)

    async def first() -> float:
        engine, sched = make(path)
        sched.add_job("sample", trig, id="s", coalesce=coalesce, misfire_grace=grace, tags=["a"])
        async with engine:
            await anyio.sleep(60 * 5 + 30)  # fire times 1..5; virtual time
        await sched.aclose()
        return engine.clock.time()

    stopped = VirtualClock(START).run(first, backend=backend)
    # Ten minutes down: fire times 6..15 fall due meanwhile.
    restart = stopped + 600

    async def second() -> None:
        engine, sched = make(path)
        assert sched.get_job("s").tags == ("a",)
        # Re-declaring the same job at start is a no-op: its progress is kept.
        sched.add_job(
            "sample",
            trig,
            id="s",
            coalesce=coalesce,
            misfire_grace=grace,
            tags=["a"],
            replace_existing=True,
        )
        # One writer per file: a second engine refuses the file as soon as it opens it
        # (here: asked for its jobs), so nothing runs twice.
        with pytest.raises(SchedulerLockedError, match="already open for writing"):
            tc.Engine(store=path).jobs()
        async with engine:
            await anyio.sleep(60 * 3)  # virtual time
        await sched.aclose()

    VirtualClock(datetime.fromtimestamp(restart, UTC)).run(second, backend=backend)
    recs = file_records(path, "s")
    expected = trig.fire_times(anchor, restart + 180)
    assert covered(recs, trig) == expected
    by = Counter()
    for r in recs:
        by[r.status] += r.count
    late = trig.fire_times(stopped, restart)  # 6..15
    assert len(late) == 10
    if coalesce == "latest":
        assert by == Counter({"success": 5 + 1 + 3, "coalesced": 9})
    elif coalesce == "earliest":  # 300 s grace: 6..10 are beyond it (missed), 11..15 within
        assert by == Counter({"success": 5 + 1 + 3, "missed": 5, "coalesced": 4})
    else:  # all, 30 s grace: only 15 (0 s late... 0.x) is within
        assert by["missed"] >= 9
        assert by["success"] == 5 + 1 + 3


def test_bad_input_leaves_the_store_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "lab.sqlite"

    async def main() -> None:
        engine, sched = make(path)
        t0 = engine.clock.time()
        sched.add_job("sample", Every(60.0, t0), id="a")
        await sched.flush()
        before = sorted(sqlite3.connect(path).execute("SELECT id, spec FROM scheduler_jobs"))
        with pytest.raises(tc.errors.UnknownActionError, match="no action named 'smaple'"):
            sched.add_job("smaple", Every(60.0, t0), id="b")
        with pytest.raises(JobArgumentsError, match="not JSON"):
            sched.add_job("sample", Every(60.0, t0), id="b", kwargs={"when": datetime.now(UTC)})
        with pytest.raises(DuplicateJobError, match="replace_existing"):
            sched.add_job("sample", Every(30.0, t0), id="a")
        with pytest.raises(PolicyError, match="unknown conflict policy 'replace'"):
            sched.add_job("sample", Every(60.0, t0), id="b", conflict="replace")
        with pytest.raises(PolicyError, match="coalesce"):
            sched.add_job("sample", Every(60.0, t0), id="b", coalesce="true")
        with pytest.raises(PolicyError, match="misfire_grace"):
            sched.update_job("a", misfire_grace=-1)
        assert sched.get_job("a").misfire_grace is None
        assert len(sched) == 1
        await sched.flush()
        after = sorted(sqlite3.connect(path).execute("SELECT id, spec FROM scheduler_jobs"))
        assert after == before
        await engine.log.aclose()
        sched.close()

    VirtualClock(START).run(main)


def test_newer_store_version_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "lab.sqlite"

    async def create() -> None:
        engine, sched = make(path)
        sched.add_job("sample", Every(60.0, engine.clock.time()), id="a")
        await sched.aclose()
        await engine.log.aclose()

    VirtualClock(START).run(create)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE scheduler_meta SET value = '99' WHERE key = 'schema_version'")
    conn.close()
    before = _scheduler_tables(path)

    async def reopen() -> None:
        engine = tc.Engine(store=path)
        assert Scheduler(engine) is engine.scheduler  # no I/O yet
        with pytest.raises(tc.errors.StoreVersionError, match="schema version 99"):
            engine.jobs()  # opening the store loads the jobs: refused
        with pytest.raises(tc.errors.StoreVersionError, match="schema version 99"):
            async with engine:  # and the engine does not run on it
                pass
        await engine.log.aclose()

    VirtualClock(START).run(reopen)
    assert _scheduler_tables(path) == before


def _scheduler_tables(path: Path) -> list[Any]:
    """Every row of the scheduler's tables (what the scheduler may change in a file)."""
    conn = sqlite3.connect(path)
    try:
        return [
            sorted(conn.execute(f"SELECT * FROM {table}"))
            for table in ("scheduler_meta", "scheduler_jobs", "scheduler_state")
        ]
    finally:
        conn.close()


@virtual(start="2026-03-28T12:00:00+00:00")
async def test_dst_daily_and_cron_fire_once_per_local_time() -> None:
    """Europe/Berlin springs forward on 2026-03-29 02:00 and falls back on 2026-10-25 03:00."""
    engine = tc.Engine()
    seen: list[datetime] = []

    @engine.action
    async def mark(tag: str) -> None:
        seen.append(engine.clock.now())

    sched = Scheduler(engine)
    sched.add_job("mark", daily("02:30", tz="Europe/Berlin"), id="daily", kwargs={"tag": "d"})
    sched.add_job("mark", cron("30 * * * *", tz="Europe/Berlin"), id="hourly", kwargs={"tag": "h"})
    log = engine.log
    async with engine:
        await anyio.sleep(timedelta(days=3).total_seconds())
    daily_runs = [r.scheduled for r in records_in(log, "daily") if r.status == "success"]
    hourly = [r.scheduled for r in records_in(log, "hourly") if r.status == "success"]
    # Spring forward: 02:30 does not exist on the 29th; it runs once at the gap's end.
    assert [d.astimezone(UTC).isoformat() for d in daily_runs] == [
        "2026-03-29T01:00:00+00:00",
        "2026-03-30T00:30:00+00:00",
        "2026-03-31T00:30:00+00:00",
    ]
    # Hourly at :30: every UTC hour has a local :30 (Berlin's offsets are whole hours), and
    # the nonexistent 02:30 of the 29th runs once, at the gap's end (03:00 CEST = 01:00 UTC).
    assert len(hourly) == len(set(hourly)) == 72 + 1
    assert datetime(2026, 3, 29, 1, 0, tzinfo=UTC) in hourly
    assert all(r.status == "success" for r in records_in(log))


@virtual(start="2026-10-24T12:00:00+00:00")
async def test_dst_fall_back_runs_the_repeated_hour_once_for_daily() -> None:
    engine = tc.Engine()

    @engine.action
    async def mark() -> None:
        return None

    sched = Scheduler(engine)
    sched.add_job("mark", daily("02:30", tz="Europe/Berlin"), id="daily")
    log = engine.log
    async with engine:
        await anyio.sleep(timedelta(days=2).total_seconds())
    runs = [r.scheduled.astimezone(UTC).isoformat() for r in records_in(log, "daily")]
    assert runs == ["2026-10-25T00:30:00+00:00", "2026-10-26T01:30:00+00:00"]


def test_purge_history(tmp_path: Path) -> None:
    path = tmp_path / "lab.sqlite"

    async def main() -> None:
        engine, sched = make(path)
        sched.add_job("sample", Every(3600.0, engine.clock.time()), id="h")
        async with engine:
            await anyio.sleep(3600 * 48 + 10)  # virtual time
            assert len(await sched.history("h")) == 48
            deleted = await sched.purge_history(timedelta(hours=24))
            assert deleted == 2 * 24  # started + succeeded of the first 24 runs
            assert len(await sched.history("h")) == 24
        await sched.aclose()

    # Awaiting the store's thread with timers pending would let virtual time jump ahead:
    # a small autojump threshold gives the thread (real time) a chance to answer first.
    VirtualClock(START, autojump_threshold=0.02).run(main)
