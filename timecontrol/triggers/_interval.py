"""Interval triggers: every *n* seconds (up to weeks) of absolute time, from an anchor.

Absolute means elapsed time, not wall-clock time: an hourly interval stays 3600 s apart when
the clocks change (it reads 01:00, 03:00 CEST on a spring-forward night, and 02:00 CEST,
02:00 CET on a fall-back one), and a 24-hour interval drifts by an hour against the wall clock
across a change. For "every day at 09:00 local time" use `daily`.

Fire times are ``anchor + k × every`` for k = 0, 1, 2, ... computed in integer microseconds
(no float drift, however many periods have passed). The anchor is the first fire time; if it
is omitted, the first `next(after)` call binds it to ``after + every``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from timecontrol.triggers._errors import IntervalError
from timecontrol.triggers._protocol import TriggerBase
from timecontrol.triggers._time import (
    ONE_US,
    dt_to_json,
    duration_us,
    format_duration,
    get_field,
    get_opt_dt,
    require_aware,
    resolve_zone,
    spec_error,
    us_from_json,
    us_to_json,
    utc_naive,
    zone_of,
)
from timecontrol.triggers._zones import ZoneRules, rules_for

__all__ = ["IntervalTrigger", "interval"]


class IntervalTrigger(TriggerBase):
    """Fire every `every` (seconds or a `timedelta`) of absolute time, from `anchor`.

    `tz` only chooses how fire times are displayed (their local time and offset); it defaults
    to the anchor's zone.
    """

    json_type = "interval"

    def __init__(
        self,
        every: float | timedelta,
        *,
        anchor: datetime | None = None,
        tz: object = None,
    ) -> None:
        self._every_us = duration_us(every, "every", IntervalError)
        self._every = timedelta(microseconds=self._every_us)
        self._anchor: datetime | None = None
        self._anchor_u: datetime | None = None
        self._tz_spec: str | None = None
        self._rules: ZoneRules | None = None
        if tz is not None:
            self._set_zone(*resolve_zone(tz))
        if anchor is not None:
            self._bind(require_aware(anchor, "anchor"))

    def _set_zone(self, spec: str, zone: Any) -> None:
        self._tz_spec = spec
        self._rules = rules_for(spec, zone)

    def _bind(self, anchor: datetime) -> None:
        self._anchor = anchor
        self._anchor_u = utc_naive(anchor)
        if self._rules is None:
            self._set_zone(*zone_of(anchor))

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
        require_aware(after, "after")
        u = utc_naive(after)
        if self._anchor_u is None:
            # Bind in UTC: `after + every` on a ZoneInfo-aware `after` would be wall-clock
            # arithmetic and land an hour off across a DST change.
            if self._rules is None:
                self._set_zone(*zone_of(after))
            assert self._rules is not None
            self._bind(self._rules.localize(u + self._every))
        a = self._anchor_u
        rules = self._rules
        assert a is not None
        assert rules is not None
        k = 0 if u < a else ((u - a) // ONE_US) // self._every_us + 1
        try:
            return rules.localize(a + timedelta(microseconds=k * self._every_us))
        except OverflowError:
            return None

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
    tz: object = None,
) -> IntervalTrigger:
    """Every so much absolute time: ``interval(minutes=15, anchor=start)``."""
    parts = {"seconds": seconds, "minutes": minutes, "hours": hours, "days": days, "weeks": weeks}
    for name, value in parts.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise IntervalError(f"{name}={value!r} is not a number")
    try:
        every = timedelta(**parts)
    except (OverflowError, ValueError) as exc:
        raise IntervalError(f"interval {parts!r} is out of range: {exc}") from exc
    if every <= timedelta(0):
        given = {k: v for k, v in parts.items() if v} or {"seconds": 0}
        raise IntervalError(
            f"interval {given!r} is not positive; it must be at least 1 µs (e.g. minutes=15)"
        )
    return IntervalTrigger(every, anchor=anchor, tz=tz)
