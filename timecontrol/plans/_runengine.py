"""The run engine: executes plans with checkpoints, pauses, suspenders, clean-up and panic.

``result = await run_engine.run(plan)`` drives the plan in the caller's own task, on the
caller's loop. Pause is a *state*: when a pause lands, `run` returns a `RunResult` with
``paused=True`` and the plan waits, generator and all, until `resume` (or `stop`, `abort`,
`halt`) drives it on from whichever task calls it. Nothing runs in a background thread and
nothing is raised to signal a pause.

The machinery lives in private modules, one per seam: `._core` (state, state machine, Log,
requests, threads), `._commands` (what each message does), `._driver` (the message loop,
pausing, suspending, ending), `._replay` (plan stack and replay cache), `._sigint` (Ctrl+C).
This module is the public face: construction, the verbs and the settings.

The run engine depends on a narrow `PlanHost` (a Log, a Clock and the dispatch gate), never
on the `timecontrol.Engine` facade; ``RunEngine(engine)`` with the facade returns the engine's
own run engine, so that ``engine.panic()`` reaches every plan.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterable
from typing import Any, Self

from ._core import ABORT, HALT, STOP, check_timeout, check_yield_every
from ._documents import new_uid
from ._driver import Driver, as_plan
from ._errors import PauseHeldError, PlanArgumentError
from ._external import SuspendRequests
from ._host import PlanHost, is_facade
from ._records import (
    CommandHandler,
    DocumentCallback,
    ExitStatus,
    LoggedMsg,
    RunResult,
    jsonable,
    logged_messages,
)
from ._state import RunState
from ._suspenders import Suspender

__all__ = [
    "DocumentCallback",
    "ExitStatus",
    "LoggedMsg",
    "RunEngine",
    "RunResult",
    "logged_messages",
]

_S = RunState
#: The options of `RunEngine`, which ``RunEngine(engine, ...)`` applies to an engine's own.
_OPTIONS = frozenset(
    {
        "name",
        "handle_sigint",
        "log_messages",
        "cleanup_timeout",
        "yield_every",
        "rewindable",
        "metadata",
    }
)

# Facades whose own run engine is being looked up, per thread: a facade that builds its run
# engine lazily through `RunEngine(self)` must get a new one, not recurse.
_resolving = threading.local()


def _own_run_engine(facade: Any) -> Any:
    ids: set[int] = _resolving.__dict__.setdefault("ids", set())
    if id(facade) in ids:
        return None
    ids.add(id(facade))
    try:
        return getattr(facade, "run_engine", None)
    finally:
        ids.discard(id(facade))


class RunEngine(Driver, SuspendRequests):
    """Runs plans on a host's loop, Log and Clock.

    Args:
        host: what the run engine runs on (a `PlanHost`): in practice the engine's
            dispatcher, whose Log records everything, whose Clock times sleeps and devices,
            and whose scheduled dispatch is held while a plan is paused or the engine is
            panicked. Given the `timecontrol.Engine` itself, ``RunEngine(engine)`` returns
            the engine's own run engine (``engine.run_engine``) with any options given here
            applied to it, instead of building a second one that ``engine.panic()`` would not
            reach.
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
    `request_pause`, `panic` and `all_is_well` may be called from any task or thread.
    """

    def __new__(cls, host: PlanHost, **options: Any) -> Self:
        """The engine's own run engine for a `timecontrol.Engine`, else a new one."""
        if is_facade(host):
            own = _own_run_engine(host)
            if isinstance(own, cls):
                own._apply_options(options)
                return own
        return super().__new__(cls)

    def __init__(
        self,
        host: PlanHost,
        *,
        name: str = "run_engine",
        handle_sigint: bool = True,
        log_messages: bool = True,
        cleanup_timeout: float = 10.0,
        yield_every: int = 64,
        rewindable: bool = True,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if "host" in self.__dict__:
            return  # an engine's own run engine, handed back by __new__: already set up
        self._setup(
            host,
            name=name,
            handle_sigint=handle_sigint,
            log_messages=log_messages,
            cleanup_timeout=cleanup_timeout,
            yield_every=yield_every,
            rewindable=rewindable,
            metadata=metadata,
        )
        handlers = {
            **self._builtin_handlers(),
            **self._more_handlers(),
            **self._collect_handlers(),
            **self._waiting_handlers(),
            **self._monitor_handlers(),
        }
        for command, handler in handlers.items():
            self._handlers[command] = (handler, inspect.iscoroutinefunction(handler))

    def _apply_options(self, options: dict[str, Any]) -> None:
        """Apply the options of a ``RunEngine(engine, ...)`` call to this existing engine.

        Everything is checked before anything changes, so a bad option changes nothing.
        """
        unknown = sorted(options.keys() - _OPTIONS)
        if unknown:
            raise PlanArgumentError(
                f"unknown RunEngine options {unknown}; accepted: {sorted(_OPTIONS)}"
            )
        if options.get("name", self.name) != self.name:
            raise PlanArgumentError(
                f"RunEngine(engine) is the engine's own run engine, named {self.name!r}; it "
                f"cannot be renamed to {options['name']!r} (build one on another host for that)"
            )
        timeout = check_timeout(options.get("cleanup_timeout", self.cleanup_timeout))
        yield_every = check_yield_every(options.get("yield_every", self.yield_every))
        self.cleanup_timeout, self.yield_every = timeout, yield_every
        self.handle_sigint = options.get("handle_sigint", self.handle_sigint)
        self.log_messages = options.get("log_messages", self.log_messages)
        if "rewindable" in options:
            self.rewindable = bool(options["rewindable"])
        if "metadata" in options:
            self.md = dict(options["metadata"] or {})

    # -- public state ------------------------------------------------------------------------

    @property
    def engine(self) -> PlanHost:
        """The host (kept under its old name; see `host`)."""
        return self.host

    @property
    def state(self) -> RunState:
        """The current state (a `RunState`, equal to its name, e.g. ``"paused"``)."""
        return self._state

    @property
    def resumable(self) -> bool:
        """False after ``clear_checkpoint`` until the next checkpoint: a pause would abort."""
        return self._replay.resumable

    @property
    def rewindable(self) -> bool:
        """Whether messages since the last checkpoint are replayed on resume.

        Setting it changes the default for the following plans (and the current one); a
        plan's ``rewindable`` message changes it for that plan only.
        """
        return self._replay.rewindable

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

    # -- running -----------------------------------------------------------------------------

    async def run(self, plan: Iterable[Any], **metadata: Any) -> RunResult:
        """Run `plan` in this task until it ends or pauses; return a `RunResult`.

        `plan` is a generator of messages (or any iterable of them); `metadata` goes into the
        start document of every run the plan opens. If the plan raises, the runs end with
        ``fail``, clean-up runs, and the exception is re-raised here. Refused (with
        `timecontrol.EngineStateError`) unless the engine is idle; a `PlanArgumentError` if
        `plan` is not a plan.
        """
        return await self._run_plan(plan, plan, metadata)

    async def _run_plan(
        self, plan: Iterable[Any], origin: Any, metadata: dict[str, Any]
    ) -> RunResult:
        """`run`, with `origin` the plan as the user gave it (before any preprocessor): its
        type and name go into start documents as ``plan_type`` and ``plan_name``."""
        if self._state is not _S.IDLE or self._driving:
            raise self._refuse("run()")
        self._check_engine("run()")
        gen = as_plan(plan)
        self._reset_plan()
        self._deferred_left = False
        self._plan_uid = new_uid()
        self._metadata = dict(metadata)
        self._plan_md = {
            "plan_type": type(origin).__name__,
            "plan_name": str(getattr(origin, "__name__", "")),
        }
        self._replay.push(gen)
        self._sigint.reset()
        self._record("plan.started", self._plan_uid, {"metadata": jsonable(self._metadata)})
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
        self.host.release_dispatch(self._pause_holder)
        self._sigint.reset()
        return await self._drive(resuming=True)

    async def stop(self) -> RunResult:
        """End the plan as a success: it may clean up (``RequestStop`` is thrown into it).

        From ``paused`` the clean-up runs in this task; while running, this waits for the
        plan to end. Returns the final `RunResult`.
        """
        return await self._end_request(STOP, "stop()", "")

    async def abort(self, reason: str = "") -> RunResult:
        """End the plan as aborted, keeping `reason` in the runs' stop documents.

        The plan may clean up (``RequestAbort`` is thrown into it). From ``paused`` the
        clean-up runs in this task; while running, this waits for the plan to end.
        """
        return await self._end_request(ABORT, "abort()", str(reason))

    async def halt(self) -> RunResult:
        """End the plan at once without letting it clean up (exit status ``abort``).

        The engine still stops what was moved, unstages what was staged and closes open runs.
        """
        return await self._end_request(HALT, "halt()", "halt")

    # -- pause, panic ------------------------------------------------------------------------

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
            callback: permission check for `name`, called on each `resume`. A callback
                needs a name (`PlanArgumentError` otherwise): the name is what a refused
                `resume` reports.

        From a thread other than the loop's, or from a signal handler, the request is handed
        to the loop and applied there (a refusal is then only recorded in the Log). Raises
        `timecontrol.EngineStateError` when no plan is running, suspending, pausing or paused.
        """
        if callback is not None and name is None:
            raise PlanArgumentError(
                f"request_pause(callback={callback!r}) needs a name: the name is what "
                "resume() reports while the callback holds; pass name='...' too"
            )
        if callback is not None and not callable(callback):
            raise PlanArgumentError(f"callback must be callable or None, got {callback!r}")
        key = None if name is None else str(name)
        if self._handed_over(self._request_pause_quietly, defer, key, callback, "thread"):
            return
        self._request_pause(defer, key, callback, "call")

    def panic(self) -> None:
        """Emergency stop, from any state; sync and safe from any thread or task.

        Holds the scheduler's dispatch and cancels its running jobs (each recorded as
        ``action.cancelled``). A running plan stops before its next message and ends with
        ``fail`` (reason ``"panic"``) after the engine's clean-up; a paused plan stays paused.
        Until `all_is_well`, `run` and `resume` are refused. Also when idle, before any run:
        the state becomes ``panicked`` and dispatch is held all the same.
        """
        if self._handed_over(self.panic):
            return
        self._apply_panic()

    def all_is_well(self) -> None:
        """Lift a panic: back to ``idle``, or to ``paused`` if a plan was paused.

        Releases the scheduler's dispatch. A no-op unless panicked. Safe from any thread.
        """
        if self._handed_over(self.all_is_well):
            return
        self._apply_all_is_well()

    # -- subscriptions, suspenders, commands -------------------------------------------------

    def subscribe(self, callback: DocumentCallback, name: str = "all") -> int:
        """Call ``callback(name, doc)`` for every document (or only those named `name`).

        Returns a token for `unsubscribe`. Callbacks run synchronously as documents are
        emitted; an exception in one is thrown into the plan at the message that emitted it.
        """
        return self._add_subscriber(callback, name)

    def unsubscribe(self, token: int) -> None:
        """Remove a subscription made with `subscribe` (unknown tokens are ignored)."""
        self._subscribers.pop(token, None)

    def install_suspender(self, suspender: Suspender) -> None:
        """Watch `suspender` during every run until `remove_suspender`."""
        if not isinstance(suspender, Suspender):
            raise PlanArgumentError(f"expected a Suspender, got {suspender!r}")
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
            raise PlanArgumentError(
                f"command name must be a non-empty str not starting with '_', got {name!r}"
            )
        if not callable(handler):
            raise PlanArgumentError(f"handler must be callable, got {handler!r}")
        self._handlers[name] = (handler, inspect.iscoroutinefunction(handler))

    def unregister_command(self, name: str) -> None:
        """Remove a command (messages using it then fail with `UnknownCommandError`)."""
        self._handlers.pop(name, None)
