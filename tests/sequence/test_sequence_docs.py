"""docs/sequences.md: its example runs (on virtual time) and prints what the page says."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from timecontrol.testing import VirtualClock

DOC = Path(__file__).resolve().parents[2] / "docs" / "sequences.md"


def test_the_docs_example_prints_what_the_page_says(capsys: pytest.CaptureFixture[str]) -> None:
    text = DOC.read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S)
    shown = re.search(r"It prints:\n\n```\n(.*?)```", text, re.S)
    assert code is not None
    assert shown is not None
    namespace: dict[str, Any] = {}
    exec(compile(code.group(1).replace("anyio.run(main)", ""), str(DOC), "exec"), namespace)
    VirtualClock().run(namespace["main"])
    assert capsys.readouterr().out == shown.group(1)


def test_the_kinds_table_lists_every_sequence_kind() -> None:
    from timecontrol._events import known_kinds

    table = set(re.findall(r"`(sequence\.[a-z_]+)`", DOC.read_text()))
    assert {k for k in known_kinds() if k.startswith("sequence.")} == table
