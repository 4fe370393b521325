"""Instruments inside timecontrol: as the action of scheduled jobs, and as run-engine devices.

- Scheduled jobs on pyvisa-sim under virtual time (hours of schedule in milliseconds; VISA
  calls run on their worker thread in real time, which virtual time waits for), and on the TCP
  emulator in real time (real sockets), where a job meets an injected fault and the Engine's
  Log holds both sides: ``action.failed`` and the instrument's own ``instrument.*`` events.
- `timecontrol.plans`: ``count([instrument], num=3)`` and a ``scan`` that moves a supply.
"""

from __future__ import annotations

from typing import Any

import pytest
from timecontrol.drivers import Instrument
from timecontrol.drivers.sim import (
    SIM_LIBRARY,
    SIM_RESOURCES,
    Emulator,
    Faults,
    PowerSupplyModel,
    SimMultimeter,
    SimPowerSupply,
)

from timecontrol import Engine, Event

HOUR = 3600.0


def succeeded(engine: Engine) -> list[Event]:
    return engine.log.recent(kinds="action.succeeded")


# -- scheduled jobs ------------------------------------------------------------------------------


@pytest.mark.timecontrol(autojump_threshold=0.01)
async def test_jobs_on_pyvisa_sim_in_virtual_time() -> None:
    async with (
        Engine() as engine,
        SimPowerSupply(SIM_RESOURCES["psu"], name="psu", visa_library=SIM_LIBRARY) as psu,
        SimMultimeter(SIM_RESOURCES["dmm"], name="dmm", visa_library=SIM_LIBRARY) as dmm,
    ):

        @engine.action
        async def sample(volts: float) -> dict[str, Any]:
            await psu.voltage.set(volts)
            await psu.output.set(True)
            readings = {**await psu.read(), **await dmm.read()}
            return {
                "volts": await psu.voltage.get(),
                "readings": {key: r["value"] for key, r in readings.items()},
                "stamped": readings["dmm_dc_voltage"]["timestamp"],
            }

        start = engine.clock.time()
        dues = [start + HOUR, start + 2 * HOUR, start + 3 * HOUR]
        for due, volts in zip(dues, (1.5, 2.5, 3.5), strict=True):
            engine.submit(sample, at=due, kwargs={"volts": volts}, subject="sample")
        await engine.wait_idle()
        events = succeeded(engine)
        started = engine.log.recent(kinds="action.started")

    assert [e.payload["result"]["volts"] for e in events] == [1.5, 2.5, 3.5]
    for event, due in zip(events, dues, strict=True):
        result = event.payload["result"]
        assert set(result["readings"]) == {
            "psu_measured_voltage",
            "psu_measured_current",
            "dmm_dc_voltage",
            "dmm_resistance",
        }
        assert 4.99 < result["readings"]["psu_measured_voltage"] < 5.01  # pyvisa-sim's dialogue
        assert 1.2344 < result["readings"]["dmm_dc_voltage"] < 1.2346
        assert result["stamped"] >= due  # readings are stamped on the engine's (virtual) clock
        assert event.subject == "sample"
    assert [e.payload["due"] for e in started] == dues
    assert [e.payload["late"] for e in started] == pytest.approx([0, 0, 0], abs=1e-6)


@pytest.mark.anyio
async def test_jobs_on_the_tcp_emulator_meet_a_dropped_reply() -> None:
    emulator = Emulator(PowerSupplyModel(), Faults(late_delay=1.0))

    class Supply(SimPowerSupply):
        default_timeout = 0.2

    async with (
        emulator.serve_tcp() as address,
        Engine() as engine,
        Supply(address, name="psu") as psu,
    ):
        await psu.current_limit.set(3.0)
        await psu.output.set(True)

        @engine.action
        async def step(volts: float) -> float:
            # One transaction: jobs queue up behind the failing one, and without it the next
            # job's setting could come between this job's setting and its measurement.
            async with psu.transaction():
                await psu.voltage.set(volts)
                # Not declared idempotent: a lost reply fails the job, it is not retried.
                return await psu.query_float("MEAS:VOLT?")

        # Faults apply to replies, and writes have none: the 2nd job's reading is dropped.
        emulator.faults.script(None, "drop")
        now = engine.clock.time()
        for n, volts in enumerate((2.0, 4.0, 6.0, 8.0), start=1):
            engine.submit(step, at=now + 0.02 * n, kwargs={"volts": volts}, subject=f"step{n}")
        await engine.wait_idle()
        ok = {e.subject: e.payload["result"] for e in succeeded(engine)}
        failed = engine.log.recent(kinds="action.failed")
        instrument = [e for e in engine.log.recent() if e.kind.startswith("instrument.")]

    assert ok == {"step1": 2.0, "step3": 6.0, "step4": 8.0}  # each job read its own value
    assert [(e.subject, e.payload["error"]) for e in failed] == [("step2", "InstrumentTimeout")]
    # The same Log tells the instrument's side: what timed out, and the recovery before step3.
    assert [e.kind for e in instrument] == [
        "instrument.connected",
        "instrument.timeout",
        "instrument.error",
        "instrument.resync",
    ]
    assert instrument[1].payload["command"] == "MEAS:VOLT?"
    assert {e.subject for e in instrument} == {"psu"}


