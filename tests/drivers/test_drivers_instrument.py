"""The instrument core against the mock transport: locking, timeouts, resync, retries,
reconnects, limiters and the run-engine device shape.

The mock's delays use anyio's clock, so these tests take milliseconds of real time.
"""

from __future__ import annotations

import itertools
from typing import Any

import anyio
import pytest
from timecontrol.drivers import (
    Delayed,
    DriverError,
    Instrument,
    InstrumentTimeout,
    Measurement,
    MockTransport,
    ReplyParseError,
    ScpiInstrument,
    Setting,
    SyncProbe,
    TransportError,
)

pytestmark = pytest.mark.anyio

T = 0.02  # the per-call timeout used throughout: tens of milliseconds


class Device:
    """A tiny SCPI device for the mock: ``ECHO? x`` → x, ``*OPC?`` → 1, ``SLOW? x`` → x late."""

    def __init__(self) -> None:
        self.late: list[str] = []  # commands whose reply will come late
        self.garble: list[str] = []
        self.drop: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0

    def __call__(self, message: str) -> Any:
        header, _, arg = message.partition(" ")
        reply = {"*OPC?": "1", "*IDN?": "ACME,X1,1,1.0", "ECHO?": arg}.get(header)
        if reply is None:
            return None
        if message in self.drop:
            self.drop.remove(message)
            return None
        if message in self.garble:
            self.garble.remove(message)
            return reply + "\udcff"
        if message in self.late:
            self.late.remove(message)
            return Delayed(reply, 3 * T)
        return reply


class Echo(ScpiInstrument):
    """SCPI over the mock with the default ``*OPC?`` probe."""

    default_timeout = T


class UniqueEcho(Echo):
    """The same, with a unique-token probe (no ambiguity about a stale ``1``)."""

    _tokens = itertools.count()

    def sync_probe(self) -> SyncProbe:
        token = f"SYNC{next(self._tokens)}"
        return SyncProbe(f"ECHO? {token}", token, unique=True)


async def test_query_write_and_typed_replies() -> None:
    device = Device()
    async with Echo(MockTransport(device)) as inst:
        assert await inst.query("ECHO? hello") == "hello"
        assert await inst.query_float("ECHO? +1.5E+00") == 1.5
        assert await inst.query_int("ECHO? 42") == 42
        assert await inst.query_bool("ECHO? ON") is True
        await inst.write("VOLT 5")
        assert (await inst.identify()).model == "X1"
        with pytest.raises(ReplyParseError) as info:
            await inst.query_float("ECHO? abc")
        assert info.value.command == "ECHO? abc"
        assert info.value.reply == "abc"
        assert await inst.query("ECHO? after") == "after"  # resynchronised in between
        assert inst.stats.resyncs == 1


@pytest.mark.parametrize("cls", [Echo, UniqueEcho])
async def test_late_reply_is_never_taken_for_a_later_query(cls: type[Echo]) -> None:
    device = Device()
    transport = MockTransport(device)
    async with cls(transport) as inst:
        device.late.append("ECHO? 100")
        with pytest.raises(InstrumentTimeout) as info:
            await inst.query("ECHO? 100")
        assert info.value.command == "ECHO? 100"
        assert info.value.timeout == T
        # The reply "100" arrives while the next query is being prepared: it must be discarded.
        assert await inst.query("ECHO? 101") == "101"
        assert await inst.query("ECHO? 102") == "102"
        assert inst.stats.stale_replies >= 1
        assert inst.stats.timeouts == 1


async def test_stale_reply_equal_to_the_probe_answer() -> None:
    # The worst case for *OPC?: the late reply is itself "1". The post-probe drain catches the
    # real "1" and goes round again, so "1" is not handed to the next query.
    device = Device()
    transport = MockTransport(device)

    class QuickDrain(Echo):
        drain_quiet = T / 4  # let the late "1" arrive after the first drain, on purpose

    async with QuickDrain(transport) as inst:
        device.late.append("ECHO? 1")
        with pytest.raises(InstrumentTimeout):
            await inst.query("ECHO? 1")
        assert await inst.query("ECHO? 7") == "7"
        assert await inst.query("ECHO? 8") == "8"


