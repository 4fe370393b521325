"""The Log's durable sink: a SQLite file written by one thread, in batches.

Why this shape:

* The loop never waits for the disk while the disk keeps up. `SQLiteLog.write` appends a
  tuple to a queue and returns; one writer thread (the only connection that writes) takes
  what is queued and inserts it with multi-row statements (`insert_rows`), committing every
  half `flush_interval` or as soon as `batch_size` events are waiting. The sqlite3 module
  releases the GIL inside SQLite, and each statement holds it only to bind its rows, so the
  loop keeps running while the thread writes.
* The loss bound holds at every rate. After a ``kill -9`` at most the events of the last
  `flush_interval` (100 ms) are lost. `pace`, which the `Log` calls before it stamps each
  event, looks at the age of the oldest event not yet committed (once a millisecond): past
  60 % of the bound the writer commits small batches and `pace` gives it the GIL until its
  next commit (at most 1 ms); past 85 % `pace` blocks until the writer has committed what is
  older. That is backpressure, how the loop learns that the disk is slower than its producers;
  short waits early make the long one rare. Checkpoints run on a thread of their own
  (`Checkpointer`), so that no commit, and no producer waiting for one, waits for an fsync.
* One writer per file, found by what the file is (`WriterLock`: a symlink, a relative path
  or a hard link reach the same lock; nothing is left behind). Readers (``readonly=True``,
  `read_events`, ``timecontrol log``) never write, never create, and take no lock.
* Sequence numbers are never reused, across crashes included. Every seq that `write` accepts
  is at most a reservation (``meta.seq_reserved``) already committed to the file; the writer
  extends it a block ahead of use. A clean close shrinks it back to the last event, so seqs
  stay contiguous across restarts; after a crash the next run continues after the
  reservation, leaving a gap (of less than `SEQ_BLOCK`) that tells you the run ended badly.
* WAL journal with ``synchronous=NORMAL``: a commit is atomic, readers never block the writer,
  and after a crash (``kill -9``) the file opens cleanly with every committed batch intact.
  (A power cut may also lose the last commits; it never corrupts the file.)
* A file is checked before anything is written to it (`_sqlite_file`): damaged, foreign or
  newer files are refused with a `StoreError` subclass and left untouched. New files are
  created ``0600`` (the events may hold anything); SQLite gives its side files the same mode.
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
from itertools import repeat, starmap
from pathlib import Path
from typing import Any, Final, TypeVar

import anyio
import anyio.to_thread

from .._clock import run_in_thread
from .._events import Event
from .._exceptions import StoreError, StoreReadOnlyError
from ._lock import WriterLock
from ._sqlite_file import SCHEMA_VERSION, read_events, read_with, select_events
from ._sqlite_writer import Checkpointer, insert_rows, open_writer, put_meta

__all__ = ["SCHEMA_VERSION", "SEQ_BLOCK", "SQLiteLog", "insert_rows", "read_events"]

#: How far ahead of use sequence numbers are reserved (the most a crash can skip).
SEQ_BLOCK: Final = 100_000

Row = tuple[int, float, float, str, str, str]

_INSERT_HEAD = "INSERT INTO events (seq, mono, wall, kind, subject, payload) VALUES "
_INSERT_ROW = "(?, ?, ?, ?, ?, ?)"

#: Called by the writer thread at the start of each cycle, before it takes the queued events:
#: returns work for other tables (run in the transaction that commits those events) or None.
CycleHook = Callable[[], "Callable[[sqlite3.Connection], None] | None"]

# The loop's side of the loss bound: how often `write` looks at the clock, the share of
# `flush_interval` after which the writer hurries (small transactions) and after which `write`
# waits, the rows per transaction while it hurries, and the most events ever waiting.
_CHECK_EVERY: Final = 0.001
_HURRY_AT: Final = 0.6
_WAIT_AT: Final = 0.85
_HURRY_ROWS: Final = 128
_MAX_PENDING: Final = 100_000
_monotonic = time.monotonic
T = TypeVar("T")


def _check_args(batch_size: object, flush_interval: object, mode: object) -> None:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise StoreError(f"batch_size must be a positive int, got {batch_size!r}")
    if not (
        isinstance(flush_interval, int | float)
        and not isinstance(flush_interval, bool)
        and 0 < flush_interval <= 60
    ):
        raise StoreError(f"flush_interval must be seconds in (0, 60], got {flush_interval!r}")
    if not isinstance(mode, int) or isinstance(mode, bool) or not 0 <= mode <= 0o777:
        raise StoreError(
            f"mode must be file permission bits between 0o000 and 0o777 (e.g. 0o600), got {mode!r}"
        )


class SQLiteLog:
    """A `LogSink` that keeps every event in a SQLite file.

    Args:
        path: the file (created with its schema if missing; an empty file is initialised).
        batch_size: wake the writer as soon as this many events wait (default 2000).
        flush_interval: the loss bound: after a crash (``kill -9``) at most the events of the
            last `flush_interval` seconds are lost (default 0.1 s). The writer commits every
            half of it; `pace` waits when the disk falls behind (see the module docstring).
        readonly: open for reading only: never writes or creates anything, takes no lock,
            works while a writer runs; `write` and the other writing calls raise
            `StoreReadOnlyError` (a `Log` over it refuses appends).
        mode: permission bits of a file created here (default ``0o600``; the umask applies).

    Opening checks the file at once and writes nothing to a file it refuses:
    `StoreLockedError` (another writer has it), `StoreVersionError` (newer timecontrol),
    `StoreForeignError` (another program's database), `StoreCorruptError` (damaged).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        batch_size: int = 2000,
        flush_interval: float = 0.1,
        readonly: bool = False,
        mode: int = 0o600,
    ) -> None:
        _check_args(batch_size, flush_interval, mode)
        self.path = Path(path)
        self.batch_size = batch_size
        self.flush_interval = float(flush_interval)
        self.readonly = bool(readonly)
        # Well inside the hurry threshold, so that a steady load commits before it hurries.
        self._cadence = self.flush_interval / 5
        self._hurry_age = self.flush_interval * _HURRY_AT
        self._max_age = self.flush_interval * _WAIT_AT
        # A deque, never replaced: the loop appends on the right while the writer thread takes
        # from the left (both atomic), so no event can land in a batch already being written.
        self._pending: deque[Row] = deque()
        self._marks: deque[tuple[int, float]] = deque()  # (seq, time it was written)
        self._next_check = 0.0
        self._paced = 0.0  # when `pace` last looked at the clock
        self._hurry = False  # the writer commits small batches: the loss bound is near
        self._waiting = 0  # the loop's thread waits for the writer's next commit(s)
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
        self._lock: WriterLock | None = None
        self._thread: threading.Thread | None = None
        self._reserve_to = 0  # a reservation the loop asked for (0: none)
        if self.readonly:
            last = read_with(self.path, self._read_last_seq)
            self._closing = self._closed = True  # no writer thread: nothing runs, nothing waits
            self._set_seqs(last, last)
            self._bump_at = -1  # every write goes to `_reserve`, which refuses it
            return
        self._lock, self._conn, last, reserved = open_writer(self.path, mode, SEQ_BLOCK)
        self._set_seqs(last, reserved)
        self._checkpointer = Checkpointer(self.path)
        self._thread = threading.Thread(
            target=self._writer, name=f"timecontrol-sqlite:{self.path.name}", daemon=True
        )
        self._thread.start()

    def _set_seqs(self, last: int, reserved: int) -> None:
        self._last_seq = self._queued_seq = self._durable_seq = last
        self._reserved = reserved  # committed: every seq handed out is at most this
        self._bump_at = reserved - SEQ_BLOCK // 2

    @staticmethod
    def _read_last_seq(conn: sqlite3.Connection | None) -> int:
        if conn is None:
            return 0
        row = conn.execute(
            "SELECT MAX(COALESCE((SELECT MAX(seq) FROM events), 0), COALESCE("
            "(SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'last_seq'), 0))"
        ).fetchone()
        return int(row[0])

    # -- the loop's side --------------------------------------------------------------------

    def last_seq(self) -> int:
        """The sequence number the Log continues after: the last stored one, or after a crash
        the end of the crashed run's reservation (so that no seq is ever reused)."""
        return self._last_seq

    def pace(self, seq: int) -> None:
        """Called by the `Log` before it stamps event `seq`: backpressure.

        Returns at once, except when the writer falls behind the loss bound (or the seq
        reservation): then it waits, briefly, for the writer to commit.
        """
        if seq > self._bump_at:  # the reserved seqs run low (rare; always on a reader)
            self._reserve(seq)
        now = self._paced = _monotonic()
        if now >= self._next_check and self._check(seq, now, now):  # about once a millisecond
            # It waited, and the event is stamped only now: its mark moves on (otherwise
            # the age of the events after it would count a wait that held nothing up).
            self._paced = after = _monotonic()
            marks = self._marks
            if marks and marks[-1][0] == seq:
                marks[-1] = (seq, after)

    def write(self, event: Event, payload: bytes) -> None:
        """Queue an event; the writer thread commits it within `flush_interval`.

        Returns at once (the waiting is done by `pace`), except for the seq reservation, a
        huge backlog, and a thread that was held up between `pace` and the event's stamping
        (by the OS, or a caller that does not pace): these are checked here, so that no event
        gets past the loss bound for having been stamped late.
        """
        seq = event.seq
        if seq > self._bump_at:
            self._reserve(seq)
        now = _monotonic()
        if now - self._paced > _CHECK_EVERY:
            # The event was stamped at some time after `_paced` (an earlier time: the safe side).
            self._check(seq, now, self._paced)
        pending = self._pending
        # The row as it will be bound. Decoding here spreads the work evenly over the loop;
        # on the writer it would hold the GIL in bursts, and sqlite3 binds a str several
        # times faster than bytes (which it first tries to adapt).
        pending.append((seq, event.mono, event.wall, event.kind, event.subject, payload.decode()))
        self._queued_seq = seq
        if len(pending) >= self.batch_size:
            self._wake.set()
            if len(pending) >= _MAX_PENDING:
                self._wait_durable(seq - _MAX_PENDING // 2)

    def _reserve(self, seq: int) -> None:
        """Ask the writer to reserve more seqs; wait if `seq` is beyond what is committed."""
        if self.readonly:
            raise StoreReadOnlyError(
                f"{self!r} was opened read-only; open it without readonly=True to write"
            )
        with self._cond:
            self._reserve_to = max(self._reserve_to, seq + SEQ_BLOCK)
            self._bump_at = self._reserved  # ask again only beyond what is committed
            self._wake.set()
            if seq <= self._reserved:
                return
            self._waiting += 1
            try:
                while self._reserved < seq and self._error is None and not self._closed:
                    self._cond.wait(0.05)
            finally:
                self._waiting -= 1

    def _check(self, seq: int, now: float, written: float) -> bool:
        """Keep the oldest event not yet committed younger than the loss bound; True if it
        had to wait for that.

        `seq` is the event being written, at `written` or later (a time at or before `now`).
        """
        self._next_check = now + _CHECK_EVERY
        marks = self._marks
        if not marks or marks[-1][0] < seq:
            marks.append((seq, written))
        age = self._age(seq, now)
        self._hurry = age > self._hurry_age
        if age > self._max_age:
            self._wait_young(seq)
            return True
        if self._hurry:
            # The writer falls behind: give it the GIL (and a CPU) until its next commit, at
            # most a millisecond. Short waits early keep the producer at the writer's pace,
            # so that the long wait above (for the whole backlog) is rarely needed.
            self._wake.set()
            with self._cond:
                self._waiting += 1
                self._cond.wait(_CHECK_EVERY)
                self._waiting -= 1
        return False

    def _age(self, seq: int, now: float) -> float:
        """How long ago the oldest event not yet committed was written (0.0: none before
        `seq`, the event being written, whose mark is the newest)."""
        marks = self._marks
        first = self._durable_seq + 1  # the oldest event not yet committed
        if first >= seq:
            if len(marks) > 1:
                marks.clear()
                marks.append((seq, now))
            return 0.0
        # Keep as the anchor the newest mark at or before `first`: `first` was written at or
        # after its time, so the age measured from it errs on the safe side (by < 1 ms).
        while marks[1][0] <= first:
            marks.popleft()
        return now - marks[0][1]

    def _wait_young(self, seq: int) -> None:
        """Block (backpressure) until the oldest uncommitted event is young enough again,
        measured when each commit lands (not when the wait began: waits can be long)."""
        self._wake.set()
        young = self._max_age - _CHECK_EVERY  # room for the millisecond until the next check
        with self._cond:
            self._waiting += 1
            try:
                while self._error is None and not self._closed:
                    if self._age(seq, _monotonic()) <= young:
                        break
                    self._cond.wait(0.005)
            finally:
                self._waiting -= 1

    def _wait_durable(self, target: int) -> None:
        """Block (backpressure) until the writer committed `target`, failed, or stopped."""
        self._wake.set()
        with self._cond:
            self._waiting += 1
            try:
                while self._durable_seq < target and self._error is None and not self._closed:
                    self._cond.wait(0.05)
            finally:
                self._waiting -= 1

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
        await run_in_thread(self._wait_flushed, target, abandon_on_cancel=True)
        self._raise_if_failed()
        if self._durable_seq < target:  # written after close: the writer is gone
            raise StoreError(
                f"{self!r} is closed; events up to seq {target} were written after it closed "
                f"and are not stored (durable up to {self._durable_seq})"
            )

    def _wait_flushed(self, target: int) -> None:
        with self._cond:
            self._cond.wait_for(
                lambda: self._durable_seq >= target or self._error is not None or self._closed
            )

    def _check_open(self) -> None:
        if self.readonly:
            raise StoreReadOnlyError(
                f"{self!r} was opened read-only; open it without readonly=True to write"
            )
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
        self._check_open()
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
        on_bad_row: Callable[[str], None] | None = None,
    ) -> list[Event]:
        """Committed events matching every filter (read in a worker thread, read-only).

        Kinds this process has not registered are read as they are. A damaged row raises
        `StoreCorruptError`, or with `on_bad_row` is skipped after ``on_bad_row(message)``.
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
        path = self.path

        def run() -> list[Event]:
            return read_with(path, lambda conn: select_events(conn, path, filters, on_bad_row))

        return await run_in_thread(run)

    async def aclose(self) -> None:
        """Commit everything written so far, stop the writer thread, release the file's lock.

        Idempotent. Raises `StoreError` if the writer had failed.
        """
        thread = self._thread
        if thread is None or self._closing:
            self._release()
            return
        self._closing = True
        self._wake.set()
        with anyio.CancelScope(shield=True):
            await run_in_thread(thread.join)
        self._release()
        self._raise_if_failed()

    def close(self) -> None:
        """Blocking `aclose` for synchronous code."""
        self._closing = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        self._release()

    def _release(self) -> None:
        # Only after the writer's connection is closed (see `_lock`): the thread has ended.
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    # -- the writer thread ------------------------------------------------------------------

    def _writer(self) -> None:
        conn = self._conn
        try:
            while True:
                self._wake.wait(self._cadence)
                self._wake.clear()
                closing = self._closing
                self._cycle(conn)
                while self._commands:
                    fn, reply = self._commands.pop(0)
                    # Whatever was queued before the command goes first (as documented).
                    self._cycle(conn)
                    self._run_command(conn, fn, reply)
                if self._pending and (
                    closing or self._waiting or len(self._pending) >= self.batch_size
                ):
                    self._wake.set()  # more than a cycle's worth, or the loop waits: go on
                elif closing:
                    self._cycle(conn)  # what the commands just made possible (new tables)
                    if not self._pending:
                        break
            self._end_session(conn)
        except BaseException as exc:  # reported to the loop by flush()/aclose()
            self._error = exc
        finally:
            # The checkpointer's connection goes first: the writer's, closing last, copies
            # the WAL back and removes it.
            self._checkpointer.stop()
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            conn.close()
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            for _fn, reply in self._commands:
                if reply is not None:
                    reply[1].set()

    def _end_session(self, conn: sqlite3.Connection) -> None:
        """A clean close: give back the unused reservation, so that the next run's seqs follow
        on without a gap (events written after close are not stored: `flush` says so)."""
        conn.execute("BEGIN")
        put_meta(conn, "seq_reserved", self._durable_seq)
        conn.execute("DELETE FROM meta WHERE key = 'writer'")
        conn.execute("COMMIT")

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
        """Commit the queued events, a batch per transaction (small ones while the loss bound
        is near), a new seq reservation with the first and the hooks' work with the last (in a
        transaction of their own when there were no events)."""
        work = [w for w in (hook() for hook in self._hooks) if w is not None]
        with self._cond:
            reserve = self._reserve_to if self._reserve_to > self._reserved else 0
        pending = self._pending
        left = len(pending)  # only what is queued now: a cycle ends even under a flood
        while left:
            # At most one batch per transaction, popped in C (a Python loop over thousands
            # of rows would hold the GIL, and stall the loop, for as long).
            hurry = self._waiting or self._hurry
            n = min(left, _HURRY_ROWS if hurry else self.batch_size)
            batch = list(starmap(pending.popleft, repeat((), n)))
            left -= n
            conn.execute("BEGIN")
            if reserve:
                put_meta(conn, "seq_reserved", reserve)
            # While the loop waits for this commit it needs no GIL: no pauses then. (Measured:
            # pausing during the loop's short waits too cost a third of the throughput.)
            insert_rows(conn, _INSERT_HEAD, _INSERT_ROW, 6, batch, pause=not self._waiting)
            if not left:
                for w in work:
                    w(conn)
                work = []
            conn.execute("COMMIT")
            self._published(batch[-1][0], reserve)
            reserve = 0
        if work or reserve:
            conn.execute("BEGIN")
            if reserve:
                put_meta(conn, "seq_reserved", reserve)
            for w in work:
                w(conn)
            conn.execute("COMMIT")
            self._published(None, reserve)

    def _published(self, durable: int | None, reserved: int) -> None:
        """Tell the loop what the last commit made durable (events, a seq reservation)."""
        with self._cond:
            if durable is not None:
                self._durable_seq = durable
            if reserved:
                self._reserved = reserved
                self._bump_at = reserved - SEQ_BLOCK // 2
                if self._reserve_to <= reserved:
                    self._reserve_to = 0
            self._cond.notify_all()

    def __repr__(self) -> str:
        ro = ", readonly=True" if self.readonly else ""
        return f"SQLiteLog({str(self.path)!r}{ro})"
