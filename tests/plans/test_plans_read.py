"""``read`` of one object (bluesky <= 1.15) and of several at once (bluesky 1.16), on asyncio
and trio: inside ``create``/``save`` the readings accumulate into one event whose descriptor
describes every object read; outside a bundle a read only reads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest
from plans_support import docs, objs, running

from timecontrol import TimeControlError
from timecontrol.plans import (
    IllegalMessageSequence,
    Msg,
    PlanArgumentError,
    SimDetector,
    SimMotor,
)

vt = pytest.mark.timecontrol


def _msg_116_ours(det: Any, motor: Any) -> Any:
    # bluesky 1.16's shape, built by hand: one message, the objects in obj and args.
    return (yield Msg("read", det, motor))


def _msg_116_bluesky(det: Any, motor: Any) -> Any:
    from bluesky.utils import Msg as BlueskyMsg

    return (yield BlueskyMsg("read", det, motor))


def _msgs_115(det: Any, motor: Any) -> Any:
    # bluesky 1.15's shape: one message per object.
    reading = dict((yield Msg("read", det)))
    reading.update((yield Msg("read", motor)))
    return reading


def _bluesky_read_stub(det: Any, motor: Any) -> Any:
    import bluesky.plan_stubs as bps

    return (yield from bps.read(det, motor))


READS: dict[str, Callable[[Any, Any], Any]] = {
    "1.16-by-hand": _msg_116_ours,
    "1.16-bluesky-Msg": _msg_116_bluesky,
    "1.16-bluesky-stub": _bluesky_read_stub,
    "1.15-by-hand": _msgs_115,
}
NEEDS_BLUESKY = {"1.16-bluesky-Msg", "1.16-bluesky-stub"}


def _bundled(read: Callable[[Any, Any], Any], det: Any, motor: Any, out: list[Any]) -> Any:
    yield Msg("open_run")
    for _ in range(2):
        yield Msg("trigger", det, group="t")
        yield Msg("wait", None, group="t")
        yield Msg("create", None, name="primary")
        out.append((yield from read(det, motor)))
        yield Msg("save")
    yield Msg("close_run")


@vt
@pytest.mark.parametrize("shape", list(READS))
async def test_read_shapes_bundle_into_one_event_described_in_full(shape: str) -> None:
    if shape in NEEDS_BLUESKY:
        pytest.importorskip("bluesky")
    async with running() as (engine, re):
        det = SimDetector("det")
        motor = SimMotor("motor", 3.0)
        returned: list[Any] = []
        result = await re.run(_bundled(READS[shape], det, motor, returned))
        assert result.exit_status == "success"
        (descriptor,) = docs(engine, "descriptor")
        assert set(descriptor["data_keys"]) == {"det", "motor", "motor_setpoint"}
        assert descriptor["object_keys"] == {"det": ["det"], "motor": ["motor", "motor_setpoint"]}
        assert set(descriptor["configuration"]) == {"det", "motor"}
        events = docs(engine, "event")
        assert [e["data"] for e in events] == [
            {"det": 1.0, "motor": 3.0, "motor_setpoint": 3.0},
            {"det": 2.0, "motor": 3.0, "motor_setpoint": 3.0},
        ]
        assert [e["seq_num"] for e in events] == [1, 2]
        # the plan gets every reading back, merged
        assert [{k: v["value"] for k, v in r.items()} for r in returned] == [
            e["data"] for e in events
        ]
        expected_reads = 2 if shape.startswith("1.15") else 1
        assert len(objs(engine, "read")) == 2 * expected_reads


@vt
async def test_bluesky_116_trigger_and_read_yields_one_read_and_runs() -> None:
    pytest.importorskip("bluesky")
    import bluesky.plan_stubs as bps

    async with running() as (engine, re):
        det = SimDetector("det")
        motor = SimMotor("motor", 1.5)

        def plan() -> Any:
            yield Msg("open_run")
            reading = yield from bps.trigger_and_read([det, motor])
            yield Msg("close_run")
            return reading

        result = await re.run(plan())
        reads = [o for o, _ in objs(engine, "read")]
        assert reads == ["det"]  # one message for both objects (logged under its obj)
        assert set(result.plan_result) == {"det", "motor", "motor_setpoint"}
        (descriptor,) = docs(engine, "descriptor")
        assert descriptor["object_keys"] == {"det": ["det"], "motor": ["motor", "motor_setpoint"]}
        (event,) = docs(engine, "event")
        assert event["data"] == {"det": 1.0, "motor": 1.5, "motor_setpoint": 1.5}


@vt
@pytest.mark.parametrize("open_run", [False, True])
async def test_multi_object_read_outside_a_bundle_only_reads(open_run: bool) -> None:
    async with running() as (engine, re):
        det = SimDetector("det")
        motor = SimMotor("motor", 2.0)

        def plan() -> Any:
            if open_run:
                yield Msg("open_run")
            both = yield Msg("read", det, motor)
            nothing = yield Msg("read")
            if open_run:
                yield Msg("close_run")
            return both, nothing

        result = await re.run(plan())
        both, nothing = result.plan_result
        assert {k: v["value"] for k, v in both.items()} == {
            "det": None,
            "motor": 2.0,
            "motor_setpoint": 2.0,
        }
        assert nothing == {}
        assert docs(engine, "event") == []
        assert docs(engine, "descriptor") == []
        assert det.calls["read"] == 1


class SlowReadable:
    """Reads take `seconds` of (virtual) time: an async device."""

    def __init__(self, name: str, seconds: float, value: float) -> None:
        self.name = name
        self.seconds = seconds
        self.value = value

    async def read(self) -> dict[str, Any]:
        await anyio.sleep(self.seconds)  # virtual time
        return {self.name: {"value": self.value, "timestamp": 0.0}}

    def describe(self) -> dict[str, Any]:
        return {self.name: {"source": "sim", "dtype": "number", "shape": []}}


@vt
async def test_several_objects_are_read_together(virtual_clock: Any) -> None:
    async with running() as (engine, re):
        a, b, c = SlowReadable("a", 2.0, 1.0), SlowReadable("b", 3.0, 2.0), SimDetector("c")
        plan = [
            Msg("open_run"),
            Msg("create", None, name="primary"),
            Msg("read", a, b, c),
            Msg("save"),
            Msg("close_run"),
        ]
        t0 = virtual_clock.monotonic()
        assert (await re.run(plan)).exit_status == "success"
        assert virtual_clock.monotonic() - t0 == pytest.approx(3.0)  # not 2 + 3
        (event,) = docs(engine, "event")
        assert event["data"] == {"a": 1.0, "b": 2.0, "c": None}
        (descriptor,) = docs(engine, "descriptor")
        assert list(descriptor["object_keys"]) == ["a", "b", "c"]  # in message order


class BadReadable:
    """A device whose read() is broken in the way its name says."""

    def __init__(self, name: str, how: str) -> None:
        self.name = name
        self.how = how

    async def read(self) -> Any:
        if self.how == "raises":
            raise RuntimeError(f"{self.name}: read failed (simulated)")
        return None

    def describe(self) -> dict[str, Any]:
        return {}


@vt
async def test_bad_multi_object_reads_are_thrown_into_the_plan() -> None:
    async with running() as (_engine, re):
        det = SimDetector("det")
        errors: list[BaseException] = []

        def attempt(*objects: Any) -> Any:
            try:
                yield Msg("read", *objects)
            except Exception as exc:
                errors.append(exc)
                yield Msg("drop")
            else:
                yield Msg("save")

        def plan() -> Any:
            yield Msg("open_run")
            for objects in (
                (det, "not a device"),
                (det, BadReadable("none", "returns None")),
                (det, BadReadable("boom", "raises"), SlowReadable("slow", 1.0, 0.0)),
                (det, det),
                (det, SimDetector("det")),
            ):
                yield Msg("create", None, name="primary")
                yield from attempt(*objects)
            yield Msg("close_run")

        assert (await re.run(plan())).exit_status == "success"
        kinds = [type(e) for e in errors]
        assert kinds == [
            PlanArgumentError,
            PlanArgumentError,
            RuntimeError,
            IllegalMessageSequence,
            IllegalMessageSequence,
        ]
        assert "not a device" in str(errors[0])
        assert "read()" in str(errors[0])
        assert "returned None" in str(errors[1])
        assert "read twice" in str(errors[3])
        assert "collide" in str(errors[4])
        assert all(isinstance(e, TimeControlError) for e in errors if e is not errors[2])


@vt
async def test_multi_object_read_is_replayed_after_a_hard_pause() -> None:
    async with running() as (engine, re):
        det = SimDetector("det")
        motor = SimMotor("motor", 4.0)
        plan = [
            Msg("open_run"),
            Msg("checkpoint"),
            Msg("create", None, name="primary"),
            Msg("read", det, motor),
            Msg("pause"),
            Msg("save"),
            Msg("close_run"),
        ]
        assert (await re.run(plan)).paused
        assert docs(engine, "event") == []
        assert (await re.resume()).exit_status == "success"
        (event,) = docs(engine, "event")
        assert event["data"] == {"det": None, "motor": 4.0, "motor_setpoint": 4.0}
        assert objs(engine, "read") == [("det", False), ("det", True)]  # read, then its replay
