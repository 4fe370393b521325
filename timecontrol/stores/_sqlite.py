"""The Log's durable sink: a SQLite file written by one thread, in batches.

Why this shape:

* The loop never waits for the disk. `SQLiteLog.write` appends a tuple to a queue and
  returns; one writer thread (the only connection that writes) takes what is queued and
  inserts it with multi-row statements (`insert_rows`), committing at most every
  `flush_interval` seconds (100 ms) or as soon as `batch_size` events are waiting. The
  sqlite3 module releases the GIL inside SQLite, and each statement holds it only to bind
  its rows, so the loop keeps running while the thread writes.
* WAL journal with ``synchronous=NORMAL``: a commit is atomic, readers never block the writer,
  and after a crash (``kill -9``) the file opens cleanly with every committed batch intact;
  at most the batch being written at that moment is lost.
* Versioned schema (``PRAGMA user_version``): a file written by a newer timecontrol is refused
  with `StoreVersionError` and left untouched, never rewritten.
* Payloads are JSON text, so ``sqlite3 lab.sqlite "select json_extract(payload, '$.result')
  from events"`` works, and nothing is pickled.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from itertools import chain, repeat, starmap
from pathlib import Path
from typing import Any, Final, TypeVar

import anyio
import anyio.to_thread

from .._clock import run_in_thread
from .._events import Event, event_from_row
from .._exceptions import StoreError, StoreVersionError

__all__ = ["SCHEMA_VERSION", "SQLiteLog", "read_events"]

#: The schema this version writes and reads. Bump it with a migration when tables change.
SCHEMA_VERSION: Final = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq     INTEGER PRIMARY KEY,
    mono    REAL    NOT NULL,
    wall    REAL    NOT NULL,
    kind    TEXT    NOT NULL,
    subject TEXT    NOT NULL,
    payload TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS events_wall ON events (wall);
CREATE INDEX IF NOT EXISTS events_kind ON events (kind, seq);
CREATE INDEX IF NOT EXISTS events_subject ON events (subject, seq);
"""

Row = tuple[int, float, float, str, str, str]

_INSERT_HEAD = "INSERT INTO events (seq, mono, wall, kind, subject, payload) VALUES "
_INSERT_ROW = "(?, ?, ?, ?, ?, ?)"

#: Called by the writer thread at the start of each cycle, before it takes the queued events:
#: returns work for other tables (run in the transaction that commits those events) or None.
CycleHook = Callable[[], "Callable[[sqlite3.Connection], None] | None"]

# Most rows per INSERT statement, and the pause after each (see `insert_rows`).
_SLICE: Final = 64
_YIELD: Final = 0.0002
T = TypeVar("T")


def insert_rows(
    conn: sqlite3.Connection,
    head: str,
    row_sql: str,
    width: int,
    rows: list[Any],
) -> None:
    """Insert `rows` (tuples of `width` values) with multi-row ``VALUES`` statements.

    `head` is the statement up to ``VALUES`` and `row_sql` one row's placeholders, e.g.
    ``"(?, ?, ?)"``. Bind str rather than bytes: sqlite3 binds a str several times faster.

    Why not ``executemany``: it binds and steps one row at a time, releasing the GIL inside
    SQLite and taking it straight back for the next row. While the loop's thread runs, every
    such take may wait up to the interpreter's switch interval (5 ms) and then make the loop
    wait in turn, so a batch of a few thousand rows stalled the loop for milliseconds, and
    held the GIL for as long. Here each statement binds up to `_SLICE` rows in C with the GIL
    held (about 25 us for 64 rows of six values) and then runs them all in one step with
    the GIL released. Slices are 64, 32, ... 1 rows, so at most seven statements are ever
    prepared (and cached by sqlite3).
    """
    limit = max(1, min(_SLICE, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width))
    lo, n = 0, len(rows)
    while lo < n:
        size = limit
        while size > n - lo:
            size //= 2
        conn.execute(
            head + ", ".join([row_sql] * size),
            list(chain.from_iterable(rows[lo : lo + size])),
        )
        lo += size
        # A real pause hands the GIL to the loop's thread if it waits for it: sqlite3 takes
        # the GIL straight back after a statement, quicker than a waiting thread wakes up,
        # so without it the loop could wait for the 5 ms switch interval.
        time.sleep(_YIELD)


