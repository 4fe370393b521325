"""``timecontrol demo``: a lab morning in miniature, on simulated instruments.

What it shows, in about 14 s of real time (or a fraction of a second with ``--fast``, on
virtual time):

* scheduled jobs with real triggers: reaction sampling at time points (5 samples 1 s apart,
  then 3 samples 2 s apart), a reference reading on an interval, a stirrer whose runs take
  longer than its interval (``conflict="skip"``: the overlaps are recorded as skipped), a
  calibration that fails (a failure alarm fires), and a heater set-point job;
* a `Command` limiter: the multimeter takes at most 4 readings a second, so readings that fall
  due together wait their turn (``limiter.throttled``);
* a `Control` watchdog: the heater must hear its set-point every 1.5 s; the set-point job is
  paused for a while, the watchdog trips and switches the heater to a safe set-point, and the
  next guarded call is refused (``OverTimeLimit``), which the job records as a failure;
* simulated instruments (pyvisa-sim): a power supply, a multimeter, a temperature controller;
* a plan on the run engine: multimeter readings, paused by an operator at a checkpoint and
  resumed without repeating a reading;
* everything as events in a SQLite file, summarised at the end from that file.
"""

from __future__ import annotations

import importlib
import math
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

import anyio

from . import __version__
from ._engine import Engine
from ._events import Event, known_kinds
from .limiters import Command, Control
from .plans import count
from .scheduler import ExecutionRecord, Job
from .scheduler._records import RECORD_KINDS, RUN_STATUSES
from .stores import read_events
from .triggers import interval, once, timepoints

__all__ = ["run_demo"]

# What the live feed shows (routine successes of the stirrer and set-point are left out).
_FEED_KINDS = (
    "job.succeeded",
    "job.failed",
    "job.skipped",
    "limiter.throttled",
    "limiter.tripped",
    "limiter.rejected",
    "run.start",
    "run.event",
    "run.stop",
    "instrument.connected",
)


