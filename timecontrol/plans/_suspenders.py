"""Suspenders: conditions that suspend a running plan and resume it by themselves.

A suspender watches a signal (a beam current, a shutter, an interlock) or polls a predicate.
When it *trips* during a run, the engine interrupts the current message at once, stops what it
moved, runs the suspender's optional pre-plan, waits until every installed suspender has cleared
(plus the suspender's `sleep`), runs its post-plan and replays the plan from the last
checkpoint. If one is already tripped when a run starts or resumes, the run waits first.

Install one for every run with ``run_engine.install_suspender(s)``, or for one plan with the
``install_suspender`` message (removed again when that plan ends).

Signals follow ophyd's convention: ``get()`` for the value and, if available,
``subscribe(callback)`` / ``clear_sub(callback)`` with ``callback(value=..., **kwargs)``; a
signal without ``subscribe`` is polled every `poll` seconds while a plan runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeAlias

from ._msg import Msg

if TYPE_CHECKING:
    from ._core import RunCore

__all__ = [
    "PlanLike",
    "SuspendBoolHigh",
    "SuspendBoolLow",
    "SuspendCeil",
    "SuspendFloor",
    "SuspendPredicate",
    "SuspendWhen",
    "Suspender",
]

#: A pre- or post-plan: a list of messages, or a callable returning a fresh plan each time.
PlanLike: TypeAlias = Iterable[Msg] | Callable[[], Iterable[Msg]]


class Suspender:
    """Base class: suspends runs while `tripped`.

    Args:
        sleep: seconds to wait after the condition clears before resuming (so that a beam that
            has just come back can settle).
        pre_plan: messages to run when suspending (e.g. close a shutter).
        post_plan: messages to run before resuming (e.g. open it again).
        tripped_message: added to the justification recorded in the Log.
        poll: seconds between evaluations while a plan runs, for conditions nobody pushes
            (None: only evaluated when told, e.g. by a signal's callback).
    """

    def __init__(
        self,
        *,
        sleep: float = 0.0,
        pre_plan: PlanLike | None = None,
        post_plan: PlanLike | None = None,
        tripped_message: str = "",
        poll: float | None = None,
    ) -> None:
        if not (isinstance(sleep, int | float) and math.isfinite(sleep) and sleep >= 0):
            raise ValueError(f"sleep must be a finite number of seconds >= 0, got {sleep!r}")
        if poll is not None and not (isinstance(poll, int | float) and poll > 0):
            raise ValueError(f"poll must be a positive number of seconds or None, got {poll!r}")
        self.sleep = float(sleep)
        self.pre_plan = pre_plan
        self.post_plan = post_plan
        self.tripped_message = tripped_message
        self.poll = poll
        self._tripped = False
        self._reason = ""
        self._engines: list[RunCore] = []

    @property
    def tripped(self) -> bool:
        """True while the condition asks runs to stay suspended."""
        return self._tripped

    @property
    def justification(self) -> str:
        """Why it tripped (recorded in the Log with the suspension)."""
        text = self._reason or f"{self!r} tripped"
        return f"{text}: {self.tripped_message}" if self.tripped_message else text

    def check(self) -> bool:
        """Evaluate the condition now; return `tripped`. Subclasses that can, override it."""
        return self._tripped

    def _update(self, tripped: bool, reason: str = "") -> None:
        if reason:
            self._reason = reason
        if tripped == self._tripped:
            return
        self._tripped = tripped
        for engine in list(self._engines):
            engine._suspender_changed(self)

    def install(self, run_engine: RunCore) -> None:
        """Start watching for `run_engine` (called by `RunEngine.install_suspender`)."""
        if run_engine not in self._engines:
            self._engines.append(run_engine)
        if len(self._engines) == 1:
            self._attach()
        self.check()

    def remove(self, run_engine: RunCore | None = None) -> None:
        """Stop watching for `run_engine` (every engine if None)."""
        if run_engine is None:
            self._engines.clear()
        elif run_engine in self._engines:
            self._engines.remove(run_engine)
        if not self._engines:
            self._detach()

    def _attach(self) -> None:
        """Hook: subscribe to whatever pushes changes."""

    def _detach(self) -> None:
        """Hook: undo `_attach`."""

    def _plan(self, which: PlanLike | None) -> Iterable[Msg] | None:
        if which is None:
            return None
        return which() if callable(which) else which

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SuspendWhen(Suspender):
    """Suspend while ``suspend_if(value)`` holds for a signal's value.

    Once tripped it clears when ``resume_if(value)`` holds (default: when `suspend_if` no longer
    does), which gives hysteresis when the two differ.
    """

    def __init__(
        self,
        signal: Any,
        suspend_if: Callable[[Any], bool],
        resume_if: Callable[[Any], bool] | None = None,
        *,
        sleep: float = 0.0,
        pre_plan: PlanLike | None = None,
        post_plan: PlanLike | None = None,
        tripped_message: str = "",
        poll: float = 0.5,
    ) -> None:
        if not hasattr(signal, "get"):
            raise TypeError(f"signal must have a get() method (ophyd-style), got {signal!r}")
        pushes = hasattr(signal, "subscribe") and hasattr(signal, "clear_sub")
        super().__init__(
            sleep=sleep,
            pre_plan=pre_plan,
            post_plan=post_plan,
            tripped_message=tripped_message,
            poll=None if pushes else poll,
        )
        self.signal = signal
        self._suspend_if = suspend_if
        self._resume_if = resume_if
        self._pushes = pushes
        self._cid: Any = None

    def _evaluate(self, value: Any) -> None:
        if self._tripped:
            clear = (
                self._resume_if(value)
                if self._resume_if is not None
                else not self._suspend_if(value)
            )
            self._update(not clear, f"{self._signal_name()} = {value!r}")
        else:
            self._update(bool(self._suspend_if(value)), f"{self._signal_name()} = {value!r}")

    def _signal_name(self) -> str:
        return str(getattr(self.signal, "name", self.signal))

    def _on_value(self, value: Any = None, **_kwargs: Any) -> None:
        self._evaluate(value)

    def check(self) -> bool:
        """Read the signal now and re-evaluate."""
        self._evaluate(self.signal.get())
        return self._tripped

    def _attach(self) -> None:
        if self._pushes:
            self._cid = self.signal.subscribe(self._on_value)

    def _detach(self) -> None:
        if self._pushes:
            self.signal.clear_sub(self._on_value)
            self._cid = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._signal_name()!r})"


class SuspendFloor(SuspendWhen):
    """Suspend while a signal is below `suspend_thresh`; resume once it is at least
    `resume_thresh` (default: `suspend_thresh`) again."""

    def __init__(
        self,
        signal: Any,
        suspend_thresh: float,
        *,
        resume_thresh: float | None = None,
        **kwargs: Any,
    ) -> None:
        resume = suspend_thresh if resume_thresh is None else resume_thresh
        if resume < suspend_thresh:
            raise ValueError(
                f"resume_thresh ({resume!r}) must be >= suspend_thresh ({suspend_thresh!r}) "
                "for a floor"
            )
        self.suspend_thresh, self.resume_thresh = suspend_thresh, resume
        super().__init__(signal, lambda v: v < suspend_thresh, lambda v: v >= resume, **kwargs)


class SuspendCeil(SuspendWhen):
    """Suspend while a signal is above `suspend_thresh`; resume once it is at most
    `resume_thresh` (default: `suspend_thresh`) again."""

    def __init__(
        self,
        signal: Any,
        suspend_thresh: float,
        *,
        resume_thresh: float | None = None,
        **kwargs: Any,
    ) -> None:
        resume = suspend_thresh if resume_thresh is None else resume_thresh
        if resume > suspend_thresh:
            raise ValueError(
                f"resume_thresh ({resume!r}) must be <= suspend_thresh ({suspend_thresh!r}) "
                "for a ceiling"
            )
        self.suspend_thresh, self.resume_thresh = suspend_thresh, resume
        super().__init__(signal, lambda v: v > suspend_thresh, lambda v: v <= resume, **kwargs)


class SuspendBoolHigh(SuspendWhen):
    """Suspend while a signal is truthy (e.g. an interlock is set)."""

    def __init__(self, signal: Any, **kwargs: Any) -> None:
        super().__init__(signal, bool, **kwargs)


class SuspendBoolLow(SuspendWhen):
    """Suspend while a signal is falsy (e.g. a shutter reports closed)."""

    def __init__(self, signal: Any, **kwargs: Any) -> None:
        super().__init__(signal, lambda v: not v, **kwargs)


class SuspendPredicate(Suspender):
    """Suspend while ``predicate()`` returns True; polled every `poll` seconds while a plan runs.

    Call `check()` to re-evaluate at once (e.g. from your own callback).
    """

    def __init__(
        self,
        predicate: Callable[[], bool],
        *,
        poll: float = 0.5,
        sleep: float = 0.0,
        pre_plan: PlanLike | None = None,
        post_plan: PlanLike | None = None,
        tripped_message: str = "",
    ) -> None:
        if not callable(predicate):
            raise TypeError(f"predicate must be callable, got {predicate!r}")
        super().__init__(
            sleep=sleep,
            pre_plan=pre_plan,
            post_plan=post_plan,
            tripped_message=tripped_message,
            poll=poll,
        )
        self.predicate = predicate

    def check(self) -> bool:
        """Call the predicate now and re-evaluate."""
        self._update(bool(self.predicate()), f"{self._name()}() is true")
        return self._tripped

    def _name(self) -> str:
        return getattr(self.predicate, "__qualname__", repr(self.predicate))

    def __repr__(self) -> str:
        return f"SuspendPredicate({self._name()})"
