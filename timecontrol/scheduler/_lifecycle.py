"""The scheduler's lifecycle, driven by its owner: attach to a Log, start, stop.

* ``_attach()``: the owner opened a Log. With a SQLite store the first attach loads its jobs
  (`_persist.restore`); a later one (a restart in this process) writes ours to it instead,
  memory being the newer truth. In memory nothing needs loading.
* ``_started()``: dispatch runs. What the last process left is settled (interrupted runs,
  uncertain fire times, quarantined jobs reported), jobs added without a clock get their
  first fire time, and every enabled job's chain is submitted; fire times missed meanwhile
  are settled by the fire path, by each job's misfire and coalesce policies.
* ``await _stopping()``: before the Log closes. Chains and queued fire times are withdrawn
  (queued ones recorded as cancelled), definitions and state flushed, and, when no run is
  in flight, the store marked clean (no start horizon to honour after this).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import msgspec

from .._exceptions import StoreError, StoreReadOnlyError
from ..stores._jobs import JobStore
from ..stores._sqlite import SQLiteLog
from ._fire import FirePath
from ._persist import Persistence, restore, settle_crash

if TYPE_CHECKING:
    from .._log import Log
    from ._state import JobState

__all__ = ["Lifecycle"]

_json = msgspec.json.Encoder()


class Lifecycle(FirePath):
    """The lifecycle hooks of the scheduler (see the module docstring)."""

    _loaded: bool
    _attached: bool

    def _attach(self) -> None:
        """The owner opened a Log: with a SQLite store, load its jobs (the first time) or
        write ours to it (a restart in this process: memory is the newer truth)."""
        log = self._host.log
        if log is self._log and self._attached:
            return
        sink = log.sink
        persist = Persistence(JobStore(sink)) if isinstance(sink, SQLiteLog) else None
        if persist is not None:
            if self._loaded:
                self._resync(persist, log)
            else:
                restore(self, persist)  # raises (StoreVersionError...) before any change
        self._loaded = True
        self._log, self._attached, self._persist = log, True, persist
        self._horizon = math.inf if persist is None else -math.inf
        self._renew_at = math.inf

    def _ensure_attached(self) -> None:
        """Have the host open its Log if nobody has yet (the owner then calls `_attach`), so
        that jobs kept in its store are here before anything is asked of them."""
        if self._attached:
            return
        log = self._host.log
        if not self._attached and not log.closed:
            self._attach()  # (a host that does not call the hook itself)

    def _check_writable(self) -> None:
        """`StoreReadOnlyError` before a change to jobs kept in a store opened read-only."""
        self._ensure_attached()
        persist = self._persist
        if persist is not None and persist.store.readonly:
            raise StoreReadOnlyError(
                f"the jobs of {str(persist.store.path)!r} are read-only here (the store was "
                "opened with readonly=True): open it for writing to change them"
            )

    def _resync(self, persist: Persistence, log: Log) -> None:
        stored = persist.store.load(()).specs
        now = self._now_or(0.0) or 0.0
        for job_id in stored:
            if job_id not in self._jobs and job_id not in self._quarantined:
                persist.store.delete_job(job_id)
        for st in self._jobs.values():
            persist.store.put_job(st.job.id, _json.encode(st.job.to_json()), now)
            if not st.needs_first:
                inflight = _json.encode(st.inflight).decode() if st.inflight else "{}"
                row = (st.job.id, st.next, st.runs, inflight, log.last_seq)
                persist.store.push_state(row)

    def _started(self) -> None:
        """Dispatch runs: settle what the last process left, then resume every job."""
        now = self._clock.time()
        self._dispatching = True
        self._renew_queued = False
        log = self._log
        if log is None or not self._attached:
            self._attach()
            log = self._log
        assert log is not None
        self._alarms.start(log)
        persist = self._persist
        if persist is not None:
            settle_crash(self, persist, now)
            for job_id in persist.unreported:
                reason = self._quarantined.get(job_id, "")
                log._emit("scheduler.quarantined", job_id, {"reason": reason})
            if any(persist.report.values()):  # (a new file: nothing to say)
                log._emit("scheduler.restored", "scheduler", persist.report)
            persist.report = {}
            persist.unreported.clear()
        for job_id in sorted(self._unannounced):
            st = self._jobs.get(job_id)
            if st is not None:
                log._emit("job.added", job_id, {"spec": st.job.to_json(), "next": st.next})
        self._unannounced.clear()
        for st in list(self._jobs.values()):
            if st.needs_first:
                st.needs_first = False
                st.next = self._guarded_first(st, now)
                self._put(st, now)
                self._push(st)
            if st.job.enabled and st.next is not None and not st.intent_seq:
                self._set_next(st, st.next)  # overdue ones settle at once, by policy

    def _guarded_first(self, st: JobState, now: float) -> float | None:
        try:
            return self._after(st, now)
        except Exception as exc:  # a trigger that fails here pauses its job, visibly
            self._trigger_failed(st, now, exc)
            return None

    async def _stopping(self) -> None:
        """Dispatch stops and the Log will close: cancel what is queued, flush, detach."""
        self._dispatching = False
        self._alarms.stop()
        for st in self._jobs.values():
            self._cancel_intent(st)
        self._parked.clear()
        for seq, (job_id, ref, manual, fire) in list(self._side.items()):
            self._host.schedule.cancel(seq)
            owner = self._jobs.get(job_id)
            if owner is not None and self._log is not None and not self._log.closed:
                why = "the engine stopped before this fire time ran"
                self._finish_unstarted(owner, ref, fire, manual, why)
        self._side.clear()
        persist, self._persist = self._persist, None
        self._attached = False
        self._horizon = self._renew_at = math.inf
        if persist is not None:
            try:
                await persist.store.flush()
                if not any(st.inflight for st in self._jobs.values()):
                    await persist.store.mark_clean()  # every start so far is on disk
            except StoreError:
                pass  # the writer failed; a restart replays what reached the file

    async def flush(self) -> None:
        """Make job definitions and state written so far durable (no-op in memory)."""
        if self._persist is not None:
            await self._persist.store.flush()

    async def aclose(self) -> None:
        """Flush, and detach from the store unless dispatch runs (what `_stopping` does
        when the engine stops); idempotent. Kept for code that closed a scheduler itself."""
        if self._dispatching:
            await self.flush()
        elif self._attached:
            await self._stopping()

    def close(self) -> None:
        """Detach from the store without flushing (after its Log was closed); a no-op
        while dispatch runs. Idempotent."""
        if not self._dispatching:
            self._alarms.stop()
            self._persist = None
            self._attached = False
