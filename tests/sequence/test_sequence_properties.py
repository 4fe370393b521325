"""Property: for any inserted and manual points, each point runs exactly once, in time order,
one at a time, and each chain's actions run in order."""

from __future__ import annotations

import itertools
from typing import Any

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sequence_support import START, T0

import timecontrol as tc
from timecontrol.sequence import Sequence
from timecontrol.testing import VirtualClock

# An operation at a virtual instant: insert a point (offset from now, or after a point), or
# trigger one by hand; each with a chain of 1-3 actions of various durations.
_chain = st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3)
_op = st.tuples(
    st.integers(0, 400),  # when (seconds after the start)
    st.sampled_from(["insert", "after", "manual"]),
    st.integers(0, 300),  # offset from now, or from the point referred to
    _chain,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    planned=st.lists(st.integers(0, 500), max_size=8),
    ops=st.lists(_op, max_size=10),
    durations=st.fixed_dictionaries({n: st.integers(0, 40) for n in "abc"}),
    backend=st.sampled_from(["asyncio", "trio"]),
)
def test_every_point_runs_once_in_time_order(
    planned: list[int], ops: list[tuple[int, str, int, list[str]]],
    durations: dict[str, int], backend: str,
) -> None:  # fmt: skip
    calls: list[tuple[int, str, float, float]] = []  # (point, action, start, end)

    async def main() -> Sequence:
        engine = tc.Engine()
        for name in "abc":
            engine.action(_action(engine, name, durations[name], calls), name=name)
        seq = engine.sequence(["a"], planned)
        async with engine:
            seq.start()
            for when, kind, offset, chain in sorted(ops, key=lambda op: op[0]):
                await anyio.sleep(max(0.0, T0 + when - engine.clock.time()))
                now = engine.clock.time() - T0
                if kind == "manual":
                    seq.trigger(actions=chain, metadata={"at": now})
                elif kind == "after" and len(seq):
                    ref = seq.points()[-1]  # the latest point: its time is not yet past
                    seq.insert(max(offset, now - ref.offset - ref.shift), after=ref.index,
                               actions=chain)  # fmt: skip
                else:
                    seq.insert(now + offset, actions=chain)
            await seq.join()
        return seq

    seq = VirtualClock(START).run(main, backend=backend)
    points = seq.points()
    assert all(p.status == "succeeded" for p in points)
    # exactly once each, chains in order
    by_point: dict[int, list[str]] = {}
    for index, action, _, _ in calls:
        by_point.setdefault(index, []).append(action)
    assert by_point == {p.index: list(p.actions) for p in points}
    # in time order (planned, then index), never overlapping, never early
    order = [index for index, *_ in calls]
    ran = list(dict.fromkeys(order))
    expected = sorted(points, key=lambda p: (p.planned, p.index))
    assert ran == [p.index for p in expected]
    for (_, _, _, end), (_, _, start, _) in itertools.pairwise(calls):
        assert start >= end
    for p in points:
        assert p.started is not None
        assert p.planned is not None
        assert p.started >= p.planned


def _action(
    engine: tc.Engine, name: str, seconds: int, calls: list[tuple[int, str, float, float]]
) -> Any:
    async def act() -> None:
        # The running point: the one whose chain started last and has not completed.
        seq = next(iter(engine.sequences))
        index = seq.status.running
        assert index is not None
        start = engine.clock.time()
        await anyio.sleep(seconds)
        calls.append((index, name, start, engine.clock.time()))

    act.__name__ = name
    return act
