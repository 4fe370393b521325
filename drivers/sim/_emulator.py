"""An emulator server: a simulated SCPI instrument over TCP or a pty pair, with fault injection.

It processes each connection's messages strictly in order, like a real instrument: a reply that
is made *late* holds up the replies after it. Faults apply to replies:

- ``late``: the reply is sent `Faults.late_delay` seconds late (past the client's timeout);
- ``drop``: the reply is never sent;
- ``garble``: one byte of the reply is replaced by ``0xFF`` (never valid ASCII, so the client
  can detect it; the terminator is kept, so framing survives);
- ``disconnect``: the connection is closed instead of replying (over a pty, which has no
  connection to lose, this acts as ``drop``).

Runs on every anyio backend. Real sockets and ptys mean real time: tests using it wait for real.
"""

from __future__ import annotations

import os
import random
import tty
from collections import Counter, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import anyio
import anyio.abc

from .._errors import DriverError
from ._models import ScpiModel

__all__ = ["Emulator", "FaultKind", "Faults"]

FaultKind = Literal["late", "drop", "garble", "disconnect"]
_KINDS: tuple[FaultKind, ...] = ("late", "drop", "garble", "disconnect")


class Faults:
    """Which replies to spoil, at random (seeded) or scripted.

    Args:
        late, drop, garble, disconnect: probability of each fault per reply (sum <= 1).
        late_delay: how late a ``late`` reply is, in seconds (make it exceed the client's
            timeout).
        seed: seed for the random choice (``None``: unpredictable).

    Attributes:
        injected: how many faults of each kind were injected.
    """

    def __init__(
        self,
        *,
        late: float = 0.0,
        drop: float = 0.0,
        garble: float = 0.0,
        disconnect: float = 0.0,
        late_delay: float = 0.05,
        seed: int | None = 0,
    ) -> None:
        rates = {"late": late, "drop": drop, "garble": garble, "disconnect": disconnect}
        for kind, rate in rates.items():
            if not 0.0 <= rate <= 1.0:
                raise DriverError(f"Faults: {kind}={rate!r} is not a probability in [0, 1]")
        if sum(rates.values()) > 1.0:
            raise DriverError(f"Faults: probabilities add up to more than 1: {rates}")
        if not late_delay >= 0:
            raise DriverError(f"Faults: late_delay={late_delay!r} must be >= 0 seconds")
        self.rates = rates
        self.late_delay = late_delay
        self.enabled = True
        self.injected: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._script: deque[FaultKind | None] = deque()

    def script(self, *kinds: FaultKind | None) -> None:
        """Force the next replies' faults, in order (``None``: that reply is left alone)."""
        for kind in kinds:
            if kind is not None and kind not in _KINDS:
                raise DriverError(f"Faults.script: unknown fault {kind!r}; known: {_KINDS}")
        self._script.extend(kinds)

    def choose(self) -> FaultKind | None:
        """The fault for the next reply (scripted first, then at random), counted."""
        if self._script:
            kind = self._script.popleft()
        elif not self.enabled:
            return None
        else:
            kind = None
            draw = self._rng.random()
            for name in _KINDS:
                draw -= self.rates[name]
                if draw < 0:
                    kind = name
                    break
        if kind is not None:
            self.injected[kind] += 1
        return kind

    def garble(self, data: bytes) -> bytes:
        """Replace one byte of the reply body (never the terminator) with 0xFF."""
        body = bytearray(data)
        body[self._rng.randrange(len(body))] = 0xFF
        return bytes(body)


