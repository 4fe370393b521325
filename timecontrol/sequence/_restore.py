"""Resuming a sequence from its Log in a new process (or after `Sequences.remove`).

`history` reads the latest history of a name (SQLite store and in-memory ring, merged by
seq, synchronously: a declaration is a plain call). `Restore` then checks everything it
needs before it changes anything (the points' actions must resolve: registered names or the
functions given again), rebuilds the sequence from the `Snapshot`, and records what the
restart decided: a point whose chain was running is ``interrupted`` (and pending again with
``on_interrupt="rerun"``), and the points that fell due while no process ran the sequence
follow ``on_downtime`` (``sequence.restored``). See docs/sequences.md, "Restarts".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._events import Event
from ..stores._sqlite import SQLiteLog, read_events
from . import _kinds as k
from ._args import Step
from ._core import CANCELLED_STATE, RUNNING_STATE
from ._errors import SequenceStateError
from ._point import CANCELLED, FAILED, INTERRUPTED, PENDING, RUNNING, SKIPPED, SUCCEEDED, Point
from ._records import ActionRecord

if TYPE_CHECKING:
    from .._log import Log
    from ._definition import Definition
    from ._replay import PointState, Snapshot
    from ._sequence import Sequence

__all__ = ["Restore", "history"]


def history(log: Log, name: str) -> list[Event]:
    """The events of `name`'s latest history (from its newest ``sequence.declared`` on),
    oldest first; [] if the Log never declared it."""
    stored: list[Event] = []
    sink = log.sink
    if isinstance(sink, SQLiteLog) and sink.last_seq() > 0:
        newest = read_events(
            sink.path, kinds=[k.DECLARED], subjects=[name], newest_first=True, limit=1
        )
        if newest:
            stored = read_events(
                sink.path, kinds=list(k.ALL), subjects=[name], after_seq=newest[0].seq - 1
            )
    seen = {e.seq for e in stored}
    merged = stored + [e for e in log.recent(kinds=k.ALL, subjects=name) if e.seq not in seen]
    merged.sort(key=lambda e: e.seq)
    starts = [i for i, e in enumerate(merged) if e.kind == k.DECLARED]
    return merged[starts[-1] :] if starts else []


async def _gone(**kwargs: Any) -> None:
    """The stand-in for an action of a point that is over (it never runs again)."""
    raise SequenceStateError("a point that is over does not run again")


class Restore:
    """Rebuild `seq` from `snap` and settle what the last process left (module docstring).

    `changes` is what a ``replace=True`` re-declaration changes (``{}`` for the same one).
    """

    def __init__(self, seq: Sequence, snap: Snapshot, changes: dict[str, list[Any]]) -> None:
        self.seq, self.snap, self.changes = seq, snap, changes
        by_name = {step.name: step for step in seq._steps}
        registry = seq._host.actions
        points: dict[int, Point] = {}
        for ps in snap.points:  # everything is checked here, before anything changes
            chain = tuple(self._step(n, ps, by_name, registry) for n in ps.names)
            points[ps.index] = self._point(ps, chain)
        if changes:
            old = list(snap.definition.actions)
            for p in points.values():
                if p.status == PENDING and list(p.actions) == old:
                    p.chain = seq._steps  # it followed the default chain: it follows the new
        self.points = points

    def _step(self, name: str, ps: PointState, by_name: dict[str, Step], registry: Any) -> Step:
        step = by_name.get(name)
        if step is not None:
            return step
        fn = registry.get(name)
        if fn is not None:
            return Step(name, fn)
        if ps.status not in (PENDING, RUNNING):
            return Step(name, _gone)
        raise SequenceStateError(
            f"point {ps.index} of sequence {self.seq.name!r} (from the Log) runs action "
            f"{name!r}, which is neither registered nor in the declared chain; register it "
            "(@engine.action) before re-declaring the sequence, or re-declare with reset=True"
        )

    def _point(self, ps: PointState, chain: tuple[Step, ...]) -> Point:
        seq = self.seq
        point = Point(seq.name, ps.index, ps.kind, ps.offset, ps.shift, chain,
                      {n: dict(v) for n, v in ps.kwargs.items()}, dict(ps.metadata))  # fmt: skip
        point.planned, point.status, point.reason = ps.planned, ps.status, ps.reason
        point.started, point.completed = ps.started, ps.completed
        point.records = list(ps.records)
        return point

    # -- applying and settling ----------------------------------------------------------------

    def apply(self, declared: Definition) -> dict[str, Any]:
        """Take the snapshot's state and record the restart; returns the
        ``sequence.restored`` payload."""
        seq, snap = self.seq, self.snap
        seq._points = self.points
        seq._pending = sum(1 for p in self.points.values() if p.status in (PENDING, RUNNING))
        seq._manual_pending = {
            p.index for p in self.points.values() if p.manual and p.status == PENDING
        }
        seq._start, seq._state, seq._paused_at = snap.start, snap.state, snap.paused_at
        seq._epoch, seq._resumed = snap.epoch, True
        if self.changes:
            self._redeclare(declared)
        interrupted, rerun = self._interrupted()
        payload: dict[str, Any] = {
            "interrupted": interrupted,
            "rerun": rerun,
            "last_event": snap.last_wall,
            "policy": seq._on_downtime,
        }
        if seq._state == RUNNING_STATE:
            payload.update(self._downtime(interrupted if rerun else None))
        seq._emit(k.RESTORED, payload)
        for index in payload.get("skipped", ()):
            seq._close_point(seq._points[index], SKIPPED, "fell due while no process ran it")
        seq._rebuild()
        seq._arm()
        return payload

    def _redeclare(self, declared: Definition) -> None:
        """``replace=True``: record the new definition, cancel the pending planned points
        whose offsets it dropped and add those it added (a multiset difference)."""
        seq = self.seq
        seq._emit(k.REDECLARED, {"changes": self.changes, "definition": declared.to_json()})
        if "offsets" not in self.changes:
            return
        wanted = list(declared.offsets)
        dropped = []
        for p in sorted(seq._points.values(), key=lambda p: p.index):
            if p.kind != "planned":
                continue
            if p.offset in wanted:
                wanted.remove(p.offset)
            elif p.status == PENDING:
                dropped.append(p)
        for p in dropped:
            seq._close_point(p, CANCELLED, "removed by a re-declaration (replace=True)")
        for offset in wanted:
            point = seq._new_point("planned", offset, 0.0, seq._steps, {}, {})
            seq._added(point, None)

    def _interrupted(self) -> tuple[int | None, bool]:
        """Close the point whose chain was running (if any): ``interrupted``, or the status
        its actions' records give if every one of them is on disk."""
        seq = self.seq
        point = next((p for p in seq._points.values() if p.status == RUNNING), None)
        if point is None:
            return None, False
        seq._pending -= 1
        failed = next((r for r in point.records if r.status == FAILED), None)
        if failed is not None and seq._on_error != "continue":
            # Past its first failure the chain only skips (those records are not events).
            for position in range(len(point.records), len(point.chain)):
                point.records.append(ActionRecord(point.chain[position].name, position, SKIPPED))
        if len(point.records) == len(point.chain):
            status = SUCCEEDED if failed is None else FAILED
            reason = "" if failed is None else f"{failed.action}: {failed.error}: {failed.message}"
            ends = [r.completed for r in point.records if r.completed is not None]
            point.completed = max(ends, default=None)
            point.status, point.reason = status, reason
            seq._emit(k.POINT, point.record().to_json())
            return None, False
        rerun = seq._on_interrupt == "rerun" and seq._state != CANCELLED_STATE
        point.status = INTERRUPTED
        point.reason = "the process ended while its chain ran" + (
            "; it runs again (on_interrupt='rerun')" if rerun else ""
        )
        seq._emit(k.POINT, {**point.record().to_json(), "rerun": rerun})
        if rerun:
            point.status, point.reason, point.records = PENDING, "", []
            point.started = point.completed = None
            seq._pending += 1
            if point.manual:
                seq._manual_pending.add(point.index)
        return point.index, rerun

    def _downtime(self, rerun: int | None) -> dict[str, Any]:
        """The points that fell due while no process ran the sequence, by `on_downtime`."""
        seq = self.seq
        now = seq._now()
        pending = [p for p in seq.points() if p.status == PENDING and p.index != rerun]
        overdue = [p for p in pending if p.planned is not None and p.planned <= now]
        policy = seq._on_downtime
        # Points due within the grace run now, late, whatever the policy (a quick restart).
        late = [p.index for p in overdue if now - (p.planned or 0.0) <= seq._downtime_grace]
        overdue = [p for p in overdue if p.index not in late]
        if policy == "catch_up":
            return {"caught_up": sorted(late + [p.index for p in overdue])}
        if policy == "skip":
            return {"skipped": [p.index for p in overdue], "caught_up": late}
        timeline = [p for p in overdue if not p.manual]
        if not timeline:
            return {"shifted": [], "by": 0.0, "caught_up": late}
        since = min(p.planned or 0.0 for p in timeline)
        by = now - since
        moved = [p for p in pending if not p.manual and (p.planned or 0.0) >= since]
        for p in moved:
            p.shift += by
            p.planned = (p.planned or 0.0) + by
        return {"shifted": [p.index for p in moved], "by": by}
