"""The inbox writers of a node's acceptor processes take turns (``WriterTurns``): a writer
waits for the other's transaction to end in the kernel and is woken at once, instead of
trying SQLite's write lock every millisecond; a failure lets go of the turn; without a
lock file the writer stores all the same."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import event

from node import inbox_sqlite
from node.inbox_sqlite import SqliteBatch, WriterTurns, in_transaction
from node.inbox_writer import InboxWriter, QueueDepth
from node.storage.db import migrate, sync_sqlite_engine
from tests.node_support import database_engine
from tests.test_inbox_writer import row


@pytest.fixture
async def database(tmp_path: Path) -> Path:
    """A migrated SQLite database file."""
    async for engine in database_engine("sqlite", tmp_path):
        await migrate(engine)
    return tmp_path / "test.db"


def _rows(database: Path) -> int:
    with sqlite3.connect(database) as connection:
        return connection.execute("SELECT (SELECT count(*) FROM inbox_items) + "
                                  "(SELECT count(*) FROM inbox_arrivals)").fetchone()[0]


def _turn_is_free(path: str) -> bool:
    """Whether another process's writer could take the turn now (a third lock holder)."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # lets go of it again
    return True


class Acceptor:
    """What one acceptor process's writer holds: its engine, its turns, its batch."""

    def __init__(self, database: Path) -> None:
        self.engine = sync_sqlite_engine(f"sqlite:///{database}", fsync_each_commit=True,
                                         wait_for_lock=True)
        self.turns = WriterTurns(str(database.resolve()))
        self.batch = SqliteBatch(self.engine, self.turns)

    def close(self) -> None:
        self.batch.close()
        self.turns.close()
        self.engine.dispose()


@pytest.fixture
def acceptors(database: Path):  # noqa: ANN201 - a generator of two Acceptors
    pair = Acceptor(database), Acceptor(database)
    try:
        yield pair
    finally:
        for acceptor in pair:
            acceptor.close()


def test_a_writer_waits_for_the_other_writers_turn_and_stores_when_it_ends(database, acceptors) -> None:
    first, second = acceptors
    stored: list[tuple[int, set[str]]] = []
    with first.turns.turn():  # the other acceptor's transaction is under way
        writing = threading.Thread(target=lambda: stored.append(
            second.batch.store([row(1)], QueueDepth(10))))
        writing.start()
        writing.join(0.3)
        assert writing.is_alive()  # waiting for its turn, not failed, not written
        assert _rows(database) == 0
    writing.join(5)
    assert not writing.is_alive()
    assert stored == [(1, {row(1).activity_uri})]
    assert _rows(database) == 1
    assert _turn_is_free(first.turns.path)  # each let go after its transaction


def test_a_failed_transaction_lets_go_of_the_turn(database, acceptors) -> None:
    first, second = acceptors

    def refuse_inserts(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001, ANN202, PLR0913
        if statement.upper().startswith("INSERT INTO INBOX_ITEMS"):
            raise sqlite3.OperationalError("disk I/O error")
        return statement, parameters

    event.listen(first.engine, "before_cursor_execute", refuse_inserts, retval=True)
    with pytest.raises(Exception, match="disk I/O error"):
        first.batch.store([row(1)], QueueDepth(10))
    assert _turn_is_free(first.turns.path)
    assert second.batch.store([row(2)], QueueDepth(10)) == (1, {row(2).activity_uri})
    assert _rows(database) == 1


def test_a_job_on_the_writers_thread_takes_its_turn_too(database, acceptors) -> None:
    first, second = acceptors
    done = threading.Event()

    def job() -> None:
        in_transaction(second.engine, lambda connection: connection.exec_driver_sql(
            "DELETE FROM inbox_items"), second.turns)
        done.set()

    with first.turns.turn():
        threading.Thread(target=job).start()
        assert not done.wait(0.3)
    assert done.wait(5)


def _stores_two_batches_and_warns_once(database: Path, caplog) -> None:  # noqa: ANN001
    """Without turns the writer stores on SQLite's lock alone, and says so once."""
    acceptor = Acceptor(database)
    try:
        assert acceptor.batch.store([row(1)], QueueDepth(10)) == (1, {row(1).activity_uri})
        assert acceptor.batch.store([row(2)], QueueDepth(10)) == (1, {row(2).activity_uri})
    finally:
        acceptor.close()
    assert _rows(database) == 2
    warnings = [r for r in caplog.records if "no lock file" in r.getMessage()]
    assert len(warnings) == 1  # said once, not per batch


def test_without_a_lock_file_the_writer_stores_on_sqlites_lock_alone(database, caplog) -> None:
    Path(f"{database.resolve()}-inbox-lock").mkdir()  # the lock file cannot be opened
    _stores_two_batches_and_warns_once(database, caplog)


def test_where_flock_is_refused_the_writer_stores_on_sqlites_lock_alone(database, caplog,
                                                                       monkeypatch) -> None:
    def refuse(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(inbox_sqlite.fcntl, "flock", refuse)
    _stores_two_batches_and_warns_once(database, caplog)


async def test_the_inbox_writer_takes_its_turn_beside_the_database(tmp_path) -> None:
    """The node's writer uses the turns of its database file: while another acceptor's
    writer holds the turn, a request's row waits; then it is stored and answered."""
    async for engine in database_engine("sqlite", tmp_path):
        await migrate(engine)
        writer = InboxWriter(engine, queue_limit=10, processes=2)
        other = WriterTurns(str((tmp_path / "test.db").resolve()))
        try:
            with other.turn():
                stored = asyncio.ensure_future(writer.store(row(1)))
                await asyncio.sleep(0.3)
                assert not stored.done()
                assert _rows(tmp_path / "test.db") == 0
            assert await asyncio.wait_for(stored, 5) is True
        finally:
            other.close()
            await writer.close()
        assert _turn_is_free(other.path)  # closing the writer let go of its file
