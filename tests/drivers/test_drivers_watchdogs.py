"""A Control watchdog declared on a driver: after a trip, the next *guarded* command raises
`OverTimeLimit` (and is not sent), while the safety action's own commands go through.

Virtual time on both backends (`@pytest.mark.timecontrol`): the watchdog and the mock device
both keep time with the loop, so a one-second period takes no real time and trips exactly.
"""

from __future__ import annotations

import anyio
import pytest
from timecontrol.drivers import Delayed, Instrument, MockTransport, ScpiInstrument, Setting

import timecontrol as tc
from timecontrol.limiters import Control, OverTimeLimit, WatchdogStateError

vt = pytest.mark.timecontrol

PERIOD = 1.0


class Device:
    """Remembers every message; answers ``*OPC?`` and ``PWR?``."""

    def __init__(self) -> None:
        self.written: list[tuple[float, str]] = []
        self.power = 0.0

    def __call__(self, message: str) -> str | None:
        self.written.append((anyio.current_time(), message))
        if message.startswith("PWR "):
            self.power = float(message[4:])
        return {"*OPC?": "1", "PWR?": f"{self.power:+.6E}"}.get(message)

    def messages(self) -> list[str]:
        return [message for _, message in self.written]


class Heater(ScpiInstrument):
    """Must be commanded at least every second, else its watchdog switches it off."""

    default_timeout = 0.05
    power = Setting("PWR", float, limits=(0.0, 100.0), unit="%", primary=True)
    watchdogs = (lambda inst: Control(PERIOD, on_trip=inst.safe_off, name=f"{inst.name}.watch"),)

    async def safe_off(self) -> None:
        """The safety action: an ordinary guarded-looking command, sent from the watchdog."""
        await self.power.set(0.0)


def control_of(instrument: Instrument) -> Control:
    watch = instrument.watchdog_objects[0]
    assert isinstance(watch, Control)
    return watch


@vt
async def test_next_guarded_command_raises_after_the_safety_action_ran() -> None:
    device = Device()
    async with Heater(MockTransport(device), name="heater") as heater:
        watch = control_of(heater)
        await heater.power.set(40.0)
        await anyio.sleep(0.5)  # virtual time
        await heater.power.set(45.0)  # fed in time: no trip
        await anyio.sleep(PERIOD + 0.2)  # starved: trips one period after the last feed
        assert watch.statistics().trips == 1
        assert device.messages()[-1] == "PWR 0"  # the safety action got through
        assert device.power == 0.0
        assert watch.tripped  # ... and did not use up the trip meant for the experiment

        sent = len(device.written)
        with pytest.raises(OverTimeLimit) as info:
            await heater.power.set(50.0)
        assert info.value.limiter == "heater.watch"
        assert info.value.trips == 1
        assert len(device.written) == sent  # refused before anything was sent
        assert not watch.tripped

        await heater.power.set(50.0)  # delivered once: the next guarded command runs
        assert device.messages()[-1] == "PWR 50"
        assert await heater.power.get() == 50.0
        stats = watch.statistics()
        assert (stats.trips, stats.rejected) == (1, 1)


@vt
async def test_safety_action_commands_neither_feed_nor_deliver() -> None:
    device = Device()
    async with Heater(MockTransport(device), name="heater") as heater:
        watch = control_of(heater)
        await heater.power.set(40.0)
        feeds = watch.statistics().feeds
        await anyio.sleep(PERIOD * 2.5)  # two trips; the safety action runs twice
        stats = watch.statistics()
        assert stats.trips == 2
        assert device.messages().count("PWR 0") == 2
        assert stats.feeds == feeds  # the safety action's commands did not feed it
        with pytest.raises(OverTimeLimit) as info:
            await heater.power.get()  # queries are guarded as well as writes
        assert info.value.trips == 2  # both trips, delivered as one


