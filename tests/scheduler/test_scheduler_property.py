"""Property: whatever the policies, pauses and run lengths, every fire time ends in exactly one
record, and runs never exceed the conflict policy's limit."""

from __future__ import annotations

from collections import Counter
from typing import Any

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scheduler_helpers import Every, covered, records_in

import timecontrol as tc
from timecontrol.scheduler import Scheduler
from timecontrol.testing import VirtualClock

policies = st.fixed_dictionaries(
    {
        "conflict": st.sampled_from(["skip", "queue", "concurrent"]),
        "max_queue": st.integers(1, 3),
        "max_instances": st.integers(1, 3),
        "misfire_grace": st.one_of(st.none(), st.sampled_from([0.1, 0.5, 1.0, 3.0])),
        "coalesce": st.sampled_from(["latest", "earliest", "all"]),
    }
)
# (seconds to wait, what to do then): pause/resume the scheduler, hold/release the engine
steps = st.lists(
    st.tuples(
        st.sampled_from([0.3, 0.7, 1.0, 2.5, 4.0]),
        st.sampled_from(["pause", "resume", "hold", "release", "run_now", "nothing"]),
    ),
    max_size=8,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    policy=policies,
    every=st.sampled_from([0.5, 1.0, 1.5]),
    durations=st.lists(st.sampled_from([0.0, 0.2, 0.9, 1.7, 3.5]), min_size=1, max_size=5),
    plan=steps,
    backend=st.sampled_from(["asyncio", "trio"]),
)
def test_every_fire_time_ends_in_exactly_one_record(
    policy: dict[str, Any],
    every: float,
    durations: list[float],
    plan: list[tuple[float, str]],
    backend: str,
) -> None:
    async def main() -> None:
        engine = tc.Engine()
        active = 0
        peak = 0
        n = 0

        @engine.action
        async def work() -> None:
            nonlocal active, peak, n
            active += 1
            peak = max(peak, active)
            n += 1
            try:
                await anyio.sleep(durations[n % len(durations)])
            finally:
                active -= 1

        sched = Scheduler(engine)
        t0 = engine.clock.time()
        trig = Every(every, t0)
        sched.add_job("work", trig, id="j", **policy)
        log = engine.log
        async with engine:
            for wait, action in plan:
                await anyio.sleep(wait)
                if action == "pause":
                    sched.pause()
                elif action == "resume":
                    sched.resume()
                elif action == "hold":
                    engine.hold_dispatch("test")
                elif action == "release":
                    engine.release_dispatch("test")
                elif action == "run_now":
                    sched.run_job("j")
            sched.resume()
            engine.release_dispatch("test")
            await anyio.sleep(3.0)  # virtual time
            stop = engine.clock.time()
        recs = records_in(log, "j")
        got = covered(recs, trig)
        assert not got or got == trig.fire_times(t0, max(got)), Counter(got)
        # Everything due well before the stop was decided (the stop cancels the rest).
        assert set(trig.fire_times(t0, stop - every - 0.01)) <= set(got)
        limit = policy["max_instances"] if policy["conflict"] == "concurrent" else 1
        assert peak <= limit
        runs = sum(1 for r in recs if r.started is not None)
        assert runs == n

    VirtualClock().run(main, backend=backend)  # type: ignore[arg-type]
