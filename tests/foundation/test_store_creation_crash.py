"""A crash while a store file was being created leaves a file that opens as new, not as foreign."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from timecontrol.errors import StoreForeignError
from timecontrol.stores import SQLiteLog

MAGIC = bytes.fromhex("d9d505f920a163d7")


def _journal(pages: int) -> bytes:
    fields = (0, 1234, pages, 512, 4096)
    return MAGIC + b"".join(v.to_bytes(4, "big") for v in fields) + bytes(484)


def test_a_hot_journal_from_an_empty_file_is_an_interrupted_creation(tmp_path: Path) -> None:
    path = tmp_path / "lab.sqlite"
    path.write_bytes(b"SQLite format 3\0" + bytes(90))  # torn first page
    (tmp_path / "lab.sqlite-journal").write_bytes(_journal(0))
    log = SQLiteLog(path)
    log.close()
    assert not (tmp_path / "lab.sqlite-journal").exists()
    assert SQLiteLog(path, readonly=True).last_seq() == 0


def test_a_file_switched_to_wal_without_tables_is_initialised(tmp_path: Path) -> None:
    path = tmp_path / "lab.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    SQLiteLog(path).close()


def test_a_hot_journal_of_a_real_database_is_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    (tmp_path / "other.sqlite-journal").write_bytes(_journal(3))
    with pytest.raises(StoreForeignError, match="rollback journal"):
        SQLiteLog(path)
    assert path.read_bytes() == before
