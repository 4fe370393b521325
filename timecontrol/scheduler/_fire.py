"""The fire path: how a fire time travels from the Schedule to its execution record.

All decisions are made in memory, on the loop; the store is written behind.

1. Each enabled job has exactly one pending *chain* intent in the host's Schedule: its next
   undecided fire time, run by the internal action ``timecontrol.job``. The host dispatches
   it (so its holds -- pause, panic -- gate jobs too).
2. `_advance` submits the job's next fire time (the chain goes on). If that one is already
   due too (a late dispatch: after a pause, a hold, a restart), the *backlog* is settled at
   once (`_settle_backlog`): by the misfire rule (`beyond_grace`, the only one) and the
   coalesce policy, each run of fire times with one fate in one record.
3. The fire time that is to run goes through the conflict policy (skip / queue /
   concurrent, `_attempt`), is checked against the misfire rule at its real start, and runs
   with its timeout (`_run`). Its outcome is a ``job.<status>`` event: the execution record.
   Alarms and waiters read the records from the Log (`_alarms.py`); nothing here calls them.
4. With a store, a run's start is made safe against a crash after its ``job.started`` is
   written and before the action is called: either the start is committed
   (``durable_start``, and manual runs), or the *start horizon* is (see `_persist.py`):
   committed about once a second, with every event before it, so that a restart knows which
   fire times may have started and records them as ``uncertain``, never as not run. (The
   start is written first so that no later record can overtake a fire time already
   decided to run.)
"""

from __future__ import annotations

import math
import traceback as tb_module
from collections import deque
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import anyio

from .._exceptions import UnknownActionError
from ._actions import import_action
from ._backlog import Span, beyond_grace
from ._core import FIRE, SchedulerCore
from ._hooks import HookRun, run_hooked
from ._host import Action, jsonable
from ._persist import HORIZON_LEASE
from ._state import NO_RUNS, JobState

if TYPE_CHECKING:
    from .._events import Event
    from .._schedule import Intent
    from ._hooks import HookRegistry

__all__ = ["CATCH_UP_CAP", "HORIZON", "FirePath"]

#: With ``coalesce="all"``, at most this many fire times of one backlog are run; the rest are
#: recorded as skipped (bounded: "all" must not mean an unbounded backlog).
CATCH_UP_CAP: Final = 1000
#: The internal action that commits the start horizon ahead of need.
HORIZON: Final = "timecontrol.scheduler_horizon"


def _failure(exc: BaseException) -> dict[str, Any]:
    """The payload of a failed run's record."""
    return {
        "error": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(tb_module.format_exception(exc)),
    }


def _is_plain(value: object) -> bool:
    """True for a value that JSON writes and reads back as itself, cheaply decided: None, a
    bool, an int, a finite float, an ASCII str (the usual results of an action)."""
    if value is None or value is True or value is False or type(value) is int:
        return True
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is str:
        return value.isascii()
    return False


