"""The executor: one task that runs the queue's items on the run engine, one after another.

Its loop, after pychron's experiment executor: wait for a scheduled start, delay before the
first item, run the execution checks; then, for each item, delay after the previous one,
hold while the queue is paused, wait for the run engine to be free, run the queue checks
when entering a queue, run the item checks, stop if a scheduled stop would be overrun, and
run the item's plan with ``await run_engine.run(plan, **md)``.

The next item is read from the model *at the moment it starts*, with no await between the
choice and the ``queue.item_started`` event, so every edit made before that moment counts.
A plan that pauses leaves the queue paused, with the run engine's own pause: the executor
waits until `Queue.resume` asks it to resume the plan, or until the plan ends some other way
(``engine.resume()``, ``abort``), which it learns from the Log.
"""

from __future__ import annotations

import traceback
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel

from .._exceptions import EngineStateError
from ..plans import RunEngine, RunResult, RunState
from ..plans._errors import PauseHeldError
from ._checks import CheckContext, CheckLevel, with_step_checks
from ._conditions import ItemWatch
from ._delays import Delay
from ._edits import Edits
from ._items import ItemRecord, ItemStatus
from ._model import QueueRecord

__all__ = ["Executor"]


@dataclass(frozen=True, slots=True)
class Ended:
    """How an item's plan ended (from its `RunResult`, or from its ``plan.finished``)."""

    exit_status: str | None
    reason: str
    plan_uid: str
    run_uids: tuple[str, ...]

    @classmethod
    def of(cls, result: RunResult) -> Ended:
        """From a finished `RunResult`."""
        return cls(result.exit_status, result.reason, result.plan_uid, result.run_uids)

    def status(self) -> ItemStatus:
        """The item's status after this end."""
        if self.exit_status == "success":
            return ItemStatus.TRUNCATED if self.reason == "stop" else ItemStatus.SUCCEEDED
        if self.exit_status == "abort":
            return ItemStatus.INTERRUPTED if self.reason == "cancelled" else ItemStatus.ABORTED
        if self.exit_status == "fail" and self.reason == "panic":
            return ItemStatus.INTERRUPTED
        return ItemStatus.FAILED


