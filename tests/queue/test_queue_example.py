"""examples/day_of_measurements.py runs, twice, and prints what it promises."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from timecontrol.testing import VirtualClock

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
    assert "08:00 dry run: 23 items, 23 of unknown duration" in first
    assert "  operator: 'Tray loaded?' -> yes" in first
    assert "08:02 blank    left 22" in first  # after the prompt was answered
    assert "  operator: a rush sample added to the afternoon queue" in first
    # The rush sample runs before the afternoon's items, though their queue was entered
    # after it was added; then the degas, and the first standard beside it (an overlap),
    # 11 minutes after the degas started (10 to ramp, then the overlap's 1-minute delay).
    lines = first.splitlines()
    rush = lines.index("  operator: a rush sample added to the afternoon queue")
    assert " sample " in lines[rush + 1]
    assert " degas " in lines[rush + 2]
    overlap = re.fullmatch(r"(\d\d):(\d\d) standard beside the degas \(overlap\)", lines[rush + 3])
    degas = re.match(r"(\d\d):(\d\d) ", lines[rush + 2])
    assert overlap is not None
    assert degas is not None
    minutes = [int(m[1]) * 60 + int(m[2]) for m in (degas, overlap)]
    assert minutes[1] - minutes[0] == 11
    assert "degas: 1 succeeded" in first
    assert re.search(r"16:\d\d stopped: scheduled stop: item '\w+' would end \d+ s after it", first)
    assert re.search(r"measure: \d+ succeeded, [1-9]\d* truncated", first)
    second = _run(tmp_path)
    assert "08:00 dry run: 1 items, 0 of unknown duration" in second
    assert "stopped: finished" in second
    assert (tmp_path / "day.sqlite").exists()


def test_the_example_runs_on_trio_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The script runs on asyncio (above, as a user runs it); its `main` on trio here.
    monkeypatch.chdir(tmp_path)
    spec = importlib.util.spec_from_file_location("day_of_measurements", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    VirtualClock("2026-03-30T08:00+00:00").run(module.main, backend="trio")
    out = capsys.readouterr().out
    assert "08:00 dry run: 23 items, 23 of unknown duration" in out
    assert "standard beside the degas (overlap)" in out
    assert re.search(r"16:\d\d stopped: scheduled stop", out)
