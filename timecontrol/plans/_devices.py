"""Devices as the run engine sees them, and simulated ones for tests and demos.

The engine duck-types devices: it calls only the methods a message needs, and each method may
return its value directly or something to await. The protocols below document the shapes;
bluesky/ophyd devices fit them (their statuses are accepted too), and so do the simulated
`SimMotor`, `SimDetector` and `SimSignal`, which run on the engine's Clock (virtual in tests).

Readings use bluesky's shape: ``read()`` returns ``{key: {"value": v, "timestamp": t}}`` and
``describe()`` returns ``{key: {"source": ..., "dtype": ..., "shape": [...]}}``.
"""

from __future__ import annotations

import inspect
import itertools
import math
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Protocol, TypeAlias, TypeVar, runtime_checkable

import anyio

from .._clock import Clock, current_clock
from ._compat import status_failed
from ._errors import StatusFailed
from ._loop import LoopHandle

__all__ = [
    "Movable",
    "Pausable",
    "Readable",
    "SimDetector",
    "SimMotor",
    "SimSignal",
    "SimStatus",
    "Stageable",
    "Stoppable",
    "Triggerable",
    "await_status",
]

T = TypeVar("T")
#: A value, or something to await for it (a coroutine, a status, a future).
SyncOrAsync: TypeAlias = T | Awaitable[T]
Reading: TypeAlias = dict[str, Any]


@runtime_checkable
class Readable(Protocol):
    """A device that can be read: ``Msg("read", device)``."""

    @property
    def name(self) -> str:
        """Unique name; the prefix of its data keys."""
        ...

    def read(self) -> SyncOrAsync[dict[str, Reading]]:
        """Current readings, ``{key: {"value": v, "timestamp": t}}``."""
        ...

    def describe(self) -> SyncOrAsync[dict[str, dict[str, Any]]]:
        """What `read` returns, ``{key: {"source": s, "dtype": d, "shape": [...]}}``."""
        ...


@runtime_checkable
class Movable(Protocol):
    """A device that can be set: ``Msg("set", device, value)``."""

    def set(self, value: Any) -> Any:
        """Start moving to `value`; return something to await (or a bluesky status)."""
        ...


@runtime_checkable
class Triggerable(Protocol):
    """A device that acquires on request: ``Msg("trigger", device)``."""

    def trigger(self) -> Any:
        """Start an acquisition; return something to await (or a bluesky status)."""
        ...


@runtime_checkable
class Stoppable(Protocol):
    """A device the engine can stop; it does so for every device it `set` when a run pauses,
    suspends or ends."""

    def stop(self, *, success: bool = False) -> SyncOrAsync[None]:
        """Stop any motion now."""
        ...


@runtime_checkable
class Pausable(Protocol):
    """A device that wants to know when the run pauses and resumes."""

    def pause(self) -> SyncOrAsync[None]:
        """The run is pausing (or suspending)."""
        ...

    def resume(self) -> SyncOrAsync[None]:
        """The run is resuming."""
        ...


@runtime_checkable
class Stageable(Protocol):
    """A device that is prepared for a run and restored afterwards."""

    def stage(self) -> Any:
        """Prepare for acquisition (may return something to await)."""
        ...

    def unstage(self) -> Any:
        """Restore the state before `stage` (may return something to await)."""
        ...


async def maybe_await(value: Any) -> Any:
    """`value`, awaited first if it is awaitable."""
    if inspect.isawaitable(value):
        return await value
    return value


async def await_status(status: Any) -> Any:
    """Wait for whatever a device returned from ``set``/``trigger``/``stage``.

    Accepts None (already done), anything awaitable (a coroutine, a `SimStatus`, an
    ophyd-async ``AsyncStatus``, a future) and bluesky-style statuses with ``add_callback``
    (ophyd's), whose callback may come from any thread. Whatever the kind, a status that fails
    raises `StatusFailed` with the device's exception as its ``__cause__`` (when bluesky is
    loaded it is also bluesky's ``FailedStatus``); cancellation is never converted.
    """
    if status is None:
        return None
    if inspect.isawaitable(status):
        try:
            return await status
        except StatusFailed as exc:
            if type(exc) is not StatusFailed or exc.__cause__ is not None:
                raise
            cause: BaseException = exc  # ours, from a SimStatus stopped early: keep its text
        except Exception as exc:
            cause = exc
        raise status_failed(f"{status!r} failed: {cause!r}", cause) from cause
    add_callback = getattr(status, "add_callback", None)
    if add_callback is None:
        return status  # a plain value: nothing to wait for
    if not getattr(status, "done", False):
        await _callback_done(status, add_callback)
    if getattr(status, "success", True) is False:
        error = None
        exception = getattr(status, "exception", None)
        if callable(exception):
            error = exception()
        raise status_failed(f"{status!r} finished unsuccessfully: {error!r}", error) from error
    return status


