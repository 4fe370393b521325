"""Small, dependency-free helpers shared by every trigger family.

Three conventions are fixed here, once, for the whole package:

* **Durations** are held as integer microseconds. Float seconds drift when summed
  (``0.1 * 3 != 0.3``); integers do not, so the 10,000th point of a sequence lies exactly where
  the arithmetic says it does.
* **Instants** are compared as naive UTC datetimes internally (cheap, and immune to the PEP 495
  rule that two datetimes sharing one ``ZoneInfo`` compare by wall time, ignoring ``fold``).
* **Fire times** handed back to callers carry the local wall-clock time with a *fixed* UTC offset
  (``datetime.timezone``), e.g. ``2025-10-26 02:30+02:00`` then ``2025-10-26 02:00+01:00``. Such
  values print as local time, are valid aware datetimes, and sort correctly even inside a
  repeated hour, where ``ZoneInfo``-aware values would not.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from timecontrol._exceptions import NaiveDatetimeError
from timecontrol.triggers._errors import TriggerError, TriggerSpecError, UnknownTimeZoneError

ONE_US = timedelta(microseconds=1)
US_PER_S = 1_000_000

_FIXED: dict[int, timezone] = {0: UTC}


def fixed_zone(offset: timedelta) -> timezone:
    """Return a shared `datetime.timezone` for `offset` (cached: fire times reuse the objects)."""
    key = offset // ONE_US
    zone = _FIXED.get(key)
    if zone is None:
        zone = timezone(offset)
        _FIXED[key] = zone
    return zone


# --------------------------------------------------------------------------- time zones

_FIXED_SPEC = re.compile(r"^UTC([+-])(\d{2}):(\d{2})$")


def resolve_zone(tz: object, *, what: str = "tz") -> tuple[str, tzinfo]:
    """Turn a user's zone into `(spec, tzinfo)`; `spec` is the string written to JSON.

    Accepted: an IANA name ("Europe/Berlin"), "UTC", a fixed offset written "UTC+05:30", a
    `ZoneInfo`, or a `datetime.timezone`. Anything else cannot be persisted, so it is refused.
    """
    if isinstance(tz, ZoneInfo):
        return resolve_zone(tz.key, what=what)
    if isinstance(tz, timezone):
        off = tz.utcoffset(None)
        return zone_spec_for_offset(off), fixed_zone(off)
    if not isinstance(tz, str):
        raise UnknownTimeZoneError(
            f"{what}={tz!r} is not a time zone; pass an IANA name such as 'Europe/Berlin', "
            f"'UTC', a fixed offset such as 'UTC+05:30', or a zoneinfo.ZoneInfo"
        )
    if tz == "UTC":
        return "UTC", UTC
    m = _FIXED_SPEC.match(tz)
    if m:
        hours, minutes = int(m.group(2)), int(m.group(3))
        if hours > 23 or minutes > 59:
            raise UnknownTimeZoneError(
                f"{what}={tz!r} is not a valid fixed offset; offsets run from UTC-23:59 to "
                f"UTC+23:59"
            )
        off = timedelta(hours=hours, minutes=minutes)
        return tz, fixed_zone(-off if m.group(1) == "-" else off)
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UnknownTimeZoneError(
            f"{what}={tz!r} is not a known time zone; use an IANA name such as "
            f"'Europe/Berlin', 'America/New_York' or 'UTC' (see zoneinfo.available_timezones())"
        ) from exc
    return tz, zone


def zone_spec_for_offset(off: timedelta) -> str:
    """The JSON spelling of a fixed offset: "UTC" or "UTC+05:30"."""
    if not off:
        return "UTC"
    sign = "-" if off < timedelta(0) else "+"
    minutes = abs(off) // timedelta(minutes=1)
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def zone_of(dt: datetime) -> tuple[str, tzinfo]:
    """The zone a caller's aware datetime is expressed in, as `(spec, tzinfo)`.

    A `ZoneInfo` keeps its name; any other tzinfo is reduced to the fixed offset it has at `dt`.
    """
    if isinstance(dt.tzinfo, ZoneInfo):
        return resolve_zone(dt.tzinfo.key)
    off = dt.utcoffset()
    assert off is not None  # callers check awareness first
    return zone_spec_for_offset(off), fixed_zone(off)


# --------------------------------------------------------------------------- datetimes


def require_aware(value: object, name: str) -> datetime:
    """Return `value` if it is an aware datetime, else raise (naive → `NaiveDatetimeError`)."""
    if not isinstance(value, datetime):
        raise TriggerError(f"{name}={value!r} is not a datetime; pass an aware datetime.datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetimeError(
            f"{name}={value!r} is a naive datetime; pass an aware one, e.g. "
            f"datetime(2025, 1, 6, 9, 0, tzinfo=ZoneInfo('Europe/Berlin'))"
        )
    return value


def utc_naive(dt: datetime) -> datetime:
    """The instant of aware `dt` as a naive UTC datetime (fast path for our own fixed offsets)."""
    off = dt.utcoffset()
    assert off is not None
    return dt.replace(tzinfo=None) - off


def dt_to_json(dt: datetime) -> str:
    """ISO 8601 with its UTC offset, microseconds kept: round-trips exactly."""
    return dt.isoformat()


def dt_from_json(value: object, key: str, kind: str) -> datetime:
    """Parse an ISO 8601 string written by `dt_to_json`; it must carry an offset."""
    if not isinstance(value, str):
        spec_error(kind, key, value, "an ISO 8601 date-time string with a UTC offset")
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        spec_error(kind, key, value, "an ISO 8601 date-time string with a UTC offset")
    if dt.tzinfo is None:
        spec_error(kind, key, value, "an ISO 8601 date-time string *with* a UTC offset")
    return dt


# --------------------------------------------------------------------------- durations


def duration_us(
    value: object,
    name: str,
    error: type[TriggerError],
    *,
    allow_zero: bool = False,
    allow_negative: bool = False,
) -> int:
    """Convert seconds (int/float) or a `timedelta` to integer microseconds, validating it."""
    if isinstance(value, timedelta):
        us = value // ONE_US
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise error(f"{name}={value!r} is not a finite number of seconds")
        us = round(value * US_PER_S) if isinstance(value, float) else value * US_PER_S
    else:
        raise error(
            f"{name}={value!r} is not a duration; pass seconds as an int or float, "
            f"or a datetime.timedelta"
        )
    shown = f"{value!r} ({us / US_PER_S:g} s)" if isinstance(value, timedelta) else repr(value)
    if us < 0 and not allow_negative:
        raise error(f"{name}={shown} is negative; it must be a positive duration")
    if us == 0 and not allow_zero:
        raise error(f"{name}={shown} is zero; it must be a positive duration (≥ 1 µs)")
    if abs(us) > _MAX_US:
        raise error(f"{name}={shown} is too long; durations up to 1000 years are accepted")
    return us


_MAX_US = 1000 * 366 * 86400 * US_PER_S


def us_to_json(us: int) -> int | float:
    """Seconds for JSON: an int when whole (exact), otherwise a float that round-trips to µs."""
    if us % US_PER_S == 0:
        return us // US_PER_S
    return us / US_PER_S


def us_from_json(value: object, key: str, kind: str) -> int:
    """Inverse of `us_to_json`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        spec_error(kind, key, value, "a number of seconds")
    if isinstance(value, float):
        if not math.isfinite(value):
            spec_error(kind, key, value, "a finite number of seconds")
        return round(value * US_PER_S)
    return value * US_PER_S


