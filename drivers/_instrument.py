"""The instrument base: one command in flight, timeouts, resynchronisation, reconnects, retries.

Invariant the whole module exists for: **a reply is only ever returned to the command that
caused it.** After anything that may leave a reply on the wire unread (a timeout, a reply that
did not parse, a cancelled call), the instrument is marked *dirty*, and before the next command
it drains stale input and confirms with a probe query (`*OPC?` for SCPI, or a unique token) that
the next reply will be the answer to the next question. After a transport error it is marked
*broken* and reconnects, with backoff, before the next command. Only commands declared
idempotent are retried automatically; every other failure is raised as a typed error.
"""

from __future__ import annotations

import abc
import asyncio
import inspect
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import Any, ClassVar, NamedTuple, Protocol, Self, TypedDict, TypeVar

import anyio

from timecontrol._clock import current_clock

from ._errors import (
    AddressError,
    CommandError,
    DriverError,
    InstrumentTimeout,
    NotConnectedError,
    ReplyParseError,
    TransportError,
)
from ._transport import Transport

__all__ = [
    "DataKey",
    "Field",
    "Instrument",
    "InstrumentStats",
    "Limiter",
    "LimiterSpec",
    "Reading",
    "SyncProbe",
    "Watchdog",
    "WatchdogSpec",
    "parse_bool",
    "parse_float",
    "parse_int",
]

T = TypeVar("T")


class Reading(TypedDict):
    """One value as returned by `Instrument.read()` (the bluesky/ophyd reading shape)."""

    value: Any
    timestamp: float


class DataKey(TypedDict, total=False):
    """One entry of `Instrument.describe()` (the bluesky event-model data-key shape)."""

    source: str
    dtype: str
    shape: list[int]
    units: str
    lower_ctrl_limit: float
    upper_ctrl_limit: float
    choices: list[str]


class SyncProbe(NamedTuple):
    """A query used to confirm that commands and replies are in step again.

    Attributes:
        command: the query to send.
        reply: the exact reply (stripped) that confirms synchronisation.
        unique: True when `reply` can never be a stale answer to an earlier command (e.g. an
            echo of a fresh token). When False (``*OPC?`` answers ``1``, like many queries),
            the instrument also checks that nothing else arrives after the match.
    """

    command: str
    reply: str
    unique: bool = False


class Limiter(Protocol):
    """Anything usable as ``async with limiter:`` (e.g. `timecontrol.limiters` objects)."""

    async def __aenter__(self) -> object: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None: ...


#: A limiter declared on a class: a factory called once per instance (with no argument, or
#: with the instrument), or a limiter object, which is then shared by every instance.
LimiterSpec = Limiter | Callable[[], Limiter] | Callable[["Instrument"], Limiter]


class Watchdog(Protocol):
    """A watchdog (e.g. `timecontrol.limiters.Control`): watches while ``async with`` runs,
    and must be fed (`feed()`) often enough, or it trips and runs its safety action."""

    def feed(self) -> None: ...

    async def __aenter__(self) -> object: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None: ...


#: A watchdog declared on a class: a factory called once per instance (with no argument, or
#: with the instrument, e.g. to give it a safety action that uses the instrument).
WatchdogSpec = Watchdog | Callable[[], Watchdog] | Callable[["Instrument"], Watchdog]


@dataclass(slots=True)
class InstrumentStats:
    """Counters kept by every instrument (read them for diagnostics and benchmarks)."""

    commands: int = 0
    retries: int = 0
    timeouts: int = 0
    parse_errors: int = 0
    transport_errors: int = 0
    resyncs: int = 0
    stale_replies: int = 0
    reconnects: int = 0

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        return asdict(self)


# -- reply parsers ------------------------------------------------------------------------------

# SCPI numeric responses (NR1, NR2, NR3) and the named non-finite values some instruments send.
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
_NONFINITE = {
    "NAN": math.nan,
    "INF": math.inf,
    "+INF": math.inf,
    "-INF": -math.inf,
    "NINF": -math.inf,
}
_TRUE = frozenset({"1", "+1", "ON", "TRUE"})
_FALSE = frozenset({"0", "+0", "-0", "OFF", "FALSE"})


def parse_float(reply: str) -> float:
    """Parse a numeric reply (``5``, ``+5.000E+00``, ``NAN``); `ValueError` otherwise.

    Stricter than `float()`: underscores, inner spaces and ``infinity`` spellings that a
    garbled reply could produce are rejected instead of silently accepted.
    """
    text = reply.strip()
    if _NUMBER.fullmatch(text):
        return float(text)
    special = _NONFINITE.get(text.upper())
    if special is None:
        raise ValueError(f"not a number: {reply!r}")
    return special


