"""The experiment queue: throughput, how fast a pause shows, recovery after kill -9, edits.

Real clock, asyncio, in-memory Log unless said otherwise, Ctrl+C handling off.

* ``queue.items_per_s``: 200 items of a one-reading ``count`` plan (a simulated detector,
  no exposure) through the queue, from ``start()`` to finished; median of several runs.
  Target >= 100 (bluesky-queueserver: about 2 items/s, its manager polling its worker every
  0.5 s).
* ``queue.pause_visible_ms``: median time from ``queue.pause()`` (while an item's plan sleeps)
  to the first ``queue.state()`` with status ``paused`` delivered by ``queue.subscribe()``.
* ``queue.recovery_s``: a child process runs the queue on a SQLite store and is killed with
  SIGKILL during an item; then the time from opening a new Engine on that store to the
  interrupted item (``on_interrupt="rerun"``) running again. bluesky-queueserver never
  noticed a killed worker (anchors); this is the whole restart.
* ``queue.edit_while_running_us``: mean cost of one edit (add, move, edit, remove in turn)
  on a queue of 1,000 pending items while an item runs.
* ``queue.queueserver_items_per_s``: the peer, bluesky-queueserver on Redis with the same
  plans; None with the reason when it (or ``redis-server``) is not installed.
"""

from __future__ import annotations

import gc
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import anyio
from _common import Result, result

import timecontrol as tc
from timecontrol.plans import Msg, RunEngine, SimDetector, count
from timecontrol.queue import Queue

N_ITEMS = 200
N_EDITS = 1_000


def _sleeper(seconds: float = 10.0) -> Generator[Any, Any, None]:
    yield Msg("checkpoint")
    yield Msg("sleep", None, seconds)


async def _until_running(queue: Queue) -> None:
    """Wait for the queue's state to show a running item (through its subscription)."""
    async with queue.subscribe() as feed:
        async for state in feed:
            if state.running is not None:
                return


def _engine_and_queue(store: str | None = None) -> tuple[tc.Engine, Queue]:
    engine = tc.Engine(store=store)
    RunEngine(engine, handle_sigint=False)
    queue = engine.queue
    det = SimDetector("det")
    queue.plan(lambda num=1: count([det], num=num), name="count")
    queue.plan(_sleeper, name="sleep")
    return engine, queue


async def _items_per_s(reps: int) -> list[float]:
    engine, queue = _engine_and_queue()
    rates = []
    async with engine:
        for _ in range(reps):
            queue.clear()
            for _ in range(N_ITEMS):
                queue.add("count", {"num": 1})
            gc.collect()
            t0 = time.perf_counter()
            queue.start()
            assert await queue.wait() == "finished"
            rates.append(N_ITEMS / (time.perf_counter() - t0))
    return rates


async def _pause_visible(trials: int) -> list[float]:
    engine, queue = _engine_and_queue()
    out: list[float] = []
    async with engine:
        for _ in range(trials):
            queue.add("sleep", {"seconds": 10.0})
            queue.start()
            await _until_running(queue)
            await anyio.sleep(0.002)
            async with queue.subscribe() as feed:
                await feed.__anext__()  # the state now (running)
                t0 = time.perf_counter()
                queue.pause()
                async for state in feed:
                    if state.status == "paused":
                        out.append((time.perf_counter() - t0) * 1e3)
                        break
            await queue.abort("benchmark")
            await queue.wait()
    return out


async def _edits() -> float:
    engine, queue = _engine_and_queue()
    async with engine:
        queue.add("sleep", {"seconds": 60.0})
        uids = [queue.add("count", {"num": 1}).uid for _ in range(N_EDITS)]
        queue.start()
        await _until_running(queue)
        gc.collect()
        t0 = time.perf_counter()
        for n in range(N_EDITS):
            new = queue.add("count", {"num": 2}, position=n % 500)
            queue.move(uids[n], position=(n * 7) % 900)
            queue.edit(uids[n], kwargs={"num": 3})
            queue.remove(new.uid)
        elapsed = time.perf_counter() - t0
        await queue.abort("benchmark")
        await queue.wait()
    return elapsed / (4 * N_EDITS) * 1e6


_CHILD = r"""
import sys, anyio
sys.path.insert(0, sys.argv[2])
import bench_queue as b

async def main():
    engine, queue = b._engine_and_queue(sys.argv[1])
    async with engine:
        queue.add("sleep", {"seconds": 30.0}, uid="long")
        queue.start()
        await b._until_running(queue)
        await engine.log.flush()
        print("running", flush=True)
        await anyio.sleep_forever()

anyio.run(main)
"""


def _killed_store(folder: str) -> str:
    store = os.path.join(folder, "queue.sqlite")
    bench_dir = str(Path(__file__).resolve().parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([bench_dir, str(Path(bench_dir).parent)])}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, store, bench_dir],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    if line.strip() != "running":
        raise RuntimeError(f"the child did not start its queue: {line!r}")
    return store


async def _recovery(store: str) -> float:
    t0 = time.perf_counter()
    engine, queue = _engine_and_queue(store)
    async with engine:
        with anyio.fail_after(30):
            await _until_running(queue)
        elapsed = time.perf_counter() - t0
        events = engine.log.recent(kinds="queue.item_finished")
        assert events[-1].payload["status"] == "interrupted"
        await queue.abort("benchmark")
        await queue.wait()
    return elapsed


def _queueserver() -> str:
    """Why the peer is not measured (bluesky-queueserver needs Redis and its own manager)."""
    try:
        import bluesky_queueserver  # noqa: F401
    except ImportError:
        return "bluesky-queueserver is not installed (pip install bluesky-queueserver)"
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (Debian: apt-get install redis-server)"
    return (
        "bluesky-queueserver and redis-server are installed, but driving its manager "
        "process is not implemented here yet"
    )


def run(quick: bool) -> dict[str, Result]:
    """Measure every ``queue.*`` key (quick: fewer repetitions and trials)."""
    reps = 3 if quick else 7
    trials = 20 if quick else 100
    rates = anyio.run(_items_per_s, reps)
    pauses = anyio.run(_pause_visible, trials)
    edit_us = anyio.run(_edits)
    recoveries = []
    for _ in range(1 if quick else 3):
        with tempfile.TemporaryDirectory() as folder:
            recoveries.append(anyio.run(_recovery, _killed_store(folder)))
    res: dict[str, Result] = {}
    res["queue.items_per_s"] = result(
        statistics.median(rates), "items/s", target=">= 100",
        note=f"{N_ITEMS} one-reading count plans, median of {reps} runs",
    )  # fmt: skip
    res["queue.pause_visible_ms"] = result(
        statistics.median(pauses), "ms", target="<= 10",
        note=f"queue.pause() to a 'paused' state from queue.subscribe(); median of {trials}; "
        "bluesky-queueserver: about 1000 ms (anchors)",
    )  # fmt: skip
    res["queue.recovery_s"] = result(
        statistics.median(recoveries), "s", target="<= 1",
        note="kill -9 during an item, then a new Engine on the store until the item runs "
        "again (SQLite store; includes opening the store)",
    )  # fmt: skip
    res["queue.edit_while_running_us"] = result(
        edit_us, "us", target="<= 200",
        note=f"add, move, edit, remove on {N_EDITS} pending items while one runs; mean",
    )  # fmt: skip
    res["queue.queueserver_items_per_s"] = result(None, "items/s", note=_queueserver(), peer=True)
    return res


if __name__ == "__main__":
    for key, value in run(quick=True).items():
        print(key, value)
