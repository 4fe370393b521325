"""Delays between items: interruptible, pausable, with a remaining time that can change.

A `Delay` waits on the Clock (virtual in tests) until its deadline. `skip` ends it now,
`set_remaining` moves its deadline, `pause` freezes what is left and `resume` starts the rest
counting again. Every change wakes the waiter, which re-reads the deadline, so a change made
from any task takes effect at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import anyio

from .._clock import Clock

__all__ = ["Delay", "check_seconds"]


def check_seconds(value: object, what: str, error: Callable[[str], Exception]) -> float:
    """`value` as finite seconds >= 0, or the error made by `error(message)`."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise error(f"{what} must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


class Delay:
    """One delay of `seconds` on `clock`; `wait` returns how it ended.

    How it ends: ``"elapsed"`` (its time ran out) or ``"skipped"`` (`skip`, or a stop).
    """

    def __init__(self, clock: Clock, seconds: float, reason: str) -> None:
        self.clock = clock
        self.seconds = seconds
        self.reason = reason
        self._deadline = clock.monotonic() + seconds
        self._frozen: float | None = None  # what was left when paused (None: counting)
        self._ended: str | None = None
        self._wake: anyio.Event | None = None
        self._scope: anyio.CancelScope | None = None

    @property
    def remaining(self) -> float:
        """Seconds left (frozen while paused)."""
        if self._ended is not None:
            return 0.0
        if self._frozen is not None:
            return self._frozen
        return max(0.0, self._deadline - self.clock.monotonic())

    @property
    def paused(self) -> bool:
        """True while paused."""
        return self._frozen is not None

    def _poke(self) -> None:
        wake, self._wake = self._wake, None
        if wake is not None:
            wake.set()
        if self._scope is not None:
            self._scope.cancel()

    def skip(self, how: str = "skipped") -> None:
        """End the delay now (the waiter returns `how`)."""
        if self._ended is None:
            self._ended = how
        self._poke()

    def set_remaining(self, seconds: float) -> None:
        """Make `seconds` the time left (0 ends it at once; paused: what is left on resume)."""
        if self._frozen is not None:
            self._frozen = seconds
        else:
            self._deadline = self.clock.monotonic() + seconds
        self._poke()

    def pause(self) -> None:
        """Freeze what is left until `resume`."""
        if self._frozen is None and self._ended is None:
            self._frozen = self.remaining
            self._poke()

    def resume(self) -> None:
        """Count down what was left when paused."""
        if self._frozen is not None:
            self._deadline = self.clock.monotonic() + self._frozen
            self._frozen = None
            self._poke()

    async def wait(self) -> str:
        """Wait until the delay is over; returns ``"elapsed"`` or how it was ended."""
        while self._ended is None:
            if self._frozen is not None:
                wake = self._wake = anyio.Event()
                await wake.wait()
                continue
            deadline = self._deadline
            if deadline <= self.clock.monotonic():
                self._ended = "elapsed"
                break
            # A poke cancels this sleep, so that a new deadline (or a pause) is read at once.
            with anyio.CancelScope() as scope:
                self._scope = scope
                await self.clock.sleep_until(deadline)
            self._scope = None
        return self._ended
