"""The extension contracts: what your own clock, store, trigger, transport or device provides.

Each is a `typing.Protocol`: implement the methods and timecontrol accepts the object, no
subclassing needed (the built-in ones subclass nothing either). `isinstance` works on the
runtime-checkable ones.

| contract | built in | used by |
| --- | --- | --- |
| `Clock` | `SystemClock`, `timecontrol.testing.VirtualClock` | everything that reads time |
| `LogSink` | `timecontrol.stores.SQLiteLog` | the Log (durable events) |
| `Trigger` | `timecontrol.cron`, `interval`, `timepoints`, ... | jobs |
| `Transport` | `timecontrol.drivers` (VISA, serial, TCP, mock) | instruments |
| `Readable`, `Movable`, ... (devices) | `timecontrol.plans.SimMotor`, ophyd devices | plans |
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ._clock import Clock
from ._log import LogSink
from .plans._devices import Movable, Pausable, Readable, Stageable, Stoppable, Triggerable
from .triggers._protocol import Trigger

__all__ = [
    "Clock",
    "LogSink",
    "Movable",
    "Pausable",
    "Readable",
    "Stageable",
    "Stoppable",
    "Transport",
    "Trigger",
    "Triggerable",
]


@runtime_checkable
class Transport(Protocol):
    """One connection to one instrument, exchanging terminated text messages.

    `timecontrol.drivers.Transport` is the base class the built-in transports share; any object
    with these members works with `timecontrol.drivers.Instrument`.
    """

    @property
    def address(self) -> str:
        """A human-readable address of the instrument."""
        ...

    @property
    def is_open(self) -> bool:
        """True while the connection is open."""
        ...

    async def open(self) -> None:
        """Open the connection (raise a TimeControlError subclass if that fails)."""

    async def close(self) -> None:
        """Close the connection; idempotent."""

    async def write(self, message: str, timeout: float) -> None:  # noqa: ASYNC109
        """Send one message (the write termination is appended)."""

    async def read(self, timeout: float) -> str:  # noqa: ASYNC109
        """Return the next complete message without its termination."""
        ...

    async def query(self, message: str, timeout: float) -> str:  # noqa: ASYNC109
        """Send one message and return the next complete message."""
        ...

    async def drain(self, quiet: float) -> list[str]:
        """Discard pending input until nothing has arrived for `quiet` seconds."""
        ...

    async def clear(self) -> None:
        """Ask the device to discard its pending output."""
