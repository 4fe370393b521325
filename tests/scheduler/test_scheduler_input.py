"""Bad input leaves no trace; damaged rows are quarantined; stored actions never import code
from outside the allow-list; a fuzz of the public calls only ever raises TimeControlErrors."""

from __future__ import annotations

import math
import sqlite3
import sys
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from scheduler_helpers import Every

import timecontrol as tc
from timecontrol.scheduler import (
    ActionNotAllowedError,
    JobArgumentsError,
    JobNotFoundError,
    JobOptionError,
    JobSpecError,
    PolicyError,
    Scheduler,
)
from timecontrol.testing import VirtualClock

START = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
T0 = START.timestamp()
LATER = T0 + 86_400  # far enough that nothing fires while a test pokes at the scheduler


def _engine(path: Path) -> tc.Engine:
    engine = tc.Engine(store=path)

    @engine.action
    async def sample(volume_ul: float, note: str = "") -> float:
        return volume_ul

    return engine


async def _snapshot(engine: tc.Engine, path: Path) -> tuple[Any, ...]:
    """Everything a rejected call must leave as it was: the store's scheduler rows, the
    jobs, the Log's last sequence number (and the writer must still be alive to flush)."""
    await engine.scheduler.flush()
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        rows = [
            sorted(conn.execute(f"SELECT * FROM {t}"))
            for t in ("scheduler_jobs", "scheduler_state", "scheduler_meta")
        ]
    finally:
        conn.close()
    jobs = [j.to_json() for j in engine.jobs()]
    return rows, jobs, engine.log.last_seq, engine.scheduler.running()


class _Failing(tc.triggers.TriggerBase):
    json_type = "test_failing_at_once"

    def next(self, after: datetime) -> datetime | None:
        raise RuntimeError("no next for you")

    def to_json(self) -> dict[str, object]:
        return {"type": self.json_type}

    def explain(self) -> str:
        return "fails"

    @classmethod
    def _from_json(cls, d: dict[str, object]) -> _Failing:
        return cls()


def _handler(job: object, record: object) -> None:
    pass


