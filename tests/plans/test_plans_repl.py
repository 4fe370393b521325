"""Ctrl+C in ``python -m asyncio``: the plan pauses instead of being cancelled; resume works.

A real REPL in a subprocess, a real SIGINT, real time (a few seconds).
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

pytestmark = pytest.mark.skipif(os.name != "posix", reason="needs POSIX signals")

SETUP = [
    "import timecontrol as tc",
    "from timecontrol.plans import RunEngine, SimDetector, call, count, ensure_generator",
    "engine = tc.Engine(); await engine.start()",
    "RE = RunEngine(engine)",
    "det = SimDetector('det', exposure=0.05)",
    "def plan():\n"
    "    yield from call(print, 'STARTED', flush=True)\n"
    "    return (yield from count([det], num=20, delay=0.05))\n",
    "r = await RE.run(plan()); print('FIRST', r.paused, RE.state, flush=True)",
]


def _reader(stream: object, out: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        out.put(line)


def _wait_for(lines: queue.Queue[str], marker: str, seen: list[str], timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            continue
        seen.append(line)
        if marker in line:
            return line
    raise AssertionError(f"no {marker!r} within {timeout} s; output:\n{''.join(seen)}")


def test_ctrl_c_pauses_a_plan_in_the_asyncio_repl() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "asyncio"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    assert proc.stdin is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
    seen: list[str] = []
    try:
        for line in SETUP:
            proc.stdin.write(line + "\n")
        proc.stdin.flush()
        _wait_for(lines, "STARTED", seen)
        # Real time: a real REPL process, where no virtual clock can reach.
        time.sleep(0.3)  # a few points into the count (not virtual)
        proc.send_signal(signal.SIGINT)
        first = _wait_for(lines, "FIRST", seen)
        assert "FIRST True paused" in first
        proc.stdin.write(
            "r = await RE.resume(); "
            "print('SECOND', r.exit_status, r.plan_result, "
            "[e.payload['seq_num'] for e in engine.log.recent(kinds='run.event')], flush=True)\n"
            "await engine.stop()\n"
        )
        proc.stdin.flush()
        second = _wait_for(lines, "SECOND", seen)
        seq = list(range(1, 21))
        assert f"SECOND success 20 {seq}" in second  # each point once: a deferred pause
        proc.stdin.close()
        proc.wait(timeout=30)
        assert "Traceback" not in "".join(seen)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
