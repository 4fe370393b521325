"""The per-instrument lock: one command in flight, first come first served, re-entrant.

One lock per instrument is what keeps a reply paired with its question: a second task's
command never goes on the wire while the first one's reply is outstanding. It is re-entrant
for the task holding it, so that `Instrument.transaction()` can group commands that each take
the lock again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import anyio

__all__ = ["TaskLock"]


def _trio_task() -> object:
    import trio

    return trio.lowlevel.current_task()


def _current_task_getter() -> Callable[[], object]:
    """The running backend's native "current task" function.

    ``anyio.get_current_task()`` builds a TaskInfo on every call (about 2 µs); the native
    call costs a fifth of that, and this is on the path of every command.
    """
    try:
        asyncio.current_task()
    except RuntimeError:  # no asyncio loop running: trio
        return _trio_task
    return asyncio.current_task


class TaskLock:
    """An anyio lock that the task holding it may enter again (for `transaction()`).

    `enter_nowait()` is the fast path taken by every command: a free lock is taken without an
    await (anyio's ``acquire()`` runs a cancellation checkpoint first, which walks the task's
    cancel scopes; the command's own I/O is a checkpoint anyway).
    """

    __slots__ = ("_current", "_depth", "_lock", "_owner")

    def __init__(self) -> None:
        # Both found at first use: an instrument may be created outside any event loop, and a
        # lock made there would go through anyio's adapter on every call.
        self._lock: anyio.Lock | None = None
        self._current: Callable[[], object] | None = None
        self._owner: object = None
        self._depth = 0

    def _me(self) -> object:
        current = self._current
        if current is None:
            current = self._current = _current_task_getter()
            self._lock = anyio.Lock(fast_acquire=True)
        return current()

    def enter_nowait(self) -> bool:
        """Enter if that needs no waiting (free, or held by this task); True if entered."""
        me = self._me()
        if self._owner is me:
            self._depth += 1
            return True
        assert self._lock is not None
        try:
            self._lock.acquire_nowait()
        except anyio.WouldBlock:
            return False
        self._owner = me
        self._depth = 1
        return True

    async def enter(self) -> None:
        """Enter, waiting (first come, first served) while another task holds the lock."""
        if self.enter_nowait():
            return
        assert self._lock is not None
        await self._lock.acquire()
        self._owner = self._me()
        self._depth = 1

    def exit(self) -> None:
        """Leave once (the lock is released when the holder has left every entry)."""
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            assert self._lock is not None
            self._lock.release()

    async def __aenter__(self) -> None:
        await self.enter()

    async def __aexit__(self, *exc_info: object) -> None:
        self.exit()
