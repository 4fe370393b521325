"""Plan stubs: one small generator per command, to compose plans with ``yield from``.

Each stub yields its message(s) and returns the value the engine sent back, so
``reading = yield from read(det)`` reads naturally. They are plain generators (no stack
inspection, no decorators), so a stub costs little more than the message itself.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Hashable, Iterable, Sequence
from typing import Any

from ._documents import new_uid
from ._errors import RequestAbort, RequestStop
from ._msg import Msg
from ._suspenders import Suspender

__all__ = [
    "abs_set",
    "call",
    "checkpoint",
    "clear_checkpoint",
    "close_run",
    "create",
    "drop",
    "ensure_generator",
    "finalize_wrapper",
    "install_suspender",
    "mv",
    "null",
    "open_run",
    "pause",
    "read",
    "remove_suspender",
    "rewindable",
    "run_wrapper",
    "save",
    "sleep",
    "stage",
    "stage_wrapper",
    "subscribe",
    "trigger",
    "trigger_and_read",
    "unstage",
    "unsubscribe",
    "wait",
]

PlanGen = Generator[Msg, Any, Any]


def ensure_generator(plan: Iterable[Msg]) -> PlanGen:
    """`plan` itself if it is a generator, else a generator over it (a list of messages
    cannot receive the values the engine sends back; the generator drops them)."""
    if isinstance(plan, Generator):
        return plan

    def gen() -> PlanGen:
        # Not `yield from`: that would pass the engine's values on to the iterator's send().
        for msg in plan:  # noqa: UP028
            yield msg

    return gen()


def null() -> PlanGen:
    """Do nothing (a message that only costs its processing)."""
    return (yield Msg("null"))


def abs_set(obj: Any, value: Any, *, group: Hashable | None = None, wait: bool = False) -> PlanGen:
    """Start setting `obj` to `value`; with `wait`, also wait for it. Returns the status."""
    if wait and group is None:
        group = new_uid()
    status = yield Msg("set", obj, value, group=group)
    if wait:
        yield Msg("wait", None, group=group)
    return status


def mv(*args: Any, group: Hashable | None = None) -> PlanGen:
    """Move devices together and wait for all: ``mv(m1, 1.0, m2, 2.0)``. Returns the statuses."""
    if len(args) % 2:
        raise ValueError(f"mv takes pairs of (device, value), got {len(args)} arguments")
    group = group if group is not None else new_uid()
    statuses = []
    for obj, value in zip(args[::2], args[1::2], strict=True):
        statuses.append((yield Msg("set", obj, value, group=group)))
    yield Msg("wait", None, group=group)
    return tuple(statuses)


def trigger(obj: Any, *, group: Hashable | None = None, wait: bool = False) -> PlanGen:
    """Trigger `obj` (start an acquisition); with `wait`, wait for it. Returns the status."""
    if wait and group is None:
        group = new_uid()
    status = yield Msg("trigger", obj, group=group)
    if wait:
        yield Msg("wait", None, group=group)
    return status


def read(obj: Any) -> PlanGen:
    """Read `obj`; inside ``create``/``save`` the reading joins the event. Returns it."""
    return (yield Msg("read", obj))


def wait(group: Hashable | None = None, *, timeout: float | None = None) -> PlanGen:
    """Wait for every status started in `group` (TimeoutError after `timeout` seconds)."""
    if timeout is None:
        return (yield Msg("wait", None, group=group))
    return (yield Msg("wait", None, group=group, timeout=timeout))


def sleep(seconds: float) -> PlanGen:
    """Sleep `seconds` on the engine's Clock (a hard pause cuts it short; it is replayed)."""
    return (yield Msg("sleep", None, seconds))


def checkpoint() -> PlanGen:
    """Mark a safe place to resume from; a deferred pause lands here."""
    return (yield Msg("checkpoint"))


def clear_checkpoint() -> PlanGen:
    """Declare that there is no safe place to resume from until the next checkpoint: a pause
    or suspension until then aborts the plan."""
    return (yield Msg("clear_checkpoint"))


def pause(*, defer: bool = False) -> PlanGen:
    """Pause the plan here (hard), or at the next checkpoint (`defer`)."""
    return (yield Msg("pause", None, defer=defer))


def open_run(md: dict[str, Any] | None = None) -> PlanGen:
    """Open a run (emits its start document, with `md` added). Returns the run's uid."""
    return (yield Msg("open_run", **(md or {})))


def close_run(exit_status: str | None = None, reason: str | None = None) -> PlanGen:
    """Close the open run (emits its stop document). Returns the run's uid."""
    return (yield Msg("close_run", exit_status=exit_status, reason=reason))


