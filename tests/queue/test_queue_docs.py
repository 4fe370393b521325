"""docs/queue.md: its example runs (on virtual time) and prints what it says."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import pytest

from timecontrol.testing import VirtualClock

DOC = Path(__file__).resolve().parents[2] / "docs" / "queue.md"


def _first_python_block() -> str:
    match = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert match is not None
    return match.group(1)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_docs_example_runs(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    backend: Literal["asyncio", "trio"],
) -> None:
    monkeypatch.chdir(tmp_path)
    code = _first_python_block().replace("anyio.run(main)", "")
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOC), "exec"), namespace)  # the docs' own code
    VirtualClock().run(namespace["main"], backend=backend)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "running 3"
    assert out[1] == "finished"
    assert "PlanStats(plan='measure', runs=3, succeeded=3" in out[2]
    assert (tmp_path / "lab.sqlite").exists()