async def _callback_done(status: Any, add_callback: Callable[..., Any]) -> None:
    done = anyio.Event()
    handle = LoopHandle()

    def finished(_status: Any) -> None:
        # Driver statuses often finish in their own thread; only the loop may set the Event.
        if handle.in_loop_thread():
            done.set()
        else:
            handle.call_soon(done.set)

    add_callback(finished)
    await done.wait()


class SimStatus:
    """Completion of a simulated action: await it, or use bluesky's Status interface.

    Done when `finish` is called or, if it has one, when the monotonic `deadline` passes (a
    simulated move or exposure). Awaiting it raises `StatusFailed` if it finished unsuccessfully.
    Callbacks added with `add_callback` run when completion is observed: at once if already
    done, when `finish` is called, when an awaiter wakes, or (asyncio) at the deadline.
    """

    def __init__(
        self,
        deadline: float | None = None,
        *,
        clock: Clock | None = None,
        on_done: Callable[[SimStatus], None] | None = None,
    ) -> None:
        self._deadline = deadline
        self._clock = clock
        self._finished = False
        self._success = False
        self._exc: BaseException | None = None
        self._event: anyio.Event | None = None
        self._callbacks: list[Callable[[SimStatus], None]] = []
        if on_done is not None:
            self._callbacks.append(on_done)
        if deadline is None or deadline <= self._now():
            self.finish()

    def _now(self) -> float:
        return (self._clock or current_clock()).monotonic()

    def _poll(self) -> bool:
        # Completion by deadline is noticed lazily, by whoever looks first.
        if not self._finished and self._deadline is not None and self._now() >= self._deadline:
            self.finish()
        return self._finished

    def finish(self, success: bool = True, exc: BaseException | None = None) -> None:
        """Mark the action finished (idempotent: the first call wins)."""
        if self._finished:
            return
        self._finished = True
        self._success = success and exc is None
        self._exc = exc if exc is not None or success else StatusFailed("stopped before done")
        if self._event is not None:
            self._event.set()
        callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            cb(self)

    @property
    def done(self) -> bool:
        """True once finished (successfully or not)."""
        return self._poll()

    @property
    def success(self) -> bool:
        """True if finished successfully."""
        return self._poll() and self._success

    def exception(self, timeout: float | None = 0.0) -> BaseException | None:
        """Why it failed (None if it succeeded or is still running)."""
        self._poll()
        return self._exc

    def add_callback(self, callback: Callable[[SimStatus], None]) -> None:
        """Call ``callback(self)`` on completion (at once if already done)."""
        if self._poll():
            callback(self)
            return
        self._callbacks.append(callback)
        if self._deadline is not None:
            # Someone may rely on the callback alone (bluesky's RunEngine does): make the
            # deadline fire on its own when the loop is asyncio.
            try:
                import asyncio

                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            loop.call_at(self._deadline, self._poll)

    def _when_finished(self, callback: Callable[[SimStatus], None]) -> None:
        # `add_callback` without its deadline timer: for the run engine's failure watch,
        # which only cares about `finish` (a deadline always finishes successfully).
        if self._finished:
            callback(self)
        else:
            self._callbacks.append(callback)

    async def wait(self) -> None:
        """Wait until done; raise `StatusFailed` (or the recorded error) if it failed."""
        while not self._poll():
            if self._event is None:
                self._event = anyio.Event()
            deadline = math.inf if self._deadline is None else self._deadline
            with anyio.CancelScope(deadline=deadline):
                await self._event.wait()
        if not self._success:
            assert self._exc is not None
            raise self._exc

    def __await__(self) -> Generator[Any, None, None]:
        return self.wait().__await__()

    def __repr__(self) -> str:
        state = "running" if not self._finished else ("done" if self._success else "failed")
        return f"<SimStatus {state}>"


