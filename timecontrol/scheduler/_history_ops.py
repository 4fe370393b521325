"""The scheduler's read side: jobs by id, runs in progress, records, history and statistics.

Everything here reads the Log (its durable store when there is one) and, for the lifetime
totals of records the retention deleted, the store's ``scheduler_totals`` (`_retention.py`).
Hooks are registered here too (`hook`), being the other per-scheduler registry.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, overload

from .._exceptions import EngineStateError
from ._alarms import AlarmHandler, check_statuses
from ._core import utc
from ._errors import ExecutionNotFoundError, JobNotFoundError, JobSpecError
from ._history import job_stats, midnight, read_history, today_by_status
from ._history import upcoming as next_fire_times
from ._hooks import H, HookRegistry
from ._records import (
    ALARM_STATUSES,
    KIND_OF_STATUS,
    RECORD_KINDS,
    RUN_STATUSES,
    ExecutionRecord,
    JobStats,
    SchedulerStats,
)
from ._retention import RetentionOps

if TYPE_CHECKING:
    from .._log import Log
    from ..stores._totals import TotalsRow
    from ._state import JobState

__all__ = ["HistoryOps"]


class HistoryOps(RetentionOps):
    """Reads: jobs by id, runs in progress, records, history, statistics (module doc)."""

    _hooks: HookRegistry

    @property
    def log(self) -> Log:
        """The Log the records go to (the host's current one)."""
        return self._log if self._log is not None else self._host.log

    def _get(self, job_id: object) -> JobState:
        self._ensure_attached()
        st = self._jobs.get(job_id) if isinstance(job_id, str) else None
        if st is None:
            raise JobNotFoundError(
                f"no job with id {job_id!r:.200}; jobs: {sorted(self._jobs)[:20]}"
                + (f" (quarantined: {sorted(self._quarantined)[:20]})" if self._quarantined else "")
            )
        return st

    def next_run(self, job_id: str) -> datetime | None:
        """A job's next fire time (None when paused, finished or not yet scheduled)."""
        st = self._get(job_id)
        return utc(st.next) if st.job.enabled else None

    def running(self) -> dict[str, int]:
        """Runs in progress, per job id (jobs with none are left out)."""
        return {
            job_id: n
            for job_id, st in self._jobs.items()
            if (n := sum(1 for v in st.inflight.values() if v[2] is not None))
        }

    # -- hooks ----------------------------------------------------------------------------------

    @overload
    def hook(self, fn: H, /, *, name: str | None = None) -> H: ...
    @overload
    def hook(self, fn: None = None, /, *, name: str | None = None) -> Callable[[H], H]: ...
    def hook(self, fn: H | None = None, /, *, name: str | None = None) -> H | Callable[[H], H]:
        """Register an async function as a hook (a profile, a ``before`` or ``after`` hook)
        under `name` (default: its own name): ``async def hook(run: HookRun, **params)``.

        Use it as ``@scheduler.hook`` or ``@scheduler.hook(name="high_res")``. Hooks live in
        memory: register them again at each start, before declaring the jobs that use them.
        """

        def register(f: H) -> H:
            return self._hooks.register(f, name)

        return register if fn is None else register(fn)

    @property
    def hooks(self) -> dict[str, Callable[..., object]]:
        """The registered hooks by name (a copy)."""
        return dict(self._hooks.hooks)

    # -- records --------------------------------------------------------------------------------

    async def wait_job(
        self, job_id: str, statuses: Collection[str] = tuple(sorted(RUN_STATUSES))
    ) -> ExecutionRecord:
        """Wait for the job's next record with one of `statuses` (default: a finished run).

        Reads the Log's records as they come (`Log.subscribe`); raises `EngineStateError` if
        the Log closes (the engine stopped) first.
        """
        self._get(job_id)
        wanted = [KIND_OF_STATUS[s] for s in sorted(check_statuses(statuses))]
        async with self.log.subscribe(kinds=wanted, subjects=job_id) as feed:
            async for event in feed:
                return ExecutionRecord.from_event(event)
        raise EngineStateError(
            f"the engine stopped before job {job_id!r} recorded one of {sorted(statuses)}"
        )

    def on_failure(
        self,
        handler: AlarmHandler,
        *,
        job_id: str | None = None,
        statuses: Collection[str] = ALARM_STATUSES,
    ) -> AlarmHandler:
        """Call `handler(job, record)` for records with `statuses` (default `ALARM_STATUSES`:
        failure, timeout, interrupted, uncertain, profile_failed, before_failed,
        after_failed), of one job or of all. It may be async; it runs in a task of its own,
        after the record is on the Log. If it raises, the error is recorded as
        ``scheduler.alarm_failed`` and the scheduler carries on. Returns `handler`.
        """
        self._alarms.add(handler, job_id, statuses)
        return handler

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
        return await read_history(
            self.log,
            job_id,
            statuses=statuses,
            since=since,
            until=until,
            limit=limit,
            newest_first=newest_first,
        )

    async def execution(self, record_id: int) -> ExecutionRecord:
        """The execution record with id `record_id` (`ExecutionRecord.id`).

        Raises `ExecutionNotFoundError` for an id that is no record: never recorded, or
        deleted by the retention (records older than it are gone; their totals are kept).
        """
        if isinstance(record_id, bool) or not isinstance(record_id, int) or record_id < 1:
            raise JobSpecError(
                f"an execution id is a positive int (ExecutionRecord.id), got {record_id!r:.100}"
            )
        self._ensure_attached()
        persist = self._persist
        if persist is not None:
            await persist.store.flush()
            event = await persist.store.event(record_id, RECORD_KINDS)
        else:
            found = [e for e in self.log.recent(kinds=RECORD_KINDS) if e.seq == record_id]
            event = found[0] if found else None
        if event is None:
            raise ExecutionNotFoundError(
                f"no execution record with id {record_id}; ids are ExecutionRecord.id of "
                f"records still kept (up to {self.log.last_seq}; records older than the "
                "retention are deleted)"
            )
        return ExecutionRecord.from_event(event)

    async def job_stats(self, job_id: str) -> JobStats:
        """Lifetime figures of one job: totals, counts per status, durations, last run and
        next run -- its records still kept plus the totals of those the retention deleted."""
        self._get(job_id)
        persist = self._persist
        async with self._lock():
            records = await self.history(job_id)
            folded: list[TotalsRow] = [] if persist is None else await persist.store.totals(job_id)
        return job_stats(job_id, records, self.next_run(job_id), folded)

    async def stats(self, *, upcoming: int = 10, tz: tzinfo = UTC) -> SchedulerStats:
        """Figures for the whole scheduler; `today` starts at midnight in `tz`."""
        soon = next_fire_times(self._jobs, upcoming)
        since = midnight(self._clock.now(), tz)
        today = today_by_status(await self.history(since=since))
        by_tag: dict[str, int] = {}
        enabled = 0
        for st in self._jobs.values():
            enabled += st.job.enabled
            for tag in st.job.tags:
                by_tag[tag] = by_tag.get(tag, 0) + 1
        return SchedulerStats(
            jobs=len(self._jobs),
            enabled=enabled,
            disabled=len(self._jobs) - enabled,
            running=sum(self.running().values()),
            today=today,
            jobs_by_tag=by_tag,
            upcoming=soon,
            paused=self._paused,
        )
