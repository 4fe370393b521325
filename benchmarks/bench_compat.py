"""bluesky compatibility: bluesky's own test suite run against timecontrol's SyncRunEngine.

Keys:

* ``compat.bluesky_tests_pass_pct`` (target >= 90): of bluesky's run-engine, plan and document
  tests (``tests/bluesky_oracle/run_oracle.py`` lists the files) that use a run engine fixture
  and pass on bluesky's own RunEngine in this environment, the share that also pass with the
  fixture returning ``SyncRunEngine``. The entry keeps the counts and the failure list
  (``failures``: test id -> first line of its error); ``docs/bluesky_compat.md`` says which
  failures are deliberate differences and which are bugs.
* ``compat.bluesky_tests_counted``: how many tests the percentage is taken over
  (informational), with the baseline's own failures in its note.

Both suites run in subprocesses (bluesky's loop threads and ophyd's simulated hardware stay
out of this process). Measured in the same run as everything else, but it is a pass rate, not
a speed: ``--quick`` only shortens the per-test timeout.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

try:
    from _common import result
except ImportError:  # imported as benchmarks.bench_compat
    from benchmarks._common import result

ORACLE = Path(__file__).resolve().parent.parent / "tests" / "bluesky_oracle" / "run_oracle.py"


def _oracle(timeout: float) -> dict[str, Any] | str:
    """The oracle's comparison, or why it could not run."""
    try:
        import bluesky  # noqa: F401 - only asks whether it is installed
    except ImportError:
        return "bluesky is not installed (pip install -e '.[test]')"
    with tempfile.TemporaryDirectory(prefix="bench-compat-") as tmp:
        out = Path(tmp) / "oracle.json"
        proc = subprocess.run(
            [sys.executable, str(ORACLE), "--json", str(out), "--timeout", str(timeout)],
            capture_output=True,
            text=True,
            check=False,
        )
        if not out.exists():
            return f"the oracle wrote nothing (exit {proc.returncode}): {proc.stderr[-300:]}"
        data: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        return data


def run(quick: bool) -> dict[str, dict[str, Any]]:
    """The compat.* keys (see the module docstring)."""
    data = _oracle(timeout=6.0 if quick else 20.0)
    if isinstance(data, str):
        return {
            "compat.bluesky_tests_pass_pct": result(None, "%", target=">= 90", note=data),
        }
    failures = data["failures"]
    note = (
        f"{data['passed']} of {data['counted']} run-engine tests that pass on bluesky's own "
        f"RunEngine pass on SyncRunEngine; {len(failures)} fail (see 'failures' and "
        f"docs/bluesky_compat.md); {data['seconds']} s"
    )
    return {
        "compat.bluesky_tests_pass_pct": result(
            None if data["pass_pct"] is None else round(data["pass_pct"], 1),
            "%",
            target=">= 90",
            note=note,
            passed=data["passed"],
            counted=data["counted"],
            failures=failures,
        ),
        "compat.bluesky_tests_counted": result(
            data["counted"],
            "tests",
            informational=True,
            note=(
                f"tests using RE/make_RE/single_RE that pass on bluesky here; not counted: "
                f"{len(data['baseline_not_passing'])} that fail or skip on bluesky itself, "
                f"{data['no_run_engine_tests']} that use no run engine "
                f"({data['no_run_engine_passed']} of them pass with the drop-in installed)"
            ),
        ),
    }


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=1))
