"""The Log's hot path and its durable SQLite sink, on a real asyncio loop and a real disk.

Keys (issue 2, "Benchmarks"):

* ``log.append_us`` (≤ 2 µs): one `Log.append` of a small payload, in memory, with the ring
  full (so every append also evicts). Also ``log.append_sqlite_us`` (no target): the same with
  a `SQLiteLog` sink attached, while its writer thread runs.
* ``log.sqlite_events_per_s`` (≥ 50,000): append N events back to back, then ``await
  log.flush()``; N / (time until the last one is committed).
* ``log.sqlite_max_loop_block_ms`` (≤ 2 ms): the longest stall of a 1 ms ticker task while
  200,000 events are logged through the sink; the producer appends in chunks of 100 with
  ``await anyio.sleep(0)`` between, so the producer's own chunks block the loop for well under
  1 ms. Also ``log.sqlite_loop_block_p99_ms``, and the same workload without a sink as a
  baseline (``log.memory_max_loop_block_ms``), and with the garbage collector paused
  (``log.sqlite_max_loop_block_nogc_ms``): together they separate what the sink costs the loop
  from what full collections cost it. ``log.sqlite_max_durable_lag_ms``: in the same run, the
  longest time from an event's append to its commit (what a ``kill -9`` could lose).
* ``log.floor_append_us``: the floor under ``append``: building the frozen `Event`, encoding
  the payload with msgspec and appending to a bounded deque, nothing else.

Keys (issue "One engine you can leave running"):

* ``log.kill9_lost_ms_1k``, ``log.kill9_lost_ms_10k``, ``log.kill9_lost_ms_100k`` (≤ 100
  each): a child process appends at that rate (paced on the real clock; at 100k/s it may be
  capped by what the machine can do, and the entry gives the achieved rate) through a
  `SQLiteLog`, writes nothing else, and is killed with SIGKILL at a random moment (0.3 to
  1 s after it is ready). Ground truth: after every append the child stores the seq and wall
  time of its newest event in a shared mapping (`mmap`, which outlives the process); the file
  is read afterwards with plain ``sqlite3``. The lost window is the newest appended event's
  wall time minus the newest durable event's; the value is the worst over the kills.
"""

from __future__ import annotations

import asyncio
import gc
import mmap
import os
import random
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
from _common import (
    GCPauses,
    Result,
    StallTicker,
    load_average,
    median,
    per_call_us,
    percentile,
    result,
    runs_note,
)

import timecontrol as tc
from timecontrol._events import Event, encode_payload
from timecontrol.stores import SQLiteLog

KIND = "bench.sampled"  # a user kind: the public `append` refuses the library's own
tc.register_kind(KIND, "a benchmark sample")
SUBJECT = "job-1"


def _payload(i: int = 1) -> dict[str, Any]:
    return {"seq": i, "action": "sample", "due": 1_767_225_600.0 + i, "late": 0.00031}


def _appender(log: tc.Log, payload: dict[str, Any]) -> Callable[[int], None]:
    def go(n: int) -> None:
        append = log.append
        for _ in range(n):
            append(KIND, SUBJECT, payload)

    return go


def _fill(log: tc.Log) -> None:
    _appender(log, _payload())(log.ring_size + 1000)


async def _append_memory(n: int, repeat: int) -> tuple[float, list[float]]:
    log = tc.Log(clock=tc.SystemClock())
    _fill(log)  # steady state: the ring is full, every append evicts the oldest
    return per_call_us(_appender(log, _payload()), n, repeat)


async def _append_sqlite(n: int, repeat: int, path: Path) -> tuple[float, list[float]]:
    log = tc.Log(clock=tc.SystemClock(), sink=SQLiteLog(path))
    try:
        _fill(log)
        await log.flush()
        runs: list[float] = []
        go = _appender(log, _payload())
        for _ in range(repeat):
            t0 = time.perf_counter()
            go(n)
            runs.append((time.perf_counter() - t0) / n * 1e6)
            await log.flush()  # not timed: the next round starts with an idle writer
        return min(runs), runs
    finally:
        await log.aclose()


