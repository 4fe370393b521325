"""`Point`: one time point of a sequence, live in memory while the sequence runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

import anyio

from ._args import Step
from ._records import ActionRecord, PointRecord, plain

__all__ = ["CANCELLED", "DONE", "FAILED", "INTERRUPTED", "PENDING", "RUNNING", "SKIPPED",
           "SUCCEEDED", "Point"]  # fmt: skip

PENDING: Final = "pending"
RUNNING: Final = "running"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
SKIPPED: Final = "skipped"
CANCELLED: Final = "cancelled"
#: Its chain was running when the process died (recorded by the restart that found it).
INTERRUPTED: Final = "interrupted"
#: The statuses of a point that is over.
DONE: Final = frozenset({SUCCEEDED, FAILED, SKIPPED, CANCELLED, INTERRUPTED})


class Point:
    """One time point of a `Sequence`: its plan, its chain, and (once run) its records.

    Points are made by the sequence (planned ones from its time points, `Sequence.insert`,
    `Sequence.trigger`); read them, wait for them (`wait`) and change pending ones through
    `Sequence.edit`. `record()` is the same summary the Log keeps (``sequence.point``).
    """

    __slots__ = (
        "_done",
        "chain",
        "completed",
        "index",
        "kind",
        "kwargs",
        "metadata",
        "offset",
        "planned",
        "reason",
        "records",
        "sequence",
        "shift",
        "started",
        "status",
    )

    def __init__(
        self,
        sequence: str,
        index: int,
        kind: str,
        offset: float,
        shift: float,
        chain: tuple[Step, ...],
        kwargs: dict[str, dict[str, Any]],
        metadata: dict[str, Any],
    ) -> None:
        self.sequence = sequence
        self.index = index
        self.kind = kind
        self.offset = offset
        self.shift = shift
        self.chain = chain
        self.kwargs = kwargs
        self.metadata = metadata
        self.planned: float | None = None
        self.status: str = PENDING
        self.reason = ""
        self.started: float | None = None
        self.completed: float | None = None
        self.records: list[ActionRecord] = []
        self._done: anyio.Event | None = None

    @property
    def manual(self) -> bool:
        """True for a point made by a manual trigger."""
        return self.kind == "manual"

    @property
    def actions(self) -> tuple[str, ...]:
        """The names of its chain's actions, in order."""
        return tuple(step.name for step in self.chain)

    @property
    def done(self) -> bool:
        """True once it ran, was skipped, cancelled or interrupted (and not to run again)."""
        return self.status in DONE

    @property
    def planned_at(self) -> datetime | None:
        """When it is due, as an aware UTC datetime (None before the sequence starts)."""
        return None if self.planned is None else datetime.fromtimestamp(self.planned, UTC)

    def record(self) -> PointRecord:
        """Its summary now (while pending or running too)."""
        return PointRecord(
            sequence=self.sequence,
            index=self.index,
            kind=self.kind,
            offset=self.offset,
            shift=self.shift,
            planned=self.planned,
            started=self.started,
            completed=self.completed,
            status=self.status,
            reason=self.reason,
            actions=tuple(self.records),
            metadata=dict(self.metadata),
            kwargs={name: plain(kw) for name, kw in self.kwargs.items()},
        )

    async def wait(self) -> PointRecord:
        """Wait until it is done (ran, was skipped or cancelled); returns its summary."""
        while not self.done:
            if self._done is None:
                self._done = anyio.Event()
            await self._done.wait()
        return self.record()

    def _finished(self) -> None:
        done, self._done = self._done, None
        if done is not None:
            done.set()

    def __repr__(self) -> str:
        planned = "unplanned" if self.planned is None else f"at {self.planned_at:%H:%M:%S}"
        return (
            f"<Point {self.sequence}#{self.index} {self.kind} +{self.offset:g}s {planned} "
            f"{self.status} {list(self.actions)}>"
        )
