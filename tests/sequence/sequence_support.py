"""Shared helpers of the sequence tests: an engine whose actions log what ran, and when."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

import timecontrol as tc
from timecontrol._events import Event
from timecontrol.stores import SQLiteLog, read_events

START = datetime(2026, 3, 30, 8, 0, tzinfo=UTC)
T0 = START.timestamp()


class Lab:
    """An engine with two chained actions: `sample` (2 s) then `analyse` (30 s)."""

    def __init__(self, engine: tc.Engine | None = None) -> None:
        self.engine = engine if engine is not None else tc.Engine()
        self.calls: list[tuple[str, float, dict[str, Any]]] = []  # (action, offset, kwargs)
        self.fail: set[str] = set()  # names of actions that raise

        @self.engine.action
        async def sample(volume_ul: float = 10.0, **extra: Any) -> float:
            return await self._act("sample", 2, {"volume_ul": volume_ul, **extra})

        @self.engine.action
        async def analyse(**kw: Any) -> float:
            return await self._act("analyse", 30, kw)

        @self.engine.action
        async def flush(**kw: Any) -> None:
            await self._act("flush", 5, kw)

    async def _act(self, name: str, seconds: float, kwargs: dict[str, Any]) -> float:
        now = self.engine.clock.time() - T0
        self.calls.append((name, now, kwargs))
        await anyio.sleep(seconds)
        if name in self.fail:
            raise RuntimeError(f"{name} broke")
        return now

    def times(self, name: str) -> list[float]:
        """Offsets from START at which `name` started."""
        return [t for n, t, _ in self.calls if n == name]


class CrashingStore(SQLiteLog):
    """A SQLite store that stops writing at `crash()`: the file then holds what a kill -9 at
    that moment leaves on disk (everything flushed before it, nothing after), while the test
    goes on in one process on the virtual clock."""

    crashed = False
    #: Events that never reach the file (the last ones before a crash, lost in its window).
    lose: Callable[[Event], bool] = staticmethod(lambda event: False)

    def write(self, event: Event, payload: bytes) -> None:
        """Write the event, unless the 'process' has crashed or it is one to lose."""
        if not self.crashed and not self.lose(event):
            super().write(event, payload)


async def crash(engine: tc.Engine, store: CrashingStore) -> None:
    """Make everything so far durable, then let nothing more reach the file."""
    await engine.log.flush()
    store.crashed = True


def stored(path: Path, name: str) -> list[Event]:
    """The sequence events of `name` in the store file."""
    return read_events(path, subjects=[name])
