"""Error policies, per-point changes, manual triggers and inserted points."""

from __future__ import annotations

import anyio
import pytest
from sequence_support import START, T0, Lab

import timecontrol as tc


@pytest.mark.timecontrol(start=START)
async def test_the_first_error_skips_the_rest_of_the_chain_by_default() -> None:
    lab = Lab()
    lab.fail = {"sample"}
    seq = lab.engine.sequence(["sample", "analyse", "flush"], [10, 100])
    async with lab.engine:
        seq.start()
        await seq.join()
    assert lab.times("analyse") == []  # skipped at both points
    assert lab.times("sample") == [10, 100]  # the next point still runs
    point = seq.point(0).record()
    assert point.status == "failed"
    assert point.reason == "sample: RuntimeError: sample broke"
    assert [(a.action, a.status) for a in point.actions] == [
        ("sample", "failed"), ("analyse", "skipped"), ("flush", "skipped"),
    ]  # fmt: skip
    failed = point.actions[0]
    assert (failed.error, failed.message, failed.duration) == ("RuntimeError", "sample broke", 2)
    assert "RuntimeError: sample broke" in (failed.traceback or "")
    assert point.actions[1].started is None


@pytest.mark.timecontrol(start=START)
async def test_continue_runs_the_whole_chain_and_the_point_still_fails() -> None:
    lab = Lab()
    lab.fail = {"sample"}
    seq = lab.engine.sequence(["sample", "analyse"], [10], on_error="continue")
    async with lab.engine:
        seq.start()
        await seq.join()
    assert lab.times("analyse") == [12]
    record = seq.point(0).record()
    assert record.status == "failed"
    assert [a.status for a in record.actions] == ["failed", "succeeded"]


@pytest.mark.timecontrol(start=START)
async def test_pause_on_error_pauses_the_sequence_until_resumed() -> None:
    lab = Lab()
    lab.fail = {"analyse"}
    seq = lab.engine.sequence(["sample", "analyse", "flush"], [10, 100, 200], on_error="pause")
    async with lab.engine:
        seq.start()
        await anyio.sleep(500)  # virtual time: 100 and 200 fall due while paused
        assert seq.state == "paused"
        assert lab.times("sample") == [10]
        lab.fail = set()
        payload = seq.resume("catch_up")
        await seq.join()
    assert payload == {"policy": "catch_up", "paused_for": 458.0, "caught_up": [1, 2]}
    assert lab.times("sample") == [10, 500, 537]  # caught up on resume, one after the other
    assert lab.times("flush") == [532, 569]
    paused = lab.engine.log.recent(kinds="sequence.paused")[0].payload
    assert paused["reason"] == "action 'analyse' failed at point 0"
    assert paused["at"] == T0 + 42


@pytest.mark.timecontrol(start=START)
async def test_per_point_chains_and_kwargs() -> None:
    lab = Lab()
    seq = lab.engine.sequence(
        ["sample", "analyse"], [10, 100, 200, 300], kwargs={"sample": {"volume_ul": 5.0}}
    )
    seq.edit(1, append=["flush"], kwargs={"flush": {"solvent": "MeCN"}})
    seq.edit(2, actions=["flush"], metadata={"why": "blank"})
    seq.edit(3, kwargs={"sample": {"volume_ul": 50.0, "vial": 3}})
    async with lab.engine:
        seq.start()
        await seq.join()
    assert [(n, t) for n, t, _ in lab.calls] == [
        ("sample", 10), ("analyse", 12),
        ("sample", 100), ("analyse", 102), ("flush", 132),
        ("flush", 200),
        ("sample", 300), ("analyse", 302),
    ]  # fmt: skip
    kwargs = [kw for _, _, kw in lab.calls]
    assert kwargs[4] == {"solvent": "MeCN"}
    assert kwargs[6] == {"volume_ul": 50.0, "vial": 3}  # the point's own, over the sequence's
    assert kwargs[0] == {"volume_ul": 5.0}
    assert seq.point(2).record().metadata == {"why": "blank"}
    edits = lab.engine.log.recent(kinds="sequence.point_edited")
    assert [e.payload["index"] for e in edits] == [1, 2, 3]


