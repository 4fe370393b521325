"""`SyncRunEngine`: bluesky's blocking ``RE(plan)`` on a timecontrol Engine, for IPython.

bluesky users type ``RE(plan)``, ``RE.resume()``, ``RE.stop()`` at a prompt: calls that block
the caller until the plan ends or pauses. The timecontrol run engine is awaitable instead.
`SyncRunEngine` bridges the two the way bluesky itself does since 1.6: an asyncio loop runs
in a background thread for the lifetime of the object, with the Engine started on it, and each
verb hands a coroutine to that loop and blocks on its result. Because the loop keeps running
between calls, the engine's scheduled jobs run between notebook cells too.

While ``RE(plan)`` blocks, our SIGINT handler is installed in the main thread: one Ctrl+C asks
for a deferred pause, a second a hard one (the run engine's rule), and the call then raises
`RunEngineInterrupted` as bluesky's does (a subclass of bluesky's own when bluesky is loaded).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import importlib
import threading
import weakref
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, MutableMapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from .._exceptions import EngineStateError
from ._compat import interrupted_error, plan_error, state_error, versions
from ._errors import IllegalMessageSequence, PlanArgumentError
from ._loop import LoopHandle
from ._records import DocumentCallback, RunResult, TokenNumbering
from ._runengine import RunEngine
from ._state import RunState
from ._stubs import ensure_generator
from ._sync_extras import (
    HOOKS,
    SigintHandler,
    check_depth,
    is_bluesky_suspender,
    print_close_failure,
    split_bluesky_options,
    swap_old_subscribe,
    wait_for_tripped,
    warn_old_usage,
)

#: Builds an engine when `SyncRunEngine` is given none; set by the `Engine` facade on import.
ENGINE_FACTORY: Callable[[], Any] | None = None

__all__ = ["PAUSE_MSG", "RunEngineResult", "SyncRunEngine"]

T = TypeVar("T")

#: What `RunEngineInterrupted` says when a plan pauses (bluesky prints something similar).
PAUSE_MSG: Final = """
Your RunEngine is entering a paused state. These are your options for changing
the state of the RunEngine:

