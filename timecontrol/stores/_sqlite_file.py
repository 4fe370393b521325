"""The store file itself: what a timecontrol SQLite file is, how it is checked, how it is read.

Why this shape:

* Nothing is written to a file before it has been checked: its header (through the writer
  lock's descriptor, before SQLite opens it: SQLite's magic, our application id, a schema
  version no newer than ours, a size that matches the header), the files SQLite keeps next to
  it (no symlinks, no rollback journal that opening would replay), then its schema (tables and
  columns) and, for files up to `QUICK_CHECK_MAX_BYTES`, ``PRAGMA quick_check``. A refused file
  is left byte for byte as it was. An empty (zero-length) file is initialised.
* Every SQLite or decoding error that a public call can meet is turned into a `StoreError`
  subclass naming the file: `StoreCorruptError` (damaged), `StoreForeignError` (another
  program's database), `StoreVersionError` (a newer timecontrol's file).
* Readers never write and never create. While a writer runs, its ``-wal`` file exists and a
  read-only connection reads through it. Without one (a cleanly closed file), a read-only
  connection would create ``-wal`` and ``-shm`` files next to the database and leave them
  behind (and fail in a directory it cannot write); so such a file is read with
  ``immutable=1``, and the read is thrown away and done again through the WAL if a writer
  appeared meanwhile (a ``-wal`` file, or the database's size or times changed).
"""

from __future__ import annotations

import os
import sqlite3
import stat
import struct
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, Final, TypeVar

from .._events import Event, event_from_row
from .._exceptions import (
    EventKindError,
    EventPayloadError,
    StoreCorruptError,
    StoreError,
    StoreForeignError,
    StoreVersionError,
)
from ._lock import reader_use, writer_active

__all__ = [
    "APPLICATION_ID",
    "QUICK_CHECK_MAX_BYTES",
    "SCHEMA",
    "SCHEMA_VERSION",
    "check_header",
    "check_links",
    "check_sidecars",
    "inspect_schema",
    "quick_check",
    "read_events",
    "read_with",
    "select_events",
    "store_error",
]

#: The schema this version writes and reads. Bump it with a migration when tables change.
SCHEMA_VERSION: Final = 1

#: ``PRAGMA application_id`` of a timecontrol file ("TmCt"). Files made before it was set
#: have 0 and are recognised by their schema; opening one for writing sets it.
APPLICATION_ID: Final = 0x546D4374

#: Files up to this size get SQLite's ``PRAGMA quick_check`` (about 0.2 s per 100 MB) before
#: they are written; bigger ones get the header, schema and last-row checks only.
QUICK_CHECK_MAX_BYTES: Final = 16 * 1024 * 1024

