"""Crash rounds for `test_sequence_kill9.py` (run as a script, not collected).

``python _sequence_crash.py STORE TRUTH ROUNDS SEED POLICY`` imports timecontrol once, then
forks children (no interpreter start, no imports: many kills in a few seconds). The first
child declares and starts the sequence, makes that durable and writes ``ready``; each later
child opens the same store and re-declares the sequence, which resumes from the store
(``on_interrupt=POLICY``, ``on_downtime="catch_up"``), and is killed with SIGKILL after a
random 40-200 ms. A last child is left to finish the sequence and exits.

Ground truth: each action appends ``<action> <point index>`` to TRUTH with one ``write(2)``
and an ``fsync`` just before it returns (what a process has written survives its kill -9).

The children run on the real clock, with points 25 ms apart: what is checked is what the
operating system does to a killed process, which a virtual clock cannot show.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE.parent.parent)]

import anyio  # noqa: E402
from kill_loop import kill_loop  # noqa: E402

import timecontrol as tc  # noqa: E402
from timecontrol.sequence import Sequence  # noqa: E402

NAME = "crash"
POINTS = 30
SPACING = 0.025  # real seconds between points
ACTIONS = {"sample": 0.006, "analyse": 0.012}  # real seconds each action takes


def _child(store: str, truth: str, first: bool, policy: str) -> None:
    async def main() -> None:
        engine = tc.Engine(store=store)
        fd = os.open(truth, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        box: list[Sequence] = []

        async def act(name: str) -> None:
            index = box[0].status.running
            await anyio.sleep(ACTIONS[name])  # real time: a real process is killed
            os.write(fd, f"{name} {index}\n".encode())
            os.fsync(fd)

        @engine.action
        async def sample() -> None:
            await act("sample")

        @engine.action
        async def analyse() -> None:
            await act("analyse")

        seq = engine.sequence(
            list(ACTIONS), [n * SPACING for n in range(1, POINTS + 1)], name=NAME,
            on_interrupt=policy, on_downtime="catch_up",
        )  # fmt: skip
        box.append(seq)
        async with engine:
            seq.start()  # (a no-op for a resumed sequence: it has its start)
            if first:
                await engine.log.flush()
                os.write(fd, b"ready\n")
            await seq.join()

    anyio.run(main, backend=os.environ.get("SEQUENCE_CRASH_BACKEND", "asyncio"))


def main() -> None:
    store, truth, rounds, seed, policy = sys.argv[1:6]
    if os.environ.get("SEQUENCE_CRASH_BACKEND") == "trio":
        import trio  # noqa: F401 -- imported once here, not in every (short-lived) child
    kill_loop(lambda first: _child(store, truth, first, policy), truth, int(rounds), int(seed))


if __name__ == "__main__":
    main()
