"""Crashes: processes killed with SIGKILL again and again, then the file and the truth compared.

Real time on purpose: what is checked is what the operating system does to a killed process
(no cleanup, no final flush; the store's lock released by the kernel), which a virtual clock
cannot show. `_crash_rounds.py` forks 32 children that each run two jobs every 20 ms and are
killed after 20-150 ms; every action appends its fire time to a ground-truth file first.

The promises checked (docs/scheduler.md, "Crashes"):

* every fire time ends in exactly one record, across every crash;
* a fire time whose action ran is never recorded as not run (skipped, missed, coalesced);
* no fire time runs twice (at most once), with or without ``durable_start``;
* with ``durable_start`` the records are exact: no fire time is left ``uncertain``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from _crash_rounds import INTERVAL
from scheduler_helpers import Every

from timecontrol.scheduler import ExecutionRecord
from timecontrol.scheduler._records import NOT_RUN_STATUSES, RECORD_KINDS
from timecontrol.stores import read_events

HERE = Path(__file__).resolve().parent
ROUNDS = 32


def _fates(records: list[ExecutionRecord], trigger: Every) -> dict[float, list[str]]:
    """Each fire time's record statuses (a record covering n fire times gives each one)."""
    fates: dict[float, list[str]] = {}
    for r in records:
        first, last = r.scheduled.timestamp(), r.last.timestamp()
        times = [first] if r.count == 1 else [first, *trigger.fire_times(first, last)]
        assert len(times) == r.count, r
        for t in times:
            fates.setdefault(t, []).append(r.status)
    return fates


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and fork are POSIX")
def test_kill_9_again_and_again(tmp_path: Path) -> None:
    store, truth = tmp_path / "lab.sqlite", tmp_path / "truth.txt"
    anchor = time.time() + 0.3  # real time: leave the first child time to open the store
    harness = [sys.executable, str(HERE / "_crash_rounds.py"), str(store), str(truth)]
    done = subprocess.run(
        [*harness, repr(anchor), str(ROUNDS), "7"],
        timeout=60,
        capture_output=True,
        text=True,
        check=False,  # the assertion below shows the harness's stderr
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ran: dict[str, list[float]] = {"fast": [], "durable": []}
    for line in truth.read_text().splitlines():
        job, fire = line.split()
        ran[job].append(float(fire))
    trigger = Every(INTERVAL, anchor)
    seen: Counter[str] = Counter()
    for job in ("fast", "durable"):
        events = read_events(store, kinds=RECORD_KINDS, subjects=[job])
        records = [ExecutionRecord.from_event(e) for e in events]
        fates = _fates(records, trigger)
        first, last = min(fates), max(fates)
        expected = [first, *trigger.fire_times(first, last)]
        assert sorted(fates) == expected, f"{job}: a fire time without a record"
        assert all(len(f) == 1 for f in fates.values()), f"{job}: a fire time with two records"
        assert len(ran[job]) == len(set(ran[job])), f"{job}: a fire time ran twice"
        for fire in ran[job]:
            (status,) = fates[fire]
            assert status not in NOT_RUN_STATUSES, f"{job}: {fire} ran but is recorded {status}"
        for fate in fates.values():
            seen[f"{job} {fate[0]}"] += 1
    assert not any(k.startswith("durable uncertain") for k in seen), seen
    # The rounds did what they are for: runs were caught in flight, with and without
    # durable starts, and fire times were settled after the crashes.
    assert seen["durable interrupted"] + seen["fast uncertain"] + seen["fast interrupted"] >= 3
    assert len(ran["fast"]) >= ROUNDS
    assert len(ran["durable"]) >= ROUNDS
