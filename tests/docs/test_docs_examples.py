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