# -- run-engine devices ------------------------------------------------------------------------


def check_device_shape(readings: dict[str, Any], described: dict[str, Any]) -> None:
    """bluesky's shapes: same keys in read() and describe(), dtypes that fit the values."""
    assert set(readings) == set(described)
    kinds = {"number": (int, float), "integer": (int,), "boolean": (bool,), "string": (str,)}
    for key, reading in readings.items():
        assert set(reading) == {"value", "timestamp"}
        assert isinstance(reading["timestamp"], float)
        key_info = described[key]
        assert {"source", "dtype", "shape"} <= set(key_info)
        assert key_info["shape"] == []
        assert isinstance(reading["value"], kinds[key_info["dtype"]])


@pytest.mark.anyio
async def test_device_shapes_are_consistent() -> None:
    async with SimMultimeter(SIM_RESOURCES["dmm"], name="dmm", visa_library=SIM_LIBRARY) as dmm:
        check_device_shape(await dmm.read(), await dmm.describe())
        check_device_shape(await dmm.read_configuration(), await dmm.describe_configuration())
        assert dmm.hints == {"fields": ["dmm_dc_voltage", "dmm_resistance"]}


@pytest.mark.anyio
async def test_count_with_an_instrument_as_detector() -> None:
    plans = pytest.importorskip("timecontrol.plans")
    documents: list[tuple[str, dict[str, Any]]] = []
    async with (
        Engine() as engine,
        SimMultimeter(SIM_RESOURCES["dmm"], name="dmm", visa_library=SIM_LIBRARY) as dmm,
    ):
        run_engine = plans.RunEngine(engine, handle_sigint=False)
        run_engine.subscribe(lambda name, doc: documents.append((name, doc)))
        result = await run_engine.run(plans.count([dmm], num=3))
        described = await dmm.describe()
    assert result.exit_status == "success"
    assert result.plan_result == 3
    names = [name for name, _ in documents]
    assert names == ["start", "descriptor", "event", "event", "event", "stop"]
    descriptor = documents[1][1]
    assert set(descriptor["data_keys"]) == set(described)
    for key, info in described.items():
        assert {k: descriptor["data_keys"][key][k] for k in info} == info
    config = descriptor["configuration"]["dmm"]["data"]
    assert config == {"dmm_voltage_range": 10.0, "dmm_nplc": 1.0}
    events = [doc for name, doc in documents if name == "event"]
    assert [e["seq_num"] for e in events] == [1, 2, 3]
    for event in events:
        assert set(event["data"]) == set(described)
        assert 1.2344 < event["data"]["dmm_dc_voltage"] < 1.2346
        assert 999.9 < event["data"]["dmm_resistance"] < 1000.1
        assert set(event["timestamps"]) == set(described)


@pytest.mark.anyio
async def test_scan_moves_an_instrument() -> None:
    plans = pytest.importorskip("timecontrol.plans")
    events: list[dict[str, Any]] = []
    async with (
        Engine() as engine,
        SimMultimeter(SIM_RESOURCES["dmm"], name="dmm", visa_library=SIM_LIBRARY) as dmm,
        SimPowerSupply(SIM_RESOURCES["psu"], name="psu", visa_library=SIM_LIBRARY) as psu,
    ):
        run_engine = plans.RunEngine(engine, handle_sigint=False)
        run_engine.subscribe(lambda name, doc: events.append(doc), "event")
        result = await run_engine.run(plans.scan([dmm], psu, 1.0, 3.0, 3))
        assert result.exit_status == "success"
        assert await psu.voltage.get() == 3.0  # set() moved the primary setting
    assert len(events) == 3
    assert {"dmm_dc_voltage", "psu_measured_voltage", "psu_measured_current"} <= set(
        events[0]["data"]
    )


def test_instrument_fits_the_run_engines_protocols() -> None:
    plans = pytest.importorskip("timecontrol.plans")
    psu = SimPowerSupply(SIM_RESOURCES["psu"], visa_library=SIM_LIBRARY)
    assert isinstance(psu, Instrument)
    assert isinstance(psu, plans.Readable)
    assert isinstance(psu, plans.Movable)
