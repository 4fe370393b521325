"""The runnable example in docs/plans.md runs and ends as it says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "plans.md"


def test_docs_script_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    scripts = [b for b in blocks if "anyio.run(main)" in b]
    assert scripts, "docs/plans.md lost its runnable example"
    done = subprocess.run(
        [sys.executable, "-c", scripts[0]], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == [str(i) for i in range(1, 12)]
    assert lines[-1].startswith("success 11 ")


def test_demo_pauses_and_resumes() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "timecontrol.plans"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "state trace: idle -> running -> pausing -> paused -> running -> idle" in done.stdout
