"""The job store: job definitions and scheduler state, in the same SQLite file as the Log.

Why this shape:

* One writer per file. Everything here is written by `SQLiteLog`'s writer thread, in the
  transaction that commits the events queued before it (a *cycle hook*, see
  `SQLiteLog.add_cycle_hook`): write-behind, never awaited on the fire path, and without
  waking the writer (it commits at its own pace, every 100 ms or 2000 events). The loop only
  puts the latest row of each job in a dict. Startup reads with a read-only connection. The
  `SQLiteLog` holds the file's writer lock (`StoreLockedError`), so a second process can
  never schedule from the same file and run jobs twice.
* Three tables, JSON only (never pickle), versioned by ``scheduler_meta.schema_version``: a file
  whose job tables are newer than this code is refused with `StoreVersionError` before
  anything is written. The tables are created with the first write, so opening a file
  changes nothing in it.

  - ``scheduler_jobs(id, spec, updated)``: each job's JSON definition;
  - ``scheduler_state(id, next_fire, runs, inflight, seq)``: where each job stands: its next
    undecided fire time, how many runs it made, and the fire times in flight (running or
    queued), as of Log sequence number ``seq``;
  - ``scheduler_meta(key, value)``: schema version, the *watermark* and the *start horizon*.

* The state is a cache of the Log, never a second truth. A state row is committed together
  with (or after) every event up to its ``seq``: the writer takes the rows queued so far
  *before* it takes the events, and the rows are pushed on the loop right after the events
  they reflect. The watermark is the highest ``seq`` among the rows written; after a crash
  the scheduler replays the ``job.*`` events after the watermark on top of the rows, so a
  lost row costs nothing and a row can never claim more than the Log holds.
* Loading is row by row and never fatal for one bad row: a state row that cannot be read is
  reported (`LoadedJobs.bad_state`; the scheduler quarantines that job: kept in the file, not
  loaded), and an event that cannot be read back is counted (`LoadedJobs.ignored`) and
  skipped. Definitions are handed over as text; the scheduler decodes (and may quarantine)
  them.
* The *start horizon* (``scheduler_meta.horizon``) is what makes crash records honest without
  a commit per run: before a run starts whose start is not itself made durable, a horizon at
  or after its fire time is committed (`set_horizon`, about once a second); a clean stop
  writes ``clean`` (`mark_clean`). After a crash, a fire time up to the horizon that the file
  shows undecided may have started: the scheduler records it as ``uncertain``, never as a
  fire time that did not run (docs/scheduler.md, "Crashes").
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Callable, Collection
from typing import Any, Final, cast

import msgspec

from .._events import Event, event_from_row
from .._exceptions import StoreError, StoreReadOnlyError, StoreVersionError, TimeControlError
from ._sqlite import SQLiteLog, insert_rows
from ._sqlite_file import read_with
from ._totals import PurgeGroup, TotalsRow, purge_folding, read_totals

__all__ = ["JOBS_SCHEMA_VERSION", "JobStore", "LoadedJobs", "StateRow", "StoredState"]

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
#: A state row as loaded: (next fire or None, runs, {run ref: [scheduled, manual, started]}).
StoredState = tuple[float | None, int, dict[int, list[Any]]]

_decode_obj = msgspec.json.Decoder(dict[str, Any])


class LoadedJobs(msgspec.Struct):
    """What a store held at startup.

    Attributes:
        specs: each job's JSON definition (decoded by the scheduler, which may quarantine it).
        state: each job's state row, checked.
        bad_state: job id -> why its state row could not be read (the job is quarantined).
        watermark: the Log sequence number the state rows are valid at.
        replay: the ``job.*`` events after the watermark, in order.
        ignored: events after the watermark that could not be read (skipped).
        horizon: ``(asked, until)`` of the last run's start horizon if it did not stop
            cleanly, else None.
        retention_at: wall time of the last automatic retention clean-up (if there was none:
            of the oldest event), or None for a file without events.
    """

    specs: dict[str, str]
    state: dict[str, StoredState]
    bad_state: dict[str, str]
    watermark: int
    replay: list[Event]
    ignored: int = 0
    horizon: tuple[float, float] | None = None
    retention_at: float | None = None


class JobStore:
    """Job definitions and scheduler state kept in a `SQLiteLog`'s file.

    Created by the scheduler when it attaches to a Log whose sink is a `SQLiteLog`; `load`
    checks the schema version and reads. Writes (`put_job`, `delete_job`, `push_state`) are
    queued for the Log's writer thread and return at once.
    """

    def __init__(self, sink: SQLiteLog) -> None:
        self.sink = sink
        self.path = sink.path
        # What the loop hands to the writer thread, latest per job; swapped out whole by the
        # writer (`_take`) under `_mutex`, which is all the two threads share.
        self._mutex = threading.Lock()
        self._rows: dict[str, StateRow] = {}
        # job id -> (spec JSON or None to delete, wall time, drop the state row first)
        self._specs: dict[str, tuple[str | None, float, bool]] = {}
        self._tables = False  # set on the writer thread once the tables exist
        self._tables_asked = False
        self.watermark = 0
        #: True for a sink opened read-only: jobs are loaded, never written.
        self.readonly: bool = getattr(sink, "readonly", False) is True
        if not self.readonly:
            sink.add_cycle_hook(self._take)

    # -- startup ----------------------------------------------------------------------------

    def load(self, record_kinds: Collection[str]) -> LoadedJobs:
        """Check the version and read definitions, state rows and the events to replay.

        Blocking: call it once at startup. Nothing is written (a newer version raises
        `StoreVersionError` and leaves the file as it is).
        """
        loaded = self._load(record_kinds)
        self.watermark = loaded.watermark
        return loaded

    def _ensure_tables(self) -> None:
        if self.readonly:
            raise StoreReadOnlyError(f"the jobs of {str(self.path)!r} were opened read-only")
        if not self._tables_asked:
            self._tables_asked = True
            self.sink.call_soon(self._create_tables)

    def _create_tables(self, conn: sqlite3.Connection) -> None:
        _create_tables(conn)
        self._tables = True

    def _load(self, record_kinds: Collection[str]) -> LoadedJobs:
        def read(conn: sqlite3.Connection | None) -> LoadedJobs:
            if conn is None:
                return LoadedJobs({}, {}, {}, 0, [])  # an empty file
            try:
                return self._read(conn, record_kinds)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot load jobs from {str(self.path)!r}: {exc}") from None

        return read_with(self.path, read)

    def _read(self, conn: sqlite3.Connection, record_kinds: Collection[str]) -> LoadedJobs:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "scheduler_meta" not in tables:
            return LoadedJobs({}, {}, {}, 0, [])
        meta = dict(conn.execute("SELECT key, value FROM scheduler_meta").fetchall())
        version = _int(meta.get("schema_version"))
        if version > JOBS_SCHEMA_VERSION:
            raise StoreVersionError(
                f"{str(self.path)!r} holds scheduler tables of schema version {version}, "
                f"newer than this timecontrol reads (up to {JOBS_SCHEMA_VERSION}); upgrade "
                "timecontrol to schedule from it. The file was not changed."
            )
        watermark = _int(meta.get("watermark"))
        specs, state, bad = _read_jobs(conn)
        replay, ignored = _read_events(conn, watermark, record_kinds)
        horizon = _horizon(meta.get("horizon"))
        retention_at = _float(meta.get("retention_at"))
        if retention_at is None:
            # Never cleaned: count from the oldest event (a new file waits a day, an old one
            # is cleaned at once). By seq, the primary key: no scan.
            first = conn.execute("SELECT wall FROM events ORDER BY seq LIMIT 1").fetchone()
            retention_at = _float(first[0]) if first is not None else None
        return LoadedJobs(specs, state, bad, watermark, replay, ignored, horizon, retention_at)

    # -- write-behind -------------------------------------------------------------------------

    def put_job(self, job_id: str, spec: bytes, wall: float) -> None:
        """Store (insert or replace) a job's JSON definition."""
        text = spec.decode()
        self._ensure_tables()
        with self._mutex:
            old = self._specs.get(job_id)
            self._specs[job_id] = (text, wall, old is not None and old[2])

    def delete_job(self, job_id: str) -> None:
        """Delete a job's definition and state."""
        self._ensure_tables()
        with self._mutex:
            self._specs[job_id] = (None, 0.0, True)
            self._rows.pop(job_id, None)

    def push_state(self, row: StateRow) -> None:
        """Queue a job's state row (the latest one per job is written, with its events)."""
        if not self._tables_asked:
            self._ensure_tables()
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

    async def purge_folding(
        self,
        groups: Collection[PurgeGroup],
        status_of_kind: dict[str, str],
        also: Collection[str],
        retention_at: float | None = None,
    ) -> int:
        """Delete old execution records by `groups`, folding them into the lifetime totals
        first, in one transaction (see `_totals.py`); `retention_at`: the wall time of an
        automatic clean-up, kept in the meta table. Returns how many events were deleted."""

        def purge(conn: sqlite3.Connection) -> int:
            count = purge_folding(conn, groups, status_of_kind, also)
            if retention_at is not None:
                _put_meta(conn, "retention_at", repr(retention_at))
            return count

        deleted: int = await self.sink.call(purge)
        return deleted

    async def totals(self, job_id: str) -> list[TotalsRow]:
        """The lifetime totals of a job's purged records (read on the writer thread, so never
        halfway through a purge)."""
        rows: list[TotalsRow] = await self.sink.call(lambda conn: read_totals(conn, job_id))
        return rows

    async def event(self, seq: int, kinds: Collection[str]) -> Event | None:
        """The event numbered `seq` if it is of one of `kinds` (after a `flush`)."""
        kind_list = sorted(kinds)

        def read(conn: sqlite3.Connection) -> tuple[Any, ...] | None:
            row: tuple[Any, ...] | None = conn.execute(
                "SELECT seq, mono, wall, kind, subject, payload FROM events WHERE seq = ? "
                f"AND kind IN ({', '.join('?' * len(kind_list))})",
                (seq, *kind_list),
            ).fetchone()
            return row

        row = await self.sink.call(read)
        return None if row is None else event_from_row(*row)

    async def set_horizon(self, asked: float, until: float) -> None:
        """Commit the start horizon: runs may start for fire times up to `until` (asked at
        wall time `asked`). Returns once it is on disk, after every event queued before."""
        value = msgspec.json.encode([asked, until]).decode()
        await self.sink.call(lambda conn: _put_meta(conn, "horizon", value))

    async def mark_clean(self) -> None:
        """Commit that every start so far is in the events (a clean stop)."""
        await self.sink.call(lambda conn: _put_meta(conn, "horizon", "clean"))

    def __repr__(self) -> str:
        return f"<JobStore {str(self.path)!r} watermark={self.watermark}>"


