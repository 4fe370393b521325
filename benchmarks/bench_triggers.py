"""Trigger benchmarks: the cost of one next-fire computation, ours and peers side by side.

Workload (issue 3): ``*/15 9-17 * * 1-5`` in Europe/Berlin, 10,000 successive fire times from
2025-01-01 (about 56 weeks, so both 2025 DST changes are crossed), each computed from the
previous one exactly as a scheduler does. Every peer runs the same workload in the same
process; before timing, each peer's 10,000 fire times are compared with ours ("agrees").
The figure is the best of several rounds (least disturbed by the machine), in µs per call.

Run alone: ``python benchmarks/bench_triggers.py [--quick]``.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = ["run"]

EXPR = "*/15 9-17 * * 1-5"
ZONE = "Europe/Berlin"
N = 10_000
TARGET_RATIO = 1.5


def _best_us(make: Callable[[], Callable[[], object]], rounds: int) -> float:
    """Best-of-`rounds` cost per call in µs; `make()` returns a fresh N-step walker."""
    best = float("inf")
    for _ in range(rounds):
        step = make()
        gc.collect()
        gc.disable()
        try:
            t0 = time.perf_counter()
            for _ in range(N):
                step()
            elapsed = time.perf_counter() - t0
        finally:
            gc.enable()
        best = min(best, elapsed)
    return best / N * 1e6


def _walk(step_from: Callable[[datetime], datetime | None], start: datetime) -> list[datetime]:
    out: list[datetime] = []
    t: datetime | None = start
    for _ in range(N):
        assert t is not None
        t = step_from(t)
        if t is None:
            break
        out.append(t)
    return out


def _same(a: list[datetime], b: list[datetime]) -> bool:
    return len(a) == len(b) and all(x == y for x, y in zip(a, b, strict=True))


def _skipped(peer: str, exc: BaseException) -> dict[str, object]:
    return {"value": None, "unit": "us", "note": f"skipped: {peer} not available ({exc})"}


def _timepoints(zone: ZoneInfo, rounds: int) -> dict[str, object]:
    """Time points: 10,000 points in two blocks, walked point by point."""
    from timecontrol.triggers import timepoints

    seq_start = datetime(2025, 1, 1, 9, tzinfo=zone)
    tp = timepoints.pairs((N // 2, 1), (N // 2, timedelta(seconds=2)), start=seq_start)
    assert len(_walk(tp.next, seq_start)) == N

    def make_tp() -> Callable[[], object]:
        state = [seq_start]

        def step() -> object:
            nxt = tp.next(state[0])
            assert nxt is not None
            state[0] = nxt
            return nxt

        return step

    return {
        "value": round(_best_us(make_tp, rounds), 3),
        "unit": "us",
        "note": (
            f"TimePoints.next over pairs(({N // 2}, 1 s), ({N // 2}, 2 s)) in {ZONE}, "
            f"{N} successive points, best of {rounds} rounds"
        ),
    }


def run(quick: bool) -> dict[str, dict[str, object]]:
    """Measure and return the `triggers.*` keys (see the module docstring)."""
    import timecontrol.triggers as T

    rounds = 2 if quick else 7
    zone = ZoneInfo(ZONE)
    start = datetime(2025, 1, 1, tzinfo=zone)
    workload = f"{EXPR} in {ZONE}, {N} successive fire times, best of {rounds} rounds"
    results: dict[str, dict[str, object]] = {}

    try:
        ours = T.cron(EXPR, tz=ZONE)
    except ImportError as exc:  # croniter is our cron parser: without it there is no cron
        results["triggers.cron_next_us"] = _skipped("croniter (timecontrol's cron parser)", exc)
        for key in ("croniter", "cronsim", "apscheduler"):
            results[f"triggers.{key}_next_us"] = {
                "value": None,
                "unit": "us",
                "note": "skipped: nothing to compare with (see triggers.cron_next_us)",
            }
        ours = None
    if ours is None:
        results["triggers.timepoints_next_us"] = _timepoints(zone, rounds)
        return results
    reference = _walk(ours.next, start)  # also warms the zone and day tables

    def make_ours() -> Callable[[], object]:
        state = [start]

        def step() -> object:
            state[0] = ours.next(state[0])  # type: ignore[assignment]
            return state[0]

        return step

    results["triggers.cron_next_us"] = {
        "value": round(_best_us(make_ours, rounds), 3),
        "unit": "us",
        "note": f"timecontrol CronTrigger.next; {workload}",
    }

    peers: dict[str, float] = {}

    # --- croniter
    try:
        from croniter import croniter

        it = croniter(EXPR, start)
        agrees = _same(_walk(lambda _t: it.get_next(datetime), start), reference)

        def make_croniter() -> Callable[[], object]:
            it = croniter(EXPR, start)
            return lambda: it.get_next(datetime)

        peers["croniter"] = _best_us(make_croniter, rounds)
        results["triggers.croniter_next_us"] = {
            "value": round(peers["croniter"], 3),
            "unit": "us",
            "note": f"croniter.get_next(datetime); {workload}",
            "peer": "croniter",
            "agrees": agrees,
        }
    except ImportError as exc:
        results["triggers.croniter_next_us"] = _skipped("croniter", exc)

    # --- cronsim
    try:
        from cronsim import CronSim

        sim = CronSim(EXPR, start)
        agrees = _same(_walk(lambda _t: next(sim), start), reference)

        def make_cronsim() -> Callable[[], object]:
            it = CronSim(EXPR, start)
            return lambda: next(it)

        peers["cronsim"] = _best_us(make_cronsim, rounds)
        results["triggers.cronsim_next_us"] = {
            "value": round(peers["cronsim"], 3),
            "unit": "us",
            "note": f"next(CronSim); {workload}",
            "peer": "cronsim",
            "agrees": agrees,
        }
    except ImportError as exc:
        results["triggers.cronsim_next_us"] = _skipped("cronsim", exc)

    # --- APScheduler 3
    try:
        from apscheduler.triggers.cron import CronTrigger

        # APScheduler 3 numbers weekdays from Monday = 0, so crontab's 1-5 is written by name.
        aps = CronTrigger.from_crontab(EXPR.replace("1-5", "mon-fri"), timezone=zone)
        agrees = _same(_walk(lambda t: aps.get_next_fire_time(t, t), start), reference)

        def make_aps() -> Callable[[], object]:
            state = [start]

            def step() -> object:
                state[0] = aps.get_next_fire_time(state[0], state[0])
                return state[0]

            return step

        peers["apscheduler"] = _best_us(make_aps, rounds)
        results["triggers.apscheduler_next_us"] = {
            "value": round(peers["apscheduler"], 3),
            "unit": "us",
            "note": f"APScheduler 3 CronTrigger.get_next_fire_time; {workload}",
            "peer": "apscheduler",
            "agrees": agrees,
        }
    except ImportError as exc:
        results["triggers.apscheduler_next_us"] = _skipped("apscheduler", exc)

    ours_entry = results["triggers.cron_next_us"]
    if peers:
        # The target is relative (1.5x the fastest peer of this very run); run.py compares
        # numbers, so it is written as the absolute bound it amounts to in this run.
        fastest = min(peers, key=lambda k: peers[k])
        ratio = float(ours_entry["value"]) / peers[fastest]  # type: ignore[arg-type]
        ours_entry["target"] = f"<= {TARGET_RATIO * peers[fastest]:.3f}"
        ours_entry["target_rule"] = f"<= {TARGET_RATIO}x the fastest peer ({fastest})"
        ours_entry["fastest_peer"] = fastest
        ours_entry["ratio_to_fastest_peer"] = round(ratio, 3)

    results["triggers.timepoints_next_us"] = _timepoints(zone, rounds)
    return results


def main(argv: list[str]) -> int:
    """Print the results as JSON."""
    print(json.dumps(run(quick="--quick" in argv), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
