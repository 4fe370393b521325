"""Limiters: the cost of a call that does not wait, spacing and watchdog timing on the real clock.

Keys (see issue 5):

* ``limiters.overhead_us``: a call through a ``Command`` decorator that never waits, minus a
  bare ``await`` of the same coroutine (asyncio; the trio figure is in ``trio``).
* ``limiters.aiolimiter_overhead_us``: ``await limiter.acquire()`` of aiolimiter 1.x before the
  same bare ``await``, on the same loop, interleaved with ours in the same run.
* ``limiters.await_floor_us``: the bare ``await`` of a trivial coroutine.
* ``limiters.min_gap_ratio`` / ``limiters.spacing_error_pct``: 100 calls at 50/s from 10
  concurrent tasks on the real clock; the smallest gap between consecutive starts over the
  bound (20 ms), and the error of the mean gap against it. The worse backend is the value.
* ``limiters.watchdog_trip_late_ms``: an unfed watchdog (period 50 ms) on the real clock, the
  median lateness of 20 trips, measured by the safety action. The worse backend is the value.

Timings use `time.perf_counter` here because a benchmark measures the library from outside;
the library itself only reads the Clock. Run alone: ``python benchmarks/bench_limiters.py``.
"""

from __future__ import annotations

import itertools
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from timecontrol import current_clock
from timecontrol.limiters import Command, Control

Backend = str
BACKENDS: tuple[Backend, ...] = ("asyncio", "trio")


async def _noop() -> None:
    return None


