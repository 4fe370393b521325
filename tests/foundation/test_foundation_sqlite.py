"""The SQLite sink: exact round trip, versioned schema, retention, restarts and `kill -9`."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from timecontrol import Event, Log, StoreError
from timecontrol.errors import EventKindError, EventPayloadError, StoreVersionError
from timecontrol.stores import SCHEMA_VERSION, SEQ_BLOCK, SQLiteLog, StoreCorruptError, read_events
from timecontrol.testing import run

START = datetime(2026, 3, 29, 0, 30, tzinfo=timezone(timedelta(hours=1)))
KINDS = ["log.note", "action.started", "action.succeeded", "action.failed", "engine.started"]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=15,
)
entries = st.lists(
    st.tuples(
        st.sampled_from(KINDS),
        st.text(max_size=12),  # NUL, non-ASCII and all: subjects are any text
        st.dictionaries(st.text(max_size=8), json_values, max_size=5),
        st.sampled_from([0.0, 0.001, 1.0, 59.5, 86_400.0]),
    ),
    max_size=30,
)


def same_types(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same_types(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same_types(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# -- exact round trip -----------------------------------------------------------------------


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(entries, st.integers(min_value=1, max_value=8))
def test_events_read_back_from_sqlite_exactly(
    items: list[tuple[str, str, dict[str, Any], float]], batch_size: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.sqlite"

        async def main() -> tuple[list[Event], list[Event], list[Event]]:
            log = Log(sink=SQLiteLog(path, batch_size=batch_size), ring_size=1000)
            originals = []
            for kind, subject, payload, delay in items:
                await anyio.sleep(delay)
                originals.append(log._emit(kind, subject, payload))
            queried = await log.query()
            newest = await log.query(newest_first=True)
            await log.aclose()
            return originals, queried, newest

        originals, queried, newest = run(main, start=START)
        for (_, subject, payload, _), event in zip(items, originals, strict=True):
            assert event.subject == subject
            assert same_types(event.payload, payload)
        from_file = read_events(path)
        assert from_file == originals
        assert queried == originals
        assert newest == originals[::-1]
        for a, b in zip(from_file, originals, strict=True):
            assert same_types(a.payload, b.payload)
            assert type(a.mono) is float
            assert type(a.wall) is float


filters = st.fixed_dictionaries(
    {},
    optional={
        "since": st.sampled_from([0.0, 0.001, 1.0, 60.0, 3600.0, 86_400.0]),
        "until": st.sampled_from([0.0, 1.0, 60.5, 86_400.0, 200_000.0]),
        "kinds": st.lists(st.sampled_from(KINDS), max_size=3),
        "subjects": st.lists(st.sampled_from(["", "a", "b", "é"]), max_size=3),
        "limit": st.integers(min_value=0, max_value=5),
        "newest_first": st.booleans(),
    },
)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(KINDS),
            st.sampled_from(["", "a", "b", "é"]),
            st.sampled_from([0.0, 0.001, 1.0, 59.5, 3600.0]),
        ),
        max_size=25,
    ),
    st.lists(filters, min_size=1, max_size=6),
)
def test_queries_over_sqlite_agree_with_the_ring(
    items: list[tuple[str, str, float]], queries: list[dict[str, Any]]
) -> None:
    """The same filters mean the same thing in memory (`recent`) and in the file (`query`)."""
    t0 = START.timestamp()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.sqlite"

        async def main() -> None:
            log = Log(sink=SQLiteLog(path))
            for kind, subject, delay in items:
                await anyio.sleep(delay)
                log._emit(kind, subject)
            for drawn in queries:
                query = dict(drawn)
                for bound in ("since", "until"):
                    if bound in query:
                        query[bound] += t0
                assert await log.query(**query) == log.recent(**query), query
            await log.aclose()

        run(main, start=START)


@pytest.mark.timecontrol(start="2026-03-29T00:30+01:00")
async def test_read_events_filters_like_the_log(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    log = Log(sink=SQLiteLog(path))
    e = []
    for i, (kind, subject) in enumerate(
        [("log.note", "a"), ("action.started", "b"), ("log.note", "b"), ("action.failed", "a")]
    ):
        e.append(log._emit(kind, subject, {"i": i}))
        await anyio.sleep(60)  # virtual time
    await log.aclose()
    t0 = START.timestamp()
    assert read_events(path, kinds=["log.note"]) == [e[0], e[2]]
    assert read_events(path, subjects=["a"]) == [e[0], e[3]]
    assert read_events(path, since=t0 + 60, until=t0 + 180) == e[1:3]
    assert read_events(path, after_seq=2) == e[2:]
    assert read_events(path, limit=1, newest_first=True) == [e[3]]
    assert read_events(path, kinds=[]) == []
    assert read_events(str(path)) == e


# -- opening files --------------------------------------------------------------------------


def _make_log_file(path: Path, events: int = 3) -> None:
    async def main() -> None:
        async with Log(sink=SQLiteLog(path)) as log:
            for i in range(events):
                log._emit("log.note", "", {"i": i})

    run(main)


def test_a_new_file_gets_the_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    _make_log_file(path)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 1
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT value FROM meta WHERE key = 'created_by'").fetchone() == (
            "timecontrol",
        )
    conn.close()


def test_a_newer_schema_version_is_refused_and_the_file_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite"
    _make_log_file(path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreVersionError) as info:
        SQLiteLog(path)
    message = str(info.value)
    assert str(path) in message
    assert "schema version 2" in message
    assert "up to 1" in message
    assert "not changed" in message
    with pytest.raises(StoreVersionError):
        read_events(path)
    assert path.read_bytes() == before


def test_a_foreign_sqlite_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE samples (id INTEGER PRIMARY KEY, value REAL)")
    conn.execute("INSERT INTO samples VALUES (1, 2.5)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"holds tables \['samples'\] but no timecontrol") as info:
        SQLiteLog(path)
    assert not isinstance(info.value, StoreVersionError)
    with pytest.raises(StoreError):
        read_events(path)
    assert path.read_bytes() == before


def test_a_foreign_file_with_a_schema_version_is_refused_and_left_untouched(
    tmp_path: Path,
) -> None:
    """Regression: it got past the version check, was switched to WAL, then failed with a raw
    sqlite3.OperationalError ('no such table: events')."""
    path = tmp_path / "app.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE settings (key TEXT, value TEXT)")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"has schema version 1 but not timecontrol's tables"):
        SQLiteLog(path)
    with pytest.raises(StoreError, match="not timecontrol's tables"):
        read_events(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "content", [b"this is not a database, it is a lab notebook\n" * 100, os.urandom(4096)]
)
def test_a_garbage_file_is_a_store_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "garbage.sqlite"
    path.write_bytes(content)
    with pytest.raises(StoreError, match="is not a timecontrol SQLite file") as info:
        SQLiteLog(path)
    assert str(path) in str(info.value)
    with pytest.raises(StoreError, match="is not a timecontrol SQLite file"):
        read_events(path)
    assert path.read_bytes() == content


def test_missing_files_and_directories(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no such log file"):
        read_events(tmp_path / "missing.sqlite")
    with pytest.raises(StoreError, match="cannot open SQLite file"):
        SQLiteLog(tmp_path / "no" / "such" / "dir" / "log.sqlite")
    assert not (tmp_path / "missing.sqlite").exists()  # reading never creates


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 0}, "batch_size must be a positive int"),
        ({"batch_size": 1.5}, "batch_size must be a positive int"),
        ({"flush_interval": 0}, r"flush_interval must be seconds in \(0, 60\]"),
        ({"flush_interval": 61}, r"flush_interval must be seconds in \(0, 60\]"),
    ],
)
def test_sqlite_log_validates_its_arguments(
    tmp_path: Path, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(StoreError, match=match):
        SQLiteLog(tmp_path / "x.sqlite", **kwargs)


def test_an_unknown_event_kind_in_a_file_is_read_as_a_generic_event(tmp_path: Path) -> None:
    """A kind this process never registered (a newer timecontrol's, or a part not imported)
    is read as it is, by `read_events` and `Log.query` alike; appending it stays an error."""
    path = tmp_path / "newer.sqlite"
    _make_log_file(path, events=2)
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO events VALUES (3, 1.0, 2.0, 'telescope.slewed', 'm31', '{\"deg\": 1}')"
    )
    conn.commit()
    conn.close()
    unknown = Event(3, 1.0, 2.0, "telescope.slewed", "m31", {"deg": 1})
    assert read_events(path)[-1] == unknown
    assert read_events(path, kinds=["telescope.slewed"]) == [unknown]
    assert [e.seq for e in read_events(path, kinds=["log.note"])] == [1, 2]

    async def main() -> None:
        log = Log(sink=SQLiteLog(path))
        assert log.last_seq == 3
        assert (await log.query())[-1] == unknown
        assert await log.query(kinds="telescope.slewed") == [unknown]
        with pytest.raises(EventKindError, match=r"'telescope\.slewed'"):
            log.append("telescope.slewed")
        with pytest.raises(EventKindError, match="not a lowercase dotted name"):
            await log.query(kinds="Not A Kind")
        await log.aclose()

    run(main)


def test_a_corrupt_payload_in_a_file_is_reported_when_read(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.sqlite"
    _make_log_file(path, events=1)
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO events VALUES (2, 1.0, 2.0, 'log.note', '', 'not json')")
    conn.execute("INSERT INTO events VALUES (3, 1.0, 2.0, 'log.note', '', '{}')")
    conn.commit()
    conn.close()
    with pytest.raises(StoreCorruptError, match="stored payload of event 2") as info:
        read_events(path)
    assert str(path) in str(info.value)
    skipped: list[str] = []
    assert [e.seq for e in read_events(path, on_bad_row=skipped.append)] == [1, 3]
    assert len(skipped) == 1
    assert "event 2" in skipped[0]


# -- retention, restarts, shutdown ----------------------------------------------------------


@pytest.mark.timecontrol(start="2026-03-29T00:30+01:00")
async def test_retention_purges_old_events_from_file_and_ring(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    log = Log(sink=SQLiteLog(path))
    for day in range(10):
        log._emit("log.note", "", {"day": day})
        await anyio.sleep(86_400)  # virtual time
    # Now: day 10. Keep 3 days: the events of days 7, 8 and 9.
    assert await log.purge(timedelta(days=3)) == 7
    assert [e.payload["day"] for e in await log.query()] == [7, 8, 9]
    assert [e.payload["day"] for e in log.recent()] == [7, 8, 9]
    assert await log.purge(timedelta(days=3)) == 0
    await log.aclose()
    assert [e.seq for e in read_events(path)] == [8, 9, 10]


@pytest.mark.timecontrol
async def test_seq_continues_after_reopening(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    async with Log(sink=SQLiteLog(path)) as log:
        for _ in range(5):
            log._emit("log.note")
    sink = SQLiteLog(path)
    assert sink.last_seq() == sink.durable_seq == 5
    async with Log(sink=sink) as log:
        assert log.last_seq == 5
        assert log._emit("log.note").seq == 6
    assert [e.seq for e in read_events(path)] == [1, 2, 3, 4, 5, 6]


@pytest.mark.timecontrol
async def test_seq_is_never_reused_after_purging_everything(tmp_path: Path) -> None:
    """Regression: after a purge deleted the newest events, reopening restarted at seq 1."""
    path = tmp_path / "log.sqlite"
    async with Log(sink=SQLiteLog(path)) as log:
        for _ in range(4):
            log._emit("log.note")
        await anyio.sleep(10)  # virtual time
        assert await log.purge(0) == 4
    async with Log(sink=SQLiteLog(path)) as log:
        assert log.last_seq == 4
        assert log._emit("log.note").seq == 5
        await anyio.sleep(10)  # virtual time
        assert await log.purge(0) == 1
    async with Log(sink=SQLiteLog(path)) as log:
        assert log._emit("log.note").seq == 6
    assert [e.seq for e in read_events(path)] == [6]


@pytest.mark.timecontrol
async def test_clean_close_flushes_everything(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    # Nothing would be committed for a minute or 10,000 events: only closing writes them.
    sink = SQLiteLog(path, batch_size=10_000, flush_interval=60)
    log = Log(sink=sink)
    appended = [log._emit("log.note", "", {"i": i}) for i in range(500)]
    await log.aclose()
    assert sink.durable_seq == 500
    assert read_events(path) == appended
    await sink.aclose()  # idempotent
    sink.close()


def test_synchronous_close_flushes_too(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    sink = SQLiteLog(path, batch_size=10_000, flush_interval=60)

    async def main() -> None:
        log = Log(sink=sink)
        for i in range(10):
            log._emit("log.note", "", {"i": i})

    run(main)
    sink.close()
    assert [e.payload["i"] for e in read_events(path)] == list(range(10))


@pytest.mark.timecontrol
async def test_flush_makes_events_durable(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    sink = SQLiteLog(path, batch_size=10_000, flush_interval=60)
    log = Log(sink=sink)
    for _ in range(3):
        log._emit("log.note")
    assert sink.durable_seq == 0
    await log.flush()
    assert sink.durable_seq == 3
    assert len(read_events(path)) == 3  # visible to another connection
    await log.aclose()


@pytest.mark.timecontrol
async def test_a_closed_sink_refuses_work_instead_of_hanging(
    tmp_path: Path, hang_guard: None
) -> None:
    """Regression: purge (and call) after close queued work for a writer thread that was gone
    and waited for it forever."""
    sink = SQLiteLog(tmp_path / "log.sqlite")
    log = Log(sink=sink)
    log._emit("log.note")
    await log.aclose()
    with pytest.raises(StoreError, match="is closed"):
        await sink.purge(0)
    with pytest.raises(StoreError, match="is closed"):
        await log.purge(0)
    with pytest.raises(StoreError, match="is closed"):
        await sink.call(lambda conn: 1)
    with pytest.raises(StoreError, match="is closed"):
        sink.call_soon(lambda conn: None)


@pytest.mark.timecontrol
async def test_flushing_events_written_after_close_is_an_error(tmp_path: Path) -> None:
    """Regression: flush returned as if they were durable; they were silently dropped."""
    path = tmp_path / "log.sqlite"
    sink = SQLiteLog(path)
    log = Log(sink=sink)
    log._emit("log.note")
    await sink.aclose()
    log._emit("log.note")  # the Log does not know its sink was closed under it
    with pytest.raises(StoreError, match="written after it closed"):
        await log.flush()
    assert [e.seq for e in read_events(path)] == [1]


@pytest.mark.timecontrol
async def test_a_subject_that_sqlite_cannot_store_is_refused_up_front(tmp_path: Path) -> None:
    """Regression: a subject with a lone surrogate reached the writer thread, which died of it
    and lost every later event; a non-str subject came back from the file as a str."""
    path = tmp_path / "log.sqlite"
    log = Log(sink=SQLiteLog(path))
    with pytest.raises(EventPayloadError, match="is not valid Unicode text"):
        log._emit("log.note", "job-\ud800")
    with pytest.raises(EventPayloadError, match=r"must be a str .* got 5 \(int\)"):
        log._emit("log.note", 5)  # type: ignore[arg-type]
    assert log.last_seq == 0
    kept = log._emit("log.note", "jöb-✓")
    await log.aclose()
    assert read_events(path) == [kept]


# -- kill -9 --------------------------------------------------------------------------------

_WRITER = textwrap.dedent(
    """
    import asyncio
    import sys

    from timecontrol import Log
    from timecontrol.stores import SQLiteLog


    async def main(path):
        sink = SQLiteLog(path, batch_size=64, flush_interval=0.005)
        log = Log(sink=sink, ring_size=100)
        i = 0
        while True:
            for _ in range(50):
                i += 1
                log._emit("log.note", f"s{i % 7}", {"i": i, "pad": "x" * (i % 97)})
            await log.flush()
            print(sink.durable_seq, flush=True)  # everything up to here is durable
            for _ in range(200):  # and keep writing: the kill lands mid-stream
                i += 1
                log._emit("log.note", "", {"i": i})
                await asyncio.sleep(0)


    asyncio.run(main(sys.argv[1]))
    """
)


def test_kill_9_loses_at_most_the_unflushed_tail(tmp_path: Path) -> None:
    # This test legitimately runs in real time: a real process, a real writer thread and a
    # real SIGKILL; it reads a few lines (well under a second) and then kills the child.
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    path = tmp_path / "killed.sqlite"
    child = subprocess.Popen(
        [sys.executable, str(script), str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    printed: list[int] = []
    try:
        assert child.stdout is not None
        while len(printed) < 8:
            line = child.stdout.readline()
            if not line:
                pytest.fail(f"the writer died on its own: {child.stderr.read()}")  # type: ignore[union-attr]
            printed.append(int(line))
        os.kill(child.pid, signal.SIGKILL)
        rest, _ = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    printed += [int(line) for line in rest.split()]  # printed before the kill, read after it
    durable = max(printed)
    assert printed == sorted(printed)

    # The file reads cleanly as it was left (read-only, as `timecontrol log` reads it)...
    events = read_events(path)
    # ...passes SQLite's own check...
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        seqs = [row[0] for row in conn.execute("SELECT seq FROM events ORDER BY seq")]
    finally:
        conn.close()
    # ...holds a contiguous 1..N with every event reported durable (at most the unflushed
    # tail is lost)...
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) >= durable
    assert [e.seq for e in events] == seqs
    assert [e.payload["i"] for e in events] == seqs  # event by event as written
    # ...and the Log carries on after it, after the crashed run's reservation of seqs (which
    # the writer had committed before it handed any of them out): none is ever reused.
    n = len(seqs)
    conn = sqlite3.connect(path)
    try:
        reserved = int(
            conn.execute("SELECT value FROM meta WHERE key = 'seq_reserved'").fetchone()[0]
        )
    finally:
        conn.close()
    assert n < reserved <= n + SEQ_BLOCK

    async def resume() -> int:
        async with Log(sink=SQLiteLog(path)) as log:
            return log._emit("log.note").seq

    assert run(resume) == reserved + 1
    assert [e.seq for e in read_events(path, after_seq=n - 1)] == [n, reserved + 1]
