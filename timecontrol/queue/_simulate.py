"""The dry run: the queue played on virtual time, nothing run for real, nothing recorded.

Each pending item is placed on a timeline (`._timeline`, the executor's rules): the scheduled
start (or now, after the running items), the delay before the first item, then for each item
the delay after the previous one and its duration as learned from the Log; an item that
declares an overlap lets the next one start beside it at its learned signal offset plus its
``overlap_delay``. A scheduled stop cuts the timeline where the executor would stop. Every
item is checked (its plan registered, its kwargs still fitting its signature).

With ``simulate=True`` the items whose duration (or, for an overlapping item, signal offset)
the Log cannot tell are run, in a worker thread, on a fresh run engine over an in-memory Log
and a `VirtualClock`, so that a plan of hours is timed in milliseconds (NICOS's dry run does
the same for its scripts); the signals their plans give are timed too. Plans then talk to
their devices from that thread: use it with simulated devices only.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import anyio

from .._log import Log
from ..plans import RunEngine
from ._forecast import item_slot, running_lanes
from ._status import DryRun, DryRunItem
from ._timeline import Slot, place

if TYPE_CHECKING:
    from .._clock import Clock
    from ._control import Control
    from ._items import ItemRecord
    from ._registry import PlanRegistry

__all__ = ["dry_run"]

#: The longest a simulated plan may run, in virtual seconds (a plan that never ends).
SIMULATION_LIMIT: Final = 30 * 86_400.0


class _SimHost:
    """The narrow host a simulated run engine needs: a Log on the virtual clock, no gate."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.log = Log(clock=clock, ring_size=1_000)
        self.running = True

    def hold_dispatch(self, holder: str) -> None:
        """Nothing is dispatched in a simulation."""

    def release_dispatch(self, holder: str) -> None:
        """Nothing is dispatched in a simulation."""

    def cancel_running(self) -> int:
        """Nothing runs besides the plan."""
        return 0


#: What a simulation found for one item: its seconds, a problem, its signals' offsets.
Simulated = tuple[float | None, str | None, dict[str, float]]


def _simulate(plans: PlanRegistry, jobs: list[tuple[str, str, dict[str, Any]]],
              start: float) -> dict[str, Simulated]:  # fmt: skip
    """Run each (uid, plan, kwargs) on virtual time; {uid: (seconds, problem, signals)}
    where signals are {name: seconds from the plan's start} (the first of each). Blocking."""
    from ..testing import VirtualClock

    clock = VirtualClock(datetime.fromtimestamp(start, UTC))

    async def main() -> dict[str, Simulated]:
        run_engine = RunEngine(_SimHost(clock), handle_sigint=False, log_messages=False)
        signals: dict[str, float] = {}
        t0 = clock.monotonic()

        def on_signal(msg: Any) -> None:
            name = str(msg.args[0] if msg.args else msg.obj)
            signals.setdefault(name, clock.monotonic() - t0)

        run_engine.register_command("queue_signal", on_signal)
        out: dict[str, Simulated] = {}
        for uid, plan, kwargs in jobs:
            t0, signals = clock.monotonic(), {}
            problem = None
            try:
                with anyio.move_on_after(SIMULATION_LIMIT) as scope:
                    result = await run_engine.run(plans.build(plan, kwargs))
                    if result.paused:
                        problem = "it paused itself in simulation"
                        await run_engine.halt()
                if scope.cancelled_caught:
                    problem = f"it ran longer than {SIMULATION_LIMIT:.0f} s in simulation"
            except Exception as exc:
                problem = f"it failed in simulation: {type(exc).__name__}: {exc}"
            out[uid] = (clock.monotonic() - t0, problem, signals)
        return out

    return clock.run(main)


async def dry_run(queue: Control, *, simulate: bool) -> DryRun:
    """See `Queue.dry_run`."""
    model, clock = queue._model, queue._clock
    now = clock.time()
    start_at = model.schedule.get("start_at")
    start = start_at if isinstance(start_at, int | float) and start_at > now else now
    pending = model.runnable()
    problems: dict[str, str] = {}
    for item in pending:
        try:
            queue._plans.check_kwargs(item.plan, item.kwargs)
        except Exception as exc:
            problems[item.uid] = str(exc)
    slots = [item_slot(queue, item) for item in pending]
    simulated: dict[str, Simulated] = {}
    jobs = [(i.uid, i.plan, i.kwargs) for i, slot in zip(pending, slots, strict=True)
            if i.uid not in problems and (slot.duration is None or (
                i.overlap is not None and slot.overlap_after is None))]  # fmt: skip
    if simulate and jobs:
        with clock.hold_jumps():  # (our own clock must not jump while the thread works)
            simulated = await anyio.to_thread.run_sync(_simulate, queue._plans, jobs, start)
    by_uid = {i.uid: i for i in pending}
    slots = [_with_simulated(slot, by_uid[slot.uid], simulated, problems) for slot in slots]
    return _timeline(queue, slots, start, simulated, problems)


def _with_simulated(
    slot: Slot, item: ItemRecord, simulated: dict[str, Simulated], problems: dict[str, str]
) -> Slot:
    """`slot` completed by what its simulation found (what the Log knows comes first)."""
    if slot.uid not in simulated:
        return slot
    seconds, problem, signals = simulated[slot.uid]
    if problem is not None:
        problems[slot.uid] = problem
    duration = slot.duration if slot.duration is not None else seconds
    overlap_after = slot.overlap_after
    if overlap_after is None and item.overlap is not None and item.overlap in signals:
        overlap_after = signals[item.overlap] + item.overlap_delay
    return dataclasses.replace(slot, duration=duration, overlap_after=overlap_after)


def _timeline(
    queue: Control,
    slots: list[Slot],
    start: float,
    simulated: dict[str, Simulated],
    problems: dict[str, str],
) -> DryRun:
    model = queue._model
    ready = start
    first = model.settings.get("delay_before_first")
    if not queue.executing and isinstance(first, int | float):
        ready += first
    front, side, ready = running_lanes(queue, ready) if queue.executing else (None, None, ready)
    stop_at = model.schedule.get("stop_at")
    eta_aware = model.schedule.get("eta_aware", True)
    estimated = {s.uid: queue._durations.estimate(*_key(queue, s.uid)) is not None for s in slots}
    stopped: list[str] = []

    def stop(slot: Slot, t: float) -> bool:
        if not isinstance(stop_at, int | float):
            return False
        overrun = eta_aware and estimated[slot.uid] and t + (slot.duration or 0.0) > stop_at
        if t >= stop_at or overrun:
            stopped.append(f"the scheduled stop, before item {slot.uid!r}")
            return True
        return False

    placed, end = place(slots, ready=ready, front=front, side=side, stop=stop)
    unknown = sum(1 for s in slots[: len(placed)] if s.duration is None)
    items = tuple(
        DryRunItem(p.uid, model.items[p.uid].plan, p.start, p.end, estimated[p.uid],
                   problems.get(p.uid), p.overlaps)
        for p in placed
    )  # fmt: skip
    if not placed:
        end = ready
    report = tuple(f"item {uid!r}: {why}" for uid, why in problems.items())
    return DryRun(items, start, end - start, unknown, stopped[0] if stopped else None, report)


def _key(queue: Control, uid: str) -> tuple[str, dict[str, Any], str | None]:
    item = queue._model.items[uid]
    return item.plan, item.kwargs, item.item_type
