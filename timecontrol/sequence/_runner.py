"""Running one point: its chain of actions in order, each with its own record.

The chain runs inside the host's dispatched action, so that a panic (`cancel_running`) or an
engine stop cancels it like any scheduled job; the cancelled action and the rest of the chain
are then recorded as ``cancelled`` and the point too, and the next point is armed (it waits
behind the dispatch gate until the panic is lifted).
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING, Any

from .._dispatch import _text
from . import _kinds as k
from ._core import CANCELLED_STATE, PAUSED, RUNNING_STATE, SequenceCore
from ._point import CANCELLED, FAILED, RUNNING, SKIPPED, SUCCEEDED, Point
from ._records import ActionRecord, plain

if TYPE_CHECKING:
    from .._schedule import Intent
    from ._args import Step

__all__ = ["Runner"]


class Runner(SequenceCore):
    """The run path of a sequence (see the module docstring)."""

    async def _fire(self, intent: Intent) -> None:
        """The dispatched intent: run the next point if it is due, then arm the one after."""
        current = self._intent
        if current is None or current.seq != intent.seq:
            return  # re-armed since this intent was dispatched
        self._intent = None
        point = self._next_point()
        now = self._now()
        if point is None or point.planned is None or point.planned > now:
            self._arm()
            return
        self._running = point
        try:
            await self._run_point(point, now)
        finally:
            self._running = None
            self._arm()
            if self._over():
                self._wake()

    def _begin(self, point: Point, now: float) -> None:
        assert point.planned is not None
        self._pending -= 1
        self._manual_pending.discard(point.index)
        point.status = RUNNING
        point.started = now
        self._emit(
            k.STARTING,
            {
                "index": point.index,
                "kind": point.kind,
                "offset": point.offset,
                "planned": point.planned,
                "late": now - point.planned,
                "started": now,
            },
        )

    async def _run_point(self, point: Point, now: float) -> None:
        self._begin(point, now)
        failure: ActionRecord | None = None
        failed = False
        try:
            # At most once across crashes: the start is on disk before the first action runs,
            # so a restart finds it (and records the point interrupted) whenever it could
            # have run. A commit wait per point (~1 ms with SQLite; nothing in memory).
            await self._host.log.flush()
            for position, step in enumerate(point.chain):
                if failure is not None or self._state == CANCELLED_STATE:
                    status = SKIPPED if failure is not None else CANCELLED
                    point.records.append(ActionRecord(step.name, position, status))
                    continue
                record = await self._run_action(point, position, step)
                if record.status == FAILED:
                    failed = True
                    if self._on_error != "continue":
                        failure = record
                    if self._on_error == "pause" and self._state == RUNNING_STATE:
                        self._pause_at(
                            self._now(), f"action {step.name!r} failed at point {point.index}"
                        )
        except BaseException:
            # Cancelled inside an action (panic, engine stop): the rest never runs.
            for position in range(len(point.records), len(point.chain)):
                point.records.append(ActionRecord(point.chain[position].name, position, CANCELLED))
            self._close_point(point, CANCELLED, "cancelled while running")
            raise
        if failed:
            first = next(r for r in point.records if r.status == FAILED)
            self._close_point(point, FAILED, f"{first.action}: {first.error}: {first.message}")
        elif any(r.status == CANCELLED for r in point.records):
            self._close_point(point, CANCELLED, "the sequence was cancelled")
        else:
            self._close_point(point, SUCCEEDED)

    def _call_kwargs(self, point: Point, name: str) -> dict[str, Any]:
        base = self._kwargs.get(name)
        extra = point.kwargs.get(name)
        if extra is None:
            return dict(base) if base else {}
        return {**base, **extra} if base else dict(extra)

    async def _run_action(self, point: Point, position: int, step: Step) -> ActionRecord:
        kwargs = self._call_kwargs(point, step.name)
        clock = self._host.clock
        started, t0 = clock.time(), clock.monotonic()
        shown = {key: plain(value) for key, value in kwargs.items()}
        try:
            result = await step.fn(**kwargs)
        except Exception as exc:
            record = ActionRecord(
                step.name,
                position,
                FAILED,
                started,
                clock.time(),
                clock.monotonic() - t0,
                error=type(exc).__name__,
                message=_text(str(exc)),
                traceback=_text("".join(traceback.format_exception(exc))),
                kwargs=shown,
            )
        except BaseException:
            record = ActionRecord(
                step.name, position, CANCELLED, started, clock.time(), clock.monotonic() - t0,
                kwargs=shown,
            )  # fmt: skip
            self._record_action(point, record)
            raise
        else:
            record = ActionRecord(
                step.name, position, SUCCEEDED, started, clock.time(), clock.monotonic() - t0,
                result=plain(result), kwargs=shown,
            )  # fmt: skip
        self._record_action(point, record)
        return record

    def _record_action(self, point: Point, record: ActionRecord) -> None:
        point.records.append(record)
        self._emit(k.ACTION, {"index": point.index, **record.to_json()})

    def _pause_at(self, now: float, reason: str) -> None:
        """Pause the timeline (the public `pause`, and ``on_error="pause"``)."""
        self._state = PAUSED
        self._paused_at = now
        self._emit(k.PAUSED, {"reason": reason, "at": now, "remaining": self._pending})
        self._arm()
