"""Command: the under-limiter ("not too often").

A Command spaces the calls that go through it: at least `interval` seconds apart and/or no more
than `rate` calls per `per` seconds, counted from each call's start (the default) or, for
instruments that need settling time, from its end.

How waiting works (mode ``"wait"``): callers form one first-come-first-served queue. Joining
the queue is the reservation: it happens synchronously when the call is made, before anything
sleeps, so a caller's place is fixed by arrival order and concurrent callers cannot overtake one
another. Each waiter also notes the earliest slot its place allows and sleeps on its own timer
until just before it, so that in the steady state no task has to wake another (waking a task
takes microseconds, and they would land between two starts). Only the head of the queue may
start, once the bound allows; a waiter that reaches its slot while the caller ahead is still
waiting (because that one started late) parks until that caller wakes it. A cancelled waiter
leaves the queue, so everybody behind it moves up one place and starts one slot earlier.

Each call's start is the *actual* loop time at which it was let through, read as late as
possible (by `Command._begin`, just before the coroutine starts), and the next slot is
computed from it. So consecutive starts can never be closer than the bound, however late the
loop wakes up; the price is that lateness is not caught up, which is why, on the real clock,
the last millisecond before a slot is waited out by yielding rather than on a timer (`spin`).
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, Literal, ParamSpec, TypeVar

import anyio
import anyio.lowlevel

from .._clock import Clock, SystemClock, current_clock
from .._exceptions import ClockError
from .._log import Log
from ._emit import emit
from ._errors import LimiterConfigError, UnderTimeLimit, check_seconds
from ._report import Reporter
from ._stats import CommandStatistics

__all__ = ["Command", "Mode", "Since"]

P = ParamSpec("P")
R = TypeVar("R")

Mode = Literal["wait", "raise"]
Since = Literal["start", "end"]

_INF = math.inf

#: On the real clock a waiting call goes this long after its slot. Between the limiter's last
#: reading of the clock and the first line of the coroutine a few microseconds pass, and how
#: many varies (interrupts, the OS scheduler: up to ~20 us measured on a loaded 2-core VM).
#: The promise is about when the *coroutines* start, not when the limiter decided, so the
#: waiting path keeps this margin. It costs 0.125 % of throughput at 50 calls/s.
REAL_CLOCK_MARGIN = 25e-6
_numbers = itertools.count(1)


def _default_name() -> str:
    return f"command-{next(_numbers)}"


class _Waiter:
    """A caller in the queue.

    `slot` is its reservation: the earliest instant its turn can come, given everybody ahead
    of it (a lower bound: a caller ahead that starts late pushes it back). It sleeps on a timer
    until shortly before `slot`, so that in the steady state nobody has to wake anybody; if it
    gets there before the caller ahead has started it is `parked` (asleep without a timer)
    until that caller wakes it. `scope` is the cancel scope it sleeps in: cancelling it is how
    it is woken.
    """

    __slots__ = ("parked", "scope", "slot")

    def __init__(self, slot: float) -> None:
        self.slot = slot
        self.parked = False
        self.scope: anyio.CancelScope | None = None

    def wake(self) -> None:
        scope = self.scope
        if scope is not None:
            scope.cancel()


def _bound(
    interval: float | None, rate: float | None, per: float, burst: bool
) -> tuple[float, tuple[int, float] | None, float | None, float]:
    """Check the bound; return it as a gap, an optional burst window (calls, seconds), and
    the checked rate and per."""
    if interval is None and rate is None:
        raise LimiterConfigError(
            "a Command needs a bound: interval=<seconds between calls> and/or "
            "rate=<calls> (per=<seconds>, default 1)"
        )
    gap = 0.0
    window: tuple[int, float] | None = None
    if interval is not None:
        gap = check_seconds(interval, "interval", zero=True)
    if rate is None:
        if burst:
            raise LimiterConfigError("burst=True needs a rate (calls per period)")
        return gap, window, rate, per
    rate = check_seconds(rate, "rate", zero=False)
    per = check_seconds(per, "per", zero=False)
    if not isinstance(burst, bool):
        raise LimiterConfigError(f"burst must be True or False, got {burst!r}")
    if not burst:
        return max(gap, per / rate), window, rate, per
    if rate != int(rate):
        raise LimiterConfigError(
            f"with burst=True, rate counts calls per window and must be a whole "
            f"number, got {rate!r}"
        )
    if int(rate) == 1:  # one call per window is just an interval
        return max(gap, per), None, rate, per
    return gap, (int(rate), per), rate, per


def _check_settings(
    mode: object, since: object, name: object, clock: object, log: object, spin: float
) -> tuple[str, float]:
    """Check the settings other than the bound; return the name (made up if None) and spin."""
    if mode not in ("wait", "raise"):
        raise LimiterConfigError(f"mode must be 'wait' or 'raise', got {mode!r}")
    if since not in ("start", "end"):
        raise LimiterConfigError(f"since must be 'start' or 'end', got {since!r}")
    if name is None:
        name = _default_name()
    elif not isinstance(name, str) or not name:
        raise LimiterConfigError(f"name must be a non-empty str, got {name!r}")
    if clock is not None and not isinstance(clock, Clock):
        raise LimiterConfigError(f"clock must be a timecontrol Clock, got {clock!r}")
    if log is not None and not isinstance(log, Log):
        raise LimiterConfigError(f"log must be a timecontrol Log, got {log!r}")
    spin = check_seconds(spin, "spin", zero=True)
    if spin > 0.05:
        raise LimiterConfigError(
            f"spin must be at most 0.05 s (it burns CPU while waiting), got {spin!r}"
        )
    return name, spin


class Command:
    """An under-limiter: calls through it are spaced at least a bound apart.

    Args:
        interval: minimum seconds between consecutive calls (>= 0).
        rate: at most this many calls per `per` seconds (> 0). Without `burst` the calls are
            spread evenly, one every ``per / rate`` seconds, so there is no initial burst.
        per: the period of `rate`, in seconds (default 1).
        burst: with `rate`, let up to `rate` calls start back to back as long as no window of
            `per` seconds holds more than `rate` starts (`rate` must then be a whole number).
        mode: ``"wait"`` (default): callers wait for their turn, first come, first served.
            ``"raise"``: a call that comes too early raises `UnderTimeLimit` and is not run.
        since: ``"start"`` (default): the bound counts from each call's start. ``"end"``: it
            counts from each call's end (settling time); calls then never overlap.
        name: the subject of this limiter's events (default ``"command-<n>"``).
        clock: the Clock to read and sleep on (default: `current_clock()` at each call, so a
            limiter made at import time follows the virtual clock in tests).
        log: where to write events (default: the running engine's Log, if any).
        report_every: seconds between aggregated ``limiter.called`` events (0: one event per
            call; None: none). Throttled and rejected calls are always written one by one.
        spin: on the real clock (`SystemClock`), the last `spin` seconds of a wait are spent
            yielding to the loop instead of sleeping on a timer, because OS timers wake up to
            about 1 ms late and that lateness would otherwise add to every gap. 0 saves that
            CPU time at the cost of gaps up to ~1 ms longer than the bound. On the real clock a
            waiting call also goes `REAL_CLOCK_MARGIN` (25 us) after its slot. Virtual clocks
            are exact: no spin, no margin.

    `interval` and `rate` may be combined; a call then respects both. Use a Command as a
    decorator (``@limiter``: every function and method it decorates shares it), as an async
    context manager (``async with limiter: ...``) or through `call`.
    """

    __slots__ = (
        "__weakref__",
        "_burst_window",
        "_cancelled",
        "_clock",
        "_gap",
        "_history",
        "_last",
        "_log",
        "_longest_wait",
        "_mode",
        "_n",
        "_next_free",
        "_plain",
        "_queue",
        "_raise",
        "_rejected",
        "_report_due",
        "_reporter",
        "_running",
        "_since",
        "_since_end",
        "_spin",
        "_throttled",
        "_total_wait",
        "interval",
        "name",
        "per",
        "rate",
    )

    def __init__(
        self,
        interval: float | None = None,
        *,
        rate: float | None = None,
        per: float = 1.0,
        burst: bool = False,
        mode: Mode = "wait",
        since: Since = "start",
        name: str | None = None,
        clock: Clock | None = None,
        log: Log | None = None,
        report_every: float | None = 10.0,
        spin: float = 0.001,
    ) -> None:
        gap, window, rate, per = _bound(interval, rate, per, burst)
        name, spin = _check_settings(mode, since, name, clock, log, spin)

        #: The interval given (None if only a rate was).
        self.interval: float | None = None if interval is None else float(interval)
        #: The rate given (None if only an interval was).
        self.rate: float | None = rate
        #: The period of `rate`, in seconds.
        self.per: float = per
        #: The subject of this limiter's events.
        self.name: str = name
        self._mode: Mode = mode
        self._raise = mode == "raise"
        self._since: Since = since
        self._since_end = since == "end"
        self._clock = clock
        self._log = log
        self._spin = spin
        # The bound as two rules: consecutive references at least `_gap` apart, and, with a
        # burst window (n, p), a reference at least p after the n-th previous one.
        self._gap = gap
        self._burst_window = window
        # The common case, checked first on the hot path: from starts, no burst window.
        self._plain = window is None and since == "start"
        self._history: deque[float] = deque(maxlen=window[0] if window else 1)
        self._reporter = Reporter("limiter.called", "calls", name, log, report_every)
        self._reset()
        self._n = 0
        self._throttled = 0
        self._rejected = 0
        self._cancelled = 0
        self._total_wait = 0.0
        self._longest_wait = 0.0

    def _reset(self) -> None:
        """Forget the timing state (a fresh limiter, or a new loop with another time base)."""
        #: Loop time of the reference the next bound counts from (the last start or end).
        self._last = -_INF
        #: The earliest loop time at which a call may start; +inf while one runs (since=end).
        self._next_free = -_INF
        self._history.clear()
        self._queue: deque[_Waiter] = deque()
        self._running = False
        self._reporter.restart()
        self._report_due = self._reporter.due

    # -- the bound ----------------------------------------------------------------------------

    @property
    def mode(self) -> Mode:
        """``"wait"`` or ``"raise"``."""
        return self._mode

    @property
    def since(self) -> Since:
        """``"start"`` or ``"end"``: what the bound counts from."""
        return self._since

    @property
    def min_gap(self) -> float:
        """The smallest time between consecutive calls (starts, or end to start), seconds."""
        return self._gap

    @property
    def burst_window(self) -> tuple[int, float] | None:
        """``(calls, seconds)`` of the sliding window with ``burst=True``, else None."""
        return self._burst_window

    def _advance(self, ref: float) -> None:
        """Record a reference time (a start, or an end with since="end") and the next slot."""
        self._last = ref
        nxt = ref + self._gap
        window = self._burst_window
        if window is not None:
            history = self._history
            history.append(ref)
            if len(history) == window[0]:
                nxt = max(nxt, history[0] + window[1])
        self._next_free = nxt

    # -- the hot path -------------------------------------------------------------------------

    def _try_start(self) -> bool:
        """Start a call now if nobody is queued and the bound allows it. Never blocks."""
        now = (self._clock or current_clock()).monotonic()
        if now < self._next_free or self._queue:
            return False
        self._n += 1
        if self._plain:
            self._last = now
            self._next_free = now + self._gap
        elif self._since_end:
            self._running = True
            self._next_free = _INF
        else:
            self._advance(now)
        if now >= self._report_due:
            self._tick(now)
        return True

    def _tick(self, now: float) -> None:
        """The aggregated ``limiter.called`` count may be due (see `Reporter`)."""
        reporter = self._reporter
        reporter.tick(now, self._n)
        self._report_due = reporter.due

    def _release(self) -> None:
        """End of a call with since="end": the bound now counts from here; wake the next."""
        self._running = False
        try:
            now = (self._clock or current_clock()).monotonic()
        except ClockError:
            # A call abandoned after its loop closed (its coroutine garbage-collected):
            # there is no time to count from, and no loop for anyone else to wait in.
            self._reset()
            return
        self._advance(now)
        if self._queue:
            self._queue[0].wake()

    # -- waiting, or refusing -----------------------------------------------------------------

    def _reservation(self, now: float) -> float:
        """The slot a caller joining the queue now can count on at the earliest."""
        if self._since_end:
            return _INF  # it depends on when the calls ahead end: wait to be woken
        queue = self._queue
        if not queue:
            return max(now, self._next_free)
        slot = queue[-1].slot + self._gap
        window = self._burst_window
        if window is not None:
            calls, per = window
            # The reference `calls` places back: a reservation in the queue, or a start.
            back = len(queue) - calls
            history = self._history
            if back >= 0:
                slot = max(slot, queue[back].slot + per)
            elif len(history) >= -back:
                slot = max(slot, history[back] + per)
        return max(now, slot)

    def _leave(self, waiter: _Waiter, now: float) -> None:
        """A waiter gave up: the callers behind it move up and get its slot back."""
        queue = self._queue
        head = queue[0] is waiter
        queue.remove(waiter)
        if self._since_end:
            if head and queue:
                queue[0].wake()
            return
        # Rebuild the reservations behind it, in order; wake those whose slot moved earlier
        # so that they set their timers again.
        waiters = list(queue)
        queue.clear()
        for other in waiters:
            slot = self._reservation(now)
            queue.append(other)
            if slot < other.slot or other.parked:
                other.wake()
            other.slot = slot

    async def _acquire(self) -> bool:
        """The slow path: queue up and wait for the turn, or raise `UnderTimeLimit`.

        Returns True when the caller must call `_begin` right before starting the coroutine
        (no await in between): the start is then read as late as possible.
        """
        clock = self._clock or current_clock()
        now = clock.monotonic()
        if now < self._last and not self._queue and not self._running:
            # Monotonic time never goes back within one loop: this is another loop (a new
            # test, another backend), whose time starts elsewhere. Start afresh.
            self._reset()
        if self._try_start():
            return False
        if self._raise:
            self._reject(now)
        # Joining the queue is the reservation: synchronous, so arrival order is queue order.
        waiter = _Waiter(self._reservation(now))
        self._queue.append(waiter)
        arrived = now
        try:
            now = await self._wait_turn(clock, waiter)
        except BaseException:
            # Cancelled (or failed) while waiting: give the place back.
            self._cancelled += 1
            try:
                now = clock.monotonic()
            except ClockError:  # abandoned after its loop closed: nobody is left to wait
                now = -_INF
            self._leave(waiter, now)
            raise
        self._start_waited(now, arrived)
        return not self._since_end

    async def _wait_turn(self, clock: Clock, waiter: _Waiter) -> float:
        """Wait until `waiter` heads the queue and its slot has come; take it off the queue
        and return the loop time it starts at (on cancellation it is left in the queue)."""
        queue = self._queue
        real = isinstance(clock, SystemClock)  # virtual clocks are exact: no spin, no margin
        spin = self._spin if real else 0.0
        margin = REAL_CLOCK_MARGIN if real else 0.0
        while True:
            now = clock.monotonic()
            if queue[0] is waiter:
                target = self._next_free + margin
                if now >= target:
                    queue.popleft()
                    return now
                if target - now <= spin:
                    # Less than a timer's granularity to go: yield until it is time.
                    await anyio.lowlevel.checkpoint()
                    continue
                wake_at = target - spin
            else:
                wake_at = waiter.slot - spin
                if wake_at <= now:
                    wake_at = _INF  # the caller ahead is late: it wakes us when it starts
            waiter.parked = wake_at == _INF
            with anyio.CancelScope() as scope:
                waiter.scope = scope
                if wake_at == _INF:
                    await anyio.sleep_forever()
                else:
                    await clock.sleep_until(wake_at)
            waiter.scope = None

    def _start_waited(self, now: float, arrived: float) -> None:
        """The head's turn has come (at `now`): book it; `_begin` records the real start."""
        self._n += 1
        waited = now - arrived
        self._throttled += 1
        self._total_wait += waited
        self._longest_wait = max(self._longest_wait, waited)
        emit(self._log, "limiter.throttled", self.name, {"waited": waited, "calls": self._n})
        if now >= self._report_due:
            self._tick(now)
        queue = self._queue
        if queue and queue[0].parked and not self._since_end:
            # The next caller got to its reservation before we started (we were late): it
            # waits for us. It runs only once we have yielded, and then reads the slot that
            # `_begin` sets. (With since="end", the end of our call wakes it.)
            queue[0].wake()
        # Nobody else may start until the start is recorded: by `_release` (since="end") or
        # by `_begin`, which the caller runs right before the coroutine. A gap is only honest
        # if measured from when the coroutine really starts, and the bookkeeping above, the
        # return from this coroutine and the wrapper all take time (microseconds, but varying).
        self._running = self._since_end
        self._next_free = _INF

    def _begin(self) -> None:
        """A waited call (since="start") starts now: the bound counts from here."""
        self._advance((self._clock or current_clock()).monotonic())

    def _reject(self, now: float) -> None:
        if self._running:
            elapsed, required, retry = 0.0, self._gap, None
        else:
            elapsed, required = now - self._last, self._gap
            retry = self._last + self._gap - now
            window = self._burst_window
            history = self._history
            if window is not None and len(history) == window[0]:
                window_retry = history[0] + window[1] - now
                if window_retry > retry:
                    elapsed, required, retry = now - history[0], window[1], window_retry
        self._rejected += 1
        emit(
            self._log,
            "limiter.rejected",
            self.name,
            {
                "limit": "under",
                "elapsed": elapsed,
                "required": required,
                "retry_after": retry,
                "calls": self._n,
            },
        )
        raise UnderTimeLimit(self.name, elapsed, required, retry)

    # -- public use ---------------------------------------------------------------------------

    async def call(self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """``await fn(*args, **kwargs)`` under this limiter (waiting or raising first)."""
        if not self._try_start() and await self._acquire():
            self._begin()
        if not self._since_end:
            return await fn(*args, **kwargs)
        try:
            return await fn(*args, **kwargs)
        finally:
            self._release()

    def __call__(self, fn: Callable[P, Awaitable[R]], /) -> Callable[P, Coroutine[Any, Any, R]]:
        """Decorate an async function (or method) so that every call goes through this limiter.

        Everything this limiter decorates shares it: all functions, and all instances of a
        class whose method it decorates. For one limiter per instance use `command`.
        The wrapper keeps the function's name, docstring, signature and types.
        """
        from ._decorate import wrap_command

        return wrap_command(fn, shared=self)

    async def __aenter__(self) -> None:
        """Wait for this limiter's turn (or raise `UnderTimeLimit`); the block is the call."""
        if not self._try_start() and await self._acquire():
            self._begin()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._since_end:
            self._release()

    def statistics(self) -> CommandStatistics:
        """Counts and waits so far (a snapshot)."""
        return CommandStatistics(
            name=self.name,
            calls=self._n,
            throttled=self._throttled,
            rejected=self._rejected,
            cancelled=self._cancelled,
            total_wait=self._total_wait,
            longest_wait=self._longest_wait,
            waiting=len(self._queue),
        )

    def report(self) -> None:
        """Write the calls not yet reported as a ``limiter.called`` event now (if any)."""
        self._reporter.write(self._n)

    def copy(self, name: str | None = None) -> Command:
        """A new, independent limiter with the same settings (and `name`, if given)."""
        burst = self._burst_window is not None
        return Command(
            self.interval,
            rate=self.rate,
            per=self.per,
            burst=burst,
            mode=self._mode,
            since=self._since,
            name=self.name if name is None else name,
            clock=self._clock,
            log=self._log,
            report_every=self._reporter.every,
            spin=self._spin,
        )

    def __repr__(self) -> str:
        parts = []
        if self.interval is not None:
            parts.append(f"interval={self.interval!r}")
        if self.rate is not None:
            parts.append(f"rate={self.rate!r}, per={self.per!r}")
            if self._burst_window is not None:
                parts.append("burst=True")
        parts.append(f"mode={self._mode!r}, since={self._since!r}, name={self.name!r}")
        return f"Command({', '.join(parts)})"
