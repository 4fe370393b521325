"""The scheduler: persistent jobs, their policies, execution records, history and alarms.

`Scheduler` is the public face: its lifecycle (driven by its owner) and its operations.
Every operation checks all of its input before it changes anything, so bad input raises a
`TimeControlError` subclass and leaves no trace: no half-added job, no event, no store row.
The fire path is in `_fire.py`, restore and crash settling in `_persist.py`, alarms in
`_alarms.py`, history in `_history.py`, backlog arithmetic in `_backlog.py`.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Collection
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Unpack
from uuid import uuid4

import msgspec

from .._exceptions import EngineStateError, UnknownActionError
from ._actions import check_arguments, check_modules, import_action
from ._alarms import AlarmHandler, Alarms
from ._core import FIRE
from ._errors import DuplicateJobError, JobArgumentsError, JobSpecError
from ._fire import HORIZON
from ._history_ops import HistoryOps
from ._hooks import HookRegistry
from ._host import Action, JobHost, jsonable
from ._job import Job, JobChanges, JobSpec, check_options, check_text, make_job, replace_job
from ._records import (
    ALARM_STATUSES,
)
from ._retention import DEFAULT_RETENTION, RETENTION, check_retention
from ._state import JobState

if TYPE_CHECKING:
    from .._clock import Clock

__all__ = ["AlarmHandler", "JobOptions", "Scheduler"]


class JobOptions(JobSpec, total=False):
    """The keyword options of `Scheduler.add_job`, for signatures that pass them on."""

    id: str | None
    replace_existing: bool
    reset_state: bool
    on_failure: AlarmHandler | None


# Changes that move a job's next fire time (the others keep it).
_RESCHEDULE = frozenset({"trigger", "start", "end", "max_executions"})
_json = msgspec.json.Encoder()


class Scheduler(HistoryOps):
    """Jobs on a host (the engine's dispatcher): add them, and they run on time, each fire
    time ending in one execution record on the Log.

    Args:
        host: what the scheduler runs on (`JobHost`: the engine's dispatcher). Given the
            `timecontrol.Engine` itself, ``Scheduler(engine)`` returns the engine's own
            scheduler (one per engine).
        allowed_modules: modules (and their submodules) from which a ``"module:qualname"``
            action may be imported; any other reference is refused, and a stored job naming
            one is quarantined. Default: none (actions by registered name only).
        retention: how long execution records are kept by default (a timedelta or seconds;
            30 days; None: forever); a job's own ``retention`` overrides it. With a SQLite
            store older records are deleted daily, their lifetime totals kept (see
            `job_stats` and docs/scheduler.md, "Retention").

    Lifecycle, driven by the owner: ``_attach()`` right after it opened a Log (jobs kept in a
    SQLite store come back), ``_started()`` once dispatch runs (what the last process left
    is settled, every job resumes), ``await _stopping()`` before the Log closes (definitions
    and state are flushed). Stop and start again as often as you like.
    """

    def __new__(cls, host: JobHost, **options: Any) -> Scheduler:
        """The engine's own scheduler for a `timecontrol.Engine`, else a new one."""
        if getattr(host, "_owns_parts", False) is True and hasattr(host, "scheduler"):
            own = host.scheduler
            if isinstance(own, cls):
                own._apply_options(options)
                return own
        return super().__new__(cls)

    def __init__(
        self,
        host: JobHost,
        *,
        allowed_modules: Collection[str] = (),
        retention: timedelta | float | None = DEFAULT_RETENTION,
    ) -> None:
        if "_host" in self.__dict__:
            return  # an engine's own scheduler, handed back by __new__: already set up
        allowed = check_modules(allowed_modules)
        kept = check_retention(retention)
        self._init_state(host, allowed)
        self._retention = kept
        # The scheduler writes its own records (job.*): no action.* events for its wrappers.
        host.intent_action(self._fire, FIRE)
        host.action(self._horizon_action, name=HORIZON, record=False)
        host.action(self._retention_action, name=RETENTION, record=False)

    def _init_state(self, host: JobHost, allowed: tuple[str, ...]) -> None:
        self._host = host
        self._clock = host.clock  # fixed for the host's life; read on every run
        self._log = None
        self._attached = False
        self._loaded = False
        self._jobs = {}
        self._persist = None
        self._alarms = Alarms(host, self._job_or_none)
        self._paused = False
        self._parked = set()
        self._dispatching = False
        self._horizon = math.inf
        self._renew_at = math.inf
        self._side = {}
        self._allowed = allowed
        self._quarantined = {}
        self._unannounced = set()
        self._flushing = None
        self._renew_queued = False
        self._hooks = HookRegistry()
        self._retention = DEFAULT_RETENTION
        self._retention_seq = 0
        self._stats_lock = None

    def _apply_options(self, options: dict[str, Any]) -> None:
        """The options of a ``Scheduler(engine, ...)`` call, for the engine's own scheduler:
        `retention` at any time; `allowed_modules` while it has loaded nothing yet, refused
        (with nothing changed) once it has."""
        check_options(options, ("allowed_modules", "retention"))
        kept = check_retention(options.get("retention", self._retention))
        allowed = check_modules(options.get("allowed_modules", self._allowed))
        if allowed != self._allowed and self._loaded:
            raise JobSpecError(
                f"this engine's scheduler has loaded its jobs with allowed_modules "
                f"{list(self._allowed)}; give allowed_modules={list(allowed)!r} before the "
                "engine opens its store (before it starts or its Log is used)"
            )
        self._allowed, self._retention = allowed, kept

    def _job_or_none(self, job_id: str) -> Job | None:
        st = self._jobs.get(job_id)
        return None if st is None else st.job

    # -- properties -----------------------------------------------------------------------------

    @property
    def host(self) -> JobHost:
        """What the scheduler runs on (the engine's dispatcher)."""
        return self._host

    @property
    def clock(self) -> Clock:
        """The host's clock."""
        return self._clock

    @property
    def paused(self) -> bool:
        """True while the whole scheduler is paused."""
        return self._paused

    @property
    def quarantined(self) -> dict[str, str]:
        """Stored jobs that could not be loaded, with why: kept in the file, not scheduled."""
        self._ensure_attached()
        return dict(self._quarantined)

    @property
    def allowed_modules(self) -> tuple[str, ...]:
        """Modules ``"module:qualname"`` actions may be imported from."""
        return self._allowed

    # -- operations: jobs -----------------------------------------------------------------------

    def add_job(
        self,
        action: str | Action,
        trigger: Any,
        *,
        id: str | None = None,
        replace_existing: bool = False,
        reset_state: bool = False,
        on_failure: AlarmHandler | None = None,
        **spec: Unpack[JobSpec],
    ) -> Job:
        """Add a job and schedule its first fire time; returns its definition.

        `action` is a registered action (name or function) or a ``"module:qualname"``
        reference from `allowed_modules`; `spec.kwargs` must bind to its signature. A
        duplicate `id` raises `DuplicateJobError` unless `replace_existing`: then the job
        keeps its progress (next fire time, runs) and its operator state (paused or not),
        and an identical definition changes nothing -- so a program may declare its jobs at
        every start. `reset_state=True` also applies the declared `enabled` and starts its
        progress afresh. `on_failure` registers a failure handler for this job (in memory:
        register it again after a restart). See `Job` for the options.
        """
        check_options(spec)
        self._check_writable()
        for flag, value in (("replace_existing", replace_existing), ("reset_state", reset_state)):
            if not isinstance(value, bool):
                raise JobSpecError(f"{flag} must be True or False, got {value!r:.100}")
        job_id = uuid4().hex[:12] if id is None else check_text("job id", id)
        name, fn, register = self._action_for(action)
        job = make_job(id=job_id, action=name, trigger=trigger, **spec)
        if fn is not None:
            check_arguments(fn, job.kwargs, f"job {job_id!r}")
        self._hooks.check(job, self._allowed)
        payload = _json_payload(job)
        if on_failure is not None and not callable(on_failure):
            raise JobSpecError(f"on_failure {on_failure!r:.200} is not callable")
        existing = self._jobs.get(job_id)
        if existing is not None and not replace_existing:
            raise DuplicateJobError(
                f"a job with id {job_id!r} already exists; pass replace_existing=True to "
                "replace it, or another id"
            )
        if existing is not None:
            if not reset_state:
                job = msgspec.structs.replace(job, enabled=existing.job.enabled)
            plan = self._plan(existing, job, reset_state)
            if register is not None:
                self._host.action(register, name=name)
            self._redeclare(existing, job, plan, reset_state, on_failure)
            return existing.job
        st = JobState(job)
        now = self._live()
        st.next = None if now is None else self._first_after(st, now)
        st.needs_first = now is None
        if register is not None:
            self._host.action(register, name=name)
        self._insert(st, payload)
        if on_failure is not None:
            self._alarms.add(on_failure, job_id, ALARM_STATUSES)
        return job

    def _insert(self, st: JobState, payload: dict[str, Any]) -> None:
        job = st.job
        self._jobs[job.id] = st
        if job.enabled and not st.needs_first:
            self._set_next(st, st.next)
        now = self._live()
        if now is None:
            self._unannounced.add(job.id)
            self._put(st, self._now_or(0.0) or 0.0)
            return
        self._log_emit("job.added", job.id, {"spec": payload, "next": st.next})
        self._put(st, now)
        self._push(st)
        if job.enabled and st.next is not None:
            self._arm_retention(active=True)

    def _plan(self, st: JobState, job: Job, reset: bool) -> tuple[set[str], float | None, bool]:
        """What a checked change will do: (changed fields, the new next fire time, whether
        it must be computed later). A new trigger is asked for its first fire time here, so
        that one that fails is bad input, found before anything changes."""
        old, new = st.job.to_json(), job.to_json()
        # (Keys of both: an option back at its default is left out of the JSON.)
        changed = {
            k
            for k in old.keys() | new.keys()
            if k not in ("trigger", "version") and old.get(k) != new.get(k)
        }
        if not _same_trigger(old["trigger"], new["trigger"]):
            changed.add("trigger")
        if reset:
            changed.add("start")  # a fresh start: the next fire time from now
        nxt, later = st.next, st.needs_first
        if changed & _RESCHEDULE:
            now = self._live()
            trial = JobState(job)
            trial.runs = 0 if reset else st.runs
            nxt, later = (None, True) if now is None else (self._first_after(trial, now), False)
        return changed, nxt, later

    def _redeclare(
        self,
        st: JobState,
        job: Job,
        plan: tuple[set[str], float | None, bool],
        reset: bool,
        on_failure: AlarmHandler | None,
    ) -> None:
        if reset:
            st.runs = 0
        if plan[0]:
            self._apply(st, job, plan)
        if on_failure is not None:
            self._alarms.add(on_failure, job.id, ALARM_STATUSES)

    def _action_for(self, action: str | Action) -> tuple[str, Action | None, Action | None]:
        """(name, the function if known now, a function still to register): checked, and
        nothing registered yet (the caller registers once everything else is checked)."""
        actions = self._host.actions
        if isinstance(action, str):
            check_text("action", action)
            fn = actions.get(action)
            if fn is not None:
                return action, fn, None
            if ":" not in action:
                raise UnknownActionError(
                    f"no action named {action!r}; registered actions: {self._user_actions()} "
                    "(register it with @engine.action, or give 'module:qualname' from "
                    "allowed_modules)"
                )
            return action, import_action(action, self._allowed), None
        if not callable(action):
            raise UnknownActionError(
                f"action must be a registered name, 'module:qualname' or an async function, "
                f"got {action!r:.200}"
            )
        for key, fn in actions.items():
            if fn is action:
                return key, fn, None
        name = getattr(action, "__name__", None)
        if not isinstance(name, str) or not inspect.iscoroutinefunction(action):
            raise UnknownActionError(f"action {action!r:.200} is not an async function")
        if name in actions:
            raise UnknownActionError(
                f"another action is registered as {name!r}; register this one under its own "
                "name (@engine.action(name=...)) and pass the name"
            )
        return name, action, action

    def _user_actions(self) -> list[str]:
        return sorted(k for k in self._host.actions if not k.startswith("timecontrol."))

    def update_job(self, job_id: str, **changes: Unpack[JobChanges]) -> Job:
        """Change fields of a job (any `add_job` option, its action or trigger; not its id);
        returns the new definition.

        A changed trigger or window reschedules the job from now; other changes keep its
        next fire time. ``enabled`` pauses or resumes it. Everything is checked first:
        invalid changes raise and leave the job (and the store) unchanged.
        """
        self._check_writable()
        st = self._get(job_id)
        if "id" in changes:
            raise JobSpecError("a job's id cannot change; remove it and add a new one")
        check_options(changes, (*JobSpec.__optional_keys__, "action", "trigger"))
        fields: dict[str, Any] = dict(changes)
        fn: Action | None = st.fn
        register: Action | None = None
        if "action" in fields:
            fields["action"], fn, register = self._action_for(fields["action"])
        elif fn is None:
            fn = self._host.actions.get(st.job.action)
        job = replace_job(st.job, fields)
        if fn is not None:
            check_arguments(fn, job.kwargs, f"job {job_id!r}")
        self._hooks.check(job, self._allowed)
        _json_payload(job)
        wanted = job.enabled
        job = msgspec.structs.replace(job, enabled=st.job.enabled)
        plan = self._plan(st, job, False)
        if register is not None:
            self._host.action(register, name=job.action)
        if plan[0]:
            self._apply(st, job, plan)
        if wanted != st.job.enabled:
            (self.resume_job if wanted else self.pause_job)(job_id)
        return st.job

    def _apply(self, st: JobState, job: Job, plan: tuple[set[str], float | None, bool]) -> None:
        """Make a checked change (the mutation half of `update_job` / a re-declaration)."""
        changed, nxt, later = plan
        old = st.job
        st.job = job
        if job.action != old.action:
            st.fn = None
        if changed & _RESCHEDULE:
            self._cancel_intent(st)
            st.next, st.needs_first = nxt, later
            if job.enabled and nxt is not None:
                self._set_next(st, nxt)
                self._arm_retention(active=True)
        now = self._live()
        if now is None:
            self._unannounced.add(job.id)
            self._put(st, self._now_or(0.0) or 0.0)
            return
        spec = job.to_json()
        shown = {k: spec[k] for k in sorted(changed) if k in spec}
        self._log_emit("job.updated", job.id, {"changes": jsonable(shown), "next": st.next})
        self._put(st, now)
        self._push(st)

    def remove_job(self, job_id: str) -> Job:
        """Remove a job (its runs in progress finish and are recorded); returns its definition."""
        self._check_writable()
        st = self._get(job_id)
        self._cancel_intent(st)
        del self._jobs[job_id]
        self._parked.discard(job_id)
        self._unannounced.discard(job_id)
        self._alarms.forget(st.job)
        if self._persist is not None:
            self._persist.store.delete_job(job_id)
        if self._live() is not None:
            self._log_emit("job.removed", job_id, {})
        self._idle_check()
        return st.job

    def get_job(self, job_id: str) -> Job:
        """A job's definition (`JobNotFoundError` if there is none)."""
        return self._get(job_id).job

    def jobs(
        self, *, enabled: bool | None = None, tags: str | Collection[str] | None = None
    ) -> list[Job]:
        """Job definitions, optionally only enabled/disabled ones or those with any of `tags`."""
        if enabled is not None and not isinstance(enabled, bool):
            raise JobSpecError(f"enabled must be True, False or None, got {enabled!r:.100}")
        if tags is not None and not (
            isinstance(tags, str)
            or (isinstance(tags, Collection) and all(isinstance(t, str) for t in tags))
        ):
            raise JobSpecError(f"tags must be a tag or a list of tags, got {tags!r:.100}")
        wanted = None if tags is None else {tags} if isinstance(tags, str) else set(tags)
        self._ensure_attached()
        return [
            st.job
            for st in self._jobs.values()
            if (enabled is None or st.job.enabled == enabled)
            and (wanted is None or wanted.intersection(st.job.tags))
        ]

    def __contains__(self, job_id: object) -> bool:
        self._ensure_attached()
        return isinstance(job_id, str) and job_id in self._jobs

    def __len__(self) -> int:
        self._ensure_attached()
        return len(self._jobs)

    def pause_job(self, job_id: str) -> Job:
        """Pause a job: it starts nothing until resumed (fire times meanwhile are skipped)."""
        self._check_writable()
        st = self._get(job_id)
        if st.job.enabled:
            self._pause_job(st)
        return st.job

    def _pause_job(self, st: JobState) -> None:
        self._cancel_intent(st)
        self._parked.discard(st.job.id)
        st.job = msgspec.structs.replace(st.job, enabled=False)
        now = self._live()
        if now is None:
            self._put(st, self._now_or(0.0) or 0.0)
            return
        self._log_emit("job.paused", st.job.id, {"next": st.next})
        self._put(st, now)
        self._push(st)
        self._idle_check()

    def resume_job(self, job_id: str) -> Job:
        """Resume a paused job; the fire times it slept through get one ``skipped`` record."""
        self._check_writable()
        st = self._get(job_id)
        if st.job.enabled:
            return st.job
        st.job = msgspec.structs.replace(st.job, enabled=True)
        now = self._live()
        if now is None or not self._dispatching or st.needs_first or st.next is None:
            self._put(st, self._now_or(0.0) or 0.0)
            return st.job  # `_started` schedules it
        nxt: float | None = st.next
        if nxt is not None and nxt <= now:
            slept = self._settle(st, nxt, now)
            if slept.due:
                reason = "the job was paused"
                self._record(st, "skipped", {**slept.due.payload(), "reason": reason})
            nxt = slept.next
        self._set_next(st, nxt)
        self._log_emit("job.resumed", st.job.id, {"next": st.next})
        self._put(st, now)
        self._push(st)
        if st.next is not None:
            self._arm_retention(active=True)
        return st.job

    def run_job(self, job_id: str, **overrides: Any) -> float:
        """Run a job now, outside its trigger, with keyword `overrides`; returns the fire time.

        The run is a manual fire time: it goes through the conflict policy like any other,
        its record says ``manual=True``, and it does not count towards `max_executions`.
        With a store its start is committed before the action runs.
        """
        self._check_writable()
        st = self._get(job_id)
        if not self._dispatching:
            raise EngineStateError(
                f"run_job({job_id!r}): the engine is not running; start it first (a manual run "
                "is a request for now, not for whenever the engine starts)"
            )
        try:
            plain = msgspec.json.decode(_json.encode(overrides))
        except (TypeError, ValueError, msgspec.EncodeError, OverflowError, RecursionError) as exc:
            raise JobArgumentsError(f"overrides {overrides!r:.200} are not JSON ({exc})") from None
        if plain != overrides:
            raise JobArgumentsError(f"overrides {overrides!r:.200} do not survive JSON unchanged")
        fn = st.fn or self._host.actions.get(st.job.action)
        if fn is not None:
            check_arguments(fn, {**st.job.kwargs, **overrides}, f"run_job({job_id!r})")
        now = self._clock.time()
        kwargs = {"job": job_id, "fire": now, "kind": "manual", "overrides": overrides}
        intent = self._host.submit_trusted(FIRE, now, kwargs, job_id, 0, "manual")
        self._side[intent.seq] = (job_id, None, True, now)
        return now

    def pause(self) -> None:
        """Pause the whole scheduler: no job starts until `resume` (runs in progress go on).

        Fire times that fall due meanwhile are settled on resume by each job's misfire grace
        and coalesce policy. (Manual runs still start: they are explicit requests.)
        """
        if not self._paused:
            self._paused = True
            if self._live() is not None:
                self._log_emit("scheduler.paused", "scheduler", {})

    def resume(self) -> None:
        """Resume the scheduler; fire times due meanwhile follow their misfire policies."""
        if not self._paused:
            return
        self._paused = False
        if self._live() is not None:
            self._log_emit("scheduler.resumed", "scheduler", {"parked": len(self._parked)})
        parked, self._parked = self._parked, set()
        for job_id in sorted(parked):
            st = self._jobs.get(job_id)
            if st is not None and st.job.enabled and not st.intent_seq and self._dispatching:
                self._set_next(st, st.next)  # due in the past: dispatched at once, then settled

    def _log_emit(self, kind: str, subject: str, payload: dict[str, Any]) -> None:
        log = self._log
        assert log is not None
        log._emit(kind, subject, payload)

    def __repr__(self) -> str:
        store = self._persist.store if self._persist is not None else None
        return f"<Scheduler jobs={len(self._jobs)} paused={self._paused} store={store!r}>"


def _json_payload(job: Job) -> dict[str, Any]:
    """The job's JSON (the ``job.added`` payload), checked to encode: `JobSpecError` if not."""
    spec = job.to_json()
    try:
        _json.encode(spec)
    except (TypeError, ValueError, msgspec.EncodeError, OverflowError, RecursionError) as exc:
        raise JobSpecError(f"job {job.id!r}: its definition is not JSON ({exc})") from None
    return spec


def _same_trigger(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether a re-declared trigger is the stored one.

    A trigger declared without an origin (an interval without ``anchor``) binds it at its first
    use, so the stored JSON has a value where the fresh one has None: that is the same trigger,
    and re-declaring it at every start must not restart its phase.
    """
    return old.keys() == new.keys() and all(new[k] is None or new[k] == old[k] for k in new)
