"""The scheduler: persistent jobs, their policies, execution records, history and alarms.

How a fire time travels (all decisions in memory, on the loop; the store is written behind):

1. Each enabled job has exactly one pending *chain* intent in the Engine's Schedule: its next
   undecided fire time, run by the internal action ``timecontrol.job``. The Engine's loop
   dispatches it (so engine-level holds -- pause, panic -- gate jobs too).
2. The action first computes the job's next fire time and submits it (the chain goes on),
   gathering every further fire time that is already due (a late dispatch: after a pause,
   a hold, a restart). Such a *backlog* is settled at once by the misfire grace and the
   coalesce policy, each fire time ending in exactly one record.
3. The fire time that is to run goes through the conflict policy (skip / queue /
   concurrent), is checked against the misfire grace at its real start, and runs with its
   timeout. Its outcome is a ``job.<status>`` event on the Log: the execution record.

Nothing keeps a private truth: history and statistics read the Log; the job store's state rows
are a cache of the Log that a restart corrects by replaying the events after its watermark.
"""

from __future__ import annotations

import heapq
import math
import traceback as tb_module
from collections import deque
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime, timedelta, tzinfo
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Unpack, cast
from uuid import uuid4

import anyio
import msgspec

from .._clock import Clock
from .._dispatch import Action, jsonable
from .._events import Event
from .._exceptions import StoreError, TimeControlError, UnknownActionError
from ..stores._jobs import JobStore, LoadedJobs
from ..stores._sqlite import SQLiteLog
from ._errors import DuplicateJobError, JobArgumentsError, JobNotFoundError, JobSpecError
from ._grid import Grid, grid_of, unbound_interval
from ._job import Job, JobSpec, import_action, job_from_stored, make_job, plain_json
from ._records import (
    ALARM_STATUSES,
    KIND_OF_STATUS,
    RECORD_KINDS,
    RUN_STATUSES,
    STATUSES,
    ExecutionRecord,
    JobStats,
    SchedulerStats,
)

if TYPE_CHECKING:
    from .._engine import Engine
    from .._log import Log
    from .._schedule import Intent

__all__ = ["AlarmHandler", "JobOptions", "Scheduler"]

#: A failure handler: called with the job and its execution record; may be async.
AlarmHandler = Callable[[Job, ExecutionRecord], Awaitable[None] | None]


class JobOptions(JobSpec, total=False):
    """The keyword options of `Scheduler.add_job`, for signatures that pass them on."""

    id: str | None
    replace_existing: bool
    on_failure: AlarmHandler | None


_FIRE: Final = "timecontrol.job"
_BOOT: Final = "timecontrol.scheduler_boot"
_ALARM: Final = "timecontrol.scheduler_alarms"

#: At most this many fire times are enumerated when settling one backlog; beyond it, the rest
#: up to now is covered by the same record (``truncated``) instead of being walked one by one.
BACKLOG_CAP: Final = 100_000
#: With ``coalesce="all"``, at most this many fire times of one backlog are run; the rest are
#: recorded as skipped (bounded: "all" must not mean an unbounded backlog).
CATCH_UP_CAP: Final = 1000

_json = msgspec.json.Encoder()
_EMPTY_INFLIGHT: Final = "{}"
_JOB_KINDS_REPLAYED: Final = frozenset(
    {"job.added", "job.updated", "job.resumed", "job.queued", "job.started"} | RECORD_KINDS
)


def _failure(exc: Exception) -> dict[str, Any]:
    """The payload of a failed run's record."""
    return {
        "error": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(tb_module.format_exception(exc)),
    }


#: The inflight map of a job with nothing in flight (shared; writes raise).
_NO_RUNS: Final = cast("dict[int, list[Any]]", MappingProxyType({}))


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