def _read_jobs(
    conn: sqlite3.Connection,
) -> tuple[dict[str, str], dict[str, StoredState], dict[str, str]]:
    specs: dict[str, str] = {}
    state: dict[str, StoredState] = {}
    bad: dict[str, str] = {}
    for job_id, spec in conn.execute("SELECT id, spec FROM scheduler_jobs"):
        if isinstance(job_id, str):
            specs[job_id] = spec if isinstance(spec, str) else ""
    for job_id, nxt, runs, inflight in conn.execute(
        "SELECT id, next_fire, runs, inflight FROM scheduler_state"
    ):
        try:
            state[job_id] = _state_row(nxt, runs, inflight)
        except (ValueError, TypeError, msgspec.DecodeError) as exc:
            bad[job_id] = f"its state row is damaged: {str(exc)[:200]}"
    return specs, state, bad


def _read_events(
    conn: sqlite3.Connection, watermark: int, record_kinds: Collection[str]
) -> tuple[list[Event], int]:
    kinds = sorted(record_kinds)
    rows = conn.execute(
        "SELECT seq, mono, wall, kind, subject, payload FROM events "
        f"WHERE seq > ? AND kind IN ({', '.join('?' * len(kinds))}) ORDER BY seq",
        (watermark, *kinds),
    )
    replay: list[Event] = []
    ignored = 0
    for row in rows:
        try:
            replay.append(event_from_row(*row))
        except (TimeControlError, TypeError, ValueError):
            ignored += 1  # an event that cannot be read back is no evidence of anything
    return replay, ignored


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _state_row(nxt: object, runs: object, inflight: object) -> StoredState:
    """A state row's values, checked (`ValueError` naming what is wrong)."""
    if nxt is not None and not _number(nxt):
        raise ValueError(f"next_fire {nxt!r:.60} is not a time")
    if not isinstance(runs, int) or isinstance(runs, bool) or runs < 0:
        raise ValueError(f"runs {runs!r:.60} is not a count")
    if not isinstance(inflight, str):
        raise ValueError(f"inflight {inflight!r:.60} is not JSON text")
    in_flight: dict[int, list[Any]] = {}
    if inflight != "{}":
        for ref, entry in _decode_obj.decode(inflight).items():
            if not (
                isinstance(entry, list)
                and len(entry) == 3
                and _number(entry[0])
                and isinstance(entry[1], bool)
                and (entry[2] is None or _number(entry[2]))
            ):
                raise ValueError(f"inflight entry {ref!r:.30}: {entry!r:.60} is not a run")
            in_flight[int(ref)] = entry
    return (None if nxt is None else float(cast("float", nxt))), runs, in_flight


