"""The examples in docs/limiters.md run and print what the page says they print."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

DOC = (Path(__file__).resolve().parents[2] / "docs" / "limiters.md").read_text()


def test_the_instrument_example_prints_what_the_page_shows() -> None:
    # The example is the first python block; what it prints is the plain block after it.
    found = re.search(r"```python\n(.*?)```\s*\nprints\s*\n\s*```\n(.*?)```", DOC, re.S)
    assert found, "docs/limiters.md lost its instrument example (or what it prints)"
    script, printed = found.groups()
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == printed


def test_the_auto_start_snippet_trips_as_its_comment_says() -> None:
    found = re.search(r"```python\n(\s*async with tc\.Engine\(\):\n.*?)```", DOC, re.S)
    assert found, "docs/limiters.md lost its auto-start snippet"
    snippet = textwrap.indent(textwrap.dedent(found.group(1)), "    ")
    script = f"""
import anyio
import timecontrol as tc
from timecontrol.limiters import Control, guarded_by
from timecontrol.testing import run

offs = []

class Heater:
    def __init__(self) -> None:
        self.watchdog = Control(10.0, self.switch_off, name="heater.watchdog")

    @guarded_by("watchdog")
    async def set_point(self, celsius: float) -> None: ...

    async def switch_off(self) -> None:
        offs.append(tc.current_clock().monotonic() - t0)

async def main() -> None:
    global t0
    t0 = tc.current_clock().monotonic()
{snippet}

heater = Heater()
run(main)
print(offs, heater.watchdog.running)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[10.0, 20.0] False"
