"""Raw SCPI over TCP against the emulator: faults one at a time, and reconnecting.

Real sockets, so real time: timeouts here are tens of milliseconds.
"""

from __future__ import annotations

import anyio
import pytest
from timecontrol.drivers import InstrumentTimeout, ReplyParseError, TcpTransport, TransportError
from timecontrol.drivers.sim import Emulator, Faults, PowerSupplyModel, SimPowerSupply

pytestmark = pytest.mark.anyio

T = 0.05


class Supply(SimPowerSupply):
    default_timeout = T
    reconnect_delay = 0.005


def emulator() -> Emulator:
    return Emulator(PowerSupplyModel(), Faults(late_delay=2 * T))


async def test_set_and_read_over_tcp() -> None:
    emu = emulator()
    async with emu.serve_tcp() as address, Supply(address, name="psu") as psu:
        await psu.voltage.set(12.0)
        await psu.current_limit.set(2.0)
        await psu.output.set(True)
        reading = await psu.read()
        assert reading["psu_measured_voltage"]["value"] == 12.0
        assert reading["psu_measured_current"]["value"] == pytest.approx(1.2)
        await psu.current_limit.set(0.5)  # constant-current mode
        assert await psu.measured_voltage.get() == pytest.approx(5.0)
        await psu.write("VOLT 99")  # out of range: the emulator queues an error
        assert await psu.read_errors() == [(-222, "Data out of range")]


@pytest.mark.parametrize("fault", ["late", "drop", "garble", "disconnect"])
async def test_each_fault_is_surfaced_then_recovered(fault: str) -> None:
    emu = emulator()
    expected = {
        "late": InstrumentTimeout,
        "drop": InstrumentTimeout,
        "garble": ReplyParseError,
        "disconnect": TransportError,
    }[fault]
    async with emu.serve_tcp() as address, Supply(address) as psu:
        await psu.voltage.set(1.5)
        emu.faults.script(fault)  # type: ignore[arg-type]
        with pytest.raises(expected):
            await psu.query("VOLT?")  # not declared idempotent: the error surfaces
        await psu.voltage.set(2.5)
        assert await psu.voltage.get() == 2.5
        assert await psu.query("ECHO? 77") == "77"
        if fault == "disconnect":
            assert emu.connections == 2
            assert psu.stats.reconnects == 1


@pytest.mark.parametrize("fault", ["late", "drop", "garble", "disconnect"])
async def test_each_fault_is_retried_when_idempotent(fault: str) -> None:
    emu = emulator()
    async with emu.serve_tcp() as address, Supply(address) as psu:
        await psu.voltage.set(4.0)
        emu.faults.script(fault)  # type: ignore[arg-type]
        assert await psu.voltage.get() == 4.0  # settings' queries are declared idempotent
        assert psu.stats.retries == 1


async def test_reconnect_after_the_emulator_drops_the_connection() -> None:
    emu = emulator()
    async with emu.serve_tcp() as address, Supply(address) as psu:
        await psu.voltage.set(3.0)
        await psu.wait_complete()  # a write is not confirmed until something answers after it
        await emu.disconnect_all()
        await anyio.sleep(0.01)  # real sockets: not virtual
        assert await psu.voltage.get() == 3.0  # lost, reconnected, retried
        assert psu.stats.reconnects == 1
        assert emu.connections == 2
        # state lives in the instrument, not in the connection
        assert await psu.query("VOLT?") == "+3.000000E+00"


async def test_reconnect_gives_up_when_the_instrument_is_gone() -> None:
    emu = emulator()
    async with emu.serve_tcp() as address:
        psu = Supply(address)
        await psu.connect()
    # the server has stopped: the connection is dead and nobody listens any more
    with pytest.raises(TransportError):
        await psu.query("*IDN?")
    with pytest.raises(TransportError, match="could not reconnect"):
        await psu.query("*IDN?")
    await psu.close()


async def test_connection_refused_is_a_transport_error() -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()  # a port where nobody listens
    with pytest.raises(TransportError, match="cannot connect"):
        async with Supply(f"tcp://127.0.0.1:{port}"):
            pass


async def test_partial_replies_are_reassembled() -> None:
    async def slow_server(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()
            for piece in (b"12", b"34", b"5\n6", b"78\n"):
                await stream.send(piece)
                await anyio.sleep(0.002)  # real sockets: not virtual
            await anyio.sleep(10)  # keep the connection open (cancelled at the end); not virtual

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, slow_server)
        transport = TcpTransport("127.0.0.1", port)
        await transport.open()
        assert await transport.query("X?", 1.0) == "12345"
        assert await transport.read(1.0) == "678"
        with pytest.raises(InstrumentTimeout):
            await transport.read(0.01)
        await transport.close()
        await transport.close()  # idempotent
        tg.cancel_scope.cancel()


async def _silent_server(stream: anyio.abc.SocketStream) -> None:
    async with stream:
        with anyio.move_on_after(10):
            while True:
                await stream.receive()  # swallow everything, answer nothing


async def test_deadlines_leave_no_cancellation_behind(anyio_backend: str) -> None:
    # On asyncio, deadlines come from one lazily re-armed timer per transport that cancels the
    # waiting task natively; a timeout must be taken back completely, and an outer
    # cancellation must stay a cancellation, never become a timeout.
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, _silent_server)
        transport = TcpTransport("127.0.0.1", port)
        await transport.open()
        for timeout in (0.03, 0.01, 0.02):  # an earlier deadline re-arms the timer
            t0 = anyio.current_time()
            with pytest.raises(InstrumentTimeout):
                await transport.query("X?", timeout)
            assert anyio.current_time() - t0 >= timeout * 0.9
        await transport.write("Y", 0.01)  # writes are timed too (and do not block here)
        with anyio.move_on_after(0.01) as outer:
            await transport.query("X?", 5.0)  # the caller's deadline comes first
        assert outer.cancelled_caught
        await anyio.sleep(0.05)  # no stray cancellation is left pending on the task; not virtual
        if anyio_backend == "asyncio":
            import asyncio

            task = asyncio.current_task()
            assert task is not None
            assert task.cancelling() == 0
        await transport.close()
        tg.cancel_scope.cancel()


async def test_outer_cancellation_at_the_deadline_stays_a_cancellation() -> None:
    # The race the timer must settle: its deadline passes in the same loop iteration as an
    # outer scope is cancelled. The call must end as a cancellation (caught by the outer
    # scope), not as a timeout that would swallow it. Forced by firing the timer by hand.
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pytest.skip("the call timer is asyncio's (trio's cancel scopes are cheap)")
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, _silent_server)
        transport = TcpTransport("127.0.0.1", port)
        await transport.open()
        timer = transport._timer
        assert timer is not None
        outcome: list[str] = []

        async def call(scope: anyio.CancelScope) -> None:
            with scope:
                try:
                    await transport.query("X?", 60.0)
                except InstrumentTimeout:
                    outcome.append("timeout")
            outcome.append("cancelled" if scope.cancelled_caught else "returned")

        scope = anyio.CancelScope()
        async with anyio.create_task_group() as inner:
            inner.start_soon(call, scope)
            await anyio.sleep(0.02)  # the call is waiting for its reply; not virtual
            scope.cancel()
            timer._deadline = timer._armed_for  # expired ...
            timer._fire()  # ... in the same iteration
        assert outcome == ["cancelled"]
        assert timer.expired is None
        await transport.close()
        tg.cancel_scope.cancel()
