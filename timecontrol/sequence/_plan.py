"""Where a sequence's points come from: a `TimePoints` trigger or a list of offsets."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Final

from .._clock import to_timestamp
from ..triggers import TimePoints
from ._args import check_seconds
from ._errors import SequenceArgumentError

__all__ = ["MAX_POINTS", "offsets_of"]

#: The most points one sequence (or one `extend`) may plan: each is a live object.
MAX_POINTS: Final = 100_000
_US = timedelta(microseconds=1)


def offsets_of(timepoints: object, what: str = "timepoints") -> tuple[list[float], float | None]:
    """Offsets in seconds from the start, ascending, and the trigger's own start (or None).

    Accepts a `TimePoints` trigger (``tc.timepoints.pairs((5, 60), (10, 300))``) whose points
    are relative (manual instants belong to `Sequence.trigger`), a list of offsets (seconds or
    timedeltas), or None (no planned points).
    """
    if timepoints is None:
        return [], None
    if isinstance(timepoints, TimePoints):
        spec = timepoints.to_json()
        if spec["manual"]:
            raise SequenceArgumentError(
                f"{what} {timepoints.explain()!r} holds manual instants; a sequence plans "
                "offsets from its start (trigger a point by hand with sequence.trigger())"
            )
        total = sum(block[1] for block in spec["blocks"]) + len(spec["points"])
        if total > MAX_POINTS:
            raise SequenceArgumentError(
                f"{what} {timepoints.explain()!r} has {total} points; at most {MAX_POINTS}"
            )
        offsets = [(td // _US) / 1e6 for td in timepoints.offsets()]
        start = timepoints.start
        return offsets, None if start is None else to_timestamp(start, "timepoints start")
    if isinstance(timepoints, str | bytes) or not isinstance(timepoints, Iterable):
        raise SequenceArgumentError(
            f"{what}={timepoints!r} is not accepted; expected a time-point trigger "
            "(tc.timepoints.pairs((5, 60), (10, 300))) or a list of offsets in seconds"
        )
    values = list(timepoints)
    if len(values) > MAX_POINTS:
        raise SequenceArgumentError(f"{what} has {len(values)} offsets; at most {MAX_POINTS}")
    return sorted(check_seconds(v, f"{what}[{i}]") for i, v in enumerate(values)), None
