"""Crash rounds for `test_queue_kill9.py` (run as a script, not collected).

``python _queue_crash.py STORE TRUTH ROUNDS SEED`` imports timecontrol once, then forks
children (no interpreter start, no imports: many kills in a few seconds). The first child
adds the items (half of them ``on_interrupt="skip"``), makes them durable, starts the queue
and writes ``ready``; each later child opens the same store, where the queue resumes by
itself, and is killed with SIGKILL after a random 40-200 ms. A last child is left to finish
the queue and exits.

Ground truth: each item's plan writes ``start <uid>`` when it begins and ``end <uid>`` when
it is done, each with one ``write(2)`` (what a process has written survives its kill -9).
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent.parent)]

import anyio  # noqa: E402
from queue_support import queue_of  # noqa: E402

import timecontrol as tc  # noqa: E402
from timecontrol.plans import Msg, RunEngine  # noqa: E402

ITEMS = 24
SECONDS = 0.05  # real time per item


def _child(store: str, truth: str, first: bool) -> None:
    async def main() -> None:
        engine = tc.Engine(store=store)
        RunEngine(engine, handle_sigint=False)
        queue = queue_of(engine)
        fd = os.open(truth, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

        def mark(uid: str, seconds: float) -> Any:
            os.write(fd, f"start {uid}\n".encode())
            yield Msg("checkpoint")
            yield Msg("sleep", None, seconds)  # real time: a real process is killed
            os.write(fd, f"end {uid}\n".encode())

        queue.plan(mark, name="mark")
        async with engine:
            if first:
                for n in range(ITEMS):
                    uid = f"i{n:02d}"
                    policy = "skip" if n % 2 else "rerun"
                    queue.add("mark", {"uid": uid, "seconds": SECONDS}, uid=uid,
                              on_interrupt=policy)  # fmt: skip
                await engine.log.flush()
                queue.start()
                os.write(fd, b"ready\n")
            await queue.wait()

    anyio.run(main, backend=os.environ.get("QUEUE_CRASH_BACKEND", "asyncio"))


def _fork(store: str, truth: str, first: bool) -> int:
    pid = os.fork()
    if pid == 0:  # the child: never returns into the harness
        code = 0
        try:
            _child(store, truth, first)
        except BaseException:
            traceback.print_exc()
            code = 1
        os._exit(code)
    return pid


def _wait_ready(truth: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(truth) and b"ready" in Path(truth).read_bytes():
            return
        time.sleep(0.005)  # real time: a real process
    raise SystemExit("the first child never became ready")


def main() -> None:
    store, truth, rounds, seed = sys.argv[1:5]
    if os.environ.get("QUEUE_CRASH_BACKEND") == "trio":
        import trio  # noqa: F401 -- imported once here, not in every (short-lived) child
    rng = random.Random(int(seed))
    pid = _fork(store, truth, True)
    _wait_ready(truth)
    time.sleep(rng.uniform(0.04, 0.2))  # real time: a real process
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    for _ in range(int(rounds)):
        pid = _fork(store, truth, False)
        time.sleep(rng.uniform(0.04, 0.2))  # real time: how long the child lives
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    pid = _fork(store, truth, False)
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