# (The calls take the engine as Any: they pass what the types forbid, on purpose.)
BAD_CALLS: list[tuple[str, type[Exception], str, Callable[[Any], object]]] = [
    (
        "lone surrogate id",
        JobSpecError,
        "job id",
        lambda e: e.add_job("sample", Every(1, LATER), id="\ud800", kwargs={"volume_ul": 1}),
    ),
    (
        "lone surrogate name",
        JobSpecError,
        "name",
        lambda e: e.add_job(
            "sample", Every(1, LATER), id="b", name="\udfff", kwargs={"volume_ul": 1}
        ),
    ),
    (
        "lone surrogate tag",
        JobSpecError,
        "tag",
        lambda e: e.add_job(
            "sample", Every(1, LATER), id="b", tags=["ok", "\ud800"], kwargs={"volume_ul": 1}
        ),
    ),
    (
        "tags None",
        JobSpecError,
        "tags",
        lambda e: e.add_job("sample", Every(1, LATER), id="b", tags=None, kwargs={"volume_ul": 1}),
    ),
    (
        "kwargs a str",
        JobArgumentsError,
        "kwargs",
        lambda e: e.add_job("sample", Every(1, LATER), id="b", kwargs="x"),
    ),
    (
        "kwargs a datetime",
        JobArgumentsError,
        "not JSON",
        lambda e: e.add_job("sample", Every(1, LATER), id="b", kwargs={"volume_ul": START}),
    ),
    (
        "kwargs misspelt",
        JobArgumentsError,
        "'volme_ul'",
        lambda e: e.add_job("sample", Every(1, LATER), id="b", kwargs={"volme_ul": 1}),
    ),
    (
        "kwargs missing",
        JobArgumentsError,
        "'volume_ul'",
        lambda e: e.add_job("sample", Every(1, LATER), id="b"),
    ),
    (
        "unknown option",
        JobOptionError,
        "'profile_id'",
        lambda e: e.add_job(
            "sample", Every(1, LATER), id="b", profile_id=3, kwargs={"volume_ul": 1}
        ),
    ),
    (
        "bad policy",
        PolicyError,
        "'skp'",
        lambda e: e.add_job(
            "sample", Every(1, LATER), id="b", conflict="skp", kwargs={"volume_ul": 1}
        ),
    ),
    (
        "not a trigger",
        JobSpecError,
        "not a trigger",
        lambda e: e.add_job("sample", object(), id="b", kwargs={"volume_ul": 1}),
    ),
    (
        "failing trigger",
        JobSpecError,
        "no next for you",
        lambda e: e.add_job("sample", _Failing(), id="b", kwargs={"volume_ul": 1}),
    ),
    (
        "module not allowed",
        ActionNotAllowedError,
        "allowed_modules",
        lambda e: e.add_job("os:system", Every(1, LATER), id="b"),
    ),
    (
        "unknown action",
        tc.errors.UnknownActionError,
        "'smaple'",
        lambda e: e.add_job("smaple", Every(1, LATER), id="b"),
    ),
    (
        "a sync function",
        tc.errors.UnknownActionError,
        "async",
        lambda e: e.add_job(print, Every(1, LATER), id="b"),
    ),
    (
        "duplicate",
        tc.errors.DuplicateJobError,
        "'a'",
        lambda e: e.add_job("sample", Every(2, LATER), id="a", kwargs={"volume_ul": 1}),
    ),
    ("update surrogate", JobSpecError, "name", lambda e: e.update_job("a", name="\ud800")),
    ("update kwargs", JobArgumentsError, "'bad'", lambda e: e.update_job("a", kwargs={"bad": 1})),
    ("update option", JobOptionError, "'nonsense'", lambda e: e.update_job("a", nonsense=1)),
    (
        "update trigger",
        JobSpecError,
        "no next for you",
        lambda e: e.update_job("a", trigger=_Failing()),
    ),
    ("update enabled", JobSpecError, "enabled", lambda e: e.update_job("a", enabled="yes")),
    ("update id", JobSpecError, "id cannot change", lambda e: e.update_job("a", id="z")),
    ("remove surrogate", JobNotFoundError, "ud800", lambda e: e.remove_job("\ud800")),
    ("remove a list", JobNotFoundError, "['a']", lambda e: e.remove_job(["a"])),
    ("pause None", JobNotFoundError, "None", lambda e: e.pause_job(None)),
    ("run misspelt", JobArgumentsError, "'volme_ul'", lambda e: e.run_job("a", volme_ul=1)),
    ("run not JSON", JobArgumentsError, "JSON", lambda e: e.run_job("a", volume_ul=math.nan)),
    (
        "alarm statuses",
        JobSpecError,
        "'nope'",
        lambda e: e.scheduler.on_failure(_handler, statuses=["nope"]),
    ),
]


@pytest.mark.parametrize(
    ("what", "error", "named", "call"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS]
)
def test_bad_input_names_it_and_leaves_no_trace(
    tmp_path: Path,
    what: str,
    error: type[Exception],
    named: str,
    call: Callable[[tc.Engine], object],
) -> None:
    path = tmp_path / "lab.sqlite"

    async def main() -> None:
        engine = _engine(path)
        engine.add_job("sample", Every(60.0, LATER), id="a", kwargs={"volume_ul": 1})
        async with engine:
            before = await _snapshot(engine, path)
            with pytest.raises(error) as info:
                call(engine)
            assert isinstance(info.value, tc.TimeControlError)
            assert named in str(info.value), str(info.value)
            assert await _snapshot(engine, path) == before
            engine.remove_job("a")  # the writer is alive and takes a normal change
            await engine.scheduler.flush()

    VirtualClock(START).run(main)


def _store_with_jobs(path: Path, ids: list[str]) -> None:
    async def main() -> None:
        engine = _engine(path)
        for job_id in ids:
            engine.add_job("sample", Every(1.0, T0), id=job_id, kwargs={"volume_ul": 1})
        async with engine:
            await anyio.sleep(2.5)  # virtual time

    VirtualClock(START).run(main)


