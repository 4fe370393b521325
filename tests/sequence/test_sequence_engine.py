"""A sequence across an engine stop and start, and its records in a SQLite store."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from sequence_support import START, T0, Lab

import timecontrol as tc
from timecontrol.sequence import PointRecord
from timecontrol.stores import read_events
from timecontrol.testing import VirtualClock


@pytest.mark.timecontrol(start=START)
async def test_a_stop_cancels_the_running_point_and_a_restart_goes_on() -> None:
    lab = Lab()
    seq = lab.engine.sequence(["sample", "analyse"], [100, 200, 300])
    async with lab.engine:
        seq.start()
        await anyio.sleep(110)  # virtual time
    assert seq.point(0).status == "cancelled"
    await anyio.sleep(100)  # stopped: 200 falls due, nothing runs (virtual time)
    assert lab.times("sample") == [100]
    async with lab.engine:
        await seq.join()
    assert lab.times("sample") == [100, 210, 300]  # 200 runs late, on the restart
    assert [p.status for p in seq.points()] == ["cancelled", "succeeded", "succeeded"]


def test_records_are_kept_in_a_sqlite_store(tmp_path: Path) -> None:
    path = tmp_path / "lab.sqlite"

    async def main() -> list[PointRecord]:
        lab = Lab(tc.Engine(store=path))
        seq = lab.engine.sequence(["sample", "analyse"], [60, 120], name="kinetics")
        async with lab.engine:
            seq.start()
            seq.trigger({"why": "check"})
            await seq.join()
            return await seq.records()

    records = VirtualClock(START).run(main)
    assert [(r.index, r.kind, r.started) for r in records] == [
        (2, "manual", T0), (0, "planned", T0 + 60), (1, "planned", T0 + 120),
    ]  # fmt: skip
    stored = [e for e in read_events(path) if e.kind == "sequence.point"]
    assert [PointRecord.from_json(e.payload) for e in stored] == records


@pytest.mark.timecontrol(start=START)
async def test_a_sequence_started_before_the_engine_runs_when_it_starts() -> None:
    lab = Lab()
    seq = lab.engine.sequence(["sample"], [100, 200])
    seq.start()  # the timeline starts now; dispatch begins with the engine
    await anyio.sleep(150)  # virtual time
    assert lab.times("sample") == []
    async with lab.engine:
        await seq.join()
    assert lab.times("sample") == [150, 200]  # 100 ran late, once the engine ran
    started = lab.engine.log.recent(kinds="sequence.started")
    assert [e.payload["start"] for e in started] == [T0]


def test_a_read_only_engine_refuses_a_sequence_and_keeps_nothing(tmp_path: Path) -> None:
    path = tmp_path / "lab.sqlite"

    async def main() -> None:
        async with tc.Engine(store=path):
            pass  # the file exists, written by its one writer
        reader = tc.Engine(store=path, readonly=True)

        async def sample() -> None:
            raise AssertionError("never runs")

        with pytest.raises(tc.errors.LogError, match="read-only"):
            reader.sequence([sample], [60, 120], name="kinetics")
        assert list(reader.sequences) == []

    VirtualClock(START).run(main)
    assert read_events(path, kinds=["sequence.declared"]) == []
