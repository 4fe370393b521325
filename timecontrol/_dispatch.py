"""The dispatcher: the Schedule, the registered actions, the timers and the dispatch gate.

This is the narrow core that every part stands on. It turns due intents into running
coroutines and records their outcomes (``action.started`` / ``succeeded`` / ``failed`` /
``cancelled``) in the Log; it knows nothing of jobs, plans or queues. The scheduler and the
run engine depend on it (and on the Log), never on the `Engine` facade, which owns it.

Dispatch: on asyncio one loop timer (``loop.call_at``) is armed for the earliest intent and
each due action starts as a plain asyncio task; anyio's task spawn and cancel scopes cost
several times the floor per run, and dispatch is the hot path. On trio (and any other anyio
backend) a dispatch task sleeps in the owner's task group. Both paths share the same decisions
(`_fire_due`) and record the same events.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import traceback
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar, overload

import anyio
import msgspec
from anyio.abc import TaskGroup

from ._clock import Clock, current_clock, to_timestamp
from ._exceptions import EventPayloadError, TimeControlError, UnknownActionError
from ._log import Log
from ._schedule import Intent, Schedule

__all__ = ["Action", "Dispatcher", "current_dispatcher", "current_log", "jsonable"]

Action = Callable[..., Awaitable[Any]]
A = TypeVar("A", bound=Action)

#: Names of the library's own actions (the scheduler's wrappers, ...): hidden from listings,
#: and refused as user action names.
INTERNAL_PREFIX = "timecontrol."

_json = msgspec.json.Encoder()
_json_dict = msgspec.json.Decoder(dict[str, Any])

# Dispatchers that are running, newest last: limiters and drivers created without an explicit
# Log write their events to the newest one's (see `current_log`).
_active: list[Dispatcher] = []


def current_log() -> Log | None:
    """The Log of the most recently started engine that is still running, or None."""
    return _active[-1].log if _active else None


def current_dispatcher() -> Dispatcher | None:
    """The dispatcher of the most recently started engine that is still running, or None."""
    return _active[-1] if _active else None


def jsonable(value: Any) -> Any:
    """`value` itself if it encodes as JSON, else ``{"repr": repr(value)}`` (never pickled)."""
    try:
        _json.encode(value)
    except (TypeError, ValueError, msgspec.EncodeError, OverflowError, RecursionError):
        # ValueError covers a str with a lone surrogate (no UTF-8); repr() escapes it.
        return {"repr": _text(repr(value))}
    return value


def _text(value: str, limit: int = 100_000) -> str:
    """`value` made safe for a JSON payload: lone surrogates escaped, at most `limit` chars."""
    if len(value) > limit:
        value = value[:limit] + "…"
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _is_async_function(fn: object) -> bool:
    # A plain bool (not inspect's TypeGuard) so that callers keep their own precise type.
    return inspect.iscoroutinefunction(fn)


def _check_json_kwargs(kwargs: dict[str, Any] | None) -> None:
    if kwargs is None:
        return
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise EventPayloadError(f"kwargs must be a dict with str keys, got {kwargs!r}")
    try:
        same = _json_dict.decode(_json.encode(kwargs)) == kwargs
    except (TypeError, ValueError, msgspec.EncodeError, OverflowError, RecursionError) as exc:
        raise EventPayloadError(
            f"kwargs {kwargs!r:.200} are not JSON ({exc}); persisted work may only carry str, "
            "int, float, bool, None, lists and str-keyed dicts"
        ) from None
    if not same:
        # A tuple, a datetime, NaN...: JSON would hand back something else after a restart.
        raise EventPayloadError(
            f"kwargs {kwargs!r:.200} do not survive JSON unchanged; persisted work may only "
            "carry str, int, finite float, bool, None, lists and str-keyed dicts (pass a "
            "datetime as an ISO string or POSIX seconds, a tuple as a list)"
        )


def _check_subject(subject: object) -> None:
    if not isinstance(subject, str):
        raise EventPayloadError(f"subject must be a str, got {subject!r}")
    try:
        subject.encode("utf-8")
    except UnicodeEncodeError:
        raise EventPayloadError(f"subject {subject!r} is not valid text (lone surrogate)") from None


class Dispatcher:
    """The Schedule, the actions, the timers and the gate of one engine (its owner).

    Args:
        clock: the Clock (default: `current_clock()` at first use).
        open_log: called when a Log is needed and none is open (the owner opens its store).
        on_log: called after each Log is opened (the owner's parts attach to it).
    """

    def __init__(
        self,
        clock: Clock | None,
        open_log: Callable[[], Log],
        on_log: Callable[[], None] | None = None,
    ) -> None:
        self._clock = clock
        self._open_log = open_log
        self._on_log = on_log
        self._log: Log | None = None
        self.schedule = Schedule()
        self._actions: dict[str, Action] = {}
        self._quiet: set[str] = set()  # actions whose start/success are not recorded
        self._with_intent: set[str] = set()  # actions called as fn(intent) (`intent_action`)
        self._driver: _AsyncioDriver | _TaskDriver | None = None
        self._tg: TaskGroup | None = None
        self._running = 0
        self._idle: anyio.Event | None = None
        # Dispatch gate: names of whoever holds scheduled dispatch (pause, panic, ...).
        self._holds: set[str] = set()
        self._cancelled_exc: type[BaseException] = asyncio.CancelledError

    # -- properties -------------------------------------------------------------------------

    @property
    def clock(self) -> Clock:
        """The Clock."""
        if self._clock is None:
            self._clock = current_clock()
        return self._clock

    @property
    def log(self) -> Log:
        """The current Log (opened through the owner on first use, and again after a stop)."""
        log = self._log
        if log is None:
            log = self._log = self._open_log()
            if self._on_log is not None:
                self._on_log()
        return log

    @property
    def log_if_open(self) -> Log | None:
        """The current Log if one is open (or closed but not yet replaced), else None."""
        return self._log

    def _forget_log(self) -> None:
        """Drop a closed Log so that the next use opens the store again (a restart)."""
        if self._log is not None and self._log.closed:
            self._log = None

    @property
    def running(self) -> bool:
        """True while dispatch runs (between the owner's start and stop)."""
        return self._driver is not None

    @property
    def service_group(self) -> TaskGroup | None:
        """The owner's task group while it runs and takes new work, else None.

        For parts that need a long-lived task of their own (a watchdog that started itself):
        its failure then ends the engine, loudly, instead of vanishing.
        """
        tg = self._tg
        if tg is None or self._driver is None or tg.cancel_scope.cancel_called:
            return None
        return tg

    @property
    def actions(self) -> dict[str, Action]:
        """The user's registered actions, by name (a copy; the library's own are hidden)."""
        return {k: v for k, v in self._actions.items() if not k.startswith(INTERNAL_PREFIX)}

    @property
    def running_actions(self) -> int:
        """How many actions are running now."""
        return self._running

    # -- actions ----------------------------------------------------------------------------

    @overload
    def action(self, func: A, /, *, name: str | None = None, record: bool = True) -> A: ...
    @overload
    def action(
        self, func: None = None, /, *, name: str | None = None, record: bool = True
    ) -> Callable[[A], A]: ...

    def action(
        self, func: A | None = None, /, *, name: str | None = None, record: bool = True
    ) -> A | Callable[[A], A]:
        """Register an async function as an action, by its name (or `name`); returns it as is.

        Usable bare (``@engine.action``) or with arguments (``@engine.action(name="sample")``).
        With ``record=False`` its starts and successes are not written to the Log (for
        wrappers that record their own events, such as the scheduler's); failures and
        cancellations always are.
        """

        def register(fn: A) -> A:
            if not _is_async_function(fn):
                raise TimeControlError(
                    f"action {fn!r} must be an async function (async def), "
                    f"got a {type(fn).__name__}"
                )
            key = name or fn.__name__
            existing = self._actions.get(key)
            if existing is not None and existing != fn:
                raise TimeControlError(
                    f"an action named {key!r} is already registered ({existing!r}); "
                    "pass name=... to register this one under another name"
                )
            self._actions[key] = fn
            if record:
                self._quiet.discard(key)
            else:
                self._quiet.add(key)
            return fn

        return register if func is None else register(func)

    def intent_action(self, fn: Action, name: str) -> None:
        """Register a quiet action that is called with its `Intent` (``fn(intent)``) rather
        than with the intent's kwargs. For the library's own wrappers: the scheduler's job
        intents then need no kwargs (the job is the subject, the fire time the due), which
        saves a dict per job and per run."""
        self.action(fn, name=name, record=False)
        self._with_intent.add(name)

    def _resolve(self, action: str | Action) -> str:
        if isinstance(action, str):
            if action not in self._actions:
                raise UnknownActionError(
                    f"no action named {action!r}; registered actions: {sorted(self.actions)}"
                )
            return action
        for key, fn in self._actions.items():
            if fn == action:
                return key
        self.action(action)
        return getattr(action, "__name__", repr(action))

    # -- scheduling -------------------------------------------------------------------------

    def submit(
        self,
        action: str | Action,
        *,
        at: datetime | float | None = None,
        kwargs: dict[str, Any] | None = None,
        subject: str = "",
        priority: int = 0,
        reason: str = "",
    ) -> Intent:
        """Schedule `action(**kwargs)` at wall time `at` (default: now) and return the intent.

        `action` is a registered name or an async function (registered on the fly). `kwargs`
        must be JSON, because intents may be persisted. `at` must be aware (or POSIX seconds).
        """
        name = self._resolve(action)
        _check_json_kwargs(kwargs)
        _check_subject(subject)
        due = self.clock.time() if at is None else to_timestamp(at, "at")
        intent = self.schedule.add(
            due, name, subject=subject, kwargs=kwargs, priority=priority, reason=reason
        )
        driver = self._driver
        if driver is not None and due < driver.armed_for:
            driver.rearm()  # the loop waits for a later intent: consider this one
        return intent

    def submit_trusted(
        self,
        name: str,
        due: float,
        kwargs: dict[str, Any] | None,
        subject: str,
        priority: int = 0,
        reason: str = "",
    ) -> Intent:
        """`submit` for the library's own intents (the scheduler's, once per run).

        The caller guarantees what `submit` checks: `name` is registered, `due` is finite
        POSIX seconds and `kwargs` is plain JSON (str keys; str, int, bool, None, finite
        floats); those checks cost more than the rest of a submit. The subject is checked.
        """
        if not subject.isascii():
            _check_subject(subject)
        intent = self.schedule.add(
            due, name, subject=subject, kwargs=kwargs, priority=priority, reason=reason
        )
        driver = self._driver
        if driver is not None and due < driver.armed_for:
            driver.rearm()
        return intent

    def cancel(self, intent: Intent) -> bool:
        """Cancel a pending intent; True if it was pending. Records ``intent.cancelled``."""
        if not self.schedule.cancel(intent):
            return False
        self.log._emit(
            "intent.cancelled", intent.subject, {"seq": intent.seq, "action": intent.action}
        )
        return True

    async def wait_idle(self) -> None:
        """Return once nothing is pending in the Schedule and nothing is running."""
        while self._running or self.schedule:
            if self._idle is None:
                self._idle = anyio.Event()
            await self._idle.wait()

    # -- start and stop (called by the owner) ------------------------------------------------

    def open(self, tg: TaskGroup) -> None:
        """Start dispatching in the owner's task group (on asyncio: a loop timer instead)."""
        self._cancelled_exc = anyio.get_cancelled_exc_class()
        self._tg = tg
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        _active.append(self)
        if loop is not None:
            driver: _AsyncioDriver | _TaskDriver = _AsyncioDriver(self, loop)
            self._driver = driver
            driver.rearm()
        else:
            task_driver = _TaskDriver(self, tg)
            self._driver = task_driver
            tg.start_soon(task_driver.loop)

    async def close(self) -> None:
        """Stop dispatching; on asyncio cancel and await the running actions' tasks (on
        other backends they end with the owner's task group)."""
        driver, self._driver = self._driver, None
        self._tg = None
        if self in _active:
            _active.remove(self)
        if isinstance(driver, _AsyncioDriver):
            await driver.aclose()

    # -- dispatch gate (used by pause / resume / panic) ---------------------------------------

    def hold_dispatch(self, holder: str) -> None:
        """Stop starting scheduled intents until every holder has released (loop-level pause).

        Intents that fall due meanwhile stay in the Schedule; they start on release (the
        scheduler applies its misfire policy to them).
        """
        self._holds.add(holder)

    def release_dispatch(self, holder: str) -> None:
        """Withdraw `holder`'s hold; dispatch resumes once no hold remains."""
        self._holds.discard(holder)
        if not self._holds and self._driver is not None:
            self._driver.rearm()

    @property
    def dispatch_holds(self) -> frozenset[str]:
        """Who currently holds dispatch (empty when dispatching)."""
        return frozenset(self._holds)

    def cancel_running(self) -> int:
        """Cancel every running action (e.g. on panic); each records ``action.cancelled``."""
        driver = self._driver
        return 0 if driver is None else driver.cancel_all()

    # -- the loop ---------------------------------------------------------------------------

    def _maybe_idle(self) -> None:
        if self._idle is not None and not self._running and not self.schedule:
            idle, self._idle = self._idle, None
            idle.set()

    def _fire_due(self, spawn: Callable[[Intent, float], None]) -> None:
        """Start every intent due now (unless dispatch is held)."""
        if self._holds:
            return
        now = self.clock.time()
        pop_due, quiet = self.schedule.pop_due, self._quiet
        intent = pop_due(now)
        while intent is not None:
            self._running += 1
            # Recorded here, in (due, priority, seq) order, not in the new task: trio starts
            # the tasks of one batch in an arbitrary order.
            if intent.action not in quiet:
                self.log._emit(
                    "action.started",
                    intent.subject or intent.action,
                    {
                        "seq": intent.seq,
                        "action": intent.action,
                        "due": intent.due,
                        "late": now - intent.due,
                    },
                )
            spawn(intent, now)
            intent = pop_due(now)
        if self._idle is not None:
            self._maybe_idle()

    async def _run(
        self,
        intent: Intent,
        now: float,
        scope: anyio.CancelScope | None,
        tasks: dict[int, Any] | None = None,
    ) -> None:
        """Run one intent's action and record its outcome (`scope`: trio path only; `tasks`:
        the asyncio driver's running tasks, from which this one removes itself at the end)."""
        t0 = self.clock.monotonic()
        try:
            fn = self._actions.get(intent.action)
            if fn is None:
                raise UnknownActionError(
                    f"no action named {intent.action!r}; registered: {sorted(self.actions)}"
                )
            call = fn(intent) if intent.action in self._with_intent else fn(**(intent.kwargs or {}))
            if scope is None:
                result = await call
            else:
                result = None
                with scope:
                    result = await call
                if scope.cancelled_caught:  # cancelled on its own (`cancel_running`)
                    self._outcome(intent, "action.cancelled", t0)
                    return
        except Exception as exc:
            self._outcome(
                intent,
                "action.failed",
                t0,
                error=type(exc).__name__,
                message=_text(str(exc)),
                traceback=_text("".join(traceback.format_exception(exc))),
            )
        except BaseException as exc:
            if not isinstance(exc, self._cancelled_exc):
                raise
            self._outcome(intent, "action.cancelled", t0)
            # Under anyio the owner's own cancellation must propagate; a task of the asyncio
            # driver is ours alone and simply ends.
            if scope is not None:
                raise
        else:
            if intent.action not in self._quiet:
                self._outcome(intent, "action.succeeded", t0, result=jsonable(result))
        finally:
            self._running -= 1
            if tasks is not None:
                tasks.pop(intent.seq, None)
            if self._idle is not None:
                self._maybe_idle()

    def _outcome(self, intent: Intent, kind: str, t0: float, **extra: Any) -> None:
        payload = {
            "seq": intent.seq,
            "action": intent.action,
            "duration": self.clock.monotonic() - t0,
            **extra,
        }
        self.log._emit(kind, intent.subject or intent.action, payload)


class _AsyncioDriver:
    """Dispatch on asyncio: one `loop.call_at` timer for the earliest intent, a task per run."""

    def __init__(self, dispatcher: Dispatcher, loop: asyncio.AbstractEventLoop) -> None:
        self.dispatcher = dispatcher
        self.loop = loop
        self.handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self.armed_for = math.inf  # the due (wall) time the timer is set for
        self.tasks: dict[int, asyncio.Task[None]] = {}  # running, by intent seq
        recheck = getattr(dispatcher.clock, "recheck", 1.0)
        self.recheck = recheck if isinstance(recheck, int | float) else 1.0
        # A clock that announces wall-clock steps (the virtual one) gets the timer re-armed
        # at once; others are re-read at least every `recheck` seconds.
        add_listener = getattr(dispatcher.clock, "add_step_listener", None)
        if add_listener is not None:
            add_listener(self.rearm)

    def rearm(self) -> None:
        """(Re)set the timer for the earliest pending intent."""
        if self.armed_for == -math.inf:
            return  # closed
        dispatcher = self.dispatcher
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        self.armed_for = math.inf
        if dispatcher._holds:
            return
        nxt = dispatcher.schedule.peek()
        if nxt is None:
            return
        self.armed_for = nxt.due
        delay = nxt.due - dispatcher.clock.time()
        if delay <= 0:
            self.handle = self.loop.call_soon(self._on_timer)
        else:
            # Never further ahead than `recheck`: after a wall-clock step the next wake
            # re-reads wall time (see Clock.sleep_until_wall).
            self.handle = self.loop.call_at(
                self.loop.time() + min(delay, self.recheck), self._on_timer
            )

    def _on_timer(self) -> None:
        self.handle = None
        self.armed_for = math.inf
        self.dispatcher._fire_due(self._spawn)
        self.rearm()

    def _spawn(self, intent: Intent, now: float) -> None:
        # The task forgets itself when its run ends (cheaper than a done callback, which
        # costs a round of the loop per run).
        task = self.loop.create_task(self.dispatcher._run(intent, now, None, self.tasks))
        if not task.done():  # (an eager task factory may have run it to the end already)
            self.tasks[intent.seq] = task

    def cancel_all(self) -> int:
        # A task cancelled before its first step never runs `_run`'s finally: forget it here.
        for seq in [seq for seq, task in self.tasks.items() if task.done()]:
            del self.tasks[seq]
        live = [task for task in self.tasks.values() if not task.done()]
        for task in live:
            task.cancel()
        return len(live)

    async def aclose(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        self.armed_for = -math.inf  # nothing re-arms after close
        remove_listener = getattr(self.dispatcher.clock, "remove_step_listener", None)
        if remove_listener is not None:
            remove_listener(self.rearm)
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


class _TaskDriver:
    """Dispatch on any anyio backend (trio): a task in the owner's group sleeps till due."""

    def __init__(self, dispatcher: Dispatcher, tg: TaskGroup) -> None:
        self.dispatcher = dispatcher
        self.tg = tg
        self.armed_for = math.inf
        self.sleep_scope: anyio.CancelScope | None = None
        self.scopes: dict[int, anyio.CancelScope] = {}
        # The start gate of the newest spawned run: trio starts the tasks of one batch in an
        # arbitrary order, so each run waits until the one dispatched before it has started:
        # runs due together start in (due, priority, seq) order, as on asyncio.
        self.last_started: anyio.Event | None = None

    def rearm(self) -> None:
        """Wake the dispatch task so that it looks at the Schedule again."""
        if self.sleep_scope is not None:
            self.sleep_scope.cancel()

    def _spawn(self, intent: Intent, now: float) -> None:
        scope = anyio.CancelScope()
        self.scopes[intent.seq] = scope
        before, self.last_started = self.last_started, anyio.Event()
        self.tg.start_soon(self._run, intent, now, scope, before, self.last_started)

    async def _run(
        self,
        intent: Intent,
        now: float,
        scope: anyio.CancelScope,
        before: anyio.Event | None,
        started: anyio.Event,
    ) -> None:
        try:
            if before is not None and not before.is_set():
                await before.wait()
            started.set()
            await self.dispatcher._run(intent, now, scope)
        finally:
            self.scopes.pop(intent.seq, None)

    def cancel_all(self) -> int:
        live = [scope for scope in self.scopes.values() if not scope.cancel_called]
        for scope in live:
            scope.cancel()
        return len(live)

    async def loop(self) -> None:
        dispatcher = self.dispatcher
        clock, schedule = dispatcher.clock, dispatcher.schedule
        while True:
            dispatcher._fire_due(self._spawn)
            nxt = None if dispatcher._holds else schedule.peek()
            self.armed_for = nxt.due if nxt is not None else math.inf
            with anyio.CancelScope() as scope:
                self.sleep_scope = scope
                if nxt is None:
                    await anyio.sleep_forever()
                else:
                    await clock.sleep_until_wall(nxt.due)
            self.sleep_scope = None
