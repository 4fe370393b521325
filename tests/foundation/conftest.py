"""Shared fixtures of the foundation suite."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator

import pytest


class RealTimeLimitExceeded(Exception):
    """A test ran far longer in real time than it can when it works: it hung."""


@pytest.fixture
def hang_guard() -> Iterator[None]:
    """Fail (instead of hanging the suite) a test that would spin forever.

    A safety net for regression tests of livelocks, not a measurement: the limit is far above
    what the test needs when the code works.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise RealTimeLimitExceeded("the test hung: no progress within 20 s of real time")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, 20.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
