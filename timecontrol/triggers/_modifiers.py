"""Modifiers that wrap any trigger: a start/end window, a maximum count, deterministic jitter.

Wrapping order matters and is explicit: ``cron(...).window(start, end).limit(10)`` counts the
first ten fire times inside the window; ``.jitter(30)`` applied last moves every fire time,
including ones near the window's end, by up to 30 s.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from timecontrol.triggers._errors import JitterError, WindowError
from timecontrol.triggers._protocol import TriggerBase, nesting_of, revive
from timecontrol.triggers._time import (
    LAST_INSTANT,
    ONE_US,
    dt_to_json,
    duration_us,
    format_duration,
    get_field,
    get_int,
    get_opt_dt,
    in_range,
    origin_from,
    require_instant,
    search_from,
    shown,
    spec_error,
    us_from_json,
    us_to_json,
    utc_naive,
)

__all__ = ["MAX_EXECUTIONS", "JitterTrigger", "LimitTrigger", "WindowTrigger"]

MAX_EXECUTIONS = 10**12
"""The largest `max_executions` accepted (more is "unlimited": do not wrap the trigger)."""


def _inner(d: dict[str, Any], kind: str) -> TriggerBase:
    raw = get_field(d, "trigger", kind)
    if not isinstance(raw, dict):
        spec_error(kind, "trigger", raw, "a trigger spec object")
    return revive(raw)


def _check_trigger(trigger: object, kind: str) -> tuple[TriggerBase, int]:
    """The wrapped trigger and the wrapper's nesting level."""
    if not isinstance(trigger, TriggerBase):
        raise WindowError(f"{kind}: {shown(trigger)} is not a trigger")
    return trigger, nesting_of((trigger,), kind)


class WindowTrigger(TriggerBase):
    """Only the fire times `t` of `trigger` with ``start <= t <= end`` (both inclusive)."""

    json_type = "window"
    json_keys = frozenset({"type", "trigger", "start", "end"})

    def __init__(
        self, trigger: TriggerBase, *, start: datetime | None = None, end: datetime | None = None
    ) -> None:
        self._trigger, self._nesting = _check_trigger(trigger, "window")
        if start is None and end is None:
            raise WindowError("window() needs a start, an end, or both")
        self._start = None if start is None else require_instant(start, "start")
        self._end = None if end is None else require_instant(end, "end")
        if self._start is not None and self._end is not None and self._end < self._start:
            raise WindowError(
                f"end={self._end.isoformat()} is before start={self._start.isoformat()}; a "
                f"window must end at or after its start"
            )
        # Bounds as naive UTC: arithmetic on a ZoneInfo-aware value is wall-clock arithmetic,
        # which is wrong by an hour across a DST change.
        self._start_u = None if self._start is None else utc_naive(self._start)
        self._end_u = None if self._end is None else utc_naive(self._end)

    @property
    def trigger(self) -> TriggerBase:
        """The wrapped trigger."""
        return self._trigger

    @property
    def is_bound(self) -> bool:
        """Whether the wrapped trigger is bound."""
        return self._trigger.is_bound

    def next(self, after: datetime) -> datetime | None:
        """The wrapped trigger's next fire time, if it lies inside the window."""
        u = search_from(after)
        if u is None:
            return None
        if not self._trigger.is_bound:
            self._trigger.next(after)  # an implicit origin binds to the caller's `after`
        query = after
        if self._start_u is not None and u < self._start_u:
            # Just before the start, so that a fire time at the start itself is found
            # (start_u > u >= the range's floor: the subtraction stays in datetime's range).
            query = (self._start_u - ONE_US).replace(tzinfo=UTC)
        t = self._trigger.next(query)
        if t is None or (self._end_u is not None and utc_naive(t) > self._end_u):
            return None
        return t

    def to_json(self) -> dict[str, Any]:
        """`{"type": "window", "trigger": {...}, "start": iso|None, "end": iso|None}`."""
        return {
            "type": "window",
            "trigger": self._trigger.to_json(),
            "start": None if self._start is None else dt_to_json(self._start),
            "end": None if self._end is None else dt_to_json(self._end),
        }

    @classmethod
    def _from_json(cls, d: dict[str, Any]) -> WindowTrigger:
        return cls(
            _inner(d, "window"),
            start=get_opt_dt(d, "start", "window"),
            end=get_opt_dt(d, "end", "window"),
        )

    def explain(self) -> str:
        """E.g. "daily at 09:00, UTC, from 2025-01-01 00:00:00+00:00 until ..."."""
        text = self._trigger.explain()
        if self._start is not None:
            text += f", from {self._start.isoformat(sep=' ')}"
        if self._end is not None:
            text += f", until {self._end.isoformat(sep=' ')}"
        return text


