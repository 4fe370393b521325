"""Step 5: layered pre-checks (execution, queue, item, step), prompts with timeout defaults,
delays (before the first item, after each: per item, per type, default; interruptible,
pausable, with a changeable remaining time). Virtual time, asyncio and trio."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from queue_support import running, started_uids

from timecontrol import TimeControlError
from timecontrol.queue import (
    CheckContext,
    ItemStatus,
    PromptError,
    QueueArgumentError,
    QueueStateError,
)

vt = pytest.mark.timecontrol


def failed_checks(engine: Any) -> list[tuple[str, str, str]]:
    return [
        (e.payload["level"], e.payload["check"], e.payload["reason"])
        for e in engine.log.recent(kinds="queue.check_failed")
    ]


@vt
async def test_checks_run_at_each_level_in_order() -> None:
    async with running() as (_engine, q):
        calls: list[tuple[str, str | None, str | None]] = []

        def note(context: CheckContext) -> bool:
            item = None if context.item is None else context.item.uid
            if context.level != "step":
                calls.append((context.level, context.queue, item))
            return True

        async def async_note(context: CheckContext) -> None:
            await anyio.sleep(1)  # virtual: checks may take time (and may be async)
            note(context)

        q.add_check(note, level="execution", name="memory")
        q.add_check(async_note, level="queue", name="tray")
        q.add_check(note, level="item", name="managers")
        steps: list[str] = []
        q.add_check(lambda c: steps.append(c.msg.command) is None, level="step", name="step")
        q.add_queue("b")
        q.add("wait", uid="a1")
        q.add("wait", uid="a2")
        q.add("wait", uid="b1", queue="b")
        q.start()
        assert await q.wait() == "finished"
        assert calls == [
            ("execution", None, None),
            ("queue", "main", "a1"),
            ("item", "main", "a1"),
            ("item", "main", "a2"),
            ("queue", "b", "b1"),
            ("item", "b", "b1"),
        ]
        assert steps == ["checkpoint", "sleep"] * 3
        assert [c.name for c in q.checks()] == ["memory", "tray", "managers", "step"]


@vt
async def test_a_failing_execution_check_keeps_the_queue_from_starting() -> None:
    async with running() as (engine, q):
        q.add_check(lambda c: "no liquid nitrogen", level="execution", name="ln2")
        q.add("wait", uid="a")
        q.start()
        assert await q.wait() == "execution check 'ln2' failed: no liquid nitrogen"
        assert started_uids(engine) == []
        assert failed_checks(engine) == [("execution", "ln2", "no liquid nitrogen")]


@vt
async def test_a_failing_item_check_can_stop_skip_or_pause() -> None:
    async with running() as (engine, q):
        bad = {"b"}

        def sample_present(context: CheckContext) -> bool:
            return context.item is None or context.item.uid not in bad

        q.add_check(sample_present, level="item", on_fail="skip")
        for uid in "abc":
            q.add("wait", uid=uid)
        q.start()
        assert await q.wait() == "finished"
        assert started_uids(engine) == ["a", "c"]
        assert q.item("b").skip
        q.remove_check("sample_present")

        def raising(context: CheckContext) -> None:
            raise RuntimeError("manager offline")

        q.add_check(raising, level="item", on_fail="pause")
        q.add("wait", uid="d")
        q.start()
        await anyio.sleep(5)  # virtual time
        state = q.state()
        assert (state.status, state.activity) == ("paused", "paused")
        assert failed_checks(engine)[-1] == (
            "item",
            "raising",
            "raised RuntimeError: manager offline",
        )
        q.remove_check("raising")
        await q.resume()
        assert await q.wait() == "finished"
        assert started_uids(engine) == ["a", "c", "d"]


@vt
async def test_a_failing_step_check_pauses_the_plan_then_checks_again() -> None:
    async with running() as (engine, q):
        interlock = {"closed": True}
        q.add_check(lambda c: interlock["closed"] or "door open", level="step", name="door")
        q.add("wait", {"seconds": 1, "steps": 3}, uid="a")
        q.start()
        await anyio.sleep(1.5)  # virtual time
        interlock["closed"] = False
        await anyio.sleep(1)  # virtual time
        assert engine.state == "paused"
        assert q.state().status == "paused"
        await q.resume()  # replays since the last checkpoint; still open: paused again
        await anyio.sleep(1.5)  # virtual time
        assert engine.state == "paused"
        interlock["closed"] = True
        await q.resume()
        assert await q.wait() == "finished"
        assert q.item("a").status == ItemStatus.SUCCEEDED
        assert [r for _, _, r in failed_checks(engine)] == ["door open", "door open"]


@vt
async def test_a_step_check_that_stops_fails_the_item() -> None:
    async with running() as (_engine, q):
        q.add_check(
            lambda c: c.msg.command != "sleep", level="step", name="no_sleep", on_fail="stop"
        )
        q.add("wait", uid="a")
        q.start()
        assert await q.wait() == "item 'a' failed"
        outcome = q.item("a").outcome
        assert outcome is not None
        assert "step check 'no_sleep' failed" in outcome.reason


@vt
async def test_bad_checks_are_refused() -> None:
    async with running() as (_engine, q):
        with pytest.raises(QueueArgumentError, match="level must be one of"):
            q.add_check(lambda c: True, level="run", name="x")
        with pytest.raises(QueueArgumentError, match="on_fail='skip' is not possible"):
            q.add_check(lambda c: True, level="queue", name="x", on_fail="skip")

        async def slow(context: CheckContext) -> bool:
            return True

        with pytest.raises(QueueArgumentError, match="must be plain"):
            q.add_check(slow, level="step")
        q.add_check(slow, level="item")
        with pytest.raises(QueueArgumentError, match="exists already"):
            q.add_check(slow, level="item")
        with pytest.raises(QueueArgumentError, match="no check named"):
            q.remove_check("ghost")


# -- prompts -----------------------------------------------------------------------------------


@vt
async def test_a_prompt_is_answered_from_python() -> None:
    async with running() as (engine, q):

        async def locked_valves(context: CheckContext) -> bool | str:
            answer = await q.ask("Valves locked. Continue?", ["continue", "stop"])
            return answer == "continue" or "operator said stop"

        q.add_check(locked_valves, level="execution")
        q.add("wait", uid="a")
        q.start()
        await anyio.sleep(30)  # virtual time
        (prompt,) = q.state().prompts
        assert q.state().activity == "prompt"
        with pytest.raises(PromptError, match=r"'later' is not an answer.*'continue', 'stop'"):
            q.answer(prompt.id, "later")
        with pytest.raises(PromptError, match="no open prompt with id 'nope'"):
            q.answer("nope", "stop")
        q.answer(prompt.id, "continue")
        assert await q.wait() == "finished"
        answered = engine.log.recent(kinds="queue.prompt_answered")
        assert [(e.subject, e.payload) for e in answered] == [
            (prompt.id, {"choice": "continue", "source": "user"})
        ]


@vt
async def test_a_prompt_takes_its_default_after_the_timeout(virtual_clock: Any) -> None:
    async with running() as (engine, q):
        t0 = virtual_clock.monotonic()
        answer = await q.ask("Refill?", ["yes", "no"], timeout=300, default="no")
        assert answer == "no"
        assert virtual_clock.monotonic() - t0 == pytest.approx(300)
        (event,) = engine.log.recent(kinds="queue.prompt_answered")
        assert event.payload == {"choice": "no", "source": "timeout"}
        assert q.prompts() == ()


@vt
@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("", ["a"]), "question"),
        (("q", []), "non-empty list"),
        (("q", "yes"), "non-empty list"),
        (("q", ["a", "a"]), "distinct"),
        (("q", ["a"], 0), "timeout must be"),
        (("q", ["a"], 5), "needs a default"),
        (("q", ["a"], None, "b"), "default 'b' is not one of"),
    ],
)
async def test_bad_prompts_are_refused(args: tuple[Any, ...], match: str) -> None:
    async with running() as (engine, q):
        before = engine.log.last_seq
        with pytest.raises(QueueArgumentError, match=match):
            await q.ask(*args)
        assert engine.log.last_seq == before


@vt
async def test_a_cancelled_prompt_is_closed_and_recorded() -> None:
    async with running() as (engine, q):
        with anyio.move_on_after(5):
            await q.ask("Anyone there?", ["yes"])
        assert q.prompts() == ()
        (event,) = engine.log.recent(kinds="queue.prompt_answered")
        assert event.payload == {"choice": None, "source": "cancelled"}


# -- delays ------------------------------------------------------------------------------------


def starts(engine: Any) -> list[tuple[str, float]]:
    t0 = engine.log.recent(kinds="queue.started")[0].wall
    return [(e.subject, e.wall - t0) for e in engine.log.recent(kinds="queue.item_started")]


@vt
async def test_delays_before_the_first_and_after_each_item() -> None:
    async with running() as (engine, q):
        q.configure(delay_before_first=5, delay_default=2, delay_by_type={"blank": 10})
        q.add("wait", {"seconds": 1}, uid="a")
        q.add("wait", {"seconds": 1}, uid="blank", item_type="blank")
        q.add("wait", {"seconds": 1}, uid="own", item_type="blank", delay_after=0.5)
        q.add("wait", {"seconds": 1}, uid="last")
        q.start()
        assert await q.wait() == "finished"
        # 5 before the first; a (1) + default 2; blank (1) + its type's 10; own (1) + its 0.5
        assert starts(engine) == [("a", 5), ("blank", 8), ("own", 19), ("last", 20.5)]
        reasons = [e.payload["reason"] for e in engine.log.recent(kinds="queue.delay_started")]
        assert reasons == ["before the first item", "after item a", "after item blank",
                           "after item own"]  # fmt: skip


@vt
async def test_no_delay_after_the_last_item() -> None:
    async with running() as (engine, q):
        q.configure(delay_default=60)
        q.add("wait", {"seconds": 1}, uid="a")
        q.start()
        assert await q.wait() == "finished"
        assert engine.log.recent(kinds="queue.delay_started") == []


@vt
async def test_a_delay_can_be_skipped_or_changed_and_edits_count_after_it() -> None:
    async with running() as (engine, q):
        q.add("wait", {"seconds": 1}, uid="a", delay_after=100)
        q.add("wait", {"seconds": 1}, uid="b", delay_after=100)
        q.add("wait", {"seconds": 1}, uid="c")
        q.start()
        await anyio.sleep(11)  # virtual: 10 s into a's delay
        assert q.state().delay_remaining == pytest.approx(90)
        q.set_delay_remaining(5)
        q.add("wait", {"seconds": 1}, uid="x", position=1)  # made during the delay: runs next
        await anyio.sleep(5.5)  # virtual time
        assert started_uids(engine) == ["a", "x"]
        await anyio.sleep(1)  # x ran (1 s); b: no delay after x; virtual time
        assert started_uids(engine) == ["a", "x", "b"]
        await anyio.sleep(2)  # virtual time
        q.skip_delay()
        assert await q.wait() == "finished"
        assert starts(engine) == [("a", 0), ("x", 16), ("b", 17), ("c", 19.5)]
        ends = [e.payload["how"] for e in engine.log.recent(kinds="queue.delay_ended")]
        assert ends == ["elapsed", "skipped"]
        with pytest.raises(QueueStateError, match="no delay"):
            q.skip_delay()
        with pytest.raises(QueueArgumentError, match="seconds must be"):
            q.set_delay_remaining(-1)


@vt
async def test_cancel_ends_a_delay_at_once() -> None:
    async with running() as (engine, q):
        q.add("wait", uid="a", delay_after=1000)
        q.add("wait", uid="b")
        q.start()
        await anyio.sleep(10)  # virtual time
        q.cancel()
        assert await q.wait() == "cancelled"
        assert started_uids(engine) == ["a"]
        assert engine.log.recent(kinds="queue.delay_ended")[-1].payload == {"how": "stopped"}


@vt
async def test_bad_settings_are_refused() -> None:
    async with running() as (engine, q):
        before = engine.log.last_seq
        for bad, match in (
            ({"delay_default": -1}, "delay_default"),
            ({"delay_before_first": "5"}, "delay_before_first"),
            ({"delay_by_type": {"blank": None}}, r"delay_by_type\['blank'\]"),
            ({"delay_by_type": [1]}, "delay_by_type must be a dict"),
            ({"auto_resume": "no"}, "auto_resume"),
            ({"colour": 1}, "unknown settings"),
        ):
            with pytest.raises(TimeControlError, match=match):
                q.configure(**bad)
        assert engine.log.last_seq == before
