"""Failed statuses the plan never waits for: bluesky 1.16 fails the plan with them.

bluesky's RunEngine adds a callback to every status that ``set``, ``trigger``, ``kickoff``,
``complete``, ``prepare``, ``execute`` and grouped ``stage``/``unstage`` return. A status that
finishes unsuccessfully while the plan runs has its ``FailedStatus`` thrown into the plan at
its next message, whether or not the plan ever waits for it (``_status_object_completed``);
a ``wait`` that raises the same failure does not raise it twice. A lab relies on it: a motion
that fails stops the run even if the plan moved on without waiting.

`watch_failure` is the callback side, for every kind of status the run engine accepts; the
run engine decides what a failure means (`CommandHandlers._status_failed`): only while the plan that
started the status runs (not while it pauses, is suspended, ends, or after it ended).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._compat import status_failed
from ._devices import SimStatus
from ._loop import LoopHandle

__all__ = ["watch_failure"]

#: ``report(status, error)``: what `watch_failure` calls, on the loop, for a failed status.
Report = Callable[[Any, BaseException], None]


def watch_failure(status: Any, handle: LoopHandle | None, report: Report) -> None:
    """Call ``report(status, error)`` on the loop if `status` finishes unsuccessfully.

    `error` is a `StatusFailed` (bluesky's ``FailedStatus`` too, when bluesky is loaded) with
    the device's exception as its cause. Statuses with ``add_callback`` (ophyd, ophyd-async,
    ours) and asyncio futures are watched; anything else (None, a plain value) is not.
    Callbacks from other threads are handed to the loop through `handle`.
    """
    if isinstance(status, SimStatus):
        status._when_finished(lambda st: _check(st, handle, report))
        return
    add_callback = getattr(status, "add_callback", None)
    if callable(add_callback):
        try:
            add_callback(lambda st: _check(status, handle, report))
        except Exception:  # a status that refuses callbacks is only waited for
            return
        return
    add_done_callback = getattr(status, "add_done_callback", None)
    if callable(add_done_callback) and callable(getattr(status, "cancelled", None)):
        add_done_callback(lambda fut: _check_future(fut, handle, report))


def _check(status: Any, handle: LoopHandle | None, report: Report) -> None:
    if getattr(status, "success", True) is not False:
        return
    error: BaseException | None = None
    exception = getattr(status, "exception", None)
    if callable(exception):
        try:
            error = exception()
        except Exception as exc:  # ophyd raises some errors instead of returning them
            error = exc
    _report(status, error, handle, report)


def _check_future(future: Any, handle: LoopHandle | None, report: Report) -> None:
    if future.cancelled():
        return  # cancelled by its owner (a pause, the end of the plan): not a device failure
    error = future.exception()
    if error is not None:
        _report(future, error, handle, report)


def _report(
    status: Any, error: BaseException | None, handle: LoopHandle | None, report: Report
) -> None:
    failure = status_failed(f"{status!r} finished unsuccessfully: {error!r}", error)
    if handle is None or handle.in_loop_thread():
        report(status, failure)
    else:
        handle.call_soon(report, status, failure)
