"""Rebuilding a sequence from its Log events: `fold` them into a `Snapshot`.

The events of one *history* (from the latest ``sequence.declared`` of a name on) hold all a
sequence is: its definition, its start, every inserted, manual and edited point, every point
that began or ended, pauses and resumptions (with the postponement each one recorded), and
earlier restores. Folding them in order gives back the timeline exactly as the last process
had it. Events from before this module knew a field are read with that field's default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .._events import Event
from . import _kinds as k
from ._core import CANCELLED_STATE, CREATED, FINISHED, PAUSED, RUNNING_STATE
from ._definition import DEFINITION_VERSION, Definition
from ._errors import SequenceStateError
from ._point import DONE, INTERRUPTED, PENDING, RUNNING
from ._records import ActionRecord

__all__ = ["PointState", "Snapshot", "fold"]


@dataclass(slots=True)
class PointState:
    """One point as the Log left it."""

    index: int
    kind: str
    offset: float
    shift: float
    names: list[str]
    kwargs: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    planned: float | None = None
    status: str = PENDING
    reason: str = ""
    started: float | None = None
    completed: float | None = None
    records: list[ActionRecord] = field(default_factory=list)


@dataclass(slots=True)
class Snapshot:
    """A sequence as the Log left it (`fold`)."""

    name: str
    epoch: int  # the seq of its ``sequence.declared``
    definition: Definition
    state: str = CREATED
    start: float | None = None
    paused_at: float | None = None
    last_wall: float = 0.0  # the wall time of its newest event
    points: list[PointState] = field(default_factory=list)

    def point(self, index: object) -> PointState:
        """The point numbered `index`, or a `SequenceStateError` naming the damage."""
        if not isinstance(index, int) or not 0 <= index < len(self.points):
            raise SequenceStateError(
                f"the Log's history of sequence {self.name!r} names point {index!r}, which it "
                f"never added (it has {len(self.points)}); re-declare it with reset=True to "
                "start afresh"
            )
        return self.points[index]


def fold(name: str, events: Iterable[Event]) -> Snapshot:
    """The snapshot of one history: `events` start with its ``sequence.declared``."""
    it = iter(events)
    first = next(it)
    version = first.payload.get("version", DEFINITION_VERSION)
    if first.kind != k.DECLARED or not isinstance(version, int) or version > DEFINITION_VERSION:
        raise SequenceStateError(
            f"the Log's history of sequence {name!r} starts with {first.kind} (version "
            f"{version!r}); this timecontrol reads version {DEFINITION_VERSION} declarations"
        )
    definition = Definition.from_json(first.payload)
    snap = Snapshot(name, first.seq, definition, last_wall=first.wall)
    for off in definition.offsets:
        snap.points.append(
            PointState(len(snap.points), "planned", off, 0.0, list(definition.actions))
        )
    for event in it:
        handler = _HANDLERS.get(event.kind)
        if handler is not None:
            handler(snap, event.payload, event)
        snap.last_wall = max(snap.last_wall, event.wall)
    return snap


def _started(snap: Snapshot, p: dict[str, Any], event: Event) -> None:
    snap.start = float(p["start"])
    snap.state = RUNNING_STATE
    for point in snap.points:
        if point.status == PENDING and point.planned is None:
            point.planned = snap.start + point.offset + point.shift


def _added(snap: Snapshot, p: dict[str, Any], event: Event) -> None:
    point = PointState(
        index=len(snap.points),
        kind=p["kind"],
        offset=float(p["offset"]),
        shift=float(p.get("shift", 0.0)),
        names=list(p.get("actions") or snap.definition.actions),
        kwargs=dict(p.get("kwargs") or {}),
        metadata=dict(p.get("metadata") or {}),
        planned=p.get("planned"),
    )
    if point.index != p["index"]:
        snap.point(p["index"])  # (raises: the history skipped an index)
    snap.points.append(point)
    if snap.state == FINISHED:
        snap.state = RUNNING_STATE  # a finished sequence takes new points


def _edited(snap: Snapshot, p: dict[str, Any], event: Event) -> None:
    point = snap.point(p["index"])
    point.names = list(p["actions"])
    point.kwargs = dict(p.get("kwargs") or {})
    point.metadata = dict(p.get("metadata") or {})


def _starting(snap: Snapshot, p: dict[str, Any], event: Event) -> None:
    point = snap.point(p["index"])
    point.status = RUNNING
    point.started = p.get("started", event.wall)
    point.records = []


def _action(snap: Snapshot, p: dict[str, Any], event: Event) -> None:
    snap.point(p["index"]).records.append(ActionRecord.from_json(p))


def _point(snap: Snapshot, p: dict[str, Any], event: Event) -> None:
    point = snap.point(p["index"])
    if p["status"] == INTERRUPTED and p.get("rerun"):
        point.status, point.reason, point.records = PENDING, "", []
        point.started = point.completed = None
        return
    point.status = p["status"]
    point.reason = p.get("reason", "")
    point.started, point.completed = p.get("started"), p.get("completed")
    point.planned, point.shift = p.get("planned"), float(p.get("shift", point.shift))
    point.records = [ActionRecord.from_json(a) for a in p.get("actions", ())]


def _paused(snap: Snapshot, p: dict[str, Any], event: Event) -> None:
    snap.state = PAUSED
    snap.paused_at = p.get("at", event.wall)


def _shift(snap: Snapshot, indices: object, by: float) -> None:
    for index in indices if isinstance(indices, list) else ():
        point = snap.point(index)
        point.shift += by
        if point.planned is not None:
            point.planned += by


def _resumed(snap: Snapshot, p: dict[str, Any], event: Event) -> None:
    snap.state, snap.paused_at = RUNNING_STATE, None
    _shift(snap, p.get("shifted"), float(p.get("paused_for", 0.0)))


def _restored(snap: Snapshot, p: dict[str, Any], event: Event) -> None:
    _shift(snap, p.get("shifted"), float(p.get("by", 0.0)))


def _redeclared(snap: Snapshot, p: dict[str, Any], event: Event) -> None:
    old = list(snap.definition.actions)
    snap.definition = Definition.from_json(p["definition"])
    for point in snap.points:
        if point.status == PENDING and point.names == old:
            point.names = list(snap.definition.actions)  # it followed the default chain


def _finished(snap: Snapshot, p: dict[str, Any], event: Event) -> None:
    if all(point.status in DONE for point in snap.points):
        snap.state = FINISHED


def _cancelled(snap: Snapshot, p: dict[str, Any], event: Event) -> None:
    snap.state = CANCELLED_STATE


_HANDLERS: dict[str, Callable[[Snapshot, dict[str, Any], Event], None]] = {
    k.STARTED: _started,
    k.ADDED: _added,
    k.EDITED: _edited,
    k.STARTING: _starting,
    k.ACTION: _action,
    k.POINT: _point,
    k.PAUSED: _paused,
    k.RESUMED: _resumed,
    k.RESTORED: _restored,
    k.REDECLARED: _redeclared,
    k.FINISHED: _finished,
    k.CANCELLED: _cancelled,
}