@vt
async def test_unguarded_block_for_another_watchdogs_safety_action() -> None:
    # A lab-wide watchdog (not declared on the heater) switches it off: its safety action must
    # get through even though the heater's own watchdog has a trip waiting for the experiment.
    device = Device()
    async with Heater(MockTransport(device), name="heater") as heater:
        watch = control_of(heater)

        async def lab_safe() -> None:
            with heater.unguarded():
                await heater.power.set(0.0)

        async with Control(PERIOD / 2, on_trip=lab_safe, name="lab") as lab:
            await heater.power.set(30.0)
            await anyio.sleep(PERIOD + 0.1)
        assert lab.statistics().trips >= 2
        assert watch.statistics().trips == 1
        assert watch.tripped  # the lab's commands did not take the heater's trip
        with pytest.raises(OverTimeLimit):
            await heater.power.set(30.0)
        with heater.unguarded():  # also usable directly
            await heater.power.set(0.0)
        assert device.power == 0.0


@vt
async def test_on_disconnect_runs_unguarded_with_a_trip_pending() -> None:
    class SafeHeater(Heater):
        watchdogs = (lambda inst: Control(PERIOD, name="bare"),)  # no safety action at all

        async def on_disconnect(self) -> None:
            await self.power.set(0.0)

    device = Device()
    heater = SafeHeater(MockTransport(device), name="heater")
    async with heater:
        await heater.power.set(20.0)
        await anyio.sleep(PERIOD * 1.5)
        assert control_of(heater).tripped
    # Closing sent the switch-off (no OverTimeLimit out of close()), and left the trip alone.
    assert device.messages()[-1] == "PWR 0"
    assert control_of(heater).tripped


@vt
async def test_instrument_without_watchdogs_is_unaffected() -> None:
    class Plain(ScpiInstrument):
        power = Setting("PWR", float, limits=(0.0, 100.0))

    device = Device()
    async with Plain(MockTransport(device)) as plain:
        await anyio.sleep(10.0)  # virtual time
        await plain.power.set(1.0)
        with plain.unguarded():
            assert await plain.power.get() == 1.0


@vt
async def test_a_stopped_watchdog_refuses_guarded_commands_until_reconnected() -> None:
    device = Device()
    heater = Heater(MockTransport(device), name="heater")
    async with tc.Engine(), heater:  # an engine runs, yet the watchdog is not moved into it
        watch = control_of(heater)
        await heater.power.set(10.0)
        watch.stop()
        sent = len(device.written)
        with pytest.raises(WatchdogStateError) as info:
            await heater.power.set(20.0)
        assert "'heater.watch' is not running" in str(info.value)
        assert "'PWR 20' was not sent" in str(info.value)
        assert len(device.written) == sent
        assert not watch.running
        with heater.unguarded():  # the way out still works
            await heater.power.set(0.0)
        assert device.power == 0.0
    async with heater:  # connected again: watching again
        assert control_of(heater).running
        await heater.power.set(30.0)
    assert device.power == 30.0


@vt
async def test_a_command_on_the_wire_when_its_watchdog_stops_completes() -> None:
    asked = anyio.Event()

    class SlowDevice(Device):
        def __call__(self, message: str) -> str | Delayed | None:
            reply = super().__call__(message)
            if message != "PWR?" or reply is None:
                return reply
            asked.set()
            return Delayed(reply, 0.01)  # the reply comes 10 ms later (virtual time)

    device = SlowDevice()
    async with tc.Engine(), Heater(MockTransport(device), name="heater") as heater:
        watch = control_of(heater)
        feeds = watch.statistics().feeds
        async with anyio.create_task_group() as tg:
            tg.start_soon(heater.power.get)
            await asked.wait()  # on the wire
            watch.stop()
        # It completed (no error out of the task group), and did not feed the stopped
        # watchdog, which would have restarted it (in the engine) or refused a sent command.
        assert not watch.running
        assert watch.statistics().feeds == feeds
