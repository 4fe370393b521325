"""Property: at any moment, the fold of a sequence's Log events (what a restart rebuilds)
equals the live sequence: every point's plan, chain, kwargs, metadata, status and records,
and the sequence's state, start and pause."""

from __future__ import annotations

from typing import Any

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sequence_support import START, T0, Lab

from timecontrol.sequence import Sequence
from timecontrol.sequence import _kinds as k
from timecontrol.sequence._replay import fold
from timecontrol.testing import VirtualClock

_op = st.tuples(
    st.integers(0, 600),  # when (seconds after the start)
    st.sampled_from(["insert", "after", "manual", "edit", "pause", "fail"]),
    st.integers(0, 300),  # an offset, or which point
    st.sampled_from(["postpone", "catch_up", "skip"]),
)


def _live(seq: Sequence) -> list[tuple[Any, ...]]:
    return [
        (p.index, p.kind, p.offset, p.shift, p.planned, p.status, list(p.actions), p.kwargs,
         p.metadata, p.started, p.records if p.status != "pending" else [])
        for p in sorted(seq.points(), key=lambda p: p.index)
    ]  # fmt: skip


def _folded(seq: Sequence, lab: Lab) -> tuple[Any, list[tuple[Any, ...]]]:
    snap = fold(seq.name, lab.engine.log.recent(kinds=k.ALL, subjects=seq.name))
    points = [
        (p.index, p.kind, p.offset, p.shift, p.planned, p.status, p.names, p.kwargs,
         p.metadata, p.started, p.records)
        for p in snap.points
    ]  # fmt: skip
    return (snap.state, snap.start, snap.paused_at), points


async def _apply(seq: Sequence, lab: Lab, op: tuple[int, str, int, str], now: float) -> None:
    _, kind, n, policy = op
    pending = [p for p in seq.points() if p.status == "pending"]
    if kind == "insert":
        seq.insert(now + n, kwargs={"sample": {"volume_ul": n}})
    elif kind == "after" and seq.points():
        ref = seq.points()[-1]
        seq.insert(max(n, now - ref.offset - ref.shift), after=ref.index, append=["flush"])
    elif kind == "manual":
        seq.trigger({"n": n})
    elif kind == "edit" and pending:
        seq.edit(pending[n % len(pending)].index, append=["flush"], metadata={"e": n})
    elif kind == "pause" and seq.state == "running":
        seq.pause(f"p{n}")
        _check(seq, lab)
        await anyio.sleep(n)  # virtual time; points fall due meanwhile
        _check(seq, lab)
        if seq.state == "paused":
            seq.resume(policy)
    elif kind == "fail":
        lab.fail ^= {"flush"}


def _check(seq: Sequence, lab: Lab) -> None:
    state, points = _folded(seq, lab)
    assert state == (seq.state, T0, seq.status.paused_at)
    assert points == _live(seq)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    planned=st.lists(st.integers(0, 500), max_size=6),
    ops=st.lists(_op, max_size=10),
    on_error=st.sampled_from(["skip_rest", "continue", "pause"]),
    backend=st.sampled_from(["asyncio", "trio"]),
)
def test_the_fold_of_the_log_is_the_live_sequence(
    planned: list[int], ops: list[tuple[int, str, int, str]], on_error: str, backend: str
) -> None:
    async def main() -> int:
        lab = Lab()
        seq = lab.engine.sequence(["sample", "flush"], planned, name="f", on_error=on_error)
        checks = 0
        async with lab.engine:
            seq.start()
            for op in sorted(ops, key=lambda op: op[0]):
                await anyio.sleep(max(0.0, T0 + op[0] - lab.engine.clock.time()))
                await _apply(seq, lab, op, lab.engine.clock.time() - T0)
                _check(seq, lab)
                checks += 1
            lab.fail.clear()  # (on_error="pause" would pause again and again)
            while seq.state != "finished":
                if seq.state == "paused":
                    seq.resume()
                with anyio.move_on_after(10_000):  # virtual time
                    await seq.join()
        state, points = _folded(seq, lab)
        assert state == ("finished", T0, None)
        assert points == _live(seq)
        return checks

    assert VirtualClock(START).run(main, backend=backend) == len(ops)
