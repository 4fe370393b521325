"""History and statistics, read from the Log (the durable store when there is one).

Nothing here keeps a second truth: every figure is computed from execution records, and
from the lifetime totals of the records the retention deleted (folded from those very
records in the transaction that deleted them: `timecontrol.stores._totals`).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from .._events import event_from_row
from .._exceptions import TimeControlError
from ._alarms import check_statuses
from ._errors import JobSpecError
from ._records import (
    FAILED_STATUSES,
    KIND_OF_STATUS,
    RUN_STATUSES,
    STATUSES,
    ExecutionRecord,
    JobStats,
)

if TYPE_CHECKING:
    from .._log import Log
    from ..stores._totals import TotalsRow
    from ._state import JobState

__all__ = ["job_stats", "older_than_seconds", "read_history", "today_by_status", "upcoming"]


async def read_history(
    log: Log,
    job_id: str | None,
    *,
    statuses: Collection[str] | None,
    since: datetime | float | None,
    until: datetime | float | None,
    limit: int | None,
    newest_first: bool,
) -> list[ExecutionRecord]:
    """Execution records from `log` (its durable sink when there is one)."""
    wanted = STATUSES if statuses is None else tuple(check_statuses(statuses))
    if job_id is not None and not isinstance(job_id, str):
        raise JobSpecError(f"job_id must be a job id (str) or None, got {job_id!r:.200}")
    events = await log.query(
        kinds=[KIND_OF_STATUS[s] for s in wanted],
        subjects=None if job_id is None else [job_id],
        since=since,
        until=until,
        limit=limit,
        newest_first=newest_first,
    )
    return [ExecutionRecord.from_event(e) for e in events]


def job_stats(
    job_id: str,
    records: list[ExecutionRecord],
    next_run: datetime | None,
    folded: Sequence[TotalsRow] = (),
) -> JobStats:
    """Totals, counts per status, durations, last run and next run of one job: its `records`
    still kept plus the `folded` totals of those the retention deleted (`_retention.py`)."""
    by_status: dict[str, int] = {}
    dur_sum, dur_n = 0.0, 0
    lo, hi = math.inf, -math.inf
    last_run: ExecutionRecord | None = None
    for record in records:
        by_status[record.status] = by_status.get(record.status, 0) + record.count
        if record.status in RUN_STATUSES:
            if record.duration is not None and record.status != "interrupted":
                dur_sum, dur_n = dur_sum + record.duration, dur_n + 1
                lo, hi = min(lo, record.duration), max(hi, record.duration)
            if last_run is None or record.seq > last_run.seq:
                last_run = record
    kept = sum(by_status.values())
    for status, count, f_sum, f_n, f_min, f_max, _, last in folded:
        by_status[status] = by_status.get(status, 0) + count
        if status in RUN_STATUSES and status != "interrupted" and f_n:
            dur_sum, dur_n = dur_sum + f_sum, dur_n + f_n
            lo = min(lo, lo if f_min is None else f_min)
            hi = max(hi, hi if f_max is None else f_max)
        if status in RUN_STATUSES:
            last_run = _newest(last_run, last)
    runs = sum(n for s, n in by_status.items() if s in RUN_STATUSES)
    return JobStats(
        job_id=job_id,
        total=sum(by_status.values()),
        runs=runs,
        by_status=by_status,
        succeeded=by_status.get("success", 0),
        failed=sum(n for s, n in by_status.items() if s in FAILED_STATUSES),
        mean_duration=dur_sum / dur_n if dur_n else None,
        min_duration=lo if dur_n else None,
        max_duration=hi if dur_n else None,
        last_run=last_run,
        next_run=next_run,
        kept=kept,
    )


def _newest(current: ExecutionRecord | None, row: list[Any]) -> ExecutionRecord | None:
    """The newer of `current` and the folded record `row` (kept if it cannot be read)."""
    try:
        record = ExecutionRecord.from_event(event_from_row(*row))
    except (TimeControlError, TypeError, ValueError):
        return current
    return record if current is None or record.seq > current.seq else current


def today_by_status(records: Iterable[ExecutionRecord]) -> dict[str, int]:
    """Fire times per status (a record covering n fire times counts n)."""
    today: dict[str, int] = {}
    for record in records:
        today[record.status] = today.get(record.status, 0) + record.count
    return today


def upcoming(jobs: dict[str, JobState], n: int) -> list[tuple[str, datetime]]:
    """The next `n` fire times of enabled jobs, earliest first."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise JobSpecError(f"upcoming must be a non-negative int, got {n!r:.100}")
    soon = heapq.nsmallest(
        n,
        (
            (st.next, job_id)
            for job_id, st in jobs.items()
            if st.job.enabled and st.next is not None
        ),
    )
    return [(job_id, datetime.fromtimestamp(t, UTC)) for t, job_id in soon]


def midnight(now: datetime, tz: tzinfo) -> datetime:
    """The start of `now`'s day in `tz`."""
    if not isinstance(tz, tzinfo):
        raise JobSpecError(f"tz must be a tzinfo (e.g. ZoneInfo('Europe/Berlin')), got {tz!r}")
    local = now.astimezone(tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def older_than_seconds(older_than: timedelta | float) -> float:
    """A retention age in seconds (`JobSpecError` unless a non-negative duration)."""
    seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or seconds < 0
    ):
        raise JobSpecError(f"older_than must be a non-negative duration, got {older_than!r}")
    return float(seconds)