def format_duration(us: int) -> str:
    """Plain English for a duration: "15 minutes", "1 hour", "90 s", "1.5 s", "2 weeks"."""
    units = (
        ("week", 7 * 86400 * US_PER_S),
        ("day", 86400 * US_PER_S),
        ("hour", 3600 * US_PER_S),
        ("minute", 60 * US_PER_S),
        ("second", US_PER_S),
    )
    for unit, size in units:
        if us >= size and us % size == 0:
            n = us // size
            return f"{n} {unit}" if n == 1 else f"{n} {unit}s"
    return f"{us / US_PER_S:g} s"


# --------------------------------------------------------------------------- JSON helpers


def spec_error(kind: str, key: str, value: object, accepted: str) -> NoReturn:
    """Raise the one error every `from_json` uses for a bad field."""
    raise TriggerSpecError(
        f"trigger spec of type {kind!r}: {key}={value!r} is not valid; expected {accepted}"
    )


def get_field(d: dict[str, Any], key: str, kind: str) -> Any:
    """`d[key]`, or a `TriggerSpecError` naming the missing key."""
    if key not in d:
        raise TriggerSpecError(f"trigger spec of type {kind!r} lacks the key {key!r}: {d!r}")
    return d[key]


def get_int(d: dict[str, Any], key: str, kind: str) -> int:
    """An int field (bools refused: JSON `true` is not a count)."""
    value = get_field(d, key, kind)
    if isinstance(value, bool) or not isinstance(value, int):
        spec_error(kind, key, value, "an integer")
    return value


def get_str(d: dict[str, Any], key: str, kind: str) -> str:
    """A string field."""
    value = get_field(d, key, kind)
    if not isinstance(value, str):
        spec_error(kind, key, value, "a string")
    return value


def get_opt_dt(d: dict[str, Any], key: str, kind: str) -> datetime | None:
    """An optional ISO date-time field (JSON null → None)."""
    value = d.get(key)
    return None if value is None else dt_from_json(value, key, kind)
