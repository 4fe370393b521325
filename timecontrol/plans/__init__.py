"""Plans and the run engine: bluesky-style experiments, asyncio/trio-native.

A *plan* is a generator of `Msg` objects (``set``, ``read``, ``checkpoint``, ``sleep``, ...);
`RunEngine` executes it on an `Engine`'s loop with checkpoints and replay, deferred and hard
pauses, suspenders, stop/abort/halt with clean-up on every exit path, and panic, recording
every message, state change and run document in the engine's Log::

    engine = timecontrol.Engine()
    run_engine = RunEngine(engine)
    async with engine:
        result = await run_engine.run(count([det], num=10, delay=1.0))
        if result.paused:
            result = await run_engine.resume()

``RunEngine(engine)`` is the engine's own run engine (``engine.run_engine``). The run engine
itself depends only on a narrow `PlanHost` (a Log, a Clock and the dispatch gate), never on the
`Engine` facade. See ``docs/plans.md`` for the concepts, the state diagram and a worked example.
"""

from __future__ import annotations

from typing import Any

from ._compat import public_no_replay_allowed, public_run_engine_interrupted
from ._devices import (
    Movable,
    Pausable,
    Readable,
    SimDetector,
    SimMotor,
    SimSignal,
    SimStatus,
    Stageable,
    Stoppable,
    Triggerable,
    await_status,
)
from ._errors import (
    IllegalMessageSequence,
    PauseHeldError,
    PlanArgumentError,
    PlanClosedError,
    RequestAbort,
    RequestStop,
    StatusFailed,
    UnknownCommandError,
)
from ._host import PlanHost
from ._msg import Msg, Plan
from ._plans import count, list_scan, scan
from ._runengine import (
    DocumentCallback,
    ExitStatus,
    LoggedMsg,
    RunEngine,
    RunResult,
    logged_messages,
)
from ._state import TRANSITIONS, RunState
from ._stubs import (
    abs_set,
    call,
    checkpoint,
    clear_checkpoint,
    close_run,
    create,
    drop,
    ensure_generator,
    finalize_wrapper,
    install_suspender,
    mv,
    null,
    open_run,
    pause,
    read,
    remove_suspender,
    rewindable,
    run_wrapper,
    save,
    sleep,
    stage,
    stage_wrapper,
    subscribe,
    trigger,
    trigger_and_read,
    unstage,
    unsubscribe,
    wait,
)
from ._suspenders import (
    SuspendBoolHigh,
    SuspendBoolLow,
    SuspendCeil,
    Suspender,
    SuspendFloor,
    SuspendPredicate,
    SuspendWhen,
)
from ._sync import RunEngineResult, SyncRunEngine

__all__ = [
    "TRANSITIONS",
    "DocumentCallback",
    "ExitStatus",
    "IllegalMessageSequence",
    "LoggedMsg",
    "Movable",
    "Msg",
    "NoReplayAllowed",
    "Pausable",
    "PauseHeldError",
    "Plan",
    "PlanArgumentError",
    "PlanClosedError",
    "PlanHost",
    "Readable",
    "RequestAbort",
    "RequestStop",
    "RunEngine",
    "RunEngineInterrupted",
    "RunEngineResult",
    "RunResult",
    "RunState",
    "SimDetector",
    "SimMotor",
    "SimSignal",
    "SimStatus",
    "Stageable",
    "StatusFailed",
    "Stoppable",
    "SuspendBoolHigh",
    "SuspendBoolLow",
    "SuspendCeil",
    "SuspendFloor",
    "SuspendPredicate",
    "SuspendWhen",
    "Suspender",
    "SyncRunEngine",
    "Triggerable",
    "UnknownCommandError",
    "abs_set",
    "await_status",
    "call",
    "checkpoint",
    "clear_checkpoint",
    "close_run",
    "count",
    "create",
    "drop",
    "ensure_generator",
    "finalize_wrapper",
    "install_suspender",
    "list_scan",
    "logged_messages",
    "mv",
    "null",
    "open_run",
    "pause",
    "read",
    "remove_suspender",
    "rewindable",
    "run_wrapper",
    "save",
    "scan",
    "sleep",
    "stage",
    "stage_wrapper",
    "subscribe",
    "trigger",
    "trigger_and_read",
    "unstage",
    "unsubscribe",
    "wait",
]


def __getattr__(name: str) -> Any:
    """bluesky's own exception classes where bluesky is installed, ours where it is not.

    Resolved on first use, because importing bluesky takes about 0.3 s:
    ``NoReplayAllowed`` (raised by a device's ``pause()``: nothing is replayed on resume) and
    ``RunEngineInterrupted`` (raised by `SyncRunEngine` when a plan pauses).
    """
    if name == "NoReplayAllowed":
        return public_no_replay_allowed()
    if name == "RunEngineInterrupted":
        return public_run_engine_interrupted()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
