"""The queue's verbs (start, cancel, abort, truncate, pause, resume, ...) and its lifecycle.

Lifecycle, driven by the owner (the `Engine`):

* ``_attach()``: a Log was opened. The first time, the queue is read back from the Log's
  durable store (a SQLite store is read at once, as the scheduler reads its jobs; any other
  sink through ``await log.query`` once the engine runs). Later attaches (a restart in this
  process) keep memory, which is the fold of the same events.
* ``_started()``: dispatch runs. The monitor (panic, plans ending elsewhere, the run
  engine's state) starts; what the last process left is settled: an item that was running is
  recorded ``interrupted`` (and pending again if it is to re-run), and a queue that was
  executing starts again at its first unfinished item (unless ``auto_resume`` is off).
* ``await _stopping()``: before the Log closes. The executor is stopped (a running item is
  recorded ``interrupted``) and the queue records that it stopped.

Interventions are distinct and recorded (``queue.intervention``): `cancel` stops the queue
after the running item, `abort` ends the running item as aborted and stops the queue,
`truncate` ends the running item early as a success and lets the queue go on.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import anyio
import anyio.lowlevel

from .._clock import to_timestamp
from .._exceptions import EngineStateError, TimeControlError
from .._log import Subscription
from ..plans import RunState
from ..stores._sqlite import SQLiteLog, read_events
from ._conditions import Conditional
from ._delays import check_seconds
from ._errors import QueueArgumentError, QueueStateError
from ._items import ItemRecord, ItemStatus
from ._kinds import ALL_KINDS
from ._overlap import Overlap

__all__ = ["Control"]

_PLAN_ACTIVE = (RunState.RUNNING, RunState.SUSPENDING, RunState.PAUSING, RunState.PAUSED)
_SETTINGS = ("delay_before_first", "delay_default", "delay_by_type", "auto_resume")


class _ResumeRequest:
    """A `Queue.resume` call waiting for the executor to resume the paused plan."""

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.error: BaseException | None = None

    def succeed(self) -> None:
        self.done.set()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.done.set()


def _when(value: datetime | float, what: str) -> float:
    try:
        return to_timestamp(value, what)
    except TimeControlError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise QueueArgumentError(
            f"{what} must be an aware datetime or POSIX seconds, got {value!r} ({exc})"
        ) from None


class Control(Overlap):
    """Verbs and lifecycle of `Queue` (see the module docstring)."""

    # -- starting and stopping -----------------------------------------------------------------

    def start(self, *, at: datetime | float | None = None) -> None:
        """Start executing: from the first unfinished item, now or at wall time `at`.

        Returns at once; the queue runs in the engine's task group (`wait` waits for it to
        stop). `QueueStateError` if it is executing already, the engine is not running, or the
        run engine is panicked.
        """
        self._ensure_ready()
        if self.executing:
            raise QueueStateError("the queue is executing already; cancel() it first")
        if self._host.service_group is None:
            raise QueueStateError(
                "the queue runs inside its engine: start the engine first ('async with "
                "engine:' or 'await engine.start()')"
            )
        side = self._side_re
        if RunState.PANICKED in (self._run_engine.state, side and side.state):
            raise QueueStateError("the run engine is panicked; call all_is_well() first")
        if at is not None:
            self._record("queue.schedule", "", {"start_at": _when(at, "at")})
        self._launch("start()")

    def _launch(self, reason: str) -> None:
        tg = self._host.service_group
        if tg is None:
            raise QueueStateError("the engine is not running")
        self._exec_done = anyio.Event()
        self._stop_request = None
        self._held = False
        self._activity = "starting"
        self._record("queue.started", "", {"reason": reason})
        tg.start_soon(self._execute)

    def cancel(self, reason: str = "") -> None:
        """Stop the queue after the running item (which ends as it would); a delay, a check
        or a wait in progress ends at once. Recorded as a ``cancel`` intervention."""
        self._intervene("cancel", reason)
        self._request_stop("cancelled" + (f": {reason}" if reason else ""))

    async def abort(self, reason: str = "") -> None:
        """Abort the running item (its runs end ``abort`` with `reason`) and stop the queue.

        Between items the queue just stops. Returns once the item has ended.
        """
        self._intervene("abort", reason)
        self._request_stop("aborted" + (f": {reason}" if reason else ""))
        await self._plan_at_rest()
        if self._current is not None and self._run_engine.state in _PLAN_ACTIVE:
            await self._run_engine.abort(reason or "aborted from the queue")
        await self._end_side("abort", reason or "aborted from the queue")

    async def truncate(self, reason: str = "") -> None:
        """End the running item now as a success (the plan may clean up: ``RequestStop``); the
        queue goes on with the next item (the one in front, else the overlapping one).
        `QueueStateError` if no item is running."""
        if self._current is None or self._run_engine.state not in _PLAN_ACTIVE:
            if self._side_active() is None:
                raise QueueStateError("truncate() ends the running item; no item is running")
            self._intervene("truncate", reason)
            await self._end_side("stop", reason)
            return
        self._intervene("truncate", reason)
        await self._plan_at_rest()
        await self._run_engine.stop()

    async def _plan_at_rest(self) -> None:
        """Between a pause landing and the executor seeing its result, the run engine is
        ``paused`` but still driving, and refuses to end the plan: let the drive return."""
        while (
            self._current is not None
            and self._paused_plan is None
            and self._run_engine.state in (RunState.PAUSING, RunState.PAUSED)
        ):
            await anyio.lowlevel.checkpoint()

    def _intervene(self, action: str, reason: str) -> None:
        if not isinstance(reason, str):
            raise QueueArgumentError(f"reason must be a str, got {reason!r}")
        if not self.executing:
            raise QueueStateError(f"{action}() acts on an executing queue; the queue is idle")
        item = "" if self._current is None else self._current.uid
        self._record("queue.intervention", item, {"action": action, "reason": reason})

    async def wait(self) -> str | None:
        """Wait until the queue stops executing; why it stopped (``"finished"``, ...), or None
        if it has not run yet."""
        done = self._exec_done
        if done is not None:
            await done.wait()
        return self._last_stop

    # -- pause and resume ----------------------------------------------------------------------

    def pause(self, *, defer: bool = False) -> None:
        """Pause the queue: the running item's plan pauses (the run engine's own pause: hard,
        or at its next checkpoint with `defer`) and no next item starts; between items (a
        delay, a check) the queue holds and a delay stops counting. `resume` goes on."""
        self._check_flag(defer, "defer")
        if not self.executing:
            raise QueueStateError("pause() acts on an executing queue; the queue is idle")
        side = self._pause_side(defer)  # an overlapping item pauses too
        if self._current is not None and self._run_engine.state in _PLAN_ACTIVE:
            if self._run_engine.state in (RunState.RUNNING, RunState.SUSPENDING):
                self._run_engine.request_pause(defer=defer)
            return
        if not side:
            self._hold("pause()")

    async def resume(self) -> None:
        """Resume a paused queue: the paused plan goes on (from its last checkpoint), or the
        hold ends and a delay counts down again. `PauseHeldError` while a named pause
        request holds; `QueueStateError` if the queue is not paused."""
        state = self._run_engine.state
        side = self._resume_side()  # an overlapping item's paused plan goes on too
        if self._current is not None and state in (RunState.PAUSED, RunState.PAUSING):
            request = _ResumeRequest()
            self._resume_wanted.append(request)
            self._poke()
            await request.done.wait()
            if request.error is not None:
                raise request.error
            return
        if not self._held:
            if side:
                return
            raise QueueStateError("resume() continues a paused queue; the queue is not paused")
        self._held = False
        if self._delay is not None:
            self._delay.resume()
        self._record("queue.resumed", "", {"reason": "resume()"})
        self._poke()

    # -- delays and settings -------------------------------------------------------------------

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change queue-wide settings (kept in the Log); returns them all.

        ``delay_before_first`` (s, before the first item of an execution), ``delay_default``
        (s, after each item), ``delay_by_type`` ({item type: s}; an item's own `delay_after`
        comes first), ``auto_resume`` (after a crash, start again where it stopped; True).
        """
        self._ensure_ready()
        unknown = sorted(set(settings) - set(_SETTINGS))
        if unknown:
            raise QueueArgumentError(f"unknown settings {unknown}; accepted: {list(_SETTINGS)}")
        clean: dict[str, Any] = {}
        for key in ("delay_before_first", "delay_default"):
            if key in settings:
                clean[key] = check_seconds(settings[key], key, QueueArgumentError)
        if "delay_by_type" in settings:
            by_type = settings["delay_by_type"]
            if not isinstance(by_type, dict) or not all(isinstance(k, str) for k in by_type):
                raise QueueArgumentError(
                    f"delay_by_type must be a dict of item type to seconds, got {by_type!r}"
                )
            clean["delay_by_type"] = {
                k: check_seconds(v, f"delay_by_type[{k!r}]", QueueArgumentError)
                for k, v in by_type.items()
            }
        if "auto_resume" in settings:
            clean["auto_resume"] = self._check_flag(settings["auto_resume"], "auto_resume")
        if clean:
            self._record("queue.settings", "", clean)
        return dict(self._model.settings)

    def schedule_stop(self, at: datetime | float | None, *, eta_aware: bool = True) -> None:
        """Stop the queue at wall time `at` (None: no scheduled stop): no item starts after
        it, and with `eta_aware` none whose expected end (learned from the Log) is after it.
        A running item is not interrupted."""
        self._ensure_ready()
        self._check_flag(eta_aware, "eta_aware")
        stop_at = None if at is None else _when(at, "at")
        self._record("queue.schedule", "", {"stop_at": stop_at, "eta_aware": eta_aware})
        self._poke()

    def skip_delay(self) -> None:
        """End the delay in progress now (`QueueStateError` if there is none)."""
        if self._delay is None:
            raise QueueStateError("skip_delay(): no delay is in progress")
        self._delay.skip()

    def set_delay_remaining(self, seconds: float) -> None:
        """Make `seconds` the time left of the delay in progress (kept if it is paused)."""
        value = check_seconds(seconds, "seconds", QueueArgumentError)
        if self._delay is None:
            raise QueueStateError("set_delay_remaining(): no delay is in progress")
        self._delay.set_remaining(value)
        self._record("queue.delay_changed", "", {"remaining": value})

    # -- conditionals ----------------------------------------------------------------------------

    def _fire(self, cond: Conditional, item: ItemRecord, seq: int, side: bool) -> None:
        """Take a conditional's action on `item`, whose documents tripped it (the item in
        front, or with `side` the overlapping one, on the second run engine). Called from a
        run-engine document subscriber, inside the plan's own message loop: nothing here
        awaits, and ending the plan is left to a task of its own (ending it from its own
        loop would wait for itself)."""
        engine = self._side_re if side and self._side_re is not None else self._run_engine
        self._record("queue.conditional_fired", item.uid,
                     {"name": cond.name, "condition": cond.condition, "action": cond.action,
                      "seq_num": seq, "run_engine": engine.name})  # fmt: skip
        why = f"conditional {cond.name!r}"
        if cond.action == "pause":
            engine.request_pause()
        elif cond.action == "cancel":
            self._request_stop(f"cancelled by {why}")
        elif cond.action == "skip_next":
            following = [i for i in self._model.runnable() if i.uid != item.uid]
            if following:
                self._record("queue.item_skipped", following[0].uid, {"reason": why})
        elif cond.action == "repeat":
            self._repeat(item, why)
        elif cond.action == "insert":
            self._insert(cond, item, why)
        elif cond.action == "abort":
            self._request_stop(f"aborted by {why}")
            self._soon(engine.abort, why)
        else:  # truncate
            self._soon(engine.stop)

    def _repeat(self, item: ItemRecord, why: str) -> None:
        """Insert a pending copy of `item` (a new uid) right after it."""
        spec = {**item.spec(), "uid": self._new_uid(None), "skip": False}
        name, index = self._place(None, None, item.uid, None)
        self._record("queue.item_added", spec["uid"],
                     {"item": spec, "queue": name, "index": index,
                      "reason": why, "repeats": item.uid})  # fmt: skip

    def _insert(self, cond: Conditional, item: ItemRecord, why: str) -> None:
        """Insert a new item of the conditional's plan and kwargs right after `item`."""
        spec = ItemRecord(uid=self._new_uid(None), plan=str(cond.plan), kwargs=cond.kwargs)
        name, index = self._place(None, None, item.uid, None)
        self._record("queue.item_added", spec.uid,
                     {"item": spec.spec(), "queue": name, "index": index,
                      "reason": why, "inserted_after": item.uid})  # fmt: skip

    def _soon(self, verb: Callable[..., Awaitable[Any]], *args: Any) -> None:
        tg = self._host.service_group
        if tg is None:
            return

        async def call() -> None:
            with contextlib.suppress(EngineStateError):  # the plan ended meanwhile
                await verb(*args)

        tg.start_soon(call)

    # -- lifecycle -----------------------------------------------------------------------------

    def _attach(self) -> None:
        """Lifecycle hook: the owner opened a Log (see the module docstring)."""
        log = self._host.log
        if log is self._log:
            return
        self._log = log
        if self._restored or self._restore_pending:
            return
        sink = log.sink
        if sink is None or sink.last_seq() == 0:  # nothing stored: nothing to read back
            self._rebuild(log.recent(kinds=ALL_KINDS))
        elif isinstance(sink, SQLiteLog):
            self._rebuild(read_events(sink.path, kinds=sorted(ALL_KINDS)))
        else:
            self._restore_pending = True
        self._settled = False

    def _started(self) -> None:
        """Lifecycle hook: dispatch runs (see the module docstring)."""
        if not self._restored and not self._restore_pending:
            self._attach()
        tg = self._host.service_group
        if tg is None:
            return
        log = self._host.log
        kinds = ("run_engine.panicked", "run_engine.all_is_well", "plan.finished",
                 "run_engine.state")  # fmt: skip
        tg.start_soon(self._monitor, log.subscribe(kinds=kinds))
        if self._restore_pending:
            tg.start_soon(self._restore_later)
        else:
            self._settle()

    async def _restore_later(self) -> None:
        events = await self._host.log.query(kinds=ALL_KINDS)
        self._restore_pending = False
        self._rebuild(events)
        self._settle()

    def _settle(self) -> None:
        """Record what the last process left (once per restore)."""
        if self._settled:
            return
        self._settled = True
        model = self._model
        interrupted = model.running
        in_flight = list(model.in_flight)  # two, if one overlapped the other
        for uid in in_flight:
            item = model.items[uid]
            started = item.started_wall
            self._record("queue.item_finished", item.uid, {
                "status": ItemStatus.INTERRUPTED.value, "exit_status": None,
                "reason": "the process ended while it ran", "plan_uid": "", "run_uids": [],
                "duration": None if started is None else self._clock.time() - started,
                "plan": item.plan, "kwargs": item.kwargs, "item_type": item.item_type,
                "queue": item.queue,
            })  # fmt: skip
            if item.on_interrupt == "rerun":
                self._record("queue.item_requeued", item.uid, {"reason": "restart"})
        was_executing = model.executing
        if was_executing:
            self._record("queue.stopped", "", {"reason": "the process ended"})
        if model.items or was_executing:
            resume = was_executing and model.settings.get("auto_resume", True) is not False
            self._record("queue.restored", "", {"items": len(model.items),
                         "interrupted": interrupted, "in_flight": in_flight,
                         "resumed": resume})  # fmt: skip
            if resume:
                self._launch("resumed after a restart")

    async def _monitor(self, sub: Subscription) -> None:
        """Watch the Log for a panic, for a paused plan of ours ending elsewhere, and for the
        run engine's state (the executor may wait for it to be free)."""
        try:
            async for event in sub:
                if event.kind in ("run_engine.panicked", "run_engine.all_is_well"):
                    self._follow_panic(event.kind)
                if event.kind == "run_engine.panicked" and self.executing:
                    self._request_stop("panic")
                elif event.kind == "plan.finished" and event.subject == self._paused_plan:
                    self._foreign_end = dict(event.payload)
                self._poke()
        finally:
            sub.close()

    async def _stopping(self) -> None:
        """Lifecycle hook: the Log is about to close (see the module docstring)."""
        done = self._exec_done
        if done is not None:
            self._closing = True
            self._request_stop("the engine stopped")
            if self._exec_scope is not None:
                self._exec_scope.cancel()
            with anyio.CancelScope(shield=True):
                await done.wait()
        self._closing = False
