"""bluesky 1.16 behaviour of the async run engine, on virtual time, asyncio and trio: ``wait``
with watch groups and timeouts, ``wait_for``, the waiting hook, ``monitor``/``unmonitor``,
the metadata hooks, ``request_suspend`` and stop/abort requests a plan re-raises."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from plans_support import docs, running

from timecontrol import current_clock
from timecontrol.plans import (
    Msg,
    PlanArgumentError,
    RequestStop,
    SimStatus,
    StatusFailed,
)
from timecontrol.plans._errors import IllegalMessageSequence, WaitForTimeoutError

vt = pytest.mark.timecontrol


class Stager:
    """stage()/unstage() return a SimStatus finished by the test (or after `seconds`)."""

    def __init__(self, name: str, seconds: float | None = None) -> None:
        self.name = name
        self.seconds = seconds
        self.statuses: list[SimStatus] = []

    def _status(self) -> SimStatus:
        # No `seconds`: in effect never by itself (finished by the test).
        seconds = 1e9 if self.seconds is None else self.seconds
        status = SimStatus(current_clock().monotonic() + seconds)
        self.statuses.append(status)
        return status

    def stage(self) -> SimStatus:
        return self._status()

    def unstage(self) -> SimStatus:
        return self._status()


def finish_later(status: SimStatus, seconds: float, fail: bool = False) -> Any:
    async def later() -> None:
        await anyio.sleep(seconds)  # virtual time
        status.finish(success=not fail, exc=ValueError("failed") if fail else None)

    return later


@vt
async def test_a_failing_status_ends_the_wait_at_once(virtual_clock: Any) -> None:
    a, b = Stager("a"), Stager("b")
    seen: list[float] = []

    def plan() -> Any:
        yield Msg("stage", a, group="g")
        s2 = yield Msg("stage", b, group="g")
        tg.start_soon(finish_later(s2, 1.0, fail=True))
        t0 = virtual_clock.monotonic()
        try:
            yield Msg("wait", group="g", timeout=5)
        except StatusFailed:
            seen.append(virtual_clock.monotonic() - t0)

    async with running() as (_engine, re), anyio.create_task_group() as tg:
        await re.run(plan())
        tg.cancel_scope.cancel()
    assert seen == [pytest.approx(1.0)]  # not after the timeout, not waiting for a


@vt
async def test_a_watched_group_failing_ends_the_wait(virtual_clock: Any) -> None:
    a, b = Stager("a"), Stager("b")
    seen: list[Any] = []

    def plan() -> Any:
        yield Msg("stage", a, group="g")
        watched = yield Msg("stage", b, group="w")
        tg.start_soon(finish_later(watched, 0.5, fail=True))
        t0 = virtual_clock.monotonic()
        try:
            yield Msg("wait", group="g", timeout=5, watch=("w",))
        except StatusFailed as exc:
            seen.append((virtual_clock.monotonic() - t0, type(exc.__cause__)))

    async with running() as (_engine, re), anyio.create_task_group() as tg:
        await re.run(plan())
        tg.cancel_scope.cancel()
    assert seen == [(pytest.approx(0.5), ValueError)]


@vt
async def test_a_watched_group_that_succeeds_does_not_end_the_wait(virtual_clock: Any) -> None:
    a, b = Stager("a", seconds=2.0), Stager("b", seconds=0.5)

    def plan() -> Any:
        yield Msg("stage", a, group="g")
        yield Msg("stage", b, group="w")
        t0 = virtual_clock.monotonic()
        done = yield Msg("wait", group="g", timeout=3, watch=("w",))
        return done, virtual_clock.monotonic() - t0

    async with running() as (_engine, re):
        result = await re.run(plan())
    assert result.plan_result == (True, pytest.approx(2.0))


@vt
async def test_timeout_raises_wait_for_timeout_error_and_keeps_the_group() -> None:
    a = Stager("a")
    outcome: list[Any] = []

    def plan() -> Any:
        status = yield Msg("stage", a, group="g")
        try:
            yield Msg("wait", group="g", timeout=0.5)
        except WaitForTimeoutError as exc:
            outcome.append(isinstance(exc, TimeoutError))
        outcome.append((yield Msg("wait", group="g", timeout=0.5, error_on_timeout=False)))
        status.finish()
        outcome.append((yield Msg("wait", group="g", timeout=0.5)))  # still in the group

    async with running() as (_engine, re):
        await re.run(plan())
    assert outcome == [True, False, True]


@vt
async def test_waiting_hook_gets_the_statuses_then_none() -> None:
    a, b = Stager("a", seconds=1), Stager("b", seconds=2)
    calls: list[Any] = []

    def plan() -> Any:
        yield Msg("stage", a, group="g")
        yield Msg("stage", b, group="g")
        yield Msg("wait", group="g")

    async with running() as (_engine, re):
        re.waiting_hook = calls.append
        await re.run(plan())
    assert len(calls) == 2
    assert calls[0] == {a.statuses[0], b.statuses[0]}
    assert calls[1] is None


@vt
async def test_wait_for_returns_when_all_finished_or_raises_on_timeout(
    virtual_clock: Any,
) -> None:
    async def value(seconds: float) -> float:
        await anyio.sleep(seconds)  # virtual time
        return seconds

    def plan() -> Any:
        futures = yield Msg("wait_for", None, [lambda: value(1), lambda: value(2)])
        t = virtual_clock.monotonic()
        try:
            yield Msg("wait_for", None, [lambda: value(100)], timeout=0.5)
        except WaitForTimeoutError:
            return futures, virtual_clock.monotonic() - t
        return None

    async with running() as (_engine, re):
        result = await re.run(plan())
    futures, waited = result.plan_result
    assert waited == pytest.approx(0.5)
    assert [f.done() if callable(f.done) else f.done for f in futures] == [True, True]


class Pushing:
    """An ophyd-style signal: subscribe(cb) / clear_sub(cb), read(), put(v) calls back."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.value = 0.0
        self.callbacks: list[Any] = []

    def describe(self) -> dict[str, Any]:
        return {self.name: {"dtype": "number", "shape": [], "source": "sim"}}

    def read(self) -> dict[str, Any]:
        return {self.name: {"value": self.value, "timestamp": 1.0}}

    def subscribe(self, callback: Any, **kwargs: Any) -> int:
        self.callbacks.append(callback)
        return len(self.callbacks)

    def clear_sub(self, callback: Any) -> None:
        self.callbacks.remove(callback)

    def put(self, value: float) -> None:
        self.value = value
        for callback in list(self.callbacks):
            callback(value=value)


