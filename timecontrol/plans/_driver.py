"""The drive: the message loop and what happens when a request interrupts it.

`Driver._drive` processes the plan in the calling task until it pauses or ends. The top
generator of the plan stack yields a `Msg`; if rewinding is on and the command is cacheable,
the message is appended to the replay cache; it is recorded for the Log; the command's handler
runs and its value, or its error, goes back into the generator. Messages reach the Log in
batches (``plan.msgs``), flushed before anything is awaited and before any other event the run
engine writes: one Log event per stretch of messages processed without waiting keeps a
million-message plan cheap, while the Log stays in causal order.

The message loop checks the request slot before every message, so that a request made from
synchronous code (a subscriber, the plan itself, a callback) lands before the next message
without needing an ``await``. Between stretches of messages, `_drive_loop` serves the pending
request: pause, suspend, stop, abort, halt or panic. Every exit path ends in `_finish`, which
stops what moved, unstages what is staged and closes the open runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Generator, Iterable
from typing import Any

import anyio
import anyio.lowlevel

from .._exceptions import EngineStateError
from ._commands import SUSPENSION_WAIT
from ._compat import is_ending_request, request_abort, request_stop
from ._core import ABORT, ENDING, HALT, NONE, PANIC, PAUSE, STOP, SUSPEND, RunCore
from ._errors import PlanArgumentError, PlanClosedError, UnknownCommandError
from ._loop import LoopHandle
from ._msg import Msg
from ._records import ExitStatus, RunResult, jsonable, obj_name
from ._replay import UNCACHEABLE, Frame, from_iterable
from ._sigint import install_sigint
from ._state import RunState
from ._stubs import ensure_generator
from ._suspenders import Suspender

__all__ = ["Driver", "as_plan"]

_S = RunState
# What `_advance` returns when the top frame yielded no message (it ended or failed).
_NO_MSG: Any = object()


def as_plan(plan: Iterable[Any]) -> Generator[Any, Any, Any]:
    """`plan` as a generator the driver can send values into (checked, with a clear error)."""
    if inspect.isgeneratorfunction(plan) or (callable(plan) and not hasattr(plan, "__iter__")):
        raise PlanArgumentError(
            f"run() takes a plan (a generator of messages), got the function {plan!r}; "
            "call it first, e.g. run(count([det]))"
        )
    if hasattr(plan, "send") and hasattr(plan, "throw"):
        return plan  # type: ignore[return-value]
    try:
        return from_iterable(iter(plan))
    except TypeError:
        raise PlanArgumentError(
            f"run() takes a generator (or iterable) of messages, got {plan!r}"
        ) from None


class Driver(RunCore):
    """Drives the plan stack (mixed into `RunEngine`)."""

    async def _drive(self, *, resuming: bool = False) -> RunResult:
        """Process the plan in this task until it pauses or ends."""
        self._driving = True
        self._drive_done = anyio.Event()
        self._handle = LoopHandle()
        restore_sigint = (
            install_sigint(self._handle, self._on_sigint) if self.handle_sigint else _no_op
        )
        result: RunResult | None = None
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                for suspender in self._all_suspenders():
                    if suspender.poll is not None:
                        tg.start_soon(self._watch, suspender)
                self._serve_external(tg.start_soon)
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
            try:
                self._settle_state()
            finally:
                done.set()
        assert result is not None
        if result.exception is not None and result.exit_status == "fail":
            raise result.exception
        return result

    def _settle_state(self) -> None:
        """Record the state the drive ended in (idle, paused), now that its tasks are gone.

        Not earlier: a caller woken by ``idle`` or ``paused`` (a state hook, a Log
        subscriber, the queue) may call `run`/`resume` at once, and those refuse while a drive
        is still winding down its task group.
        """
        settle, self._settle = self._settle, None
        if self._state is _S.PANICKED:
            if self._panic_cleared:  # all_is_well() came while the plan was being ended
                self._panic_cleared = False
                self._set_state(self._panic_return, force=True)
        elif settle is not None:
            self._set_state(settle)
        if settle is _S.IDLE:
            self._reset_plan()

    async def _resume_devices(self) -> None:
        # Inside the drive, so that stop(), panic() etc. see a driven plan meanwhile.
        self._record_interruption("resume")
        await self._resume_seen_devices()
        replayed = self._replay.rewind(self._runs.values())
        self._record("plan.rewound", self._plan_uid, {"messages": replayed})

    async def _drive_loop(self) -> RunResult:
        try:
            if self._state is _S.RUNNING and any(s.check() for s in self._all_suspenders()):
                self._raise(SUSPEND, cancel=False)
            while True:
                if self._request == NONE:
                    result = await self._run_messages()
                else:
                    result = await self._serve_request(self._request)
                if result is not None:
                    return result
        except anyio.get_cancelled_exc_class():
            # Our caller was cancelled (not us): end the plan as a halt would, then let the
            # cancellation go on. Clean-up is shielded so that devices are still stopped.
            with anyio.CancelScope(shield=True):
                self._close_plan()
                if self._state is _S.PANICKED:
                    # e.g. the plan ran inside a scheduled job that panic() just cancelled
                    await self._finish("fail", "panic", interrupted=True)
                else:
                    if self._state not in ENDING:
                        self._set_state(_S.HALTING)
                    await self._finish("abort", "cancelled", interrupted=True)
            raise

    async def _run_messages(self) -> RunResult | None:
        """Process messages until a request is pending; the result if the plan ended."""
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
        if self._replay.frames or self._request != NONE:
            return None
        if self._ending == "abort":  # the plan swallowed RequestAbort
            return await self._finish("abort", self._reason, interrupted=True)
        if self._ending == "stop":
            return await self._finish("success", "stop", interrupted=True)
        return await self._finish("success", "", interrupted=False)

    async def _serve_request(self, request: int) -> RunResult | None:
        """Act on the pending request; the result if the plan paused or ended."""
        if request == PANIC:
            self._close_plan()
            return await self._finish("fail", "panic", interrupted=True)
        if request == HALT:
            self._request = NONE
            self._set_state(_S.HALTING)
            self._close_plan()
            return await self._finish("abort", self._reason or "halt", interrupted=True)
        if request in (STOP, ABORT):
            self._begin_ending(request)
            return None
        if request == PAUSE:
            return await self._pause()
        await self._suspend()
        return None

    # -- the message loop --------------------------------------------------------------------

    async def _pump(self) -> None:
        """Process messages until the plan ends or a request is pending."""
        try:
            await self._pump_loop()
        finally:
            if self._batch:
                self._flush_msgs()

    async def _pump_loop(self) -> None:
        # The hot loop: attribute look-ups hoisted into locals.
        replay = self._replay
        stack = replay.frames
        handlers = self._handlers
        log_messages = self.log_messages
        budget = self.yield_every
        hook = self.msg_hook
        failures = self._status_failures
        seen = self._seen
        count = 0
        while stack:
            if self._request:
                return
            frame = stack[-1]
            if failures and frame.throw is None:
                self._deliver_status_failure(frame)
            msg = self._advance(frame)
            if msg is _NO_MSG:
                continue
            if hook is not None:
                hook(msg)
            try:
                command = msg.command
            except AttributeError:
                frame.throw = PlanArgumentError(f"a plan must yield messages (Msg), got {msg!r}")
                continue
            cache = replay.cache
            cached = False
            if cache is not None and replay.rewindable and command not in UNCACHEABLE:
                cache.append(msg)
                cached = True
            if (obj := msg.obj) is not None:
                seen[id(obj)] = obj  # every object a message names (bluesky's objs_seen)
            if log_messages:
                self._log_msg(frame, command, obj)
            entry = handlers.get(command)
            if entry is None:
                frame.throw = self._unknown_command(command, msg)
                continue
            handler, is_async = entry
            try:
                if is_async:
                    replay.in_flight = frame
                    replay.in_flight_cached = cached
                    if self._batch:
                        self._flush_msgs()  # the message is recorded before it is awaited
                    frame.send = await handler(msg)
                    replay.in_flight = None
                else:
                    frame.send = handler(msg)
            except Exception as exc:
                replay.in_flight = None
                frame.throw = exc
            count += 1
            if count >= budget:
                count = 0
                if self._batch:
                    self._flush_msgs()
                await anyio.lowlevel.checkpoint()

    def _deliver_status_failure(self, frame: Frame) -> None:
        """A status failed that the plan has not waited for: bluesky throws it into the plan
        at its next message (here), instead of the value of the message it is at."""
        failures = self._status_failures
        frame.throw = failures[next(iter(failures))]
        frame.send = None
        failures.clear()

    def _advance(self, frame: Frame) -> Any:
        """The next message of `frame`, or `_NO_MSG` if it ended (its value passed on) or
        failed (its error thrown into the frame below; re-raised if it was the plan)."""
        try:
            exc = frame.throw
            if exc is not None:
                frame.throw = None
                return frame.gen.throw(exc)
            value, frame.send = frame.send, None
            return frame.gen.send(value)
        except StopIteration as stop:
            stack = self._replay.frames
            stack.pop()
            if frame.result_to is not None:
                frame.result_to.send = stop.value
            elif not stack:
                self._plan_result = stop.value
            return _NO_MSG
        except Exception as exc:
            stack = self._replay.frames
            stack.pop()
            if not stack:
                raise
            stack[-1].throw = exc
            return _NO_MSG
        except GeneratorExit as exc:
            # Raised by the plan itself, not by closing it (that happens in `_close_plan`):
            # the plan asks to be closed, so the whole stack is, and the plan fails (bluesky).
            self._replay.frames.pop()
            raise PlanClosedError(
                f"the plan {frame.gen!r} raised GeneratorExit({str(exc)!r}) instead of "
                "returning or raising an Exception: the plan is closed and fails"
            ) from exc

    def _log_msg(self, frame: Frame, command: str, obj: Any) -> None:
        # Batched: one Log event per stretch of messages processed without awaiting.
        if frame.replay is not self._batch_replay:
            if self._batch:
                self._flush_msgs()
            self._batch_replay = frame.replay
        self._batch.append(command)
        self._batch_obj.append(None if obj is None else obj_name(obj))

    def _unknown_command(self, command: str, msg: Any) -> UnknownCommandError:
        known = sorted(c for c in self._handlers if not c.startswith("_"))
        return UnknownCommandError(
            f"unknown command {command!r} in {msg!r}; known commands: {known} "
            "(add one with register_command)"
        )

    # -- interruptions -----------------------------------------------------------------------

    async def _pause(self) -> RunResult | None:
        """Bring the plan to rest; None if a stronger request took over meanwhile."""
        if not self._replay.resumable:
            # Nowhere safe to resume from: a pause becomes an abort.
            self._request = ABORT
            self._reason = "pause requested after clear_checkpoint: no checkpoint to resume from"
            return None
        self._set_state(_S.PAUSING)
        self._record_interruption("pause")
        self.host.hold_dispatch(self._pause_holder)
        self._deferred = False
        interrupted = self._replay.interrupted()
        if interrupted is not None:
            self._replay.resume_into = interrupted
        no_replay = await self._bring_devices_to_rest()
        if self._request > PAUSE:
            if self._request == PANIC:
                # Panicked while pausing: the plan stays paused under the panic.
                self._request = NONE
                self._panic_return = _S.PAUSED
                return self._paused_result()
            return None
        self._request = NONE
        self._record(
            "plan.paused",
            self._plan_uid,
            {"replay": len(self._replay.cache or ()), "no_replay": no_replay},
        )
        # Recorded when the drive is over (`_settle_state`); skipped if a panic came
        # meanwhile: it stays panicked.
        self._settle = _S.PAUSED
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

    async def _suspend(self) -> None:
        self._request = NONE
        tripped = [s for s in self._all_suspenders() if s.tripped]
        if not tripped:
            return  # cleared before it could land
        suspender = tripped[0]
        if not self._replay.resumable:
            self._request = ABORT
            self._reason = (
                f"suspended after clear_checkpoint: no checkpoint to resume from "
                f"({suspender.justification})"
            )
            return
        self._set_state(_S.SUSPENDING)
        self._record_interruption(suspender.justification or "suspended")
        self._record(
            "plan.suspended",
            self._plan_uid,
            {"suspender": repr(suspender), "justification": suspender.justification},
        )
        result_to = self._replay.interrupted()
        await self._bring_devices_to_rest()
        msgs = self._replay.take(self._runs.values())
        # bluesky's stack: the replay below, the suspension on top of it
        self._replay.replay(msgs, result_to)
        self._replay.push(self._suspension(suspender, len(msgs)))

    def _suspension(self, suspender: Suspender, replayed: int) -> Generator[Any, Any, None]:
        # Runs through the message loop like any plan, so pre/post plans may move devices and
        # a pause during the wait is an ordinary hard pause of this generator. The messages
        # are bluesky's (a msg_hook sees the same sequence); the replay runs after it.
        was_rewindable = self._replay.rewindable
        yield Msg("_start_suspender")
        yield Msg("rewindable", None, False)
        pre = suspender._plan(suspender.pre_plan)
        if pre is not None:
            yield from ensure_generator(pre)
        while not (yield Msg("wait_for", None, SUSPENSION_WAIT)):
            pass  # interrupted by a pause: wait again after resume
        yield Msg("_resume_from_suspender", None, replayed)
        post = suspender._plan(suspender.post_plan)
        if post is not None:
            yield from ensure_generator(post)
        yield Msg("rewindable", None, was_rewindable)

    # -- ending ------------------------------------------------------------------------------

    async def _end_request(self, request: int, what: str, reason: str) -> RunResult:
        """`stop`/`abort`/`halt`: end a paused plan here, or a driven one and wait for it."""
        done = self._drive_done
        if self._settle is not None and done is not None:
            # The drive has paused or ended the plan and is winding down: act on what it
            # leaves (a paused plan to end, or nothing).
            await done.wait()
        state = self._state
        if state is _S.PAUSED and not self._driving:
            self._check_engine(what)
            self.host.release_dispatch(self._pause_holder)
            self._request = request
            self._reason = reason
            return await self._drive()
        if self._driving and state in {_S.RUNNING, _S.PAUSING, _S.SUSPENDING} | ENDING:
            if request == STOP and state in ENDING:
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

    def _begin_ending(self, request: int) -> None:
        self._request = NONE
        if request == STOP:
            self._ending = "stop"
            self._set_state(_S.STOPPING)
            exc: BaseException = request_stop("stop requested")
        else:
            self._ending = "abort"
            self._set_state(_S.ABORTING)
            exc = request_abort(self._reason or "abort requested")
        self._deferred = False
        self._replay.in_flight = None
        if self._replay.frames:
            self._replay.frames[-1].throw = exc

    async def _end_after_failure(self, exc: Exception) -> RunResult:
        ending = self._ending
        if ending == "stop" and is_ending_request(exc, ending):
            return await self._finish("success", "stop", interrupted=True)
        if ending == "abort" and is_ending_request(exc, ending):
            return await self._finish("abort", self._reason, interrupted=True)
        self._close_plan()
        if self._state is not _S.ABORTING:
            self._set_state(_S.ABORTING)
        plan_uid = self._plan_uid
        reason = str(exc) or type(exc).__name__  # bluesky's reason is str(exc)
        result = await self._finish("fail", reason, interrupted=bool(ending), exception=exc)
        exc.add_note(f"run engine: plan {plan_uid} ended with exit_status 'fail'")
        return result

    def _close_plan(self) -> None:
        # Close every generator, innermost first; a plan that tries to yield while being
        # closed has its clean-up skipped (that is what halt means).
        for gen, error in self._replay.close():
            if isinstance(error, RuntimeError):  # "generator ignored GeneratorExit"
                message = f"the plan {gen!r} tried to yield a value on close: {error}"
            else:
                message = f"the plan {gen!r} raised on close: {error!r}"
            self._cleanup_failed(None, "close plan", message)
            hook = self._close_failed_hook
            if hook is not None:
                hook(gen, error)

    async def _finish(
        self,
        exit_status: ExitStatus,
        reason: str,
        *,
        interrupted: bool,
        exception: BaseException | None = None,
    ) -> RunResult:
        """Engine clean-up on every exit path, then the result; leaves the state idle."""
        self._deferred_left = self._deferred
        with anyio.CancelScope(shield=True):
            await self._stop_movables(success=exit_status == "success")
            for obj in reversed(list(self._staged.values())):
                await self._safely(obj, "unstage", obj.unstage)
            self._staged.clear()
            self._close_runs(exit_status, reason)
        self._release_plan()
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
                "result": jsonable({"v": result.plan_result})["v"],
            },
        )
        self._last_result = result
        if self._state is _S.PANICKED:
            self._panic_return = _S.IDLE  # all_is_well() will find no plan to return to
        self._settle = _S.IDLE  # recorded, and the plan forgotten, when the drive is over
        return result

    def _close_runs(self, exit_status: ExitStatus, reason: str) -> None:
        self._clear_monitors()
        now = self.host.clock.time()
        for run in list(self._runs.values()):
            doc = run.stop(exit_status, reason, now)
            try:
                self._emit("stop", doc, run.uid)
            except Exception as exc:
                self._cleanup_failed(None, "stop document", repr(exc))
        self._runs.clear()

    def _release_plan(self) -> None:
        """Undo what only this plan installed, and release the pause's dispatch hold."""
        self._drop_call_tokens()
        for token in self._temp_subscriptions:
            self._subscribers.pop(token, None)
        for suspender in self._plan_suspenders:
            if suspender not in self._suspenders:
                suspender.remove(self)
        self.host.release_dispatch(self._pause_holder)


def _no_op() -> None:
    """What undoes nothing (no SIGINT handler was installed)."""
