"""What every trigger is: the `Trigger` protocol, the shared `TriggerBase`, and JSON revival.

A trigger answers one question, *when next?*, purely: `next(after)` reads no clock and does no
I/O; the caller passes the instant to search from. The scheduler calls it with the previous
fire time (or "now" for a new job) and persists `to_json()`; `trigger_from_json()` gives back an
equal trigger that continues exactly where the old one stood.

**State.** Most triggers are plain values. Three kinds of "where am I" live in the trigger and
therefore in its JSON, so that a persisted schedule resumes exactly:

* an *origin* that was not given explicitly (a time-point sequence's start, an interval's
  anchor, the instant `max_executions` counts from) is bound by the first call of `next()`
  to that call's `after` — also when the trigger is wrapped or combined — and written to JSON
  from then on. This is the only mutation a trigger ever performs, and `preview()` never
  causes it (it works on a copy);
* time points inserted into a running sequence are part of the value: inserting returns a new
  `TimePoints` (hand it to the scheduler to replace the old one), and its JSON lists them;
* `max_executions` is counted, not remembered: the trigger yields the first *n* fire times of
  the wrapped trigger after its origin, so the JSON needs only the origin and *n*.

**Nesting** (a window around a union of limits ...) is bounded: at most `MAX_NESTING` levels,
in code and in JSON alike, so that no call can exhaust Python's recursion limit. A JSON
document is measured without recursion before anything is built from it.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from timecontrol.triggers._errors import TriggerError, TriggerSpecError
from timecontrol.triggers._time import require_aware, shown

if TYPE_CHECKING:
    from typing import Self

    from timecontrol.triggers._combine import IntersectionTrigger, UnionTrigger
    from timecontrol.triggers._modifiers import JitterTrigger, LimitTrigger, WindowTrigger

__all__ = ["MAX_NESTING", "Trigger", "TriggerBase", "nesting_of", "revive", "trigger_from_json"]

MAX_NESTING = 32
"""The deepest nesting of triggers accepted (a plain trigger is one level, a window around it
two, ...), in code and in JSON."""
# A JSON trigger level is at most a dict and a list ("triggers": [...]), plus a leaf's own
# lists (timepoints blocks): deeper containers cannot be a valid document.
_MAX_CONTAINERS = 2 * MAX_NESTING + 2


@runtime_checkable
class Trigger(Protocol):
    """The interface the scheduler relies on; `TriggerBase` implements it for every family."""

    def next(self, after: datetime) -> datetime | None:
        """The first fire time strictly after aware `after`, or None when there is none."""
        ...

    def preview(self, n: int, after: datetime) -> list[datetime]:
        """Up to `n` successive fire times after `after`, without changing the trigger."""
        ...

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON state (with a "type" key) from which `trigger_from_json` rebuilds it."""
        ...

    def explain(self) -> str:
        """One line of plain English saying when the trigger fires."""
        ...


_REGISTRY: dict[str, type[TriggerBase]] = {}


