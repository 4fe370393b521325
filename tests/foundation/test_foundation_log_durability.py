"""The SQLite log after a ``kill -9``: no seq reused, at most one commit interval lost.

Ground truth comes from the writer itself, through a shared mapping that outlives it (see
`_kill9_server.py`), and the file is read afterwards with plain ``sqlite3``. Real time, real
processes and real SIGKILLs: there is no virtual time in a crash.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import anyio
import pytest

import timecontrol.stores._sqlite as sqlite_module
from timecontrol import Log
from timecontrol.stores import SEQ_BLOCK, SQLiteLog, read_events

SERVER = Path(__file__).with_name("_kill9_server.py")
ROUNDS = 30
LOSS_BOUND = 0.1  # SQLiteLog's default flush_interval: the promise under test


@pytest.fixture(scope="module")
def crash_rounds(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Thirty writer processes killed at random moments, ten in a row on each of 3 files."""
    folder = tmp_path_factory.mktemp("kill9")
    done = subprocess.run(
        [sys.executable, str(SERVER), str(folder), str(ROUNDS), "20260329"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rounds = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(rounds) == ROUNDS
    errors = [r for r in rounds if "error" in r]
    assert not errors, (errors, done.stderr)
    return rounds


def test_every_writer_was_killed_by_sigkill_and_left_a_sound_file(
    crash_rounds: list[dict[str, Any]],
) -> None:
    for r in crash_rounds:
        assert r["killed"], r
        assert r["check"] == ["ok"], r  # SQLite's quick_check on the file as the kill left it
        assert r["appended_seq"] >= r["first_seq"], r  # it was writing when it died
        # Only a tail is lost: what is stored of the run is its first events, without holes.
        assert r["run_contiguous"], r


def test_no_seq_is_ever_reused_across_crashes(crash_rounds: list[dict[str, Any]]) -> None:
    by_file: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in crash_rounds:
        by_file[r["file"]].append(r)
    for rounds in by_file.values():
        seen = 0  # the highest seq any earlier run handed out or showed a subscriber
        for r in rounds:
            assert r["first_seq"] > seen, r
            assert r["sub_max"] <= r["appended_seq"], r
            # The reservation committed to the file covers every seq this run handed out
            # (that is why the next run can start above it without knowing them).
            assert r["reserved"] >= r["appended_seq"], r
            seen = max(seen, r["appended_seq"], r["sub_max"])
        # Each crash costs a gap of less than one reservation block, never a reuse.
        firsts = [r["first_seq"] for r in rounds]
        assert all(0 < b - a <= 2 * SEQ_BLOCK for a, b in itertools.pairwise(firsts))


def test_at_most_one_commit_interval_is_lost(crash_rounds: list[dict[str, Any]]) -> None:
    """Every event appended more than one commit interval before the newest one is stored.

    Measured from the oldest lost event (ground truth: its wall time, which the writer put
    in the mapping) to the newest appended one. Time in which the writer appended nothing at
    all (its process not scheduled on a busy machine) before the oldest lost event is not
    counted: no event was lost in it.
    """
    lost_ms = []
    for r in crash_rounds:
        if r["oldest_lost_wall"] is None:
            assert r["run_durable"] == r["appended_seq"] - r["first_seq"] + 1, r  # none lost
            continue
        span = r["appended_wall"] - r["oldest_lost_wall"]
        assert 0 <= span <= LOSS_BOUND, r
        # And the file holds every event before the oldest lost one (no hole): see the
        # contiguity check above; here, that the newest stored one is just before it.
        newest_durable = r["durable_wall"] if r["run_durable"] else r["first_wall"]
        assert newest_durable <= r["oldest_lost_wall"], r
        lost_ms.append(span * 1e3)
    # The rounds did exercise the bound: they wrote a lot, and lost something when killed.
    assert sum(r["appended_seq"] - r["first_seq"] for r in crash_rounds) > 10_000
    assert len(lost_ms) > ROUNDS // 2
    assert max(lost_ms) > 10


def test_a_crashed_file_opens_and_the_next_seq_follows_the_reservation(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SERVER), str(tmp_path), "1", "7"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    crashed = json.loads(done.stdout.splitlines()[0])
    assert crashed["killed"], (crashed, done.stderr)
    path = tmp_path / crashed["file"]
    assert Path(str(path) + "-wal").exists()  # left as a crash leaves it

    async def resume() -> tuple[int, int]:
        async with Log(sink=SQLiteLog(path)) as log:
            return log.last_seq, log._emit("log.note").seq

    last, seq = anyio.run(resume)
    assert last == crashed["reserved"] >= crashed["appended_seq"]
    assert seq == last + 1
    assert read_events(path)[-1].seq == seq
    # A clean close gives the unused reservation back: the next run continues without a gap.
    seq2 = anyio.run(resume)[1]
    assert seq2 == seq + 1


# -- the reservation, deterministically ------------------------------------------------------


def _reserved(path: Path) -> int:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'seq_reserved'").fetchone()
        return int(row[0])
    finally:
        conn.close()


@pytest.mark.timecontrol
async def test_every_handed_out_seq_is_covered_by_a_committed_reservation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a tiny block the writer must extend the reservation every few events, and the
    Log may hand out a seq only once a reservation covering it is in the file."""
    monkeypatch.setattr(sqlite_module, "SEQ_BLOCK", 10)
    path = tmp_path / "log.sqlite"
    sink = SQLiteLog(path, batch_size=7)
    log = Log(sink=sink)
    for i in range(1, 201):
        event = log._emit("log.note", "", {"i": i})
        assert event.seq == i
        if i % 9 == 0:
            assert _reserved(path) >= event.seq  # read by another connection: committed
        if i % 50 == 0:
            await anyio.sleep(0.01)  # virtual time: the writer is a real thread regardless
    assert _reserved(path) >= 200
    await log.aclose()
    assert _reserved(path) == 200  # a clean close gives back what was not used
    assert [e.seq for e in read_events(path)] == list(range(1, 201))
