"""Drivers: a query through timecontrol.drivers against the same query done raw, side by side.

- VISA on pyvisa-sim: ``*IDN?`` through a `ScpiInstrument` (one dedicated worker thread per
  session) vs pyvisa called directly, and vs pyvisa through ``anyio.to_thread`` (the usual way
  to call it from async code; informational);
- TCP: ``*IDN?`` through a `ScpiInstrument` vs a bare anyio stream round trip, both to the same
  emulator in the same event loop (so the difference is our overhead);
- serial: ``*IDN?`` through a `ScpiInstrument` over a pty pair to the emulator (asyncio);
- wrong replies: the fault-injection scenario (8 tasks, unique echo replies, 1 % each of late,
  dropped and garbled replies) counts replies handed to the wrong query; it must be 0.

Raw and ours alternate in rounds and each figure is the median of the rounds' per-call means,
so that a burst of load from another process hits both sides alike.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from _common import median, result
from timecontrol.drivers import (
    InstrumentTimeout,
    ReplyParseError,
    ScpiInstrument,
    TransportError,
)
from timecontrol.drivers.sim import (
    SIM_LIBRARY,
    SIM_RESOURCES,
    Emulator,
    Faults,
    PowerSupplyModel,
)

Result = dict[str, Any]


class Bench(ScpiInstrument):
    """A plain SCPI instrument: the query path is exactly what every driver uses."""

    default_timeout = 1.0


async def _timed_rounds(
    sides: dict[str, Callable[[], Awaitable[object]]], rounds: int, calls: int
) -> dict[str, float]:
    """Alternate the sides for `rounds` rounds of `calls` calls; median per-call µs of each,
    plus ``"<name>-raw"``: the median of the per-round differences to the ``"raw"`` side
    (paired, so that load from other processes during one round cancels out)."""
    samples: dict[str, list[float]] = {name: [] for name in sides}
    for fn in sides.values():  # warm up (first connections, caches, thread start)
        for _ in range(20):
            await fn()
    for _ in range(rounds):
        for name, fn in sides.items():
            gc.collect()
            t0 = time.perf_counter()
            for _ in range(calls):
                await fn()
            samples[name].append((time.perf_counter() - t0) / calls * 1e6)
    out = {name: median(values) for name, values in samples.items()}
    if "raw" in samples:
        for name, values in samples.items():
            if name != "raw":
                paired = [v - r for v, r in zip(values, samples["raw"], strict=True)]
                out[f"{name}-raw"] = median(paired)
    return out


async def _visa(rounds: int, calls: int) -> dict[str, float]:
    import pyvisa

    rm = pyvisa.ResourceManager(SIM_LIBRARY)
    raw = rm.open_resource(SIM_RESOURCES["psu"], read_termination="\n", write_termination="\n")

    async def direct() -> object:
        return raw.query("*IDN?")  # blocks the loop: the floor, not a way to use it

    async def to_thread() -> object:
        return await anyio.to_thread.run_sync(raw.query, "*IDN?")

    async with Bench(SIM_RESOURCES["psu"], visa_library=SIM_LIBRARY) as inst:

        async def ours() -> object:
            return await inst.query("*IDN?")

        figures = await _timed_rounds(
            {"raw": direct, "ours": ours, "to_thread": to_thread}, rounds, calls
        )
    raw.close()
    return figures


async def _tcp(rounds: int, calls: int) -> dict[str, float]:
    emu = Emulator(PowerSupplyModel())
    async with emu.serve_tcp() as address:
        host, port = address.removeprefix("tcp://").rsplit(":", 1)
        stream = await anyio.connect_tcp(host, int(port))

        async def raw() -> object:
            await stream.send(b"*IDN?\n")
            data = await stream.receive()
            while not data.endswith(b"\n"):  # (a reply in two pieces: not seen in practice)
                data += await stream.receive()
            return data

        async with Bench(address) as inst:

            async def ours() -> object:
                return await inst.query("*IDN?")

            figures = await _timed_rounds({"raw": raw, "ours": ours}, rounds, calls)
        await stream.aclose()
    return figures


async def _serial(rounds: int, calls: int) -> dict[str, float]:
    emu = Emulator(PowerSupplyModel())
    async with emu.serve_pty() as address, Bench(address, baudrate=115200) as inst:

        async def ours() -> object:
            return await inst.query("*IDN?")

        return await _timed_rounds({"ours": ours}, rounds, calls)


async def _fault_injection(queries: int) -> dict[str, int]:
    timeout = 0.02

    class Echo(ScpiInstrument):
        default_timeout = timeout
        drain_quiet = 0.005
        reconnect_delay = 0.002

    faults = Faults(late=0.01, drop=0.01, garble=0.01, late_delay=2 * timeout, seed=11)
    emu = Emulator(PowerSupplyModel(), faults)
    counter = itertools.count(1000)
    tally = {"ok": 0, "wrong": 0, "typed_errors": 0}
    async with emu.serve_tcp() as address, Echo(address) as inst:

        async def worker(idempotent: bool) -> None:
            for _ in range(queries // 8):
                n = next(counter)
                try:
                    reply = await inst.query_int(f"ECHO? {n}", idempotent=idempotent)
                except (InstrumentTimeout, ReplyParseError, TransportError):
                    tally["typed_errors"] += 1
                    continue
                tally["ok" if reply == n else "wrong"] += 1

        async with anyio.create_task_group() as tg:
            for index in range(8):
                tg.start_soon(worker, index % 2 == 0)
        tally["retries"] = inst.stats.retries
        tally["stale_discarded"] = inst.stats.stale_replies
    tally["injected"] = sum(faults.injected.values())
    return tally


def run(quick: bool) -> dict[str, Result]:
    """VISA, TCP and serial query costs (ours vs raw) and the fault-injection count."""
    rounds, calls = (15, 200) if quick else (31, 1000)
    visa = asyncio.run(_visa(rounds, calls))
    tcp = asyncio.run(_tcp(rounds, calls))
    serial = asyncio.run(_serial(rounds, calls))
    faults = asyncio.run(_fault_injection(2_000 if quick else 10_000))
    shape = f"median of {rounds} rounds x {calls} calls, asyncio, alternating with the raw side"
    return {
        "drivers.visa_sim_query_us": result(
            visa["ours"],
            "µs",
            note=f"*IDN? via ScpiInstrument on pyvisa-sim (worker thread); {shape}; "
            f"overhead {visa['ours-raw']:.0f} µs over raw, paired per round (target <= 150)",
            overhead_us=round(visa["ours-raw"], 1),
        ),
        "drivers.visa_sim_overhead_us": result(
            visa["ours-raw"],
            "µs",
            target="<= 150",
            note="visa_sim_query_us - visa_sim_raw_us, median of the per-round differences",
        ),
        "drivers.visa_sim_raw_us": result(
            visa["raw"], "µs", note="*IDN? via pyvisa directly, same resource, same run"
        ),
        "drivers.visa_sim_to_thread_us": result(
            visa["to_thread"],
            "µs",
            note="peer: pyvisa through anyio.to_thread.run_sync (any pool thread; unsafe for a "
            "session shared between threads), same run",
            informational=True,
        ),
        "drivers.tcp_query_us": result(
            tcp["ours"],
            "µs",
            note=f"*IDN? via ScpiInstrument over TCP to the emulator; {shape}; "
            f"overhead {tcp['ours-raw']:.0f} µs over raw, paired per round (target <= 50)",
            overhead_us=round(tcp["ours-raw"], 1),
        ),
        "drivers.tcp_overhead_us": result(
            tcp["ours-raw"],
            "µs",
            target="<= 50",
            note="tcp_query_us - tcp_raw_us, median of the per-round differences",
        ),
        "drivers.tcp_raw_us": result(
            tcp["raw"], "µs", note="bare anyio stream send + receive to the same emulator"
        ),
        "drivers.serial_pty_query_us": result(
            serial["ours"],
            "µs",
            note=f"*IDN? via ScpiInstrument over a pty pair to the emulator; {shape}",
        ),
        "drivers.wrong_replies": result(
            faults["wrong"],
            "replies",
            target="== 0",
            note=f"{faults['ok'] + faults['wrong'] + faults['typed_errors']:,} unique-echo "
            f"queries from 8 tasks over TCP, {faults['injected']} faults injected (1 % each "
            f"late / dropped / garbled); {faults['retries']} retries, "
            f"{faults['typed_errors']} typed errors (non-idempotent half), "
            f"{faults['stale_discarded']} stale replies discarded",
        ),
    }


if __name__ == "__main__":
    import json
    import sys

    json.dump(run(quick="--quick" in sys.argv), sys.stdout, indent=2, ensure_ascii=False)
    print()
