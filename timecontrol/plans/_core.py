"""The run engine's shared core: its state, the state machine, the Log, requests and threads.

`RunCore` holds everything the command handlers (`._commands`) and the driver (`._driver`)
share, and the rules they share it by:

* **Recording.** Every event goes through `_record`, which first flushes the batch of
  processed messages, so that the Log stays in causal order.
* **State.** `_set_state` checks each transition against `RunState`'s table and records it; a
  panic is sticky until ``all_is_well``.
* **Requests.** Interruptions all go through one slot, ``_request``, holding the strongest
  pending request (suspend < pause < stop < abort < halt < panic). Requests that must take
  effect at once also cancel the drive's scope. Requesting never waits for anything, which is
  why it cannot deadlock.
* **Threads.** Everything here runs on the host's loop thread. Calls from other threads (an
  operator's GUI, a device callback, a signal handler) are handed to the loop through a
  `LoopHandle`, learnt when the run engine is built inside a loop, when the host starts
  (`_started`), and whenever a call arrives from a loop.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Final

import anyio
import anyio.abc

from .._exceptions import EngineStateError, EventPayloadError
from ._compat import is_no_replay
from ._devices import await_status, maybe_await
from ._documents import DOCUMENT_NAMES, OpenRun
from ._errors import IllegalMessageSequence, PlanArgumentError
from ._host import PlanHost
from ._loop import LoopHandle
from ._metadata import MetadataHooks
from ._records import (
    CommandHandler,
    DocumentCallback,
    RunResult,
    TokenNumbering,
    jsonable,
    obj_name,
)
from ._replay import ReplayStack
from ._sigint import SigintCounter
from ._state import RunState, check_transition
from ._suspenders import Suspender

__all__ = [
    "ABORT",
    "ENDING",
    "HALT",
    "NONE",
    "PANIC",
    "PAUSE",
    "REPLAYED_CALL",
    "STOP",
    "SUSPEND",
    "RunCore",
    "check_timeout",
    "check_yield_every",
]

# Requests, weakest first: a stronger request replaces a weaker pending one.
NONE: Final = 0
SUSPEND: Final = 1
PAUSE: Final = 2
STOP: Final = 3
ABORT: Final = 4
HALT: Final = 5
PANIC: Final = 6

#: True while a replayed ``call`` message's function runs (in the drive's task only: other
#: tasks, such as scheduled jobs, have contexts of their own). A pause it requests was already
#: honoured when the message first ran; honouring it again would pause on every resume.
REPLAYED_CALL: ContextVar[bool] = ContextVar("timecontrol_replayed_call", default=False)

_S = RunState
#: States in which a plan is being ended (and cleaned up).
ENDING: Final = frozenset({_S.STOPPING, _S.ABORTING, _S.HALTING})
# States in which a pause request is accepted.
_PAUSABLE: Final = frozenset({_S.RUNNING, _S.SUSPENDING, _S.PAUSING, _S.PAUSED})


class RunCore(MetadataHooks):
    """State and shared machinery of a run engine (see the module docstring)."""

    def _setup(
        self,
        host: PlanHost,
        *,
        name: str,
        handle_sigint: bool,
        log_messages: bool,
        cleanup_timeout: float,
        yield_every: int,
        rewindable: bool,
        metadata: dict[str, Any] | None,
    ) -> None:
        """Initialise a new run engine (`RunEngine.__init__` documents the arguments)."""
        if not isinstance(name, str) or not name:
            raise PlanArgumentError(f"name must be a non-empty str, got {name!r}")
        #: The host whose Log, Clock and dispatch gate this run engine uses.
        self.host = host
        self.name = name
        self.handle_sigint = handle_sigint
        self.log_messages = log_messages
        self.cleanup_timeout = check_timeout(cleanup_timeout)
        self.yield_every = check_yield_every(yield_every)
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
        # Learnt here if built inside a loop; else when the host starts or a call comes in.
        self._handle: LoopHandle | None = LoopHandle.current()
        self._sigint = SigintCounter()
        self._panic_return = _S.IDLE
        self._panic_cleared = False
        self._setup_drive()
        #: the result of the latest run/resume/stop (what stop() hands to other tasks)
        self._last_result: RunResult | None = None
        self._rewindable_default = rewindable
        #: ``msg_hook(msg)`` is called with every message before it is processed (replays too).
        self.msg_hook: Callable[[Any], Any] | None = None
        #: ``state_hook(new, old)`` is called with the state names after every change.
        self.state_hook: Callable[[str, str], Any] | None = None
        #: Record pauses and resumes inside a run as events of an ``interruptions`` stream.
        self.record_interruptions = False
        # Subscriptions for one plan given by a caller (SyncRunEngine's ``subs``): dropped
        # when that plan ends, kept while it is paused.
        self._call_tokens: list[int] = []
        #: ``waiting_hook(statuses)`` is called with the set of statuses a ``wait`` waits
        #: for, then with None when it is over (bluesky's progress-bar hook).
        self.waiting_hook: Callable[[Any], Any] | None = None
        self._setup_metadata_hooks()
        self._reset_plan()

    def _setup_drive(self) -> None:
        """What lives across drives and plans (part of `_setup`)."""
        self._driving = False
        self._drive_done: anyio.Event | None = None
        # The state a drive ended in (idle, paused), recorded once its tasks are gone.
        self._settle: RunState | None = None
        # Called with (generator, error) when closing a plan's generator fails
        # (`SyncRunEngine` prints bluesky's message).
        self._close_failed_hook: Callable[[Any, BaseException], Any] | None = None
        # A deferred pause still waiting for a checkpoint when the last plan ended (bluesky
        # reports it in ``deferred_pause_requested`` until the next plan starts).
        self._deferred_left = False
        # The numbering of subscription tokens that plan messages use (None: the run
        # engine's own; `SyncRunEngine` installs bluesky's, from 0).
        self._token_view: TokenNumbering | None = None

    def _reset_plan(self) -> None:
        """Forget the previous plan: everything here lives for one plan execution."""
        self._plan_uid = ""
        self._replay = ReplayStack(self._rewindable_default)
        self._request = NONE
        self._deferred = False
        self._scope: anyio.CancelScope | None = None
        self._tg: anyio.abc.TaskGroup | None = None
        self._runs: dict[Any, OpenRun] = {}
        self._run_uids: list[str] = []
        self._groups: dict[Any, list[Any]] = {}
        # Failures of grouped statuses not yet thrown into the plan (by id of the status),
        # and statuses whose failure a ``wait`` already raised (`._status_watch`).
        self._status_failures: dict[int, BaseException] = {}
        self._failures_raised: dict[int, Any] = {}
        # groups a ``wait(error_on_timeout=False)`` has told the waiting hook about
        self._waited_groups: set[Any] = set()
        # monitored objects (``monitor`` messages), by id
        self._monitors: dict[int, Any] = {}
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
        self._plan_md: dict[str, Any] = {}
        self._suspenders_changed: anyio.Event | None = None
        # Messages not yet in the Log: commands, object names, and whether they are replays
        # (a batch never mixes the two, so one flag per ``plan.msgs`` event suffices).
        self._batch: list[str] = []
        self._batch_obj: list[str | None] = []
        self._batch_replay = False

    # -- recording ---------------------------------------------------------------------------

    def _record(self, kind: str, subject: str, payload: dict[str, Any]) -> None:
        """Append an event, after the messages processed so far (so the Log stays causal)."""
        if self._batch:
            self._flush_msgs()
        self.host.log._emit(kind, subject, payload)

    def _flush_msgs(self) -> None:
        payload = {"command": self._batch, "obj": self._batch_obj, "replay": self._batch_replay}
        self._batch, self._batch_obj = [], []
        self.host.log._emit("plan.msgs", self._plan_uid, payload)

    def _emit(self, name: str, doc: dict[str, Any], run_uid: str) -> None:
        """Record run document `doc` and hand it to the subscribers that want `name`."""
        kind = f"run.{name}"
        try:
            self._record(kind, run_uid, doc)
        except EventPayloadError:
            # Readings may hold arrays or other non-JSON values: the Log keeps a JSON copy,
            # subscribers get the document as composed.
            self._record(kind, run_uid, jsonable(doc))
        for wanted, callback in list(self._subscribers.values()):
            if wanted in ("all", name):
                callback(name, doc)

    def _cleanup_failed(self, device: str | None, step: str, error: str) -> None:
        self._record(
            "plan.cleanup_failed", self._plan_uid, {"device": device, "step": step, "error": error}
        )

    # -- the state machine -------------------------------------------------------------------

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
        hook = self.state_hook
        if hook is not None:
            try:
                hook(new.value, old.value)
            except Exception as exc:  # a display hook must not break the state machine
                self._cleanup_failed(None, "state_hook", repr(exc))

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
        # Everything a plan does is recorded in the host's Log, which only takes events
        # while the host runs.
        if not self.host.running:
            raise EngineStateError(
                f"{what} refused: the engine is not running; use 'async with engine:' or "
                "'await engine.start()' first"
            )

    # -- threads -----------------------------------------------------------------------------

    def _started(self) -> None:
        """Lifecycle hook: the host has started, and this is called on its loop.

        Learning the loop here lets ``panic()`` and ``request_pause()`` from other threads
        reach it even before the first run.
        """
        self._handle = LoopHandle.current() or self._handle

    def _handed_over(self, fn: Callable[..., object], *args: Any) -> bool:
        """Hand ``fn(*args)`` to the loop if called from another thread; True if handed.

        False means: call it here. That is the case on the loop's thread, and also when no
        loop is known or the known one has closed: then nothing else runs the run engine, and
        doing it here beats dropping a panic.
        """
        handle = self._handle
        if handle is not None and not handle.in_loop_thread():
            if handle.call_soon(fn, *args):
                return True
            self._handle = None  # that loop has gone
        here = LoopHandle.current()
        if here is not None:
            self._handle = here  # a call from a loop: the loop to use from now on
        return False

    # -- requests ----------------------------------------------------------------------------

    def _raise(self, request: int, *, cancel: bool) -> None:
        self._request = max(self._request, request)
        if cancel and self._scope is not None:
            self._scope.cancel()

    def _request_pause(
        self, defer: bool, name: str | None, callback: Callable[[], bool] | None, source: str
    ) -> None:
        state = self._state
        if state not in _PAUSABLE:
            raise self._refuse("request_pause()")
        if REPLAYED_CALL.get():
            self._record(
                "run_engine.pause_requested",
                self._plan_uid,
                {"defer": defer, "name": name, "source": source, "ignored": "replayed call"},
            )
            return
        if name is not None:
            self._pause_requests[name] = callback
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
        self._raise(PAUSE, cancel=True)

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

    def _apply_panic(self) -> None:
        previous = self._state
        self.host.hold_dispatch(self._panic_holder)
        cancelled = self.host.cancel_running()
        self._panic_cleared = False
        if previous is not _S.PANICKED:
            # A paused plan stays paused under the panic; a running one is ended with fail.
            self._panic_return = _S.PAUSED if previous in (_S.PAUSED, _S.PAUSING) else _S.IDLE
            self._set_state(_S.PANICKED)
        self._record(
            "run_engine.panicked",
            self._plan_uid,
            {"previous": previous.value, "cancelled_jobs": cancelled},
        )
        if self._driving and previous not in (_S.PAUSED, _S.PAUSING):
            self._raise(PANIC, cancel=True)

    def _apply_all_is_well(self) -> None:
        if self._state is not _S.PANICKED:
            return
        self.host.release_dispatch(self._panic_holder)
        target = self._panic_return
        self._record("run_engine.all_is_well", self._plan_uid, {"state": target.value})
        if self._driving:
            # The panicked plan is still being cleaned up; it goes idle when that is done.
            self._panic_cleared = True
            return
        self._set_state(target, force=True)

    def _on_sigint(self) -> None:
        """One Ctrl+C, on the loop: a deferred pause, or a hard one if it is the second."""
        hard = self._sigint.press(self.host.clock.monotonic())
        action = "hard pause" if hard else "deferred pause"
        if self._state not in (_S.RUNNING, _S.SUSPENDING, _S.PAUSING):
            action = "ignored"
        self._record(
            "run_engine.sigint", self._plan_uid, {"count": self._sigint.count, "action": action}
        )
        if action != "ignored":
            self._request_pause(not hard, None, None, "sigint")

    def _permits(self, callback: Callable[[], bool] | None) -> bool:
        if callback is None:
            return True
        try:
            return bool(callback())
        except Exception as exc:
            self._cleanup_failed(None, "pause permission callback", repr(exc))
            return False

    # -- shared by handlers and driver -------------------------------------------------------

    def _add_subscriber(self, callback: DocumentCallback, name: str) -> int:
        if name != "all" and name not in DOCUMENT_NAMES:
            raise PlanArgumentError(
                f"name must be 'all' or one of {list(DOCUMENT_NAMES)}, got {name!r}"
            )
        if not callable(callback):
            raise PlanArgumentError(f"callback must be callable, got {callback!r}")
        token = self._next_token
        self._next_token += 1
        self._subscribers[token] = (name, callback)
        return token

    def _record_interruption(self, content: str) -> None:
        """An event in every open run's ``interruptions`` stream (if ``record_interruptions``
        was on when the run opened): ``"pause"``, ``"resume"`` or a suspender's reason."""
        now = self.host.clock.time()
        for run in list(self._runs.values()):
            doc = run.interruption(content, now)
            if doc is not None:
                self._emit("event", doc, run.uid)

    def _drop_call_tokens(self) -> None:
        for token in self._call_tokens:
            self._subscribers.pop(token, None)
        self._call_tokens.clear()

    def _serve_external(self, start_soon: Callable[..., Any]) -> None:
        """Hook: start the waits of requested suspensions (`._external` implements it)."""

    def _clear_monitors(self, run_key: Any = ...) -> None:
        """Hook: end the ``monitor`` subscriptions of a run (`._monitors` implements it)."""

    def _reset_checkpoint(self) -> None:
        self._replay.checkpoint(self._runs.values())

    def _set_rewindable(self, value: bool) -> None:
        self._replay.set_rewindable(value, self._runs.values())

    def _run_for(self, msg: Any) -> OpenRun:
        run = self._runs.get(msg.run)
        if run is None:
            which = "" if msg.run is None else f" {msg.run!r}"
            raise IllegalMessageSequence(
                f"{msg.command!r} needs an open run{which}; yield Msg('open_run') first"
            )
        return run

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
            self._cleanup_failed(obj_name(obj), step, error)

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

    async def _bring_devices_to_rest(self) -> list[str]:
        """On a pause or suspension: stop what moved, pause what can, forget the groups.

        Returns the names of the devices whose ``pause()`` raised ``NoReplayAllowed``
        (bluesky's or ours): then nothing since the last checkpoint is replayed on resume,
        as in bluesky, and the interrupted message is not answered by a replay.
        """
        await self._stop_movables(success=True)
        refused: list[str] = []
        for obj in list(self._seen.values()):
            if _pausable(obj) and not await self._pause_device(obj):
                refused.append(obj_name(obj) or repr(obj))
        self._groups.clear()
        # The plan is rewound (or, deferred, at a checkpoint): a failure that had not
        # reached it yet belongs to a move that is redone or was stopped on purpose.
        self._status_failures.clear()
        if refused:
            self._reset_checkpoint()
            self._replay.resume_into = None
        return refused

    async def _pause_device(self, obj: Any) -> bool:
        """``obj.pause()``, bounded by the clean-up timeout; False if it refuses replay."""
        try:
            with anyio.move_on_after(self.cleanup_timeout) as scope:
                await maybe_await(obj.pause())
        except Exception as exc:
            if is_no_replay(exc):
                return False
            self._cleanup_failed(obj_name(obj), "pause", f"{type(exc).__name__}: {exc}")
            return True
        if scope.cancelled_caught:
            timeout = f"timed out after {self.cleanup_timeout} s"
            self._cleanup_failed(obj_name(obj), "pause", timeout)
        return True

    async def _resume_seen_devices(self) -> None:
        for obj in list(self._seen.values()):
            if _pausable(obj):
                await self._safely(obj, "resume", obj.resume)

    # -- suspenders --------------------------------------------------------------------------

    def _all_suspenders(self) -> list[Suspender]:
        extra = [s for s in self._plan_suspenders if s not in self._suspenders]
        return self._suspenders + extra

    def _suspender_changed(self, suspender: Suspender) -> None:
        """Called by a suspender whose condition changed (from any thread)."""
        if self._handed_over(self._suspender_changed, suspender):
            return
        event = self._suspenders_changed
        if event is not None:
            self._suspenders_changed = None
            event.set()
        if suspender.tripped and self._driving and self._state is _S.RUNNING and not self._ending:
            self._raise(SUSPEND, cancel=True)

    async def _watch(self, suspender: Suspender) -> None:
        """Poll `suspender` every ``suspender.poll`` seconds while the drive runs."""
        assert suspender.poll is not None
        clock = self.host.clock
        while True:
            await clock.sleep_until(clock.monotonic() + suspender.poll)
            try:
                suspender.check()
            except Exception as exc:
                self._cleanup_failed(repr(suspender), "suspender check", repr(exc))


def check_timeout(value: object) -> float:
    """`value` as the seconds of ``cleanup_timeout`` (a `PlanArgumentError` if not > 0)."""
    if not (isinstance(value, int | float) and value > 0):
        raise PlanArgumentError(f"cleanup_timeout must be > 0 seconds, got {value!r}")
    return float(value)


def check_yield_every(value: object) -> int:
    """`value` as ``yield_every`` (a `PlanArgumentError` unless an int >= 1)."""
    if not (isinstance(value, int) and value >= 1):
        raise PlanArgumentError(f"yield_every must be an int >= 1, got {value!r}")
    return value


def _pausable(obj: Any) -> bool:
    """bluesky's ``Pausable``: ``pause()`` *and* ``resume()``. A device is only told that a
    pause or suspension began if it can be told that it ended."""
    return callable(getattr(obj, "pause", None)) and callable(getattr(obj, "resume", None))
