"""Combinations: the union (any child fires) and the intersection (all children fire).

Both compare instants, not wall times, so children in different zones combine correctly.
A union fires once at an instant several children share (it is deduplicated by construction:
`next(after)` is the smallest child fire time strictly after `after`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from timecontrol.triggers._errors import TriggerError
from timecontrol.triggers._protocol import TriggerBase, nesting_of, revive
from timecontrol.triggers._time import ONE_US, get_field, require_aware, shown, spec_error

__all__ = ["MAX_SEARCH_LIMIT", "IntersectionTrigger", "UnionTrigger", "intersection", "union"]

MAX_SEARCH_LIMIT = 1_000_000
"""The largest `search_limit` of an intersection: each step asks every child for a fire time,
so a million steps already take seconds; more would look like a hang."""


def _children(triggers: tuple[TriggerBase, ...], what: str) -> tuple[TriggerBase, ...]:
    if len(triggers) < 2:
        raise TriggerError(f"{what} needs at least two triggers, got {len(triggers)}")
    for t in triggers:
        if not isinstance(t, TriggerBase):
            raise TriggerError(f"{what}: {shown(t)} is not a trigger")
    return triggers


def _json_children(d: dict[str, Any], kind: str) -> list[TriggerBase]:
    raw = get_field(d, "triggers", kind)
    if not isinstance(raw, list):
        spec_error(kind, "triggers", raw, "a list of trigger specs")
    return [revive(x) for x in raw]


class UnionTrigger(TriggerBase):
    """Fire whenever any child fires; shared instants fire once. Also spelled ``a | b``."""

    json_type = "union"
    json_keys = frozenset({"type", "triggers"})

    def __init__(self, *triggers: TriggerBase) -> None:
        flat: list[TriggerBase] = []
        for t in _children(triggers, "union"):
            # (a | b) | c is one union of three: flatter JSON, fewer calls.
            flat.extend(t.children if isinstance(t, UnionTrigger) else (t,))
        self._nesting = nesting_of(tuple(flat), "union")
        self._children = tuple(flat)

    @property
    def children(self) -> tuple[TriggerBase, ...]:
        """The combined triggers."""
        return self._children

    @property
    def is_bound(self) -> bool:
        """True when every child is bound."""
        return all(c.is_bound for c in self._children)

    def next(self, after: datetime) -> datetime | None:
        """The earliest child fire time strictly after `after`."""
        require_aware(after, "after")
        best: datetime | None = None
        for child in self._children:
            t = child.next(after)
            if t is not None and (best is None or t < best):
                best = t
        return best

    def to_json(self) -> dict[str, Any]:
        """`{"type": "union", "triggers": [...]}`."""
        return {"type": "union", "triggers": [c.to_json() for c in self._children]}

    @classmethod
    def _from_json(cls, d: dict[str, Any]) -> UnionTrigger:
        return cls(*_json_children(d, "union"))

    def explain(self) -> str:
        """E.g. "either (daily at 09:00, UTC) or (on Mondays at 17:00, UTC)"."""
        return "either " + " or ".join(f"({c.explain()})" for c in self._children)


class IntersectionTrigger(TriggerBase):
    """Fire only at instants at which every child fires. Also spelled ``a & b``.

    The search alternates between children, each time jumping to the latest candidate. If
    the children share no instant within `search_limit` such jumps, the intersection counts
    as exhausted and `next` returns None (two triggers that never coincide would otherwise
    search forever).
    """

    json_type = "intersection"
    json_keys = frozenset({"type", "triggers", "search_limit"})

    def __init__(self, *triggers: TriggerBase, search_limit: int = 10_000) -> None:
        flat: list[TriggerBase] = []
        for t in _children(triggers, "intersection"):
            flat.extend(t.children if isinstance(t, IntersectionTrigger) else (t,))
        if (
            isinstance(search_limit, bool)
            or not isinstance(search_limit, int)
            or not 1 <= search_limit <= MAX_SEARCH_LIMIT
        ):
            raise TriggerError(
                f"search_limit={shown(search_limit)} is not accepted; pass a whole number "
                f"from 1 to {MAX_SEARCH_LIMIT:,}"
            )
        self._nesting = nesting_of(tuple(flat), "intersection")
        self._children = tuple(flat)
        self._limit = search_limit

    @property
    def children(self) -> tuple[TriggerBase, ...]:
        """The combined triggers."""
        return self._children

    @property
    def is_bound(self) -> bool:
        """True when every child is bound."""
        return all(c.is_bound for c in self._children)

    def next(self, after: datetime) -> datetime | None:
        """The first instant strictly after `after` at which every child fires."""
        require_aware(after, "after")
        firsts = [c.next(after) for c in self._children]
        if any(t is None for t in firsts):
            return None
        t = max(t for t in firsts if t is not None)
        for _ in range(self._limit):
            for child in self._children:
                # First fire time at or after t (fire times have µs resolution).
                x = child.next(t.astimezone(UTC) - ONE_US)
                if x is None:
                    return None
                if x != t:
                    t = x
                    break
            else:
                return t
        return None

    def to_json(self) -> dict[str, Any]:
        """`{"type": "intersection", "triggers": [...], "search_limit": n}`."""
        return {
            "type": "intersection",
            "triggers": [c.to_json() for c in self._children],
            "search_limit": self._limit,
        }

    @classmethod
    def _from_json(cls, d: dict[str, Any]) -> IntersectionTrigger:
        limit = d.get("search_limit", 10_000)
        return cls(*_json_children(d, "intersection"), search_limit=limit)

    def explain(self) -> str:
        """E.g. "when all of: (every 15 minutes, UTC) and (on Mondays at 09:00, UTC)"."""
        return "when all of: " + " and ".join(f"({c.explain()})" for c in self._children)


def union(*triggers: TriggerBase) -> UnionTrigger:
    """Fire whenever any of `triggers` fires (shared instants once): ``union(a, b)``."""
    return UnionTrigger(*triggers)


def intersection(*triggers: TriggerBase, search_limit: int = 10_000) -> IntersectionTrigger:
    """Fire only when all of `triggers` fire at the same instant."""
    return IntersectionTrigger(*triggers, search_limit=search_limit)