class LimitTrigger(TriggerBase):
    """At most `max_executions` fire times: the first ones of `trigger` after `origin`.

    The count is a pure function of the wrapped trigger and the origin, not a tally of calls:
    asking twice, previewing, or restarting from JSON never uses up an execution. The origin
    defaults to the `after` of the first `next()` call and is then written to JSON. A cursor
    (the last counted fire time) makes sequential calls O(1); it is a cache, rebuilt after a
    reload at a cost of at most `max_executions` calls of the wrapped trigger.
    """

    json_type = "limit"
    json_keys = frozenset({"type", "trigger", "max_executions", "origin"})

    def __init__(
        self, trigger: TriggerBase, max_executions: int, *, origin: datetime | None = None
    ) -> None:
        self._trigger, self._nesting = _check_trigger(trigger, "limit")
        if (
            isinstance(max_executions, bool)
            or not isinstance(max_executions, int)
            or not 1 <= max_executions <= MAX_EXECUTIONS
        ):
            raise WindowError(
                f"max_executions={shown(max_executions)} is not accepted; pass a whole number "
                f"from 1 to {MAX_EXECUTIONS:,} (to never fire, do not schedule the job)"
            )
        self._max = max_executions
        self._origin = None if origin is None else require_instant(origin, "origin")
        self._cursor: tuple[datetime, int, datetime | None] | None = None

    @property
    def trigger(self) -> TriggerBase:
        """The wrapped trigger."""
        return self._trigger

    @property
    def max_executions(self) -> int:
        """The maximum number of fire times."""
        return self._max

    @property
    def origin(self) -> datetime | None:
        """The instant the count starts from (None until bound)."""
        return self._origin

    @property
    def is_bound(self) -> bool:
        """False until the origin is given or bound by the first `next()`."""
        return self._origin is not None and self._trigger.is_bound

    def next(self, after: datetime) -> datetime | None:
        """The wrapped trigger's next fire time if it is one of the first `max_executions`."""
        u = search_from(after)
        if u is None:
            return None
        if self._origin is None:
            self._origin = origin_from(after, u)
        cursor = self._cursor
        if cursor is None or after < cursor[0]:
            # (t, k, peek): t is the k-th fire time after the origin (t = origin for k = 0),
            # peek is the (k+1)-th, or None when the wrapped trigger has no more.
            cursor = (self._origin, 0, self._trigger.next(self._origin))
        t, k, peek = cursor
        while peek is not None and peek <= after and k < self._max:
            t, k = peek, k + 1
            peek = self._trigger.next(t) if k < self._max else None
        self._cursor = (t, k, peek)
        if peek is None or k >= self._max:
            return None
        return peek

    def to_json(self) -> dict[str, Any]:
        """`{"type": "limit", "trigger": {...}, "max_executions": n, "origin": iso|None}`."""
        return {
            "type": "limit",
            "trigger": self._trigger.to_json(),
            "max_executions": self._max,
            "origin": None if self._origin is None else dt_to_json(self._origin),
        }

    @classmethod
    def _from_json(cls, d: dict[str, Any]) -> LimitTrigger:
        return cls(
            _inner(d, "limit"),
            get_int(d, "max_executions", "limit"),
            origin=get_opt_dt(d, "origin", "limit"),
        )

    def explain(self) -> str:
        """E.g. "daily at 09:00, UTC, at most 10 times (counted from ...)"."""
        origin = "the first call" if self._origin is None else self._origin.isoformat(sep=" ")
        times = "once" if self._max == 1 else f"{self._max} times"
        return f"{self._trigger.explain()}, at most {times} (counted from {origin})"


_MASK64 = (1 << 64) - 1
_EPOCH = datetime(1970, 1, 1)


