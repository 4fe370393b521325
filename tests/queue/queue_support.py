"""Shared helpers for the queue tests (imported by the test_queue_* modules)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from timecontrol import Engine
from timecontrol.plans import Msg, RunEngine, SimDetector, count
from timecontrol.queue import Queue


def queue_of(engine: Engine) -> Queue:
    """The engine's own queue (the Engine builds it and drives its lifecycle)."""
    return engine.queue


def wait_plan(seconds: float = 1.0, steps: int = 1) -> Generator[Any, Any, int]:
    """A plan of `steps` checkpointed sleeps of `seconds` each (virtual time in tests)."""
    for _ in range(steps):
        yield Msg("checkpoint")
        yield Msg("sleep", None, seconds)
    return steps


def failing_plan(message: str = "boom") -> Generator[Any, Any, None]:
    """A plan that raises at its first message."""
    yield Msg("null")
    raise RuntimeError(message)


def register_plans(queue: Queue) -> SimDetector:
    """Register ``wait``, ``fail`` and ``count`` (one detector, 1 s exposure)."""
    det = SimDetector("det", exposure=1.0)
    queue.plan(wait_plan, name="wait")
    queue.plan(failing_plan, name="fail")

    def count_plan(num: int = 1, delay: float = 0.0) -> Any:
        return count([det], num=num, delay=delay)

    queue.plan(count_plan, name="count")
    return det


@asynccontextmanager
async def running(store: str | Path | None = None) -> AsyncIterator[tuple[Engine, Queue]]:
    """A started engine (no Ctrl+C handling) and its queue, with the test plans registered."""
    engine = Engine(store=store)
    RunEngine(engine, handle_sigint=False)
    queue = queue_of(engine)
    register_plans(queue)
    async with engine:
        yield engine, queue


def started_uids(engine: Engine) -> list[str]:
    """Uids of the items started, in order (from the Log)."""
    return [e.subject for e in engine.log.recent(kinds="queue.item_started")]


def kinds(engine: Engine, prefix: str = "queue.") -> list[str]:
    """The kinds of the events whose kind starts with `prefix`, in order."""
    return [e.kind for e in engine.log.recent() if e.kind.startswith(prefix)]


async def settle(rounds: int = 20) -> None:
    """Let every ready task run (no time passes): trio and asyncio schedule differently."""
    import anyio.lowlevel

    for _ in range(rounds):
        await anyio.lowlevel.checkpoint()
