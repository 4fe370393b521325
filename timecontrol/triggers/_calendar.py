"""Calendar triggers: daily, weekly and monthly at given local times, in a named time zone.

Weekdays are names ("mon", "Monday") or ISO numbers 1 (Monday) to 7 (Sunday). A bare 0 is
refused: it means Sunday to crontab and Monday to Python and APScheduler 3, and guessing wrong
silently moves a schedule by a day.

A monthly day that a month lacks (the 31st in April, the 30th in February) follows
``missing_day``: ``"skip"`` (default, as cron does) skips that month; ``"last"`` runs on the
month's last day instead. ``"last"`` as the day itself always means the last day.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable
from datetime import datetime, time
from typing import Any, Literal

from timecontrol.triggers._days import DayTable
from timecontrol.triggers._english import WEEKDAYS_MON0, hms, join, weekday_phrase
from timecontrol.triggers._errors import CalendarError
from timecontrol.triggers._time import get_field, shown, spec_error
from timecontrol.triggers._wallclock import Ambiguous, Nonexistent, WallClockTrigger

__all__ = ["DailyTrigger", "MonthlyTrigger", "WeeklyTrigger", "daily", "monthly", "weekly"]

MissingDay = Literal["skip", "last"]

_TIME_RE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$", re.ASCII)
_DAY_NAMES = {
    name: i for i, full in enumerate(WEEKDAYS_MON0) for name in (full.lower(), full[:3].lower())
}


def _one_time(value: object) -> int:
    if isinstance(value, time):
        if value.tzinfo is not None:
            raise CalendarError(
                f"at={shown(value)} carries a tzinfo; give a plain time of day and pass the zone "
                f"as tz=..."
            )
        if value.microsecond:
            raise CalendarError(
                f"at={shown(value)} has microseconds; times of day are whole seconds"
            )
        return value.hour * 3600 + value.minute * 60 + value.second
    if isinstance(value, str):
        m = _TIME_RE.match(value.strip())
        if m:
            h, mi, s = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
            if h < 24 and mi < 60 and s < 60:
                return h * 3600 + mi * 60 + s
    raise CalendarError(
        f"at={shown(value)} is not a time of day; accepted: 'HH:MM' or 'HH:MM:SS' (00:00 to "
        f"23:59:59) or a datetime.time, or a list of those"
    )


def _times(at: object) -> tuple[int, ...]:
    items = [at] if isinstance(at, (str, time)) else at
    if not isinstance(items, Iterable):
        raise CalendarError(f"at={shown(at)} is not a time of day or a list of times of day")
    out = sorted({_one_time(v) for v in items})
    if not out:
        raise CalendarError(f"at={shown(at)} is empty; give at least one time of day")
    return tuple(out)


def _weekday(value: object) -> int:
    """Monday = 0 from a name or an ISO number (1 = Monday ... 7 = Sunday)."""
    if isinstance(value, str) and value.strip().lower() in _DAY_NAMES:
        return _DAY_NAMES[value.strip().lower()]
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 7:
        return value - 1
    hint = " (0 is ambiguous: Sunday in crontab, Monday in Python)" if value == 0 else ""
    raise CalendarError(
        f"weekday {shown(value)} is not accepted{hint}; use a name such as 'mon' or 'Monday', or "
        f"an ISO number 1 (Monday) to 7 (Sunday)"
    )


class _CalendarTrigger(WallClockTrigger):
    """Shared search: the matching days of each month, then the times of day."""

    _times: tuple[int, ...]
    _table: DayTable

    def _next_local(self, t: datetime) -> datetime | None:
        y, mo, d = t.year, t.month, t.day
        sod = t.hour * 3600 + t.minute * 60 + t.second + 1
        times = self._times
        days_of = self._table.days
        while True:
            days = days_of(y, mo)
            i = bisect_left(days, d)
            if i == len(days):
                mo += 1
                if mo == 13:
                    y, mo = y + 1, 1
                    if y > 9999:
                        return None
                d, sod = 1, 0
                continue
            if days[i] != d:
                d, sod = days[i], 0
            j = bisect_left(times, sod)
            if j == len(times):
                d, sod = d + 1, 0
                continue
            s = times[j]
            return datetime(y, mo, d, s // 3600, s // 60 % 60, s % 60)

    def _times_json(self) -> list[str]:
        return [hms(s, with_seconds=True) for s in self._times]

    def _at_english(self) -> str:
        return "at " + join([hms(s) for s in self._times])

    @staticmethod
    def _get_at(d: dict[str, Any], kind: str) -> list[str]:
        at = get_field(d, "at", kind)
        if not isinstance(at, list) or not all(isinstance(x, str) for x in at):
            spec_error(kind, "at", at, "a list of 'HH:MM:SS' strings")
        return at


class DailyTrigger(_CalendarTrigger):
    """Every day at one or more local times: ``DailyTrigger("09:00", tz="Europe/Berlin")``."""

    json_type = "daily"
    json_keys = frozenset({"type", "at", "tz", "nonexistent", "ambiguous"})

    def __init__(
        self,
        at: object,
        tz: object = "UTC",
        *,
        nonexistent: Nonexistent = "gap_end",
        ambiguous: Ambiguous = "first",
    ) -> None:
        super().__init__(tz, nonexistent=nonexistent, ambiguous=ambiguous)
        self._times = _times(at)
        self._table = DayTable(lambda first, ndays: tuple(range(1, ndays + 1)))

    def to_json(self) -> dict[str, Any]:
        """`{"type": "daily", "at": ["09:00:00"], "tz": ..., "nonexistent": ..., ...}`."""
        return {"type": "daily", "at": self._times_json(), **self._zone_json()}

    @classmethod
    def _from_json(cls, d: dict[str, Any]) -> DailyTrigger:
        return cls(cls._get_at(d, "daily"), **cls._zone_kwargs(d, "daily"))

    def explain(self) -> str:
        """E.g. "daily at 09:00 and 17:30, Europe/Berlin"."""
        return f"daily {self._at_english()}, {self._zone_english()}"


class WeeklyTrigger(_CalendarTrigger):
    """On given weekdays at given local times: ``WeeklyTrigger(["mon", "thu"], "09:00")``."""

    json_type = "weekly"
    json_keys = frozenset({"type", "days", "at", "tz", "nonexistent", "ambiguous"})

    def __init__(
        self,
        days: object,
        at: object,
        tz: object = "UTC",
        *,
        nonexistent: Nonexistent = "gap_end",
        ambiguous: Ambiguous = "first",
    ) -> None:
        super().__init__(tz, nonexistent=nonexistent, ambiguous=ambiguous)
        items = [days] if isinstance(days, (str, int)) else days
        if not isinstance(items, Iterable):
            raise CalendarError(f"days={shown(days)} is not a weekday or a list of weekdays")
        weekdays = frozenset(_weekday(v) for v in items)
        if not weekdays:
            raise CalendarError(f"days={shown(days)} is empty; give at least one weekday")
        self._weekdays = weekdays
        self._times = _times(at)

        def rule(first: int, ndays: int) -> tuple[int, ...]:
            return tuple(d for d in range(1, ndays + 1) if (first + d - 1) % 7 in weekdays)

        self._table = DayTable(rule)

    def to_json(self) -> dict[str, Any]:
        """`{"type": "weekly", "days": ["mon", "thu"], "at": [...], "tz": ..., ...}`."""
        days = [WEEKDAYS_MON0[d][:3].lower() for d in sorted(self._weekdays)]
        return {"type": "weekly", "days": days, "at": self._times_json(), **self._zone_json()}

    @classmethod
    def _from_json(cls, d: dict[str, Any]) -> WeeklyTrigger:
        days = get_field(d, "days", "weekly")
        if not isinstance(days, list):
            spec_error("weekly", "days", days, "a list of weekday names")
        return cls(days, cls._get_at(d, "weekly"), **cls._zone_kwargs(d, "weekly"))

    def explain(self) -> str:
        """E.g. "Monday to Friday at 09:00, Europe/Berlin" or "on Mondays at 08:00, UTC"."""
        sun0 = [(d + 1) % 7 for d in self._weekdays]
        return f"{weekday_phrase(sun0)} {self._at_english()}, {self._zone_english()}"


class MonthlyTrigger(_CalendarTrigger):
    """On given days of each month at given local times.

    `day` is 1-31 or "last" (or a list of those). A day that a month lacks follows
    `missing_day`: "skip" (default) skips that month, "last" runs on its last day instead.
    """

    json_type = "monthly"
    json_keys = frozenset({"type", "days", "missing_day", "at", "tz", "nonexistent", "ambiguous"})

    def __init__(
        self,
        day: object,
        at: object,
        tz: object = "UTC",
        *,
        missing_day: MissingDay = "skip",
        nonexistent: Nonexistent = "gap_end",
        ambiguous: Ambiguous = "first",
    ) -> None:
        super().__init__(tz, nonexistent=nonexistent, ambiguous=ambiguous)
        if missing_day not in ("skip", "last"):
            raise CalendarError(
                f"missing_day={shown(missing_day)} is not a policy; accepted: 'skip' (skip months "
                f"that lack the day) or 'last' (run on the month's last day instead)"
            )
        items = [day] if isinstance(day, (str, int)) else day
        if not isinstance(items, Iterable):
            raise CalendarError(f"day={shown(day)} is not a day of the month or a list of them")
        numbers: set[int] = set()
        last = False
        for v in items:
            if isinstance(v, str) and v.strip().lower() == "last":
                last = True
            elif isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 31:
                numbers.add(v)
            else:
                raise CalendarError(
                    f"day {shown(v)} is not a day of the month; accepted: 1 to 31 or 'last'"
                )
        if not numbers and not last:
            raise CalendarError(f"day={shown(day)} is empty; give at least one day of the month")
        self._numbers = frozenset(numbers)
        self._last = last
        self._missing: MissingDay = missing_day
        self._times = _times(at)
        clamp = missing_day == "last"

        def rule(first: int, ndays: int) -> tuple[int, ...]:
            days = {n for n in numbers if n <= ndays}
            if clamp and any(n > ndays for n in numbers):
                days.add(ndays)
            if last:
                days.add(ndays)
            return tuple(sorted(days))

        self._table = DayTable(rule)

    def to_json(self) -> dict[str, Any]:
        """`{"type": "monthly", "days": [1, "last"], "missing_day": "skip", "at": [...], ...}`."""
        days: list[int | str] = sorted(self._numbers)
        if self._last:
            days.append("last")
        return {
            "type": "monthly",
            "days": days,
            "missing_day": self._missing,
            "at": self._times_json(),
            **self._zone_json(),
        }

    @classmethod
    def _from_json(cls, d: dict[str, Any]) -> MonthlyTrigger:
        days = get_field(d, "days", "monthly")
        if not isinstance(days, list):
            spec_error("monthly", "days", days, "a list of days (1-31 or 'last')")
        return cls(
            days,
            cls._get_at(d, "monthly"),
            missing_day=d.get("missing_day", "skip"),
            **cls._zone_kwargs(d, "monthly"),
        )

    def explain(self) -> str:
        """E.g. "monthly on day 31 (the last day in shorter months) at 08:00, UTC"."""
        items = [str(n) for n in sorted(self._numbers)]
        text = f"day {join(items)}" if items else ""
        if self._last:
            text = join([text, "the last day"]) if text else "the last day"
        short = [n for n in self._numbers if n > 28]
        if short:
            text += (
                " (the last day in shorter months)"
                if self._missing == "last"
                else " (skipped in months without it)"
            )
        return f"monthly on {text} {self._at_english()}, {self._zone_english()}"


def daily(
    at: object,
    tz: object = "UTC",
    *,
    nonexistent: Nonexistent = "gap_end",
    ambiguous: Ambiguous = "first",
) -> DailyTrigger:
    """Every day at `at` ("09:00", a `time`, or a list): ``daily("09:00", tz="Europe/Berlin")``."""
    return DailyTrigger(at, tz, nonexistent=nonexistent, ambiguous=ambiguous)


def weekly(
    days: object,
    at: object,
    tz: object = "UTC",
    *,
    nonexistent: Nonexistent = "gap_end",
    ambiguous: Ambiguous = "first",
) -> WeeklyTrigger:
    """On weekdays `days` at `at`: ``weekly(["mon", "thu"], "09:00", tz="Europe/Berlin")``."""
    return WeeklyTrigger(days, at, tz, nonexistent=nonexistent, ambiguous=ambiguous)


def monthly(
    day: object,
    at: object,
    tz: object = "UTC",
    *,
    missing_day: MissingDay = "skip",
    nonexistent: Nonexistent = "gap_end",
    ambiguous: Ambiguous = "first",
) -> MonthlyTrigger:
    """On day `day` (1-31 or "last") of each month: ``monthly(31, "08:00", missing_day="last")``."""
    return MonthlyTrigger(
        day, at, tz, missing_day=missing_day, nonexistent=nonexistent, ambiguous=ambiguous
    )
