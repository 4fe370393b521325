"""The dry run: the queue played on virtual time, nothing run for real, nothing recorded.

Each pending item is placed on a timeline: the scheduled start (or now), the delay before the
first item, then for each item the delay after the previous one and its duration as learned
from the Log; a scheduled stop cuts the timeline where the executor would stop. Every item is
checked (its plan registered, its kwargs still fitting its signature).

With ``simulate=True`` the items whose duration the Log cannot tell are run, in a worker
thread, on a fresh run engine over an in-memory Log and a `VirtualClock`, so that a plan of
hours is timed in milliseconds (NICOS's dry run does the same for its scripts). Plans then
talk to their devices from that thread: use it with simulated devices only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import anyio

from .._log import Log
from ..plans import RunEngine
from ._status import DryRun, DryRunItem

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


def _simulate(plans: PlanRegistry, jobs: list[tuple[str, str, dict[str, Any]]],
              start: float) -> dict[str, tuple[float | None, str | None]]:  # fmt: skip
    """Run each (uid, plan, kwargs) on virtual time; {uid: (seconds, problem)}. Blocking."""
    from ..testing import VirtualClock

    clock = VirtualClock(datetime.fromtimestamp(start, UTC))

    async def main() -> dict[str, tuple[float | None, str | None]]:
        run_engine = RunEngine(_SimHost(clock), handle_sigint=False, log_messages=False)
        run_engine.register_command("queue_signal", lambda msg: None)  # (overlaps: not here)
        out: dict[str, tuple[float | None, str | None]] = {}
        for uid, plan, kwargs in jobs:
            t0 = clock.monotonic()
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
            out[uid] = (clock.monotonic() - t0, problem)
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
    estimates = {i.uid: queue._durations.estimate(i.plan, i.kwargs, i.item_type) for i in pending}
    simulated: dict[str, tuple[float | None, str | None]] = {}
    jobs = [(i.uid, i.plan, i.kwargs) for i in pending
            if estimates[i.uid] is None and i.uid not in problems]  # fmt: skip
    if simulate and jobs:
        with clock.hold_jumps():  # (our own clock must not jump while the thread works)
            simulated = await anyio.to_thread.run_sync(_simulate, queue._plans, jobs, start)
    return _timeline(queue, pending, start, estimates, simulated, problems)


def _timeline(
    queue: Control,
    pending: list[ItemRecord],
    start: float,
    estimates: dict[str, float | None],
    simulated: dict[str, tuple[float | None, str | None]],
    problems: dict[str, str],
) -> DryRun:
    model = queue._model
    t = start
    first = model.settings.get("delay_before_first")
    if not queue.executing and isinstance(first, int | float):
        t += first
    stop_at = model.schedule.get("stop_at")
    eta_aware = model.schedule.get("eta_aware", True)
    placed: list[DryRunItem] = []
    stopped_by = None
    unknown = 0
    previous: ItemRecord | None = queue._current
    for item in pending:
        if previous is not None:
            t += queue._delay_after(previous)
        seconds, problem = simulated.get(item.uid, (estimates[item.uid], None))
        if problem is not None:
            problems[item.uid] = problem
        known = estimates[item.uid] is not None
        if seconds is None or (item.uid not in simulated and not known):
            unknown += 1
        duration = seconds or 0.0
        overrun = eta_aware and known and t + duration > stop_at if stop_at is not None else False
        if isinstance(stop_at, int | float) and (t >= stop_at or overrun):
            stopped_by = f"the scheduled stop, before item {item.uid!r}"
            break
        problem = problems.get(item.uid)
        placed.append(DryRunItem(item.uid, item.plan, t, t + duration, known, problem))
        t += duration
        previous = item
    report = tuple(f"item {uid!r}: {why}" for uid, why in problems.items())
    return DryRun(tuple(placed), start, t - start, unknown, stopped_by, report)
