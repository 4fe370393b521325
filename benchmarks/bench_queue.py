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
* ``queue.queueserver_items_per_s``: the peer, bluesky-queueserver (the ``bench`` extra) with
  the same 200 one-reading ``count`` plans, through its RE Manager started as a subprocess on
  a ``redis-server`` (Debian's) started on a free localhost port; both are stopped after.
  None with the reason when it, ``redis-server`` or its manager cannot run here.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import signal
import socket
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


_QS_STARTUP = """
from bluesky import RunEngine
from bluesky.plans import count
from ophyd.sim import det

RE = RunEngine({})
"""

_QS_PERMISSIONS = """
user_groups:
  root:
    allowed_plans: [null]
    forbidden_plans: [null]
    allowed_devices: [null]
    forbidden_devices: [null]
    allowed_functions: [null]
    forbidden_functions: [null]
  primary:
    allowed_plans: [":.*"]
    forbidden_plans: [null]
    allowed_devices: [":?.*:depth=5"]
    forbidden_devices: [null]
    allowed_functions: [null]
    forbidden_functions: [null]
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    """Stop a process this benchmark started (SIGTERM, then SIGKILL), and its children."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _queueserver_missing() -> str | None:
    """Why the peer cannot be measured here (None: it can)."""
    try:
        import bluesky_queueserver  # noqa: F401
        import bluesky_queueserver_api  # noqa: F401
    except ImportError as exc:
        return (
            f"bluesky-queueserver is not installed ({exc}); pip install -e '.[bench]' installs it"
        )
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (Debian: apt-get install redis-server)"
    if not _manager_cmd():
        return "bluesky-queueserver's start-re-manager is not on PATH"
    return None


def _manager_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("start-re-manager")
    found = str(exe) if exe.exists() else shutil.which("start-re-manager")
    return [found] if found else []


def _queueserver_rates(reps: int) -> list[float]:
    """bluesky-queueserver: the same 200 one-reading count plans (ophyd's simulated `det`),
    through its RE Manager (a subprocess, with its worker) on a Redis server started here;
    timed from ``queue_start`` until the manager is idle with the queue empty."""
    from bluesky_queueserver_api import BPlan
    from bluesky_queueserver_api.zmq import REManagerAPI

    redis = manager = None
    folder = tempfile.mkdtemp(prefix="bench_qs_")
    try:
        redis_port, control, info = _free_port(), _free_port(), _free_port()
        redis = subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", folder],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        startup = Path(folder, "startup")
        startup.mkdir()
        (startup / "startup.py").write_text(_QS_STARTUP)
        permissions = Path(folder, "permissions.yaml")
        permissions.write_text(_QS_PERMISSIONS)
        manager = subprocess.Popen(
            [*_manager_cmd(), "--redis-addr", f"127.0.0.1:{redis_port}",
             "--redis-name-prefix", f"bench_{os.getpid()}",
             "--zmq-control-addr", f"tcp://127.0.0.1:{control}",
             "--zmq-info-addr", f"tcp://127.0.0.1:{info}",
             "--startup-dir", str(startup),
             "--existing-plans-devices", str(Path(folder, "existing.yaml")),
             "--user-group-permissions", str(permissions),
             "--zmq-publish-console", "OFF", "--console-output", "OFF", "--silent"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            cwd=folder,
        )  # fmt: skip
        api = REManagerAPI(
            zmq_control_addr=f"tcp://127.0.0.1:{control}",
            status_expiration_period=0.01,
            status_polling_period=0.01,
        )
        try:
            return _drive_queueserver(api, BPlan, reps)
        finally:
            with contextlib.suppress(Exception):
                api.environment_close()
                api.wait_for_idle(timeout=30)
            api.close()
    finally:
        _stop(manager)
        _stop(redis)
        shutil.rmtree(folder, ignore_errors=True)


def _drive_queueserver(api: Any, plan: Any, reps: int) -> list[float]:
    deadline = time.monotonic() + 60
    while True:  # the manager takes a moment to come up
        try:
            api.status()
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    api.environment_open()
    api.wait_for_idle(timeout=120)
    if not api.status()["worker_environment_exists"]:
        raise RuntimeError("bluesky-queueserver could not open its worker environment")
    rates = []
    for _ in range(reps):
        api.queue_clear()
        api.item_add_batch([plan("count", ["det"], num=1) for _ in range(N_ITEMS)])
        t0 = time.perf_counter()
        api.queue_start()
        api.wait_for_idle(timeout=N_ITEMS * 5)
        elapsed = time.perf_counter() - t0
        status = api.status()
        if status["items_in_queue"] != 0:
            raise RuntimeError(f"the queue did not run out: {status['items_in_queue']} left")
        rates.append(N_ITEMS / elapsed)
    return rates


def _queueserver(quick: bool) -> Result:
    """``queue.queueserver_items_per_s``: measured, or None with the reason."""
    reps = 1 if quick else 3
    note = (
        f"bluesky-queueserver {{}}: {N_ITEMS} one-reading count plans (ophyd.sim det) through "
        "its RE Manager and worker on a local redis-server; median of {} run(s)"
    )
    missing = _queueserver_missing()
    if missing is not None:
        return result(None, "items/s", note=missing, peer=True)
    try:
        rates = _queueserver_rates(reps)
    except Exception as exc:
        return result(
            None, "items/s", peer=True,
            note=f"bluesky-queueserver could not be driven here: {type(exc).__name__}: {exc}",
        )  # fmt: skip
    from importlib.metadata import version

    return result(
        statistics.median(rates), "items/s", peer=True,
        note=note.format(version("bluesky-queueserver"), reps),
    )  # fmt: skip


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
    res["queue.queueserver_items_per_s"] = _queueserver(quick)
    return res


if __name__ == "__main__":
    for key, value in run(quick=True).items():
        print(key, value)
