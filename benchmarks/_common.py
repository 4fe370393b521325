"""Shared helpers for the benchmark modules: results, statistics, timing, loop stalls, CPU time.

Every ``benchmarks/bench_*.py`` module exposes ``run(quick: bool) -> dict[str, dict]``; each
value is built with `result` (``{"value": number | None, "unit": str, ...}``). Targets are
written as strings with an explicit direction, e.g. ``"<= 2"`` or ``">= 50000"`` (see
`check_target`, which `run.py` uses to print pass / MISS).

Import it as ``from _common import ...`` or ``from benchmarks._common import ...``: `run.py`
makes both work (and both name the same module).
"""

from __future__ import annotations

import gc
import math
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Self

import anyio
from anyio.abc import TaskGroup

__all__ = [
    "GCPauses",
    "Result",
    "StallTicker",
    "check_target",
    "cpu_time",
    "fmt_value",
    "load_average",
    "mean",
    "median",
    "per_call_us",
    "percentile",
    "platform_note",
    "result",
    "runs_note",
    "summary_ms",
    "thread_cpu_time",
]

Result = dict[str, Any]


# -- results ---------------------------------------------------------------------------------


def result(
    value: float | int | None,
    unit: str,
    *,
    target: str | None = None,
    note: str | None = None,
    **extra: Any,
) -> Result:
    """One benchmark figure. `target` is a string like ``"<= 2"`` or ``">= 50000"``.

    Non-finite values become None (JSON has no NaN); extra keyword fields are kept as given
    (``peer=``, ``informational=True``, raw samples summarised, ...).
    """
    if value is not None:
        value = float(value) if isinstance(value, float) else value
        if isinstance(value, float) and not math.isfinite(value):
            value = None
    out: Result = {"value": value, "unit": unit}
    if target is not None:
        out["target"] = target
    if note is not None:
        out["note"] = note
    out.update(extra)
    return out


_TARGET_RE = re.compile(r"^\s*(<=|>=|≤|≥|<|>|==|=)\s*([-+]?[\d_,]*\.?\d+(?:[eE][-+]?\d+)?)")
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": lambda v, t: v <= t,
    "≤": lambda v, t: v <= t,
    ">=": lambda v, t: v >= t,
    "≥": lambda v, t: v >= t,
    "<": lambda v, t: v < t,
    ">": lambda v, t: v > t,
    "==": lambda v, t: v == t,
    "=": lambda v, t: v == t,
}


def _higher_is_better(key: str, unit: str) -> bool:
    u = unit.replace(" ", "").lower()
    return "/s" in u or u.endswith("per_s") or key.endswith(("per_s", "_pct_executed"))


def check_target(key: str, entry: Result) -> bool | None:
    """True (met), False (missed) or None (no target, no value, or a target not understood).

    Accepted target forms: a string ``"<= 2"``, ``">= 50,000"``, ``"≤ 2 ms"`` (operator first,
    then a number; anything after the number is ignored); a dict ``{"max": 2}`` /
    ``{"min": 5e4}``; or a bare number, read as a maximum unless the unit is a rate (``/s``)
    or ``"better": "higher"`` is given.
    """
    target = entry.get("target")
    value = entry.get("value")
    if target is None or not isinstance(value, int | float) or isinstance(value, bool):
        return None
    if isinstance(target, str):
        m = _TARGET_RE.match(target)
        if m is None:
            return None
        limit = float(m.group(2).replace(",", "").replace("_", ""))
        return _OPS[m.group(1)](float(value), limit)
    if isinstance(target, dict):
        ok: bool | None = None
        if isinstance(target.get("max"), int | float):
            ok = value <= target["max"]
        if isinstance(target.get("min"), int | float):
            ok = (ok is not False) and value >= target["min"]
        return ok
    if isinstance(target, int | float) and not isinstance(target, bool):
        better = entry.get("better")
        higher = (
            better == "higher"
            if better in ("higher", "lower")
            else _higher_is_better(key, str(entry.get("unit", "")))
        )
        return value >= target if higher else value <= target
    return None


def fmt_value(value: Any) -> str:
    """A number printed with about 4 significant figures (thousands separated)."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) or (abs(value) >= 1000 and float(value).is_integer()):
        return f"{int(value):,}"
    a = abs(value)
    if a >= 1000:
        return f"{value:,.0f}"
    if a >= 100:
        return f"{value:.1f}"
    if a >= 10:
        return f"{value:.2f}"
    if a >= 0.01 or a == 0:
        return f"{value:.3f}"
    return f"{value:.3g}"


# -- statistics ------------------------------------------------------------------------------


def percentile(data: Iterable[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation (numpy's default); NaN if empty."""
    xs = sorted(data)
    if not xs:
        return math.nan
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def median(data: Iterable[float]) -> float:
    """The 50th percentile."""
    return percentile(data, 50.0)


