"""Suspensions requested from outside: bluesky's ``RE.request_suspend`` and its suspenders.

``run_engine.request_suspend(fut, pre_plan=..., post_plan=..., justification=...)`` suspends
the running plan until `fut` is done: an awaitable, or a callable returning one (bluesky's
suspenders pass an ``asyncio.Event``'s ``wait``); None counts as done at once (the suspension
may then not land at all). It is the timecontrol suspension
(pre-plan, wait, post-plan, replay from the last checkpoint) with `fut` as its condition, and
may be called from any thread. Asked while a plan is paused, the suspension happens first
thing on ``resume``. With no checkpoint to return to, the plan is aborted, as for any
suspension.

`SyncRunEngine` uses it to install bluesky's own suspender classes
(``bluesky.suspenders.SuspendBoolHigh`` and the rest): they watch their signal and call
``RE.request_suspend`` when it trips.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import anyio

from .._events import reserve_kind
from ._monitors import Monitors
from ._state import RunState
from ._suspenders import PlanLike, Suspender

__all__ = ["AwaitSuspender", "SuspendRequests"]

_S = RunState
_ACCEPTING = frozenset({_S.RUNNING, _S.SUSPENDING, _S.PAUSING, _S.PAUSED})

reserve_kind(
    "run_engine.suspend_requested",
    "request_suspend() was called; payload: justification, and refused (the state) when no "
    "plan was there to suspend",
)


class AwaitSuspender(Suspender):
    """Tripped until an awaitable is done (what `request_suspend` installs for one plan)."""

    def __init__(
        self,
        fut: Any,
        *,
        pre_plan: PlanLike | None = None,
        post_plan: PlanLike | None = None,
        justification: str | None = None,
    ) -> None:
        super().__init__(pre_plan=pre_plan, post_plan=post_plan)
        self._fut = fut
        self._tripped = True
        self._reason = justification or "suspension requested"

    async def _serve(self) -> None:
        """Wait for the awaitable, then clear (started by the drive's task group)."""
        if not self._tripped:
            return
        fut: Any = self._fut
        awaitable = fut() if callable(fut) and not inspect.isawaitable(fut) else fut
        # Cancelled with its drive (a pause, the end of the plan), it stays tripped and the
        # next drive waits again; only an awaitable that finished (or failed) clears it.
        try:
            if inspect.isawaitable(awaitable):
                await awaitable
        except Exception:  # a failed wait frees the plan rather than holding it forever
            pass
        self._update(False)

    def __repr__(self) -> str:
        return f"AwaitSuspender({self._reason!r})"


class SuspendRequests(Monitors):
    """``request_suspend`` (mixed into `RunEngine`)."""

    #: Set when a suspension is requested, to wake the drive's `_external_server`.
    _external_wakeup: anyio.Event | None = None

    def request_suspend(
        self,
        fut: Any,
        *,
        pre_plan: PlanLike | None = None,
        post_plan: PlanLike | None = None,
        justification: str | None = None,
    ) -> None:
        """Suspend the plan until `fut` is done (see the module docstring); from any thread.

        Ignored (and recorded in the Log) when no plan is running, suspending or paused.
        """
        suspender = AwaitSuspender(
            fut, pre_plan=pre_plan, post_plan=post_plan, justification=justification
        )
        if self._handed_over(self._add_external_suspension, suspender):
            return
        self._add_external_suspension(suspender)

    def _add_external_suspension(self, suspender: AwaitSuspender) -> None:
        payload: dict[str, Any] = {"justification": suspender.justification}
        if self._state not in _ACCEPTING:
            self._record(
                "run_engine.suspend_requested",
                self._plan_uid,
                {**payload, "refused": self._state.value},
            )
            return
        self._record("run_engine.suspend_requested", self._plan_uid, payload)
        self._plan_suspenders.append(suspender)
        suspender.install(self)
        wakeup = self._external_wakeup
        if wakeup is not None:
            wakeup.set()  # the drive's server starts its wait (this may be a plain callback)
        self._suspender_changed(suspender)

    def _serve_external(self, start_soon: Callable[..., Any]) -> None:
        """Start the server of requested suspensions (at the start of every drive)."""
        start_soon(self._external_server, start_soon)

    async def _external_server(self, start_soon: Callable[..., Any]) -> None:
        # A task of the drive starts each suspension's wait: `request_suspend` may arrive in
        # a plain loop callback, where no task can be started.
        started: set[int] = set()
        try:
            while True:
                for suspender in list(self._plan_suspenders):
                    if isinstance(suspender, AwaitSuspender) and id(suspender) not in started:
                        started.add(id(suspender))
                        start_soon(suspender._serve)
                self._external_wakeup = anyio.Event()
                await self._external_wakeup.wait()
        finally:
            self._external_wakeup = None
