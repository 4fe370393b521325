"""The lab's scheduled-operations guide, on timecontrol: jobs, profiles, alarms, history.

    python examples/scheduled_operations.py          # two virtual days, in about a second

Every feature of the guide's scheduler, in its own terms: an hourly voltage check on a power
supply with an instrument *profile* applied before each run, a nightly equipment test that
fails and raises an *alarm*, a weekly and a monthly job, a one-time job, an *execution limit*
inside a start/end window, *conflict policies*, and the *history and statistics* the guide's
REST API returns (executions by id, running jobs, today's counts, the next runs, per-job
totals). The instruments are pyvisa-sim's simulated ones; jobs and history live in
``operations.sqlite`` (records older than 30 days are cleaned up daily, totals kept).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import anyio
from timecontrol.drivers.sim import SimLab, sim_lab

import timecontrol as tc
from timecontrol.scheduler import ExecutionRecord, HookRun, Job
from timecontrol.testing import VirtualClock

DB = Path("operations.sqlite")
BERLIN = "Europe/Berlin"
LOCAL = ZoneInfo(BERLIN)


def build(engine: tc.Engine, lab: SimLab) -> None:
    """Actions, hooks, the alarm and the guide's jobs (declared at every start)."""
    sched = engine.scheduler

    @engine.action
    async def get_voltage() -> float:  # schedule_type "measurement"
        return float(await lab.psu.measured_voltage.get())

    @engine.action
    async def equipment_test(test_name: str) -> None:  # schedule_type "equipment_test"
        raise ConnectionError(f"{test_name}: oscilloscope_1 did not answer *IDN?")

    @engine.action
    async def capture_state() -> dict[str, float]:  # schedule_type "state_capture"
        return {"setpoint": await lab.tc.setpoint.get(), "temp": await lab.tc.temperature.get()}

    @sched.hook(name="high_resolution_profile")
    async def high_resolution(run: HookRun, volts: float, amps: float) -> None:
        await lab.psu.voltage.set(volts)  # the equipment profile, applied before each run
        await lab.psu.current_limit.set(amps)
        await lab.psu.output.set(True)
        await anyio.sleep(0.5)  # the output settles before the measurement

    @sched.hook
    async def output_off(run: HookRun) -> None:
        await lab.psu.output.set(False)

    def alarm(job: Job, record: ExecutionRecord) -> None:  # on_failure_alarm
        when = record.scheduled.astimezone(LOCAL)
        print(f"ALARM {when:%a %H:%M} {job.name}: {record.status} {record.message}")

    sched.on_failure(alarm)
    day0 = datetime.fromisoformat("2026-03-02T00:00+01:00")
    jobs: list[tuple[str, tc.Trigger, dict[str, object]]] = [
        ("get_voltage", tc.interval(hours=1, start=day0), {
            "id": "voltage", "name": "Hourly Voltage Check", "tags": ["measurement"],
            "profile": ("high_resolution_profile", {"volts": 5.0, "amps": 0.5}),
            "after": ["output_off"]}),
        ("equipment_test", tc.daily("03:00", tz=BERLIN), {
            "id": "nightly", "name": "Nightly Equipment Test", "tags": ["equipment_test"],
            "kwargs": {"test_name": "connection"}}),
        ("capture_state", tc.weekly("mon", "09:00", tz=BERLIN), {
            "id": "weekly", "name": "Weekly State Capture", "tags": ["state_capture"]}),
        ("capture_state", tc.monthly(15, "12:00", tz=BERLIN), {
            "id": "monthly", "name": "Monthly State Capture", "tags": ["state_capture"]}),
        ("capture_state", tc.once("2026-03-03T10:00", tz=BERLIN), {
            "id": "once", "name": "One-time Capture", "tags": ["state_capture"]}),
        ("get_voltage", tc.cron("*/30 9-17 * * 1-5", tz=BERLIN), {
            "id": "limited", "name": "Limited Daytime Check", "max_executions": 30,
            "start": day0, "end": datetime.fromisoformat("2026-04-01T00:00+01:00"),
            "conflict": "queue", "misfire_grace": 300, "coalesce": "latest", "alarm": False}),
    ]  # fmt: skip
    for action, trigger, options in jobs:
        engine.add_job(action, trigger, replace_existing=True, **options)  # type: ignore[arg-type]


async def main(hours: float) -> None:
    async with sim_lab() as lab:
        engine = tc.Engine(store=DB)
        build(engine, lab)
        async with engine:
            await anyio.sleep(hours * 3600)
            await report(engine)


async def report(engine: tc.Engine) -> None:
    """What the guide's statistics endpoints return, from the Log."""
    stats = await engine.scheduler_stats()
    print(f"jobs {stats.jobs} (enabled {stats.enabled}, disabled {stats.disabled})")
    print(f"running now: {sorted(engine.scheduler.running())}")
    print(f"today: {dict(sorted(stats.today.items()))}")
    print(f"jobs by type: {dict(sorted(stats.jobs_by_tag.items()))}")
    for job_id, when in stats.upcoming[:3]:
        print(f"upcoming {when.astimezone(LOCAL):%a %d %H:%M} {job_id}")
    for job in engine.jobs():
        s = await engine.job_stats(job.id)
        mean = "-" if s.mean_duration is None else f"{s.mean_duration:.3f} s"
        print(
            f"{job.id:<8} total {s.total:>3}  ok {s.succeeded:>3}  failed {s.failed:>2}  "
            f"mean {mean}  next {s.next_run and f'{s.next_run.astimezone(LOCAL):%m-%d %H:%M}'}"
        )
    last = (await engine.history("voltage", limit=1, newest_first=True))[0]
    again = await engine.scheduler.execution(last.id)
    print(f"execution {again.id}: {again.job_id} {again.status} {again.result} V")


if __name__ == "__main__":
    # A fresh file each run: the virtual clock starts at the same instant every time.
    DB.unlink(missing_ok=True)
    VirtualClock("2026-03-02T00:00+01:00").run(main, 47.5)
