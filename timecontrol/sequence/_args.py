"""Checking what users pass: chains, kwargs, metadata, policies, offsets, names.

Every check runs before anything changes, so that bad input leaves no trace; each error names
the bad value and what would be accepted.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import msgspec

from .._dispatch import INTERNAL_PREFIX, Action
from .._exceptions import UnknownActionError
from ._errors import SequenceArgumentError

__all__ = [
    "ON_DOWNTIME",
    "ON_ERROR",
    "ON_INTERRUPT",
    "ON_PAUSE",
    "Step",
    "check_flag",
    "check_kwargs",
    "check_metadata",
    "check_name",
    "check_policy",
    "check_reason",
    "check_seconds",
    "check_steps",
]

#: What the first failing action of a point does to the rest (see `Sequence`).
ON_ERROR: Final = ("skip_rest", "continue", "pause")
#: What `resume` does with points that fell due while the sequence was paused.
ON_PAUSE: Final = ("postpone", "catch_up", "skip")
#: What a restart does with a point whose chain was running when the process died.
ON_INTERRUPT: Final = ("skip", "rerun")
#: What a restart does with points that fell due while no process ran the sequence.
ON_DOWNTIME: Final = ON_PAUSE

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,199}$")
_json = msgspec.json.Encoder()
_json_dict = msgspec.json.Decoder(dict[str, Any])


@dataclass(frozen=True, slots=True)
class Step:
    """One action of a chain: its name (for records and kwargs) and the function called."""

    name: str
    fn: Action


def check_name(name: object) -> str:
    """A sequence name: 1 to 200 ASCII letters, digits and ``_ . : -``."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise SequenceArgumentError(
            f"sequence name {name!r} is not accepted; use 1 to 200 ASCII letters, digits and "
            "'_', '.', ':' or '-' (not starting with a punctuation mark)"
        )
    return name


def check_policy(value: object, allowed: tuple[str, ...], what: str) -> str:
    """`value` if it is one of `allowed`."""
    if not isinstance(value, str) or value not in allowed:
        raise SequenceArgumentError(f"{what}={value!r} is not one of {list(allowed)}")
    return value


def check_flag(value: object, what: str) -> bool:
    """`value` if it is True or False."""
    if not isinstance(value, bool):
        raise SequenceArgumentError(f"{what} must be True or False, got {value!r:.100}")
    return value


def check_reason(reason: object) -> str:
    """A reason text (any str)."""
    if not isinstance(reason, str):
        raise SequenceArgumentError(f"reason must be a str, got {reason!r}")
    return reason


def check_seconds(value: object, what: str, *, negative: bool = False) -> float:
    """Seconds from an int, a finite float or a `timedelta` (≥ 0 unless `negative`)."""
    if isinstance(value, timedelta):
        seconds = value / timedelta(seconds=1)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise SequenceArgumentError(f"{what}={value!r} is not seconds (int, float) or a timedelta")
    if not math.isfinite(seconds) or (seconds < 0 and not negative):
        accepted = "a finite number of seconds" if negative else "finite seconds ≥ 0"
        raise SequenceArgumentError(f"{what}={value!r} is not accepted; expected {accepted}")
    return seconds


def _step(action: object, registry: Mapping[str, Action], what: str) -> Step:
    if isinstance(action, str):
        fn = None if action.startswith(INTERNAL_PREFIX) else registry.get(action)
        if fn is None:
            raise UnknownActionError(
                f"{what}: no action named {action!r}; registered actions: {sorted(registry)} "
                "(register one with @engine.action, or pass the async function itself)"
            )
        return Step(action, fn)
    if callable(action) and inspect.iscoroutinefunction(action):
        return Step(getattr(action, "__name__", repr(action)), action)
    raise SequenceArgumentError(
        f"{what}: {action!r} is neither a registered action name nor an async function (async def)"
    )


def check_steps(actions: object, registry: Mapping[str, Action], what: str) -> tuple[Step, ...]:
    """A non-empty chain of actions: registered names and/or async functions, in order."""
    if isinstance(actions, str) or callable(actions):
        actions = [actions]
    if not isinstance(actions, Iterable):
        raise SequenceArgumentError(
            f"{what}={actions!r} is not a list of actions (names or async functions)"
        )
    steps = tuple(_step(a, registry, what) for a in actions)
    if not steps:
        raise SequenceArgumentError(f"{what} is empty; a chain needs at least one action")
    return steps


def check_kwargs(kwargs: object, names: Iterable[str], what: str) -> dict[str, dict[str, Any]]:
    """Per-action keyword arguments: ``{action name: {keyword: value}}``, each name in the
    chain (they apply to every action of that name)."""
    if kwargs is None:
        return {}
    allowed = sorted(set(names))
    if not isinstance(kwargs, Mapping):
        raise SequenceArgumentError(
            f"{what}={kwargs!r} is not a dict keyed by action name, e.g. "
            f"{{{allowed[0]!r}: {{'volume_ul': 20}}}}"
        )
    out: dict[str, dict[str, Any]] = {}
    for name, kw in kwargs.items():
        if name not in allowed:
            raise SequenceArgumentError(
                f"{what}: {name!r} is not an action of this chain; kwargs are keyed by action "
                f"name, one of {allowed}"
            )
        if not isinstance(kw, Mapping) or not all(isinstance(k, str) for k in kw):
            raise SequenceArgumentError(
                f"{what}[{name!r}]={kw!r} is not a dict of keyword arguments (str keys)"
            )
        out[name] = dict(kw)
    return out


def check_metadata(metadata: object) -> dict[str, Any]:
    """Metadata: a dict of plain JSON (it is written to the Log as is)."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) for k in metadata):
        raise SequenceArgumentError(f"metadata must be a dict with str keys, got {metadata!r}")
    try:
        same = _json_dict.decode(_json.encode(metadata)) == metadata
    except (TypeError, ValueError, msgspec.EncodeError, OverflowError, RecursionError):
        same = False
    if not same:
        raise SequenceArgumentError(
            f"metadata {metadata!r:.200} is not plain JSON; use str, int, finite float, bool, "
            "None, lists and str-keyed dicts (a datetime as an ISO string)"
        )
    return dict(metadata)
