"""Durations learned from the Log: estimates per item, the queue's ETA, and statistics.

Every ``queue.item_finished`` event carries the item's plan, kwargs, type and duration, so
what the queue knows about how long things take is read from the Log alone: at a restart
from the store, and live from the events the queue writes. An item's estimate is the median
of the recent successful runs of the same plan with the same kwargs; failing that, of the same
plan; failing that, of the same item type; failing that, unknown.
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

    def feed(self, event: Event) -> None:
        """Learn from one ``queue.item_finished`` event (others are ignored)."""
        p = event.payload
        if event.kind != "queue.item_finished" or p.get("status") != "succeeded":
            return
        duration = p.get("duration")
        plan = p.get("plan")
        if not isinstance(duration, int | float) or not isinstance(plan, str):
            return
        _push(self._exact, kwargs_key(plan, p.get("kwargs") or {}), float(duration))
        _push(self._plan, plan, float(duration))
        item_type = p.get("item_type")
        if isinstance(item_type, str):
            _push(self._type, item_type, float(duration))

    def estimate(self, plan: str, kwargs: dict[str, Any], item_type: str | None) -> float | None:
        """Seconds an item of this plan, kwargs and type is expected to take (None: unknown)."""
        for table, key in (
            (self._exact, kwargs_key(plan, kwargs)),
            (self._plan, plan),
            (self._type, item_type),
        ):
            if key is not None and table.get(key):
                return statistics.median(table[key])
        return None


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
