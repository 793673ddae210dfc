"""The SQLite group commit as one autocommit INSERT (``SqliteBatch._insert_at_once``).

Between two counts of the waiting items a batch is a single driver call: no BEGIN, no
SELECT, no COMMIT of its own. What it must still do as the transaction of before did:
tell exactly which ids were new, wait for another connection's write lock, not retry an
error that is not SQLite's lock, and store nothing when it fails.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError

from node.inbox_sqlite import SqliteBatch, WriterTurns
from node.inbox_writer import InboxRow, InboxWriter, QueueDepth
from node.storage.db import create_engine, migrate, sync_sqlite_engine


def row(number: int) -> InboxRow:
    return InboxRow(f"https://a.example/activities/{number}", "shared", "https://a.example/u",
                    "a.example", {"id": number}, datetime(2026, 11, 24, tzinfo=UTC))


def _ids(*numbers: int) -> set[str]:
    return {row(n).activity_uri for n in numbers}


def _stored(path: Path) -> list[str]:
    with sqlite3.connect(path) as connection:
        return [uri for (uri,) in connection.execute(
            "SELECT activity_uri FROM inbox_items ORDER BY id")]


class Batch:
    """A ``SqliteBatch`` on a fresh database, every SQL statement it runs recorded."""

    def __init__(self, path: Path, url: str) -> None:
        self.path = path
        self.engine = sync_sqlite_engine(url, fsync_each_commit=True, wait_for_lock=True)
        self.statements: list[str] = []
        event.listen(self.engine, "connect",
                     lambda dbapi, _record: dbapi.set_trace_callback(self.statements.append))
        self.batch = SqliteBatch(self.engine)
        self.depth = QueueDepth(1_000)

    def store(self, *numbers: int) -> tuple[int, set[str]]:
        return self.batch.store([row(n) for n in numbers], self.depth)

    def close(self) -> None:
        self.batch.close()
        self.engine.dispose()


@pytest.fixture
async def batch(tmp_path: Path):
    path = tmp_path / "at-once.sqlite"
    url = f"sqlite+aiosqlite:///{path}"
    engine = create_engine(url)
    await migrate(engine)
    await engine.dispose()
    made = Batch(path, url)
    yield made
    made.close()


def _kinds(statements: list[str]) -> list[str]:
    """Each statement's first words, without the connection's own PRAGMAs."""
    return [" ".join(s.split()[:2]).upper() for s in statements if not s.upper().startswith("PRAGMA")]


def test_between_two_counts_a_batch_is_one_insert(batch: Batch) -> None:
    assert batch.store(1, 2) == (2, _ids(1, 2))  # the first batch counts the waiting items
    # ... after asking once whether a node stopped in a burst left arrivals
    assert _kinds(batch.statements) == ["SELECT EXISTS", "BEGIN IMMEDIATE", "SELECT (SELECT",
                                        "SELECT ACTIVITY_URI", "INSERT INTO", "COMMIT"]
    batch.statements.clear()
    assert batch.store(3, 4, 5) == (3, _ids(3, 4, 5))
    assert _kinds(batch.statements) == ["INSERT INTO"]
    assert batch.depth.counts == 1
    assert _stored(batch.path) == sorted(_ids(1, 2, 3, 4, 5), key=lambda u: int(u.rsplit("/", 1)[1]))


@pytest.mark.parametrize("numbers, new", [
    ((1, 10, 2), {10}),  # a known id at each end
    ((10, 1, 11, 2, 12), {10, 11, 12}),  # known ids between new ones
    ((10, 11, 1), {10, 11}),  # the last one known: the statement's last rowid is the 11's
    ((1, 2, 3), set()),  # nothing new: no rowid of this statement at all
])
def test_the_new_ids_of_a_batch_with_known_ones(batch: Batch, numbers: tuple[int, ...],
                                                new: set[int]) -> None:
    batch.store(1, 2, 3)
    batch.statements.clear()
    assert batch.store(*numbers) == (len(numbers), _ids(*new))
    assert "BEGIN" not in " ".join(batch.statements).upper()  # the one-statement way
    assert len(_stored(batch.path)) == 3 + len(new)


def test_the_insert_waits_for_another_connections_write_lock(batch: Batch) -> None:
    batch.store(1)
    other = sqlite3.connect(batch.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the write lock, for 0.3 s
    answer: list[object] = []
    storing = threading.Thread(target=lambda: answer.append(batch.store(2)))
    started = time.monotonic()
    storing.start()
    time.sleep(0.3)
    assert not answer  # still waiting for the lock, not failed
    other.execute("COMMIT")
    other.close()
    storing.join(5)
    assert answer == [(1, _ids(2))]
    assert 0.3 <= time.monotonic() - started < 5


def test_an_error_that_is_not_sqlites_lock_is_not_tried_again(batch: Batch) -> None:
    batch.store(1)
    tries = []

    def locked(_conn, _cursor, statement, parameters, _context, _many):  # noqa: ANN001, ANN202
        if statement.upper().startswith("INSERT INTO INBOX_ITEMS"):
            tries.append(statement)
            raise sqlite3.OperationalError("database is locked")  # said by a hook: a fault
        return statement, parameters

    event.listen(batch.engine, "before_cursor_execute", locked, retval=True)
    started = time.monotonic()
    with pytest.raises(DBAPIError, match="database is locked"):
        batch.store(2)
    assert time.monotonic() - started < 1 and len(tries) == 1
    event.remove(batch.engine, "before_cursor_execute", locked)
    assert batch.store(2) == (1, _ids(2))
    assert _stored(batch.path) == sorted(_ids(1, 2))


def test_a_failed_insert_stores_nothing_of_its_batch(batch: Batch) -> None:
    batch.store(1)
    no_id = InboxRow(None, "shared", "https://a.example/u", "a.example", {},  # type: ignore[arg-type]
                     datetime(2026, 11, 24, tzinfo=UTC))
    with pytest.raises(DBAPIError, match="NOT NULL"):
        batch.batch.store([row(2), row(3), no_id], batch.depth)
    assert batch.depth.counts == 1  # it was the one-statement way
    assert _stored(batch.path) == sorted(_ids(1))  # the rows before the bad one are not kept
    assert batch.store(2, 3) == (2, _ids(2, 3))


async def test_a_node_with_one_acceptor_takes_no_turn(tmp_path: Path) -> None:
    """One acceptor has no other writer to take turns with: it stores while the turn is
    held elsewhere (two acceptors' writers wait: test_inbox_writer_turns.py)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'one.sqlite'}"
    engine = create_engine(url)
    await migrate(engine)
    writer = InboxWriter(engine, queue_limit=10)
    other = WriterTurns(str((tmp_path / "one.sqlite").resolve()))
    try:
        with other.turn():
            assert await writer.store(row(1)) is True
    finally:
        other.close()
        await writer.close()
        await engine.dispose()
    assert _stored(tmp_path / "one.sqlite") == sorted(_ids(1))
