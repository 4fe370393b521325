"""Run timecontrol's benchmarks and their peers: one JSON object, one readable table.

    python benchmarks/run.py --quick --json bench.json     # every module, a few minutes
    python benchmarks/run.py --only log --only schedule    # some modules, full length
    python benchmarks/run.py --list                        # what would run

Every ``benchmarks/bench_*.py`` module has ``run(quick: bool) -> dict[str, dict]`` returning
``{"<area>.<metric>": {"value": number | None, "unit": str, ...}}`` with optional ``target``
(e.g. ``"<= 2"``), ``note`` and ``peer`` fields. The results of all modules are merged into one
JSON object, written to ``--json PATH`` and printed as a table with pass / MISS per target.

Each module runs in a fresh Python process of its own (unless ``--in-process``), so that what
one module imports or leaves behind (bluesky's thousands of objects for the garbage collector,
threads, a changed switch interval) cannot change the next module's figures, and a crash or a
hang is reported as that module's error instead of ending the run. A module that raises, exits
or times out is recorded as ``{"bench_<name>.error": {"value": None, "unit": "", "note": ...}}``
and the run goes on.

The checkout this file lives in is put first on ``sys.path``, so the code measured is the
working tree's even without an install.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import types
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent


def _setup_paths() -> None:
    """Make ``timecontrol`` (from this checkout), ``_common`` and ``benchmarks.*`` importable."""
    for entry in (str(BENCH_DIR), str(ROOT)):
        if entry in sys.path:
            sys.path.remove(entry)
        sys.path.insert(0, entry)
    # `benchmarks` as a package rooted here (no __init__.py needed, and never shadowed by some
    # other installed `benchmarks`), so that modules may use `from benchmarks._common import`
    # or `from ._common import` as well as `from _common import`.
    pkg = sys.modules.get("benchmarks")
    if pkg is None or list(getattr(pkg, "__path__", [])) != [str(BENCH_DIR)]:
        pkg = types.ModuleType("benchmarks")
        pkg.__path__ = [str(BENCH_DIR)]
        pkg.__package__ = "benchmarks"
        sys.modules["benchmarks"] = pkg
    # One module object for both spellings of the shared helpers.
    common = importlib.import_module("benchmarks._common")
    sys.modules.setdefault("_common", common)


_setup_paths()

from _common import check_target, fmt_value, load_average, platform_note  # noqa: E402

Results = dict[str, dict[str, Any]]


def discover() -> list[str]:
    """Module stems (``bench_log``, ...) in name order."""
    return sorted(p.stem for p in BENCH_DIR.glob("bench_*.py"))


def _stem(name: str) -> str:
    name = Path(name).stem
    return name if name.startswith("bench_") else f"bench_{name}"


def _error(stem: str, note: str) -> Results:
    return {f"{stem}.error": {"value": None, "unit": "", "note": note}}


def _traceback_summary(exc: BaseException, frames: int = 4) -> str:
    here = Path(__file__).resolve()
    tb = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename).resolve() != here]
    tb = tb[-frames:]
    where = " <- ".join(f"{Path(f.filename).name}:{f.lineno} in {f.name}" for f in reversed(tb))
    what = "".join(traceback.format_exception_only(exc)).strip()
    return f"{what} (at {where})" if where else what


def _clean_number(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return value if math.isfinite(value) else None
    try:  # numpy scalars and the like
        f = float(value)
    except (TypeError, ValueError):
        return value
    return f if math.isfinite(f) else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | bool) or value is None:
        return value
    cleaned = _clean_number(value)
    return cleaned if isinstance(cleaned, int | float) or cleaned is None else str(cleaned)


def validate(stem: str, raw: Any) -> Results:
    """Check a module's return value; malformed entries become notes, never crashes."""
    if not isinstance(raw, dict):
        return _error(stem, f"run() returned {type(raw).__name__}, expected dict[str, dict]")
    out: Results = {}
    for key, entry in raw.items():
        if not isinstance(key, str) or not isinstance(entry, dict) or "value" not in entry:
            out[f"{stem}.error"] = {
                "value": None,
                "unit": "",
                "note": f"malformed entry {key!r}: {entry!r:.200}",
            }
            continue
        item = _jsonable(entry)
        item["value"] = _clean_number(item.get("value"))
        if not isinstance(item["value"], int | float | None) or isinstance(item["value"], bool):
            item["note"] = f"non-numeric value {item['value']!r}; " + str(item.get("note", ""))
            item["value"] = None
        item.setdefault("unit", "")
        out[key] = item
    return out


def run_module(stem: str, quick: bool) -> Results:
    """Import one module here and call its ``run(quick)``; errors become an error entry."""
    try:
        module = importlib.import_module(f"benchmarks.{stem}")
        run = getattr(module, "run", None)
        if not callable(run):
            return _error(stem, "module has no run(quick: bool) function")
        return validate(stem, run(quick))
    except BaseException as exc:  # report, never kill the run
        if isinstance(exc, KeyboardInterrupt):
            raise
        return _error(stem, _traceback_summary(exc))


