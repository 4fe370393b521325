"""bluesky's names where bluesky is installed, ours where it is not, without importing it.

Importing bluesky costs about 0.3 s and some 270 modules (it imports its run engine, event
model, jsonschema, numpy), so nothing here imports it eagerly. A device that raises bluesky's
`NoReplayAllowed`, or a caller that catches bluesky's `FailedStatus` or
`RunEngineInterrupted`, has already imported ``bluesky.utils``: the classes are looked up in
``sys.modules`` when they are needed, and our exceptions are raised as subclasses of both ours
and bluesky's, so that ``except StatusFailed`` and ``except FailedStatus`` both catch them.

`NoReplayAllowed` and `RunEngineInterrupted` as *public* names resolve to bluesky's own class
when bluesky is installed (``timecontrol.plans.NoReplayAllowed``, through the package's
module ``__getattr__``), else to ours.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import sys
from typing import Any

from .._exceptions import EngineStateError, TimeControlError
from ._errors import RequestAbort, RequestStop, StatusFailed, WaitForTimeoutError

__all__ = [
    "NoReplayAllowedBase",
    "RunEngineInterruptedBase",
    "bluesky_class",
    "interrupted_error",
    "is_ending_request",
    "is_no_replay",
    "plan_error",
    "public_no_replay_allowed",
    "public_run_engine_interrupted",
    "request_abort",
    "request_stop",
    "state_error",
    "status_failed",
    "versions",
    "wait_timeout_error",
]


class NoReplayAllowedBase(TimeControlError):
    """Raised by a device's ``pause()``: do not replay the messages since the last checkpoint
    when the plan resumes (our class, used where bluesky is not installed)."""


class RunEngineInterruptedBase(TimeControlError):
    """``RE(plan)`` / ``RE.resume()`` of `SyncRunEngine` returned because the plan paused."""


def bluesky_class(name: str, module_name: str = "bluesky.utils") -> type[BaseException] | None:
    """``<module_name>.<name>`` if that bluesky module is already imported, else None."""
    module = sys.modules.get(module_name)
    cls = getattr(module, name, None)
    return cls if isinstance(cls, type) and issubclass(cls, BaseException) else None


def is_no_replay(exc: BaseException) -> bool:
    """True for our `NoReplayAllowedBase` and for bluesky's ``NoReplayAllowed``."""
    if isinstance(exc, NoReplayAllowedBase):
        return True
    theirs = bluesky_class("NoReplayAllowed")
    return theirs is not None and isinstance(exc, theirs)


def is_ending_request(exc: BaseException, ending: str) -> bool:
    """True if `exc` is the request that ends the plan the way `ending` ("stop" or "abort")
    asks: ours, or bluesky's class of that name raised by a plan that caught and re-raised it
    as a new exception."""
    if ending not in ("stop", "abort"):
        return False
    ours: type[BaseException] = RequestStop if ending == "stop" else RequestAbort
    name = ours.__name__
    if isinstance(exc, ours):
        return True
    theirs = bluesky_class(name)
    return theirs is not None and isinstance(exc, theirs)


_MERGED: dict[tuple[type[BaseException], type[BaseException]], type[BaseException]] = {}


def _merged(ours: type[BaseException], theirs: type[BaseException]) -> type[BaseException]:
    # One subclass per pair, made once: `except ours` and `except theirs` both catch it.
    cls = _MERGED.get((ours, theirs))
    if cls is None:
        cls = type(theirs.__name__, (ours, theirs), {"__module__": ours.__module__})
        _MERGED[ours, theirs] = cls
    return cls


def status_failed(message: str, cause: BaseException | None) -> StatusFailed:
    """A `StatusFailed` (also bluesky's ``FailedStatus`` when bluesky is loaded), with
    `cause` as its ``__cause__``."""
    theirs = bluesky_class("FailedStatus")
    cls = StatusFailed if theirs is None else _merged(StatusFailed, theirs)
    error = cls(message)
    assert isinstance(error, StatusFailed)
    error.__cause__ = cause
    return error


def request_stop(message: str) -> RequestStop:
    """The `RequestStop` thrown into a plan by ``stop()``: also bluesky's ``RequestStop`` when
    bluesky is loaded, so that bluesky's wrappers (``run_wrapper``, ``reset_positions``) that
    catch and re-raise it close their runs with the right exit status."""
    theirs = bluesky_class("RequestStop")
    cls = RequestStop if theirs is None else _merged(RequestStop, theirs)
    error = cls(message)
    assert isinstance(error, RequestStop)
    return error


