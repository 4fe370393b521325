"""Retention: old execution records are deleted once a day, their lifetime totals kept.

With a SQLite store, execution records (and the ``job.started`` / ``job.queued`` events of
their runs) older than the retention are deleted by an internal daily timer: an intent of
the internal action ``timecontrol.scheduler_retention`` in the engine's Schedule, due once a
day: a day after the last clean-up, which the file remembers (never cleaned: a day after
its oldest event, so an old file is cleaned at start and a new one a day later). It is
armed only while dispatch runs and some job is scheduled, and withdrawn when nothing else is
left in the Schedule, so that an engine whose jobs are done still goes idle.

Each job keeps its records for its own ``retention`` (seconds), else the scheduler's
(`Scheduler.retention`, default 30 days; None keeps them). Before deleting, the records are
folded into lifetime totals, in the same transaction (`timecontrol.stores._totals`), which
`Scheduler.job_stats` adds to the records still kept: totals stay exact across clean-ups
and restarts. In memory nothing is deleted (the Log's bounded ring is the only limit).
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TYPE_CHECKING, Final

import anyio

from ._errors import JobSpecError
from ._history import older_than_seconds
from ._lifecycle import Lifecycle
from ._records import STATUS_OF_KIND

if TYPE_CHECKING:
    from ..stores._totals import PurgeGroup

__all__ = ["DAY", "DEFAULT_RETENTION", "RETENTION", "RetentionOps"]

#: The internal action of the daily clean-up.
RETENTION: Final = "timecontrol.scheduler_retention"
#: Seconds between clean-ups.
DAY: Final = 86400.0
#: How long execution records are kept by default (seconds): 30 days.
DEFAULT_RETENTION: Final = 30 * DAY
# A run's other events, deleted with its records.
_ALSO: Final = frozenset({"job.started", "job.queued"})


def check_retention(value: object) -> float | None:
    """A retention as seconds (None: keep forever); `JobSpecError` unless positive."""
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or seconds <= 0
    ):
        raise JobSpecError(
            f"retention must be a positive duration (a timedelta or seconds) or None, "
            f"got {value!r:.100}"
        )
    return float(seconds)


class RetentionOps(Lifecycle):
    """The retention of execution records (see the module docstring)."""

    _retention: float | None  # the scheduler-wide default, seconds (None: keep)
    _retention_seq: int  # the pending clean-up intent, 0 if none
    _stats_lock: anyio.Lock | None  # purges and statistics never interleave

    @property
    def retention(self) -> float | None:
        """Seconds execution records are kept by default (30 days; None: forever). A job's
        own ``retention`` option overrides it. Settable (a timedelta or seconds)."""
        return self._retention

    @retention.setter
    def retention(self, value: timedelta | float | None) -> None:
        self._retention = check_retention(value)

    def _lock(self) -> anyio.Lock:
        lock = self._stats_lock
        if lock is None:
            lock = self._stats_lock = anyio.Lock()
        return lock

    # -- the daily timer -------------------------------------------------------------------

    def _started(self) -> None:
        super()._started()
        self._stats_lock = None  # (made again on this loop when first needed)
        self._arm_retention()

    async def _stopping(self) -> None:
        self._disarm_retention()
        await super()._stopping()

    def _arm_retention(self, active: bool = False) -> None:
        """Submit the next clean-up if none is pending, dispatch runs, there is a store and
        some job is scheduled (`active`: the caller knows one is)."""
        persist = self._persist
        if self._retention_seq or not self._dispatching or persist is None:
            return
        if persist.store.readonly:
            return
        if not active and not any(
            st.job.enabled and st.next is not None for st in self._jobs.values()
        ):
            return
        now = self._clock.time()
        last = persist.retention_at
        due = now + DAY if last is None else max(now, last + DAY)
        intent = self._host.submit_trusted(RETENTION, due, None, "scheduler", 1, "retention")
        self._retention_seq = intent.seq

    def _disarm_retention(self) -> None:
        if self._retention_seq:
            self._host.schedule.cancel(self._retention_seq)
            self._retention_seq = 0

    def _idle_check(self) -> None:
        """A job's chain ended (or it was paused or removed): if the clean-up is all that is
        left in the Schedule, withdraw it, so that the engine can go idle."""
        if self._retention_seq and len(self._host.schedule) <= 1:
            self._disarm_retention()

    async def _retention_action(self) -> None:
        """The daily clean-up: purge by each job's retention, then arm the next one."""
        self._retention_seq = 0
        persist = self._persist
        if persist is None:
            return
        now = self._clock.time()
        try:
            await self._purge(self._groups(now), auto=now)
        finally:
            if self._persist is persist:
                persist.retention_at = now
                self._arm_retention()

    def _groups(self, now: float) -> list[PurgeGroup]:
        """The purge rules for now: each job's own retention, then the default for the rest
        (records of removed jobs included)."""
        own: dict[float, list[str]] = {}
        for job_id, st in self._jobs.items():
            if st.job.retention is not None:
                own.setdefault(st.job.retention, []).append(job_id)
        groups: list[PurgeGroup] = [(now - r, sorted(ids), ()) for r, ids in sorted(own.items())]
        if self._retention is not None:
            keep = sorted(job_id for ids in own.values() for job_id in ids)
            groups.append((now - self._retention, None, keep))
        return groups

    async def _purge(self, groups: list[PurgeGroup], *, auto: float | None) -> int:
        persist = self._persist
        if persist is None or not groups:
            return 0
        async with self._lock():
            await persist.store.flush()
            count = await persist.store.purge_folding(groups, dict(STATUS_OF_KIND), _ALSO, auto)
        log = self._log
        if log is not None and not log.closed and (count or auto is None):
            payload = {
                "before": max(g[0] for g in groups),
                "deleted": count,
                "auto": auto is not None,
            }
            log._emit("scheduler.purged", "scheduler", payload)
        return count

    async def purge_history(self, older_than: timedelta | float | None = None) -> int:
        """Delete old execution records from the store now; returns how many events were
        deleted (0 without a SQLite store, where the Log's ring already bounds memory).

        `older_than`: delete every job's records older than that; None (default): apply
        the retention (each job's own, else the scheduler's), as the daily clean-up does.
        Deleted records are folded into the lifetime totals first (`job_stats` stays exact).
        """
        now_groups: list[PurgeGroup]
        if older_than is None:
            now_groups = self._groups(self._clock.time())
        else:
            seconds = older_than_seconds(older_than)
            now_groups = [(self._clock.time() - seconds, None, ())]
        return await self._purge(now_groups, auto=None)
