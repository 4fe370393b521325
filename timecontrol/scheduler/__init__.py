"""The job scheduler: persistent jobs with conflict, misfire and coalesce policies.

The engine owns one `Scheduler` (``engine.scheduler``; ``Scheduler(engine)`` returns it). It
keeps jobs (an action, JSON arguments, a trigger, policies), runs them through the engine's
dispatcher, and records one execution record per fire time on the Log, from which history,
statistics and alarms are read. With a SQLite store the jobs, their state and their history
survive restarts and crashes. See ``docs/scheduler.md``.
"""

from __future__ import annotations

from ._alarms import AlarmHandler
from ._errors import (
    ActionNotAllowedError,
    DuplicateJobError,
    JobArgumentsError,
    JobNotFoundError,
    JobOptionError,
    JobSpecError,
    PolicyError,
    SchedulerError,
    SchedulerLockedError,
)
from ._host import JobHost
from ._job import (
    COALESCE_POLICIES,
    CONFLICT_POLICIES,
    Coalesce,
    Conflict,
    Job,
    JobChanges,
    JobSpec,
    TriggerLike,
)
from ._records import ALARM_STATUSES, STATUSES, ExecutionRecord, JobStats, SchedulerStats
from ._scheduler import JobOptions, Scheduler

__all__ = [
    "ALARM_STATUSES",
    "COALESCE_POLICIES",
    "CONFLICT_POLICIES",
    "STATUSES",
    "ActionNotAllowedError",
    "AlarmHandler",
    "Coalesce",
    "Conflict",
    "DuplicateJobError",
    "ExecutionRecord",
    "Job",
    "JobArgumentsError",
    "JobChanges",
    "JobHost",
    "JobNotFoundError",
    "JobOptionError",
    "JobOptions",
    "JobSpec",
    "JobSpecError",
    "JobStats",
    "PolicyError",
    "Scheduler",
    "SchedulerError",
    "SchedulerLockedError",
    "SchedulerStats",
    "TriggerLike",
]
