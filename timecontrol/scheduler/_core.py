"""The scheduler's shared core: its state, the next-fire-time rule, records and write-behind.

`SchedulerCore` holds what every part of the scheduler works on (the jobs, the host, the
attached Log and store) and the few operations they all use. The fire path (`_fire.py`), the
lifecycle (`_lifecycle.py`) and the operations (`_scheduler.py`) build on it, in that order;
persistence (`_persist.py`), alarms (`_alarms.py`), history (`_history.py`) and backlog
arithmetic (`_backlog.py`) are separate objects and functions.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import msgspec

from .._exceptions import TimeControlError
from ._backlog import Backlog, settle
from ._errors import JobSpecError
from ._grid import grid_of, unbound_interval
from ._records import KIND_OF_STATUS
from ._state import JobState

if TYPE_CHECKING:
    from .._clock import Clock
    from .._events import Event
    from .._log import Log
    from ._alarms import Alarms
    from ._host import JobHost
    from ._persist import Persistence

__all__ = ["FIRE", "SchedulerCore", "utc"]

#: The internal action behind every job intent.
FIRE: Final = "timecontrol.job"

_json = msgspec.json.Encoder()
_EMPTY_INFLIGHT: Final = "{}"


def utc(ts: float | None) -> datetime | None:
    """POSIX seconds as an aware UTC datetime (None stays None)."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


