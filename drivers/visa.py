"""VISA instruments through pyvisa (install ``timecontrol[visa]``), any backend, ``@sim`` too.

pyvisa sessions are not safe to share between threads, and a blocking VISA call cannot be
interrupted. So each `VisaTransport` owns ONE dedicated worker thread that opens, uses and
closes its session; the event loop only queues work for it and awaits the result. Timeouts are
enforced by the VISA library itself (the resource's ``timeout`` attribute, set per call), never
by abandoning a call that is still running.

Works on every anyio backend (asyncio and trio).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import anyio

from timecontrol._clock import current_clock

from ._errors import AddressError, BackendError, InstrumentTimeout, TransportError
from ._transport import Transport

__all__ = ["VisaTransport", "check_resource_name"]

T = TypeVar("T")

# Opening and closing have no VISA timeout of their own that covers everything: bound the wait.
_CLOSE_GUARD = 5.0
# Opening a resource manager and resources touches shared pyvisa registries; serialise that.
_OPEN_LOCK = threading.Lock()


def check_resource_name(resource_name: str) -> str:
    """Return the canonical VISA resource name, or raise `AddressError` before anything opens."""
    try:
        from pyvisa import rname
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise BackendError("VISA needs pyvisa: pip install 'timecontrol[visa]'") from exc
    if not isinstance(resource_name, str):
        raise AddressError(resource_name, "a VISA resource name is a string")
    try:
        return str(rname.parse_resource_name(resource_name))
    except rname.InvalidResourceName as exc:
        raise AddressError(
            resource_name,
            f"not a VISA resource name ({exc}); e.g. 'TCPIP0::192.168.1.5::inst0::INSTR', "
            "'TCPIP0::192.168.1.5::5025::SOCKET', 'ASRL/dev/ttyUSB0::INSTR', "
            "'USB0::0x0957::0x1799::MY123::INSTR', 'GPIB0::12::INSTR'",
        ) from None


class _Job(Generic[T]):
    __slots__ = ("abandoned", "done", "error", "fn", "notify", "result")

    def __init__(self, fn: Callable[[], T], notify: Callable[[], object]) -> None:
        self.fn = fn
        self.notify = notify  # wakes the awaiting task; called on the worker (or guard) thread
        self.result: T | None = None
        self.error: BaseException | None = None
        self.done = False  # set on the worker thread before `notify`
        self.abandoned = False

    def wake(self) -> None:
        """Wake the awaiting task from another thread (harmless if it is already awake)."""
        # RuntimeError: the event loop has closed, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            self.notify()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():  # a cancelled waiter has gone away
        future.set_result(None)


class _SessionThread:
    """One worker thread running jobs in order; each result is handed back to the event loop.

    The hand-back is backend-native and non-blocking (``call_soon_threadsafe`` resolving an
    asyncio future; trio's ``run_sync_soon`` setting a trio event): measured, it costs about
    half of ``anyio.to_thread.run_sync`` per call, and the worker never waits for the loop.
    """

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            import trio

            self._loop = None
            self._trio_token = trio.lowlevel.current_trio_token()
        # daemon: a leaked, never-closed instrument must not keep the interpreter alive.
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            if job.abandoned:  # cancelled before it started: never touch the session for it
                continue
            try:
                job.result = job.fn()
            except BaseException as exc:  # handed to the awaiting task, which re-raises it
                job.error = exc
            job.done = True
            job.wake()

    async def call(self, fn: Callable[[], T], guard: float | None = None) -> T:
        """Run `fn` on the worker thread and return its result (or raise its exception).

        `guard` (seconds) bounds the wait for calls with no timeout of their own (opening,
        closing); a call that is already running is never interrupted, only abandoned.
        """
        loop = self._loop
        job: _Job[T]
        waiter: Callable[[], Awaitable[object]]
        if loop is not None:
            future: asyncio.Future[None] = loop.create_future()
            job = _Job(fn, lambda: loop.call_soon_threadsafe(_resolve, future))
            waiter = lambda: future  # noqa: E731 - awaiting the future itself is the fast path
        else:
            import trio

            event = trio.Event()
            token = self._trio_token
            job = _Job(fn, lambda: token.run_sync_soon(event.set))
            waiter = event.wait
        # The guard runs in real time, like the call it bounds: a deadline on the loop's clock
        # would expire at once under a virtual clock (which jumps while the loop only waits for
        # a thread), failing an open that was merely parsing its YAML.
        alarm = None
        if guard is not None:
            alarm = threading.Timer(guard, job.wake)
            alarm.daemon = True
            alarm.start()
        self._jobs.put(job)
        try:
            # Under a virtual clock, time stands still while the worker thread talks to the
            # instrument (a no-op on the real clock).
            with current_clock().hold_jumps():
                await waiter()
        except BaseException:
            # Cancelled: a started call runs to its end on the worker (it cannot be
            # interrupted); a job that has not started yet is skipped.
            job.abandoned = True
            raise
        finally:
            if alarm is not None:
                alarm.cancel()
        if not job.done:  # woken by the guard
            job.abandoned = True
            raise InstrumentTimeout(
                None, guard or 0.0, "the VISA call did not return; the session is busy"
            )
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[return-value]

    def stop(self) -> None:
        self._jobs.put(None)


class VisaTransport(Transport):
    """A VISA resource (GPIB, USB, TCPIP, ASRL, ...) on its own worker thread.

    Args:
        resource_name: any VISA resource name, checked before anything is opened.
        visa_library: pyvisa's library spec: ``""`` (default VISA), ``"@py"`` (pyvisa-py),
            ``"@sim"`` or ``"path/to/devices.yaml@sim"`` (pyvisa-sim; see
            `timecontrol.drivers.sim.SIM_LIBRARY` for the bundled simulated instruments).
        open_timeout: seconds allowed for opening the resource.
        encoding, write_termination, read_termination: see `Transport`.
        resource_options: further attributes set on the pyvisa resource after opening
            (e.g. ``baud_rate=115200`` for a serial resource).
    """

    def __init__(
        self,
        resource_name: str,
        *,
        visa_library: str = "",
        open_timeout: float = 5.0,
        encoding: str = "ascii",
        write_termination: str = "\n",
        read_termination: str = "\n",
        **resource_options: Any,
    ) -> None:
        self.resource_name = check_resource_name(resource_name)
        if not isinstance(visa_library, str):
            raise AddressError(visa_library, "visa_library is a string such as '@sim' or '@py'")
        super().__init__(
            encoding=encoding,
            write_termination=write_termination,
            read_termination=read_termination,
        )
        self.visa_library = visa_library
        self.open_timeout = open_timeout
        self.resource_options = resource_options
        self._thread: _SessionThread | None = None
        self._resource: Any = None
        self._timeout_ms: float | None = None
        self._term = read_termination.encode(encoding)

    @property
    def address(self) -> str:
        """The resource name, with the library spec when it is not the default."""
        suffix = f" ({self.visa_library})" if self.visa_library else ""
        return f"{self.resource_name}{suffix}"

    @property
    def is_open(self) -> bool:
        """True while the resource is open."""
        return self._resource is not None

    async def _call(self, fn: Callable[[], T]) -> T:
        # No extra deadline here: VISA's own timeout (set on the resource) ends the call, and
        # a cancel scope that waits would cost about a third of the whole round trip.
        if self._thread is None:
            raise TransportError(f"{self.address}: not open")
        return await self._thread.call(fn)

    # -- on the worker thread ------------------------------------------------------------------

    def _open_sync(self) -> Any:
        import pyvisa

        with _OPEN_LOCK:
            try:
                rm = pyvisa.ResourceManager(self.visa_library)
            except (OSError, ValueError, pyvisa.errors.Error) as exc:
                raise TransportError(
                    f"cannot load the VISA library {self.visa_library!r}: {exc}"
                ) from exc
            if type(rm.visalib).__name__ == "SimVisaLibrary":
                # pyvisa-sim "opens" any well-formed name and then ignores every write; catch
                # a typo here, where real VISA libraries would report VI_ERROR_RSRC_NFOUND.
                known = rm.list_resources()
                if self.resource_name not in known:
                    raise AddressError(
                        self.resource_name, f"unknown simulated resource; known: {list(known)}"
                    )
            try:
                resource = rm.open_resource(
                    self.resource_name, open_timeout=int(self.open_timeout * 1000)
                )
            except pyvisa.errors.VisaIOError as exc:
                if exc.error_code == pyvisa.constants.StatusCode.error_resource_not_found:
                    raise AddressError(self.resource_name, f"no such resource: {exc}") from exc
                raise TransportError(f"{self.address}: cannot open: {exc}") from exc
        try:
            # Resource is typed as the base class; message-based resources have these.
            resource.read_termination = self.read_termination  # type: ignore[attr-defined]
            resource.write_termination = self.write_termination  # type: ignore[attr-defined]
            for key, value in self.resource_options.items():
                setattr(resource, key, value)
        except Exception:
            resource.close()
            raise
        return resource

    def _set_timeout(self, timeout: float) -> None:
        ms = max(1.0, timeout * 1000.0)
        if ms != self._timeout_ms:
            self._resource.timeout = ms
            self._timeout_ms = ms

    def _read_sync(self) -> str:
        import pyvisa

        try:
            data = self._resource.read_raw()
        except pyvisa.errors.VisaIOError as exc:
            if exc.error_code == pyvisa.constants.StatusCode.error_timeout:
                raise InstrumentTimeout(None, (self._timeout_ms or 0) / 1000) from None
            raise TransportError(f"{self.address}: read failed: {exc}") from exc
        if data.endswith(self._term):
            data = data[: -len(self._term)]
        return self.decode(bytes(data))

    def _write_sync(self, data: bytes) -> None:
        import pyvisa

        try:
            self._resource.write_raw(data)
        except pyvisa.errors.VisaIOError as exc:
            if exc.error_code == pyvisa.constants.StatusCode.error_timeout:
                timeout = (self._timeout_ms or 0) / 1000
                raise InstrumentTimeout(None, timeout, "while sending") from None
            raise TransportError(f"{self.address}: write failed: {exc}") from exc

    def _query_sync(self, data: bytes, timeout: float) -> str:
        self._set_timeout(timeout)
        self._write_sync(data)
        return self._read_sync()

    def _drain_sync(self, quiet: float) -> list[str]:
        self._set_timeout(quiet)
        discarded: list[str] = []
        while True:
            try:
                discarded.append(self._read_sync())
            except InstrumentTimeout:
                return discarded

    def _clear_sync(self) -> None:
        import pyvisa

        # Not every interface (nor pyvisa-sim) supports device clear; the drain covers it.
        with contextlib.suppress(NotImplementedError, pyvisa.errors.VisaIOError, AttributeError):
            self._resource.clear()

    def _close_sync(self) -> None:
        # Close only the resource: the resource manager is shared by every session on the
        # same library, and closing it would close other instruments' sessions too.
        with contextlib.suppress(Exception):  # a broken session counts as closed all the same
            self._resource.close()

    # -- on the event loop --------------------------------------------------------------------

    async def open(self) -> None:
        """Start the worker thread and open the resource on it."""
        if self._resource is not None:
            return
        self._thread = _SessionThread(f"visa:{self.resource_name}")
        try:
            self._resource = await self._thread.call(self._open_sync, self.open_timeout * 2 + 1)
        except BaseException:
            self._thread.stop()
            self._thread = None
            raise
        self._timeout_ms = None

    async def close(self) -> None:
        """Close the resource on its thread, then let the thread end (idempotent)."""
        thread, resource = self._thread, self._resource
        if thread is None:
            return
        try:
            if resource is not None:
                with anyio.CancelScope(shield=True):
                    await thread.call(self._close_sync, _CLOSE_GUARD)
        except TimeoutError:
            pass
        finally:
            self._resource = None
            self._thread = None
            thread.stop()

    async def write(self, message: str, timeout: float) -> None:  # noqa: ASYNC109
        """Send one message on the worker thread."""
        data = self.encode(message)

        def job() -> None:
            self._set_timeout(timeout)
            self._write_sync(data)

        await self._call(job)

    async def read(self, timeout: float) -> str:  # noqa: ASYNC109
        """Read one message on the worker thread, with VISA's own timeout."""

        def job() -> str:
            self._set_timeout(timeout)
            return self._read_sync()

        return await self._call(job)

    async def query(self, message: str, timeout: float) -> str:  # noqa: ASYNC109
        """Write and read in ONE hop to the worker thread (half the cross-thread cost)."""
        data = self.encode(message)
        return await self._call(lambda: self._query_sync(data, timeout))

    async def drain(self, quiet: float) -> list[str]:
        """Read and discard until a read of `quiet` seconds times out."""
        return await self._call(lambda: self._drain_sync(quiet))

    async def clear(self) -> None:
        """VISA device clear (flushes the device's output), where the interface supports it."""
        await self._call(self._clear_sync)
