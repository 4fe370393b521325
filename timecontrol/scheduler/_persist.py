"""Persistence: restoring jobs from a store, replaying the Log, and settling a crash.

The job store (`timecontrol.stores._jobs`) keeps definitions and state rows, written behind.
On attach the scheduler reads them back (`restore`): a row that cannot be read is
quarantined (kept in the file, not loaded, reported) instead of stopping the others, a
``"module:qualname"`` action outside the allow-list is never imported, and the ``job.*``
events written after the state rows are replayed on top of them, tolerating events that do
not look like the scheduler's own.

When dispatch starts (`settle_crash`), what the last process left is recorded: runs that were
in flight (``interrupted``), and, if it did not stop cleanly, the fire times up to its start
horizon whose fate the file does not show (``uncertain``: they may have run).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Final

import msgspec

from .._events import Event
from ..stores._jobs import JobStore, LoadedJobs
from ._actions import module_allowed
from ._hooks import hooks_allowed
from ._job import job_from_stored
from ._records import RECORD_KINDS
from ._state import NO_RUNS, JobState

if TYPE_CHECKING:
    from ._core import SchedulerCore

__all__ = ["HORIZON_LEASE", "REPLAYED_KINDS", "Persistence", "restore", "settle_crash"]

#: How far ahead of now (seconds) a committed start horizon reaches. After a crash, at most
#: this much of each job's schedule past its last durable decision is recorded as uncertain.
HORIZON_LEASE: Final = 1.0

#: The events a restart replays on top of the state rows.
REPLAYED_KINDS: Final = frozenset(
    {"job.added", "job.updated", "job.resumed", "job.paused", "job.queued", "job.started"}
    | RECORD_KINDS
)


class Persistence:
    """The job store of the attached Log and what the restore found in it."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        #: (job id, run ref, [scheduled, manual, started]) of runs in flight at the crash.
        self.interrupted: list[tuple[str, int, list[Any]]] = []
        #: ``(asked, until)`` of the last process's start horizon if it did not stop cleanly.
        self.crash_horizon: tuple[float, float] | None = None
        #: What the restore found, for the ``scheduler.restored`` event.
        self.report: dict[str, int] = {}
        #: Quarantined jobs not yet announced on the Log.
        self.unreported: list[str] = []
        #: The committed horizon (-inf: none yet in this run).
        self.durable = -math.inf
        self.extending: Any = None  # an anyio.Event while a horizon commit is under way
        #: Wall time of the last automatic retention clean-up (None: never, in this file).
        self.retention_at: float | None = None

    def __repr__(self) -> str:
        return f"<Persistence {self.store!r}>"


def restore(core: SchedulerCore, persist: Persistence) -> None:
    """Load every job of the store into `core` (see the module docstring). Blocking."""
    loaded = persist.store.load(REPLAYED_KINDS)
    persist.crash_horizon = loaded.horizon
    persist.retention_at = loaded.retention_at
    for job_id, text in loaded.specs.items():
        st = _load_one(core, loaded, job_id, text)
        if st is None:
            persist.unreported.append(job_id)
        else:
            core._jobs[job_id] = st
    ignored = loaded.ignored
    for event in loaded.replay:
        st_or_none = core._jobs.get(event.subject)
        if st_or_none is None:
            continue
        try:
            if not _replay(core, st_or_none, event):
                ignored += 1
        except Exception as exc:  # its trigger failed: that job alone is set aside
            _quarantine(core, persist, event.subject, exc)
    for job_id, st in core._jobs.items():
        if st.inflight:
            for ref, info in st.inflight.items():
                persist.interrupted.append((job_id, ref, info))
            st.inflight = NO_RUNS
    persist.report = {
        "jobs": len(core._jobs),
        "quarantined": len(persist.unreported),
        "replayed": len(loaded.replay),
        "ignored_events": ignored,
    }