def _floor_us(n: int, repeat: int) -> float:
    """Event + msgspec payload encoding + bounded deque append: what `append` cannot avoid."""
    ring: deque[Event] = deque(maxlen=100_000)
    payload = _payload()
    clock = tc.SystemClock()
    loop_time = time.monotonic

    def go(count: int) -> None:
        push, enc, now = ring.append, encode_payload, clock.time
        for seq in range(count):
            enc(KIND, payload)
            push(Event(seq, loop_time(), now(), KIND, SUBJECT, payload))

    go(110_000)
    return per_call_us(go, n, repeat)[0]


async def _throughput(n: int, path: Path) -> float:
    log = tc.Log(clock=tc.SystemClock(), sink=SQLiteLog(path))
    try:
        append = log.append
        t0 = time.perf_counter()
        for i in range(n):
            append(KIND, SUBJECT, _payload(i))
        await log.flush()
        return n / (time.perf_counter() - t0)
    finally:
        await log.aclose()


class StallRun:
    """One run of the loop-stall workload; its figures."""

    def __init__(self) -> None:
        self.max_ms = 0.0
        self.p99_ms = 0.0
        self.stalls_ms: list[float] = []
        self.events_per_s = 0.0
        self.over_2ms = 0
        self.over_2ms_with_gc = 0
        self.gc2_count = 0
        self.gc2_max_ms = 0.0
        self.worst_gc_ms = 0.0  # gen-2 GC time inside the worst stall
        self.causes: dict[str, float] = {}  # see StallTicker.causes
        self.load = 0.0  # 1-minute load average at the end (other processes on the machine)
        self.max_backlog = 0  # most events appended but not yet committed, at any chunk
        self.max_durable_lag_ms = 0.0  # longest time from append to commit of any event


def _max_lag(marks: list[tuple[float, int, int]]) -> float:
    """Longest time between an event's append and the first mark at which it was committed."""
    worst, j = 0.0, 0
    for t, appended, _ in marks:
        while j < len(marks) - 1 and marks[j][2] < appended:
            j += 1
        worst = max(worst, marks[j][0] - t)
    return worst


async def _stall(n: int, chunk: int, path: Path | None, *, gc_paused: bool = False) -> StallRun:
    """Log `n` events in chunks while a 1 ms ticker runs; `gc_paused`: collector off meanwhile."""
    sink = SQLiteLog(path) if path is not None else None
    log = tc.Log(clock=tc.SystemClock(), sink=sink)
    out = StallRun()
    gc_was_enabled = gc.isenabled()
    if gc_paused:
        gc.disable()  # for the whole ticker window: re-enabling triggers a big collection
    try:
        async with StallTicker(0.001) as ticker:
            await anyio.sleep(0.05)  # let the ticker settle
            ticker.reset()
            with GCPauses() as gcp:
                append = log.append
                marks: list[tuple[float, int, int]] = []  # (time, appended, committed)
                t0 = time.perf_counter()
                for start in range(0, n, chunk):
                    for i in range(start, min(start + chunk, n)):
                        append(KIND, SUBJECT, _payload(i))
                    if sink is not None:
                        marks.append((time.perf_counter(), log.last_seq, sink.durable_seq))
                    await anyio.lowlevel.checkpoint()
                await log.flush()
                elapsed = time.perf_counter() - t0
                if sink is not None:
                    marks.append((time.perf_counter(), log.last_seq, sink.durable_seq))
                await anyio.sleep(0.005)  # one more tick after the last commit
        if gc_was_enabled:
            gc.enable()
        out.events_per_s = n / elapsed
        out.stalls_ms = ticker.stalls_ms
        out.max_ms = ticker.max_ms
        out.p99_ms = ticker.p99_ms
        blocks = ticker.blocks(2.0)
        out.over_2ms = len(blocks)
        out.over_2ms_with_gc = sum(1 for s, a, b in blocks if gcp.overlapping(a, b) > 0.5 * s)
        if blocks:
            _, a, b = blocks[0]
            out.worst_gc_ms = gcp.overlapping(a, b) * 1e3
        out.gc2_count = gcp.count(2)
        out.gc2_max_ms = gcp.max_ms(2)
        out.causes = ticker.causes(2.0)
        if sink is not None:
            out.max_backlog = max(a - c for _, a, c in marks)
            out.max_durable_lag_ms = _max_lag(marks) * 1e3
        out.load = load_average()
    finally:
        if gc_was_enabled:
            gc.enable()
        await log.aclose()
    return out