def _connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    try:
        if readonly:
            conn = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
            )
        else:
            conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 5000")
        return conn
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open SQLite file {str(path)!r}: {exc}") from None


def _check_version(conn: sqlite3.Connection, path: Path) -> int:
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"{str(path)!r} is not a timecontrol SQLite file ({exc}); "
            "give a new path or a file written by timecontrol"
        ) from None
    if version > SCHEMA_VERSION:
        raise StoreVersionError(
            f"{str(path)!r} has schema version {version}, newer than this timecontrol reads "
            f"(up to {SCHEMA_VERSION}); upgrade timecontrol to open it. The file was not changed."
        )
    if version == 0 and tables:
        raise StoreError(
            f"{str(path)!r} holds tables {sorted(tables)} but no timecontrol schema version; "
            "refusing to write into a database timecontrol did not create"
        )
    if version > 0 and not {"meta", "events"} <= tables:
        raise StoreError(
            f"{str(path)!r} has schema version {version} but not timecontrol's tables (it holds "
            f"{sorted(tables)}); give a new path or a file written by timecontrol"
        )
    return version


def _where(
    since: float | None,
    until: float | None,
    kinds: Collection[str] | None,
    subjects: Collection[str] | None,
    after_seq: int | None,
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if since is not None:
        clauses.append("wall >= ?")
        params.append(since)
    if until is not None:
        clauses.append("wall < ?")
        params.append(until)
    if after_seq is not None:
        clauses.append("seq > ?")
        params.append(after_seq)
    for column, given in (("kind", kinds), ("subject", subjects)):
        if given is not None:
            values = list(given)
            clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
            params.extend(values)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def read_events(
    path: str | Path,
    *,
    since: float | None = None,
    until: float | None = None,
    kinds: Collection[str] | None = None,
    subjects: Collection[str] | None = None,
    after_seq: int | None = None,
    limit: int | None = None,
    newest_first: bool = False,
) -> list[Event]:
    """Read events from a log file (blocking; for scripts and the CLI), oldest first.

    Opens the file read-only: reading never changes it, not even its schema.
    """
    path = Path(path)
    if not path.exists():
        raise StoreError(f"no such log file: {str(path)!r}")
    conn = _connect(path, readonly=True)
    try:
        _check_version(conn, path)
        return _select(conn, since, until, kinds, subjects, after_seq, limit, newest_first)
    finally:
        conn.close()


def _select(
    conn: sqlite3.Connection,
    since: float | None,
    until: float | None,
    kinds: Collection[str] | None,
    subjects: Collection[str] | None,
    after_seq: int | None,
    limit: int | None,
    newest_first: bool,
) -> list[Event]:
    where, params = _where(since, until, kinds, subjects, after_seq)
    sql = f"SELECT seq, mono, wall, kind, subject, payload FROM events{where}"
    sql += " ORDER BY seq DESC" if newest_first else " ORDER BY seq"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    try:
        rows = conn.execute(sql, params).fetchall()
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read events: {exc}") from None
    return [event_from_row(*row) for row in rows]


class SQLiteLog:
    """A `LogSink` that keeps every event in a SQLite file.

    Args:
        path: the file (created with its schema if missing).
        batch_size: wake the writer as soon as this many events wait (default 2000).
        flush_interval: commit at most this many seconds after an event was written
            (default 0.1 s): after a crash at most this much is lost.

    Opening checks the schema version at once (a newer file raises `StoreVersionError`).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        batch_size: int = 2000,
        flush_interval: float = 0.1,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise StoreError(f"batch_size must be a positive int, got {batch_size!r}")
        if not (isinstance(flush_interval, int | float) and 0 < flush_interval <= 60):
            raise StoreError(f"flush_interval must be seconds in (0, 60], got {flush_interval!r}")
        self.path = Path(path)
        self.batch_size = batch_size
        self.flush_interval = float(flush_interval)
        conn = _connect(self.path)
        try:
            version = _check_version(conn, self.path)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            if version == 0:
                conn.executescript(
                    "BEGIN;"
                    + _SCHEMA
                    + f"PRAGMA user_version = {SCHEMA_VERSION};"
                    + "INSERT OR REPLACE INTO meta VALUES ('created_by', 'timecontrol');"
                    + "COMMIT;"
                )
            # Sequence numbers are never reused: `purge` may have deleted the newest events,
            # so it leaves the highest seq it saw in `meta`.
            self._last_seq = int(
                conn.execute(
                    "SELECT MAX(COALESCE((SELECT MAX(seq) FROM events), 0), COALESCE("
                    "(SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'last_seq'), 0))"
                ).fetchone()[0]
            )
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        # A deque, never replaced: the loop appends on the right while the writer thread takes
        # from the left (both atomic), so no event can land in a batch already being written.
        self._pending: deque[Row] = deque()
        self._queued_seq = self._last_seq
        self._durable_seq = self._last_seq
        # Work for the writer thread besides events: (fn, reply or None), run in order.
        self._commands: list[
            tuple[Callable[[sqlite3.Connection], Any], tuple[list[Any], threading.Event] | None]
        ] = []
        self._hooks: list[CycleHook] = []
        self._wake = threading.Event()
        self._cond = threading.Condition()
        self._closing = False
        self._closed = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._writer, name=f"timecontrol-sqlite:{self.path.name}", daemon=True
        )
        self._thread.start()

    # -- the loop's side --------------------------------------------------------------------

    def last_seq(self) -> int:
        """The highest sequence number stored when the file was opened."""
        return self._last_seq

    def write(self, event: Event, payload: bytes) -> None:
        """Queue an event; the writer thread commits it within `flush_interval`."""
        pending = self._pending
        # The row as it will be bound. Decoding here spreads the work evenly over the loop;
        # on the writer it would hold the GIL in bursts, and sqlite3 binds a str several
        # times faster than bytes (which it first tries to adapt).
        pending.append(
            (event.seq, event.mono, event.wall, event.kind, event.subject, payload.decode())
        )
        self._queued_seq = event.seq
        if len(pending) >= self.batch_size:
            self._wake.set()

    @property
    def durable_seq(self) -> int:
        """The highest sequence number committed to the file so far."""
        return self._durable_seq

    async def flush(self) -> None:
        """Return once every event written so far is committed."""
        target = self._queued_seq
        if self._durable_seq >= target:
            self._raise_if_failed()
            return
        self._wake.set()
        await run_in_thread(self._wait_durable, target, abandon_on_cancel=True)
        self._raise_if_failed()
        if self._durable_seq < target:  # written after close: the writer is gone
            raise StoreError(
                f"{self!r} is closed; events up to seq {target} were written after it closed "
                f"and are not stored (durable up to {self._durable_seq})"
            )

    def _wait_durable(self, target: int) -> None:
        with self._cond:
            self._cond.wait_for(
                lambda: self._durable_seq >= target or self._error is not None or self._closed
            )

    def _check_open(self) -> None:
        # After close the writer thread is gone: work handed to it would wait forever.
        if self._closing:
            raise StoreError(f"{self!r} is closed; it runs no more work")

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise StoreError(f"the SQLite writer for {str(self.path)!r} failed: {self._error}")

    async def purge(self, before: float) -> int:
        """Delete events older than wall time `before` (POSIX seconds); returns how many."""

        def delete(conn: sqlite3.Connection) -> int:
            top = conn.execute("SELECT MAX(seq) FROM events").fetchone()[0]
            if top is not None:  # keep the high-water mark: seqs are never reused
                conn.execute(
                    "INSERT INTO meta VALUES ('last_seq', ?) ON CONFLICT (key) DO UPDATE SET "
                    "value = MAX(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
                    (str(top),),
                )
            count: int = conn.execute("DELETE FROM events WHERE wall < ?", (before,)).rowcount
            return count

        return await self.call(delete)

    def add_cycle_hook(self, hook: CycleHook) -> None:
        """Have the writer thread call `hook()` at the start of every cycle (write-behind).

        For other tables kept in the same file whose rows must never get ahead of the
        events (the job store's state rows). The writer calls `hook()` *before* it takes the
        queued events, so whatever the hook hands over was produced after events that are
        all in this cycle; the callable it returns (if any) runs in the transaction that
        commits them. A hook is called on the writer thread and must be quick; it lives as
        long as this sink.
        """
        self._hooks.append(hook)

    def call_soon(self, fn: Callable[[sqlite3.Connection], object]) -> None:
        """Run `fn(connection)` on the writer thread, after the events queued so far.

        Fire and forget (write-behind): for other tables kept in the same file. `fn` runs
        inside its own transaction, after the events (and cycle hooks' work) queued before
        it are committed; an exception fails the writer.
        """
        self._check_open()
        self._commands.append((fn, None))
        self._wake.set()

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(connection)` on the writer thread in a transaction and return its result.

        Events (and cycle hooks' work) queued before the call are committed first. An
        exception raised by `fn` rolls its transaction back and is re-raised here; the writer
        carries on.
        """
        self._check_open()
        done = threading.Event()
        box: list[Any] = []
        self._commands.append((fn, (box, done)))
        self._wake.set()
        await run_in_thread(done.wait, abandon_on_cancel=True)
        self._raise_if_failed()
        if not box:
            raise StoreError(f"the SQLite writer for {str(self.path)!r} stopped before the call")
        ok, value = box[0]
        if not ok:
            raise value
        result: T = value
        return result

    async def query(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        kinds: Collection[str] | None = None,
        subjects: Collection[str] | None = None,
        after_seq: int | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Event]:
        """Committed events matching every filter (read in a worker thread)."""

        def run() -> list[Event]:
            conn = _connect(self.path, readonly=True)
            try:
                return _select(conn, since, until, kinds, subjects, after_seq, limit, newest_first)
            finally:
                conn.close()

        return await run_in_thread(run)

    async def aclose(self) -> None:
        """Commit everything written so far and stop the writer thread. Idempotent."""
        if self._closing:
            return
        self._closing = True
        self._wake.set()
        with anyio.CancelScope(shield=True):
            await run_in_thread(self._thread.join)
        self._raise_if_failed()

    def close(self) -> None:
        """Blocking `aclose` for synchronous code."""
        self._closing = True
        self._wake.set()
        self._thread.join()

    # -- the writer thread ------------------------------------------------------------------

    def _writer(self) -> None:
        conn = self._conn
        try:
            while True:
                self._wake.wait(self.flush_interval)
                self._wake.clear()
                closing = self._closing
                self._cycle(conn)
                while self._commands:
                    fn, reply = self._commands.pop(0)
                    # Whatever was queued before the command goes first (as documented).
                    self._cycle(conn)
                    self._run_command(conn, fn, reply)
                if self._pending and (closing or len(self._pending) >= self.batch_size):
                    self._wake.set()  # more than a cycle's worth: go on at once
                elif closing:
                    self._cycle(conn)  # what the commands just made possible (new tables)
                    if not self._pending:
                        break
        except BaseException as exc:  # reported to the loop by flush()/aclose()
            self._error = exc
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            conn.close()
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            for _fn, reply in self._commands:
                if reply is not None:
                    reply[1].set()

    def _run_command(
        self,
        conn: sqlite3.Connection,
        fn: Callable[[sqlite3.Connection], Any],
        reply: tuple[list[Any], threading.Event] | None,
    ) -> None:
        conn.execute("BEGIN")
        try:
            value = fn(conn)
        except Exception as exc:
            conn.execute("ROLLBACK")
            if reply is None:
                raise  # write-behind has nobody to tell: fail the writer loudly
            reply[0].append((False, exc))
        else:
            conn.execute("COMMIT")
            if reply is not None:
                reply[0].append((True, value))
        if reply is not None:
            reply[1].set()

    def _cycle(self, conn: sqlite3.Connection) -> None:
        """Commit the queued events, a batch per transaction, and the hooks' work with the
        last one (in a transaction of its own when there were no events)."""
        work = [w for w in (hook() for hook in self._hooks) if w is not None]
        pending = self._pending
        left = len(pending)  # only what is queued now: a cycle ends even under a flood
        while left:
            # At most one batch per transaction, popped in C (a Python loop over thousands
            # of rows would hold the GIL, and stall the loop, for as long).
            n = min(left, self.batch_size)
            batch = list(starmap(pending.popleft, repeat((), n)))
            left -= n
            conn.execute("BEGIN")
            insert_rows(conn, _INSERT_HEAD, _INSERT_ROW, 6, batch)
            if not left:
                for w in work:
                    w(conn)
                work = []
            conn.execute("COMMIT")
            with self._cond:
                self._durable_seq = batch[-1][0]
                self._cond.notify_all()
        if work:
            conn.execute("BEGIN")
            for w in work:
                w(conn)
            conn.execute("COMMIT")

    def __repr__(self) -> str:
        return f"SQLiteLog({str(self.path)!r})"
