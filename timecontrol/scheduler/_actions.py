"""How a job's action is found and checked: registered names, or an allow-list of modules.

A job names its action as a string, because jobs are stored: a name registered with the
engine (``@engine.action``), or a ``"module:qualname"`` reference. A store must never make the
process import code it did not choose, so a reference is imported only when its module is in
the scheduler's `allowed_modules` (or a submodule of one); anything else is refused when a job
is added, and quarantined when a stored job asks for it.

A job's keyword arguments are checked against the action's signature when the job is added
or changed, so that a misspelt argument is an error now rather than a failure at every fire
time.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import weakref
from collections.abc import Callable, Collection, Mapping
from typing import Any, Final

from .._exceptions import UnknownActionError
from ._errors import ActionNotAllowedError, JobArgumentsError, JobSpecError
from ._host import Action

__all__ = ["check_arguments", "check_modules", "import_action", "module_allowed"]

_KEYWORD: Final = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
# What each action accepts by keyword: (names, required names, takes **kwargs). Weak keys: an
# action that is dropped takes its entry with it.
_accepts: weakref.WeakKeyDictionary[Any, tuple[frozenset[str], frozenset[str], bool]] = (
    weakref.WeakKeyDictionary()
)


def check_modules(modules: object) -> tuple[str, ...]:
    """`allowed_modules` as a tuple of module names (`JobSpecError` for anything else)."""
    if isinstance(modules, str) or not isinstance(modules, Collection):
        raise JobSpecError(
            f"allowed_modules must be a list of module names such as ('mylab.actions',), "
            f"got {modules!r:.200}"
        )
    out = tuple(modules)
    for name in out:
        if (
            not isinstance(name, str)
            or not name
            or not all(part.isidentifier() for part in name.split("."))
        ):
            raise JobSpecError(f"allowed_modules: {name!r:.100} is not a module name")
    return out


def module_allowed(ref: str, allowed: Collection[str]) -> bool:
    """Whether ``"module:qualname"`` `ref` names a module in `allowed` (or a submodule)."""
    module = ref.partition(":")[0]
    return any(module == name or module.startswith(name + ".") for name in allowed)


def import_action(ref: str, allowed: Collection[str]) -> Action:
    """The async function a ``"module:qualname"`` reference names, from an allowed module."""
    module_name, _, qualname = ref.partition(":")
    if not module_name or not qualname:
        raise UnknownActionError(
            f"action {ref!r} is neither a registered action name nor a 'module:qualname' "
            "reference (e.g. 'mylab.actions:sample')"
        )
    if not module_allowed(ref, allowed):
        raise ActionNotAllowedError(
            f"action {ref!r}: module {module_name!r} is not in the scheduler's allowed_modules "
            f"{list(allowed)}; register the action by name (@engine.action), or allow its "
            "module (allowed_modules=...)"
        )
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise UnknownActionError(f"cannot import action {ref!r}: {exc}") from None
    if not inspect.iscoroutinefunction(obj):
        raise UnknownActionError(f"action {ref!r} is {obj!r}, not an async function (async def)")
    fn: Action = obj
    return fn


def _signature(fn: Callable[..., Any]) -> tuple[frozenset[str], frozenset[str], bool] | None:
    try:
        cached = _accepts.get(fn)
    except TypeError:  # not weakly referenceable: look it up every time
        cached = None
    if cached is not None:
        return cached
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None  # no signature to check against (a builtin, say)
    names = frozenset(p.name for p in params if p.kind in _KEYWORD)
    required = frozenset(
        p.name
        for p in params
        if p.default is p.empty and p.kind is not p.VAR_KEYWORD and p.kind is not p.VAR_POSITIONAL
    )
    var = any(p.kind is p.VAR_KEYWORD for p in params)
    entry = (names, required, var)
    with contextlib.suppress(TypeError):  # not weakly referenceable: not cached
        _accepts[fn] = entry
    return entry


def check_arguments(fn: Callable[..., Any], kwargs: Mapping[str, Any], what: str) -> None:
    """`JobArgumentsError` unless ``fn(**kwargs)`` binds: no unknown keyword, none missing."""
    sig = _signature(fn)
    if sig is None:
        return
    names, required, var = sig
    unknown = [] if var else sorted(k for k in kwargs if k not in names)
    missing = sorted(required - set(kwargs))
    if unknown or missing:
        problem = (
            f"unknown argument(s) {', '.join(map(repr, unknown))}"
            if unknown
            else f"missing required argument(s) {', '.join(map(repr, missing))}"
        )
        raise JobArgumentsError(
            f"{what}: {problem}; the action {getattr(fn, '__qualname__', fn)!r} accepts "
            f"{', '.join(sorted(names)) or 'no arguments'}"
            + (f" (required: {', '.join(sorted(required))})" if required else "")
        )
