"""timecontrol.drivers: async instruments over VISA, serial and TCP, simulated or real.

Write a driver by declaring settings and measurements on a `ScpiInstrument` subclass; connect
it by address (``"TCPIP0::10.0.0.5::inst0::INSTR"``, ``"tcp://10.0.0.5:5025"``,
``"serial:/dev/ttyUSB0"``); develop against `timecontrol.drivers.sim` without hardware.

Every instrument keeps one command in flight, times out each call, resynchronises after a late
or garbled reply, reconnects with backoff after a lost connection, and retries only commands
declared idempotent. All errors derive from `DriverError` (a `TimeControlError`). Connections,
faults, recoveries and the errors that reach the caller are written to the running engine's Log
(or a given one) as ``instrument.*`` events (`EVENT_KINDS`); routine commands only count.
"""

from __future__ import annotations

from ._address import transport_for
from ._errors import (
    AddressError,
    BackendError,
    CommandError,
    DriverError,
    InstrumentError,
    InstrumentTimeout,
    NotConnectedError,
    OutOfRangeError,
    ReplyParseError,
    TransportError,
)
from ._events import KINDS as EVENT_KINDS
from ._instrument import Instrument
from ._parsers import parse_bool, parse_float, parse_int
from ._scpi import (
    BoundMeasurement,
    BoundSetting,
    Identity,
    Measurement,
    ScpiInstrument,
    Setting,
)
from ._transport import StreamTransport, Transport
from ._types import (
    DataKey,
    Field,
    InstrumentStats,
    Limiter,
    LimiterSpec,
    Reading,
    SyncProbe,
    Watchdog,
    WatchdogSpec,
)
from .mock import Delayed, MockTransport
from .tcp import TcpTransport

__all__ = [
    "EVENT_KINDS",
    "AddressError",
    "BackendError",
    "BoundMeasurement",
    "BoundSetting",
    "CommandError",
    "DataKey",
    "Delayed",
    "DriverError",
    "Field",
    "Identity",
    "Instrument",
    "InstrumentError",
    "InstrumentStats",
    "InstrumentTimeout",
    "Limiter",
    "LimiterSpec",
    "Measurement",
    "MockTransport",
    "NotConnectedError",
    "OutOfRangeError",
    "Reading",
    "ReplyParseError",
    "ScpiInstrument",
    "SerialTransport",
    "Setting",
    "StreamTransport",
    "SyncProbe",
    "TcpTransport",
    "Transport",
    "TransportError",
    "VisaTransport",
    "Watchdog",
    "WatchdogSpec",
    "parse_bool",
    "parse_float",
    "parse_int",
    "transport_for",
]


def __getattr__(name: str) -> object:
    # The VISA and serial transports import optional packages (pyvisa, pyserial-asyncio-fast)
    # only when first used, so `import timecontrol.drivers` works without them.
    if name == "VisaTransport":
        from .visa import VisaTransport

        return VisaTransport
    if name == "SerialTransport":
        from .serial import SerialTransport

        return SerialTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
