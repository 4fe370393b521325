"""Conditionals: expressions over an item's run documents that act on the queue.

``queue.add_conditional("det > 5000 and seq_num >= 3", "truncate", start=2, frequency=1,
ntrips=2)`` watches the event documents of every running item (or of some plans, item types
or queues), each item on its own documents with its own counters (`ItemWatch`: the item in
front and an overlapping one): from the `start`-th event on, every `frequency`-th event, the
expression is evaluated on the event's data; when it has held `ntrips` times, the action is
taken once for that item and recorded (``queue.conditional_fired``).

Definitions are data: recorded as ``queue.conditional`` events and folded into the queue's
model, from which `Conditionals.sync` compiles them, so they come back after a restart.
Trip counters are per item run and are not kept (an interrupted item runs again from its
start, and its documents are counted afresh).

Expressions are parsed with Python's own parser (`ast`, ``mode="eval"``) and evaluated by a
small interpreter of an allow-list of node types: names (the event's data keys, plus
``seq_num``, ``events`` and ``elapsed``), numbers, strings, ``True``/``False``/``None``,
arithmetic, comparisons (chained too), ``and``/``or``/``not``, ``data["a key"]`` for keys
that are not identifiers, and the functions ``abs``, ``min``, ``max``, ``round``. Nothing
else parses: no attribute access, no other calls, no comprehension, no lambda. It is never
``eval``-ed. A name that the event does not have makes the expression false (not an error).
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from ._errors import QueueArgumentError
from ._items import ItemRecord

__all__ = ["ACTIONS", "Conditional", "Conditionals", "Expression", "ItemWatch"]

#: What a conditional may do when it fires.
ACTIONS: Final = ("truncate", "abort", "cancel", "pause", "skip_next", "repeat", "insert")

_BINARY: Final[dict[type, Callable[[Any, Any], Any]]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_COMPARE: Final[dict[type, Callable[[Any, Any], Any]]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_FUNCTIONS: Final[dict[str, Callable[..., Any]]] = {
    "abs": abs,
    "min": min,
    "max": max,
    "round": round,
}
_MAX_LENGTH: Final = 1_000


class _Missing(Exception):
    """A name the event does not have: the expression is false."""


class Expression:
    """A parsed, checked expression (see the module docstring)."""

    def __init__(self, text: str) -> None:
        if not isinstance(text, str) or not text.strip() or len(text) > _MAX_LENGTH:
            raise QueueArgumentError(
                f"a condition must be a non-empty str of at most {_MAX_LENGTH} characters, "
                f"got {text!r:.100}"
            )
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as exc:
            raise QueueArgumentError(f"condition {text!r} does not parse: {exc.msg}") from None
        for node in ast.walk(tree):
            _check_node(node, text)
        self.text = text
        self._body = tree.body

    def __call__(self, names: Mapping[str, Any]) -> bool:
        """The expression's truth for these names (False if one is missing or a value does
        not support an operation, e.g. a str compared to a number)."""
        try:
            return bool(_eval(self._body, names))
        except (_Missing, TypeError, ValueError, ZeroDivisionError, OverflowError):
            return False

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"


_ALLOWED: Final = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd,
    ast.BinOp, ast.Compare, ast.Name, ast.Load, ast.Constant, ast.Call, ast.Subscript,
    *_BINARY, *_COMPARE,
)  # fmt: skip


def _check_node(node: ast.AST, text: str) -> None:
    if not isinstance(node, _ALLOWED):
        raise QueueArgumentError(
            f"condition {text!r} uses {type(node).__name__}, which conditions do not allow; "
            "allowed: names, numbers, strings, arithmetic, comparisons, and/or/not, "
            "data['key'], abs/min/max/round"
        )
    if isinstance(node, ast.Constant) and not isinstance(
        node.value, int | float | str | bool | type(None)
    ):
        raise QueueArgumentError(f"condition {text!r}: constant {node.value!r} not allowed")
    if isinstance(node, ast.Call) and not (
        isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS and not node.keywords
    ):
        raise QueueArgumentError(
            f"condition {text!r} calls something other than {sorted(_FUNCTIONS)}"
        )
    if isinstance(node, ast.Subscript) and not (
        isinstance(node.value, ast.Name)
        and node.value.id == "data"
        and isinstance(node.slice, ast.Constant)
        and isinstance(node.slice.value, str)
    ):
        raise QueueArgumentError(
            f"condition {text!r}: only data['a key'] may be subscripted (with a str)"
        )


def _eval(node: ast.AST, names: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise _Missing(node.id)
        return names[node.id]
    if isinstance(node, ast.Subscript):
        assert isinstance(node.slice, ast.Constant)  # (checked when parsed)
        key = node.slice.value
        data = names.get("data", {})
        if key not in data:
            raise _Missing(key)
        return data[key]
    if isinstance(node, ast.BoolOp):
        values = (_eval(v, names) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.UnaryOp):
        value = _eval(node.operand, names)
        if isinstance(node.op, ast.Not):
            return not value
        return -value if isinstance(node.op, ast.USub) else +value
    if isinstance(node, ast.BinOp):
        result = _BINARY[type(node.op)](_eval(node.left, names), _eval(node.right, names))
        if isinstance(result, float) and not math.isfinite(result):
            raise ValueError("not finite")
        return result
    if isinstance(node, ast.Compare):
        left = _eval(node.left, names)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _eval(right_node, names)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)  # (checked when parsed)
        func = _FUNCTIONS[node.func.id]
        return func(*(_eval(a, names) for a in node.args))
    raise TypeError(f"unexpected node {type(node).__name__}")  # (refused when parsed)


@dataclass(slots=True)
class Conditional:
    """A registered conditional (see the module docstring).

    Attributes:
        name: what `Queue.remove_conditional` takes.
        condition: the expression's text.
        action: one of `ACTIONS`.
        start: the first event (its ``seq_num``, from 1) at which it is checked.
        frequency: checked at every `frequency`-th event from `start` on.
        ntrips: how many times it must hold (in one item) before it fires.
        plans, item_types, queues: which items it watches (empty: all).
        plan, kwargs: for ``insert``: the registered plan and JSON kwargs of the item it
            inserts after the running one (checked when the conditional is added).
    """

    name: str
    condition: str
    action: str
    start: int = 1
    frequency: int = 1
    ntrips: int = 1
    plans: frozenset[str] = frozenset()
    item_types: frozenset[str] = frozenset()
    queues: frozenset[str] = frozenset()
    plan: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    expression: Expression | None = field(default=None, repr=False)

    def watches(self, plan: str, item_type: str | None, queue: str) -> bool:
        """Whether it watches an item of this plan, type and queue."""
        return (
            (not self.plans or plan in self.plans)
            and (not self.item_types or item_type in self.item_types)
            and (not self.queues or queue in self.queues)
        )

    def spec(self) -> dict[str, Any]:
        """As JSON (what ``queue.conditional`` records)."""
        return {
            "condition": self.condition, "action": self.action, "start": self.start,
            "frequency": self.frequency, "ntrips": self.ntrips, "plans": sorted(self.plans),
            "item_types": sorted(self.item_types), "queues": sorted(self.queues),
            **({"plan": self.plan, "kwargs": self.kwargs} if self.action == "insert" else {}),
        }  # fmt: skip


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise QueueArgumentError(f"{what} must be an int >= 1, got {value!r}")
    return value


def _names(value: object, what: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple | set | frozenset) or not all(
        isinstance(v, str) and v for v in value
    ):
        raise QueueArgumentError(f"{what} must be a str or a list of str, got {value!r}")
    return frozenset(value)


class ItemWatch:
    """What the queue follows of one running item's run documents: its events (progress),
    its start, and the trips of the conditionals watching it. Each running item has its own
    (the one in front and the overlapping one), so that counters and windows never mix."""

    __slots__ = ("expected", "fired", "item", "progress", "t0", "trips")

    def __init__(self, item: ItemRecord, t0: float) -> None:
        self.item = item
        self.t0 = t0  # its start, on the monotonic clock
        self.progress: dict[str, int] = {}  # max seq_num per descriptor
        self.expected: int | None = None  # events its runs announced (num_points)
        self.trips: dict[str, int] = {}  # per conditional: times it held in this item
        self.fired: set[str] = set()  # conditionals that acted on this item

    @property
    def events(self) -> int:
        """Event documents seen so far (a replayed one counts once)."""
        return sum(self.progress.values())


class Conditionals:
    """The queue's conditionals, compiled from their definitions in the model (the fold of
    their ``queue.conditional`` events: they survive a restart like the items)."""

    def __init__(self) -> None:
        self._all: dict[str, Conditional] = {}
        #: Stored definitions that do not compile (a store written by another version).
        self.ignored: dict[str, str] = {}

    def build(self, condition: str, action: str, options: Mapping[str, Any]) -> Conditional:
        """Check a conditional's definition; the `Conditional` (not registered)."""
        expression = Expression(condition)
        if action not in ACTIONS:
            raise QueueArgumentError(f"action must be one of {list(ACTIONS)}, got {action!r}")
        name = options.get("name") or f"{action}: {condition}"
        if not isinstance(name, str):
            raise QueueArgumentError(f"a conditional's name must be a str, got {name!r}")
        return Conditional(
            name=name, condition=condition, action=action,
            start=_count(options.get("start", 1), "start"),
            frequency=_count(options.get("frequency", 1), "frequency"),
            ntrips=_count(options.get("ntrips", 1), "ntrips"),
            plans=_names(options.get("plans"), "plans"),
            item_types=_names(options.get("item_types"), "item_types"),
            queues=_names(options.get("queues"), "queues"),
            plan=options.get("plan"),
            kwargs=dict(options.get("kwargs") or {}),
            expression=expression,
        )  # fmt: skip

    def sync(self, specs: Mapping[str, Mapping[str, Any]]) -> None:
        """Make the compiled set match `specs` (name -> definition, as recorded)."""
        compiled: dict[str, Conditional] = {}
        ignored: dict[str, str] = {}
        for name, spec in specs.items():
            cond = self._all.get(name)
            if cond is not None and cond.spec() == spec:
                compiled[name] = cond
                continue
            try:
                compiled[name] = self.build(
                    str(spec.get("condition")), str(spec.get("action")), {**spec, "name": name}
                )
            except QueueArgumentError as exc:
                ignored[name] = str(exc)
        self._all, self.ignored = compiled, ignored

    def get(self, name: str) -> Conditional | None:
        """The conditional named `name`, if any."""
        return self._all.get(name)

    def all(self) -> list[Conditional]:
        """The conditionals, in the order they were added."""
        return list(self._all.values())

    def check(self, watch: ItemWatch, seq: int, names: Mapping[str, Any]) -> list[Conditional]:
        """The conditionals that fire at this event of `watch`'s item (each at most once per
        item run; trips are counted per item)."""
        item = watch.item
        fired = []
        for cond in self._all.values():
            if cond.name in watch.fired or not cond.watches(item.plan, item.item_type, item.queue):
                continue
            if seq < cond.start or (seq - cond.start) % cond.frequency:
                continue
            assert cond.expression is not None
            if cond.expression(names):
                trips = watch.trips[cond.name] = watch.trips.get(cond.name, 0) + 1
                if trips >= cond.ntrips:
                    watch.fired.add(cond.name)
                    fired.append(cond)
        return fired
