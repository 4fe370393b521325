"""A day of measurements through the experiment queue, on virtual time.

    python examples/day_of_measurements.py      # a lab day, in about a second

Blanks, samples and standards of a morning queue run one after another, then an afternoon
queue. Before the first item the operator is asked whether the tray is loaded (answered by an
"operator" task here; nobody answering in 10 minutes means "no"); blanks are followed by a
5-minute purge; a reading above 990 ends its sample early (a conditional); a sample added
half-way runs in its turn; the afternoon starts with an overlapped pair: the furnace's degas
tells the queue (a signal) once it has ramped, and a minute later the first standard starts
beside it, on the queue's second run engine (the furnace and the detector are each held by one
item at a time); the queue stops by itself before 17:00 if the next item would end after it
(its ETA is learned from the Log). Everything is in ``day.sqlite``: run the script
again and the next morning starts where this day stopped, with what it learned about how
long each item takes (and when the degas gives its signal, so the ETA counts the overlap),
and with its conditional, which the store keeps like the items.
"""

from __future__ import annotations

import random
from collections.abc import Generator
from pathlib import Path
from typing import Any

import anyio

import timecontrol as tc
from timecontrol.plans import Msg, RunEngine, SimDetector, count
from timecontrol.queue import CheckContext, Queue, signal
from timecontrol.testing import VirtualClock

DB = Path("day.sqlite")


def build(engine: tc.Engine) -> Queue:
    """The queue with its plans and checks (code: registered at every start, by name) and its
    conditional (stored with the queue: on the next morning it is back from the store, and
    adding the same definition again changes nothing)."""
    queue = engine.queue
    rng = random.Random(7)
    detector = SimDetector("abs", lambda: round(rng.uniform(100, 1000)), exposure=30.0)

    @queue.plan
    def measure(readings: int = 5) -> Any:
        return count([detector], num=readings, delay=30.0)

    @queue.plan
    def degas(minutes: float = 40.0) -> Generator[Any, Any, None]:
        yield Msg("checkpoint")
        yield Msg("sleep", None, 600.0)  # the furnace ramps up
        yield from signal("ramped")  # the next item may start beside it (see fill)
        yield Msg("sleep", None, minutes * 60 - 600.0)

    async def tray_loaded(context: CheckContext) -> bool | str:
        answer = await queue.ask("Tray loaded?", ["yes", "no"], timeout=600, default="no")
        return answer == "yes" or "the tray is not loaded"

    queue.add_check(tray_loaded, level="execution")
    queue.add_conditional("abs > 990", "truncate", name="saturated")
    queue.configure(delay_by_type={"blank": 300}, delay_default=60)
    return queue


def fill(queue: Queue) -> None:
    queue.add_queue("afternoon")
    for n in range(12):
        kind = "blank" if n % 4 == 0 else "sample"
        queue.add("measure", {"readings": 20}, item_type=kind, metadata={"position": n})
    # An overlapped pair: a minute after the degas has ramped, the first standard starts.
    queue.add("degas", {"minutes": 40}, queue="afternoon", item_type="degas",
              overlap="ramped", overlap_delay=60, resources=["furnace"])  # fmt: skip
    for _ in range(10):
        queue.add("measure", {"readings": 30}, queue="afternoon", item_type="standard",
                  resources=["detector"])  # fmt: skip


async def operator(queue: Queue) -> None:
    """Answers the first question after two minutes, then adds a sample at noon."""
    await anyio.sleep(120)
    (prompt,) = queue.prompts()
    print(f"  operator: {prompt.question!r} -> yes")
    queue.answer(prompt.id, "yes")
    await anyio.sleep(4 * 3600)
    queue.add("measure", {"readings": 10}, item_type="sample", position=0, queue="afternoon",
              metadata={"position": "rush"})  # fmt: skip
    print("  operator: a rush sample added to the afternoon queue")


async def main() -> None:
    engine = tc.Engine(store=DB)
    RunEngine(engine, handle_sigint=False)
    queue = build(engine)
    clock = engine.clock
    async with engine:
        if not queue.items():
            fill(queue)
        report = await queue.dry_run()
        print(f"{clock.now():%H:%M} dry run: {len(report.items)} items, "
              f"{report.unknown} of unknown duration")  # fmt: skip
        queue.schedule_stop(clock.now().replace(hour=17, minute=0))
        queue.start()
        async with anyio.create_task_group() as tg:
            tg.start_soon(operator, queue)
            async with queue.subscribe() as feed:
                last = beside = None
                async for state in feed:
                    if state.overlapping and state.overlapping.uid != beside:
                        beside = state.overlapping.uid
                        front = state.running.item_type if state.running else "-"
                        print(f"{clock.now():%H:%M} {state.overlapping.item_type:8} "
                              f"beside the {front} (overlap)")  # fmt: skip
                    running = state.running.uid if state.running else None
                    if running and running != last:
                        eta = queue.eta()
                        unknown = f" + {eta.unknown} unknown" if eta.unknown else ""
                        print(f"{clock.now():%H:%M} {state.running.item_type:8} "  # type: ignore[union-attr]
                              f"left {state.items_left:2}  eta {eta.seconds / 3600:.1f} h"
                              f"{unknown}")  # fmt: skip
                        last = running
                    if state.status == "idle" and state.last_stop:
                        break
            tg.cancel_scope.cancel()
        print(f"{clock.now():%H:%M} stopped: {state.last_stop}")
        for plan, stats in (await queue.stats()).items():
            print(f"{plan}: {stats.succeeded} succeeded, {stats.truncated} truncated, "
                  f"median {stats.median_s:.0f} s")  # fmt: skip


if __name__ == "__main__":
    day = "2026-03-31" if DB.exists() else "2026-03-30"  # a second run: the next morning
    VirtualClock(f"{day}T08:00+00:00").run(main)
