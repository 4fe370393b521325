"""Shared helpers for the run engine tests (imported by the test_plans_* modules)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from timecontrol import Engine
from timecontrol.plans import RunEngine, SimMotor, logged_messages


@asynccontextmanager
async def running(**kwargs: Any) -> AsyncIterator[tuple[Engine, RunEngine]]:
    """A started Engine and its own run engine, `kwargs` applied (no Ctrl+C unless asked).

    ``RunEngine(engine, ...)`` hands back ``engine.run_engine`` with the options set on it.
    """
    kwargs.setdefault("handle_sigint", False)
    async with Engine() as engine:
        yield engine, RunEngine(engine, **kwargs)


def states(engine: Engine, plan_uid: str | None = None) -> list[str]:
    """The state trace (targets of run_engine.state events), optionally for one plan."""
    return [
        e.payload["to"]
        for e in engine.log.recent(kinds="run_engine.state")
        if plan_uid is None or e.payload["plan"] == plan_uid
    ]


def objs(engine: Engine, command: str | None = None) -> list[tuple[str | None, bool]]:
    """(obj, replay) of every logged message (of `command`), in order."""
    return [
        (m.obj, m.replay)
        for m in logged_messages(engine.log.recent(kinds="plan.msgs"))
        if command is None or m.command == command
    ]


def docs(engine: Engine, name: str) -> list[dict[str, Any]]:
    """Payloads of the run.<name> documents in the Log."""
    return [e.payload for e in engine.log.recent(kinds=f"run.{name}")]


class BadStopMotor(SimMotor):
    """A motor whose stop() raises: clean-up must carry on past it."""

    def stop(self, *, success: bool = False) -> None:
        self._count("stop")
        raise RuntimeError(f"{self.name}: stop failed (simulated)")
