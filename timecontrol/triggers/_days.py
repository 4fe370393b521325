"""Which days of a month match: computed per month *shape*, cached, shared by cron and calendar.

Whether day *d* of a month matches a cron or calendar rule depends only on the weekday of the
1st and the month's length (every rule here — weekdays, "last day", "nearest weekday", "second
Monday" — is a function of those two). There are only 7 × 4 such shapes, so each rule computes
at most 28 small tuples, ever; a per-(year, month) memo then makes the lookup one dict access.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

__all__ = ["DayTable", "days_in_month", "month_shape"]

_LENGTHS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def days_in_month(year: int, month: int) -> int:
    """Length of the month (Gregorian leap years)."""
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _LENGTHS[month]


def month_shape(year: int, month: int) -> tuple[int, int]:
    """`(weekday of the 1st with Monday = 0, number of days)`."""
    return date(year, month, 1).weekday(), days_in_month(year, month)


class DayTable:
    """Sorted matching days for any month, from a rule over month shapes."""

    __slots__ = ("_by_month", "_by_shape", "_rule")

    def __init__(self, rule: Callable[[int, int], tuple[int, ...]]) -> None:
        # rule(first_weekday_mon0, ndays) -> sorted tuple of matching days
        self._rule = rule
        self._by_shape: dict[tuple[int, int], tuple[int, ...]] = {}
        self._by_month: dict[int, tuple[int, ...]] = {}

    def __deepcopy__(self, memo: dict[int, object]) -> DayTable:
        # A pure cache of the rule's results: copies of a trigger can share it.
        return self

    def for_shape(self, first_weekday: int, ndays: int) -> tuple[int, ...]:
        """Matching days of a month starting on `first_weekday` (Monday = 0) with `ndays` days."""
        key = (first_weekday, ndays)
        days = self._by_shape.get(key)
        if days is None:
            days = self._rule(first_weekday, ndays)
            self._by_shape[key] = days
        return days

    def days(self, year: int, month: int) -> tuple[int, ...]:
        """Matching days of `month` in `year`, ascending."""
        key = year * 12 + month
        days = self._by_month.get(key)
        if days is None:
            days = self.for_shape(*month_shape(year, month))
            if len(self._by_month) > 20000:  # bounded: a long-running process walks forward
                self._by_month.clear()
            self._by_month[key] = days
        return days

    def ever_matches(self, months: Callable[[int], bool]) -> bool:
        """Whether any day of any allowed month can ever match (all shapes occur in 400 years)."""
        for month in range(1, 13):
            if not months(month):
                continue
            lengths = (28, 29) if month == 2 else (_LENGTHS[month],)
            for ndays in lengths:
                for first in range(7):
                    if self.for_shape(first, ndays):
                        return True
        return False
