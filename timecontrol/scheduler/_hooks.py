"""Profiles and hooks: named set-ups run before a job's action, and clean-ups run after it.

A *hook* is an async callable registered with the scheduler under a name
(`Scheduler.hook`), called as ``hook(run, **params)``: `run` is a `HookRun` (the job, the
fire time, the phase, and for ``after`` hooks the action's outcome), `params` the JSON
parameters the job gives it. A job refers to hooks by name only (`HookRef`), so that its
definition stays JSON and survives restarts; a ``"module:qualname"`` name is imported only
from the scheduler's `allowed_modules`, exactly like an action.

A run with hooks goes: the job's ``profile`` (an instrument set-up, say), its ``before``
hooks in order, the action, then its ``after`` hooks in order. What happens on failure:

* the profile raises: status ``profile_failed``; the ``before`` hooks and the action are
  not called (a set-up that did not apply must not be measured with);
* a ``before`` hook raises: status ``before_failed``; the later hooks and the action are not
  called;
* the action raises or times out: ``failure`` / ``timeout`` as without hooks;
* an ``after`` hook raises: ``after_failed`` if the action had succeeded (its result is
  kept in the record); if the run had already failed, its status stays and the hook's error
  is added to the record's ``reason``. The remaining ``after`` hooks still run.

``after`` hooks run after every run that started, whatever its outcome (like ``finally``),
except when the run is cancelled (the engine stops). The job's ``timeout`` covers the
profile, the ``before`` hooks and the action together; the ``after`` hooks get a timeout of
their own of the same length. The failing hook's name is the record's ``hook``, its error
the record's ``error`` / ``message`` / ``traceback``.
"""

from __future__ import annotations

import inspect
import math
import traceback as tb_module
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import msgspec

from .._exceptions import UnknownActionError
from ._actions import check_arguments, import_action, module_allowed
from ._errors import JobArgumentsError, JobSpecError, UnknownHookError
from ._host import jsonable

if TYPE_CHECKING:
    from ._job import Job

__all__ = [
    "Hook",
    "HookLike",
    "HookRef",
    "HookRegistry",
    "HookRun",
    "hook_ref",
    "hook_refs",
    "run_hooked",
]

#: A hook: ``async def hook(run: HookRun, **params) -> None``.
Hook = Callable[..., Awaitable[Any]]
H = TypeVar("H", bound=Hook)

_json = msgspec.json.Encoder()


