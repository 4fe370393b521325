"""examples/hein_sampling.py runs on the virtual clock and prints what it promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hein_sampling.py"


def test_hein_sampling_example(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert lines[:3] == [
        "+  150 s  manual sample requested: point 15",
        "+  750 s  paused to refill the solvent",
        "+ 1350 s  resumed: 9 points postponed by 600 s",
    ]
    assert lines[3] == (
        "<Sequence 'kinetics' finished 16/16 done, 0 remaining, chain=['draw', 'analyse']>"
    )
    points = lines[4:]
    assert len(points) == 16
    assert all("succeeded" in line for line in points)
    # the manual point waits for the running one (120 s + 50 s), with its own kwargs
    assert points[2].startswith("point 15 manual  planned + 150 s  ran + 170 s  succeeded  50 µl")
    # 5 × 60 s, then 10 × 300 s; points after the pause (750-1350 s) moved 600 s later
    planned = [int(line.split("planned +")[1].split(" s")[0]) for line in points]
    assert planned == [60, 120, 150, 180, 240, 300, 600, *range(1500, 4000, 300)]
