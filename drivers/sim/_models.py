"""Simulated SCPI instruments: state and command tables, with no I/O (the emulator adds that).

They answer the same SCPI as the pyvisa-sim devices in ``instruments.yaml`` (and behave a little
more like the real thing: a supply's output switch matters, a temperature ramps), plus an
``ECHO? <text>`` query that returns its argument, for tests that need every reply to be unique.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "MultimeterModel",
    "PowerSupplyModel",
    "ScpiModel",
    "TemperatureControllerModel",
]

# Standard SCPI error codes (SCPI-99, chapter 21).
_UNDEFINED_HEADER = (-113, "Undefined header")
_DATA_TYPE = (-104, "Data type error")
_OUT_OF_RANGE = (-222, "Data out of range")
_MISSING_PARAMETER = (-109, "Missing parameter")
_QUEUE_OVERFLOW = (-350, "Queue overflow")
_QUEUE_SIZE = 32


@dataclass(frozen=True)
class _Spec:
    kind: type
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:+.6E}"
    return str(value)


class ScpiModel:
    """A simulated SCPI instrument: common commands, an error queue and declared settings.

    Subclasses declare `settings` (header → spec) and add queries in `_queries()`. `handle()`
    takes one program message (units separated by ``;``) and returns the response message, or
    ``None`` when there is nothing to answer; errors go to the queue read by ``SYST:ERR?``.

    Args:
        clock: monotonic seconds, for models whose state changes with time.
        seed: seed of the measurement noise.
    """

    idn: ClassVar[str] = "TimeControl,SIM-GENERIC,0000,1.0"
    settings: ClassVar[dict[str, _Spec]] = {}

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, seed: int = 0) -> None:
        self.clock = clock
        self.rng = random.Random(seed)
        self.errors: deque[tuple[int, str]] = deque()
        self.values: dict[str, Any] = {}
        self.messages = 0
        self.reset()
        self._table: dict[str, Callable[[str], str | None]] = {
            "*IDN?": lambda _: self.idn,
            "*OPC?": lambda _: "1",
            "*OPC": lambda _: None,
            "*WAI": lambda _: None,
            "*RST": lambda _: self.reset(),
            "*CLS": lambda _: self.errors.clear(),
            "*TST?": lambda _: "0",
            "SYST:ERR?": lambda _: self._pop_error(),
            "SYSTEM:ERROR?": lambda _: self._pop_error(),
            "SYST:ERR:NEXT?": lambda _: self._pop_error(),
            "ECHO?": lambda arg: arg,
        }
        self._table.update(self._queries())

    def reset(self) -> None:
        """``*RST``: every setting back to its default."""
        self.values = {header: spec.default for header, spec in self.settings.items()}

    def _queries(self) -> dict[str, Callable[[str], str | None]]:
        return {}

    def push_error(self, code: int, message: str) -> None:
        """Append to the error queue (the last slot becomes "Queue overflow" when full)."""
        if len(self.errors) >= _QUEUE_SIZE - 1:
            if not self.errors or self.errors[-1] != _QUEUE_OVERFLOW:
                self.errors.append(_QUEUE_OVERFLOW)
            return
        self.errors.append((code, message))

    def _pop_error(self) -> str:
        code, message = self.errors.popleft() if self.errors else (0, "No error")
        return f'{code:+d},"{message}"'

    def handle(self, message: str) -> str | None:
        """Execute one program message; return the response message or ``None``."""
        self.messages += 1
        replies: list[str] = []
        for raw_unit in message.split(";"):
            unit = raw_unit.strip()
            if not unit:
                continue  # an empty message is legal
            header, _, argument = unit.partition(" ")
            reply = self._execute(header.upper().lstrip(":"), argument.strip())
            if reply is not None:
                replies.append(reply)
        return ";".join(replies) if replies else None

    def _execute(self, header: str, argument: str) -> str | None:
        handler = self._table.get(header)
        if handler is not None:
            return handler(argument)
        if header.endswith("?") and header[:-1] in self.settings:
            return _fmt(self.values[header[:-1]])
        spec = self.settings.get(header)
        if spec is None:
            self.push_error(*_UNDEFINED_HEADER)
            return None
        if not argument:
            self.push_error(*_MISSING_PARAMETER)
            return None
        self._set(header, spec, argument)
        return None

    def _set(self, header: str, spec: _Spec, argument: str) -> None:
        value: Any
        try:
            if spec.kind is bool:
                text = argument.upper()
                if text not in ("1", "0", "ON", "OFF"):
                    raise ValueError(argument)
                value = text in ("1", "ON")
            elif spec.kind is float:
                value = float(argument)
            elif spec.kind is int:
                value = int(argument)
            else:
                value = argument
        except ValueError:
            self.push_error(*_DATA_TYPE)
            return
        if spec.low is not None and spec.high is not None and not spec.low <= value <= spec.high:
            self.push_error(*_OUT_OF_RANGE)
            return
        if spec.choices is not None and value not in spec.choices:
            self.push_error(*_OUT_OF_RANGE)
            return
        self.values[header] = value


class PowerSupplyModel(ScpiModel):
    """A 30 V / 3 A bench supply into a 10 Ω load: ``VOLT``, ``CURR``, ``OUTP``, ``MEAS:...?``."""

    idn = "TimeControl,SIM-PSU,0001,1.0"
    settings: ClassVar[dict[str, _Spec]] = {
        "VOLT": _Spec(float, 0.0, 0.0, 30.0),
        "CURR": _Spec(float, 0.1, 0.0, 3.0),
        "OUTP": _Spec(bool, False),
    }
    load_ohms = 10.0

    def _queries(self) -> dict[str, Callable[[str], str | None]]:
        return {"MEAS:VOLT?": self._measure_voltage, "MEAS:CURR?": self._measure_current}

    def _output(self) -> tuple[float, float]:
        if not self.values["OUTP"]:
            return 0.0, 0.0
        volts, limit = self.values["VOLT"], self.values["CURR"]
        amps = volts / self.load_ohms
        if amps > limit:  # constant-current mode: the supply lowers its voltage
            return limit * self.load_ohms, limit
        return volts, amps

    def _measure_voltage(self, _: str) -> str:
        return _fmt(self._output()[0])

    def _measure_current(self, _: str) -> str:
        return _fmt(self._output()[1])


class MultimeterModel(ScpiModel):
    """A DC multimeter: ``MEAS:VOLT:DC?``, ``MEAS:RES?``, range and integration time."""

    idn = "TimeControl,SIM-DMM,0002,1.0"
    settings: ClassVar[dict[str, _Spec]] = {
        "VOLT:DC:RANG": _Spec(float, 10.0, choices=(0.1, 1.0, 10.0, 100.0, 1000.0)),
        "VOLT:DC:NPLC": _Spec(float, 1.0, choices=(0.02, 0.2, 1.0, 10.0, 100.0)),
    }
    #: The simulated input: a 1.2345 V source and a 1 kΩ resistor, with a little noise.
    source_volts = 1.2345
    source_ohms = 1000.0

    def _queries(self) -> dict[str, Callable[[str], str | None]]:
        return {"MEAS:VOLT:DC?": self._volts, "MEAS:RES?": self._ohms}

    def _volts(self, _: str) -> str:
        if abs(self.source_volts) > self.values["VOLT:DC:RANG"] * 1.2:
            return "+9.90000E+37"  # SCPI's overload value
        return _fmt(self.source_volts + self.rng.gauss(0.0, 1e-5))

    def _ohms(self, _: str) -> str:
        return _fmt(self.source_ohms + self.rng.gauss(0.0, 1e-2))


class TemperatureControllerModel(ScpiModel):
    """A temperature controller: ``SETP`` (°C), ``RAMP`` (K/min, 0 = as fast as it can),
    ``TEMP?`` and ``HTR?`` (heater %). The temperature moves toward the setpoint over time."""

    idn = "TimeControl,SIM-TC,0003,1.0"
    settings: ClassVar[dict[str, _Spec]] = {
        "SETP": _Spec(float, 20.0, -50.0, 200.0),
        "RAMP": _Spec(float, 0.0, 0.0, 100.0),
    }
    #: K/s when RAMP is 0.
    max_rate = 1.0

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, seed: int = 0) -> None:
        super().__init__(clock=clock, seed=seed)
        self.temperature = 20.0
        self._updated = clock()

    def _queries(self) -> dict[str, Callable[[str], str | None]]:
        return {"TEMP?": self._temp, "HTR?": self._heater}

    def _advance(self) -> None:
        now = self.clock()
        elapsed, self._updated = now - self._updated, now
        ramp = self.values["RAMP"]
        rate = ramp / 60.0 if ramp > 0 else self.max_rate
        gap = self.values["SETP"] - self.temperature
        step = min(abs(gap), rate * elapsed)
        self.temperature += step if gap > 0 else -step

    def _temp(self, _: str) -> str:
        self._advance()
        return _fmt(self.temperature + self.rng.gauss(0.0, 1e-3))

    def _heater(self, _: str) -> str:
        self._advance()
        power = min(100.0, max(0.0, 20.0 + 10.0 * (self.values["SETP"] - self.temperature)))
        return _fmt(power)
