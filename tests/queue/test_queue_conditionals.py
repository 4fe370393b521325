"""Step 7: conditionals on run documents: a safe expression parser (never eval), start,
frequency, ntrips, and actions on the running item and the queue."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st
from queue_support import running, settle, started_uids

from timecontrol.queue import Expression, ItemStatus, PlanNotFoundError, QueueArgumentError

vt = pytest.mark.timecontrol


@pytest.mark.parametrize(
    ("text", "names", "expected"),
    [
        ("det > 5", {"det": 6}, True),
        ("det > 5", {"det": 5}, False),
        ("1 < det <= 3", {"det": 3}, True),
        ("1 < det <= 3", {"det": 4}, False),
        ("det > 5 and seq_num >= 3", {"det": 9, "seq_num": 2}, False),
        ("not (a or b)", {"a": False, "b": 0}, True),
        ("abs(x - 10) < 0.5 * 2", {"x": 9.2}, True),
        ("max(a, b) % 4 == 1", {"a": 1, "b": 9}, True),
        ("data['det:total'] >= -1", {"data": {"det:total": -1}}, True),
        ("ghost > 1", {"det": 1}, False),  # a missing name: false, not an error
        ("label == 'blank'", {"label": "blank"}, True),
        ("label > 3", {"label": "blank"}, False),  # str vs number: false
        ("x / y > 1", {"x": 1, "y": 0}, False),  # division by zero: false
        ("x ** 2 > 1", {"x": 2}, None),  # not in the language
    ],
)
def test_expressions_are_evaluated_by_an_allow_list(
    text: str, names: dict[str, Any], expected: bool | None
) -> None:
    if expected is None:
        with pytest.raises(QueueArgumentError, match="Pow"):
            Expression(text)
        return
    assert Expression(text)(names) is expected


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("__import__('os').system('echo hi')", "calls something other than"),
        ("det.real > 1", "Attribute"),
        ("(lambda: 1)() or 1", "calls something other than"),
        ("(lambda: 1)", "Lambda"),
        ("[x for x in y]", "ListComp"),
        ("open('f')", "calls something other than"),
        ("det[0] > 1", r"only data\['a key'\]"),
        ("data[0] > 1", r"only data\['a key'\]"),
        ("x := 3", "does not parse"),
        ("det >", "does not parse"),
        ("", "non-empty"),
        ("b'x' == x", "constant b'x'"),
        ("max(a, key=b)", "calls something other than"),
    ],
)
def test_anything_else_is_refused_when_parsed(text: str, match: str) -> None:
    with pytest.raises(QueueArgumentError, match=match):
        Expression(text)


@given(st.text(max_size=60))
def test_no_text_gets_past_the_parser_unchecked(text: str) -> None:
    # Whatever the text, parsing either refuses it cleanly or gives an expression that
    # evaluates to a bool without raising (on any names).
    try:
        expression = Expression(text)
    except QueueArgumentError:
        return
    assert expression({"x": 1, "data": {}}) in (True, False)


def _readings(engine: Any) -> list[int]:
    return [e.payload["seq_num"] for e in engine.log.recent(kinds="run.event")]


@vt
async def test_truncate_when_a_reading_crosses_a_threshold() -> None:
    async with running() as (engine, q):
        q.add_conditional("det >= 3", "truncate", name="enough")  # det reads 1, 2, 3, ...
        q.add("count", {"num": 10}, uid="a")
        q.add("wait", uid="b")
        q.start()
        assert await q.wait() == "finished"
        assert q.item("a").status == ItemStatus.TRUNCATED
        assert _readings(engine) == [1, 2, 3]
        (fired,) = engine.log.recent(kinds="queue.conditional_fired")
        assert (fired.subject, fired.payload["name"], fired.payload["seq_num"]) == (
            "a",
            "enough",
            3,
        )
        assert started_uids(engine) == ["a", "b"]


@vt
async def test_start_frequency_and_ntrips() -> None:
    async with running() as (engine, q):
        q.add_conditional("det > 0", "truncate", start=3, frequency=2, ntrips=3)
        q.add("count", {"num": 20}, uid="a")
        q.start()
        await q.wait()
        # Checked at events 3, 5, 7: the third trip is at 7.
        assert _readings(engine)[-1] == 7


@vt
async def test_abort_cancel_and_skip_next() -> None:
    async with running() as (engine, q):
        q.add_conditional("det == 2", "skip_next", plans="count", name="skip")
        q.add("count", {"num": 3}, uid="a")
        q.add("wait", uid="skipped")
        q.add("wait", uid="c")
        q.start()
        assert await q.wait() == "finished"
        assert started_uids(engine) == ["a", "c"]
        assert q.item("skipped").skip
        q.remove_conditional("skip")
        q.add_conditional("seq_num == 2", "cancel", name="stop after")
        q.add("count", {"num": 3}, uid="d")
        q.add("wait", uid="e")
        q.start()
        assert await q.wait() == "cancelled by conditional 'stop after'"
        assert q.item("d").status == ItemStatus.SUCCEEDED
        q.remove_conditional("stop after")
        q.add_conditional("seq_num == 2", "abort", name="spill", item_types="risky")
        q.add("count", {"num": 3}, uid="f", item_type="risky", position=0)
        q.start()
        assert await q.wait() == "aborted by conditional 'spill'"
        assert q.item("f").status == ItemStatus.ABORTED
        assert q.item("e").status == ItemStatus.PENDING


@vt
async def test_repeat_runs_a_copy_of_the_item_right_after_it() -> None:
    async with running() as (engine, q):
        q.add_conditional("det == 2", "repeat", name="again")  # det reads 1, 2, 3, ...
        q.add("count", {"num": 3}, uid="a", item_type="scan", metadata={"sample": "x"})
        q.add("wait", uid="b")
        q.start()
        assert await q.wait() == "finished"
        (fired,) = engine.log.recent(kinds="queue.conditional_fired")
        assert (fired.subject, fired.payload["action"], fired.payload["seq_num"]) == (
            "a",
            "repeat",
            2,
        )
        (added,) = [
            e for e in engine.log.recent(kinds="queue.item_added") if e.payload.get("repeats")
        ]
        assert (added.payload["repeats"], added.payload["reason"]) == (
            "a",
            "conditional 'again'",
        )
        copy = q.item(added.subject)
        assert (copy.plan, copy.kwargs, copy.item_type, copy.metadata) == (
            "count",
            {"num": 3},
            "scan",
            {"sample": "x"},
        )
        assert started_uids(engine) == ["a", copy.uid, "b"]
        assert q.item("a").status == copy.status == ItemStatus.SUCCEEDED
        assert _readings(engine) == [1, 2, 3, 1, 2, 3]


@vt
async def test_pause_conditional_holds_the_queue_until_resumed() -> None:
    async with running() as (_engine, q):
        q.add_conditional("det == 2", "pause")
        q.add("count", {"num": 4}, uid="a")
        q.start()
        await anyio.sleep(10)  # virtual time
        await settle()
        assert q.state().status == "paused"
        await q.resume()
        assert await q.wait() == "finished"
        assert q.item("a").status == ItemStatus.SUCCEEDED


@vt
async def test_conditionals_fire_once_per_item_and_only_for_their_items() -> None:
    async with running() as (engine, q):
        q.add_conditional("det > 0", "truncate", queues="main", plans=["count"])
        q.add("count", {"num": 5}, uid="a")
        q.add("count", {"num": 5}, uid="b")
        q.start()
        await q.wait()
        fired = [e.subject for e in engine.log.recent(kinds="queue.conditional_fired")]
        assert fired == ["a", "b"]


@vt
async def test_bad_conditionals_are_refused() -> None:
    async with running() as (engine, q):
        q.add_conditional("det > 1", "pause", name="x")
        before = engine.log.last_seq
        for args, kwargs, match in (
            (("det > 1", "explode"), {}, "action must be one of"),
            (("det > 2", "pause"), {"name": "x"}, "exists already with another definition"),
            (("det > 1", "pause"), {"name": "x", "replace": 1}, "replace must be True or"),
            (("det > 1", "pause"), {"start": 0}, "start must be an int >= 1"),
            (("det > 1", "pause"), {"ntrips": 1.5}, "ntrips"),
            (("det > 1", "pause"), {"plans": [3]}, "plans must be"),
            (("os.system('x')", "pause"), {}, "calls something other than"),
        ):
            with pytest.raises(QueueArgumentError, match=match):
                q.add_conditional(*args, **kwargs)
        with pytest.raises(QueueArgumentError, match="no conditional named"):
            q.remove_conditional("y")
        assert engine.log.last_seq == before
        assert [c.name for c in q.conditionals()] == ["x"]
        # The same definition again (a script adding its conditionals at every start):
        # nothing changes, nothing is recorded.
        assert q.add_conditional("det > 1", "pause", name="x") is q.conditionals()[0]
        assert engine.log.last_seq == before


@vt
async def test_insert_runs_a_new_item_right_after_the_current_one(virtual_clock: Any) -> None:
    async with running() as (engine, q):
        # Checked at events 2, 4, 6 (frequency 2); det reads 1, 2, 3, ...: it holds at 4
        # and 6, so with ntrips=2 it fires at event 6, once.
        q.add_conditional(
            "det >= 3", "insert", name="recheck", start=2, frequency=2, ntrips=2,
            plan="wait", kwargs={"seconds": 5}, plans="count",
        )  # fmt: skip
        q.add("count", {"num": 8}, uid="a")
        q.add("wait", {"seconds": 1}, uid="b")
        t0 = virtual_clock.monotonic()
        q.start()
        assert await q.wait() == "finished"
        (fired,) = engine.log.recent(kinds="queue.conditional_fired")
        assert (fired.subject, fired.payload["action"], fired.payload["seq_num"]) == (
            "a",
            "insert",
            6,
        )
        (added,) = [
            e for e in engine.log.recent(kinds="queue.item_added") if e.payload.get("reason")
        ]
        assert added.payload["inserted_after"] == "a"
        assert added.payload["reason"] == "conditional 'recheck'"
        new = q.item(added.subject)
        assert (new.plan, new.kwargs, new.status) == ("wait", {"seconds": 5}, "succeeded")
        assert started_uids(engine) == ["a", new.uid, "b"]
        assert _readings(engine) == list(range(1, 9))  # a itself runs to its end
        # 8 readings of 1 s, then the inserted 5 s wait, then b's 1 s: exact, virtual time.
        started = {e.subject: e.mono - t0 for e in engine.log.recent(kinds="queue.item_started")}
        assert started == {"a": 0.0, new.uid: 8.0, "b": 13.0}


@vt
async def test_bad_insert_conditionals_are_refused_without_a_trace() -> None:
    async with running() as (engine, q):
        before = engine.log.last_seq
        for kwargs, error, match in (
            ({}, QueueArgumentError, "needs plan="),
            ({"plan": "nope"}, PlanNotFoundError, "no plan named 'nope'"),
            ({"plan": "wait", "kwargs": {"secs": 1}}, QueueArgumentError, "do not fit plan"),
            ({"plan": "wait", "kwargs": {"seconds": "1"}}, QueueArgumentError, "as int or float"),
            ({"plan": "wait", "kwargs": {"seconds": (1,)}}, QueueArgumentError, "JSON"),
        ):
            with pytest.raises(error, match=match):
                q.add_conditional("det > 1", "insert", **kwargs)
        with pytest.raises(QueueArgumentError, match="go with action='insert' only"):
            q.add_conditional("det > 1", "pause", plan="wait")
        assert engine.log.last_seq == before
        assert q.conditionals() == []
