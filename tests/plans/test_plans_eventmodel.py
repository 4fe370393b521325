"""Every run document validates against event-model's schemas; start documents carry bluesky's
plan_type, plan_name, plan_args and versions."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from plans_support import running

import timecontrol as tc
from timecontrol.plans import (
    Msg,
    SimDetector,
    SimMotor,
    count,
    list_scan,
    scan,
)

event_model = pytest.importorskip("event_model")

vt = pytest.mark.timecontrol


def validate(collected: list[tuple[str, dict[str, Any]]]) -> None:
    """Raise unless every (name, doc) is valid for event-model's schema of that name."""
    for name, doc in collected:
        event_model.schema_validators[event_model.DocumentNames[name]].validate(doc)


def collect(re: Any) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    re.subscribe(lambda name, doc: out.append((name, doc)))
    return out


@vt
async def test_builtin_plans_documents_validate_and_name_the_plan() -> None:
    async with running() as (_engine, re):
        out = collect(re)
        det, motor = SimDetector("det"), SimMotor("m")
        await re.run(count([det], num=2))
        await re.run(scan([det], motor, 0, 1, 3))
        await re.run(list_scan([det], motor, [1, 2]))
        validate(out)
        starts = [doc for name, doc in out if name == "start"]
        assert [s["plan_name"] for s in starts] == ["count", "scan", "list_scan"]
        assert all(s["plan_type"] == "generator" for s in starts)
        assert starts[0]["plan_args"] == {"detectors": ["det"], "num": 2, "delay": 0.0}
        assert starts[2]["plan_args"]["positions"] == [1, 2]
        for start in starts:
            assert start["versions"]["timecontrol"] == tc.__version__
            assert start["versions"]["event_model"] == event_model.__version__


@vt
async def test_a_hand_written_plan_is_named_after_its_function() -> None:
    def my_plan() -> Any:
        yield Msg("open_run", purpose="x")
        yield Msg("close_run")

    async with running(metadata={"versions": {"mine": "1"}}) as (_engine, re):
        out = collect(re)
        await re.run(my_plan(), plan_name="override")
        await re.run(my_plan())
        validate(out)
        first, second = (doc for name, doc in out if name == "start")
        # bluesky's precedence: the call's metadata over the plan's own name
        assert first["plan_name"] == "override"
        assert second["plan_name"] == "my_plan"
        assert second["plan_type"] == "generator"
        assert second["purpose"] == "x"
        assert second["versions"] == {"mine": "1"}  # the user's versions are kept as given


@vt
async def test_interrupted_and_failed_runs_validate(virtual_clock: Any) -> None:
    def failing() -> Any:
        yield Msg("open_run")
        yield Msg("checkpoint")
        raise RuntimeError("boom")

    async with running() as (_engine, re):
        out = collect(re)
        det = SimDetector("det", exposure=1.0)

        async def pause_soon() -> None:
            await anyio.sleep(1.5)  # virtual time
            re.request_pause()

        async with anyio.create_task_group() as tg:
            tg.start_soon(pause_soon)
            result = await re.run(count([det], num=5))
        assert result.paused
        await re.abort("operator")
        with pytest.raises(RuntimeError):
            await re.run(failing())
        validate(out)
        stops = [doc for name, doc in out if name == "stop"]
        assert [s["exit_status"] for s in stops] == ["abort", "fail"]


def test_bluesky_plans_on_the_sync_run_engine_validate() -> None:
    bp = pytest.importorskip("bluesky.plans")
    from timecontrol.plans import SyncRunEngine

    with SyncRunEngine() as RE:
        out = collect(RE)
        det, motor = SimDetector("det"), SimMotor("m")
        RE(bp.count([det], num=2))
        RE(bp.scan([det], motor, 0, 1, 3))
        RE(bp.grid_scan([det], motor, 0, 1, 2, SimMotor("n"), 0, 1, 2))
        validate(out)
        starts = [doc for name, doc in out if name == "start"]
        assert [s["plan_name"] for s in starts] == ["count", "scan", "grid_scan"]
        assert starts[0]["plan_type"] == "generator"
        assert starts[0]["versions"]["bluesky"]
        assert [s["scan_id"] for s in starts] == [1, 2, 3]
