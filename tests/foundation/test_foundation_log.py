"""The Log: stamping, the ring, subscriptions, reads, purge, close."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import anyio
import pytest

from timecontrol import Event, Log, current_clock
from timecontrol.abc import LogSink
from timecontrol.errors import EventKindError, LogError, NaiveDatetimeError
from timecontrol.stores import SQLiteLog
from timecontrol.testing import VirtualClock

START = datetime(2026, 3, 29, 0, 30, tzinfo=timezone(timedelta(hours=1)))
T0 = START.timestamp()


# -- append ---------------------------------------------------------------------------------


@pytest.mark.timecontrol(start="2026-03-29T00:30+01:00")
async def test_append_stamps_seq_mono_and_wall_from_the_clock(
    virtual_clock: VirtualClock,
) -> None:
    log = Log()
    assert log.clock is virtual_clock  # the current clock, picked up without being told
    assert log.last_seq == 0
    first = log._emit("log.note", "job-1", {"text": "start"})
    await anyio.sleep(90.5)  # virtual time
    second = log._emit("action.started", "job-1")
    await anyio.sleep(3600)  # virtual time
    third = log._emit("log.note")
    assert first == Event(1, 0.0, T0, "log.note", "job-1", {"text": "start"})
    assert second == Event(2, 90.5, T0 + 90.5, "action.started", "job-1", {})
    assert third == Event(3, 3690.5, T0 + 3690.5, "log.note", "", {})
    assert third.at == START + timedelta(seconds=3690.5)
    assert log.last_seq == 3
    assert len(log) == 3
    assert log.recent() == [first, second, third]


@pytest.mark.timecontrol
async def test_append_uses_an_explicit_clock_and_follows_wall_steps() -> None:
    clock = VirtualClock(START)
    clock._mono0 = current_clock().monotonic()  # share this run's monotonic origin
    log = Log(clock=clock)
    assert log.clock is clock
    await anyio.sleep(10)  # virtual time
    clock.step_wall(-3600)
    event = log._emit("log.note")
    assert (event.mono, event.wall) == (10.0, T0 + 10 - 3600)


@pytest.mark.timecontrol
async def test_ring_keeps_the_newest_events() -> None:
    log = Log(ring_size=3)
    assert log.ring_size == 3
    for i in range(5):
        log._emit("log.note", "", {"i": i})
    assert [e.seq for e in log.recent()] == [3, 4, 5]
    assert [e.payload["i"] for e in log.recent()] == [2, 3, 4]
    assert len(log) == 3
    assert log.last_seq == 5
    assert await log.query() == log.recent()  # no sink: the ring is all there is


@pytest.mark.parametrize("size", [0, -1, 1.5, "10"])
def test_ring_size_must_be_a_positive_int(size: object) -> None:
    with pytest.raises(LogError, match="ring_size must be a positive int"):
        Log(ring_size=size)  # type: ignore[arg-type]


@pytest.mark.timecontrol
async def test_closed_log_refuses_appends() -> None:
    async with Log() as log:
        log._emit("log.note")
    with pytest.raises(LogError, match="this Log is closed"):
        log._emit("log.note")
    assert log.last_seq == 1
    await log.aclose()  # idempotent


# -- subscriptions --------------------------------------------------------------------------


@pytest.mark.timecontrol
async def test_subscribe_filters_by_kind_and_subject() -> None:
    log = Log()
    log._emit("log.note", "a")  # before anyone subscribed: not delivered
    everything = log.subscribe()
    notes = log.subscribe("log.note")
    subject_a = log.subscribe(subjects="a")
    both = log.subscribe(["action.started", "action.failed"], ["a", "b"])
    received: dict[str, list[int]] = {"everything": [], "notes": [], "a": [], "both": []}

    async def consume(name: str, sub: object) -> None:
        async for event in sub:  # type: ignore[attr-defined]
            received[name].append(event.seq)

    async with anyio.create_task_group() as tg:
        for name, sub in (
            ("everything", everything),
            ("notes", notes),
            ("a", subject_a),
            ("both", both),
        ):
            tg.start_soon(consume, name, sub)
        await anyio.sleep(1)  # virtual time
        log._emit("log.note", "b")  # 2
        log._emit("action.started", "a")  # 3
        await anyio.sleep(1)  # virtual time
        log._emit("action.failed", "c")  # 4
        log._emit("action.failed", "b")  # 5
        log._emit("log.note", "a")  # 6
        await anyio.sleep(1)  # virtual time
        await log.aclose()  # ends every subscription: the consumers finish
    assert received == {
        "everything": [2, 3, 4, 5, 6],
        "notes": [2, 6],
        "a": [3, 6],
        "both": [3, 5],
    }


@pytest.mark.timecontrol
async def test_subscription_get_waits_for_the_next_event() -> None:
    log = Log()
    got: list[tuple[int, float]] = []
    async with log.subscribe("log.note") as sub:

        async def reader() -> None:
            event = await sub.get()
            got.append((event.seq, anyio.current_time()))

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            await anyio.sleep(5)  # virtual time
            log._emit("engine.started")  # filtered out: the reader keeps waiting
            await anyio.sleep(5)  # virtual time
            log._emit("log.note")
    assert got == [(2, 10.0)]
    assert sub.get_nowait() is None
    # Leaving the `async with` unsubscribed it.
    log._emit("log.note")
    assert sub.pending() == 0
    with pytest.raises(StopAsyncIteration):
        await sub.get()


@pytest.mark.timecontrol
async def test_closed_subscription_drains_what_it_has() -> None:
    log = Log()
    sub = log.subscribe()
    log._emit("log.note", "", {"n": 1})
    log._emit("log.note", "", {"n": 2})
    sub.close()
    log._emit("log.note", "", {"n": 3})
    assert [e.payload["n"] async for e in sub] == [1, 2]


@pytest.mark.timecontrol
async def test_slow_subscriber_drops_the_oldest_and_counts_them() -> None:
    log = Log()
    sub = log.subscribe(buffer=3)
    fast = log.subscribe()
    for i in range(10):
        log._emit("log.note", "", {"i": i})
    assert sub.dropped == 7
    assert sub.pending() == 3
    assert [sub.get_nowait().payload["i"] for _ in range(3)] == [7, 8, 9]  # type: ignore[union-attr]
    assert fast.dropped == 0
    assert fast.pending() == 10


@pytest.mark.timecontrol
async def test_subscribe_validates_its_filters() -> None:
    log = Log()
    with pytest.raises(EventKindError, match=r"'log\.nope'"):
        log.subscribe("log.nope")
    with pytest.raises(LogError, match="buffer must be a positive int"):
        log.subscribe(buffer=0)
    log._emit("log.note")  # no half-made subscriber is left behind to receive it
    assert log._subscribers == []


@pytest.mark.timecontrol
async def test_subscribing_to_a_closed_log_ends_at_once() -> None:
    """Regression: the subscription was never closed, so `async for` waited forever."""
    log = Log()
    log._emit("log.note")
    await log.aclose()
    with anyio.fail_after(1):  # virtual seconds: a hang would jump straight to the timeout
        assert [e async for e in log.subscribe()] == []


# -- reads ----------------------------------------------------------------------------------


async def _history(log: Log) -> list[Event]:
    """Six events a minute apart: kinds and subjects interleaved."""
    plan = [
        ("log.note", "a"),
        ("action.started", "b"),
        ("log.note", "b"),
        ("action.failed", "a"),
        ("log.note", "a"),
        ("action.started", ""),
    ]
    out = []
    for kind, subject in plan:
        out.append(log._emit(kind, subject))
        await anyio.sleep(60)  # virtual time
    return out


@pytest.mark.timecontrol(start="2026-03-29T00:30+01:00")
async def test_recent_filters_limits_and_orders() -> None:
    log = Log()
    e = await _history(log)
    assert log.recent() == e
    assert log.recent(kinds="log.note") == [e[0], e[2], e[4]]
    assert log.recent(kinds=["action.started", "action.failed"]) == [e[1], e[3], e[5]]
    assert log.recent(subjects="a") == [e[0], e[3], e[4]]
    assert log.recent(subjects=["b", ""]) == [e[1], e[2], e[5]]
    assert log.recent(kinds="log.note", subjects="a") == [e[0], e[4]]
    assert log.recent(kinds=[]) == []
    # since inclusive, until exclusive; aware datetimes or POSIX seconds
    assert log.recent(since=START + timedelta(minutes=1)) == e[1:]
    assert log.recent(until=START + timedelta(minutes=2)) == e[:2]
    assert log.recent(since=T0 + 60, until=T0 + 240) == e[1:4]
    assert log.recent(limit=2) == e[:2]
    assert log.recent(limit=2, newest_first=True) == [e[5], e[4]]
    assert log.recent(newest_first=True) == e[::-1]
    assert log.recent(kinds="log.note", limit=1, newest_first=True) == [e[4]]
    assert log.recent(limit=0) == []  # regression: returned one event
    assert log.recent(limit=100) == e


@pytest.mark.timecontrol
async def test_recent_rejects_bad_arguments() -> None:
    log = Log()
    log._emit("log.note")
    with pytest.raises(NaiveDatetimeError, match="since 2026-03-29T00:00:00 is naive"):
        log.recent(since=datetime(2026, 3, 29))
    with pytest.raises(EventKindError, match=r"'log\.typo'"):
        log.recent(kinds="log.typo")
    with pytest.raises(LogError, match="limit must be None or a non-negative int, got -1"):
        log.recent(limit=-1)
    with pytest.raises(LogError, match="limit must be"):
        await log.query(limit=-1)


@pytest.mark.timecontrol(start="2026-03-29T00:30+01:00")
async def test_query_over_a_sink_sees_what_scrolled_out_of_the_ring(tmp_path: Path) -> None:
    sink = SQLiteLog(tmp_path / "log.sqlite")
    assert isinstance(sink, LogSink)
    log = Log(ring_size=2, sink=sink)
    assert log.sink is sink
    e = await _history(log)
    assert log.recent() == e[-2:]
    assert await log.query() == e  # flushes first, then reads the file
    assert await log.query(kinds="log.note", subjects="a") == [e[0], e[4]]
    assert await log.query(since=START + timedelta(minutes=1), until=T0 + 240) == e[1:4]
    assert await log.query(limit=2, newest_first=True) == [e[5], e[4]]
    assert await log.query(limit=0) == []
    assert await log.query(kinds=[]) == []
    # Over a sink a kind need not be registered here (the file may hold a newer version's
    # kinds): nothing matches it, which is no error; a malformed name still is.
    assert await log.query(kinds="log.typo") == []
    with pytest.raises(EventKindError, match="'Log Typo'"):
        await log.query(kinds="Log Typo")
    await log.flush()
    assert sink.durable_seq == 6
    await log.aclose()
    assert await log.query(subjects="b") == [e[1], e[2]]  # the file outlives the Log


@pytest.mark.timecontrol(start="2026-03-29T00:30+01:00")
async def test_query_without_a_sink_equals_recent() -> None:
    log = Log()
    e = await _history(log)
    await log.flush()  # no sink: nothing to do
    for kwargs in (
        {},
        {"kinds": "log.note"},
        {"subjects": ["a", "b"], "limit": 2, "newest_first": True},
        {"since": START + timedelta(minutes=3)},
    ):
        assert await log.query(**kwargs) == log.recent(**kwargs)
    assert await log.query(kinds="action.failed") == [e[3]]


# -- purge ----------------------------------------------------------------------------------


@pytest.mark.timecontrol
async def test_purge_without_a_sink_trims_the_ring() -> None:
    log = Log()
    for _ in range(10):
        log._emit("log.note")
        await anyio.sleep(86_400)  # virtual time
    # now = day 10; events at days 0..9; keep the last 3 days (days 7, 8, 9)
    assert await log.purge(timedelta(days=3)) == 0  # nothing durable to count
    assert [e.seq for e in log.recent()] == [8, 9, 10]
    assert await log.purge(3 * 86_400) == 0
    assert len(log) == 3
    await log.purge(0)
    assert len(log) == 0


@pytest.mark.timecontrol
async def test_purge_applies_to_the_whole_ring_after_a_backwards_step(
    virtual_clock: VirtualClock,
) -> None:
    """Regression: purge only trimmed a prefix, so after a wall step backwards old events
    behind a newer one stayed in memory while the sink deleted them."""
    log = Log()
    log._emit("log.note", "", {"n": 1})  # wall T
    await anyio.sleep(3600)  # virtual time
    virtual_clock.step_wall(-7200)
    log._emit("log.note", "", {"n": 2})  # wall T - 1 h
    await anyio.sleep(7200)  # virtual time
    log._emit("log.note", "", {"n": 3})  # wall T + 1 h
    # now is T + 1 h: purge what is older than 30 min, i.e. before T + 30 min
    await log.purge(timedelta(minutes=30))
    assert [e.payload["n"] for e in log.recent()] == [3]


@pytest.mark.timecontrol
async def test_purge_rejects_negative_durations() -> None:
    log = Log()
    for bad in (-1, timedelta(seconds=-1), float("nan")):
        with pytest.raises(LogError, match="older_than must be a non-negative duration"):
            await log.purge(bad)
