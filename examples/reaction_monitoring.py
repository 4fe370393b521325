"""Reaction monitoring with scheduled jobs: run it, stop it, run it again.

    python examples/reaction_monitoring.py            # one virtual day, in about a second
    python examples/reaction_monitoring.py --real     # the first minutes, on the real clock

A reaction is sampled at time points (hein_control style: 6 samples 60 s apart, then 10 samples
300 s apart), a reference is read every 15 minutes during working hours (cron, Berlin time),
and a nightly calibration fails and raises an alarm. Jobs, their state and their history live
in ``reaction.sqlite``: run the script twice and the second run continues the first one's jobs
(`replace_existing=True` keeps their progress), settling what fell due in between by the
misfire and coalesce policies.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import anyio

import timecontrol as tc
from timecontrol.scheduler import ExecutionRecord, Job
from timecontrol.testing import VirtualClock

DB = Path("reaction.sqlite")


async def main(hours: float) -> None:
    engine = tc.Engine(store=DB)
    rng = random.Random(1)

    @engine.action
    async def sample(volume_ul: float) -> float:
        await anyio.sleep(2)  # the autosampler draws and injects
        return round(rng.gauss(0.8, 0.05), 3)

    @engine.action
    async def reference() -> float:
        await anyio.sleep(1)
        return 1.0

    @engine.action
    async def calibrate() -> None:
        raise RuntimeError("reference cell out of range")

    def alarm(job: Job, record: ExecutionRecord) -> None:
        print(f"ALARM {record.scheduled:%Y-%m-%d %H:%M} {job.id}: {record.message}")

    engine.scheduler.on_failure(alarm)
    engine.add_job(
        "sample",
        tc.timepoints.pairs((6, 60), (10, 300)),
        id="kinetics",
        kwargs={"volume_ul": 20.0},
        replace_existing=True,
    )
    engine.add_job(
        "reference",
        tc.cron("*/15 9-17 * * 1-5", tz="Europe/Berlin"),
        id="reference",
        conflict="skip",
        misfire_grace=60,
        replace_existing=True,
    )
    engine.add_job(
        "calibrate", tc.daily("02:00", tz="Europe/Berlin"), id="calibrate", replace_existing=True
    )
    for job in engine.jobs():
        print(f"{job.id:<10} {job.trigger.explain()}")

    async with engine:
        await anyio.sleep(hours * 3600)
        for job in engine.jobs():
            stats = await engine.job_stats(job.id)
            print(
                f"{job.id:<10} runs {stats.runs:>3}  ok {stats.succeeded:>3}  "
                f"failed {stats.failed:>2}  next {stats.next_run}"
            )


if __name__ == "__main__":
    if "--real" in sys.argv:
        anyio.run(main, 0.1)
    else:
        VirtualClock("2026-03-30T08:00+02:00").run(main, 24.0)
