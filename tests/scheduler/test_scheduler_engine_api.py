"""The scheduler through the Engine's own methods (`engine.add_job` ...), across a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

import timecontrol as tc
from timecontrol.stores import read_events
from timecontrol.testing import VirtualClock

START = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)


@pytest.mark.timecontrol(start=START)
async def test_engine_methods_run_jobs_with_real_triggers(virtual_clock: VirtualClock) -> None:
    engine = tc.Engine()
    seen: list[datetime] = []

    @engine.action
    async def sample(volume_ul: float) -> float:
        seen.append(virtual_clock.now())
        return volume_ul * 2

    async with engine:
        job = engine.add_job(
            "sample",
            tc.timepoints.pairs((3, 60), (2, 300)),
            id="kinetics",
            kwargs={"volume_ul": 20.0},
        )
        assert engine.get_job("kinetics") == job
        assert [j.id for j in engine.jobs()] == ["kinetics"]
        await anyio.sleep(3600)  # virtual time
        records = await engine.history("kinetics")
        stats = await engine.job_stats("kinetics")
    # first point one spacing after the start: +60, +120, +180, then +480, +780
    offsets = [(t - START).total_seconds() for t in seen]
    assert offsets == [60, 120, 180, 480, 780]
    assert [r.status for r in records] == ["success"] * 5
    assert stats.succeeded == 5
    assert stats.next_run is None


def test_engine_jobs_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "lab.sqlite"
    runs: list[float] = []

    def make() -> tc.Engine:
        engine = tc.Engine(store=path)

        @engine.action
        async def tick() -> None:
            runs.append(engine.clock.time() - START.timestamp())

        return engine

    async def first() -> None:
        engine = make()
        engine.add_job("tick", tc.interval(minutes=10), id="tick", coalesce="latest")
        async with engine:
            await anyio.sleep(1801)  # virtual time

    async def second() -> list[str]:
        engine = make()
        assert [j.id for j in engine.jobs()] == ["tick"]  # restored from the file
        async with engine:
            await anyio.sleep(1201)  # virtual time
            return [r.status for r in await engine.history("tick")]

    VirtualClock(START).run(first)
    assert runs == [600, 1200, 1800]
    # The process is down for an hour: 2400, 3000 and 3600 fall due meanwhile.
    statuses = VirtualClock(START + timedelta(hours=1)).run(second)
    assert runs == [600, 1200, 1800, 3600, 4200, 4800]  # the latest of the backlog runs
    assert statuses.count("success") == 6
    assert statuses.count("coalesced") == 1  # one record covering 2400 and 3000


class _Broken(tc.triggers.TriggerBase):
    """Fires once, then raises: a trigger with a bug."""

    json_type = "test_broken"

    def __init__(self, first: float) -> None:
        self.first = first

    def next(self, after: datetime) -> datetime | None:
        if after.timestamp() < self.first:
            return datetime.fromtimestamp(self.first, UTC)
        raise RuntimeError("bug in my trigger")

    def to_json(self) -> dict[str, object]:
        return {"type": self.json_type, "first": self.first}

    def explain(self) -> str:
        return "once, then a bug"

    @classmethod
    def _from_json(cls, d: dict[str, object]) -> _Broken:
        return cls(float(d["first"]))  # type: ignore[arg-type]


@pytest.mark.timecontrol(start=START)
async def test_a_failing_trigger_pauses_its_job_with_a_record() -> None:
    engine = tc.Engine()
    ran: list[float] = []

    @engine.action
    async def work() -> None:
        ran.append(engine.clock.time())

    async with engine:
        engine.add_job("work", _Broken(START.timestamp() + 60), id="buggy")
        await anyio.sleep(3600)  # virtual time
        records = await engine.history("buggy")
        job = engine.get_job("buggy")
    assert ran == []  # the fire time whose successor could not be computed did not run
    assert [r.status for r in records] == ["skipped"]
    assert "bug in my trigger" in (records[0].reason or "")
    assert not job.enabled
    assert engine.log.recent(kinds="job.paused")[0].subject == "buggy"


def test_durable_start_commits_the_start_before_the_action_runs(tmp_path: Path) -> None:
    path = tmp_path / "lab.sqlite"
    seen: list[list[int]] = []

    async def main() -> None:
        engine = tc.Engine(store=path)

        @engine.action
        async def dispense() -> None:
            # Read with another connection: only what is committed to the file is visible.
            started = read_events(path, kinds=["job.started"], subjects=["reagent"])
            seen.append([e.payload["run"] for e in started])

        engine.add_job("dispense", tc.interval(minutes=1), id="reagent", durable_start=True)
        assert engine.get_job("reagent").durable_start
        async with engine:
            await anyio.sleep(181)  # virtual time

    VirtualClock(START).run(main)
    assert [len(s) for s in seen] == [1, 2, 3]  # each run saw its own start on disk
    stored = tc.Engine(store=path)

    @stored.action
    async def dispense() -> None:
        pass

    assert stored.get_job("reagent").durable_start  # persisted with the job
    with pytest.raises(tc.errors.JobSpecError, match="durable_start"):
        stored.add_job("dispense", tc.interval(minutes=1), id="x", durable_start="yes")  # type: ignore[arg-type]