async def test_idempotent_queries_are_retried_others_raise() -> None:
    device = Device()
    async with Echo(MockTransport(device)) as inst:
        device.garble.append("ECHO? 5")
        assert await inst.query_int("ECHO? 5", idempotent=True) == 5
        assert inst.stats.retries == 1
        assert inst.stats.parse_errors == 1
        device.garble.append("ECHO? 6")
        with pytest.raises(ReplyParseError) as info:
            await inst.query_int("ECHO? 6")
        assert info.value.expected == "valid ascii text"
        assert "\udcff" in info.value.reply
        device.drop.append("ECHO? 7")
        assert await inst.query("ECHO? 7", idempotent=True) == "7"
        device.drop.append("ECHO? 8")
        with pytest.raises(InstrumentTimeout):
            await inst.query("ECHO? 8")
        # retries are bounded: every attempt fails -> the last error surfaces
        device.drop.extend(["ECHO? 9"] * (Echo.retries + 1))
        with pytest.raises(InstrumentTimeout):
            await inst.query("ECHO? 9", idempotent=True)
        assert await inst.query("ECHO? 10") == "10"


async def test_one_command_in_flight_and_transactions() -> None:
    order: list[str] = []

    async def slow_device(message: str) -> str | None:
        order.append(message)
        await anyio.sleep(0.001)  # the write yields: another task could sneak in here; not virtual
        return message.partition(" ")[2] if message.startswith("ECHO?") else None

    async with Echo(MockTransport(slow_device)) as inst:
        results: dict[int, list[str]] = {}

        async def worker(n: int) -> None:
            replies = []
            async with inst.transaction():
                for k in range(3):
                    replies.append(await inst.query(f"ECHO? {n}.{k}"))
            results[n] = replies

        async with anyio.create_task_group() as tg:
            for n in range(5):
                tg.start_soon(worker, n)
    for n, replies in results.items():
        assert replies == [f"{n}.{k}" for k in range(3)]
    # each transaction's three commands are contiguous
    for start in range(0, 15, 3):
        owners = {m.split()[1].split(".")[0] for m in order[start : start + 3]}
        assert len(owners) == 1


async def test_concurrent_queries_never_overlap() -> None:
    device = Device()
    async with Echo(MockTransport(device)) as inst:
        counter = itertools.count()

        async def worker() -> None:
            for _ in range(50):
                n = next(counter)
                assert await inst.query(f"ECHO? {n}") == str(n)

        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(worker)
        assert inst.stats.commands == 400


async def test_cancelled_query_leaves_no_stale_reply() -> None:
    device = Device()
    async with UniqueEcho(MockTransport(device), timeout=1.0) as inst:
        device.late.append("ECHO? 1")  # reply due in 3*T
        with anyio.move_on_after(T / 2):
            await inst.query("ECHO? 1")
        assert await inst.query("ECHO? 2") == "2"
        assert inst.stats.stale_replies == 1


async def test_reconnect_with_backoff_after_a_lost_connection() -> None:
    device = Device()
    transport = MockTransport(device)

    class Fast(Echo):
        reconnect_delay = 0.001
        reconnect_attempts = 4

    async with Fast(transport) as inst:
        assert await inst.query("ECHO? a") == "a"
        transport.disconnect()
        transport.refuse_connections = 2  # the first two reopen attempts fail
        with pytest.raises(TransportError):
            await inst.query("ECHO? b")  # not idempotent: surfaced
        assert await inst.query("ECHO? c") == "c"  # reconnected first (3rd attempt)
        assert inst.stats.reconnects == 1
        assert transport.opens == 2

        transport.disconnect()
        assert await inst.query("ECHO? d", idempotent=True) == "d"  # retried after reconnect

        transport.disconnect()
        transport.refuse_connections = 100
        with pytest.raises(TransportError, match="connection lost"):
            await inst.query("ECHO? e")  # discovers the loss
        t0 = anyio.current_time()
        with pytest.raises(TransportError, match="could not reconnect after 4 attempts"):
            await inst.query("ECHO? e")  # tries to reconnect, with backoff, and gives up
        # backoff: 1 + 2 + 4 ms between the four attempts
        assert anyio.current_time() - t0 >= 0.007
        transport.refuse_connections = 0
        assert await inst.query("ECHO? f") == "f"


async def test_disconnect_during_write_of_idempotent_setting() -> None:
    calls = 0

    class Supply(Echo):
        voltage = Setting("VOLT", float, limits=(0.0, 10.0))

    transport = MockTransport()

    def handler(message: str) -> str | None:
        nonlocal calls
        calls += 1
        if calls == 1:
            transport.disconnect()
        return "1" if message == "*OPC?" else None

    transport.handler = handler
    async with Supply(transport) as psu:
        await psu.voltage.set(3.0)  # first attempt loses the connection, the retry succeeds
    assert transport.written.count("VOLT 3") == 2


class Meter(ScpiInstrument):
    default_timeout = T
    setpoint = Setting("SETP", float, limits=(0.0, 100.0), unit="K", primary=True)
    temperature = Measurement("TEMP?", float, unit="K")
    locked = Measurement("LOCK?", bool)


