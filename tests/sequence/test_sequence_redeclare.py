"""Re-declaring a sequence that the Log holds: a different declaration is refused without a
trace unless ``replace=True`` (progress kept) or ``reset=True`` (a new history)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from sequence_support import START, T0, Lab, stored
from test_sequence_restart import BACKENDS, at

import timecontrol as tc
from timecontrol._events import Event
from timecontrol.sequence import SequenceArgumentError, SequenceMismatchError, SequenceStateError
from timecontrol.sequence._replay import fold


def _first(path: Path, backend: str) -> None:
    """A process that ran point 0 of k (sample at 100, 200, 300) and stopped at 150."""

    async def first() -> None:
        lab = Lab(tc.Engine(store=path))
        seq = lab.engine.sequence(["sample"], [100, 200, 300], name="k")
        async with lab.engine:
            seq.start()
            await anyio.sleep(150)  # virtual time

    at(0, first, backend)


@BACKENDS
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"actions": ["sample", "analyse"]},
         "actions: stored ['sample'], declared ['sample', 'analyse']"),
        ({"timepoints": [100, 250, 300]},
         "timepoints: 3 points stored, 3 declared; from point 1 on stored ['200', '300'] s, "
         "declared ['250', '300'] s"),
        ({"kwargs": {"sample": {"volume_ul": 1}}},
         "kwargs: stored {}, declared {'sample': {'volume_ul': 1}}"),
        ({"on_interrupt": "rerun"}, "on_interrupt: stored 'skip', declared 'rerun'"),
        ({"downtime_grace": 5}, "downtime_grace: stored 60.0, declared 5.0"),
    ],
)  # fmt: skip
def test_a_different_declaration_is_refused_without_a_trace(
    tmp_path: Path, backend: str, change: dict[str, Any], message: str
) -> None:
    path = tmp_path / "lab.sqlite"
    _first(path, backend)
    before = stored(path, "k")

    async def second() -> None:
        lab = Lab(tc.Engine(store=path))
        args: dict[str, Any] = {"actions": ["sample"], "timepoints": [100, 200, 300]}
        args.update(change)
        with pytest.raises(SequenceMismatchError) as info:
            lab.engine.sequence(name="k", **args)
        text = str(info.value)
        assert message in text
        assert "replace=True" in text
        assert "reset=True" in text
        assert "k" not in lab.engine.sequences
        async with lab.engine:
            await anyio.sleep(500)  # virtual time
        assert lab.calls == []

    at(160, second, backend)
    assert stored(path, "k") == before


@BACKENDS
def test_replace_keeps_progress_and_applies_the_new_declaration(
    tmp_path: Path, backend: str
) -> None:
    path = tmp_path / "lab.sqlite"
    _first(path, backend)

    async def second() -> Lab:
        lab = Lab(tc.Engine(store=path))
        seq = lab.engine.sequence(["sample", "analyse"], [100, 300, 350], name="k", replace=True)
        assert seq.resumed
        assert [(p.index, p.offset, p.status) for p in seq.points()] == [
            (0, 100, "succeeded"), (1, 200, "cancelled"), (2, 300, "pending"),
            (3, 350, "pending"),
        ]  # fmt: skip
        assert seq.point(1).reason == "removed by a re-declaration (replace=True)"
        async with lab.engine:
            await seq.join()
        return lab

    lab = at(160, second, backend)
    assert lab.times("sample") == [300, 350]
    assert lab.times("analyse") == [302, 352]
    redeclared = next(e.payload for e in stored(path, "k") if e.kind == "sequence.redeclared")
    assert redeclared["changes"] == {
        "actions": [["sample"], ["sample", "analyse"]],
        "offsets": [[100.0, 200.0, 300.0], [100.0, 300.0, 350.0]],
    }

    async def third() -> list[int]:  # the replaced declaration is the stored one now
        lab = Lab(tc.Engine(store=path))
        seq = lab.engine.sequence(["sample", "analyse"], [100, 300, 350], name="k")
        return [p.index for p in seq.points() if p.status == "succeeded"]

    assert at(400, third, backend) == [0, 2, 3]


@BACKENDS
def test_reset_starts_a_new_history(tmp_path: Path, backend: str) -> None:
    path = tmp_path / "lab.sqlite"
    _first(path, backend)

    async def second() -> list[float]:
        lab = Lab(tc.Engine(store=path))
        seq = lab.engine.sequence(["flush"], [10], name="k", reset=True)
        assert (seq.resumed, seq.state) == (False, "created")
        async with lab.engine:
            seq.start()
            await seq.join()
            assert [r.index for r in await seq.records()] == [0]  # its own history only
        return lab.times("flush")

    assert at(160, second, backend) == [170]
    declared = [e.payload for e in stored(path, "k") if e.kind == "sequence.declared"]
    assert [d["actions"] for d in declared] == [["sample"], ["flush"]]
    assert declared[1]["reset_from"] > 0
    assert "reset_from" not in declared[0]


@BACKENDS
def test_an_action_that_does_not_resolve_is_refused_without_a_trace(
    tmp_path: Path, backend: str
) -> None:
    path = tmp_path / "lab.sqlite"

    async def probe(**kw: Any) -> None:
        return None

    async def first() -> None:
        lab = Lab(tc.Engine(store=path))
        seq = lab.engine.sequence(["sample"], [100], name="k")
        seq.insert(500, actions=[probe])  # an unregistered function, by its name
        seq.start()
        async with lab.engine:
            pass  # (the engine's stop closes the store)

    at(0, first, backend)
    before = stored(path, "k")

    async def second() -> list[float]:
        lab = Lab(tc.Engine(store=path))
        with pytest.raises(SequenceStateError, match="action 'probe', which is neither"):
            lab.engine.sequence(["sample"], [100], name="k")
        assert stored(path, "k") == before
        ran: list[float] = []

        @lab.engine.action
        async def probe() -> None:
            ran.append(lab.engine.clock.time() - T0)

        seq = lab.engine.sequence(["sample"], [100], name="k")
        async with lab.engine:
            await seq.join()
        return ran

    assert at(50, second, backend) == [500]


@pytest.mark.timecontrol(start=START)
async def test_a_removed_sequence_resumes_from_this_processs_log() -> None:
    lab = Lab()
    seq = lab.engine.sequence(["sample"], [100, 200], name="k")
    async with lab.engine:
        seq.start()
        await seq.join()
        lab.engine.sequences.remove("k")
        again = lab.engine.sequence(["sample"], [100, 200], name="k")
        assert (again.resumed, again.state, again.progress) == (True, "finished", 1.0)
        fresh = lab.engine.sequence(["sample"], [100, 200])
        assert fresh.name == "sequence-2"
        lab.engine.sequences.remove("sequence-2")
        assert lab.engine.sequence(["sample"], [5]).name == "sequence-3"  # 2 has a history
    assert lab.times("sample") == [100, 200]


@pytest.mark.timecontrol(start=START)
async def test_bad_flags_are_refused() -> None:
    lab = Lab()
    with pytest.raises(SequenceArgumentError, match="replace must be True or False"):
        lab.engine.sequence(["sample"], name="k", replace=1)  # type: ignore[arg-type]
    with pytest.raises(SequenceArgumentError, match="choose one"):
        lab.engine.sequence(["sample"], name="k", replace=True, reset=True)
    with pytest.raises(SequenceArgumentError, match="on_interrupt='again' is not one of"):
        lab.engine.sequence(["sample"], name="k", on_interrupt="again")
    with pytest.raises(SequenceArgumentError, match="on_downtime='later' is not one of"):
        lab.engine.sequence(["sample"], name="k", on_downtime="later")
    for grace in (-1, float("nan"), "60", True):
        with pytest.raises(SequenceArgumentError, match="downtime_grace="):
            lab.engine.sequence(["sample"], name="k", downtime_grace=grace)  # type: ignore[arg-type]
    assert lab.engine.log.recent(subjects="k") == []
    assert list(lab.engine.sequences) == []


def _event(seq: int, kind: str, payload: dict[str, Any], wall: float = T0) -> Event:
    return Event(seq=seq, mono=0.0, wall=wall, kind=kind, subject="old", payload=payload)


def test_events_without_newer_fields_fold_with_their_defaults() -> None:
    declared = {"actions": ["sample"], "offsets": [100.0]}  # no policies: their defaults
    snap = fold("old", [
        _event(1, "sequence.declared", declared),
        _event(2, "sequence.started", {"start": T0}),
        _event(3, "sequence.point_added", {"index": 1, "kind": "manual", "offset": 5.0,
               "planned": T0 + 5, "actions": ["sample"], "metadata": {}}),
        _event(4, "sequence.point_started", {"index": 1}, wall=T0 + 6),
    ])  # fmt: skip
    assert (snap.definition.on_interrupt, snap.definition.on_downtime) == ("skip", "skip")
    manual = snap.points[1]
    assert (manual.kwargs, manual.started, manual.status) == ({}, T0 + 6, "running")
    assert snap.points[0].planned == T0 + 100


def test_a_newer_declaration_is_refused() -> None:
    with pytest.raises(SequenceStateError, match="reads version 1 declarations"):
        fold("old", [_event(1, "sequence.declared", {"version": 2, "actions": [], "offsets": []})])


@pytest.mark.timecontrol(start=START)
async def test_a_history_without_a_declaration_is_not_resumed() -> None:
    lab = Lab()
    # What an older timecontrol wrote: records, but no sequence.declared.
    lab.engine.log._emit("sequence.started", "old", {"start": T0, "points": 1})
    seq = lab.engine.sequence(["sample"], [100], name="old")
    assert (seq.resumed, seq.state) == (False, "created")
    kinds = [e.kind for e in lab.engine.log.recent(subjects="old")]
    assert kinds == ["sequence.started", "sequence.declared"]


@BACKENDS
def test_start_on_a_resumed_sequence_keeps_the_stored_start(tmp_path: Path, backend: str) -> None:
    path = tmp_path / "lab.sqlite"
    _first(path, backend)

    async def second() -> None:
        lab = Lab(tc.Engine(store=path))
        seq = lab.engine.sequence(["sample"], [100, 200, 300], name="k")
        with pytest.raises(SequenceStateError, match=r"start\(at=.*cannot move it"):
            seq.start(at=T0 + 5)
        seq.start(at=T0)  # the stored start: accepted, nothing changes
        with pytest.raises(SequenceStateError, match="start\\(\\) starts a created sequence once"):
            seq.start()
        async with lab.engine:
            await seq.join()
        assert lab.times("sample") == [200, 300]

    at(160, second, backend)
    started = [e for e in stored(path, "k") if e.kind == "sequence.started"]
    assert len(started) == 1
