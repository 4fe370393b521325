"""Virtual time for asyncio and trio: hours of schedule in milliseconds, with exact timestamps.

Under a `VirtualClock`, time stands still while any task can run and *jumps* to the next timer
as soon as every task is waiting (after `autojump_threshold` real seconds of idleness, 0 by
default). Wall time moves with it from a chosen aware start, so cron and calendar schedules see
the dates they would see in production, DST changes included.

* asyncio: a `SelectorEventLoop` whose `time()` is virtual and whose selector, instead of
  blocking until the next timer, advances virtual time to it.
* trio: `trio.testing.MockClock` with `autojump_threshold`.

Threads and real I/O keep running in real time; while the loop waits for them with a timer
pending, virtual time jumps to that timer (as trio's autojump does). Give such tests an
`autojump_threshold` of a few milliseconds so that fast I/O completes before a jump.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import selectors
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import anyio

from .._clock import _ClockBase, ensure_aware, reset_clock, use_clock
from .._exceptions import ClockError

__all__ = ["DEFAULT_START", "Backend", "VirtualClock", "VirtualEventLoop", "run"]

T = TypeVar("T")
Backend = Literal["asyncio", "trio"]

# asyncio caps one wait for I/O at a day (`asyncio.base_events.MAXIMUM_SELECT_TIMEOUT`, which
# typeshed does not declare); a timeout that long may not lead to a timer.
_MAXIMUM_SELECT_TIMEOUT: float = getattr(asyncio.base_events, "MAXIMUM_SELECT_TIMEOUT", 86_400)

#: The default start of virtual wall time: a Sunday, on the night Europe's clocks spring forward.
DEFAULT_START = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)


class _JumpingSelector(selectors.BaseSelector):
    """A selector that turns "block until the next timer" into a jump of virtual time."""

    def __init__(self, loop: VirtualEventLoop) -> None:
        self._real = selectors.DefaultSelector()
        self._loop = loop

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready or (timeout is not None and timeout <= 0):
            return ready
        if timeout is None:
            # No timer at all: only I/O or another thread can wake us, so wait for real.
            return self._real.select(None)
        if self._loop.jump_holds:
            # Something waits on a thread (`Clock.hold_jumps`): time stands still, and we wait
            # for real, a little at a time, until it is done.
            return self._real.select(min(timeout, 0.01))
        threshold = self._loop.autojump_threshold
        if threshold > 0:
            ready = self._real.select(min(threshold, timeout))
            if ready:
                return ready
        # asyncio asked to sleep `timeout` seconds until its earliest timer: be there now.
        self._loop._jump(timeout)
        return []

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.get_key(fileobj)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()


class VirtualEventLoop(asyncio.SelectorEventLoop):
    """An asyncio loop on virtual time: `time()` only moves when every task is idle."""

    def __init__(self, autojump_threshold: float = 0.0) -> None:
        self._virtual_now = 0.0
        self.autojump_threshold = autojump_threshold
        #: While > 0, virtual time does not jump (see `VirtualClock.hold_jumps`).
        self.jump_holds = 0
        super().__init__(_JumpingSelector(self))

    # asyncio runs the timers due before ``time() + _clock_resolution``. A fixed resolution
    # (1 ns) is lost to rounding once virtual time passes 2**23 s (97 days): a timer due exactly
    # now would then never run and the loop would spin. One unit in the last place of the
    # current time runs exactly the timers due at or before now, at any magnitude.
    @property
    def _clock_resolution(self) -> float:
        return math.ulp(self._virtual_now)

    @_clock_resolution.setter
    def _clock_resolution(self, value: float) -> None:
        pass  # BaseEventLoop.__init__ sets the real clock's resolution; virtual time has its own

    def time(self) -> float:
        """Virtual monotonic time, in seconds."""
        return self._virtual_now

    def _jump(self, timeout: float) -> None:
        """Advance to the earliest timer, which asyncio said is `timeout` seconds away.

        Lands on the timer's own deadline rather than on ``now + timeout``, which rounding can
        put one unit in the last place before or after it, so that timestamps stay exact.
        """
        scheduled: list[asyncio.TimerHandle] = getattr(self, "_scheduled", [])
        if timeout < _MAXIMUM_SELECT_TIMEOUT and scheduled:
            when = scheduled[0].when()
            if when > self._virtual_now:
                self._virtual_now = when
                return
        self.advance(timeout)

    def advance(self, seconds: float) -> None:
        """Move virtual time forward (timers that become due fire on the next iteration)."""
        if seconds < 0:
            raise ValueError(f"time only moves forward; cannot advance by {seconds!r}")
        self._virtual_now += seconds


class VirtualClock(_ClockBase):
    """A `Clock` on virtual time: monotonic time is the virtual loop's, wall time follows it.

    Args:
        start: the aware wall time at which virtual time starts (default 2026-03-29 00:30 UTC).
        autojump_threshold: real seconds of idleness before time jumps (0 = at once).

    Use it through `timecontrol.testing.run(...)` or the pytest marker
    ``@pytest.mark.timecontrol``; both make it the current clock, so engines and limiters
    created inside pick it up without being told.
    """

    def __init__(
        self,
        start: datetime | str | None = None,
        *,
        autojump_threshold: float = 0.0,
    ) -> None:
        # Wall steps are announced by `step_wall`, so sleepers never need to poll.
        super().__init__(recheck=math.inf)
        if start is None:
            start = DEFAULT_START
        elif isinstance(start, str):
            try:
                start = datetime.fromisoformat(start)
            except ValueError:
                raise ClockError(
                    f"start {start!r} is not an ISO 8601 datetime; "
                    "expected e.g. '2026-03-29T00:30+01:00'"
                ) from None
        self.start = ensure_aware(start, "start")
        self.autojump_threshold = float(autojump_threshold)
        self._start_ts = self.start.timestamp()
        self._mono0: float | None = None
        self._wall_offset = 0.0
        # What `hold_jumps` acts on: the asyncio loop, or trio's MockClock, of the current run.
        self._hold_target: Any = None
        self._trio_holds = 0

    # -- Clock -----------------------------------------------------------------------------

    def time(self) -> float:
        """Virtual wall time, POSIX seconds: start + elapsed virtual time + any wall steps."""
        mono = self.monotonic()
        if self._mono0 is None:
            self._mono0 = mono
        return self._start_ts + (mono - self._mono0) + self._wall_offset

    # -- control ---------------------------------------------------------------------------

    def elapsed(self) -> float:
        """Virtual seconds since the run started."""
        mono = self.monotonic()
        return 0.0 if self._mono0 is None else mono - self._mono0

    def step_wall(self, seconds: float) -> None:
        """Step wall time (not monotonic time) by `seconds`, as an NTP correction would.

        Work waiting in `sleep_until_wall` re-checks at once.
        """
        self._wall_offset += seconds
        self._notify_step()

    async def advance(self, seconds: float) -> None:
        """Let `seconds` of virtual time pass (all timers due meanwhile fire, in order)."""
        await anyio.sleep(seconds)

    async def advance_to(self, wall: datetime | float) -> None:
        """Let virtual time pass until wall time `wall`."""
        await self.sleep_until_wall(wall)

    @contextlib.contextmanager
    def hold_jumps(self) -> Iterator[None]:
        """Keep virtual time still while the loop waits on a thread or real I/O.

        timecontrol's own thread waits (the SQLite writer, queries) use it, so that a test
        with a store does not see hours of virtual time pass during a flush. Nestable.
        """
        target = self._hold_target
        if isinstance(target, VirtualEventLoop):
            target.jump_holds += 1
            try:
                yield
            finally:
                target.jump_holds -= 1
            return
        if target is None:
            yield
            return
        self._trio_holds += 1
        if self._trio_holds == 1:
            target.autojump_threshold = math.inf
        try:
            yield
        finally:
            self._trio_holds -= 1
            if self._trio_holds == 0:
                target.autojump_threshold = self.autojump_threshold

    # -- running ---------------------------------------------------------------------------

    def run(
        self,
        func: Callable[..., Awaitable[T]],
        *args: Any,
        backend: Backend = "asyncio",
    ) -> T:
        """Run ``await func(*args)`` on `backend` under this virtual clock; return its result."""

        async def main() -> T:
            self._mono0 = self.monotonic()
            token = use_clock(self)
            try:
                return await func(*args)
            finally:
                reset_clock(token)

        if backend == "asyncio":
            threshold = self.autojump_threshold

            def make_loop() -> VirtualEventLoop:
                loop = VirtualEventLoop(threshold)
                self._hold_target = loop
                return loop

            return anyio.run(main, backend="asyncio", backend_options={"loop_factory": make_loop})
        if backend == "trio":
            import trio.testing

            mock = trio.testing.MockClock(autojump_threshold=self.autojump_threshold)
            self._hold_target = mock
            return anyio.run(main, backend="trio", backend_options={"clock": mock})
        raise ClockError(f"unknown backend {backend!r}; expected 'asyncio' or 'trio'")

    def __repr__(self) -> str:
        return f"VirtualClock(start={self.start.isoformat()!r})"


def run(
    func: Callable[..., Awaitable[T]],
    *args: Any,
    start: datetime | str | None = None,
    backend: Backend = "asyncio",
    autojump_threshold: float = 0.0,
) -> T:
    """Run ``await func(*args)`` under a new `VirtualClock` starting at `start`.

    Example::

        async def main():
            clock = timecontrol.current_clock()
            await anyio.sleep(86_400)  # a virtual day, in milliseconds of real time
            return clock.now()

        timecontrol.testing.run(main, start="2026-03-29T00:30+01:00")
    """
    clock = VirtualClock(start, autojump_threshold=autojump_threshold)
    return clock.run(func, *args, backend=backend)
