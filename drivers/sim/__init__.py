"""Simulated instruments: pyvisa-sim devices, drivers for them, and a fault-injecting emulator.

- `SIM_LIBRARY` / `SIM_RESOURCES`: a power supply, a multimeter and a temperature controller on
  pyvisa-sim (``visa_library=SIM_LIBRARY``); `sim_lab()` connects all three.
- `Emulator`: the same instruments (`PowerSupplyModel`, ...) served over TCP
  (``serve_tcp()``) or a pty pair for the serial transport (``serve_pty()``), with `Faults`:
  late, dropped and garbled replies, and disconnects.
"""

from __future__ import annotations

from ._drivers import (
    SIM_LIBRARY,
    SIM_RESOURCES,
    SIM_YAML,
    SimLab,
    SimMultimeter,
    SimPowerSupply,
    SimTemperatureController,
    sim_lab,
)
from ._emulator import Emulator, FaultKind, Faults
from ._models import MultimeterModel, PowerSupplyModel, ScpiModel, TemperatureControllerModel

__all__ = [
    "SIM_LIBRARY",
    "SIM_RESOURCES",
    "SIM_YAML",
    "Emulator",
    "FaultKind",
    "Faults",
    "MultimeterModel",
    "PowerSupplyModel",
    "ScpiModel",
    "SimLab",
    "SimMultimeter",
    "SimPowerSupply",
    "SimTemperatureController",
    "TemperatureControllerModel",
    "sim_lab",
]
