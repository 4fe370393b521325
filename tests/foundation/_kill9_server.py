"""Crash rounds for `test_foundation_log_durability.py` (run as a script, not collected).

``python _kill9_server.py DIR ROUNDS SEED`` imports timecontrol once, then for each round
forks a writer child (forking is what keeps 30 kills within a few seconds: no interpreter
start, no imports), lets it write for a random 5-150 ms, kills it with SIGKILL and, with the
child dead, reads what the file holds. It prints one JSON line per round.

Ground truth: the child writes into a small shared mapping (`mmap` of a file; what a process
writes there survives its ``kill -9``) after each event: the seq and wall time of the newest
event appended, the newest seq its subscriber received, and the first seq of the run. The
file is read afterwards with plain ``sqlite3`` (read-only), not through timecontrol, so the
checks do not trust the code they check.
"""

from __future__ import annotations

import asyncio
import gc
import json
import mmap
import os
import random
import signal
import sqlite3
import struct
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from timecontrol import Log, SystemClock
from timecontrol.stores import SQLiteLog

# first seq, subscriber's newest seq, newest appended seq, its wall, first wall, ready flag;
# then the wall time of every event of the run, by seq - first seq.
_TRUTH = struct.Struct("<qqqddq")
_MAX_EVENTS = 500_000
_SIZE = _TRUTH.size + 8 * _MAX_EVENTS


def _child(path: Path, truth: mmap.mmap, paced: bool) -> None:
    # Each value is written with one 8-byte store, through typed views of the mapping, so that
    # a kill can never leave one half-written. (`struct.pack_into` zeroes its bytes before it
    # fills them in: a kill in between, about one in 500, read as "nothing appended".)
    q, d = memoryview(truth).cast("q"), memoryview(truth).cast("d")
    walls = _TRUTH.size // 8

    async def main() -> None:
        log = Log(sink=SQLiteLog(path), clock=SystemClock(), ring_size=1000)
        sub = log.subscribe()
        q[0] = first = log.last_seq + 1

        async def subscriber() -> None:
            async for event in sub:
                q[1] = event.seq  # what it "printed"

        task = asyncio.create_task(subscriber())
        q[5] = 1  # ready: the kill may come now
        i = 0
        start = time.monotonic()
        while True:
            for _ in range(20 if paced else 200):
                i += 1
                event = log._emit("log.note", f"s{i % 7}", {"i": i, "pad": "x" * (i % 61)})
                if i == 1:
                    d[4] = event.wall
                if i <= _MAX_EVENTS:
                    d[walls + i - 1] = event.wall
                d[3] = event.wall  # the wall first: a kill between leaves the older seq
                q[2] = event.seq
            assert event.seq == first + i - 1
            if paced:  # about 10,000 events/s
                await asyncio.sleep(max(0.0, start + i / 10_000 - time.monotonic()))
            else:  # flat out: only backpressure slows it down
                await asyncio.sleep(0)
        task.cancel()

    asyncio.run(main())


async def _warm_up() -> None:
    log = Log(clock=SystemClock())
    async with log.subscribe() as sub:
        log._emit("log.note")
        await sub.get()
        event = anyio.Event()
        event.set()
        await event.wait()


def _file_state(path: Path) -> dict[str, Any]:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        check = conn.execute("PRAGMA quick_check").fetchall()
        top = conn.execute("SELECT seq, wall FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        reserved = conn.execute("SELECT value FROM meta WHERE key = 'seq_reserved'").fetchone()
        seqs = [row[0] for row in conn.execute("SELECT seq FROM events ORDER BY seq")]
    finally:
        conn.close()
    return {
        "check": [row[0] for row in check],
        "durable_seq": top[0] if top else 0,
        "durable_wall": top[1] if top else 0.0,
        "reserved": int(reserved[0]) if reserved else 0,
        "seqs": seqs,
    }


def _round(path: Path, truth: mmap.mmap, paced: bool, rng: random.Random) -> dict[str, Any]:
    truth[: _TRUTH.size] = bytes(_TRUTH.size)
    # The child's first garbage collection would otherwise copy every page it shares with
    # this process (copy-on-write), a pause of tens of milliseconds at the start of a run.
    gc.collect()
    gc.freeze()
    pid = os.fork()
    if pid == 0:  # the child: write until killed
        try:
            _child(path, truth, paced)
        finally:
            os._exit(1)
    deadline = time.monotonic() + 10
    while struct.unpack_from("<q", truth, 40)[0] == 0:
        if os.waitpid(pid, os.WNOHANG) != (0, 0) or time.monotonic() > deadline:
            return {"error": "the writer died before it was ready"}
        time.sleep(0.0005)  # real time: a real process
    time.sleep(rng.uniform(0.005, 0.15))  # real time: a real process
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    first, sub_max, appended, appended_wall, first_wall, _ = _TRUTH.unpack_from(truth, 0)
    state = _file_state(path)
    seqs = state.pop("seqs")
    mine = [s for s in seqs if s >= first]
    # The oldest event of the run that is not in the file: every event written before it is.
    lost_from = first + len(mine)
    lost_wall = (
        struct.unpack_from("<d", truth, _TRUTH.size + 8 * (lost_from - first))[0]
        if lost_from <= appended and lost_from - first < _MAX_EVENTS
        else None
    )
    return {
        "oldest_lost_wall": lost_wall,
        "paced": paced,
        "killed": os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL,
        "first_seq": first,
        "sub_max": sub_max,
        "appended_seq": appended,
        "appended_wall": appended_wall,
        "first_wall": first_wall,
        "run_durable": len(mine),
        "run_contiguous": mine == list(range(first, first + len(mine))),
        **state,
    }


def main() -> None:
    """Run the rounds; one JSON line each on stdout."""
    folder, rounds, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    # Warm up what a running process has loaded already: anyio imports its asyncio backend on
    # first use, which would pause each child's loop for tens of ms right after it started.
    asyncio.run(_warm_up())
    backing = folder / "truth.bin"
    backing.write_bytes(bytes(_SIZE))
    with backing.open("r+b") as fh:
        truth = mmap.mmap(fh.fileno(), _SIZE)
        for k in range(rounds):
            path = folder / f"log{k // 10}.sqlite"  # ten crashes in a row on each file
            out = _round(path, truth, paced=k % 2 == 1, rng=rng)
            print(json.dumps({"round": k, "file": path.name, **out}), flush=True)


if __name__ == "__main__":
    main()
