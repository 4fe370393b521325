"""The sequences' Log vocabulary (timecontrol's own, reserved kinds: users read them only).

Every event's subject is the sequence's name. Point and action records are plain JSON, so that
`Sequence.records` reads them back from the Log (and from a SQLite store) as they were.
"""

from __future__ import annotations

from typing import Final

from .._events import reserve_kind

__all__ = ["ACTION", "ADDED", "ALL", "CANCELLED", "DECLARED", "EDITED", "FINISHED", "PAUSED",
           "POINT", "REDECLARED", "RESTORED", "RESUMED", "STARTED", "STARTING"]  # fmt: skip

DECLARED: Final = "sequence.declared"
REDECLARED: Final = "sequence.redeclared"
RESTORED: Final = "sequence.restored"
STARTED: Final = "sequence.started"
ADDED: Final = "sequence.point_added"
EDITED: Final = "sequence.point_edited"
STARTING: Final = "sequence.point_started"
ACTION: Final = "sequence.action"
POINT: Final = "sequence.point"
PAUSED: Final = "sequence.paused"
RESUMED: Final = "sequence.resumed"
FINISHED: Final = "sequence.finished"
CANCELLED: Final = "sequence.cancelled"

for _name, _doc in (
    (DECLARED, "a sequence was made (a new history begins); payload: its definition"),
    (REDECLARED, "a re-declaration with replace=True changed it; payload: changes, definition"),
    (RESTORED, "a new process resumed it from the Log; payload: interrupted, downtime policy"),
    (STARTED, "a sequence's timeline started; payload: start, points, actions, policies"),
    (ADDED, "a point was inserted or triggered by hand; payload: index, kind, offset, planned"),
    (EDITED, "a pending point's chain, kwargs or metadata changed; payload: index, changes"),
    (STARTING, "a point's chain began; payload: index, kind, offset, planned, late"),
    (ACTION, "one action of a point ended; payload: the action record"),
    (POINT, "a point ended (or was skipped or cancelled); payload: the point's summary"),
    (PAUSED, "a sequence was paused; payload: reason, remaining"),
    (RESUMED, "a paused sequence resumed; payload: policy, paused_for, shifted/caught_up/skipped"),
    (FINISHED, "every point of a sequence is done; payload: counts by status"),
    (CANCELLED, "a sequence was cancelled; payload: reason, cancelled point indices"),
):
    reserve_kind(_name, _doc)

#: Every kind a sequence writes (what a restore reads back).
ALL: Final = (DECLARED, REDECLARED, RESTORED, STARTED, ADDED, EDITED, STARTING, ACTION, POINT,
              PAUSED, RESUMED, FINISHED, CANCELLED)  # fmt: skip
