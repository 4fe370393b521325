"""Store files: one writer per file, read-only readers, modes, and refusing damaged files.

Every refusal is checked twice: the right `StoreError` subclass with a message naming the
file, and the file's bytes (a SHA-256) unchanged, with no side file left next to it.
"""

from __future__ import annotations

import hashlib
import io
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from timecontrol import Engine, Log
from timecontrol.cli import main as cli_main
from timecontrol.errors import EventKindError, LogError
from timecontrol.stores import (
    SQLiteLog,
    StoreCorruptError,
    StoreError,
    StoreForeignError,
    StoreLockedError,
    StoreReadOnlyError,
    StoreVersionError,
    read_events,
)
from timecontrol.testing import run


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _make_log(path: Path, events: int = 3) -> None:
    async def main() -> None:
        async with Log(sink=SQLiteLog(path)) as log:
            for i in range(events):
                log._emit("log.note", f"s{i % 3}", {"i": i})

    run(main)


def _siblings(path: Path) -> set[str]:
    return {p.name for p in path.parent.iterdir()} - {path.name}


# -- one writer per file ------------------------------------------------------------------------

_HOLDER = textwrap.dedent(
    """
    import sys
    import anyio
    from timecontrol import Log
    from timecontrol.stores import SQLiteLog

    async def main(path):
        async with Log(sink=SQLiteLog(path)) as log:
            for i in range(5):
                log._emit("log.note", "", {"i": i})
            await log.flush()
            print("holding", flush=True)
            sys.stdin.readline()  # the test tries its second writers meanwhile
            for i in range(5, 10):
                log._emit("log.note", "", {"i": i})
            await log.flush()
            print("done", log.last_seq, flush=True)

    anyio.run(main, sys.argv[1])
    """
)


