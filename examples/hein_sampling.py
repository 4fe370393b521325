"""hein_control's sampling example on timecontrol: a sequence of chained actions per point.

    python examples/hein_sampling.py            # 75 virtual minutes, in well under a second
    python examples/hein_sampling.py --real     # the same on the real clock (75 minutes)

A reaction is sampled 5 times 60 s apart, then 10 times 300 s apart. At each time point two
actions run in order: the autosampler draws a sample, then the HPLC analyses it (the analysis
is skipped if the draw fails). An operator triggers one extra sample by hand when the colour
changes, and pauses the sequence for ten minutes to refill the solvent; the rest of the
timeline is postponed by the pause. Every point and action is an event in the engine's Log.
"""

from __future__ import annotations

import random
import sys

import anyio

import timecontrol as tc
from timecontrol.testing import VirtualClock


async def operator(engine: tc.Engine, seq: tc.Sequence, t0: float) -> None:
    """What the chemist does while the sequence runs."""
    await anyio.sleep(150)
    point = seq.trigger({"why": "colour change"}, kwargs={"draw": {"volume_ul": 50.0}})
    print(f"+{point.offset:5.0f} s  manual sample requested: point {point.index}")
    await anyio.sleep(600)
    seq.pause("refill the solvent")
    print(f"+{engine.clock.time() - t0:5.0f} s  paused to refill the solvent")
    await anyio.sleep(600)
    report = seq.resume("postpone")
    print(
        f"+{engine.clock.time() - t0:5.0f} s  resumed: {len(report['shifted'])} points "
        f"postponed by {report['paused_for']:.0f} s"
    )


async def main() -> None:
    engine = tc.Engine()
    rng = random.Random(7)

    @engine.action
    async def draw(volume_ul: float) -> float:
        await anyio.sleep(10)  # the autosampler draws and injects
        return volume_ul

    @engine.action
    async def analyse() -> float:
        await anyio.sleep(40)  # the HPLC run
        return round(rng.gauss(0.8, 0.05), 3)

    seq = engine.sequence(
        ["draw", "analyse"],
        tc.timepoints.pairs((5, 60), (10, 300)),
        name="kinetics",
        kwargs={"draw": {"volume_ul": 20.0}},
    )
    async with engine, anyio.create_task_group() as tg:
        seq.start()
        t0 = engine.clock.time()
        tg.start_soon(operator, engine, seq, t0)
        await seq.join()
        print(repr(seq))
        for r in await seq.records():
            ran = (r.started or t0) - t0
            volume, area = (a.result for a in r.actions)
            print(
                f"point {r.index:>2} {r.kind:<7} planned +{r.offset + r.shift:4.0f} s  "
                f"ran +{ran:4.0f} s  {r.status}  {volume:.0f} µl  area {area}"
            )


if __name__ == "__main__":
    if "--real" in sys.argv:
        anyio.run(main)
    else:
        VirtualClock("2026-03-30T08:00+02:00").run(main)
