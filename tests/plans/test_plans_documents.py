"""Run documents, plans (count, scan, list_scan), stubs, custom commands and `call`."""

from __future__ import annotations

import json
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from plans_support import docs, objs, running

from timecontrol import Event
from timecontrol.plans import (
    IllegalMessageSequence,
    Msg,
    SimDetector,
    SimMotor,
    abs_set,
    call,
    checkpoint,
    close_run,
    count,
    create,
    drop,
    list_scan,
    logged_messages,
    mv,
    null,
    open_run,
    read,
    rewindable,
    save,
    scan,
    sleep,
    subscribe,
    trigger,
    trigger_and_read,
    wait,
)

vt = pytest.mark.timecontrol


@vt
async def test_count_documents_have_bluesky_shapes(virtual_clock: Any) -> None:
    async with running(metadata={"owner": "lab"}) as (engine, re):
        det = SimDetector("det", exposure=0.5)
        received: list[tuple[str, dict[str, Any]]] = []
        re.subscribe(lambda name, doc: received.append((name, doc)))
        result = await re.run(count([det], num=3, delay=1.0), sample="NaCl")
        assert result.plan_result == 3
        assert [n for n, _ in received] == ["start", "descriptor", *["event"] * 3, "stop"]
        start, descriptor, *events, stop = (d for _, d in received)
        (run_uid,) = result.run_uids
        assert start["uid"] == run_uid
        assert start["plan_uid"] == result.plan_uid
        assert start["plan_name"] == "count"
        assert start["detectors"] == ["det"]
        assert start["owner"] == "lab"
        assert start["sample"] == "NaCl"
        assert start["scan_id"] == 1
        assert isinstance(start["time"], float)
        assert descriptor["run_start"] == run_uid
        assert descriptor["name"] == "primary"
        assert descriptor["data_keys"]["det"]["dtype"] == "number"
        assert descriptor["data_keys"]["det"]["object_name"] == "det"
        assert descriptor["object_keys"] == {"det": ["det"]}
        assert set(descriptor["configuration"]["det"]) == {"data", "timestamps", "data_keys"}
        for i, ev in enumerate(events, start=1):
            assert ev["descriptor"] == descriptor["uid"]
            assert ev["seq_num"] == i
            assert ev["data"] == {"det": float(i)}
            assert set(ev["timestamps"]) == {"det"}
            assert ev["filled"] == {}
        # 0.5 s exposures, 1 s apart: timestamps follow the virtual clock exactly
        t = [ev["timestamps"]["det"] - start["time"] for ev in events]
        assert t == [pytest.approx(0.5), pytest.approx(2.0), pytest.approx(3.5)]
        assert stop["run_start"] == run_uid
        assert stop["exit_status"] == "success"
        assert stop["reason"] == ""
        assert stop["num_events"] == {"primary": 3}
        # the same documents are in the Log, addressable by the run uid
        by_run = engine.log.recent(subjects=run_uid)
        assert [e.kind for e in by_run] == [
            "run.start",
            "run.descriptor",
            *["run.event"] * 3,
            "run.stop",
        ]
        assert [e.payload for e in by_run] == [json.loads(json.dumps(d)) for _, d in received]
        # and every Log event round-trips through JSON
        for event in engine.log.recent():
            assert Event.from_json(event.to_json()) == event
        await re.run(count([det]))
        assert docs(engine, "start")[-1]["scan_id"] == 2


@vt
async def test_scans_move_and_read_the_motor(virtual_clock: Any) -> None:
    async with running() as (engine, re):
        motor = SimMotor("x", velocity=2.0)
        det = SimDetector("det", lambda: motor.position * 10)
        result = await re.run(scan([det], motor, -1.0, 1.0, 5))
        assert result.plan_result == 5
        events = docs(engine, "event")
        assert [e["data"]["x"] for e in events] == [-1.0, -0.5, 0.0, 0.5, 1.0]
        assert [e["data"]["det"] for e in events] == [-10.0, -5.0, 0.0, 5.0, 10.0]
        start = docs(engine, "start")[0]
        assert start["plan_name"] == "scan"
        assert start["motors"] == ["x"]
        assert motor.calls["stage"] == motor.calls["unstage"] == 1
        await re.run(list_scan([det], motor, [3, 2]))
        assert [e["data"]["x"] for e in docs(engine, "event")][-2:] == [3.0, 2.0]
        with pytest.raises(ValueError, match="num"):
            scan([det], motor, 0, 1, 0)
        with pytest.raises(ValueError, match="empty"):
            list_scan([det], motor, [])
        with pytest.raises(TypeError, match="list of devices"):
            count(det)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="num"):
            count([det], num=0)