async def test_device_protocol_read_describe_set() -> None:
    state = {"SETP": 0.0}

    def handler(message: str) -> str | None:
        if message.startswith("SETP "):
            state["SETP"] = float(message.split()[1])
            return None
        return {
            "SETP?": f"{state['SETP']:+.6E}",
            "TEMP?": "+2.950000E+02",
            "LOCK?": "1",
        }.get(message)

    async with Meter(MockTransport(handler), name="cryo", clock=lambda: 1234.5) as meter:
        await meter.set(42)
        assert state["SETP"] == 42.0
        reading = await meter.read()
        assert reading == {
            "cryo_temperature": {"value": 295.0, "timestamp": 1234.5},
            "cryo_locked": {"value": True, "timestamp": 1234.5},
        }
        described = await meter.describe()
        assert described["cryo_temperature"]["dtype"] == "number"
        assert described["cryo_temperature"]["units"] == "K"
        assert described["cryo_locked"]["dtype"] == "boolean"
        assert set(described) == set(reading)
        config = await meter.read_configuration()
        assert config["cryo_setpoint"]["value"] == 42.0
        cdesc = await meter.describe_configuration()
        assert cdesc["cryo_setpoint"]["upper_ctrl_limit"] == 100.0
        assert meter.hints == {"fields": ["cryo_temperature", "cryo_locked"]}


async def test_set_without_primary_setting() -> None:
    async with Echo(MockTransport(Device())) as inst:
        with pytest.raises(DriverError, match="no primary setting"):
            await inst.set(1.0)


class Counting:
    """A stand-in limiter: counts entries, and records which instrument it belongs to."""

    def __init__(self, owner: object = None) -> None:
        self.owner = owner
        self.entered = 0
        self.active = False

    async def __aenter__(self) -> Counting:
        assert not self.active
        self.active = True
        self.entered += 1
        await anyio.lowlevel.checkpoint()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.active = False


shared = Counting()


def owned_counter(instrument: Instrument) -> Counting:
    """A factory with a required parameter: it is given the instrument."""
    return Counting(instrument)


class Limited(Echo):
    limiters = (Counting, owned_counter, shared)


async def test_class_declared_limiters_apply_per_instance() -> None:
    a, b = Limited(MockTransport(Device())), Limited(MockTransport(Device()))
    extra = Counting()
    c = Limited(MockTransport(Device()), limiters=[extra])
    la, lb = a.limiter_objects, b.limiter_objects
    assert la[0] is not lb[0]
    assert la[1] is not lb[1]
    assert la[1].owner is a
    assert lb[1].owner is b
    assert la[2] is shared
    assert lb[2] is shared
    before = shared.entered
    async with a, b, c:
        for _ in range(3):
            await a.query("ECHO? x")
        await b.write("FOO")
        await c.query("ECHO? y")
    assert la[0].entered == 3
    assert lb[0].entered == 1
    assert shared.entered - before == 5
    assert extra.entered == 1


async def test_limiter_rejection_sends_nothing() -> None:
    class Refuse:
        async def __aenter__(self) -> None:
            raise DriverError("rate exceeded")

        async def __aexit__(self, *exc_info: object) -> None:
            return None

    transport = MockTransport(Device())
    async with Echo(transport, limiters=[Refuse()]) as inst:
        with pytest.raises(DriverError, match="rate exceeded"):
            await inst.query("ECHO? 1")
    assert transport.written == []


async def test_bad_limiter_declaration() -> None:
    with pytest.raises(DriverError, match="neither"):
        Echo(MockTransport(), limiters=[42])  # type: ignore[list-item]
    with pytest.raises(DriverError, match="lacks __aenter__"):
        Echo(MockTransport(), limiters=[lambda: 42])  # type: ignore[list-item]


async def test_base_instrument_without_probe_drains_only() -> None:
    device = Device()

    class Plain(Instrument):
        default_timeout = T

    async with Plain(MockTransport(device)) as inst:
        device.late.append("ECHO? 1")
        with pytest.raises(InstrumentTimeout):
            await inst.query("ECHO? 1")
        # with no probe, the drain (quiet = timeout) must outlast the late reply to be safe
        await anyio.sleep(3 * T)  # real sockets: not virtual
        assert await inst.query("ECHO? 2") == "2"


async def test_error_queue() -> None:
    queue = ['-113,"Undefined header"', '-222,"Data out of range"', '+0,"No error"']

    def handler(message: str) -> str | None:
        return queue.pop(0) if message == "SYST:ERR?" else None

    async with Echo(MockTransport(handler)) as inst:
        errors = await inst.read_errors()
    assert errors == [(-113, "Undefined header"), (-222, "Data out of range")]
