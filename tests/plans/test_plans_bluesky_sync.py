"""SyncRunEngine as bluesky's RunEngine: RunEngineInterrupted whenever a request interrupted
the plan, bluesky's constructor options and hooks, bluesky's own suspenders, old usages that
warn. The SyncRunEngine runs a real asyncio loop in a thread, so these tests take real time
(fractions of a second), as the other SyncRunEngine tests do."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from timecontrol.plans import Msg, SyncRunEngine
from timecontrol.plans._compat import RunEngineInterruptedBase
from timecontrol.plans._sync_extras import SigintHandler


@pytest.fixture
def RE() -> Iterator[SyncRunEngine]:
    run_engine = SyncRunEngine(call_returns_result=True)
    yield run_engine
    run_engine.close()


def test_a_pause_without_a_checkpoint_interrupts_and_aborts(RE: SyncRunEngine) -> None:
    with pytest.raises(RunEngineInterruptedBase):
        RE([Msg("clear_checkpoint"), Msg("pause")])
    assert RE.state == "idle"


def test_a_stop_from_another_thread_interrupts_the_call(RE: SyncRunEngine) -> None:
    seen: list[str] = []

    def plan() -> Any:
        try:
            yield Msg("sleep", None, 30)
        except Exception:
            seen.append("cleaned up")
            raise

    timer = threading.Timer(0.1, RE.stop)  # real time: the loop runs in its thread
    timer.start()
    with pytest.raises(RunEngineInterruptedBase):
        RE(plan())
    timer.join()
    assert seen == ["cleaned up"]
    assert RE.state == "idle"


def test_constructor_options_of_bluesky(tmp_path: Any) -> None:
    hooked: list[Any] = []
    with SyncRunEngine(
        scan_id_source=lambda md: 7,
        md_validator=lambda md: hooked.append("validated"),
        md_normalizer=lambda md: {**md, "normalized": True},
        waiting_hook=hooked.append,
        max_depth=None,
        during_task=object(),  # accepted and ignored
    ) as RE:
        starts: list[dict[str, Any]] = []
        RE([Msg("open_run"), Msg("close_run")], {"start": lambda n, d: starts.append(d)})
        assert RE.scan_id_source(RE.md) == 7
        assert RE.md["scan_id"] == 7
        assert starts[0]["normalized"] is True
        assert hooked == ["validated"]


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="scan_id_source must be callable"):
        SyncRunEngine(scan_id_source=3)
    with pytest.raises(ValueError, match="max_depth must be None or an int"):
        SyncRunEngine(max_depth=-1)


def test_max_depth(RE: SyncRunEngine) -> None:
    RE.max_depth = 1000
    RE([])
    RE.max_depth = 0
    with pytest.raises(RuntimeError, match="max_depth"):
        RE([])
    assert RE.state == "idle"


def test_context_managers_is_a_list_entered_around_each_call(RE: SyncRunEngine) -> None:
    assert RE.context_managers == [SigintHandler]
    entered: list[str] = []

    class Manager:
        def __init__(self, run_engine: SyncRunEngine) -> None:
            assert run_engine is RE

        def __enter__(self) -> None:
            entered.append("in")

        def __exit__(self, *exc: object) -> None:
            entered.append("out")

    RE.context_managers.extend([Manager] * 3)
    RE([Msg("null")])
    assert entered == ["in"] * 3 + ["out"] * 3


def test_re_class_answers_the_class_the_user_calls(RE: SyncRunEngine) -> None:
    def plan() -> Any:
        return (yield Msg("RE_class"))

    assert RE(plan()).plan_result is SyncRunEngine


def test_old_usages_warn(RE: SyncRunEngine) -> None:
    got: list[str] = []
    with pytest.warns(UserWarning, match="old way round"):
        RE.subscribe("start", lambda name, doc: got.append(name))
    with pytest.warns(UserWarning, match="raise_if_interrupted"):
        RE([Msg("open_run"), Msg("close_run")], raise_if_interrupted=True)
    assert got == ["start"]


def test_request_suspend_from_another_thread(RE: SyncRunEngine) -> None:
    import asyncio

    event: list[asyncio.Event] = []
    RE.call_in_loop(lambda: event.append(asyncio.Event()))

    def suspend() -> None:
        RE.request_suspend(event[0].wait, justification="beam dump")

    def plan() -> Any:
        yield Msg("checkpoint")
        yield Msg("sleep", None, 0.3)

    threading.Timer(0.05, suspend).start()
    timer = threading.Timer(0.5, lambda: RE.loop.call_soon_threadsafe(event[0].set))
    timer.start()
    result = RE(plan())
    timer.join()
    assert result.exit_status == "success"
    suspended = RE.call_in_loop(lambda: RE.engine.log.recent(kinds="plan.suspended"))
    assert [e.payload["justification"] for e in suspended] == ["beam dump"]


def test_bluesky_suspenders_install_and_suspend(RE: SyncRunEngine) -> None:
    pytest.importorskip("ophyd")
    from bluesky.suspenders import SuspendBoolHigh
    from ophyd.sim import SynSignal

    signal = SynSignal(name="interlock")
    signal.put(0)
    suspender = SuspendBoolHigh(signal, sleep=0)
    RE.install_suspender(suspender)
    assert suspender in RE.suspenders

    def plan() -> Any:
        yield Msg("checkpoint")
        yield Msg("sleep", None, 0.4)  # tripped in the middle: replayed after the release
        return "done"

    threading.Timer(0.1, signal.put, args=(1,)).start()  # real time: another thread
    threading.Timer(0.3, signal.put, args=(0,)).start()
    result = RE(plan())
    assert result.plan_result == "done"
    suspended = RE.call_in_loop(lambda: RE.engine.log.recent(kinds="plan.suspended"))
    assert len(suspended) == 1
    RE.remove_suspender(suspender)
    assert suspender not in RE.suspenders