async def _main(quick: bool, tmp: Path) -> dict[str, Result]:
    res: dict[str, Result] = {}
    n_append = 200_000 if quick else 1_000_000
    repeat = 5 if quick else 9

    mem, mem_runs = await _append_memory(n_append, repeat)
    floor = _floor_us(n_append, repeat)
    res["log.append_us"] = result(
        mem,
        "µs",
        target="<= 2",
        note=(
            f"Log.append(kind, subject, 4-field payload) in memory on a running asyncio loop, "
            f"ring full (100,000); {n_append:,} appends per run, {runs_note(mem_runs)}; "
            f"{mem / floor:.1f}× the floor (log.floor_append_us)"
        ),
    )
    res["log.floor_append_us"] = result(
        floor,
        "µs",
        note="floor: Event(...) + msgspec payload encoding + deque(maxlen).append, no Log",
        informational=True,
    )

    sq, sq_runs = await _append_sqlite(n_append, repeat, tmp / "append.sqlite")
    res["log.append_sqlite_us"] = result(
        sq,
        "µs",
        note=(
            "as log.append_us with a SQLiteLog sink; the writer thread commits concurrently. "
            f"{n_append:,} appends back to back outrun the disk: the figure includes the "
            "backpressure that keeps the loss bound (100 ms), i.e. it is the sustained rate's "
            "inverse, not the cost of one append; " + runs_note(sq_runs)
        ),
    )
    res.update(await _sqlite_results(quick, tmp))
    return res


async def _sqlite_results(quick: bool, tmp: Path) -> dict[str, Result]:
    """The throughput and loop-stall keys (see the module docstring)."""
    res: dict[str, Result] = {}
    n_tp = 200_000 if quick else 1_000_000
    rates = [await _throughput(n_tp, tmp / f"tp{i}.sqlite") for i in range(3)]
    res["log.sqlite_events_per_s"] = result(
        median(rates),
        "events/s",
        target=">= 50000",
        note=(
            f"append {n_tp:,} events back to back, then await flush(); end to end; median of 3 ("
            + ", ".join(f"{r:,.0f}" for r in rates)
            + ")"
        ),
    )

    n_stall, chunk = 200_000, 100
    reps = 1 if quick else 3
    mem_runs_st = [await _stall(n_stall, chunk, None) for _ in range(reps)]
    sql_runs_st = [await _stall(n_stall, chunk, tmp / f"stall{i}.sqlite") for i in range(reps)]
    nogc_runs_st = [
        await _stall(n_stall, chunk, tmp / f"nogc{i}.sqlite", gc_paused=True) for i in range(reps)
    ]
    nogc = max(nogc_runs_st, key=lambda r: r.max_ms)
    worst = max(sql_runs_st, key=lambda r: r.max_ms)
    pooled = [s for r in sql_runs_st for s in r.stalls_ms]
    mem_worst = max(mem_runs_st, key=lambda r: r.max_ms)
    c = worst.causes
    res["log.sqlite_max_loop_block_ms"] = result(
        worst.max_ms,
        "ms",
        target="<= 2",
        note=(
            f"longest stall of a 1 ms ticker while {n_stall:,} events are logged through "
            f"SQLiteLog (chunks of {chunk}, sleep(0) between), worst of {reps} run(s); "
            f"{worst.over_2ms} stall(s) > 2 ms; in those gaps ({c.get('gap', 0):.0f} ms) the "
            f"loop's thread computed {c.get('loop_cpu', 0):.0f} ms, waited for a CPU "
            f"{c.get('no_cpu', 0):.0f} ms and for the GIL (writer thread; switch interval "
            f"{sys.getswitchinterval() * 1e3:g} ms) {c.get('gil_or_idle', 0):.0f} ms; "
            f"{worst.over_2ms_with_gc} stall(s) mostly a gen-2 GC ({worst.gc2_count} ran, "
            f"longest {worst.gc2_max_ms:.1f} ms; {worst.worst_gc_ms:.1f} ms of GC in the worst "
            f"stall); without a sink: {mem_worst.max_ms:.2f} ms; load average {worst.load:.2f} "
            f"on {os.cpu_count()} CPUs"
        ),
        events_per_s=round(worst.events_per_s),
        stalls_over_2ms=worst.over_2ms,
        stalled_ms={k: round(v, 1) for k, v in c.items() if k != "count"},
        load_average=round(worst.load, 2),
    )
    res.update(_stall_diagnostics(worst, reps, n_stall, chunk, nogc, mem_worst, pooled))
    return res


