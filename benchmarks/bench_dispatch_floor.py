"""The dispatch floor: how late and how costly 1000 interval jobs are with raw `loop.call_at`.

The workload is the one in ``shared/anchors.md``: 1000 jobs, each every 0.1 s, whose action is
an async no-op; 5 s (2 s with ``--quick``), real clock, asyncio. *Staggered*: the jobs' phases
are spread evenly over the 0.1 s; *aligned*: all 1000 are due at the same instants.

Lateness is the time from a run's scheduled instant to the first line of its coroutine
running. The first 0.1 s cycle is a warm-up and is left out of the lateness figures; CPU per run
is the process CPU time over the whole window divided by the runs executed (so the loop's own
idle overhead is included, as it is for any scheduler measured the same way).

* ``dispatch.floor_{staggered,aligned}_{median_ms,p99_ms,cpu_us_per_run}`` — the floor: a
  ``loop.call_at`` callback per run that starts the no-op as a task and re-arms itself at
  ``due + 0.1`` (fixed rate, no drift). Nothing can dispatch for less. The scheduler issue's
  names ``dispatch.{staggered,aligned}.floor_{p99_ms,cpu_us_per_run}`` carry the same values.
* ``dispatch.skeleton_{staggered,aligned}_{median_ms,p99_ms,cpu_us_per_run}`` (informational):
  the foundation's `Engine` on the same workload. Each run's action re-submits itself at
  ``due + 0.1`` with ``engine.submit``; the engine records ``action.started`` and
  ``action.succeeded`` in its in-memory Log for every run.
"""

from __future__ import annotations

import asyncio
import gc
import math
import sys
from typing import Any

import anyio
from _common import Result, cpu_time, percentile, result

import timecontrol as tc

JOBS = 1000
INTERVAL = 0.1
LEAD = 0.1  # set-up time before the first run is due
DRAIN = 0.3  # after the window: let the last runs finish


class Outcome:
    """Lateness samples (seconds) and costs of one workload run."""

    def __init__(self, late: list[float], executed: int, expected: int, cpu: float) -> None:
        self.late = late
        self.executed = executed
        self.expected = expected
        self.cpu_us_per_run = cpu / executed * 1e6 if executed else math.nan
        self.median_ms = percentile(late, 50) * 1e3
        self.p99_ms = percentile(late, 99) * 1e3
        self.max_ms = (max(late) if late else math.nan) * 1e3

    @property
    def executed_pct(self) -> float:
        """Runs executed as a share of the runs due in the window."""
        return 100.0 * self.executed / self.expected if self.expected else math.nan


def _phase(i: int, aligned: bool) -> float:
    return 0.0 if aligned else i * INTERVAL / JOBS


def _cycles(duration: float) -> int:
    """Runs per job: every job runs this many times (due = start + phase + k * INTERVAL)."""
    return max(1, round(duration / INTERVAL))


async def _floor(duration: float, aligned: bool) -> Outcome:
    loop = asyncio.get_running_loop()
    cycles = _cycles(duration)
    start = loop.time() + LEAD
    late: list[float] = []
    executed = 0

    async def noop(due: float, k: int) -> None:
        nonlocal executed
        executed += 1
        if k:  # the first cycle is a warm-up
            late.append(loop.time() - due)

    def fire(first: float, k: int) -> None:
        # No reference kept on purpose: the floor adds no bookkeeping, and the task is held
        # by the loop's ready queue until its only step has run.
        loop.create_task(noop(first + k * INTERVAL, k))  # noqa: RUF006
        if k + 1 < cycles:
            loop.call_at(first + (k + 1) * INTERVAL, fire, first, k + 1)

    for i in range(JOBS):
        first = start + _phase(i, aligned)
        loop.call_at(first, fire, first, 0)
    cpu0 = cpu_time()
    await asyncio.sleep(start + cycles * INTERVAL - loop.time() + DRAIN)
    cpu = cpu_time() - cpu0
    return Outcome(late, executed, JOBS * cycles, cpu)


