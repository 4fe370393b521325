"""VISA through pyvisa-sim: the shipped simulated instruments, the worker thread, timeouts."""

from __future__ import annotations

import threading
import time

import anyio
import pytest
from timecontrol.drivers import AddressError, InstrumentTimeout, OutOfRangeError
from timecontrol.drivers.sim import (
    SIM_LIBRARY,
    SIM_RESOURCES,
    SimMultimeter,
    SimPowerSupply,
    SimTemperatureController,
    sim_lab,
)
from timecontrol.drivers.visa import VisaTransport

pytestmark = pytest.mark.anyio


async def test_sim_lab_set_read_describe() -> None:
    async with sim_lab(timeout=0.5) as lab:
        assert (await lab.psu.identify()).model == "SIM-PSU"
        await lab.psu.voltage.set(5)
        await lab.psu.output.set(True)
        assert await lab.psu.voltage.get() == 5.0
        assert await lab.psu.output.get() is True
        reading = await lab.psu.read()
        assert set(reading) == {"psu_measured_voltage", "psu_measured_current"}
        assert 4.99 < reading["psu_measured_voltage"]["value"] < 5.01
        described = await lab.psu.describe()
        assert described["psu_measured_voltage"]["units"] == "V"
        assert SIM_RESOURCES["psu"] in described["psu_measured_voltage"]["source"]

        await lab.tc.set(25.0)
        assert await lab.tc.setpoint.get() == 25.0
        assert "tc_temperature" in await lab.tc.read()

        await lab.dmm.voltage_range.set(1.0)
        config = await lab.dmm.read_configuration()
        assert config["dmm_voltage_range"]["value"] == 1.0
        with pytest.raises(OutOfRangeError):
            await lab.dmm.voltage_range.set(2.0)
        assert 1.2 < await lab.dmm.dc_voltage.get() < 1.3

        await lab.psu.write("NOT:A:COMMAND")
        assert await lab.psu.read_errors() == [(-113, "Undefined header")]
        await lab.psu.check_errors()  # empty now: no exception


async def test_each_session_runs_on_one_dedicated_thread() -> None:
    async with SimPowerSupply(SIM_RESOURCES["psu"], visa_library=SIM_LIBRARY) as psu:
        transport = psu.transport
        assert isinstance(transport, VisaTransport)
        seen: set[int] = set()
        resource = transport._resource
        original = resource.read_raw

        def recording_read_raw(*args: object) -> bytes:
            seen.add(threading.get_ident())
            return bytes(original(*args))

        resource.read_raw = recording_read_raw

        async def worker() -> None:
            for _ in range(10):
                assert (await psu.identify()).model == "SIM-PSU"

        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(worker)
        assert len(seen) == 1
        assert threading.get_ident() not in seen


async def test_timeout_does_not_block_the_loop_and_resyncs() -> None:
    async with SimTemperatureController(
        SIM_RESOURCES["tc"], visa_library=SIM_LIBRARY, timeout=0.1
    ) as tc:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await anyio.sleep(0.005)  # real sockets: not virtual
                ticks += 1

        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            # pyvisa-sim does not answer an unknown query: VISA's own timeout ends the call.
            with pytest.raises(InstrumentTimeout) as info:
                await tc.query("NO:SUCH:QUERY?")
            tg.cancel_scope.cancel()
        assert info.value.command == "NO:SUCH:QUERY?"
        assert ticks >= 5  # the event loop kept running while the worker thread waited
        assert await tc.setpoint.get() == await tc.setpoint.get()
        assert (await tc.identify()).model == "SIM-TC"
        assert tc.stats.resyncs == 1


async def test_cancelled_visa_call_does_not_desynchronise() -> None:
    async with SimPowerSupply(SIM_RESOURCES["psu"], visa_library=SIM_LIBRARY, timeout=0.2) as psu:
        with anyio.move_on_after(0.01):
            await psu.query("NO:REPLY?")  # the worker keeps waiting for VISA's timeout
        assert (await psu.identify()).model == "SIM-PSU"


async def test_unknown_and_mismatched_resources() -> None:
    with pytest.raises(AddressError, match="unknown simulated resource"):
        async with SimPowerSupply("TCPIP0::nowhere::inst0::INSTR", visa_library=SIM_LIBRARY):
            pass
    # the multimeter's address given to the power-supply driver: caught by *IDN? on connect
    with pytest.raises(AddressError, match="SIM-DMM"):
        async with SimPowerSupply(SIM_RESOURCES["dmm"], visa_library=SIM_LIBRARY):
            pass


async def test_simulated_state_survives_reconnecting() -> None:
    async with SimMultimeter(SIM_RESOURCES["dmm"], visa_library=SIM_LIBRARY) as dmm:
        await dmm.nplc.set(10.0)
    async with SimMultimeter(SIM_RESOURCES["dmm"], visa_library=SIM_LIBRARY) as dmm:
        assert await dmm.nplc.get() == 10.0
        await dmm.nplc.set(1.0)


async def test_guard_on_a_hung_visa_call_is_real_time() -> None:
    from timecontrol.drivers.visa import _SessionThread

    session = _SessionThread("guard-test")
    release = threading.Event()
    try:
        t0 = time.monotonic()
        with pytest.raises(InstrumentTimeout, match="session is busy"):
            await session.call(release.wait, guard=0.05)  # hangs until released
        assert 0.04 < time.monotonic() - t0 < 2.0
        release.set()  # the abandoned call ends; the session serves the next one
        assert await session.call(lambda: 42, guard=1.0) == 42
    finally:
        release.set()
        session.stop()
