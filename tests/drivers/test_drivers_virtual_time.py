"""Drivers under a virtual clock: minutes of instrument timeouts in milliseconds.

The mock transport keeps time with ``anyio.current_time()``, so a user's driver tests can run
slow instruments (long timeouts, late replies, reconnect backoff) at no real cost. This uses
trio's MockClock directly (autojump), which needs nothing beyond trio. VISA calls run in real
time on their worker thread, and so do the guards on opening a session: checked under
timecontrol's own virtual clock, on both backends.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest
import trio.testing
from timecontrol.drivers import Delayed, InstrumentTimeout, MockTransport, ScpiInstrument


class Slow(ScpiInstrument):
    default_timeout = 30.0  # seconds: a slow instrument
    reconnect_delay = 10.0
    reconnect_max_delay = 60.0


def handler(message: str) -> str | Delayed | None:
    if message == "*OPC?":
        return "1"
    if message == "MEAS?":
        return Delayed("+1.0E+00", 60.0)  # a minute late: past the timeout
    if message.startswith("ECHO? "):
        return message[6:]
    return None


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    """trio with a clock that jumps to the next deadline whenever every task waits."""
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


@pytest.mark.anyio
async def test_long_timeouts_in_virtual_time() -> None:
    transport = MockTransport(handler)
    async with Slow(transport) as inst:
        t0 = anyio.current_time()
        with pytest.raises(InstrumentTimeout):
            await inst.query_float("MEAS?")
        assert anyio.current_time() - t0 == pytest.approx(30.0)
        assert await inst.query("ECHO? 2") == "2"  # the late reply was drained, not taken
        transport.disconnect()
        transport.refuse_connections = 2
        t1 = anyio.current_time()
        assert await inst.query("ECHO? 3", idempotent=True) == "3"
        # backoff: 10 s, then 20 s; then the resync's two 0.1 s drains (quiet = min(timeout, 0.1))
        assert anyio.current_time() - t1 == pytest.approx(30.2)


@pytest.mark.timecontrol(autojump_threshold=0)
async def test_slow_open_under_virtual_time() -> None:
    # With no timer of its own on the loop, virtual time cannot jump past an open that takes
    # a while in real time (here: made slow on purpose), however eager the autojump.
    from timecontrol.drivers.sim import SIM_LIBRARY, SIM_RESOURCES, SimPowerSupply
    from timecontrol.drivers.visa import VisaTransport

    class SlowOpen(VisaTransport):
        def _open_sync(self) -> object:
            time.sleep(0.1)  # real sockets: not virtual
            return super()._open_sync()

    transport = SlowOpen(SIM_RESOURCES["psu"], visa_library=SIM_LIBRARY, open_timeout=0.01)
    async with SimPowerSupply(transport) as psu:
        assert (await psu.identify()).model == "SIM-PSU"
