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
from collections.abc import Awaitable, Callable, Collection, Iterable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar, Unpack, overload

import anyio
import msgspec
from anyio.abc import TaskGroup

from ._clock import Clock, current_clock, to_timestamp
from ._exceptions import EngineStateError, EventPayloadError, TimeControlError, UnknownActionError
from ._log import Log, LogSink
from ._schedule import Intent, Schedule

if TYPE_CHECKING:
    from .plans import RunEngine, RunResult, RunState
    from .scheduler import ExecutionRecord, Job, JobStats, Scheduler, SchedulerStats
    from .scheduler._scheduler import JobOptions
    from .triggers import Trigger

__all__ = ["Action", "Engine", "current_engine", "jsonable"]

Action = Callable[..., Awaitable[Any]]
A = TypeVar("A", bound=Action)

_json = msgspec.json.Encoder()
_json_dict = msgspec.json.Decoder(dict[str, Any])

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


class Engine:
    """The one loop: a Schedule of intents, a Log of events and the coroutines in between.

    Args:
        store: None for an in-memory Log, or a path to a SQLite file (created if missing) that
            keeps every event durably, or any `LogSink`.
        clock: the Clock to use (default: `current_clock()`, virtual under timecontrol.testing).
            Its `monotonic()` must be the running loop's time (true of every timecontrol clock).
        ring_size: how many recent events the Log keeps in memory.

    Use it as ``async with Engine() as engine:`` (asyncio and trio), or in ``python -m asyncio``
    with ``await engine.start()`` and ``await engine.stop()``.

    Dispatch: on asyncio the engine arms one loop timer (``loop.call_at``) for the earliest
    intent and starts each due action as a plain asyncio task; anyio's task spawn and cancel
    scopes cost several times the floor per run, and dispatch is the hot path. On trio (and
    any other anyio backend) a dispatch task sleeps in the engine's task group. Both paths
    share the same decisions (`_fire_due`) and record the same events.
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
        self._quiet: set[str] = set()  # actions whose start/success are not recorded
        self._with_intent: set[str] = set()  # actions called as fn(intent) (`_intent_action`)
        self._on_start: list[Callable[[], Awaitable[None]]] = []
        self._on_stop: list[Callable[[], Awaitable[None]]] = []
        self._tg: TaskGroup | None = None
        self._driver: _AsyncioDriver | _TaskDriver | None = None
        self._running = 0
        self._idle: anyio.Event | None = None
        self._serve_task: asyncio.Task[None] | None = None
        self._stop_requested: anyio.Event | None = None
        self._started = False
        # Dispatch gate: names of whoever holds scheduled dispatch (pause, panic, ...).
        self._holds: set[str] = set()
        self._scheduler: Scheduler | None = None
        self._closing_scheduler_registered = False
        self._run_engine: RunEngine | None = None
        self._cancelled_exc: type[BaseException] = asyncio.CancelledError

    # -- properties -------------------------------------------------------------------------

    @property
    def clock(self) -> Clock:
        """The engine's Clock."""
        if self._clock is None:
            self._clock = current_clock()
        return self._clock

    @property
    def log(self) -> Log:
        """The engine's Log (created, and its store opened, on first use).

        After the engine stops, the Log stays readable (`recent`) but takes no more events; the
        next start opens a new one on the same store.
        """
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

    @property
    def running_actions(self) -> int:
        """How many actions are running now."""
        return self._running

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

    def _intent_action(self, fn: Action, name: str) -> None:
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
                    f"no action named {action!r}; registered actions: {sorted(self._actions)}"
                )
            return action
        for key, fn in self._actions.items():
            if fn == action:
                return key
        self.action(action)
        return getattr(action, "__name__", repr(action))

    # -- hooks ------------------------------------------------------------------------------

    def on_start(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run ``await callback()`` each time the engine starts, once dispatch is ready."""
        self._on_start.append(callback)

    def on_stop(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run ``await callback()`` each time the engine stops, before its Log is closed."""
        self._on_stop.append(callback)

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

    def _submit_trusted(
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

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._started:
            raise EngineStateError("this engine is already running")
        if self._log is not None and self._log.closed:
            self._log = None  # a restart: open the store again
        log = self.log
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        self._started = True
        self._cancelled_exc = anyio.get_cancelled_exc_class()
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        log._emit("engine.started", "", {"pid": os.getpid()})
        _active.append(self)
        try:
            if loop is not None:
                self._driver = _AsyncioDriver(self, loop)
                self._driver.rearm()
            else:
                self._driver = _TaskDriver(self, tg)
                tg.start_soon(self._driver.loop)
            for callback in self._on_start:
                await callback()
        except BaseException as exc:
            await self.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        tg = self._tg
        assert tg is not None
        driver, self._driver = self._driver, None
        # Stopping cancels the dispatch and whatever is still running; their cancellation is
        # recorded before the Log is flushed and closed.
        try:
            with anyio.CancelScope(shield=True):
                if isinstance(driver, _AsyncioDriver):
                    await driver.aclose()
            tg.cancel_scope.cancel()
            return await tg.__aexit__(exc_type, exc, tb)
        finally:
            self._tg = None
            self._started = False
            if self in _active:
                _active.remove(self)
            with anyio.CancelScope(shield=True):
                for callback in self._on_stop:
                    await callback()
                log = self.log
                log._emit("engine.stopped", "", {"pending": len(self.schedule)})
                await log.aclose()

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
        clock = self.clock
        seq, action = intent.seq, intent.action
        subject = intent.subject or action
        fn = self._actions.get(action)
        record = action not in self._quiet
        t0 = clock.monotonic()
        try:
            if fn is None:
                raise UnknownActionError(
                    f"no action named {action!r}; registered: {sorted(self._actions)}"
                )
            with_intent = action in self._with_intent
            call = fn(intent) if with_intent else fn(**(intent.kwargs or {}))
            if scope is None:
                result = await call
            else:
                result = None
                with scope:
                    result = await call
                if scope.cancelled_caught:  # cancelled on its own (`cancel_running`)
                    self.log._emit(
                        "action.cancelled",
                        subject,
                        {"seq": seq, "action": action, "duration": clock.monotonic() - t0},
                    )
                    return
        except Exception as exc:
            self.log._emit(
                "action.failed",
                subject,
                {
                    "seq": seq,
                    "action": action,
                    "duration": clock.monotonic() - t0,
                    "error": type(exc).__name__,
                    "message": _text(str(exc)),
                    "traceback": _text("".join(traceback.format_exception(exc))),
                },
            )
        except BaseException as exc:
            if isinstance(exc, self._cancelled_exc):
                self.log._emit(
                    "action.cancelled",
                    subject,
                    {"seq": seq, "action": action, "duration": clock.monotonic() - t0},
                )
                # Under anyio the engine's own cancellation must propagate; a task of the
                # asyncio driver is ours alone and simply ends.
                if scope is not None:
                    raise
                return
            raise
        else:
            if record:
                self.log._emit(
                    "action.succeeded",
                    subject,
                    {
                        "seq": seq,
                        "action": action,
                        "duration": clock.monotonic() - t0,
                        "result": jsonable(result),
                    },
                )
        finally:
            self._running -= 1
            if tasks is not None:
                tasks.pop(seq, None)
            if self._idle is not None:
                self._maybe_idle()

    # -- the scheduler ----------------------------------------------------------------------

    @property
    def scheduler(self) -> Scheduler:
        """The engine's job scheduler, created on first use (the methods below delegate to it).

        With a SQLite store it restores the jobs kept in the file and takes the file's
        scheduler lock; when the engine stops it is flushed and closed, and the next start
        opens it again from the file.
        """
        if self._scheduler is None:
            from .scheduler import Scheduler

            self._scheduler = Scheduler(self)
            if not self._closing_scheduler_registered:
                self._closing_scheduler_registered = True
                self.on_stop(self._close_scheduler)
        return self._scheduler

    async def _close_scheduler(self) -> None:
        scheduler = self._scheduler
        if scheduler is not None and self._log is not None and self._log.sink is not None:
            self._scheduler = None  # its store goes with this Log; the next start reopens
            await scheduler.aclose()

    def add_job(self, action: str | Action, trigger: Trigger, **options: Unpack[JobOptions]) -> Job:
        """Add a job: run `action(**kwargs)` at every fire time of `trigger`.

        The options are `Scheduler.add_job`'s: `id`, `kwargs`, `conflict` (``"skip"``
        (default), ``"queue"`` or ``"concurrent"``), `coalesce` (``"latest"`` (default),
        ``"earliest"`` or ``"all"``), `misfire_grace` (None, the default: always run; or
        seconds), `timeout`, `max_executions`, `start`, `end`, `durable_start` (each run's start
        durable before the action runs: at most once across crashes), `replace_existing`,
        `on_failure`, and the descriptive `name`, `description`, `tags`, `enabled`.
        """
        return self.scheduler.add_job(action, trigger, **options)

    def update_job(self, job_id: str, **changes: Any) -> Job:
        """Change a job's definition (see `Scheduler.update_job`)."""
        return self.scheduler.update_job(job_id, **changes)

    def remove_job(self, job_id: str) -> Job:
        """Remove a job; its history stays in the Log."""
        return self.scheduler.remove_job(job_id)

    def get_job(self, job_id: str) -> Job:
        """A job's definition (`JobNotFoundError` if there is none)."""
        return self.scheduler.get_job(job_id)

    def jobs(
        self, *, enabled: bool | None = None, tags: str | Collection[str] | None = None
    ) -> list[Job]:
        """Job definitions, optionally filtered by enabled state and tags."""
        return self.scheduler.jobs(enabled=enabled, tags=tags)

    def pause_job(self, job_id: str) -> Job:
        """Pause one job (its fire times meanwhile are recorded as skipped)."""
        return self.scheduler.pause_job(job_id)

    def resume_job(self, job_id: str) -> Job:
        """Resume a paused job."""
        return self.scheduler.resume_job(job_id)

    def run_job(self, job_id: str, **overrides: Any) -> float:
        """Run a job now, with keyword overrides (a manual fire time); returns its time."""
        return self.scheduler.run_job(job_id, **overrides)

    async def wait_job(self, job_id: str) -> ExecutionRecord:
        """Wait for the job's next finished run and return its execution record."""
        return await self.scheduler.wait_job(job_id)

    async def history(
        self,
        job_id: str | None = None,
        *,
        statuses: Collection[str] | None = None,
        since: datetime | float | None = None,
        until: datetime | float | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[ExecutionRecord]:
        """Execution records of one job or all, read from the Log."""
        return await self.scheduler.history(
            job_id,
            statuses=statuses,
            since=since,
            until=until,
            limit=limit,
            newest_first=newest_first,
        )

    async def job_stats(self, job_id: str) -> JobStats:
        """Totals, durations, last and next run of one job."""
        return await self.scheduler.job_stats(job_id)

    async def scheduler_stats(self, *, upcoming: int = 10) -> SchedulerStats:
        """Overall figures: jobs, running executions, today's counts, the next runs."""
        return await self.scheduler.stats(upcoming=upcoming)

    # -- the run engine (plans) ---------------------------------------------------------------

    @property
    def run_engine(self) -> RunEngine:
        """The engine's run engine for plans, created on first use (see `run`)."""
        if self._run_engine is None:
            from .plans import RunEngine

            self._run_engine = RunEngine(self)
        return self._run_engine

    @property
    def state(self) -> RunState:
        """The run engine's state: idle, running, paused, panicked, ..."""
        return self.run_engine.state

    async def run(self, plan: Iterable[Any], **metadata: Any) -> RunResult:
        """Run a plan (a generator of `Msg`) on this loop; returns when it ends or pauses.

        `metadata` goes into the run start documents. A paused plan returns a result with
        ``paused=True``; `resume` continues it.
        """
        return await self.run_engine.run(plan, **metadata)

    def request_pause(
        self,
        defer: bool = False,
        name: str | None = None,
        callback: Callable[[], bool] | None = None,
    ) -> None:
        """Pause the running plan: at once (hard) or at its next checkpoint (`defer`).

        Never blocks. A `name` with a permission `callback` keeps `resume` refused until the
        callback allows it.
        """
        self.run_engine.request_pause(defer=defer, name=name, callback=callback)

    async def resume(self) -> RunResult:
        """Resume a paused plan (replaying from its last checkpoint after a hard pause)."""
        return await self.run_engine.resume()

    async def stop_run(self) -> RunResult:
        """End a paused plan with success, letting it clean up (`Engine.stop` stops the engine)."""
        return await self.run_engine.stop()

    async def abort(self, reason: str = "") -> RunResult:
        """End a paused plan as aborted; `reason` goes into the run's stop document."""
        return await self.run_engine.abort(reason)

    async def halt(self) -> RunResult:
        """End a paused plan at once, without the plan's own clean-up."""
        return await self.run_engine.halt()

    def panic(self) -> None:
        """Stop everything: the running plan, running scheduled jobs, and new dispatch.

        New runs and scheduled dispatch are refused, and `resume` too, until `all_is_well`.
        """
        self.run_engine.panic()

    def all_is_well(self) -> None:
        """Lift a panic: runs, resume and scheduled dispatch are allowed again."""
        self.run_engine.all_is_well()

    def __repr__(self) -> str:
        state = "running" if self._started else "stopped"
        return f"<Engine {state} pending={len(self.schedule)} actions={sorted(self._actions)}>"


class _AsyncioDriver:
    """Dispatch on asyncio: one `loop.call_at` timer for the earliest intent, a task per run."""

    def __init__(self, engine: Engine, loop: asyncio.AbstractEventLoop) -> None:
        self.engine = engine
        self.loop = loop
        self.handle: asyncio.TimerHandle | asyncio.Handle | None = None
        self.armed_for = math.inf  # the due (wall) time the timer is set for
        self.tasks: dict[int, asyncio.Task[None]] = {}  # running, by intent seq
        recheck = getattr(engine.clock, "recheck", 1.0)
        self.recheck = recheck if isinstance(recheck, int | float) else 1.0
        # A clock that announces wall-clock steps (the virtual one) gets the timer re-armed
        # at once; others are re-read at least every `recheck` seconds.
        add_listener = getattr(engine.clock, "add_step_listener", None)
        if add_listener is not None:
            add_listener(self.rearm)

    def rearm(self) -> None:
        """(Re)set the timer for the earliest pending intent."""
        if self.armed_for == -math.inf:
            return  # closed
        engine = self.engine
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        self.armed_for = math.inf
        if engine._holds:
            return
        nxt = engine.schedule.peek()
        if nxt is None:
            return
        self.armed_for = nxt.due
        delay = nxt.due - engine.clock.time()
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
        self.engine._fire_due(self._spawn)
        self.rearm()

    def _spawn(self, intent: Intent, now: float) -> None:
        # The task forgets itself when its run ends (cheaper than a done callback, which
        # costs a round of the loop per run).
        task = self.loop.create_task(self.engine._run(intent, now, None, self.tasks))
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
        remove_listener = getattr(self.engine.clock, "remove_step_listener", None)
        if remove_listener is not None:
            remove_listener(self.rearm)
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


class _TaskDriver:
    """Dispatch on any anyio backend (trio): a task in the engine's group sleeps till due."""

    def __init__(self, engine: Engine, tg: TaskGroup) -> None:
        self.engine = engine
        self.tg = tg
        self.armed_for = math.inf
        self.sleep_scope: anyio.CancelScope | None = None
        self.scopes: dict[int, anyio.CancelScope] = {}

    def rearm(self) -> None:
        """Wake the dispatch task so that it looks at the Schedule again."""
        if self.sleep_scope is not None:
            self.sleep_scope.cancel()

    def _spawn(self, intent: Intent, now: float) -> None:
        scope = anyio.CancelScope()
        self.scopes[intent.seq] = scope
        self.tg.start_soon(self._run, intent, now, scope)

    async def _run(self, intent: Intent, now: float, scope: anyio.CancelScope) -> None:
        try:
            await self.engine._run(intent, now, scope)
        finally:
            self.scopes.pop(intent.seq, None)

    def cancel_all(self) -> int:
        live = [scope for scope in self.scopes.values() if not scope.cancel_called]
        for scope in live:
            scope.cancel()
        return len(live)

    async def loop(self) -> None:
        engine = self.engine
        clock, schedule = engine.clock, engine.schedule
        while True:
            engine._fire_due(self._spawn)
            nxt = None if engine._holds else schedule.peek()
            self.armed_for = nxt.due if nxt is not None else math.inf
            with anyio.CancelScope() as scope:
                self.sleep_scope = scope
                if nxt is None:
                    await anyio.sleep_forever()
                else:
                    await clock.sleep_until_wall(nxt.due)
            self.sleep_scope = None