class _PtyStream(anyio.abc.ByteStream):
    """The master side of a pty as an anyio byte stream (non-blocking fd, loop-driven)."""

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self._fd: int | None = fd

    async def receive(self, max_bytes: int = 65536) -> bytes:
        while True:
            if self._fd is None:
                raise anyio.ClosedResourceError
            try:
                data = os.read(self._fd, max_bytes)
            except BlockingIOError:
                await anyio.wait_readable(self._fd)
                continue
            except OSError:  # EIO: no process has the slave side open
                raise anyio.EndOfStream from None
            if not data:
                raise anyio.EndOfStream
            return data

    async def send(self, item: bytes) -> None:
        view = memoryview(item)
        while view:
            if self._fd is None:
                raise anyio.ClosedResourceError
            try:
                view = view[os.write(self._fd, view) :]
            except BlockingIOError:
                await anyio.wait_writable(self._fd)

    async def send_eof(self) -> None:
        """Not supported by a pty; ignored."""

    async def aclose(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            anyio.notify_closing(fd)
            os.close(fd)


class Emulator:
    """Serve one simulated instrument (`ScpiModel`) over TCP and/or a pty, with faults.

    The model is shared by every connection (one instrument, however it is reached), so its
    state survives a reconnect, like a real instrument's.

    Args:
        model: the simulated instrument.
        faults: the faults to inject (default: none).
        termination: the message terminator, both ways.

    Attributes:
        replies: replies produced (before faults).
        connections: connections accepted so far.
    """

    def __init__(
        self, model: ScpiModel, faults: Faults | None = None, *, termination: str = "\n"
    ) -> None:
        self.model = model
        self.faults = faults or Faults()
        self.termination = termination.encode("ascii")
        self.replies = 0
        self.connections = 0
        self._streams: set[anyio.abc.ByteStream] = set()

    async def serve(self, stream: anyio.abc.ByteStream) -> None:
        """Answer messages on one connection until it closes (or a fault closes it)."""
        self.connections += 1
        self._streams.add(stream)
        buffer = bytearray()
        term = self.termination
        try:
            while True:
                try:
                    buffer += await stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    return
                while (index := buffer.find(term)) >= 0:
                    line = bytes(buffer[:index]).decode("ascii", "replace")
                    del buffer[: index + len(term)]
                    reply = self.model.handle(line)
                    if reply is None:
                        continue
                    self.replies += 1
                    if not await self._reply(stream, reply.encode("ascii", "replace") + term):
                        return
        except OSError:
            return
        finally:
            self._streams.discard(stream)
            await stream.aclose()

    async def _reply(self, stream: anyio.abc.ByteStream, data: bytes) -> bool:
        """Send one reply through the fault injector; False when the connection is gone."""
        fault = self.faults.choose()
        if fault == "drop" or (fault == "disconnect" and isinstance(stream, _PtyStream)):
            return True
        if fault == "disconnect":
            return False
        if fault == "garble":
            data = self.faults.garble(data[: -len(self.termination)]) + self.termination
        elif fault == "late":
            await anyio.sleep(self.faults.late_delay)
        try:
            await stream.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            return False
        return True

    async def disconnect_all(self) -> None:
        """Close every open connection now (the server keeps listening)."""
        for stream in list(self._streams):
            await stream.aclose()

    @asynccontextmanager
    async def serve_tcp(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Listen on TCP while the block runs; yields the address, ``tcp://host:port``."""
        listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
        bound_port = listener.extra(anyio.abc.SocketAttribute.local_port)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(listener.serve, self.serve)
                try:
                    yield f"tcp://{host}:{bound_port}"
                finally:
                    tg.cancel_scope.cancel()
        finally:
            # Only after serve() has stopped: closing under a running accept() is an error.
            with anyio.CancelScope(shield=True):
                await listener.aclose()

    @asynccontextmanager
    async def serve_pty(self) -> AsyncIterator[str]:
        """Serve on a new pty pair while the block runs; yields ``serial:/dev/pts/N``.

        The slave side is held open by the emulator as well, so a client may close and reopen
        it (reconnect) without the pty disappearing.
        """
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo or line editing, even before the client configures it
        path = os.ttyname(slave)
        stream = _PtyStream(master)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.serve, stream)
                try:
                    yield f"serial:{path}"
                finally:
                    tg.cancel_scope.cancel()
        finally:
            await stream.aclose()
            os.close(slave)
