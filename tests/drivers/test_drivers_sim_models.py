"""The simulated instruments' SCPI (no I/O) and the fault injector's bookkeeping."""

from __future__ import annotations

import pytest
from timecontrol.drivers import DriverError
from timecontrol.drivers.sim import (
    SIM_YAML,
    Faults,
    MultimeterModel,
    PowerSupplyModel,
    TemperatureControllerModel,
)


def test_common_commands_and_error_queue() -> None:
    psu = PowerSupplyModel()
    assert psu.handle("*IDN?") == "TimeControl,SIM-PSU,0001,1.0"
    assert psu.handle("*OPC?") == "1"
    assert psu.handle("ECHO? hello there") == "hello there"
    assert psu.handle("VOLT 5") is None
    assert psu.handle("VOLT?;*OPC?") == "+5.000000E+00;1"
    for bad in ("VOLT 31", "VOLT abc", "VOLT", "FROB 1"):
        assert psu.handle(bad) is None
    assert psu.handle("SYST:ERR?") == '-222,"Data out of range"'
    assert psu.handle("SYST:ERR?") == '-104,"Data type error"'
    assert psu.handle("SYST:ERR?") == '-109,"Missing parameter"'
    assert psu.handle("SYST:ERR?") == '-113,"Undefined header"'
    assert psu.handle("SYST:ERR?") == '+0,"No error"'
    assert psu.handle("") is None
    psu.handle("*RST")
    assert psu.handle("VOLT?") == "+0.000000E+00"


def test_error_queue_overflows_gracefully() -> None:
    psu = PowerSupplyModel()
    for _ in range(100):
        psu.handle("NOPE")
    entries = [psu.handle("SYST:ERR?") for _ in range(40)]
    assert entries[30] == '-113,"Undefined header"'
    assert entries[31] == '-350,"Queue overflow"'
    assert entries[32] == '+0,"No error"'
    psu.handle("NOPE")
    psu.handle("*CLS")
    assert psu.handle("SYST:ERR?") == '+0,"No error"'


def test_power_supply_output_and_current_limit() -> None:
    psu = PowerSupplyModel()
    psu.handle("VOLT 10;CURR 2")
    assert psu.handle("MEAS:VOLT?") == "+0.000000E+00"  # output off
    psu.handle("OUTP ON")
    assert psu.handle("OUTP?") == "1"
    assert psu.handle("MEAS:CURR?") == "+1.000000E+00"
    psu.handle("CURR 0.5")  # constant current: 0.5 A into 10 Ω is 5 V
    assert psu.handle("MEAS:VOLT?") == "+5.000000E+00"


def test_multimeter_ranges_and_overload() -> None:
    dmm = MultimeterModel(seed=1)
    assert float(dmm.handle("MEAS:VOLT:DC?") or "nan") == pytest.approx(1.2345, abs=1e-3)
    dmm.handle("VOLT:DC:RANG 0.5")  # not an allowed range
    assert dmm.handle("SYST:ERR?") == '-222,"Data out of range"'
    dmm.handle("VOLT:DC:RANG 0.1")
    assert dmm.handle("MEAS:VOLT:DC?") == "+9.90000E+37"  # overload


def test_temperature_ramps_toward_the_setpoint() -> None:
    now = [0.0]
    tc = TemperatureControllerModel(clock=lambda: now[0])
    tc.handle("RAMP 60;SETP 30")  # 60 K/min = 1 K/s
    now[0] = 4.0
    assert float(tc.handle("TEMP?") or "nan") == pytest.approx(24.0, abs=0.01)
    now[0] = 100.0
    assert float(tc.handle("TEMP?") or "nan") == pytest.approx(30.0, abs=0.01)
    assert float(tc.handle("HTR?") or "nan") == pytest.approx(20.0)


def test_faults_are_counted_and_scriptable() -> None:
    faults = Faults(late=0.1, drop=0.1, garble=0.1, seed=3)
    kinds = [faults.choose() for _ in range(1000)]
    for kind in ("late", "drop", "garble"):
        assert 50 < kinds.count(kind) < 150  # type: ignore[arg-type]
        assert faults.injected[kind] == kinds.count(kind)  # type: ignore[arg-type]
    faults.script("disconnect", None, "late")
    faults.enabled = False
    assert [faults.choose() for _ in range(4)] == ["disconnect", None, "late", None]
    garbled = faults.garble(b"12345")
    assert len(garbled) == 5
    assert b"\xff" in garbled
    with pytest.raises(DriverError):
        Faults(late=0.7, drop=0.7)
    with pytest.raises(DriverError):
        Faults(garble=-0.1)
    with pytest.raises(DriverError):
        faults.script("explode")  # type: ignore[arg-type]


def test_the_yaml_is_shipped_beside_the_code() -> None:
    assert SIM_YAML.is_file()
    assert SIM_YAML.suffix == ".yaml"
