"""The runnable examples in examples/ run and print what they promise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_reaction_monitoring_example(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "reaction_monitoring.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    out = done.stdout
    assert "kinetics   runs  16  ok  16  failed  0  next None" in out
    assert "reference  runs  36  ok  36" in out  # 09:00..17:45 every 15 min on Monday
    assert "ALARM 2026-03-31 00:00 calibrate: reference cell out of range" in out
    assert (tmp_path / "reaction.sqlite").exists()


def test_scheduled_operations_example(tmp_path: Path) -> None:
    # The lab guide's scheduler, replaced: profiles, alarms, limits, history and statistics.
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "scheduled_operations.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert [line for line in lines if line.startswith("ALARM")] == [
        "ALARM Mon 03:00 Nightly Equipment Test: failure connection: oscilloscope_1 did not "
        "answer *IDN?",
        "ALARM Tue 03:00 Nightly Equipment Test: failure connection: oscilloscope_1 did not "
        "answer *IDN?",
    ]
    assert "jobs 6 (enabled 6, disabled 0)" in lines
    assert "upcoming Wed 04 00:00 voltage" in lines
    # Hourly from Monday 00:00 to Tuesday 23:00 Berlin time, each after its 0.5 s profile.
    assert "voltage  total  47  ok  47  failed  0  mean 0.500 s  next 03-04 00:00" in lines
    assert "limited  total  30  ok  30  failed  0  mean 0.000 s  next None" in lines  # the limit
    assert "once     total   1  ok   1  failed  0  mean 0.000 s  next None" in lines
    assert lines[-1].startswith("execution ")
    assert " voltage success 5.0" in lines[-1] or " voltage success 4.9" in lines[-1]
    assert (tmp_path / "operations.sqlite").exists()
