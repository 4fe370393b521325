"""Snapshots of what a limiter has done: plain frozen records, cheap to take and to compare."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["CommandStatistics", "ControlStatistics", "Trip"]


@dataclass(frozen=True, slots=True)
class CommandStatistics:
    """What a `Command` has done since it was created (`Command.statistics()`).

    Attributes:
        name: the limiter's name (the subject of its events).
        calls: calls that started (with or without waiting).
        throttled: calls among them that had to wait for their turn first.
        rejected: calls refused with `UnderTimeLimit` (mode ``"raise"``); never run.
        cancelled: callers cancelled while waiting; they gave their place back and never ran.
        total_wait: seconds spent waiting, summed over the throttled calls.
        longest_wait: the longest single wait, in seconds.
        waiting: callers waiting right now.
    """

    name: str
    calls: int
    throttled: int
    rejected: int
    cancelled: int
    total_wait: float
    longest_wait: float
    waiting: int

    @property
    def mean_wait(self) -> float:
        """Mean wait of the throttled calls, in seconds (0 when none waited)."""
        return self.total_wait / self.throttled if self.throttled else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ControlStatistics:
    """What a `Control` (watchdog) has done since it was created (`Control.statistics()`).

    Attributes:
        name: the watchdog's name (the subject of its events).
        calls: guarded calls that ran (each one fed the watchdog).
        feeds: feeds of any kind: guarded calls, `feed()` and `guarded()` blocks.
        rejected: guarded calls refused with `OverTimeLimit` after a trip.
        trips: missed deadlines (each ran the safety action once).
        running: whether the watchdog loop is running now.
        last_feed: loop time of the latest feed (or start), None before either.
        longest_gap: the longest time between two feeds (or start and a feed) while running.
        deadline: loop time of the next deadline while running, else None.
    """

    name: str
    calls: int
    feeds: int
    rejected: int
    trips: int
    running: bool
    last_feed: float | None
    longest_gap: float
    deadline: float | None

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Trip:
    """One missed deadline of a `Control`.

    Attributes:
        number: 1 for the watchdog's first trip, then 2, 3, ...
        deadline: loop time at which the watchdog should have been fed at the latest.
        at: loop time at which the trip was handled (equal to `deadline` under virtual time).
        late: ``at - deadline``, in seconds.
        since_feed: seconds between the last feed (or start) and `at`.
        period: the watchdog's period, in seconds.
    """

    number: int
    deadline: float
    at: float
    late: float
    since_feed: float
    period: float

    def as_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return asdict(self)