def mean(data: Sequence[float]) -> float:
    """The arithmetic mean; NaN if empty."""
    return sum(data) / len(data) if data else math.nan


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """median / p99 / max of durations given in seconds, in milliseconds."""
    xs = sorted(seconds)
    return {
        "median_ms": percentile(xs, 50) * 1e3,
        "p99_ms": percentile(xs, 99) * 1e3,
        "max_ms": (xs[-1] if xs else math.nan) * 1e3,
    }


# -- timing ----------------------------------------------------------------------------------


def cpu_time() -> float:
    """CPU seconds used by the whole process so far (every thread, user + system)."""
    return time.process_time()


def thread_cpu_time() -> float:
    """CPU seconds used by the calling thread so far."""
    return time.thread_time()


def per_call_us(
    fn: Callable[[int], object],
    n: int,
    repeat: int = 5,
    *,
    setup: Callable[[], object] | None = None,
) -> tuple[float, list[float]]:
    """Best (lowest) microseconds per call over `repeat` runs of ``fn(n)`` (`n` calls each).

    `fn` runs the loop itself (so that no Python call per iteration is added by this helper).
    Returns the best run and every run's figure. The best run is the figure to compare
    (timeit's convention): other processes and threads can only add time, never remove it;
    each run is long (``n`` calls), so the GC's share and eviction costs are included. GC stays
    enabled: its cost is part of the real cost of the code measured.
    """
    runs: list[float] = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        fn(n)
        runs.append((time.perf_counter() - t0) / n * 1e6)
    return min(runs), runs


def runs_note(runs: Sequence[float], fmt: str = ".2f") -> str:
    """``"best 1.20 of 5 runs (1.31, 1.20, ...)"``-style summary of per-run figures."""
    return f"best of {len(runs)} runs (" + ", ".join(format(r, fmt) for r in runs) + ")"


# -- the event loop --------------------------------------------------------------------------


def _schedstat_reader() -> Callable[[], float] | None:
    """Seconds the *calling thread* has waited for a CPU so far (Linux), else None.

    The third field of ``/proc/thread-self/schedstat`` is the run-queue delay in ns: time the
    thread was runnable but no CPU ran it (other threads or processes had them).
    """
    import os

    try:
        fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
        os.pread(fd, 64, 0).split()[1]
    except (OSError, IndexError, AttributeError):
        return None

    def read() -> float:
        return int(os.pread(fd, 64, 0).split()[1]) * 1e-9

    return read