@vt
async def test_monitor_emits_a_descriptor_and_an_event_per_change() -> None:
    sig = Pushing("sig")

    def plan() -> Any:
        yield Msg("open_run")
        yield Msg("monitor", sig, name="sig_monitor")
        yield Msg("call", sig.put, 1.0)
        yield Msg("call", sig.put, 2.0)
        yield Msg("unmonitor", sig)
        yield Msg("call", sig.put, 3.0)  # not monitored any more
        yield Msg("monitor", sig)  # again: legal
        yield Msg("close_run")  # unsubscribes it

    async with running() as (engine, re):
        await re.run(plan())
        descriptors = docs(engine, "descriptor")
    assert [d["name"] for d in descriptors] == ["sig_monitor"]
    events = docs(engine, "event")
    assert [(e["seq_num"], e["data"]) for e in events] == [(1, {"sig": 1.0}), (2, {"sig": 2.0})]
    assert sig.callbacks == []


@vt
async def test_monitoring_twice_is_illegal_and_unmonitor_needs_a_monitor() -> None:
    sig = Pushing("sig")
    async with running() as (_engine, re):
        with pytest.raises(IllegalMessageSequence, match="already monitored"):
            await re.run([Msg("open_run"), Msg("monitor", sig), Msg("monitor", sig)])
        assert sig.callbacks == []  # the failed run's end unsubscribed it
        with pytest.raises(IllegalMessageSequence, match="not monitored"):
            await re.run([Msg("open_run"), Msg("unmonitor", sig)])


@vt
async def test_scan_id_source_sync_and_async_and_the_metadata_hooks() -> None:
    async def forty_two(md: dict[str, Any]) -> int:
        return 42

    async with running() as (engine, re):
        re.scan_id_source = lambda md: 314159
        await re.run([Msg("open_run"), Msg("close_run")])
        assert re.md["scan_id"] == 314159
        re.scan_id_source = forty_two
        re.md_normalizer = lambda md: {k.lower(): v for k, v in md.items()}
        given = {"TEST": {"nested": [1]}}
        await re.run([Msg("open_run", **given), Msg("close_run")])
        start = docs(engine, "start")[-1]
    assert start["scan_id"] == 42
    assert re.md["scan_id"] == 42
    assert start["test"] == {"nested": [1]}
    assert "TEST" not in start
    assert "TEST" in given  # the normaliser worked on a copy


