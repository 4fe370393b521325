"""Run bluesky's own run-engine, plan and document tests against timecontrol's SyncRunEngine.

    .venv/bin/python tests/bluesky_oracle/run_oracle.py                  # both, summary
    .venv/bin/python tests/bluesky_oracle/run_oracle.py --json out.json  # and the details
    .venv/bin/python tests/bluesky_oracle/run_oracle.py -k pause         # a subset

bluesky ships its test suite inside its wheel (``bluesky/tests``). This script runs the
selected files of it twice in pytest subprocesses, with bluesky's conftest switched off and
``oracle_plugin`` providing the fixtures: once with bluesky's own RunEngine (the baseline: what
passes in this environment at all) and once with ``SyncRunEngine``. The figure is

    pass % = tests passing on SyncRunEngine / tests passing on bluesky's RunEngine,

counted over the tests that use a run engine fixture (``RE``, ``make_RE``, ``single_RE``);
tests that never touch a run engine say nothing about it and are reported apart. Not part of
the normal ``pytest`` run: it takes a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

#: bluesky's test files that exercise the run engine, plans and documents.
FILES = (
    "test_run_engine.py",
    "test_plans.py",
    "test_documents.py",
    "test_scans.py",
    "test_new_examples.py",
    "test_examples.py",
    "test_multi_runs.py",
    "test_metadata.py",
    "test_preprocessors.py",
    "test_seq_num_indices_in_sync.py",
    "test_streams.py",
    "test_supplemental_data.py",
    "test_async_read.py",
    "test_legacy_plans.py",
    "test_plan_patterns.py",
    # One of its tests leaves a thread waiting forever on a closed loop (with bluesky's
    # RunEngine too), which kept the pytest process from exiting: `oracle_plugin` now ends
    # the process once pytest is done (see its pytest_unconfigure).
    "test_suspenders.py",
)


#: Tests left out of both runs: they send real SIGINTs to the process and count on bluesky's
#: own handler class (its conftest patches it); with another handler the KeyboardInterrupt
#: ends the whole pytest session. Ctrl+C is tested in timecontrol's own suite instead.
EXCLUDE = "not sigint"


def bluesky_tests_dir() -> Path:
    """Where the installed bluesky keeps its tests (found without importing bluesky)."""
    import importlib.util

    spec = importlib.util.find_spec("bluesky")
    if spec is None or spec.origin is None:
        raise SystemExit("bluesky is not installed: pip install bluesky")
    tests = Path(spec.origin).parent / "tests"
    if not tests.is_dir():
        raise SystemExit(f"this bluesky has no test suite in its package: {tests}")
    return tests


def run_suite(
    target: str, files: list[str], extra: list[str], timeout: float
) -> list[dict[str, Any]]:
    """Run the files on `target` ("bluesky" or "timecontrol"); one record per test."""
    tests = bluesky_tests_dir()
    with tempfile.TemporaryDirectory(prefix="tc-oracle-") as tmp:
        report = Path(tmp) / "report.jsonl"
        ini = Path(tmp) / "pytest.ini"
        ini.write_text("[pytest]\nasyncio_mode = strict\n", encoding="utf-8")
        env = {
            **os.environ,
            "TC_ORACLE_TARGET": target,
            "TC_ORACLE_REPORT": str(report),
            "TC_ORACLE_TIMEOUT": str(timeout),
            "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "oracle_plugin",
            "--noconftest",
            "-c",
            str(ini),
            "--rootdir",
            str(tests),
            "-p",
            "no:cacheprovider",
            "--continue-on-collection-errors",
            "-o",
            "asyncio_default_fixture_loop_scope=function",
            *[str(tests / f) for f in files],
            *extra,
        ]
        subprocess.run(cmd, env=env, cwd=tmp, stdout=subprocess.DEVNULL, check=False)
        if not report.exists():
            return []
        records: dict[str, dict[str, Any]] = {}
        for line in report.read_text(encoding="utf-8").splitlines():
            rec = json.loads(line)
            # a failure in any phase decides; a later teardown error does not undo a failure
            prev = records.get(rec["nodeid"])
            if prev is None or prev["outcome"] == "passed":
                records[rec["nodeid"]] = rec
        return list(records.values())


def compare(baseline: list[dict[str, Any]], ours: list[dict[str, Any]]) -> dict[str, Any]:
    """The pass rate over run-engine tests that pass on bluesky, and the failures."""
    base = {r["nodeid"]: r for r in baseline}
    mine = {r["nodeid"]: r for r in ours}
    counted = [n for n, r in base.items() if r["uses_re"] and r["outcome"] == "passed"]
    passed = [n for n in counted if mine.get(n, {}).get("outcome") == "passed"]
    failures = {
        n: mine.get(n, {}).get("error", "not run") or mine.get(n, {}).get("outcome", "not run")
        for n in counted
        if n not in passed
    }
    other = [n for n, r in base.items() if not r["uses_re"] and r["outcome"] == "passed"]
    return {
        "pass_pct": 100.0 * len(passed) / len(counted) if counted else None,
        "counted": len(counted),
        "passed": len(passed),
        "failures": dict(sorted(failures.items())),
        "baseline_not_passing": sorted(n for n, r in base.items() if r["outcome"] != "passed"),
        "no_run_engine_tests": len(other),
        "no_run_engine_passed": sum(mine.get(n, {}).get("outcome") == "passed" for n in other),
    }


def main(argv: list[str] | None = None) -> int:
    """Run both suites, print the summary, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the full comparison here")
    parser.add_argument("--files", nargs="*", default=list(FILES), help="bluesky test files")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per test")
    parser.add_argument("-k", dest="keyword", help="pytest -k expression")
    args = parser.parse_args(argv)
    keyword = f"({args.keyword}) and {EXCLUDE}" if args.keyword else EXCLUDE
    extra = ["-k", keyword]
    started = time.monotonic()
    baseline = run_suite("bluesky", args.files, extra, args.timeout)
    ours = run_suite("timecontrol", args.files, extra, args.timeout)
    result = compare(baseline, ours)
    result["seconds"] = round(time.monotonic() - started, 1)
    for nodeid, error in result["failures"].items():
        print(f"FAIL {nodeid}: {error}")
    pct = result["pass_pct"]
    print(
        f"{result['passed']} of {result['counted']} run-engine tests that pass on bluesky pass "
        f"on SyncRunEngine: {pct if pct is None else round(pct, 1)} %"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, sort_keys=True), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