def _stall_diagnostics(
    worst: StallRun,
    reps: int,
    n_stall: int,
    chunk: int,
    nogc: StallRun,
    mem_worst: StallRun,
    pooled: list[float],
) -> dict[str, Result]:
    """The keys that explain `log.sqlite_max_loop_block_ms` (same runs)."""
    res: dict[str, Result] = {}
    res["log.sqlite_max_durable_lag_ms"] = result(
        worst.max_durable_lag_ms,
        "ms",
        note=(
            "in the same run: the longest time from an event's append to its commit, sampled "
            "between chunks (so a chunk that waited on backpressure counts its wait too); the "
            "sink's backpressure holds what a kill -9 could lose under 100 ms; at most "
            f"{worst.max_backlog:,} events were waiting at once"
        ),
        informational=True,
        max_backlog_events=worst.max_backlog,
    )
    res["log.sqlite_loop_block_p99_ms"] = result(
        percentile(pooled, 99),
        "ms",
        note=f"p99 of the ticker's stalls in the same run(s) ({len(pooled):,} ticks)",
    )
    cn = nogc.causes
    res["log.sqlite_max_loop_block_nogc_ms"] = result(
        nogc.max_ms,
        "ms",
        note=(
            "diagnostic: log.sqlite_max_loop_block_ms's workload with the garbage collector "
            f"paused, i.e. what the sink alone costs the loop: {nogc.over_2ms} stall(s) > 2 ms "
            f"(p99 {nogc.p99_ms:.2f} ms); in those gaps ({cn.get('gap', 0):.0f} ms) the loop "
            f"computed {cn.get('loop_cpu', 0):.0f} ms, waited for a CPU "
            f"{cn.get('no_cpu', 0):.0f} ms, for the GIL {cn.get('gil_or_idle', 0):.0f} ms; "
            f"load average {nogc.load:.2f}"
        ),
        informational=True,
        stalls_over_2ms=nogc.over_2ms,
    )
    res["log.memory_max_loop_block_ms"] = result(
        mem_worst.max_ms,
        "ms",
        note=(
            f"baseline: the same workload without a sink (p99 {mem_worst.p99_ms:.2f} ms, "
            f"{mem_worst.over_2ms} stall(s) > 2 ms, {mem_worst.over_2ms_with_gc} of them mostly "
            f"a gen-2 GC; {mem_worst.gc2_count} gen-2 GCs ran, longest "
            f"{mem_worst.gc2_max_ms:.1f} ms)"
        ),
        informational=True,
    )
    return res


# -- kill -9 ------------------------------------------------------------------------------------

# ready flag, newest appended seq, its wall time, events appended, first event's wall time
_TRUTH = struct.Struct("<qqdqd")
_KILL9_RATES = {"1k": 1_000, "10k": 10_000, "100k": 100_000}


def _kill9_child(db: str, truth_path: str, rate: int) -> None:
    """The child: append at `rate` events/s until killed, recording each append in `truth`."""
    with open(truth_path, "r+b") as fh:
        truth = mmap.mmap(fh.fileno(), _TRUTH.size)
    # One 8-byte store per value (typed views): a kill cannot leave one half-written, as it
    # could with `struct.pack_into`, which zeroes its bytes before it fills them in.
    q, d = memoryview(truth).cast("q"), memoryview(truth).cast("d")

    async def main() -> None:
        log = tc.Log(clock=tc.SystemClock(), sink=SQLiteLog(db), ring_size=1000)
        append = log.append
        n, t0 = 0, time.monotonic()
        q[0] = 1  # ready
        while True:
            due = int((time.monotonic() - t0) * rate) + 1
            while n < due:  # behind schedule (or capped by the machine): catch up
                n += 1
                event = append(KIND, SUBJECT, _payload(n))
                if n == 1:
                    d[4] = event.wall
                d[2] = event.wall  # the wall first: a kill in between errs on the safe side
                q[1] = event.seq
            q[3] = n
            await asyncio.sleep(0.0005)

    asyncio.run(main())


