"""`Sequence`: an ordered chain of actions run at each time point (hein_control's sampler).

The public verbs live here; the model and arming in `._core`, the run path in `._runner`.
See docs/sequences.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio

from .._clock import to_timestamp
from .._dispatch import jsonable
from . import _kinds as k
from ._args import (
    ON_DOWNTIME,
    ON_ERROR,
    ON_INTERRUPT,
    ON_PAUSE,
    Step,
    check_kwargs,
    check_metadata,
    check_policy,
    check_reason,
    check_seconds,
    check_steps,
)
from ._core import CANCELLED_STATE, CREATED, FINISHED, PAUSED, RUNNING_STATE
from ._definition import Definition
from ._errors import PointNotFoundError, SequenceArgumentError, SequenceStateError
from ._plan import offsets_of
from ._point import CANCELLED, DONE, PENDING, SKIPPED, Point
from ._records import PointRecord, plain
from ._runner import Runner

if TYPE_CHECKING:
    from ._host import SequenceHost

__all__ = ["Sequence", "SequenceStatus"]

_Chain = tuple[tuple[Step, ...], dict[str, dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class SequenceStatus:
    """A sequence at a glance (`Sequence.status`).

    Attributes:
        name, state: the sequence's name and state (created, running, paused, finished,
            cancelled).
        points, done, remaining: how many points it has, are over, are still to run.
        running: the index of the point whose chain is running, or None.
        next_planned: when the next pending point is due (POSIX seconds), or None.
        paused_at: when it was paused (POSIX seconds), or None.
    """

    name: str
    state: str
    points: int
    done: int
    remaining: int
    running: int | None
    next_planned: float | None
    paused_at: float | None


class Sequence(Runner):
    """An ordered chain of actions run at each time point, one point at a time.

    Make one with ``engine.sequence(actions, timepoints, ...)`` (see docs/sequences.md).

    Args:
        host: what it runs on (the engine's dispatcher: a `SequenceHost`).
        actions: the chain run at every point, in order: registered action names and/or
            async functions.
        timepoints: the planned points: a time-point trigger such as
            ``tc.timepoints.pairs((5, 60), (10, 300))``, a list of offsets in seconds from
            the start, or None (points only by `insert` and `trigger`).
        name: the sequence's name, the subject of its Log events.
        kwargs: keyword arguments per action name, ``{"sample": {"volume_ul": 20}}``.
        on_error: when an action fails: ``skip_rest`` (default: the rest of that point's
            chain is skipped), ``continue`` (the chain goes on), ``pause`` (the rest is skipped
            and the sequence pauses).
        on_pause: what `resume` does by default with points that fell due while paused:
            ``catch_up`` (default, hein_control's: they run on resume, one after another),
            ``postpone`` (the rest of the timeline moves later by the pause's length) or
            ``skip`` (recorded as skipped).
        on_interrupt: what a restart does with the point whose chain was running when the
            process died (it is recorded ``interrupted`` either way): ``skip`` (default: it
            does not run again, so that no action runs twice unasked) or ``rerun``.
        on_downtime: what a restart does with the points that fell due while no process ran
            the sequence: ``skip`` (default: recorded as skipped, the rest on time),
            ``catch_up`` (they run at once, in order) or ``postpone`` (the timeline moves
            later so that the first of them is due now).
        downtime_grace: seconds (default 60): points that fell due no longer than this
            before a restart run at once, late, whatever `on_downtime` says, so that a quick
            restart (a service manager's, an upgrade's) loses no sample; 0 applies
            `on_downtime` to every point that fell due.
    """

    def __init__(
        self,
        host: SequenceHost,
        actions: object,
        timepoints: object = None,
        *,
        name: str,
        kwargs: Mapping[str, Mapping[str, Any]] | None = None,
        on_error: str = "skip_rest",
        on_pause: str = "catch_up",
        on_interrupt: str = "skip",
        on_downtime: str = "skip",
        downtime_grace: float = 60.0,
    ) -> None:
        steps = check_steps(actions, host.actions, "actions")
        kw = check_kwargs(kwargs, (s.name for s in steps), "kwargs")
        check_policy(on_error, ON_ERROR, "on_error")
        check_policy(on_pause, ON_PAUSE, "on_pause")
        self._on_interrupt = check_policy(on_interrupt, ON_INTERRUPT, "on_interrupt")
        self._on_downtime = check_policy(on_downtime, ON_DOWNTIME, "on_downtime")
        self._downtime_grace = check_seconds(downtime_grace, "downtime_grace")
        offsets, self._bound_start = offsets_of(timepoints)
        self._offsets = tuple(offsets)
        self._epoch = 0  # the seq of its ``sequence.declared`` (0: not declared yet)
        self._resumed = False  # rebuilt from the Log
        self._start_called = False
        super().__init__(host, name, steps, kw, on_error, on_pause)
        for offset in offsets:
            self._new_point("planned", offset, 0.0, steps, {}, {})

    # -- reading ------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The sequence's name (the subject of its Log events)."""
        return self._name

    @property
    def state(self) -> str:
        """``created``, ``running``, ``paused``, ``finished`` or ``cancelled``."""
        return self._state

    @property
    def actions(self) -> tuple[str, ...]:
        """The names of the default chain's actions, in order."""
        return tuple(step.name for step in self._steps)

    @property
    def on_error(self) -> str:
        """The error policy: ``skip_rest``, ``continue`` or ``pause``."""
        return self._on_error

    @property
    def on_pause(self) -> str:
        """`resume`'s default policy: ``catch_up``, ``postpone`` or ``skip``."""
        return self._on_pause

    @property
    def on_interrupt(self) -> str:
        """What a restart does with a point interrupted by the process's end: ``skip`` or
        ``rerun``."""
        return self._on_interrupt

    @property
    def on_downtime(self) -> str:
        """What a restart does with points that fell due meanwhile: ``skip``, ``catch_up``
        or ``postpone``."""
        return self._on_downtime

    @property
    def resumed(self) -> bool:
        """True if this sequence was rebuilt from the Log's history of its name (a
        re-declaration): skip the set-up calls (`edit`, `insert`) a fresh one needs."""
        return self._resumed

    def _definition(self) -> Definition:
        """Its declaration as the Log keeps it (the ``sequence.declared`` payload)."""
        return Definition(
            actions=self.actions,
            offsets=self._offsets,
            start=self._bound_start,
            kwargs={name: plain(kw) for name, kw in self._kwargs.items()},
            on_error=self._on_error,
            on_pause=self._on_pause,
            on_interrupt=self._on_interrupt,
            on_downtime=self._on_downtime,
            downtime_grace=self._downtime_grace,
        )

    def _declare(self, reset_from: int | None = None) -> None:
        """Begin its history in the Log (a new sequence, or ``reset=True``)."""
        payload = self._definition().to_json()
        if reset_from is not None:
            payload["reset_from"] = reset_from
        self._epoch = self._host.log._emit(k.DECLARED, self._name, payload).seq

    @property
    def start_time(self) -> datetime | None:
        """When the timeline started (aware UTC), or None before `start`."""
        return None if self._start is None else datetime.fromtimestamp(self._start, UTC)

    @property
    def remaining(self) -> int:
        """How many points are still to run (pending; the running one excluded)."""
        return self._pending

    @property
    def progress(self) -> float:
        """The share of points that are over, from 0.0 to 1.0 (1.0 with no points)."""
        total = len(self._points)
        return 1.0 if total == 0 else self._done_count() / total

    @property
    def status(self) -> SequenceStatus:
        """The sequence at a glance (see `SequenceStatus`)."""
        running = self._running
        nxt = self._next_point() if self._state == RUNNING_STATE else None
        return SequenceStatus(
            name=self._name,
            state=self._state,
            points=len(self._points),
            done=self._done_count(),
            remaining=self._pending,
            running=None if running is None else running.index,
            next_planned=None if nxt is None else nxt.planned,
            paused_at=self._paused_at,
        )

    def _done_count(self) -> int:
        return sum(1 for p in self._points.values() if p.status in DONE)

    def points(self) -> list[Point]:
        """Every point (live objects), in time order: by planned time, then index."""
        return sorted(self._points.values(), key=lambda p: (p.offset + p.shift, p.index))

    def point(self, index: int) -> Point:
        """The point numbered `index` (`PointNotFoundError` if there is none)."""
        point = self._points.get(index) if isinstance(index, int) else None
        if point is None:
            raise PointNotFoundError(
                f"sequence {self._name!r} has no point {index!r}; its points are numbered 0 to "
                f"{len(self._points) - 1}"
            )
        return point

    async def records(self) -> list[PointRecord]:
        """The summaries of the points that are over, read back from the Log, oldest first."""
        events = await self._host.log.query(kinds=k.POINT, subjects=self._name)
        epoch = self._epoch  # (its history only: not an earlier one of the same name)
        return [PointRecord.from_json(e.payload) for e in events if e.seq > epoch]

    def __len__(self) -> int:
        return len(self._points)

    def __repr__(self) -> str:
        return (
            f"<Sequence {self._name!r} {self._state} {self._done_count()}/{len(self._points)} "
            f"done, {self._pending} remaining, chain={list(self.actions)}>"
        )

    # -- the timeline -------------------------------------------------------------------------

    def start(self, at: datetime | float | None = None) -> None:
        """Start the timeline: points fall due at ``start + offset``.

        `at`: the start (aware datetime or POSIX seconds; default now, or the time-point
        trigger's own start if it has one). Points already past run at once, in order.

        A sequence `resumed` from the Log has its start already: the first call does
        nothing (so that a program declares and starts its sequences the same way at every
        start); an `at` other than the stored start is refused.
        """
        if self._resumed and self._state != CREATED and not self._start_called:
            self._start_called = True
            if at is not None and to_timestamp(at, "at") != self._start:
                self._start_called = False
                raise SequenceStateError(
                    f"sequence {self._name!r} resumed from the Log with its start "
                    f"{self.start_time}; start(at={at!r}) cannot move it (re-declare with "
                    "reset=True to start afresh)"
                )
            return
        if self._state != CREATED:
            raise SequenceStateError(
                f"sequence {self._name!r} is {self._state}; start() starts a created sequence once"
            )
        if at is not None and self._bound_start is not None:
            raise SequenceArgumentError(
                f"at={at!r} given, but the time points have their own start "
                f"({datetime.fromtimestamp(self._bound_start, UTC)}); give one or the other"
            )
        if at is not None:
            start = to_timestamp(at, "at")
        else:
            start = self._bound_start if self._bound_start is not None else self._now()
        self._start = start
        self._state = RUNNING_STATE
        for point in self._points.values():
            if point.status == PENDING:
                self._plan(point)
        self._emit(
            k.STARTED,
            {
                "start": start,
                "points": len(self._points),
                "actions": list(self.actions),
                "kwargs": {name: jsonable(kw) for name, kw in self._kwargs.items()},
                "on_error": self._on_error,
                "on_pause": self._on_pause,
            },
        )
        self._arm()

    def pause(self, reason: str = "") -> None:
        """Pause the timeline: no planned point starts until `resume` (a running chain ends
        first; manual triggers still run). Recorded as ``sequence.paused``."""
        check_reason(reason)
        if self._state != RUNNING_STATE:
            raise SequenceStateError(
                f"sequence {self._name!r} is {self._state}; only a running sequence pauses"
            )
        self._pause_at(self._now(), reason)

    def resume(self, policy: str | None = None) -> dict[str, Any]:
        """Resume a paused sequence; `policy` (default: the sequence's `on_pause`) decides the
        points that fell due while it was paused:

        * ``catch_up``: they run now, one after another, in order;
        * ``postpone``: every point planned after the pause moves later by its length;
        * ``skip``: they are recorded as skipped.

        Returns the ``sequence.resumed`` payload (policy, paused_for, the points' indices).
        """
        chosen = check_policy(self._on_pause if policy is None else policy, ON_PAUSE, "policy")
        if self._state != PAUSED or self._paused_at is None:
            raise SequenceStateError(
                f"sequence {self._name!r} is {self._state}; resume() needs a paused sequence"
            )
        now, paused_at = self._now(), self._paused_at
        paused_for = now - paused_at
        timeline = sorted(
            (p for p in self._points.values() if p.status == PENDING and not p.manual),
            key=lambda p: (p.planned or 0.0, p.index),
        )
        due = [p for p in timeline if p.planned is not None and paused_at < p.planned <= now]
        payload: dict[str, Any] = {"policy": chosen, "paused_for": paused_for}
        if chosen == "postpone":
            moved = [p for p in timeline if p.planned is not None and p.planned > paused_at]
            for p in moved:
                p.shift += paused_for
                p.planned = (p.planned or 0.0) + paused_for
            payload["shifted"] = [p.index for p in moved]
        else:
            payload["caught_up" if chosen == "catch_up" else "skipped"] = [p.index for p in due]
        self._state, self._paused_at = RUNNING_STATE, None
        self._emit(k.RESUMED, payload)
        if chosen == "skip":
            for p in due:
                self._close_point(p, SKIPPED, "fell due while the sequence was paused")
        self._rebuild()
        self._arm()
        return payload

    def cancel(self, reason: str = "") -> int:
        """End the sequence: pending points are recorded as cancelled, a running chain ends
        after its current action (the rest cancelled). Returns how many points it cancelled
        (0 if the sequence was already over)."""
        check_reason(reason)
        if self._state in (FINISHED, CANCELLED_STATE):
            return 0
        self._state = CANCELLED_STATE
        self._disarm()
        pending = [p for p in self.points() if p.status == PENDING]
        running = self._running
        self._emit(
            k.CANCELLED,
            {
                "reason": reason,
                "cancelled": [p.index for p in pending],
                "running": None if running is None else running.index,
            },
        )
        for p in pending:
            self._close_point(p, CANCELLED, reason or "the sequence was cancelled")
        if self._over():
            self._wake()
        return len(pending)

    async def join(self) -> None:
        """Wait until every point of this sequence is over (finished or cancelled), whatever
        else the engine runs. A paused sequence is not over: resume or cancel it."""
        if self._state == CREATED:
            raise SequenceStateError(
                f"sequence {self._name!r} has not started; call start() before join()"
            )
        while not self._over():
            if self._joined is None:
                self._joined = anyio.Event()
            await self._joined.wait()

    # -- points -------------------------------------------------------------------------------

    def _chain(
        self,
        actions: object,
        append: object,
        kwargs: object,
        base: tuple[Step, ...],
        old_kwargs: dict[str, dict[str, Any]] | None = None,
    ) -> _Chain:
        """A point's chain and kwargs: `actions` replaces `base`, `append` extends it, and
        `kwargs` (keyed by names in the result) go on top of `old_kwargs`."""
        registry = self._host.actions
        chain = base if actions is None else check_steps(actions, registry, "actions")
        if append is not None:
            chain = chain + check_steps(append, registry, "append")
        names = [s.name for s in chain]
        new = check_kwargs(kwargs, names, "kwargs")
        merged = {n: kw for n, kw in (old_kwargs or {}).items() if n in names}
        merged.update(new)
        return chain, merged

    def _anchor(self, after: object) -> tuple[float, float, int | None]:
        """(offset, shift, index) that a relative offset counts from."""
        if after is None:
            return 0.0, 0.0, None
        if after == "end":
            last = max(self._points.values(), key=lambda p: (p.offset + p.shift, p.index),
                       default=None)  # fmt: skip
            return (0.0, 0.0, None) if last is None else (last.offset, last.shift, last.index)
        if isinstance(after, bool) or not isinstance(after, int):
            raise SequenceArgumentError(
                f"after={after!r} is not accepted; expected None (the start), 'end' (the latest "
                "point) or a point's index"
            )
        ref = self.point(after)
        return ref.offset, ref.shift, ref.index

    def _check_open(self, what: str) -> None:
        if self._state == CANCELLED_STATE:
            raise SequenceStateError(f"sequence {self._name!r} is cancelled; {what} is refused")

    def _added(self, point: Point, relative_to: int | None) -> Point:
        self._emit(
            k.ADDED,
            {
                "index": point.index,
                "kind": point.kind,
                "offset": point.offset,
                "shift": point.shift,
                "planned": point.planned,
                "relative_to": relative_to,
                "actions": list(point.actions),
                "kwargs": {name: jsonable(v) for name, v in point.kwargs.items()},
                "metadata": point.metadata,
            },
        )
        if self._state == FINISHED:
            self._state = RUNNING_STATE  # a finished sequence takes new points
        self._arm()
        return point

    def insert(
        self,
        offset: float | Any,
        *,
        after: int | str | None = None,
        actions: object = None,
        append: object = None,
        kwargs: Mapping[str, Mapping[str, Any]] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Point:
        """Insert a point `offset` seconds (or a timedelta) after the start (``after=None``),
        after the latest point (``after="end"``) or after point `after` (an index; it then
        moves with that point's postponements). Also while running; a point whose time has
        passed runs at once.

        `actions` replaces the chain for this point, `append` adds actions to it; `kwargs`
        and `metadata` are this point's own.
        """
        self._check_open("insert")
        base_offset, shift, relative_to = self._anchor(after)
        delta = check_seconds(offset, "offset", negative=after is not None)
        if base_offset + delta < 0:
            raise SequenceArgumentError(
                f"offset={offset!r} after point {after!r} lands before the start "
                f"({base_offset + delta:g} s); points lie at or after the start"
            )
        chain, kw = self._chain(actions, append, kwargs, self._steps)
        meta = check_metadata(metadata)
        point = self._new_point("inserted", base_offset + delta, shift, chain, kw, meta)
        return self._added(point, relative_to)

    def extend(self, timepoints: object, *, after: int | str | None = "end") -> list[Point]:
        """Insert a whole set of points (a time-point trigger or a list of offsets) after the
        latest point (default), the start (``after=None``) or point `after`: hein_control's
        ``insert_time_point_list`` and ``insert_time_point_list_pairs``."""
        self._check_open("extend")
        offsets, bound = offsets_of(timepoints)
        if bound is not None:
            raise SequenceArgumentError(
                "timepoints with their own start cannot extend a sequence; give offsets only"
            )
        base_offset, shift, relative_to = self._anchor(after)
        points = [
            self._new_point("inserted", base_offset + off, shift, self._steps, {}, {})
            for off in offsets
        ]
        for point in points:
            self._added(point, relative_to)
        return points

    def edit(
        self,
        index: int,
        *,
        actions: object = None,
        append: object = None,
        kwargs: Mapping[str, Mapping[str, Any]] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Point:
        """Change a pending point: `actions` replaces its chain, `append` adds to it, `kwargs`
        (per action name) and `metadata` are merged into its own. Recorded as
        ``sequence.point_edited``."""
        point = self.point(index)
        if point.status != PENDING:
            raise SequenceStateError(
                f"point {index} of sequence {self._name!r} is {point.status}; only a pending "
                "point can be edited"
            )
        chain, kw = self._chain(actions, append, kwargs, point.chain, point.kwargs)
        meta = check_metadata(metadata)
        point.chain, point.kwargs = chain, kw
        point.metadata.update(meta)
        self._emit(
            k.EDITED,
            {
                "index": index,
                "actions": list(point.actions),
                "kwargs": {name: jsonable(v) for name, v in kw.items()},
                "metadata": point.metadata,
            },
        )
        return point

    def trigger(
        self,
        metadata: dict[str, Any] | None = None,
        *,
        actions: object = None,
        append: object = None,
        kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> Point:
        """Trigger a point by hand, now: a new (manual) point at ``now - start`` with its
        `metadata`. It waits if a point is running, runs even while the sequence is paused,
        and takes nothing from the planned points. ``await point.wait()`` for its record."""
        self._check_open("trigger")
        if self._start is None:
            raise SequenceStateError(
                f"sequence {self._name!r} has not started; call start() before trigger()"
            )
        chain, kw = self._chain(actions, append, kwargs, self._steps)
        meta = check_metadata(metadata)
        now = self._now()
        point = self._new_point("manual", now - self._start, 0.0, chain, kw, meta, planned=now)
        return self._added(point, None)
