"""A transport driven by a handler function, for unit tests of drivers without any I/O.

The handler receives every message written and returns the reply (or replies, or ``None`` for
none). A reply can be `Delayed`, which makes it become readable only later, in order, exactly
like a slow instrument: enough to test timeouts, late replies and resynchronisation in a few
milliseconds, on any anyio backend and under a virtual clock (time is ``anyio.current_time()``).
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import NamedTuple, TypeAlias

import anyio

from ._errors import InstrumentTimeout, TransportError
from ._transport import Transport

__all__ = ["Delayed", "MockHandler", "MockReply", "MockTransport"]


class Delayed(NamedTuple):
    """A reply that becomes readable `delay` seconds after the command was written."""

    reply: str
    delay: float


#: What a handler may return for one message.
MockReply: TypeAlias = str | Delayed | Sequence[str | Delayed] | None
#: A handler: called with each message written (without termination).
MockHandler: TypeAlias = Callable[[str], MockReply | Awaitable[MockReply]]


def _no_reply(message: str) -> None:
    return None


class MockTransport(Transport):
    """An in-memory transport; replies come from `handler`.

    Attributes:
        written: every message written, in order (for assertions).
        refuse_connections: while > 0, each `open()` fails with `TransportError` and
            decrements it (to test reconnect with backoff).
        opens: how many times the transport was opened.
    """

    def __init__(self, handler: MockHandler | None = None, *, name: str = "mock") -> None:
        super().__init__()
        self.handler: MockHandler = handler or _no_reply
        self.name = name
        self.written: list[str] = []
        self.refuse_connections = 0
        self.opens = 0
        self._open = False
        self._broken = False
        # (ready_at, reply) in the order the device produces them; ready times never decrease.
        self._pending: deque[tuple[float, str]] = deque()
        self._changed = anyio.Event()

    @property
    def address(self) -> str:
        """``mock://<name>``."""
        return f"mock://{self.name}"

    @property
    def is_open(self) -> bool:
        """True while open and not disconnected."""
        return self._open and not self._broken

    async def open(self) -> None:
        """Open (fails while `refuse_connections` > 0)."""
        await anyio.lowlevel.checkpoint()
        if self.refuse_connections > 0:
            self.refuse_connections -= 1
            raise TransportError(f"{self.address}: connection refused (mock)")
        self._open, self._broken = True, False
        self._pending.clear()
        self.opens += 1

    async def close(self) -> None:
        """Close (idempotent)."""
        self._open = False
        self._pending.clear()

    def disconnect(self) -> None:
        """Break the connection now: every operation raises `TransportError` until reopened."""
        self._broken = True
        self._pending.clear()
        self._wake()

    def push(self, reply: str, delay: float = 0.0) -> None:
        """Queue an unsolicited (or stale) reply, readable after `delay` seconds."""
        self._enqueue(reply, delay)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    def _enqueue(self, reply: str, delay: float) -> None:
        ready = anyio.current_time() + delay
        if self._pending and self._pending[-1][0] > ready:
            ready = self._pending[-1][0]  # a device answers in order: never overtake
        self._pending.append((ready, reply))
        self._wake()

    def _check(self) -> None:
        if not self._open:
            raise TransportError(f"{self.address}: not open")
        if self._broken:
            raise TransportError(f"{self.address}: connection lost (mock)")

    async def write(self, message: str, timeout: float) -> None:  # noqa: ASYNC109
        """Record `message`, call the handler and queue its replies."""
        self._check()
        self.encode(message)  # the same CommandError as a real transport for unsendable text
        self.written.append(message)
        result = self.handler(message)
        if inspect.isawaitable(result):
            result = await result
        self._check()  # the handler may have called disconnect()
        if result is None:
            return
        replies: Sequence[str | Delayed] = [result] if isinstance(result, str | Delayed) else result
        for reply in replies:
            if isinstance(reply, Delayed):
                self._enqueue(reply.reply, reply.delay)
            else:
                self._enqueue(reply, 0.0)

    async def read(self, timeout: float) -> str:  # noqa: ASYNC109
        """Return the next reply that is ready, waiting up to `timeout` seconds."""
        deadline = anyio.current_time() + timeout
        while True:
            self._check()
            now = anyio.current_time()
            if self._pending and self._pending[0][0] <= now:
                return self._pending.popleft()[1]
            if now >= deadline:
                raise InstrumentTimeout(None, timeout)
            until = deadline if not self._pending else min(deadline, self._pending[0][0])
            changed = self._changed
            with anyio.move_on_after(until - now):
                await changed.wait()

    async def drain(self, quiet: float) -> list[str]:
        """Discard replies until none becomes ready for `quiet` seconds."""
        discarded: list[str] = []
        while True:
            try:
                discarded.append(await self.read(quiet))
            except InstrumentTimeout:
                return discarded
