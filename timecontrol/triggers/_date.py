"""One-shot triggers: fire once, at an instant or at a local wall-clock time.

* ``once(aware_datetime)`` fires at that instant.
* ``once("2025-03-30 02:30", tz="Europe/Berlin")`` (a naive datetime or an ISO string without
  offset, plus a zone) names a wall-clock time and follows the DST policy like every other
  wall-clock trigger: that example lies in the spring-forward gap and, by default, fires at
  03:00 CEST, the end of the gap. With ``ambiguous="both"`` a repeated time fires twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from timecontrol.triggers._errors import NaiveDatetimeError, TriggerError
from timecontrol.triggers._time import (
    LAST_INSTANT,
    dt_to_json,
    get_field,
    require_instant,
    search_from,
    shown,
    spec_error,
    utc_naive,
    zone_of,
)
from timecontrol.triggers._wallclock import Ambiguous, Nonexistent, WallClockTrigger

__all__ = ["DateTrigger", "once"]


def _parse(at: object) -> datetime:
    if isinstance(at, datetime):
        return at
    if isinstance(at, str):
        try:
            return datetime.fromisoformat(at.strip())
        except ValueError:
            pass
    raise TriggerError(
        f"at={shown(at)} is not a date-time; pass a datetime or an ISO 8601 string such as "
        f"'2025-03-30T09:00' (with tz=...) or '2025-03-30T09:00+02:00'"
    )


class DateTrigger(WallClockTrigger):
    """Fire once: at an aware instant, or at a naive local time in zone `tz`."""

    json_type = "date"
    json_keys = frozenset({"type", "at", "tz", "nonexistent", "ambiguous"})

    def __init__(
        self,
        at: datetime | str,
        tz: object = None,
        *,
        nonexistent: Nonexistent = "gap_end",
        ambiguous: Ambiguous = "first",
    ) -> None:
        when = _parse(at)
        self._absolute: datetime | None
        if when.tzinfo is not None:
            require_instant(when, "at")
            if tz is not None:
                raise TriggerError(
                    f"at={shown(at)} already carries a UTC offset, so tz={shown(tz)} would be "
                    f"ignored; pass either an aware datetime, or a naive local time plus tz"
                )
            spec, _ = zone_of(when)
            super().__init__(spec, nonexistent=nonexistent, ambiguous=ambiguous)
            self._absolute = utc_naive(when)
            self._at = when
        else:
            if tz is None:
                raise NaiveDatetimeError(
                    f"at={shown(at)} is a naive date-time and no tz was given; pass "
                    f"tz='Area/City' to mean local wall-clock time there, or an aware datetime"
                )
            super().__init__(tz, nonexistent=nonexistent, ambiguous=ambiguous)
            self._absolute = None
            self._at = when.replace(microsecond=0, fold=0)
            if when.microsecond:
                raise TriggerError(
                    f"at={shown(at)} has microseconds; local times are whole seconds"
                )

    def _next_local(self, t: datetime) -> datetime | None:
        return self._at if self._at > t else None

    def next(self, after: datetime) -> datetime | None:
        """The fire time if it lies strictly after `after`, else None."""
        if self._absolute is None:
            return super().next(after)
        u = search_from(after)
        if u is None or not u < self._absolute <= LAST_INSTANT:
            return None
        return self._rules.localize(self._absolute)

    def to_json(self) -> dict[str, Any]:
        """Absolute: `{"type": "date", "at": "...+01:00"}`; local: adds tz and DST policy."""
        if self._absolute is not None:
            return {"type": "date", "at": dt_to_json(self._at)}
        return {"type": "date", "at": dt_to_json(self._at), **self._zone_json()}

    @classmethod
    def _from_json(cls, d: dict[str, Any]) -> DateTrigger:
        at = get_field(d, "at", "date")
        if not isinstance(at, str):
            spec_error("date", "at", at, "an ISO 8601 date-time string")
        if "tz" not in d:
            return cls(at)
        return cls(at, **cls._zone_kwargs(d, "date"))

    def explain(self) -> str:
        """E.g. "once, at 2025-03-30 02:30:00 Europe/Berlin"."""
        if self._absolute is not None:
            return f"once, at {self._at.isoformat(sep=' ')}"
        return f"once, at {self._at.isoformat(sep=' ')} {self._zone_english()}"


def once(
    at: datetime | str,
    tz: object = None,
    *,
    nonexistent: Nonexistent = "gap_end",
    ambiguous: Ambiguous = "first",
) -> DateTrigger:
    """A one-shot trigger: ``once(aware_dt)`` or ``once("2025-06-01 09:00", tz="Asia/Tokyo")``."""
    return DateTrigger(at, tz, nonexistent=nonexistent, ambiguous=ambiguous)
