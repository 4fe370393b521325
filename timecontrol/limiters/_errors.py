"""The limiters' exceptions; every one derives from `TimeControlError` via `LimiterError`.

`UnderTimeLimit` and `OverTimeLimit` are not bugs but outcomes a caller may want to handle
(retry later, tell the operator), so they carry the numbers that explain them. They keep those
numbers in ``args`` so that they survive pickling (e.g. when a worker process reports them).
"""

from __future__ import annotations

import math

from .._exceptions import TimeControlError

__all__ = [
    "LimiterConfigError",
    "LimiterError",
    "NotAsyncError",
    "OverTimeLimit",
    "SafetyActionError",
    "UnderTimeLimit",
    "WatchdogStateError",
]


def _s(seconds: float) -> str:
    """Seconds for a message: short, but never rounded to a misleading zero."""
    return f"{seconds:.6g} s"


class LimiterError(TimeControlError):
    """Base class of the errors raised by `Command` and `Control`."""


class LimiterConfigError(LimiterError, ValueError):
    """A limiter was given a value it cannot work with (a negative interval, a zero rate...)."""


class NotAsyncError(LimiterError, TypeError):
    """A plain (sync) callable was given where an ``async def`` coroutine function is needed."""


class WatchdogStateError(LimiterError, RuntimeError):
    """A `Control` was started while already running (one watchdog loop per Control)."""


class UnderTimeLimit(LimiterError):
    """A call came too soon after the previous one and the limiter's mode is ``"raise"``.

    The limited coroutine was not run.

    Attributes:
        limiter: the limiter's name.
        elapsed: seconds since the call (start or end) that the bound counts from; 0 when that
            call is still running.
        required: the bound, in seconds.
        retry_after: seconds from now until a call would be accepted, or None when it depends
            on a call that is still running.
    """

    def __init__(
        self, limiter: str, elapsed: float, required: float, retry_after: float | None
    ) -> None:
        super().__init__(limiter, elapsed, required, retry_after)
        self.limiter = limiter
        self.elapsed = elapsed
        self.required = required
        self.retry_after = retry_after

    def __str__(self) -> str:
        if self.retry_after is None:
            return (
                f"{self.limiter}: the previous call is still running, and the next may start "
                f"only {_s(self.required)} after it ends; the call was not made"
            )
        return (
            f"{self.limiter}: {_s(self.elapsed)} since the previous call, at least "
            f"{_s(self.required)} required (retry in {_s(self.retry_after)}); "
            "the call was not made"
        )


class OverTimeLimit(LimiterError):
    """A watchdog (`Control`) tripped since its last guarded call; this call was not run.

    Raised once per trip delivery: the call after this one runs normally (and feeds).

    Attributes:
        limiter: the watchdog's name.
        elapsed: seconds since the watchdog was last fed (or started).
        period: the watchdog's period, in seconds.
        trips: how many trips happened since the last one was delivered.
        deadline: the (loop) time of the latest missed deadline.
    """

    def __init__(
        self, limiter: str, elapsed: float, period: float, trips: int, deadline: float
    ) -> None:
        super().__init__(limiter, elapsed, period, trips, deadline)
        self.limiter = limiter
        self.elapsed = elapsed
        self.period = period
        self.trips = trips
        self.deadline = deadline

    def __str__(self) -> str:
        times = "once" if self.trips == 1 else f"{self.trips} times"
        return (
            f"{self.limiter}: not fed for {_s(self.elapsed)}, more than its period of "
            f"{_s(self.period)}; the watchdog tripped {times} and ran its safety action, "
            "so this call was not made"
        )


class SafetyActionError(LimiterError):
    """A watchdog's safety action raised; the original error is the ``__cause__``.

    It ends the watchdog (and, under ``async with control:``, the block): a safety action that
    fails must not fail quietly.
    """

    def __init__(self, limiter: str, action: str) -> None:
        super().__init__(limiter, action)
        self.limiter = limiter
        self.action = action

    def __str__(self) -> str:
        return (
            f"{self.limiter}: the safety action {self.action} raised (see the cause above); "
            "the instrument may not be in a safe state"
        )


def check_seconds(value: object, name: str, *, zero: bool) -> float:
    """`value` as float seconds, or `LimiterConfigError` naming it and what is accepted."""
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value >= 0 if zero else value > 0)
    )
    if not ok:
        bound = "a finite number >= 0" if zero else "a finite number > 0"
        raise LimiterConfigError(f"{name} must be {bound} (seconds), got {value!r}")
    return float(value)  # type: ignore[arg-type]
