"""The ``timecontrol`` command: ``demo`` (on virtual time) and ``log``."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from timecontrol.cli import main
from timecontrol.stores import read_events


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    db = tmp_path_factory.mktemp("demo") / "demo.sqlite"
    out = io.StringIO()
    assert main(["demo", "--fast", "--db", str(db)], out=out) == 0
    return db, out.getvalue()


def test_demo_shows_jobs_limiters_watchdog_and_a_paused_plan(demo_db: tuple[Path, str]) -> None:
    _, text = demo_db
    # scheduled jobs with a skip and a failure alarm (issue 4)
    assert "stir       skipped    1 run(s) still going" in text
    assert "ALARM: calibrate failure: RuntimeError" in text
    # both limiters (issue 5): a throttled reading, a watchdog trip and a refused call
    assert "dmm        throttled  waited 250 ms" in text
    assert "heater     TRIPPED    not fed for 1.50 s" in text
    assert "ALARM: setpoint failure: OverTimeLimit" in text
    # simulated instruments (issue 7) and a plan paused and resumed (issue 6)
    assert "connected  SimMultimeter" in text
    assert "paused     at a checkpoint (state: paused, paused=True)" in text
    assert "resumed    and finished: success" in text
    # the summary is read back from the file, on exact virtual time
    assert "job start lateness: max 0.00 ms (virtual time: exact)" in text
    assert "  sample         8   8       0        0" in text


def test_demo_log_file_holds_the_whole_story(demo_db: tuple[Path, str]) -> None:
    db, _ = demo_db
    events = read_events(db)
    kinds = {e.kind for e in events}
    assert {"job.succeeded", "job.failed", "job.skipped", "limiter.throttled"} <= kinds
    assert {"limiter.tripped", "instrument.connected", "run.start", "run.stop"} <= kinds
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(seqs) + 1))
    assert [e.payload["seq_num"] for e in events if e.kind == "run.event"] == [1, 2, 3, 4, 5, 6]


def test_log_filters_by_kind_and_prints_json(demo_db: tuple[Path, str]) -> None:
    db, _ = demo_db
    out = io.StringIO()
    assert main(["log", str(db), "--kind", "job.failed", "--json"], out=out) == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [d["subject"] for d in lines] == ["calibrate", "setpoint"]
    assert all(d["kind"] == "job.failed" for d in lines)


def test_log_subject_limit_tail_and_text(demo_db: tuple[Path, str]) -> None:
    db, _ = demo_db
    out = io.StringIO()
    assert main(["log", str(db), "--subject", "sample", "--limit", "2", "--tail"], out=out) == 0
    text = out.getvalue().splitlines()
    assert text[-1] == "-- 2 event(s)"
    assert all(" sample " in line for line in text[:-1])
    events = read_events(db, subjects=["sample"])
    assert f"#{events[-1].seq}" in text[-2]


def test_log_since_until_window(demo_db: tuple[Path, str]) -> None:
    db, _ = demo_db
    events = read_events(db)
    mid = events[len(events) // 2].at.isoformat()
    out = io.StringIO()
    assert main(["log", str(db), "--since", mid, "--json"], out=out) == 0
    walls = [json.loads(line)["wall"] for line in out.getvalue().splitlines()]
    assert walls
    assert min(walls) >= events[len(events) // 2].wall
    out = io.StringIO()
    assert main(["log", str(db), "--until", mid, "--json"], out=out) == 0
    walls = [json.loads(line)["wall"] for line in out.getvalue().splitlines()]
    assert walls
    assert max(walls) < events[len(events) // 2].wall


def test_log_bad_input_is_a_clear_error(
    tmp_path: Path, demo_db: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["log", str(tmp_path / "missing.sqlite")]) == 2
    assert "no such log file" in capsys.readouterr().err
    db, _ = demo_db
    assert main(["log", str(db), "--since", "yesterday-ish"]) == 2
    err = capsys.readouterr().err
    assert "'yesterday-ish'" in err
    assert "30m, 2h, 7d" in err
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"not a database at all" * 100)
    assert main(["log", str(garbage)]) == 2
    assert "not a timecontrol SQLite file" in capsys.readouterr().err


def test_python_dash_m_timecontrol_runs_the_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "timecontrol", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.startswith("timecontrol ")
