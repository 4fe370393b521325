"""pytest plugin that runs bluesky's own test suite against timecontrol's SyncRunEngine.

Loaded by ``run_oracle.py`` with ``--noconftest -p oracle_plugin``: bluesky's conftest is not
loaded, and this plugin provides the fixtures its tests use instead (``RE``, ``make_RE``,
``single_RE``, ``hw``, ...). ``TC_ORACLE_TARGET=bluesky`` makes the same fixtures return
bluesky's own RunEngine, which gives the baseline: the tests that pass here with bluesky
itself. Every test's outcome, and whether it used a run engine fixture, is written as JSON
lines to ``TC_ORACLE_REPORT``.

Written for timecontrol; it does not reuse bluesky's conftest code.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

TARGET = os.environ.get("TC_ORACLE_TARGET", "timecontrol")
REPORT = os.environ.get("TC_ORACLE_REPORT", "")
#: Seconds one test may take before it is failed (a run engine that never returns).
TEST_TIMEOUT = float(os.environ.get("TC_ORACLE_TIMEOUT", "30"))
RE_FIXTURES = frozenset({"RE", "make_RE", "single_RE"})

# bluesky-only constructor arguments that timecontrol's drop-in has no use for.
_IGNORED_KWARGS = frozenset({"loop", "during_task"})


def _close(run_engine: Any) -> None:
    """Halt and shut down what a test left behind, within 10 s (a stuck engine is left)."""
    done = threading.Thread(target=_shut_down, args=(run_engine,), daemon=True)
    done.start()
    done.join(10)


def _shut_down(run_engine: Any) -> None:
    if TARGET == "bluesky":
        if run_engine.state not in ("idle", "panicked"):
            with contextlib.suppress(Exception):  # tearing down whatever the test left
                run_engine.halt()
        run_engine.loop.call_soon_threadsafe(run_engine.loop.stop)
        run_engine._th.join(5)
        return
    run_engine.close()


def _build(*args: Any, **kwargs: Any) -> Any:
    if TARGET == "bluesky":
        import asyncio

        from bluesky.run_engine import RunEngine

        kwargs.setdefault("loop", asyncio.new_event_loop())
        return RunEngine(*args, **kwargs)
    from timecontrol.plans import SyncRunEngine

    for name in _IGNORED_KWARGS:
        kwargs.pop(name, None)
    md = args[0] if args else kwargs.pop("md", None)
    return SyncRunEngine(md, **kwargs)


@pytest.fixture
def make_RE() -> Iterator[Callable[..., Any]]:
    """A factory of run engines, each closed after the test."""
    made: list[Any] = []

    def factory(*args: Any, **kwargs: Any) -> Any:
        run_engine = _build(*args, **kwargs)
        made.append(run_engine)
        return run_engine

    yield factory
    for run_engine in made:
        _close(run_engine)


@pytest.fixture
def RE(make_RE: Callable[..., Any]) -> Any:
    """The run engine under test (bluesky's conftest default: call_returns_result=True)."""
    return make_RE({}, call_returns_result=True)


@pytest.fixture
def single_RE(make_RE: Callable[..., Any]) -> Any:
    """The same as ``RE`` (bluesky runs this one only once)."""
    return make_RE({}, call_returns_result=True)


@pytest.fixture
def hw(tmp_path: Any) -> Any:
    """ophyd's simulated hardware, files under the test's temporary directory."""
    from ophyd.sim import hw as make_hw

    return make_hw(str(tmp_path))


@pytest.fixture
def db() -> Any:
    """databroker is not part of this environment."""
    pytest.skip("databroker is not installed for the oracle")


class _Sigint:
    """Sends SIGINT to this process, leaving the handler time to act."""

    def __init__(self) -> None:
        self.handlers: list[Any] = []

    def send(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.25)  # real time on purpose

    def __enter__(self) -> _Sigint:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.fixture
def deterministic_sigint() -> type[_Sigint]:
    """A SIGINT sender (bluesky's fixture of this name also patches its own handler)."""
    return _Sigint


class _Timeout(Exception):
    """A test ran past TC_ORACLE_TIMEOUT."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Fail a test that runs longer than TEST_TIMEOUT (SIGALRM, main thread only): a run
    engine that never returns must not stop the suite. Tear-down is bounded in `_close`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise _Timeout(f"{item.nodeid} ran longer than {TEST_TIMEOUT} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Append one JSON line per test phase that decides its outcome."""
    if not REPORT:
        return
    if report.when == "call" or report.outcome != "passed":
        fixtures = set(getattr(report, "tc_fixtures", ()))
        line = {
            "nodeid": report.nodeid,
            "when": report.when,
            "outcome": report.outcome,
            "uses_re": bool(fixtures & RE_FIXTURES),
            "error": _short_error(report),
        }
        with open(REPORT, "a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    """Carry the test's fixture names onto its report (for ``uses_re``)."""
    outcome = yield
    report = outcome.get_result()
    report.tc_fixtures = list(getattr(item, "fixturenames", ()))


def _short_error(report: pytest.TestReport) -> str:
    if report.outcome == "passed":
        return ""
    if report.outcome == "skipped":
        longrepr = report.longrepr
        return str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)[-200:]
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message).splitlines()[0][:300] if crash.message else ""
    return str(report.longrepr).strip().splitlines()[-1][:300]


#: The session's exit status, for `pytest_unconfigure`.
_EXIT_STATUS = [0]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remember the exit status."""
    _EXIT_STATUS[0] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Under ``run_oracle.py``, leave at once when pytest is done, without waiting for
    non-daemon threads that tests left behind.

    ``test_suspenders.py::test_suspender_plans_async_signal`` starts ``threading.Timer``s that
    set a signal on the run engine's loop 0.5 s later; the test ends (and its fixture closes
    the run engine) first, so the late timer waits forever on a loop that is gone, with
    bluesky's RunEngine as with ours, and the interpreter never exits. Every outcome is in
    the report by now.
    """
    if REPORT:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS[0])
