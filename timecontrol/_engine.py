"""The Engine: the one front door, owner of every part.

An `Engine` builds its dispatcher (the Schedule, the actions, the timers and the gate), its
scheduler and its run engine when it is created, opens its store, starts and stops them
together, and can be stopped and started again. Parts never construct each other and never
reach into the Engine: they depend on the dispatcher and the Log, and the Engine calls their
lifecycle hooks (`_attach` when a Log opens, `_started` once dispatch runs, `_stopping` before
the Log closes). The import graph runs one way: this facade on top, the parts in the middle,
the clock, events, schedule, Log and dispatcher at the bottom.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable, Collection, Iterable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar, Unpack, overload

import anyio
from anyio.abc import TaskGroup

from ._clock import Clock
from ._dispatch import INTERNAL_PREFIX, Action, Dispatcher, jsonable
from ._exceptions import EngineStateError, TimeControlError, UnknownActionError
from ._log import Log, LogSink
from ._schedule import Intent, Schedule
from .plans import RunEngine, RunResult, RunState, _sync
from .queue import Queue
from .scheduler import ExecutionRecord, Job, JobStats, Scheduler, SchedulerStats
from .scheduler._job import JobChanges
from .scheduler._scheduler import JobOptions
from .sequence import Sequence, SequenceOptions, Sequences
from .triggers import Trigger

__all__ = ["Engine", "current_engine", "jsonable"]

A = TypeVar("A", bound=Action)

# Engines that are running, newest last (see `current_engine`).
_running_engines: list[Engine] = []


def current_engine() -> Engine | None:
    """The most recently started engine that is still running, or None."""
    return _running_engines[-1] if _running_engines else None


def _lone(exc: BaseException) -> BaseException:
    """The single exception inside nested one-member groups, else `exc` itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


