"""The job store: job definitions and scheduler state, in the same SQLite file as the Log.

Why this shape:

* One writer per file. Everything here is written by `SQLiteLog`'s writer thread, in the
  transaction that commits the events queued before it (a *cycle hook*, see
  `SQLiteLog.add_cycle_hook`): write-behind, never awaited on the fire path, and without
  waking the writer (it commits at its own pace, every 100 ms or 2000 events). The loop only
  puts the latest row of each job in a dict. Startup reads with a read-only connection.
* Three tables, JSON only (never pickle), versioned by ``scheduler_meta.schema_version``: a file
  whose job tables are newer than this code is refused with `StoreVersionError` before
  anything is written.

  - ``scheduler_jobs(id, spec, updated)``: each job's JSON definition;
  - ``scheduler_state(id, next_fire, runs, inflight, seq)``: where each job stands: its next
    undecided fire time, how many runs it made, and the fire times in flight (running or
    queued), as of Log sequence number ``seq``;
  - ``scheduler_meta(key, value)``: schema version and the *watermark*.

* The state is a cache of the Log, never a second truth. A state row is committed together
  with (or after) every event up to its ``seq``: the writer takes the rows queued so far
  *before* it takes the events, and the rows are pushed on the loop right after the events
  they reflect. The watermark is the highest ``seq`` among the rows written; after a crash
  the scheduler replays the ``job.*`` events after the watermark on top of the rows, so a
  lost row costs nothing and a row can never claim more than the Log holds.
* A second process scheduling from the same file would run jobs twice; an exclusive advisory
  lock on a sidecar file (``<file>-scheduler.lock``) makes it fail at once with
  `SchedulerLockedError`. The operating system releases the lock when the process dies (even by
  ``kill -9``), so a restart never waits for a stale lock.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import sys
import threading
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, Final

import msgspec

from .._events import Event, event_from_row
from .._exceptions import StoreError, StoreVersionError
from ._sqlite import SQLiteLog, insert_rows

__all__ = ["JOBS_SCHEMA_VERSION", "JobStore", "LoadedJobs", "StateRow"]

#: Version of the scheduler tables. Bump it with a migration when they change.
JOBS_SCHEMA_VERSION: Final = 1

_DDL = """
CREATE TABLE IF NOT EXISTS scheduler_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS scheduler_jobs (
    id      TEXT PRIMARY KEY,
    spec    TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS scheduler_state (
    id        TEXT PRIMARY KEY,
    next_fire REAL,
    runs      INTEGER NOT NULL,
    inflight  TEXT NOT NULL,
    seq       INTEGER NOT NULL
);
"""

#: (job id, next fire or None, runs, inflight JSON, Log seq the row is valid at)
StateRow = tuple[str, float | None, int, str, int]

_decode_obj = msgspec.json.Decoder(dict[str, Any])
_NO_RUNS: dict[str, Any] = {}  # a state row without runs in flight (read only)


class LoadedJobs(msgspec.Struct):
    """What a store held at startup: definitions (JSON text, decoded by the scheduler), state
    rows and the events to replay."""

    specs: dict[str, str]
    state: dict[str, tuple[float | None, int, dict[str, Any], int]]
    watermark: int
    replay: list[Event]


class _FileLock:
    """An exclusive, non-blocking advisory lock on a sidecar file, released by the OS on exit."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: Any = None

    def acquire(self, what: str) -> None:
        fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the lock's life
        try:
            if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
                import msvcrt

                fh.seek(0)
                msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            from ..scheduler._errors import SchedulerLockedError

            raise SchedulerLockedError(
                f"{what} is already being scheduled by {holder} (lock file {str(self.path)!r}); "
                "only one process may run jobs from a file, or jobs would run twice. Stop the "
                "other process, or open the file without a scheduler to read its Log."
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}")
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            with contextlib.suppress(OSError):
                fh.seek(0)
                fh.truncate()
            fh.close()  # closing the descriptor drops the lock

    @property
    def held(self) -> bool:
        return self._fh is not None


class JobStore:
    """Job definitions and scheduler state kept in a `SQLiteLog`'s file.

    Created by the scheduler; `open` locks the file, checks the schema version and loads.
    Writes (`put_job`, `delete_job`, `push_state`) are queued for the Log's writer thread and
    return at once.
    """

    def __init__(self, sink: SQLiteLog) -> None:
        self.sink = sink
        self.path = sink.path
        self._lock = _FileLock(Path(str(sink.path) + "-scheduler.lock"))
        # What the loop hands to the writer thread, latest per job; swapped out whole by the
        # writer (`_take`) under `_mutex`, which is all the two threads share.
        self._mutex = threading.Lock()
        self._rows: dict[str, StateRow] = {}
        # job id -> (spec JSON or None to delete, wall time, drop the state row first)
        self._specs: dict[str, tuple[str | None, float, bool]] = {}
        self._tables = False  # set on the writer thread once the tables exist
        self.watermark = 0
        sink.add_cycle_hook(self._take)

    # -- startup ----------------------------------------------------------------------------

    def open(self, record_kinds: Collection[str]) -> LoadedJobs:
        """Lock the file, check the version, create missing tables (write-behind) and load.

        Blocking: call it once at startup. Nothing is written if the version check fails.
        """
        self._lock.acquire(repr(str(self.path)))
        try:
            loaded = self._load(record_kinds)
        except BaseException:
            self._lock.release()
            raise
        self.sink.call_soon(self._create_tables)
        self.watermark = loaded.watermark
        return loaded

    def _create_tables(self, conn: sqlite3.Connection) -> None:
        _create_tables(conn)
        self._tables = True

    def _load(self, record_kinds: Collection[str]) -> LoadedJobs:
        try:
            conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {str(self.path)!r} to load jobs: {exc}") from None
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            tables = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if "scheduler_meta" not in tables:
                return LoadedJobs({}, {}, 0, [])
            meta = dict(conn.execute("SELECT key, value FROM scheduler_meta").fetchall())
            version = int(meta.get("schema_version", "0"))
            if version > JOBS_SCHEMA_VERSION:
                raise StoreVersionError(
                    f"{str(self.path)!r} holds scheduler tables of schema version {version}, "
                    f"newer than this timecontrol reads (up to {JOBS_SCHEMA_VERSION}); upgrade "
                    "timecontrol to schedule from it. The file was not changed."
                )
            watermark = int(meta.get("watermark", "0"))
            specs = dict(conn.execute("SELECT id, spec FROM scheduler_jobs").fetchall())
            state = {
                job_id: (
                    nxt,
                    runs,
                    _NO_RUNS if inflight == "{}" else _decode_obj.decode(inflight),
                    seq,
                )
                for job_id, nxt, runs, inflight, seq in conn.execute(
                    "SELECT id, next_fire, runs, inflight, seq FROM scheduler_state"
                )
            }
            kinds = sorted(record_kinds)
            rows = conn.execute(
                "SELECT seq, mono, wall, kind, subject, payload FROM events "
                f"WHERE seq > ? AND kind IN ({', '.join('?' * len(kinds))}) ORDER BY seq",
                (watermark, *kinds),
            ).fetchall()
            replay = [event_from_row(*row) for row in rows]
        except sqlite3.Error as exc:
            raise StoreError(f"cannot load jobs from {str(self.path)!r}: {exc}") from None
        finally:
            conn.close()
        return LoadedJobs(specs, state, watermark, replay)

    # -- write-behind -------------------------------------------------------------------------

    def put_job(self, job_id: str, spec: bytes, wall: float) -> None:
        """Store (insert or replace) a job's JSON definition."""
        text = spec.decode()
        with self._mutex:
            old = self._specs.get(job_id)
            self._specs[job_id] = (text, wall, old is not None and old[2])

    def delete_job(self, job_id: str) -> None:
        """Delete a job's definition and state."""
        with self._mutex:
            self._specs[job_id] = (None, 0.0, True)
            self._rows.pop(job_id, None)

    def push_state(self, row: StateRow) -> None:
        """Queue a job's state row (the latest one per job is written, with its events)."""
        with self._mutex:
            self._rows[row[0]] = row

    def _take(self) -> Callable[[sqlite3.Connection], None] | None:
        # The writer thread, at the start of a cycle: everything queued so far. Rows were
        # pushed after their events, so those events are all in this cycle (or earlier).
        if not self._tables or not (self._rows or self._specs):
            return None
        with self._mutex:
            rows, self._rows = self._rows, {}
            specs, self._specs = self._specs, {}

        def write(conn: sqlite3.Connection) -> None:
            self._write(conn, specs, rows)

        return write

    def _write(
        self,
        conn: sqlite3.Connection,
        specs: dict[str, tuple[str | None, float, bool]],
        rows: dict[str, StateRow],
    ) -> None:
        gone = [(job_id,) for job_id, (_, _, reset) in specs.items() if reset]
        if gone:
            conn.executemany("DELETE FROM scheduler_state WHERE id = ?", gone)
            conn.executemany(
                "DELETE FROM scheduler_jobs WHERE id = ?",
                [(job_id,) for job_id, (spec, _, _) in specs.items() if spec is None],
            )
        put = [(job_id, spec, wall) for job_id, (spec, wall, _) in specs.items() if spec]
        if put:
            insert_rows(
                conn,
                "INSERT OR REPLACE INTO scheduler_jobs (id, spec, updated) VALUES ",
                "(?, ?, ?)",
                3,
                put,
            )
        if rows:
            insert_rows(
                conn,
                "INSERT OR REPLACE INTO scheduler_state (id, next_fire, runs, inflight, seq) "
                "VALUES ",
                "(?, ?, ?, ?, ?)",
                5,
                list(rows.values()),
            )
            mark = max(row[4] for row in rows.values())
            if mark > self.watermark:
                conn.execute(
                    "INSERT OR REPLACE INTO scheduler_meta (key, value) VALUES ('watermark', ?)",
                    (str(mark),),
                )
                self.watermark = mark

    async def flush(self) -> None:
        """Make every definition and state row queued so far durable (after the Log's events)."""
        await self.sink.flush()
        await self.sink.call(_nothing)  # the writer runs a cycle (our hook) before any call

    async def purge(self, before: float, kinds: Collection[str]) -> int:
        """Delete execution-record events of `kinds` older than wall time `before`."""
        kind_list = sorted(kinds)

        def delete(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "DELETE FROM events WHERE wall < ? AND kind IN "
                f"({', '.join('?' * len(kind_list))})",
                (before, *kind_list),
            ).rowcount

        count: int = await self.sink.call(delete)
        return count

    def close(self) -> None:
        """Release the lock (call after the last write was queued)."""
        self._lock.release()

    @property
    def locked(self) -> bool:
        """True while this store holds the file's scheduler lock."""
        return self._lock.held

    def __repr__(self) -> str:
        return f"<JobStore {str(self.path)!r} watermark={self.watermark}>"


def _nothing(conn: sqlite3.Connection) -> None:
    pass


def _create_tables(conn: sqlite3.Connection) -> None:
    # Statement by statement: executescript() would COMMIT the writer's open transaction.
    for statement in _DDL.split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute(
        "INSERT OR IGNORE INTO scheduler_meta (key, value) VALUES ('schema_version', ?)",
        (str(JOBS_SCHEMA_VERSION),),
    )
