"""The Engine as the one owner and front door of its parts."""

from __future__ import annotations

import ast
import threading
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

import timecontrol as tc
from timecontrol.plans import RunEngine
from timecontrol.scheduler import Scheduler
from timecontrol.testing import VirtualClock

ROOT = Path(__file__).resolve().parents[2]

EXPORTS = {
    "Clock", "Command", "Control", "DuplicateJobError", "Engine", "EngineStateError", "Event",
    "ExecutionRecord", "Job", "JobNotFoundError", "JobStats", "Log", "Msg", "OverTimeLimit",
    "RunEngine", "RunResult", "RunState", "Scheduler", "Sequence", "StatusFailed", "StoreError",
    "SystemClock", "TimeControlError", "Trigger", "__version__", "abc", "command", "cron",
    "current_clock", "current_engine", "daily", "errors", "guarded_by", "intersection",
    "interval", "limited_by", "monthly", "once", "register_kind", "timepoints",
    "trigger_from_json", "union", "weekly",
}  # fmt: skip


def test_the_public_face_is_what_users_type() -> None:
    assert set(tc.__all__) == EXPORTS
    for name in ("Schedule", "Intent", "jsonable", "LogSink", "Action"):
        assert not hasattr(tc, name), name
    for name in tc.__all__:
        if name != "__version__":
            assert getattr(tc, name).__doc__, f"{name} has no docstring"


def test_every_error_derives_from_timecontrolerror() -> None:
    for name in tc.errors.__all__:
        assert issubclass(getattr(tc.errors, name), tc.TimeControlError), name


def _imports(path: Path) -> set[str]:
    """Modules a file imports (relative imports resolved against the package)."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize(
    "part", ["timecontrol/scheduler", "timecontrol/plans", "timecontrol/limiters", "drivers"]
)
def test_parts_never_import_the_facade(part: str) -> None:
    for path in (ROOT / part).rglob("*.py"):
        assert "timecontrol._engine" not in _imports(path), path


def test_the_core_does_not_import_the_drivers() -> None:
    for path in (ROOT / "timecontrol").rglob("*.py"):
        assert not any(m.startswith("timecontrol.drivers") for m in _imports(path)), path


def test_a_second_construction_returns_the_engines_own_part() -> None:
    engine = tc.Engine()
    assert Scheduler(engine) is engine.scheduler
    assert RunEngine(engine) is engine.run_engine
    assert tc.Scheduler(engine) is engine.scheduler


@pytest.mark.timecontrol
async def test_an_exception_in_the_body_comes_out_as_itself() -> None:
    with pytest.raises(KeyError, match="sample"):
        async with tc.Engine():
            raise KeyError("sample")


@pytest.mark.timecontrol
async def test_stop_and_start_again_in_memory(virtual_clock: VirtualClock) -> None:
    engine = tc.Engine()
    ran: list[float] = []

    @engine.action
    async def tick() -> None:
        ran.append(virtual_clock.time())

    engine.add_job("tick", tc.interval(seconds=10), id="tick")
    async with engine:
        await anyio.sleep(25)  # virtual time
    assert len(ran) == 2
    await anyio.sleep(100)  # stopped: nothing runs; virtual time
    assert len(ran) == 2
    async with engine:
        await anyio.sleep(25)  # virtual time
    assert len(ran) >= 4
    assert engine.get_job("tick").id == "tick"


@pytest.mark.timecontrol
async def test_stop_and_start_again_on_a_store(tmp_path: Path) -> None:
    engine = tc.Engine(store=tmp_path / "lab.sqlite")
    counts: list[int] = []

    @engine.action
    async def tick() -> None:
        counts.append(1)

    engine.add_job("tick", tc.interval(seconds=10), id="tick")
    for _ in range(3):
        async with engine:
            await anyio.sleep(25)  # virtual time
    assert len(counts) >= 6
    history = await engine.history("tick")
    assert sum(r.status == "success" for r in history) == len(counts)


@pytest.mark.timecontrol
async def test_saved_jobs_come_back_without_touching_the_scheduler(tmp_path: Path) -> None:
    path = tmp_path / "lab.sqlite"
    first = tc.Engine(store=path)

    @first.action
    async def tick() -> None:
        pass

    first.add_job("tick", tc.interval(seconds=10), id="tick")
    async with first:
        await anyio.sleep(15)  # virtual time

    ran: list[int] = []
    second = tc.Engine(store=path)

    @second.action(name="tick")
    async def tick_again() -> None:
        ran.append(1)

    async with second:  # nothing touches second.scheduler
        await anyio.sleep(35)  # virtual time
    assert len(ran) >= 3


@pytest.mark.timecontrol
async def test_panic_before_the_first_run_holds_jobs_until_all_is_well(
    virtual_clock: VirtualClock,
) -> None:
    engine = tc.Engine()
    ran: list[float] = []

    @engine.action
    async def tick() -> None:
        ran.append(virtual_clock.time())

    engine.add_job("tick", tc.interval(seconds=10), id="tick")
    engine.panic()
    assert engine.state is tc.RunState.PANICKED
    async with engine:
        await anyio.sleep(35)  # virtual time
        assert ran == []
        engine.all_is_well()
        await anyio.sleep(25)  # virtual time
    assert len(ran) >= 2


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_panic_from_another_thread_stops_running_jobs(backend: str) -> None:
    # Real time on purpose: this is about threads, not timing; nothing waits on a duration.
    async def main() -> list[str]:
        engine = tc.Engine(clock=tc.SystemClock())
        started, cancelled = anyio.Event(), anyio.Event()

        @engine.action
        async def long() -> None:
            started.set()
            try:
                await anyio.sleep_forever()
            finally:
                cancelled.set()

        async with engine:
            engine.submit("long")
            await started.wait()
            thread = threading.Thread(target=engine.panic)
            thread.start()
            await anyio.to_thread.run_sync(thread.join)
            await cancelled.wait()
            assert engine.state is tc.RunState.PANICKED
            await anyio.lowlevel.checkpoint()
            return [e.kind for e in engine.log.recent()]

    kinds = anyio.run(main, backend=backend)
    assert "action.cancelled" in kinds
    assert "run_engine.panicked" in kinds
