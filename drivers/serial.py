"""Serial ports through pyserial-asyncio-fast (install ``timecontrol[serial]``).

**asyncio only**: pyserial-asyncio-fast is built on asyncio's transports, so this transport
raises `BackendError` under trio. The port is opened and closed on a worker thread (by
pyserial-asyncio-fast itself, in the loop's executor), so neither blocks the event loop.

Any pyserial port name or URL works: ``/dev/ttyUSB0``, ``COM3``, a pty's ``/dev/pts/N``, or
``socket://host:port``. ``loop://`` does not: it has no file descriptor for the loop to watch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

from ._errors import AddressError, BackendError, TransportError
from ._transport import StreamTransport

__all__ = ["SerialTransport"]

_PARITIES = ("N", "E", "O", "M", "S")
_BYTESIZES = (5, 6, 7, 8)
_STOPBITS = (1, 1.5, 2)
# Closing waits for pyserial-asyncio-fast to flush and close the port on its executor thread;
# a device that never drains its output must not hang close() forever.
_CLOSE_TIMEOUT = 2.0


class _SerialProtocol(asyncio.Protocol):
    """Collect received chunks and wake the single reader; remember why the port closed."""

    def __init__(self) -> None:
        self._chunks: deque[bytes] = deque()
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self.lost = asyncio.Event()
        self.error: BaseException | None = None

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._readable.set()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.error = exc
        self.lost.set()
        self._readable.set()
        self._writable.set()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    async def receive(self, address: str) -> bytes:
        while not self._chunks:
            if self.lost.is_set():
                raise TransportError(f"{address}: port closed ({self.error or 'hang-up'})")
            self._readable.clear()
            await self._readable.wait()
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data

    async def wait_writable(self, address: str) -> None:
        await self._writable.wait()
        if self.lost.is_set():
            raise TransportError(f"{address}: port closed ({self.error or 'hang-up'})")


class SerialTransport(StreamTransport):
    """A serial port (RS-232/USB-serial/pty) through pyserial-asyncio-fast; asyncio only.

    Args:
        port: device path (``/dev/ttyUSB0``), Windows name (``COM3``) or pyserial URL.
        baudrate: bits per second.
        bytesize: 5-8 data bits.
        parity: ``"N"``, ``"E"``, ``"O"``, ``"M"`` or ``"S"``.
        stopbits: 1, 1.5 or 2.
        xonxoff, rtscts, dsrdtr: flow control.
        encoding, write_termination, read_termination: see `Transport`.
    """

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 9600,
        bytesize: int = 8,
        parity: str = "N",
        stopbits: float = 1,
        xonxoff: bool = False,
        rtscts: bool = False,
        dsrdtr: bool = False,
        encoding: str = "ascii",
        write_termination: str = "\n",
        read_termination: str = "\n",
    ) -> None:
        if not isinstance(port, str) or not port.strip():
            raise AddressError(port, "a serial port is a device path, COM name or pyserial URL")
        if port.startswith("loop://"):
            raise AddressError(
                port,
                "pyserial's loop:// has no file descriptor, so asyncio cannot wait on it; "
                "use a pty pair (timecontrol.drivers.sim) or socket://host:port",
            )
        if isinstance(baudrate, bool) or not isinstance(baudrate, int) or baudrate <= 0:
            raise AddressError(baudrate, "baudrate must be a positive integer")
        if bytesize not in _BYTESIZES:
            raise AddressError(bytesize, f"bytesize must be one of {_BYTESIZES}")
        if parity not in _PARITIES:
            raise AddressError(parity, f"parity must be one of {_PARITIES}")
        if stopbits not in _STOPBITS:
            raise AddressError(stopbits, f"stopbits must be one of {_STOPBITS}")
        super().__init__(
            encoding=encoding,
            write_termination=write_termination,
            read_termination=read_termination,
        )
        self.port = port
        self._settings: dict[str, Any] = {
            "baudrate": baudrate,
            "bytesize": bytesize,
            "parity": parity,
            "stopbits": stopbits,
            "xonxoff": xonxoff,
            "rtscts": rtscts,
            "dsrdtr": dsrdtr,
        }
        self._transport: asyncio.BaseTransport | None = None
        self._protocol: _SerialProtocol | None = None

    @property
    def address(self) -> str:
        """``serial:<port>``."""
        return f"serial:{self.port}"

    @property
    def is_open(self) -> bool:
        """True while the port is open and has not hung up."""
        return self._protocol is not None and not self._protocol.lost.is_set()

    async def open(self) -> None:
        """Open the port (on a worker thread); `TransportError` if it cannot be opened."""
        if self._transport is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise BackendError(
                "SerialTransport needs the asyncio backend (pyserial-asyncio-fast is built on "
                "asyncio); under trio use TCP (e.g. socket:// via a serial server) or VISA"
            ) from None
        try:
            import serial
            import serial_asyncio_fast
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise BackendError(
                "the serial transport needs pyserial-asyncio-fast: "
                "pip install 'timecontrol[serial]'"
            ) from exc
        protocol = _SerialProtocol()
        try:
            transport, _ = await serial_asyncio_fast.create_serial_connection(
                loop, lambda: protocol, self.port, **self._settings
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise TransportError(f"{self.address}: cannot open: {exc}") from exc
        self._transport, self._protocol = transport, protocol
        self._opened()

    async def close(self) -> None:
        """Close the port (flush and close run on a worker thread); idempotent."""
        self._closing()
        transport, protocol = self._transport, self._protocol
        self._transport = self._protocol = None
        if transport is None or protocol is None:
            return
        transport.close()
        # connection_lost fires only after the executor has closed the port; waiting for it
        # means the device is really free when close() returns (a reopen will not find it busy).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(protocol.lost.wait()), _CLOSE_TIMEOUT)

    def _require(self) -> tuple[asyncio.BaseTransport, _SerialProtocol]:
        if self._transport is None or self._protocol is None:
            raise TransportError(f"{self.address}: not open")
        return self._transport, self._protocol

    async def _send_all(self, data: bytes) -> None:
        transport, protocol = self._require()
        await protocol.wait_writable(self.address)
        if transport.is_closing():
            raise TransportError(f"{self.address}: port closed")
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(data)

    async def _receive_some(self) -> bytes:
        _, protocol = self._require()
        return await protocol.receive(self.address)
