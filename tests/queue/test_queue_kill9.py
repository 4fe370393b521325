"""Step 4: crash recovery. Processes killed with SIGKILL again and again while the queue
runs, then the store and the ground truth compared; and a restart in the same process.

Real time and real processes on purpose (see `_queue_crash.py`): what is checked is what the
operating system does to a killed process, which a virtual clock cannot show.

The promises checked (docs/queue.md, "Crashes"):

* after each restart the queue resumes by itself at the first unfinished item, and the item
  that was in flight (as far as the store knows) is recorded ``interrupted``;
* an item with ``on_interrupt="skip"`` never starts twice (its start is durable before its
  plan runs) and is left ``interrupted`` if a crash caught it;
* an item with ``on_interrupt="rerun"`` ends ``succeeded``, having run to its end at least
  once;
* items first start in queue order (a ``skip`` item may never start at all, if the crash
  fell between its durable start and its plan), and the queue finishes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import anyio
import pytest
from _queue_crash import ITEMS
from queue_support import running, started_uids

from timecontrol.queue import ALL_KINDS, ItemStatus
from timecontrol.queue._model import QueueModel
from timecontrol.stores import read_events

HERE = Path(__file__).resolve().parent
ROUNDS = 12


def _final_model(store: Path) -> QueueModel:
    model = QueueModel()
    for event in read_events(store, kinds=sorted(ALL_KINDS)):
        model.apply(event)
    return model


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and fork are POSIX")
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_kill_9_again_and_again(tmp_path: Path, backend: str) -> None:
    store, truth = tmp_path / "lab.sqlite", tmp_path / "truth.txt"
    done = subprocess.run(
        [sys.executable, str(HERE / "_queue_crash.py"), str(store), str(truth), str(ROUNDS), "2"],
        env={**os.environ, "QUEUE_CRASH_BACKEND": backend},
        timeout=120,
        capture_output=True,
        text=True,
        check=False,  # the assertion below shows the harness's stderr
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line.split() for line in truth.read_text().splitlines() if line != "ready"]
    starts = Counter(uid for what, uid in lines if what == "start")
    ends = Counter(uid for what, uid in lines if what == "end")
    model = _final_model(store)
    uids = [f"i{n:02d}" for n in range(ITEMS)]
    assert [i.uid for i in model.ordered()] == uids
    first_starts = list(dict.fromkeys(uid for what, uid in lines if what == "start"))
    assert first_starts == [u for u in uids if u in starts], "items first started out of order"
    for uid in set(uids) - set(starts):  # a crash between its durable start and its plan
        item = model.items[uid]
        assert (item.on_interrupt, item.status) == ("skip", ItemStatus.INTERRUPTED), item
    for item in model.ordered():
        if item.on_interrupt == "skip":
            assert starts[item.uid] <= 1, f"{item.uid} (skip) started twice"
            assert item.status in (ItemStatus.SUCCEEDED, ItemStatus.INTERRUPTED), item
            if item.status is ItemStatus.SUCCEEDED:
                assert ends[item.uid] == 1, f"{item.uid} succeeded without running"
        else:
            assert item.status is ItemStatus.SUCCEEDED, item
            assert ends[item.uid] >= 1, f"{item.uid} succeeded without running to its end"
    events = read_events(store, kinds=["queue.item_finished", "queue.restored", "queue.stopped"])
    interrupted = [e for e in events if e.payload.get("status") == "interrupted"]
    resumed = [e for e in events if e.kind == "queue.restored" and e.payload["resumed"]]
    # The rounds did what they are for: items were caught in flight and the queue resumed.
    assert interrupted, "no crash caught an item in flight"
    assert len(resumed) >= 3
    for event in interrupted:
        assert event.payload["reason"] == "the process ended while it ran"
    finished = [e for e in events if e.kind == "queue.stopped"]
    assert finished[-1].payload["reason"] == "finished"


@pytest.mark.timecontrol
async def test_a_clean_restart_restores_the_queue_without_resuming(tmp_path: Path) -> None:
    store = tmp_path / "lab.sqlite"
    async with running(store) as (engine, q):
        q.add_queue("night", loop=True)
        q.add("wait", {"seconds": 1}, uid="a", item_type="blank")
        q.add("wait", {"seconds": 50}, uid="b", on_interrupt="skip")
        q.add("wait", {"seconds": 1}, uid="c", queue="night")
        q.configure(delay_default=2)
        q.skip("c")
        q.start()
        await anyio.sleep(10)  # virtual: b runs when the engine stops
    async with running(store) as (engine, q):
        assert [i.uid for i in q.items()] == ["a", "b", "c"]
        assert [i.status for i in q.items()] == [
            ItemStatus.SUCCEEDED,
            ItemStatus.INTERRUPTED,  # skip: not to run again
            ItemStatus.PENDING,
        ]
        assert q.item("c").skip
        assert q.queues()[1].loop
        assert q.item("a").item_type == "blank"
        assert q.configure()["delay_default"] == 2
        assert q.state().status == "idle"  # a clean stop: not resumed
        assert q.state().last_stop is None
        assert started_uids(engine) == []
        assert q.eta().seconds == 0.0
        # ETA learned from the Log of the previous run: a (1 s) is known.
        q.add("wait", {"seconds": 1}, uid="d")
        assert q.eta().seconds == 1.0
