"""A handle on the running event loop that other threads and signal handlers may use.

Pause requests arrive from places that are not coroutines of the loop: a Ctrl+C signal handler
(which interrupts whatever bytecode the main thread was running, possibly inside the engine),
an agent thread, a device callback in a driver's thread. None of them may touch the engine's
state directly, and none may block. They hand a function to the loop instead; asyncio's
`call_soon_threadsafe` and trio's `TrioToken.run_sync_soon` are both safe from threads and
signal handlers and never wait.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["LoopHandle"]


class LoopHandle:
    """Schedules calls onto the loop that created it; safe from any thread or signal handler."""

    __slots__ = ("_call", "thread")

    def __init__(self) -> None:
        #: ident of the thread running the loop.
        self.thread = threading.get_ident()
        self._call: Callable[..., Any]
        try:
            self._call = asyncio.get_running_loop().call_soon_threadsafe
        except RuntimeError:
            # Not asyncio: anyio's only other backend is trio.
            import trio

            self._call = trio.lowlevel.current_trio_token().run_sync_soon

    def in_loop_thread(self) -> bool:
        """True when called from the loop's own thread."""
        return threading.get_ident() == self.thread

    def call_soon(self, fn: Callable[..., object], *args: Any) -> bool:
        """Run ``fn(*args)`` on the loop soon; never blocks.

        Returns False, and drops the call, if the loop has closed (asyncio) or finished (trio):
        a closed loop cannot run anything any more. A caller with something that must happen
        anyway (a panic) then does it itself, since no loop is left to race with.
        """
        try:
            self._call(fn, *args)
        except RuntimeError:  # asyncio: "Event loop is closed"; trio: RunFinishedError
            return False
        return True

    @classmethod
    def current(cls) -> LoopHandle | None:
        """A handle on the calling thread's running loop, or None outside any loop."""
        try:
            return cls()
        except (RuntimeError, ImportError):  # no asyncio loop, and no trio run (or no trio)
            return None
