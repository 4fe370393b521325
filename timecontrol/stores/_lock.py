"""One writer per store file: an exclusive lock on the file itself, found by what it is.

Why this shape:

* The lock is taken on a descriptor of the database file itself (``flock``; on Windows a
  one-byte ``msvcrt`` lock far beyond the end of the file, where SQLite never reads or locks).
  A lock *file* next to the database was name-based: a symlink, a relative path or a hard link
  reached a different lock file, and a symlink planted at the lock file's name had its target
  truncated. A lock on the database's own inode is reached by every name of the file, leaves
  nothing behind, and the kernel drops it when the process dies (even by ``kill -9``), so a
  restart never waits for a stale lock.
* SQLite's POSIX-lock caveat: closing *any* descriptor of a file drops every ``fcntl`` lock that
  the process holds on it, SQLite's own included. So the descriptor is opened once per file
  (inode) and process, kept in `_registry` while anything of ours in this process uses the file
  (the writer, or a reader's SQLite connection, see `reader_use`), and closed only when the
  last of them is done. A second writer in the same process is refused from the registry,
  before it opens a descriptor that it would have to close again.
* ``flock`` locks are independent of SQLite's ``fcntl`` locks on local file systems. On NFS,
  Linux emulates ``flock`` with ``fcntl`` locks, which SQLite's WAL mode does not support
  anyway: keep store files on a local disk.
* A child made by ``fork`` inherits the descriptors (and with them a share of the lock): they
  are closed in the child, so that a forked worker never keeps a crashed parent's file locked.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Final

from .._exceptions import StoreError, StoreLockedError

__all__ = ["FileKey", "WriterLock", "file_key", "reader_use", "writer_active"]

#: A file's identity: (device, inode). Every name of a file (symlink, hard link, relative or
#: absolute path) has the same key.
FileKey = tuple[int, int]

# Where the Windows lock byte sits: far beyond any real file's end and SQLite's lock bytes
# (1 GiB), because Windows locks are mandatory and would block SQLite's own reads.
_WIN_LOCK_OFFSET: Final = 1 << 40


class _Entry:
    """What this process holds of one file: descriptors (closed together, last) and users."""

    __slots__ = ("fds", "users", "writer")

    def __init__(self) -> None:
        self.fds: list[int] = []
        self.users = 0
        self.writer: WriterLock | None = None


_mutex = threading.Lock()
_registry: dict[FileKey, _Entry] = {}


def file_key(st: os.stat_result) -> FileKey:
    """The identity of a file from its `os.stat` result."""
    return (st.st_dev, st.st_ino)


def _drop(key: FileKey, entry: _Entry) -> None:
    # Called with `_mutex` held, once nothing of ours uses the file any more: only now may
    # its descriptors be closed (closing one drops SQLite's fcntl locks in this process).
    if entry.users == 0 and entry.writer is None:
        for fd in entry.fds:
            with suppress(OSError):
                os.close(fd)
        entry.fds.clear()
        _registry.pop(key, None)


@contextmanager
def reader_use(path: Path) -> Iterator[None]:
    """Mark `path`'s file as in use by a reader of ours while the block runs.

    A writer of the same file in this process then keeps its descriptor open until the block
    ends, so that closing it cannot drop the reader's SQLite locks. Opens nothing itself.
    """
    try:
        key: FileKey | None = file_key(os.stat(path))
    except OSError:
        key = None  # the reader reports the missing file itself
    if key is None:
        yield
        return
    with _mutex:
        entry = _registry.setdefault(key, _Entry())
        entry.users += 1
    try:
        yield
    finally:
        with _mutex:
            entry.users -= 1
            _drop(key, entry)


def writer_active(path: Path) -> bool:
    """True if a writer (any process) holds `path`'s lock. For readers of a file with several
    hard links, whose writer's WAL may sit next to another name.

    Uses a descriptor kept in the registry, so that closing it cannot drop the SQLite locks
    of anything of ours in this process; a shared lock is taken only for an instant.
    """
    with _mutex:
        try:
            key = file_key(os.stat(path))
        except OSError:
            return False
        entry = _registry.get(key)
        if entry is not None and entry.writer is not None:
            return True
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return False
        entry = _registry.setdefault(key, _Entry())
        entry.fds.append(fd)
        try:
            if sys.platform == "win32":  # pragma: no cover - no flock; no probe either
                return False
            import fcntl

            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            _drop(key, entry)


def _open_file(path: Path, mode: int) -> tuple[int, bool]:
    """A read-write descriptor of `path`, creating it with `mode` if missing.

    A missing file is created with ``O_EXCL``, which never follows a symlink: a dangling
    symlink at `path` is refused instead of creating its target.
    """
    flags = os.O_RDWR | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        return os.open(path, flags | os.O_CREAT | os.O_EXCL, mode), True
    except FileExistsError:
        pass
    except OSError as exc:
        raise _open_error(path, exc) from None
    try:
        return os.open(path, flags), False
    except OSError as exc:
        raise _open_error(path, exc) from None


def _open_error(path: Path, exc: OSError) -> StoreError:
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return StoreError(
            f"cannot open {str(path)!r} for writing ({exc.strerror}); to read it, open it "
            "read-only: SQLiteLog(path, readonly=True) or `timecontrol log FILE`"
        )
    if exc.errno == errno.ENOENT and os.path.islink(path):
        return StoreError(
            f"{str(path)!r} is a symlink to a missing file; timecontrol does not create files "
            "through a symlink: give the target's path, or a path that does not exist yet"
        )
    return StoreError(f"cannot open SQLite file {str(path)!r}: {exc.strerror or exc}")


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock on `fd` without waiting; False if another holder has it."""
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import msvcrt

        os.lseek(fd, _WIN_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as exc:
            # EACCES / EDEADLK: held by another; anything else means no locking here (e.g.
            # a network share): carry on without it rather than refuse to run at all.
            return exc.errno not in (errno.EACCES, errno.EDEADLK)
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as exc:
        # A file system without flock: carry on unlocked rather than refuse to run at all.
        return exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
    return True


def _unlock(fd: int) -> None:
    try:
        if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
            import msvcrt

            os.lseek(fd, _WIN_LOCK_OFFSET, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError:
        pass  # the descriptor is closed soon after, which releases the lock anyway


class WriterLock:
    """The exclusive writer lock of one store file, and the file's descriptor.

    `acquire` opens (or creates, with `mode`) the file and locks it; `StoreLockedError` if
    another writer holds it, in this process or any other. `fd` stays valid until `release`;
    read the file's header through it (`os.pread`), never through a new descriptor.
    """

    def __init__(self, path: Path, key: FileKey, fd: int, created: bool) -> None:
        self.path = path
        self.key = key
        self.fd = fd
        #: True if `acquire` created the file (empty, with the requested mode).
        self.created = created
        self._held = True

    @classmethod
    def acquire(cls, path: Path, *, mode: int = 0o600) -> WriterLock:
        """Open or create `path` and take its writer lock (see the class docstring)."""
        with _mutex:
            try:
                before: FileKey | None = file_key(os.stat(path))
            except OSError:
                before = None
            if before is not None:
                cls._refuse_if_held(path, before)
            fd, created = _open_file(path, mode)
            try:
                st = os.fstat(fd)
            except OSError as exc:
                os.close(fd)
                raise StoreError(f"cannot open SQLite file {str(path)!r}: {exc}") from None
            key = file_key(st)
            entry = _registry.setdefault(key, _Entry())
            entry.fds.append(fd)  # closed with the entry's others, once nothing uses the file
            if not stat.S_ISREG(st.st_mode):
                _drop(key, entry)
                raise StoreError(
                    f"{str(path)!r} is not a regular file; give the path of a SQLite file"
                )
            if entry.writer is not None or not _try_lock(fd):
                _drop(key, entry)
                raise locked_error(path, entry.writer is not None)
            lock = cls(path, key, fd, created)
            entry.writer = lock
            return lock

    @staticmethod
    def _refuse_if_held(path: Path, key: FileKey) -> None:
        entry = _registry.get(key)
        if entry is not None and entry.writer is not None:
            raise locked_error(path, True)

    @property
    def held(self) -> bool:
        """True until `release`."""
        return self._held

    def release(self) -> None:
        """Drop the lock (at once) and the descriptor (once no reader of ours uses the file).

        Call it only after this writer's SQLite connections are closed. Idempotent.
        """
        with _mutex:
            if not self._held:
                return
            self._held = False
            _unlock(self.fd)
            entry = _registry.get(self.key)
            if entry is not None and entry.writer is self:
                entry.writer = None
                _drop(self.key, entry)

    def __repr__(self) -> str:
        return f"<WriterLock {str(self.path)!r} held={self._held}>"


def locked_error(path: Path, here: bool) -> StoreLockedError:
    """The error for a second writer of `path` (`here`: the first one is in this process)."""
    who = f"this process (pid {os.getpid()})" if here else "another process"
    return StoreLockedError(
        f"{str(path)!r} is already open for writing by {who}; a store file has one writer "
        "(a second one would reuse sequence numbers and run jobs twice). Stop the other "
        "engine, or read the file without writing: Engine(store=path, readonly=True), "
        "SQLiteLog(path, readonly=True), read_events(path) or `timecontrol log FILE`"
    )


def _after_fork_in_child() -> None:
    # The child shares the parent's lock through inherited descriptors; it must not keep a
    # (possibly crashed) parent's file locked. It holds no SQLite locks (fcntl locks are not
    # inherited), so closing is safe here. The registry's mutex may have been held by another
    # thread of the parent at the fork: the child has only this thread, so nobody holds it
    # any more; it is replaced by releasing it if it was taken.
    if _mutex.locked():
        with suppress(RuntimeError):
            _mutex.release()
    for entry in _registry.values():
        for fd in entry.fds:
            with suppress(OSError):
                os.close(fd)
        entry.fds.clear()
        if entry.writer is not None:
            entry.writer._held = False  # its descriptor is closed here: never unlock it
    _registry.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
