"""Sampling sequences: an ordered chain of actions at each time point (hein_control's sampler).

>>> seq = engine.sequence(["sample", "analyse"], tc.timepoints.pairs((5, 60), (10, 300)))
>>> seq.start(); point = seq.trigger({"why": "colour change"}); await seq.join()

A sequence runs its points one at a time on the engine's dispatcher (so engine pause and
panic hold it like any scheduled job), each point's actions in order with the first error
skipping the rest (configurable), and records every action and every point in the Log
(``sequence.*`` events). Points can be inserted, edited and triggered by hand while it runs;
pausing it chooses what happens to the points that fall due meanwhile. Re-declaring a named
sequence on an engine whose SQLite store holds its history resumes it (restarts and crashes
included). See docs/sequences.md.
"""

from __future__ import annotations

from ._args import ON_DOWNTIME, ON_ERROR, ON_INTERRUPT, ON_PAUSE
from ._errors import (
    PointNotFoundError,
    SequenceArgumentError,
    SequenceError,
    SequenceMismatchError,
    SequenceStateError,
)
from ._host import SequenceHost
from ._manager import SequenceOptions, Sequences
from ._plan import MAX_POINTS
from ._point import Point
from ._records import ACTION_STATUSES, POINT_STATUSES, ActionRecord, PointRecord
from ._sequence import Sequence, SequenceStatus

__all__ = [
    "ACTION_STATUSES",
    "MAX_POINTS",
    "ON_DOWNTIME",
    "ON_ERROR",
    "ON_INTERRUPT",
    "ON_PAUSE",
    "POINT_STATUSES",
    "ActionRecord",
    "Point",
    "PointNotFoundError",
    "PointRecord",
    "Sequence",
    "SequenceArgumentError",
    "SequenceError",
    "SequenceHost",
    "SequenceMismatchError",
    "SequenceOptions",
    "SequenceStateError",
    "SequenceStatus",
    "Sequences",
]