class Executor(Edits):
    """The executor task of `Queue` (see the module docstring)."""

    _wait_scope: anyio.CancelScope | None = None
    _closing = False  # the engine is stopping: the executor must not begin

    # -- the task ------------------------------------------------------------------------------

    async def _execute(self) -> None:
        """The executor task: run `_execution` and record why it stopped."""
        done = self._exec_done
        reason = "error"
        trace = ""
        if self._closing:  # the engine stopped before this task began
            reason = "the engine stopped"
        try:
            with anyio.CancelScope() as scope:
                self._exec_scope = scope
                if self._closing:
                    scope.cancel()
                reason = await self._execution_with_overlaps()
            if scope.cancelled_caught:
                reason = self._stop_request or "stopped"
        except anyio.get_cancelled_exc_class():
            reason = "the engine stopped"
            raise
        except Exception as exc:  # a bug: stop the queue, visibly, but keep the engine up
            reason = f"error: {type(exc).__name__}: {exc}"
            trace = "".join(traceback.format_exception(exc))
        finally:
            self._exec_scope = None
            self._activity = None
            self._delay = None
            self._held = False
            self._last_stop = reason
            if not self._host.log.closed:
                extra = {"traceback": trace} if trace else {}
                self._record("queue.stopped", "", {"reason": reason, **extra})
            self._exec_done = None
            if done is not None:
                done.set()

    async def _execution_with_overlaps(self) -> str:
        """`_execution` in a task group of its own, where overlapping items run: it ends
        once they have ended too."""
        error: Exception | None = None
        reason = "error"
        async with anyio.create_task_group() as tg:
            self._side_tg = tg
            try:
                reason = await self._execution()
            except Exception as exc:  # raised as itself below, not as an exception group
                error = exc
            finally:
                self._side_tg = None
                if self._side is not None:
                    self._activity = "waiting for the overlapping item"
        if error is not None:
            raise error
        return reason

    # -- hooks of the overlap layer (`._overlap`) --------------------------------------------

    def _overlap_begin(self, item: ItemRecord) -> None:
        raise NotImplementedError

    def _overlap_end(self, item: ItemRecord) -> None:
        raise NotImplementedError

    async def _wait_side(self) -> tuple[ItemRecord, ItemStatus] | None:
        raise NotImplementedError

    @contextmanager
    def _interruptible(self) -> Iterator[None]:
        """A wait that a stop request cuts short (never around a plan: that would halt it)."""
        with anyio.CancelScope() as scope:
            self._wait_scope = scope
            try:
                yield
            finally:
                self._wait_scope = None

    def _request_stop(self, reason: str) -> None:
        """Stop before the next item (the running one, if any, goes on)."""
        if self._stop_request is None:
            self._stop_request = reason
        if self._delay is not None:
            self._delay.skip("stopped")
        if self._wait_scope is not None:
            self._wait_scope.cancel()
        self._poke()

    # -- the loop ------------------------------------------------------------------------------

    async def _execution(self) -> str:
        """Run items until none is left or a stop is due; returns why it stopped."""
        reason = await self._opening()
        if reason:
            return reason
        previous: ItemRecord | None = None
        entered: str | None = None
        while True:
            reason = await self._between(previous)
            if reason:
                return reason
            previous = None
            item = self._next()
            if item is None:
                return "finished"
            level: CheckLevel = "queue" if item.queue != entered else "item"
            reason, retry = await self._gate(level, item)
            if reason:
                return reason
            if level == "queue":
                if not retry:
                    entered = item.queue
                continue  # choose again: the checks took time, the queue may have changed
            if retry or self._held or self._stop_request or self._next() is not item:
                continue
            reason = self._scheduled_stop(item)
            if reason:
                return reason
            status = await self._run_item(item)
            previous = item
            reason = self._after(item, status)
            if reason:
                return reason
            overlapped = await self._wait_side()  # an item that started beside it
            if overlapped is not None:
                previous = overlapped[0]
                reason = self._after(*overlapped)
                if reason:
                    return reason

    def _next(self) -> ItemRecord | None:
        """The next item to run (a looping queue whose round is over starts a new round)."""
        step = self._model.next_step()
        if isinstance(step, QueueRecord):
            self._record("queue.looped", step.name, {"round": step.round + 1})
            step = self._model.next_step()
        return step if isinstance(step, ItemRecord) else None

    async def _opening(self) -> str | None:
        """Scheduled start, the delay before the first item, the execution checks."""
        start_at = self._model.schedule.get("start_at")
        if isinstance(start_at, int | float) and start_at > self._clock.time():
            self._activity = "waiting"
            with self._interruptible():
                await self._clock.sleep_until_wall(start_at)
            if self._stop_request:
                return self._stop_request
        if start_at is not None:
            self._record("queue.schedule", "", {"start_at": None})
        first = self._model.settings.get("delay_before_first")
        if isinstance(first, int | float) and first > 0:
            await self._run_delay(float(first), "before the first item")
        while True:
            reason, retry = await self._gate("execution", None)
            if reason or not retry:
                return reason
            reason = await self._between(None)
            if reason:
                return reason

    async def _between(self, previous: ItemRecord | None) -> str | None:
        """The delay after `previous`, then wait while held or the run engine is busy."""
        if self._stop_request:
            return self._stop_request
        if previous is not None:
            seconds = self._delay_after(previous)
            if seconds > 0 and self._model.next_step() is not None:
                await self._run_delay(seconds, f"after item {previous.uid}")
        while True:
            if self._stop_request:
                return self._stop_request
            state = self._run_engine.state
            if state is RunState.PANICKED:
                return "panic"
            if not self._held and state is RunState.IDLE:
                return None
            self._activity = "paused" if self._held else "waiting for the run engine"
            with self._interruptible():
                await self._nap()

    def _delay_after(self, item: ItemRecord) -> float:
        if item.delay_after is not None:
            return item.delay_after
        settings = self._model.settings
        by_type = settings.get("delay_by_type")
        if item.item_type is not None and isinstance(by_type, dict):
            seconds = by_type.get(item.item_type)
            if isinstance(seconds, int | float):
                return float(seconds)
        seconds = settings.get("delay_default")
        return float(seconds) if isinstance(seconds, int | float) else 0.0

    async def _run_delay(self, seconds: float, reason: str) -> None:
        delay = self._delay = Delay(self._clock, seconds, reason)
        if self._held:
            delay.pause()
        self._activity = "delay"
        self._record("queue.delay_started", "", {"seconds": seconds, "reason": reason})
        try:
            how = await delay.wait()
        finally:
            self._delay = None
        self._record("queue.delay_ended", "", {"how": how})

    async def _gate(self, level: CheckLevel, item: ItemRecord | None) -> tuple[str | None, bool]:
        """Run the checks of `level`: (stop reason, retry). A failing ``pause`` check holds
        the queue (retry after resume); ``skip`` skips the item (retry with the next one)."""
        if not self._checks.of(level):
            return None, False
        self._activity = "checking"
        queue = item.queue if item is not None else None
        context = CheckContext(level, queue, None if item is None else item.snapshot())
        with self._interruptible():
            failure = await self._checks.run(level, context)
        if self._stop_request:
            return self._stop_request, False
        if failure is None:
            self._record("queue.check_passed", "", {"level": level, "item": _uid(item)})
            return None, False
        check, why = failure
        self._record("queue.check_failed", _uid(item),
                     {"level": level, "check": check.name, "reason": why,
                      "action": check.on_fail})  # fmt: skip
        if check.on_fail == "skip" and item is not None:
            self._record("queue.item_skipped", item.uid, {"reason": f"check {check.name}"})
            return None, True
        if check.on_fail == "pause":
            self._hold(f"{level} check {check.name!r} failed: {why}")
            return None, True
        return f"{level} check {check.name!r} failed: {why}", False

    def _hold(self, reason: str) -> None:
        """The queue's own pause (no plan is running)."""
        if not self._held:
            self._held = True
            if self._delay is not None:
                self._delay.pause()
            self._record("queue.paused", "", {"reason": reason})
            self._poke()

    def _scheduled_stop(self, item: ItemRecord) -> str | None:
        """A reason to stop now if a scheduled stop is due, or would be by the item's end."""
        stop_at = self._model.schedule.get("stop_at")
        if not isinstance(stop_at, int | float):
            return None
        now = self._clock.time()
        reason = None
        if now >= stop_at:
            reason = "scheduled stop"
        elif self._model.schedule.get("eta_aware", True):
            estimate = self._durations.estimate(item.plan, item.kwargs, item.item_type)
            if estimate is not None and now + estimate > stop_at:
                reason = (
                    f"scheduled stop: item {item.uid!r} would end {now + estimate - stop_at:.0f}"
                    " s after it"
                )
        if reason is not None:
            self._record("queue.schedule", "", {"stop_at": None})  # done: the next start runs
        return reason

    def _after(self, item: ItemRecord, status: ItemStatus) -> str | None:
        """Why the execution stops after `item` ended with `status` (None: it goes on)."""
        if self._stop_request:
            return self._stop_request
        if status is ItemStatus.FAILED and not self._model.queues[item.queue].ignore_failures:
            return f"item {item.uid!r} failed"
        if status is ItemStatus.ABORTED:
            return f"item {item.uid!r} aborted"
        if status is ItemStatus.INTERRUPTED:
            return f"item {item.uid!r} interrupted"
        return None

    # -- one item ------------------------------------------------------------------------------

    async def _run_item(self, item: ItemRecord) -> ItemStatus:
        """Start `item` now, run its plan to its end (through pauses); its final status."""
        self._activity = "item"
        self._current, self._plan_uid = item, ""
        self._current_t0 = self._clock.monotonic()
        self._front_watch = ItemWatch(item, self._current_t0)
        self._record("queue.item_started", item.uid,
                     {"plan": item.plan, "kwargs": item.kwargs, "attempt": item.attempts + 1,
                      "queue": item.queue, "item_type": item.item_type})  # fmt: skip
        self._overlap_begin(item)
        ended: Ended | None = None
        try:
            if item.on_interrupt == "skip":
                await self._host.log.flush()  # durable start: after a crash it never re-runs
            ended = await self._drive(item)
        finally:
            self._overlap_end(item)
            if ended is None:  # cancelled: the engine stops (the run engine halted the plan)
                ended = Ended("abort", "cancelled", self._plan_uid, ())
            status = ended.status()
            self._finish_item(item, status, ended, self._current_t0)
            self._current, self._front_watch = None, None
        if item.on_interrupt == "skip":
            # Its end durable too, before the next item starts: a crash now would record it
            # interrupted although it ran to its end.
            await self._host.log.flush()
        return status

    async def _drive(self, item: ItemRecord) -> Ended:
        md = {**item.metadata, "queue_item": item.uid, "queue": item.queue}
        try:
            plan: Any = self._plans.build(item.plan, item.kwargs)
            if self._checks.of("step"):
                plan = with_step_checks(plan, self._step_hook, self._step_failed)
        except Exception as exc:
            return Ended(None, f"the plan could not be built: {type(exc).__name__}: {exc}", "", ())
        result = await self._guarded(lambda: self._start_plan(self._run_engine, plan, md))
        while isinstance(result, RunResult) and result.paused:
            self._plan_uid = result.plan_uid
            result = await self._while_paused(item, result)
        return Ended.of(result) if isinstance(result, RunResult) else result

    @staticmethod
    async def _start_plan(engine: RunEngine, plan: Any, md: dict[str, Any]) -> RunResult:
        """``engine.run(plan, **md)`` (a run engine that reads ``idle`` accepts it)."""
        return await engine.run(plan, **md)

    async def _guarded(
        self, call: Callable[[], Awaitable[RunResult]], run_engine: RunEngine | None = None
    ) -> RunResult | Ended:
        """`call()` (run or resume, on `run_engine`: default the engine's own); a plan that
        raised comes back as its `Ended`."""
        engine = self._run_engine if run_engine is None else run_engine
        try:
            return await call()
        except EngineStateError as exc:
            if engine.state is RunState.PANICKED:
                return Ended("fail", "panic", self._plan_uid, ())
            return Ended(None, f"the run engine refused: {exc}", self._plan_uid, ())
        except Exception as exc:
            subjects = engine.plan_uid or None
            last = self._host.log.recent(
                kinds="plan.finished", subjects=subjects, limit=1, newest_first=True
            )
            runs = tuple(last[0].payload.get("run_uids") or ()) if last else ()
            uid = last[0].subject if last else self._plan_uid
            return Ended("fail", f"{type(exc).__name__}: {exc}", uid, runs)

    async def _while_paused(self, item: ItemRecord, result: RunResult) -> RunResult | Ended:
        """Hold while the item's plan is paused; the next result once it goes on or ends."""
        plan_uid = result.plan_uid
        self._paused_plan, self._foreign_end = plan_uid, None
        self._activity = "paused"
        self._record("queue.paused", item.uid, {"reason": "the plan paused", "plan": plan_uid})
        try:
            while True:
                end = self._foreign_end
                if end is not None:
                    return Ended(end.get("exit_status"), str(end.get("reason", "")), plan_uid,
                                 tuple(end.get("run_uids") or ()))  # fmt: skip
                ours = self._run_engine.state is RunState.PAUSED
                if ours and self._run_engine.plan_uid == plan_uid and self._resume_wanted:
                    resumed = await self._resume_plan(item)
                    if resumed is not None:
                        return resumed
                    continue
                await self._nap()
        finally:
            self._paused_plan = None
            self._activity = "item"

    async def _resume_plan(self, item: ItemRecord) -> RunResult | Ended | None:
        """Serve the pending `Queue.resume` calls; None if the plan stays paused."""
        requests, self._resume_wanted = self._resume_wanted, []
        holding = [n for n, ok in self._run_engine.pause_requests.items() if not ok]
        if holding:
            for request in requests:
                request.fail(PauseHeldError(holding))
            return None
        self._record("queue.resumed", item.uid, {"reason": "resume()"})
        for request in requests:
            request.succeed()
        self._activity = "item"
        return await self._guarded(self._run_engine.resume)

    def _finish_item(self, item: ItemRecord, status: ItemStatus, ended: Ended, t0: float) -> None:
        duration = self._clock.monotonic() - t0
        self._record("queue.item_finished", item.uid, {
            "status": status.value, "exit_status": ended.exit_status, "reason": ended.reason,
            "plan_uid": ended.plan_uid, "run_uids": list(ended.run_uids),
            "duration": duration, "plan": item.plan, "kwargs": item.kwargs,
            "item_type": item.item_type, "queue": item.queue,
        })  # fmt: skip
        if status is ItemStatus.INTERRUPTED and item.on_interrupt == "rerun":
            self._record("queue.item_requeued", item.uid, {"reason": ended.reason})

    # -- step checks ---------------------------------------------------------------------------

    def _step_hook(self, msg: Any) -> Any:
        current = self._current
        snapshot = current.snapshot() if current is not None else None
        queue = current.queue if current is not None else None
        return self._checks.run_step(CheckContext("step", queue, snapshot, msg))

    def _step_failed(self, check: Any, reason: str) -> None:
        self._record("queue.check_failed", _uid(self._current),
                     {"level": "step", "check": check.name, "reason": reason,
                      "action": check.on_fail})  # fmt: skip


def _uid(item: ItemRecord | None) -> str:
    return "" if item is None else item.uid
