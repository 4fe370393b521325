"""bluesky's run-engine semantics: NoReplayAllowed, record_interruptions, and a pause requested
by a function the plan calls inside the replay window."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from plans_support import docs, objs, running

from timecontrol.plans import Msg, SimDetector
from timecontrol.plans._compat import NoReplayAllowedBase

vt = pytest.mark.timecontrol
asyncio_only = pytest.mark.timecontrol(backends=["asyncio"])


class Refuser(SimDetector):
    """A detector whose pause() refuses replay (sync or async, ours or bluesky's class)."""

    def __init__(self, error: type[BaseException], *, is_async: bool = False) -> None:
        super().__init__("refuser")
        self.error = error
        self.is_async = is_async

    def pause(self) -> Any:
        super().pause()
        if self.is_async:

            async def refuse() -> None:
                raise self.error()

            return refuse()
        raise self.error()


def sleepy_plan(det: Any) -> Any:
    yield Msg("open_run")
    yield Msg("checkpoint")
    yield Msg("null", "A")
    yield Msg("create", name="primary")
    yield Msg("read", det)
    yield Msg("save")
    yield Msg("sleep", None, 5)
    yield Msg("null", "B")
    yield Msg("close_run")


async def pause_and_resume(re: Any, plan: Any, after: float = 1.0) -> Any:
    async def pauser() -> None:
        await anyio.sleep(after)
        re.request_pause()

    async with anyio.create_task_group() as tg:
        tg.start_soon(pauser)
        result = await re.run(plan)
    assert result.paused
    return await re.resume()


@vt
@pytest.mark.parametrize("is_async", [False, True])
async def test_no_replay_allowed_skips_the_replay(virtual_clock: Any, is_async: bool) -> None:
    async with running() as (engine, re):
        det = Refuser(NoReplayAllowedBase, is_async=is_async)
        t0 = virtual_clock.monotonic()
        result = await pause_and_resume(re, sleepy_plan(det))
        assert result.exit_status == "success"
        assert objs(engine, "null") == [("A", False), ("B", False)]  # nothing replayed
        assert len(docs(engine, "event")) == 1
        assert virtual_clock.monotonic() - t0 == pytest.approx(1)  # the cut sleep is not re-run
        (paused,) = engine.log.recent(kinds="plan.paused")
        assert paused.payload == {"replay": 0, "no_replay": ["refuser"]}


@vt
async def test_without_the_refusal_the_window_is_replayed() -> None:
    async with running() as (engine, re):
        result = await pause_and_resume(re, sleepy_plan(SimDetector("plain")))
        assert result.exit_status == "success"
        assert objs(engine, "null") == [("A", False), ("A", True), ("B", False)]
        assert [e["seq_num"] for e in docs(engine, "event")] == [1, 1]


@asyncio_only
async def test_bluesky_no_replay_allowed_is_honoured_and_public() -> None:
    from bluesky.utils import NoReplayAllowed

    from timecontrol import plans

    assert plans.NoReplayAllowed is NoReplayAllowed
    async with running() as (engine, re):
        result = await pause_and_resume(re, sleepy_plan(Refuser(NoReplayAllowed)), after=0.05)
        assert result.exit_status == "success"
        assert objs(engine, "null") == [("A", False), ("B", False)]


@vt
async def test_other_pause_errors_are_logged_and_the_window_replayed() -> None:
    async with running() as (engine, re):
        result = await pause_and_resume(re, sleepy_plan(Refuser(RuntimeError)))
        assert result.exit_status == "success"
        assert objs(engine, "null") == [("A", False), ("A", True), ("B", False)]
        (failed,) = engine.log.recent(kinds="plan.cleanup_failed")
        assert failed.payload["step"] == "pause"


# -- record_interruptions ------------------------------------------------------------------------


@vt
async def test_record_interruptions_adds_a_stream_of_pauses_and_resumes() -> None:
    event_model = pytest.importorskip("event_model")
    async with running() as (_engine, re):
        re.record_interruptions = True
        out: list[tuple[str, dict[str, Any]]] = []
        re.subscribe(lambda name, doc: out.append((name, doc)))
        result = await pause_and_resume(re, sleepy_plan(SimDetector("det")))
        assert result.exit_status == "success"
        for name, doc in out:
            event_model.schema_validators[event_model.DocumentNames[name]].validate(doc)
        descriptors = {doc["name"]: doc for name, doc in out if name == "descriptor"}
        assert descriptors["interruptions"]["data_keys"] == {
            "interruption": {"dtype": "string", "shape": [], "source": "RunEngine"}
        }
        uid = descriptors["interruptions"]["uid"]
        marks = [
            (doc["seq_num"], doc["data"]["interruption"])
            for name, doc in out
            if name == "event" and doc["descriptor"] == uid
        ]
        assert marks == [(1, "pause"), (2, "resume")]
        primary = [
            doc["seq_num"]
            for name, doc in out
            if name == "event" and doc["descriptor"] == descriptors["primary"]["uid"]
        ]
        assert primary == [1, 1]  # the replayed reading keeps its number
        stop = out[-1][1]
        assert stop["num_events"] == {"interruptions": 2, "primary": 1}


@vt
async def test_interruptions_are_not_recorded_by_default() -> None:
    async with running() as (engine, re):
        await pause_and_resume(re, sleepy_plan(SimDetector("det")))
        assert [d["name"] for d in docs(engine, "descriptor")] == ["primary"]


# -- a pause requested by a called function, inside the replay window ----------------------------


@vt
@pytest.mark.parametrize("defer", [False, True])
async def test_a_call_that_pauses_does_not_pause_again_when_replayed(defer: bool) -> None:
    async with running() as (engine, re):
        calls: list[int] = []

        def ask_for_pause() -> None:
            calls.append(1)
            re.request_pause(defer=defer)

        def plan() -> Any:
            yield Msg("open_run")
            yield Msg("checkpoint")
            yield Msg("call", ask_for_pause)
            yield Msg("null", "after")
            yield Msg("checkpoint")
            yield Msg("close_run")

        result = await re.run(plan())
        assert result.paused
        result = await re.resume()
        assert result.exit_status == "success"
        expected_calls = 1 if defer else 2  # a hard pause replays the call, once
        assert len(calls) == expected_calls
        requests = engine.log.recent(kinds="run_engine.pause_requested")
        ignored = [e.payload.get("ignored") for e in requests]
        assert ignored == ([None] if defer else [None, "replayed call"])


@vt
async def test_others_can_still_pause_during_a_replayed_call(virtual_clock: Any) -> None:
    async with running() as (_engine, re):
        first = True

        async def slow_call() -> None:
            nonlocal first
            if first:
                first = False
                re.request_pause()  # from the plan's own call: the replay must not repeat it
            await anyio.sleep(2)  # virtual time

        def plan() -> Any:
            yield Msg("checkpoint")
            yield Msg("call", slow_call)
            yield Msg("checkpoint")

        result = await re.run(plan())
        assert result.paused

        async def operator() -> None:
            await anyio.sleep(1)  # virtual time, during the replayed call's sleep
            re.request_pause()

        async with anyio.create_task_group() as tg:
            tg.start_soon(operator)
            result = await re.resume()
        assert result.paused  # the operator's pause, from another task, is honoured
        assert (await re.resume()).exit_status == "success"


# -- bluesky's other commands ----------------------------------------------------------------------


class Configurable(SimDetector):
    """A detector with configuration, locate() and an execute()/kickoff()/complete() RPC."""

    def __init__(self) -> None:
        super().__init__("conf")
        self.gain = 1
        self.done: list[str] = []

    def read_configuration(self) -> dict[str, Any]:
        return {"conf_gain": {"value": self.gain, "timestamp": 0.0}}

    def describe_configuration(self) -> dict[str, Any]:
        return {"conf_gain": {"source": "sim", "dtype": "integer", "shape": []}}

    def configure(self, gain: int) -> tuple[dict[str, Any], dict[str, Any]]:
        old = self.read_configuration()
        self.gain = gain
        return old, self.read_configuration()

    def locate(self) -> dict[str, float]:
        return {"setpoint": 1.0, "readback": 2.0}

    async def _finish(self, what: str) -> None:
        await anyio.sleep(1)  # virtual time
        self.done.append(what)

    def execute(self, what: str) -> Any:
        return self._finish(what)

    def kickoff(self) -> Any:
        return self._finish("kickoff")

    def complete(self) -> Any:
        return self._finish("complete")


@vt
async def test_declare_stream_configure_locate_and_grouped_rpcs(virtual_clock: Any) -> None:
    event_model = pytest.importorskip("event_model")
    async with running() as (_engine, re):
        out: list[tuple[str, dict[str, Any]]] = []
        re.subscribe(lambda name, doc: out.append((name, doc)))
        det = Configurable()
        answers: dict[str, Any] = {}

        def plan() -> Any:
            yield Msg("open_run")
            yield Msg("declare_stream", None, det, name="primary")
            for gain in (1, 5):
                if gain != 1:
                    yield Msg("configure", det, gain)
                yield Msg("create", name="primary")
                yield Msg("read", det)
                yield Msg("save")
            answers["where"] = yield Msg("locate", det)
            yield Msg("execute", det, group="g", execute_args=("rpc",))
            yield Msg("kickoff", det, group="g")
            yield Msg("complete", det, group="g")
            yield Msg("wait", None, group="g")
            yield Msg("wait_for", None, [lambda: anyio.sleep(1)])  # virtual time
            answers["class"] = yield Msg("RE_class")
            yield Msg("close_run")

        t0 = virtual_clock.monotonic()
        result = await re.run(plan())
        assert result.exit_status == "success"
        for name, doc in out:
            event_model.schema_validators[event_model.DocumentNames[name]].validate(doc)
        assert [name for name, _ in out] == [
            "start",
            "descriptor",
            "event",
            "descriptor",
            "event",
            "stop",
        ]
        first, second = (doc for name, doc in out if name == "descriptor")
        assert first["configuration"]["conf"]["data"] == {"conf_gain": 1}
        assert second["configuration"]["conf"]["data"] == {"conf_gain": 5}
        assert [doc["seq_num"] for name, doc in out if name == "event"] == [1, 2]
        assert answers["where"] == {"setpoint": 1.0, "readback": 2.0}
        assert answers["class"] is type(re)
        assert sorted(det.done) == ["complete", "kickoff", "rpc"]
        assert virtual_clock.monotonic() - t0 == pytest.approx(2)  # rpcs together, then 1 s


@vt
async def test_a_command_on_an_object_without_the_method_is_thrown_into_the_plan() -> None:
    from timecontrol.plans import PlanArgumentError

    async with running() as (_engine, re):
        caught: list[BaseException] = []

        def plan() -> Any:
            try:
                yield Msg("kickoff", object())
            except PlanArgumentError as exc:
                caught.append(exc)

        await re.run(plan())
        assert "kickoff() method" in str(caught[0])