def _describe(event: Event, t0: float) -> str | None:
    p = event.payload
    at = f"+{event.wall - t0:6.2f}s"
    kind, subject = event.kind, event.subject
    if kind == "job.succeeded":
        if subject in ("stir", "setpoint"):
            return None
        return f"{at}  {subject:<10} ran        → {_short(p.get('result'))}"
    if kind == "job.failed":
        return f"{at}  {subject:<10} FAILED     {p.get('error')}: {p.get('message')}"
    if kind == "job.skipped":
        return f"{at}  {subject:<10} skipped    {p.get('reason')}"
    if kind == "limiter.throttled":
        return f"{at}  {subject:<10} throttled  waited {p['waited'] * 1000:.0f} ms for its turn"
    if kind == "limiter.tripped":
        return f"{at}  {subject:<10} TRIPPED    not fed for {p['since_feed']:.2f} s"
    if kind == "limiter.rejected":
        return f"{at}  {subject:<10} refused    a call after the trip ({p.get('limit')})"
    if kind == "instrument.connected":
        address = str(p.get("address", "")).split(" (")[0]
        return f"{at}  {subject:<10} connected  {p.get('driver')} at {address}"
    if kind == "run.start":
        return f"{at}  {'run':<10} start      {p.get('plan_name', '')} {p.get('uid', '')[:8]}"
    if kind == "run.event":
        data = ", ".join(f"{k} {_short(v)}" for k, v in p.get("data", {}).items())
        return f"{at}  {'run':<10} event {p.get('seq_num', '')}    {data}"
    if kind == "run.stop":
        return f"{at}  {'run':<10} stop       {p.get('exit_status', '')}"
    return None


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_short(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


async def run_demo(db: Path, out: TextIO, fast: bool) -> None:
    """Run the demonstration, writing its Log to `db` and a live feed and summary to `out`."""
    try:
        # Imported by name: `timecontrol.drivers` is installed from the top-level drivers/
        # folder, outside this package's source tree.
        sim_lab = importlib.import_module("timecontrol.drivers.sim").sim_lab
    except ImportError as exc:  # pyvisa / pyvisa-sim are the `visa` extra
        raise SystemExit(
            f"timecontrol demo needs the simulated instruments ({exc}); "
            "install them with: pip install 'timecontrol[visa]'"
        ) from None

    engine = Engine(store=db)
    out.write(f"timecontrol {__version__} demo — log file {db}\n")
    out.write("  sampling: 5 samples 1 s apart, then 3 samples 2 s apart; reference every 1.5 s\n")
    out.write("  stirrer every 2 s taking 3 s (skip); calibration at +2.5 s (fails)\n")
    out.write("  heater watchdog 1.5 s; its set-point job is paused from +5 s to +9 s\n\n")

    async with engine, sim_lab(timeout=2.0) as lab:
        demo = _Demo(engine, lab, out)
        demo.add_jobs()
        async with anyio.create_task_group() as tg:
            tg.start_soon(demo.feed)
            await demo.operate()
            await anyio.sleep(0.1)
            tg.cancel_scope.cancel()
        dmm_stats = demo.dmm_bus.statistics()
        watchdog_stats = demo.heater_watchdog.statistics()

    _summary(db, out, dmm_stats, watchdog_stats, demo.alarms, fast)


class _Demo:
    """The demo's instruments, limiters, actions and operator, on one running engine."""

    def __init__(self, engine: Engine, lab: Any, out: TextIO) -> None:
        self.engine, self.lab, self.out = engine, lab, out
        self.t0 = engine.clock.time()
        self.alarms: list[str] = []
        for event in engine.log.recent(kinds="instrument.connected"):
            out.write(f"{_describe(event, self.t0)}\n")
        self.dmm_bus = Command(rate=4, name="dmm")  # the multimeter: at most 4 readings a second

        async def heater_safe() -> None:
            # The safety action: a safe set-point, sent even though the watchdog tripped.
            with lab.tc.unguarded():
                await lab.tc.setpoint.set(20.0)

        self.heater_watchdog = Control(1.5, heater_safe, name="heater")
        self.set_heater = self.heater_watchdog(self._set_heater)
        for action in (self.sample, self.reference, self.stir, self.calibrate, self.setpoint):
            engine.action(action)

    async def _set_heater(self, celsius: float) -> None:
        await self.lab.tc.setpoint.set(celsius)

    async def sample(self, volume_ul: float) -> dict[str, float]:
        """Draw a sample; read it on the multimeter (through its rate limiter)."""
        async with self.dmm_bus:
            volts = await self.lab.dmm.dc_voltage.get()
        elapsed = self.engine.clock.time() - self.t0
        # The simulator's reading is constant; the reaction's progress is modelled here.
        absorbance = round(volts * (1 - math.exp(-elapsed / 4)), 4)
        return {"volume_ul": volume_ul, "absorbance": absorbance}

    async def reference(self) -> float:
        """A reference reading: competes with the samples for the multimeter."""
        async with self.dmm_bus:
            volts: float = await self.lab.dmm.dc_voltage.get()
            return round(volts, 4)

    async def stir(self, seconds: float) -> None:
        """A stirring cycle that takes longer than its interval."""
        await self.lab.psu.output.set(True)
        await anyio.sleep(seconds)
        await self.lab.psu.output.set(False)

    async def calibrate(self) -> None:
        """A calibration whose reference is out of range."""
        await anyio.sleep(0.05)
        raise RuntimeError("reference cell reads 2.91, expected 0.95..1.05")

    async def setpoint(self, celsius: float) -> None:
        """Tell the heater its set-point (feeds the watchdog)."""
        await self.set_heater(celsius)

    def alarm(self, job: Job, record: ExecutionRecord) -> None:
        """The failure alarm: printed in the feed and counted in the summary."""
        line = f"ALARM: {job.id} {record.status}: {record.error}: {record.message}"
        self.alarms.append(line)
        self.out.write(f"+{self.engine.clock.time() - self.t0:6.2f}s  {line}\n")

    def add_jobs(self) -> None:
        """The morning's jobs."""
        engine = self.engine
        engine.scheduler.on_failure(self.alarm)
        start = engine.clock.now()
        engine.add_job(
            "sample", timepoints.pairs((5, 1), (3, 2)), id="sample", kwargs={"volume_ul": 20.0}
        )
        engine.add_job(
            "reference", interval(seconds=1.5, anchor=start), id="reference", max_executions=6
        )
        engine.add_job(
            "stir",
            interval(seconds=2, anchor=start),
            id="stir",
            kwargs={"seconds": 3.0},
            conflict="skip",
            max_executions=3,
        )
        engine.add_job("calibrate", once(start + timedelta(seconds=2.5)), id="calibrate")
        engine.add_job(
            "setpoint", interval(seconds=1, anchor=start), id="setpoint", kwargs={"celsius": 37.0}
        )

    async def feed(self) -> None:
        """The live feed: every interesting event as it happens."""
        kinds = [k for k in _FEED_KINDS if k in known_kinds()]
        async with self.engine.log.subscribe(kinds=kinds) as sub:
            async for event in sub:
                line = _describe(event, self.t0)
                if line is not None:
                    self.out.write(line + "\n")
                    self.out.flush()

    def say(self, subject: str, what: str) -> None:
        """An operator's line in the feed."""
        self.out.write(f"+{self.engine.clock.time() - self.t0:6.2f}s  {subject:<10} {what}\n")

    async def operate(self) -> None:
        """The operator: pauses the set-point job (the watchdog trips), then runs a plan."""
        engine, t0, say = self.engine, self.t0, self.say
        async with self.heater_watchdog:
            await engine.clock.sleep_until_wall(t0 + 5.0)
            engine.pause_job("setpoint")
            say("setpoint", "paused     (nobody feeds the heater watchdog now)")
            await engine.clock.sleep_until_wall(t0 + 9.0)
            engine.resume_job("setpoint")
            say("setpoint", "resumed    (its next run is refused once: OverTimeLimit)")
            await engine.clock.sleep_until_wall(t0 + 10.25)
            engine.remove_job("setpoint")
        say("heater", "watchdog stopped; set-point job removed")
        await engine.clock.sleep_until_wall(t0 + 11.5)
        await _plan(engine, self.lab, say)


async def _plan(engine: Engine, lab: Any, say: Callable[[str, str], None]) -> None:
    """A plan on the run engine, paused by an operator at a checkpoint and resumed."""
    say("run", "count      6 multimeter readings 0.3 s apart; deferred pause requested at +0.7 s")

    async def operator() -> None:
        await anyio.sleep(0.7)
        engine.request_pause(defer=True)  # lands at the plan's next checkpoint

    async with anyio.create_task_group() as tg:
        tg.start_soon(operator)
        result = await engine.run(count([lab.dmm], num=6, delay=0.3), sample="demo")
    say("run", f"paused     at a checkpoint (state: {engine.state}, paused={result.paused})")
    await anyio.sleep(1.0)
    result = await engine.resume()
    say("run", f"resumed    and finished: {result.exit_status}, nothing read twice")


def _summary(
    db: Path,
    out: TextIO,
    dmm: Any,
    watchdog: Any,
    alarms: list[str],
    fast: bool,
) -> None:
    events = read_events(db)
    kinds = Counter(e.kind for e in events)
    out.write(f"\nsummary, read back from {db} ({len(events)} events):\n")
    out.write("  job         runs  ok  failed  skipped  mean duration\n")
    records = [ExecutionRecord.from_event(e) for e in events if e.kind in RECORD_KINDS]
    for job_id in dict.fromkeys(r.job_id for r in records):
        mine = [r for r in records if r.job_id == job_id]
        ran = [r for r in mine if r.status in RUN_STATUSES]
        ok = sum(r.status == "success" for r in ran)
        skipped = sum(r.count for r in mine if r.status == "skipped")
        durations = [r.duration for r in ran if r.duration is not None]
        mean = f"{sum(durations) / len(durations) * 1000:.0f} ms" if durations else "-"
        out.write(f"  {job_id:<10} {len(ran):>5} {ok:>3} {len(ran) - ok:>7} {skipped:>8}  {mean}\n")
    out.write(
        f"  multimeter limiter: {dmm.calls} readings, {dmm.throttled} waited "
        f"(longest {dmm.longest_wait * 1000:.0f} ms)\n"
    )
    out.write(f"  heater watchdog: {watchdog.trips} trip(s), {watchdog.rejected} call refused\n")
    out.write(f"  alarms: {len(alarms)}\n")
    runs = kinds.get("run.stop", 0)
    if runs:
        out.write(f"  run engine: {runs} run(s), {kinds.get('run.event', 0)} event document(s)\n")
    late = [e.payload["late"] for e in events if e.kind == "job.started" and "late" in e.payload]
    if late:
        worst = max(late) * 1000
        note = " (virtual time: exact)" if fast else ""
        out.write(f"  job start lateness: max {worst:.2f} ms{note}\n")
    out.write(f"  explore: timecontrol log {db} --kind job.failed\n")
