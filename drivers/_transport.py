"""The transport contract: framed text messages to and from one instrument.

A transport knows bytes, terminations and its own connection; it knows nothing about commands,
retries or resynchronisation, which belong to `Instrument`. Every failure leaves a transport as
one of two typed errors: `InstrumentTimeout` (nothing complete arrived in time; the connection is
still usable) or `TransportError` (the connection is gone or unusable; reopen it).
"""

from __future__ import annotations

import abc
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


class StreamTransport(Transport):
    """A transport over a byte stream (TCP, serial): framing, reads with timeouts, draining.

    Subclasses provide `_send_all` and `_receive_some`, both raising `TransportError` for a
    broken connection and safe to cancel (a cancelled receive loses no bytes).
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

    @abc.abstractmethod
    async def _send_all(self, data: bytes) -> None: ...

    @abc.abstractmethod
    async def _receive_some(self) -> bytes: ...

    def _reset_buffer(self) -> None:
        """Forget buffered input (a new connection starts clean)."""
        self._framer = _Framer(self.read_termination.encode(self.encoding))

    async def write(self, message: str, timeout: float) -> None:  # noqa: ASYNC109
        """Send one message; `InstrumentTimeout` if the stream does not accept it in time."""
        data = self.encode(message)
        try:
            with anyio.fail_after(timeout):
                await self._send_all(data)
        except TimeoutError:
            raise InstrumentTimeout(None, timeout, "while sending") from None

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
        """Send one message and return the next complete one, within `timeout` in total.

        One deadline for both halves: a cancel scope that actually waits costs about as much
        as the rest of the round trip, so a query pays for one, not two.
        """
        data = self.encode(message)
        sent = False
        # A bare CancelScope rather than fail_after(): the same deadline without the
        # generator-based context manager around it (measured: about 8 µs less per query).
        with anyio.CancelScope(deadline=anyio.current_time() + timeout) as scope:
            await self._send_all(data)
            sent = True
            pending = self._framer.pop()
            if pending is not None:
                return self.decode(pending)
            return await self._receive_message()
        assert scope.cancelled_caught  # the block only ends early by its deadline
        raise InstrumentTimeout(None, timeout, "" if sent else "while sending")

    async def _receive_message(self) -> str:
        while True:
            self._framer.feed(await self._receive_some())
            message = self._framer.pop()
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
