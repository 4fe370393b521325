"""Conditionals survive restarts: their definitions are ``queue.conditional`` events, folded
into the queue's model like the items, so a new engine on the same store (after a clean stop
or a kill -9) has them back; a removal is recorded too. Trip counters do not survive (they
count one item run's documents, and an interrupted item runs again from its start)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import anyio
import pytest
from queue_support import running

from timecontrol.queue import ItemStatus, QueueArgumentError
from timecontrol.testing import VirtualClock

vt = pytest.mark.timecontrol
HERE = Path(__file__).resolve().parent


def _fired(engine: Any) -> list[tuple[str, str, int]]:
    return [
        (e.subject, e.payload["name"], e.payload["seq_num"])
        for e in engine.log.recent(kinds="queue.conditional_fired")
    ]


def _seqs(engine: Any) -> list[int]:
    return [e.payload["seq_num"] for e in engine.log.recent(kinds="run.event")]


@vt
async def test_a_conditional_comes_back_after_a_restart_and_trips(tmp_path: Path) -> None:
    store = tmp_path / "lab.sqlite"
    async with running(store) as (engine, q):
        q.add_conditional("det >= 3", "truncate", name="enough", plans="count", ntrips=2)
        q.add_conditional("det > 0", "cancel", name="gone")
        q.add_conditional("det > 0", "pause", name="changed")
        q.add_conditional("det > 1", "skip_next", name="changed", replace=True)
        q.remove_conditional("gone")
        q.add("count", {"num": 10}, uid="a")
        q.add("wait", {"seconds": 1}, uid="b")
    async with running(store) as (engine, q):
        restored = {c.name: c.spec() for c in q.conditionals()}
        assert list(restored) == ["enough", "changed"]  # "gone" stays removed
        assert restored["enough"] == {
            "condition": "det >= 3", "action": "truncate", "start": 1, "frequency": 1,
            "ntrips": 2, "plans": ["count"], "item_types": [], "queues": [],
        }  # fmt: skip
        assert (restored["changed"]["condition"], restored["changed"]["action"]) == (
            "det > 1",
            "skip_next",
        )
        # The script adds its conditionals again at every start: the same definition
        # changes nothing; another one under the same name is refused without a trace.
        before = engine.log.last_seq
        q.add_conditional("det >= 3", "truncate", name="enough", plans="count", ntrips=2)
        with pytest.raises(QueueArgumentError, match="'enough' exists already"):
            q.add_conditional("det >= 4", "truncate", name="enough")
        assert engine.log.last_seq == before
        q.remove_conditional("changed")
        q.start()
        assert await q.wait() == "finished"
        assert _fired(engine) == [("a", "enough", 4)]  # det reads 1, 2, 3, 4: 2nd trip
        assert q.item("a").status == ItemStatus.TRUNCATED
        assert q.item("b").status == ItemStatus.SUCCEEDED
    async with running(store) as (_engine, q):
        assert [c.name for c in q.conditionals()] == ["enough"]


@vt
async def test_trip_counters_start_again_with_the_rerun_item(tmp_path: Path) -> None:
    store = tmp_path / "lab.sqlite"
    async with running(store) as (engine, q):
        q.add_conditional("det > 0", "truncate", name="three", ntrips=3)
        q.add("count", {"num": 10}, uid="a")
        q.start()
        await anyio.sleep(2.5)  # virtual: two trips, then the engine stops
        assert _seqs(engine) == [1, 2]
        assert _fired(engine) == []
    async with running(store) as (engine, q):
        assert q.item("a").status == ItemStatus.PENDING  # interrupted, runs again
        q.start()
        assert await q.wait() == "finished"
        # The re-run counts its own three trips: its 3rd event, not its 1st.
        assert _fired(engine) == [("a", "three", 3)]
        assert _seqs(engine) == [1, 2, 3]


_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    sys.path[:0] = [{here!r}, {root!r}]
    import anyio
    from queue_support import running

    async def main():
        async with running({store!r}) as (engine, q):
            q.add_conditional("det == 2", "repeat", name="again", plans="count")
            q.add_conditional("det > 0", "cancel", name="gone")
            q.remove_conditional("gone")
            q.add("count", {{"num": 3}}, uid="a")
            await engine.log.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    anyio.run(main)
    """
)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_conditionals_come_back_after_kill_9(tmp_path: Path, backend: str) -> None:
    store = tmp_path / "lab.sqlite"
    code = _CHILD.format(here=str(HERE), root=str(HERE.parent.parent), store=str(store))
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == -9, done.stderr[-2000:]

    async def main() -> None:
        async with running(store) as (engine, q):
            assert [c.name for c in q.conditionals()] == ["again"]
            q.start()
            assert await q.wait() == "finished"
            (added,) = [
                e for e in engine.log.recent(kinds="queue.item_added") if "repeats" in e.payload
            ]
            assert added.payload["repeats"] == "a"
            assert _fired(engine) == [("a", "again", 2)]
            assert q.item(added.subject).status == ItemStatus.SUCCEEDED

    VirtualClock().run(main, backend=backend)
    assert os.path.exists(store)
