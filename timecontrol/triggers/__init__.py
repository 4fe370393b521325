"""Triggers say *when*: time points, intervals, cron, calendar rules, one-shot dates and their
combinations, each right across DST changes.

Every trigger is pure (no clock reads, no I/O): ``next(after)`` returns the first fire time
strictly after the aware datetime ``after`` (or None), ``preview(n, after)`` lists several,
``to_json()``/`trigger_from_json` persist it exactly, and ``explain()`` says in English when it
fires. Fire times are aware datetimes in local wall-clock time with a fixed UTC offset, so they
print as local time and sort correctly even inside a repeated hour.

>>> from datetime import datetime, timezone
>>> t = cron("*/15 9-17 * * 1-5", tz="Europe/Berlin")
>>> t.explain()
'every 15 minutes from 09:00 to 17:45, Monday to Friday, Europe/Berlin'
>>> t.next(datetime(2025, 1, 6, 8, 0, tzinfo=timezone.utc)).isoformat()
'2025-01-06T09:15:00+01:00'
"""

from __future__ import annotations

from timecontrol.triggers._calendar import (
    DailyTrigger,
    MonthlyTrigger,
    WeeklyTrigger,
    daily,
    monthly,
    weekly,
)
from timecontrol.triggers._combine import IntersectionTrigger, UnionTrigger, intersection, union
from timecontrol.triggers._cron import CronTrigger, cron
from timecontrol.triggers._date import DateTrigger, once
from timecontrol.triggers._errors import (
    CalendarError,
    CronSyntaxError,
    IntervalError,
    JitterError,
    NaiveDatetimeError,
    TimePointError,
    TriggerError,
    TriggerSpecError,
    UnknownTimeZoneError,
    WindowError,
)
from timecontrol.triggers._interval import IntervalTrigger, interval
from timecontrol.triggers._modifiers import JitterTrigger, LimitTrigger, WindowTrigger
from timecontrol.triggers._protocol import MAX_NESTING, Trigger, TriggerBase, trigger_from_json
from timecontrol.triggers._timepoints import TimePoints, timepoints
from timecontrol.triggers._wallclock import Ambiguous, Nonexistent, WallClockTrigger

__all__ = [
    "MAX_NESTING",
    "Ambiguous",
    "CalendarError",
    "CronSyntaxError",
    "CronTrigger",
    "DailyTrigger",
    "DateTrigger",
    "IntersectionTrigger",
    "IntervalError",
    "IntervalTrigger",
    "JitterError",
    "JitterTrigger",
    "LimitTrigger",
    "MonthlyTrigger",
    "NaiveDatetimeError",
    "Nonexistent",
    "TimePointError",
    "TimePoints",
    "Trigger",
    "TriggerBase",
    "TriggerError",
    "TriggerSpecError",
    "UnionTrigger",
    "UnknownTimeZoneError",
    "WallClockTrigger",
    "WeeklyTrigger",
    "WindowError",
    "WindowTrigger",
    "cron",
    "daily",
    "intersection",
    "interval",
    "monthly",
    "once",
    "timepoints",
    "trigger_from_json",
    "union",
    "weekly",
]
