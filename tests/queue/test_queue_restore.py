"""Restoring the queue from any LogSink (read with ``await log.query`` once the engine runs),
and edits made before the engine starts."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import anyio
import pytest
from queue_support import queue_of, register_plans, running, settle

from timecontrol import Engine, Event
from timecontrol.plans import RunEngine
from timecontrol.queue import ItemStatus, QueueStateError

vt = pytest.mark.timecontrol


class ListSink:
    """A durable sink kept in a list (a LogSink that is not SQLite)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def last_seq(self) -> int:
        return self.events[-1].seq if self.events else 0

    def write(self, event: Event, payload: bytes) -> None:
        self.events.append(event)

    async def flush(self) -> None:
        await anyio.lowlevel.checkpoint()

    async def query(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        kinds: Collection[str] | None = None,
        subjects: Collection[str] | None = None,
        after_seq: int | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Event]:
        await anyio.lowlevel.checkpoint()
        out = [e for e in self.events if kinds is None or e.kind in kinds]
        return out[::-1] if newest_first else out

    async def aclose(self) -> None:
        pass


@vt
async def test_a_queue_comes_back_from_any_log_sink() -> None:
    sink = ListSink()
    first = Engine(store=sink)
    RunEngine(first, handle_sigint=False)
    q1 = queue_of(first)
    register_plans(q1)
    async with first:
        q1.add("wait", {"seconds": 1}, uid="a")
        q1.add("wait", {"seconds": 100}, uid="b", on_interrupt="skip")
        q1.add("wait", {"seconds": 1}, uid="c")
        q1.start()
        await anyio.sleep(10)  # b runs when the engine stops; virtual time
    second = Engine(store=sink)
    RunEngine(second, handle_sigint=False)
    q2 = queue_of(second)
    register_plans(q2)
    async with second:
        with pytest.raises(QueueStateError, match="being read back"):
            q2.items()  # the query has not answered yet: refused rather than wrong
        await settle()
        assert [(i.uid, i.status) for i in q2.items()] == [
            ("a", ItemStatus.SUCCEEDED),
            ("b", ItemStatus.INTERRUPTED),
            ("c", ItemStatus.PENDING),
        ]
        q2.start()
        assert await q2.wait() == "finished"


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_items_added_before_the_engine_starts(tmp_path: Path, backend: str) -> None:
    # Real clock: a queue filled in a script before `async with engine:`.
    store = tmp_path / "lab.sqlite"

    async def main() -> None:
        engine = Engine(store=store)
        RunEngine(engine, handle_sigint=False)
        q = queue_of(engine)
        register_plans(q)
        q.add("wait", {"seconds": 0.01}, uid="a")
        async with engine:
            q.start()
            assert await q.wait() == "finished"

    anyio.run(main, backend=backend)

    async def again() -> None:
        async with running(store) as (_engine, q):
            assert q.item("a").status == ItemStatus.SUCCEEDED

    anyio.run(again, backend=backend)
