"""Drivers with timecontrol's own limiters: a Command (not too often) and a Control watchdog
(not too seldom) declared on a driver class apply per instance.

Real time, short intervals: the assertions are lower bounds (spacing) and counts, not speed.
"""

from __future__ import annotations

import itertools

import anyio
import pytest
from timecontrol.drivers import Instrument, MockTransport, ScpiInstrument, Setting

from timecontrol.limiters import Command, Control

pytestmark = pytest.mark.anyio

GAP = 0.02


class Heater(ScpiInstrument):
    """Commands at most every 20 ms; must be commanded every 60 ms, else switched off."""

    default_timeout = 0.05
    power = Setting("PWR", float, limits=(0.0, 100.0), unit="%", primary=True)
    limiters = (lambda inst: Command(interval=GAP, name=f"{inst.name}.commands"),)
    watchdogs = (lambda inst: Control(0.06, on_trip=inst.safe_off, name=f"{inst.name}.watch"),)

    async def safe_off(self) -> None:
        """The watchdog's safety action: it uses the instrument like any other caller."""
        await self.power.set(0.0)


def device(log: list[tuple[float, str]]) -> MockTransport:
    def handler(message: str) -> str | None:
        log.append((anyio.current_time(), message))
        return {"*OPC?": "1", "PWR?": "+5.0E+01"}.get(message)

    return MockTransport(handler)


async def test_command_limiter_spaces_each_instances_commands() -> None:
    log_a: list[tuple[float, str]] = []
    log_b: list[tuple[float, str]] = []
    a, b = Heater(device(log_a), name="a"), Heater(device(log_b), name="b")
    assert a.limiter_objects[0] is not b.limiter_objects[0]
    async with a, b, anyio.create_task_group() as tg:
        for inst in (a, b):
            for _ in range(3):
                tg.start_soon(inst.power.get)
    for log in (log_a, log_b):
        times = [t for t, message in log if message == "PWR?"]
        assert len(times) == 3
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert min(gaps) >= GAP * 0.95  # spaced per instance (timer granularity allowed)
    command = a.limiter_objects[0]
    assert isinstance(command, Command)
    assert command.statistics().calls == 3


async def test_control_watchdog_is_fed_by_commands_and_trips_when_starved() -> None:
    log: list[tuple[float, str]] = []
    async with Heater(device(log), name="h") as heater:
        watch = heater.watchdog_objects[0]
        assert isinstance(watch, Control)
        assert watch.running
        for _ in range(5):  # commanded often enough: no trip
            await heater.power.set(40.0)
            await anyio.sleep(0.01)  # real sockets: not virtual
        assert watch.statistics().trips == 0
        await anyio.sleep(0.2)  # not virtual: starved, the watchdog trips, heater off
        assert watch.statistics().trips >= 1
        assert "PWR 0" in [message for _, message in log]
    assert not watch.running  # stopped with the connection


async def test_watchdog_declaration_must_fit() -> None:
    class Bad(Instrument):
        watchdogs = (lambda: Command(interval=1.0),)  # a limiter has no feed()

    with pytest.raises(Exception, match="lacks"):
        Bad(MockTransport())
