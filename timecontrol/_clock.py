"""Time, in one place.

Core code never calls `time.*` or `datetime.now()`: it asks a `Clock`. Two kinds of time
matter to a lab:

* **monotonic** time is the running event loop's own clock (`anyio.current_time()`). It never
  jumps, so rate limits, timeouts and watchdogs use it.
* **wall** time is what a calendar says (an aware UTC `datetime`, or POSIX seconds as a float
  on hot paths). Cron jobs, daily schedules and the Log's timestamps use it.

The two drift apart when the operating system steps its wall clock (an NTP correction, a
manual `date -s`). `Clock.sleep_until_wall` is how wall-clock work waits, and it re-anchors:
it never trusts a conversion computed before it went to sleep. It sleeps on the monotonic clock
for at most `recheck` seconds at a time (or until the clock reports a step), re-reads wall time
and returns only once wall time has reached the target. So a step *backwards* never fires work
early (the target is compared with the stepped wall time), and a step *forwards* never loses it
(the target is already past on the next check, so it fires at most `recheck` seconds late).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar, runtime_checkable

import anyio
import anyio.to_thread

from ._exceptions import ClockError, NaiveDatetimeError

__all__ = [
    "Clock",
    "SystemClock",
    "current_clock",
    "ensure_aware",
    "reset_clock",
    "run_in_thread",
    "to_timestamp",
    "use_clock",
]


def ensure_aware(value: datetime, name: str = "datetime") -> datetime:
    """Return `value` unchanged if it is timezone-aware; raise `NaiveDatetimeError` otherwise."""
    if not isinstance(value, datetime):
        raise NaiveDatetimeError(
            f"{name} must be an aware datetime.datetime, got {value!r} ({type(value).__name__})"
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetimeError(
            f"{name} {value.isoformat()} is naive; give it a time zone, e.g. "
            f"{value.replace(tzinfo=UTC).isoformat()} or "
            f"value.replace(tzinfo=zoneinfo.ZoneInfo('Europe/Berlin'))"
        )
    return value


def to_timestamp(value: datetime | float, name: str = "time") -> float:
    """POSIX seconds (UTC) from an aware datetime or a float that already is one."""
    if isinstance(value, datetime):
        return ensure_aware(value, name).timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise NaiveDatetimeError(
        f"{name} must be an aware datetime or POSIX seconds as a finite float, got {value!r}"
    )


@runtime_checkable
class Clock(Protocol):
    """Where timecontrol reads and waits for time.

    Implementations: `SystemClock` (the operating system's clocks) and
    `timecontrol.testing.VirtualClock` (virtual time that jumps whenever every task is idle).
    """

    def monotonic(self) -> float:
        """The running event loop's monotonic time, in seconds."""
        ...

    def time(self) -> float:
        """Wall time as POSIX seconds (UTC). Cheap: used to stamp every event."""
        ...

    def now(self) -> datetime:
        """Wall time as an aware UTC datetime."""
        ...

    def to_wall(self, monotonic: float) -> datetime:
        """The wall time that corresponds, as of now, to a monotonic instant."""
        ...

    def to_monotonic(self, wall: datetime | float) -> float:
        """The monotonic instant that corresponds, as of now, to a wall time."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until the monotonic clock reaches `deadline`."""
        ...

    async def sleep_until_wall(self, wall: datetime | float) -> None:
        """Sleep until wall time reaches `wall`; robust to wall-clock steps (see module doc)."""
        ...

    def hold_jumps(self) -> contextlib.AbstractContextManager[None]:
        """A context in which virtual time does not jump (for waits on threads); real clocks:
        a no-op."""
        ...


class _ClockBase:
    """Shared logic: conversions and the re-anchoring wall-clock sleep."""

    #: Longest monotonic sleep between two wall-clock readings in `sleep_until_wall`.
    recheck: float

    def __init__(self, recheck: float) -> None:
        if not (recheck > 0):
            raise ValueError(f"recheck must be a positive number of seconds, got {recheck!r}")
        self.recheck = recheck
        # Clocks that *know* when their wall time steps (the virtual clock) wake the sleepers
        # registered here, so that they re-check at once instead of at their next `recheck`.
        # One event per sleeper, created in the sleeper's own loop: one clock (the shared
        # `SystemClock`) serves every event loop, one after another or in other threads.
        self._step_waiters: set[anyio.Event] = set()
        self._step_listeners: list[Callable[[], None]] = []

    def monotonic(self) -> float:
        """The running event loop's monotonic time, in seconds."""
        # Every event is stamped with this, so asyncio (the common case) takes a direct,
        # sub-microsecond path; anyio resolves the backend (trio) otherwise.
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            pass
        try:
            return anyio.current_time()
        except Exception as exc:  # sniffio raises its own error outside a loop
            raise ClockError(
                "monotonic time is the running event loop's clock; call it from inside "
                "an async context (anyio.run, asyncio.run, trio.run)"
            ) from exc

    def time(self) -> float:
        """Wall time as POSIX seconds (UTC)."""
        raise NotImplementedError

    def now(self) -> datetime:
        """Wall time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.time(), UTC)

    def to_wall(self, monotonic: float) -> datetime:
        """The wall time that corresponds, as of now, to a monotonic instant."""
        return datetime.fromtimestamp(self.time() - self.monotonic() + monotonic, UTC)

    def to_monotonic(self, wall: datetime | float) -> float:
        """The monotonic instant that corresponds, as of now, to a wall time."""
        return to_timestamp(wall, "wall") - self.time() + self.monotonic()

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until the monotonic clock reaches `deadline`."""
        await anyio.sleep_until(deadline)

    async def sleep_until_wall(self, wall: datetime | float) -> None:
        """Sleep until wall time reaches `wall`, re-anchoring after wall-clock steps."""
        target = to_timestamp(wall, "wall")
        while True:
            remaining = target - self.time()
            if remaining <= 0:
                return
            stepped = anyio.Event()
            self._step_waiters.add(stepped)
            try:
                with anyio.move_on_after(min(remaining, self.recheck)):
                    await stepped.wait()
            finally:
                self._step_waiters.discard(stepped)

    def hold_jumps(self) -> contextlib.AbstractContextManager[None]:
        """Keep virtual time still while waiting on a thread (a no-op on real clocks)."""
        return contextlib.nullcontext()

    def add_step_listener(self, callback: Callable[[], None]) -> None:
        """Call `callback()` (on the loop) whenever this clock knows its wall time stepped."""
        self._step_listeners.append(callback)

    def remove_step_listener(self, callback: Callable[[], None]) -> None:
        """Undo `add_step_listener` (no error if it was not added)."""
        if callback in self._step_listeners:
            self._step_listeners.remove(callback)

    def _notify_step(self) -> None:
        """Wake every `sleep_until_wall` so that it re-reads the (stepped) wall time."""
        for callback in list(self._step_listeners):
            callback()
        waiters, self._step_waiters = self._step_waiters, set()
        for stepped in waiters:
            stepped.set()


class SystemClock(_ClockBase):
    """The operating system's clocks: the loop's monotonic time and `time.time()` for wall time.

    `recheck` (default 1 s) bounds how late wall-clock work can fire after the system clock is
    stepped forwards; a step backwards never makes it fire early.
    """

    def __init__(self, recheck: float = 1.0) -> None:
        super().__init__(recheck)

    def time(self) -> float:
        """Wall time as POSIX seconds (UTC), from the operating system."""
        return time.time()

    def monotonic(self) -> float:
        """The running loop's monotonic time; outside any loop, the OS monotonic clock.

        Outside a loop (a job added at import time, before ``async with engine``) this is
        `time.monotonic()`, which is also what asyncio's loop reads.
        """
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            pass
        try:
            return anyio.current_time()
        except Exception:  # no async library running at all
            return time.monotonic()

    def __repr__(self) -> str:
        return f"SystemClock(recheck={self.recheck})"


T = TypeVar("T")

_SYSTEM = SystemClock()
_current: contextvars.ContextVar[Clock] = contextvars.ContextVar("timecontrol_clock")


def current_clock() -> Clock:
    """The clock in force here: a virtual clock under `timecontrol.testing`, else the system's.

    Engines, limiters and logs created without an explicit clock use this, so that code under
    test runs on virtual time without being told.
    """
    return _current.get(_SYSTEM)


def use_clock(clock: Clock) -> contextvars.Token[Clock]:
    """Make `clock` the current clock for this context (and tasks started from it)."""
    return _current.set(clock)


def reset_clock(token: contextvars.Token[Clock]) -> None:
    """Undo a `use_clock`."""
    _current.reset(token)


async def run_in_thread(fn: Callable[..., T], *args: Any, abandon_on_cancel: bool = False) -> T:
    """``anyio.to_thread.run_sync`` that holds virtual time still while the thread works.

    Under a real clock this is exactly ``anyio.to_thread.run_sync``; under a `VirtualClock` it
    keeps a flush or a query from letting hours of virtual time pass.
    """
    with current_clock().hold_jumps():
        return await anyio.to_thread.run_sync(fn, *args, abandon_on_cancel=abandon_on_cancel)
