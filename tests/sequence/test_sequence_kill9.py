"""Crash recovery: processes running a sequence are killed with SIGKILL again and again, each
restart re-declares it, and the store is compared with a ground-truth file at the end.

Real time and real processes on purpose (see `_sequence_crash.py`): what is checked is what
the operating system does to a killed process, which a virtual clock cannot show.

The promises checked (docs/sequences.md, "Restarts and crashes"):

* every restart resumes the same timeline: every point ends, and the sequence finishes;
* no action of a point runs twice, except after its point was recorded ``interrupted`` and
  ``on_interrupt="rerun"`` ran it again (each run of a point is its own record);
* with ``on_interrupt="skip"`` no action ever runs twice, and a point ends ``succeeded``
  (having run its whole chain) or ``interrupted``;
* with ``on_interrupt="rerun"`` every point ends ``succeeded`` having run its whole chain;
* a point recorded ``succeeded`` did run: its actions are in the ground truth.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from _sequence_crash import ACTIONS, NAME, POINTS

from timecontrol.sequence import _kinds as k
from timecontrol.sequence._replay import fold
from timecontrol.stores import read_events

HERE = Path(__file__).resolve().parent
ROUNDS = 12


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and fork are POSIX")
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@pytest.mark.parametrize("policy", ["rerun", "skip"])
def test_kill_9_again_and_again(tmp_path: Path, backend: str, policy: str) -> None:
    store, truth = tmp_path / "lab.sqlite", tmp_path / "truth.txt"
    seed = "3" if policy == "rerun" else "5"
    done = subprocess.run(
        [sys.executable, str(HERE / "_sequence_crash.py"), str(store), str(truth),
         str(ROUNDS), seed, policy],
        env={**os.environ, "SEQUENCE_CRASH_BACKEND": backend},
        timeout=120,
        capture_output=True,
        text=True,
        check=False,  # the assertion below shows the harness's stderr
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line.split() for line in truth.read_text().splitlines() if line != "ready"]
    ran = Counter((action, int(index)) for action, index in lines)
    events = read_events(store, kinds=list(k.ALL), subjects=[NAME])
    final = fold(NAME, events)
    ends = [e.payload for e in events if e.kind == k.POINT]
    interrupted = Counter(p["index"] for p in ends if p["status"] == "interrupted")
    assert len(final.points) == POINTS
    assert final.state == "finished"
    for point in final.points:
        for action in ACTIONS:
            runs = ran[(action, point.index)]
            allowed = 1 + (interrupted[point.index] if policy == "rerun" else 0)
            assert runs <= allowed, f"{action} of point {point.index} ran {runs} times"
            if point.status == "succeeded":
                assert runs >= 1, f"point {point.index} succeeded without {action} running"
        if policy == "rerun":
            assert point.status == "succeeded", point
            assert [a.status for a in point.records] == ["succeeded"] * len(ACTIONS)
        else:
            assert point.status in ("succeeded", "interrupted"), point
            assert interrupted[point.index] <= 1
    # Each point has exactly one final record; the interrupted ones before it were re-run.
    last = {p["index"]: p for p in ends}
    assert sorted(last) == list(range(POINTS))
    restored = [e.payload for e in events if e.kind == k.RESTORED]
    # The rounds did what they are for: points were caught in flight and the sequence resumed.
    assert interrupted, "no crash caught a point in flight"
    assert len(restored) >= 3
    for payload in restored:
        assert payload["rerun"] is (policy == "rerun" and payload["interrupted"] is not None)
    assert [e.kind for e in events].count(k.FINISHED) == 1
