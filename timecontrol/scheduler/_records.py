"""Execution records: one per fire time, each an event on the Log.

A record *is* its event (``job.succeeded``, ``job.skipped``, ...): `ExecutionRecord` only gives
it a typed face. Records of fire times that did not run (skipped / missed / coalesced) may
cover a run of consecutive fire times at once (``scheduled`` .. ``last``, ``count`` of them),
so that a month of downtime is one record, not a million; every fire time is covered by exactly
one record.

After a crash a fire time may have started without its start reaching the disk: the restart
cannot tell whether it ran, so it records it as ``uncertain`` ("may have run"), never as a fire
time that did not run (see docs/scheduler.md, "Crashes").
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final, Literal, TypeVar

import msgspec

from .._events import Event, reserve_kind

__all__ = [
    "ALARM_STATUSES",
    "FAILED_STATUSES",
    "HOOK_STATUSES",
    "KIND_OF_STATUS",
    "NOT_RUN_STATUSES",
    "RECORD_KINDS",
    "RUN_STATUSES",
    "STATUSES",
    "STATUS_OF_KIND",
    "ExecutionRecord",
    "JobStats",
    "SchedulerStats",
    "Status",
]

Status = Literal[
    "success",
    "failure",
    "timeout",
    "cancelled",
    "skipped",
    "missed",
    "coalesced",
    "interrupted",
    "uncertain",
    "profile_failed",
    "before_failed",
    "after_failed",
]

#: Event kind of each record status.
KIND_OF_STATUS: Final[dict[str, str]] = {
    "success": "job.succeeded",
    "failure": "job.failed",
    "timeout": "job.timed_out",
    "cancelled": "job.cancelled",
    "skipped": "job.skipped",
    "missed": "job.missed",
    "coalesced": "job.coalesced",
    "interrupted": "job.interrupted",
    "uncertain": "job.uncertain",
    "profile_failed": "job.profile_failed",
    "before_failed": "job.before_failed",
    "after_failed": "job.after_failed",
}
#: Record status of each record event kind.
STATUS_OF_KIND: Final[dict[str, str]] = {v: k for k, v in KIND_OF_STATUS.items()}
#: Every record status.
STATUSES: Final[tuple[str, ...]] = tuple(KIND_OF_STATUS)
#: Statuses of a run's hooks failing (see `_hooks.py`): the profile or a ``before`` hook
#: (the action was not called), or an ``after`` hook (the action succeeded).
HOOK_STATUSES: Final[frozenset[str]] = frozenset(
    {"profile_failed", "before_failed", "after_failed"}
)
#: Statuses of fire times that actually ran (or were running): their start is recorded.
RUN_STATUSES: Final[frozenset[str]] = frozenset(
    {"success", "failure", "timeout", "cancelled", "interrupted"} | HOOK_STATUSES
)
#: Run statuses counted as failed in the statistics.
FAILED_STATUSES: Final[frozenset[str]] = frozenset({"failure", "timeout"} | HOOK_STATUSES)
#: Statuses of fire times that certainly did not run.
NOT_RUN_STATUSES: Final[frozenset[str]] = frozenset({"skipped", "missed", "coalesced"})
#: Statuses that call failure handlers by default.
ALARM_STATUSES: Final[frozenset[str]] = frozenset(
    {"failure", "timeout", "interrupted", "uncertain"} | HOOK_STATUSES
)

for _kind, _doc in (
    ("job.added", "a job was added; payload: its JSON definition"),
    ("job.updated", "a job definition changed; payload: the changed fields"),
    ("job.removed", "a job was removed"),
    ("job.paused", "a job was paused (its fire times are skipped until resumed)"),
    ("job.resumed", "a paused job was resumed"),
    ("job.queued", "a fire time waits for the previous run (conflict policy 'queue')"),
    ("job.started", "a job run started; payload: run, scheduled, late, manual"),
    ("job.succeeded", "a job run returned; payload: result, duration (a record)"),
    ("job.failed", "a job run raised; payload: error, message, traceback (a record)"),
    ("job.timed_out", "a job run exceeded its timeout and was cancelled (a record)"),
    ("job.cancelled", "a job run was cancelled (engine stop, panic) (a record)"),
    ("job.skipped", "fire time(s) skipped: conflict, queue full, paused, max_executions"),
    ("job.missed", "fire time(s) later than the misfire grace (a record)"),
    ("job.coalesced", "fire time(s) merged into another run of the same job (a record)"),
    ("job.interrupted", "a run or queued fire time in flight when the process died (a record)"),
    ("job.uncertain", "fire time(s) that may have run: their start was not durable at a crash"),
    ("job.profile_failed", "a run's profile failed to apply; its action was not called"),
    ("job.before_failed", "a run's before hook raised; its action was not called"),
    ("job.after_failed", "a run's after hook raised after its action succeeded"),
    ("scheduler.paused", "the scheduler stopped starting jobs"),
    ("scheduler.resumed", "the scheduler started jobs again"),
    ("scheduler.alarm_failed", "a failure handler raised; the scheduler carried on"),
    ("scheduler.purged", "old execution records were deleted (retention)"),
    ("scheduler.quarantined", "a stored job could not be loaded; it stays in the file, unused"),
    ("scheduler.restored", "jobs were restored from a store; payload: counts"),
):
    reserve_kind(_kind, _doc)

#: Kinds that carry an execution record.
RECORD_KINDS: Final[frozenset[str]] = frozenset(STATUS_OF_KIND)


def _dt(ts: Any) -> datetime | None:
    # Tolerant: a record read back from an old or odd file shows what it can.
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        return None
    try:
        return datetime.fromtimestamp(ts, UTC)
    except (OverflowError, OSError, ValueError):
        return None


T = TypeVar("T", int, float, str)


def _opt(value: Any, kind: type[T]) -> T | None:
    """`value` if it is of `kind` (an int counts as a float), else None."""
    if isinstance(value, bool):
        return None
    if kind is float and isinstance(value, int):
        return kind(value)
    return value if isinstance(value, kind) else None


class ExecutionRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of one fire time (or of a run of consecutive ones that did not run).

    Attributes:
        job_id: the job.
        status: success, failure, timeout, cancelled, interrupted (ran, or was running), skipped,
            missed, coalesced (did not run), uncertain (may have run: see the module doc).
        scheduled: the fire time (aware UTC); for a manual run, when it was requested.
        last: the last fire time covered (equal to `scheduled` for single fire times).
        count: how many fire times this record covers (1 for runs).
        count_exact: False when `count` is a lower bound: a backlog of more fire times than
            the scheduler walks one by one, of a trigger it cannot count in closed form.
        manual: True for a run requested with `Scheduler.run_job`.
        run: the run's id (sequence number of its first event), None for fire times not run.
        started, ended: wall times of the run (None when it did not run / is unknown).
        duration: seconds the run took (monotonic), or None.
        result: the action's return value as JSON (or ``{"repr": ...}``).
        error, message, traceback: why a run failed.
        reason: why a fire time did not run (or was interrupted).
        hook: the profile or hook whose failure set a ``*_failed`` status (or, on a failed
            action, the ``after`` hook that failed too: see `reason`).
        seq: the record's event sequence number in the Log: its stable id (`id`), for
            `Scheduler.execution`.
    """

    job_id: str
    status: str
    scheduled: datetime
    last: datetime
    count: int = 1
    count_exact: bool = True
    manual: bool = False
    run: int | None = None
    started: datetime | None = None
    ended: datetime | None = None
    duration: float | None = None
    result: Any = None
    error: str | None = None
    message: str | None = None
    traceback: str | None = None
    reason: str | None = None
    hook: str | None = None
    seq: int = 0

    @property
    def id(self) -> int:
        """The record's stable id (its event sequence number; `Scheduler.execution(id)`)."""
        return self.seq

    @classmethod
    def from_event(cls, event: Event) -> ExecutionRecord:
        """The record carried by a ``job.<outcome>`` event."""
        p = event.payload
        status = STATUS_OF_KIND.get(event.kind)
        if status is None:
            raise ValueError(f"event {event.kind!r} is not an execution record")
        scheduled = _dt(p.get("scheduled")) or event.at
        count = p.get("count", 1)
        return cls(
            job_id=event.subject,
            status=status,
            scheduled=scheduled,
            last=_dt(p.get("last")) or scheduled,
            count=count if type(count) is int else 1,
            count_exact=p.get("count_exact", True) is not False,
            manual=p.get("manual") is True,
            run=_opt(p.get("run"), int),
            started=_dt(p.get("started")),
            ended=_dt(p.get("ended")),
            duration=_opt(p.get("duration"), float),
            result=p.get("result"),
            error=_opt(p.get("error"), str),
            message=_opt(p.get("message"), str),
            traceback=_opt(p.get("traceback"), str),
            reason=_opt(p.get("reason"), str),
            hook=_opt(p.get("hook"), str),
            seq=event.seq,
        )


