"""The writing side of a store file: opening it for writing, inserting rows, checkpointing.

Why this shape:

* `open_writer` locks, checks, and only then writes (`_sqlite_file` does the checking): the
  schema of a new file, the application id of a file made before it existed, and a block of
  reserved sequence numbers (see `SQLiteLog`). A refused open changes nothing and removes a
  file it created.
* `Checkpointer`: SQLite copies the WAL back into the database (a *checkpoint*, with an
  fsync) inside whichever commit crosses its threshold, which made that commit, and with it a
  producer waiting on the loss bound, take tens of milliseconds. The writer's connection has
  automatic checkpoints turned off; a thread of its own runs passive checkpoints on its own
  connection instead, which never block the writer's commits.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import threading
import time
from itertools import chain
from pathlib import Path
from typing import Any, Final

from .._exceptions import StoreError, StoreLockedError
from ._lock import WriterLock
from ._sqlite_file import (
    APPLICATION_ID,
    SCHEMA,
    SCHEMA_VERSION,
    check_header,
    check_links,
    check_sidecars,
    discard_creation_journal,
    inspect_schema,
    quick_check,
    read_with,
    store_error,
)

__all__ = ["Checkpointer", "insert_rows", "open_writer", "put_meta"]

# Most rows per INSERT statement, and the pause after each (see `insert_rows`).
_SLICE: Final = 64
_YIELD: Final = 0.0002
#: How often the checkpointer copies the WAL back into the database.
CHECKPOINT_EVERY: Final = 0.5


def insert_rows(
    conn: sqlite3.Connection,
    head: str,
    row_sql: str,
    width: int,
    rows: list[Any],
    *,
    pause: bool = True,
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
    prepared (and cached by sqlite3). `pause`: sleep briefly after each statement (see below);
    pointless while the loop's thread is blocked waiting for this very commit.
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
        if pause:
            time.sleep(_YIELD)


def put_meta(conn: sqlite3.Connection, key: str, value: object) -> None:
    """Set one ``meta`` row (in the caller's transaction)."""
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, str(value)))


def _meta_int(meta: dict[str, Any], key: str, path: Path) -> int:
    try:
        return int(meta.get(key, 0))
    except (TypeError, ValueError):
        raise store_error(
            path, sqlite3.DatabaseError("malformed"), f"reading meta {key}={meta[key]!r} of"
        ) from None


def connect(path: Path) -> sqlite3.Connection:
    """A read-write connection to `path`'s real file (the name SQLite keeps its WAL next to)."""
    try:
        conn = sqlite3.connect(
            os.path.realpath(path), check_same_thread=False, isolation_level=None
        )
    except sqlite3.Error as exc:
        raise store_error(path, exc, "open") from None
    conn.execute("PRAGMA busy_timeout = 5000")
    return conn


def open_writer(
    path: Path, mode: int, block: int
) -> tuple[WriterLock, sqlite3.Connection, int, int]:
    """Lock, check, then (only then) write: the schema if new, and `block` reserved seqs.

    Returns (lock, connection, last seq, reservation).
    """
    check_sidecars(path)
    try:
        lock = WriterLock.acquire(path, mode=mode)
    except StoreLockedError as exc:
        raise _with_holder(path, exc) from None
    conn: sqlite3.Connection | None = None
    try:
        check_links(lock.fd, path)
        discard_creation_journal(path)
        size = check_header(lock.fd, path)

        def check(ro: sqlite3.Connection | None) -> tuple[int, int]:
            if ro is None:
                return 0, 0  # empty: initialise it
            quick_check(ro, path, size)
            return inspect_schema(ro, path)

        # Checked through a read-only connection: closing a read-write one on a refused file
        # could checkpoint a WAL left by a crash into it, i.e. change it.
        version, app_id = read_with(path, check)
        conn = connect(path)
        last = _start_session(conn, path, version, app_id, block)
    except BaseException:
        if conn is not None:
            conn.close()
        _forget_created(path, lock)
        lock.release()
        raise
    return lock, conn, last, last + block


def _start_session(
    conn: sqlite3.Connection, path: Path, version: int, app_id: int, block: int
) -> int:
    """Initialise a new file and reserve `block` seqs; returns the last seq."""
    try:
        if version:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            top = conn.execute("SELECT MAX(seq) FROM events").fetchone()[0] or 0
        else:
            meta, top = {}, 0
        # After a crash `seq_reserved` is above every seq handed out: continue after it.
        # After a clean close it equals the last event: no gap.
        last = max(
            int(top), _meta_int(meta, "last_seq", path), _meta_int(meta, "seq_reserved", path)
        )
        journal = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(journal).lower() != "wal":
            raise StoreError(
                f"{str(path)!r} cannot use SQLite's WAL journal (got {journal!r}); keep store "
                "files on a local disk"
            )
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # the `Checkpointer` does it
        conn.execute("BEGIN IMMEDIATE")
        try:
            if not version:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                put_meta(conn, "created_by", "timecontrol")
            if app_id != APPLICATION_ID:
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            put_meta(conn, "seq_reserved", last + block)
            put_meta(conn, "writer", f"pid {os.getpid()} on {socket.gethostname()}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except sqlite3.Error as exc:
        raise store_error(path, exc, "initialise") from None
    return last


def _forget_created(path: Path, lock: WriterLock) -> None:
    # A refused open leaves no trace: remove the file only if this open created it and it is
    # still the same, empty file.
    if not lock.created:
        return
    with contextlib.suppress(OSError):
        st = os.stat(path)
        if (st.st_dev, st.st_ino) == lock.key and st.st_size == 0:
            os.unlink(path)


def _with_holder(path: Path, exc: StoreLockedError) -> StoreLockedError:
    """`exc`, naming the writer that the file names (pid and host), when it can be read."""

    def holder(conn: sqlite3.Connection | None) -> str | None:
        if conn is None:
            return None
        row = conn.execute("SELECT value FROM meta WHERE key = 'writer'").fetchone()
        return None if row is None else str(row[0])

    if f"(pid {os.getpid()})" in str(exc):
        return exc  # this process: the message says so already
    try:
        who = read_with(path, holder)
    except StoreError:
        who = None
    if who is None:
        return exc
    return StoreLockedError(f"{exc} (the file names its writer: {who})")


class Checkpointer:
    """Passive checkpoints of one file, every `CHECKPOINT_EVERY` seconds, on a thread and a
    connection of their own (see the module docstring). `stop` before the writer's connection
    closes, so that the writer's is the last one (it then removes the WAL)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stop = threading.Event()
        self._conn = connect(path)
        self._thread = threading.Thread(
            target=self._run, name=f"timecontrol-checkpoint:{path.name}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.wait(CHECKPOINT_EVERY):
                # A failed checkpoint loses nothing (the WAL keeps the data): try again later.
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            self._conn.close()

    def stop(self) -> None:
        """Stop and close (idempotent; blocks for at most one checkpoint)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
