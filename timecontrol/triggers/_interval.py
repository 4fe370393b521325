"""Interval triggers: every *n* seconds (up to weeks) of absolute time, from an anchor.

Absolute means elapsed time, not wall-clock time: an hourly interval stays 3600 s apart when
the clocks change (it reads 01:00, 03:00 CEST on a spring-forward night, and 02:00 CEST,
02:00 CET on a fall-back one), and a 24-hour interval drifts by an hour against the wall clock
across a change. For "every day at 09:00 local time" use `daily`.

Fire times are ``anchor + k × every`` for k = 0, 1, 2, ... computed in integer microseconds
(no float drift, however many periods have passed). The anchor is the first fire time (it may
also be given as ``start=``: the grid the interval fires on starts there); if it is omitted,
the first `next(after)` call binds it to ``after + every``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from timecontrol.triggers._errors import IntervalError
from timecontrol.triggers._protocol import TriggerBase
from timecontrol.triggers._time import (
    LAST_INSTANT,
    ONE_US,
    dt_to_json,
    duration_us,
    format_duration,
    get_field,
    get_opt_dt,
    origin_from,
    require_instant,
    resolve_zone,
    search_from,
    shown,
    spec_error,
    us_from_json,
    us_to_json,
    utc_naive,
    zone_of,
)
from timecontrol.triggers._zones import ZoneRules, rules_for

__all__ = ["IntervalTrigger", "interval"]

_MAX_TEXT = "give finite numbers adding up to between 1 µs and 50 years"


class IntervalTrigger(TriggerBase):
    """Fire every `every` (seconds or a `timedelta`) of absolute time, from `anchor`.

    `start` is another name for `anchor` (give one of them): the first fire time, and the
    origin of the grid ``start + k × every`` the interval fires on. `tz` only chooses how fire
    times are displayed (their local time and offset); it defaults to the anchor's zone.
    """

    json_type = "interval"
    json_keys = frozenset({"type", "every", "anchor", "tz"})

    def __init__(
        self,
        every: float | timedelta,
        *,
        anchor: datetime | None = None,
        start: datetime | None = None,
        tz: object = None,
    ) -> None:
        if start is not None:
            if anchor is not None:
                raise IntervalError(
                    f"anchor={shown(anchor)} and start={shown(start)} were both given; they "
                    f"name the same instant (the first fire time), so pass only one"
                )
            anchor = start
        self._every_us = duration_us(every, "every", IntervalError)
        self._every = timedelta(microseconds=self._every_us)
        self._anchor: datetime | None = None
        self._anchor_u: datetime | None = None
        self._tz_spec: str | None = None
        self._rules: ZoneRules | None = None
        if tz is not None:
            self._set_zone(*resolve_zone(tz))
        if anchor is not None:
            self._bind(require_instant(anchor, "start" if start is not None else "anchor"))

    def _set_zone(self, spec: str, zone: Any) -> None:
        self._tz_spec = spec
        self._rules = rules_for(spec, zone)

    def _bind(self, anchor: datetime) -> None:
        self._anchor = anchor
        self._anchor_u = utc_naive(anchor)
        if self._rules is None:
            self._set_zone(*zone_of(anchor))

    def bind(self, anchor: datetime) -> None:
        """Fix an unbound interval's grid at `anchor` (then its first fire time); a bound one
        keeps its anchor. The scheduler binds a job's interval at the job's `start`."""
        if self._anchor is None:
            self._bind(require_instant(anchor, "anchor"))

    @property
    def is_bound(self) -> bool:
        """False until an anchor is given or bound by the first `next()`."""
        return self._anchor is not None

    @property
    def every(self) -> timedelta:
        """The period."""
        return self._every

    @property
    def anchor(self) -> datetime | None:
        """The first fire time (None until bound)."""
        return self._anchor

    def next(self, after: datetime) -> datetime | None:
        """The first ``anchor + k × every`` strictly after `after`."""
        u = search_from(after)
        if u is None:
            return None
        if self._anchor_u is None:
            if LAST_INSTANT - u < self._every:
                return None  # no grid point fits before the range's end: nothing to bind
            # Bind in UTC: `after + every` on a ZoneInfo-aware `after` would be wall-clock
            # arithmetic and land an hour off across a DST change.
            if self._rules is None:
                self._set_zone(*zone_of(origin_from(after, u)))
            assert self._rules is not None
            self._bind(self._rules.localize(u + self._every))
        a = self._anchor_u
        rules = self._rules
        assert a is not None
        assert rules is not None
        if u < a:
            t = a
        else:
            # Whole microseconds throughout: exact however many periods have passed.
            k = ((u - a) // ONE_US) // self._every_us + 1
            if LAST_INSTANT - a < k * self._every:
                return None
            t = a + k * self._every
        return None if t > LAST_INSTANT else rules.localize(t)

    def to_json(self) -> dict[str, Any]:
        """`{"type": "interval", "every": seconds, "anchor": iso|None, "tz": name|None}`."""
        return {
            "type": "interval",
            "every": us_to_json(self._every_us),
            "anchor": None if self._anchor is None else dt_to_json(self._anchor),
            "tz": self._tz_spec,
        }

    @classmethod
    def _from_json(cls, d: dict[str, Any]) -> IntervalTrigger:
        every = us_from_json(get_field(d, "every", "interval"), "every", "interval")
        if every <= 0:
            spec_error("interval", "every", d["every"], "a positive number of seconds")
        tz = d.get("tz")
        if tz is not None and not isinstance(tz, str):
            spec_error("interval", "tz", tz, "a time zone name or null")
        return cls(timedelta(microseconds=every), anchor=get_opt_dt(d, "anchor", "interval"), tz=tz)

    def explain(self) -> str:
        """E.g. "every 1 hour of absolute time, from 2025-01-06 09:00:00+01:00, Europe/Berlin"."""
        text = f"every {format_duration(self._every_us)} of absolute time"
        if self._anchor is None:
            text += ", starting one interval after the first call"
        else:
            assert self._rules is not None
            assert self._anchor_u is not None
            text += f", from {self._rules.localize(self._anchor_u).isoformat(sep=' ')}"
        if self._tz_spec is not None:
            text += f", {self._tz_spec}"
        return text


def interval(
    seconds: float = 0,
    *,
    minutes: float = 0,
    hours: float = 0,
    days: float = 0,
    weeks: float = 0,
    anchor: datetime | None = None,
    start: datetime | None = None,
    tz: object = None,
) -> IntervalTrigger:
    """Every so much absolute time: ``interval(minutes=15, start=t0)`` fires at t0, t0 + 15
    min, ... (`start` and `anchor` are two names for that first fire time)."""
    parts = {"seconds": seconds, "minutes": minutes, "hours": hours, "days": days, "weeks": weeks}
    for name, value in parts.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise IntervalError(f"{name}={shown(value)} is not a number")
    try:
        every = timedelta(**parts)
    except (OverflowError, ValueError) as exc:
        raise IntervalError(
            f"interval {shown(parts)} is out of range ({exc}); {_MAX_TEXT}"
        ) from exc
    if every <= timedelta(0):
        given = {k: v for k, v in parts.items() if v} or {"seconds": 0}
        raise IntervalError(
            f"interval {shown(given)} is not positive; it must be at least 1 µs (e.g. minutes=15)"
        )
    return IntervalTrigger(every, anchor=anchor, start=start, tz=tz)
