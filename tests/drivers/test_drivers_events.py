"""Instruments write their faults and recoveries to the Log; routine commands write nothing.

The mock transport keeps time with the loop, so these run under virtual time on both backends
with an Engine (whose Log is where events go by default) or an explicit Log.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from timecontrol.drivers import (
    EVENT_KINDS,
    Delayed,
    InstrumentTimeout,
    MockTransport,
    ScpiInstrument,
    TransportError,
)

import timecontrol
from timecontrol import Engine, Log
from timecontrol._events import is_reserved, known_kinds

vt = pytest.mark.timecontrol

T = 0.05


class Device:
    """``ECHO? x`` → x; messages listed in `late`, `garble` or `drop` misbehave once."""

    def __init__(self) -> None:
        self.late: list[str] = []
        self.garble: list[str] = []
        self.drop: list[str] = []

    def __call__(self, message: str) -> Any:
        header, _, arg = message.partition(" ")
        reply = {"*OPC?": "1", "ECHO?": arg}.get(header)
        if reply is None:
            return None
        for faults, spoiled in (
            (self.drop, None),
            (self.garble, reply + "\udcff"),
            (self.late, Delayed(reply, 3 * T)),
        ):
            if message in faults:
                faults.remove(message)
                return spoiled
        return reply


class Echo(ScpiInstrument):
    default_timeout = T
    reconnect_delay = 0.01


def instrument_events(log: Log) -> list[timecontrol.Event]:
    return [e for e in log.recent() if e.kind.startswith("instrument.")]


def test_kinds_are_registered_at_import() -> None:
    known = known_kinds()
    for kind in (
        "instrument.connected",
        "instrument.disconnected",
        "instrument.timeout",
        "instrument.bad_reply",
        "instrument.connection_lost",
        "instrument.resync",
        "instrument.reconnect",
        "instrument.retry",
        "instrument.error",
    ):
        assert kind in EVENT_KINDS
        assert known[kind].description == EVENT_KINDS[kind]
        assert is_reserved(kind)  # only the library writes them (Log.append refuses them)


def test_core_does_not_import_the_drivers_and_drivers_register_their_own_kinds() -> None:
    # A fresh interpreter: in this one the test modules have imported everything already.
    code = (
        "import sys, timecontrol, timecontrol.limiters, timecontrol.plans, timecontrol.scheduler\n"
        "from timecontrol._events import known_kinds\n"
        "assert not [m for m in sys.modules if m.startswith('timecontrol.drivers')], 'core'\n"
        "assert 'instrument.connected' not in known_kinds(), 'registered without the drivers'\n"
        "import timecontrol.drivers\n"
        "assert 'instrument.connected' in known_kinds(), 'not registered by the drivers'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@vt
async def test_faults_and_recoveries_go_to_the_running_engines_log() -> None:
    device = Device()
    transport = MockTransport(device)
    async with Engine() as engine:
        async with Echo(transport, name="echo") as inst:
            assert await inst.query("ECHO? 1") == "1"
            device.late.append("ECHO? 2")
            with pytest.raises(InstrumentTimeout):
                await inst.query("ECHO? 2")  # not idempotent: surfaced
            device.garble.append("ECHO? 3")
            assert await inst.query("ECHO? 3", idempotent=True) == "3"  # retried
            transport.disconnect()
            assert await inst.query("ECHO? 4", idempotent=True) == "4"  # reconnected
            stats = inst.stats.as_dict()
        events = instrument_events(engine.log)

    assert [e.kind for e in events] == [
        "instrument.connected",
        "instrument.timeout",
        "instrument.error",
        "instrument.resync",  # before ECHO? 3: the late "2" is drained
        "instrument.bad_reply",
        "instrument.retry",
        "instrument.resync",
        "instrument.connection_lost",
        "instrument.retry",
        "instrument.reconnect",
        "instrument.resync",
        "instrument.disconnected",
    ]
    assert {e.subject for e in events} == {"echo"}
    assert {e.payload["address"] for e in events} == {"mock://mock"}
    by_kind = {e.kind: e.payload for e in events}  # the last of each kind
    assert by_kind["instrument.connected"]["driver"] == "Echo"
    assert by_kind["instrument.connected"]["transport"] == "MockTransport"
    assert by_kind["instrument.timeout"]["command"] == "ECHO? 2"
    assert by_kind["instrument.timeout"]["timeout"] == T
    assert by_kind["instrument.error"]["error"] == "InstrumentTimeout"
    assert "ECHO? 2" in by_kind["instrument.error"]["message"]
    assert by_kind["instrument.bad_reply"]["reply"] == repr("3\udcff")
    assert by_kind["instrument.bad_reply"]["command"] == "ECHO? 3"
    resyncs = [e.payload for e in events if e.kind == "instrument.resync"]
    assert resyncs[0] == {"address": "mock://mock", "ok": True, "stale": 1, "probe": "*OPC?"}
    retries = [e.payload for e in events if e.kind == "instrument.retry"]
    assert [(r["command"], r["attempt"], r["error"]) for r in retries] == [
        ("ECHO? 3", 1, "ReplyParseError"),
        ("ECHO? 4", 1, "TransportError"),
    ]
    assert by_kind["instrument.reconnect"] == {
        "address": "mock://mock",
        "ok": True,
        "attempts": 1,
        "error": None,
    }
    assert by_kind["instrument.disconnected"]["broken"] is False
    assert by_kind["instrument.disconnected"]["stats"] == stats


@vt
async def test_successful_commands_write_nothing() -> None:
    async with Engine() as engine, Echo(MockTransport(Device()), name="quiet") as inst:
        before = engine.log.last_seq
        for n in range(200):
            assert await inst.query_int(f"ECHO? {n}") == n
            await inst.write("NOP")
        assert engine.log.last_seq == before  # the hot path stays off the Log
        assert inst.stats.commands == 400


@vt
async def test_explicit_log_wins_and_no_log_is_fine() -> None:
    log = Log()
    device = Device()
    async with Engine() as engine:
        async with Echo(MockTransport(device), name="mine", log=log) as inst:
            assert inst.log is log
            device.drop.append("ECHO? 5")
            with pytest.raises(InstrumentTimeout):
                await inst.query("ECHO? 5")
        assert instrument_events(engine.log) == []
    assert [e.kind for e in instrument_events(log)] == [
        "instrument.connected",
        "instrument.timeout",
        "instrument.error",
        "instrument.disconnected",
    ]
    # No engine and no Log: nothing is written, and nothing fails.
    async with Echo(MockTransport(device), name="loose") as loose:
        device.drop.append("ECHO? 6")
        with pytest.raises(InstrumentTimeout):
            await loose.query("ECHO? 6")
    # A closed Log is not an instrument fault either.
    await log.aclose()
    async with Echo(MockTransport(device), name="late", log=log) as late:
        device.drop.append("ECHO? 7")
        with pytest.raises(InstrumentTimeout):
            await late.query("ECHO? 7")
        assert await late.query("ECHO? 8") == "8"
    with pytest.raises(timecontrol.TimeControlError, match="Log"):
        Echo(MockTransport(device), log="engine.log")  # type: ignore[arg-type]


@vt
async def test_reconnect_that_gives_up_is_recorded() -> None:
    class Fragile(Echo):
        reconnect_attempts = 3

    transport = MockTransport(Device())
    async with Engine() as engine, Fragile(transport, name="fragile") as inst:
        transport.disconnect()
        transport.refuse_connections = 10
        with pytest.raises(TransportError):
            await inst.query("ECHO? 1")  # the lost connection, surfaced
        with pytest.raises(TransportError, match="could not reconnect"):
            await inst.query("ECHO? 2")  # the failed recovery, surfaced
        events = instrument_events(engine.log)
        kinds = [e.kind for e in events]
        assert kinds[1:] == [
            "instrument.connection_lost",
            "instrument.error",
            "instrument.reconnect",
            "instrument.error",
        ]
        assert events[3].payload["ok"] is False
        assert events[3].payload["attempts"] == 3
        assert "refused" in events[3].payload["error"]
        assert events[4].payload["command"] == "ECHO? 2"
