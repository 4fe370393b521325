"""An interval job with a `start` runs on the start's grid, to the microsecond."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
import pytest

import timecontrol as tc
from timecontrol.testing import VirtualClock


@pytest.mark.timecontrol(start="2026-05-04T08:00:00+00:00")
async def test_hourly_interval_from_a_start_fires_on_its_grid(virtual_clock: VirtualClock) -> None:
    engine = tc.Engine()
    fired: list[datetime] = []

    @engine.action
    async def read() -> None:
        fired.append(virtual_clock.now().astimezone(UTC))

    start = datetime(2026, 5, 4, 9, 30, 0, 250_000, tzinfo=UTC)
    async with engine:
        engine.add_job("read", tc.interval(hours=1), id="hourly", start=start)
        await anyio.sleep(4 * 3600)  # virtual time
    assert fired == [start + timedelta(hours=k) for k in range(3)]
    assert engine.get_job("hourly").trigger.to_json()["anchor"] is not None
