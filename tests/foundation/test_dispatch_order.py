"""Runs due at the same instant start in (due, priority, seq) order, on asyncio and on trio."""

from __future__ import annotations

import random

import anyio
import pytest

import timecontrol as tc
from timecontrol.testing import VirtualClock


@pytest.mark.timecontrol
async def test_same_instant_runs_start_in_due_priority_seq_order(
    virtual_clock: VirtualClock,
) -> None:
    engine = tc.Engine()
    started: list[int] = []

    @engine.action
    async def work(n: int) -> None:
        started.append(n)
        await anyio.sleep(1)  # virtual time

    at = virtual_clock.time() + 10
    rng = random.Random(7)
    expected: list[tuple[float, int, int, int]] = []
    async with engine:
        for n in range(60):
            due = at + rng.choice([0.0, 0.0, 0.5])
            priority = rng.choice([-1, 0, 0, 3])
            intent = engine.submit("work", at=due, kwargs={"n": n}, priority=priority)
            expected.append((due, priority, intent.seq, n))
        await anyio.sleep(20)  # virtual time
    assert started == [n for *_, n in sorted(expected)]
