"""Overlapping runs: the next item starts while the current one still runs.

pychron overlaps the runs of an experiment where the hardware allows: once a run has
equilibrated, the next one's extraction may begin while the first is still measuring. Here an
item declares ``overlap="equilibrated"`` (and ``overlap_delay``): when its plan gives that
signal (the ``queue_signal`` message, `timecontrol.queue.signal`, or `Queue.signal`), and the
delay has passed, the next item starts on the queue's **second run engine**
(``RunEngine(dispatcher, name="queue.overlap")``, built when first needed) while the first
goes on on the engine's own. Everything is in the Log: the signal (``queue.signal``), the
delay, and the next item's ``queue.item_started`` (payload ``overlaps`` and ``run_engine``)
before the first one's ``queue.item_finished``; a timeline read from the Log shows the two
bars side by side.

Rules, each one so that an overlap is never a surprise:

* At most two items run at once: the item after an overlapping one waits for both to end.
* **Resources**: an item holds its declared resources (a pump, a detector) while it runs; a
  next item that needs one of them does not overlap (it starts once the first has ended, as
  any item does), recorded as ``queue.overlap`` with ``started: false`` and the resources.
* The overlap is chosen like any start: the next item at that moment (edits count), in the
  same queue, after its item checks and the scheduled-stop rule; a hold (``pause()``) delays
  it, a stop request cancels it, and the first item's end before the signal (or during the
  delay) cancels it too.
* Pause, resume, cancel, abort, truncate and panic reach both items: ``engine.panic()`` (and a
  panic of either run engine, seen in the Log) panics both, ``all_is_well`` lifts both.
* Each item's run documents are its own: the second run engine's documents give the
  overlapping item's progress and are watched by the conditionals on its behalf (its own
  trip counters), and an action (truncate, abort, pause, repeat, insert) applies to it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator
from typing import Any

import anyio
import anyio.lowlevel

from .._exceptions import EngineStateError
from ..plans import Msg, RunEngine, RunResult, RunState
from ._conditions import ItemWatch
from ._delays import Delay
from ._errors import QueueArgumentError, QueueStateError
from ._executor import Ended, Executor
from ._items import ItemRecord, ItemStatus

__all__ = ["SIDE_ENGINE", "Overlap", "signal"]

#: The name of the queue's second run engine (prefix of its dispatch holds too).
SIDE_ENGINE = "queue.overlap"


def signal(name: str) -> Generator[Msg, Any, None]:
    """A plan stub: give the queue signal `name` (``yield from signal("equilibrated")``).

    Recorded as ``queue.signal`` for the item whose plan gives it; if that item declared
    ``overlap=name``, the next item may start beside it (after its ``overlap_delay``). A
    message replayed after a pause is not recorded twice. Outside a queue item it is only
    recorded.
    """
    if not isinstance(name, str) or not name:
        raise QueueArgumentError(f"a signal's name must be a non-empty str, got {name!r}")
    yield Msg("queue_signal", None, name)


class Overlap(Executor):
    """The overlap layer of `Queue` (see the module docstring)."""

    # -- the second run engine ------------------------------------------------------------------

    def _side_engine(self) -> RunEngine:
        """The queue's second run engine (built on the same host the first time)."""
        side = self._side_re
        if side is None:
            host: Any = self._run_engine.host
            side = RunEngine(host, name=SIDE_ENGINE, handle_sigint=False)
            side.register_command("queue_signal", self._signal_command(side))
            side.subscribe(self._document_handler(side=True))
            self._side_re = side
        return side

    def _panic(self) -> None:
        """Panic the second run engine too (`Engine.panic` calls this; safe from any thread)."""
        side = self._side_re
        if side is not None and side.state is not RunState.PANICKED:
            side.panic()

    def _all_is_well(self) -> None:
        """Lift the second run engine's panic too (`Engine.all_is_well` calls this)."""
        side = self._side_re
        if side is not None:
            side.all_is_well()

    def _follow_panic(self, kind: str) -> None:
        """A panic or all-is-well of one run engine, seen in the Log, reaches the other (a
        panic from the run engine itself, not through `Engine.panic`). Read from the states
        now, not from the event: a panic lifted meanwhile is not brought back."""
        side = self._side_re
        if side is None:
            return
        main = self._run_engine
        panicked = (main.state is RunState.PANICKED, side.state is RunState.PANICKED)
        if kind == "run_engine.panicked" and panicked == (True, False):
            side.panic()
        elif kind == "run_engine.panicked" and panicked == (False, True):
            main.panic()
        elif kind == "run_engine.all_is_well" and panicked == (False, True):
            side.all_is_well()

    # -- signals --------------------------------------------------------------------------------

    def signal(self, name: str, *, item: str | None = None) -> None:
        """Record that an item gave signal `name` (``queue.signal``): the running item (the
        one in front), or the running item with uid `item`. A plan gives it with
        ``yield from timecontrol.queue.signal(name)``; this is for code that a plan calls
        (a ``call`` message, a device callback on the loop)."""
        if not isinstance(name, str) or not name:
            raise QueueArgumentError(f"a signal's name must be a non-empty str, got {name!r}")
        running = [i for i in (self._current, self._side) if i is not None]
        if item is None:
            target = running[0] if running else None
        else:
            target = next((i for i in running if i.uid == item), None)
        if target is None:
            raise QueueStateError(
                f"signal({name!r}) needs a running item; running: {[i.uid for i in running]}"
                + (f", not {item!r}" if item is not None else "")
            )
        self._signal(name, target, "queue.signal()")

    def _signal(self, name: str, item: ItemRecord | None, source: str) -> None:
        uid = "" if item is None else item.uid
        key = (uid, 0 if item is None else item.attempts, name)
        if key in self._signals_seen:
            return  # a replayed message (after a pause): signalled already
        self._signals_seen.add(key)
        learn: dict[str, Any] = {}
        watch = next((w for w in (self._front_watch, self._side_watch)
                      if w is not None and w.item is item), None)  # fmt: skip
        if item is not None and watch is not None:  # what the ETA learns (`Durations`)
            learn = {"offset": self._clock.monotonic() - watch.t0, "plan": item.plan,
                     "kwargs": item.kwargs, "item_type": item.item_type}  # fmt: skip
        self._record("queue.signal", uid, {"name": name, "source": source, **learn})
        if item is not None and item.overlap == name:
            waiting = self._signalled.get(item.uid)
            if waiting is not None:
                waiting.set()

    # -- the executor's hooks -------------------------------------------------------------------

    def _overlap_begin(self, item: ItemRecord) -> None:
        """`item` has just started in front: watch for its signal if it declares one."""
        self._signals_seen = {k for k in self._signals_seen if k[0] != item.uid}
        tg = self._side_tg
        if item.overlap is None or tg is None:
            return
        self._signalled[item.uid] = anyio.Event()
        tg.start_soon(self._watch, item)

    def _overlap_end(self, item: ItemRecord) -> None:
        """`item` (in front) has ended: an overlap not started by now will not be."""
        self._signalled.pop(item.uid, None)
        if self._overlap_scope is not None:
            self._overlap_scope.cancel()

    async def _wait_side(self) -> tuple[ItemRecord, ItemStatus] | None:
        """Wait until the overlapping item has ended; it and its status (None: there was
        none since the last call)."""
        while self._side is not None:
            self._activity = "waiting for the overlapping item"
            await self._nap()
        ended, self._side_ended = self._side_ended, None
        return ended

    # -- the overlap ----------------------------------------------------------------------------

    async def _watch(self, item: ItemRecord) -> None:
        """Wait for `item`'s signal and delay, then start the next item beside it."""
        signalled = self._signalled.get(item.uid)
        if signalled is None:
            return  # it ended before this task began
        chosen: ItemRecord | None = None
        with anyio.CancelScope() as scope:
            self._overlap_scope = scope
            try:
                await signalled.wait()
                if item.overlap_delay > 0 and not await self._overlap_delay(item):
                    return
                chosen = await self._choose_beside(item)
                if chosen is not None:
                    self._start_side(chosen, item)  # no await since the choice
            finally:
                if self._overlap_scope is scope:  # (a watcher of a later item may have begun)
                    self._overlap_scope = None
        if chosen is not None:
            await self._run_side(chosen)

    async def _overlap_delay(self, item: ItemRecord) -> bool:
        """The delay from `item`'s signal to the overlap; False if it was cut short."""
        delay = self._delay = Delay(self._clock, item.overlap_delay, "overlap")
        if self._held:
            delay.pause()
        reason = f"overlap after item {item.uid}'s signal {item.overlap!r}"
        self._record("queue.delay_started", item.uid,
                     {"seconds": item.overlap_delay, "reason": reason})  # fmt: skip
        how = "the item ended"
        try:
            how = await delay.wait()
        finally:
            if self._delay is delay:
                self._delay = None
            self._record("queue.delay_ended", item.uid, {"how": how})
        return how in ("elapsed", "skipped")

    async def _choose_beside(self, item: ItemRecord) -> ItemRecord | None:
        """The item to start beside `item` now, or None (no overlap after all)."""
        while True:
            if self._stop_request or self._current is not item:
                return None
            side_state = self._side_engine().state
            if self._held or side_state is not RunState.IDLE or self._side is not None:
                if side_state is RunState.PANICKED:
                    return None
                await self._nap()
                continue
            step = self._model.next_step()
            if not isinstance(step, ItemRecord) or step.queue != item.queue:
                return None  # nothing next, a new round, or a queue to enter: no overlap
            held = sorted(set(step.resources) & set(item.resources))
            if held:
                self._record("queue.overlap", item.uid,
                             {"next": step.uid, "started": False, "resources": held})  # fmt: skip
                return None
            reason, retry = await self._gate("item", step)
            self._activity = "item" if self._current is not None else self._activity
            if reason:
                self._request_stop(reason)
                return None
            if retry or self._model.next_step() is not step or self._current is not item:
                continue  # checks took time (or skipped it): choose again
            reason = self._scheduled_stop(step)
            if reason:
                self._request_stop(reason)
                return None
            return step

    def _start_side(self, item: ItemRecord, front: ItemRecord) -> None:
        """Record the overlapping item's start (right after it was chosen)."""
        side = self._side_engine()
        self._side, self._side_t0 = item, self._clock.monotonic()
        self._side_watch = ItemWatch(item, self._side_t0)
        self._side_paused = self._side_resume = False
        self._record("queue.item_started", item.uid,
                     {"plan": item.plan, "kwargs": item.kwargs, "attempt": item.attempts + 1,
                      "queue": item.queue, "item_type": item.item_type,
                      "overlaps": front.uid, "run_engine": side.name})  # fmt: skip

    async def _run_side(self, item: ItemRecord) -> None:
        """Run the overlapping item's plan on the second run engine, through its pauses."""
        side = self._side_engine()
        ended: Ended | None = None
        try:
            if item.on_interrupt == "skip":
                await self._host.log.flush()
            ended = await self._drive_side(side, item)
        finally:
            if ended is None:  # cancelled: the engine stops (the run engine halted the plan)
                ended = Ended("abort", "cancelled", side.plan_uid, ())
            status = ended.status()
            self._finish_item(item, status, ended, self._side_t0)
            self._side, self._side_ended = None, (item, status)
            self._side_watch = None
            self._side_paused = False
            self._poke()
        if item.on_interrupt == "skip":
            await self._host.log.flush()

    async def _drive_side(self, side: RunEngine, item: ItemRecord) -> Ended:
        md = {**item.metadata, "queue_item": item.uid, "queue": item.queue}
        try:
            plan: Any = self._plans.build(item.plan, item.kwargs)
        except Exception as exc:
            return Ended(None, f"the plan could not be built: {type(exc).__name__}: {exc}", "", ())
        result = await self._guarded(lambda: self._start_plan(side, plan, md), side)
        while isinstance(result, RunResult) and result.paused:
            result = await self._side_while_paused(side, item, result.plan_uid)
        return Ended.of(result) if isinstance(result, RunResult) else result

    async def _side_while_paused(
        self, side: RunEngine, item: ItemRecord, plan_uid: str
    ) -> RunResult | Ended:
        """Hold while the overlapping item's plan is paused, until `resume` or its end."""
        self._side_paused = True
        self._record("queue.paused", item.uid, {"reason": "the plan paused", "plan": plan_uid})
        try:
            while True:
                if side.state is RunState.PAUSED and side.plan_uid == plan_uid:
                    if self._side_resume:
                        self._side_resume = False
                        self._record("queue.resumed", item.uid, {"reason": "resume()"})
                        return await self._guarded(side.resume, side)
                elif side.state not in (RunState.PAUSING, RunState.PAUSED):
                    return self._ended_elsewhere(plan_uid)
                await self._nap()
        finally:
            self._side_paused = False

    def _ended_elsewhere(self, plan_uid: str) -> Ended:
        """How a paused plan that was ended by another task (abort, stop) ended."""
        last = self._host.log.recent(
            kinds="plan.finished", subjects=plan_uid, limit=1, newest_first=True
        )
        if not last:
            return Ended(None, "the plan ended elsewhere", plan_uid, ())
        end = last[0].payload
        return Ended(end.get("exit_status"), str(end.get("reason", "")), plan_uid,
                     tuple(end.get("run_uids") or ()))  # fmt: skip

    # -- verbs on the overlapping item ----------------------------------------------------------

    def _side_active(self) -> RunEngine | None:
        """The second run engine while the overlapping item's plan is in flight."""
        side = self._side_re
        if self._side is None or side is None:
            return None
        active = (RunState.RUNNING, RunState.SUSPENDING, RunState.PAUSING, RunState.PAUSED)
        return side if side.state in active else None

    def _pause_side(self, defer: bool) -> bool:
        """Pause the overlapping item's plan; True if there is one."""
        side = self._side_active()
        if side is None:
            return False
        if side.state in (RunState.RUNNING, RunState.SUSPENDING):
            side.request_pause(defer=defer)
        return True

    def _resume_side(self) -> bool:
        """Ask the overlapping item's task to resume its paused plan; True if it will."""
        side = self._side_re
        if self._side is None or side is None or side.state is not RunState.PAUSED:
            return False
        self._side_resume = True
        self._poke()
        return True

    async def _end_side(self, how: str, reason: str) -> None:
        """Abort (`how` ``abort``) or stop the overlapping item's plan, if any."""
        while self._side is not None and not self._side_paused and self._side_re is not None \
                and self._side_re.state is RunState.PAUSING:  # fmt: skip
            await anyio.lowlevel.checkpoint()  # let its task see the pause land first
        side = self._side_active()
        if side is None:
            return
        with contextlib.suppress(EngineStateError):  # it ended meanwhile
            if how == "abort":
                await side.abort(reason)
            else:
                await side.stop()
