"""Shared helpers for the scheduler tests: a tiny stand-in trigger and record checks."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from timecontrol.scheduler import ExecutionRecord
from timecontrol.triggers._protocol import TriggerBase


class Every(TriggerBase):
    """Fire every `seconds`, at ``anchor + k * seconds`` (k >= 1), optionally `count` times.

    A stand-in with exact arithmetic, so that the tests check the scheduler, not a trigger.
    """

    json_type = "test_every"

    def __init__(self, seconds: float, anchor: float, count: int | None = None) -> None:
        self.seconds = seconds
        self.anchor = anchor
        self.count = count

    def next(self, after: datetime) -> datetime | None:
        k = math.floor((after.timestamp() - self.anchor) / self.seconds) + 1
        k = max(k, 1)
        # Compare as datetimes: a fire time rounds to the microsecond, and may round to `after`.
        while datetime.fromtimestamp(self.anchor + k * self.seconds, UTC) <= after:
            k += 1
        if self.count is not None and k > self.count:
            return None
        return datetime.fromtimestamp(self.anchor + k * self.seconds, UTC)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.json_type,
            "seconds": self.seconds,
            "anchor": self.anchor,
            "count": self.count,
        }

    def explain(self) -> str:
        return f"every {self.seconds} s from {self.anchor}"

    @classmethod
    def _from_json(cls, d: dict[str, Any]) -> Every:
        return cls(d["seconds"], d["anchor"], d.get("count"))

    def fire_times(self, start: float, end: float) -> list[float]:
        """Every fire time in ``(start, end]``."""
        out: list[float] = []
        t: datetime | None = datetime.fromtimestamp(start, UTC)
        while t is not None:
            t = self.next(t)
            if t is None or t.timestamp() > end:
                break
            out.append(t.timestamp())
        return out


def covered(records: Iterable[ExecutionRecord], trigger: Every) -> list[float]:
    """Every (non-manual) fire time the records cover, one entry per coverage, sorted."""
    out: list[float] = []
    for r in records:
        if r.manual:
            continue
        first, last = r.scheduled.timestamp(), r.last.timestamp()
        if r.count == 1:
            out.append(first)
        else:
            times = [first, *trigger.fire_times(first, last)]
            assert len(times) == r.count, (r, times)
            out.extend(times)
    return sorted(out)


def virtual(*backends: str, start: str | None = None) -> Any:
    """Run an ``async def`` test under a fresh `VirtualClock`, once per backend.

    (The package's ``@pytest.mark.timecontrol`` marker does the same; under pytest 9 its
    backend parameter does not reach the test item, so these tests use this small runner.)
    """
    import functools
    import inspect

    import pytest

    from timecontrol.testing import VirtualClock

    chosen = backends or ("asyncio", "trio")

    def decorate(fn: Any) -> Any:
        sig = inspect.signature(fn)

        @pytest.mark.parametrize("backend", chosen)
        @functools.wraps(fn)
        def wrapper(backend: str, **kwargs: Any) -> None:
            VirtualClock(start).run(functools.partial(fn, **kwargs), backend=backend)  # type: ignore[arg-type]

        params = [inspect.Parameter("backend", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        params += list(sig.parameters.values())
        wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        return wrapper

    return decorate


def records_in(log: Any, job_id: str | None = None) -> list[ExecutionRecord]:
    """The execution records still in a Log's ring (also after its engine stopped)."""
    from timecontrol.scheduler._records import RECORD_KINDS

    return [ExecutionRecord.from_event(e) for e in log.recent(kinds=RECORD_KINDS, subjects=job_id)]
