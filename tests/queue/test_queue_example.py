"""examples/day_of_measurements.py runs, twice, and prints what it promises."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "day_of_measurements.py"


def _run(cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def test_a_day_then_the_next_morning(tmp_path: Path) -> None:
    first = _run(tmp_path)
    assert "08:00 dry run: 22 items, 22 of unknown duration" in first
    assert "  operator: 'Tray loaded?' -> yes" in first
    assert "08:02 blank    left 21" in first  # after the prompt was answered
    assert "  operator: a rush sample added to the afternoon queue" in first
    # The rush sample runs before the standards, though the standards' queue was entered
    # after it was added.
    lines = first.splitlines()
    rush = lines.index("  operator: a rush sample added to the afternoon queue")
    assert " sample " in lines[rush + 1]
    assert " standard " in lines[rush + 2]
    assert re.search(r"16:\d\d stopped: scheduled stop: item '\w+' would end \d+ s after it", first)
    assert re.search(r"measure: \d+ succeeded, [1-9]\d* truncated", first)
    second = _run(tmp_path)
    assert "08:00 dry run: 1 items, 0 of unknown duration" in second
    assert "stopped: finished" in second
    assert (tmp_path / "day.sqlite").exists()