@vt
async def test_the_default_validator_refuses_a_sample_that_is_no_str_or_dict() -> None:
    async with running() as (engine, re):
        with pytest.raises(PlanArgumentError, match="'sample' must be a string or a dict"):
            await re.run([Msg("open_run", sample=1), Msg("close_run")])
        assert docs(engine, "start") == []  # nothing written
        await re.run([Msg("open_run", sample={"n": 1}), Msg("close_run")])
        await re.run([Msg("open_run", sample="dirt"), Msg("close_run")])
        assert len(docs(engine, "start")) == 2


@vt
async def test_request_suspend_holds_the_plan_until_the_awaitable_is_done(
    virtual_clock: Any,
) -> None:
    released = anyio.Event()
    pre: list[str] = []

    def plan() -> Any:
        yield Msg("checkpoint")
        yield Msg("sleep", None, 10)
        return virtual_clock.monotonic()

    async def release() -> None:
        await anyio.sleep(1)  # virtual time
        re.request_suspend(released.wait, pre_plan=[Msg("call", pre.append, "pre")])
        await anyio.sleep(4)  # virtual time
        released.set()

    async with running() as (engine, re), anyio.create_task_group() as tg:
        t0 = virtual_clock.monotonic()
        tg.start_soon(release)
        result = await re.run(plan())
    # suspended at 1 s, released at 5 s, the sleep replayed from the checkpoint: 15 s
    assert result.plan_result - t0 == pytest.approx(15.0)
    assert pre == ["pre"]
    kinds = [e.kind for e in engine.log.recent(kinds=["plan.suspended", "plan.rewound"])]
    assert kinds == ["plan.suspended", "plan.rewound"]


@vt
async def test_request_suspend_while_paused_runs_first_on_resume() -> None:
    hit: list[str] = []

    def plan() -> Any:
        yield Msg("null")
        try:
            yield Msg("pause")
        except Exception:
            hit.append("plan saw it")
            raise

    def bad_pre_plan() -> Any:
        yield Msg("null")
        raise RuntimeError("pre-plan failed")

    async with running() as (_engine, re):
        assert (await re.run(plan())).paused
        done = anyio.Event()
        done.set()
        re.request_suspend(done.wait, pre_plan=bad_pre_plan())
        with pytest.raises(RuntimeError, match="pre-plan failed"):
            await re.resume()
    assert hit == ["plan saw it"]


@vt
async def test_request_suspend_when_idle_is_ignored_and_recorded() -> None:
    async with running() as (engine, re):
        re.request_suspend(None)
        (event,) = engine.log.recent(kinds="run_engine.suspend_requested")
        assert event.payload["refused"] == "idle"
        assert re.state == "idle"


@vt
async def test_a_plan_that_catches_and_reraises_stop_ends_as_success() -> None:
    def plan() -> Any:
        yield Msg("open_run")
        try:
            yield Msg("checkpoint")
            yield Msg("pause")
        except RequestStop as exc:
            yield Msg("close_run", exit_status=exc.exit_status)
            raise

    async with running() as (engine, re):
        assert (await re.run(plan())).paused
        result = await re.stop()
        assert result.exit_status == "success"
        assert [d["exit_status"] for d in docs(engine, "stop")] == ["success"]


@vt
async def test_staging_needs_both_stage_and_unstage_and_unstage_joins_a_group() -> None:
    class StageOnly:
        name = "stage_only"

        def stage(self) -> None:
            raise AssertionError("never staged: it could not be unstaged")

    dev = Stager("dev", seconds=1)

    def plan() -> Any:
        yield Msg("stage", StageOnly())
        yield Msg("stage", dev)
        status = yield Msg("unstage", dev, group="u")
        early = status.done
        yield Msg("wait", group="u")
        return early, status.done

    async with running() as (_engine, re):
        result = await re.run(plan())
    assert result.plan_result == (False, True)