def create(name: str = "primary") -> PlanGen:
    """Start bundling readings into one event of stream `name`."""
    return (yield Msg("create", None, name=name))


def save() -> PlanGen:
    """Emit the bundled readings as one event (and its stream's descriptor, the first time)."""
    return (yield Msg("save"))


def drop() -> PlanGen:
    """Discard the bundled readings."""
    return (yield Msg("drop"))


def stage(obj: Any) -> PlanGen:
    """Stage `obj` (the engine unstages it at the end if the plan does not)."""
    return (yield Msg("stage", obj))


def unstage(obj: Any) -> PlanGen:
    """Unstage `obj`."""
    return (yield Msg("unstage", obj))


def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> PlanGen:
    """Call ``fn(*args, **kwargs)``, awaiting the result if it is awaitable (an instrument
    command, a decorated coroutine). Returns its value."""
    return (yield Msg("call", fn, *args, **kwargs))


def rewindable(flag: bool | None = None) -> PlanGen:
    """Turn replay-on-resume on or off (None: only ask). Returns the current setting."""
    return (yield Msg("rewindable", None, flag))


def install_suspender(suspender: Suspender) -> PlanGen:
    """Watch `suspender` until this plan ends (or `remove_suspender`)."""
    return (yield Msg("install_suspender", suspender))


def remove_suspender(suspender: Suspender) -> PlanGen:
    """Stop watching a suspender installed by this plan."""
    return (yield Msg("remove_suspender", suspender))


def subscribe(name: str, callback: Callable[[str, dict[str, Any]], Any]) -> PlanGen:
    """Send documents named `name` (or ``"all"``) to `callback` until this plan ends.
    Returns a token for `unsubscribe`."""
    return (yield Msg("subscribe", None, callback, name))


def unsubscribe(token: int) -> PlanGen:
    """Undo `subscribe`."""
    return (yield Msg("unsubscribe", None, token))


def trigger_and_read(devices: Sequence[Any], name: str = "primary") -> PlanGen:
    """Trigger every triggerable device, wait, and read them all into one event.

    Returns the merged readings.
    """
    group = new_uid()
    for obj in devices:
        if callable(getattr(obj, "trigger", None)):
            yield Msg("trigger", obj, group=group)
    yield Msg("wait", None, group=group)
    yield Msg("create", None, name=name)
    readings: dict[str, Any] = {}
    for obj in devices:
        readings.update((yield Msg("read", obj)))
    yield Msg("save")
    return readings


def finalize_wrapper(
    plan: Iterable[Msg], final_plan: Callable[[], Iterable[Msg]] | Iterable[Msg]
) -> PlanGen:
    """Run `plan`, then `final_plan` whatever happens (error, stop, abort).

    After a halt the plan is closed and gets no chance to yield, so `final_plan` does not run
    then; the engine's own clean-up still does.
    """
    try:
        result = yield from ensure_generator(plan)
    except GeneratorExit:
        raise
    except BaseException:
        yield from ensure_generator(final_plan() if callable(final_plan) else final_plan)
        raise
    yield from ensure_generator(final_plan() if callable(final_plan) else final_plan)
    return result


def run_wrapper(plan: Iterable[Msg], md: dict[str, Any] | None = None) -> PlanGen:
    """Enclose `plan` in ``open_run`` / ``close_run``; the stop document's exit status says
    how the plan ended (success, abort with the reason, or fail with the error)."""
    yield Msg("open_run", **(md or {}))
    try:
        result = yield from ensure_generator(plan)
    except GeneratorExit:
        raise
    except RequestStop:
        yield Msg("close_run", exit_status="success", reason="stop")
        raise
    except RequestAbort as exc:
        yield Msg("close_run", exit_status="abort", reason=str(exc))
        raise
    except Exception as exc:
        yield Msg("close_run", exit_status="fail", reason=f"{type(exc).__name__}: {exc}")
        raise
    yield Msg("close_run")
    return result


def stage_wrapper(plan: Iterable[Msg], devices: Sequence[Any]) -> PlanGen:
    """Stage `devices` (those that can be) before `plan` and unstage them, in reverse order,
    after it, whatever happens."""
    stageable = [d for d in dict.fromkeys(devices) if callable(getattr(d, "stage", None))]
    staged: list[Any] = []

    def unstage_all() -> PlanGen:
        # Only what was staged: a failed stage leaves the rest untouched.
        for obj in reversed(staged):
            yield Msg("unstage", obj)

    def inner() -> PlanGen:
        for obj in stageable:
            yield Msg("stage", obj)
            staged.append(obj)
        return (yield from ensure_generator(plan))

    return (yield from finalize_wrapper(inner(), unstage_all))
