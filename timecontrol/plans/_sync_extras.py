"""What `SyncRunEngine` adds for code written against bluesky's RunEngine.

* The constructor options bluesky users pass (`split_bluesky_options`): ``scan_id_source``,
  ``md_validator``, ``md_normalizer`` and ``waiting_hook`` are set on the run engine (they mean
  the same there); ``max_depth`` limits how deep in the call stack ``RE(plan)`` may be called;
  ``during_task`` is accepted and ignored (the loop runs in its own thread, so there is nothing
  to do while waiting but to wait); ``loop`` is the loop the thread runs.
* `SigintHandler`, the default of ``RE.context_managers`` (a list, as bluesky's is): one
  Ctrl+C asks for a deferred pause, a second for a hard one.
* `check_depth`: bluesky's ``max_depth`` rule.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Final

from ._errors import PlanArgumentError
from ._msg import Msg
from ._sigint import install_sigint
from ._suspenders import Suspender

if TYPE_CHECKING:
    from ._sync import SyncRunEngine

__all__ = [
    "HOOKS",
    "SigintHandler",
    "check_depth",
    "is_bluesky_suspender",
    "print_close_failure",
    "split_bluesky_options",
    "swap_old_subscribe",
    "wait_for_tripped",
    "warn_old_usage",
]

#: bluesky's hooks that live on the run engine and are read and written through ``RE.<name>``.
HOOKS: Final = ("scan_id_source", "md_validator", "md_normalizer", "waiting_hook")
#: Accepted for bluesky's sake and ignored (see the module docstring).
IGNORED: Final = ("during_task",)


def split_bluesky_options(options: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    """Take bluesky's options out of `options`: (the hooks given, ``max_depth``).

    Checked before anything is built, so that a bad option leaves nothing behind.
    """
    hooks = {name: options.pop(name) for name in HOOKS if name in options}
    for name, hook in hooks.items():
        if hook is not None and not callable(hook):
            raise PlanArgumentError(f"{name} must be callable or None, got {hook!r}")
    for ignored in IGNORED:
        options.pop(ignored, None)
    max_depth = options.pop("max_depth", None)
    return {k: v for k, v in hooks.items() if v is not None}, check_max_depth(max_depth)


def check_max_depth(value: object) -> int | None:
    """`value` as ``max_depth`` (None or an int >= 0; a `PlanArgumentError` otherwise)."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value
    raise PlanArgumentError(f"max_depth must be None or an int >= 0, got {value!r}")


def check_depth(max_depth: int | None) -> None:
    """bluesky's rule: ``RE(plan)`` called deeper than `max_depth` frames raises RuntimeError
    (a guard against calling the run engine from inside a function that a plan calls)."""
    if max_depth is None:
        return
    frame = inspect.currentframe()
    depth = len(inspect.getouterframes(frame)) - 1 if frame is not None else 0
    if depth > max_depth:
        raise RuntimeError(
            f"RE(plan) was called {depth} frames deep, more than RE.max_depth = {max_depth}; "
            "call it from the top level of the prompt (or raise max_depth, None: no limit)"
        )


def warn_old_usage(metadata: dict[str, Any]) -> None:
    """Warn, as bluesky does, about ``RE(plan, raise_if_interrupted=...)``: the flag is gone
    (a pause always raises) and the keyword is taken as metadata like any other."""
    if "raise_if_interrupted" in metadata:
        warnings.warn(
            "The 'raise_if_interrupted' flag has been removed: RE(plan) always raises "
            "RunEngineInterrupted when interrupted; the keyword is kept as metadata",
            UserWarning,
            stacklevel=3,
        )


def swap_old_subscribe(func: Any, name: Any) -> tuple[Any, Any]:
    """bluesky's old ``subscribe(name, func)`` order, put right with a warning."""
    if isinstance(func, str) and callable(name):
        warnings.warn(
            f"subscribe({func!r}, {name!r}) has its arguments the old way round; "
            "use subscribe(func, name)",
            UserWarning,
            stacklevel=3,
        )
        return name, func
    return func, name


def is_bluesky_suspender(obj: object) -> bool:
    """True for one of bluesky's suspenders (``install(RE)``, ``remove()``, ``get_futures()``),
    which `SyncRunEngine` installs as they are: they call ``RE.request_suspend``."""
    if isinstance(obj, Suspender):
        return False
    return all(callable(getattr(obj, m, None)) for m in ("install", "remove", "get_futures"))


def wait_for_tripped(suspenders: list[Any], plan: Any) -> Any:
    """`plan`, first waiting for bluesky suspenders already tripped when it starts (as
    bluesky's ``RE(plan)`` does); `plan` itself if none is."""
    factories: list[Any] = []
    for suspender in suspenders:
        futures, _justification = suspender.get_futures()
        factories.extend(futures)
    if not factories:
        return plan
    return _after_wait(factories, plan)


def _after_wait(factories: list[Any], plan: Any) -> Generator[Any, Any, Any]:
    yield Msg("wait_for", None, factories)
    return (yield from plan)


class SigintHandler:
    """Context manager (``RE.context_managers``' default): our Ctrl+C handler while a call
    blocks, the previous one put back afterwards."""

    def __init__(self, run_engine: SyncRunEngine) -> None:
        self._run_engine = run_engine
        self._restore: Callable[[], None] | None = None

    def __enter__(self) -> SigintHandler:
        inner = self._run_engine.run_engine
        self._restore = install_sigint(self._run_engine._handle, inner._on_sigint)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._restore is not None:
            self._restore()
            self._restore = None


def print_close_failure(gen: Any, error: BaseException) -> None:
    """bluesky's message when closing a plan's generator fails because it yielded (the Log
    has the event too: ``plan.cleanup_failed``, step ``close plan``)."""
    if isinstance(error, RuntimeError):
        print(f"The plan {gen!r} tried to yield a value on close.  Please fix your plan.")
