"""Demo: ``python -m timecontrol.plans`` — a scan paused half-way and resumed.

A simulated motor and detector; a deferred pause is requested while the scan runs, lands at the
next checkpoint, and the scan is resumed from there. Prints the state changes and the events
from the Log. Runs on the real clock in about two seconds (``--trio`` to use trio).
"""

from __future__ import annotations

import math
import sys

import anyio

import timecontrol as tc
from timecontrol.plans import RunEngine, SimDetector, SimMotor, scan


async def demo() -> None:
    """Run the demo on the current event loop."""
    async with tc.Engine() as engine:
        run_engine = RunEngine(engine)
        motor = SimMotor("x", velocity=10.0)
        det = SimDetector("det", lambda: math.exp(-(motor.position**2)), exposure=0.1)
        run_engine.subscribe(
            lambda name, doc: print(
                f"  event {doc['seq_num']}: x={doc['data']['x']:+.2f} det={doc['data']['det']:.3f}"
            ),
            "event",
        )

        async def operator() -> None:
            await anyio.sleep(0.5)
            print("operator: request_pause(defer=True)")
            run_engine.request_pause(defer=True)

        print("run: scan([det], x, -2, 2, 9)")
        async with anyio.create_task_group() as tg:
            tg.start_soon(operator)
            result = await run_engine.run(scan([det], motor, -2, 2, 9), sample="demo")
        print(f"run returned: paused={result.paused}, state={run_engine.state}")
        print("operator: resume()")
        result = await run_engine.resume()
        print(
            f"resume returned: exit_status={result.exit_status}, points={result.plan_result}, "
            f"run uid={result.run_uids[0]}"
        )
        trace = [e.payload["to"] for e in engine.log.recent(kinds="run_engine.state")]
        print("state trace:", " -> ".join(["idle", *trace]))


def main() -> None:
    """Entry point of ``python -m timecontrol.plans``."""
    anyio.run(demo, backend="trio" if "--trio" in sys.argv else "asyncio")


if __name__ == "__main__":
    main()
