"""The writer's SQLite batch on the driver's connection stores exactly what the Core
statement stored.

Both write the same rows (odd ones included) into two fresh databases; every column of
every row is compared as SQLite holds it (the JSON and timestamp text, not what the ORM
makes of it when read), and so are the answers: which rows were taken, which were new.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from node.inbox_sqlite import SqliteBatch
from node.inbox_writer import InboxRow, QueueDepth, store_rows
from node.storage.db import create_engine, migrate, sync_sqlite_engine

ROWS = [
    InboxRow("https://a.example/1", "shared", "https://a.example/u", "a.example",
             {"id": 1, "type": "Create", "content": "Bäume ∑ \U0001f333 \"quoted\" \\ \n"},
             datetime(2026, 11, 23, 4, 0, 0, 123456, tzinfo=UTC)),
    InboxRow("https://a.example/2", "actor", "https://a.example/u", "10.0.0.1",
             {"nested": [{"a": None, "b": [1.5, True, False]}], "empty": {}},
             datetime(2026, 11, 23, 6, 0, tzinfo=timezone(timedelta(hours=2)))),
    InboxRow("https://a.example/1", "shared", "https://a.example/u", "a.example",
             {"id": "the same id again"}, datetime(2026, 11, 23, 4, 0, tzinfo=UTC)),
    InboxRow("https://a.example/3?x=1#f", "shared", "https://b.example/u", "b.example",
             {"n": 2**53, "s": ""}, datetime(2026, 1, 1, tzinfo=UTC)),
]


async def _database(path: Path) -> str:
    url = f"sqlite+aiosqlite:///{path}"
    engine = create_engine(url)
    await migrate(engine)
    await engine.dispose()
    return url


def _stored(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as connection:
        return connection.execute("SELECT * FROM inbox_items ORDER BY id").fetchall()


@pytest.mark.parametrize("limit", [1_000, 2])
async def test_driver_sql_stores_what_the_core_statement_stored(tmp_path: Path, limit: int) -> None:
    answers = []
    for name, driver in (("core", False), ("driver", True)):
        engine = sync_sqlite_engine(await _database(tmp_path / f"{name}.sqlite"),
                                    fsync_each_commit=True, wait_for_lock=True)
        depth = QueueDepth(limit)
        try:
            sqlite_batch = SqliteBatch(engine)
            for batch in (ROWS[:1], ROWS[1:], ROWS):  # the last one: every id known already
                if driver:
                    answers.append(sqlite_batch.store(batch, depth))
                else:
                    with engine.begin() as connection:
                        answers.append(store_rows(connection, [r.values() for r in batch], depth))
        finally:
            sqlite_batch.close()
            engine.dispose()
    core, driver = answers[:3], answers[3:]
    assert driver == core
    stored = _stored(tmp_path / "driver.sqlite")
    assert stored == _stored(tmp_path / "core.sqlite")
    assert len(stored) == min(limit, 3)


def test_the_sql_is_made_once_per_number_of_rows() -> None:
    from sqlalchemy.dialects import sqlite

    class Engine:
        dialect = sqlite.dialect()

    batch = SqliteBatch(Engine())  # type: ignore[arg-type]
    assert batch.sql(2) is batch.sql(2)
    select_known, insert = batch.sql(2)
    assert select_known.count("?") == 2
    assert insert.count("(?, ?, ?, ?, ?, ?, ?, ?)") == 2
    assert insert.upper().startswith("INSERT INTO INBOX_ITEMS")  # the fault hooks' test


async def test_a_row_with_its_json_text_is_stored_as_received(tmp_path: Path) -> None:
    # The inbox hands the body it parsed: stored as it is (spacing, key order, non-ASCII
    # unescaped), and the JSON column reads it back as the document.
    from sqlalchemy import select

    from node.storage.models import InboxItem

    text = '{ "type":"Create",\n "id" : "https://a.example/9", "content": "Bäume \\u00e4" }'
    document = {"type": "Create", "id": "https://a.example/9", "content": "Bäume ä"}
    row = InboxRow("https://a.example/9", "shared", "https://a.example/u", "a.example",
                   document, datetime(2026, 11, 23, tzinfo=UTC), raw_json=text)
    url = await _database(tmp_path / "text.sqlite")
    engine = sync_sqlite_engine(url, fsync_each_commit=True, wait_for_lock=True)
    sqlite_batch = SqliteBatch(engine)
    try:
        assert sqlite_batch.store([row], QueueDepth(10)) == (1, {"https://a.example/9"})
        with engine.connect() as connection:
            assert connection.execute(select(InboxItem.raw)).scalar_one() == document
    finally:
        sqlite_batch.close()
        engine.dispose()
    with sqlite3.connect(tmp_path / "text.sqlite") as connection:
        assert connection.execute("SELECT raw FROM inbox_items").fetchone()[0] == text
