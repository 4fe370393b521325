"""Triggers driving a loop on virtual time: fire times are slept to, exactly, with no real waits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import timecontrol.triggers as T
from timecontrol import current_clock
from timecontrol.testing import run


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_loop_sleeping_to_each_fire_time_across_spring_forward(backend: str) -> None:
    # 2026-03-29 00:30 UTC is 01:30 CET, half an hour before Europe's clocks jump to 03:00.
    trigger = T.cron("*/15 * * * *", tz="Europe/Berlin") | T.timepoints.pairs(
        (2, 600), tz="Europe/Berlin"
    )

    async def main() -> list[tuple[str, float]]:
        clock = current_clock()
        woke: list[tuple[str, float]] = []
        t: datetime | None = clock.now()
        for _ in range(5):
            assert t is not None
            t = trigger.next(t)
            assert t is not None
            await clock.sleep_until_wall(t)
            woke.append((t.isoformat(), clock.now().timestamp() - t.timestamp()))
        return woke

    woke = run(main, start=datetime(2026, 3, 29, 0, 30, tzinfo=UTC), backend=backend)  # type: ignore[arg-type]
    assert [w[0] for w in woke] == [
        "2026-03-29T01:40:00+01:00",  # time point +600 s
        "2026-03-29T01:45:00+01:00",
        "2026-03-29T01:50:00+01:00",  # time point +1200 s
        "2026-03-29T03:00:00+02:00",  # 02:00-02:45 do not exist: once, at the gap's end
        "2026-03-29T03:15:00+02:00",
    ]
    assert all(abs(late) < 1e-3 for _, late in woke)