class HookRef(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A job's reference to a hook: its registered name and its JSON parameters."""

    hook: str
    params: dict[str, Any] = msgspec.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (what the job's definition stores)."""
        return {"hook": self.hook, "params": dict(self.params)}


#: What a caller may pass for a hook: a name, ``(name, params)``, ``{"hook", "params"}``.
HookLike = str | tuple[str, Mapping[str, Any]] | Mapping[str, Any] | HookRef


@dataclass(frozen=True, slots=True)
class HookRun:
    """What a hook is told about the run it belongs to.

    Attributes:
        job: the job's definition.
        scheduled: the fire time (for a manual run: when it was requested).
        manual: True for a run requested with `Scheduler.run_job`.
        run: the run's id (the ``run`` of its records).
        phase: ``"profile"``, ``"before"`` or ``"after"``.
        status: for ``after`` hooks, the run's status so far (``success``, ``failure``,
            ``timeout``, ``profile_failed``, ``before_failed``); None before the action.
        result: the action's return value (``after`` hooks of a successful run), else None.
        error: the exception that failed the run so far, else None.
    """

    job: Job
    scheduled: datetime
    manual: bool
    run: int
    phase: str
    status: str | None = None
    result: Any = None
    error: BaseException | None = None


def hook_ref(label: str, value: object) -> HookRef:
    """`value` as a `HookRef` (`JobSpecError` naming `label` and the accepted forms)."""
    if isinstance(value, HookRef):
        name, params = value.hook, value.params
    elif isinstance(value, str):
        name, params = value, {}
    elif isinstance(value, tuple | list) and len(value) == 2:
        name, params = value[0], value[1]
    elif isinstance(value, Mapping) and set(value) <= {"hook", "params"} and "hook" in value:
        name, params = value["hook"], value.get("params") or {}
    else:
        raise JobSpecError(
            f"{label} {value!r:.200} is not a hook: give its registered name, "
            "(name, {params}) or {'hook': name, 'params': {...}}"
        )
    if not isinstance(name, str) or not name or not name.isprintable():
        raise JobSpecError(f"{label}: hook name {name!r:.100} must be a non-empty str")
    if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
        raise JobArgumentsError(
            f"{label} {name!r}: params {params!r:.200} must be a str-keyed dict"
        )
    plain = dict(params)
    try:
        same = msgspec.json.decode(_json.encode(plain)) == plain
    except (TypeError, ValueError, msgspec.EncodeError, OverflowError, RecursionError):
        same = False
    if not same:
        raise JobArgumentsError(
            f"{label} {name!r}: params {plain!r:.200} are not plain JSON (jobs are stored: "
            "str, int, float, bool, None, lists and str-keyed dicts only)"
        )
    return HookRef(name, plain)


def hook_refs(label: str, value: object) -> tuple[HookRef, ...]:
    """A list of hooks (`hook_ref` each); None is no hooks."""
    if value is None:
        return ()
    if isinstance(value, str | HookRef | Mapping) or not isinstance(value, Iterable):
        raise JobSpecError(f"{label} must be a list of hooks, got {value!r:.200}")
    return tuple(hook_ref(f"{label}[{i}]", v) for i, v in enumerate(value))


def profile_ref(value: object) -> HookRef | None:
    """The ``profile`` option as a `HookRef` (None: no profile)."""
    return None if value is None else hook_ref("profile", value)


class HookRegistry:
    """The hooks of one scheduler, by name (in memory: register them again at each start)."""

    def __init__(self) -> None:
        self.hooks: dict[str, Hook] = {}

    def register(self, fn: H, name: str | None) -> H:
        """Register `fn` under `name` (default: its own name); checked first."""
        checked: Any = fn  # (a TypeGuard would narrow `fn` away from H)
        if not inspect.iscoroutinefunction(checked):
            raise JobSpecError(f"hook {fn!r:.200} is not an async function (async def)")
        key = getattr(fn, "__name__", None) if name is None else name
        if not isinstance(key, str) or not key or ":" in key:
            raise JobSpecError(
                f"hook name {key!r:.100} must be a non-empty str without ':' "
                "(':' marks a 'module:qualname' reference)"
            )
        _first_param(fn, key)
        self.hooks[key] = fn
        return fn

    def resolve(self, name: str, allowed: tuple[str, ...]) -> Hook:
        """The hook named `name`: registered, or imported from `allowed` modules."""
        fn = self.hooks.get(name)
        if fn is not None:
            return fn
        if ":" not in name:
            raise UnknownHookError(
                f"no hook named {name!r}; registered hooks: {sorted(self.hooks)} (register "
                "it with @engine.scheduler.hook, or give 'module:qualname' from "
                "allowed_modules)"
            )
        try:
            return import_action(name, allowed)
        except UnknownActionError as exc:
            raise UnknownHookError(str(exc).replace("action", "hook")) from None

    def check(self, job: Job, allowed: tuple[str, ...]) -> None:
        """Every hook of `job` is known and takes its params (raises before any change)."""
        for label, ref in job_hooks(job):
            fn = self.resolve(ref.hook, allowed)
            first = _first_param(fn, ref.hook)
            if first in ref.params:
                raise JobArgumentsError(
                    f"job {job.id!r}: {label} {ref.hook!r}: param {first!r} is the hook's "
                    "run argument (HookRun); choose another name"
                )
            check_arguments(fn, {**ref.params, first: None}, f"job {job.id!r}: {label}")


def job_hooks(job: Job) -> list[tuple[str, HookRef]]:
    """The job's hooks with their phase, in call order (profile, before..., after...)."""
    out: list[tuple[str, HookRef]] = []
    if job.profile is not None:
        out.append(("profile", job.profile))
    out.extend(("before", ref) for ref in job.before)
    out.extend(("after", ref) for ref in job.after)
    return out


def hooks_allowed(job: Job, allowed: tuple[str, ...]) -> str | None:
    """Why a stored job's hooks may not be loaded (a module outside `allowed`), or None."""
    for label, ref in job_hooks(job):
        if ":" in ref.hook and not module_allowed(ref.hook, allowed):
            return (
                f"its {label} hook {ref.hook!r} is in a module outside allowed_modules "
                f"{list(allowed)}; it was not imported"
            )
    return None


def _first_param(fn: Hook, name: str) -> str:
    """The name of the hook's first parameter (it gets the `HookRun`)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return "run"
    if not params or params[0].kind not in (
        params[0].POSITIONAL_ONLY,
        params[0].POSITIONAL_OR_KEYWORD,
    ):
        raise JobSpecError(
            f"hook {name!r} must take the run as its first positional argument: "
            "async def hook(run, **params)"
        )
    return params[0].name


def _error(exc: BaseException) -> dict[str, Any]:
    return {
        "error": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(tb_module.format_exception(exc)),
    }


def _result(result: Any) -> dict[str, Any]:
    return {"result": jsonable(result)}


async def run_hooked(
    registry: HookRegistry,
    allowed: tuple[str, ...],
    fn: Callable[..., Awaitable[Any]],
    kwargs: dict[str, Any],
    base: HookRun,
    deadline: float | None,
) -> tuple[str, dict[str, Any]]:
    """Run the profile, the ``before`` hooks, the action and the ``after`` hooks of one run
    (see the module docstring); returns the record's status and payload. Cancellation (the
    engine stopping) propagates: the caller records the run as cancelled."""
    status, payload, error, result = await _pre_and_action(
        registry, allowed, fn, kwargs, base, deadline
    )
    job = base.job
    if not job.after:
        return status, payload
    after_deadline = None if job.timeout is None else anyio.current_time() + job.timeout
    for ref in job.after:
        info = _with(base, "after", status, result, error)
        exc = await _call(registry, allowed, ref, info, after_deadline)
        if exc is None:
            continue
        why = f"after hook {ref.hook!r} failed: {type(exc).__name__}: {exc}"
        if status == "success":
            status = "after_failed"
            payload = {**payload, **_error(exc), "hook": ref.hook, "reason": why}
            error = exc
        else:
            previous = payload.get("reason")
            payload["reason"] = why if not previous else f"{previous}; {why}"
            payload.setdefault("hook", ref.hook)
    return status, payload


def _with(
    base: HookRun, phase: str, status: str | None, result: Any, error: BaseException | None
) -> HookRun:
    return HookRun(
        job=base.job,
        scheduled=base.scheduled,
        manual=base.manual,
        run=base.run,
        phase=phase,
        status=status,
        result=result,
        error=error,
    )


async def _call(
    registry: HookRegistry,
    allowed: tuple[str, ...],
    ref: HookRef,
    info: HookRun,
    deadline: float | None,
) -> Exception | None:
    """Call one hook; its exception (a timeout as `TimeoutError`), or None."""
    try:
        hook = registry.resolve(ref.hook, allowed)
        with anyio.CancelScope(deadline=math.inf if deadline is None else deadline) as scope:
            await hook(info, **ref.params)
        if scope.cancelled_caught:
            return TimeoutError(f"the job's timeout of {info.job.timeout} s ran out")
    except Exception as exc:
        return exc
    return None


async def _pre_and_action(
    registry: HookRegistry,
    allowed: tuple[str, ...],
    fn: Callable[..., Awaitable[Any]],
    kwargs: dict[str, Any],
    base: HookRun,
    deadline: float | None,
) -> tuple[str, dict[str, Any], BaseException | None, Any]:
    """The profile, the ``before`` hooks and the action, under the job's one deadline."""
    job = base.job
    pre = [(p, r) for p, r in job_hooks(job) if p != "after"]
    phase, current = "action", None
    with anyio.CancelScope(deadline=math.inf if deadline is None else deadline) as scope:
        try:
            for phase, ref in pre:
                current = ref
                await registry.resolve(ref.hook, allowed)(
                    _with(base, phase, None, None, None), **ref.params
                )
            phase, current = "action", None
            result = await fn(**kwargs)
            return "success", _result(result), None, result
        except Exception as exc:
            if current is None:
                return "failure", _error(exc), exc, None
            why = f"{phase} {current.hook!r} failed; the action was not called"
            return (
                f"{phase}_failed",
                {**_error(exc), "hook": current.hook, "reason": why},
                exc,
                None,
            )
    assert scope.cancelled_caught
    limit = f"exceeded timeout of {job.timeout} s"
    if current is None:
        return "timeout", {"reason": limit}, TimeoutError(limit), None
    late = TimeoutError(f"{phase} {current.hook!r} {limit}")
    why = f"{phase} {current.hook!r} {limit}; the action was not called"
    return f"{phase}_failed", {**_error(late), "hook": current.hook, "reason": why}, late, None