def _aliases(path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Other names of the same file: a symlink, a relative path, a hard link."""
    link = path.with_name("link.sqlite")
    link.symlink_to(path)
    hard = path.with_name("hard.sqlite")
    os.link(path, hard)
    monkeypatch.chdir(path.parent)
    return {"symlink": link, "relative": Path(path.name), "hard link": hard}


def test_a_second_writer_in_another_process_is_refused_by_every_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "log.sqlite"
    script = tmp_path / "holder.py"
    script.write_text(_HOLDER)
    holder = subprocess.Popen(
        [sys.executable, str(script), str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdin is not None
        assert holder.stdout.readline().strip() == "holding", holder.stderr.read()  # type: ignore[union-attr]
        names = {"path": path, **_aliases(path, monkeypatch)}
        before = _siblings(path)
        for how, alias in names.items():
            with pytest.raises(StoreLockedError) as info:
                SQLiteLog(alias)
            message = str(info.value)
            assert str(alias) in message, how
            assert "another process" in message
            assert "readonly=True" in message  # says how to read it instead
            if how != "hard link":  # the writer's WAL is next to its name, not this one
                assert f"pid {holder.pid} on" in message  # the file names its writer
        # Readers take no lock: they read what the writer committed, while it runs...
        assert [e.payload["i"] for e in read_events(path)] == [0, 1, 2, 3, 4]
        reader = SQLiteLog(path, readonly=True)
        assert reader.last_seq() == 5
        # ...except through a name whose WAL is not the writer's: that read would be stale.
        with pytest.raises(StoreError, match="being written through another of its names"):
            read_events(names["hard link"])
        assert _siblings(path) == before  # the refused writers left nothing behind
        holder.stdin.write("go\n")
        holder.stdin.flush()
        out, err = holder.communicate(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    # The first writer kept working: all its events, seqs 1..10 without a gap.
    assert holder.returncode == 0, err
    assert out.split() == ["done", "10"]
    assert [e.seq for e in read_events(path)] == list(range(1, 11))
    # Once it is gone, the file opens by any of its names; for writing, not while it has
    # several names (each would get a WAL of its own: SQLite's hard-link corruption).
    assert len(read_events(names["hard link"])) == 10
    with pytest.raises(StoreError, match="has 2 hard links"):
        SQLiteLog(names["hard link"])
    names["hard link"].unlink()
    SQLiteLog(names["symlink"]).close()
    assert _siblings(path) == {"link.sqlite", "holder.py"}  # and no lock file anywhere


@pytest.mark.timecontrol
async def test_a_second_writer_in_the_same_process_is_refused_by_every_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "log.sqlite"
    sink = SQLiteLog(path)
    log = Log(sink=sink)
    log._emit("log.note", "", {"i": 0})
    for how, alias in {"path": path, **_aliases(path, monkeypatch)}.items():
        with pytest.raises(StoreLockedError, match=f"pid {os.getpid()}"):
            SQLiteLog(alias)
        log._emit("log.note", "", {"i": how})  # the first one keeps working
    await log.flush()
    assert [e.seq for e in await log.query()] == [1, 2, 3, 4, 5]
    await log.aclose()
    await anyio.Path("hard.sqlite").unlink()  # (several names: not opened for writing)
    again = SQLiteLog(Path("link.sqlite"))  # free again, by any name
    assert again.last_seq() == 5
    await again.aclose()


@pytest.mark.timecontrol
async def test_a_second_plain_engine_on_the_same_file_is_refused(tmp_path: Path) -> None:
    """Regression: it reused sequence numbers ('UNIQUE constraint failed: events.seq') and
    killed the first engine's writer thread."""
    path = tmp_path / "lab.sqlite"
    alias = path.with_name("alias.sqlite")
    alias.symlink_to(path)
    first = Engine(store=path)
    async with first:
        # (Whether an engine opens its store when it is made or when its Log is first used.)
        with pytest.raises(StoreLockedError, match="already open for writing"):  # noqa: PT012
            second = Engine(store=alias)
            _ = second.log
        seq = first.log._emit("log.note").seq
        await first.log.flush()
    # The first engine's record is whole: its events, seqs 1..n without a gap or a repeat.
    seqs = [e.seq for e in read_events(path)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert seq in seqs


def test_no_lock_file_is_left_and_none_is_followed(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    victim = tmp_path / "precious.txt"
    victim.write_text("do not truncate")
    # A symlink planted where the old scheduler lock file was: never opened any more.
    Path(str(path) + "-scheduler.lock").symlink_to(victim)
    _make_log(path)
    assert victim.read_text() == "do not truncate"
    assert _siblings(path) == {"precious.txt", "log.sqlite-scheduler.lock"}  # nothing new


@pytest.mark.parametrize("suffix", ["-wal", "-shm", "-journal"])
def test_a_symlink_planted_at_a_side_file_is_refused(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / "log.sqlite"
    victim = tmp_path / "precious.txt"
    victim.write_text("do not truncate")
    Path(str(path) + suffix).symlink_to(victim)
    with pytest.raises(StoreError, match=f"{suffix}' is a symlink") as info:
        SQLiteLog(path)
    assert not isinstance(info.value, StoreLockedError)
    assert victim.read_text() == "do not truncate"
    assert not path.exists()  # refused before anything was created


def test_a_dangling_symlink_is_not_created_through(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    path.symlink_to(tmp_path / "elsewhere.sqlite")
    with pytest.raises(StoreError, match="symlink to a missing file"):
        SQLiteLog(path)
    assert not (tmp_path / "elsewhere.sqlite").exists()


# -- file modes ---------------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.timecontrol
async def test_new_files_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "log.sqlite"
        log = Log(sink=SQLiteLog(path))
        log._emit("log.note")
        await log.flush()
        for name in ("log.sqlite", "log.sqlite-wal", "log.sqlite-shm"):
            assert _mode(tmp_path / name) == 0o600, name
        await log.aclose()
        shared = tmp_path / "shared.sqlite"
        SQLiteLog(shared, mode=0o640).close()
        assert _mode(shared) == 0o640
        existing = tmp_path / "existing.sqlite"
        existing.touch(mode=0o644)
        SQLiteLog(existing).close()  # an existing file keeps its mode
        assert _mode(existing) == 0o644
    finally:
        os.umask(old)


@pytest.mark.parametrize("mode", [0o1000, -1, "0600", 0.5, True])
def test_a_bad_mode_is_refused_and_creates_nothing(tmp_path: Path, mode: object) -> None:
    path = tmp_path / "log.sqlite"
    with pytest.raises(StoreError, match=f"mode must be file permission bits .* got {mode!r}"):
        SQLiteLog(path, mode=mode)  # type: ignore[arg-type]
    assert not path.exists()


# -- damaged, foreign and newer files ------------------------------------------------------------


def _random(path: Path) -> None:
    path.write_bytes(os.urandom(8192))


def _text(path: Path) -> None:
    path.write_bytes(b"this is not a database, it is a lab notebook\n" * 100)


def _short(path: Path) -> None:
    path.write_bytes(b"SQLite format 3\x00" + b"\x00" * 20)


def _truncated(path: Path) -> None:
    _make_log(path, events=3000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _torn(path: Path) -> None:  # cut inside a page
    _make_log(path, events=3000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 100])


def _foreign(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE samples (id INTEGER PRIMARY KEY, value REAL)")
    conn.execute("INSERT INTO samples VALUES (1, 2.5)")
    conn.commit()
    conn.close()


def _foreign_app(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id = 1234")
    conn.execute("CREATE TABLE settings (key TEXT, value TEXT)")
    conn.commit()
    conn.close()


def _wrong_column(path: Path) -> None:
    _make_log(path)
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE events RENAME COLUMN payload TO data")
    conn.commit()
    conn.close()


def _newer(path: Path) -> None:
    _make_log(path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()


def _hot_journal(path: Path) -> None:
    _foreign(path)
    Path(str(path) + "-journal").write_bytes(b"\xd9\xd5\x05\xf9\x20\xa1\x63\xd7" + bytes(504))


DAMAGED: dict[str, tuple[Callable[[Path], None], type[StoreError]]] = {
    "random bytes": (_random, StoreCorruptError),
    "text": (_text, StoreCorruptError),
    "header only": (_short, StoreCorruptError),
    "truncated": (_truncated, StoreCorruptError),
    "torn page": (_torn, StoreCorruptError),
    "foreign tables": (_foreign, StoreForeignError),
    "foreign application id": (_foreign_app, StoreForeignError),
    "wrong column": (_wrong_column, StoreCorruptError),
    "newer version": (_newer, StoreVersionError),
    "rollback journal": (_hot_journal, StoreForeignError),
}


@pytest.mark.parametrize("case", list(DAMAGED))
def test_a_damaged_foreign_or_newer_file_is_refused_untouched(tmp_path: Path, case: str) -> None:
    make, error = DAMAGED[case]
    path = tmp_path / "store.sqlite"
    make(path)
    before, around = _digest(path), _siblings(path)
    with pytest.raises(error) as info:
        SQLiteLog(path)
    assert str(path) in str(info.value)
    # Readers refuse it too (a truncated file may open, but reading it fails), always with a
    # StoreError subclass: never sqlite3's, msgspec's or a KeyError.
    with pytest.raises(StoreError):
        read_events(path)
    with pytest.raises(StoreError):  # noqa: PT012 - either step may be the one that refuses
        reader = SQLiteLog(path, readonly=True)  # may open a truncated file...
        anyio.run(reader.query)  # ...whose reading fails
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "stderr", err)
        assert cli_main(["log", str(path)], out=out) == 2
    assert err.getvalue().startswith("timecontrol: error: ")
    assert "Traceback" not in err.getvalue()
    assert _digest(path) == before
    assert _siblings(path) == around  # no -wal, -shm or lock file left behind


def test_an_empty_file_is_initialised(tmp_path: Path) -> None:
    path = tmp_path / "empty.sqlite"
    path.touch()
    assert read_events(path) == []  # read-only: an empty log
    assert path.stat().st_size == 0
    _make_log(path, events=2)
    assert [e.seq for e in read_events(path)] == [1, 2]


def test_a_damaged_row_is_reported_or_skipped_never_a_raw_error(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    _make_log(path, events=2)
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO events VALUES (3, 1.0, 2.0, 'log.note', '', 'not json')")
    conn.execute("INSERT INTO events VALUES (4, 1.0, 'two', 'log.note', '', '{}')")
    conn.execute("INSERT INTO events VALUES (5, 1.0, 2.0, 'Not A Kind', '', '{}')")
    conn.execute("INSERT INTO events VALUES (6, 1.0, 2.0, 'log.note', '', '{}')")
    conn.commit()
    conn.close()

    async def main() -> None:
        log = Log(sink=SQLiteLog(path))  # damaged rows are data: the file still opens
        with pytest.raises(StoreCorruptError, match="event 3"):
            await log.query()
        skipped: list[str] = []
        rows = await log.sink.query(on_bad_row=skipped.append)  # type: ignore[union-attr, call-arg]
        assert [e.seq for e in rows] == [1, 2, 6]
        assert len(skipped) == 3
        assert log._emit("log.note").seq == 7
        await log.aclose()

    run(main)
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "stderr", err)
        assert cli_main(["log", str(path)], out=out) == 1
    assert "-- 4 event(s), 3 damaged" in out.getvalue()
    assert err.getvalue().count("skipped a damaged event") == 3
    assert "'Not A Kind'" in err.getvalue()


# -- read-only -----------------------------------------------------------------------------------


@pytest.mark.timecontrol
async def test_a_reader_reads_while_the_writer_writes_and_never_writes(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    writer = Log(sink=SQLiteLog(path))
    for i in range(3):
        writer._emit("log.note", "", {"i": i})
    await writer.flush()
    reader = Log(sink=SQLiteLog(path, readonly=True))
    assert reader.last_seq == 3
    assert [e.payload["i"] for e in await reader.query()] == [0, 1, 2]
    writer._emit("log.note", "", {"i": 3})
    await writer.flush()
    assert [e.payload["i"] for e in await reader.query(kinds="log.note")] == [0, 1, 2, 3]
    with pytest.raises(LogError, match="read-only store"):
        reader.append("log.note")
    with pytest.raises(LogError, match="read-only store"):
        reader._emit("log.note")
    sink = reader.sink
    assert isinstance(sink, SQLiteLog)
    with pytest.raises(StoreReadOnlyError, match="readonly=True"):
        await sink.purge(0)
    with pytest.raises(StoreReadOnlyError):
        sink.call_soon(lambda conn: None)
    await reader.aclose()
    await writer.aclose()
    assert [e.seq for e in read_events(path)] == [1, 2, 3, 4]


def test_reading_a_closed_file_changes_nothing_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    _make_log(path, events=4)
    before, around = _digest(path), _siblings(path)
    assert around == set()
    reader = SQLiteLog(path, readonly=True)
    assert len(run(Log(sink=reader).query)) == 4
    assert len(read_events(path, subjects=["s0"])) == 2
    assert cli_main(["log", str(path)], out=io.StringIO()) == 0
    SQLiteLog(path).close()  # readers never held the writer lock
    assert _siblings(path) == around  # no -wal or -shm left by a reader
    assert _digest(path) != before  # (the writer wrote: the digest can tell)
    before = _digest(path)
    read_events(path)
    assert _digest(path) == before


def test_a_reader_never_creates_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.sqlite"
    with pytest.raises(StoreError, match="no such log file"):
        SQLiteLog(path, readonly=True)
    with pytest.raises(StoreError, match="no such log file"):
        read_events(path)
    assert cli_main(["log", str(path)], out=io.StringIO()) == 2
    assert list(tmp_path.iterdir()) == []


# -- unknown kinds -------------------------------------------------------------------------------

_OTHER_VERSION = textwrap.dedent(
    """
    import sys
    import anyio
    import timecontrol
    from timecontrol import Log
    from timecontrol.stores import SQLiteLog

    timecontrol.register_kind("durabilitytest.unregistered", "known only to the writer")

    async def main(path):
        async with Log(sink=SQLiteLog(path)) as log:
            log.append("durabilitytest.unregistered", "probe-1", {"value": 2.5})
            log.append("log.note", "", {"text": "after"})

    anyio.run(main, sys.argv[1])
    """
)


@pytest.mark.timecontrol
async def test_kinds_this_process_never_registered_are_read_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    script = tmp_path / "other.py"
    script.write_text(_OTHER_VERSION)
    done = await anyio.run_process([sys.executable, str(script), str(path)], check=False)
    assert done.returncode == 0, done.stderr.decode()
    with pytest.raises(EventKindError):  # not registered here...
        Log().append("durabilitytest.unregistered")
    events = read_events(path)  # ...and still read
    assert [(e.kind, e.subject, e.payload) for e in events] == [
        ("durabilitytest.unregistered", "probe-1", {"value": 2.5}),
        ("log.note", "", {"text": "after"}),
    ]
    log = Log(sink=SQLiteLog(path, readonly=True))
    assert await log.query() == events
    assert await log.query(kinds="durabilitytest.unregistered") == events[:1]
    out = io.StringIO()
    assert cli_main(["log", str(path), "--json", "--kind", "durabilitytest.unregistered"], out) == 0
    assert '"kind":"durabilitytest.unregistered"' in out.getvalue()
    out = io.StringIO()
    assert cli_main(["log", str(path)], out=out) == 0
    assert "durabilitytest.unregistered" in out.getvalue()
    assert "-- 2 event(s)" in out.getvalue()
