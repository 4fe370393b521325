"""Pausing a sequence (three policies), the engine's gate and panic, cancel, and join."""

from __future__ import annotations

import anyio
import pytest
from sequence_support import START, T0, Lab

import timecontrol as tc

POINTS = [100, 200, 300, 400, 500]


async def _paused_from_150_to_320(lab: Lab, policy: str) -> dict[str, object]:
    seq = lab.engine.sequence(["sample"], POINTS, name="s")
    async with lab.engine:
        seq.start()
        await anyio.sleep(150)  # virtual time
        seq.pause("refill the solvent")
        assert seq.state == "paused"
        await anyio.sleep(170)  # 200 and 300 fall due meanwhile; virtual time
        payload = seq.resume(policy)
        await seq.join()
    return payload


@pytest.mark.timecontrol(start=START)
async def test_postpone_shifts_the_rest_of_the_timeline() -> None:
    lab = Lab()
    payload = await _paused_from_150_to_320(lab, "postpone")
    assert payload == {"policy": "postpone", "paused_for": 170.0, "shifted": [1, 2, 3, 4]}
    assert lab.times("sample") == [100, 370, 470, 570, 670]
    point = lab.engine.sequences["s"].point(1).record()
    assert (point.offset, point.shift, point.planned, point.late) == (200, 170, T0 + 370, 0)


@pytest.mark.timecontrol(start=START)
async def test_catch_up_runs_the_missed_points_on_resume() -> None:
    lab = Lab()
    payload = await _paused_from_150_to_320(lab, "catch_up")
    assert payload == {"policy": "catch_up", "paused_for": 170.0, "caught_up": [1, 2]}
    assert lab.times("sample") == [100, 320, 322, 400, 500]


@pytest.mark.timecontrol(start=START)
async def test_skip_records_the_missed_points_as_skipped() -> None:
    lab = Lab()
    payload = await _paused_from_150_to_320(lab, "skip")
    assert payload == {"policy": "skip", "paused_for": 170.0, "skipped": [1, 2]}
    assert lab.times("sample") == [100, 400, 500]
    seq = lab.engine.sequences["s"]
    records = await seq.records()
    assert [(r.index, r.status) for r in records] == [
        (0, "succeeded"), (1, "skipped"), (2, "skipped"), (3, "succeeded"), (4, "succeeded"),
    ]  # fmt: skip
    assert records[1].reason == "fell due while the sequence was paused"
    assert records[1].started is None
    assert records[1].actions == ()
    kinds = [e.kind for e in lab.engine.log.recent(subjects="s") if "paused" in e.kind
             or "resumed" in e.kind]  # fmt: skip
    assert kinds == ["sequence.paused", "sequence.resumed"]


@pytest.mark.timecontrol(start=START)
async def test_the_default_policy_is_the_sequences_own() -> None:
    lab = Lab()
    seq = lab.engine.sequence(["sample"], [100, 200], on_pause="postpone")
    async with lab.engine:
        seq.start()
        seq.pause()
        await anyio.sleep(50)  # virtual time
        assert seq.resume()["policy"] == "postpone"
        await seq.join()
    assert lab.times("sample") == [150, 250]


@pytest.mark.timecontrol(start=START)
async def test_a_manual_trigger_runs_while_paused() -> None:
    lab = Lab()
    seq = lab.engine.sequence(["sample"], [100])
    async with lab.engine:
        seq.start()
        seq.pause()
        await anyio.sleep(10)  # virtual time
        record = await seq.trigger({"by": "operator"}).wait()
        assert record.started == T0 + 10
        await anyio.sleep(200)  # virtual time
        assert lab.times("sample") == [10]  # the planned point waits for resume
        seq.resume("catch_up")
        await seq.join()
    assert lab.times("sample") == [10, 212]  # resumed at 12 + 200


