"""SCPI instruments: common commands, the error queue, and declared settings and measurements.

A driver for a new SCPI instrument is mostly declarations::

    class Supply(ScpiInstrument):
        voltage = Setting("VOLT", float, limits=(0.0, 30.0), unit="V", primary=True)
        output = Setting("OUTP", bool)
        measured_voltage = Measurement("MEAS:VOLT?", float, unit="V")

    async with Supply("TCPIP0::10.0.0.5::inst0::INSTR") as psu:
        await psu.voltage.set(5.0)          # validated before anything is sent
        volts = await psu.measured_voltage.get()
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection
from typing import Any, ClassVar, Generic, NamedTuple, TypeVar, overload

from ._errors import AddressError, DriverError, InstrumentError, OutOfRangeError, ReplyParseError
from ._instrument import Instrument
from ._parsers import parse_bool, parse_float, parse_int
from ._types import DataKey, Field, SyncProbe

__all__ = [
    "BoundMeasurement",
    "BoundSetting",
    "Identity",
    "Measurement",
    "ScpiInstrument",
    "Setting",
]

# Unconstrained on purpose: the kind (float, int, bool, str) is checked at run time, and a
# constrained TypeVar would not pass through the generic base class.
V = TypeVar("V")

_DTYPES: dict[type, str] = {bool: "boolean", int: "integer", float: "number", str: "string"}
_PARSERS: dict[type, Callable[[str], Any]] = {
    bool: parse_bool,
    int: parse_int,
    float: parse_float,
    str: lambda reply: reply.strip(),
}
_EXPECTED = {bool: "a boolean (1/0/ON/OFF)", int: "an integer", float: "a number", str: "text"}
# A SCPI error-queue entry: <code>,"<message>" (the quotes are optional in the wild).
_ERROR_ENTRY = re.compile(r'\s*([+-]?\d+)\s*,\s*"?(.*?)"?\s*')


def _format(kind: type, value: Any) -> str:
    if kind is bool:
        return "1" if value else "0"
    if kind is float:
        # 12 significant digits: exact for any value a front panel can show, and no "5.0000001"
        # artefacts from binary floats; SCPI parsers accept exponents ("1e-07").
        return format(float(value), ".12g")
    return str(value)


class Identity(NamedTuple):
    """The four fields of an IEEE 488.2 ``*IDN?`` reply."""

    manufacturer: str
    model: str
    serial: str
    firmware: str


class _Declared(Field, Generic[V]):
    def __init__(self, kind: type[V], *, unit: str, doc: str, idempotent: bool) -> None:
        if kind not in _DTYPES:
            raise DriverError(f"unsupported kind {kind!r}: use float, int, bool or str")
        super().__init__(unit=unit, doc=doc)
        self.kind: type[V] = kind
        self.idempotent = idempotent

    async def _query(self, instrument: Instrument, command: str, timeout: float | None) -> V:  # noqa: ASYNC109
        value: V = await instrument.query_parsed(
            command,
            _PARSERS[self.kind],
            _EXPECTED[self.kind],
            timeout=timeout,
            idempotent=self.idempotent,
        )
        return value

    def _base_key(self, instrument: Instrument, command: str) -> DataKey:
        key: DataKey = {
            "source": f"{instrument.address} {command}",
            "dtype": _DTYPES[self.kind],
            "shape": [],
        }
        if self.unit:
            key["units"] = self.unit
        return key


class Setting(_Declared[V]):
    """A value the instrument is told (``VOLT 5``) and can be asked for (``VOLT?``).

    Reading it on an instance gives a `BoundSetting` with ``await get()`` / ``await set(v)``.

    Args:
        command: the header; ``set(v)`` writes ``"<command> <v>"``.
        kind: float, int, bool (written as 1/0) or str.
        query: the query for ``get()`` (default: ``"<command>?"``).
        limits: inclusive ``(low, high)`` accepted by ``set()``.
        choices: the only values accepted by ``set()``.
        unit: engineering unit, for `describe()`.
        primary: the setting that `Instrument.set()` writes (one per class).
        idempotent: setting the same value twice is harmless (retried after faults).
        doc: a description.
    """

    role: ClassVar[str] = "config"

    def __init__(
        self,
        command: str,
        kind: type[V],
        *,
        query: str | None = None,
        limits: tuple[V, V] | None = None,
        choices: Collection[V] | None = None,
        unit: str = "",
        primary: bool = False,
        idempotent: bool = True,
        doc: str = "",
    ) -> None:
        super().__init__(kind, unit=unit, doc=doc, idempotent=idempotent)
        if limits is not None and choices is not None:
            raise DriverError(f"setting {command!r}: give limits or choices, not both")
        if limits is not None and not limits[0] <= limits[1]:  # type: ignore[operator]
            raise DriverError(f"setting {command!r}: limits {limits!r} are not (low, high)")
        self.command = command
        self.query = query if query is not None else f"{command}?"
        self.limits: tuple[V, V] | None = limits
        self.choices: tuple[V, ...] | None = tuple(choices) if choices is not None else None
        self._primary = primary

    @property
    def primary(self) -> bool:
        """True if `Instrument.set()` writes this setting."""
        return self._primary

    @overload
    def __get__(self, instance: None, owner: type) -> Setting[V]: ...

    @overload
    def __get__(self, instance: Instrument, owner: type) -> BoundSetting[V]: ...

    def __get__(self, instance: Instrument | None, owner: type) -> Setting[V] | BoundSetting[V]:
        if instance is None:
            return self
        return BoundSetting(self, instance)

    def validate(self, value: object) -> V:
        """Return `value` converted to the setting's kind, or raise `OutOfRangeError`."""
        name = self.name or self.command
        kind = self.kind
        ok_type = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            ok_type, value = True, float(value)
        if not ok_type:
            raise OutOfRangeError(name, value, f"a {kind.__name__}")
        if kind is float and not math.isfinite(value):  # type: ignore[arg-type]
            raise OutOfRangeError(name, value, "a finite number")
        if kind is str:
            text = str(value)
            if not text or any(c in text for c in "\r\n;") or not text.isprintable():
                raise OutOfRangeError(name, value, "printable text without ';' or line breaks")
        if self.limits is not None and not self.limits[0] <= value <= self.limits[1]:  # type: ignore[operator]
            raise OutOfRangeError.for_limits(name, value, self.limits[0], self.limits[1])
        if self.choices is not None and value not in self.choices:
            raise OutOfRangeError.for_choices(name, value, self.choices)
        return value  # type: ignore[return-value]

    async def fetch(self, instrument: Instrument) -> V:
        """Query the current value."""
        return await self._query(instrument, self.query, None)

    async def put(self, instrument: Instrument, value: Any) -> None:
        """Validate `value` (before anything is sent), then write it."""
        checked = self.validate(value)
        await instrument.write(
            f"{self.command} {_format(self.kind, checked)}", idempotent=self.idempotent
        )

    def data_key(self, instrument: Instrument) -> DataKey:
        """Source, dtype, units, and limits or choices."""
        key = self._base_key(instrument, self.query)
        if self.limits is not None and self.kind in (int, float):
            low, high = self.limits
            key["lower_ctrl_limit"] = float(low)  # type: ignore[arg-type]
            key["upper_ctrl_limit"] = float(high)  # type: ignore[arg-type]
        if self.choices is not None:
            key["choices"] = [_format(self.kind, c) for c in self.choices]
        return key


