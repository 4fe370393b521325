"""The Engine: one loop that turns due intents into running coroutines and events.

This is the skeleton the scheduler and the run engine grow on. It owns a `Schedule` (what will
happen), a `Log` (what did happen) and a registry of *actions* (async functions, by name, so
that persisted intents can refer to them). Its dispatch loop sleeps until the earliest intent is
due (on wall time, re-anchoring after clock steps), starts its coroutine in the engine's task
group and records ``action.started`` / ``action.succeeded`` / ``action.failed`` /
``action.cancelled``.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import os
import traceback
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar, overload

import anyio
import msgspec
from anyio.abc import TaskGroup

from ._clock import Clock, current_clock, to_timestamp
from ._exceptions import EngineStateError, EventPayloadError, TimeControlError, UnknownActionError
from ._log import Log, LogSink
from ._schedule import Intent, Schedule

__all__ = ["Action", "Engine", "current_engine", "jsonable"]

Action = Callable[..., Awaitable[Any]]
A = TypeVar("A", bound=Action)

_json = msgspec.json.Encoder()

# Engines that are running, newest last: limiters and drivers created without an explicit
# engine write their events to the newest one's Log (see `current_engine`).
_active: list[Engine] = []


def current_engine() -> Engine | None:
    """The most recently started engine that is still running, or None.

    Limiters and instruments use it to find a Log to write to when none was given.
    """
    return _active[-1] if _active else None


def jsonable(value: Any) -> Any:
    """`value` itself if it encodes as JSON, else ``{"repr": repr(value)}`` (never pickled)."""
    try:
        _json.encode(value)
    except (TypeError, msgspec.EncodeError, OverflowError):
        return {"repr": repr(value)}
    return value


def _is_async_function(fn: object) -> bool:
    # A plain bool (not inspect's TypeGuard) so that callers keep their own precise type.
    return inspect.iscoroutinefunction(fn)


def _check_json_kwargs(kwargs: dict[str, Any] | None) -> None:
    if kwargs is None:
        return
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise EventPayloadError(f"kwargs must be a dict with str keys, got {kwargs!r}")
    try:
        _json.encode(kwargs)
    except (TypeError, msgspec.EncodeError, OverflowError) as exc:
        raise EventPayloadError(
            f"kwargs {kwargs!r} are not JSON ({exc}); persisted work may only carry str, int, "
            "float, bool, None, lists and dicts"
        ) from None


class Engine:
    """The one loop: a Schedule of intents, a Log of events and the coroutines in between.

    Args:
        store: None for an in-memory Log, or a path to a SQLite file (created if missing) that
            keeps every event durably, or any `LogSink`.
        clock: the Clock to use (default: `current_clock()`, virtual under timecontrol.testing).
        ring_size: how many recent events the Log keeps in memory.

    Use it as ``async with Engine() as engine:`` (asyncio and trio), or in ``python -m asyncio``
    with ``await engine.start()`` and ``await engine.stop()``.
    """

    def __init__(
        self,
        store: str | os.PathLike[str] | LogSink | None = None,
        *,
        clock: Clock | None = None,
        ring_size: int = 100_000,
    ) -> None:
        self._store_arg = store
        self._clock = clock
        self._ring_size = ring_size
        self._log: Log | None = None
        self.schedule = Schedule()
        self._actions: dict[str, Action] = {}
        self._tg: TaskGroup | None = None
        self._sleep_scope: anyio.CancelScope | None = None
        self._sleep_until = math.inf
        self._running = 0
        self._idle: anyio.Event | None = None
        self._serve_task: asyncio.Task[None] | None = None
        self._stop_requested: anyio.Event | None = None
        self._started = False
        # Dispatch gate: names of whoever holds scheduled dispatch (pause, panic, ...).
        self._holds: set[str] = set()
        self._released: anyio.Event | None = None
        self._action_scopes: dict[int, anyio.CancelScope] = {}

    # -- properties -------------------------------------------------------------------------

    @property
    def clock(self) -> Clock:
        """The engine's Clock."""
        if self._clock is None:
            self._clock = current_clock()
        return self._clock

    @property
    def log(self) -> Log:
        """The engine's Log (created, and its store opened, on first use)."""
        if self._log is None:
            self._log = Log(clock=self.clock, ring_size=self._ring_size, sink=self._open_sink())
        return self._log

    @property
    def running(self) -> bool:
        """True between `start` (or ``async with``) and `stop`."""
        return self._started

    @property
    def actions(self) -> dict[str, Action]:
        """The registered actions, by name (a copy)."""
        return dict(self._actions)

    def _open_sink(self) -> LogSink | None:
        store = self._store_arg
        if store is None:
            return None
        if isinstance(store, str | os.PathLike):
            from .stores import SQLiteLog

            return SQLiteLog(Path(store))
        if isinstance(store, LogSink):
            return store
        raise TimeControlError(
            f"store must be None, a path to a SQLite file or a LogSink, got {store!r}"
        )

    # -- actions ----------------------------------------------------------------------------

    @overload
    def action(self, func: A, /, *, name: str | None = None) -> A: ...
    @overload
    def action(self, func: None = None, /, *, name: str | None = None) -> Callable[[A], A]: ...

    def action(self, func: A | None = None, /, *, name: str | None = None) -> A | Callable[[A], A]:
        """Register an async function as an action, by its name (or `name`); returns it as is.

        Usable bare (``@engine.action``) or with a name (``@engine.action(name="sample")``).
        """

        def register(fn: A) -> A:
            if not _is_async_function(fn):
                raise TimeControlError(
                    f"action {fn!r} must be an async function (async def), "
                    f"got a {type(fn).__name__}"
                )
            key = name or fn.__name__
            existing = self._actions.get(key)
            if existing is not None and existing is not fn:
                raise TimeControlError(
                    f"an action named {key!r} is already registered ({existing!r}); "
                    "pass name=... to register this one under another name"
                )
            self._actions[key] = fn
            return fn

        return register if func is None else register(func)

    def _resolve(self, action: str | Action) -> str:
        if isinstance(action, str):
            if action not in self._actions:
                raise UnknownActionError(
                    f"no action named {action!r}; registered actions: {sorted(self._actions)}"
                )
            return action
        for key, fn in self._actions.items():
            if fn is action:
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
        due = self.clock.time() if at is None else to_timestamp(at, "at")
        intent = self.schedule.add(
            due, name, subject=subject, kwargs=kwargs, priority=priority, reason=reason
        )
        if due < self._sleep_until and self._sleep_scope is not None:
            # The loop sleeps towards a later intent: wake it so it considers this one.
            self._sleep_scope.cancel()
        return intent

    def cancel(self, intent: Intent) -> bool:
        """Cancel a pending intent; True if it was pending. Records ``intent.cancelled``."""
        if not self.schedule.cancel(intent):
            return False
        self.log.append(
            "intent.cancelled", intent.subject, {"seq": intent.seq, "action": intent.action}
        )
        return True

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._started:
            raise EngineStateError("this engine is already running")
        log = self.log
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        self._started = True
        log.append("engine.started", "", {"pid": os.getpid()})
        _active.append(self)
        tg.start_soon(self._dispatch)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        tg = self._tg
        assert tg is not None
        # Stopping cancels the dispatch loop and whatever is still running; their
        # cancellation is recorded before the Log is flushed and closed.
        tg.cancel_scope.cancel()
        try:
            return await tg.__aexit__(exc_type, exc, tb)
        finally:
            self._tg = None
            self._started = False
            if self in _active:
                _active.remove(self)
            with anyio.CancelScope(shield=True):
                log = self.log
                log.append("engine.stopped", "", {"pending": len(self.schedule)})
                await log.aclose()
                self._log = None

    async def start(self) -> None:
        """Start the engine in the background (asyncio only; for ``python -m asyncio``).

        Under trio, or inside your own structured code, use ``async with engine:``.
        """
        if self._started or self._serve_task is not None:
            raise EngineStateError("this engine is already running")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise EngineStateError(
                "engine.start() runs the engine in a background asyncio task; under trio use "
                "'async with engine:' instead"
            ) from None
        started = asyncio.Event()
        self._stop_requested = anyio.Event()

        async def serve() -> None:
            async with self:
                started.set()
                assert self._stop_requested is not None
                await self._stop_requested.wait()

        self._serve_task = loop.create_task(serve(), name="timecontrol-engine")
        waiter = asyncio.ensure_future(started.wait())
        await asyncio.wait({waiter, self._serve_task}, return_when=asyncio.FIRST_COMPLETED)
        if not started.is_set():
            waiter.cancel()
            task, self._serve_task = self._serve_task, None
            await task  # re-raises why it could not start

    async def stop(self) -> None:
        """Stop an engine started with `start`: cancel running work, flush and close the Log."""
        task = self._serve_task
        if task is None or self._stop_requested is None:
            raise EngineStateError("stop() ends an engine begun with start(); none is running")
        self._stop_requested.set()
        self._serve_task = None
        await task

    async def wait_idle(self) -> None:
        """Return once nothing is pending in the Schedule and nothing is running."""
        while self._running or self.schedule:
            if self._idle is None:
                self._idle = anyio.Event()
            await self._idle.wait()

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
        if not self._holds and self._released is not None:
            released, self._released = self._released, None
            released.set()

    @property
    def dispatch_holds(self) -> frozenset[str]:
        """Who currently holds dispatch (empty when dispatching)."""
        return frozenset(self._holds)

    def cancel_running(self) -> int:
        """Cancel every running action (e.g. on panic); each records ``action.cancelled``."""
        for scope in self._action_scopes.values():
            scope.cancel()
        return len(self._action_scopes)

    # -- the loop ---------------------------------------------------------------------------

    def _maybe_idle(self) -> None:
        if self._idle is not None and not self._running and not self.schedule:
            idle, self._idle = self._idle, None
            idle.set()

    async def _dispatch(self) -> None:
        clock, schedule = self.clock, self.schedule
        tg = self._tg
        assert tg is not None
        while True:
            while self._holds:
                if self._released is None:
                    self._released = anyio.Event()
                await self._released.wait()
            now = clock.time()
            intent = schedule.pop_due(now)
            while intent is not None:
                self._running += 1
                tg.start_soon(self._run, intent, now)
                intent = schedule.pop_due(now)
            self._maybe_idle()
            nxt = schedule.peek()
            self._sleep_until = nxt.due if nxt is not None else math.inf
            with anyio.CancelScope() as scope:
                self._sleep_scope = scope
                if nxt is None:
                    await anyio.sleep_forever()
                else:
                    await clock.sleep_until_wall(nxt.due)
            self._sleep_scope = None

    async def _run(self, intent: Intent, now: float) -> None:
        log = self.log
        subject = intent.subject or intent.action
        fn = self._actions.get(intent.action)
        try:
            if fn is None:
                raise UnknownActionError(
                    f"no action named {intent.action!r}; registered: {sorted(self._actions)}"
                )
            log.append(
                "action.started",
                subject,
                {
                    "seq": intent.seq,
                    "action": intent.action,
                    "due": intent.due,
                    "late": now - intent.due,
                },
            )
            t0 = self.clock.monotonic()
            try:
                with anyio.CancelScope() as scope:
                    self._action_scopes[intent.seq] = scope
                    result = await fn(**(intent.kwargs or {}))
            except BaseException as exc:
                duration = self.clock.monotonic() - t0
                if isinstance(exc, anyio.get_cancelled_exc_class()):
                    log.append(
                        "action.cancelled",
                        subject,
                        {"seq": intent.seq, "action": intent.action, "duration": duration},
                    )
                    raise
                if not isinstance(exc, Exception):
                    raise
                log.append(
                    "action.failed",
                    subject,
                    {
                        "seq": intent.seq,
                        "action": intent.action,
                        "duration": duration,
                        "error": type(exc).__name__,
                        "message": str(exc),
                        "traceback": "".join(traceback.format_exception(exc)),
                    },
                )
            else:
                if scope.cancelled_caught:
                    # Cancelled on its own (`cancel_running`), not with the engine: record it
                    # and let the engine carry on.
                    log.append(
                        "action.cancelled",
                        subject,
                        {
                            "seq": intent.seq,
                            "action": intent.action,
                            "duration": self.clock.monotonic() - t0,
                        },
                    )
                    return
                log.append(
                    "action.succeeded",
                    subject,
                    {
                        "seq": intent.seq,
                        "action": intent.action,
                        "duration": self.clock.monotonic() - t0,
                        "result": jsonable(result),
                    },
                )
        except UnknownActionError as exc:
            log.append(
                "action.failed",
                subject,
                {
                    "seq": intent.seq,
                    "action": intent.action,
                    "duration": 0.0,
                    "error": type(exc).__name__,
                    "message": str(exc),
                    "traceback": "",
                },
            )
        finally:
            self._action_scopes.pop(intent.seq, None)
            self._running -= 1
            self._maybe_idle()

    def __repr__(self) -> str:
        state = "running" if self._started else "stopped"
        return f"<Engine {state} pending={len(self.schedule)} actions={sorted(self._actions)}>"