async def _skeleton(duration: float, aligned: bool) -> Outcome:
    clock = tc.SystemClock()
    engine = tc.Engine(clock=clock)
    cycles = _cycles(duration)
    late: list[float] = []
    executed = 0
    start = clock.time() + LEAD

    async def tick(i: int, first: float, k: int) -> None:
        nonlocal executed
        executed += 1
        if k:  # the first cycle is a warm-up
            late.append(clock.time() - (first + k * INTERVAL))
        if k + 1 < cycles:
            engine.submit(
                "tick",
                at=first + (k + 1) * INTERVAL,
                kwargs={"i": i, "first": first, "k": k + 1},
                subject=f"job-{i}",
            )

    engine.action(tick)
    async with engine:
        for i in range(JOBS):
            first = start + _phase(i, aligned)
            engine.submit(
                "tick", at=first, kwargs={"i": i, "first": first, "k": 0}, subject=f"job-{i}"
            )
        cpu0 = cpu_time()
        await anyio.sleep(start + cycles * INTERVAL - clock.time() + DRAIN)
        cpu = cpu_time() - cpu0
    return Outcome(late, executed, JOBS * cycles, cpu)


def _entries(prefix: str, mode: str, o: Outcome, extra: dict[str, Any]) -> dict[str, Result]:
    where = f"{o.executed:,}/{o.expected:,} runs executed ({o.executed_pct:.1f} %)"
    return {
        f"dispatch.{prefix}_{mode}_median_ms": result(
            o.median_ms, "ms", note=f"median lateness; {where}; max {o.max_ms:.2f} ms", **extra
        ),
        f"dispatch.{prefix}_{mode}_p99_ms": result(
            o.p99_ms, "ms", note=f"p99 lateness ({len(o.late):,} samples)", **extra
        ),
        f"dispatch.{prefix}_{mode}_cpu_us_per_run": result(
            o.cpu_us_per_run, "µs", note="process CPU time / runs executed", **extra
        ),
    }


def run(quick: bool) -> dict[str, Result]:
    """The floor and the Engine skeleton, staggered and aligned, on a real clock."""
    duration = 2.0 if quick else 5.0
    out: dict[str, Result] = {}
    floors: dict[str, Outcome] = {}
    for mode in ("staggered", "aligned"):
        gc.collect()
        o = asyncio.run(_floor(duration, mode == "aligned"))
        floors[mode] = o
        out.update(_entries("floor", mode, o, {"executed_pct": round(o.executed_pct, 2)}))
        same = "same value as dispatch.floor_{}_{}".format
        out[f"dispatch.{mode}.floor_p99_ms"] = result(
            o.p99_ms, "ms", note=same(mode, "p99_ms") + " (name used by the scheduler issue)"
        )
        out[f"dispatch.{mode}.floor_cpu_us_per_run"] = result(
            o.cpu_us_per_run,
            "µs",
            note=same(mode, "cpu_us_per_run") + " (name used by the scheduler issue)",
        )
    for mode in ("staggered", "aligned"):
        gc.collect()
        o = asyncio.run(_skeleton(duration, mode == "aligned"))
        f = floors[mode]
        extra = {"informational": True, "executed_pct": round(o.executed_pct, 2)}
        entries = _entries("skeleton", mode, o, extra)
        entries[f"dispatch.skeleton_{mode}_p99_ms"]["note"] += (
            f"; {o.p99_ms / f.p99_ms:.1f}× the floor's p99" if f.p99_ms > 0 else ""
        )
        entries[f"dispatch.skeleton_{mode}_cpu_us_per_run"]["note"] += (
            f"; {o.cpu_us_per_run / f.cpu_us_per_run:.1f}× the floor's"
            if f.cpu_us_per_run > 0
            else ""
        )
        out.update(entries)
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(run("--quick" in sys.argv), indent=1, ensure_ascii=False))