def run_module_subprocess(stem: str, quick: bool, timeout: float) -> Results:
    """Run one module in a child process (``run.py --child``) and read back its results."""
    fd, tmp = tempfile.mkstemp(prefix=f"tc-{stem}-", suffix=".json")
    os.close(fd)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", stem, "--child-out", tmp]
    if quick:
        cmd.append("--quick")
    try:
        proc = subprocess.run(
            cmd, timeout=timeout, stderr=subprocess.PIPE, text=True, check=False, cwd=ROOT
        )
        if proc.stderr:
            sys.stderr.write(proc.stderr)
        try:
            data = json.loads(Path(tmp).read_text() or "null")
        except (OSError, json.JSONDecodeError):
            data = None
        if data is None:
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:]) if proc.stderr else ""
            how = (
                f"was killed by {signal.Signals(-proc.returncode).name}"
                if proc.returncode < 0
                else f"exited with {proc.returncode}"
            )
            return _error(stem, f"the module's process {how} before reporting. {tail}".strip())
        return validate(stem, data)
    except subprocess.TimeoutExpired:
        return _error(stem, f"timed out after {timeout:g} s")
    finally:
        Path(tmp).unlink(missing_ok=True)


def _status(key: str, entry: dict[str, Any]) -> str:
    if entry.get("value") is None and (key.endswith(".error") or entry.get("target")):
        return "ERROR" if key.endswith(".error") else "n/a"
    ok = check_target(key, entry)
    return "" if ok is None else ("pass" if ok else "MISS")


def print_table(results: Results, file: Any = sys.stdout) -> None:
    """key | value | unit | target | status, then the notes of misses and errors."""
    rows = [
        (
            key,
            fmt_value(e.get("value")),
            str(e.get("unit", "")),
            str(e.get("target", "")),
            _status(key, e),
        )
        for key, e in results.items()
    ]
    head = ("key", "value", "unit", "target", "status")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(5)]

    def line(r: tuple[str, ...]) -> str:
        return "  ".join(
            (c.rjust(w) if i == 1 else c.ljust(w))
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()

    print(line(head), file=file)
    print("  ".join("-" * w for w in widths), file=file)
    for r in rows:
        print(line(r), file=file)
    flagged = [(k, e) for k, e in results.items() if _status(k, e) in ("MISS", "ERROR", "n/a")]
    if flagged:
        print("\nmisses and errors:", file=file)
        for key, e in flagged:
            print(f"  {key}: {e.get('note', '(no note)')}", file=file)
    counts = {s: sum(1 for r in rows if r[4] == s) for s in ("pass", "MISS", "ERROR", "n/a")}
    print(
        f"\n{len(rows)} figures: {counts['pass']} pass, {counts['MISS']} miss, "
        f"{counts['ERROR']} error, {counts['n/a']} without value",
        file=file,
    )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs (a few minutes in all)")
    parser.add_argument("--json", metavar="PATH", help="write the merged results here")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only this module (log, bench_log or bench_log.py); repeatable, or a,b",
    )
    parser.add_argument("--list", action="store_true", help="list the modules and exit")
    parser.add_argument(
        "--in-process", action="store_true", help="run every module in this process"
    )
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds per module (default 600 / 3600)"
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 if any target is missed or a module fails"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        results = run_module(args.child, args.quick)
        Path(args.child_out).write_text(json.dumps(results))
        return 0

    modules = discover()
    if args.only:
        wanted = [_stem(n) for item in args.only for n in item.split(",") if n.strip()]
        unknown = [w for w in wanted if w not in modules]
        if unknown:
            parser.error(f"no such benchmark module(s) {unknown}; available: {modules}")
        modules = [m for m in modules if m in wanted]
    if args.list:
        print("\n".join(modules))
        return 0
    timeout = args.timeout or (600.0 if args.quick else 3600.0)

    merged: Results = {}
    load_start = load_average()
    t_start = time.perf_counter()
    try:
        for i, stem in enumerate(modules, 1):
            print(f"[{i}/{len(modules)}] {stem} ...", file=sys.stderr, flush=True)
            t0 = time.perf_counter()
            if args.in_process:
                results = run_module(stem, args.quick)
            else:
                results = run_module_subprocess(stem, args.quick, timeout)
            elapsed = time.perf_counter() - t0
            print(f"[{i}/{len(modules)}] {stem}: {elapsed:.1f} s", file=sys.stderr, flush=True)
            for key, entry in results.items():
                # A key written by two modules: keep both, saying where the second came from.
                merged[f"{key}@{stem}" if key in merged else key] = entry
            merged[f"run.{stem}_s"] = {"value": round(elapsed, 2), "unit": "s"}
    except KeyboardInterrupt:
        print("interrupted: writing what has run so far", file=sys.stderr)
    merged["run.total_s"] = {
        "value": round(time.perf_counter() - t_start, 2),
        "unit": "s",
        "note": f"{'quick' if args.quick else 'full'} run; {platform_note()} at the end, "
        f"{load_start:.2f} at the start (other processes slow every figure down); "
        f"{'in one process' if args.in_process else 'one process per module'}",
    }
    ordered = dict(sorted(merged.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(ordered, indent=1, ensure_ascii=False) + "\n")
    print_table(ordered)
    if args.strict and any(_status(k, e) in ("MISS", "ERROR") for k, e in ordered.items()):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
