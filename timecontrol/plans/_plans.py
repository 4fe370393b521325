"""Built-in plans: `count`, `scan` (linear) and `list_scan`.

They check their arguments when called (not when the engine first runs them) and return
the plan generator. Each stages its devices, opens one run (plan name and arguments in the start
document), puts a checkpoint before every point, so that a pause replays at most the current
point, and closes the run and unstages whatever happens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._stubs import (
    PlanGen,
    checkpoint,
    mv,
    run_wrapper,
    sleep,
    stage_wrapper,
    trigger_and_read,
)

__all__ = ["count", "list_scan", "scan"]


def _names(devices: Sequence[Any]) -> list[str]:
    return [str(getattr(d, "name", d)) for d in devices]


def _check_detectors(detectors: Sequence[Any]) -> list[Any]:
    if isinstance(detectors, str) or not isinstance(detectors, Sequence):
        raise TypeError(f"detectors must be a list of devices, got {detectors!r}")
    return list(detectors)


def count(
    detectors: Sequence[Any],
    num: int | None = 1,
    delay: float = 0.0,
    *,
    md: dict[str, Any] | None = None,
) -> PlanGen:
    """Read `detectors` `num` times (forever if None), `delay` seconds apart.

    The delay is the pause between the end of one reading and the start of the next.
    Returns the number of readings taken.
    """
    dets = _check_detectors(detectors)
    if num is not None and not (isinstance(num, int) and num >= 1):
        raise ValueError(f"num must be an int >= 1 or None (forever), got {num!r}")
    if not (isinstance(delay, int | float) and delay >= 0):
        raise ValueError(f"delay must be a number of seconds >= 0, got {delay!r}")
    metadata = {
        "plan_name": "count",
        "detectors": _names(dets),
        "num_points": num,
        "num_intervals": None if num is None else num - 1,
        "plan_args": {"detectors": _names(dets), "num": num, "delay": delay},
        "hints": {"dimensions": [[["time"], "primary"]]},
        **(md or {}),
    }

    def points() -> PlanGen:
        i = 0
        while num is None or i < num:
            if i and delay:
                yield from sleep(delay)
            yield from checkpoint()
            yield from trigger_and_read(dets)
            i += 1
        return i

    return stage_wrapper(run_wrapper(points(), metadata), dets)


def list_scan(
    detectors: Sequence[Any],
    motor: Any,
    positions: Sequence[float],
    *,
    md: dict[str, Any] | None = None,
) -> PlanGen:
    """Move `motor` to each of `positions` in turn and read it and `detectors` there.

    Returns the number of points taken.
    """
    dets = _check_detectors(detectors)
    points_list = list(positions)
    if not points_list:
        raise ValueError("positions must not be empty")
    motor_name = str(getattr(motor, "name", motor))
    metadata = {
        "plan_name": "list_scan",
        "detectors": _names(dets),
        "motors": [motor_name],
        "num_points": len(points_list),
        "num_intervals": len(points_list) - 1,
        "plan_args": {"detectors": _names(dets), "motor": motor_name, "positions": points_list},
        "hints": {"dimensions": [[[motor_name], "primary"]]},
        **(md or {}),
    }

    def points() -> PlanGen:
        for position in points_list:
            yield from checkpoint()
            yield from mv(motor, position)
            yield from trigger_and_read([*dets, motor])
        return len(points_list)

    return stage_wrapper(run_wrapper(points(), metadata), [*dets, motor])


def scan(
    detectors: Sequence[Any],
    motor: Any,
    start: float,
    stop: float,
    num: int,
    *,
    md: dict[str, Any] | None = None,
) -> PlanGen:
    """Step `motor` through `num` evenly spaced positions from `start` to `stop` (inclusive),
    reading it and `detectors` at each. Returns the number of points taken."""
    if not (isinstance(num, int) and num >= 1):
        raise ValueError(f"num must be an int >= 1, got {num!r}")
    if num == 1:
        positions = [float(start)]
    else:
        step = (stop - start) / (num - 1)
        positions = [start + i * step for i in range(num)]
        positions[-1] = float(stop)  # exact end point despite rounding
    extra = {"plan_name": "scan", "plan_args_linear": {"start": start, "stop": stop, "num": num}}
    return list_scan(detectors, motor, positions, md={**extra, **(md or {})})
