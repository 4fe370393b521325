"""The run engine: executes plans with checkpoints, pauses, suspenders, clean-up and panic.

``result = await run_engine.run(plan)`` drives the plan in the caller's own task, on the
caller's loop. Pause is a *state*: when a pause lands, `run` returns a `RunResult` with
``paused=True`` and the plan waits, generator and all, until `resume` (or `stop`, `abort`,
`halt`) drives it on from whichever task calls it. Nothing runs in a background thread and
nothing is raised to signal a pause.

How a message is processed: the top generator of the plan stack yields a `Msg`; if rewinding is
on and the command is cacheable, the message is appended to the *replay cache* (cleared at
every checkpoint); it is recorded for the Log; the command's handler runs (sync handlers
directly, async ones awaited inside the drive's cancel scope) and its value, or its error, goes
back into the generator. Messages reach the Log in batches (``plan.msgs``), flushed before
anything is awaited and before any other event the run engine writes: one Log event per
stretch of messages processed without waiting keeps a million-message plan cheap, while the
Log stays in causal order and each message's timestamp is exact to within that stretch.

Interruptions all go through one slot, `_request`, holding the strongest pending request
(suspend < pause < stop < abort < halt < panic). Requests that must take effect at once
(hard pause, suspension, stop, abort, halt, panic) also cancel the drive's scope, which
interrupts whatever the current message awaits; the message loop checks the slot before every
message, so a request made from synchronous code (a subscriber, the plan itself, a callback)
lands before the next message without needing an `await`. Requesting never waits for
anything, which is why it cannot deadlock.
"""

from __future__ import annotations

import inspect
import signal
import threading
from collections.abc import Awaitable, Callable, Generator, Iterable
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple

import anyio
import msgspec

from .._events import Event, reserve_kind
from .._exceptions import EngineStateError, EventPayloadError
from ._devices import await_status, maybe_await
from ._documents import DOCUMENT_NAMES, OpenRun, new_uid
from ._errors import (
    IllegalMessageSequence,
    PauseHeldError,
    RequestAbort,
    RequestStop,
    StatusFailed,
    UnknownCommandError,
)
from ._loop import LoopHandle
from ._msg import Msg
from ._state import RunState, check_transition
from ._stubs import ensure_generator
from ._suspenders import Suspender

if TYPE_CHECKING:
    from .._engine import Engine

__all__ = [
    "DocumentCallback",
    "ExitStatus",
    "LoggedMsg",
    "RunEngine",
    "RunResult",
    "logged_messages",
]

ExitStatus = Literal["success", "abort", "fail"]
#: A document subscriber: ``callback(name, doc)`` with name one of start/descriptor/event/stop.
DocumentCallback = Callable[[str, dict[str, Any]], Any]
#: A custom command handler: ``handler(msg)``, sync or async; its value goes to the plan.
CommandHandler = Callable[[Any], Any]

for _name, _doc in (
    ("run_engine.state", "the run engine changed state; payload: from, to, plan"),
    ("run_engine.pause_requested", "a pause was requested; payload: defer, name, source"),
    ("run_engine.resume_refused", "resume() was refused; payload: holding (names)"),
    ("run_engine.panicked", "panic(); payload: previous state, cancelled jobs"),
    ("run_engine.all_is_well", "all_is_well() lifted a panic; payload: state"),
    ("run_engine.sigint", "Ctrl+C while a plan ran; payload: count, action"),
    ("plan.started", "a plan started; payload: metadata"),
    ("plan.finished", "a plan ended; payload: exit_status, reason, run_uids, interrupted"),
    ("plan.paused", "a plan paused; payload: replay (messages to replay on resume)"),
    (
        "plan.msgs",
        "messages the run engine processed, in order, since the previous such event (flushed "
        "before anything is awaited); payload: command (list), obj (list of names or null), "
        "replay (whether these messages are replays)",
    ),
    ("plan.rewound", "a plan rewound to its last checkpoint; payload: messages replayed"),
    ("plan.suspended", "a suspender suspended the plan; payload: suspender, justification"),
    ("plan.cleanup_failed", "a clean-up step failed; payload: device, step, error"),
):
    reserve_kind(_name, _doc)

# Requests, weakest first: a stronger request replaces a weaker pending one.
_NONE: Final = 0
_SUSPEND: Final = 1
_PAUSE: Final = 2
_STOP: Final = 3
_ABORT: Final = 4
_HALT: Final = 5
_PANIC: Final = 6

# Messages never replayed: the pause itself, and those that act as checkpoints.
_UNCACHEABLE: Final = frozenset(
    {
        "pause",
        "checkpoint",
        "clear_checkpoint",
        "stage",
        "unstage",
        "subscribe",
        "unsubscribe",
        "open_run",
        "close_run",
        "install_suspender",
        "remove_suspender",
        "_wait_for_suspenders",
        "_resume_from_suspension",
    }
)

_S = RunState
_ENDING: Final = frozenset({_S.STOPPING, _S.ABORTING, _S.HALTING})
_SIGINT_WINDOW: Final = 10.0  # seconds within which a second Ctrl+C hardens the pause
_json_fallback = msgspec.json.Encoder(
    enc_hook=lambda o: o.tolist() if hasattr(o, "tolist") else repr(o)
)
_json_decode = msgspec.json.Decoder(dict[str, Any])


class LoggedMsg(NamedTuple):
    """One processed message as the Log records it (see `logged_messages`)."""

    command: str
    obj: str | None
    replay: bool
    plan_uid: str
    seq: int  # the Log sequence number of the ``plan.msgs`` event that holds it


def logged_messages(events: Iterable[Event], plan_uid: str | None = None) -> list[LoggedMsg]:
    """The messages recorded in ``plan.msgs`` events, one by one and in order.

    `events` is any sequence of Log events (e.g. ``engine.log.recent(kinds="plan.msgs")``);
    other kinds are skipped. With `plan_uid`, only that plan's messages.
    """
    out: list[LoggedMsg] = []
    for event in events:
        if event.kind != "plan.msgs" or (plan_uid is not None and event.subject != plan_uid):
            continue
        payload = event.payload
        replay = payload["replay"]
        for command, obj in zip(payload["command"], payload["obj"], strict=True):
            out.append(LoggedMsg(command, obj, replay, event.subject, event.seq))
    return out


@dataclass(frozen=True, slots=True)
class RunResult:
    """What `RunEngine.run` (and `resume`, `stop`, `abort`, `halt`) hand back.

    Attributes:
        plan_uid: the id of this plan execution (the subject of its ``plan.*`` Log events).
        exit_status: ``"success"``, ``"abort"`` or ``"fail"``; None while the plan is paused.
        reason: why it ended early (the abort reason, the error, ``"halt"``, ``"panic"``).
        run_uids: uids of the runs the plan opened (subjects of their ``run.*`` documents).
        plan_result: the plan's return value (None unless it ran to its end).
        interrupted: True unless the plan ran to its end undisturbed (paused, stopped,
            aborted, halted, panicked).
        paused: True when the plan is paused and waits for `RunEngine.resume`.
        exception: the plan's exception when it failed (the driver also re-raises it).
    """

    plan_uid: str
    exit_status: ExitStatus | None
    reason: str
    run_uids: tuple[str, ...]
    plan_result: Any
    interrupted: bool
    paused: bool
    exception: BaseException | None = None


