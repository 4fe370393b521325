"""Restarts: a sequence re-declared on an engine whose SQLite store holds its history resumes.

Each "process" is its own virtual-clock run on the same store file (one engine at a time,
as one writer per file demands); a crash is a `CrashingStore` that stops writing at a
chosen instant, so that the file holds exactly what a kill -9 then leaves on disk.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest
from sequence_support import T0, CrashingStore, Lab, crash, stored

import timecontrol as tc
from timecontrol.sequence import Sequence
from timecontrol.testing import VirtualClock

R = TypeVar("R")
BACKENDS = pytest.mark.parametrize("backend", ["asyncio", "trio"])


def at(offset: float, fn: Callable[[], Awaitable[R]], backend: str) -> R:
    """Run `fn` as a process whose virtual clock starts `offset` s after T0."""
    return VirtualClock(datetime.fromtimestamp(T0 + offset, UTC)).run(fn, backend=backend)


def declare(lab: Lab, **options: Any) -> Sequence:
    return lab.engine.sequence(
        ["sample"], [100, 200, 300, 400], name="k", kwargs={"sample": {"volume_ul": 20.0}},
        **options,
    )  # fmt: skip


@BACKENDS
def test_a_restart_resumes_the_timeline_with_its_edits(tmp_path: Path, backend: str) -> None:
    path = tmp_path / "lab.sqlite"

    async def first() -> list[float]:
        lab = Lab(tc.Engine(store=path))
        seq = declare(lab)
        assert not seq.resumed
        async with lab.engine:
            seq.start()
            await anyio.sleep(150)  # virtual time
            seq.insert(50, after=1, metadata={"extra": True})  # point 4 at 250
            seq.edit(2, append=["flush"], kwargs={"sample": {"volume_ul": 5.0}})
            await anyio.sleep(10)  # virtual time
            seq.trigger({"why": "colour"})  # point 5, manual, runs at 160
            await anyio.sleep(10)  # virtual time
            seq.pause("refill")
            await anyio.sleep(20)  # virtual time
            assert seq.resume("postpone")["shifted"] == [1, 4, 2, 3]  # 20 s later
            await anyio.sleep(40)  # stopped at 230, after point 1 ran (220) (virtual time)
        return lab.times("sample")

    assert at(0, first, backend) == [100, 160, 220]

    async def second() -> Lab:
        lab = Lab(tc.Engine(store=path))
        seq = declare(lab)
        assert seq.resumed
        assert seq.start_time == datetime.fromtimestamp(T0, UTC)
        assert [p.status for p in sorted(seq.points(), key=lambda p: p.index)] == [
            "succeeded", "succeeded", "pending", "pending", "pending", "succeeded",
        ]  # fmt: skip
        two, four, five = seq.point(2), seq.point(4), seq.point(5)
        assert (two.actions, two.kwargs) == (("sample", "flush"), {"sample": {"volume_ul": 5.0}})
        assert (four.kind, four.offset, four.shift, four.planned) == ("inserted", 250, 20, T0 + 270)
        assert four.metadata == {"extra": True}
        assert (five.kind, five.metadata, five.started) == ("manual", {"why": "colour"}, T0 + 160)
        async with lab.engine:
            seq.start()  # resumed: it has its start already; nothing happens
            await seq.join()
            records = await seq.records()
        assert [r.index for r in records] == [0, 5, 1, 4, 2, 3]
        assert [r.started for r in records[3:]] == [T0 + 270, T0 + 320, T0 + 420]
        return lab

    lab = at(230, second, backend)
    assert lab.times("sample") == [270, 320, 420]  # nothing that ran before runs again
    assert lab.times("flush") == [322]
    assert [c[2]["volume_ul"] for c in lab.calls if c[0] == "sample"] == [20.0, 5.0, 20.0]
    restored = [e.payload for e in stored(path, "k") if e.kind == "sequence.restored"]
    assert restored == [{"interrupted": None, "rerun": False, "last_event": T0 + 222,
                         "policy": "skip", "skipped": [], "caught_up": []}]  # fmt: skip


@BACKENDS
@pytest.mark.parametrize("policy", ["skip", "rerun"])
def test_a_point_running_at_the_crash_is_recorded_interrupted(
    tmp_path: Path, backend: str, policy: str
) -> None:
    path = tmp_path / "lab.sqlite"

    def make(lab: Lab) -> Sequence:
        return lab.engine.sequence(
            ["sample", "analyse"], [100, 200, 300], name="k", on_interrupt=policy
        )

    async def first() -> None:
        store = CrashingStore(path)
        lab = Lab(tc.Engine(store=store))
        seq = make(lab)
        async with lab.engine:
            seq.start()
            # point 1: sample ran 200-202, analyse runs 202-232
            await anyio.sleep(215)  # virtual time
            await crash(lab.engine, store)
        assert lab.times("analyse") == [102, 202]

    at(0, first, backend)

    async def second() -> tuple[Lab, Sequence, list[tuple[int, str]]]:
        lab = Lab(tc.Engine(store=path))
        seq = make(lab)
        one = seq.point(1)
        assert one.status == ("pending" if policy == "rerun" else "interrupted")
        async with lab.engine:
            seq.start()
            await seq.join()
            records = [(r.index, r.status) for r in await seq.records()]
        return lab, seq, records

    lab, seq, records = at(250, second, backend)  # 35 s after the crash
    interrupted = next(e.payload for e in stored(path, "k") if e.payload.get("status")
                       == "interrupted")  # fmt: skip
    assert (interrupted["started"], interrupted["completed"]) == (T0 + 200, None)
    assert [(a["action"], a["status"]) for a in interrupted["actions"]] == [("sample", "succeeded")]
    assert interrupted["rerun"] is (policy == "rerun")
    if policy == "rerun":
        assert interrupted["reason"] == (
            "the process ended while its chain ran; it runs again (on_interrupt='rerun')"
        )
        assert lab.times("sample") == [250, 300]  # at once, not subject to on_downtime
        assert records == [(0, "succeeded"), (1, "interrupted"), (1, "succeeded"),
                           (2, "succeeded")]  # fmt: skip
        assert seq.point(1).record().late == 50
    else:
        assert interrupted["reason"] == "the process ended while its chain ran"
        assert lab.times("sample") == [300]
        assert records == [(0, "succeeded"), (1, "interrupted"), (2, "succeeded")]
    finished = [e.payload for e in stored(path, "k") if e.kind == "sequence.finished"]
    assert finished[-1]["interrupted"] == (0 if policy == "rerun" else 1)


SUCC, SKIP = "succeeded", "skipped"


@BACKENDS
@pytest.mark.parametrize(
    ("policy", "grace", "times", "statuses", "expected"),
    [
        # Down from 150 to 350: 200 fell due 150 s before the restart, 300 only 50 s before.
        ("skip", 60, [350, 400, 500], [SUCC, SKIP, SUCC, SUCC, SUCC],
         {"skipped": [1], "caught_up": [2]}),
        ("skip", 0, [400, 500], [SUCC, SKIP, SKIP, SUCC, SUCC],
         {"skipped": [1, 2], "caught_up": []}),
        ("catch_up", 60, [350, 352, 400, 500], [SUCC] * 5, {"caught_up": [1, 2]}),
        ("postpone", 60, [350, 450, 550, 650], [SUCC] * 5, {"shifted": [1, 2, 3, 4], "by": 150.0}),
        ("postpone", 200, [350, 352, 400, 500], [SUCC] * 5,
         {"shifted": [], "by": 0.0, "caught_up": [1, 2]}),
    ],
)  # fmt: skip
def test_points_due_while_down_follow_on_downtime(
    tmp_path: Path,
    backend: str,
    policy: str,
    grace: float,
    times: list[float],
    statuses: list[str],
    expected: dict[str, object],
) -> None:
    path = tmp_path / "lab.sqlite"

    def make(lab: Lab) -> Sequence:
        return lab.engine.sequence(["sample"], [100, 200, 300, 400, 500], name="d",
                                   on_downtime=policy, downtime_grace=grace)  # fmt: skip

    async def first() -> None:
        lab = Lab(tc.Engine(store=path))
        make(lab).start()
        async with lab.engine:
            await anyio.sleep(150)  # virtual time

    at(0, first, backend)

    async def second() -> tuple[list[float], list[str]]:
        lab = Lab(tc.Engine(store=path))
        seq = make(lab)
        async with lab.engine:
            await seq.join()
        return lab.times("sample"), [p.status for p in sorted(seq.points(), key=lambda p: p.index)]

    assert at(350, second, backend) == (times, statuses)
    restored = next(e.payload for e in stored(path, "d") if e.kind == "sequence.restored")
    assert restored == {"interrupted": None, "rerun": False, "last_event": T0 + 102,
                        "policy": policy, **expected}  # fmt: skip


def test_histories_declared_before_the_grace_existed_keep_no_grace() -> None:
    # A sequence.declared payload without the field reads as grace 0 (what it meant then).
    from timecontrol.sequence._definition import Definition

    old = {"actions": ["sample"], "offsets": [1.0], "on_downtime": "skip"}
    assert Definition.from_json(old).downtime_grace == 0.0
    assert Definition.from_json({**old, "downtime_grace": 60}).downtime_grace == 60.0


@BACKENDS
def test_a_paused_sequence_stays_paused_across_a_restart(tmp_path: Path, backend: str) -> None:
    path = tmp_path / "lab.sqlite"

    async def first() -> None:
        lab = Lab(tc.Engine(store=path))
        seq = declare(lab)
        async with lab.engine:
            seq.start()
            await anyio.sleep(150)  # virtual time
            seq.pause("night")

    at(0, first, backend)

    async def second() -> tuple[dict[str, Any], list[float]]:
        lab = Lab(tc.Engine(store=path))
        seq = declare(lab)
        assert (seq.state, seq.status.paused_at) == ("paused", T0 + 150)
        async with lab.engine:
            await anyio.sleep(100)  # virtual time
            assert lab.times("sample") == []  # paused: the timeline waits
            payload = seq.resume("postpone")  # paused 150 -> 450 (the downtime included)
            await seq.join()
        return payload, lab.times("sample")

    payload, times = at(350, second, backend)
    assert payload == {"policy": "postpone", "paused_for": 300.0, "shifted": [1, 2, 3]}
    assert times == [500, 600, 700]


@BACKENDS
@pytest.mark.parametrize("fail", [False, True])
def test_a_point_whose_actions_all_ended_is_not_interrupted(
    tmp_path: Path, backend: str, fail: bool
) -> None:
    path = tmp_path / "lab.sqlite"

    def make(lab: Lab) -> Sequence:
        return lab.engine.sequence(["sample", "analyse"], [100, 200, 300], name="k",
                                   on_interrupt="rerun")  # fmt: skip

    async def first() -> None:
        store = CrashingStore(path)
        # The crash's window lost point 1's end, but every action's record reached the file.
        store.lose = lambda e: e.kind == "sequence.point" and e.payload["index"] == 1
        lab = Lab(tc.Engine(store=store))
        if fail:
            lab.fail.add("sample")  # skip_rest: analyse is skipped, not run
        seq = make(lab)
        async with lab.engine:
            seq.start()
            await anyio.sleep(250)  # virtual time
            await crash(lab.engine, store)

    at(0, first, backend)

    async def second() -> tuple[Any, list[float]]:
        lab = Lab(tc.Engine(store=path))
        seq = make(lab)
        async with lab.engine:
            await seq.join()
        return seq.point(1).record(), lab.times("sample")

    one, times = at(250, second, backend)
    assert times == [300]  # point 1 does not run again
    if fail:
        assert (one.status, one.reason) == ("failed", "sample: RuntimeError: sample broke")
        assert [a.status for a in one.actions] == ["failed", "skipped"]
        assert one.completed == T0 + 202
    else:
        assert (one.status, one.reason, one.completed) == ("succeeded", "", T0 + 232)
    restored = next(e.payload for e in stored(path, "k") if e.kind == "sequence.restored")
    assert (restored["interrupted"], restored["rerun"]) == (None, False)
