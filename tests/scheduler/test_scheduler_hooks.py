"""Profiles and before/after hooks: order, statuses, alarms, timeouts, bad input, restarts."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from scheduler_helpers import Every, records_in, virtual

import timecontrol as tc
from timecontrol.scheduler import (
    ALARM_STATUSES,
    ExecutionRecord,
    HookRef,
    HookRun,
    Job,
    JobArgumentsError,
    JobOptionError,
    JobSpecError,
    UnknownHookError,
)
from timecontrol.testing import VirtualClock

START = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def _engine(calls: list[Any], *, fail: frozenset[str] | set[str] = frozenset()) -> tc.Engine:
    """An engine with an action `measure` and hooks that record each call (and may raise)."""
    engine = tc.Engine()
    sched = engine.scheduler

    @engine.action
    async def measure(channel: int = 1) -> float:
        calls.append(("measure", channel))
        await anyio.sleep(0.5)  # virtual time
        if "measure" in fail:
            raise RuntimeError("no signal")
        return 1.5 * channel

    @sched.hook(name="high_res")
    async def high_res(run: HookRun, rate: float = 1e6) -> None:
        calls.append(("profile", run.phase, rate, run.scheduled, run.manual))
        await anyio.sleep(0.25)  # virtual time
        if "profile" in fail:
            raise OSError("scope did not accept the profile")

    @sched.hook
    async def arm(run: HookRun, level: int = 0) -> None:
        calls.append(("before", run.phase, level))
        if "before" in fail:
            raise ValueError(f"cannot arm at {level}")

    @sched.hook
    async def disarm(run: HookRun) -> None:
        calls.append(("after", run.phase, run.status, run.result, type(run.error).__name__))
        if "after" in fail:
            raise RuntimeError("relay stuck")

    return engine


HOOKED: dict[str, Any] = {
    "profile": ("high_res", {"rate": 1e9}),
    "before": ["arm", {"hook": "arm", "params": {"level": 2}}],
    "after": ["disarm"],
}


@virtual(start="2026-03-10T12:00:00+00:00")
async def test_profile_before_action_after_run_in_order() -> None:
    calls: list[Any] = []
    engine = _engine(calls)
    t0 = engine.clock.time()
    engine.add_job("measure", Every(60.0, t0), id="m", kwargs={"channel": 3}, **HOOKED)
    async with engine:
        record = await engine.wait_job("m")
    fire = datetime.fromtimestamp(t0 + 60, UTC)
    assert calls == [
        ("profile", "profile", 1e9, fire, False),
        ("before", "before", 0),
        ("before", "before", 2),
        ("measure", 3),
        ("after", "after", "success", 4.5, "NoneType"),
    ]
    assert record.status == "success"
    assert record.result == 4.5
    assert record.hook is None
    # The profile's 0.25 s and the action's 0.5 s of virtual time are the run's duration.
    assert record.duration == pytest.approx(0.75)
    assert record.started == fire


@pytest.mark.parametrize(
    ("fail", "status", "hook", "called"),
    [
        ({"profile"}, "profile_failed", "high_res", ["profile", "after"]),
        ({"before"}, "before_failed", "arm", ["profile", "before", "after"]),
        ({"after"}, "after_failed", "disarm", ["profile", "before", "before", "measure", "after"]),
    ],
)
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_failing_hook_has_its_own_status_and_alarm(
    backend: str, fail: set[str], status: str, hook: str, called: list[str]
) -> None:
    async def main() -> None:
        calls: list[Any] = []
        alarms: list[ExecutionRecord] = []
        engine = _engine(calls, fail=fail)
        t0 = engine.clock.time()
        engine.add_job("measure", Every(60.0, t0), id="m", **HOOKED)

        async def alarm(job: Job, record: ExecutionRecord) -> None:
            alarms.append(record)

        engine.scheduler.on_failure(alarm)
        async with engine:
            record = await engine.wait_job("m")
            await anyio.sleep(1)  # the alarm task reads the record (virtual time)
            stats = await engine.job_stats("m")
        assert [c[0] for c in calls] == called
        assert record.status == status
        assert record.hook == hook
        assert status in ALARM_STATUSES
        assert [a.seq for a in alarms] == [record.seq]
        assert stats.failed == 1
        assert stats.succeeded == 0
        assert stats.runs == 1
        assert record.message is not None
        assert record.error is not None
        if status == "after_failed":
            assert record.result == 1.5  # the action's result is kept
            assert record.error == "RuntimeError"
            assert "relay stuck" in record.message
        else:
            assert ("measure", 1) not in calls  # the action was not called
            assert record.result is None
            assert record.reason is not None
            assert "the action was not called" in record.reason
            # The after hook saw the failure.
            assert calls[-1] == ("after", "after", status, None, record.error)

    VirtualClock(START).run(main, backend=backend)


@virtual(start="2026-03-10T12:00:00+00:00")
async def test_after_hook_failing_on_a_failed_run_keeps_the_failure() -> None:
    calls: list[Any] = []
    engine = _engine(calls, fail={"measure", "after"})
    t0 = engine.clock.time()
    engine.add_job("measure", Every(60.0, t0), id="m", after=["disarm", "disarm"])
    async with engine:
        record = await engine.wait_job("m")
    assert record.status == "failure"
    assert record.error == "RuntimeError"
    assert record.message == "no signal"
    assert record.hook == "disarm"
    assert record.reason is not None
    assert record.reason.count("after hook 'disarm' failed: RuntimeError: relay stuck") == 2
    assert [c[0] for c in calls] == ["measure", "after", "after"]  # every after hook ran


@virtual(start="2026-03-10T12:00:00+00:00")
async def test_timeout_covers_profile_and_action_and_names_the_phase() -> None:
    calls: list[Any] = []
    engine = _engine(calls)
    t0 = engine.clock.time()
    # 0.1 s: the profile (0.25 s) runs out of time; 0.6 s: the action (0.25 + 0.5) does.
    engine.add_job("measure", Every(60.0, t0), id="p", profile="high_res", timeout=0.1)
    engine.add_job(
        "measure", Every(60.0, t0), id="a", profile="high_res", after=["disarm"], timeout=0.6
    )
    async with engine:
        await anyio.sleep(61)  # virtual time
    p = records_in(engine.log, "p")
    a = records_in(engine.log, "a")
    assert [r.status for r in p] == ["profile_failed"]
    assert p[0].error == "TimeoutError"
    assert p[0].hook == "high_res"
    assert p[0].duration == pytest.approx(0.1)
    assert [r.status for r in a] == ["timeout"]
    assert a[0].duration == pytest.approx(0.6)
    assert ("after", "after", "timeout", None, "TimeoutError") in calls


@virtual(start="2026-03-10T12:00:00+00:00")
async def test_manual_runs_apply_the_profile_too() -> None:
    calls: list[Any] = []
    engine = _engine(calls)
    engine.add_job("measure", Every(3600.0, engine.clock.time()), id="m", profile="high_res")
    async with engine:
        engine.run_job("m", channel=2)
        record = await engine.wait_job("m")
    assert record.manual
    assert record.status == "success"
    assert record.result == 3.0
    assert calls[0][0] == "profile"
    assert calls[0][4] is True
    assert calls[1] == ("measure", 2)


def _snapshot(engine: tc.Engine) -> tuple[Any, ...]:
    return (
        [j.to_json() for j in engine.jobs()],
        [(e.kind, e.subject) for e in engine.log.recent()],
    )


@pytest.mark.parametrize(
    ("options", "error", "named"),
    [
        ({"profile": "nope"}, UnknownHookError, "'nope'"),
        ({"before": ["arm", "nope2"]}, UnknownHookError, "'nope2'"),
        ({"after": "disarm"}, JobSpecError, "must be a list of hooks"),
        ({"profile": ("high_res", {"rate": {1, 2}})}, JobArgumentsError, "not plain JSON"),
        ({"profile": ("high_res", {"rat": 1})}, JobArgumentsError, "'rat'"),
        ({"profile": ("high_res", {"run": 1})}, JobArgumentsError, "'run'"),
        ({"profile": 42}, JobSpecError, "42"),
        ({"before": [("arm",)]}, JobSpecError, "before[0]"),
        ({"profile": "mylab.profiles:x"}, UnknownHookError, "allowed_modules"),
        ({"profile_id": "high_res"}, JobOptionError, "profile"),
        ({"retention": -1}, JobSpecError, "retention"),
    ],
)
@virtual("asyncio", start="2026-03-10T12:00:00+00:00")
async def test_bad_hook_options_name_the_value_and_leave_no_trace(
    options: dict[str, Any], error: type[Exception], named: str
) -> None:
    engine = _engine([])
    engine.add_job("measure", Every(60.0, engine.clock.time()), id="keep")
    async with engine:
        before = _snapshot(engine)
        with pytest.raises(error) as info:
            engine.add_job("measure", Every(60.0, engine.clock.time()), id="new", **options)
        assert isinstance(info.value, tc.TimeControlError)
        assert named in str(info.value), str(info.value)
        with pytest.raises(error):
            engine.update_job("keep", **options)
        assert _snapshot(engine) == before


def test_hook_registration_is_checked() -> None:
    engine = tc.Engine()
    with pytest.raises(JobSpecError, match="not an async function"):
        engine.scheduler.hook(lambda run: None)  # type: ignore[arg-type,return-value]

    async def no_run() -> None: ...

    with pytest.raises(JobSpecError, match="first positional argument"):
        engine.scheduler.hook(no_run)

    async def fine(run: HookRun) -> None: ...

    with pytest.raises(JobSpecError, match="without ':'"):
        engine.scheduler.hook(fine, name="a:b")
    assert engine.scheduler.hooks == {}
    engine.scheduler.hook(fine)
    assert list(engine.scheduler.hooks) == ["fine"]


def test_hooks_survive_a_restart_and_old_readers_see_version_1(tmp_path: Path) -> None:
    path = tmp_path / "lab.sqlite"

    async def first() -> None:
        calls: list[Any] = []
        engine = _engine_on(path, calls)
        t0 = engine.clock.time()
        engine.add_job("measure", Every(60.0, t0), id="hooked", **HOOKED, retention=86400.0)
        engine.add_job("measure", Every(60.0, t0), id="plain")
        async with engine:
            await anyio.sleep(1)  # virtual time
        await engine.scheduler.aclose()

    VirtualClock(START).run(first)
    specs = dict(sqlite3.connect(path).execute("SELECT id, spec FROM scheduler_jobs"))
    assert msgspec.json.decode(specs["plain"])["version"] == 1
    assert "profile" not in msgspec.json.decode(specs["plain"])
    hooked = msgspec.json.decode(specs["hooked"])
    assert hooked["version"] == 2
    assert hooked["profile"] == {"hook": "high_res", "params": {"rate": 1e9}}
    assert hooked["before"] == [
        {"hook": "arm", "params": {}},
        {"hook": "arm", "params": {"level": 2}},
    ]

    async def second() -> None:
        calls: list[Any] = []
        engine = _engine_on(path, calls)
        job = engine.get_job("hooked")
        assert job.profile == HookRef("high_res", {"rate": 1e9})
        assert job.after == (HookRef("disarm", {}),)
        assert job.retention == 86400.0
        async with engine:
            record = await engine.wait_job("hooked")
        assert record.status == "success"
        assert [c[0] for c in calls if c[0] != "measure"] == [
            "profile",
            "before",
            "before",
            "after",
        ]

    VirtualClock(START).run(second)


def test_a_stored_hook_outside_allowed_modules_is_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "lab.sqlite"

    async def first() -> None:
        engine = _engine_on(path, [])
        engine.add_job("measure", Every(60.0, engine.clock.time()), id="j", profile="high_res")
        async with engine:
            pass
        await engine.scheduler.aclose()

    VirtualClock(START).run(first)
    with sqlite3.connect(path) as conn:
        (spec,) = conn.execute("SELECT spec FROM scheduler_jobs WHERE id = 'j'").fetchone()
        doc = msgspec.json.decode(spec)
        doc["profile"]["hook"] = "os:system"
        conn.execute(
            "UPDATE scheduler_jobs SET spec = ? WHERE id = 'j'",
            (msgspec.json.encode(doc).decode(),),
        )

    async def second() -> None:
        engine = _engine_on(path, [])
        assert "j" not in engine.scheduler
        assert "'os:system'" in engine.scheduler.quarantined["j"]

    VirtualClock(START).run(second)


def _engine_on(path: Path, calls: list[Any]) -> tc.Engine:
    """An engine on a store, whose hooks record (their phase, their params)."""
    engine = tc.Engine(store=path)

    @engine.action
    async def measure(channel: int = 1) -> float:
        calls.append(("measure", channel))
        return 1.5 * channel

    async def hook(run: HookRun, **params: Any) -> None:
        calls.append((run.phase, params))

    for name in ("high_res", "arm", "disarm"):
        engine.scheduler.hook(hook, name=name)
    return engine


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_alarm_false_keeps_a_job_from_the_scheduler_wide_handlers(backend: str) -> None:
    # The lab guide's on_failure_alarm: a job with alarm=False fails quietly for handlers
    # registered for every job, but not for one registered for it by id. The flag is stored.

    async def main() -> None:
        calls: list[Any] = []
        wide: list[str] = []
        own: list[str] = []
        engine = _engine(calls, fail={"measure"})
        t0 = engine.clock.time()
        engine.add_job("measure", Every(60.0, t0), id="quiet", alarm=False)
        engine.add_job("measure", Every(60.0, t0), id="loud")

        async def everyone(job: Job, record: ExecutionRecord) -> None:
            wide.append(job.id)

        async def mine(job: Job, record: ExecutionRecord) -> None:
            own.append(job.id)

        engine.scheduler.on_failure(everyone)
        engine.scheduler.on_failure(mine, job_id="quiet")
        async with engine:
            await engine.wait_job("quiet")
            await engine.wait_job("loud")
            await anyio.sleep(1)  # the alarm task reads the records (virtual time)
        # Both jobs failed (each wait returned a failure); only "loud" reached everyone.
        assert set(wide) == {"loud"}
        assert set(own) == {"quiet"}
        assert engine.get_job("quiet").alarm is False
        assert engine.get_job("loud").alarm is True
        assert engine.get_job("quiet").to_json()["version"] == 2
        assert "alarm" not in engine.get_job("loud").to_json()
        assert engine.get_job("loud").to_json()["version"] == 1

    VirtualClock(START).run(main, backend=backend)


def test_alarm_must_be_a_bool() -> None:
    engine = _engine([])
    before = engine.log.last_seq
    with pytest.raises(JobSpecError, match="alarm"):
        engine.add_job("measure", Every(60.0, 0.0), id="m", alarm="yes")
    assert engine.jobs() == []
    assert engine.log.last_seq == before