class _Frame:
    """One generator on the plan stack and what to send into it next."""

    __slots__ = ("gen", "replay", "result_to", "send", "throw")

    def __init__(
        self,
        gen: Generator[Any, Any, Any],
        *,
        replay: bool = False,
        result_to: _Frame | None = None,
    ) -> None:
        self.gen = gen
        self.send: Any = None
        self.throw: BaseException | None = None
        #: messages of this frame are replays (flagged so in ``plan.msg``)
        self.replay = replay
        #: frame that receives this frame's return value (a replay answers the message whose
        #: processing was interrupted)
        self.result_to = result_to


class _TaskStatus:
    """A coroutine returned by a device's ``set``/``trigger``, run as a task of the drive."""

    def __init__(self) -> None:
        self._done = anyio.Event()
        self._exc: BaseException | None = None
        self.value: Any = None

    async def run(self, coro: Awaitable[Any]) -> None:
        try:
            self.value = await coro
        except anyio.get_cancelled_exc_class():
            self._exc = StatusFailed("cancelled: the run paused, suspended or ended")
            raise
        except Exception as exc:
            self._exc = exc
        finally:
            self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    async def wait(self) -> Any:
        await self._done.wait()
        if self._exc is not None:
            raise self._exc
        return self.value

    def __await__(self) -> Generator[Any, None, Any]:
        return self.wait().__await__()


def _replay(msgs: list[Any]) -> Generator[Any, Any, Any]:
    # Answers the interrupted message with the value its replay produced.
    value = None
    for msg in msgs:
        value = yield msg
    return value


def _from_iterable(plan: Iterable[Any]) -> Generator[Any, Any, None]:
    # Not `yield from`: that would pass the engine's values on to a list iterator's send().
    for msg in plan:  # noqa: UP028
        yield msg


def _obj_name(obj: Any) -> str | None:
    if obj is None:
        return None
    if isinstance(obj, str):
        return obj
    name = getattr(obj, "name", None)
    if isinstance(name, str):
        return name
    return getattr(obj, "__qualname__", None) or type(obj).__name__


