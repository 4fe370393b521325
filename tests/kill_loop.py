"""The kill -9 loop shared by the crash harnesses (a queue's, a sequence's).

A harness script forks a child that runs the engine and writes a ground-truth file; the
loop kills the first child once it wrote ``ready``, then `rounds` more children each after a
random short life, and finally lets one child run to its end. Real time and real processes
on purpose: what is shown is what a real ``kill -9`` leaves on disk.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path


def fork(child: Callable[[bool], None], first: bool) -> int:
    """Fork a child that runs ``child(first)`` and exits (1 if it raised)."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into the harness
        code = 0
        try:
            child(first)
        except BaseException:
            traceback.print_exc()
            code = 1
        os._exit(code)
    return pid


def wait_ready(truth: str, timeout: float = 10.0) -> None:
    """Wait until the ground-truth file says ``ready``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(truth) and b"ready" in Path(truth).read_bytes():
            return
        time.sleep(0.005)  # real time: a real process
    raise SystemExit("the first child never became ready")


def kill_loop(child: Callable[[bool], None], truth: str, rounds: int, seed: int) -> None:
    """Run the loop (see the module docstring) and exit with the last child's exit code."""
    rng = random.Random(seed)
    pid = fork(child, True)
    wait_ready(truth)
    time.sleep(rng.uniform(0.04, 0.2))  # real time: a real process
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    for _ in range(rounds):
        pid = fork(child, False)
        time.sleep(rng.uniform(0.04, 0.2))  # real time: how long the child lives
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    pid = fork(child, False)
    _, status = os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))
