"""Durations learned from the Log: estimates per item, the queue's ETA, and statistics.

Every ``queue.item_finished`` event carries the item's plan, kwargs, type and duration, so
what the queue knows about how long things take is read from the Log alone: at a restart
from the store, and live from the events the queue writes. An item's estimate is the median
of the recent successful runs of the same plan with the same kwargs; failing that, of the same
plan; failing that, of the same item type; failing that, unknown.

Signals are learned the same way: each ``queue.signal`` event carries the item's plan, kwargs
and type and its ``offset`` (seconds from the item's start), so the ETA and the dry run know
when an overlapping item is expected to let the next one start (`Durations.signal_offset`).
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from .._events import Event

__all__ = ["Durations", "PlanStats", "plan_stats"]

_encode = msgspec.json.Encoder(order="sorted").encode
#: How many recent durations each estimate looks at.
WINDOW: Final = 50


def kwargs_key(plan: str, kwargs: Any) -> str:
    """One key per plan and kwargs (sorted JSON: equal kwargs, equal key)."""
    try:
        return plan + "|" + _encode(kwargs).decode()
    except (TypeError, msgspec.EncodeError):
        return plan + "|?"


class Durations:
    """Recent successful durations by plan+kwargs, plan and item type."""

    def __init__(self) -> None:
        self._exact: dict[str, deque[float]] = {}
        self._plan: dict[str, deque[float]] = {}
        self._type: dict[str, deque[float]] = {}
        self._signals: dict[str, deque[float]] = {}  # "name\0" + one of the keys above

    def feed(self, event: Event) -> None:
        """Learn from one ``queue.item_finished`` or ``queue.signal`` event (others are
        ignored)."""
        p = event.payload
        if event.kind == "queue.signal":
            self._feed_signal(p)
            return
        if event.kind != "queue.item_finished" or p.get("status") != "succeeded":
            return
        duration = p.get("duration")
        plan = p.get("plan")
        if not isinstance(duration, int | float) or not isinstance(plan, str):
            return
        for table, key in zip((self._exact, self._plan, self._type),
                              _keys(plan, p.get("kwargs") or {}, p.get("item_type")),
                              strict=True):  # fmt: skip
            if key is not None:
                _push(table, key, float(duration))

    def _feed_signal(self, p: dict[str, Any]) -> None:
        offset, plan, name = p.get("offset"), p.get("plan"), p.get("name")
        if not isinstance(offset, int | float) or not isinstance(plan, str):
            return  # (a signal given outside an item, or recorded by an older version)
        item_type = p.get("item_type")
        for key in _keys(plan, p.get("kwargs") or {}, item_type):
            if key is not None:
                _push(self._signals, f"{name}\0{key}", float(offset))

    def estimate(self, plan: str, kwargs: dict[str, Any], item_type: str | None) -> float | None:
        """Seconds an item of this plan, kwargs and type is expected to take (None: unknown)."""
        for table, key in zip((self._exact, self._plan, self._type),
                              _keys(plan, kwargs, item_type), strict=True):  # fmt: skip
            if key is not None and table.get(key):
                return statistics.median(table[key])
        return None

    def signal_offset(
        self, name: str, plan: str, kwargs: dict[str, Any], item_type: str | None
    ) -> float | None:
        """Seconds from such an item's start to its signal `name` (median of recent ones, by
        plan and kwargs, else plan, else item type; None: unknown)."""
        for key in _keys(plan, kwargs, item_type):
            values = None if key is None else self._signals.get(f"{name}\0{key}")
            if values:
                return statistics.median(values)
        return None


def _keys(plan: str, kwargs: Any, item_type: object) -> tuple[str, str, str | None]:
    """The three keys an item is learned under: plan and kwargs, plan, item type. The type
    key is marked so that it never equals a plan's name."""
    kind = f"type:{item_type}" if isinstance(item_type, str) else None
    return kwargs_key(plan, kwargs), plan, kind


def _push(table: dict[str, deque[float]], key: str, value: float) -> None:
    values = table.get(key)
    if values is None:
        values = table[key] = deque(maxlen=WINDOW)
    values.append(value)


@dataclass(frozen=True, slots=True)
class PlanStats:
    """What the Log says about one plan's runs through the queue.

    Durations are of successful runs (None if there were none).
    """

    plan: str
    runs: int
    succeeded: int
    failed: int
    truncated: int
    aborted: int
    interrupted: int
    mean_s: float | None
    median_s: float | None
    min_s: float | None
    max_s: float | None


def plan_stats(events: Iterable[Event]) -> dict[str, PlanStats]:
    """Statistics per plan from ``queue.item_finished`` events."""
    counts: dict[str, dict[str, int]] = {}
    durations: dict[str, list[float]] = {}
    for event in events:
        if event.kind != "queue.item_finished":
            continue
        plan = str(event.payload.get("plan", ""))
        status = str(event.payload.get("status", ""))
        per = counts.setdefault(plan, {})
        per[status] = per.get(status, 0) + 1
        duration = event.payload.get("duration")
        if status == "succeeded" and isinstance(duration, int | float):
            durations.setdefault(plan, []).append(float(duration))
    out: dict[str, PlanStats] = {}
    for plan, per in sorted(counts.items()):
        d = durations.get(plan, [])
        out[plan] = PlanStats(
            plan=plan,
            runs=sum(per.values()),
            succeeded=per.get("succeeded", 0),
            failed=per.get("failed", 0),
            truncated=per.get("truncated", 0),
            aborted=per.get("aborted", 0),
            interrupted=per.get("interrupted", 0),
            mean_s=statistics.fmean(d) if d else None,
            median_s=statistics.median(d) if d else None,
            min_s=min(d) if d else None,
            max_s=max(d) if d else None,
        )
    return out
