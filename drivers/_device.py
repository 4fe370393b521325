"""The run-engine device protocol (bluesky / ophyd-async shape) of every instrument.

A driver declares its values as `Field` class attributes (settings, measurements); this mixin
collects them per class and turns them into ``read()`` / ``describe()`` / ``set()`` and the
rest of what `timecontrol.plans` (and bluesky) expect of a device. Kept apart from the
exchange in `_instrument.py`, which it uses only through the instrument's lock and fields.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, cast

from timecontrol._clock import current_clock

from ._errors import DriverError
from ._lock import TaskLock
from ._types import DataKey, Field, Reading

if TYPE_CHECKING:
    from ._instrument import Instrument

__all__ = ["Device"]


class Device:
    """`read()`, `describe()`, `set()`, ... over the `Field` s declared on the class (a mixin
    of `Instrument`, which sets the attributes declared here)."""

    name: str
    _clock: Callable[[], float] | None
    _lock: TaskLock

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
        await primary.put(self._instrument(), value)

    async def _read_role(self, role: str) -> dict[str, Reading]:
        out: dict[str, Reading] = {}
        async with self._lock:
            for field in self._fields.values():
                if field.role == role:
                    value = await field.fetch(self._instrument())
                    out[self._key(field)] = {"value": value, "timestamp": self._stamp()}
        return out

    def _describe_role(self, role: str) -> dict[str, DataKey]:
        instrument = self._instrument()
        fields = self._fields.values()
        return {self._key(f): f.data_key(instrument) for f in fields if f.role == role}

    def _instrument(self) -> Instrument:
        # Device is only ever a base of Instrument, and fields take the instrument itself.
        return cast("Instrument", self)
