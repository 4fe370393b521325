"""A sequence runs its chain at every time point, in order, on exact virtual times."""

from __future__ import annotations

import anyio
import pytest
from sequence_support import START, T0, Lab

import timecontrol as tc
from timecontrol.sequence import ActionRecord, PointRecord

HEIN = [60.0, 120, 180, 240, 300, *(300 + 300 * k for k in range(1, 11))]


@pytest.mark.timecontrol(start=START)
async def test_two_actions_at_each_of_fifteen_points() -> None:
    lab = Lab()
    seq = lab.engine.sequence(
        ["sample", "analyse"],
        tc.timepoints.pairs((5, 60), (10, 300)),
        name="kinetics",
        kwargs={"sample": {"volume_ul": 20.0}},
    )
    assert seq.state == "created"
    assert [p.offset for p in seq.points()] == HEIN
    async with lab.engine:
        seq.start()
        assert seq.start_time == START
        await seq.join()
        finished_at = lab.engine.clock.time() - T0
        records = await seq.records()
    assert lab.times("sample") == HEIN
    assert lab.times("analyse") == [t + 2 for t in HEIN]  # after its sample, in order
    assert all(kw == {"volume_ul": 20.0} for n, _, kw in lab.calls if n == "sample")
    assert finished_at == 3300 + 32
    assert seq.state == "finished"
    assert seq.progress == 1.0
    assert seq.remaining == 0
    assert [r.index for r in records] == list(range(15))
    first = records[0]
    assert first == seq.point(0).record()  # the Log's summary equals the live one
    assert (first.kind, first.status, first.offset, first.planned) == (
        "planned",
        "succeeded",
        60.0,
        T0 + 60,
    )
    assert (first.started, first.completed, first.late, first.duration) == (T0 + 60, T0 + 92, 0, 32)
    assert first.actions == (
        ActionRecord("sample", 0, "succeeded", T0 + 60, T0 + 62, 2.0, 60.0,
                     kwargs={"volume_ul": 20.0}),
        ActionRecord("analyse", 1, "succeeded", T0 + 62, T0 + 92, 30.0, 62.0),
    )  # fmt: skip
    finished = lab.engine.log.recent(kinds="sequence.finished", subjects="kinetics")
    assert finished[0].payload == {
        "points": 15, "succeeded": 15, "failed": 0, "skipped": 0, "cancelled": 0, "interrupted": 0,
    }  # fmt: skip
    assert len(lab.engine.log.recent(kinds="sequence.action")) == 30


@pytest.mark.timecontrol(start=START)
async def test_a_slow_chain_delays_the_next_point_instead_of_overlapping() -> None:
    lab = Lab()
    # 10 s apart, but each chain takes 32 s: points wait and run one after another.
    seq = lab.engine.sequence(["sample", "analyse"], tc.timepoints.block(3, 10))
    async with lab.engine:
        seq.start()
        await seq.join()
    assert lab.times("sample") == [10, 42, 74]
    late = [p.record().late for p in seq.points()]
    assert late == [0, 22, 44]


@pytest.mark.timecontrol(start=START)
async def test_functions_and_offsets_lists_and_an_explicit_start() -> None:
    engine = tc.Engine()
    seen: list[tuple[str, float]] = []

    async def weigh(grams: float = 1.0) -> float:
        seen.append(("weigh", engine.clock.time() - T0))
        return grams * 2

    async def note() -> None:
        seen.append(("note", engine.clock.time() - T0))

    seq = engine.sequence([weigh, note], [0, 90, 30], kwargs={"weigh": {"grams": 4}})
    async with engine:
        seq.start(at=T0 + 100)
        await seq.join()
    assert seen == [("weigh", 100), ("note", 100), ("weigh", 130), ("note", 130),
                    ("weigh", 190), ("note", 190)]  # fmt: skip
    assert seq.point(0).records[0].result == 8.0


@pytest.mark.timecontrol(start=START)
async def test_a_start_in_the_past_catches_up_in_order() -> None:
    lab = Lab()
    seq = lab.engine.sequence(["sample"], [10, 20, 400])
    async with lab.engine:
        await anyio.sleep(100)  # virtual time
        seq.start(at=T0)  # 10 and 20 are past: they run now, one after the other
        await seq.join()
    assert lab.times("sample") == [100, 102, 400]


@pytest.mark.timecontrol(start=START)
async def test_non_json_results_and_kwargs_are_recorded_as_repr() -> None:
    engine = tc.Engine()
    marker = object()

    async def odd(thing: object) -> object:
        return {1, 2}

    seq = engine.sequence([odd], [1], kwargs={"odd": {"thing": marker}})
    async with engine:
        seq.start()
        await seq.join()
        records = await seq.records()
    action = records[0].actions[0]
    assert action.result == [1, 2]  # as JSON reads a set back, in memory and in the Log
    assert seq.point(0).record() == records[0]
    assert action.kwargs == {"thing": {"repr": repr(marker)}}
    assert isinstance(records[0], PointRecord)
