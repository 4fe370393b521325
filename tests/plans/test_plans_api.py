"""Msg, the state machine, simulated devices and statuses, and bluesky compatibility."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import pytest
from plans_support import docs, running, states

from timecontrol import EngineStateError
from timecontrol.plans import (
    TRANSITIONS,
    Msg,
    RunState,
    SimDetector,
    SimMotor,
    SimSignal,
    SimStatus,
    StatusFailed,
    await_status,
    count,
)
from timecontrol.plans._state import check_transition

vt = pytest.mark.timecontrol


def test_msg_has_bluesky_shape() -> None:
    msg = Msg("set", "motor", 5, group="a", run="r1")
    assert (msg.command, msg.obj, msg.args, msg.kwargs, msg.run) == (
        "set",
        "motor",
        (5,),
        {"group": "a"},
        "r1",
    )
    command, _obj, _args, _kwargs, run = msg
    assert command == "set"
    assert run == "r1"
    assert Msg("null") == Msg("null")
    assert Msg("null") != Msg("null", 1)
    assert msg._replace(command="x").command == "x"
    assert msg._fields == ("command", "obj", "args", "kwargs", "run")
    assert "Msg('set'" in repr(msg)


def test_state_machine_transitions_are_explicit() -> None:
    assert set(TRANSITIONS) == set(RunState)
    for state in RunState:
        assert RunState.PANICKED in TRANSITIONS[state] or state is RunState.PANICKED
    check_transition(RunState.IDLE, RunState.RUNNING)
    with pytest.raises(EngineStateError, match="from 'idle' to 'paused'"):
        check_transition(RunState.IDLE, RunState.PAUSED)
    assert RunState.PAUSED == "paused"


@vt
async def test_sim_motor_moves_on_the_clock_and_stops_midway(virtual_clock: Any) -> None:
    motor = SimMotor("m", 0.0, velocity=2.0)
    status = motor.set(10.0)
    assert not status.done
    assert motor.moving
    await anyio.sleep(1)  # virtual time
    assert motor.position == pytest.approx(2.0)
    motor.stop()
    assert status.done
    assert not status.success
    with pytest.raises(StatusFailed):
        await status
    assert motor.position == pytest.approx(2.0)
    assert not motor.moving
    status = motor.set(4.0)
    await status
    assert motor.position == 4.0
    assert status.success
    assert motor.read()["m_setpoint"]["value"] == 4.0
    with pytest.raises(ValueError, match="number"):
        motor.set("far")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="velocity"):
        SimMotor("bad", velocity=0)


@vt
async def test_sim_detector_exposes_then_reads(virtual_clock: Any) -> None:
    det = SimDetector("det", lambda: 7, exposure=2.0)
    t0 = virtual_clock.monotonic()
    status = det.trigger()
    assert det.read()["det"]["value"] is None
    await status
    assert virtual_clock.monotonic() - t0 == pytest.approx(2.0)
    assert det.read()["det"]["value"] == 7
    assert det.describe()["det"]["dtype"] == "number"


@vt
async def test_statuses_of_every_kind_can_be_awaited() -> None:
    assert await await_status(None) is None
    callbacks: list[bool] = []
    done = SimStatus()
    done.add_callback(lambda s: callbacks.append(s.success))
    assert callbacks == [True]

    class ThreadStatus:
        """An ophyd-style status finished by another thread."""

        def __init__(self, ok: bool) -> None:
            self.done = False
            self.success = False
            self._ok = ok
            self._cbs: list[Any] = []

        def add_callback(self, cb: Any) -> None:
            self._cbs.append(cb)
            threading.Timer(0.01, self._finish).start()

        def _finish(self) -> None:
            self.done, self.success = True, self._ok
            for cb in self._cbs:
                cb(self)

        def exception(self, timeout: float | None = 0.0) -> BaseException | None:
            return None if self._ok else RuntimeError("motor fault")

    ok = ThreadStatus(True)
    assert await await_status(ok) is ok
    with pytest.raises(StatusFailed, match="unsuccessfully"):
        await await_status(ThreadStatus(False))

    async def coro() -> int:
        return 3

    assert await await_status(coro()) == 3


@vt
async def test_devices_returning_coroutines_move_concurrently(virtual_clock: Any) -> None:
    class AsyncMotor:
        name = "am"

        def __init__(self) -> None:
            self.position = 0.0

        async def _move(self, value: float) -> None:
            await anyio.sleep(abs(value - self.position))
            self.position = value

        def set(self, value: float) -> Any:
            return self._move(value)  # a bare coroutine: the engine runs it as a task

        def read(self) -> dict[str, Any]:
            return {"am": {"value": self.position, "timestamp": 0.0}}

        def describe(self) -> dict[str, Any]:
            return {"am": {"source": "x", "dtype": "number", "shape": []}}

    async with running() as (_engine, re):
        a, b = AsyncMotor(), AsyncMotor()
        b.name = "bm"
        t0 = virtual_clock.monotonic()
        plan = [
            Msg("set", a, 3.0, group="g"),
            Msg("set", b, 2.0, group="g"),
            Msg("wait", None, group="g"),
        ]
        await re.run(plan)
        assert virtual_clock.monotonic() - t0 == pytest.approx(3.0)  # in parallel, not 5 s
        assert (a.position, b.position) == (3.0, 2.0)


@vt
async def test_wait_timeout_is_catchable() -> None:
    async with running() as (_engine, re):
        motor = SimMotor("m", velocity=0.1)

        def plan() -> Any:
            yield Msg("set", motor, 10, group="g")
            try:
                yield Msg("wait", None, group="g", timeout=1.0)
            except TimeoutError:
                return "timed out"
            return "arrived"

        result = await re.run(plan())
        assert result.plan_result == "timed out"


@vt
async def test_sim_signal_subscriptions() -> None:
    sig = SimSignal("s", 1)
    got: list[Any] = []
    token = sig.subscribe(lambda value, **kw: got.append(value))
    sig.put(2)
    sig.clear_sub(token)
    sig.put(3)
    assert got == [1, 2]
    await sig.set(4)
    assert sig.get() == 4
    assert sig.read()["s"]["value"] == 4


# -- bluesky compatibility (skipped without bluesky) ------------------------------------------


@vt
async def test_bluesky_messages_and_plans_run_unchanged() -> None:
    pytest.importorskip("bluesky")
    import bluesky.plan_stubs as bps
    import bluesky.plans as bp
    from bluesky.utils import Msg as BlueskyMsg

    async with running() as (engine, re):
        det = SimDetector("det")
        motor = SimMotor("motor")
        result = await re.run(bp.count([det], num=3))
        assert result.exit_status == "success"
        assert [d["seq_num"] for d in docs(engine, "event")] == [1, 2, 3]
        result = await re.run(bp.scan([det], motor, 0, 2, 3))
        assert result.exit_status == "success"
        assert [d["data"]["motor"] for d in docs(engine, "event")[-3:]] == [0.0, 1.0, 2.0]
        result = await re.run([BlueskyMsg("checkpoint"), BlueskyMsg("pause"), BlueskyMsg("null")])
        assert result.paused
        assert (await re.resume()).exit_status == "success"
        plan = bps.mv(motor, 5)
        assert (await re.run(plan)).exit_status == "success"
        assert motor.position == 5
        assert states(engine)[-2:] == ["running", "idle"]


def test_bluesky_run_engine_accepts_our_devices() -> None:
    pytest.importorskip("bluesky")
    from bluesky import RunEngine as BlueskyRunEngine
    from bluesky.plans import count as bluesky_count

    seen: list[str] = []
    bre = BlueskyRunEngine(context_managers=[])
    bre.subscribe(lambda name, doc: seen.append(name))
    bre(bluesky_count([SimDetector("det")], num=2))
    assert seen == ["start", "descriptor", "event", "event", "stop"]


def test_our_count_runs_on_bluesky_run_engine() -> None:
    pytest.importorskip("bluesky")
    from bluesky import RunEngine as BlueskyRunEngine

    seen: list[str] = []
    bre = BlueskyRunEngine(context_managers=[])
    bre.subscribe(lambda name, doc: seen.append(name))
    bre(count([SimDetector("det")], num=2))
    assert seen == ["start", "descriptor", "event", "event", "stop"]