class StallTicker(AbstractAsyncContextManager["StallTicker"]):
    """Measure how long the event loop is blocked: a task sleeps `period` seconds in a loop.

    Each wake-up records its *stall*: the time since the previous wake-up minus `period`
    (never negative). A loop that is never blocked shows stalls of a few tens of µs (timer
    granularity); a loop blocked for 5 ms shows a stall of about 5 ms.

    For each stall it also records what the loop's thread did meanwhile, to tell the causes
    apart: `cpu_used` (seconds of CPU the loop's thread used: the loop's own work) and, on
    Linux, `runq_wait` (seconds it was runnable but had no CPU: other threads or processes had
    the CPUs). What is left (stall - cpu - runq) was spent off the CPU without being runnable:
    on a 1-thread loop that is waiting for the GIL (or blocking I/O).

    Use as ``async with StallTicker() as ticker: ...``, then `max_ms`, `p99_ms`, `blocks`.
    Works under asyncio and trio (anyio).
    """

    def __init__(self, period: float = 0.001) -> None:
        self.period = period
        self.stalls: list[float] = []  # seconds
        self.wakeups: list[float] = []  # perf_counter() at each wake-up (stall i ends there)
        self.cpu_used: list[float] = []  # loop-thread CPU seconds during gap i
        self.runq_wait: list[float] = []  # loop-thread run-queue seconds during gap i (Linux)
        self._tg: TaskGroup | None = None
        self._scope: anyio.CancelScope | None = None

    async def _tick(self, started: anyio.Event) -> None:
        period, clock, cpu = self.period, time.perf_counter, time.thread_time
        stalls, wakeups, cpu_used, runq_wait = (
            self.stalls,
            self.wakeups,
            self.cpu_used,
            self.runq_wait,
        )
        runq = _schedstat_reader()  # opened here: bound to the loop's thread
        with anyio.CancelScope() as scope:
            self._scope = scope
            prev, prev_cpu = clock(), cpu()
            prev_rq = runq() if runq is not None else 0.0
            started.set()
            while True:
                await anyio.sleep(period)
                now, now_cpu = clock(), cpu()
                stalls.append(max(0.0, now - prev - period))
                wakeups.append(now)
                cpu_used.append(now_cpu - prev_cpu)
                if runq is not None:
                    now_rq = runq()
                    runq_wait.append(now_rq - prev_rq)
                    prev_rq = now_rq
                prev, prev_cpu = now, now_cpu

    async def __aenter__(self) -> Self:
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        started = anyio.Event()
        tg.start_soon(self._tick, started)
        await started.wait()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        assert self._scope is not None
        self._scope.cancel()
        return await self._tg.__aexit__(exc_type, exc, tb)

    def reset(self) -> None:
        """Forget the stalls recorded so far (e.g. after a warm-up)."""
        for xs in (self.stalls, self.wakeups, self.cpu_used, self.runq_wait):
            xs.clear()

    def blocks(self, threshold_ms: float = 0.0) -> list[tuple[float, float, float]]:
        """``(stall_seconds, start, end)`` of every stall above `threshold_ms`, longest first.

        ``[start, end]`` (``perf_counter`` times) is when the loop was blocked.
        """
        out = [
            (s, end - s, end)
            for s, end in zip(self.stalls, self.wakeups, strict=True)
            if s * 1e3 > threshold_ms
        ]
        return sorted(out, reverse=True)

    def causes(self, threshold_ms: float = 2.0) -> dict[str, float]:
        """Where the loop's thread spent the gaps whose stall exceeds `threshold_ms` (ms, summed).

        ``gap``: wall time of those gaps (stall + period); ``loop_cpu``: the loop's thread on a
        CPU (its callbacks, the GC); ``no_cpu``: runnable but waiting for a CPU (Linux only,
        else 0); ``gil_or_idle``: neither, i.e. waiting for the GIL, blocked in I/O, or asleep
        in the loop's selector (on a busy loop: the GIL). ``count``: how many gaps.
        """
        gap = loop_cpu = no_cpu = 0.0
        count = 0
        has_rq = len(self.runq_wait) == len(self.stalls)
        for i, s in enumerate(self.stalls):
            if s * 1e3 <= threshold_ms:
                continue
            count += 1
            g = s + self.period
            c = min(g, self.cpu_used[i])
            gap += g
            loop_cpu += c
            no_cpu += min(g - c, self.runq_wait[i]) if has_rq else 0.0
        return {
            "count": count,
            "gap": gap * 1e3,
            "loop_cpu": loop_cpu * 1e3,
            "no_cpu": no_cpu * 1e3,
            "gil_or_idle": (gap - loop_cpu - no_cpu) * 1e3,
        }

    @property
    def stalls_ms(self) -> list[float]:
        """Every stall recorded, in milliseconds."""
        return [s * 1e3 for s in self.stalls]

    @property
    def max_ms(self) -> float:
        """The longest stall, in milliseconds (NaN if none recorded)."""
        return max(self.stalls) * 1e3 if self.stalls else math.nan

    @property
    def p99_ms(self) -> float:
        """The 99th percentile stall, in milliseconds."""
        return percentile(self.stalls, 99) * 1e3

    @property
    def ticks(self) -> int:
        """How many wake-ups were recorded."""
        return len(self.stalls)


class GCPauses:
    """Record the garbage collector's pauses while active (``with GCPauses() as gcp:``).

    A diagnostic for loop-stall benchmarks: a full (generation 2) collection traverses every
    tracked container, so it can block the loop for milliseconds in a large process.
    """

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []  # (generation, seconds)
        self.starts: list[float] = []  # perf_counter() when each pause began
        self._t0 = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.pauses.append((int(info["generation"]), time.perf_counter() - self._t0))
            self.starts.append(self._t0)

    def __enter__(self) -> Self:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def count(self, generation: int) -> int:
        """How many collections of `generation` ran."""
        return sum(1 for g, _ in self.pauses if g == generation)

    def overlapping(self, start: float, end: float, generation: int = 2) -> float:
        """Seconds of `generation` collections inside the interval [start, end]."""
        total = 0.0
        for (g, d), t0 in zip(self.pauses, self.starts, strict=True):
            if g == generation:
                total += max(0.0, min(end, t0 + d) - max(start, t0))
        return total

    def max_ms(self, generation: int | None = None) -> float:
        """The longest pause (of `generation`, or of any), in ms; 0 if none."""
        xs = [d for g, d in self.pauses if generation is None or g == generation]
        return max(xs) * 1e3 if xs else 0.0


def load_average() -> float:
    """The 1-minute load average (NaN where unknown): how busy the machine was."""
    import os

    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return math.nan


def platform_note() -> str:
    """Python version, CPU count, switch interval and load average, for notes."""
    import os

    return (
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, switch interval "
        f"{sys.getswitchinterval() * 1e3:g} ms, load average {load_average():.2f}"
    )
