"""Alarms: failure handlers fed by a subscription to the Log, never called on the fire path.

The fire path only writes execution records. While handlers are registered and dispatch
runs, `Alarms` keeps one subscription to the record kinds and one task (in the host's
service group, not counted as a running action) that reads it and calls the matching
handlers, in record order. A handler
that raises is recorded as ``scheduler.alarm_failed``; the scheduler carries on. Handlers live
in memory: register them again after a restart.
"""

from __future__ import annotations

import traceback as tb_module
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING, Final

from ._errors import JobSpecError
from ._job import Job
from ._records import RECORD_KINDS, STATUS_OF_KIND, STATUSES, ExecutionRecord

if TYPE_CHECKING:
    from .._events import Event
    from .._log import Log, Subscription
    from ._host import JobHost

__all__ = ["AlarmHandler", "Alarms", "check_statuses"]

#: A failure handler: called with the job and its execution record; may be async.
AlarmHandler = Callable[[Job, ExecutionRecord], Awaitable[None] | None]

# Jobs removed recently, whose last records may still reach a handler.
_REMEMBER: Final = 256


def _safe(text: str) -> str:
    """`text` that UTF-8 can store (a lone surrogate escaped)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def check_statuses(statuses: Collection[str]) -> frozenset[str]:
    """`statuses` as a set, every one a record status (`JobSpecError` otherwise)."""
    if isinstance(statuses, str) or not isinstance(statuses, Collection):
        raise JobSpecError(f"statuses must be a list of statuses, got {statuses!r:.200}")
    chosen = frozenset(statuses)
    bad = chosen - set(STATUSES)
    if bad:
        raise JobSpecError(
            f"unknown status(es) {', '.join(sorted(map(repr, bad)))}; expected {list(STATUSES)}"
        )
    return chosen


class Alarms:
    """The failure handlers of one scheduler and the feed that calls them."""

    def __init__(self, host: JobHost, job_of: Callable[[str], Job | None]) -> None:
        self._host = host
        self._job_of = job_of
        self.handlers: list[tuple[AlarmHandler, str | None, frozenset[str]]] = []
        self._removed: OrderedDict[str, Job] = OrderedDict()
        self._feed: Subscription | None = None
        self._log: Log | None = None  # where the feed reads (None: dispatch is not running)
        self._reading = False

    def add(self, handler: AlarmHandler, job_id: str | None, statuses: Collection[str]) -> None:
        """Register `handler` (checked first: nothing changes on bad input)."""
        chosen = check_statuses(statuses)
        if not callable(handler):
            raise JobSpecError(f"failure handler {handler!r:.200} is not callable")
        if job_id is not None and not isinstance(job_id, str):
            raise JobSpecError(f"job_id must be a job id (str) or None, got {job_id!r:.200}")
        self.handlers.append((handler, job_id, chosen))
        if self._log is not None:
            self._open(self._log)

    def forget(self, job: Job) -> None:
        """A job was removed: drop its own handlers; remember it for its last records."""
        self.handlers = [h for h in self.handlers if h[1] != job.id]
        self._removed[job.id] = job
        while len(self._removed) > _REMEMBER:
            self._removed.popitem(last=False)

    def start(self, log: Log) -> None:
        """Dispatch runs, on `log`: read its records while there are handlers."""
        self._log = log
        self._open(log)

    def stop(self) -> None:
        """Dispatch stops: end the feed (its task ends with it)."""
        self._log = None
        feed, self._feed = self._feed, None
        if feed is not None:
            feed.close()

    def _open(self, log: Log) -> None:
        if self._feed is None and self.handlers and not log.closed:
            self._feed = log.subscribe(kinds=RECORD_KINDS)
        group = self._host.service_group
        if self._feed is not None and not self._reading and group is not None:
            self._reading = True
            group.start_soon(self.read, name="timecontrol-scheduler-alarms")

    async def read(self) -> None:
        """The feed's task: call the handlers for each record, in order, until it closes."""
        feed = self._feed
        try:
            while feed is not None:
                try:
                    event = await feed.get()
                except StopAsyncIteration:
                    return
                await self._deliver(event)
                feed = self._feed
        finally:
            self._reading = False

    async def _deliver(self, event: Event) -> None:
        status = STATUS_OF_KIND[event.kind]
        job_id = event.subject
        matching = [
            (h, only)
            for h, only, statuses in self.handlers
            if status in statuses and (only is None or only == job_id)
        ]
        if not matching:
            return
        job = self._job_of(job_id) or self._removed.get(job_id)
        if job is None:
            return
        # A job with alarm=False reaches only the handlers registered for it by id.
        handlers = [h for h, only in matching if job.alarm or only is not None]
        if not handlers:
            return
        record = ExecutionRecord.from_event(event)
        for handler in handlers:
            try:
                outcome = handler(job, record)
                if outcome is not None:
                    await outcome
            except Exception as exc:
                self._failed(handler, job, record, exc)

    def _failed(
        self, handler: AlarmHandler, job: Job, record: ExecutionRecord, exc: Exception
    ) -> None:
        # A broken handler must never stop the scheduler: record it and go on.
        log = self._log
        if log is None or log.closed:
            return
        log._emit(
            "scheduler.alarm_failed",
            job.id,
            {
                "handler": getattr(handler, "__qualname__", repr(handler)),
                "record": record.seq,
                "error": type(exc).__name__,
                "message": _safe(str(exc)),
                "traceback": _safe("".join(tb_module.format_exception(exc))),
            },
        )