RE.resume()    Resume the plan.
RE.abort()     Perform cleanup, then kill plan. Mark exit_stats='aborted'.
RE.stop()      Perform cleanup, then kill plan. Mark exit_status='success'.
RE.halt()      Emergency Stop: Do not perform cleanup --- just stop.
"""

# Seconds between checks while blocking on the loop: short waits keep the main thread
# responsive to signals on every platform.
_POLL: Final = 0.2

# Every open SyncRunEngine, closed at interpreter exit (their Logs are flushed).
_open: weakref.WeakSet[SyncRunEngine] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for run_engine in list(_open):
        run_engine.close()


@dataclass(frozen=True, slots=True)
class RunEngineResult:
    """What ``RE(plan)`` returns with ``call_returns_result=True`` (bluesky's fields)."""

    run_start_uids: tuple[str, ...]
    plan_result: Any
    exit_status: str
    interrupted: bool
    reason: str
    exception: BaseException | None


def _register_bluesky_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Make `loop` bluesky's event loop, which ophyd-async's ``init_devices()`` connects on."""
    try:
        module = importlib.import_module("bluesky.run_engine")
    except ImportError:
        return
    setter = getattr(module, "set_bluesky_event_loop", None)
    if callable(setter):
        setter(loop)


@contextmanager
def _bluesky_errors() -> Iterator[None]:
    """A refusal by the state machine also as bluesky's ``TransitionError``, an illegal plan
    also as bluesky's ``IllegalMessageSequence`` (if bluesky is loaded)."""
    try:
        yield
    except EngineStateError as exc:
        converted = state_error(exc)
        if converted is exc:
            raise
        raise converted from None
    except IllegalMessageSequence as exc:
        illegal = plan_error(exc)
        if illegal is exc:
            raise
        raise illegal from None


def _normalize_subs(subs: Any) -> list[tuple[str, DocumentCallback]]:
    """bluesky's ``subs`` argument: a callable, a list of them, or {name: callable(s)}."""
    if subs is None:
        return []
    if callable(subs):
        return [("all", subs)]
    if isinstance(subs, Mapping):
        pairs: list[tuple[str, DocumentCallback]] = []
        for name, funcs in subs.items():
            for func in [funcs] if callable(funcs) else list(funcs):
                pairs.append((str(name), func))
        return pairs
    if isinstance(subs, Iterable):
        return [("all", func) for func in subs]
    raise PlanArgumentError(
        f"subs must be a callable, a list of callables or a dict of them, got {subs!r}"
    )


def _suspender_command(
    run_engine: RunEngine, ours: Callable[[Any], Any], theirs: Callable[[Any], Any]
) -> Callable[[Any], Any]:
    """The ``install_suspender``/``remove_suspender`` message handler of `SyncRunEngine`:
    bluesky's suspenders are installed for good, as bluesky's message does (on the loop's
    thread, where the plan runs); ours as the run engine does it."""

    def handler(msg: Any) -> Any:
        suspender = msg.obj if msg.obj is not None else msg.args[0]
        if not is_bluesky_suspender(suspender):
            return ours(msg)
        run_engine._reset_checkpoint()
        theirs(suspender)
        return None

    return handler


class SyncRunEngine:
    """A blocking, bluesky-style run engine over a timecontrol `Engine` (IPython, Jupyter).

    Args:
        md: the persistent metadata (``RE.md``); any mutable mapping. ``versions`` is added.
        engine: the `timecontrol.Engine` to run on; it must not be running (it is started on
            this object's loop thread). None: a new in-memory Engine.
        call_returns_result: ``RE(plan)`` returns a `RunEngineResult` instead of the tuple
            of run uids (bluesky's flag).
        preprocessors: functions applied to every plan, ``[f, g]`` as ``f(g(plan))``.
        context_managers: entered (each called with this object) around every blocking call
            (``RE.context_managers``, a list). None: ``[SigintHandler]``, the Ctrl+C handler
            (one press: deferred pause, two: hard pause); ``[]`` leaves SIGINT alone.
        loop: an asyncio loop, not running, to run in the thread (default: a new one).
        options: bluesky's ``scan_id_source``, ``md_validator``, ``md_normalizer``,
            ``waiting_hook`` (set on the run engine, readable as ``RE.<name>``) and
            ``max_depth`` (``RE.max_depth``); ``during_task`` is accepted and ignored. The
            rest is passed on to `RunEngine` (``cleanup_timeout``, ``log_messages``, ...).

    ``RE.engine`` is the Engine: its scheduled jobs run between calls. The Engine is not
    thread-safe; change it from the main thread through `call_in_loop`, e.g.
    ``RE.call_in_loop(RE.engine.add_job, "sample", tc.interval(60))``.
    """

    def __init__(
        self,
        md: MutableMapping[str, Any] | None = None,
        *,
        engine: Any = None,
        call_returns_result: bool = False,
        preprocessors: list[Callable[[Any], Any]] | None = None,
        context_managers: list[Callable[[SyncRunEngine], Any]] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        **options: Any,
    ) -> None:
        self._closed = True  # until the loop runs: close() then has nothing to undo
        hooks, max_depth = split_bluesky_options(options)
        self._engine = self._make_engine(engine)
        if loop is not None and (loop.is_running() or loop.is_closed()):
            raise PlanArgumentError(
                f"loop must be a new asyncio loop, neither running nor closed, got {loop!r}"
            )
        options.setdefault("handle_sigint", False)  # SIGINT is ours, in the main thread
        self._re: RunEngine = RunEngine(self._engine, **options)
        for name, hook in hooks.items():
            setattr(self._re, name, hook)
        self._tokens = TokenNumbering()  # bluesky's (from 0), apart from the queue's tokens
        self._adapt_run_engine()
        self.call_returns_result = bool(call_returns_result)
        self.preprocessors: list[Callable[[Any], Any]] = list(preprocessors or [])
        self.context_managers: list[Callable[[SyncRunEngine], Any]] = (
            [SigintHandler] if context_managers is None else list(context_managers)
        )
        self.pause_msg = PAUSE_MSG
        #: plan_result of a `RunEngineResult` when the plan did not run to its end (bluesky's).
        self.NO_PLAN_RETURN: Any = object()
        #: ``RE(plan)`` called deeper in the call stack than this raises RuntimeError (None:
        #: no limit), as in bluesky.
        self.max_depth: int | None = max_depth
        self._aio_loop = loop or asyncio.new_event_loop()
        self._bluesky_suspenders: list[Any] = []
        self._thread = threading.Thread(
            target=self._serve, name="timecontrol-sync-run-engine", daemon=True
        )
        self._thread.start()
        self._closed = False
        _open.add(self)
        try:
            handle = self._on_loop(LoopHandle.current)
            assert handle is not None  # called on the running loop
            self._handle = handle
            self._call(self._engine.start())
        except BaseException:
            self.close()
            raise
        _register_bluesky_loop(self._aio_loop)
        if md is not None:
            self._re.md = md  # type: ignore[assignment]  # any mutable mapping will do
        self._re.md.setdefault("versions", {})
        for name, version in versions().items():
            self._re.md["versions"].setdefault(name, version)

    @staticmethod
    def _make_engine(engine: Any) -> Any:
        if engine is None:
            # The facade registers how to build it (`_engine` sets ENGINE_FACTORY on import):
            # the plans package sits below the facade and never imports it.
            if ENGINE_FACTORY is None:
                raise PlanArgumentError("pass engine=timecontrol.Engine(...) to SyncRunEngine")
            return ENGINE_FACTORY()
        if not getattr(engine, "_owns_parts", False):
            raise PlanArgumentError(f"engine must be a timecontrol.Engine or None, got {engine!r}")
        if engine.running:
            raise EngineStateError(
                f"engine {engine!r} is already running; SyncRunEngine starts it on its own "
                "loop thread, so pass an engine that is not started (or None)"
            )
        return engine

    def _serve(self) -> None:
        asyncio.set_event_loop(self._aio_loop)
        self._aio_loop.run_forever()

    # -- the bridge to the loop --------------------------------------------------------------

    def _in_loop_thread(self) -> bool:
        return threading.get_ident() == self._thread.ident

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise EngineStateError(f"{what} refused: this SyncRunEngine is closed")
        if self._in_loop_thread():
            raise EngineStateError(
                f"{what} would wait for the loop it is called from (a subscriber or a device "
                "callback); use request_pause() there, or the async RunEngine"
            )

    def _call(self, coro: Coroutine[Any, Any, T], *, interruptible: bool = False) -> T:
        """Run `coro` on the loop and block until it is done; its result or its exception."""
        future = asyncio.run_coroutine_threadsafe(coro, self._aio_loop)
        with ExitStack() as stack:
            if interruptible:
                self._enter_context_managers(stack)
            while not future.done():
                concurrent.futures.wait([future], timeout=_POLL)
        return future.result()

    def _on_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """Call ``fn(*args)`` on the loop and return its result (directly if already there)."""
        if self._in_loop_thread():
            return fn(*args)
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to the caller, who re-raises it
                future.set_exception(exc)

        self._aio_loop.call_soon_threadsafe(run)
        return future.result()

    def call_in_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """Call ``fn(*args)`` on the engine's loop thread and return its result.

        The way to change the Engine from the main thread (add or remove jobs, append to
        its Log), since the Engine itself is not thread-safe.
        """
        if self._closed:
            raise EngineStateError("call_in_loop() refused: this SyncRunEngine is closed")
        return self._on_loop(fn, *args)

    def run_coroutine(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the engine's loop and block until it returns (e.g. a device connect)."""
        self._check_open("run_coroutine()")
        return self._call(coro)

    def _enter_context_managers(self, stack: ExitStack) -> None:
        for manager in self.context_managers:
            stack.enter_context(manager(self))

    def _outcome(
        self, result: RunResult, *, raise_interrupted: bool = False
    ) -> tuple[str, ...] | RunEngineResult:
        # bluesky: RE(plan) and RE.resume() raise RunEngineInterrupted whenever a request
        # (pause, stop, abort, halt, a pause that became an abort) interrupted the plan.
        if result.paused or (raise_interrupted and result.interrupted):
            raise interrupted_error(self.pause_msg)
        if not self.call_returns_result:
            return result.run_uids
        finished = result.exit_status == "success" and not result.interrupted
        return RunEngineResult(
            run_start_uids=result.run_uids,
            plan_result=result.plan_result if finished else self.NO_PLAN_RETURN,
            exit_status=result.exit_status or "",
            interrupted=result.interrupted,
            reason=result.reason,
            exception=result.exception,
        )

    # -- running -----------------------------------------------------------------------------

    def __call__(
        self, plan: Iterable[Any], subs: Any = None, /, **metadata: Any
    ) -> tuple[str, ...] | RunEngineResult:
        """Run `plan` until it ends (return its run uids, or a `RunEngineResult`) or pauses
        (raise `RunEngineInterrupted`); a failure in the plan is raised here.

        `subs` are subscriptions for this plan only (a callable, a list, or a dict by document
        name); `metadata` goes into every run start document.
        """
        self._check_open("RE(plan)")
        check_depth(self.max_depth)
        warn_old_usage(metadata)
        if self._re.state is not RunState.IDLE:
            raise EngineStateError(f"RE(plan) refused: the RunEngine is {self._re.state.value!r}")
        pairs = _normalize_subs(subs)
        gen = ensure_generator(plan)
        for wrapper in self.preprocessors:
            gen = wrapper(gen)
        gen = wait_for_tripped(self._bluesky_suspenders, gen)
        tokens = [self._re.subscribe(func, name) for name, func in pairs]
        self._re._call_tokens.extend(tokens)  # dropped when the plan ends
        try:
            # The plan as given (not its preprocessed wrapper) names plan_type and plan_name.
            with _bluesky_errors():
                result = self._call(self._re._run_plan(gen, plan, metadata), interruptible=True)
        except BaseException:
            if self._re.state is RunState.IDLE:
                self._re._drop_call_tokens()
            raise
        return self._outcome(result, raise_interrupted=True)

    def resume(self) -> tuple[str, ...] | RunEngineResult:
        """Resume the paused plan from its last checkpoint; return or raise as ``RE(plan)``."""
        self._check_open("resume()")
        with _bluesky_errors():
            result = self._call(self._re.resume(), interruptible=True)
            return self._outcome(result, raise_interrupted=True)

    def stop(self) -> tuple[str, ...] | RunEngineResult | None:
        """End the plan as a success, letting it clean up; its run uids (or result)."""
        return self._end(self._re.stop, "stop()")

    def abort(self, reason: str = "") -> tuple[str, ...] | RunEngineResult | None:
        """End the plan as aborted (`reason` in the stop documents), letting it clean up."""
        return self._end(lambda: self._re.abort(reason), "abort()")

    def halt(self) -> tuple[str, ...] | RunEngineResult | None:
        """End the plan at once without its clean-up (the engine still stops devices)."""
        return self._end(self._re.halt, "halt()")

    def _end(
        self, verb: Callable[[], Coroutine[Any, Any, RunResult]], what: str
    ) -> tuple[str, ...] | RunEngineResult | None:
        if self._in_loop_thread():
            # From a subscriber or device callback: the loop cannot wait for itself.
            self._aio_loop.create_task(verb())
            return None
        self._check_open(what)
        with _bluesky_errors():
            return self._outcome(self._call(verb(), interruptible=True))

    def request_pause(
        self,
        defer: bool = False,
        name: str | None = None,
        callback: Callable[[], bool] | None = None,
    ) -> None:
        """Ask the running plan to pause (see `RunEngine.request_pause`); from any thread.

        From another thread this waits for the loop to take the request, so that a refusal
        (no plan running) is raised here, as bluesky does.
        """
        if self._closed:
            raise EngineStateError("request_pause() refused: this SyncRunEngine is closed")
        with _bluesky_errors():
            self._on_loop(self._re.request_pause, defer, name, callback)

    def panic(self) -> None:
        """Emergency stop (see `RunEngine.panic`); from any thread."""
        self._re.panic()

    def all_is_well(self) -> None:
        """Lift a panic (see `RunEngine.all_is_well`); from any thread."""
        self._re.all_is_well()

    # -- state and settings --------------------------------------------------------------------

    @property
    def engine(self) -> Any:
        """The `timecontrol.Engine` this runs on (add jobs through `call_in_loop`)."""
        return self._engine

    @property
    def run_engine(self) -> RunEngine:
        """The asynchronous run engine underneath (the engine's own)."""
        return self._re

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The asyncio loop running in the background thread."""
        return self._aio_loop

    @property
    def state(self) -> RunState:
        """The run engine's state (equal to bluesky's names: ``"idle"``, ``"paused"``, ...)."""
        return self._re.state

    @property
    def md(self) -> MutableMapping[str, Any]:
        """The persistent metadata merged into every start document."""
        return self._re.md

    @md.setter
    def md(self, value: MutableMapping[str, Any]) -> None:
        self._re.md = value  # type: ignore[assignment]  # any mutable mapping will do

    @property
    def resumable(self) -> bool:
        """False after ``clear_checkpoint`` until the next checkpoint."""
        return self._re.resumable

    @property
    def rewindable(self) -> bool:
        """Whether messages since the last checkpoint are replayed on resume."""
        return self._re.rewindable

    @rewindable.setter
    def rewindable(self, value: bool) -> None:
        self._on_loop(setattr, self._re, "rewindable", bool(value))

    @property
    def deferred_pause_requested(self) -> bool:
        """True while a deferred pause waits for the next checkpoint; False once it lands.

        As in bluesky, a deferred pause asked after the plan's last checkpoint never lands,
        and this stays True after the plan ends, until the next plan starts.
        """
        return self._re._deferred or self._re._deferred_left

    @property
    def commands(self) -> list[str]:
        """Every command a message may use."""
        return list(self._re.commands)

    @property
    def suspenders(self) -> tuple[Any, ...]:
        """Suspenders installed for every run (ours, then bluesky's)."""
        return (*self._re.suspenders, *self._bluesky_suspenders)

    @property
    def _loop(self) -> asyncio.AbstractEventLoop:
        # bluesky's suspenders make their asyncio.Event on ``RE._loop``
        return self._aio_loop

    def __getattr__(self, name: str) -> Any:
        # Hooks and switches (msg_hook, state_hook, record_interruptions, ...) live on the
        # run engine; read them through.
        if name in _FORWARDED:
            return getattr(self._re, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _FORWARDED:
            setattr(self._re, name, value)
        else:
            object.__setattr__(self, name, value)

    def subscribe(self, func: DocumentCallback, name: str = "all") -> int:
        """Call ``func(name, doc)`` for every document (or those named `name`); a token.

        bluesky's old argument order, ``subscribe(name, func)``, still works with a warning.
        """
        func, name = swap_old_subscribe(func, name)
        return self._tokens.outward(self._re.subscribe(func, name))

    def unsubscribe(self, token: int) -> None:
        """Remove a subscription made with `subscribe` (or a plan's ``subscribe`` message).

        Tokens are numbered 0, 1, 2, ... per `SyncRunEngine`, as in bluesky; unknown tokens
        are ignored.
        """
        inner = self._tokens.inward(token)
        if inner is not None:
            self._re.unsubscribe(inner)

    def _adapt_run_engine(self) -> None:
        """Make the run engine underneath answer as bluesky's does where plans can tell."""
        re_ = self._re
        # Msg("RE_class") answers the class of the run engine the user calls.
        re_.register_command("RE_class", lambda msg: type(self))
        re_._close_failed_hook = print_close_failure
        re_._token_view = self._tokens
        for command, ours, theirs in (
            ("install_suspender", re_._cmd_install_suspender, self.install_suspender),
            ("remove_suspender", re_._cmd_remove_suspender, self.remove_suspender),
        ):
            re_.register_command(command, _suspender_command(re_, ours, theirs))

    def install_suspender(self, suspender: Any) -> None:
        """Watch `suspender` during every run: a `timecontrol.plans` suspender, or one of
        bluesky's (``bluesky.suspenders.SuspendBoolHigh``, ...), which calls
        `request_suspend` when its signal trips."""
        if is_bluesky_suspender(suspender):
            if suspender not in self._bluesky_suspenders:
                suspender.install(self)
                self._bluesky_suspenders.append(suspender)
            return
        self._on_loop(self._re.install_suspender, suspender)

    def remove_suspender(self, suspender: Any) -> None:
        """Stop watching `suspender`."""
        if suspender in self._bluesky_suspenders:
            self._bluesky_suspenders.remove(suspender)
            suspender.remove()
            return
        self._on_loop(self._re.remove_suspender, suspender)

    def clear_suspenders(self) -> None:
        """Remove every suspender installed with `install_suspender`."""
        for suspender in list(self._bluesky_suspenders):
            self.remove_suspender(suspender)
        self._on_loop(self._re.clear_suspenders)

    def request_suspend(
        self,
        fut: Any,
        *,
        pre_plan: Any = None,
        post_plan: Any = None,
        justification: str | None = None,
    ) -> None:
        """Suspend the running plan until `fut` (an awaitable or a callable returning one)
        is done; bluesky's call, from any thread (see `RunEngine.request_suspend`)."""
        self._re.request_suspend(
            fut, pre_plan=pre_plan, post_plan=post_plan, justification=justification
        )

    def register_command(self, name: str, func: Callable[[Any], Any]) -> None:
        """Make ``Msg(name, ...)`` call ``func(msg)`` (sync or async)."""
        self._re.register_command(name, func)

    def unregister_command(self, name: str) -> None:
        """Remove a command."""
        self._re.unregister_command(name)

    # -- shutting down -------------------------------------------------------------------------

    def close(self) -> None:
        """Halt any plan, stop the Engine (its Log is flushed), stop the loop and its thread.

        Idempotent; also called at interpreter exit. Calls after it raise
        `timecontrol.EngineStateError`.
        """
        if self._closed or self._in_loop_thread():
            return
        self._closed = True
        _open.discard(self)
        try:
            if self._re.state not in (RunState.IDLE, RunState.PANICKED):
                self._call(self._re.halt())
        except Exception:
            pass
        finally:
            try:
                if self._engine.running:
                    self._call(self._engine.stop())
            finally:
                self._aio_loop.call_soon_threadsafe(self._aio_loop.stop)
                self._thread.join()
                self._aio_loop.close()

    def __enter__(self) -> SyncRunEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else self._re.state.value
        return f"<SyncRunEngine {state} on {self._engine!r}>"


#: Run-engine attributes that ``RE.<name>`` reads and writes through.
_FORWARDED: Final = frozenset(
    {
        "msg_hook",
        "state_hook",
        "record_interruptions",
        "log_messages",
        "cleanup_timeout",
        *HOOKS,
    }
)