@vt
async def test_stubs_return_what_the_engine_sends_back() -> None:
    async with running() as (engine, re):
        motor = SimMotor("m", velocity=1.0)
        det = SimDetector("det")
        got: dict[str, Any] = {}

        async def measure(x: float) -> float:
            await anyio.sleep(1)  # virtual time
            return x * 2

        def plan() -> Any:
            got["null"] = yield from null()
            got["uid"] = yield from open_run({"purpose": "stubs"})
            got["set"] = yield from abs_set(motor, 2.0, wait=True)
            got["mv"] = yield from mv(motor, 3.0)
            status = yield from trigger(det, group="d")
            yield from wait("d")
            got["status_done"] = status.done
            yield from create("primary")
            got["read"] = yield from read(det)
            yield from save()
            yield from create("other")
            yield from read(motor)
            yield from drop()
            got["tar"] = yield from trigger_and_read([det, motor], name="both")
            got["call"] = yield from call(measure, 21)
            got["sync_call"] = yield from call(lambda: "sync")
            got["rewindable"] = yield from rewindable()
            yield from checkpoint()
            yield from sleep(0.5)
            got["closed"] = yield from close_run()

        result = await re.run(plan())
        assert result.exit_status == "success"
        assert got["null"] is None
        assert got["uid"] == got["closed"] == result.run_uids[0]
        assert motor.position == 3.0
        assert got["status_done"]
        assert got["read"]["det"]["value"] == 1.0
        assert set(got["tar"]) == {"det", "m", "m_setpoint"}
        assert got["call"] == 42
        assert got["sync_call"] == "sync"
        assert got["rewindable"] is True
        streams = {d["name"] for d in docs(engine, "descriptor")}
        assert streams == {"primary", "both"}  # the dropped 'other' event left no trace
        assert docs(engine, "stop")[0]["num_events"] == {"primary": 1, "both": 1}


@vt
async def test_illegal_sequences_are_thrown_into_the_plan() -> None:
    async with running() as (_engine, re):
        det = SimDetector("det")
        caught: list[str] = []

        def plan() -> Any:
            for bad in (
                [Msg("create")],  # no open run
                [Msg("close_run")],
                [Msg("open_run"), Msg("open_run")],
                [Msg("create"), Msg("checkpoint")],
                [Msg("save")],
                [Msg("drop")],
                [Msg("create"), Msg("read", det), Msg("read", det)],
            ):
                try:
                    # not `yield from`: a list iterator cannot take the values sent back
                    for msg in bad:  # noqa: UP028
                        yield msg
                except IllegalMessageSequence as exc:
                    caught.append(str(exc))
                    yield (
                        Msg("drop")
                        if "read twice" in str(exc) or "checkpoint" in str(exc)
                        else Msg("null")
                    )

        result = await re.run(plan())
        assert result.exit_status == "success"
        assert len(caught) == 7
        assert "open run" in caught[0]
        assert "already open" in caught[2]
        assert "read twice" in caught[6]


@vt
async def test_custom_commands_and_plan_subscriptions() -> None:
    async with running() as (_engine, re):
        seen: list[Any] = []

        async def shout(msg: Any) -> str:
            await anyio.lowlevel.checkpoint()
            return f"{msg.args[0]}!"

        re.register_command("shout", shout)
        re.register_command("echo", lambda msg: msg.kwargs["x"])
        assert "shout" in re.commands
        assert "_resume_from_suspender" not in re.commands
        with pytest.raises(ValueError, match="command name"):
            re.register_command("_private", shout)

        def plan() -> Any:
            token = yield from subscribe("start", lambda name, doc: seen.append(name))
            seen.append((yield Msg("shout", None, "hello")))
            seen.append((yield Msg("echo", None, x=5)))
            yield from open_run()
            yield from close_run()
            return token

        result = await re.run(plan())
        assert seen == ["hello!", 5, "start"]
        await re.run([Msg("open_run"), Msg("close_run")])
        assert seen == ["hello!", 5, "start"]  # the plan's subscription ended with it
        re.unregister_command("echo")
        with pytest.raises(Exception, match="unknown command 'echo'"):
            await re.run([Msg("echo", None, x=1)])
        assert isinstance(result.plan_result, int)


@vt
async def test_subscriber_exception_fails_the_plan_at_that_message() -> None:
    async with running() as (engine, re):

        def broken(name: str, doc: dict[str, Any]) -> None:
            if name == "event":
                raise RuntimeError("writer crashed")

        re.subscribe(broken)
        with pytest.raises(RuntimeError, match="writer crashed"):
            await re.run(count([SimDetector("det")], num=2))
        stop = docs(engine, "stop")[0]
        assert stop["exit_status"] == "fail"
        assert "writer crashed" in stop["reason"]


@vt
async def test_non_json_readings_reach_the_log_as_json() -> None:
    class Weird:
        def __repr__(self) -> str:
            return "<weird>"

    async with running() as (engine, re):
        det = SimDetector("det", Weird)
        received: list[Any] = []
        re.subscribe(lambda name, doc: received.append(doc), "event")
        await re.run(count([det]))
        assert isinstance(received[0]["data"]["det"], Weird)  # subscribers get the object
        assert docs(engine, "event")[0]["data"]["det"] == "<weird>"  # the Log keeps JSON


@vt
async def test_messages_are_logged_in_order_before_their_effects() -> None:
    async with running() as (engine, re):
        await re.run(count([SimDetector("det")], num=2))
        kinds = [
            e.kind
            for e in engine.log.recent()
            if e.kind.startswith(("plan.", "run.", "run_engine."))
        ]
        # open_run's message is recorded before the start document it produced
        first_msgs = kinds.index("plan.msgs")
        assert first_msgs < kinds.index("run.start")
        commands = [m.command for m in logged_messages(engine.log.recent())]
        assert commands[:4] == ["stage", "open_run", "checkpoint", "trigger"]
        assert commands[-2:] == ["close_run", "unstage"]
        assert objs(engine, "read") == [("det", False), ("det", False)]


@vt
async def test_log_messages_can_be_turned_off() -> None:
    async with running(log_messages=False) as (engine, re):
        await re.run([Msg("null")] * 10)
        assert engine.log.recent(kinds="plan.msgs") == []
