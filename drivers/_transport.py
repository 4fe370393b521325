"""The transport contract: framed text messages to and from one instrument.

A transport knows bytes, terminations and its own connection; it knows nothing about commands,
retries or resynchronisation, which belong to `Instrument`. Every failure leaves a transport as
one of two typed errors: `InstrumentTimeout` (nothing complete arrived in time; the connection is
still usable) or `TransportError` (the connection is gone or unusable; reopen it).
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Iterator

import anyio

from ._errors import CommandError, InstrumentTimeout, TransportError

__all__ = ["Transport"]

# A reply longer than this without a terminator means the read termination is wrong or the line
# is noise; keeping on buffering would only hide that.
_MAX_MESSAGE_BYTES = 1 << 20


class Transport(abc.ABC):
    """One connection to one instrument, exchanging terminated text messages.

    Subclasses implement `open`, `close`, `write`, `read` and `drain`; `query` (a write then a
    read) may be overridden when the transport can do both in one step (VISA: one thread hop).

    Transports are not safe for concurrent use: `Instrument` guarantees one command in flight.
    """

    def __init__(
        self,
        *,
        encoding: str = "ascii",
        write_termination: str = "\n",
        read_termination: str = "\n",
    ) -> None:
        if not read_termination:
            raise CommandError(read_termination, "the read termination must not be empty")
        self.encoding = encoding
        self.write_termination = write_termination
        self.read_termination = read_termination

    @property
    @abc.abstractmethod
    def address(self) -> str:
        """A human-readable address of the instrument (for messages and `describe()`)."""

    @property
    @abc.abstractmethod
    def is_open(self) -> bool:
        """True while the connection is open (it may still break at the next operation)."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Open the connection; `TransportError` (or `AddressError`) if that fails."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close the connection; idempotent, and never raises for an already broken one."""

    @abc.abstractmethod
    async def write(self, message: str, timeout: float) -> None:  # noqa: ASYNC109
        """Send one message (the write termination is appended)."""

    @abc.abstractmethod
    async def read(self, timeout: float) -> str:  # noqa: ASYNC109
        """Return the next complete message without its termination.

        Raises `InstrumentTimeout` (with ``command=None``) if none is complete within `timeout`
        seconds; a partial message stays buffered for the next read.
        """

    async def query(self, message: str, timeout: float) -> str:  # noqa: ASYNC109
        """Send one message and return the next complete message."""
        await self.write(message, timeout)
        return await self.read(timeout)

    @abc.abstractmethod
    async def drain(self, quiet: float) -> list[str]:
        """Discard all pending input until nothing has arrived for `quiet` seconds.

        Returns what was discarded (complete messages, then any partial one), for statistics.
        """

    async def clear(self) -> None:  # noqa: B027 - deliberately a no-op default
        """Ask the device to discard its pending output (VISA device clear); default: no-op."""

    def encode(self, message: str) -> bytes:
        """Encode `message` plus the write termination; `CommandError` if it cannot be sent."""
        try:
            return (message + self.write_termination).encode(self.encoding)
        except UnicodeEncodeError as exc:
            raise CommandError(message, f"not encodable as {self.encoding}: {exc.reason}") from None

    def decode(self, data: bytes) -> str:
        """Decode a received message; undecodable bytes become escapes for the parser to reject.

        ``surrogateescape`` keeps a garbled reply visible in the error message instead of losing
        it in a `UnicodeDecodeError` that names neither the command nor the reply.
        """
        return data.decode(self.encoding, "surrogateescape")

    def __repr__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"<{type(self).__name__} {self.address} {state}>"


class _Framer:
    """Split a byte stream into messages at the read termination."""

    __slots__ = ("_buffer", "_term")

    def __init__(self, term: bytes) -> None:
        self._term = term
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > _MAX_MESSAGE_BYTES and self._term not in self._buffer:
            self._buffer.clear()
            raise TransportError(
                f"more than {_MAX_MESSAGE_BYTES} bytes without the read termination "
                f"{self._term!r}: is the termination set correctly?"
            )

    def feed_pop(self, data: bytes) -> bytes | None:
        """`feed` then `pop`, without copying when `data` is exactly one whole message.

        That is the usual case (one reply per read, nothing buffered), so the usual reply costs
        one slice instead of an append to the buffer, a copy out of it and a deletion.
        """
        if not self._buffer:
            index = data.find(self._term)
            if index >= 0 and index + len(self._term) == len(data):
                return data[:index]
        self.feed(data)
        return self.pop()

    def pop(self) -> bytes | None:
        """Remove and return the next complete message (without termination), if any."""
        index = self._buffer.find(self._term)
        if index < 0:
            return None
        message = bytes(self._buffer[:index])
        del self._buffer[: index + len(self._term)]
        return message

    def take_all(self) -> Iterator[bytes]:
        """Remove everything: complete messages, then the partial tail (if any)."""
        while (message := self.pop()) is not None:
            yield message
        if self._buffer:
            yield bytes(self._buffer)
            self._buffer.clear()


# The message of the cancellation a `_CallTimer` delivers: anything but anyio's own, so that no
# anyio cancel scope mistakes it for one of its cancellations and swallows it.
_EXPIRED = "timecontrol.drivers: the call's deadline passed"


class _CallTimer:
    """Deadlines for one transport's calls on asyncio, without a timer or scope per call.

    Why: on asyncio, an anyio cancel scope with a deadline costs about 23 µs per round trip
    (measured: half of it the scope's bookkeeping, half a timer handle made and cancelled for
    every call), which was half of our whole overhead over a bare stream. A transport has at
    most one call in flight (the instrument's lock sees to that), so one timer can serve every
    call: a call only records its task and deadline; the timer is armed for the first deadline
    and, when it fires, either cancels the call that is still waiting past its deadline or
    re-arms for the deadline of the call now in flight. With replies much faster than the
    timeout, it fires about once per timeout period, not once per call.

    The cancellation is a native ``Task.cancel()``, taken back with ``Task.uncancel()`` by the
    call it was meant for (the same protocol as `asyncio.timeout`), so that a cancellation from
    outside that arrives meanwhile is never turned into a timeout.
    """

    __slots__ = ("_armed_for", "_deadline", "_handle", "_loop", "_task", "expired")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._handle: asyncio.TimerHandle | None = None
        self._armed_for = 0.0
        self._task: asyncio.Task[object] | None = None
        self._deadline = 0.0
        #: The task whose deadline passed and which has not yet taken its cancellation back.
        self.expired: asyncio.Task[object] | None = None

    def begin(self, task: asyncio.Task[object], timeout: float) -> None:
        """A call of `task` starts: it may wait `timeout` seconds."""
        deadline = self._loop.time() + timeout
        self._task, self._deadline = task, deadline
        if self._handle is None or deadline < self._armed_for:
            self._arm(deadline)

    def end(self) -> None:
        """The call is over (whatever its outcome)."""
        self._task = None

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed_for = when
        self._handle = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._handle = None
        task = self._task
        if task is None:
            return  # idle: the next call arms the timer again
        # Compared with the time the timer was armed for, not with loop.time(): asyncio may run
        # a timer up to its clock resolution early.
        if self._deadline <= self._armed_for:
            self.expired = task
            task.cancel(_EXPIRED)
        else:
            self._arm(self._deadline)

    def close(self) -> None:
        """Disarm (the connection is closed)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._task = None


class StreamTransport(Transport):
    """A transport over a byte stream (TCP, serial): framing, reads with timeouts, draining.

    Subclasses provide `_send_all` and `_receive_some`, both raising `TransportError` for a
    broken connection and safe to cancel (a cancelled receive loses no bytes), and call
    `_opened()` at the end of `open()` and `_closing()` in `close()`.
    """

    def __init__(
        self,
        *,
        encoding: str = "ascii",
        write_termination: str = "\n",
        read_termination: str = "\n",
    ) -> None:
        super().__init__(
            encoding=encoding,
            write_termination=write_termination,
            read_termination=read_termination,
        )
        self._framer = _Framer(read_termination.encode(encoding))
        self._timer: _CallTimer | None = None

    @abc.abstractmethod
    async def _send_all(self, data: bytes) -> None: ...

    @abc.abstractmethod
    async def _receive_some(self) -> bytes: ...

    def _opened(self) -> None:
        """A new connection: forget buffered input, and time calls on this event loop."""
        self._framer = _Framer(self.read_termination.encode(self.encoding))
        if self._timer is not None:
            self._timer.close()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not asyncio (trio): its cancel scopes are cheap, use them
            self._timer = None
        else:
            self._timer = _CallTimer(loop)

    def _closing(self) -> None:
        """The connection is closing: disarm the call timer."""
        if self._timer is not None:
            self._timer.close()
            self._timer = None

    async def write(self, message: str, timeout: float) -> None:  # noqa: ASYNC109
        """Send one message; `InstrumentTimeout` if the stream does not accept it in time."""
        await self._exchange(self.encode(message), timeout, False)

    async def read(self, timeout: float) -> str:  # noqa: ASYNC109
        """Return the next complete message (see `Transport.read`)."""
        message = self._framer.pop()
        if message is not None:
            return self.decode(message)
        try:
            with anyio.fail_after(timeout):
                return await self._receive_message()
        except TimeoutError:
            raise InstrumentTimeout(None, timeout) from None

    async def query(self, message: str, timeout: float) -> str:  # noqa: ASYNC109
        """Send one message and return the next complete one, within `timeout` in total."""
        reply = await self._exchange(self.encode(message), timeout, True)
        assert reply is not None  # a reply was asked for
        return reply

    async def _exchange(self, data: bytes, timeout: float, reply: bool) -> str | None:  # noqa: ASYNC109
        """Send `data`, then (if `reply`) read one message; one deadline for both halves."""
        timer = self._timer
        if timer is None:
            return await self._exchange_scoped(data, timeout, reply)
        task: asyncio.Task[object] | None = asyncio.current_task()
        assert task is not None
        # Cancellation requests already pending on entry are not ours to take back.
        baseline = task.cancelling()
        timer.begin(task, timeout)
        sent = False
        try:
            await self._send_all(data)
            sent = True
            if not reply:
                return None
            pending = self._framer.pop()
            if pending is not None:
                return self.decode(pending)
            return await self._receive_message()
        except asyncio.CancelledError:
            if timer.expired is task:
                timer.expired = None
                if task.uncancel() <= baseline:
                    detail = "" if sent else "while sending"
                    raise InstrumentTimeout(None, timeout, detail) from None
            raise
        finally:
            timer.end()
            if timer.expired is task:  # never delivered as such (cannot happen; never leak it)
                timer.expired = None
                task.uncancel()

    async def _exchange_scoped(self, data: bytes, timeout: float, reply: bool) -> str | None:  # noqa: ASYNC109
        # A bare CancelScope rather than fail_after(): the same deadline without the
        # generator-based context manager around it (measured: about 8 µs less per call).
        sent = False
        with anyio.CancelScope(deadline=anyio.current_time() + timeout) as scope:
            await self._send_all(data)
            sent = True
            if not reply:
                return None
            pending = self._framer.pop()
            if pending is not None:
                return self.decode(pending)
            return await self._receive_message()
        assert scope.cancelled_caught  # the block only ends early by its deadline
        raise InstrumentTimeout(None, timeout, "" if sent else "while sending")

    async def _receive_message(self) -> str:
        framer = self._framer
        while True:
            message = framer.feed_pop(await self._receive_some())
            if message is not None:
                return self.decode(message)

    async def drain(self, quiet: float) -> list[str]:
        """Discard pending input until the line has been quiet for `quiet` seconds."""
        discarded = [self.decode(m) for m in self._framer.take_all()]
        while True:
            with anyio.move_on_after(quiet):
                data = await self._receive_some()
                self._framer.feed(data)
                discarded.extend(self.decode(m) for m in self._framer.take_all())
                continue
            return discarded
