"""The serial transport over a pty pair served by the emulator.

pyserial-asyncio-fast is asyncio-only, so these tests run on asyncio (and check that trio gets
a clear error). Real ptys mean real time: timeouts are tens of milliseconds.
"""

from __future__ import annotations

import pytest
from timecontrol.drivers import BackendError, InstrumentTimeout, ReplyParseError
from timecontrol.drivers.serial import SerialTransport
from timecontrol.drivers.sim import (
    Emulator,
    Faults,
    PowerSupplyModel,
    SimPowerSupply,
    SimTemperatureController,
    TemperatureControllerModel,
)

T = 0.1


class Supply(SimPowerSupply):
    default_timeout = T


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_query_and_set_over_a_pty() -> None:
    emu = Emulator(PowerSupplyModel())
    async with emu.serve_pty() as address, Supply(address, baudrate=115200) as psu:
        assert address.startswith("serial:/dev/")
        assert isinstance(psu.transport, SerialTransport)
        await psu.voltage.set(7.5)
        await psu.current_limit.set(1.0)  # 7.5 V into the model's 10 Ω load: 0.75 A
        await psu.output.set(True)
        reading = await psu.read()
        assert reading["supply_measured_voltage"]["value"] == 7.5
        assert reading["supply_measured_current"]["value"] == 0.75


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_faults_over_a_pty_resync_without_reconnecting() -> None:
    emu = Emulator(TemperatureControllerModel(), Faults(late_delay=2 * T))

    class Controller(SimTemperatureController):
        default_timeout = T

    async with emu.serve_pty() as address, Controller(address) as tc:
        await tc.set(30.0)
        # Faults are scripted per reply, and a resync's probe is a reply too: script each
        # fault only once the instrument is in step again.
        emu.faults.script("late")
        with pytest.raises(InstrumentTimeout):
            await tc.query("SETP?")
        assert await tc.query("ECHO? 4") == "4"
        emu.faults.script("garble")
        with pytest.raises(ReplyParseError):
            await tc.query_float("SETP?")
        assert await tc.query("ECHO? 3") == "3"
        emu.faults.script("drop")
        assert await tc.setpoint.get() == 30.0  # idempotent: retried
        assert await tc.query("ECHO? 5") == "5"
        assert tc.stats.reconnects == 0
        assert tc.stats.retries == 1
        assert tc.stats.resyncs == 3


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_close_and_reopen_the_port() -> None:
    emu = Emulator(PowerSupplyModel())
    async with emu.serve_pty() as address:
        for volts in (1.0, 2.0):
            async with Supply(address) as psu:
                assert await psu.voltage.get() == volts - 1.0
                await psu.voltage.set(volts)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_serial_under_trio_is_a_clear_error() -> None:
    with pytest.raises(BackendError, match="asyncio"):
        async with Supply("serial:/dev/ttyS0"):
            pass
