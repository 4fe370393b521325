"""ophyd.sim and ophyd-async simulated devices run unchanged, on the awaitable run engine and
on SyncRunEngine (whose loop is registered as bluesky's, which ophyd-async's init_devices()
connects on). Real clock: these devices read time.time() and asyncio's loop time."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import timecontrol as tc
from timecontrol.plans import RunEngine, SyncRunEngine
from timecontrol.plans._compat import RunEngineInterruptedBase

bp = pytest.importorskip("bluesky.plans")
bps = pytest.importorskip("bluesky.plan_stubs")
event_model = pytest.importorskip("event_model")
asyncio_only = pytest.mark.timecontrol(backends=["asyncio"])


def validated(out: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    for name, doc in out:
        event_model.schema_validators[event_model.DocumentNames[name]].validate(doc)
    return out


def test_ophyd_sim_devices_on_the_sync_run_engine() -> None:
    pytest.importorskip("ophyd")
    from ophyd.sim import det, motor

    with SyncRunEngine(call_returns_result=True) as RE:
        out: list[tuple[str, dict[str, Any]]] = []
        RE.subscribe(lambda name, doc: out.append((name, doc)))
        result = RE(bp.scan([det], motor, -1, 1, 5))
        assert result.exit_status == "success"
        events = [doc for name, doc in validated(out) if name == "event"]
        assert [e["data"]["motor"] for e in events] == [-1.0, -0.5, 0.0, 0.5, 1.0]
        assert "det" in events[0]["data"]


def test_ophyd_async_devices_connect_with_init_devices_and_scan() -> None:
    pytest.importorskip("h5py")  # ophyd_async.sim's pattern generator needs it
    from ophyd_async import sim
    from ophyd_async.core import init_devices

    with SyncRunEngine(call_returns_result=True) as RE:
        pattern = sim.PatternGenerator()
        with init_devices():  # connects on RE's loop, registered as bluesky's event loop
            stage = sim.SimStage(pattern)
            det = sim.SimPointDetector(pattern)
        out: list[tuple[str, dict[str, Any]]] = []
        RE.subscribe(lambda name, doc: out.append((name, doc)))
        result = RE(bp.scan([det], stage.x, 1, 2, 2))
        assert result.exit_status == "success"
        events = [doc for name, doc in validated(out) if name == "event"]
        assert len(events) == 2
        assert {"det-channel-1-value", "stage-x"} <= set(events[0]["data"])


def test_an_ophyd_async_move_is_stopped_on_pause_and_redone_on_resume() -> None:
    pytest.importorskip("h5py")
    from ophyd_async import sim
    from ophyd_async.core import init_devices

    with SyncRunEngine(call_returns_result=True) as RE:
        with init_devices():
            motor = sim.SimMotor(instant=False)

        async def slow_down() -> None:
            await motor.velocity.set(2.0)  # 1 unit takes 0.5 s

        RE.run_coroutine(slow_down())
        threading.Timer(0.2, RE.request_pause).start()
        with pytest.raises(RunEngineInterruptedBase):
            RE(bps.mv(motor, 1.0))
        position = RE.run_coroutine(motor.user_readback.get_value())
        assert 0.0 < position < 1.0  # stopped half-way
        result = RE.resume()
        assert result.exit_status == "success"
        assert RE.run_coroutine(motor.user_readback.get_value()) == pytest.approx(1.0)


@asyncio_only
async def test_ophyd_async_devices_on_the_awaitable_run_engine() -> None:
    pytest.importorskip("h5py")
    from ophyd_async import sim
    from ophyd_async.core import init_devices

    async with tc.Engine() as engine:
        re = RunEngine(engine, handle_sigint=False)
        async with init_devices():
            motor = sim.SimMotor(instant=False)
            det = sim.SimPointDetector(None)
        await motor.velocity.set(100.0)
        out: list[tuple[str, dict[str, Any]]] = []
        re.subscribe(lambda name, doc: out.append((name, doc)))
        result = await re.run(bp.scan([det], motor, 0, 1, 3))
        assert result.exit_status == "success"
        assert await motor.user_readback.get_value() == pytest.approx(1.0)
        assert len([n for n, _ in validated(out) if n == "event"]) == 3