def request_abort(message: str) -> RequestAbort:
    """The `RequestAbort` thrown into a plan by ``abort()`` (also bluesky's, as above)."""
    theirs = bluesky_class("RequestAbort")
    cls = RequestAbort if theirs is None else _merged(RequestAbort, theirs)
    error = cls(message)
    assert isinstance(error, RequestAbort)
    return error


def wait_timeout_error(message: str) -> WaitForTimeoutError:
    """A `WaitForTimeoutError` (also bluesky's class of that name when its run engine is
    loaded): a ``wait`` or ``wait_for`` ran out of time."""
    theirs = bluesky_class("WaitForTimeoutError", "bluesky.run_engine")
    cls = WaitForTimeoutError if theirs is None else _merged(WaitForTimeoutError, theirs)
    error = cls(message)
    assert isinstance(error, WaitForTimeoutError)
    return error


def interrupted_error(message: str) -> RunEngineInterruptedBase:
    """The exception `SyncRunEngine` raises on a pause (also bluesky's
    ``RunEngineInterrupted`` when bluesky is loaded)."""
    theirs = bluesky_class("RunEngineInterrupted")
    cls = RunEngineInterruptedBase if theirs is None else _merged(RunEngineInterruptedBase, theirs)
    error = cls(message)
    assert isinstance(error, RunEngineInterruptedBase)
    return error


def state_error(exc: EngineStateError) -> EngineStateError:
    """`exc` as bluesky's ``TransitionError`` too, when bluesky's run engine is loaded: what
    `SyncRunEngine` raises for a request its state refuses (bluesky users catch that)."""
    theirs = bluesky_class("TransitionError", "bluesky.run_engine")
    if theirs is None or isinstance(exc, theirs) or type(exc) is not EngineStateError:
        return exc
    error = _merged(type(exc), theirs)(*exc.args)
    assert isinstance(error, EngineStateError)
    return error


def plan_error(exc: BaseException) -> BaseException:
    """Our `IllegalMessageSequence` also as bluesky's class of that name, when bluesky is
    loaded (what `SyncRunEngine` raises for an illegal plan; bluesky users catch that)."""
    from ._errors import IllegalMessageSequence

    theirs = bluesky_class("IllegalMessageSequence")
    if theirs is None or isinstance(exc, theirs) or type(exc) is not IllegalMessageSequence:
        return exc
    error = _merged(IllegalMessageSequence, theirs)(*exc.args)
    error.__cause__ = exc.__cause__
    return error


def _public(name: str, ours: type[BaseException]) -> type[BaseException]:
    try:
        module = importlib.import_module("bluesky.utils")
    except ImportError:
        return ours
    cls = getattr(module, name, None)
    return cls if isinstance(cls, type) and issubclass(cls, BaseException) else ours


def public_no_replay_allowed() -> type[BaseException]:
    """bluesky's ``NoReplayAllowed`` if bluesky is installed (imports it), else ours."""
    return _public("NoReplayAllowed", NoReplayAllowedBase)


def public_run_engine_interrupted() -> type[BaseException]:
    """bluesky's ``RunEngineInterrupted`` if bluesky is installed (imports it), else ours.

    `SyncRunEngine` raises a subclass of both, so either catches its pauses.
    """
    return _public("RunEngineInterrupted", RunEngineInterruptedBase)


_VERSIONED = ("bluesky", "ophyd", "ophyd_async", "event_model")


@functools.cache
def _installed_versions() -> tuple[tuple[str, str], ...]:
    # timecontrol's own from the package (a checkout's metadata may be stale), the rest
    # from their metadata, so that none of them is imported for it.
    ours = getattr(sys.modules.get("timecontrol"), "__version__", None)
    found: list[tuple[str, str]] = [] if ours is None else [("timecontrol", str(ours))]
    for name in _VERSIONED:
        try:
            found.append((name, importlib.metadata.version(name.replace("_", "-"))))
        except importlib.metadata.PackageNotFoundError:
            continue
    return tuple(found)


def versions() -> dict[str, Any]:
    """Versions of timecontrol and of the bluesky family that is installed, as bluesky puts
    them in start documents (read from package metadata: nothing is imported)."""
    return dict(_installed_versions())