class SchedulerCore:
    """State and shared operations of the scheduler (see the module docstring)."""

    _host: JobHost
    _clock: Clock
    _log: Log | None  # the attached Log: between `_attach` and `_stopping`
    _jobs: dict[str, JobState]
    _persist: Persistence | None  # the job store of the attached Log, if it has one
    _alarms: Alarms
    _paused: bool
    _parked: set[str]  # jobs whose chain came due while the scheduler was paused
    _dispatching: bool  # between `_started` and `_stopping`
    _horizon: float  # fire times up to here may start without a commit (see _persist.py)
    _renew_at: float  # past this wall time, extend the horizon ahead of need
    # Catch-up and manual intents in the Schedule: seq -> (job id, run ref, manual, fire).
    _side: dict[int, tuple[str, int | None, bool, float]]
    _allowed: tuple[str, ...]
    _quarantined: dict[str, str]
    _unannounced: set[str]  # jobs added while no Log was attached: announced at start

    # -- time ---------------------------------------------------------------------------------

    def _now_or(self, default: float | None) -> float | None:
        # A virtual clock can only be read inside its loop; outside, the caller decides.
        try:
            now: float = self._clock.time()
        except TimeControlError:
            return default
        return now

    def _live(self) -> float | None:
        """Now, if events can be written now (a Log is attached and the clock readable)."""
        log = self._log
        if log is None or log.closed:
            return None
        return self._now_or(None)

    def _after(self, st: JobState, t: float) -> float | None:
        """The job's first fire time strictly after `t`, within its window, or None."""
        job = st.job
        if job.max_executions is not None and st.runs >= job.max_executions:
            return None
        after = t
        trigger = job.trigger
        if job.start is not None and after < job.start:
            if unbound_interval(trigger):
                # An interval with no anchor of its own runs on the grid of the job's start
                # (binding it one microsecond early put every run at hh:59:59.999999).
                trigger.bind(datetime.fromtimestamp(job.start, UTC))
            # The trigger's own fire time at exactly `start` belongs to the window.
            after = job.start - 1e-6
        if st.grid_for is not trigger:
            st.grid = grid = grid_of(trigger)
            # (An interval without an anchor binds at its first next(): ask again after it.)
            st.grid_for = trigger if grid is not None or not unbound_interval(trigger) else None
        else:
            grid = st.grid
        if grid is not None:
            # A plain interval: the trigger's own arithmetic, minus the datetimes (_grid.py),
            # with the rounding rule below.
            fast = grid.next_after(after, t, st.grid_last)
            if fast is not None:
                st.grid_last = fast
                return None if job.end is not None and fast > job.end else fast
        return self._after_slow(st, after, t)

    def _after_slow(self, st: JobState, after: float, t: float) -> float | None:
        job = st.job
        nxt_dt: datetime | None = job.trigger.next(datetime.fromtimestamp(after, UTC))
        if nxt_dt is None:
            return None
        nxt = nxt_dt.timestamp()
        if nxt <= t:
            # `t` as a datetime was rounded to the microsecond, possibly below the fire time it
            # came from, which the trigger then returns again: ask once more from there.
            nxt_dt = job.trigger.next(nxt_dt)
            if nxt_dt is None:
                return None
            nxt = nxt_dt.timestamp()
        if nxt <= t:
            raise JobSpecError(
                f"trigger {job.trigger!r} of job {job.id!r} returned {nxt_dt.isoformat()}, "
                f"not after {utc(t)}; a trigger must move strictly forwards"
            )
        if job.end is not None and nxt > job.end:
            return None
        return nxt

    def _first_after(self, st: JobState, now: float) -> float | None:
        """`_after` for a job's first fire time, with a trigger's own failure made a
        `JobSpecError` (bad input: the job is not added, or the change not made)."""
        try:
            return self._after(st, now)
        except TimeControlError:
            raise
        except Exception as exc:
            raise JobSpecError(
                f"trigger {st.job.trigger!r:.200} of job {st.job.id!r} failed to give its next "
                f"fire time: {type(exc).__name__}: {exc}"
            ) from None

    def _settle(
        self,
        st: JobState,
        first: float,
        until: float,
        *,
        grace: float | None = None,
        now: float | None = None,
        keep: int = 2,
    ) -> Backlog:
        """The job's fire times from `first` to `until`, split by the misfire rule."""
        after: Callable[[float], float | None] = lambda t: self._after(st, t)  # noqa: E731
        end = st.job.end
        if end is not None and end < until:
            until = max(end, first)  # no fire time lies beyond the window's end
        if st.grid_for is not st.job.trigger:
            self._after(st, first)  # (binds the grid for this trigger)
        grid = st.grid if st.grid_for is st.job.trigger else None
        return settle(after, grid, first, until, grace=grace, now=now, keep=keep)

    # -- the chain ------------------------------------------------------------------------------

    def _set_next(self, st: JobState, nxt: float | None) -> None:
        st.next = nxt
        if nxt is None or not self._dispatching:
            st.intent_seq = 0  # (not dispatching: `_started` submits the chain)
            return
        # Once per run: the host's fast path (name registered, no kwargs).
        st.intent_seq = self._host.submit_trusted(FIRE, nxt, None, st.job.id, 0, "trigger").seq

    def _cancel_intent(self, st: JobState) -> None:
        if st.intent_seq:
            self._host.schedule.cancel(st.intent_seq)
            st.intent_seq = 0

    # -- records --------------------------------------------------------------------------------

    def _record(
        self,
        st: JobState,
        status: str,
        payload: dict[str, Any],
        *,
        plain: bool = False,
        at: tuple[float, float] | None = None,
    ) -> Event | None:
        """Append an execution record (waiters and alarms read it from the Log).

        `plain`: the caller vouches that `payload` is plain JSON (see `Log._append_plain`),
        and `at` gives the (monotonic, wall) time just read for it.
        """
        log = self._log
        if log is None or log.closed:
            return None  # a run that outlived its engine: its start says it was interrupted
        kind = KIND_OF_STATUS[status]
        if not plain:
            return log._emit(kind, st.job.id, payload)
        if at is None:
            return log._append_plain(kind, st.job.id, payload)
        return log._append_plain(kind, st.job.id, payload, at[0], at[1])

    # -- write-behind ---------------------------------------------------------------------------

    def _push(self, st: JobState) -> None:
        persist, log = self._persist, self._log
        if persist is None or log is None or self._jobs.get(st.job.id) is not st:
            return
        inflight = _json.encode(st.inflight).decode() if st.inflight else _EMPTY_INFLIGHT
        persist.store.push_state((st.job.id, st.next, st.runs, inflight, log.last_seq))

    def _put(self, st: JobState, now: float) -> None:
        if self._persist is not None:
            self._persist.store.put_job(st.job.id, _json.encode(st.job.to_json()), now)