def test_damaged_rows_are_quarantined_and_the_rest_run(tmp_path: Path) -> None:
    path = tmp_path / "lab.sqlite"
    _store_with_jobs(path, ["good", "text", "deep", "state", "module", "other_id"])
    depth = 5000  # deeper than any decoder or repr() will follow
    deep = '{"type":"union","triggers":[' * depth + '{"type":"x"}' + "]}" * depth
    with sqlite3.connect(path) as conn:
        spec = dict(conn.execute("SELECT id, spec FROM scheduler_jobs"))
        doc = msgspec.json.decode(spec["module"])
        doc["action"] = "os:system"
        other = msgspec.json.decode(spec["other_id"])
        other["id"] = "good"
        deep_doc = msgspec.json.decode(spec["deep"])
        del deep_doc["trigger"]
        for job_id, text in (
            ("text", "{not json"),
            ("deep", msgspec.json.encode(deep_doc).decode()[:-1] + f',"trigger":{deep}}}'),
            ("module", msgspec.json.encode(doc).decode()),
            ("other_id", msgspec.json.encode(other).decode()),
        ):
            conn.execute("UPDATE scheduler_jobs SET spec = ? WHERE id = ?", (text, job_id))
        conn.execute("UPDATE scheduler_state SET inflight = '[garbage' WHERE id = 'state'")
        # Odd events after the watermark: a foreign job.started, an unknown kind.
        top = conn.execute("SELECT MAX(seq) FROM events").fetchone()[0]
        conn.executemany(
            "INSERT INTO events VALUES (?, 0, ?, ?, 'good', ?)",
            [
                (top + 1, T0 + 3, "job.started", '{"run": "x", "scheduled": "soon"}'),
                (top + 2, T0 + 3, "job.nonsense", "{}"),
                (top + 3, T0 + 3, "job.succeeded", "[1, 2]"),
            ],
        )
    conn.close()
    before = sorted(sqlite3.connect(path).execute("SELECT id, spec FROM scheduler_jobs"))

    async def reopen() -> tuple[dict[str, str], list[str], list[str]]:
        engine = _engine(path)
        async with engine:
            await anyio.sleep(3.5)  # virtual time
            quarantined = engine.scheduler.quarantined
            reported = [e.subject for e in engine.log.recent(kinds="scheduler.quarantined")]
            ran = [e.subject for e in engine.log.recent(kinds="job.succeeded")]
        return quarantined, reported, ran

    quarantined, reported, ran = VirtualClock(START.replace(second=10)).run(reopen)
    assert sorted(quarantined) == ["deep", "module", "other_id", "state", "text"]
    assert "os:system" in quarantined["module"]
    assert "not imported" in quarantined["module"]
    assert "state row" in quarantined["state"]
    assert sorted(reported) == sorted(quarantined)
    assert set(ran) == {"good"}  # the good job runs on
    assert len(ran) >= 3
    after = sorted(sqlite3.connect(path).execute("SELECT id, spec FROM scheduler_jobs"))
    assert [r for r in after if r[0] != "good"] == [r for r in before if r[0] != "good"]


