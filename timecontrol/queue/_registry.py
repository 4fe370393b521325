"""Plans registered by name, and their keyword arguments checked against their signatures.

An item names its plan and carries JSON keyword arguments, so that a queue kept in a store
runs again in the next process (which registers the same plans by the same names). The
arguments are checked when an item is added or edited: every required parameter given, no
unknown one, and values of the simple annotated types (``int``, ``float``, ``str``, ``bool``,
``list``, ``dict``) of those types; a mistake is an error at the operator's desk, not a failed
item at 3 a.m.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from ._errors import PlanNotFoundError, QueueArgumentError

__all__ = ["PlanFunction", "PlanRegistry", "check_json"]

#: A plan function: called with the item's kwargs, it returns a plan (a generator of Msg).
PlanFunction = Callable[..., Iterable[Any]]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode

# Annotations simple enough to check a JSON value against (bool is not an int here: JSON
# keeps them apart, and `num=True` is a mistake).
_SIMPLE: dict[Any, tuple[type, ...]] = {
    int: (int,),
    float: (int, float),
    str: (str,),
    bool: (bool,),
    list: (list,),
    dict: (dict,),
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}


def check_json(value: Any, what: str) -> dict[str, Any]:
    """`value` as a JSON object that survives a round trip unchanged, or `QueueArgumentError`."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise QueueArgumentError(f"{what} must be a dict with str keys, got {value!r:.200}")
    try:
        same = _decode(_encode(value)) == value
    except (TypeError, ValueError, msgspec.EncodeError, OverflowError, RecursionError) as exc:
        raise QueueArgumentError(
            f"{what} {value!r:.200} are not JSON ({exc}); queue items may carry only str, "
            "int, float, bool, None, lists and str-keyed dicts"
        ) from None
    if not same:
        raise QueueArgumentError(
            f"{what} {value!r:.200} do not survive JSON unchanged (a tuple, NaN, a datetime?); "
            "queue items may carry only str, int, finite float, bool, None, lists and "
            "str-keyed dicts (pass a datetime as an ISO string, a tuple as a list)"
        )
    copied: dict[str, Any] = _decode(_encode(value))
    return copied


def _is_type(value: Any, accepted: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in accepted:
        return False
    return isinstance(value, accepted)


class PlanRegistry:
    """Plan functions by name, with their signatures."""

    def __init__(self) -> None:
        self._plans: dict[str, PlanFunction] = {}
        self._signatures: dict[str, inspect.Signature] = {}

    def __contains__(self, name: object) -> bool:
        return name in self._plans

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._plans)

    def register(self, fn: PlanFunction, name: str | None) -> str:
        """Register `fn` under `name` (default: its ``__name__``); returns the name."""
        if not callable(fn):
            raise QueueArgumentError(f"a plan must be a callable returning a plan, got {fn!r}")
        key = name if name is not None else getattr(fn, "__name__", None)
        if not isinstance(key, str) or not key or key == "<lambda>":
            raise QueueArgumentError(
                f"plan {fn!r} needs a name: pass name='...' (a non-empty str), got {key!r}"
            )
        existing = self._plans.get(key)
        if existing is not None and existing is not fn:
            raise QueueArgumentError(
                f"a plan named {key!r} is already registered ({existing!r}); pass another "
                "name=... to register this one too"
            )
        try:
            signature = inspect.signature(fn, eval_str=True)
        except (NameError, TypeError, ValueError):
            signature = inspect.signature(fn)  # annotations that do not resolve: unchecked
        self._plans[key] = fn
        self._signatures[key] = signature
        return key

    def get(self, name: str) -> PlanFunction:
        """The plan registered under `name`, or `PlanNotFoundError`."""
        fn = self._plans.get(name)
        if fn is None:
            raise PlanNotFoundError(
                f"no plan named {name!r}; registered plans: {self.names()} "
                "(register one with queue.plan(fn, name=...))"
            )
        return fn

    def check_kwargs(self, name: str, kwargs: dict[str, Any]) -> None:
        """`QueueArgumentError` unless `kwargs` fit the plan's signature (see module doc)."""
        self.get(name)
        signature = self._signatures[name]
        try:
            bound = signature.bind(**kwargs)
        except TypeError as exc:
            params = [
                p.name + ("" if p.default is p.empty else "=")
                for p in signature.parameters.values()
                if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            ]
            raise QueueArgumentError(
                f"kwargs {kwargs!r:.200} do not fit plan {name!r}: {exc}; its parameters are "
                f"{params} (those with '=' are optional)"
            ) from None
        for key, value in bound.arguments.items():
            param = signature.parameters[key]
            accepted = _SIMPLE.get(param.annotation)
            if accepted is not None and not _is_type(value, accepted):
                names = " or ".join(t.__name__ for t in accepted)
                raise QueueArgumentError(
                    f"plan {name!r} takes {key} as {names}, got {value!r:.100} "
                    f"({type(value).__name__})"
                )

    def build(self, name: str, kwargs: dict[str, Any]) -> Iterable[Any]:
        """Call the plan function with (a copy of) `kwargs`: the plan to run."""
        return self.get(name)(**_decode(_encode(kwargs)))
