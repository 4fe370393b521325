"""What a point and each of its actions left behind: `ActionRecord` and `PointRecord`.

Both are frozen values built from plain JSON: the same dict is the payload of the Log event
(``sequence.action`` / ``sequence.point``) and the input of `from_json`, so that a record
read back from the Log equals the one kept in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from .._dispatch import jsonable

__all__ = ["ACTION_STATUSES", "POINT_STATUSES", "ActionRecord", "PointRecord", "plain"]

#: What became of one action of a point's chain.
ACTION_STATUSES: Final = ("succeeded", "failed", "cancelled", "skipped")
#: What became of a point: pending and running while it lives, then one of the others.
POINT_STATUSES: Final = ("pending", "running", "succeeded", "failed", "skipped", "cancelled",
                         "interrupted")  # fmt: skip


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def plain(value: Any) -> Any:
    """`value` as the Log gives it back: JSON read back (a set becomes a list, a tuple a
    list), and ``{"repr": ...}`` for what JSON cannot hold; memory and Log then agree."""
    return _decode(_encode(jsonable(value)))


def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """One action of one point: when it ran, how long, and what it returned or raised.

    Attributes:
        action: the action's name.
        position: its place in the point's chain (0 = first).
        status: ``succeeded``, ``failed``, ``cancelled`` (panic, engine stop, sequence
            cancel) or ``skipped`` (an earlier action failed and the policy skips the rest).
        started, completed: wall times, POSIX seconds (None if it never started).
        duration: seconds on the monotonic clock (None if it never started).
        result: its return value as JSON (``{"repr": ...}`` for anything JSON cannot hold).
        error, message, traceback: the exception's class name, text and traceback, if failed.
        kwargs: the keyword arguments it was called with, as JSON.
    """

    action: str
    position: int
    status: str
    started: float | None = None
    completed: float | None = None
    duration: float | None = None
    result: Any = None
    error: str | None = None
    message: str | None = None
    traceback: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def started_at(self) -> datetime | None:
        """`started` as an aware UTC datetime (hein_control's ``started_timestamp``)."""
        return _dt(self.started)

    @property
    def completed_at(self) -> datetime | None:
        """`completed` as an aware UTC datetime."""
        return _dt(self.completed)

    def to_json(self) -> dict[str, Any]:
        """The record as a plain JSON object (the ``sequence.action`` payload, sans index)."""
        return {
            "action": self.action,
            "position": self.position,
            "status": self.status,
            "started": self.started,
            "completed": self.completed,
            "duration": self.duration,
            "result": self.result,
            "error": self.error,
            "message": self.message,
            "traceback": self.traceback,
            "kwargs": self.kwargs,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ActionRecord:
        """The record from `to_json`'s object (extra keys are ignored)."""
        return cls(
            action=d["action"],
            position=d["position"],
            status=d["status"],
            started=d.get("started"),
            completed=d.get("completed"),
            duration=d.get("duration"),
            result=d.get("result"),
            error=d.get("error"),
            message=d.get("message"),
            traceback=d.get("traceback"),
            kwargs=dict(d.get("kwargs") or {}),
        )


@dataclass(frozen=True, slots=True)
class PointRecord:
    """The summary of one time point of a sequence.

    Attributes:
        sequence: the sequence's name.
        index: the point's number in its sequence (stable: planned points are numbered in
            time order when the sequence is made, inserted and manual ones as they come).
        kind: ``planned`` (from the sequence's time points), ``inserted`` or ``manual``.
        offset: seconds from the sequence's start at which it was planned.
        shift: seconds it was postponed by pauses (``on_pause="postpone"``).
        planned: wall time it was due (start + offset + shift), POSIX seconds; None before
            the sequence started.
        started, completed: when its chain began and ended (None if it never ran).
        status: see `POINT_STATUSES`.
        reason: why it failed, was skipped, cancelled or interrupted ("" otherwise).
        actions: one `ActionRecord` per action of its chain, in chain order.
        metadata: what was attached to it (a manual trigger's metadata, say).
        kwargs: its per-action keyword arguments (on top of the sequence's), as JSON.
    """

    sequence: str
    index: int
    kind: str
    offset: float
    shift: float
    planned: float | None
    started: float | None
    completed: float | None
    status: str
    reason: str
    actions: tuple[ActionRecord, ...]
    metadata: dict[str, Any]
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def manual(self) -> bool:
        """True for a point made by a manual trigger."""
        return self.kind == "manual"

    @property
    def late(self) -> float | None:
        """Seconds between planned and actual start (None if it never ran)."""
        if self.started is None or self.planned is None:
            return None
        return self.started - self.planned

    @property
    def duration(self) -> float | None:
        """Seconds from the start of its chain to its end (None if it never ran)."""
        if self.started is None or self.completed is None:
            return None
        return self.completed - self.started

    @property
    def planned_at(self) -> datetime | None:
        """`planned` as an aware UTC datetime."""
        return _dt(self.planned)

    @property
    def started_at(self) -> datetime | None:
        """`started` as an aware UTC datetime."""
        return _dt(self.started)

    def to_json(self) -> dict[str, Any]:
        """The summary as a plain JSON object (the ``sequence.point`` payload)."""
        return {
            "sequence": self.sequence,
            "index": self.index,
            "kind": self.kind,
            "offset": self.offset,
            "shift": self.shift,
            "planned": self.planned,
            "started": self.started,
            "completed": self.completed,
            "status": self.status,
            "reason": self.reason,
            "actions": [a.to_json() for a in self.actions],
            "metadata": self.metadata,
            "kwargs": self.kwargs,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PointRecord:
        """The summary from `to_json`'s object."""
        return cls(
            sequence=d["sequence"],
            index=d["index"],
            kind=d["kind"],
            offset=d["offset"],
            shift=d.get("shift", 0.0),
            planned=d.get("planned"),
            started=d.get("started"),
            completed=d.get("completed"),
            status=d["status"],
            reason=d.get("reason", ""),
            actions=tuple(ActionRecord.from_json(a) for a in d.get("actions", ())),
            metadata=dict(d.get("metadata") or {}),
            kwargs=dict(d.get("kwargs") or {}),
        )
