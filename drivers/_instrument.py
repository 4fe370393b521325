"""The instrument base: one command in flight, timeouts, resynchronisation, reconnects, retries.

Invariant the whole module exists for: **a reply is only ever returned to the command that
caused it.** After anything that may leave a reply on the wire unread (a timeout, a reply that
did not parse, a cancelled call), the instrument is marked *dirty*, and before the next command
it drains stale input and confirms with a probe query (`*OPC?` for SCPI, or a unique token) that
the next reply will be the answer to the next question. After a transport error it is marked
*broken* and reconnects, with backoff, before the next command. Only commands declared
idempotent are retried automatically; every other failure is raised as a typed error.

The instrument's other parts live beside it: the lock that keeps one command in flight
(`_lock`), the reply parsers (`_parsers`), the fault paths and recovery (`_recovery`), the
run-engine device protocol (`_device`) and the shared types and protocols (`_types`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import Any, ClassVar, NoReturn, Self, TypeVar

import anyio
import anyio.lowlevel

from timecontrol._log import Log
from timecontrol.limiters import WatchdogStateError

from ._device import Device
from ._errors import (
    AddressError,
    CommandError,
    DriverError,
    InstrumentTimeout,
    NotConnectedError,
    ReplyParseError,
    TransportError,
)
from ._lock import TaskLock
from ._parsers import has_undecodable, parse_bool, parse_float, parse_int, parse_str
from ._recovery import Recovery
from ._transport import Transport
from ._types import (
    InstrumentStats,
    Limiter,
    LimiterSpec,
    RunningReporting,
    TripReporting,
    Watchdog,
    WatchdogSpec,
)

__all__ = ["Instrument"]

T = TypeVar("T")

# The instruments whose watchdogs the current context bypasses (see `Instrument.unguarded`).
# A context variable, because what must bypass them is a *task*: the watchdog's own, which
# runs the safety action, and inherits this from `connect()` when the watchdog starts it.
_unguarded: ContextVar[tuple[Instrument, ...]] = ContextVar(
    "timecontrol_drivers_unguarded", default=()
)

# Commands already checked by `_check_command`, per instrument, at most this many: a driver
# sends the same few commands again and again, and checking costs more than a dict lookup.
_CHECKED_COMMANDS_MAX = 512


# -- the instrument ----------------------------------------------------------------------------


def _check_seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise CommandError(str(value), f"{what} must be a positive number of seconds")
    return float(value)


class Instrument(Recovery, Device):
    """An instrument reached through one `Transport`: the base of every driver.

    Use it as an async context manager (``async with Supply(address) as psu:``) or call
    `connect()` / `close()`. Subclass it for instruments that do not speak SCPI; subclass
    `ScpiInstrument` for those that do.

    Args:
        address: an address string (see `transport_for`) or a ready `Transport`.
        name: the name used in `read()` / `describe()` keys (default: the class name, lowercase).
        timeout: default per-call timeout in seconds (default: `default_timeout`).
        clock: wall-clock callable for reading timestamps (default: the current timecontrol
            clock's ``time()``, so readings follow virtual time under `timecontrol.testing`).
        limiters: extra limiters for this instance, applied after the class's `limiters`.
        watchdogs: extra watchdogs for this instance, after the class's `watchdogs`.
        log: where to write this instrument's events (``instrument.*``: connections, faults,
            recoveries, errors; never routine commands). Default: the running engine's Log
            (`timecontrol.current_engine`), looked up at each event; none when no engine runs.
        transport_options: options for the transport built from `address` (terminations,
            ``visa_library``, ``baudrate``, ...), on top of the class's `transport_options`.

    Class attributes a driver may override:
        default_timeout: seconds per call.
        retries: automatic retries of an *idempotent* command after a timeout, a garbled reply
            or a lost connection.
        reconnect_attempts, reconnect_delay, reconnect_max_delay: reconnect with exponential
            backoff (first attempt at once, then delay, 2x delay, ... up to the maximum).
        drain_quiet: how long the line must stay silent while draining (default:
            ``min(timeout, 0.1)``).
        resync_timeout: how long to wait for the sync probe's answer (default: 4x timeout).
        resync_rounds: drain-and-probe rounds before giving up and reconnecting.
        limiters: `LimiterSpec` s applied around every command sent, per instance (e.g. a
            `timecontrol.limiters.Command`: not too often).
        watchdogs: `WatchdogSpec` s, per instance (e.g. a `timecontrol.limiters.Control`:
            not too seldom). Each watches from `connect()` to `close()` and is fed by every
            guarded command that reached the instrument (a write sent, a reply taken). After
            a trip, the next guarded command raises `OverTimeLimit` and is not sent; while
            one is not running (stopped before `close()`), a guarded command raises
            `timecontrol.limiters.WatchdogStateError` and is not sent either. The
            safety action's own commands are not guarded (see `unguarded()`), nor are those of
            `on_connect()` and `on_disconnect()`. Entering and leaving a watchdog must happen
            in one task, so use ``async with instrument:`` (or call `connect()` and `close()`
            from the same task).
        transport_options: default transport options (e.g. terminations, baud rate).
    """

    default_timeout: ClassVar[float] = 1.0
    retries: ClassVar[int] = 2
    reconnect_attempts: ClassVar[int] = 5
    reconnect_delay: ClassVar[float] = 0.05
    reconnect_max_delay: ClassVar[float] = 2.0
    drain_quiet: ClassVar[float | None] = None
    resync_timeout: ClassVar[float | None] = None
    resync_rounds: ClassVar[int] = 3
    limiters: ClassVar[Sequence[LimiterSpec]] = ()
    watchdogs: ClassVar[Sequence[WatchdogSpec]] = ()
    transport_options: ClassVar[Mapping[str, Any]] = {}

    def __init__(
        self,
        address: str | Transport,
        *,
        name: str | None = None,
        timeout: float | None = None,
        clock: Callable[[], float] | None = None,
        limiters: Sequence[LimiterSpec] = (),
        watchdogs: Sequence[WatchdogSpec] = (),
        log: Log | None = None,
        **transport_options: Any,
    ) -> None:
        if log is not None and not isinstance(log, Log):
            raise DriverError(f"log must be a timecontrol Log (or None), got {log!r}")
        if isinstance(address, Transport):
            if transport_options:
                raise AddressError(
                    address,
                    f"transport options {sorted(transport_options)} only apply to an address "
                    "string; configure the Transport object instead",
                )
            self._transport = address
        else:
            from ._address import transport_for

            options = {**self.transport_options, **transport_options}
            self._transport = transport_for(address, **options)
        self.name = name if name is not None else type(self).__name__.lower()
        self.timeout = _check_seconds(
            self.default_timeout if timeout is None else timeout, "timeout"
        )
        self._clock = clock
        self._limiters: list[Limiter] = [
            self._instantiate(s, "limiter", ("__aenter__", "__aexit__"))
            for s in (*type(self).limiters, *limiters)
        ]
        self._watchdogs: list[Watchdog] = [
            self._instantiate(s, "watchdog", ("__aenter__", "__aexit__", "feed"))
            for s in (*type(self).watchdogs, *watchdogs)
        ]
        # The watchdogs that can report a trip to the next guarded command.
        self._trip_reporters = [w for w in self._watchdogs if isinstance(w, TripReporting)]
        # The watchdogs that say whether they are watching: a guarded command is refused
        # while one is not (sent, it would be silently unguarded).
        self._running_reporters = [w for w in self._watchdogs if isinstance(w, RunningReporting)]
        self._plain_watchdogs = [w for w in self._watchdogs if not isinstance(w, RunningReporting)]
        self._watch_checks = bool(self._trip_reporters or self._running_reporters)
        self._watching: AsyncExitStack | None = None
        self._log = log
        self._checked: dict[str, None] = {}
        self._lock = TaskLock()
        self._connected = False
        self._dirty = False  # a reply may be pending on the wire: resync before the next command
        self._broken = False  # the connection failed: reconnect before the next command
        self.stats = InstrumentStats()

    def _instantiate(self, spec: Any, what: str, needs: tuple[str, ...]) -> Any:
        def fits(obj: object) -> bool:
            return not isinstance(obj, type) and all(hasattr(obj, name) for name in needs)

        if fits(spec):
            return spec  # an object: deliberately shared by every instance
        if not callable(spec):
            raise DriverError(
                f"{type(self).__name__}: {what} {spec!r} is neither a {what} (with "
                f"{', '.join(needs)}) nor a factory returning one"
            )
        # A factory with a required positional parameter is given the instrument (to name or
        # configure the limiter after it); any other factory is called without arguments.
        try:
            wants_instance = any(
                p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                for p in inspect.signature(spec).parameters.values()
            )
        except (TypeError, ValueError):
            wants_instance = False
        made = spec(self) if wants_instance else spec()
        if not fits(made):
            raise DriverError(
                f"{type(self).__name__}: {what} factory {spec!r} returned {made!r}, "
                f"which lacks {', '.join(needs)}"
            )
        return made

    # -- properties ----------------------------------------------------------------------------

    @property
    def transport(self) -> Transport:
        """The transport in use."""
        return self._transport

    @property
    def address(self) -> str:
        """The transport's address."""
        return self._transport.address

    @property
    def connected(self) -> bool:
        """True between `connect()` and `close()` (even while reconnecting)."""
        return self._connected

    @property
    def limiter_objects(self) -> tuple[Limiter, ...]:
        """The limiters applied to this instance's commands, class-declared ones first."""
        return tuple(self._limiters)

    @property
    def watchdog_objects(self) -> tuple[Watchdog, ...]:
        """This instance's watchdogs, class-declared ones first."""
        return tuple(self._watchdogs)

    @property
    def log(self) -> Log | None:
        """The Log given to this instrument (None: it writes to the running engine's Log)."""
        return self._log

    def _feed(self) -> None:
        for watchdog in self._plain_watchdogs:
            watchdog.feed()
        for watchdog in self._running_reporters:
            # One may have stopped while the command was on the wire (close() from another
            # task): feeding it would restart it, or refuse a command that went through.
            if watchdog.running:
                watchdog.feed()

    def _check_watchdogs(self) -> RunningReporting | None:
        """Before a guarded command: the first watchdog that is not watching (the command
        must then be refused, not sent unguarded), else None; a watchdog that tripped raises
        its `OverTimeLimit` here, once."""
        for stopped in self._running_reporters:
            if not stopped.running:
                return stopped
        for watchdog in self._trip_reporters:
            if watchdog.tripped:
                # Entering a tripped watchdog's guarded() is what delivers the trip: it raises
                # OverTimeLimit (and clears the trip, so the command after this one runs).
                with watchdog.guarded():
                    pass
        return None

    async def _refuse_unwatched(self, command: str, watchdog: RunningReporting) -> NoReturn:
        # A watchdog whose safety action failed has stopped and is cancelling this task:
        # let that cancellation win, so that its SafetyActionError is what the caller sees.
        await anyio.lowlevel.checkpoint_if_cancelled()
        error = WatchdogStateError(
            f"{self!r}: its watchdog {watchdog.name!r} is not running (stopped while the "
            f"instrument is connected), so {command!r} was not sent rather than sent unguarded; "
            "close() and connect() the instrument to watch again, or send it inside "
            "'with instrument.unguarded():'"
        )
        self._record_error(command, error)
        raise error

    @contextmanager
    def unguarded(self) -> Iterator[Self]:
        """Commands this task sends to this instrument inside the block bypass its watchdogs.

        They neither raise `OverTimeLimit` after a trip nor feed the watchdogs: they are not
        the experiment keeping the instrument alive, but what happens because it did not.
        A watchdog's safety action needs no such block when the watchdog is declared on this
        instrument: the watchdog's task, started by `connect()`, is unguarded already. Use it
        for a safety action run by some other watchdog, e.g. a lab-wide one that switches
        several instruments off.
        Limiters (`Command`) still apply: they protect the instrument, not the experiment.
        """
        token = _unguarded.set((*_unguarded.get(), self))
        try:
            yield self
        finally:
            _unguarded.reset(token)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} at {self.address}>"

    # -- connection ----------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the transport and run `on_connect()`; a second call is a no-op."""
        async with self._lock:
            if self._connected:
                return
            await self._transport.open()
            self._connected, self._dirty, self._broken = True, False, False
            try:
                # Unguarded: the hooks are not the experiment's commands, and a watchdog
                # started here runs its safety action in a task that inherits this context,
                # so that the action's own commands are never refused for the trip that
                # caused them.
                with self.unguarded():
                    await self.on_connect()
                    if self._watchdogs:
                        async with AsyncExitStack() as stack:
                            for watchdog in self._watchdogs:
                                await stack.enter_async_context(watchdog)
                            self._watching = stack.pop_all()
            except BaseException:
                self._connected = False
                with anyio.CancelScope(shield=True):
                    await self._transport.close()
                raise
        self._record(
            "instrument.connected",
            {"driver": type(self).__name__, "transport": type(self._transport).__name__},
        )

    async def close(self) -> None:
        """Stop the watchdogs, run `on_disconnect()` (unless the connection is broken) and
        close the transport."""
        # Watchdogs first, and outside the shielded scope below: each was entered (with its
        # own task group) in connect(), and scopes must be left in the reverse order.
        watching, self._watching = self._watching, None
        try:
            if watching is not None:
                await watching.aclose()
        finally:
            with anyio.CancelScope(shield=True):
                await self._disconnect()

    async def _disconnect(self) -> None:
        async with self._lock:
            if not self._connected:
                return
            broken = self._broken
            try:
                if not broken:
                    with anyio.move_on_after(max(self.timeout * 4, 1.0)), self.unguarded():
                        await self.on_disconnect()
            except DriverError:
                pass  # leaving anyway; the transport is closed below
            finally:
                self._connected = False
                await self._transport.close()
                self._record(
                    "instrument.disconnected", {"broken": broken, "stats": self.stats.as_dict()}
                )

    async def on_connect(self) -> None:
        """Hook run after the transport opened (e.g. check the identity, clear status)."""

    async def on_disconnect(self) -> None:
        """Hook run before the transport closes (e.g. switch an output off)."""

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Self]:
        """Hold the instrument for a group of commands: no other task's command comes between.

        Commands inside are made by the same task, so the lock admits them (it is re-entrant);
        a task started inside the block is another task and waits until the block ends.
        """
        async with self._lock:
            yield self

    # -- commands ------------------------------------------------------------------------------

    def _check_command(self, command: str) -> None:
        if type(command) is str and command in self._checked:
            return
        if not isinstance(command, str):
            raise CommandError(repr(command), "a command is a string")
        if not command.strip():
            raise CommandError(command, "empty command")
        transport = self._transport
        for term in (transport.write_termination, transport.read_termination):
            if term and term in command:
                raise CommandError(
                    command,
                    f"contains the termination {term!r}, which would split it into two messages",
                )
        transport.encode(command)  # CommandError now, not half-way through a send
        if len(self._checked) >= _CHECKED_COMMANDS_MAX:
            self._checked.clear()  # commands built from values (VOLT 1.25, ...) never repeat
        self._checked[command] = None

    def _timeout(self, timeout: float | None) -> float:
        return self.timeout if timeout is None else _check_seconds(timeout, "timeout")

    async def write(
        self,
        command: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        idempotent: bool = False,
    ) -> None:
        """Send a command that has no reply.

        Args:
            command: the command, without termination.
            timeout: seconds allowed to send it (default: the instrument's timeout).
            idempotent: True if sending it twice is harmless (then it is retried after a
                lost connection).
        """
        self._check_command(command)
        await self._run(command, None, "", idempotent, self._timeout(timeout))

    async def query(
        self,
        command: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        idempotent: bool = False,
    ) -> str:
        """Send a query and return its reply as text (stripped of surrounding whitespace)."""
        return await self.query_parsed(
            command, parse_str, "text", timeout=timeout, idempotent=idempotent
        )

    async def query_float(
        self,
        command: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        idempotent: bool = False,
    ) -> float:
        """Send a query and parse its reply as a number (`ReplyParseError` if it is not)."""
        return await self.query_parsed(
            command, parse_float, "a number", timeout=timeout, idempotent=idempotent
        )

    async def query_int(
        self,
        command: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        idempotent: bool = False,
    ) -> int:
        """Send a query and parse its reply as an integer (`ReplyParseError` if it is not)."""
        return await self.query_parsed(
            command, parse_int, "an integer", timeout=timeout, idempotent=idempotent
        )

    async def query_bool(
        self,
        command: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        idempotent: bool = False,
    ) -> bool:
        """Send a query and parse ``1``/``0``/``ON``/``OFF`` (`ReplyParseError` otherwise)."""
        return await self.query_parsed(
            command, parse_bool, "a boolean (1/0/ON/OFF)", timeout=timeout, idempotent=idempotent
        )

    async def query_parsed(
        self,
        command: str,
        parser: Callable[[str], T],
        expected: str = "valid",
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        idempotent: bool = False,
    ) -> T:
        """Send a query and return ``parser(reply)``.

        A `ValueError`/`TypeError` from `parser` becomes `ReplyParseError` naming the command,
        the reply and `expected`; the instrument then resynchronises before its next command.

        Args:
            command: the query, without termination.
            parser: turns the reply text into a value; raises `ValueError` if it cannot.
            expected: what a good reply looks like, for the error message.
            timeout: seconds allowed for the reply (default: the instrument's timeout).
            idempotent: True if asking twice is harmless (then it is retried, up to `retries`
                times, after a timeout, a garbled reply or a lost connection).
        """
        self._check_command(command)
        value: T = await self._run(command, parser, expected, idempotent, self._timeout(timeout))
        return value

    # -- the exchange --------------------------------------------------------------------------

    async def _run(
        self,
        command: str,
        parser: Callable[[str], Any] | None,
        expected: str,
        idempotent: bool,
        t: float,
    ) -> Any:
        """Send `command` (a query when `parser` is given) with everything around it: the
        lock, the watchdogs, recovery before it, the limiters, retries and events."""
        lock = self._lock
        if not lock.enter_nowait():
            await lock.enter()
        try:
            if not self._connected:
                raise NotConnectedError(
                    f"{self!r} is not connected: use 'async with' or await connect() first"
                )
            guarded = bool(self._watchdogs) and self not in _unguarded.get()
            if guarded and self._watch_checks:
                unwatched = self._check_watchdogs()
                if unwatched is not None:
                    await self._refuse_unwatched(command, unwatched)
            tries = 0
            while True:
                if self._broken or self._dirty:
                    try:
                        await self._make_ready(t)
                    except DriverError as exc:
                        # Not retried: recovery has already been through its resync rounds
                        # and its reconnect attempts with backoff.
                        self._record_error(command, exc)
                        raise
                try:
                    if self._limiters:
                        value = await self._limited(command, parser, expected, t)
                    elif parser is None:
                        await self._send(command, t)
                        value = None
                    else:
                        value = await self._ask(command, parser, expected, t)
                except (InstrumentTimeout, ReplyParseError, TransportError) as exc:
                    tries += 1
                    if not idempotent or tries > self.retries:
                        self._record_error(command, exc)
                        raise
                    self._record_retry(command, tries, exc)
                    continue
                if guarded:
                    self._feed()
                return value
        finally:
            lock.exit()

    def _record_retry(self, command: str, attempt: int, exc: DriverError) -> None:
        self.stats.retries += 1
        payload = {"command": command, "attempt": attempt, "error": type(exc).__name__}
        self._record("instrument.retry", {**payload, "message": str(exc)})

    async def _limited(
        self, command: str, parser: Callable[[str], Any] | None, expected: str, t: float
    ) -> Any:
        async with AsyncExitStack() as stack:
            for limiter in self._limiters:
                await stack.enter_async_context(limiter)
            if parser is None:
                return await self._send(command, t)
            return await self._ask(command, parser, expected, t)

    async def _send(self, command: str, t: float) -> None:
        self.stats.commands += 1
        # Until the write has completed, part of the command may be on the wire.
        self._dirty = True
        try:
            await self._transport.write(command, t)
        except InstrumentTimeout as exc:
            raise self._timed_out(command, t, exc.detail) from None
        except TransportError as exc:
            self._lost(command, exc)
            raise
        self._dirty = False

    async def _ask(self, command: str, parser: Callable[[str], T], expected: str, t: float) -> T:
        self.stats.commands += 1
        # From here until a reply has been taken, a reply may be left on the wire (a timeout,
        # a cancellation): the flag stays set and the next command resynchronises first.
        self._dirty = True
        try:
            reply = await self._transport.query(command, t)
        except InstrumentTimeout as exc:
            raise self._timed_out(command, t, exc.detail) from None
        except TransportError as exc:
            self._lost(command, exc)
            raise
        if has_undecodable(reply):
            raise self._bad_reply(command, reply, f"valid {self._transport.encoding} text")
        try:
            value = parser(reply)
        except (ValueError, TypeError, ArithmeticError):
            raise self._bad_reply(command, reply, expected) from None
        self._dirty = False
        return value
