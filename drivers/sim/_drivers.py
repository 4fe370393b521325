"""Drivers for the simulated instruments, and a one-call simulated lab for demos and tests.

The drivers are ordinary `ScpiInstrument` subclasses: pointed at a real instrument that speaks
the same SCPI, they drive it unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, NamedTuple

from .._scpi import Measurement, ScpiInstrument, Setting

__all__ = [
    "SIM_LIBRARY",
    "SIM_RESOURCES",
    "SIM_YAML",
    "SimLab",
    "SimMultimeter",
    "SimPowerSupply",
    "SimTemperatureController",
    "sim_lab",
]

#: The pyvisa-sim device file shipped with the package.
SIM_YAML = Path(__file__).with_name("instruments.yaml")
#: The ``visa_library`` spec that loads it: pass as ``visa_library=SIM_LIBRARY``.
SIM_LIBRARY = f"{SIM_YAML}@sim"
#: The simulated instruments' VISA resource names.
SIM_RESOURCES = {
    "psu": "TCPIP0::psu.sim::inst0::INSTR",
    "dmm": "USB0::0x1AB1::0x0588::SIM-DMM-0002::0::INSTR",
    "tc": "ASRL3::INSTR",
}


class SimPowerSupply(ScpiInstrument):
    """A 30 V / 3 A bench power supply; `set()` writes the voltage."""

    idn_pattern = r",SIM-PSU,"
    voltage = Setting("VOLT", float, limits=(0.0, 30.0), unit="V", primary=True)
    current_limit = Setting("CURR", float, limits=(0.0, 3.0), unit="A")
    output = Setting("OUTP", bool)
    measured_voltage = Measurement("MEAS:VOLT?", float, unit="V")
    measured_current = Measurement("MEAS:CURR?", float, unit="A")


class SimMultimeter(ScpiInstrument):
    """A DC multimeter; `read()` measures voltage and resistance."""

    idn_pattern = r",SIM-DMM,"
    voltage_range = Setting(
        "VOLT:DC:RANG", float, choices=(0.1, 1.0, 10.0, 100.0, 1000.0), unit="V"
    )
    nplc = Setting("VOLT:DC:NPLC", float, choices=(0.02, 0.2, 1.0, 10.0, 100.0))
    dc_voltage = Measurement("MEAS:VOLT:DC?", float, unit="V")
    resistance = Measurement("MEAS:RES?", float, unit="Ohm")


class SimTemperatureController(ScpiInstrument):
    """A temperature controller; `set()` writes the setpoint."""

    idn_pattern = r",SIM-TC,"
    setpoint = Setting("SETP", float, limits=(-50.0, 200.0), unit="degC", primary=True)
    ramp_rate = Setting("RAMP", float, limits=(0.0, 100.0), unit="K/min")
    temperature = Measurement("TEMP?", float, unit="degC")
    heater = Measurement("HTR?", float, unit="%")


class SimLab(NamedTuple):
    """The three simulated instruments, connected."""

    psu: SimPowerSupply
    dmm: SimMultimeter
    tc: SimTemperatureController


@asynccontextmanager
async def sim_lab(*, visa_library: str = SIM_LIBRARY, **options: Any) -> AsyncIterator[SimLab]:
    """Connect the three simulated instruments on pyvisa-sim; close them on exit.

    ``async with sim_lab() as lab: await lab.psu.set(5.0)`` — what ``timecontrol demo`` needs.
    `options` go to every instrument (e.g. ``timeout=0.5``).
    """
    async with AsyncExitStack() as stack:
        lab = SimLab(
            SimPowerSupply(SIM_RESOURCES["psu"], name="psu", visa_library=visa_library, **options),
            SimMultimeter(SIM_RESOURCES["dmm"], name="dmm", visa_library=visa_library, **options),
            SimTemperatureController(
                SIM_RESOURCES["tc"], name="tc", visa_library=visa_library, **options
            ),
        )
        for instrument in lab:
            await stack.enter_async_context(instrument)
        yield lab