class Measurement(_Declared[V]):
    """A value the instrument is asked for (``MEAS:VOLT?``), included in `Instrument.read()`.

    Reading it on an instance gives a `BoundMeasurement` with ``await get()``.

    Args:
        query: the query.
        kind: float, int, bool or str.
        unit: engineering unit, for `describe()`.
        idempotent: asking twice is harmless (retried after faults). Set False for queries
            with side effects (a counter that resets on read, a FIFO).
        doc: a description.
    """

    role: ClassVar[str] = "read"

    def __init__(
        self,
        query: str,
        kind: type[V],
        *,
        unit: str = "",
        idempotent: bool = True,
        doc: str = "",
    ) -> None:
        super().__init__(kind, unit=unit, doc=doc, idempotent=idempotent)
        self.query = query

    @overload
    def __get__(self, instance: None, owner: type) -> Measurement[V]: ...

    @overload
    def __get__(self, instance: Instrument, owner: type) -> BoundMeasurement[V]: ...

    def __get__(
        self, instance: Instrument | None, owner: type
    ) -> Measurement[V] | BoundMeasurement[V]:
        if instance is None:
            return self
        return BoundMeasurement(self, instance)

    async def fetch(self, instrument: Instrument) -> V:
        """Query a fresh value."""
        return await self._query(instrument, self.query, None)

    def data_key(self, instrument: Instrument) -> DataKey:
        """Source, dtype and units."""
        return self._base_key(instrument, self.query)