def parse_int(reply: str) -> int:
    """Parse an integer reply (``12``, ``+12``, an integral ``1.2E+01``); else `ValueError`."""
    text = reply.strip()
    if _INTEGER.fullmatch(text):
        return int(text)
    if _NUMBER.fullmatch(text):
        value = float(text)
        if value.is_integer():
            return int(value)
    raise ValueError(f"not an integer: {reply!r}")


def parse_bool(reply: str) -> bool:
    """Parse a boolean reply (``1``/``0``/``ON``/``OFF``); `ValueError` otherwise."""
    text = reply.strip().upper()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"not a boolean: {reply!r}")


def _parse_str(reply: str) -> str:
    return reply.strip()


def _has_undecodable(reply: str) -> bool:
    # Transports decode with "surrogateescape": bytes that were not valid text show up as lone
    # surrogates, which no parser may accept (that is how a garbled str reply is caught).
    return not reply.isascii() and any("\udc80" <= c <= "\udcff" for c in reply)


# -- the re-entrant, FIFO-fair per-instrument lock --------------------------------------------


def _trio_task() -> object:
    import trio

    return trio.lowlevel.current_task()


def _current_task_getter() -> Callable[[], object]:
    """The running backend's native "current task" function.

    ``anyio.get_current_task()`` builds a TaskInfo on every call (about 2 µs); the native
    call costs a fifth of that, and this is on the path of every command.
    """
    try:
        asyncio.current_task()
    except RuntimeError:  # no asyncio loop running: trio
        return _trio_task
    return asyncio.current_task