def test_stored_actions_import_only_from_allowed_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = "tc_test_lab_actions"
    (tmp_path / f"{module}.py").write_text(
        textwrap.dedent(
            """
            RAN = []

            async def sample(volume_ul: float) -> float:
                RAN.append(volume_ul)
                return volume_ul
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    path = tmp_path / "lab.sqlite"

    async def first() -> None:
        engine = tc.Engine(store=path)
        Scheduler(engine, allowed_modules=[module])
        with pytest.raises(JobArgumentsError, match="'volume'"):
            engine.add_job(f"{module}:sample", Every(1.0, T0), id="m", kwargs={"volume": 2})
        engine.add_job(f"{module}:sample", Every(1.0, T0), id="m", kwargs={"volume_ul": 2})
        async with engine:
            await anyio.sleep(2.5)  # virtual time

    VirtualClock(START).run(first)
    assert sys.modules[module].RAN == [2, 2]
    del sys.modules[module]

    async def second() -> dict[str, str]:
        engine = tc.Engine(store=path)  # no allow-list: the stored reference is refused
        async with engine:
            await anyio.sleep(2.0)  # virtual time
            return engine.scheduler.quarantined

    quarantined = VirtualClock(START.replace(second=5)).run(second)
    assert "allowed_modules" in quarantined["m"]
    assert module not in sys.modules  # never imported


# -- fuzz ---------------------------------------------------------------------------------------

_junk = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(alphabet=st.characters(codec=None), max_size=8),
        st.sampled_from(["\ud800", "a", "sample", "skip", "latest", "", "x:y", "os:system"]),
        st.datetimes(),
        st.builds(object),
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
_option_names = st.sampled_from(
    [
        "kwargs", "name", "description", "tags", "enabled", "timeout", "max_executions",
        "start", "end", "conflict", "max_instances", "max_queue", "misfire_grace", "coalesce",
        "durable_start", "profile_id", "trigger", "action", "replace_existing", "reset_state",
    ]
)  # fmt: skip
_ids = st.one_of(st.sampled_from(["a", "b", "\ud800", ""]), _junk)
_triggers = st.one_of(
    st.sampled_from([Every(60.0, LATER), tc.interval(hours=1, anchor=START.replace(day=20))]),
    _junk,
)
_calls = st.one_of(
    st.tuples(st.just("add_job"), st.sampled_from(["anything", "sample", "os:system"]) | _junk,
              _triggers, _ids, st.dictionaries(_option_names, _junk, max_size=3)),
    st.tuples(st.just("update_job"), _ids, st.dictionaries(_option_names, _junk, max_size=2)),
    st.tuples(st.sampled_from(["remove_job", "pause_job", "resume_job", "get_job"]), _ids),
)  # fmt: skip


def _apply(engine: tc.Engine, call: tuple[Any, ...]) -> None:
    name = call[0]
    if name == "add_job":
        _, action, trigger, job_id, options = call
        for positional in ("id", "action", "trigger"):  # (a second value: Python's TypeError)
            options.pop(positional, None)
        engine.add_job(action, trigger, id=job_id, **options)
    elif name == "update_job":
        engine.update_job(call[1], **call[2])
    else:
        getattr(engine, name)(call[1])


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(calls=st.lists(_calls, min_size=5, max_size=25))
def test_fuzz_public_calls_raise_only_timecontrol_errors_and_leave_no_trace(
    tmp_path_factory: pytest.TempPathFactory, calls: list[tuple[Any, ...]]
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "lab.sqlite"

    async def main() -> None:
        engine = _engine(path)

        @engine.action
        async def anything(**kwargs: Any) -> None:
            pass

        engine.add_job("sample", Every(60.0, LATER), id="a", kwargs={"volume_ul": 1})
        async with engine:
            for call in calls:
                before = await _snapshot(engine, path)
                try:
                    _apply(engine, call)
                except tc.TimeControlError:
                    event(f"{call[0]} rejected")
                    assert await _snapshot(engine, path) == before, call
                else:
                    event(f"{call[0]} accepted")
            await engine.scheduler.flush()  # the writer survived everything

    VirtualClock(START).run(main)


def test_a_read_only_store_shows_its_jobs_and_refuses_changes(tmp_path: Path) -> None:
    path = tmp_path / "lab.sqlite"
    _store_with_jobs(path, ["a"])
    before = sorted(sqlite3.connect(path).execute("SELECT * FROM scheduler_jobs"))
    reader = tc.Engine(store=tc.stores.SQLiteLog(path, readonly=True))
    assert [j.id for j in reader.jobs()] == ["a"]
    with pytest.raises(tc.errors.StoreReadOnlyError, match="read-only"):
        reader.add_job("sample", Every(1.0, T0), id="b", kwargs={"volume_ul": 1})
    with pytest.raises(tc.errors.StoreReadOnlyError, match="read-only"):
        reader.pause_job("a")
    assert [j.id for j in reader.jobs()] == ["a"]
    assert reader.get_job("a").enabled
    assert sorted(sqlite3.connect(path).execute("SELECT * FROM scheduler_jobs")) == before