def _load_one(core: SchedulerCore, loaded: LoadedJobs, job_id: str, text: str) -> JobState | None:
    """A stored job's state, or None after quarantining it (with the reason)."""
    reason = loaded.bad_state.get(job_id)
    if reason is None:
        try:
            job = job_from_stored(text)
        except Exception as exc:  # one damaged row, whatever is wrong, must not stop the rest
            reason = f"{type(exc).__name__}: {str(exc)[:300]}"
        else:
            if job.id != job_id:
                reason = f"its definition names another id, {job.id!r:.100}"
            elif ":" in job.action and not module_allowed(job.action, core._allowed):
                reason = (
                    f"its action {job.action!r} is in a module outside allowed_modules "
                    f"{list(core._allowed)}; it was not imported"
                )
            else:
                reason = hooks_allowed(job, core._allowed)
    if reason is not None:
        core._quarantined[job_id] = reason
        return None
    st = JobState(job)
    row = loaded.state.get(job_id)
    if row is None:
        st.needs_first = True
    else:
        st.next, st.runs = row[0], row[1]
        if row[2]:
            st.inflight = {ref: list(info) for ref, info in row[2].items()}
    return st


def _quarantine(core: SchedulerCore, persist: Persistence, job_id: str, exc: Exception) -> None:
    """Set a loaded job aside (its rows stay in the file), for a failure while settling it."""
    core._jobs.pop(job_id, None)
    core._quarantined[job_id] = f"its trigger failed while it was restored: {exc!r:.300}"
    persist.unreported.append(job_id)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _replay(core: SchedulerCore, st: JobState, event: Event) -> bool:
    """Apply one event written after the state rows; False for one that is not a valid
    scheduler event (ignored: a damaged or foreign event is no evidence of anything)."""
    p, kind = event.payload, event.kind
    if kind in ("job.added", "job.updated", "job.resumed", "job.paused"):
        nxt = p.get("next")
        if nxt is not None and not _number(nxt):
            return False
        if "next" in p:
            st.next = nxt
            st.needs_first = False
        if kind in ("job.paused", "job.resumed"):
            st.job = msgspec.structs.replace(st.job, enabled=kind == "job.resumed")
        return True
    run, scheduled, manual = p.get("run"), p.get("scheduled"), p.get("manual") is True
    if (run is not None and (not isinstance(run, int) or isinstance(run, bool))) or (
        scheduled is not None and not _number(scheduled)
    ):
        return False
    if kind in ("job.queued", "job.started"):
        if run is None or scheduled is None:
            return False
        started = p.get("started") if kind == "job.started" else None
        st.add_run(run, [scheduled, manual, started if _number(started) else None])
        if kind == "job.started" and not manual:
            st.runs += 1
    elif run is not None:
        st.drop_run(run)
    if not manual and scheduled is not None:
        last = p.get("last", scheduled)
        if not _number(last):
            return False
        if st.next is None or st.next <= last:
            st.next = core._after(st, last)
        st.needs_first = False
    return True


def settle_crash(core: SchedulerCore, persist: Persistence, now: float) -> None:
    """Record what the last process left: runs in flight, and uncertain fire times."""
    for job_id, ref, (scheduled, manual, started) in persist.interrupted:
        st = core._jobs.get(job_id)
        if st is None:
            continue
        where = "running" if started is not None else "queued"
        core._record(
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
        core._push(st)
    persist.interrupted.clear()
    horizon, persist.crash_horizon = persist.crash_horizon, None
    if horizon is not None:
        for st in list(core._jobs.values()):
            try:
                _flag_uncertain(core, st, horizon, now)
            except Exception as exc:  # its trigger failed: that job alone is set aside
                _quarantine(core, persist, st.job.id, exc)


def _flag_uncertain(
    core: SchedulerCore, st: JobState, horizon: tuple[float, float], now: float
) -> None:
    """Record the job's undecided fire times up to the crashed process's horizon as
    ``uncertain``: it may have started them without their start reaching the disk.

    A job with durable starts never starts a run before its start is on disk, so it has
    none. A job that was paused on disk when the horizon was committed (at `asked`) could
    start nothing before that: the fire times up to it were slept through (``skipped``).
    """
    asked, until = horizon
    first, job = st.next, st.job
    if job.durable_start or st.needs_first or first is None:
        return
    hi = min(until, now)
    if first > hi:
        return
    if not job.enabled and first <= asked:
        slept = core._settle(st, first, min(asked, hi))
        if slept.due:
            reason = "the job was paused"
            core._record(st, "skipped", {**slept.due.payload(), "reason": reason})
        first = slept.next
        if first is None or first > hi:
            st.next = first
            core._push(st)
            return
    span = core._settle(st, first, hi).due
    if span:
        core._record(
            st,
            "uncertain",
            {
                **span.payload(),
                "reason": "may have run: the process stopped without recording whether this "
                "fire time started (its start was not made durable)",
            },
        )
    st.next = core._after(st, span.last if span else first)
    core._push(st)