async def _per_call_us(call: Callable[[], Awaitable[object]], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        await call()
    return (time.perf_counter() - start) / n * 1e6


async def _overheads(n: int, rounds: int, with_aiolimiter: bool) -> dict[str, list[float]]:
    """Per-call µs of each variant, `rounds` times, interleaved so drift hits all alike."""
    # A bound so loose that no call ever waits: the path measured is the one every call
    # takes when the instrument is not busy.
    limited = Command(rate=10**9)(_noop)
    variants: dict[str, Callable[[], Awaitable[object]]] = {"bare": _noop, "ours": limited}
    if with_aiolimiter:
        from aiolimiter import AsyncLimiter

        peer = AsyncLimiter(10**9, 1)

        async def via_aiolimiter() -> None:
            await peer.acquire()
            await _noop()

        variants["aiolimiter"] = via_aiolimiter
    out: dict[str, list[float]] = {name: [] for name in variants}
    for call in variants.values():  # warm up
        await _per_call_us(call, n // 10)
    for _ in range(rounds):
        for name, call in variants.items():
            out[name].append(await _per_call_us(call, n))
    return out


def _overhead_keys(quick: bool) -> dict[str, dict[str, Any]]:
    n, rounds = (30_000, 5) if quick else (200_000, 9)
    runs = anyio.run(_overheads, n, rounds, True, backend="asyncio")
    trio_runs = anyio.run(_overheads, n, rounds, False, backend="trio")
    med = {name: statistics.median(values) for name, values in runs.items()}
    # Overhead per round (ours minus bare in the same round), then the median of those.
    ours = statistics.median(o - b for o, b in zip(runs["ours"], runs["bare"], strict=True))
    peer = statistics.median(a - b for a, b in zip(runs["aiolimiter"], runs["bare"], strict=True))
    trio_ours = statistics.median(
        o - b for o, b in zip(trio_runs["ours"], trio_runs["bare"], strict=True)
    )
    workload = f"{n} sequential non-waiting calls x {rounds} rounds, median of rounds"
    return {
        "limiters.overhead_us": {
            "value": round(ours, 3),
            "unit": "us",
            # The target is the peer's figure from this same run (see the note).
            "target": f"<= {peer:.3f}",
            "peer": "limiters.aiolimiter_overhead_us",
            "ratio_to_peer": round(ours / peer, 3) if peer > 0 else None,
            "trio": round(trio_ours, 3),
            "per_call_us": round(med["ours"], 3),
            "note": workload + "; a Command(rate=1e9) decorator minus the bare await, asyncio; "
            "target: no more than aiolimiter's overhead measured alongside",
        },
        "limiters.aiolimiter_overhead_us": {
            "value": round(peer, 3),
            "unit": "us",
            "per_call_us": round(med["aiolimiter"], 3),
            "informational": True,
            "note": workload + "; peer: AsyncLimiter(1e9, 1).acquire() then the bare await, "
            "minus the bare await",
        },
        "limiters.await_floor_us": {
            "value": round(med["bare"], 3),
            "unit": "us",
            "trio": round(statistics.median(trio_runs["bare"]), 3),
            "informational": True,
            "note": "floor: await of a coroutine that returns at once",
        },
    }


async def _spacing(spin: float) -> dict[str, float]:
    clock = current_clock()
    bound = 1 / 50
    starts: list[float] = []

    @Command(rate=50, spin=spin)
    async def command() -> None:
        starts.append(clock.monotonic())

    async def task() -> None:
        for _ in range(10):
            await command()

    cpu = time.process_time()
    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(task)
    cpu = time.process_time() - cpu
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    mean = (starts[-1] - starts[0]) / (len(starts) - 1)
    return {
        "min_gap_ratio": min(gaps) / bound,
        "error_pct": abs(mean - bound) / bound * 100,
        # Context for the mean: a gap is never shorter than the bound, so one stall of the
        # loop (another process, GC) lengthens the mean for good; the median shows the rest.
        "median_error_pct": abs(statistics.median(gaps) - bound) / bound * 100,
        "max_gap_ms": max(gaps) * 1e3,
        "cpu_pct": cpu / (starts[-1] - starts[0]) * 100,
    }


async def _watchdog_late_ms(trips: int) -> list[float]:
    clock = current_clock()
    late: list[float] = []
    done = anyio.Event()

    async def safety_action() -> None:
        trip = watchdog.last_trip
        assert trip is not None
        late.append((clock.monotonic() - trip.deadline) * 1e3)
        if len(late) >= trips:
            done.set()

    watchdog = Control(0.05, safety_action)
    async with watchdog:
        await done.wait()
    return late


def run(quick: bool) -> dict[str, dict[str, Any]]:
    """Measure everything; quick mode takes about 15 s."""
    out = _overhead_keys(quick)

    # Each trial takes 2 s of real time. The loop can stall (another process, GC) and a
    # stall lengthens the mean gap for good, so several trials are run and the median trial
    # is reported for the mean; the smallest gap is the smallest over every trial.
    trials = 2 if quick else 5
    spacing: dict[str, list[dict[str, float]]] = {
        b: [anyio.run(_spacing, 0.001, backend=b) for _ in range(trials)] for b in BACKENDS
    }
    no_spin = anyio.run(_spacing, 0.0, backend="asyncio")

    def over_trials(key: str, pick: Any = statistics.median) -> dict[str, float]:
        return {b: pick(t[key] for t in runs) for b, runs in spacing.items()}

    min_gap = over_trials("min_gap_ratio", min)
    error = over_trials("error_pct")
    workload = (
        f"100 calls, Command(rate=50), 10 concurrent tasks x 10 calls, real clock, "
        f"{trials} trials per backend"
    )
    out["limiters.min_gap_ratio"] = {
        "value": round(min(min_gap.values()), 4),
        "unit": "ratio",
        "target": ">= 1.0",
        **{b: round(v, 4) for b, v in min_gap.items()},
        "asyncio_without_spin": round(no_spin["min_gap_ratio"], 4),
        "note": workload + "; smallest gap between starts / 20 ms over all trials; worse backend",
    }
    out["limiters.spacing_error_pct"] = {
        "value": round(max(error.values()), 3),
        "unit": "%",
        "target": "<= 1.0",
        **{b: round(v, 3) for b, v in error.items()},
        "trials": {b: [round(t["error_pct"], 3) for t in runs] for b, runs in spacing.items()},
        "asyncio_without_spin": round(no_spin["error_pct"], 3),
        "median_gap_error_pct": {
            b: round(v, 3) for b, v in over_trials("median_error_pct").items()
        },
        "max_gap_ms": {b: round(v, 3) for b, v in over_trials("max_gap_ms", max).items()},
        "cpu_pct": {b: round(v, 1) for b, v in over_trials("cpu_pct").items()},
        "asyncio_without_spin_cpu_pct": round(no_spin["cpu_pct"], 1),
        "note": workload + "; |mean gap - 20 ms| / 20 ms, median trial, worse backend. A gap is "
        "never shorter than the bound, so a stall of the loop (load, GC) lengthens the mean for "
        "good: see max_gap_ms and median_gap_error_pct",
    }

    trips = 20
    late = {b: anyio.run(_watchdog_late_ms, trips, backend=b) for b in BACKENDS}
    medians = {b: statistics.median(values) for b, values in late.items()}
    worst = max(medians.values())
    out["limiters.watchdog_trip_late_ms"] = {
        "value": round(worst, 3),
        "unit": "ms",
        "target": "<= 2.0",
        **{b: round(m, 3) for b, m in medians.items()},
        "max": {b: round(max(values), 3) for b, values in late.items()},
        "note": f"Control(period=0.05) never fed, {trips} trips, real clock, lateness of the "
        "safety action's start after the deadline; median, worse backend",
    }
    return out


if __name__ == "__main__":
    began = time.perf_counter()
    result = run(quick="--quick" in sys.argv)
    json.dump(result, sys.stdout, indent=2)
    print(f"\n# {time.perf_counter() - began:.1f} s", file=sys.stderr)