class RunEngine:
    """Runs plans on an `Engine`'s loop, Log and Clock.

    Args:
        engine: the `timecontrol.Engine` whose Log records everything, whose Clock times
            sleeps and devices, and whose scheduled dispatch is held while a plan is paused or
            the engine is panicked.
        name: prefix of the dispatch holds (``"<name>.pause"``, ``"<name>.panic"``).
        handle_sigint: take over Ctrl+C in the main thread while a plan runs (one press: a
            deferred pause; a second within 10 s: a hard pause). The previous handler is put
            back when `run`/`resume` returns.
        log_messages: record every processed message in the Log (``plan.msgs`` events; read
            them back one by one with `logged_messages`).
        cleanup_timeout: seconds allowed for each device's ``stop``/``unstage`` during
            clean-up, so that one stuck device cannot keep the others moving.
        yield_every: let other tasks run at least every this many messages (a plan of
            millions of instantaneous messages must not starve the loop).
        rewindable: replay messages since the last checkpoint on resume (see `rewindable`).
        metadata: metadata added to every run start document (``run_engine.md``).

    The state machine and its transitions are documented in `timecontrol.plans.RunState`.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        name: str = "run_engine",
        handle_sigint: bool = True,
        log_messages: bool = True,
        cleanup_timeout: float = 10.0,
        yield_every: int = 64,
        rewindable: bool = True,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if not (isinstance(cleanup_timeout, int | float) and cleanup_timeout > 0):
            raise ValueError(f"cleanup_timeout must be > 0 seconds, got {cleanup_timeout!r}")
        if not (isinstance(yield_every, int) and yield_every >= 1):
            raise ValueError(f"yield_every must be an int >= 1, got {yield_every!r}")
        self.engine = engine
        self.name = name
        self.handle_sigint = handle_sigint
        self.log_messages = log_messages
        self.cleanup_timeout = float(cleanup_timeout)
        self.yield_every = yield_every
        #: Metadata merged into every run start document (run's own metadata wins).
        self.md: dict[str, Any] = dict(metadata or {})
        self._pause_holder = f"{name}.pause"
        self._panic_holder = f"{name}.panic"
        self._state = _S.IDLE
        self._handlers: dict[str, tuple[CommandHandler, bool]] = {}
        self._subscribers: dict[int, tuple[str, DocumentCallback]] = {}
        self._next_token = 1
        self._suspenders: list[Suspender] = []
        self._scan_id = 0
        self._handle: LoopHandle | None = None
        self._last_sigint: float | None = None
        self._sigint_count = 0
        self._panic_return = _S.IDLE
        self._panic_cleared = False
        self._driving = False
        self._drive_done: anyio.Event | None = None
        #: the result of the latest run/resume/stop (what stop() hands to other tasks)
        self._last_result: RunResult | None = None
        self._rewindable_default = rewindable
        self._reset_plan()
        for command, handler in self._builtin_handlers().items():
            self._handlers[command] = (handler, inspect.iscoroutinefunction(handler))

    # -- per-plan state --------------------------------------------------------------------

    def _reset_plan(self) -> None:
        self._plan_uid = ""
        self._stack: list[_Frame] = []
        self._request = _NONE
        self._deferred = False
        self._scope: anyio.CancelScope | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._in_flight: _Frame | None = None
        self._in_flight_cached = False
        self._resume_into: _Frame | None = None
        self._cache: list[Any] | None = []  # the beginning of a plan is a checkpoint
        self._rewindable = self._rewindable_default
        self._runs: dict[Any, OpenRun] = {}
        self._run_uids: list[str] = []
        self._groups: dict[Any, list[Any]] = {}
        self._movables: dict[int, Any] = {}
        self._staged: dict[int, Any] = {}
        self._seen: dict[int, Any] = {}
        self._temp_subscriptions: list[int] = []
        self._plan_suspenders: list[Suspender] = []
        self._pause_requests: dict[str, Callable[[], bool] | None] = {}
        self._ending: str = ""
        self._reason = ""
        self._plan_result: Any = None
        self._metadata: dict[str, Any] = {}
        self._suspenders_changed: anyio.Event | None = None
        # Messages not yet in the Log: commands, object names, and whether they are replays
        # (a batch never mixes the two, so one flag per ``plan.msgs`` event suffices).
        self._batch: list[str] = []
        self._batch_obj: list[str | None] = []
        self._batch_replay = False

    # -- public state ------------------------------------------------------------------------------

    @property
    def state(self) -> RunState:
        """The current state (a `RunState`, equal to its name, e.g. ``"paused"``)."""
        return self._state

    @property
    def resumable(self) -> bool:
        """False after ``clear_checkpoint`` until the next checkpoint: a pause would abort."""
        return self._cache is not None

    @property
    def rewindable(self) -> bool:
        """Whether messages since the last checkpoint are replayed on resume.

        Setting it changes the default for the following plans (and the current one); a
        plan's ``rewindable`` message changes it for that plan only.
        """
        return self._rewindable

    @rewindable.setter
    def rewindable(self, value: bool) -> None:
        self._rewindable_default = bool(value)
        self._set_rewindable(bool(value))

    @property
    def plan_uid(self) -> str:
        """Id of the current (or paused) plan; "" when idle."""
        return self._plan_uid

    @property
    def pause_requests(self) -> dict[str, bool]:
        """Named pause requests of the paused plan, and whether each would now allow resuming."""
        return {name: self._permits(cb) for name, cb in self._pause_requests.items()}

    @property
    def suspenders(self) -> tuple[Suspender, ...]:
        """Suspenders installed for every run (see `install_suspender`)."""
        return tuple(self._suspenders)

    @property
    def commands(self) -> tuple[str, ...]:
        """Every command a message may use."""
        return tuple(sorted(c for c in self._handlers if not c.startswith("_")))

    # -- state machine -----------------------------------------------------------------------------

    def _record(self, kind: str, subject: str, payload: dict[str, Any]) -> None:
        """Append an event, after the messages processed so far (so the Log stays causal)."""
        if self._batch:
            self._flush_msgs()
        self.engine.log._emit(kind, subject, payload)

    def _flush_msgs(self) -> None:
        payload = {"command": self._batch, "obj": self._batch_obj, "replay": self._batch_replay}
        self._batch, self._batch_obj = [], []
        self.engine.log._emit("plan.msgs", self._plan_uid, payload)

    def _set_state(self, new: RunState, *, force: bool = False, **info: Any) -> None:
        old = self._state
        if old is new:
            return
        if old is _S.PANICKED and not force:
            # A panic is sticky: the wind-down of a panicked plan goes on underneath it, and
            # only all_is_well() leaves the state.
            return
        check_transition(old, new)
        self._state = new
        self._record(
            "run_engine.state",
            self._plan_uid,
            {"from": old.value, "to": new.value, "plan": self._plan_uid, **info},
        )

    def _refuse(self, what: str) -> EngineStateError:
        state = self._state
        if state is _S.PANICKED:
            return EngineStateError(
                f"{what} refused: the run engine is panicked; call all_is_well() first"
            )
        if state is _S.IDLE:
            return EngineStateError(f"{what} refused: no plan is running or paused (idle)")
        if state is _S.PAUSED:
            return EngineStateError(
                f"{what} refused: a plan is paused; resume(), stop(), abort() or halt() it first"
            )
        return EngineStateError(f"{what} refused while the run engine is {state.value!r}")

    def _check_engine(self, what: str) -> None:
        # Everything a plan does is recorded in the engine's Log, which only takes events
        # while the engine runs.
        if not self.engine.running:
            raise EngineStateError(
                f"{what} refused: the engine is not running; use 'async with engine:' or "
                "'await engine.start()' first"
            )

    def _on_foreign_thread(self) -> bool:
        handle = self._handle
        return handle is not None and not handle.in_loop_thread()

    # -- running -----------------------------------------------------------------------------------

    async def run(self, plan: Iterable[Any], **metadata: Any) -> RunResult:
        """Run `plan` in this task until it ends or pauses; return a `RunResult`.

        `plan` is a generator of messages (or any iterable of them); `metadata` goes into the
        start document of every run the plan opens. If the plan raises, the runs end with
        ``fail``, clean-up runs, and the exception is re-raised here. Refused (with
        `timecontrol.EngineStateError`) unless the engine is idle.
        """
        if self._state is not _S.IDLE or self._driving:
            raise self._refuse("run()")
        self._check_engine("run()")
        if inspect.isgeneratorfunction(plan) or (callable(plan) and not hasattr(plan, "__iter__")):
            raise TypeError(
                f"run() takes a plan (a generator of messages), got the function {plan!r}; "
                "call it first, e.g. run(count([det]))"
            )
        gen: Generator[Any, Any, Any]
        if hasattr(plan, "send") and hasattr(plan, "throw"):
            gen = plan  # type: ignore[assignment]
        else:
            try:
                gen = _from_iterable(iter(plan))
            except TypeError:
                raise TypeError(
                    f"run() takes a generator (or iterable) of messages, got {plan!r}"
                ) from None
        self._reset_plan()
        self._plan_uid = new_uid()
        self._metadata = {**self.md, **metadata}
        self._stack.append(_Frame(gen))
        self._sigint_count = 0
        self._record("plan.started", self._plan_uid, {"metadata": self._jsonable(self._metadata)})
        self._set_state(_S.RUNNING)
        return await self._drive()

    async def resume(self) -> RunResult:
        """Resume the paused plan from its last checkpoint; return as `run` does.

        Messages processed since that checkpoint are replayed first (unless rewinding was
        off); the ``pause`` message itself is not. Raises `PauseHeldError` (listing the names)
        while a named pause request's callback does not allow it, and
        `timecontrol.EngineStateError` unless a plan is paused (or while panicked).
        """
        if self._state is not _S.PAUSED or self._driving:
            raise self._refuse("resume()")
        self._check_engine("resume()")
        holding: list[str] = []
        for name, callback in list(self._pause_requests.items()):
            if self._permits(callback):
                del self._pause_requests[name]
            else:
                holding.append(name)
        if holding:
            self._record("run_engine.resume_refused", self._plan_uid, {"holding": holding})
            raise PauseHeldError(holding)
        self._set_state(_S.RUNNING)
        self.engine.release_dispatch(self._pause_holder)
        self._sigint_count = 0
        return await self._drive(resuming=True)

    async def stop(self) -> RunResult:
        """End the plan as a success: it may clean up (``RequestStop`` is thrown into it).

        From ``paused`` the clean-up runs in this task; while running, this waits for the
        plan to end. Returns the final `RunResult`.
        """
        return await self._end_request(_STOP, "stop()", "")

    async def abort(self, reason: str = "") -> RunResult:
        """End the plan as aborted, keeping `reason` in the runs' stop documents.

        The plan may clean up (``RequestAbort`` is thrown into it). From ``paused`` the
        clean-up runs in this task; while running, this waits for the plan to end.
        """
        return await self._end_request(_ABORT, "abort()", str(reason))

    async def halt(self) -> RunResult:
        """End the plan at once without letting it clean up (exit status ``abort``).

        The engine still stops what was moved, unstages what was staged and closes open runs.
        """
        return await self._end_request(_HALT, "halt()", "halt")

    async def _end_request(self, request: int, what: str, reason: str) -> RunResult:
        state = self._state
        if state is _S.PAUSED and not self._driving:
            self._check_engine(what)
            self.engine.release_dispatch(self._pause_holder)
            self._request = request
            self._reason = reason
            return await self._drive()
        if self._driving and state in {_S.RUNNING, _S.PAUSING, _S.SUSPENDING} | _ENDING:
            if request == _STOP and state in _ENDING:
                raise self._refuse(what)
            if request > self._request:
                self._request = request
                self._reason = reason
            if self._scope is not None:
                self._scope.cancel()
            done = self._drive_done
            if done is not None:
                await done.wait()
            if self._last_result is None or self._last_result.paused:
                raise EngineStateError(f"{what}: the plan was cancelled before it could end")
            return self._last_result
        raise self._refuse(what)

    # -- pause, panic ------------------------------------------------------------------------------

    def request_pause(
        self,
        defer: bool = False,
        name: str | None = None,
        callback: Callable[[], bool] | None = None,
    ) -> None:
        """Ask the running plan to pause; never blocks, so it is safe from anywhere.

        Args:
            defer: False (hard pause): interrupt the current message at once; on resume the
                plan replays from its last checkpoint. True (deferred): pause when the plan
                reaches its next ``checkpoint`` message, so nothing is replayed. During a
                suspension every pause is hard (nothing is in flight to protect).
            name: names the request; with `callback`, `resume` is refused (reporting the
                name) until ``callback()`` returns True.
            callback: permission check for `name`, called on each `resume`.

        From a thread other than the loop's, or from a signal handler, the request is handed
        to the loop and applied there. Raises `timecontrol.EngineStateError` when no plan is
        running, suspending, pausing or paused.
        """
        if self._on_foreign_thread():
            assert self._handle is not None
            self._handle.call_soon(self._request_pause_quietly, defer, name, callback, "thread")
            return
        self._request_pause(defer, name, callback, "call")

    def _request_pause_quietly(
        self, defer: bool, name: str | None, callback: Callable[[], bool] | None, source: str
    ) -> None:
        # From threads and signals there is nobody to raise to: a refusal is only logged.
        try:
            self._request_pause(defer, name, callback, source)
        except EngineStateError as exc:
            self._record(
                "run_engine.pause_requested",
                self._plan_uid,
                {"defer": defer, "name": name, "source": source, "refused": str(exc)},
            )

    def _request_pause(
        self, defer: bool, name: str | None, callback: Callable[[], bool] | None, source: str
    ) -> None:
        state = self._state
        if state not in (_S.RUNNING, _S.SUSPENDING, _S.PAUSING, _S.PAUSED):
            raise self._refuse("request_pause()")
        if name is not None:
            self._pause_requests[str(name)] = callback
        self._record(
            "run_engine.pause_requested",
            self._plan_uid,
            {"defer": defer, "name": name, "source": source},
        )
        if state is _S.PAUSED or state is _S.PAUSING:
            return  # already (being) paused: only the named hold is added
        if defer and state is _S.RUNNING:
            self._deferred = True
            return
        self._raise(_PAUSE, cancel=True)

    def _raise(self, request: int, *, cancel: bool) -> None:
        self._request = max(self._request, request)
        if cancel and self._scope is not None:
            self._scope.cancel()

    def panic(self) -> None:
        """Emergency stop, from any state; sync and safe from any thread.

        Holds the scheduler's dispatch and cancels its running jobs (each recorded as
        ``action.cancelled``). A running plan stops before its next message and ends with
        ``fail`` (reason ``"panic"``) after the engine's clean-up; a paused plan stays paused.
        Until `all_is_well`, `run` and `resume` are refused.
        """
        if self._on_foreign_thread():
            assert self._handle is not None
            self._handle.call_soon(self.panic)
            return
        previous = self._state
        self.engine.hold_dispatch(self._panic_holder)
        cancelled = self.engine.cancel_running()
        self._panic_cleared = False
        if previous is not _S.PANICKED:
            if previous in (_S.PAUSED, _S.PAUSING):
                self._panic_return = _S.PAUSED
            elif previous is _S.IDLE:
                self._panic_return = _S.IDLE
            else:
                self._panic_return = _S.IDLE  # the run is ended with fail
            self._set_state(_S.PANICKED)
        self._record(
            "run_engine.panicked",
            self._plan_uid,
            {"previous": previous.value, "cancelled_jobs": cancelled},
        )
        if self._driving and previous not in (_S.PAUSED, _S.PAUSING):
            self._raise(_PANIC, cancel=True)

    def all_is_well(self) -> None:
        """Lift a panic: back to ``idle``, or to ``paused`` if a plan was paused.

        Releases the scheduler's dispatch. A no-op unless panicked. Safe from any thread.
        """
        if self._on_foreign_thread():
            assert self._handle is not None
            self._handle.call_soon(self.all_is_well)
            return
        if self._state is not _S.PANICKED:
            return
        self.engine.release_dispatch(self._panic_holder)
        target = self._panic_return
        self._record("run_engine.all_is_well", self._plan_uid, {"state": target.value})
        if self._driving:
            # The panicked plan is still being cleaned up; it goes idle when that is done.
            self._panic_cleared = True
            return
        self._set_state(target, force=True)

    # -- subscriptions, suspenders, commands -------------------------------------------------------

    def subscribe(self, callback: DocumentCallback, name: str = "all") -> int:
        """Call ``callback(name, doc)`` for every document (or only those named `name`).

        Returns a token for `unsubscribe`. Callbacks run synchronously as documents are
        emitted; an exception in one is thrown into the plan at the message that emitted it.
        """
        if name != "all" and name not in DOCUMENT_NAMES:
            raise ValueError(f"name must be 'all' or one of {list(DOCUMENT_NAMES)}, got {name!r}")
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")
        token = self._next_token
        self._next_token += 1
        self._subscribers[token] = (name, callback)
        return token

    def unsubscribe(self, token: int) -> None:
        """Remove a subscription made with `subscribe` (unknown tokens are ignored)."""
        self._subscribers.pop(token, None)

    def install_suspender(self, suspender: Suspender) -> None:
        """Watch `suspender` during every run until `remove_suspender`."""
        if not isinstance(suspender, Suspender):
            raise TypeError(f"expected a Suspender, got {suspender!r}")
        if suspender not in self._suspenders:
            self._suspenders.append(suspender)
            suspender.install(self)

    def remove_suspender(self, suspender: Suspender) -> None:
        """Stop watching `suspender`."""
        if suspender in self._suspenders:
            self._suspenders.remove(suspender)
            if suspender not in self._plan_suspenders:
                suspender.remove(self)

    def clear_suspenders(self) -> None:
        """Remove every suspender installed with `install_suspender`."""
        for suspender in list(self._suspenders):
            self.remove_suspender(suspender)

    def register_command(self, name: str, handler: CommandHandler) -> None:
        """Make ``Msg(name, ...)`` call ``handler(msg)`` (sync or async); its value goes back
        into the plan. Replaces an existing command of that name."""
        if not isinstance(name, str) or not name or name.startswith("_"):
            raise ValueError(
                f"command name must be a non-empty str not starting with '_', got {name!r}"
            )
        if not callable(handler):
            raise TypeError(f"handler must be callable, got {handler!r}")
        self._handlers[name] = (handler, inspect.iscoroutinefunction(handler))

    def unregister_command(self, name: str) -> None:
        """Remove a command (messages using it then fail with `UnknownCommandError`)."""
        self._handlers.pop(name, None)

    # -- the drive ---------------------------------------------------------------------------------

    async def _drive(self, *, resuming: bool = False) -> RunResult:
        """Process the plan in this task until it pauses or ends."""
        self._driving = True
        self._drive_done = anyio.Event()
        self._handle = LoopHandle()
        restore_sigint = self._install_sigint()
        result: RunResult | None = None
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                for suspender in self._all_suspenders():
                    if suspender.poll is not None:
                        tg.start_soon(self._watch, suspender)
                try:
                    if resuming:
                        await self._resume_devices()
                    result = await self._drive_loop()
                finally:
                    self._tg = None
                    tg.cancel_scope.cancel()
        finally:
            restore_sigint()
            self._driving = False
            done, self._drive_done = self._drive_done, None
            done.set()
            if self._state is _S.PANICKED and self._panic_cleared:
                self._panic_cleared = False
                self._set_state(self._panic_return, force=True)
        assert result is not None
        if result.exception is not None and result.exit_status == "fail":
            raise result.exception
        return result

    async def _resume_devices(self) -> None:
        # Inside the drive, so that stop(), panic() etc. see a driven plan meanwhile.
        for obj in list(self._seen.values()):
            if callable(getattr(obj, "resume", None)):
                await self._safely(obj, "resume", obj.resume)
        self._rewind(self._resume_into)
        self._resume_into = None

    async def _drive_loop(self) -> RunResult:
        cancelled = anyio.get_cancelled_exc_class()
        try:
            if self._state is _S.RUNNING and any(s.check() for s in self._all_suspenders()):
                self._raise(_SUSPEND, cancel=False)
            while True:
                request = self._request
                if request == _NONE:
                    failure: Exception | None = None
                    with anyio.CancelScope() as scope:
                        self._scope = scope
                        try:
                            await self._pump()
                        except Exception as exc:
                            failure = exc
                        finally:
                            self._scope = None
                    if failure is not None:
                        return await self._end_after_failure(failure)
                    if not self._stack and self._request == _NONE:
                        if self._ending == "abort":  # the plan swallowed RequestAbort
                            return await self._finish("abort", self._reason, interrupted=True)
                        if self._ending == "stop":
                            return await self._finish("success", "stop", interrupted=True)
                        return await self._finish("success", "", interrupted=False)
                    continue
                if request == _PANIC:
                    self._close_plan()
                    return await self._finish("fail", "panic", interrupted=True)
                if request == _HALT:
                    self._request = _NONE
                    self._set_state(_S.HALTING)
                    self._close_plan()
                    return await self._finish("abort", self._reason or "halt", interrupted=True)
                if request in (_STOP, _ABORT):
                    self._begin_ending(request)
                    continue
                if request == _PAUSE:
                    paused = await self._pause()
                    if paused is not None:
                        return paused
                    continue
                if request == _SUSPEND:
                    await self._suspend()
                    continue
        except cancelled:
            # Our caller was cancelled (not us): end the plan as a halt would, then let the
            # cancellation go on. Clean-up is shielded so that devices are still stopped.
            with anyio.CancelScope(shield=True):
                self._close_plan()
                if self._state is _S.PANICKED:
                    # e.g. the plan ran inside a scheduled job that panic() just cancelled
                    await self._finish("fail", "panic", interrupted=True)
                else:
                    if self._state not in _ENDING:
                        self._set_state(_S.HALTING)
                    await self._finish("abort", "cancelled", interrupted=True)
            raise

    async def _pump(self) -> None:
        """Process messages until the plan ends or a request is pending."""
        try:
            await self._pump_loop()
        finally:
            if self._batch:
                self._flush_msgs()

    async def _pump_loop(self) -> None:
        # The hot loop: attribute look-ups hoisted into locals.
        stack = self._stack
        handlers = self._handlers
        log_messages = self.log_messages
        budget = self.yield_every
        count = 0
        while stack:
            if self._request:
                return
            frame = stack[-1]
            try:
                exc = frame.throw
                if exc is not None:
                    frame.throw = None
                    msg = frame.gen.throw(exc)
                else:
                    value, frame.send = frame.send, None
                    msg = frame.gen.send(value)
            except StopIteration as stop:
                stack.pop()
                if frame.result_to is not None:
                    frame.result_to.send = stop.value
                elif not stack:
                    self._plan_result = stop.value
                continue
            except Exception as exc:
                stack.pop()
                if not stack:
                    raise
                stack[-1].throw = exc
                continue
            try:
                command = msg.command
            except AttributeError:
                frame.throw = TypeError(f"a plan must yield messages (Msg), got {msg!r}")
                continue
            cache = self._cache
            cached = False
            if cache is not None and self._rewindable and command not in _UNCACHEABLE:
                cache.append(msg)
                cached = True
            if log_messages:
                # Batched: one Log event per stretch of messages processed without awaiting.
                obj = msg.obj
                if frame.replay is not self._batch_replay:
                    if self._batch:
                        self._flush_msgs()
                    self._batch_replay = frame.replay
                self._batch.append(command)
                self._batch_obj.append(None if obj is None else _obj_name(obj))
            entry = handlers.get(command)
            if entry is None:
                frame.throw = UnknownCommandError(
                    f"unknown command {command!r} in {msg!r}; known commands: "
                    f"{list(self.commands)} (add one with register_command)"
                )
                continue
            handler, is_async = entry
            try:
                if is_async:
                    self._in_flight = frame
                    self._in_flight_cached = cached
                    if self._batch:
                        self._flush_msgs()  # the message is recorded before it is awaited
                    frame.send = await handler(msg)
                    self._in_flight = None
                else:
                    frame.send = handler(msg)
            except Exception as exc:
                self._in_flight = None
                frame.throw = exc
            count += 1
            if count >= budget:
                count = 0
                if self._batch:
                    self._flush_msgs()
                await anyio.lowlevel.checkpoint()

    # -- interruptions -----------------------------------------------------------------------------

    async def _pause(self) -> RunResult | None:
        """Bring the plan to rest; None if a stronger request took over meanwhile."""
        if self._cache is None:
            # Nowhere safe to resume from: a pause becomes an abort.
            self._request = _ABORT
            self._reason = "pause requested after clear_checkpoint: no checkpoint to resume from"
            return None
        self._set_state(_S.PAUSING)
        self.engine.hold_dispatch(self._pause_holder)
        self._deferred = False
        if self._in_flight is not None and self._in_flight_cached:
            self._resume_into = self._in_flight
        self._in_flight = None
        await self._stop_movables(success=True)
        for obj in list(self._seen.values()):
            if callable(getattr(obj, "pause", None)):
                await self._safely(obj, "pause", obj.pause)
        self._groups.clear()
        if self._request > _PAUSE:
            if self._request == _PANIC:
                # Panicked while pausing: the plan stays paused under the panic.
                self._request = _NONE
                self._panic_return = _S.PAUSED
                return self._paused_result()
            return None
        self._request = _NONE
        self._record("plan.paused", self._plan_uid, {"replay": len(self._cache or ())})
        self._set_state(_S.PAUSED)  # skipped if a panic came meanwhile: it stays panicked
        return self._paused_result()

    def _paused_result(self) -> RunResult:
        self._last_result = RunResult(
            plan_uid=self._plan_uid,
            exit_status=None,
            reason="",
            run_uids=tuple(self._run_uids),
            plan_result=None,
            interrupted=True,
            paused=True,
        )
        return self._last_result

    def _rewind(self, result_to: _Frame | None) -> None:
        msgs = self._cache or []
        self._cache = [] if self._cache is not None else None
        for run in self._runs.values():
            run.rewind()
        if msgs:
            self._stack.append(_Frame(_replay(list(msgs)), replay=True, result_to=result_to))
        self._record("plan.rewound", self._plan_uid, {"messages": len(msgs)})

    async def _suspend(self) -> None:
        self._request = _NONE
        tripped = [s for s in self._all_suspenders() if s.tripped]
        if not tripped:
            return  # cleared before it could land
        if self._cache is None:
            self._request = _ABORT
            self._reason = (
                f"suspended after clear_checkpoint: no checkpoint to resume from "
                f"({tripped[0].justification})"
            )
            return
        suspender = tripped[0]
        self._set_state(_S.SUSPENDING)
        self._record(
            "plan.suspended",
            self._plan_uid,
            {"suspender": repr(suspender), "justification": suspender.justification},
        )
        result_to = self._in_flight if self._in_flight_cached else None
        self._in_flight = None
        await self._stop_movables(success=True)
        for obj in list(self._seen.values()):
            if callable(getattr(obj, "pause", None)):
                await self._safely(obj, "pause", obj.pause)
        self._groups.clear()
        msgs = list(self._cache)
        self._cache = []
        for run in self._runs.values():
            run.rewind()
        self._stack.append(_Frame(self._suspension(suspender, msgs, result_to)))

    def _suspension(
        self, suspender: Suspender, replay: list[Any], result_to: _Frame | None
    ) -> Generator[Any, Any, None]:
        # Runs through the message loop like any plan, so pre/post plans may move devices and
        # a pause during the wait is an ordinary hard pause of this generator.
        was_rewindable = self._rewindable
        yield Msg("rewindable", None, False)
        pre = suspender._plan(suspender.pre_plan)
        if pre is not None:
            yield from ensure_generator(pre)
        while not (yield Msg("_wait_for_suspenders")):
            pass  # interrupted by a pause: wait again after resume
        post = suspender._plan(suspender.post_plan)
        if post is not None:
            yield from ensure_generator(post)
        yield Msg("rewindable", None, was_rewindable)
        yield Msg("_resume_from_suspension", None, replay, result_to)

    def _begin_ending(self, request: int) -> None:
        self._request = _NONE
        if request == _STOP:
            self._ending = "stop"
            self._set_state(_S.STOPPING)
            exc: BaseException = RequestStop("stop requested")
        else:
            self._ending = "abort"
            self._set_state(_S.ABORTING)
            exc = RequestAbort(self._reason or "abort requested")
        self._deferred = False
        self._in_flight = None
        if self._stack:
            self._stack[-1].throw = exc

    async def _end_after_failure(self, exc: Exception) -> RunResult:
        ending = self._ending
        if ending == "stop" and isinstance(exc, RequestStop):
            return await self._finish("success", "stop", interrupted=True)
        if ending == "abort" and isinstance(exc, RequestAbort):
            return await self._finish("abort", self._reason, interrupted=True)
        self._close_plan()
        if self._state is not _S.ABORTING:
            self._set_state(_S.ABORTING)
        plan_uid = self._plan_uid
        reason = f"{type(exc).__name__}: {exc}"
        result = await self._finish("fail", reason, interrupted=bool(ending), exception=exc)
        exc.add_note(f"run engine: plan {plan_uid} ended with exit_status 'fail'")
        return result

    def _close_plan(self) -> None:
        # Close every generator, innermost first; a plan that tries to yield while being
        # closed has its clean-up skipped (that is what halt means).
        while self._stack:
            frame = self._stack.pop()
            try:
                frame.gen.close()
            except Exception as exc:
                self._record(
                    "plan.cleanup_failed",
                    self._plan_uid,
                    {"device": None, "step": "close plan", "error": repr(exc)},
                )

    async def _finish(
        self,
        exit_status: ExitStatus,
        reason: str,
        *,
        interrupted: bool,
        exception: BaseException | None = None,
    ) -> RunResult:
        """Engine clean-up on every exit path, then the result; leaves the state idle."""
        with anyio.CancelScope(shield=True):
            await self._stop_movables(success=exit_status == "success")
            for obj in reversed(list(self._staged.values())):
                await self._safely(obj, "unstage", obj.unstage)
            self._staged.clear()
            now = self.engine.clock.time()
            for run in list(self._runs.values()):
                doc = run.stop(exit_status, reason, now)
                try:
                    self._emit("stop", doc, run.uid)
                except Exception as exc:
                    self._record(
                        "plan.cleanup_failed",
                        self._plan_uid,
                        {"device": None, "step": "stop document", "error": repr(exc)},
                    )
            self._runs.clear()
        for token in self._temp_subscriptions:
            self._subscribers.pop(token, None)
        for suspender in self._plan_suspenders:
            if suspender not in self._suspenders:
                suspender.remove(self)
        self.engine.release_dispatch(self._pause_holder)
        result = RunResult(
            plan_uid=self._plan_uid,
            exit_status=exit_status,
            reason=reason,
            run_uids=tuple(self._run_uids),
            plan_result=self._plan_result if exit_status == "success" else None,
            interrupted=interrupted,
            paused=False,
            exception=exception,
        )
        self._record(
            "plan.finished",
            self._plan_uid,
            {
                "exit_status": exit_status,
                "reason": reason,
                "run_uids": list(self._run_uids),
                "interrupted": interrupted,
                "result": self._jsonable_value(result.plan_result),
            },
        )
        self._last_result = result
        if self._state is _S.PANICKED:
            self._panic_return = _S.IDLE  # all_is_well() will find no plan to return to
        else:
            self._set_state(_S.IDLE)
        self._reset_plan()
        return result

    async def _stop_movables(self, *, success: bool) -> None:
        for obj in list(self._movables.values()):
            stop = getattr(obj, "stop", None)
            if not callable(stop):
                continue

            def call(stop: Callable[..., Any] = stop) -> Any:
                try:
                    return stop(success=success)
                except TypeError:
                    return stop()  # a stop() that takes no success flag

            await self._safely(obj, "stop", call)

    async def _safely(self, obj: Any, step: str, call: Callable[[], Any]) -> None:
        """Run one clean-up step; a failure or timeout is logged and does not stop the rest."""
        error = ""
        try:
            with anyio.move_on_after(self.cleanup_timeout) as scope:
                await await_status(call())
            if scope.cancelled_caught:
                error = f"timed out after {self.cleanup_timeout} s"
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        if error:
            self._record(
                "plan.cleanup_failed",
                self._plan_uid,
                {"device": _obj_name(obj), "step": step, "error": error},
            )

    # -- suspenders --------------------------------------------------------------------------------

    def _all_suspenders(self) -> list[Suspender]:
        extra = [s for s in self._plan_suspenders if s not in self._suspenders]
        return self._suspenders + extra

    def _suspender_changed(self, suspender: Suspender) -> None:
        """Called by a suspender whose condition changed (from any thread)."""
        if self._on_foreign_thread():
            assert self._handle is not None
            self._handle.call_soon(self._suspender_changed, suspender)
            return
        event = self._suspenders_changed
        if event is not None:
            self._suspenders_changed = None
            event.set()
        if suspender.tripped and self._driving and self._state is _S.RUNNING and not self._ending:
            self._raise(_SUSPEND, cancel=True)

    async def _watch(self, suspender: Suspender) -> None:
        assert suspender.poll is not None
        clock = self.engine.clock
        while True:
            await clock.sleep_until(clock.monotonic() + suspender.poll)
            try:
                suspender.check()
            except Exception as exc:
                self._record(
                    "plan.cleanup_failed",
                    self._plan_uid,
                    {"device": repr(suspender), "step": "suspender check", "error": repr(exc)},
                )

    # -- Ctrl+C ------------------------------------------------------------------------------------

    def _install_sigint(self) -> Callable[[], None]:
        if not self.handle_sigint or threading.current_thread() is not threading.main_thread():
            return lambda: None
        handle = self._handle
        assert handle is not None
        previous = signal.getsignal(signal.SIGINT)

        def on_sigint(signum: int, frame: FrameType | None) -> None:
            # Runs between two bytecodes of whatever the main thread was doing, possibly
            # inside the engine: only hand the work to the loop.
            handle.call_soon(self._on_sigint)

        try:
            signal.signal(signal.SIGINT, on_sigint)
        except ValueError:  # not the main interpreter's main thread after all
            return lambda: None

        def restore() -> None:
            if signal.getsignal(signal.SIGINT) is on_sigint:
                signal.signal(
                    signal.SIGINT,
                    previous if previous is not None else signal.default_int_handler,
                )

        return restore

    def _on_sigint(self) -> None:
        now = self.engine.clock.monotonic()
        last = self._last_sigint
        self._last_sigint = now
        if last is not None and now - last <= _SIGINT_WINDOW and self._sigint_count >= 1:
            self._sigint_count += 1
        else:
            self._sigint_count = 1
        hard = self._sigint_count >= 2
        action = "hard pause" if hard else "deferred pause"
        if self._state not in (_S.RUNNING, _S.SUSPENDING, _S.PAUSING):
            action = "ignored"
        self._record(
            "run_engine.sigint", self._plan_uid, {"count": self._sigint_count, "action": action}
        )
        if action != "ignored":
            self._request_pause(not hard, None, None, "sigint")

    # -- helpers -----------------------------------------------------------------------------------

    def _permits(self, callback: Callable[[], bool] | None) -> bool:
        if callback is None:
            return True
        try:
            return bool(callback())
        except Exception as exc:
            self._record(
                "plan.cleanup_failed",
                self._plan_uid,
                {"device": None, "step": "pause permission callback", "error": repr(exc)},
            )
            return False

    def _set_rewindable(self, value: bool) -> None:
        if value != self._rewindable:
            self._rewindable = value
            self._reset_checkpoint()

    def _reset_checkpoint(self) -> None:
        if self._cache is not None:
            self._cache.clear()
        else:
            self._cache = []
        for run in self._runs.values():
            run.checkpoint()

    def _jsonable(self, doc: dict[str, Any]) -> dict[str, Any]:
        try:
            msgspec.json.encode(doc)
        except (TypeError, msgspec.EncodeError, OverflowError):
            return _json_decode.decode(_json_fallback.encode(doc))
        return doc

    def _jsonable_value(self, value: Any) -> Any:
        return self._jsonable({"v": value})["v"]

    def _emit(self, name: str, doc: dict[str, Any], run_uid: str) -> None:
        kind = f"run.{name}"
        try:
            self._record(kind, run_uid, doc)
        except EventPayloadError:
            # Readings may hold arrays or other non-JSON values: the Log keeps a JSON copy,
            # subscribers get the document as composed.
            self._record(kind, run_uid, self._jsonable(doc))
        for wanted, callback in list(self._subscribers.values()):
            if wanted in ("all", name):
                callback(name, doc)

    def _run_for(self, msg: Any) -> OpenRun:
        run = self._runs.get(msg.run)
        if run is None:
            which = "" if msg.run is None else f" {msg.run!r}"
            raise IllegalMessageSequence(
                f"{msg.command!r} needs an open run{which}; yield Msg('open_run') first"
            )
        return run

    def _adopt(self, status: Any) -> Any:
        """A coroutine returned by a device starts now, as a task of this drive."""
        if inspect.iscoroutine(status):
            task_status = _TaskStatus()
            assert self._tg is not None
            self._tg.start_soon(task_status.run, status)
            return task_status
        return status

    # -- command handlers --------------------------------------------------------------------------

    def _builtin_handlers(self) -> dict[str, CommandHandler]:
        return {
            "null": self._cmd_null,
            "set": self._cmd_set,
            "trigger": self._cmd_trigger,
            "read": self._cmd_read,
            "wait": self._cmd_wait,
            "sleep": self._cmd_sleep,
            "checkpoint": self._cmd_checkpoint,
            "clear_checkpoint": self._cmd_clear_checkpoint,
            "pause": self._cmd_pause,
            "open_run": self._cmd_open_run,
            "close_run": self._cmd_close_run,
            "create": self._cmd_create,
            "save": self._cmd_save,
            "drop": self._cmd_drop,
            "stage": self._cmd_stage,
            "unstage": self._cmd_unstage,
            "call": self._cmd_call,
            "rewindable": self._cmd_rewindable,
            "install_suspender": self._cmd_install_suspender,
            "remove_suspender": self._cmd_remove_suspender,
            "subscribe": self._cmd_subscribe,
            "unsubscribe": self._cmd_unsubscribe,
            "_wait_for_suspenders": self._cmd_wait_for_suspenders,
            "_resume_from_suspension": self._cmd_resume_from_suspension,
        }

    def _cmd_null(self, msg: Any) -> None:
        return None

    def _cmd_set(self, msg: Any) -> Any:
        obj = msg.obj
        kwargs = dict(msg.kwargs)
        group = kwargs.pop("group", None)
        status = self._adopt(obj.set(*msg.args, **kwargs))
        self._movables[id(obj)] = obj
        self._seen[id(obj)] = obj
        self._groups.setdefault(group, []).append(status)
        return status

    def _cmd_trigger(self, msg: Any) -> Any:
        obj = msg.obj
        group = msg.kwargs.get("group")
        status = self._adopt(obj.trigger())
        self._seen[id(obj)] = obj
        self._groups.setdefault(group, []).append(status)
        return status

    async def _cmd_read(self, msg: Any) -> Any:
        obj = msg.obj
        self._seen[id(obj)] = obj
        reading = await maybe_await(obj.read())
        run = self._runs.get(msg.run)
        if run is not None and run.bundling:
            if run.cached_description(obj) is None:
                run.cache_description(obj, dict(await maybe_await(obj.describe())))
            run.add_reading(obj, reading)
        return reading

    async def _cmd_wait(self, msg: Any) -> None:
        group = msg.kwargs.get("group", msg.args[0] if msg.args else None)
        statuses = self._groups.pop(group, [])
        # A timeout raises TimeoutError into the plan, which may catch it.
        with anyio.fail_after(msg.kwargs.get("timeout")):
            for status in statuses:
                await await_status(status)

    async def _cmd_sleep(self, msg: Any) -> None:
        seconds = msg.args[0] if msg.args else msg.kwargs.get("time", 0)
        if not (isinstance(seconds, int | float) and seconds >= 0):
            raise ValueError(f"sleep needs a number of seconds >= 0, got {seconds!r}")
        clock = self.engine.clock
        await clock.sleep_until(clock.monotonic() + seconds)

    def _cmd_checkpoint(self, msg: Any) -> None:
        for run in self._runs.values():
            if run.bundling:
                raise IllegalMessageSequence(
                    f"'checkpoint' between 'create' and 'save' (stream {run.bundle_name!r}): "
                    "a replay could not rebuild a half-read event"
                )
        self._reset_checkpoint()
        if self._deferred:
            # The deferred pause lands here, at once: nothing since this checkpoint to replay.
            self._deferred = False
            self._raise(_PAUSE, cancel=False)

    def _cmd_clear_checkpoint(self, msg: Any) -> None:
        self._cache = None

    def _cmd_pause(self, msg: Any) -> None:
        defer = bool(msg.kwargs.get("defer", msg.args[0] if msg.args else False))
        self._request_pause(defer, None, None, "plan")

    def _cmd_open_run(self, msg: Any) -> str:
        if msg.run in self._runs:
            raise IllegalMessageSequence(
                f"a run{'' if msg.run is None else ' ' + repr(msg.run)} is already open; "
                "close it first or give the new one another run key"
            )
        md = {**self._metadata, **msg.kwargs}
        if "scan_id" in md:
            self._scan_id = int(md["scan_id"])
        else:
            self._scan_id += 1
        start = {
            **md,
            "uid": new_uid(),
            "time": self.engine.clock.time(),
            "scan_id": self._scan_id,
            "plan_uid": self._plan_uid,
        }
        run = OpenRun(msg.run, start)
        self._runs[msg.run] = run
        self._run_uids.append(run.uid)
        self._emit("start", start, run.uid)
        self._reset_checkpoint()
        return run.uid

    def _cmd_close_run(self, msg: Any) -> str:
        run = self._run_for(msg)
        if run.bundling:
            raise IllegalMessageSequence(
                f"'close_run' while the event of stream {run.bundle_name!r} is open"
            )
        exit_status = msg.kwargs.get("exit_status") or "success"
        reason = msg.kwargs.get("reason") or ""
        del self._runs[msg.run]
        self._emit("stop", run.stop(exit_status, reason, self.engine.clock.time()), run.uid)
        self._reset_checkpoint()
        return run.uid

    def _cmd_create(self, msg: Any) -> None:
        name = msg.kwargs.get("name") or (msg.args[0] if msg.args else "primary")
        self._run_for(msg).create(str(name))

    async def _cmd_save(self, msg: Any) -> None:
        run = self._run_for(msg)
        name, read = run.bundle()
        if not read:
            return  # nothing read: no empty events
        now = self.engine.clock.time()
        if name not in run.descriptors:
            configuration: dict[str, dict[str, Any]] = {}
            for obj, _reading in read:
                config: dict[str, Any] = {"data": {}, "timestamps": {}, "data_keys": {}}
                if callable(getattr(obj, "read_configuration", None)):
                    values = await maybe_await(obj.read_configuration())
                    config["data"] = {k: v["value"] for k, v in values.items()}
                    config["timestamps"] = {k: v["timestamp"] for k, v in values.items()}
                if callable(getattr(obj, "describe_configuration", None)):
                    config["data_keys"] = dict(await maybe_await(obj.describe_configuration()))
                configuration[_obj_name(obj) or repr(obj)] = config
            descriptor = run.descriptor(name, [o for o, _ in read], configuration, now)
            if descriptor is not None:
                self._emit("descriptor", descriptor, run.uid)
        else:
            run.descriptor(name, [o for o, _ in read], {}, now)  # checks the same devices
        self._emit("event", run.event(name, read, now), run.uid)

    def _cmd_drop(self, msg: Any) -> None:
        run = self._run_for(msg)
        if not run.bundling:
            raise IllegalMessageSequence("'drop' without 'create': no event is being bundled")
        run.drop()

    async def _cmd_stage(self, msg: Any) -> Any:
        obj = msg.obj
        self._seen[id(obj)] = obj
        result = await await_status(obj.stage())
        self._staged[id(obj)] = obj
        self._reset_checkpoint()
        return result

    async def _cmd_unstage(self, msg: Any) -> Any:
        obj = msg.obj
        self._staged.pop(id(obj), None)
        result = await await_status(obj.unstage())
        self._reset_checkpoint()
        return result

    async def _cmd_call(self, msg: Any) -> Any:
        fn = msg.obj
        if not callable(fn):
            raise TypeError(f"'call' needs a callable as obj, got {fn!r}")
        return await maybe_await(fn(*msg.args, **msg.kwargs))

    def _cmd_rewindable(self, msg: Any) -> bool:
        value = msg.args[0] if msg.args else msg.kwargs.get("rewindable")
        if value is not None:
            self._set_rewindable(bool(value))
        return self._rewindable

    def _cmd_install_suspender(self, msg: Any) -> None:
        suspender = msg.obj if msg.obj is not None else msg.args[0]
        if not isinstance(suspender, Suspender):
            raise TypeError(f"install_suspender needs a Suspender, got {suspender!r}")
        if suspender not in self._plan_suspenders:
            self._plan_suspenders.append(suspender)
            if self._tg is not None and suspender.poll is not None:
                self._tg.start_soon(self._watch, suspender)
        self._reset_checkpoint()
        suspender.install(self)

    def _cmd_remove_suspender(self, msg: Any) -> None:
        suspender = msg.obj if msg.obj is not None else msg.args[0]
        if suspender in self._plan_suspenders:
            self._plan_suspenders.remove(suspender)
            if suspender not in self._suspenders:
                suspender.remove(self)
        self._reset_checkpoint()

    def _cmd_subscribe(self, msg: Any) -> int:
        args = list(msg.args)
        if msg.obj is not None:
            args.insert(0, msg.obj)
        callback = next((a for a in args if callable(a)), None)
        name = next((a for a in args if isinstance(a, str)), msg.kwargs.get("name", "all"))
        if callback is None:
            raise TypeError(f"subscribe needs a callback, got {msg!r}")
        token = self.subscribe(callback, name)
        self._temp_subscriptions.append(token)
        self._reset_checkpoint()
        return token

    def _cmd_unsubscribe(self, msg: Any) -> None:
        token = msg.args[0] if msg.args else msg.obj
        self.unsubscribe(token)
        self._reset_checkpoint()

    async def _cmd_wait_for_suspenders(self, msg: Any) -> bool:
        clock = self.engine.clock
        while True:
            tripped = [s for s in self._all_suspenders() if s.check()]
            if tripped and self._state is _S.RUNNING:
                self._set_state(_S.SUSPENDING)
            pause = 0.0
            while tripped:
                pause = max([pause, *(s.sleep for s in tripped)])
                event = anyio.Event()
                self._suspenders_changed = event
                await event.wait()
                tripped = [s for s in self._all_suspenders() if s.tripped]
            if pause > 0:
                await clock.sleep_until(clock.monotonic() + pause)
            if not any(s.check() for s in self._all_suspenders()):
                return True

    async def _cmd_resume_from_suspension(self, msg: Any) -> None:
        replay, result_to = msg.args
        if self._state is _S.SUSPENDING:
            self._set_state(_S.RUNNING)
        for obj in list(self._seen.values()):
            if callable(getattr(obj, "resume", None)):
                await self._safely(obj, "resume", obj.resume)
        if replay:
            self._stack.append(_Frame(_replay(replay), replay=True, result_to=result_to))
        self._record("plan.rewound", self._plan_uid, {"messages": len(replay)})
        if any(s.tripped for s in self._all_suspenders()):
            self._raise(_SUSPEND, cancel=False)  # another one tripped during the post-plan
