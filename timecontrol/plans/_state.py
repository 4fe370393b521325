"""The run engine's state machine.

States and what they mean:

``idle``
    No plan. `run` starts one.
``running``
    Messages are being processed.
``pausing``
    A pause has landed; movable devices are being stopped and told to pause.
``paused``
    The plan waits for `resume`, `stop`, `abort` or `halt`; `run` has returned.
``suspending``
    A suspender tripped; its pre-plan runs, then the engine waits for every suspender to clear,
    runs the post-plan and replays from the last checkpoint.
``stopping`` / ``aborting``
    The plan is cleaning up after `stop` (exit status success) or after `abort`, a failure in
    the plan or a pause that had no checkpoint to return to (exit status abort / fail); then the
    engine stops what was moved, unstages what was staged and closes open runs.
``halting``
    As aborting, but the plan gets no chance to clean up; the engine still does.
``panicked``
    Emergency: no message is processed, no new run starts and the scheduler dispatches nothing
    until `all_is_well`, which returns to ``idle`` (or to ``paused`` if a run was paused).

Allowed transitions::

    idle        -> running, panicked
    running     -> idle, pausing, suspending, stopping, aborting, halting, panicked
    pausing     -> paused, stopping, aborting, halting, panicked
    paused      -> running, stopping, aborting, halting, panicked
    suspending  -> running, pausing, stopping, aborting, halting, panicked
    stopping    -> idle, aborting, halting, panicked
    aborting    -> idle, halting, panicked
    halting     -> idle, panicked
    panicked    -> idle, paused

A request that the current state does not allow raises `timecontrol.EngineStateError` and
changes nothing; every transition is recorded in the Log as a ``run_engine.state`` event.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from .._exceptions import EngineStateError

__all__ = ["TRANSITIONS", "RunState", "check_transition"]


class RunState(StrEnum):
    """A state of the run engine; compares equal to its lowercase name (``"paused"``)."""

    IDLE = "idle"
    RUNNING = "running"
    PAUSING = "pausing"
    PAUSED = "paused"
    SUSPENDING = "suspending"
    STOPPING = "stopping"
    ABORTING = "aborting"
    HALTING = "halting"
    PANICKED = "panicked"

    # bluesky's state machine answers ``RE.state.is_running`` and the like; so do we.
    @property
    def is_idle(self) -> bool:
        """True in ``idle``."""
        return self is RunState.IDLE

    @property
    def is_running(self) -> bool:
        """True in ``running``."""
        return self is RunState.RUNNING

    @property
    def is_paused(self) -> bool:
        """True in ``paused``."""
        return self is RunState.PAUSED

    @property
    def is_panicked(self) -> bool:
        """True in ``panicked``."""
        return self is RunState.PANICKED


_S = RunState

#: For each state, the states it may change to.
TRANSITIONS: Final[dict[RunState, frozenset[RunState]]] = {
    _S.IDLE: frozenset({_S.RUNNING, _S.PANICKED}),
    _S.RUNNING: frozenset(
        {
            _S.IDLE,
            _S.PAUSING,
            _S.SUSPENDING,
            _S.STOPPING,
            _S.ABORTING,
            _S.HALTING,
            _S.PANICKED,
        }
    ),
    _S.PAUSING: frozenset({_S.PAUSED, _S.STOPPING, _S.ABORTING, _S.HALTING, _S.PANICKED}),
    _S.PAUSED: frozenset({_S.RUNNING, _S.STOPPING, _S.ABORTING, _S.HALTING, _S.PANICKED}),
    _S.SUSPENDING: frozenset(
        {_S.RUNNING, _S.PAUSING, _S.STOPPING, _S.ABORTING, _S.HALTING, _S.PANICKED}
    ),
    _S.STOPPING: frozenset({_S.IDLE, _S.ABORTING, _S.HALTING, _S.PANICKED}),
    _S.ABORTING: frozenset({_S.IDLE, _S.HALTING, _S.PANICKED}),
    _S.HALTING: frozenset({_S.IDLE, _S.PANICKED}),
    _S.PANICKED: frozenset({_S.IDLE, _S.PAUSED}),
}


def check_transition(old: RunState, new: RunState) -> None:
    """Raise `EngineStateError` unless the state machine allows ``old -> new``."""
    if new not in TRANSITIONS[old]:
        allowed = ", ".join(sorted(TRANSITIONS[old]))
        raise EngineStateError(
            f"the run engine cannot go from {old.value!r} to {new.value!r}; "
            f"from {old.value!r} it may go to: {allowed}"
        )