class FirePath(SchedulerCore):
    """The fire path of the scheduler (see the module docstring)."""

    _flushing: anyio.Event | None  # a durable-start flush under way (shared by the runs)
    _hooks: HookRegistry  # profiles and hooks by name (`_hooks.py`)
    _renew_queued: bool

    async def _fire(self, intent: Intent) -> None:
        """The internal action behind every job intent, called with the intent itself.

        A chain intent carries no kwargs: its subject is the job and its due the fire time.
        Catch-up and manual fire times carry theirs (`_fire_other`).
        """
        if intent.kwargs is not None:
            await self._fire_other(intent.seq, **intent.kwargs)
            return
        fire = intent.due
        st = self._jobs.get(intent.subject)
        if st is None or st.next != fire or not st.intent_seq:
            return  # removed, or rescheduled after this intent was dispatched
        st.intent_seq = 0
        now = self._clock.time()
        run_fire = self._advance(st, fire, now)
        if run_fire is None:
            return
        spec = st.job
        if (
            run_fire != fire
            or st.fn is None
            or spec.timeout is not None
            or spec.durable_start
            or spec.max_executions is not None
            or spec.profile is not None
            or spec.before
            or spec.after
            or fire > self._horizon
            or (spec.misfire_grace is not None and beyond_grace(spec.misfire_grace, fire, now))
            or st.running >= (spec.max_instances if spec.conflict == "concurrent" else 1)
        ):
            await self._attempt(st, run_fire, now)
        else:
            await self._run_fast(st, fire, now)

    def _advance(self, st: JobState, fire: float, now: float) -> float | None:
        """Move the chain on past `fire`; returns the fire time to run now, if any."""
        limit = st.job.max_executions
        if limit is not None and st.runs >= limit:
            # Finished: a fire time beyond max_executions is not a fire time at all.
            self._set_next(st, None)
            self._push(st)
            self._idle_check()
            return None
        if self._paused:
            self._parked.add(st.job.id)  # settled on resume, by the misfire policy
            return None
        try:
            nxt = self._after(st, fire)
            if nxt is not None and nxt <= now:
                return self._settle_backlog(st, fire, now)
        except Exception as exc:
            self._trigger_failed(st, fire, exc)
            return None
        # `_set_next`, inlined (once per run).
        st.next = nxt
        if nxt is None:
            st.intent_seq = 0
            self._idle_check()  # the chain ended
        else:
            st.intent_seq = self._host.submit_trusted(FIRE, nxt, None, st.job.id, 0, "trigger").seq
        return fire

    def _trigger_failed(self, st: JobState, fire: float, exc: Exception) -> None:
        # A trigger that fails must not end the job's chain silently: this fire time gets
        # its record, and the job is paused (visible, and an alarm) until someone looks.
        self._record(
            st,
            "skipped",
            {
                "scheduled": fire,
                "last": fire,
                "count": 1,
                "reason": f"the trigger failed ({type(exc).__name__}: {exc}); job paused",
            },
        )
        st.next = fire
        self._pause_job(st)

    def _pause_job(self, st: JobState) -> None:
        raise NotImplementedError  # the scheduler's own (operations live there)

    def _idle_check(self) -> None:
        """A chain ended: the retention's (`_retention.py`); nothing to do here."""

    def _settle_backlog(self, st: JobState, first: float, now: float) -> float | None:
        """Settle fire times that are all due now; returns the one to run in this task."""
        job = st.job
        keep = CATCH_UP_CAP + 1 if job.coalesce == "all" else 2
        backlog = self._settle(st, first, now, grace=job.misfire_grace, now=now, keep=keep)
        self._set_next(st, backlog.next)
        missed, due = backlog.missed, backlog.due
        if missed:
            late = f"{now - missed.last:.6g} s late, beyond misfire_grace {job.misfire_grace} s"
            self._record(st, "missed", {**missed.payload(), "reason": late})
        run_fire: float | None = None
        if due and job.coalesce == "all":
            run_fire = due.head[0]
            self._catch_up(st, due)
        elif due:
            latest = job.coalesce == "latest"
            run_fire = due.last if latest else due.first
            if due.count > 1:
                rest = Span()
                rest.first = due.first if latest else due.head[1]
                rest.last = (due.before_last or due.first) if latest else due.last
                rest.count, rest.exact = due.count - 1, due.exact
                why = f"coalesce={job.coalesce!r}: {due.count} due together"
                self._record(st, "coalesced", {**rest.payload(), "into": run_fire, "reason": why})
        self._push(st)
        return run_fire

    def _catch_up(self, st: JobState, due: Span) -> None:
        """``coalesce="all"``: each due fire time after the first goes through the conflict
        policy in its own task, at most `CATCH_UP_CAP` of them; the rest are skipped."""
        job_id = st.job.id
        for fire in due.head[1:CATCH_UP_CAP]:
            ref = self._log_seq() + 1
            self._record_plain(
                st,
                "job.queued",
                {"run": ref, "scheduled": fire, "manual": False, "reason": "catch-up"},
            )
            st.add_run(ref, [fire, False, None])
            kwargs = {"job": job_id, "fire": fire, "kind": "catchup", "ref": ref}
            intent = self._host.submit_trusted(FIRE, fire, kwargs, job_id, 0, "catch-up")
            self._side[intent.seq] = (job_id, ref, False, fire)
        if due.count > CATCH_UP_CAP:
            over = Span()
            over.first, over.last = due.head[CATCH_UP_CAP], due.last
            over.count, over.exact = due.count - CATCH_UP_CAP, due.exact
            why = f"backlog over {CATCH_UP_CAP} fire times (coalesce='all')"
            self._record(st, "skipped", {**over.payload(), "reason": why})

    def _log_seq(self) -> int:
        log = self._log
        assert log is not None
        return log.last_seq

    def _record_plain(self, st: JobState, kind: str, payload: dict[str, Any]) -> Event:
        log = self._log
        assert log is not None
        return log._emit(kind, st.job.id, payload)

    async def _fire_other(
        self,
        seq: int,
        job: str,
        fire: float,
        kind: str,
        ref: int | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        """A catch-up (``coalesce="all"``) or manual fire time."""
        self._side.pop(seq, None)
        st = self._jobs.get(job)
        if st is None:
            return  # removed meanwhile; its removal is recorded
        now = self._clock.time()
        if kind == "manual":
            await self._attempt(st, fire, now, manual=True, overrides=overrides)
        else:
            await self._attempt(st, fire, now, ref=ref)

    async def _attempt(
        self,
        st: JobState,
        fire: float,
        now: float,
        *,
        manual: bool = False,
        ref: int | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        """Apply the misfire rule, max_executions and the conflict policy; then run."""
        job = st.job
        if not manual and not self._admissible(st, fire, now, ref):
            return
        limit = job.max_instances if job.conflict == "concurrent" else 1
        if st.running < limit:
            st.running += 1
        else:
            waiting = st.waiting
            if job.conflict != "queue" or (waiting is not None and len(waiting) >= job.max_queue):
                why = (
                    f"queue full ({job.max_queue} waiting)"
                    if job.conflict == "queue"
                    else f"{st.running} run(s) still going (conflict={job.conflict!r}, "
                    f"max_instances={limit})"
                )
                payload = {"scheduled": fire, "manual": manual, "run": ref, "reason": why}
                self._record(st, "skipped", payload)
                if ref is not None:
                    st.drop_run(ref)
                self._push(st)
                return
            ref = self._enqueue(st, fire, manual, ref)
            if not await self._wait_turn(st, fire, manual, ref):
                return
            # The slot was handed over by the run that finished (st.running still counts it).
            now = self._clock.time()
            if not manual and not self._admissible(st, fire, now, ref):
                self._release(st)
                return
        await self._run(st, fire, now, manual, ref, overrides)

    def _enqueue(self, st: JobState, fire: float, manual: bool, ref: int | None) -> int:
        if ref is None:
            ref = self._log_seq() + 1
            self._record_plain(
                st,
                "job.queued",
                {"run": ref, "scheduled": fire, "manual": manual, "reason": "conflict"},
            )
            st.add_run(ref, [fire, manual, None])
            self._push(st)
        return ref

    async def _wait_turn(self, st: JobState, fire: float, manual: bool, ref: int) -> bool:
        """Wait for a slot (handed over by a finishing run); False if cancelled meanwhile."""
        waiting = st.waiting
        if waiting is None:
            waiting = st.waiting = deque()
        turn = anyio.Event()
        waiting.append(turn)
        try:
            await turn.wait()
        except BaseException:
            # Cancelled while queued: give the slot on if it was already handed to us.
            if turn.is_set():
                self._release(st)
            elif turn in waiting:
                waiting.remove(turn)
            self._finish_unstarted(st, ref, fire, manual, "cancelled while queued")
            raise
        return True

    def _admissible(self, st: JobState, fire: float, now: float, ref: int | None) -> bool:
        job = st.job
        grace = job.misfire_grace
        if beyond_grace(grace, fire, now):
            why = f"{now - fire:.6g} s late, beyond misfire_grace {grace} s"
            self._record(st, "missed", {"scheduled": fire, "run": ref, "reason": why})
        elif job.max_executions is not None and st.runs >= job.max_executions:
            why = f"max_executions ({job.max_executions}) reached"
            self._record(st, "skipped", {"scheduled": fire, "run": ref, "reason": why})
        else:
            return True
        if ref is not None:
            st.drop_run(ref)
        self._push(st)
        return False

    def _finish_unstarted(
        self, st: JobState, ref: int | None, fire: float, manual: bool, reason: str
    ) -> None:
        self._record(
            st, "cancelled", {"scheduled": fire, "run": ref, "manual": manual, "reason": reason}
        )
        if ref is not None:
            st.drop_run(ref)
        self._push(st)

    def _release(self, st: JobState) -> None:
        """A run ended: hand its slot to the first queued fire time, or free it."""
        waiting = st.waiting
        if waiting:
            waiting.popleft().set()
        else:
            st.running -= 1

    def _resolve(self, st: JobState) -> Action:
        name = st.job.action
        fn = self._host.actions.get(name)
        if fn is None:
            if ":" not in name:
                raise UnknownActionError(
                    f"no action named {name!r} for job {st.job.id!r}; register it with "
                    "@engine.action before the engine starts"
                )
            fn = import_action(name, self._allowed)
        st.fn = fn
        return fn

    async def _run(
        self,
        st: JobState,
        fire: float,
        now: float,
        manual: bool,
        ref: int | None,
        overrides: dict[str, Any] | None,
    ) -> None:
        job, log = st.job, self._log
        assert log is not None
        durable = self._persist is not None and (job.durable_start or manual)
        if ref is None:
            ref = log.last_seq + 1
        # Plain JSON by construction (finite floats, an int, a bool): the Log's fast path.
        started = log._append_plain(
            "job.started",
            job.id,
            {"run": ref, "scheduled": fire, "started": now, "late": now - fire, "manual": manual},
        )
        t0 = started.mono  # the run's monotonic start
        if not manual:
            st.runs += 1
        st.add_run(ref, [fire, manual, now])
        self._push(st)
        if now >= self._renew_at:
            self._renew_horizon()
        kwargs = job.kwargs if not overrides else {**job.kwargs, **overrides}
        try:
            # Made safe against a crash before the action is called (module docstring, 4.):
            # the start is committed, or the horizon past `fire`, with every event before it.
            if durable:
                await self._wait_durable(started.seq)  # at most once, and recorded exactly
            elif fire > self._horizon:
                await self._ensure_horizon(fire)
            fn = st.fn or self._resolve(st)
            status, plain, payload = await self._call(st, fn, kwargs, fire, manual, ref, t0)
        except anyio.get_cancelled_exc_class():
            cancelled = {"reason": "cancelled"}
            self._end_run(st, ref, fire, manual, now, t0, "cancelled", cancelled, plain=True)
            raise
        except Exception as exc:
            status, plain, payload = "failure", False, _failure(exc)
        self._end_run(st, ref, fire, manual, now, t0, status, payload, plain=plain)

    async def _call(
        self,
        st: JobState,
        fn: Action,
        kwargs: dict[str, Any],
        fire: float,
        manual: bool,
        ref: int,
        t0: float,
    ) -> tuple[str, bool, dict[str, Any]]:
        """Call the action (with its hooks and timeout): (status, plain payload, payload)."""
        job = st.job
        if job.profile is not None or job.before or job.after:
            deadline = None if job.timeout is None else t0 + job.timeout
            scheduled = datetime.fromtimestamp(fire, UTC)
            info = HookRun(job=job, scheduled=scheduled, manual=manual, run=ref, phase="")
            status, payload = await run_hooked(
                self._hooks, self._allowed, fn, kwargs, info, deadline
            )
            return status, False, payload
        if job.timeout is None:
            result = await fn(**kwargs)
        else:
            with anyio.CancelScope(deadline=t0 + job.timeout) as scope:
                result = await fn(**kwargs)
            if scope.cancelled_caught:
                return "timeout", True, {"reason": f"exceeded timeout of {job.timeout} s"}
        plain = _is_plain(result)
        return "success", plain, {"result": result if plain else jsonable(result)}

    async def _run_fast(self, st: JobState, fire: float, now: float) -> None:
        """`_run` for the common case, once per run: on time, a free slot, no timeout, the
        action known, the horizon committed. Same events, same order; fewer calls."""
        fn, spec, job = st.fn, st.job, st.job.id
        assert fn is not None
        st.running += 1
        log, clock = self._log, self._clock
        assert log is not None
        ref = log.last_seq + 1
        t0 = clock.monotonic()
        log._append_plain(
            "job.started",
            job,
            {"run": ref, "scheduled": fire, "started": now, "late": now - fire, "manual": False},
            t0,
            now,
        )
        st.runs += 1
        if st.inflight is NO_RUNS:  # `add_run`, inlined
            st.inflight = {ref: [fire, False, now]}
        else:
            st.inflight[ref] = [fire, False, now]
        if self._persist is not None:
            self._push(st)
            if now >= self._renew_at:
                self._renew_horizon()
        try:
            result = await fn(**spec.kwargs)
        except anyio.get_cancelled_exc_class():
            cancelled = {"reason": "cancelled"}
            self._end_run(st, ref, fire, False, now, t0, "cancelled", cancelled, plain=True)
            raise
        except Exception as exc:
            self._end_run(st, ref, fire, False, now, t0, "failure", _failure(exc))
            return
        if result is None or _is_plain(result):
            # `_end_run`, inlined: the record, stamped with the run's end; the slot freed.
            mono, ended = clock.monotonic(), clock.time()
            done = {"result": result, "run": ref, "scheduled": fire, "manual": False}
            done.update(started=now, ended=ended, duration=mono - t0)
            log._append_plain("job.succeeded", job, done, mono, ended)
            inflight = st.inflight  # `drop_run`, inlined
            if len(inflight) == 1:
                st.inflight = NO_RUNS
            else:
                inflight.pop(ref, None)
            waiting = st.waiting
            if waiting:
                waiting.popleft().set()  # `_release`: the slot goes to the first queued
            else:
                st.running -= 1
            if self._persist is not None:
                self._push(st)
        else:
            done = {"result": jsonable(result)}
            self._end_run(st, ref, fire, False, now, t0, "success", done)

    def _end_run(
        self,
        st: JobState,
        ref: int,
        fire: float,
        manual: bool,
        started: float,
        t0: float,
        status: str,
        payload: dict[str, Any],
        *,
        plain: bool = False,
    ) -> None:
        """Record a run's outcome and free its slot (`plain`: see `Log._append_plain`)."""
        clock = self._clock
        mono, ended = clock.monotonic(), clock.time()
        payload["run"] = ref
        payload["scheduled"] = fire
        payload["manual"] = manual
        payload["started"] = started
        payload["ended"] = ended
        payload["duration"] = mono - t0
        # The record is stamped with the run's end (the same clock readings).
        self._record(st, status, payload, plain=plain, at=(mono, ended))
        st.drop_run(ref)
        self._release(st)
        self._push(st)

    # -- crash safety ---------------------------------------------------------------------------

    async def _wait_durable(self, seq: int) -> None:
        """Return once event `seq` is committed. Runs that start together share one flush:
        the first waits for the writer, the others for it (and flush again themselves if
        their start came after that flush began)."""
        log = self._log
        assert log is not None
        sink = log.sink
        while getattr(sink, "durable_seq", -1) < seq:
            flushing = self._flushing
            if flushing is not None:
                await flushing.wait()
                continue
            flushing = self._flushing = anyio.Event()
            try:
                await log.flush()  # everything written so far, `seq` included
            finally:
                self._flushing = None
                flushing.set()
            return

    async def _ensure_horizon(self, fire: float) -> None:
        """Return once the committed start horizon reaches `fire` (commits it if needed)."""
        persist = self._persist
        while persist is not None and fire > self._horizon:
            extending = persist.extending
            if extending is not None:
                await extending.wait()
                continue
            extending = persist.extending = anyio.Event()
            try:
                asked = self._clock.time()
                until = max(asked, fire) + HORIZON_LEASE
                await persist.store.set_horizon(asked, until)
                if self._persist is persist:
                    self._horizon = persist.durable = until
                    self._renew_at = asked + HORIZON_LEASE / 2
            finally:
                persist.extending = None
                extending.set()

    def _renew_horizon(self) -> None:
        """Commit the horizon ahead of need, in a task of its own (once at a time)."""
        if not self._renew_queued and self._persist is not None:
            self._renew_queued = True
            self._host.submit_trusted(HORIZON, self._clock.time(), None, "scheduler", -1, "")

    async def _horizon_action(self) -> None:
        self._renew_queued = False
        if self._persist is not None and self._persist.extending is None:
            await self._ensure_horizon(self._clock.time() + HORIZON_LEASE / 2)
