"""The README section on triggers (docs/triggers.md) runs as written."""

from __future__ import annotations

import doctest
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "triggers.md"


def test_triggers_documentation_examples_run() -> None:
    result = doctest.testfile(
        str(DOC), module_relative=False, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.attempted > 30
    assert result.failed == 0


def test_docstring_examples_run() -> None:
    import timecontrol.triggers
    from timecontrol.triggers import _cron

    for module in (timecontrol.triggers, _cron):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0, module.__name__
        assert result.attempted > 0, module.__name__
