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
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parent.parent)]

import anyio  # noqa: E402
from kill_loop import kill_loop  # noqa: E402
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


def main() -> None:
    store, truth, rounds, seed = sys.argv[1:5]
    if os.environ.get("QUEUE_CRASH_BACKEND") == "trio":
        import trio  # noqa: F401 -- imported once here, not in every (short-lived) child
    kill_loop(lambda first: _child(store, truth, first), truth, int(rounds), int(seed))


if __name__ == "__main__":
    main()