@pytest.mark.timecontrol(start=START)
async def test_join_returns_while_the_engine_has_a_recurring_job() -> None:
    lab = Lab()
    lab.engine.add_job("flush", tc.interval(seconds=45), id="forever")
    seq = lab.engine.sequence(["sample"], [100, 200])
    async with lab.engine:
        seq.start()
        await seq.join()
        assert lab.engine.clock.time() == T0 + 202
        with anyio.move_on_after(1000):  # virtual time
            await lab.engine.wait_idle()  # never idle: the job recurs
            pytest.fail("wait_idle returned with a recurring job")


@pytest.mark.timecontrol(start=START)
async def test_the_engines_gate_holds_points_and_they_run_on_release() -> None:
    lab = Lab()
    seq = lab.engine.sequence(["sample"], [100, 200, 300])
    async with lab.engine:
        seq.start()
        await anyio.sleep(150)  # virtual time
        lab.engine.hold_dispatch("maintenance")
        await anyio.sleep(200)  # 200 and 300 fall due behind the gate (virtual time)
        assert lab.times("sample") == [100]
        lab.engine.release_dispatch("maintenance")
        await seq.join()
    assert lab.times("sample") == [100, 350, 352]


@pytest.mark.timecontrol(start=START)
async def test_panic_cancels_the_running_chain_and_holds_the_rest() -> None:
    lab = Lab()
    seq = lab.engine.sequence(["sample", "analyse"], [100, 200, 300])
    async with lab.engine:
        seq.start()
        await anyio.sleep(110)  # analyse of point 0 is running (virtual time)
        lab.engine.panic()
        await anyio.sleep(300)  # virtual time
        assert lab.times("sample") == [100]
        lab.engine.all_is_well()
        await seq.join()
    assert lab.times("sample") == [100, 410, 442]
    first = seq.point(0).record()
    assert first.status == "cancelled"
    assert [(a.action, a.status, a.duration) for a in first.actions] == [
        ("sample", "succeeded", 2), ("analyse", "cancelled", 8),
    ]  # fmt: skip
    assert [p.status for p in seq.points()] == ["cancelled", "succeeded", "succeeded"]


@pytest.mark.timecontrol(start=START)
async def test_cancel_ends_the_sequence_after_the_running_action() -> None:
    lab = Lab()
    seq = lab.engine.sequence(["sample", "analyse"], [100, 200, 300])
    async with lab.engine:
        seq.start()
        await anyio.sleep(101)  # sample of point 0 runs until 102 (virtual time)
        assert seq.cancel("aborted by operator") == 2
        assert seq.cancel() == 0  # already over
        await seq.join()
        assert lab.engine.clock.time() == T0 + 102
        await anyio.sleep(500)  # virtual time
    assert lab.times("sample") == [100]
    assert lab.times("analyse") == []
    assert [p.status for p in seq.points()] == ["cancelled"] * 3
    assert [a.status for a in seq.point(0).records] == ["succeeded", "cancelled"]
    assert seq.point(1).reason == "aborted by operator"
    payload = lab.engine.log.recent(kinds="sequence.cancelled")[0].payload
    assert payload == {"reason": "aborted by operator", "cancelled": [1, 2], "running": 0}


@pytest.mark.timecontrol(start=START)
async def test_status_progress_and_repr() -> None:
    lab = Lab()
    seq = lab.engine.sequence(["sample"], [100, 200, 300, 400], name="k")
    async with lab.engine:
        seq.start()
        await anyio.sleep(201)  # virtual time
        status = seq.status
        assert (status.state, status.points, status.done, status.remaining) == ("running", 4, 1, 2)
        assert status.running == 1
        assert status.next_planned == T0 + 300
        assert seq.progress == 0.25
        assert repr(seq) == "<Sequence 'k' running 1/4 done, 2 remaining, chain=['sample']>"
        assert "k:running" in repr(lab.engine.sequences)
        assert list(lab.engine.sequences) == [seq]
        assert "k" in lab.engine.sequences
        await seq.join()
    assert seq.progress == 1.0
    assert lab.engine.sequences.remove("k") is seq
    assert len(lab.engine.sequences) == 0