class _SimBase:
    """Name, clock and the bookkeeping that tests look at."""

    parent: Any = None

    def __init__(self, name: str, clock: Clock | None) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a device needs a non-empty str name, got {name!r}")
        self._name = name
        self._clock = clock
        #: How often each method was called (for tests and the demo).
        self.calls: dict[str, int] = {}
        self.staged = False

    @property
    def name(self) -> str:
        """The device's name (prefix of its data keys)."""
        return self._name

    @property
    def clock(self) -> Clock:
        """The clock the device simulates time on (the current clock unless given)."""
        return self._clock or current_clock()

    def _count(self, method: str) -> None:
        self.calls[method] = self.calls.get(method, 0) + 1

    @property
    def hints(self) -> dict[str, Any]:
        """Which fields to show first (bluesky's hints)."""
        return {"fields": [self._name]}

    def read_configuration(self) -> dict[str, Reading]:
        """Configuration readings (none)."""
        return {}

    def describe_configuration(self) -> dict[str, dict[str, Any]]:
        """Description of the configuration readings (none)."""
        return {}

    def stage(self) -> None:
        """Prepare for a run (records that it is staged)."""
        self._count("stage")
        self.staged = True

    def unstage(self) -> None:
        """Undo `stage`."""
        self._count("unstage")
        self.staged = False

    def pause(self) -> None:
        """The run pauses (counted)."""
        self._count("pause")

    def resume(self) -> None:
        """The run resumes (counted)."""
        self._count("resume")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r})"


class SimMotor(_SimBase):
    """A simulated motor: moves at `velocity` units per second (instantly if None).

    ``set(target)`` returns a `SimStatus` done on arrival; ``stop()`` halts it where it is (its
    status then fails, unless ``stop(success=True)``). Reads ``{name: position,
    name + "_setpoint": target}``.
    """

    def __init__(
        self,
        name: str,
        position: float = 0.0,
        *,
        velocity: float | None = None,
        units: str = "mm",
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name, clock)
        if velocity is not None and not velocity > 0:
            raise ValueError(f"velocity must be a positive number or None, got {velocity!r}")
        self.velocity = velocity
        self.units = units
        self._origin = float(position)
        self._target = float(position)
        self._t0 = 0.0
        self._t1 = 0.0  # arrival (monotonic); a motor at rest has _t1 <= now
        self._status: SimStatus | None = None

    @property
    def position(self) -> float:
        """Where the motor is now (interpolated while moving)."""
        if self._t1 <= self._t0:
            return self._target
        now = self.clock.monotonic()
        if now >= self._t1:
            return self._target
        frac = (now - self._t0) / (self._t1 - self._t0)
        return self._origin + (self._target - self._origin) * frac

    @property
    def moving(self) -> bool:
        """True while a move is under way."""
        return self._status is not None and not self._status.done

    def set(self, value: float) -> SimStatus:
        """Start moving to `value`; the status is done on arrival."""
        self._count("set")
        if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
            raise ValueError(f"{self._name}: target must be a number, got {value!r}")
        start = self.position
        if self._status is not None:
            self._status.finish(False)  # superseded by the new move
        now = self.clock.monotonic()
        self._origin, self._target, self._t0 = start, float(value), now
        travel = 0.0 if self.velocity is None else abs(value - start) / self.velocity
        self._t1 = now + travel
        self._status = SimStatus(self._t1 if travel > 0 else None, clock=self._clock)
        return self._status

    def stop(self, *, success: bool = False) -> None:
        """Stop where it is now; a running move's status finishes (failed unless `success`)."""
        self._count("stop")
        here = self.position
        self._origin = self._target = here
        self._t0 = self._t1 = self.clock.monotonic()
        if self._status is not None:
            self._status.finish(success)

    def read(self) -> dict[str, Reading]:
        """Position and setpoint, stamped with the clock's wall time."""
        self._count("read")
        ts = self.clock.time()
        return {
            self._name: {"value": self.position, "timestamp": ts},
            f"{self._name}_setpoint": {"value": self._target, "timestamp": ts},
        }

    def describe(self) -> dict[str, dict[str, Any]]:
        """Data keys of `read`."""
        src = f"SIM:{self._name}"
        return {
            self._name: {"source": src, "dtype": "number", "shape": [], "units": self.units},
            f"{self._name}_setpoint": {
                "source": src,
                "dtype": "number",
                "shape": [],
                "units": self.units,
            },
        }


