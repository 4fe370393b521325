"""The Schedule: immutable intents in `(due, priority, seq)` order; cancel never mutates."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
)

from timecontrol._schedule import Intent, Schedule
from timecontrol.errors import NaiveDatetimeError

# Few distinct due times and priorities, so that ties (the interesting part) are common.
dues = st.sampled_from([0.0, 1.0, 1.5, 2.0, 1774740600.0]) | st.floats(
    min_value=-1e9, max_value=1e10, allow_nan=False
)
priorities = st.integers(min_value=-3, max_value=3)

ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), dues, priorities),
        st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=400)),
    ),
    max_size=300,
)


def key(intent: Intent) -> tuple[float, int, int]:
    return (intent.due, intent.priority, intent.seq)


@settings(max_examples=200, deadline=None)
@given(ops)
def test_popping_everything_yields_the_live_intents_in_sorted_order(
    operations: list[tuple[object, ...]],
) -> None:
    schedule = Schedule()
    added: list[Intent] = []
    snapshots: list[Intent] = []
    cancelled: set[int] = set()
    for op in operations:
        if op[0] == "add":
            _, due, priority = op
            intent = schedule.add(due, "act", priority=priority)  # type: ignore[arg-type]
            added.append(intent)
            snapshots.append(copy.copy(intent))
        elif added:
            target = added[op[1] % len(added)]  # type: ignore[operator]
            was_live = target.seq not in cancelled
            assert schedule.cancel(target) is was_live
            cancelled.add(target.seq)
    live = sorted((i for i in added if i.seq not in cancelled), key=key)

    # Cancelling never mutated an intent.
    for intent, snapshot in zip(added, snapshots, strict=True):
        assert msgspec.structs.astuple(intent) == msgspec.structs.astuple(snapshot)
    assert len(schedule) == len(live)
    assert bool(schedule) is bool(live)
    for intent in added:
        assert (intent in schedule) is (intent.seq not in cancelled)
    assert list(schedule) == live  # iteration is the dispatch order...
    assert list(schedule) == live  # ...and does not consume
    assert schedule.peek() == (live[0] if live else None)

    popped = []
    while (top := schedule.pop()) is not None:
        popped.append(top)
    assert popped == live
    assert [i.seq for i in popped] == [i.seq for i in live]  # identity of order, not just ==
    assert len(schedule) == 0
    assert schedule.peek() is None
    assert not schedule


class ScheduleMachine(RuleBasedStateMachine):
    """Pushes, cancels, pops and pop_due in any interleaving, against a sorted-list model."""

    intents = Bundle("intents")

    def __init__(self) -> None:
        super().__init__()
        self.schedule = Schedule()
        self.model: list[Intent] = []
        self.next_seq = 1

    @rule(target=intents, due=dues, priority=priorities)
    def add(self, due: float, priority: int) -> Intent:
        intent = self.schedule.add(due, "act", priority=priority, subject="s")
        assert intent.seq == self.next_seq  # unique and increasing
        self.next_seq += 1
        self.model.append(intent)
        return intent

    @rule(intent=consumes(intents))
    def cancel(self, intent: Intent) -> None:
        before = msgspec.structs.astuple(intent)
        expected = intent in self.model
        assert self.schedule.cancel(intent.seq if intent.seq % 2 else intent) is expected
        if expected:
            self.model.remove(intent)
        assert msgspec.structs.astuple(intent) == before
        assert intent not in self.schedule
        assert self.schedule.cancel(intent) is False  # a second cancel finds nothing

    @rule()
    def pop(self) -> None:
        expected = min(self.model, key=key) if self.model else None
        assert self.schedule.pop() == expected
        if expected is not None:
            self.model.remove(expected)

    @rule(now=dues)
    def pop_due(self, now: float) -> None:
        due = sorted((i for i in self.model if i.due <= now), key=key)
        got = []
        while (intent := self.schedule.pop_due(now)) is not None:
            got.append(intent)
        assert got == due
        for intent in got:
            self.model.remove(intent)

    @invariant()
    def matches_the_model(self) -> None:
        live = sorted(self.model, key=key)
        assert len(self.schedule) == len(live)
        assert list(self.schedule) == live
        assert self.schedule.peek() == (live[0] if live else None)


ScheduleMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=60, deadline=None)
TestScheduleMachine = ScheduleMachine.TestCase


def test_many_cancellations_compact_the_heap_and_keep_order() -> None:
    schedule = Schedule()
    intents = [schedule.add(float(i % 50), "act", priority=-(i % 3)) for i in range(1000)]
    for intent in intents[::3] + intents[1::3]:
        assert schedule.cancel(intent)
    assert len(schedule._heap) < 1000  # compacted: memory stays bounded
    assert len(schedule) == len(intents[2::3])
    assert list(schedule) == sorted(intents[2::3], key=key)
    popped = [schedule.pop() for _ in range(len(schedule))]
    assert popped == sorted(intents[2::3], key=key)
    assert schedule.pop() is None


def test_same_instant_order_is_priority_then_seq() -> None:
    schedule = Schedule()
    at = datetime(2026, 3, 29, 2, 0, tzinfo=timezone(timedelta(hours=1)))
    a = schedule.add(at, "a", priority=5)
    b = schedule.add(at, "b")
    c = schedule.add(at, "c", priority=-1)
    d = schedule.add(at, "d")
    earlier = schedule.add(at - timedelta(microseconds=1), "e", priority=99)
    assert list(schedule) == [earlier, c, b, d, a]
    assert [schedule.pop() for _ in range(5)] == [earlier, c, b, d, a]


def test_add_builds_the_intent() -> None:
    schedule = Schedule()
    at = datetime(2026, 3, 29, 0, 30, tzinfo=timezone(timedelta(hours=1)))
    intent = schedule.add(
        at, "sample", subject="job-7", kwargs={"volume_ul": 20}, priority=2, reason="trigger"
    )
    assert intent == Intent(1774740600.0, 2, 1, "sample", "job-7", {"volume_ul": 20}, "trigger")
    assert intent.due_at == datetime(2026, 3, 28, 23, 30, tzinfo=UTC)
    assert schedule.add(5, "x").seq == 2
    with pytest.raises(AttributeError):
        intent.due = 0.0  # type: ignore[misc]
    with pytest.raises(NaiveDatetimeError, match=r"^due 2026-03-29T00:30:00 is naive"):
        schedule.add(datetime(2026, 3, 29, 0, 30), "x")
    with pytest.raises(NaiveDatetimeError):
        schedule.add(float("nan"), "x")
    assert len(schedule) == 2


def test_push_keeps_the_seq_and_refuses_duplicates() -> None:
    schedule = Schedule()
    restored = Intent(10.0, 0, 41, "restored")
    schedule.push(restored)
    assert restored in schedule
    assert schedule.add(5.0, "new").seq == 42  # numbering continues after restored intents
    schedule.push(Intent(1.0, 0, 7, "older"))
    assert schedule.add(1.0, "newer").seq == 43
    with pytest.raises(ValueError, match="seq 41 is already in this Schedule"):
        schedule.push(Intent(99.0, 0, 41, "clash"))
    assert [i.seq for i in schedule] == [7, 43, 42, 41]


def test_pop_due_only_takes_what_is_due() -> None:
    schedule = Schedule()
    first = schedule.add(10.0, "a")
    second = schedule.add(20.0, "b")
    assert schedule.pop_due(9.999) is None
    assert schedule.pop_due(10.0) == first  # due exactly now counts
    assert schedule.pop_due(15.0) is None
    assert second in schedule
    schedule.cancel(second)
    assert schedule.pop_due(100.0) is None
    assert len(schedule) == 0


def test_contains_and_cancel_of_foreign_or_finished_intents() -> None:
    schedule = Schedule()
    intent = schedule.add(1.0, "a")
    assert "a" not in schedule
    assert 1 not in schedule
    assert schedule.pop() == intent
    assert intent not in schedule
    assert schedule.cancel(intent) is False  # already dispatched
    assert schedule.cancel(12345) is False
    assert repr(schedule) == "<Schedule pending=0 next=None>"
    schedule.add(datetime(2026, 3, 29, tzinfo=UTC), "b")
    assert repr(schedule) == "<Schedule pending=1 next=2026-03-29T00:00:00+00:00>"
