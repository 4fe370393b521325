"""Raw SCPI over TCP (the "socket" port, usually 5025) with anyio streams.

Works on every anyio backend (asyncio and trio).
"""

from __future__ import annotations

import contextlib

import anyio
import anyio.abc

from ._errors import AddressError, TransportError
from ._transport import StreamTransport

__all__ = ["DEFAULT_SCPI_PORT", "TcpTransport"]

#: The port most instruments use for raw SCPI over a socket.
DEFAULT_SCPI_PORT = 5025


class TcpTransport(StreamTransport):
    """A raw TCP socket to an instrument, messages separated by terminations.

    Args:
        host: host name or IP address.
        port: TCP port (1-65535), 5025 for most SCPI instruments.
        connect_timeout: seconds allowed for the connection to be established.
        encoding, write_termination, read_termination: see `Transport`.
    """

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_SCPI_PORT,
        *,
        connect_timeout: float = 5.0,
        encoding: str = "ascii",
        write_termination: str = "\n",
        read_termination: str = "\n",
    ) -> None:
        if not isinstance(host, str) or not host or any(c.isspace() for c in host):
            raise AddressError(host, "the host must be a non-empty name or IP address")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise AddressError(port, "the TCP port must be an integer from 1 to 65535")
        if not connect_timeout > 0:
            raise AddressError(connect_timeout, "connect_timeout must be > 0 seconds")
        super().__init__(
            encoding=encoding,
            write_termination=write_termination,
            read_termination=read_termination,
        )
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self._stream: anyio.abc.SocketStream | None = None

    @property
    def address(self) -> str:
        """``tcp://host:port``."""
        return f"tcp://{self.host}:{self.port}"

    @property
    def is_open(self) -> bool:
        """True while the socket is open."""
        return self._stream is not None

    async def open(self) -> None:
        """Connect; `TransportError` if refused, unreachable or slower than `connect_timeout`."""
        if self._stream is not None:
            return
        try:
            with anyio.fail_after(self.connect_timeout):
                self._stream = await anyio.connect_tcp(self.host, self.port)
        except TimeoutError:
            raise TransportError(
                f"{self.address}: no connection within {self.connect_timeout:g} s"
            ) from None
        except OSError as exc:
            raise TransportError(f"{self.address}: cannot connect: {exc}") from exc
        self._opened()

    async def close(self) -> None:
        """Close the socket (idempotent)."""
        self._closing()
        stream, self._stream = self._stream, None
        if stream is not None:
            # A peer that already hung up makes aclose() complain; closed is closed.
            with (
                anyio.CancelScope(shield=True),
                contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError),
            ):
                await stream.aclose()

    def _require_stream(self) -> anyio.abc.SocketStream:
        if self._stream is None:
            raise TransportError(f"{self.address}: not connected")
        return self._stream

    async def _send_all(self, data: bytes) -> None:
        stream = self._require_stream()
        try:
            await stream.send(data)
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise TransportError(f"{self.address}: send failed: {exc!r}") from exc

    async def _receive_some(self) -> bytes:
        stream = self._require_stream()
        try:
            return await stream.receive()
        except anyio.EndOfStream:
            raise TransportError(f"{self.address}: the instrument closed the connection") from None
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise TransportError(f"{self.address}: receive failed: {exc!r}") from exc