class SimDetector(_SimBase):
    """A simulated detector: ``trigger()`` exposes for `exposure` seconds, then takes a value.

    The value comes from `func` (called with no arguments at the end of each exposure;
    default: 1, 2, 3, ...), e.g. ``SimDetector("det", lambda: gauss(motor.position))``.
    """

    def __init__(
        self,
        name: str,
        func: Callable[[], Any] | None = None,
        *,
        exposure: float = 0.0,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name, clock)
        if not exposure >= 0:
            raise ValueError(f"exposure must be >= 0 seconds, got {exposure!r}")
        if func is None:
            counter = itertools.count(1)
            func = lambda: float(next(counter))  # noqa: E731
        self.func = func
        self.exposure = float(exposure)
        self._value: Any = None
        self._ts = 0.0
        self._status: SimStatus | None = None

    def _acquire(self, _status: SimStatus) -> None:
        self._value = self.func()
        self._ts = self.clock.time()

    def trigger(self) -> SimStatus:
        """Start an exposure; the status is done (and the value taken) when it ends."""
        self._count("trigger")
        deadline = None
        if self.exposure > 0:
            deadline = self.clock.monotonic() + self.exposure
        self._status = SimStatus(deadline, clock=self._clock, on_done=self._acquire)
        return self._status

    def stop(self, *, success: bool = False) -> None:
        """Abandon a running exposure."""
        self._count("stop")
        if self._status is not None:
            self._status.finish(success)

    def read(self) -> dict[str, Reading]:
        """The value of the last completed exposure (None before the first)."""
        self._count("read")
        if self._status is not None:
            self._status.done  # noqa: B018 -- observing it completes an elapsed exposure
        return {self._name: {"value": self._value, "timestamp": self._ts}}

    def describe(self) -> dict[str, dict[str, Any]]:
        """Data keys of `read`."""
        return {self._name: {"source": f"SIM:{self._name}", "dtype": "number", "shape": []}}


class SimSignal(_SimBase):
    """A simulated scalar signal (beam current, shutter, interlock) with change callbacks.

    `subscribe` follows ophyd's convention, ``callback(value=..., old_value=..., timestamp=...,
    obj=...)``, so suspenders watch ophyd signals and this one alike.
    """

    def __init__(self, name: str, value: Any = 0.0, *, clock: Clock | None = None) -> None:
        super().__init__(name, clock)
        self._value = value
        self._ts = 0.0
        self._subs: dict[int, Callable[..., Any]] = {}
        self._ids = itertools.count(1)

    def get(self) -> Any:
        """The current value."""
        return self._value

    def put(self, value: Any) -> None:
        """Change the value and tell every subscriber."""
        old, self._value = self._value, value
        try:
            self._ts = self.clock.time()
        except Exception:  # outside a loop (set-up code): no clock to ask
            self._ts = 0.0
        for cb in list(self._subs.values()):
            cb(value=value, old_value=old, timestamp=self._ts, obj=self)

    def set(self, value: Any) -> SimStatus:
        """`put`, as a movable: returns a status that is already done."""
        self._count("set")
        self.put(value)
        return SimStatus(None, clock=self._clock)

    def subscribe(self, callback: Callable[..., Any], run: bool = True) -> int:
        """Call `callback` on every change (and at once, with `run`); returns a token."""
        cid = next(self._ids)
        self._subs[cid] = callback
        if run:
            callback(value=self._value, old_value=None, timestamp=self._ts, obj=self)
        return cid

    def clear_sub(self, callback_or_token: Callable[..., Any] | int) -> None:
        """Stop calling a subscribed callback (given by itself or by its token)."""
        for cid, cb in list(self._subs.items()):
            if cid == callback_or_token or cb is callback_or_token:
                del self._subs[cid]

    def read(self) -> dict[str, Reading]:
        """The value as a reading."""
        self._count("read")
        return {self._name: {"value": self._value, "timestamp": self._ts}}

    def describe(self) -> dict[str, dict[str, Any]]:
        """Data key of `read`."""
        dtype = "number" if isinstance(self._value, int | float) else "string"
        return {self._name: {"source": f"SIM:{self._name}", "dtype": dtype, "shape": []}}
