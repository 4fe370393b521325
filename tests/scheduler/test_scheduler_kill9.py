"""A real process killed with SIGKILL during a run, then reopened: every fire time ends in one
record, the interrupted run is recorded as such, and nothing ran twice.

This test runs in real time on purpose: what it checks is what the operating system does to a
killed process (no cleanup, no final flush; the lock released by the kernel), which a virtual
clock cannot show. It takes a few seconds.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anyio
import pytest
from scheduler_helpers import Every, covered

import timecontrol as tc
from timecontrol.scheduler import ExecutionRecord, Scheduler
from timecontrol.scheduler._records import RECORD_KINDS
from timecontrol.stores import read_events

INTERVAL = 0.5
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

CHILD = textwrap.dedent(
    """
    import os, sys
    sys.path[:0] = [{here!r}, {root!r}]
    import anyio
    from scheduler_helpers import Every
    import timecontrol as tc
    from timecontrol.scheduler import Scheduler

    path, marker, anchor = sys.argv[1], sys.argv[2], float(sys.argv[3])

    async def main():
        engine = tc.Engine(store=path)

        @engine.action
        async def work() -> None:
            now = engine.clock.time()
            with open(marker, "a") as fh:
                fh.write(f"{{now}}\\n")
                fh.flush()
                os.fsync(fh.fileno())
            with open(marker) as fh:
                n = len(fh.readlines())
            await anyio.sleep(60 if n == 3 else 0.05)  # 3rd run killed mid-way; not virtual

        sched = Scheduler(engine)
        sched.add_job("work", Every({interval}, anchor), id="w", conflict="skip")
        async with engine:
            await anyio.sleep_forever()

    anyio.run(main)
    """
)


def _fire_index(t: float, anchor: float) -> int:
    # A run starts at its fire time or (when settled late) before the next one.
    return math.floor((t - anchor) / INTERVAL + 1e-3)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_kill_9_during_a_run_then_reopen(tmp_path: Path) -> None:
    path, marker = tmp_path / "lab.sqlite", tmp_path / "runs.txt"
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(here=str(HERE), root=str(ROOT), interval=INTERVAL))
    anchor = time.time() + 1.0  # leave the child time to start
    child = subprocess.Popen([sys.executable, str(script), str(path), str(marker), str(anchor)])
    try:
        deadline = time.monotonic() + 30
        while not (marker.exists() and len(marker.read_text().splitlines()) >= 3):
            assert child.poll() is None, "the child process died on its own"
            assert time.monotonic() < deadline, "the child never reached its third run"
            time.sleep(0.02)  # real time, not virtual: see the module docstring
        time.sleep(0.3)  # past the Log's 0.1 s commit interval: the start is durable; not virtual
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    time.sleep(1.0)  # downtime: two fire times fall due while nothing runs; not virtual

    async def reopen() -> float:
        engine = tc.Engine(store=path)

        @engine.action
        async def work() -> None:
            with marker.open("a") as fh:
                fh.write(f"{engine.clock.time()}\n")
            await anyio.sleep(0.05)  # real time, not virtual: see the module docstring

        sched = Scheduler(engine)  # the lock died with the child: no error
        assert sched.get_job("w").conflict == "skip"
        restarted = engine.clock.time()
        async with engine:
            await anyio.sleep(4 * INTERVAL + 0.2)  # not virtual
        await sched.aclose()
        return restarted

    restarted = anyio.run(reopen)
    records = [
        ExecutionRecord.from_event(e) for e in read_events(path, kinds=RECORD_KINDS, subjects=["w"])
    ]
    trig = Every(INTERVAL, anchor)
    got = covered(records, trig)
    assert got == trig.fire_times(anchor, max(got)), "a fire time has no record, or two"
    assert max(got) >= restarted + INTERVAL
    interrupted = [r for r in records if r.status == "interrupted"]
    assert len(interrupted) == 1
    assert interrupted[0].started is not None
    assert "running" in (interrupted[0].reason or "")
    # Nothing ran twice: one action start per fire time, and the runs are the records' runs.
    starts = [_fire_index(float(line), anchor) for line in marker.read_text().split()]
    assert len(starts) == len(set(starts))
    ran = sorted(
        _fire_index(r.scheduled.timestamp(), anchor)
        for r in records
        if r.status in ("success", "interrupted", "cancelled", "failure", "timeout")
    )
    assert sorted(starts) == ran
    # The fire times missed while the process was down were settled (coalesced into one run).
    assert any(r.status == "coalesced" for r in records)
