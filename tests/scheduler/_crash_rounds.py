"""Crash rounds for `test_scheduler_kill9.py` (run as a script, not collected).

``python _crash_rounds.py STORE TRUTH ANCHOR ROUNDS SEED`` imports timecontrol once, then for
each round forks a child (forking keeps 30+ kills within a few seconds: no interpreter start,
no imports) that opens the store and runs two jobs every `INTERVAL` seconds, lets it run for a
random 20-150 ms, and kills it with SIGKILL. A first child creates the file and stops
cleanly; a last one runs briefly and stops cleanly, so that every fire time is settled.

Ground truth: the action's first step appends ``<job> <fire time>`` to the TRUTH file with one
``write(2)`` (what a process has written survives its ``kill -9``); the fire time is the one
its ``job.started`` event names, read from the Log's memory, not from the store under test.
One job has ``durable_start=True``, the other relies on the start horizon.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent.parent)]

import anyio  # noqa: E402
from scheduler_helpers import Every  # noqa: E402

import timecontrol as tc  # noqa: E402

INTERVAL = 0.02


def _child(store: str, truth: str, anchor: float, run_for: float | None) -> None:
    async def main() -> None:
        engine = tc.Engine(store=store)
        fd = os.open(truth, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

        @engine.action
        async def work(job: str) -> None:
            (started,) = engine.log.recent(kinds="job.started", subjects=job, limit=1,
                                           newest_first=True)  # fmt: skip
            os.write(fd, f"{job} {started.payload['scheduled']!r}\n".encode())
            await anyio.sleep(0.004)  # real time: this is a real process being killed

        for job, durable in (("fast", False), ("durable", True)):
            engine.add_job("work", Every(INTERVAL, anchor), id=job, kwargs={"job": job},
                           durable_start=durable, replace_existing=True)  # fmt: skip
        async with engine:
            if run_for is None:
                await anyio.sleep_forever()
            await anyio.sleep(run_for)  # real time

    anyio.run(main)


def _fork(store: str, truth: str, anchor: float, run_for: float | None) -> int:
    pid = os.fork()
    if pid == 0:  # the child: never returns into the harness
        code = 0
        try:
            _child(store, truth, anchor, run_for)
        except BaseException:
            traceback.print_exc()
            code = 1
        os._exit(code)
    return pid


def main() -> None:
    store, truth, anchor, rounds, seed = sys.argv[1:6]
    rng = random.Random(int(seed))
    # A first, clean round creates the file: a kill while SQLite creates a new file is the
    # store's own crash test's business (it leaves a rollback journal), not this one's.
    pid = _fork(store, truth, float(anchor), 0.01)
    _, status = os.waitpid(pid, 0)
    if status:
        sys.exit(os.waitstatus_to_exitcode(status))
    for _ in range(int(rounds)):
        pid = _fork(store, truth, float(anchor), None)
        time.sleep(rng.uniform(0.02, 0.15))  # real time: how long the child lives
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    pid = _fork(store, truth, float(anchor), 0.25)
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
