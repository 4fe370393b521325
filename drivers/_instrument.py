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
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, AsyncExitStack, asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import (
    Any,
    ClassVar,
    NamedTuple,
    Protocol,
    Self,
    TypedDict,
    TypeVar,
    runtime_checkable,
)

import anyio

from timecontrol._clock import current_clock
from timecontrol._log import Log

from ._errors import (
    AddressError,
    CommandError,
    DriverError,
    InstrumentTimeout,
    NotConnectedError,
    ReplyParseError,
    TransportError,
)
from ._events import record
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
    and must be fed (`feed()`) often enough, or it trips and runs its safety action.

    A watchdog that also has a ``tripped`` property and a ``guarded()`` context manager (as
    `Control` has) makes the instrument's next guarded command raise its `OverTimeLimit`
    after a trip; one without them is only fed.
    """

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


@runtime_checkable
class _TripReporting(Protocol):
    """A watchdog that can tell a guarded call it tripped (`timecontrol.limiters.Control`):
    while `tripped`, entering `guarded()` raises `OverTimeLimit` and clears the trip."""

    @property
    def tripped(self) -> bool: ...

    def guarded(self) -> AbstractContextManager[object]: ...


# The instruments whose watchdogs the current context bypasses (see `Instrument.unguarded`).
# A context variable, because what must bypass them is a *task*: the watchdog's own, which
# runs the safety action, and inherits this from `connect()` when the watchdog starts it.
_unguarded: ContextVar[tuple[Instrument, ...]] = ContextVar(
    "timecontrol_drivers_unguarded", default=()
)

# Commands already checked by `_check_command`, per instrument, at most this many: a driver
# sends the same few commands again and again, and checking costs more than a dict lookup.
_CHECKED_COMMANDS_MAX = 512


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
    """An anyio lock that the task holding it may enter again (for `transaction()`).

    `enter_nowait()` is the fast path taken by every command: a free lock is taken without an
    await (anyio's ``acquire()`` runs a cancellation checkpoint first, which walks the task's
    cancel scopes; the command's own I/O is a checkpoint anyway).
    """

    __slots__ = ("_current", "_depth", "_lock", "_owner")

    def __init__(self) -> None:
        # Both found at first use: an instrument may be created outside any event loop, and a
        # lock made there would go through anyio's adapter on every call.
        self._lock: anyio.Lock | None = None
        self._current: Callable[[], object] | None = None
        self._owner: object = None
        self._depth = 0

    def _me(self) -> object:
        current = self._current
        if current is None:
            current = self._current = _current_task_getter()
            self._lock = anyio.Lock(fast_acquire=True)
        return current()

    def enter_nowait(self) -> bool:
        """Enter if that needs no waiting (free, or held by this task); True if entered."""
        me = self._me()
        if self._owner is me:
            self._depth += 1
            return True
        assert self._lock is not None
        try:
            self._lock.acquire_nowait()
        except anyio.WouldBlock:
            return False
        self._owner = me
        self._depth = 1
        return True

    async def enter(self) -> None:
        """Enter, waiting (first come, first served) while another task holds the lock."""
        if self.enter_nowait():
            return
        assert self._lock is not None
        await self._lock.acquire()
        self._owner = self._me()
        self._depth = 1

    def exit(self) -> None:
        """Leave once (the lock is released when the holder has left every entry)."""
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            assert self._lock is not None
            self._lock.release()

    async def __aenter__(self) -> None:
        await self.enter()

    async def __aexit__(self, *exc_info: object) -> None:
        self.exit()


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
            a trip, the next guarded command raises `OverTimeLimit` and is not sent. The
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
        self._trip_reporters = [w for w in self._watchdogs if isinstance(w, _TripReporting)]
        self._watching: AsyncExitStack | None = None
        self._log = log
        self._checked: dict[str, None] = {}
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

    @property
    def log(self) -> Log | None:
        """The Log given to this instrument (None: it writes to the running engine's Log)."""
        return self._log

    def _feed(self) -> None:
        for watchdog in self._watchdogs:
            watchdog.feed()

    def _deliver_trips(self) -> None:
        """Raise `OverTimeLimit` if a watchdog tripped since the last guarded command."""
        for watchdog in self._trip_reporters:
            if watchdog.tripped:
                # Entering a tripped watchdog's guarded() is what delivers the trip: it raises
                # OverTimeLimit (and clears the trip, so the command after this one runs).
                with watchdog.guarded():
                    pass

    def _record(self, kind: str, payload: dict[str, Any]) -> None:
        record(self._log, kind, self.name, {"address": self.address, **payload})

    def _record_error(self, command: str, exc: BaseException) -> None:
        payload = {"command": command, "error": type(exc).__name__, "message": str(exc)}
        self._record("instrument.error", payload)

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

    def sync_probe(self) -> SyncProbe | None:
        """The query that confirms synchronisation after a fault; ``None``: drain only.

        The base class has none (it knows no protocol); `ScpiInstrument` uses ``*OPC?``. Return
        a *unique* probe (an echo of a fresh token) where the instrument allows it.
        """
        return None

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
            if guarded and self._trip_reporters:
                self._deliver_trips()
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
                    if not idempotent or tries >= self.retries:
                        self._record_error(command, exc)
                        raise
                    tries += 1
                    self.stats.retries += 1
                    self._record(
                        "instrument.retry",
                        {
                            "command": command,
                            "attempt": tries,
                            "error": type(exc).__name__,
                            "message": str(exc),
                        },
                    )
                    continue
                if guarded:
                    self._feed()
                return value
        finally:
            lock.exit()

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
        if _has_undecodable(reply):
            raise self._bad_reply(command, reply, f"valid {self._transport.encoding} text")
        try:
            value = parser(reply)
        except (ValueError, TypeError, ArithmeticError):
            raise self._bad_reply(command, reply, expected) from None
        self._dirty = False
        return value

    # The fault paths: count, record, and build the error to raise.

    def _timed_out(self, command: str, t: float, detail: str) -> InstrumentTimeout:
        self.stats.timeouts += 1
        self._record("instrument.timeout", {"command": command, "timeout": t, "detail": detail})
        return InstrumentTimeout(command, t, detail)

    def _bad_reply(self, command: str, reply: str, expected: str) -> ReplyParseError:
        self.stats.parse_errors += 1
        # repr(): a garbled reply holds undecodable bytes as lone surrogates, which JSON (and
        # so the Log) cannot carry; the repr shows them as escapes, as the error message does.
        self._record(
            "instrument.bad_reply", {"command": command, "reply": repr(reply), "expected": expected}
        )
        return ReplyParseError(command, reply, expected)

    def _lost(self, command: str, exc: TransportError) -> None:
        self._broken = True
        self.stats.transport_errors += 1
        self._record("instrument.connection_lost", {"command": command, "message": str(exc)})

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
        stale_before = self.stats.stale_replies
        ok = await self._drain_and_probe(t)
        self._record(
            "instrument.resync",
            {
                "ok": ok,
                "stale": self.stats.stale_replies - stale_before,
                "probe": probe.command if (probe := self.sync_probe()) is not None else None,
            },
        )
        return ok

    async def _drain_and_probe(self, t: float) -> bool:
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
            payload = {"ok": True, "attempts": attempt + 1, "error": None}
            self._record("instrument.reconnect", payload)
            return
        self._record(
            "instrument.reconnect",
            {"ok": False, "attempts": self.reconnect_attempts, "error": str(error)},
        )
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