def _utc(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


class _State:
    """A job's place in time (runtime only; persisted as a state row)."""

    __slots__ = (
        "fn",
        "grid",
        "grid_for",
        "grid_last",
        "inflight",
        "intent_seq",
        "job",
        "needs_first",
        "next",
        "running",
        "runs",
        "waiting",
    )

    def __init__(self, job: Job) -> None:
        self.job = job
        self.fn: Action | None = None
        # The trigger's fire times in integer arithmetic (plain intervals only; see _grid.py),
        # and the trigger it was made for.
        self.grid: Grid | None = None
        self.grid_for: object = None
        self.grid_last = math.nan  # the point the grid gave last (the chain asks after it)
        self.next: float | None = None  # the next undecided fire time
        self.runs = 0  # runs started (manual ones not counted)
        self.running = 0  # slots taken (running, or handed to a queued fire time)
        self.waiting: deque[anyio.Event] | None = None
        # run ref -> [scheduled, manual, started wall or None]: what a crash would interrupt.
        # Idle jobs (nearly all, nearly always) share one empty, read-only mapping; change it
        # through `add_run` / `drop_run` only.
        self.inflight: dict[int, list[Any]] = _NO_RUNS
        self.intent_seq = 0  # seq of the pending chain intent, 0 if none
        self.needs_first = False  # first fire time still to compute (no clock at add time)

    def add_run(self, ref: int, entry: list[Any]) -> None:
        """Record a run (or queued fire time) in flight."""
        if self.inflight is _NO_RUNS:
            self.inflight = {ref: entry}
        else:
            self.inflight[ref] = entry

    def drop_run(self, ref: int) -> None:
        """Forget a run in flight (if it is there)."""
        inflight = self.inflight
        if ref in inflight:
            if len(inflight) == 1:
                self.inflight = _NO_RUNS
            else:
                del inflight[ref]


class Scheduler:
    """Jobs on an `Engine`: add them, and the engine runs them on time, recording every outcome.

    Args:
        engine: the Engine that dispatches and runs the jobs. With a SQLite store the jobs,
            their state and their history live in the same file, and this process takes the
            file's scheduler lock (`SchedulerLockedError` if another process holds it).

    One scheduler per engine. Create it before or while the engine runs; jobs stored in the
    file come back with it, and fire times missed while the process was down are settled by
    each job's misfire and coalesce policies when the engine starts.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._clock = engine.clock  # fixed for the engine's life; read on every run
        self._jobs: dict[str, _State] = {}
        self._paused = False
        self._parked: set[str] = set()
        self._booted = False
        self._alarms: list[tuple[AlarmHandler, str | None, frozenset[str]]] = []
        self._pending_alarms: deque[tuple[AlarmHandler, Job, ExecutionRecord]] = deque()
        self._alarm_task_queued = False
        self._waiters: dict[
            str, list[tuple[anyio.Event, list[ExecutionRecord], frozenset[str]]]
        ] = {}
        self._interrupted: list[tuple[str, int, list[Any]]] = []
        self._closed = False
        # The scheduler writes its own records (job.*): no action.* events for its wrappers.
        engine._intent_action(self._fire, _FIRE)
        engine.action(self._boot_action, name=_BOOT, record=False)
        engine.action(self._alarm_action, name=_ALARM, record=False)
        sink = engine.log.sink
        self._store: JobStore | None = JobStore(sink) if isinstance(sink, SQLiteLog) else None
        if self._store is not None:
            self._restore(self._store.open(_JOB_KINDS_REPLAYED))
        # Settles what the last process left behind as soon as the engine runs: interrupted
        # runs are recorded, first fire times computed. Due at once; before any job.
        engine.submit(_BOOT, at=self._now_or(0.0), priority=-1, subject="scheduler")

    # -- time ---------------------------------------------------------------------------------

    @property
    def clock(self) -> Clock:
        """The engine's clock."""
        return self.engine.clock

    @property
    def log(self) -> Log:
        """The engine's Log, where every record goes."""
        return self.engine.log

    def _now_or(self, default: float | None) -> float | None:
        # A virtual clock can only be read inside its loop; outside, the caller decides.
        try:
            now: float = self.clock.time()
        except TimeControlError:
            return default
        return now

    def _after(self, st: _State, t: float) -> float | None:
        """The job's first fire time strictly after `t`, within its window, or None."""
        job = st.job
        if job.max_executions is not None and st.runs >= job.max_executions:
            return None
        after = t
        if job.start is not None and after < job.start:
            # The trigger's own fire time at exactly `start` belongs to the window.
            after = job.start - 1e-6
        trigger = job.trigger
        if st.grid_for is not trigger:
            st.grid = grid = grid_of(trigger)
            # (An interval without an anchor binds at its first next(): ask again after it.)
            st.grid_for = trigger if grid is not None or not unbound_interval(trigger) else None
        else:
            grid = st.grid
        if grid is not None:
            # A plain interval: the trigger's own arithmetic, minus the datetimes (_grid.py),
            # with the rounding rule below.
            fast = grid.next_after(after, t, st.grid_last)
            if fast is not None:
                st.grid_last = fast
                return None if job.end is not None and fast > job.end else fast
        nxt_dt: datetime | None = job.trigger.next(datetime.fromtimestamp(after, UTC))
        if nxt_dt is None:
            return None
        nxt = nxt_dt.timestamp()
        if nxt <= t:
            # `t` as a datetime was rounded to the microsecond, possibly below the fire time it
            # came from, which the trigger then returns again: ask once more from there.
            nxt_dt = job.trigger.next(nxt_dt)
            if nxt_dt is None:
                return None
            nxt = nxt_dt.timestamp()
        if nxt <= t:
            raise JobSpecError(
                f"trigger {job.trigger!r} of job {job.id!r} returned {nxt_dt.isoformat()}, "
                f"not after {_utc(t)}; a trigger must move strictly forwards"
            )
        if job.end is not None and nxt > job.end:
            return None
        return nxt

    # -- restore ------------------------------------------------------------------------------

    def _restore(self, loaded: LoadedJobs) -> None:
        for job_id, spec in loaded.specs.items():
            st = _State(job_from_stored(spec))
            row = loaded.state.get(job_id)
            if row is not None:
                st.next, st.runs = row[0], row[1]
                if row[2]:
                    st.inflight = {int(k): list(v) for k, v in row[2].items()}
            else:
                st.needs_first = True
            self._jobs[job_id] = st
        for event in loaded.replay:
            st_or_none = self._jobs.get(event.subject)
            if st_or_none is not None:
                self._replay(st_or_none, event)
        for job_id, st in self._jobs.items():
            if st.inflight:
                for ref, info in st.inflight.items():
                    self._interrupted.append((job_id, ref, info))
                st.inflight = _NO_RUNS
            if st.job.enabled and st.next is not None and not st.needs_first:
                self._set_next(st, st.next)

    def _replay(self, st: _State, event: Event) -> None:
        """Apply one event written after the store's watermark to a restored state."""
        p, kind = event.payload, event.kind
        if kind in ("job.added", "job.updated", "job.resumed"):
            if "next" in p:
                st.next = p["next"]
                st.needs_first = False
            return
        run = int(p["run"]) if p.get("run") is not None else None
        manual = bool(p.get("manual"))
        if kind == "job.queued" and run is not None:
            st.add_run(run, [p["scheduled"], manual, None])
        elif kind == "job.started" and run is not None:
            st.add_run(run, [p["scheduled"], manual, p.get("started")])
            if not manual:
                st.runs += 1
        elif run is not None:
            st.drop_run(run)
        if not manual and "scheduled" in p:
            last = p.get("last", p["scheduled"])
            if st.next is None or st.next <= last:
                st.next = self._after(st, last)
            st.needs_first = False

    async def _boot_action(self) -> None:
        self._boot()

    def _boot(self) -> None:
        """Record runs the last process left in flight; schedule jobs added without a clock."""
        if self._booted:
            return
        self._booted = True
        now = self.clock.time()
        for job_id, ref, (scheduled, manual, started) in self._interrupted:
            st = self._jobs.get(job_id)
            if st is None:
                continue
            where = "running" if started is not None else "queued"
            self._record(
                st,
                "interrupted",
                {
                    "run": ref,
                    "scheduled": scheduled,
                    "manual": manual,
                    "started": started,
                    "reason": f"the process stopped while this fire time was {where}",
                },
            )
            self._push(st)
        self._interrupted.clear()
        for st in self._jobs.values():
            if st.needs_first:
                st.needs_first = False
                st.next = self._after(st, now)
                if st.job.enabled:
                    self._set_next(st, st.next)
                self._put(st, now)
                self._push(st)

    # -- the fire path ------------------------------------------------------------------------

    def _set_next(self, st: _State, nxt: float | None) -> None:
        st.next = nxt
        if nxt is None:
            st.intent_seq = 0
            return
        job_id = st.job.id
        # Once per run: the engine's own fast path (name registered, kwargs plain JSON).
        st.intent_seq = self.engine._submit_trusted(_FIRE, nxt, None, job_id, 0, "trigger").seq

    def _cancel_intent(self, st: _State) -> None:
        if st.intent_seq:
            self.engine.schedule.cancel(st.intent_seq)
            st.intent_seq = 0

    async def _fire(self, intent: Intent) -> None:
        """The internal action behind every job intent, called with the intent itself.

        A chain intent (a job's next fire time) carries no kwargs: its subject is the job and
        its due the fire time. Catch-up and manual fire times carry theirs (`_fire_other`).
        """
        if intent.kwargs is not None:
            await self._fire_other(**intent.kwargs)
            return
        if not self._booted:
            self._boot()
        job, fire = intent.subject, intent.due
        st = self._jobs.get(job)
        if st is None:
            return  # removed meanwhile; its removal is recorded
        now = self._clock.time()
        if st.next != fire or not st.intent_seq:
            return  # a stale intent: the job was rescheduled after this one was dispatched
        st.intent_seq = 0
        limit = st.job.max_executions
        if limit is not None and st.runs >= limit:
            # Finished: a fire time beyond max_executions is not a fire time at all.
            self._set_next(st, None)
            self._push(st)
            return
        if self._paused:
            self._parked.add(job)  # settled on resume, by the misfire policy
            return
        try:
            nxt = self._after(st, fire)
        except Exception as exc:
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
            self.pause_job(job)
            return
        if nxt is not None and nxt <= now:
            run_fire = self._settle_backlog(st, fire, nxt, now)
            if run_fire is not None:
                await self._attempt(st, run_fire, now)
            return
        # `_set_next`, inlined (once per run).
        st.next = nxt
        st.intent_seq = (
            0
            if nxt is None
            else self.engine._submit_trusted(_FIRE, nxt, None, job, 0, "trigger").seq
        )
        spec = st.job
        grace = spec.misfire_grace
        fn = st.fn
        if (
            fn is None
            or spec.timeout is not None
            or spec.durable_start
            or spec.max_executions is not None
            or (grace is not None and now - fire > grace)
            or st.running >= (spec.max_instances if spec.conflict == "concurrent" else 1)
        ):
            await self._attempt(st, fire, now)
            return
        # The common case, once per run: on time, a free slot, no timeout. This is `_attempt`
        # and `_run` inlined (same events, same order); the other cases go through them.
        st.running += 1
        log, clock = self.engine.log, self._clock
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
        if st.inflight is _NO_RUNS:  # `add_run`, inlined
            st.inflight = {ref: [fire, False, now]}
        else:
            st.inflight[ref] = [fire, False, now]
        if self._store is not None:
            self._push(st)
        try:
            result = await fn(**spec.kwargs)
        except anyio.get_cancelled_exc_class():
            self._end_run(
                st, ref, fire, False, now, t0, "cancelled", {"reason": "cancelled"}, inline=False
            )
            raise
        except Exception as exc:
            if self._end_run(st, ref, fire, False, now, t0, "failure", _failure(exc)):
                await self._run_async_alarms()
            return
        plain = result is None or _is_plain(result)
        if not plain or self._alarms or self._waiters:
            payload = {"result": result if plain else jsonable(result)}
            if self._end_run(st, ref, fire, False, now, t0, "success", payload, plain=plain):
                await self._run_async_alarms()
        else:
            # `_end_run` inlined: the record, stamped with the run's end, and the slot freed.
            mono, ended = clock.monotonic(), clock.time()
            payload = {
                "result": result,
                "run": ref,
                "scheduled": fire,
                "manual": False,
                "started": now,
                "ended": ended,
                "duration": mono - t0,
            }
            log._append_plain("job.succeeded", job, payload, mono, ended)
            inflight = st.inflight  # `drop_run`, inlined
            if len(inflight) == 1:
                st.inflight = _NO_RUNS
            else:
                inflight.pop(ref, None)
            waiting = st.waiting
            if waiting:
                waiting.popleft().set()  # `_release`: the slot goes to the first queued
            else:
                st.running -= 1
            if self._store is not None:
                self._push(st)
            if self._pending_alarms:
                await self._run_async_alarms()

    async def _fire_other(
        self,
        job: str,
        fire: float,
        kind: str,
        ref: int | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        """A catch-up (``coalesce="all"``) or manual fire time."""
        if not self._booted:
            self._boot()
        st = self._jobs.get(job)
        if st is None:
            return  # removed meanwhile; its removal is recorded
        now = self._clock.time()
        if kind == "manual":
            await self._attempt(st, fire, now, manual=True, overrides=overrides)
        else:
            await self._attempt(st, fire, now, ref=ref)

    def _enumerate(
        self, st: _State, first: float | None, now: float
    ) -> tuple[list[float], float | None, bool]:
        """Fire times from `first` up to `now`, the first one after, and whether truncated."""
        fires: list[float] = []
        t = first
        while t is not None and t <= now:
            if len(fires) >= BACKLOG_CAP:
                # Too many to walk: jump to the first fire time after now.
                return fires, self._after(st, now), True
            fires.append(t)
            t = self._after(st, t)
        return fires, t, False

    def _settle_backlog(self, st: _State, first: float, second: float, now: float) -> float | None:
        """Settle fire times that are all due now; returns the one to run in this task."""
        job = st.job
        rest, nxt, truncated = self._enumerate(st, second, now)
        fires = [first, *rest]
        self._set_next(st, nxt)
        grace = job.misfire_grace
        k = 0
        if grace is not None:
            while k < len(fires) and now - fires[k] > grace:
                k += 1
        missed, ok = fires[:k], fires[k:]
        extra: dict[str, Any] = {"truncated": True} if truncated else {}
        if missed:
            self._record(
                st,
                "missed",
                {
                    "scheduled": missed[0],
                    "last": now if truncated and not ok else missed[-1],
                    "count": len(missed),
                    "reason": f"{now - missed[-1]:.6g} s late, beyond misfire_grace {grace} s",
                    **extra,
                },
            )
        run_fire: float | None = None
        if ok:
            if job.coalesce == "all":
                run_fire = ok[0]
                catch_up, over = ok[1:CATCH_UP_CAP], ok[CATCH_UP_CAP:]
                for fire in catch_up:
                    ref = self.log.last_seq + 1
                    self._record_plain(
                        st,
                        "job.queued",
                        {"run": ref, "scheduled": fire, "manual": False, "reason": "catch-up"},
                    )
                    st.add_run(ref, [fire, False, None])
                    self.engine.submit(
                        _FIRE,
                        kwargs={"job": job.id, "fire": fire, "kind": "catchup", "ref": ref},
                        subject=job.id,
                        reason="catch-up",
                    )
                if over:
                    self._record(
                        st,
                        "skipped",
                        {
                            "scheduled": over[0],
                            "last": over[-1],
                            "count": len(over),
                            "reason": f"backlog over {CATCH_UP_CAP} fire times (coalesce='all')",
                        },
                    )
            else:
                run_fire = ok[-1] if job.coalesce == "latest" else ok[0]
                others = ok[:-1] if job.coalesce == "latest" else ok[1:]
                if others:
                    self._record(
                        st,
                        "coalesced",
                        {
                            "scheduled": others[0],
                            "last": others[-1],
                            "count": len(others),
                            "into": run_fire,
                            "reason": f"coalesce={job.coalesce!r}: {len(ok)} due together",
                        },
                    )
        self._push(st)
        return run_fire

    async def _attempt(
        self,
        st: _State,
        fire: float,
        now: float,
        *,
        manual: bool = False,
        ref: int | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        """Apply misfire grace, max_executions and the conflict policy; then run."""
        job = st.job
        if not manual and not self._admissible(st, fire, now, ref):
            return
        limit = job.max_instances if job.conflict == "concurrent" else 1
        if st.running >= limit:
            waiting = st.waiting
            if job.conflict != "queue" or (waiting is not None and len(waiting) >= job.max_queue):
                why = (
                    f"queue full ({job.max_queue} waiting)"
                    if job.conflict == "queue"
                    else f"{st.running} run(s) still going (conflict={job.conflict!r}, "
                    f"max_instances={limit})"
                )
                self._record(
                    st,
                    "skipped",
                    {"scheduled": fire, "manual": manual, "run": ref, "reason": why},
                )
                self._push(st)
                return
            if ref is None:
                ref = self.log.last_seq + 1
                self._record_plain(
                    st,
                    "job.queued",
                    {"run": ref, "scheduled": fire, "manual": manual, "reason": "conflict"},
                )
                st.add_run(ref, [fire, manual, None])
                self._push(st)
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
            # The slot was handed over by the run that finished (st.running still counts it).
            now = self.clock.time()
            if not manual and not self._admissible(st, fire, now, ref):
                self._release(st)
                return
        else:
            st.running += 1
        await self._run(st, fire, now, manual, ref, overrides)

    def _admissible(self, st: _State, fire: float, now: float, ref: int | None) -> bool:
        job = st.job
        grace = job.misfire_grace
        if grace is not None and now - fire > grace:
            self._record(
                st,
                "missed",
                {
                    "scheduled": fire,
                    "run": ref,
                    "reason": f"{now - fire:.6g} s late, beyond misfire_grace {grace} s",
                },
            )
        elif job.max_executions is not None and st.runs >= job.max_executions:
            self._record(
                st,
                "skipped",
                {
                    "scheduled": fire,
                    "run": ref,
                    "reason": f"max_executions ({job.max_executions}) reached",
                },
            )
        else:
            return True
        if ref is not None:
            st.drop_run(ref)
        self._push(st)
        return False

    def _finish_unstarted(
        self, st: _State, ref: int | None, fire: float, manual: bool, reason: str
    ) -> None:
        self._record(
            st, "cancelled", {"scheduled": fire, "run": ref, "manual": manual, "reason": reason}
        )
        if ref is not None:
            st.drop_run(ref)
        self._push(st)

    def _release(self, st: _State) -> None:
        """A run ended: hand its slot to the first queued fire time, or free it."""
        waiting = st.waiting
        if waiting:
            waiting.popleft().set()
        else:
            st.running -= 1

    def _resolve(self, st: _State) -> Action:
        fn = self.engine.actions.get(st.job.action)
        if fn is None:
            if ":" not in st.job.action:
                raise UnknownActionError(
                    f"no action named {st.job.action!r} for job {st.job.id!r}; registered: "
                    f"{self._user_actions()}"
                )
            fn = import_action(st.job.action)
        st.fn = fn
        return fn

    async def _run(
        self,
        st: _State,
        fire: float,
        now: float,
        manual: bool,
        ref: int | None,
        overrides: dict[str, Any] | None,
    ) -> None:
        job = st.job
        log = self.engine.log
        if ref is None:
            ref = log.last_seq + 1
        # Plain JSON by construction (finite floats, an int, a bool): the Log's fast path.
        t0 = log._append_plain(
            "job.started",
            job.id,
            {"run": ref, "scheduled": fire, "started": now, "late": now - fire, "manual": manual},
        ).mono  # the run's monotonic start
        if not manual:
            st.runs += 1
        st.add_run(ref, [fire, manual, now])
        if self._store is not None:
            self._push(st)
            if job.durable_start:
                # At most once: the start is on disk before the action can do anything.
                await log.flush()
        kwargs = job.kwargs if not overrides else {**job.kwargs, **overrides}
        status = "success"
        payload: dict[str, Any]
        try:
            fn = st.fn or self._resolve(st)
            if job.timeout is None:
                result = await fn(**kwargs)
            else:
                with anyio.CancelScope(deadline=t0 + job.timeout) as scope:
                    result = await fn(**kwargs)
                if scope.cancelled_caught:
                    status = "timeout"
            if status == "success":
                plain = _is_plain(result)
                payload = {"result": result if plain else jsonable(result)}
            else:
                plain = True
                payload = {"reason": f"exceeded timeout of {job.timeout} s"}
        except anyio.get_cancelled_exc_class():
            self._end_run(
                st,
                ref,
                fire,
                manual,
                now,
                t0,
                "cancelled",
                {"reason": "cancelled"},
                inline=False,
                plain=True,
            )
            raise
        except Exception as exc:
            status = "failure"
            plain = False
            payload = _failure(exc)
        record = self._end_run(st, ref, fire, manual, now, t0, status, payload, plain=plain)
        if record is not None:
            await self._run_async_alarms()

    def _end_run(
        self,
        st: _State,
        ref: int,
        fire: float,
        manual: bool,
        started: float,
        t0: float,
        status: str,
        payload: dict[str, Any],
        *,
        inline: bool = True,
        plain: bool = False,
    ) -> Event | None:
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
        event = self._record(
            st, status, payload, inline_async=inline, plain=plain, at=(mono, ended)
        )
        st.drop_run(ref)
        waiting = st.waiting
        if waiting:
            waiting.popleft().set()  # `_release`: hand the slot to the first queued fire time
        else:
            st.running -= 1
        if self._store is not None:
            self._push(st)
        return event if self._pending_alarms else None

    # -- records ------------------------------------------------------------------------------

    def _record_plain(self, st: _State, kind: str, payload: dict[str, Any]) -> Event:
        return self.log._emit(kind, st.job.id, payload)

    def _record(
        self,
        st: _State,
        status: str,
        payload: dict[str, Any],
        *,
        inline_async: bool = False,
        plain: bool = False,
        at: tuple[float, float] | None = None,
    ) -> Event:
        """Append an execution record; notify waiters and failure handlers.

        `plain`: the caller vouches that `payload` is plain JSON (see `Log._append_plain`),
        and `at` gives the (monotonic, wall) time just read for it.
        """
        log = self.engine.log
        if plain:
            if at is None:
                event = log._append_plain(KIND_OF_STATUS[status], st.job.id, payload)
            else:
                event = log._append_plain(KIND_OF_STATUS[status], st.job.id, payload, at[0], at[1])
        else:
            event = log._emit(KIND_OF_STATUS[status], st.job.id, payload)
        if self._alarms or self._waiters:
            self._dispatch_record(st, status, event, inline_async)
        return event

    def _dispatch_record(self, st: _State, status: str, event: Event, inline_async: bool) -> None:
        job_id = st.job.id
        record = ExecutionRecord.from_event(event)
        waiters = self._waiters.get(job_id)
        if waiters:
            keep = []
            for done, box, statuses in waiters:
                if status in statuses:
                    box.append(record)
                    done.set()
                else:
                    keep.append((done, box, statuses))
            if keep:
                self._waiters[job_id] = keep
            else:
                del self._waiters[job_id]
        for handler, only_job, statuses in self._alarms:
            if status in statuses and (only_job is None or only_job == job_id):
                self._pending_alarms.append((handler, st.job, record))
        if self._pending_alarms and not inline_async and not self._alarm_task_queued:
            # No task to await handlers in here: let the engine run them.
            self._alarm_task_queued = True
            self.engine.submit(_ALARM, subject="scheduler", reason="alarm")

    async def _alarm_action(self) -> None:
        self._alarm_task_queued = False
        await self._run_async_alarms()

    async def _run_async_alarms(self) -> None:
        pending = self._pending_alarms
        while pending:
            handler, job, record = pending.popleft()
            try:
                outcome = handler(job, record)
                if outcome is not None:
                    await outcome
            except Exception as exc:
                # A broken handler must never stop the scheduler: record it and go on.
                self.log._emit(
                    "scheduler.alarm_failed",
                    job.id,
                    {
                        "handler": getattr(handler, "__qualname__", repr(handler)),
                        "record": record.seq,
                        "error": type(exc).__name__,
                        "message": str(exc),
                        "traceback": "".join(tb_module.format_exception(exc)),
                    },
                )

    # -- persistence --------------------------------------------------------------------------

    def _push(self, st: _State) -> None:
        store = self._store
        if store is None or self._jobs.get(st.job.id) is not st:
            return
        inflight = _json.encode(st.inflight).decode() if st.inflight else _EMPTY_INFLIGHT
        store.push_state((st.job.id, st.next, st.runs, inflight, self.log.last_seq))

    def _put(self, st: _State, now: float) -> None:
        if self._store is not None:
            self._store.put_job(st.job.id, _json.encode(st.job.to_json()), now)

    # -- operations ---------------------------------------------------------------------------

    def add_job(
        self,
        action: str | Action,
        trigger: Any,
        *,
        id: str | None = None,
        replace_existing: bool = False,
        on_failure: AlarmHandler | None = None,
        **spec: Unpack[JobSpec],
    ) -> Job:
        """Add a job and schedule its first fire time; returns its definition.

        `action` is a registered action (name or function) or a ``"module:qualname"``
        reference. A duplicate `id` raises `DuplicateJobError` unless `replace_existing`, which
        keeps the job's progress (next fire time, runs) when only its policies change and
        does nothing when the definition is identical -- so a program may re-declare its jobs
        at every start. `on_failure` registers a failure handler for this job (in memory:
        register it again after a restart). See `Job` for the other fields.
        """
        action_name = self._action_name(action)
        job = make_job(
            id=id if id is not None else uuid4().hex[:12],
            action=action_name,
            trigger=trigger,
            **spec,
        )
        existing = self._jobs.get(job.id)
        if existing is not None:
            if not replace_existing:
                raise DuplicateJobError(
                    f"a job with id {job.id!r} already exists; pass replace_existing=True to "
                    "replace it, or another id"
                )
            old_spec, new_spec = existing.job.to_json(), job.to_json()
            old_spec.pop("trigger")
            new_spec.pop("trigger")
            if old_spec != new_spec or not _same_trigger(
                existing.job.trigger.to_json(), job.trigger.to_json()
            ):
                changes = {
                    f: getattr(job, f)
                    for f in job.__struct_fields__
                    if f not in ("id", "trigger") and getattr(job, f) != getattr(existing.job, f)
                }
                if not _same_trigger(existing.job.trigger.to_json(), job.trigger.to_json()):
                    changes["trigger"] = job.trigger
                self.update_job(job.id, **changes)
            if on_failure is not None:
                self.on_failure(on_failure, job_id=job.id)
            return self._jobs[job.id].job
        st = _State(job)
        now = self._now_or(None)
        if now is None:
            st.needs_first = True
        else:
            st.next = self._after(st, now)
        self._jobs[job.id] = st
        if on_failure is not None:
            self.on_failure(on_failure, job_id=job.id)
        if job.enabled and not st.needs_first:
            self._set_next(st, st.next)
        if now is not None:
            self.log._emit("job.added", job.id, {"spec": job.to_json(), "next": st.next})
            self._put(st, now)
            self._push(st)
        else:
            self._put(st, 0.0)
        return job

    def _action_name(self, action: str | Action) -> str:
        if isinstance(action, str):
            if action not in self.engine.actions:
                if ":" not in action:
                    raise UnknownActionError(
                        f"no action named {action!r}; registered actions: "
                        f"{self._user_actions()} (register it with @engine.action, "
                        "or give 'module:qualname')"
                    )
                import_action(action)  # fail now, not at the first fire time
            return action
        for key, fn in self.engine.actions.items():
            if fn is action:
                return key
        self.engine.action(action)
        return str(getattr(action, "__name__", repr(action)))

    def _user_actions(self) -> list[str]:
        return sorted(k for k in self.engine.actions if not k.startswith("timecontrol."))

    def update_job(self, job_id: str, **changes: Any) -> Job:
        """Change fields of a job (any `add_job` field but `id`); returns the new definition.

        A changed trigger or window reschedules the job from now; other changes keep its
        next fire time. Invalid changes raise and leave the job unchanged.
        """
        st = self._get(job_id)
        if "id" in changes:
            raise JobSpecError("a job's id cannot change; remove it and add a new one")
        if "action" in changes:
            changes["action"] = self._action_name(changes["action"])
        enable = changes.pop("enabled", None)
        fields = {f: getattr(st.job, f) for f in st.job.__struct_fields__}
        unknown = set(changes) - set(fields)
        if unknown:
            raise JobSpecError(f"unknown job field(s) {sorted(unknown)}; known: {sorted(fields)}")
        fields.update(changes)
        job = make_job(**fields)  # validates everything before anything changes
        if enable is not None and not isinstance(enable, bool):
            raise JobSpecError(f"enabled must be True or False, got {enable!r}")
        old = st.job
        st.job = job
        if job.action != old.action:
            st.fn = None
        now = self._now_or(None)
        reschedule = (
            "trigger" in changes
            or "start" in changes
            or "end" in changes
            or "max_executions" in changes
        )
        if reschedule:
            self._cancel_intent(st)
            if now is None:
                st.needs_first = True
                st.next = None
            else:
                st.next = self._after(st, now)
                if job.enabled:
                    self._set_next(st, st.next)
        if now is not None and changes:
            shown = {k: (v.to_json() if k == "trigger" else v) for k, v in changes.items()}
            self.log._emit("job.updated", job_id, {"changes": jsonable(shown), "next": st.next})
            self._put(st, now)
            self._push(st)
        if enable is True:
            self.resume_job(job_id)
        elif enable is False:
            self.pause_job(job_id)
        return st.job

    def remove_job(self, job_id: str) -> Job:
        """Remove a job (its runs in progress finish and are recorded); returns its definition."""
        st = self._get(job_id)
        self._cancel_intent(st)
        del self._jobs[job_id]
        self._parked.discard(job_id)
        self._alarms = [a for a in self._alarms if a[1] != job_id]
        if self._store is not None:
            self._store.delete_job(job_id)
        if self._now_or(None) is not None:
            self.log._emit("job.removed", job_id, {})
        return st.job

    def get_job(self, job_id: str) -> Job:
        """A job's definition (`JobNotFoundError` if there is none)."""
        return self._get(job_id).job

    def _get(self, job_id: str) -> _State:
        st = self._jobs.get(job_id)
        if st is None:
            raise JobNotFoundError(f"no job with id {job_id!r}; jobs: {sorted(self._jobs)[:20]}")
        return st

    def jobs(
        self, *, enabled: bool | None = None, tags: str | Collection[str] | None = None
    ) -> list[Job]:
        """Job definitions, optionally only enabled/disabled ones or those with any of `tags`."""
        wanted = None if tags is None else ({tags} if isinstance(tags, str) else set(tags))
        return [
            st.job
            for st in self._jobs.values()
            if (enabled is None or st.job.enabled == enabled)
            and (wanted is None or wanted.intersection(st.job.tags))
        ]

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._jobs

    def __len__(self) -> int:
        return len(self._jobs)

    def next_run(self, job_id: str) -> datetime | None:
        """A job's next fire time (None when paused, finished or not yet scheduled)."""
        st = self._get(job_id)
        return _utc(st.next) if st.job.enabled else None

    def running(self) -> dict[str, int]:
        """Runs in progress, per job id (jobs with none are left out)."""
        return {
            job_id: n
            for job_id, st in self._jobs.items()
            if (n := sum(1 for v in st.inflight.values() if v[2] is not None))
        }

    def pause_job(self, job_id: str) -> Job:
        """Pause a job: it starts nothing until resumed (fire times meanwhile are skipped)."""
        st = self._get(job_id)
        if not st.job.enabled:
            return st.job
        self._cancel_intent(st)
        self._parked.discard(job_id)
        st.job = msgspec.structs.replace(st.job, enabled=False)
        now = self._now_or(None)
        if now is not None:
            self.log._emit("job.paused", job_id, {"next": st.next})
            self._put(st, now)
            self._push(st)
        return st.job

    def resume_job(self, job_id: str) -> Job:
        """Resume a paused job; the fire times it slept through get one ``skipped`` record."""
        st = self._get(job_id)
        if st.job.enabled:
            return st.job
        st.job = msgspec.structs.replace(st.job, enabled=True)
        now = self._now_or(None)
        if now is None or st.needs_first:
            st.needs_first = True
            return st.job
        fires, nxt, truncated = self._enumerate(st, st.next, now)
        if fires:
            self._record(
                st,
                "skipped",
                {
                    "scheduled": fires[0],
                    "last": now if truncated else fires[-1],
                    "count": len(fires),
                    "reason": "the job was paused",
                    **({"truncated": True} if truncated else {}),
                },
            )
        self._set_next(st, nxt)
        self.log._emit("job.resumed", job_id, {"next": nxt})
        self._put(st, now)
        self._push(st)
        return st.job

    def run_job(self, job_id: str, **overrides: Any) -> float:
        """Run a job now, outside its trigger, with keyword `overrides`; returns the fire time.

        The run is a manual fire time: it goes through the conflict policy like any other,
        its record says ``manual=True``, and it does not count towards `max_executions`.
        """
        st = self._get(job_id)
        try:
            plain_json(overrides)
        except (TypeError, ValueError, msgspec.EncodeError, OverflowError) as exc:
            raise JobArgumentsError(f"overrides {overrides!r} are not JSON ({exc})") from None
        now = self.clock.time()
        self.engine.submit(
            _FIRE,
            at=now,
            kwargs={"job": st.job.id, "fire": now, "kind": "manual", "overrides": overrides},
            subject=st.job.id,
            reason="manual",
        )
        return now

    def pause(self) -> None:
        """Pause the whole scheduler: no job starts until `resume` (runs in progress go on).

        Fire times that fall due meanwhile are settled on resume by each job's misfire grace
        and coalesce policy. (Manual runs still start: they are explicit requests.)
        """
        if not self._paused:
            self._paused = True
            self.log._emit("scheduler.paused", "scheduler", {})

    def resume(self) -> None:
        """Resume the scheduler; fire times due meanwhile follow their misfire policies."""
        if not self._paused:
            return
        self._paused = False
        self.log._emit("scheduler.resumed", "scheduler", {"parked": len(self._parked)})
        parked, self._parked = self._parked, set()
        for job_id in sorted(parked):
            st = self._jobs.get(job_id)
            if st is not None and st.job.enabled and not st.intent_seq:
                self._set_next(st, st.next)  # due in the past: dispatched at once, then settled

    @property
    def paused(self) -> bool:
        """True while the whole scheduler is paused."""
        return self._paused

    async def wait_job(
        self, job_id: str, statuses: Collection[str] = tuple(sorted(RUN_STATUSES))
    ) -> ExecutionRecord:
        """Wait for the job's next record with one of `statuses` (default: a finished run)."""
        self._get(job_id)
        bad = set(statuses) - set(STATUSES)
        if bad:
            raise JobSpecError(f"unknown status(es) {sorted(bad)}; expected {list(STATUSES)}")
        done = anyio.Event()
        box: list[ExecutionRecord] = []
        entry = (done, box, frozenset(statuses))
        self._waiters.setdefault(job_id, []).append(entry)
        try:
            await done.wait()
        finally:
            if not box:
                lst = self._waiters.get(job_id, [])
                if entry in lst:
                    lst.remove(entry)
                if not lst:
                    self._waiters.pop(job_id, None)
        return box[0]

    def on_failure(
        self,
        handler: AlarmHandler,
        *,
        job_id: str | None = None,
        statuses: Collection[str] = ALARM_STATUSES,
    ) -> AlarmHandler:
        """Call `handler(job, record)` for records with `statuses` (default: failure, timeout,
        interrupted), of one job or of all. It may be async; if it raises, the error is
        recorded as ``scheduler.alarm_failed`` and the scheduler carries on. Returns `handler`.
        """
        bad = set(statuses) - set(STATUSES)
        if bad:
            raise JobSpecError(f"unknown status(es) {sorted(bad)}; expected {list(STATUSES)}")
        if not callable(handler):
            raise JobSpecError(f"failure handler {handler!r} is not callable")
        self._alarms.append((handler, job_id, frozenset(statuses)))
        return handler

    # -- history and statistics ---------------------------------------------------------------

    async def history(
        self,
        job_id: str | None = None,
        *,
        statuses: Collection[str] | None = None,
        since: datetime | float | None = None,
        until: datetime | float | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[ExecutionRecord]:
        """Execution records from the Log (the durable store when there is one)."""
        wanted = STATUSES if statuses is None else tuple(statuses)
        bad = set(wanted) - set(STATUSES)
        if bad:
            raise JobSpecError(f"unknown status(es) {sorted(bad)}; expected {list(STATUSES)}")
        events = await self.log.query(
            kinds=[KIND_OF_STATUS[s] for s in wanted],
            subjects=None if job_id is None else [job_id],
            since=since,
            until=until,
            limit=limit,
            newest_first=newest_first,
        )
        return [ExecutionRecord.from_event(e) for e in events]

    async def job_stats(self, job_id: str) -> JobStats:
        """Totals, counts per status, durations, last run and next run of one job."""
        self._get(job_id)
        return _job_stats(job_id, await self.history(job_id), self.next_run(job_id))

    async def stats(self, *, upcoming: int = 10, tz: tzinfo = UTC) -> SchedulerStats:
        """Figures for the whole scheduler; `today` starts at midnight in `tz`."""
        now = self.clock.now().astimezone(tz)
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        today: dict[str, int] = {}
        for record in await self.history(since=midnight):
            today[record.status] = today.get(record.status, 0) + record.count
        by_tag: dict[str, int] = {}
        enabled = 0
        for st in self._jobs.values():
            enabled += st.job.enabled
            for tag in st.job.tags:
                by_tag[tag] = by_tag.get(tag, 0) + 1
        soon = heapq.nsmallest(
            upcoming,
            (
                (st.next, job_id)
                for job_id, st in self._jobs.items()
                if st.job.enabled and st.next is not None
            ),
        )
        return SchedulerStats(
            jobs=len(self._jobs),
            enabled=enabled,
            disabled=len(self._jobs) - enabled,
            running=sum(self.running().values()),
            today=today,
            jobs_by_tag=by_tag,
            upcoming=[(job_id, datetime.fromtimestamp(t, UTC)) for t, job_id in soon],
            paused=self._paused,
        )

    async def purge_history(self, older_than: timedelta | float) -> int:
        """Delete execution records older than `older_than` from the store (retention).

        Returns how many events were deleted (0 without a SQLite store, where the Log's
        ring already bounds memory).
        """
        seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
        if not (isinstance(seconds, int | float) and math.isfinite(seconds) and seconds >= 0):
            raise JobSpecError(f"older_than must be a non-negative duration, got {older_than!r}")
        if self._store is None:
            return 0
        before = self.clock.time() - seconds
        await self._store.flush()
        count = await self._store.purge(before, RECORD_KINDS | {"job.started", "job.queued"})
        self.log._emit("scheduler.purged", "scheduler", {"before": before, "deleted": count})
        return count

    # -- lifecycle ----------------------------------------------------------------------------

    async def flush(self) -> None:
        """Make job definitions and state written so far durable (no-op in memory)."""
        if self._store is not None:
            await self._store.flush()

    def close(self) -> None:
        """Release the file's scheduler lock (after the engine stopped). Idempotent."""
        if not self._closed:
            self._closed = True
            if self._store is not None:
                self._store.close()

    async def aclose(self) -> None:
        """Flush definitions and state, then release the lock.

        After the engine stopped, its Log (and writer) is closed: every event is durable then,
        and state rows not yet written are rebuilt from those events at the next start.
        """
        if not self._closed:
            try:
                await self.flush()
            except StoreError:
                pass  # the Log is closed; see above: nothing is lost
            finally:
                self.close()

    def __repr__(self) -> str:
        return f"<Scheduler jobs={len(self._jobs)} paused={self._paused} store={self._store!r}>"


def _job_stats(job_id: str, records: list[ExecutionRecord], next_run: datetime | None) -> JobStats:
    by_status: dict[str, int] = {}
    durations: list[float] = []
    last_run: ExecutionRecord | None = None
    for record in records:
        by_status[record.status] = by_status.get(record.status, 0) + record.count
        if record.status in RUN_STATUSES:
            if record.duration is not None and record.status != "interrupted":
                durations.append(record.duration)
            if last_run is None or record.seq > last_run.seq:
                last_run = record
    total = sum(by_status.values())
    runs = sum(n for s, n in by_status.items() if s in RUN_STATUSES)
    return JobStats(
        job_id=job_id,
        total=total,
        runs=runs,
        by_status=by_status,
        succeeded=by_status.get("success", 0),
        failed=by_status.get("failure", 0) + by_status.get("timeout", 0),
        mean_duration=sum(durations) / len(durations) if durations else None,
        min_duration=min(durations) if durations else None,
        max_duration=max(durations) if durations else None,
        last_run=last_run,
        next_run=next_run,
    )


def _same_trigger(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether a re-declared trigger is the stored one.

    A trigger declared without an origin (an interval without ``anchor``) binds it at its first
    use, so the stored JSON has a value where the fresh one has None: that is the same trigger,
    and re-declaring it at every start must not restart its phase.
    """
    return old.keys() == new.keys() and all(new[k] is None or new[k] == old[k] for k in new)
