"""Restarts and long downtime, on the virtual clock: one record per span, exact counts.

A 1 Hz job down for two days has 172,800 fire times due at the restart. They are settled by
its misfire grace and coalesce policy in a few records, each with its exact count and first
and last fire time; the fire time that runs is never older than the grace.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from scheduler_helpers import Every, covered, records_in

import timecontrol as tc
from timecontrol.scheduler import ExecutionRecord, _backlog
from timecontrol.scheduler._records import RECORD_KINDS
from timecontrol.stores import read_events
from timecontrol.testing import VirtualClock

START = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
T0 = START.timestamp()
DOWN = 2 * 86_400.0  # two days


def _engine(path: Path | None, runs: list[float]) -> tc.Engine:
    engine = tc.Engine(store=path)

    @engine.action
    async def tick() -> None:
        runs.append(engine.clock.time())

    return engine


def _by_status(records: list[ExecutionRecord]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for r in records:
        counts[r.status] += r.count
    return counts


def _span(records: list[ExecutionRecord], status: str) -> tuple[float, float, int]:
    (r,) = [r for r in records if r.status == status]
    return r.scheduled.timestamp() - T0, r.last.timestamp() - T0, r.count


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize(
    ("coalesce", "grace"), [("latest", None), ("latest", 3600.0), ("earliest", 3600.0)]
)
def test_two_days_down_on_a_store(
    tmp_path: Path, backend: Any, coalesce: str, grace: float | None
) -> None:
    path = tmp_path / "lab.sqlite"
    runs: list[float] = []
    trigger = tc.interval(seconds=1, anchor=START)

    async def before() -> None:
        engine = _engine(path, runs)
        engine.add_job("tick", trigger, id="hz", coalesce=coalesce, misfire_grace=grace)  # type: ignore[arg-type]
        async with engine:
            await anyio.sleep(10.5)  # fire times 1..10 run; virtual time

    async def after() -> None:
        engine = _engine(path, runs)
        async with engine:  # nothing but the store brings the job back
            await anyio.sleep(5.0)  # virtual time

    VirtualClock(START).run(before, backend=backend)
    restart = T0 + 10.5 + DOWN
    VirtualClock(datetime.fromtimestamp(restart, UTC)).run(after, backend=backend)
    records = [
        ExecutionRecord.from_event(e)
        for e in read_events(path, kinds=RECORD_KINDS, subjects=["hz"])
    ]
    last = 172_810.0  # the newest fire time at the restart (t0 + 10.5 + 2 days)
    assert len(records) <= 10 + 3 + 5  # a handful of records for 172,800 late fire times
    counts = _by_status(records)
    assert sum(counts.values()) == 172_815  # every fire time from 1 to last + 5, once
    assert all(r.count_exact for r in records)
    late_run = [t - T0 for t in runs if t > T0 + 11]
    assert late_run[0] == restart - T0  # the backlog's run starts at the restart
    settled = [r for r in records if r.started and r.started.timestamp() == restart]
    (ran,) = settled
    if grace is None:
        assert _span(records, "coalesced") == (11.0, last - 1, 172_799)
        assert ran.scheduled.timestamp() - T0 == last
    else:
        edge = last - 3599  # the oldest fire time within the hour of grace
        assert _span(records, "missed") == (11.0, edge - 1, edge - 11)
        if coalesce == "latest":
            assert _span(records, "coalesced") == (edge, last - 1, 3599)
            assert ran.scheduled.timestamp() - T0 == last
        else:
            assert _span(records, "coalesced") == (edge + 1, last, 3599)
            assert ran.scheduled.timestamp() - T0 == edge
        assert restart - ran.scheduled.timestamp() <= grace  # never older than its grace
    assert counts["success"] == 10 + 1 + 5


@pytest.mark.timecontrol(start=START)
async def test_two_days_stopped_in_memory_then_started_again() -> None:
    runs: list[float] = []
    engine = _engine(None, runs)
    engine.add_job("tick", tc.interval(seconds=1, anchor=START), id="hz", misfire_grace=60)
    async with engine:
        await anyio.sleep(10.5)  # virtual time
    log_before = engine.log
    await anyio.sleep(DOWN)  # stopped: nothing runs (virtual time)
    assert len(runs) == 10
    async with engine:
        await anyio.sleep(2.0)  # virtual time
    records = records_in(log_before, "hz") + records_in(engine.log, "hz")
    counts = _by_status(records)
    assert counts["missed"] == 172_800 - 60  # older than a minute
    assert counts["coalesced"] == 59  # within the minute, but one runs: the latest
    assert counts["success"] == 10 + 1 + 2
    assert runs[10] - T0 == 10.5 + DOWN


@pytest.mark.timecontrol(start=START)
async def test_a_trigger_without_arithmetic_is_walked_or_galloped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A trigger that is not a plain interval is walked fire time by fire time; past
    `WALK_LIMIT` the rest of a span is galloped over and its count marked inexact."""
    monkeypatch.setattr(_backlog, "WALK_LIMIT", 1000)
    runs: list[float] = []
    engine = _engine(None, runs)
    trigger = Every(1.0, T0)
    engine.add_job("tick", trigger, id="walked", misfire_grace=600)
    engine.add_job("tick", Every(1.0, T0), id="short", coalesce="earliest")
    async with engine:
        await anyio.sleep(1.5)  # fire time 1 runs; virtual time
        engine.hold_dispatch("test")
        await anyio.sleep(7200)  # two hours held (virtual time)
        engine.release_dispatch("test")
        await anyio.sleep(0.1)  # virtual time
    records = records_in(engine.log, "walked")
    missed = next(r for r in records if r.status == "missed")
    coalesced = next(r for r in records if r.status == "coalesced")
    now = T0 + 7201.5
    assert missed.scheduled.timestamp() == T0 + 2
    assert missed.last.timestamp() == T0 + 6601  # the last beyond ten minutes of grace
    assert not missed.count_exact
    assert 1000 <= missed.count < 6600  # a lower bound
    assert coalesced.count == 599  # within grace: walked
    assert coalesced.count_exact
    ran = [r for r in records if r.status == "success"]
    assert [r.scheduled.timestamp() for r in ran] == [T0 + 1, T0 + 7201]
    assert now - ran[-1].scheduled.timestamp() <= 600
    short = records_in(engine.log, "short")
    merged = next(r for r in short if r.status == "coalesced")
    assert (merged.scheduled.timestamp(), merged.last.timestamp()) == (T0 + 3, T0 + 7201)
    assert not merged.count_exact
    assert covered([r for r in short if r.count_exact], trigger) == [T0 + 1, T0 + 2]