class _TaskLock:
    """An anyio lock that the task holding it may enter again (for `transaction()`)."""

    __slots__ = ("_current", "_depth", "_lock", "_owner")

    def __init__(self) -> None:
        self._lock = anyio.Lock(fast_acquire=True)
        self._owner: object = None
        self._depth = 0
        # Found at first use: an instrument may be created outside any event loop.
        self._current: Callable[[], object] | None = None

    async def __aenter__(self) -> None:
        current = self._current
        if current is None:
            current = self._current = _current_task_getter()
        me = current()
        if self._owner is me:
            self._depth += 1
            return
        await self._lock.acquire()
        self._owner = me
        self._depth = 1

    async def __aexit__(self, *exc_info: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            self._lock.release()


# -- fields: declared settings and measurements (see _scpi.py for the SCPI ones) --------------


class Field(abc.ABC):
    """A named value of an instrument, declared as a class attribute.

    `Instrument.read()` reads every field whose `role` is ``"read"``;
    `Instrument.read_configuration()` reads every ``"config"`` field.
    """

    role: ClassVar[str] = "read"

    def __init__(self, *, unit: str = "", doc: str = "") -> None:
        self.name = ""
        self.unit = unit
        self.doc = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @abc.abstractmethod
    async def fetch(self, instrument: Instrument) -> Any:
        """Read the field's current value from `instrument`."""

    @abc.abstractmethod
    def data_key(self, instrument: Instrument) -> DataKey:
        """Describe the field (source, dtype, shape, units, limits)."""

    @property
    def primary(self) -> bool:
        """True for the field that `Instrument.set()` writes (at most one per class)."""
        return False

    async def put(self, instrument: Instrument, value: Any) -> None:
        """Write `value` (only settable fields implement this)."""
        raise DriverError(f"{type(instrument).__name__}.{self.name} cannot be set")


# -- the instrument ----------------------------------------------------------------------------


def _check_seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise CommandError(str(value), f"{what} must be a positive number of seconds")
    return float(value)


class Instrument:
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
            command that reached the instrument (a write sent, a reply taken). Entering and
            leaving a watchdog must happen in one task, so use ``async with instrument:``
            (or call `connect()` and `close()` from the same task).
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

    _fields: ClassVar[dict[str, Field]] = {}
    _primary: ClassVar[Field | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields: dict[str, Field] = {}
        for klass in reversed(cls.__mro__):
            for key, value in vars(klass).items():
                # `_primary` holds a Field too (this very bookkeeping): not a field of its own.
                if isinstance(value, Field) and key != "_primary":
                    fields[key] = value
        primaries = [f for f in fields.values() if f.primary]
        if len(primaries) > 1:
            names = ", ".join(f.name for f in primaries)
            raise DriverError(f"{cls.__name__}: only one primary setting allowed, got {names}")
        cls._fields = fields
        cls._primary = primaries[0] if primaries else None

    def __init__(
        self,
        address: str | Transport,
        *,
        name: str | None = None,
        timeout: float | None = None,
        clock: Callable[[], float] | None = None,
        limiters: Sequence[LimiterSpec] = (),
        watchdogs: Sequence[WatchdogSpec] = (),
        **transport_options: Any,
    ) -> None:
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
        self._watching: AsyncExitStack | None = None
        self._lock = _TaskLock()
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

    def _feed(self) -> None:
        for watchdog in self._watchdogs:
            watchdog.feed()

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
            try:
                if not self._broken:
                    with anyio.move_on_after(max(self.timeout * 4, 1.0)):
                        await self.on_disconnect()
            except DriverError:
                pass  # leaving anyway; the transport is closed below
            finally:
                self._connected = False
                await self._transport.close()

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

    def sync_probe(self) -> SyncProbe | None:
        """The query that confirms synchronisation after a fault; ``None``: drain only.

        The base class has none (it knows no protocol); `ScpiInstrument` uses ``*OPC?``. Return
        a *unique* probe (an echo of a fresh token) where the instrument allows it.
        """
        return None

    def _check_command(self, command: str) -> None:
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
        t = self._timeout(timeout)
        await self._run(lambda: self._send(command, t), idempotent, t)

    async def query(
        self,
        command: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        idempotent: bool = False,
    ) -> str:
        """Send a query and return its reply as text (stripped of surrounding whitespace)."""
        return await self.query_parsed(
            command, _parse_str, "text", timeout=timeout, idempotent=idempotent
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
        t = self._timeout(timeout)
        return await self._run(lambda: self._ask(command, parser, expected, t), idempotent, t)

    # -- the exchange --------------------------------------------------------------------------

    async def _run(self, attempt: Callable[[], Awaitable[T]], idempotent: bool, t: float) -> T:
        async with self._lock:
            if not self._connected:
                raise NotConnectedError(
                    f"{self!r} is not connected: use 'async with' or await connect() first"
                )
            tries = 0
            while True:
                if self._broken or self._dirty:
                    await self._make_ready(t)
                try:
                    if not self._limiters:
                        return await attempt()
                    async with AsyncExitStack() as stack:
                        for limiter in self._limiters:
                            await stack.enter_async_context(limiter)
                        return await attempt()
                except (InstrumentTimeout, ReplyParseError, TransportError):
                    if not idempotent or tries >= self.retries:
                        raise
                    tries += 1
                    self.stats.retries += 1

    async def _send(self, command: str, t: float) -> None:
        self.stats.commands += 1
        # Until the write has completed, part of the command may be on the wire.
        self._dirty = True
        try:
            await self._transport.write(command, t)
        except InstrumentTimeout as exc:
            self.stats.timeouts += 1
            raise InstrumentTimeout(command, t, exc.detail) from None
        except TransportError:
            self._broken = True
            self.stats.transport_errors += 1
            raise
        self._dirty = False
        if self._watchdogs:
            self._feed()

    async def _ask(self, command: str, parser: Callable[[str], T], expected: str, t: float) -> T:
        self.stats.commands += 1
        # From here until a reply has been taken, a reply may be left on the wire (a timeout,
        # a cancellation): the flag stays set and the next command resynchronises first.
        self._dirty = True
        try:
            reply = await self._transport.query(command, t)
        except InstrumentTimeout as exc:
            self.stats.timeouts += 1
            raise InstrumentTimeout(command, t, exc.detail) from None
        except TransportError:
            self._broken = True
            self.stats.transport_errors += 1
            raise
        if _has_undecodable(reply):
            self.stats.parse_errors += 1
            raise ReplyParseError(command, reply, f"valid {self._transport.encoding} text")
        try:
            value = parser(reply)
        except (ValueError, TypeError, ArithmeticError):
            self.stats.parse_errors += 1
            raise ReplyParseError(command, reply, expected) from None
        self._dirty = False
        if self._watchdogs:
            self._feed()
        return value

    async def _make_ready(self, t: float) -> None:
        # Two passes: a resync that fails turns into a reconnect, which is then confirmed.
        for _ in range(2):
            if self._broken:
                await self._reconnect()
                # A fresh connection can still carry stale input (a serial line, a VISA
                # device's output buffer): confirm before trusting it.
                self._dirty = True
            if not self._dirty:
                return
            if await self._resync(t):
                return
            self._broken = True
        raise TransportError(f"{self!r}: cannot resynchronise, even after reconnecting")

    async def _resync(self, t: float) -> bool:
        """Drain stale input and confirm with the probe; True when in step again."""
        probe = self.sync_probe()
        quiet = self.drain_quiet if self.drain_quiet is not None else min(t, 0.1)
        wait = self.resync_timeout if self.resync_timeout is not None else 4 * t
        transport = self._transport
        for _ in range(self.resync_rounds):
            try:
                await transport.clear()
                self.stats.stale_replies += len(await transport.drain(quiet))
                if probe is None:
                    break
                if not await self._probe(probe, wait):
                    continue
                if not probe.unique:
                    # The match may have been a stale reply that happened to equal the probe's
                    # answer; then the real answer arrives now, and we go round again.
                    late = await transport.drain(quiet)
                    if late:
                        self.stats.stale_replies += len(late)
                        continue
                break
            except InstrumentTimeout:
                continue
            except TransportError:
                self._broken = True
                self.stats.transport_errors += 1
                return False
        else:
            return False
        self._dirty = False
        self.stats.resyncs += 1
        return True

    async def _probe(self, probe: SyncProbe, wait: float) -> bool:
        """Send the probe; read (and discard as stale) until its answer or `wait` expires."""
        transport = self._transport
        deadline = anyio.current_time() + wait
        await transport.write(probe.command, wait)
        while (remaining := deadline - anyio.current_time()) > 0:
            try:
                reply = await transport.read(remaining)
            except InstrumentTimeout:
                return False
            if reply.strip() == probe.reply:
                return True
            self.stats.stale_replies += 1
        return False

    async def _reconnect(self) -> None:
        """Close and reopen the transport, with exponential backoff between failed attempts."""
        delay = self.reconnect_delay
        error: TransportError | None = None
        for attempt in range(self.reconnect_attempts):
            if attempt:
                await anyio.sleep(delay)
                delay = min(delay * 2, self.reconnect_max_delay)
            await self._transport.close()
            try:
                await self._transport.open()
            except TransportError as exc:
                error = exc
                continue
            self._broken = False
            self.stats.reconnects += 1
            return
        raise TransportError(
            f"{self!r}: could not reconnect after {self.reconnect_attempts} attempts: {error}"
        ) from error

    # -- run-engine device protocol (bluesky / ophyd-async shape) ------------------------------

    def _key(self, field: Field) -> str:
        return f"{self.name}_{field.name}"

    def _stamp(self) -> float:
        return self._clock() if self._clock is not None else current_clock().time()

    async def read(self) -> dict[str, Reading]:
        """Read every measurement: ``{"<name>_<field>": {"value": ..., "timestamp": ...}}``.

        All values are read in one transaction (no other task's command comes between them).
        """
        return await self._read_role("read")

    async def describe(self) -> dict[str, DataKey]:
        """Describe what `read()` returns (source, dtype, shape, units, limits)."""
        return self._describe_role("read")

    async def read_configuration(self) -> dict[str, Reading]:
        """Read every setting, in the same shape as `read()`."""
        return await self._read_role("config")

    async def describe_configuration(self) -> dict[str, DataKey]:
        """Describe what `read_configuration()` returns."""
        return self._describe_role("config")

    @property
    def hints(self) -> dict[str, list[str]]:
        """Bluesky hints: the fields worth plotting (every measurement)."""
        return {"fields": [self._key(f) for f in self._fields.values() if f.role == "read"]}

    async def set(self, value: Any) -> None:
        """Write `value` to the class's primary setting (declared with ``primary=True``)."""
        # Through the class: a Field is a descriptor, and reading it through the instance
        # would bind it.
        primary = type(self)._primary
        if primary is None:
            raise DriverError(
                f"{type(self).__name__} has no primary setting; declare one with primary=True"
            )
        await primary.put(self, value)

    async def _read_role(self, role: str) -> dict[str, Reading]:
        out: dict[str, Reading] = {}
        async with self._lock:
            for field in self._fields.values():
                if field.role == role:
                    value = await field.fetch(self)
                    out[self._key(field)] = {"value": value, "timestamp": self._stamp()}
        return out

    def _describe_role(self, role: str) -> dict[str, DataKey]:
        return {self._key(f): f.data_key(self) for f in self._fields.values() if f.role == role}
