"""The job scheduler: persistent jobs with conflict, misfire and coalesce policies.

``Scheduler(engine)`` keeps jobs (an action, JSON arguments, a trigger, policies), runs them
through the engine's loop, and records one execution record per fire time on the Log, from
which history, statistics and alarms are read. With a SQLite store the jobs, their state and
their history survive restarts. See ``docs/scheduler.md``.
"""

from __future__ import annotations

from ._errors import (
    DuplicateJobError,
    JobArgumentsError,
    JobNotFoundError,
    JobSpecError,
    PolicyError,
    SchedulerError,
    SchedulerLockedError,
)
from ._job import COALESCE_POLICIES, CONFLICT_POLICIES, Job, TriggerLike
from ._records import ALARM_STATUSES, STATUSES, ExecutionRecord, JobStats, SchedulerStats
from ._scheduler import AlarmHandler, JobOptions, Scheduler

__all__ = [
    "ALARM_STATUSES",
    "COALESCE_POLICIES",
    "CONFLICT_POLICIES",
    "STATUSES",
    "AlarmHandler",
    "DuplicateJobError",
    "ExecutionRecord",
    "Job",
    "JobArgumentsError",
    "JobNotFoundError",
    "JobOptions",
    "JobSpecError",
    "JobStats",
    "PolicyError",
    "Scheduler",
    "SchedulerError",
    "SchedulerLockedError",
    "SchedulerStats",
    "TriggerLike",
]