class JobStats(msgspec.Struct, frozen=True, kw_only=True):
    """History figures for one job over its whole life: its execution records still kept,
    plus the lifetime totals of those the retention deleted (see docs/scheduler.md).

    Attributes:
        job_id: the job.
        total: fire times recorded (a record covering n fire times counts n).
        runs: fire times that ran (every run status: success, failure, timeout, cancelled,
            interrupted, profile_failed, before_failed, after_failed).
        by_status: fire-time count per status.
        succeeded, failed: shortcuts into `by_status` (failed: failure, timeout and the
            hook statuses).
        mean_duration, min_duration, max_duration: over finished runs (seconds), None if none.
        last_run: the newest record of a run, or None.
        next_run: the next fire time, or None (paused, finished).
        kept: fire times whose records are still in the history (the rest were purged and
            live on in the totals only).
    """

    job_id: str
    total: int
    runs: int
    by_status: dict[str, int]
    succeeded: int
    failed: int
    mean_duration: float | None
    min_duration: float | None
    max_duration: float | None
    last_run: ExecutionRecord | None
    next_run: datetime | None
    kept: int = 0


class SchedulerStats(msgspec.Struct, frozen=True, kw_only=True):
    """Figures for the whole scheduler.

    Attributes:
        jobs, enabled, disabled: job counts.
        running: runs in progress now.
        today: fire-time count per status since midnight (in the `tz` asked for).
        jobs_by_tag: job count per tag.
        upcoming: the next fire times, earliest first, as ``(job_id, when)``.
        paused: True while the whole scheduler is paused.
    """

    jobs: int
    enabled: int
    disabled: int
    running: int
    today: dict[str, int]
    jobs_by_tag: dict[str, int]
    upcoming: list[tuple[str, datetime]]
    paused: bool
