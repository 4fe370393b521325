"""Control: the over-limiter ("not too seldom"), a watchdog.

A Control must be fed at least every `period` seconds: by a call of any coroutine it guards,
by `feed()`, or by entering a `guarded()` block. Its loop sleeps until the deadline (the last
feed plus the period); feeding only moves a number, so it costs no more than reading the
clock. If the deadline passes unfed, the watchdog *trips*:

1. it cancels every scope entered with `supervise()` (so the experiment stops issuing
   commands that would race with the safety action);
2. if no supervised scope was active, it arms `OverTimeLimit` for the next guarded call, so
   the code that should have fed it learns that it was late and what happened;
3. it records the trip (`last_trip`, statistics, a ``limiter.tripped`` event);
4. it runs the safety action shielded from cancellation, so that stopping the watchdog, or
   cancelling everything around it, never interrupts switching a heater off halfway.

The next deadline is one period after the missed one (or after the next feed), so a watchdog
that is never fed trips once per period, each time exactly at the deadline under virtual time.
Deadlines that pass while the safety action is still running do not trip again.

A watchdog is never fed without watching. The first feed or guarded call of one that is not
running starts it, in the running engine's task group (`_host.py`), so that decorating the
heater's methods is enough inside an engine; where no engine runs, that call raises
`WatchdogStateError` and changes nothing, rather than run unguarded.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, ParamSpec, Self, TypeVar

import anyio
from anyio.abc import TaskGroup, TaskStatus

from .._clock import Clock, current_clock
from .._log import Log
from ._emit import emit
from ._errors import (
    LimiterConfigError,
    OverTimeLimit,
    SafetyActionError,
    WatchdogStateError,
    check_seconds,
)
from ._host import engine_host
from ._report import Reporter
from ._stats import ControlStatistics, Trip

__all__ = ["Control"]

P = ParamSpec("P")
R = TypeVar("R")

SafetyAction = Callable[[], Awaitable[object]]

_INF = math.inf
_numbers = itertools.count(1)


def _default_name() -> str:
    return f"control-{next(_numbers)}"


def _describe(fn: object) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


class _Guarded:
    """``with control.guarded():`` / ``async with ...``: check for a trip, then feed."""

    __slots__ = ("_control",)

    def __init__(self, control: Control) -> None:
        self._control = control

    def __enter__(self) -> None:
        self._control._guard_enter()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def __aenter__(self) -> None:
        self._control._guard_enter()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


class _Supervised:
    """``with control.supervise() as scope:``: a cancel scope that a trip cancels."""

    __slots__ = ("_control", "_scope")

    def __init__(self, control: Control) -> None:
        self._control = control
        self._scope = anyio.CancelScope()

    def __enter__(self) -> anyio.CancelScope:
        scope = self._scope.__enter__()
        self._control._scopes.add(scope)
        return scope

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        self._control._scopes.discard(self._scope)
        return bool(self._scope.__exit__(exc_type, exc, tb))


class Control:
    """An over-limiter (watchdog): it must be fed at least every `period` seconds.

    Args:
        period: the longest allowed time between feeds, in seconds (> 0).
        on_trip: the safety action: an async function without arguments, run (shielded from
            cancellation) each time a deadline is missed. None records the trip only.
        name: the subject of this watchdog's events (default ``"control-<n>"``).
        clock: the Clock to read and sleep on (default: `current_clock()` when it starts).
        log: where to write events (default: the running engine's Log, if any).
        report_every: seconds between aggregated ``limiter.fed`` events (0: one per feed;
            None: none). Trips are always written as they happen.

    Start it with ``async with control:`` (it watches until the block ends), or with
    ``await control.start(task_group)`` / ``await task_group.start(control.run)`` and
    `stop()`. Feed it with ``@control`` on the coroutines it guards, ``control.feed()``, or
    ``with control.guarded():``. The watchdog's period starts when it starts.

    Fed (or called through) while not running, it starts itself in the running engine, until
    the engine stops or `stop()`; with no engine running, that feed or call raises
    `WatchdogStateError` instead and changes nothing: it is never silently unguarded.

    If the safety action raises, the watchdog stops and `SafetyActionError` (caused by the
    action's error) ends the ``async with`` block (under `run`, it ends the task group; when
    started in the engine, it ends the engine).
    """

    def __init__(
        self,
        period: float,
        on_trip: SafetyAction | None = None,
        *,
        name: str | None = None,
        clock: Clock | None = None,
        log: Log | None = None,
        report_every: float | None = 10.0,
    ) -> None:
        from ._decorate import check_async

        #: The longest allowed time between feeds, in seconds.
        self.period: float = check_seconds(period, "period", zero=False)
        if on_trip is not None:
            check_async(on_trip, "on_trip (the safety action)")
        if name is None:
            name = _default_name()
        elif not isinstance(name, str) or not name:
            raise LimiterConfigError(f"name must be a non-empty str, got {name!r}")
        if clock is not None and not isinstance(clock, Clock):
            raise LimiterConfigError(f"clock must be a timecontrol Clock, got {clock!r}")
        if log is not None and not isinstance(log, Log):
            raise LimiterConfigError(f"log must be a timecontrol Log, got {log!r}")
        #: The safety action (or None).
        self.on_trip: SafetyAction | None = on_trip
        #: The subject of this watchdog's events.
        self.name: str = name
        self._clock = clock
        self._log = log
        # Where events go: `log`, or during a watch started in an engine, that engine's Log
        # (the watch belongs to it, and ends after the engine stops being the current one).
        self._sink = log
        self._reporter = Reporter("limiter.fed", "feeds", name, log, report_every)
        self._run_clock: Clock | None = None
        self._fed = -_INF
        self._floor = -_INF  # the next deadline is never before this (one period after a trip)
        self._pending: Trip | None = None  # a trip not yet delivered to a guarded call
        self._pending_count = 0
        self._last_trip: Trip | None = None
        self._scopes: set[anyio.CancelScope] = set()
        self._stop_scope: anyio.CancelScope | None = None
        self._running = False  # its task is alive (until its `finally` has run)
        self._watching = False  # running, and not asked to stop: feeds count
        self._automatic = False  # started by a feed or guarded call, in the running engine
        self._tg: TaskGroup | None = None
        self._guard_cm = _Guarded(self)
        self._calls = 0
        self._feeds = 0
        self._rejected = 0
        self._trips = 0
        self._longest_gap = 0.0

    # -- feeding ------------------------------------------------------------------------------

    def _now(self) -> float:
        return (self._run_clock or self._clock or current_clock()).monotonic()

    def feed(self) -> None:
        """Reset the deadline to one period from now. Never blocks, never raises on a trip.

        A watchdog that is not running starts here, in the running engine; where none runs
        it raises `WatchdogStateError` instead, and nothing changes: a feed that nobody
        watches would leave the instrument unguarded without anyone knowing.
        """
        if not self._watching:
            self._start_unwatched("feed")
        now = self._now()
        gap = now - self._fed
        self._longest_gap = max(self._longest_gap, gap)
        self._fed = now
        self._feeds += 1
        reporter = self._reporter
        if now >= reporter.due:
            reporter.tick(now, self._feeds)

    def _guard_enter(self) -> None:
        """A guarded call or block begins: start watching (or refuse) if the watchdog is not
        running, deliver a pending trip, else feed."""
        if not self._watching:
            self._start_unwatched("guarded call")
        if self._pending is not None:
            self._deliver()
        self._calls += 1
        self.feed()

    def _deliver(self) -> None:
        trip, count = self._pending, self._pending_count
        assert trip is not None
        self._pending, self._pending_count = None, 0
        self._rejected += 1
        elapsed = self._now() - self._fed
        emit(
            self._sink,
            "limiter.rejected",
            self.name,
            {"limit": "over", "elapsed": elapsed, "period": self.period, "trips": count},
        )
        raise OverTimeLimit(self.name, elapsed, self.period, count, trip.deadline)

    def guarded(self) -> _Guarded:
        """A context manager (``with`` or ``async with``) that is one guarded call.

        Entering it raises `OverTimeLimit` if the watchdog tripped since the last guarded
        call; otherwise it feeds the watchdog.
        """
        return self._guard_cm

    def __call__(self, fn: Callable[P, Awaitable[R]], /) -> Callable[P, Coroutine[Any, Any, R]]:
        """Decorate an async function (or method) whose calls feed this watchdog.

        A call first raises `OverTimeLimit` if the watchdog tripped since the last guarded
        call (the function is then not run); otherwise it feeds the watchdog and runs. All
        instances of a class share the watchdog; for one per instance, see `guarded_by`.
        """
        from ._decorate import wrap_control

        return wrap_control(fn, shared=self)

    def supervise(self) -> _Supervised:
        """A cancel scope (``with control.supervise() as scope:``) that a trip cancels.

        While at least one supervised scope is active, a trip is delivered by cancelling
        them instead of by raising `OverTimeLimit` at the next guarded call. As with any
        cancel scope, the block then ends quietly; check ``scope.cancelled_caught``.
        """
        return _Supervised(self)

    # -- state --------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the watchdog is watching: from its start until `stop()` or its end."""
        return self._watching

    @property
    def automatic(self) -> bool:
        """Whether it was started by its first feed or guarded call, in the running engine
        (rather than by ``async with``, `start` or `run`)."""
        return self._watching and self._automatic

    @property
    def deadline(self) -> float | None:
        """Loop time of the next deadline while running, else None."""
        if not self._watching:
            return None
        return max(self._fed + self.period, self._floor)

    @property
    def last_trip(self) -> Trip | None:
        """The most recent trip, or None."""
        return self._last_trip

    @property
    def tripped(self) -> bool:
        """Whether a trip is waiting to be delivered as `OverTimeLimit`."""
        return self._pending is not None

    def statistics(self) -> ControlStatistics:
        """Counts so far (a snapshot)."""
        return ControlStatistics(
            name=self.name,
            calls=self._calls,
            feeds=self._feeds,
            rejected=self._rejected,
            trips=self._trips,
            running=self._watching,
            last_feed=None if self._fed == -_INF else self._fed,
            longest_gap=self._longest_gap,
            deadline=self.deadline,
        )

    def report(self) -> None:
        """Write the feeds not yet reported as a ``limiter.fed`` event now (if any)."""
        self._reporter.write(self._feeds)

    # -- running ------------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Watch until `stop()` (or cancellation). For ``await task_group.start(control.run)``.

        Raises `WatchdogStateError` if already running and `SafetyActionError` if the safety
        action raised.
        """
        self._check_stopped()
        clock = self._clock or current_clock()
        stop_scope = anyio.CancelScope()
        self._begin(clock, stop_scope, automatic=False)
        await self._watch(clock, stop_scope, task_status)

    def _check_stopped(self) -> None:
        if not self._running:
            return
        if not self._watching:
            raise WatchdogStateError(
                f"{self.name}: this watchdog is still stopping; start it again once its "
                "task has ended"
            )
        how = (
            " (it started itself at its first feed or guarded call, in the running engine: "
            "start it before that call)"
            if self._automatic
            else ""
        )
        raise WatchdogStateError(f"{self.name}: this watchdog is already running{how}")

    def _start_unwatched(self, what: str) -> None:
        """A `what` (a feed, a guarded call) found the watchdog not watching: start it in the
        running engine, or raise `WatchdogStateError` having changed nothing."""
        host = None if self._running else engine_host()
        if host is None:
            state = "still stopping" if self._running else "not running"
            raise WatchdogStateError(
                f"{self.name}: this watchdog is {state}, so this {what} was refused rather "
                "than left unguarded; start it with 'async with watchdog:' or 'await "
                "watchdog.start(task_group)', or make the call while a timecontrol Engine "
                "is running, which starts it"
            )
        group, engine_clock, engine_log = host
        clock = self._clock or engine_clock
        stop_scope = anyio.CancelScope()
        try:
            group.start_soon(self._watch, clock, stop_scope, name=f"watchdog {self.name}")
        except RuntimeError:  # the group closed meanwhile: as if there were none
            raise WatchdogStateError(
                f"{self.name}: this watchdog is not running and the engine is stopping, so "
                f"this {what} was refused rather than left unguarded"
            ) from None
        # Its task runs from the next loop iteration; the watch (and its first period)
        # starts now, with this very call.
        self._begin(clock, stop_scope, automatic=True, engine_log=engine_log)

    def _begin(
        self,
        clock: Clock,
        stop_scope: anyio.CancelScope,
        *,
        automatic: bool,
        engine_log: Log | None = None,
    ) -> None:
        """Start a watch: the first period starts now."""
        if self._log is None:
            self._sink = self._reporter.log = engine_log
        self._run_clock = clock
        self._stop_scope = stop_scope
        self._running = self._watching = True
        self._automatic = automatic
        self._fed, self._floor = clock.monotonic(), -_INF
        self._pending, self._pending_count = None, 0
        self._longest_gap = 0.0
        self._reporter.restart()
        payload = {"period": self.period, "automatic": automatic}
        emit(self._sink, "limiter.started", self.name, payload)

    async def _watch(
        self,
        clock: Clock,
        stop_scope: anyio.CancelScope,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """The watch begun by `_begin`: sleep until each deadline, trip when it passed."""
        try:
            with stop_scope:
                task_status.started()
                period = self.period
                while True:
                    await clock.sleep_until(max(self._fed + period, self._floor))
                    now = clock.monotonic()
                    deadline = max(self._fed + period, self._floor)
                    if now >= deadline:  # not fed while we slept
                        await self._trip(clock, deadline, now)
        finally:
            self._running = self._watching = False
            self._stop_scope = None
            self.report()
            self._run_clock = None
            emit(self._sink, "limiter.stopped", self.name, {"trips": self._trips})
            self._sink = self._reporter.log = self._log

    async def _trip(self, clock: Clock, deadline: float, now: float) -> None:
        period = self.period
        self._trips += 1
        trip = Trip(
            number=self._trips,
            deadline=deadline,
            at=now,
            late=now - deadline,
            since_feed=now - self._fed,
            period=period,
        )
        self._last_trip = trip
        self._floor = deadline + period
        scopes = list(self._scopes)
        for scope in scopes:
            scope.cancel()
        if not scopes:
            self._pending = trip
            self._pending_count += 1
        emit(
            self._sink,
            "limiter.tripped",
            self.name,
            {
                "number": trip.number,
                "deadline": deadline,
                "late": trip.late,
                "since_feed": trip.since_feed,
                "period": period,
                "cancelled": len(scopes),
            },
        )
        action = self.on_trip
        if action is None:
            return
        with anyio.CancelScope(shield=True):
            try:
                await action()
            except Exception as exc:
                emit(
                    self._sink,
                    "limiter.trip_failed",
                    self.name,
                    {"error": type(exc).__name__, "message": str(exc)},
                )
                raise SafetyActionError(self.name, _describe(action)) from exc
        after = clock.monotonic()
        while self._floor <= after:
            # Deadlines that passed while the safety action ran are not tripped again.
            self._floor += period

    def stop(self) -> None:
        """Stop watching (a safety action in progress completes first). Idempotent.

        It is not running from now on: the next feed or guarded call starts it again in the
        running engine, or is refused (`WatchdogStateError`).
        """
        if self._stop_scope is not None:
            self._watching = False
            self._stop_scope.cancel()

    async def start(self, task_group: TaskGroup) -> None:
        """Start watching in `task_group`; returns once the watchdog is running."""
        await task_group.start(self.run)

    async def __aenter__(self) -> Self:
        """Start watching in a task group of its own, until the block ends."""
        self._check_stopped()
        tg = anyio.create_task_group()
        await tg.__aenter__()
        try:
            await tg.start(self.run)
        except BaseException as exc:
            tg.cancel_scope.cancel()
            await tg.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        self._tg = tg
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        tg, self._tg = self._tg, None
        assert tg is not None
        self.stop()
        try:
            return await tg.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            # The watchdog's own failure, alone: raise it as itself, so that a plain
            # ``except SafetyActionError`` catches it (the task group is an implementation
            # detail of ``async with control``).
            if len(group.exceptions) == 1 and isinstance(group.exceptions[0], SafetyActionError):
                error = group.exceptions[0]
                raise error from error.__cause__
            raise

    def __repr__(self) -> str:
        state = "running" if self._watching else "stopped"
        return f"<Control {self.name!r} period={self.period!r} {state} trips={self._trips}>"
