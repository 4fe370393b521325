"""The job scheduler: persistent jobs with conflict, misfire and coalesce policies.

The engine owns one `Scheduler` (``engine.scheduler``; ``Scheduler(engine)`` returns it). It
keeps jobs (an action, JSON arguments, a trigger, policies), runs them through the engine's
dispatcher, and records one execution record per fire time on the Log, from which history,
statistics and alarms are read. With a SQLite store the jobs, their state and their history
survive restarts and crashes. Jobs may apply a profile and run hooks before and after their
action (`Scheduler.hook`); old records are cleaned up daily by the retention while lifetime
totals are kept. See ``docs/scheduler.md``.
"""

from __future__ import annotations

from ._alarms import AlarmHandler
from ._errors import (
    ActionNotAllowedError,
    DuplicateJobError,
    ExecutionNotFoundError,
    JobArgumentsError,
    JobNotFoundError,
    JobOptionError,
    JobSpecError,
    PolicyError,
    SchedulerError,
    SchedulerLockedError,
    UnknownHookError,
)
from ._hooks import Hook, HookRef, HookRun
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
from ._records import (
    ALARM_STATUSES,
    FAILED_STATUSES,
    HOOK_STATUSES,
    RUN_STATUSES,
    STATUSES,
    ExecutionRecord,
    JobStats,
    SchedulerStats,
)
from ._retention import DEFAULT_RETENTION
from ._scheduler import JobOptions, Scheduler

__all__ = [
    "ALARM_STATUSES",
    "COALESCE_POLICIES",
    "CONFLICT_POLICIES",
    "DEFAULT_RETENTION",
    "FAILED_STATUSES",
    "HOOK_STATUSES",
    "RUN_STATUSES",
    "STATUSES",
    "ActionNotAllowedError",
    "AlarmHandler",
    "Coalesce",
    "Conflict",
    "DuplicateJobError",
    "ExecutionNotFoundError",
    "ExecutionRecord",
    "Hook",
    "HookRef",
    "HookRun",
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
    "UnknownHookError",
]
