"""Cron triggers: parsed by croniter, evaluated here on precomputed field tables.

Parsing belongs to a maintained library (croniter), not to us: it validates every token and
expands each field to the set of values it allows. What croniter's own iterator does with
those sets is slow for our purpose (20-50 µs a fire time, with DST handling of its own), so
next-fire is computed here: an odometer over lookup tables (month → day → hour → minute →
second), with day-of-month/day-of-week rules cached per month shape (`_days`), and the DST
policy applied to the resulting naive local times (`_wallclock`).

Syntax (5 fields, or 6 with **seconds first**)::

    [second] minute hour day-of-month month day-of-week
    *  a  a-b  */n  a-b/n  a/n  a,b,c      values, ranges, steps, lists
    JAN-DEC, SUN-SAT                        names (case-insensitive)
    day-of-week 0 and 7 = Sunday, 1-5 = Monday-Friday (crontab numbering)
    L (last day of month)  15W (weekday nearest the 15th)  ? (= * in day fields)
    MON#2 (second Monday, n = 1-5)  L5 (last Friday)
    @yearly @annually @monthly @weekly @daily @midnight @hourly

Day-of-month and day-of-week combine as in Vixie/Debian cron: if either field starts with
``*`` (or is ``?``) both must match, otherwise either may match. Anything croniter does not
define is an error, as are three croniter extensions we refuse on purpose: ``H``/``R`` hashed
and random values (``R`` would make a persisted schedule change on reload) and 7-field (year)
expressions. Three croniter quirks are corrected before parsing: an equal range such as
``5-5`` or ``MON-MON`` means that one value (croniter widens it to the whole field); a range
must run low-high, as crontab(5) defines it (croniter reads ``10-5`` as wrapping round,
``10-59,0-5``, a reading no cron daemon shares: a typo would silently run most of the hour);
and a weekday range starting at 7 (``7-2``) is refused because croniter reads ``7-0`` as the
whole week.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from timecontrol.triggers._days import DayTable
from timecontrol.triggers._english import (
    MONTHS,
    ORDINALS,
    WEEKDAYS_SUN0,
    compress,
    hms,
    join,
    month_phrase,
    progression,
    runs,
    weekday_phrase,
)
from timecontrol.triggers._errors import CronSyntaxError
from timecontrol.triggers._time import get_str, shown
from timecontrol.triggers._wallclock import Ambiguous, Nonexistent, WallClockTrigger

__all__ = ["CronTrigger", "cron"]

_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# croniter splits on ASCII whitespace only; so do we (a no-break space is not a separator).
_FIELDS_RE = re.compile(r"\S+", re.ASCII)
_RANGE_RE = re.compile(r"^([a-z0-9]+)-([a-z0-9]+)(/\d+)?$", re.ASCII | re.IGNORECASE)
_HASH_RE = re.compile(r"^[hr](\(|/|$)", re.IGNORECASE)
_MONTH_NAMES = {name[:3].lower(): i for i, name in enumerate(MONTHS) if name}
_DOW_NAMES = {name[:3].lower(): i for i, name in enumerate(WEEKDAYS_SUN0)}

_NAMES6 = ("second", "minute", "hour", "day-of-month", "month", "day-of-week")
# The values each field allows, lowest and highest (day-of-week: 7 is Sunday again).
_BOUNDS = {
    "second": (0, 59),
    "minute": (0, 59),
    "hour": (0, 23),
    "day-of-month": (1, 31),
    "month": (1, 12),
    "day-of-week": (0, 7),
}
_ACCEPTED6 = (
    "0-59",
    "0-59",
    "0-23",
    "1-31, L, nW or ?",
    "1-12 or JAN-DEC",
    "0-7 or SUN-SAT (0 and 7 = Sunday), d#n with n = 1-5, Ld (last d of the month) or ?",
)
_SYNTAX = (
    "5 fields 'minute hour day-of-month month day-of-week' or 6 with seconds first; "
    "values, ranges a-b, steps */n and a-b/n, lists a,b, names JAN-DEC and SUN-SAT, "
    "L, nW, d#n, Ld, ?, or one of " + ", ".join(_ALIASES)
)


def _value(token: str, kind: str) -> int | None:
    t = token.lower()
    if t.isdigit():
        # Long digit strings are left to croniter's range check: int() refuses 4301 digits.
        return int(t) if len(t) <= 9 else None
    if kind == "month":
        return _MONTH_NAMES.get(t)
    if kind == "day-of-week":
        return _DOW_NAMES.get(t)
    return None


def _canonical_field(field: str, kind: str, expr: str) -> str:
    """Correct croniter's equal-range quirk and refuse what crontab(5) does not define, per
    term: hash/random values and ranges that run backwards."""
    terms = []
    for raw in field.split(","):
        term = raw
        if _HASH_RE.match(term):
            raise CronSyntaxError(
                f"cron expression {shown(expr)}: {kind} field {shown(field)} uses {shown(term)}, "
                f"croniter's hashed/random syntax, which is not accepted (a random value would "
                f"change when a persisted schedule is reloaded); accepted: {_SYNTAX}"
            )
        m = _RANGE_RE.match(term)
        if m:
            a, b = _value(m.group(1), kind), _value(m.group(2), kind)
            if a is not None and a == b:
                term = m.group(1)
            elif kind == "day-of-week" and a == 7:
                raise CronSyntaxError(
                    f"cron expression {shown(expr)}: day-of-week range {shown(term)} starts at 7 "
                    f"(Sunday); start it at 0 or SUN instead, e.g. 'SUN-TUE'"
                )
            elif a is not None and b is not None and a > b:
                raise CronSyntaxError(_backwards(expr, kind, field, term, a, b, m.group(3)))
        terms.append(term)
    return ",".join(terms)


def _backwards(
    expr: str, kind: str, field: str, term: str, a: int, b: int, step: str | None
) -> str:
    """The message for a range that runs backwards, suggesting what was probably meant."""
    where = f"{kind} field {shown(field)}"
    if term != field:
        where += f" has the range {shown(term)}, which"
    text = (
        f"cron expression {shown(expr)}: {where} runs backwards ({a} > {b}); ranges must go "
        f"low-high, as in crontab(5)"
    )
    if step is not None:
        return text
    lo, hi = _BOUNDS[kind]
    if kind == "day-of-week":
        if b == 0:  # "FRI-SUN": Sunday is 7 as well as 0
            return f"{text}; to end at Sunday write 7: '{a}-7'"
        hi = 6
    if lo <= b and a <= hi:
        upper = str(a) if a == hi else f"{a}-{hi}"
        lower = str(lo) if b == lo else f"{lo}-{b}"
        text += f"; to wrap round, list both parts: '{upper},{lower}'"
    return text


def _expand(fields: list[str]) -> tuple[list[list[Any]], dict[Any, set[Any]]]:
    from croniter import croniter  # lazy: only cron triggers need the parser

    expanded, nth = croniter.expand(" ".join(fields), second_at_beginning=len(fields) == 6)
    return expanded, nth


def _ints(values: Iterable[Any], lo: int, hi: int) -> list[int]:
    vals = list(values)
    if "*" in vals:
        return list(range(lo, hi + 1))
    return sorted({v for v in vals if isinstance(v, int)})


def _next_table(allowed: Iterable[int], size: int) -> list[int]:
    """table[i] = smallest allowed value ≥ i, or -1; `size` includes one overflow slot."""
    allowed_set = set(allowed)
    table = [-1] * size
    nxt = -1
    for i in range(size - 1, -1, -1):
        if i in allowed_set:
            nxt = i
        table[i] = nxt
    return table


def _nearest_weekday(day: int, first: int, ndays: int) -> int:
    """The weekday (Mon-Fri) nearest `day`, not leaving the month; `day` is clamped to it."""
    day = min(day, ndays)
    wd = (first + day - 1) % 7  # Monday = 0
    if wd < 5:
        return day
    if wd == 5:  # Saturday: the Friday before, unless that is last month
        return day - 1 if day > 1 else day + 2
    return day + 1 if day < ndays else day - 2  # Sunday: the Monday after, unless next month


def _expand_checked(
    expr: str, fields: list[str], names: Sequence[str], accepted: Sequence[str]
) -> tuple[list[list[Any]], dict[Any, set[Any]]]:
    """`_expand(fields)`, with a `CronSyntaxError` naming the field at fault."""
    try:
        return _expand(fields)
    except (ValueError, TypeError, KeyError) as exc:
        # Find the field at fault by parsing it alone among wildcards.
        for i, field in enumerate(fields):
            probe = ["*"] * len(fields)
            probe[i] = field
            try:
                _expand(probe)
            except (ValueError, TypeError, KeyError):
                raise CronSyntaxError(
                    f"cron expression {shown(expr)}: {names[i]} field {shown(field)} is not valid "
                    f"({exc}); accepted in that field: {accepted[i]}"
                ) from exc
        raise CronSyntaxError(
            f"cron expression {shown(expr)} is not valid ({exc}); expected {_SYNTAX}"
        ) from exc


class _Spec:
    """The parsed form of one expression: allowed values per field and the day rule."""

    def __init__(self, expr: str) -> None:
        if not isinstance(expr, str):
            raise CronSyntaxError(
                f"cron expression {shown(expr)} is not a string; expected {_SYNTAX}"
            )
        text = expr.strip()
        if text.startswith("@"):
            alias = _ALIASES.get(text.lower())
            if alias is None:
                raise CronSyntaxError(
                    f"cron alias {shown(expr)} is not known; accepted: {', '.join(_ALIASES)}"
                )
            text = alias
        fields = _FIELDS_RE.findall(text)
        if len(fields) not in (5, 6):
            raise CronSyntaxError(
                f"cron expression {shown(expr)} has {len(fields)} fields; expected 5 "
                f"(minute hour day-of-month month day-of-week) or 6 (second minute hour "
                f"day-of-month month day-of-week)"
            )
        names = _NAMES6 if len(fields) == 6 else _NAMES6[1:]
        accepted = _ACCEPTED6 if len(fields) == 6 else _ACCEPTED6[1:]
        fields = [_canonical_field(f, k, expr) for f, k in zip(fields, names, strict=True)]
        expanded, nth = _expand_checked(expr, fields, names, accepted)

        self.has_seconds = len(fields) == 6
        self.minutes = _ints(expanded[0], 0, 59)
        self.hours = _ints(expanded[1], 0, 23)
        self.months = _ints(expanded[3], 1, 12)
        self.seconds = _ints(expanded[5], 0, 59) if self.has_seconds else [0]
        dom_field, dow_field = fields[-3], fields[-1]
        dom_vals = list(expanded[2])
        self.dom_all = "*" in dom_vals
        self.dom_last = "l" in dom_vals
        self.dom_days = frozenset(v for v in dom_vals if isinstance(v, int))
        self.w_day: int | None = None
        if "w" in dom_field.lower():  # croniter allows W only as the whole field
            self.w_day = min(self.dom_days)
            self.dom_days = frozenset()
        self.nth: dict[int, frozenset[int | str]] = {
            int(k) % 7: frozenset(v) for k, v in nth.items()
        }
        dow_vals = list(expanded[4])
        self.dow_all = "*" in dow_vals and not self.nth
        self.dow_days = frozenset(v % 7 for v in dow_vals if isinstance(v, int))
        # Vixie/Debian rule: a field starting with '*' makes the two day fields an AND.
        self.day_and = dom_field.startswith(("*", "?")) or dow_field.startswith(("*", "?"))

    def day_rule(self, first: int, ndays: int) -> tuple[int, ...]:
        """Matching days of a month whose 1st is weekday `first` (Monday = 0)."""
        w_target = _nearest_weekday(self.w_day, first, ndays) if self.w_day else None
        out = []
        for d in range(1, ndays + 1):
            dom_ok = (
                self.dom_all
                or d in self.dom_days
                or (self.dom_last and d == ndays)
                or d == w_target
            )
            wd = (first + d) % 7  # cron weekday, Sunday = 0
            if self.nth:
                ns = self.nth.get(wd)
                dow_ok = ns is not None and (
                    (d - 1) // 7 + 1 in ns or ("l" in ns and d + 7 > ndays)
                )
            else:
                dow_ok = self.dow_all or wd in self.dow_days
            if (dom_ok and dow_ok) if self.day_and else (dom_ok or dow_ok):
                out.append(d)
        return tuple(out)


class CronTrigger(WallClockTrigger):
    """Fire at the local times a cron expression names, in one time zone.

    >>> t = CronTrigger("*/15 9-17 * * 1-5", tz="Europe/Berlin")
    >>> t.explain()
    'every 15 minutes from 09:00 to 17:45, Monday to Friday, Europe/Berlin'
    """

    json_type = "cron"
    json_keys = frozenset({"type", "expr", "tz", "nonexistent", "ambiguous"})

    def __init__(
        self,
        expr: str,
        tz: object = "UTC",
        *,
        nonexistent: Nonexistent = "gap_end",
        ambiguous: Ambiguous = "first",
    ) -> None:
        super().__init__(tz, nonexistent=nonexistent, ambiguous=ambiguous)
        spec = _Spec(expr)
        self._expr = expr
        self._spec = spec
        self._days = DayTable(spec.day_rule)
        if not self._days.ever_matches(lambda m: m in spec.months):
            raise CronSyntaxError(
                f"cron expression {shown(expr)} never fires: no month it allows has a day that "
                f"matches its day-of-month and day-of-week fields"
            )
        self._sec = _next_table(spec.seconds, 61)
        self._min = _next_table(spec.minutes, 61)
        self._hour = _next_table(spec.hours, 25)
        self._mon = _next_table(spec.months, 14)
        self._first_month = spec.months[0]

    @property
    def expr(self) -> str:
        """The expression as given."""
        return self._expr

    def _next_local(self, t: datetime) -> datetime | None:
        # An odometer: each wheel jumps straight to its next allowed value via a lookup table;
        # a wheel that runs out carries into the next-larger one and resets the smaller ones.
        y, mo, d, h, mi, s = t.year, t.month, t.day, t.hour, t.minute, t.second + 1
        nsec, nmin, nhour, nmon = self._sec, self._min, self._hour, self._mon
        days_of = self._days.days
        while True:
            m2 = nmon[mo]
            if m2 < 0:
                y += 1
                if y > 9999:
                    return None
                mo, d, h, mi, s = self._first_month, 1, 0, 0, 0
            elif m2 != mo:
                mo, d, h, mi, s = m2, 1, 0, 0, 0
            days = days_of(y, mo)
            i = bisect_left(days, d)
            if i == len(days):
                mo, d, h, mi, s = mo + 1, 1, 0, 0, 0
                continue
            if days[i] != d:
                d, h, mi, s = days[i], 0, 0, 0
            h2 = nhour[h]
            if h2 < 0:
                d, h, mi, s = d + 1, 0, 0, 0
                continue
            if h2 != h:
                h, mi, s = h2, 0, 0
            m3 = nmin[mi]
            if m3 < 0:
                h, mi, s = h + 1, 0, 0
                continue
            if m3 != mi:
                mi, s = m3, 0
            s2 = nsec[s]
            if s2 < 0:
                mi, s = mi + 1, 0
                continue
            return datetime(y, mo, d, h, mi, s2)

    def to_json(self) -> dict[str, Any]:
        """`{"type": "cron", "expr": ..., "tz": ..., "nonexistent": ..., "ambiguous": ...}`."""
        return {"type": "cron", "expr": self._expr, **self._zone_json()}

    @classmethod
    def _from_json(cls, d: dict[str, Any]) -> CronTrigger:
        return cls(get_str(d, "expr", "cron"), **cls._zone_kwargs(d, "cron"))

    def explain(self) -> str:
        """E.g. "every 15 minutes from 09:00 to 17:45, Monday to Friday, Europe/Berlin"."""
        spec = self._spec
        parts = [_time_phrase(spec.seconds, spec.minutes, spec.hours), _day_phrase(spec)]
        parts.append(month_phrase(spec.months))
        parts.append(self._zone_english())
        return ", ".join(p for p in parts if p)


def cron(
    expr: str,
    tz: object = "UTC",
    *,
    nonexistent: Nonexistent = "gap_end",
    ambiguous: Ambiguous = "first",
) -> CronTrigger:
    """A cron trigger: ``cron("*/15 9-17 * * 1-5", tz="Europe/Berlin")`` (see `CronTrigger`)."""
    return CronTrigger(expr, tz, nonexistent=nonexistent, ambiguous=ambiguous)


# ---------------------------------------------------------------------------- English


def _time_phrase(secs: list[int], mins: list[int], hours: list[int]) -> str:
    all_m, all_h = len(mins) == 60, len(hours) == 24
    hrun = runs(hours)
    contiguous_h = len(hrun) == 1
    if secs != [0]:
        if len(secs) == 60 and all_m and all_h:
            return "every second"
        sp = progression(secs, 60)
        if sp and all_m and all_h:
            return f"every {sp[1]} seconds" + (f" from second {sp[0]}" if sp[0] else "")
        if len(secs) * len(mins) * len(hours) <= 6:
            times = sorted(h * 3600 + m * 60 + s for h in hours for m in mins for s in secs)
            return "at " + join([hms(t, with_seconds=True) for t in times])
        sec_txt = "every second" if len(secs) == 60 else f"at second {compress(secs)}"
        min_txt = "of every minute" if all_m else f"of minute {compress(mins)}"
        hour_txt = "" if all_h else f" past hour {compress(hours)}"
        return f"{sec_txt} {min_txt}{hour_txt}"
    if all_m and all_h:
        return "every minute"
    mp = progression(mins, 60)
    if all_m or (mp and mp[1] > 1):
        step_txt = "every minute" if all_m else f"every {mp[1]} minutes" if mp else ""
        if all_h:
            return step_txt + (f" from minute {mp[0]}" if mp and mp[0] else "")
        if contiguous_h:
            return f"{step_txt} from {hours[0]:02d}:{mins[0]:02d} to {hours[-1]:02d}:{mins[-1]:02d}"
    if len(mins) * len(hours) <= 6:
        times = sorted(h * 3600 + m * 60 for h in hours for m in mins)
        return "at " + join([hms(t) for t in times])
    if len(mins) == 1:
        if all_h:
            return "every hour, on the hour" if mins[0] == 0 else f"every hour at minute {mins[0]}"
        if contiguous_h:
            return f"every hour from {hours[0]:02d}:{mins[0]:02d} to {hours[-1]:02d}:{mins[0]:02d}"
    hour_txt = "every hour" if all_h else f"hour {compress(hours)}"
    return f"at minute {compress(mins)} past {hour_txt}"


def _day_phrase(spec: _Spec) -> str:
    dom = ""
    if spec.w_day is not None:
        dom = f"on the weekday nearest day {spec.w_day} of the month"
    elif not spec.dom_all:
        items = []
        if spec.dom_days:
            items.append(f"day {compress(sorted(spec.dom_days))}")
        if spec.dom_last:
            items.append("the last day")
        dom = f"on {join(items)} of the month"
    dow = ""
    if spec.nth:
        items = []
        for wd in sorted(spec.nth, key=lambda w: (w - 1) % 7):
            ns = spec.nth[wd]
            words = [ORDINALS[n] for n in sorted(n for n in ns if isinstance(n, int))]
            if "l" in ns:
                words.append("last")
            items.append(f"{join(words)} {WEEKDAYS_SUN0[wd]}")
        dow = f"on the {join(items)} of the month"
    elif not spec.dow_all and len(spec.dow_days) < 7:
        dow = weekday_phrase(sorted(spec.dow_days))
    if dom and dow:
        return f"{dom} and {dow}" if spec.day_and else f"{dom} or {dow}"
    return dom or dow