SCHEMA = """
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

_COLUMNS: Final = {
    "meta": [("key", "TEXT"), ("value", "TEXT")],
    "events": [
        ("seq", "INTEGER"),
        ("mono", "REAL"),
        ("wall", "REAL"),
        ("kind", "TEXT"),
        ("subject", "TEXT"),
        ("payload", "TEXT"),
    ],
}

_MAGIC: Final = b"SQLite format 3\x00"
_SIDECARS: Final = ("-wal", "-shm", "-journal")
_NOT_CHANGED: Final = "The file was not changed."
T = TypeVar("T")


def store_error(path: Path | str, exc: BaseException, doing: str) -> StoreError:
    """A `StoreError` subclass for an error met while `doing` something with `path`."""
    text = str(exc)
    if isinstance(exc, sqlite3.DatabaseError) and any(
        sign in text for sign in ("malformed", "not a database", "encrypted", "corrupt")
    ):
        return StoreCorruptError(
            f"{str(path)!r} is damaged: SQLite reports {text!r} while {doing}; restore it from "
            "a backup, or read what is left with read_events(path, on_bad_row=...)"
        )
    return StoreError(f"cannot {doing} {str(path)!r}: {text}")


def _not_a_store(path: Path | str, why: str) -> StoreCorruptError:
    return StoreCorruptError(
        f"{str(path)!r} is not a timecontrol SQLite file: {why} (a damaged file, or another "
        f"kind of file); give a new path or a file written by timecontrol. {_NOT_CHANGED}"
    )


def _newer(path: Path | str, version: int) -> StoreVersionError:
    return StoreVersionError(
        f"{str(path)!r} has schema version {version}, newer than this timecontrol reads "
        f"(up to {SCHEMA_VERSION}); upgrade timecontrol to open it. {_NOT_CHANGED}"
    )


def _foreign_app(path: Path | str, app_id: int) -> StoreForeignError:
    return StoreForeignError(
        f"{str(path)!r} is another program's SQLite database (application id {app_id:#010x}; "
        f"timecontrol's is {APPLICATION_ID:#010x}); give a new path or a file written by "
        f"timecontrol. {_NOT_CHANGED}"
    )


def check_sidecars(path: Path) -> None:
    """Refuse a symlink planted where SQLite keeps its side files, and a rollback journal.

    SQLite opens ``<file>-wal``, ``-shm`` and ``-journal`` next to the file's real path; a
    symlink there could make it write elsewhere. A non-empty ``-journal`` is an interrupted
    write of a database in rollback mode (timecontrol's files use WAL): opening it would
    replay it, i.e. write to a file that is not ours.
    """
    real = os.path.realpath(path)
    for suffix in _SIDECARS:
        side = real + suffix
        try:
            st = os.lstat(side)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise StoreError(f"cannot check {side!r}: {exc.strerror or exc}") from None
        if stat.S_ISLNK(st.st_mode):
            raise StoreError(
                f"{side!r} is a symlink; SQLite keeps its own {suffix} file there, and "
                "timecontrol does not follow a symlink planted at that name. Remove it "
                f"(the store {str(path)!r} was not opened)"
            )
        if suffix == "-journal" and st.st_size > 0 and _hot_journal_pages(side) != 0:
            raise StoreForeignError(
                f"{str(path)!r} has a rollback journal ({side!r}) left by an interrupted write: "
                "timecontrol's files never have one, so this is another program's database; "
                f"timecontrol does not replay it. {_NOT_CHANGED}"
            )


_JOURNAL_MAGIC: Final = bytes.fromhex("d9d505f920a163d7")
_CREATION_PAGE_MAX: Final = 65_536  # SQLite's largest page size


def _hot_journal_pages(side: str) -> int | None:
    """The database size (pages) a rollback journal would restore, or None if not hot.

    0 means the journal began on an empty file: a crash while timecontrol created the file
    (switching a new file to WAL is itself a rollback-journal write). Replaying it would only
    empty the file again, so such a file is treated as new (see `discard_creation_journal`).
    """
    try:
        with open(side, "rb") as f:
            head = f.read(28)
    except OSError:
        return None
    if len(head) < 28 or head[:8] != _JOURNAL_MAGIC:
        return None  # zeroed or torn header: SQLite ignores such a journal too
    return int.from_bytes(head[16:20], "big")


def _journal_page_size(side: str) -> int:
    try:
        with open(side, "rb") as f:
            head = f.read(28)
    except OSError:
        return 0
    return int.from_bytes(head[24:28], "big") if len(head) == 28 else 0


def discard_creation_journal(path: Path) -> bool:
    """After a crash during a file's creation: empty the file and drop its journal.

    Called with the writer lock held. True if it did so; only for a journal whose replay
    would leave an empty file (nothing that was ever committed is lost).
    """
    real = os.path.realpath(path)
    side = real + "-journal"
    if _hot_journal_pages(side) != 0:
        return False
    # Switching a new file to WAL writes its first page only: anything bigger was not ours
    # (keep refusing it, untouched).
    page = _journal_page_size(side)
    try:
        if not 512 <= page <= _CREATION_PAGE_MAX or os.path.getsize(real) > page:
            return False
    except OSError:
        return False
    os.truncate(real, 0)
    os.unlink(side)
    return True


def _wal_size(path: Path) -> int:
    try:
        return os.stat(os.path.realpath(path) + "-wal").st_size
    except OSError:
        return 0


def check_links(fd: int, path: Path) -> None:
    """Refuse to write a file that has several hard links (SQLite's "multiple links to the
    same file" corruption: each name gets its own WAL, and a stale one can later be replayed
    over newer data)."""
    try:
        links = os.fstat(fd).st_nlink
    except OSError as exc:
        raise StoreError(f"cannot check {str(path)!r}: {exc.strerror or exc}") from None
    if links > 1:
        raise StoreError(
            f"{str(path)!r} has {links} hard links; SQLite keeps its journal next to the name a "
            "file is written through, so writing it under several names can corrupt it. Remove "
            "the other links (read-only opening works by any name)"
        )


def _pread(fd: int, n: int) -> bytes:
    """The first `n` bytes of `fd`'s file (Windows has no ``os.pread``)."""
    if hasattr(os, "pread"):
        return os.pread(fd, n, 0)
    os.lseek(fd, 0, os.SEEK_SET)  # pragma: no cover - Windows
    return os.read(fd, n)  # pragma: no cover - Windows


def check_header(fd: int, path: Path) -> int:
    """Check the file's first 100 bytes (read through `fd`); returns its size.

    Zero-length is fine (a new file). The header may lag behind a ``-wal`` file left by a
    crash, so its version and size are checked again by SQLite (`inspect_schema`).
    """
    try:
        size = os.fstat(fd).st_size
        head = _pread(fd, 100) if size else b""
    except OSError as exc:
        raise StoreError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    if size == 0:
        return 0
    if len(head) < 100 or not head.startswith(_MAGIC):
        raise _not_a_store(path, "it does not begin with SQLite's header")
    page_size = struct.unpack(">H", head[16:18])[0]
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        raise _not_a_store(path, f"its header gives a page size of {page_size}")
    version, app_id = struct.unpack(">I", head[60:64])[0], struct.unpack(">I", head[68:72])[0]
    if app_id not in (0, APPLICATION_ID):
        raise _foreign_app(path, app_id)
    if version > SCHEMA_VERSION:
        raise _newer(path, version)
    if _wal_size(path) == 0:  # nothing in a WAL completes the file: check its size
        change, pages, valid_for = (
            struct.unpack(">I", head[24:28])[0],
            struct.unpack(">I", head[28:32])[0],
            struct.unpack(">I", head[92:96])[0],
        )
        if size % page_size or (valid_for == change and pages * page_size > size):
            raise StoreCorruptError(
                f"{str(path)!r} is truncated: {size} bytes, but its header describes "
                f"{pages} pages of {page_size} bytes; restore it from a backup. {_NOT_CHANGED}"
            )
    return size


def inspect_schema(conn: sqlite3.Connection, path: Path | str) -> tuple[int, int]:
    """(schema version, application id) of an open file; 0 for an empty one.

    Raises `StoreVersionError` (newer), `StoreForeignError` (another program's database) or
    `StoreCorruptError` (damaged, or timecontrol's tables with the wrong columns). Only reads.
    """
    try:
        app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        columns = {
            name: [(r[1], str(r[2]).upper()) for r in conn.execute(f"PRAGMA table_info({name})")]
            for name in _COLUMNS
            if name in tables
        }
    except sqlite3.DatabaseError as exc:
        raise _not_a_store(path, f"SQLite cannot read its schema ({exc})") from None
    if app_id not in (0, APPLICATION_ID):
        raise _foreign_app(path, app_id)
    if version > SCHEMA_VERSION:
        raise _newer(path, version)
    if version == 0:
        if tables:
            raise StoreForeignError(
                f"{str(path)!r} holds tables {sorted(tables)} but no timecontrol schema "
                "version; refusing to write into a database timecontrol did not create. "
                + _NOT_CHANGED
            )
        return 0, app_id
    if not set(_COLUMNS) <= tables:
        error = StoreForeignError if app_id == 0 else StoreCorruptError
        raise error(
            f"{str(path)!r} has schema version {version} but not timecontrol's tables (it holds "
            f"{sorted(tables)}); give a new path or a file written by timecontrol. {_NOT_CHANGED}"
        )
    for name, expected in _COLUMNS.items():
        if columns[name] != expected:
            raise StoreCorruptError(
                f"{str(path)!r}: table {name!r} has the columns {columns[name]}, but timecontrol "
                f"writes {expected}; the file is damaged or was changed by another program. "
                + _NOT_CHANGED
            )
    return version, app_id


def quick_check(conn: sqlite3.Connection, path: Path | str, size: int) -> None:
    """SQLite's structural check (files up to `QUICK_CHECK_MAX_BYTES`) and a read of the
    newest event (every file): `StoreCorruptError` if either fails."""
    try:
        if size <= QUICK_CHECK_MAX_BYTES:
            rows = conn.execute("PRAGMA quick_check(5)").fetchall()
            if rows != [("ok",)]:
                problems = "; ".join(str(r[0]) for r in rows)
                raise StoreCorruptError(
                    f"{str(path)!r} is damaged: SQLite's quick_check reports {problems!r}; "
                    f"restore it from a backup. {_NOT_CHANGED}"
                )
        conn.execute("SELECT * FROM events ORDER BY seq DESC LIMIT 1").fetchall()
    except sqlite3.DatabaseError as exc:
        raise store_error(path, exc, "checking") from None


# -- reading ------------------------------------------------------------------------------------


def _stat(path: Path) -> os.stat_result:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise StoreError(f"no such log file: {str(path)!r}") from None
    except OSError as exc:
        raise StoreError(f"cannot open {str(path)!r}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise StoreError(f"{str(path)!r} is not a regular file; give the path of a log file")
    return st


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino, a.st_size, a.st_mtime_ns, a.st_ctime_ns) == (
        b.st_dev,
        b.st_ino,
        b.st_size,
        b.st_mtime_ns,
        b.st_ctime_ns,
    )


def _read_once(
    path: Path, real: str, immutable: bool, fn: Callable[[sqlite3.Connection | None], T]
) -> T:
    uri = Path(real).as_uri() + ("?mode=ro&immutable=1" if immutable else "?mode=ro")
    with reader_use(path):
        try:
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        except sqlite3.Error as exc:
            raise store_error(path, exc, "open") from None
        try:
            conn.execute("PRAGMA busy_timeout = 5000")
            version, _ = inspect_schema(conn, path)
            return fn(conn if version else None)
        except sqlite3.Error as exc:
            raise store_error(path, exc, "read") from None
        finally:
            conn.close()


def read_with(path: Path, fn: Callable[[sqlite3.Connection | None], T]) -> T:
    """``fn(connection)`` on a checked read-only connection to `path` (None: an empty file).

    Never writes, never creates (see the module docstring); `StoreError` subclasses only.
    """
    st = _stat(path)
    real = os.path.realpath(path)
    if st.st_nlink > 1 and not os.path.lexists(real + "-wal") and writer_active(path):
        # SQLite keeps the WAL next to the name a file is opened by: this name would read a
        # stale file, and make a second WAL next to it.
        raise StoreError(
            f"{str(path)!r} is being written through another of its names (it has "
            f"{st.st_nlink} hard links, and the writer's journal is not next to this one); "
            "read it through the name the writer uses"
        )
    for _ in range(3):
        if os.path.lexists(real + "-wal"):
            return _read_once(path, real, False, fn)  # a writer is (or was) running: its WAL
        try:
            result = _read_once(path, real, True, fn)
        except StoreError:
            after = _stat(path)
            if not os.path.lexists(real + "-wal") and _same(st, after):
                raise  # the file did not change under the read: the error is the file's
            st = after
            continue
        after = _stat(path)
        if not os.path.lexists(real + "-wal") and _same(st, after):
            return result
        st = after  # a writer came (or came and went): the read may be torn, do it again
    return _read_once(path, real, False, fn)


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


def select_events(
    conn: sqlite3.Connection | None,
    path: Path | str,
    filters: dict[str, Any],
    on_bad_row: Callable[[str], None] | None = None,
) -> list[Event]:
    """The events matching `filters` (`read_events`'s keywords) on an open connection.

    A row that cannot be read back raises `StoreCorruptError` naming it, or, with `on_bad_row`,
    is skipped after `on_bad_row(message)`. Kinds this process has not registered are read.
    """
    if conn is None:
        return []  # an empty file: no schema yet, no events
    where, params = _where(
        filters.get("since"),
        filters.get("until"),
        filters.get("kinds"),
        filters.get("subjects"),
        filters.get("after_seq"),
    )
    sql = f"SELECT seq, mono, wall, kind, subject, payload FROM events{where}"
    sql += " ORDER BY seq DESC" if filters.get("newest_first") else " ORDER BY seq"
    limit = filters.get("limit")
    if limit is not None and (type(limit) is not int or limit < 0):
        raise StoreError(f"limit must be None or a non-negative int, got {limit!r}")
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    try:
        rows = conn.execute(sql, params).fetchall()
    except sqlite3.Error as exc:
        raise store_error(path, exc, "read events from") from None
    try:
        return [event_from_row(*row) for row in rows]
    except (EventKindError, EventPayloadError):
        return _rows_one_by_one(rows, path, on_bad_row)


def _rows_one_by_one(
    rows: list[Any], path: Path | str, on_bad_row: Callable[[str], None] | None
) -> list[Event]:
    # The slow path, only for a file with a bad row: find it, then report or skip it.
    out: list[Event] = []
    for row in rows:
        try:
            out.append(event_from_row(*row))
        except (EventKindError, EventPayloadError) as exc:
            message = f"{str(path)!r}: {exc}"
            if on_bad_row is None:
                raise StoreCorruptError(
                    f"{message}; the row is damaged (read the others with "
                    "read_events(path, on_bad_row=print))"
                ) from None
            on_bad_row(message)
    return out


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
    on_bad_row: Callable[[str], None] | None = None,
) -> list[Event]:
    """Read events from a log file (blocking; for scripts and the CLI), oldest first.

    Read-only: never writes or creates anything, works while a writer runs, and takes no lock.
    Events of kinds this process has not registered come back as they are. A damaged row
    raises `StoreCorruptError`, or with `on_bad_row` is skipped after ``on_bad_row(message)``.
    Every failure is a `StoreError` subclass naming the file.
    """
    filters = {
        "since": since,
        "until": until,
        "kinds": kinds,
        "subjects": subjects,
        "after_seq": after_seq,
        "limit": limit,
        "newest_first": newest_first,
    }
    file = Path(path)
    return read_with(file, lambda conn: select_events(conn, file, filters, on_bad_row))