def _mix64(x: int) -> int:
    """SplitMix64's finaliser: a fast, well-spread 64-bit hash of an integer."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


class JitterTrigger(TriggerBase):
    """Move each fire time of `trigger` by a deterministic pseudo-random amount.

    The amount is a hash of (`seed`, the undisturbed fire time), so it is the same on every
    call, in every process and after a reload from JSON: no random state exists to persist.
    By default the shift is a delay in ``[0, max_seconds)``; with ``symmetric=True`` it lies in
    ``[-max_seconds, +max_seconds)``. Keep `max_seconds` below half the trigger's spacing,
    or two jittered times may swap or coincide (coinciding ones then fire once).
    """

    json_type = "jitter"
    json_keys = frozenset({"type", "trigger", "max_seconds", "seed", "symmetric"})

    def __init__(
        self,
        trigger: TriggerBase,
        max_seconds: float | timedelta,
        *,
        seed: int = 0,
        symmetric: bool = False,
    ) -> None:
        self._trigger, self._nesting = _check_trigger(trigger, "jitter")
        self._max_us = duration_us(max_seconds, "max_seconds", JitterError, allow_zero=True)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
            raise JitterError(f"seed={shown(seed)} is not an integer in 0 ≤ seed < 2**63")
        if not isinstance(symmetric, bool):
            raise JitterError(f"symmetric={shown(symmetric)} is not True or False")
        self._seed = seed
        self._symmetric = symmetric
        self._reach = timedelta(microseconds=self._max_us)

    @property
    def trigger(self) -> TriggerBase:
        """The wrapped trigger."""
        return self._trigger

    @property
    def is_bound(self) -> bool:
        """Whether the wrapped trigger is bound."""
        return self._trigger.is_bound

    def shift(self, base: datetime) -> timedelta:
        """The jitter applied to the undisturbed fire time `base`."""
        return self._shift(utc_naive(require_instant(base, "base")))

    def _shift(self, bu: datetime) -> timedelta:
        key = (bu - _EPOCH) // ONE_US
        frac = _mix64(self._seed ^ (key & _MASK64)) / 2.0**64
        if self._symmetric:
            return timedelta(microseconds=int((2 * frac - 1) * self._max_us))
        return timedelta(microseconds=int(frac * self._max_us))

    def next(self, after: datetime) -> datetime | None:
        """The first jittered fire time strictly after `after`."""
        u = search_from(after)
        if u is None:
            return None
        if not self._trigger.is_bound:
            self._trigger.next(after)  # an implicit origin binds to the caller's `after`
        reach = self._reach
        # A base up to `reach` before `after` may still be jittered past it. Instants are
        # compared through timedeltas below, which cannot leave datetime's range.
        first = u - reach if reach < u - datetime.min else datetime.min
        base = self._trigger.next(first.replace(tzinfo=UTC))
        lead = reach if self._symmetric else timedelta(0)  # how far a shift moves earlier
        best_u: datetime | None = None
        best_off = timedelta(0)
        while base is not None:
            bu = utc_naive(base)
            if best_u is not None and bu - best_u >= lead:
                break  # every later base lands at or after the best found
            shift = self._shift(bu)
            if u - bu < shift <= LAST_INSTANT - bu and (best_u is None or bu + shift < best_u):
                off = base.utcoffset()
                assert off is not None
                best_u, best_off = bu + shift, off
            base = self._trigger.next(base)
        # Shown in the offset of the fire time it was derived from.
        return None if best_u is None else in_range(best_u, best_off)

    def to_json(self) -> dict[str, Any]:
        """`{"type": "jitter", "trigger": {...}, "max_seconds": s, "seed": n, "symmetric": b}`."""
        return {
            "type": "jitter",
            "trigger": self._trigger.to_json(),
            "max_seconds": us_to_json(self._max_us),
            "seed": self._seed,
            "symmetric": self._symmetric,
        }

    @classmethod
    def _from_json(cls, d: dict[str, Any]) -> JitterTrigger:
        max_us = us_from_json(get_field(d, "max_seconds", "jitter"), "max_seconds", "jitter")
        symmetric = d.get("symmetric", False)
        if not isinstance(symmetric, bool):
            spec_error("jitter", "symmetric", symmetric, "true or false")
        return cls(
            _inner(d, "jitter"),
            timedelta(microseconds=max_us),
            seed=get_int(d, "seed", "jitter"),
            symmetric=symmetric,
        )

    def explain(self) -> str:
        """E.g. "daily at 09:00, UTC, each delayed by up to 30 seconds (jitter seed 0)"."""
        amount = format_duration(self._max_us) if self._max_us else "0 s"
        how = "moved by up to ±" if self._symmetric else "delayed by up to "
        return f"{self._trigger.explain()}, each {how}{amount} (jitter seed {self._seed})"
