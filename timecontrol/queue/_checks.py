"""Layered pre-checks: before the execution, before each queue, before each item, per step.

A check is a function (sync or async) of a `CheckContext`. It passes by returning True or
None; it fails by returning False, a str (the reason), or by raising. What a failure does is
the check's `on_fail`:

=========  ========================================================================
level      when, and what a failure may do
=========  ========================================================================
execution  once when the queue starts: ``stop`` (it does not start), ``pause``
queue      each time execution enters a queue: ``stop``, ``pause``
item       before each item starts: ``stop``, ``pause``, ``skip`` (the item is skipped)
step       before each message of an item's plan (sync checks only, keep them quick):
           ``pause`` (the plan pauses; resuming checks again), ``stop`` (the item fails)
=========  ========================================================================

``pause`` holds the queue until `Queue.resume`, after which the checks run again.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

from ..plans import Msg
from ._errors import QueueArgumentError, QueueError
from ._items import QueueItem

__all__ = [
    "Check",
    "CheckContext",
    "CheckFailedError",
    "CheckLevel",
    "Checks",
    "OnFail",
    "with_step_checks",
]

CheckLevel = Literal["execution", "queue", "item", "step"]
OnFail = Literal["stop", "pause", "skip"]
_LEVELS: Final = ("execution", "queue", "item", "step")
_ACTIONS: Final[dict[str, tuple[str, ...]]] = {
    "execution": ("stop", "pause"),
    "queue": ("stop", "pause"),
    "item": ("stop", "pause", "skip"),
    "step": ("pause", "stop"),
}


class CheckFailedError(QueueError):
    """Raised into a plan whose step check failed with ``on_fail="stop"``."""


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What a check is told: its level, the queue and the item concerned, the message."""

    level: CheckLevel
    queue: str | None
    item: QueueItem | None
    msg: Any = None


@dataclass(frozen=True, slots=True)
class Check:
    """A registered check."""

    name: str
    level: CheckLevel
    fn: Callable[[CheckContext], Any]
    on_fail: OnFail
    is_async: bool


def _verdict(value: Any) -> str | None:
    """None if a check's return value means pass, else the reason it failed."""
    if value is None or value is True:
        return None
    if value is False:
        return "returned False"
    if isinstance(value, str):
        return value or "failed"
    return f"returned {value!r} (return True/None to pass, False or a reason to fail)"


class Checks:
    """The checks of one queue, by level, in the order they were added."""

    def __init__(self) -> None:
        self._checks: dict[str, Check] = {}

    def add(self, fn: Callable[[CheckContext], Any], level: str, name: str | None,
            on_fail: str | None) -> Check:  # fmt: skip
        # (`level` and `on_fail` are str: they are checked here, at the public door.)
        """Register a check (see `Queue.add_check`)."""
        if level not in _LEVELS:
            raise QueueArgumentError(f"level must be one of {list(_LEVELS)}, got {level!r}")
        action = on_fail if on_fail is not None else _ACTIONS[level][0]
        if action not in _ACTIONS[level]:
            raise QueueArgumentError(
                f"on_fail={action!r} is not possible for a {level} check; accepted: "
                f"{list(_ACTIONS[level])}"
            )
        if not callable(fn):
            raise QueueArgumentError(f"a check must be callable, got {fn!r}")
        is_async = inspect.iscoroutinefunction(fn)
        if level == "step" and is_async:
            raise QueueArgumentError(
                f"step check {fn!r} is async; step checks run between two messages of a plan "
                "and must be plain (sync) functions"
            )
        key = name if name is not None else getattr(fn, "__name__", None)
        if not isinstance(key, str) or not key:
            raise QueueArgumentError(f"check {fn!r} needs a name: pass name='...'")
        if key in self._checks:
            raise QueueArgumentError(
                f"a check named {key!r} exists already; remove it first or choose another name"
            )
        check = Check(key, cast(CheckLevel, level), fn, cast(OnFail, action), is_async)
        self._checks[key] = check
        return check

    def remove(self, name: str) -> Check:
        """Unregister a check by name."""
        check = self._checks.pop(name, None)
        if check is None:
            raise QueueArgumentError(f"no check named {name!r}; checks: {sorted(self._checks)}")
        return check

    def of(self, level: str) -> list[Check]:
        """The checks of one level."""
        return [c for c in self._checks.values() if c.level == level]

    async def run(self, level: str, context: CheckContext) -> tuple[Check, str] | None:
        """Run the checks of `level` in order; the first failure (check, reason) or None."""
        for check in self.of(level):
            try:
                value = check.fn(context)
                if check.is_async or inspect.isawaitable(value):
                    value = await value
                reason = _verdict(value)
            except Exception as exc:
                reason = f"raised {type(exc).__name__}: {exc}"
            if reason is not None:
                return check, reason
        return None

    def run_step(self, context: CheckContext) -> tuple[Check, str] | None:
        """Run the step checks (sync) for one message; the first failure or None."""
        for check in self.of("step"):
            try:
                reason = _verdict(check.fn(context))
            except Exception as exc:
                reason = f"raised {type(exc).__name__}: {exc}"
            if reason is not None:
                return check, reason
        return None


StepHook = Callable[[Any], tuple[Check, str] | None]


def with_step_checks(
    plan: Iterable[Any], hook: StepHook, on_failure: Callable[[Check, str], None]
) -> Generator[Any, Any, Any]:
    """`plan` with `hook(msg)` run before each of its messages (see the module docstring).

    A failing ``pause`` check makes the plan pause (a hard pause, so that resuming replays
    from the last checkpoint), then checks again; a failing ``stop`` check raises
    `CheckFailedError` into the plan. Values, exceptions and closing pass straight through.
    """
    gen: Any = plan if hasattr(plan, "send") else (m for m in plan)
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            msg = gen.throw(error) if error is not None else gen.send(value)
        except StopIteration as stop:
            return stop.value
        error = None
        failure = hook(msg)
        while failure is not None:
            check, reason = failure
            on_failure(check, reason)
            if check.on_fail == "stop":
                error = CheckFailedError(f"step check {check.name!r} failed: {reason}")
                break
            yield Msg("pause")
            failure = hook(msg)
        if error is not None:
            continue
        try:
            value = yield msg
        except GeneratorExit:
            gen.close()
            raise
        except BaseException as exc:
            error, value = exc, None