def _horizon(text: object) -> tuple[float, float] | None:
    """The stored start horizon: None when clean or never written."""
    if not isinstance(text, str) or text == "clean":
        return None
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError:
        value = None
    if isinstance(value, list) and len(value) == 2 and all(_number(v) for v in value):
        return float(value[0]), float(value[1])
    # Damaged: nothing says which starts were durable, so assume any may not have been.
    return (-math.inf, math.inf)


def _float(text: object) -> float | None:
    """A meta value as a finite float (None when missing or unreadable)."""
    try:
        value = float(str(text)) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _int(text: object) -> int:
    """A meta value as an int (0 when missing or unreadable)."""
    try:
        return int(str(text)) if text is not None else 0
    except ValueError:
        return 0


def _nothing(conn: sqlite3.Connection) -> None:
    pass


def _put_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    _create_tables(conn)
    conn.execute("INSERT OR REPLACE INTO scheduler_meta (key, value) VALUES (?, ?)", (key, value))


def _create_tables(conn: sqlite3.Connection) -> None:
    # Statement by statement: executescript() would COMMIT the writer's open transaction.
    for statement in _DDL.split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute(
        "INSERT OR IGNORE INTO scheduler_meta (key, value) VALUES ('schema_version', ?)",
        (str(JOBS_SCHEMA_VERSION),),
    )