class TriggerBase(ABC):
    """Shared behaviour: preview, equality by state, combinators and JSON registration.

    A subclass sets the class attribute `json_type` (the "type" written to JSON), ideally
    `json_keys`, and implements `next`, `to_json`, `explain` and the classmethod `_from_json`;
    it is then revived by `trigger_from_json` automatically.
    """

    json_type: ClassVar[str]
    json_keys: ClassVar[frozenset[str] | None] = None
    """The keys `to_json` may write; `trigger_from_json` refuses any other (None: no check)."""
    _nesting: int = 1  # levels of triggers in this one (see MAX_NESTING); wrappers add one

    # Triggers compare by state, and lazily bound origins make that state change once:
    # a hash would change with it, so triggers are deliberately unhashable.
    __hash__ = None  # type: ignore[assignment]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("json_type")
        if name is not None:
            if name in _REGISTRY and _REGISTRY[name] is not cls:
                raise TypeError(f"trigger json_type {name!r} is already used by {_REGISTRY[name]}")
            _REGISTRY[name] = cls

    @abstractmethod
    def next(self, after: datetime) -> datetime | None:
        """The first fire time strictly after aware `after`, or None when there is none."""

    @abstractmethod
    def to_json(self) -> dict[str, Any]:
        """Plain-JSON state (with a "type" key) from which `trigger_from_json` rebuilds it."""

    @abstractmethod
    def explain(self) -> str:
        """One line of plain English saying when the trigger fires."""

    @classmethod
    @abstractmethod
    def _from_json(cls, d: dict[str, Any]) -> Self:
        """Rebuild from `to_json()` output (the "type" key is already checked)."""

    @property
    def is_bound(self) -> bool:
        """False while an implicit origin still waits for the first `next()` call."""
        return True

    def preview(self, n: int, after: datetime) -> list[datetime]:
        """Up to `n` successive fire times after `after`.

        Never binds an unbound origin: previewing a sequence before adding it to a scheduler
        must not start the sequence, so the search runs on a copy in that case.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise TriggerError(f"preview n={shown(n)} is not a count; pass an int ≥ 0")
        require_aware(after, "after")
        trigger: TriggerBase = self if self.is_bound else copy.deepcopy(self)
        out: list[datetime] = []
        t: datetime | None = after
        while len(out) < n:
            assert t is not None
            t = trigger.next(t)
            if t is None:
                break
            out.append(t)
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TriggerBase):
            return NotImplemented
        return type(self) is type(other) and self.to_json() == other.to_json()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.explain()}>"

    # ------------------------------------------------------------------ combinators

    def __or__(self, other: TriggerBase) -> UnionTrigger:
        """`a | b`: fire whenever either fires (an instant both share fires once)."""
        from timecontrol.triggers._combine import UnionTrigger

        if not isinstance(other, TriggerBase):
            return NotImplemented
        return UnionTrigger(self, other)

    def __and__(self, other: TriggerBase) -> IntersectionTrigger:
        """`a & b`: fire only at instants at which both fire."""
        from timecontrol.triggers._combine import IntersectionTrigger

        if not isinstance(other, TriggerBase):
            return NotImplemented
        return IntersectionTrigger(self, other)

    def window(self, start: datetime | None = None, end: datetime | None = None) -> WindowTrigger:
        """Only fire times with ``start <= t <= end`` (either bound may be omitted)."""
        from timecontrol.triggers._modifiers import WindowTrigger

        return WindowTrigger(self, start=start, end=end)

    def limit(self, max_executions: int, *, origin: datetime | None = None) -> LimitTrigger:
        """At most `max_executions` fire times, counted from `origin` (default: first `next`)."""
        from timecontrol.triggers._modifiers import LimitTrigger

        return LimitTrigger(self, max_executions, origin=origin)

    def jitter(
        self, max_seconds: float | timedelta, *, seed: int = 0, symmetric: bool = False
    ) -> JitterTrigger:
        """Shift each fire time by a deterministic pseudo-random amount (see `JitterTrigger`)."""
        from timecontrol.triggers._modifiers import JitterTrigger

        return JitterTrigger(self, max_seconds, seed=seed, symmetric=symmetric)


def nesting_of(children: tuple[TriggerBase, ...], what: str) -> int:
    """The nesting level of a trigger built around `children`; refused beyond `MAX_NESTING`."""
    level = 1 + max(c._nesting for c in children)
    if level > MAX_NESTING:
        raise TriggerError(
            f"{what}(...) would nest triggers {level} levels deep; at most {MAX_NESTING} "
            f"levels are accepted (a plain trigger is one level, each wrapper adds one)"
        )
    return level


def trigger_from_json(d: dict[str, Any]) -> TriggerBase:
    """Rebuild a trigger from `to_json()` output; the result compares equal to the original.

    Anything else raises a `TriggerError` (mostly `TriggerSpecError`): a wrong type, an unknown
    key, a bad value, or nesting deeper than `MAX_NESTING` levels.
    """
    _check_depth(d)
    return revive(d)


def revive(d: object) -> TriggerBase:
    """`trigger_from_json` for a part of a document whose depth is already checked."""
    if not isinstance(d, dict):
        raise TriggerSpecError(f"trigger spec {shown(d)} is not a JSON object (dict)")
    kind = d.get("type")
    cls = _REGISTRY.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise TriggerSpecError(
            f"trigger spec type {shown(kind)} is not known; known types: "
            f"{', '.join(sorted(_REGISTRY))}"
        )
    keys = cls.json_keys
    unknown = [] if keys is None else [k for k in d if k not in keys]
    if unknown:
        raise TriggerSpecError(
            f"trigger spec of type {kind!r} has unknown keys "
            f"{', '.join(sorted(shown(k) for k in unknown)[:8])}; "
            f"accepted keys: {', '.join(sorted(keys or ()))}"
        )
    return cls._from_json(d)


def _check_depth(doc: object) -> None:
    """Refuse a document nested deeper than a valid one can be, without recursing into it."""
    stack: list[tuple[object, int, int]] = [(doc, 1, 1)]  # (node, containers, dicts) deep
    while stack:
        node, containers, dicts = stack.pop()
        if dicts > MAX_NESTING or containers > _MAX_CONTAINERS:
            raise TriggerSpecError(
                f"trigger spec nests deeper than {MAX_NESTING} trigger levels (or "
                f"{_MAX_CONTAINERS} JSON objects and lists); at most {MAX_NESTING} levels of "
                f"triggers are accepted"
            )
        if isinstance(node, dict):
            children: list[object] = list(node.values())
        elif isinstance(node, list):
            children = node
        else:
            continue
        for child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, containers + 1, dicts + isinstance(child, dict)))
