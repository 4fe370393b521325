"""The Engine's public calls with junk: only TimeControlError, and no trace of a refusal."""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import timecontrol as tc
from timecontrol.errors import StoreLockedError

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["\ud800", "", "sample", "timecontrol.job", "x" * 300]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=3),
    st.datetimes(timezones=st.just(UTC)),
    st.datetimes(),  # naive
)
OPTIONS = st.dictionaries(
    st.sampled_from(
        [
            "id", "kwargs", "conflict", "coalesce", "misfire_grace", "timeout",
            "max_executions", "start", "end", "name", "tags", "enabled", "profile_id",
            "durable_start", "max_queue", "max_instances",
        ]
    ),
    JUNK,
    max_size=4,
)  # fmt: skip


def _dump(engine: tc.Engine) -> tuple[Any, ...]:
    jobs = [job.to_json() for job in engine.jobs()]
    return jobs, len(engine.schedule), engine.log.last_seq


def _call(fn: Any, *args: Any, **kwargs: Any) -> bool:
    """True if the call was accepted; a refusal must be a TimeControlError."""
    try:
        fn(*args, **kwargs)
    except tc.TimeControlError:
        return False
    return True


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> tc.Engine:
    engine = tc.Engine(store=tmp_path_factory.mktemp("fuzz") / "lab.sqlite")

    @engine.action
    async def sample(volume_ul: float = 1.0, note: str = "") -> None:
        pass

    engine.add_job("sample", tc.interval(seconds=60), id="base", kwargs={"volume_ul": 2.0})
    return engine


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(action=JUNK, options=OPTIONS)
def test_add_job_with_junk(engine: tc.Engine, action: Any, options: dict[str, Any]) -> None:
    before = _dump(engine)
    options.pop("id", None)
    accepted = _call(engine.add_job, action, tc.interval(seconds=30), id="fuzzed", **options)
    if accepted:
        engine.remove_job("fuzzed")
    else:
        assert _dump(engine) == before


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(changes=OPTIONS)
def test_update_job_with_junk(engine: tc.Engine, changes: dict[str, Any]) -> None:
    before = _dump(engine)
    changes.pop("id", None)
    if not _call(engine.update_job, "base", **changes):
        assert _dump(engine) == before
    else:
        engine.update_job(
            "base", kwargs={"volume_ul": 2.0}, enabled=True, conflict="skip", coalesce="latest"
        )


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(action=JUNK, at=JUNK, kwargs=JUNK, subject=JUNK, priority=JUNK)
def test_submit_with_junk(
    engine: tc.Engine, action: Any, at: Any, kwargs: Any, subject: Any, priority: Any
) -> None:
    before = _dump(engine)
    if isinstance(at, float) and math.isfinite(at):
        at = min(max(at, 0.0), 4e9)
    if _call(engine.submit, action, at=at, kwargs=kwargs, subject=subject, priority=priority):
        intent = engine.schedule.peek()
        assert intent is not None
        engine.schedule.cancel(intent)
    else:
        assert _dump(engine) == before


@settings(max_examples=80, deadline=None)
@given(store=JUNK, ring_size=JUNK)
def test_engine_construction_with_junk(store: Any, ring_size: Any) -> None:
    if isinstance(store, str) and store:
        store = None  # a str names a file: junk names would create files in the cwd
    _call(tc.Engine, store=store, ring_size=ring_size)


@pytest.mark.timecontrol
async def test_two_engines_on_one_file_through_a_symlink(tmp_path: Path) -> None:
    path = tmp_path / "lab.sqlite"
    link = tmp_path / "link.sqlite"
    os.symlink(path, link)
    first = tc.Engine(store=path)
    runs: list[datetime] = []

    @first.action
    async def tick() -> None:
        runs.append(first.clock.now())

    first.add_job("tick", tc.interval(seconds=10), id="tick")
    async with first:
        second = tc.Engine(store=link)
        with pytest.raises(StoreLockedError, match="readonly=True"):
            second.jobs()
        with pytest.raises(StoreLockedError):
            async with second:
                pass
        await first.scheduler.flush()  # the job's definition is on disk
        reader = tc.Engine(store=link, readonly=True)
        assert [job.id for job in reader.jobs()] == ["tick"]
        with pytest.raises(tc.EngineStateError, match="read-only"):
            async with reader:
                pass
        await anyio.sleep(35)  # virtual time
    assert len(runs) == 3  # the first engine kept running every job