@pytest.mark.timecontrol(start=START)
async def test_a_manual_trigger_waits_for_the_running_point_and_takes_no_planned_one() -> None:
    lab = Lab()
    seq = lab.engine.sequence(["sample", "analyse"], tc.timepoints.block(3, 100))
    async with lab.engine:
        seq.start()
        await anyio.sleep(105)  # point 0 (at 100) is running until 132 (virtual time)
        manual = seq.trigger(
            {"why": "colour change"}, append=["flush"], kwargs={"sample": {"volume_ul": 1.0}}
        )
        assert (manual.kind, manual.offset, manual.planned) == ("manual", 105, T0 + 105)
        record = await manual.wait()
        assert lab.engine.clock.time() == T0 + 132 + 37
        await seq.join()
    assert lab.times("sample") == [100, 132, 200, 300]  # 200 and 300 still run
    assert record.manual
    assert record.metadata == {"why": "colour change"}
    assert record.status == "succeeded"
    assert record.started == T0 + 132
    assert [a.action for a in record.actions] == ["sample", "analyse", "flush"]
    assert lab.calls[2][2] == {"volume_ul": 1.0}
    assert [p.index for p in seq.points()] == [0, 3, 1, 2]  # time order
    added = lab.engine.log.recent(kinds="sequence.point_added")[0].payload
    assert added["kind"] == "manual"
    assert added["metadata"] == {"why": "colour change"}


@pytest.mark.timecontrol(start=START)
async def test_inserting_points_while_running() -> None:
    lab = Lab()
    seq = lab.engine.sequence(["sample"], tc.timepoints.block(3, 100))
    async with lab.engine:
        seq.start()
        await anyio.sleep(150)  # virtual time
        a = seq.insert(250)  # from the start
        b = seq.insert(10, after=1)  # 10 s after point 1 (at 200)
        c = seq.insert(-20, after=2, actions=["flush"])  # 20 s before point 2 (at 300)
        d = seq.insert(60, after="end")  # after the latest point (300)
        assert seq.remaining == 6
        await seq.join()
    assert [a.offset, b.offset, c.offset, d.offset] == [250, 210, 280, 360]
    assert lab.times("sample") == [100, 200, 210, 250, 300, 360]
    assert lab.times("flush") == [280]
    added = [e.payload for e in lab.engine.log.recent(kinds="sequence.point_added")]
    assert [p["relative_to"] for p in added] == [None, 1, 2, 2]
    assert [p["planned"] for p in added] == [T0 + 250, T0 + 210, T0 + 280, T0 + 360]


@pytest.mark.timecontrol(start=START)
async def test_extend_appends_hein_style_pairs_after_the_last_point() -> None:
    lab = Lab()
    seq = lab.engine.sequence(["sample"], tc.timepoints.block(2, 60))
    points = seq.extend(tc.timepoints.pairs((2, 30), (1, 100)))
    assert [p.offset for p in points] == [150, 180, 280]
    async with lab.engine:
        seq.start()
        await seq.join()
    assert lab.times("sample") == [60, 120, 150, 180, 280]


@pytest.mark.timecontrol(start=START)
async def test_a_finished_sequence_takes_a_manual_point_and_finishes_again() -> None:
    lab = Lab()
    seq = lab.engine.sequence(["sample"], [10])
    async with lab.engine:
        seq.start()
        await seq.join()
        assert seq.state == "finished"
        await anyio.sleep(50)  # virtual time
        seq.trigger()
        assert seq.state == "running"
        await seq.join()
    assert lab.times("sample") == [10, 62]
    assert len(lab.engine.log.recent(kinds="sequence.finished")) == 2
