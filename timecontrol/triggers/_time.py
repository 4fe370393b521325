"""Small, dependency-free helpers shared by every trigger family.

Four conventions are fixed here, once, for the whole package:

* **Durations** are held as integer microseconds. Float seconds drift when summed
  (``0.1 * 3 != 0.3``); integers do not, so the 10,000th point of a sequence lies exactly where
  the arithmetic says it does.
* **Instants** are compared as naive UTC datetimes internally (cheap, and immune to the PEP 495
  rule that two datetimes sharing one ``ZoneInfo`` compare by wall time, ignoring ``fold``).
* **Fire times** handed back to callers carry the local wall-clock time with a *fixed* UTC offset
  (``datetime.timezone``), e.g. ``2025-10-26 02:30+02:00`` then ``2025-10-26 02:00+01:00``. Such
  values print as local time, are valid aware datetimes, and sort correctly even inside a
  repeated hour, where ``ZoneInfo``-aware values would not.
* **The range** of fire times is `FIRST_INSTANT` to `LAST_INSTANT` (UTC): `datetime` stops at
  years 1 and 9999, and within a day of either end a local time or a UTC instant may not exist
  in it. No fire time is produced outside that range; `next(after)` returns None from
  `LAST_INSTANT` on, and searches from `FIRST_INSTANT` when `after` lies before it.

Values shown in error messages go through `shown`: a message must never fail to build (a
10,000-digit int has no repr) nor grow without bound (a deeply nested JSON document).
"""

from __future__ import annotations

import math
import re
import reprlib
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from timecontrol.triggers._errors import (
    NaiveDatetimeError,
    TriggerError,
    TriggerSpecError,
    UnknownTimeZoneError,
)

ONE_US = timedelta(microseconds=1)
US_PER_S = 1_000_000

FIRST_INSTANT = datetime(1, 1, 2)
"""The earliest fire time (naive UTC): a day clear of `datetime.min`, so every local time of
every instant from here on exists in `datetime` (UTC offsets stay below 24 h)."""
LAST_INSTANT = datetime(9999, 12, 30, 23, 59, 59, 999999)
"""The latest fire time (naive UTC), a day clear of `datetime.max` for the same reason."""
_FLOOR = FIRST_INSTANT - ONE_US  # searching strictly after this finds FIRST_INSTANT itself
_RANGE = "instants from 0001-01-01 to 9999-12-31 in UTC"


# --------------------------------------------------------------------------- messages

_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxstring = 200
_REPR.maxother = 200
_REPR.maxlong = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxset = _REPR.maxfrozenset = _REPR.maxdict = 8


