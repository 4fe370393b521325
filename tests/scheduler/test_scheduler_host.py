"""The scheduler on its host: the `JobHost` protocol, the front door, the lifecycle hooks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from scheduler_helpers import Every, covered, records_in

import timecontrol as tc
from timecontrol._dispatch import Dispatcher
from timecontrol._log import Log
from timecontrol.scheduler import ExecutionRecord, JobHost, JobSpecError, Scheduler
from timecontrol.scheduler._records import RECORD_KINDS
from timecontrol.stores import read_events
from timecontrol.testing import VirtualClock

START = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
T0 = START.timestamp()


class FakeFacade:
    """Looks like the Engine to `Scheduler(...)`: it owns its parts and has a scheduler."""

    _owns_parts = True

    def __init__(self) -> None:
        self.dispatcher = Dispatcher(None, Log)
        self.scheduler = Scheduler(self.dispatcher)


def test_the_dispatcher_is_a_job_host() -> None:
    assert isinstance(Dispatcher(None, Log), JobHost)


def test_scheduler_of_a_facade_is_its_own_and_is_not_set_up_again() -> None:
    facade = FakeFacade()

    async def sample() -> None:
        pass

    facade.dispatcher.action(sample)
    facade.scheduler.add_job("sample", Every(60.0, T0), id="a")
    assert Scheduler(facade) is facade.scheduler  # type: ignore[arg-type]
    assert [j.id for j in Scheduler(facade).jobs()] == ["a"]  # type: ignore[arg-type]
    # Options given at the front door: taken while nothing is loaded, else refused.
    fresh = FakeFacade()
    assert Scheduler(fresh, allowed_modules=["mylab"]).allowed_modules == ("mylab",)  # type: ignore[arg-type]
    fresh.scheduler.jobs()  # (opens its Log: loaded)
    with pytest.raises(JobSpecError, match="allowed_modules"):
        Scheduler(fresh, allowed_modules=["other"])  # type: ignore[arg-type]
    with pytest.raises(tc.errors.TimeControlError, match="profile_id"):
        Scheduler(fresh, profile_id=3)  # type: ignore[arg-type]


def test_making_a_scheduler_does_no_io(tmp_path: Path) -> None:
    path = tmp_path / "lab.sqlite"
    engine = tc.Engine(store=path)
    assert Scheduler(engine) is engine.scheduler
    assert not path.exists()  # nothing opened until the jobs are asked for
    assert engine.jobs() == []
    assert path.exists()
    engine.log.sink.close()  # type: ignore[union-attr]


@pytest.mark.timecontrol(start=START)
async def test_the_lifecycle_hooks_on_a_bare_dispatcher() -> None:
    """The hooks as an owner calls them, with no Engine at all."""
    dispatcher = Dispatcher(None, Log)
    sched = Scheduler(dispatcher)
    runs: list[float] = []

    @dispatcher.action
    async def tick() -> None:
        runs.append(dispatcher.clock.time() - T0)

    sched.add_job("tick", Every(1.0, T0), id="t")
    for _ in range(2):
        log = dispatcher.log
        sched._attach()
        async with anyio.create_task_group() as tg:
            dispatcher.open(tg)
            sched._started()
            await anyio.sleep(2.7)  # virtual time
            await dispatcher.close()
            tg.cancel_scope.cancel()
        await sched._stopping()
        await log.aclose()
        dispatcher._forget_log()
    # Each start resumed the chain where the stop left it.
    assert runs == [1.0, 2.0, 3.0, 4.0, 5.0]


def _file_records(path: Path, job_id: str) -> list[ExecutionRecord]:
    events = read_events(path, kinds=RECORD_KINDS, subjects=[job_id])
    return [ExecutionRecord.from_event(e) for e in events]


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("store", [True, False])
def test_stop_and_start_again_resumes_every_job(tmp_path: Path, backend: Any, store: bool) -> None:
    path = tmp_path / "lab.sqlite"
    trigger = Every(10.0, T0)

    async def main() -> list[ExecutionRecord]:
        engine = tc.Engine(store=path if store else None)
        logs = []

        @engine.action
        async def tick() -> None:
            pass

        engine.add_job("tick", trigger, id="t", misfire_grace=10)
        engine.add_job("tick", trigger, id="paused", enabled=False)
        for _ in range(3):
            async with engine:
                logs.append(engine.log)
                await anyio.sleep(25)  # virtual time
            await anyio.sleep(101)  # stopped (virtual time)
        if store:
            return _file_records(path, "t")
        return [r for log in logs for r in records_in(log, "t")]

    records = VirtualClock(START).run(main, backend=backend)
    got = covered(records, trigger)
    assert got == trigger.fire_times(T0, max(got))  # one record per fire time, all along
    # Every stop was clean: nothing is uncertain. Each start ran the fire time that was
    # within its grace (120 s and 250 s), the older ones were missed.
    assert {r.status for r in records} == {"success", "missed"}
    ran = [r.scheduled.timestamp() - T0 for r in records if r.status == "success"]
    assert ran == [10, 20, 120, 130, 140, 150, 250, 260, 270]


@pytest.mark.timecontrol(start=START)
async def test_a_job_added_while_stopped_runs_at_the_next_start(tmp_path: Path) -> None:
    engine = tc.Engine(store=tmp_path / "lab.sqlite")
    runs: list[str] = []

    @engine.action
    async def tick(tag: str) -> None:
        runs.append(tag)

    engine.add_job("tick", Every(10.0, T0), id="a", kwargs={"tag": "a"})
    async with engine:
        await anyio.sleep(15)  # virtual time
    engine.add_job("tick", Every(10.0, T0 + 20), id="b", kwargs={"tag": "b"})
    engine.remove_job("a")
    async with engine:
        await anyio.sleep(26)  # virtual time
        assert [j.id for j in engine.jobs()] == ["b"]
    assert runs == ["a", "b", "b"]
    again = tc.Engine(store=tmp_path / "lab.sqlite")
    assert [j.id for j in again.jobs()] == ["b"]  # the file agrees
    await again.log.aclose()
