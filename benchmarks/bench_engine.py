"""The run engine against bluesky's RunEngine, on the same workloads, in the same run.

Real clock, asyncio, in-memory Log, message logging on (timecontrol's default), Ctrl+C
handling off on both sides (bluesky: ``context_managers=[]``).

* ``engine.null_msgs_per_s`` / ``engine.bluesky_null_msgs_per_s``: a plan of 100,000 raw
  ``Msg("null")`` (each library's own Msg), median of several runs. Target: 3x bluesky.
* ``engine.checkpoint_msgs_per_s``: 100,000 ``Msg("checkpoint")``; bluesky's figure for the
  same plan is kept in the entry's ``peer_value``.
* ``engine.count_events_per_s`` / ``engine.bluesky_count_events_per_s``: ``count([det],
  num=1000)`` with each library's own ``count`` and the *same* detector class
  (`timecontrol.plans.SimDetector`, zero exposure: it implements bluesky's Status protocol).
  Target: 3x bluesky.
* ``engine.hard_pause_ms``: median time from ``request_pause()`` (another task, while the plan
  sleeps) to the ``paused`` state event in the Log.
* ``engine.deferred_pause_after_checkpoint_ms``: median time from just before the
  ``checkpoint`` message (a ``call`` message records it) to the ``paused`` state event, with a
  deferred pause pending.
* ``engine.resume_ms``: median time from calling ``resume()`` to the ``running`` state event.
* ``engine.memory_growth_mb``: RSS growth over a 1,000,000-message plan (99 ``null`` then a
  ``checkpoint``, repeated), measured from message 100,000 to the end so that the Log's
  bounded ring (ring_size 1,000 here) has filled; the note gives the growth from the start.

bluesky is imported lazily; without it, its keys are None with a note.
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import time
from collections.abc import Callable, Generator
from typing import Any

import anyio
from _common import Result, result

import timecontrol as tc
from timecontrol.plans import Msg, RunEngine, SimDetector, count

N_MSGS = 100_000
N_EVENTS = 1_000
MEMORY_MSGS = 1_000_000
TARGET_RATIO = 3.0


def _nulls(n: int, msg: Callable[..., Any] = Msg) -> Generator[Any, Any, None]:
    for _ in range(n):
        yield msg("null")


def _checkpoints(n: int, msg: Callable[..., Any] = Msg) -> Generator[Any, Any, None]:
    for _ in range(n):
        yield msg("checkpoint")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


# -- timecontrol -----------------------------------------------------------------------------


async def _ours_throughput(reps: int) -> dict[str, float]:
    out: dict[str, float] = {}
    async with tc.Engine() as engine:
        re = RunEngine(engine, handle_sigint=False)
        await re.run(_nulls(2_000))  # warm-up
        for name, plan_of in (("null", _nulls), ("checkpoint", _checkpoints)):
            rates = []
            for _ in range(reps):
                gc.collect()
                t0 = time.perf_counter()
                await re.run(plan_of(N_MSGS))
                rates.append(N_MSGS / (time.perf_counter() - t0))
            out[name] = statistics.median(rates)
        rates = []
        for _ in range(reps):
            det = SimDetector("det")
            gc.collect()
            t0 = time.perf_counter()
            await re.run(count([det], num=N_EVENTS))
            rates.append(N_EVENTS / (time.perf_counter() - t0))
        out["count"] = statistics.median(rates)
    return out


def _state_mono(engine: tc.Engine, to: str, after: float) -> float:
    for event in engine.log.recent(kinds="run_engine.state", newest_first=True):
        if event.payload["to"] == to and event.mono >= after:
            return event.mono
    raise RuntimeError(f"no state change to {to!r} after {after}")


async def _ours_latencies(trials: int) -> dict[str, list[float]]:
    hard: list[float] = []
    deferred: list[float] = []
    resume: list[float] = []
    async with tc.Engine() as engine:
        re = RunEngine(engine, handle_sigint=False)
        clock = engine.clock

        def sleeper() -> Generator[Any, Any, None]:
            yield Msg("checkpoint")
            yield Msg("sleep", None, 10.0)

        for _ in range(trials):
            t0 = 0.0

            async def pauser() -> None:
                nonlocal t0
                await anyio.sleep(0.002)
                t0 = clock.monotonic()
                re.request_pause()

            async with anyio.create_task_group() as tg:
                tg.start_soon(pauser)
                paused = await re.run(sleeper())
            assert paused.paused
            hard.append(_state_mono(engine, "paused", t0) - t0)
            t1 = clock.monotonic()
            resuming = re.resume()
            async with anyio.create_task_group() as tg:

                async def stop_soon() -> None:
                    await anyio.sleep(0.001)
                    await re.halt()

                tg.start_soon(stop_soon)
                await resuming
            resume.append(_state_mono(engine, "running", t1) - t1)

        marks: list[float] = []

        def deferred_plan() -> Generator[Any, Any, None]:
            yield Msg("checkpoint")
            yield Msg("sleep", None, 0.003)
            yield Msg("call", lambda: marks.append(clock.monotonic()))
            yield Msg("checkpoint")
            yield Msg("null")

        for _ in range(trials):

            async def defer_pause() -> None:
                await anyio.sleep(0.001)
                re.request_pause(defer=True)

            async with anyio.create_task_group() as tg:
                tg.start_soon(defer_pause)
                paused = await re.run(deferred_plan())
            assert paused.paused
            deferred.append(_state_mono(engine, "paused", marks[-1]) - marks[-1])
            await re.stop()
    return {"hard": hard, "deferred": deferred, "resume": resume}


async def _ours_memory() -> tuple[float, float, float]:
    async with tc.Engine(ring_size=1_000) as engine:
        re = RunEngine(engine, handle_sigint=False)
        samples: dict[str, float] = {}

        def plan() -> Generator[Any, Any, None]:
            samples["start"] = _rss_mb()
            for i in range(MEMORY_MSGS // 100):
                for _ in range(99):
                    yield Msg("null")
                yield Msg("checkpoint")
                if i == MEMORY_MSGS // 1000:
                    gc.collect()
                    samples["warm"] = _rss_mb()
            gc.collect()
            samples["end"] = _rss_mb()

        t0 = time.perf_counter()
        await re.run(plan())
        elapsed = time.perf_counter() - t0
    return samples["end"] - samples["warm"], samples["end"] - samples["start"], elapsed


# -- bluesky -----------------------------------------------------------------------------------


def _bluesky(reps: int) -> tuple[dict[str, float], str] | str:
    try:
        from bluesky import RunEngine as BlueskyRunEngine
        from bluesky import __version__ as bluesky_version
        from bluesky.plans import count as bluesky_count
        from bluesky.utils import Msg as BlueskyMsg
    except ImportError as exc:
        return f"bluesky not installed ({exc}); pip install -e '.[bench]'"
    bre = BlueskyRunEngine(context_managers=[])
    bre(_nulls(2_000, BlueskyMsg))  # warm-up
    out: dict[str, float] = {}
    for name, plan_of in (("null", _nulls), ("checkpoint", _checkpoints)):
        rates = []
        for _ in range(reps):
            gc.collect()
            t0 = time.perf_counter()
            bre(plan_of(N_MSGS, BlueskyMsg))
            rates.append(N_MSGS / (time.perf_counter() - t0))
        out[name] = statistics.median(rates)
    rates = []
    for _ in range(max(1, reps - 1)):
        det = SimDetector("det")
        gc.collect()
        t0 = time.perf_counter()
        # bluesky types readings as TypedDicts; ours are plain dicts of the same shape.
        bre(bluesky_count([det], num=N_EVENTS))  # type: ignore[list-item]
        rates.append(N_EVENTS / (time.perf_counter() - t0))
    out["count"] = statistics.median(rates)
    return out, f"bluesky {bluesky_version}"


# -- the module's entry point --------------------------------------------------------------------


def run(quick: bool) -> dict[str, Result]:
    """Measure every ``engine.*`` key (quick: fewer repetitions and trials)."""
    reps = 3 if quick else 7
    trials = 30 if quick else 200
    # Memory first, while nothing else has been allocated and freed in this process.
    growth, growth_total, mem_elapsed = anyio.run(_ours_memory)
    ours = anyio.run(_ours_throughput, reps)
    lat = anyio.run(_ours_latencies, trials)
    peer = _bluesky(reps)
    res: dict[str, Result] = {}
    bs: dict[str, Any]
    if isinstance(peer, str):
        peer_note = peer
        bs = {"null": None, "checkpoint": None, "count": None}
        version = "bluesky"
    else:
        bs, version = peer
        peer_note = f"{version}, same run, same plan shape; median of {reps} runs"

    def target(key: str) -> str | None:
        value = bs.get(key)
        return None if value is None else f">= {TARGET_RATIO * value:.0f}"

    def ratio(key: str) -> float | None:
        value = bs.get(key)
        return None if not value else round(ours[key] / value, 2)

    res["engine.null_msgs_per_s"] = result(
        ours["null"],
        "msgs/s",
        target=target("null"),
        ratio_to_bluesky=ratio("null"),
        note=f"{N_MSGS:,} raw Msg('null'), median of {reps}; target = 3x bluesky in this run",
    )
    res["engine.bluesky_null_msgs_per_s"] = result(
        bs["null"], "msgs/s", peer=version, informational=True, note=peer_note
    )
    res["engine.checkpoint_msgs_per_s"] = result(
        ours["checkpoint"],
        "msgs/s",
        target=target("checkpoint"),
        peer_value=bs["checkpoint"],
        ratio_to_bluesky=ratio("checkpoint"),
        note=f"{N_MSGS:,} Msg('checkpoint'), median of {reps}; peer_value = {version}",
    )
    res["engine.count_events_per_s"] = result(
        ours["count"],
        "events/s",
        target=target("count"),
        ratio_to_bluesky=ratio("count"),
        note=f"count([SimDetector], num={N_EVENTS:,}), median of {reps}; target = 3x bluesky",
    )
    res["engine.bluesky_count_events_per_s"] = result(
        bs["count"],
        "events/s",
        peer=version,
        informational=True,
        note=f"bluesky.plans.count, the same SimDetector class; {peer_note}",
    )
    for key, samples, what in (
        ("hard_pause_ms", lat["hard"], "request_pause() during a sleep -> 'paused'"),
        (
            "deferred_pause_after_checkpoint_ms",
            lat["deferred"],
            "reaching the checkpoint with a deferred pause pending -> 'paused'",
        ),
        ("resume_ms", lat["resume"], "resume() -> 'running'"),
    ):
        ms = [s * 1e3 for s in samples]
        res[f"engine.{key}"] = result(
            statistics.median(ms),
            "ms",
            target="<= 1",
            note=f"median of {len(ms)} trials ({what}); p90 {_p90(ms):.3f} ms, max {max(ms):.3f}",
        )
    res["engine.memory_growth_mb"] = result(
        growth,
        "MB",
        target="<= 1",
        note=(
            f"RSS growth from message 100,000 to {MEMORY_MSGS:,} (checkpoint every 100, message "
            f"logging on, Log ring_size 1,000); from the start: {growth_total:.1f} MB; "
            f"the plan ran at {MEMORY_MSGS / mem_elapsed:,.0f} msgs/s"
        ),
    )
    return res


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


if __name__ == "__main__":
    import json

    quick = "--quick" in sys.argv
    print(json.dumps(run(quick), indent=2, sort_keys=True))