def shown(value: object) -> str:
    """`repr(value)` for an error message: shortened, and never raising."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 190:
        # repr() refuses ints over 4300 digits; the size is what the reader needs anyway.
        return f"<int of about {value.bit_length() * math.log10(2):.0f} digits>"
    try:
        return _REPR.repr(value)
    except Exception:  # a broken __repr__ must not hide the error being reported
        return f"<{type(value).__name__} object>"


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

_FIXED_SPEC = re.compile(r"^UTC([+-])(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{6}))?)?$", re.ASCII)
_ZONE_ACCEPTED = (
    "an IANA name such as 'Europe/Berlin', 'UTC', a fixed offset such as 'UTC+05:30', "
    "a zoneinfo.ZoneInfo or a datetime.timezone"
)


def resolve_zone(tz: object, *, what: str = "tz") -> tuple[str, tzinfo]:
    """Turn a user's zone into `(spec, tzinfo)`; `spec` is the string written to JSON.

    Accepted: an IANA name ("Europe/Berlin"), "UTC", a fixed offset written "UTC+05:30" (or
    "UTC+05:30:15" for the odd historical offset), a `ZoneInfo`, or a `datetime.timezone`.
    Anything else cannot be persisted, so it is refused.
    """
    if isinstance(tz, ZoneInfo):
        return resolve_zone(tz.key, what=what)
    if isinstance(tz, timezone):
        off = tz.utcoffset(None)
        return zone_spec_for_offset(off), fixed_zone(off)
    if not isinstance(tz, str):
        raise UnknownTimeZoneError(f"{what}={shown(tz)} is not a time zone; pass {_ZONE_ACCEPTED}")
    if tz == "UTC":
        return "UTC", UTC
    m = _FIXED_SPEC.match(tz)
    if m:
        hours, minutes, seconds = int(m.group(2)), int(m.group(3)), int(m.group(4) or 0)
        if hours > 23 or minutes > 59 or seconds > 59:
            raise UnknownTimeZoneError(
                f"{what}={tz!r} is not a valid fixed offset; offsets run from UTC-23:59 to "
                f"UTC+23:59"
            )
        off = timedelta(
            hours=hours, minutes=minutes, seconds=seconds, microseconds=int(m.group(5) or 0)
        )
        return tz, fixed_zone(-off if m.group(1) == "-" else off)
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        # OSError: a name too long for the file system, or a directory such as "Europe".
        raise UnknownTimeZoneError(
            f"{what}={shown(tz)} is not a known time zone; use an IANA name such as "
            f"'Europe/Berlin', 'America/New_York' or 'UTC' (see zoneinfo.available_timezones())"
        ) from exc
    return tz, zone


def zone_spec_for_offset(off: timedelta) -> str:
    """The JSON spelling of a fixed offset: "UTC", "UTC+05:30", "UTC-00:25:21".

    Seconds (and microseconds) are written when present: the spec is also the key of the
    shared zone-rules cache, so two different offsets must never share one spelling.
    """
    if not off:
        return "UTC"
    sign = "-" if off < timedelta(0) else "+"
    minutes, rest = divmod(abs(off) // ONE_US, 60 * US_PER_S)
    text = f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    if rest:
        seconds, us = divmod(rest, US_PER_S)
        text += f":{seconds:02d}" + (f".{us:06d}" if us else "")
    return text


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
        raise TriggerError(
            f"{name}={shown(value)} is not a datetime; pass an aware datetime.datetime"
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetimeError(
            f"{name}={shown(value)} is a naive datetime; pass an aware one, e.g. "
            f"datetime(2025, 1, 6, 9, 0, tzinfo=ZoneInfo('Europe/Berlin'))"
        )
    return value


def require_instant(value: object, name: str) -> datetime:
    """`require_aware`, and the instant must exist in UTC (``datetime(1, 1, 1, tzinfo=+05:00)``
    lies in year 0 there): origins and bounds are computed in naive UTC."""
    dt = require_aware(value, name)
    try:
        utc_naive(dt)
    except OverflowError:
        raise TriggerError(f"{name}={shown(value)} lies outside {_RANGE}") from None
    return dt


def utc_naive(dt: datetime) -> datetime:
    """The instant of aware `dt` as a naive UTC datetime (fast path for our own fixed offsets)."""
    off = dt.utcoffset()
    assert off is not None
    return dt.replace(tzinfo=None) - off


def search_from(after: object) -> datetime | None:
    """The naive-UTC instant a `next(after)` searches strictly after, for any aware `after`.

    Moved up to just before `FIRST_INSTANT` when earlier (also when `after` is too early to
    exist in UTC at all); None from `LAST_INSTANT` on, where no fire time can follow.
    """
    if not isinstance(after, datetime) or (off := after.utcoffset()) is None:
        require_aware(after, "after")
        raise AssertionError  # pragma: no cover - require_aware raised
    try:
        u = after.replace(tzinfo=None) - off
    except OverflowError:  # before year 1 or after year 9999 in UTC
        return _FLOOR if after.year == 1 else None
    if u >= LAST_INSTANT:
        return None
    return u if u > _FLOOR else _FLOOR


def origin_from(after: datetime, u: datetime) -> datetime:
    """What an implicit origin binds to: the caller's `after`, unless `search_from` moved it
    up (then that instant, in UTC), so that a bound origin always exists in UTC and in JSON."""
    return after if u != _FLOOR else u.replace(tzinfo=UTC)


def in_range(u: datetime, off: timedelta) -> datetime | None:
    """Naive-UTC instant `u` as a fire time shown at offset `off`, or None outside the range."""
    if u < FIRST_INSTANT or u > LAST_INSTANT:
        return None
    return (u + off).replace(tzinfo=fixed_zone(off))


def dt_to_json(dt: datetime) -> str:
    """ISO 8601 with its UTC offset, microseconds kept: round-trips exactly."""
    return dt.isoformat()


def dt_from_json(value: object, key: str, kind: str) -> datetime:
    """Parse an ISO 8601 string written by `dt_to_json`; it must carry an offset."""
    accepted = f"an ISO 8601 date-time string with a UTC offset, for {_RANGE}"
    if not isinstance(value, str):
        spec_error(kind, key, value, accepted)
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        spec_error(kind, key, value, accepted)
    if dt.utcoffset() is None:
        spec_error(kind, key, value, "an ISO 8601 date-time string *with* a UTC offset")
    try:
        utc_naive(dt)
    except OverflowError:
        spec_error(kind, key, value, accepted)
    return dt


# --------------------------------------------------------------------------- durations


MAX_US = 50 * 366 * 86400 * US_PER_S
"""The longest duration accepted (50 years): below 2**51 µs, where every whole number of
microseconds survives the trip through JSON's float seconds (``us / 1e6``, then
``round(s * 1e6)``); 1000 years of microseconds would not."""
_TOO_LONG = "durations up to 50 years are accepted"


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
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise error(f"{name}={value!r} is not a finite number of seconds")
        # Scaled only when in range (1e308 * 1e6 is inf); beyond it, anything too long will do.
        too_long = int(math.copysign(MAX_US + 1, value))
        us = round(value * US_PER_S) if abs(value) <= MAX_US / US_PER_S else too_long
    elif isinstance(value, int) and not isinstance(value, bool):
        us = value * US_PER_S
    else:
        raise error(
            f"{name}={shown(value)} is not a duration; pass seconds as an int or float, "
            f"or a datetime.timedelta"
        )
    if (
        0 < us <= MAX_US
        or (us == 0 and allow_zero)
        or (us < 0 and allow_negative and -us <= MAX_US)
    ):
        return us  # the common case: no message to build (startup reads 100k of these)
    text = shown(value)
    if isinstance(value, timedelta):
        text += f" ({us / US_PER_S:g} s)"
    if us < 0 and not allow_negative:
        raise error(f"{name}={text} is negative; it must be a positive duration")
    if us == 0 and not allow_zero:
        raise error(f"{name}={text} is zero; it must be a positive duration (≥ 1 µs)")
    if abs(us) > MAX_US:
        raise error(f"{name}={text} is too long; {_TOO_LONG}")
    return us


def us_to_json(us: int) -> int | float:
    """Seconds for JSON: an int when whole (exact), otherwise a float that round-trips to µs."""
    if us % US_PER_S == 0:
        return us // US_PER_S
    return us / US_PER_S


def us_from_json(value: object, key: str, kind: str) -> int:
    """Inverse of `us_to_json`, for values up to `MAX_US` (the caller checks the sign)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        spec_error(kind, key, value, "a number of seconds")
    if isinstance(value, float) and not math.isfinite(value):
        spec_error(kind, key, value, "a finite number of seconds")
    if abs(value) > MAX_US // US_PER_S:
        spec_error(kind, key, value, f"a number of seconds; {_TOO_LONG}")
    if isinstance(value, float):
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
        f"trigger spec of type {kind!r}: {key}={shown(value)} is not valid; expected {accepted}"
    )


def get_field(d: dict[str, Any], key: str, kind: str) -> Any:
    """`d[key]`, or a `TriggerSpecError` naming the missing key."""
    if key not in d:
        raise TriggerSpecError(f"trigger spec of type {kind!r} lacks the key {key!r}: {shown(d)}")
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
