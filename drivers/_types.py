"""The shapes an instrument deals in: readings and data keys (bluesky's), the sync probe, the
limiter and watchdog protocols, the counters, and the `Field` base of declared values.

Kept apart from `Instrument` so that drivers and their tests can name these types without the
machinery of the exchange, and so that each module stays readable on its own.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    NamedTuple,
    Protocol,
    TypedDict,
    runtime_checkable,
)

from ._errors import DriverError

if TYPE_CHECKING:
    from ._instrument import Instrument

__all__ = [
    "DataKey",
    "Field",
    "InstrumentStats",
    "Limiter",
    "LimiterSpec",
    "Reading",
    "RunningReporting",
    "SyncProbe",
    "TripReporting",
    "Watchdog",
    "WatchdogSpec",
]


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
class TripReporting(Protocol):
    """A watchdog that can tell a guarded call it tripped (`timecontrol.limiters.Control`):
    while `tripped`, entering `guarded()` raises `OverTimeLimit` and clears the trip."""

    @property
    def tripped(self) -> bool: ...

    def guarded(self) -> AbstractContextManager[object]: ...


@runtime_checkable
class RunningReporting(Protocol):
    """A watchdog that says whether it is watching (`timecontrol.limiters.Control`), so that
    a guarded command is refused, not silently unguarded, while it is not."""

    @property
    def name(self) -> str: ...

    @property
    def running(self) -> bool: ...

    def feed(self) -> None: ...


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
