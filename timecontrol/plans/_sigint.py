"""Ctrl+C while a plan runs: one press is a deferred pause, a second within 10 s a hard one.

The signal handler runs between two bytecodes of whatever the main thread was doing, possibly
inside the run engine itself, so it only hands the press to the loop (`LoopHandle`); the run
engine counts it there with `SigintCounter` and requests the pause. The previous handler is
put back when the drive that installed ours returns.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Final

from ._loop import LoopHandle

__all__ = ["SIGINT_WINDOW", "SigintCounter", "install_sigint"]

#: Seconds within which a second Ctrl+C hardens the pause.
SIGINT_WINDOW: Final = 10.0


class SigintCounter:
    """Counts Ctrl+C presses; presses more than `SIGINT_WINDOW` apart start a new count."""

    __slots__ = ("count", "last")

    def __init__(self) -> None:
        self.count = 0
        self.last: float | None = None

    def reset(self) -> None:
        """Start counting afresh (a new run or a resume)."""
        self.count = 0

    def press(self, now: float) -> bool:
        """Count a press at monotonic time `now`; True when it asks for a hard pause."""
        last, self.last = self.last, now
        if last is not None and now - last <= SIGINT_WINDOW and self.count >= 1:
            self.count += 1
        else:
            self.count = 1
        return self.count >= 2


def install_sigint(handle: LoopHandle, on_press: Callable[[], None]) -> Callable[[], None]:
    """Make SIGINT call `on_press` on `handle`'s loop; return the function that undoes it.

    Does nothing (and returns a no-op) outside the main thread, where Python cannot install
    signal handlers.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        # Only hand the work to the loop: see the module docstring.
        handle.call_soon(on_press)

    try:
        signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main interpreter's main thread after all
        return lambda: None

    def restore() -> None:
        # Only if ours is still installed: someone may have replaced it meanwhile.
        if signal.getsignal(signal.SIGINT) is on_sigint:
            signal.signal(
                signal.SIGINT,
                previous if previous is not None else signal.default_int_handler,
            )

    return restore