@pytest.mark.timecontrol(start=START)
async def test_a_paused_job_resumed_after_a_day_gets_one_skipped_record() -> None:
    runs: list[float] = []
    engine = _engine(None, runs)
    engine.add_job("tick", tc.interval(seconds=1, anchor=START), id="hz")
    async with engine:
        await anyio.sleep(3.5)  # virtual time
        engine.pause_job("hz")
        await anyio.sleep(86_400)  # virtual time
        engine.resume_job("hz")
        await anyio.sleep(1.0)  # virtual time
    records = records_in(engine.log, "hz")
    (skipped,) = [r for r in records if r.status == "skipped"]
    assert (skipped.scheduled.timestamp() - T0, skipped.last.timestamp() - T0) == (4, 86_403)
    assert skipped.count == 86_400
    assert skipped.count_exact
    assert [t - T0 for t in runs] == [1, 2, 3, 86_404]


def test_redeclaring_keeps_operator_state_unless_reset(tmp_path: Path) -> None:
    path = tmp_path / "lab.sqlite"
    runs: list[float] = []
    declared = {"id": "hz", "replace_existing": True, "max_executions": 100}

    async def first() -> None:
        engine = _engine(path, runs)
        engine.add_job("tick", tc.interval(seconds=1, anchor=START), **declared)  # type: ignore[arg-type]
        async with engine:
            await anyio.sleep(3.5)  # virtual time
            engine.pause_job("hz")  # an operator pauses it

    async def second(reset: bool) -> tuple[bool, int]:
        engine = _engine(path, runs)
        job = engine.add_job(
            "tick",
            tc.interval(seconds=1, anchor=START),
            reset_state=reset,
            **declared,  # type: ignore[arg-type]
        )
        async with engine:
            await anyio.sleep(2.5)  # virtual time
        return job.enabled, len(runs)

    VirtualClock(START).run(first)
    assert len(runs) == 3
    later = START + timedelta(hours=1)
    assert VirtualClock(later).run(lambda: second(False)) == (False, 3)  # still paused
    assert VirtualClock(later + timedelta(hours=1)).run(lambda: second(True)) == (True, 5)


@pytest.mark.timecontrol(start=START)
async def test_a_backlog_stops_at_the_window_end() -> None:
    runs: list[float] = []
    engine = _engine(None, runs)
    end = START + timedelta(hours=1)
    engine.add_job("tick", tc.interval(seconds=1, anchor=START), id="hz", end=end)
    async with engine:
        await anyio.sleep(1.5)  # virtual time
        engine.hold_dispatch("test")
        await anyio.sleep(86_400)  # a day held: the window closed meanwhile (virtual time)
        engine.release_dispatch("test")
        await anyio.sleep(1.0)  # virtual time
    records = records_in(engine.log, "hz")
    counts = _by_status(records)
    assert sum(counts.values()) == 3600  # fire times 1..3600 s: none beyond the end
    assert counts["success"] == 2  # the first, and the latest of the backlog (the end)
    assert max(r.last.timestamp() for r in records) == end.timestamp()
