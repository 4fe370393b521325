"""bluesky 1.16's ``wait`` and ``wait_for``: groups, watch groups, timeouts, the waiting hook.

``Msg("wait", group=g, timeout=t, error_on_timeout=True, watch=(w1, ...))``:

* waits for every status of group `g` to finish, and stops at the first one that fails
  (`StatusFailed`, also bluesky's ``FailedStatus``) instead of waiting for the others;
* while waiting, watches the statuses of the groups in `watch`: the first of those to fail
  stops the wait with its error (a watched group is not consumed: a later wait may wait for it);
* after `timeout` seconds raises `WaitForTimeoutError` (a `TimeoutError`, also bluesky's class
  of that name), or with ``error_on_timeout=False`` sends False back; either way the statuses
  stay in the group, so a later ``wait`` finds them again;
* ``waiting_hook(statuses)`` is called with the set of statuses before waiting and with None
  after it (bluesky's progress bars); with ``error_on_timeout=False`` only on the first of
  repeated waits for the same group, as bluesky does.

Waiting never cancels a device's status: a status that can tell its completion by callback
(ophyd's, ophyd-async's) is waited for that way, so a timeout leaves the move running.

``Msg("wait_for", None, [factory, ...], timeout=..., return_when=...)`` calls each factory and
waits for the awaitables; on asyncio it returns the asyncio tasks (as bluesky does), on trio
the run engine's own task statuses (``done``, ``value``).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import sniffio

from ._commands import SUSPENSION_WAIT, _TaskStatus
from ._compat import wait_timeout_error
from ._devices import SimStatus, _callback_done, await_status
from ._more_commands import MoreCommands
from ._records import CommandHandler

__all__ = ["Waiting"]


async def _settle(status: Any) -> Any:
    """Wait until `status` is finished without cancelling it, then its outcome."""
    if inspect.iscoroutine(status):
        return await status
    add_callback = getattr(status, "add_callback", None)
    ours = isinstance(status, SimStatus | _TaskStatus)
    if callable(add_callback) and not ours and not getattr(status, "done", False):
        await _callback_done(status, add_callback)
    return await await_status(status)


class Waiting(MoreCommands):
    """``wait`` and ``wait_for`` as bluesky 1.16 has them (mixed into `RunEngine`)."""

    def _waiting_handlers(self) -> dict[str, CommandHandler]:
        return {"wait": self._cmd_wait, "wait_for": self._cmd_wait_for}

    async def _cmd_wait(self, msg: Any) -> bool:
        kwargs = msg.kwargs
        group = msg.args[0] if msg.args else kwargs.get("group")
        timeout = kwargs.get("timeout")
        error_on_timeout = kwargs.get("error_on_timeout", True) and not kwargs.get("move_on")
        statuses = self._groups.pop(group, [])
        if not statuses:
            return True
        watched = [s for w in kwargs.get("watch", ()) or () for s in self._groups.get(w, [])]
        repeated = group in self._waited_groups
        if error_on_timeout or not repeated:
            self._waited_groups.add(group)
            self._call_waiting_hook(statuses)
        finished = False
        try:
            finished = await self._wait_statuses(statuses, watched, timeout)
        except Exception:
            for status in statuses:  # this wait raised their failure: not thrown again
                self._failure_raised(status)
            raise
        finally:
            if not finished:
                self._groups.setdefault(group, [])[:0] = statuses  # a later wait finds them
        if finished or error_on_timeout:
            self._waited_groups.discard(group)
            self._call_waiting_hook(None)
        if not finished and error_on_timeout:
            raise wait_timeout_error(f"'wait' for group {group!r} timed out after {timeout} s")
        return finished

    def _call_waiting_hook(self, statuses: list[Any] | None) -> None:
        hook = self.waiting_hook
        if hook is None:
            return
        if statuses is None:
            hook(None)
            return
        try:
            hook(set(statuses))
        except TypeError:  # statuses that cannot be hashed: a list instead of a set
            hook(list(statuses))

    async def _wait_statuses(self, statuses: list[Any], watched: list[Any], seconds: Any) -> bool:
        """True when every status finished; False on the timeout; raises the first failure
        among `statuses` and `watched` (those are only watched, never waited for)."""
        failures: list[BaseException] = []
        remaining = [len(statuses)]
        with anyio.move_on_after(seconds) as scope:
            async with anyio.create_task_group() as tg:

                async def one(status: Any, counts: bool) -> None:
                    try:
                        await _settle(status)
                    except Exception as exc:
                        self._failure_raised(status)
                        failures.append(exc)
                        tg.cancel_scope.cancel()
                        return
                    if counts:
                        remaining[0] -= 1
                        if remaining[0] == 0:
                            tg.cancel_scope.cancel()  # done: stop watching

                for status in statuses:
                    tg.start_soon(one, status, True)
                for status in watched:
                    tg.start_soon(one, status, False)
        if failures:
            raise failures[0]
        return not scope.cancelled_caught or remaining[0] == 0

    async def _cmd_wait_for(self, msg: Any) -> Any:
        (factories,) = msg.args
        if factories is SUSPENSION_WAIT:
            return await self._cmd_wait_for_suspenders(msg)
        timeout = msg.kwargs.get("timeout")
        return_when = msg.kwargs.get("return_when", asyncio.ALL_COMPLETED)
        if sniffio.current_async_library() == "asyncio":
            futures: list[Any] = [asyncio.ensure_future(f()) for f in factories]
        else:
            futures = [self._adopt_awaitable(f()) for f in factories]
        try:
            done = await _wait_until(futures, timeout, return_when)
        except anyio.get_cancelled_exc_class():
            for future in futures:  # ours: nobody else can cancel them
                if hasattr(future, "cancel"):
                    future.cancel()
            raise
        if not done:
            raise wait_timeout_error("Plan failed to complete in the specified time")
        return futures

    def _adopt_awaitable(self, awaitable: Awaitable[Any]) -> _TaskStatus:
        async def run() -> Any:
            return await awaitable

        task_status = _TaskStatus()
        assert self._tg is not None
        self._tg.start_soon(task_status.run, run())
        return task_status


def _finished(future: Any) -> tuple[bool, bool]:
    """(done, failed) of an asyncio future or a `_TaskStatus`."""
    if isinstance(future, _TaskStatus):
        return future.done, future.done and future._exc is not None
    if not future.done():
        return False, False
    return True, not future.cancelled() and future.exception() is not None


async def _wait_until(futures: list[Any], seconds: Any, return_when: str) -> bool:
    """Poll-free wait for `futures` as ``asyncio.wait(return_when=...)``; False on timeout."""

    def enough() -> bool:
        states = [_finished(f) for f in futures]
        if return_when == asyncio.FIRST_COMPLETED:
            return any(d for d, _ in states) or not states
        if return_when == asyncio.FIRST_EXCEPTION and any(f for _, f in states):
            return True
        return all(d for d, _ in states)

    with anyio.move_on_after(seconds):
        while not enough():
            # until the next one finishes, then look again
            async with anyio.create_task_group() as tg:
                for future in futures:
                    if not _finished(future)[0]:
                        tg.start_soon(_one_done, future, tg.cancel_scope.cancel)
        return True
    return enough()


async def _one_done(future: Any, stop: Callable[[], None]) -> None:
    if isinstance(future, _TaskStatus):
        await future._done.wait()
    else:
        await _asyncio_done(future)
    stop()


async def _asyncio_done(future: Any) -> None:
    # Waits without cancelling the future when this wait is cancelled (asyncio.wait's rule).
    waiter = asyncio.get_running_loop().create_future()

    def wake(_: Any) -> None:
        if not waiter.done():
            waiter.set_result(None)

    future.add_done_callback(wake)
    try:
        await waiter
    finally:
        future.remove_done_callback(wake)