def _kill9_once(rate: int, tmp: Path, k: int, rng: random.Random) -> tuple[float, float, int]:
    """One kill: (lost window in ms, achieved events/s, events lost)."""
    db, truth_path = tmp / f"kill9-{rate}-{k}.sqlite", tmp / f"kill9-{rate}-{k}.truth"
    truth_path.write_bytes(bytes(_TRUTH.size))
    root = Path(tc.__file__).resolve().parent.parent  # the timecontrol measured here
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(Path(__file__).parent)])}
    child = subprocess.Popen(
        [sys.executable, __file__, "--kill9-child", str(db), str(truth_path), str(rate)],
        env=env,
        stderr=subprocess.PIPE,
    )
    with truth_path.open("r+b") as fh:
        truth = mmap.mmap(fh.fileno(), _TRUTH.size)
        deadline = time.monotonic() + 60
        while struct.unpack_from("<q", truth, 0)[0] == 0:
            if child.poll() is not None or time.monotonic() > deadline:
                child.kill()
                _, err = child.communicate()
                raise RuntimeError(f"the kill -9 child did not start: {err.decode()[-500:]}")
            time.sleep(0.005)
        time.sleep(rng.uniform(0.3, 1.0))
        child.send_signal(signal.SIGKILL)
        child.communicate()
        _, newest_seq, newest_wall, count, first_wall = _TRUTH.unpack_from(truth, 0)
        truth.close()
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT seq, wall FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    finally:
        conn.close()
    durable_seq, durable_wall = row if row else (0, first_wall)
    achieved = (count - 1) / (newest_wall - first_wall) if newest_wall > first_wall else 0.0
    return (newest_wall - durable_wall) * 1e3, achieved, newest_seq - durable_seq


def _kill9(quick: bool, tmp: Path) -> dict[str, Result]:
    res: dict[str, Result] = {}
    kills = 3 if quick else 10
    rng = random.Random(20260329)
    for name, rate in _KILL9_RATES.items():
        runs = [_kill9_once(rate, tmp, k, rng) for k in range(kills)]
        lost = [r[0] for r in runs]
        rates = [r[1] for r in runs]
        capped = median(rates) < 0.9 * rate
        res[f"log.kill9_lost_ms_{name}"] = result(
            max(lost),
            "ms",
            target="<= 100",
            note=(
                f"SIGKILL at a random moment of a process appending {rate:,} events/s through "
                f"SQLiteLog (flush_interval 0.1 s), worst of {kills} kills: newest appended "
                "event's wall time minus the newest durable one's (ground truth: an mmap the "
                f"child writes after every append); lost windows "
                + ", ".join(f"{v:.1f}" for v in lost)
                + f" ms; achieved {median(rates):,.0f} events/s"
                + (" (capped by this machine)" if capped else "")
            ),
            kills=kills,
            lost_ms=[round(v, 2) for v in lost],
            achieved_events_per_s=round(median(rates)),
            events_lost_max=max(r[2] for r in runs),
        )
    return res


def run(quick: bool) -> dict[str, Result]:
    """Run every Log benchmark (asyncio, real clock, temporary SQLite files)."""
    gc.collect()
    with tempfile.TemporaryDirectory(prefix="tc-bench-log-") as tmp:
        res = asyncio.run(_main(quick, Path(tmp)))
        res.update(_kill9(quick, Path(tmp)))
        return res


if __name__ == "__main__":
    if sys.argv[1:2] == ["--kill9-child"]:
        _kill9_child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        import json

        print(json.dumps(run("--quick" in sys.argv), indent=1, ensure_ascii=False))
