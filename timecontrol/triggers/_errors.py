"""Errors raised by triggers.

Every class derives from `TriggerError`, hence from `TimeControlError` (and from `ValueError`,
because every one of them is a bad value handed to us): a public trigger call given bad input
raises nothing else. Messages name the offending value and say what would be accepted.
A naive datetime raises this package's `NaiveDatetimeError`, which is also the project-wide
`timecontrol.errors.NaiveDatetimeError`, so either name catches it.
"""

from __future__ import annotations

from timecontrol._exceptions import NaiveDatetimeError as _ProjectNaiveDatetimeError
from timecontrol._exceptions import TimeControlError

__all__ = [
    "CalendarError",
    "CronSyntaxError",
    "IntervalError",
    "JitterError",
    "NaiveDatetimeError",
    "TimePointError",
    "TriggerError",
    "TriggerSpecError",
    "UnknownTimeZoneError",
    "WindowError",
]


class TriggerError(TimeControlError, ValueError):
    """Base class of every trigger error: a trigger was built or called with a bad value."""


class NaiveDatetimeError(TriggerError, _ProjectNaiveDatetimeError):
    """A naive datetime given to a trigger where an aware one (with a tzinfo) is required."""


class CronSyntaxError(TriggerError):
    """A cron expression that is not valid: unknown token, value out of range, field count."""


class UnknownTimeZoneError(TriggerError):
    """A time zone name that is not in the IANA database (e.g. a typo like "Europe/Berln")."""


class IntervalError(TriggerError):
    """An interval length that is zero, negative, not finite or not a number."""


class WindowError(TriggerError):
    """A start/end window whose end lies before its start, or a bad max_executions count."""


class TimePointError(TriggerError):
    """A time-point sequence with a negative spacing, a bad count or offsets out of order."""


class CalendarError(TriggerError):
    """A bad daily/weekly/monthly specification: a time of day, a weekday or a day of month."""


class JitterError(TriggerError):
    """A jitter amount that is negative or not finite, or a seed that is not an integer."""


class TriggerSpecError(TriggerError):
    """A JSON trigger specification that cannot be turned back into a trigger: a wrong type, an
    unknown key, or nesting deeper than `MAX_NESTING` levels."""
