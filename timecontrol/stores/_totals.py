"""Lifetime totals of execution records deleted by the retention (``scheduler_totals``).

Why this shape: statistics are read from the Log, and the retention deletes old records from
it. So that a job's totals survive, the records about to be deleted are *folded* first,
in the same transaction as the delete, into one row per (job, status): how many fire times,
the sum / count / min / max of their durations, and the newest record itself (for a job's
last run). Nothing is counted on the fire path, and nothing can be counted twice or lost:
a record is either still in ``events`` or folded into ``scheduler_totals``, never both,
never neither (one transaction, on the Log's writer thread). Statistics add the two.

The table lives in the same file as the Log and the job tables and is created with the first
purge (``CREATE TABLE IF NOT EXISTS``: older readers ignore it).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence
from typing import Any, Final

import msgspec

__all__ = ["PurgeGroup", "TotalsRow", "create_totals", "purge_folding", "read_totals"]

_DDL: Final = """
CREATE TABLE IF NOT EXISTS scheduler_totals (
    job_id     TEXT NOT NULL,
    status     TEXT NOT NULL,
    count      INTEGER NOT NULL,
    dur_sum    REAL NOT NULL,
    dur_n      INTEGER NOT NULL,
    dur_min    REAL,
    dur_max    REAL,
    last_seq   INTEGER NOT NULL,
    last_event TEXT NOT NULL,
    PRIMARY KEY (job_id, status)
)
"""

#: One purge rule: delete records older than wall time ``before``, of the jobs in ``only``
#: (None: every job) except those in ``but``.
PurgeGroup = tuple[float, Sequence[str] | None, Sequence[str]]
#: A totals row: (status, count, dur_sum, dur_n, dur_min, dur_max, last_seq,
#: last event as [seq, mono, wall, kind, subject, payload]).
TotalsRow = tuple[str, int, float, int, float | None, float | None, int, list[Any]]

_UPSERT: Final = """
INSERT INTO scheduler_totals
    (job_id, status, count, dur_sum, dur_n, dur_min, dur_max, last_seq, last_event)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (job_id, status) DO UPDATE SET
    count = count + excluded.count,
    dur_sum = dur_sum + excluded.dur_sum,
    dur_n = dur_n + excluded.dur_n,
    dur_min = CASE WHEN dur_min IS NULL OR excluded.dur_min < dur_min
                   THEN excluded.dur_min ELSE dur_min END,
    dur_max = CASE WHEN dur_max IS NULL OR excluded.dur_max > dur_max
                   THEN excluded.dur_max ELSE dur_max END,
    last_event = CASE WHEN excluded.last_seq > last_seq
                      THEN excluded.last_event ELSE last_event END,
    last_seq = MAX(last_seq, excluded.last_seq)
"""


def create_totals(conn: sqlite3.Connection) -> None:
    """Create the totals table if it is not there."""
    conn.execute(_DDL)


def _where(group: PurgeGroup) -> tuple[str, list[Any]]:
    before, only, but = group
    sql, args = "wall < ?", list[Any]([before])
    if only is not None:
        sql += f" AND subject IN ({', '.join('?' * len(only))})"
        args.extend(only)
    if but:
        sql += f" AND subject NOT IN ({', '.join('?' * len(but))})"
        args.extend(but)
    return sql, args


def _fold(
    conn: sqlite3.Connection, where: str, args: list[Any], status_of_kind: dict[str, str]
) -> None:
    kinds = sorted(status_of_kind)
    marks = ", ".join("?" * len(kinds))
    # Durations are numbers in the payload; json_extract gives NULL where there is none.
    rows = conn.execute(
        "SELECT subject, kind, "
        "SUM(CASE WHEN json_type(payload, '$.count') = 'integer' "
        "         THEN json_extract(payload, '$.count') ELSE 1 END), "
        "TOTAL(json_extract(payload, '$.duration')), COUNT(json_extract(payload, '$.duration')), "
        "MIN(json_extract(payload, '$.duration')), MAX(json_extract(payload, '$.duration')), "
        f"MAX(seq) FROM events WHERE {where} AND kind IN ({marks}) GROUP BY subject, kind",
        (*args, *kinds),
    ).fetchall()
    for subject, kind, count, dur_sum, dur_n, dur_min, dur_max, last_seq in rows:
        last = conn.execute(
            "SELECT seq, mono, wall, kind, subject, payload FROM events WHERE seq = ?",
            (last_seq,),
        ).fetchone()
        conn.execute(
            _UPSERT,
            (
                subject,
                status_of_kind[kind],
                int(count),
                float(dur_sum),
                int(dur_n),
                dur_min,
                dur_max,
                last_seq,
                msgspec.json.encode(list(last)).decode(),
            ),
        )


def purge_folding(
    conn: sqlite3.Connection,
    groups: Collection[PurgeGroup],
    status_of_kind: dict[str, str],
    also: Collection[str],
) -> int:
    """Fold the records each group deletes into the totals, then delete them and the events
    of kinds `also` (a run's start, a queued fire time) under the same rule. On the writer
    thread, in its transaction. Returns how many events were deleted."""
    create_totals(conn)
    deleted = 0
    kinds = sorted({*status_of_kind, *also})
    marks = ", ".join("?" * len(kinds))
    for group in groups:
        where, args = _where(group)
        _fold(conn, where, args, status_of_kind)
        deleted += conn.execute(
            f"DELETE FROM events WHERE {where} AND kind IN ({marks})", (*args, *kinds)
        ).rowcount
    return deleted


def read_totals(conn: sqlite3.Connection, job_id: str) -> list[TotalsRow]:
    """The totals rows of one job (none before its first purge)."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "scheduler_totals" not in tables:
        return []
    out: list[TotalsRow] = []
    for row in conn.execute(
        "SELECT status, count, dur_sum, dur_n, dur_min, dur_max, last_seq, last_event "
        "FROM scheduler_totals WHERE job_id = ?",
        (job_id,),
    ):
        try:
            last = msgspec.json.decode(row[7])
        except msgspec.DecodeError:
            last = []
        out.append((row[0], row[1], row[2], row[3], row[4], row[5], row[6], last))
    return out
