"""Bad input raises a TimeControlError naming the value, and leaves no trace."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sequence_support import START, T0, Lab

import timecontrol as tc
from timecontrol.errors import UnknownActionError
from timecontrol.sequence import (
    PointNotFoundError,
    SequenceArgumentError,
    SequenceStateError,
)


def _quiet(lab: Lab) -> int:
    return lab.engine.log.last_seq


def test_bad_construction_arguments() -> None:
    lab = Lab()

    def sync_fn() -> None: ...

    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"actions": ["nope"]}, UnknownActionError, "no action named 'nope'"),
        ({"actions": ["timecontrol.sequence"]}, UnknownActionError, "timecontrol.sequence"),
        ({"actions": [sync_fn]}, SequenceArgumentError, "neither a registered action name"),
        ({"actions": []}, SequenceArgumentError, "actions is empty"),
        ({"actions": 3}, SequenceArgumentError, "actions=3 is not a list"),
        ({"on_error": "ignore"}, SequenceArgumentError, "on_error='ignore' is not one of"),
        ({"on_pause": "wait"}, SequenceArgumentError, "on_pause='wait' is not one of"),
        ({"kwargs": {"flush": {}}}, SequenceArgumentError, "'flush' is not an action of"),
        ({"kwargs": {"sample": 3}}, SequenceArgumentError, "is not a dict of keyword"),
        ({"kwargs": ["sample"]}, SequenceArgumentError, "is not a dict keyed by action name"),
        ({"timepoints": tc.interval(minutes=1)}, SequenceArgumentError, "time-point trigger"),
        ({"timepoints": [10, -1]}, SequenceArgumentError, "timepoints[1]=-1"),
        ({"timepoints": "60"}, SequenceArgumentError, "timepoints='60'"),
        ({"timepoints": tc.timepoints.block(200_000, 1)}, SequenceArgumentError, "at most"),
        ({"name": "has space"}, SequenceArgumentError, "'has space' is not accepted"),
        ({"name": ""}, SequenceArgumentError, "'' is not accepted"),
    ]
    for extra, error, message in cases:
        args: dict[str, Any] = {"actions": ["sample"], "timepoints": [10], **extra}
        with pytest.raises(error, match=_escape(message)):
            lab.engine.sequence(args.pop("actions"), args.pop("timepoints"), **args)
    assert len(lab.engine.sequences) == 0
    manual = tc.timepoints.block(1, 10).with_now(START)
    with pytest.raises(SequenceArgumentError, match="manual instants"):
        lab.engine.sequence(["sample"], manual)
    lab.engine.sequence(["sample"], [1], name="dup")
    with pytest.raises(SequenceArgumentError, match="'dup' exists already"):
        lab.engine.sequence(["sample"], [1], name="dup")
    with pytest.raises(tc.TimeControlError):
        lab.engine.sequences["missing"]


def _escape(text: str) -> str:
    return re.escape(text)


@pytest.mark.timecontrol(start=START)
async def test_bad_calls_on_a_running_sequence_change_nothing() -> None:
    lab = Lab()
    seq = lab.engine.sequence(["sample"], [100, 200], name="s")
    with pytest.raises(SequenceStateError, match="call start"):
        seq.trigger()
    with pytest.raises(SequenceStateError, match="has not started"):
        await seq.join()
    with pytest.raises(SequenceStateError, match="only a running sequence pauses"):
        seq.pause()
    async with lab.engine:
        seq.start()
        before = (_quiet(lab), len(seq), [p.chain for p in seq.points()])
        bad_calls = [
            (seq.start, SequenceStateError, "start() starts a created sequence once"),
            (seq.resume, SequenceStateError, "resume() needs a paused sequence"),
            (lambda: seq.insert(-5), SequenceArgumentError, "offset=-5"),
            (lambda: seq.insert(float("nan")), SequenceArgumentError, "offset=nan"),
            (lambda: seq.insert("5"), SequenceArgumentError, "offset='5' is not seconds"),
            (lambda: seq.insert(5, after=9), PointNotFoundError, "has no point 9"),
            (lambda: seq.insert(5, after=True), SequenceArgumentError, "after=True"),
            (lambda: seq.insert(-150, after=0), SequenceArgumentError, "lands before the start"),
            (lambda: seq.insert(5, append=["nope"]), UnknownActionError, "'nope'"),
            (lambda: seq.insert(5, metadata={"t": START}), SequenceArgumentError, "plain JSON"),
            (lambda: seq.insert(5, kwargs={"flush": {}}), SequenceArgumentError, "'flush'"),
            (lambda: seq.edit(0, actions=[]), SequenceArgumentError, "actions is empty"),
            (lambda: seq.edit(7), PointNotFoundError, "has no point 7"),
            (lambda: seq.trigger({1: 2}), SequenceArgumentError, "str keys"),
            (lambda: seq.trigger(kwargs={"sample": {1: 2}}), SequenceArgumentError, "str keys"),
            (lambda: seq.pause(reason=3), SequenceArgumentError, "reason must be a str"),
            (lambda: seq.extend(tc.timepoints.block(2, 5, start=START)), SequenceArgumentError,
             "their own start"),
        ]  # fmt: skip
        for call, error, message in bad_calls:
            with pytest.raises(error, match=_escape(message)):
                call()
        assert (_quiet(lab), len(seq), [p.chain for p in seq.points()]) == before
        seq.pause()
        with pytest.raises(SequenceArgumentError, match="policy='later' is not one of"):
            seq.resume("later")
        assert seq.state == "paused"
        seq.resume()
        await seq.join()
        with pytest.raises(SequenceStateError, match="point 0 of sequence 's' is succeeded"):
            seq.edit(0, append=["flush"])
        seq.cancel()  # already finished: nothing to cancel
        assert seq.state == "finished"


@pytest.mark.timecontrol(start=START)
async def test_a_cancelled_sequence_refuses_new_points_and_a_second_start() -> None:
    lab = Lab()
    seq = lab.engine.sequence(["sample"], [100])
    async with lab.engine:
        seq.start(at=START + timedelta(seconds=5))
        assert seq.point(0).planned == T0 + 105
        seq.cancel()
        for call in (lambda: seq.insert(5), seq.trigger, lambda: seq.extend([1])):
            with pytest.raises(SequenceStateError, match="is cancelled"):
                call()
        with pytest.raises(SequenceStateError):
            seq.start()
        await seq.join()
    assert lab.times("sample") == []


def test_a_bound_start_and_an_explicit_one_conflict() -> None:
    lab = Lab()
    seq = lab.engine.sequence(["sample"], tc.timepoints.block(2, 5, start=START))
    with pytest.raises(SequenceArgumentError, match="their own start"):
        seq.start(at=T0)
    assert seq.state == "created"


@pytest.mark.timecontrol(start=START)
async def test_a_running_sequence_cannot_be_removed() -> None:
    lab = Lab()
    seq = lab.engine.sequence(["sample"], [100], name="busy")
    async with lab.engine:
        seq.start()
        with pytest.raises(SequenceStateError, match="cancel it"):
            lab.engine.sequences.remove("busy")
        assert "busy" in lab.engine.sequences
        seq.cancel()