class Engine:
    """The one loop: a Schedule of intents, a Log of events, jobs and plans in between.

    Args:
        store: None for an in-memory Log, or a path to a SQLite file (created if missing,
            private to its owner) that keeps every event, job and record durably, or any
            `LogSink`. A file has one writing engine: a second one gets `StoreLockedError`.
        clock: the Clock to use (default: `current_clock()`, virtual under timecontrol.testing).
            Its `monotonic()` must be the running loop's time (true of every timecontrol clock).
        ring_size: how many recent events the Log keeps in memory.
        allowed_modules: modules whose functions stored jobs may name as ``"module:qualname"``
            actions (registered action names always work); a stored job naming any other
            module is quarantined, never imported: the store file is data, not code.
        readonly: open the store file to read it (jobs, history, `log.query`) while another
            process writes it; nothing is written, and the engine cannot be started.

    Use it as ``async with Engine() as engine:`` (asyncio and trio), or in ``python -m asyncio``
    with ``await engine.start()`` and ``await engine.stop()``. Jobs kept in the store come back
    when the engine opens it and run from the start, each missed fire time settled by its
    misfire and coalesce policies.
    """

    #: Tells `Scheduler(engine)` and `RunEngine(engine)` to return this engine's own part.
    _owns_parts = True

    def __init__(
        self,
        store: str | os.PathLike[str] | LogSink | None = None,
        *,
        clock: Clock | None = None,
        ring_size: int = 100_000,
        allowed_modules: Collection[str] = (),
        readonly: bool = False,
    ) -> None:
        if not (store is None or isinstance(store, str | os.PathLike | LogSink)):
            raise TimeControlError(
                f"store must be None, a path to a SQLite file or a LogSink, got {store!r}"
            )
        if isinstance(ring_size, bool) or not isinstance(ring_size, int) or ring_size < 1:
            raise TimeControlError(f"ring_size must be a positive int, got {ring_size!r}")
        if readonly and not isinstance(store, str | os.PathLike):
            raise TimeControlError(
                f"readonly=True reads a store file; give its path as store, got {store!r}"
            )
        self._store_arg = store
        self._ring_size = ring_size
        self._readonly = bool(readonly)
        self._dispatcher = Dispatcher(clock, self._open_log, self._attach_parts)
        self._scheduler = Scheduler(self._dispatcher, allowed_modules=allowed_modules)
        self._run_engine = RunEngine(self._dispatcher)
        self._queue = Queue(self._dispatcher, self._run_engine)
        self._sequences = Sequences(self._dispatcher)
        self._on_start: list[Callable[[], Awaitable[None]]] = []
        self._on_stop: list[Callable[[], Awaitable[None]]] = []
        self._tg: TaskGroup | None = None
        self._started = False
        self._serve_task: asyncio.Task[None] | None = None
        self._stop_requested: anyio.Event | None = None
        self._lock = threading.Lock()

    # -- the parts --------------------------------------------------------------------------

    @property
    def clock(self) -> Clock:
        """The engine's Clock."""
        return self._dispatcher.clock

    @property
    def log(self) -> Log:
        """The engine's Log (its store is opened on first use).

        After the engine stops, the Log stays readable (`recent`) but takes no more events; the
        next start opens a new one on the same store.
        """
        return self._dispatcher.log

    @property
    def schedule(self) -> Schedule:
        """The Schedule of pending intents (read it; add through `submit` or jobs)."""
        return self._dispatcher.schedule

    @property
    def scheduler(self) -> Scheduler:
        """The engine's job scheduler (the job methods below delegate to it)."""
        return self._scheduler

    @property
    def run_engine(self) -> RunEngine:
        """The engine's run engine for plans (see `run`)."""
        return self._run_engine

    @property
    def queue(self) -> Queue:
        """The engine's experiment queue: plans by name, edited while it runs (docs/queue.md)."""
        return self._queue

    @property
    def sequences(self) -> Sequences:
        """The engine's sampling sequences, by name (docs/sequences.md)."""
        return self._sequences

    def sequence(
        self, actions: object, timepoints: object = None, **options: Unpack[SequenceOptions]
    ) -> Sequence:
        """A sampling sequence: the chain `actions` (names or async functions) run in order at
        each time point of `timepoints` (``tc.timepoints.pairs((5, 60), (10, 300))``, or a
        list of offsets); start it with ``start()``, wait for it with ``await join()``.

        Options (`name`, `kwargs`, `on_error`, `on_pause`, `on_interrupt`, `on_downtime`,
        `downtime_grace`, `replace`, `reset`) are `Sequences.create`'s. Re-declaring a `name`
        whose history the store holds resumes it. See docs/sequences.md."""
        return self._sequences.create(actions, timepoints, **options)

    @property
    def running(self) -> bool:
        """True between `start` (or ``async with``) and `stop`."""
        return self._started

    @property
    def actions(self) -> dict[str, Action]:
        """The registered actions, by name (a copy)."""
        return self._dispatcher.actions

    @property
    def running_actions(self) -> int:
        """How many actions are running now."""
        return self._dispatcher.running_actions

    def _open_log(self) -> Log:
        return Log(clock=self.clock, ring_size=self._ring_size, sink=self._open_sink())

    def _open_sink(self) -> LogSink | None:
        store = self._store_arg
        if store is None:
            return None
        if isinstance(store, LogSink):
            return store
        from .stores import SQLiteLog

        return SQLiteLog(Path(store), readonly=self._readonly)

    def _attach_parts(self) -> None:
        # (A part may open the Log while the parts are being built: attach what exists.)
        for part in (getattr(self, "_scheduler", None), getattr(self, "_queue", None)):
            if part is not None:
                part._attach()

    # -- actions and intents ----------------------------------------------------------------

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
        Jobs refer to actions by these names, so a store written by one process runs in the
        next. With ``record=False`` its starts and successes are not written to the Log.
        """
        if name is not None and isinstance(name, str) and name.startswith(INTERNAL_PREFIX):
            raise TimeControlError(
                f"action name {name!r} is reserved (names starting with {INTERNAL_PREFIX!r} are "
                "timecontrol's own); choose another name"
            )
        return self._dispatcher.action(func, name=name, record=record)

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
        """Run `action(**kwargs)` once at wall time `at` (default: now); returns the intent.

        `action` is a registered name or an async function (registered on the fly). `kwargs`
        must be JSON. `at` must be aware (or POSIX seconds).
        """
        if isinstance(action, str) and action.startswith(INTERNAL_PREFIX):
            raise UnknownActionError(
                f"no action named {action!r}; registered actions: {sorted(self.actions)}"
            )
        return self._dispatcher.submit(
            action, at=at, kwargs=kwargs, subject=subject, priority=priority, reason=reason
        )

    def cancel(self, intent: Intent) -> bool:
        """Cancel a pending intent; True if it was pending. Records ``intent.cancelled``."""
        return self._dispatcher.cancel(intent)

    def on_start(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run ``await callback()`` each time the engine starts, once dispatch is ready."""
        self._on_start.append(callback)

    def on_stop(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run ``await callback()`` each time the engine stops, before its Log is closed."""
        self._on_stop.append(callback)

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        with self._lock:
            if self._started:
                raise EngineStateError("this engine is already running")
            if self._readonly:
                raise EngineStateError(
                    f"this engine opened {self._store_arg!s} read-only (readonly=True): it reads "
                    "jobs, history and events but cannot run; open it without readonly to run it"
                )
            self._started = True
        try:
            self._dispatcher._forget_log()  # a restart: open the store again
            log = self.log
        except BaseException:
            self._started = False
            raise
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        log._emit("engine.started", "", {"pid": os.getpid()})
        _running_engines.append(self)
        try:
            self._dispatcher.open(tg)
            self._run_engine._started()  # it learns its loop (for calls from other threads)
            self._scheduler._started()
            self._queue._started()
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
        # Stopping cancels dispatch and whatever is still running; their cancellation is
        # recorded before the Log is flushed and closed.
        try:
            with anyio.CancelScope(shield=True):
                await self._dispatcher.close()
            tg.cancel_scope.cancel()
            try:
                return await tg.__aexit__(exc_type, exc, tb)
            except BaseExceptionGroup as group:
                # A lone exception comes out as itself, so that `except KeyError` around
                # `async with engine:` catches the body's KeyError; real multiples stay a group.
                lone = _lone(group)
                if lone is group:
                    raise
                if lone is exc:
                    return False
                raise lone from lone.__cause__  # (keeps the cause, drops the group)
        finally:
            await self._shut_down()

    async def _shut_down(self) -> None:
        self._tg = None
        if self in _running_engines:
            _running_engines.remove(self)
        with anyio.CancelScope(shield=True):
            try:
                for callback in self._on_stop:
                    await callback()
                await self._queue._stopping()
                await self._scheduler._stopping()
            finally:
                log = self.log
                log._emit("engine.stopped", "", {"pending": len(self.schedule)})
                await log.aclose()
                self._started = False

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
        stop_requested = self._stop_requested = anyio.Event()

        async def serve() -> None:
            async with self:
                started.set()
                await stop_requested.wait()

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
        await self._dispatcher.wait_idle()

    # -- the dispatch gate ------------------------------------------------------------------

    def hold_dispatch(self, holder: str) -> None:
        """Stop starting scheduled intents until every holder has released (loop-level)."""
        self._dispatcher.hold_dispatch(holder)

    def release_dispatch(self, holder: str) -> None:
        """Withdraw `holder`'s hold; dispatch resumes once no hold remains."""
        self._dispatcher.release_dispatch(holder)

    @property
    def dispatch_holds(self) -> frozenset[str]:
        """Who currently holds dispatch (empty when dispatching)."""
        return self._dispatcher.dispatch_holds

    def cancel_running(self) -> int:
        """Cancel every running action; each records ``action.cancelled``."""
        return self._dispatcher.cancel_running()

    # -- jobs (the scheduler) ---------------------------------------------------------------

    def add_job(self, action: str | Action, trigger: Trigger, **options: Unpack[JobOptions]) -> Job:
        """Add a job: run `action(**kwargs)` at every fire time of `trigger`.

        The options are `Scheduler.add_job`'s (see docs/scheduler.md): `id`, `kwargs`,
        `conflict`, `coalesce`, `misfire_grace`, `timeout`, `max_executions`, `start`, `end`,
        `durable_start`, `replace_existing` (re-declaring keeps an operator's pause unless
        `reset_state=True`), `on_failure`, `name`, `description`, `tags`, `enabled`.
        The action's signature is checked against `kwargs` now, not at the first fire time.
        """
        return self._scheduler.add_job(action, trigger, **options)

    def update_job(self, job_id: str, **changes: Unpack[JobChanges]) -> Job:
        """Change a job's definition (see `Scheduler.update_job`)."""
        return self._scheduler.update_job(job_id, **changes)

    def remove_job(self, job_id: str) -> Job:
        """Remove a job; its history stays in the Log."""
        return self._scheduler.remove_job(job_id)

    def get_job(self, job_id: str) -> Job:
        """A job's definition (`JobNotFoundError` if there is none)."""
        return self._scheduler.get_job(job_id)

    def jobs(
        self, *, enabled: bool | None = None, tags: str | Collection[str] | None = None
    ) -> list[Job]:
        """Job definitions, optionally filtered by enabled state and tags."""
        return self._scheduler.jobs(enabled=enabled, tags=tags)

    def pause_job(self, job_id: str) -> Job:
        """Pause one job (its fire times meanwhile are recorded as skipped)."""
        return self._scheduler.pause_job(job_id)

    def resume_job(self, job_id: str) -> Job:
        """Resume a paused job."""
        return self._scheduler.resume_job(job_id)

    def run_job(self, job_id: str, **overrides: Any) -> float:
        """Run a job now, with keyword overrides (a manual fire time); returns its time."""
        return self._scheduler.run_job(job_id, **overrides)

    async def wait_job(self, job_id: str) -> ExecutionRecord:
        """Wait for the job's next finished run and return its execution record."""
        return await self._scheduler.wait_job(job_id)

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
        return await self._scheduler.history(
            job_id,
            statuses=statuses,
            since=since,
            until=until,
            limit=limit,
            newest_first=newest_first,
        )

    async def job_stats(self, job_id: str) -> JobStats:
        """Totals, durations, last and next run of one job."""
        return await self._scheduler.job_stats(job_id)

    async def scheduler_stats(self, *, upcoming: int = 10) -> SchedulerStats:
        """Overall figures: jobs, running executions, today's counts, the next runs."""
        return await self._scheduler.stats(upcoming=upcoming)

    # -- plans (the run engine) -------------------------------------------------------------

    @property
    def state(self) -> RunState:
        """The run engine's state: idle, running, paused, panicked, ..."""
        return self._run_engine.state

    async def run(self, plan: Iterable[Any], **metadata: Any) -> RunResult:
        """Run a plan (a generator of `Msg`) on this loop; returns when it ends or pauses.

        `metadata` goes into the run start documents. A paused plan returns a result with
        ``paused=True``; `resume` continues it.
        """
        return await self._run_engine.run(plan, **metadata)

    def request_pause(
        self,
        defer: bool = False,
        name: str | None = None,
        callback: Callable[[], bool] | None = None,
    ) -> None:
        """Pause the running plan: at once (hard) or at its next checkpoint (`defer`).

        Never blocks; callable from any task or thread. A `name` with a permission `callback`
        keeps `resume` refused until the callback allows it.
        """
        self._run_engine.request_pause(defer=defer, name=name, callback=callback)

    async def resume(self) -> RunResult:
        """Resume a paused plan (replaying from its last checkpoint after a hard pause)."""
        return await self._run_engine.resume()

    async def stop_run(self) -> RunResult:
        """End a paused plan with success, letting it clean up (`Engine.stop` stops the engine)."""
        return await self._run_engine.stop()

    async def abort(self, reason: str = "") -> RunResult:
        """End a paused plan as aborted; `reason` goes into the run's stop document."""
        return await self._run_engine.abort(reason)

    async def halt(self) -> RunResult:
        """End a paused plan at once, without the plan's own clean-up."""
        return await self._run_engine.halt()

    def panic(self) -> None:
        """Stop everything: the running plan, running scheduled jobs, and new dispatch.

        Callable from any task or thread, before or during a run. New runs and scheduled
        dispatch are refused, and `resume` too, until `all_is_well`.
        """
        self._run_engine.panic()
        self._queue._panic()  # the queue's second run engine (overlapping items), if any

    def all_is_well(self) -> None:
        """Lift a panic: runs, resume and scheduled dispatch are allowed again."""
        self._run_engine.all_is_well()
        self._queue._all_is_well()

    def __repr__(self) -> str:
        state = "running" if self._started else "stopped"
        return f"<Engine {state} pending={len(self.schedule)} actions={sorted(self.actions)}>"


# `SyncRunEngine()` without an engine builds one through this hook: the plans package sits
# below the facade in the import graph and never imports it.
_sync.ENGINE_FACTORY = Engine