class BoundSetting(Generic[V]):
    """A `Setting` of one instrument instance."""

    __slots__ = ("instrument", "setting")

    def __init__(self, setting: Setting[V], instrument: Instrument) -> None:
        self.setting: Setting[V] = setting
        self.instrument: Instrument = instrument

    async def get(self, *, timeout: float | None = None) -> V:  # noqa: ASYNC109
        """Query the current value."""
        return await self.setting._query(self.instrument, self.setting.query, timeout)

    async def set(self, value: V) -> None:
        """Validate (`OutOfRangeError` before anything is sent), then write."""
        await self.setting.put(self.instrument, value)

    def __repr__(self) -> str:
        return f"<setting {self.instrument.name}.{self.setting.name} ({self.setting.command})>"


class BoundMeasurement(Generic[V]):
    """A `Measurement` of one instrument instance."""

    __slots__ = ("instrument", "measurement")

    def __init__(self, measurement: Measurement[V], instrument: Instrument) -> None:
        self.measurement: Measurement[V] = measurement
        self.instrument: Instrument = instrument

    async def get(self, *, timeout: float | None = None) -> V:  # noqa: ASYNC109
        """Query a fresh value."""
        return await self.measurement._query(self.instrument, self.measurement.query, timeout)

    def __repr__(self) -> str:
        m = self.measurement
        return f"<measurement {self.instrument.name}.{m.name} ({m.query})>"


class ScpiInstrument(Instrument):
    """An instrument that speaks SCPI / IEEE 488.2.

    Adds the common commands, the error queue, and ``*OPC?`` as the resynchronisation probe.

    Class attributes a driver may override:
        idn_pattern: a regular expression the ``*IDN?`` reply must match on connect, so that
            a wrong address fails at once (`AddressError`) instead of sending a power supply's
            commands to a multimeter.
        error_query: the error-queue query (``SYST:ERR?``).
        max_errors: the most entries `read_errors()` reads in one call.
    """

    idn_pattern: ClassVar[str | None] = None
    error_query: ClassVar[str] = "SYST:ERR?"
    max_errors: ClassVar[int] = 32

    def sync_probe(self) -> SyncProbe | None:
        """``*OPC?`` answers ``1`` once all earlier commands are done (IEEE 488.2)."""
        return SyncProbe("*OPC?", "1")

    async def on_connect(self) -> None:
        """Check the identity against `idn_pattern` (if set)."""
        if self.idn_pattern is not None:
            idn = await self.query("*IDN?", idempotent=True)
            if not re.search(self.idn_pattern, idn):
                raise AddressError(
                    self.address,
                    f"the instrument there identifies as {idn!r}, which does not match "
                    f"{type(self).__name__}.idn_pattern {self.idn_pattern!r}",
                )

    async def identify(self) -> Identity:
        """Query ``*IDN?`` and split it into its four fields."""
        reply = await self.query("*IDN?", idempotent=True)
        parts = [p.strip() for p in reply.split(",")]
        if len(parts) != 4:
            raise ReplyParseError("*IDN?", reply, "four comma-separated fields")
        return Identity(*parts)

    async def reset(self) -> None:
        """``*RST``: the instrument's default state."""
        await self.write("*RST")

    async def clear_status(self) -> None:
        """``*CLS``: clear the status registers and the error queue."""
        await self.write("*CLS", idempotent=True)

    async def wait_complete(self, *, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait (``*OPC?``) until every earlier command has finished."""
        done = await self.query_int("*OPC?", timeout=timeout, idempotent=True)
        if done != 1:
            raise ReplyParseError("*OPC?", str(done), "1")

    async def read_errors(self) -> list[tuple[int, str]]:
        """Read the error queue until it is empty: ``[(code, message), ...]``, oldest first.

        Not retried automatically: each ``SYST:ERR?`` removes an entry.
        """
        errors: list[tuple[int, str]] = []
        async with self.transaction():
            for _ in range(self.max_errors):
                code, message = await self.query_parsed(
                    self.error_query, _parse_error_entry, 'an error entry (<code>,"<message>")'
                )
                if code == 0:
                    break
                errors.append((code, message))
        return errors

    async def check_errors(self) -> None:
        """Raise `InstrumentError` if the error queue holds any entry (reading empties it)."""
        errors = await self.read_errors()
        if errors:
            exc = InstrumentError(f"{self.name} at {self.address}", errors)
            self._record(
                "instrument.error",
                {
                    "command": self.error_query,
                    "error": type(exc).__name__,
                    "message": str(exc),
                    "errors": [[code, message] for code, message in errors],
                },
            )
            raise exc


def _parse_error_entry(reply: str) -> tuple[int, str]:
    match = _ERROR_ENTRY.fullmatch(reply)
    if match is None:
        raise ValueError(reply)
    return int(match.group(1)), match.group(2)
