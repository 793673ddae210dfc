"""The inbox's group commit: rows of concurrent requests share one transaction, and no
request hears "stored" before its row is committed. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, func, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from node.inbox_writer import (
    MAX_BATCH,
    InboxQueueFull,
    InboxRow,
    InboxWriter,
    InboxWriterClosed,
    QueueDepth,
)
from node.storage.db import _begin_immediate_waiting as writer_begin
from node.storage.db import begin_immediate_waiting, migrate
from node.storage.models import InboxArrival, InboxItem, InboxState
from tests.node_support import database_engine

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request, tmp_path) -> AsyncEngine:
    async for created in database_engine(request.param, tmp_path):
        await migrate(created)
        yield created


def row(number: int) -> InboxRow:
    return InboxRow(activity_uri=f"https://a.example/activities/{number}", inbox="shared",
                    actor=f"https://a.example/users/{number % 3}", remote_host="a.example",
                    raw={"id": number, "type": "Create"}, received_at=NOW)


async def stored_uris(engine: AsyncEngine) -> list[str]:
    """Every stored activity id in the order a claim takes them: the items, then the
    arrivals a saturated writer appended (SQLite) that no claim has moved yet."""
    async with engine.connect() as connection:
        result = await connection.execute(select(InboxItem.activity_uri).order_by(InboxItem.id))
        arrivals = await connection.execute(
            select(InboxArrival.activity_uri).order_by(InboxArrival.id))
        return [uri for (uri,) in result] + [uri for (uri,) in arrivals]


class Inserts:
    """Counts the INSERTs the engine's cursor hooks see: one per batch, into inbox_items
    or, while a saturated SQLite writer appends, into inbox_arrivals."""

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._before)

    def _before(self, conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001, PLR0913
        if statement.upper().startswith(("INSERT INTO INBOX_ITEMS", "INSERT INTO INBOX_ARRIVALS")):
            self.count += 1


async def test_concurrent_rows_share_transactions_and_are_committed_before_the_answer(engine) -> None:
    writer = InboxWriter(engine, queue_limit=1000)
    inserts = Inserts(writer.statement_engine)
    committed_at_answer: list[bool] = []

    async def store(number: int) -> bool:
        is_new = await writer.store(row(number))
        # a fresh connection sees only committed rows
        committed_at_answer.append(row(number).activity_uri in await stored_uris(engine))
        return is_new

    try:
        answers = await asyncio.gather(*(store(n) for n in range(100)))
    finally:
        await writer.close()
    assert answers == [True] * 100
    assert all(committed_at_answer)
    assert len(await stored_uris(engine)) == 100
    assert writer.batches < 20, writer.batches  # grouped: far fewer transactions than rows
    assert inserts.count == writer.batches


async def test_a_known_activity_is_stored_once_in_one_batch_and_across_batches(engine) -> None:
    writer = InboxWriter(engine, queue_limit=1000)
    try:
        answers = await asyncio.gather(writer.store(row(1)), writer.store(row(1)),
                                       writer.store(row(2)))
        again = await writer.store(row(1))
    finally:
        await writer.close()
    assert sorted(answers) == [False, True, True]  # one of the two copies is new
    assert again is False
    assert await stored_uris(engine) == [row(1).activity_uri, row(2).activity_uri]


async def test_queue_limit_holds_within_a_batch_and_counts_the_waiting_items(engine) -> None:
    writer = InboxWriter(engine, queue_limit=3)
    try:
        answers = await asyncio.gather(*(writer.store(row(n)) for n in range(5)),
                                       return_exceptions=True)
        assert answers[:3] == [True, True, True]
        assert all(isinstance(answer, InboxQueueFull) for answer in answers[3:])
        assert len(await stored_uris(engine)) == 3
        # once the worker processed one, there is room for one more
        async with engine.begin() as connection:
            await connection.execute(update(InboxItem).where(InboxItem.id == 1)
                                     .values(state=InboxState.DONE.value))
        assert await writer.store(row(10)) is True
        with pytest.raises(InboxQueueFull):
            await writer.store(row(11))
    finally:
        await writer.close()
    assert len(await stored_uris(engine)) == 4


async def test_a_failed_transaction_fails_every_request_of_the_batch_and_stores_nothing(engine) -> None:
    writer = InboxWriter(engine, queue_limit=1000)
    failing = [True]

    def fail_insert(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001, PLR0913
        if failing[0] and statement.lstrip().upper().startswith("INSERT INTO INBOX_ITEMS"):
            raise OperationalError(statement, {}, Exception("database or disk is full"))

    event.listen(writer.statement_engine, "before_cursor_execute", fail_insert)
    try:
        answers = await asyncio.gather(*(writer.store(row(n)) for n in range(10)),
                                       return_exceptions=True)
        assert all(isinstance(answer, OperationalError) for answer in answers), answers
        assert await stored_uris(engine) == []
        failing[0] = False  # the writer carries on after the fault
        assert await writer.store(row(1)) is True
    finally:
        event.remove(writer.statement_engine, "before_cursor_execute", fail_insert)
        await writer.close()
    assert await stored_uris(engine) == [row(1).activity_uri]


async def test_close_writes_what_is_queued_then_refuses(engine) -> None:
    writer = InboxWriter(engine, queue_limit=1000)
    pending = [asyncio.ensure_future(writer.store(row(n))) for n in range(20)]
    await asyncio.sleep(0)  # the requests are queued
    await writer.close()
    assert [task.result() for task in pending] == [True] * 20
    with pytest.raises(InboxWriterClosed):
        await writer.store(row(99))
    async with engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(InboxItem)) == 20


async def test_an_unexpected_error_fails_the_batch_and_the_writer_carries_on(engine) -> None:
    writer = InboxWriter(engine, queue_limit=1000)
    # a result the writer cannot read: on SQLite on the writer's thread, else on the loop
    if writer._batch is not None:
        owner, name = writer._batch, "store"

        def broken(rows, depth):  # noqa: ANN001, ANN202
            return len(rows), None
    else:
        owner, name = writer, "_store_batch"

        async def broken(rows):  # noqa: ANN001, ANN202
            return len(rows), None

    real = getattr(owner, name)
    setattr(owner, name, broken)
    try:
        answers = await asyncio.wait_for(
            asyncio.gather(writer.store(row(1)), writer.store(row(2)), return_exceptions=True),
            timeout=10)  # nobody waits for ever
        assert all(isinstance(answer, TypeError) for answer in answers), answers
        setattr(owner, name, real)
        assert await writer.store(row(3)) is True
    finally:
        await writer.close()


async def test_on_sqlite_each_commit_is_synced_to_disk(tmp_path) -> None:
    """The 202 must outlive a power cut: synchronous=FULL (2) on the writer's connections,
    while the node's other connections keep NORMAL (1)."""
    async for engine in database_engine("sqlite", tmp_path):
        await migrate(engine)
        writer = InboxWriter(engine, queue_limit=10)
        try:
            assert await writer.store(row(1)) is True
            with writer.statement_engine.connect() as connection:
                assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2
            async with engine.connect() as connection:
                assert (await connection.exec_driver_sql("PRAGMA synchronous")).scalar() == 1
        finally:
            await writer.close()


async def test_on_sqlite_the_writer_waits_for_the_write_lock_by_its_own_retries(tmp_path) -> None:
    """Its connections have no busy timeout (SQLite's handler sleeps up to 100 ms between
    tries); the writer retries itself until the other transaction ends, then commits."""
    async for engine in database_engine("sqlite", tmp_path):
        await migrate(engine)
        writer = InboxWriter(engine, queue_limit=10)
        other = sqlite3.connect(str(tmp_path / "test.db"), isolation_level=None)
        try:
            with writer.statement_engine.connect() as connection:
                assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 0
            other.execute("BEGIN IMMEDIATE")  # holds the write lock
            stored = asyncio.create_task(writer.store(row(1)))
            await asyncio.sleep(0.2)
            assert not stored.done()  # still waiting, not failed
            other.execute("COMMIT")
            assert await asyncio.wait_for(stored, 10) is True
            assert await stored_uris(engine) == [row(1).activity_uri]
        finally:
            other.close()
            await writer.close()


async def test_close_lets_the_loop_end_the_transaction_a_job_on_its_thread_waits_for(tmp_path) -> None:
    """At shutdown a job may still wait on the writer's thread for the write lock that a
    transaction of this event loop holds; that transaction ends only while the loop runs.
    ``close`` used to block the loop until the thread finished: every such shutdown
    stalled for the whole lock wait (15 s)."""
    async for engine in database_engine("sqlite", tmp_path):
        await migrate(engine)
        writer = InboxWriter(engine, queue_limit=10)
        loop = asyncio.get_running_loop()
        async with engine.connect() as holder:
            await holder.begin()  # BEGIN IMMEDIATE (the engine's hook): the write lock
            job = asyncio.create_task(writer.run_sync(
                lambda connection: connection.exec_driver_sql("SELECT 1").scalar()))
            await asyncio.sleep(0.1)  # the job waits for the lock on the writer's thread
            assert not job.done()

            async def end_transaction_soon() -> None:
                await asyncio.sleep(0.2)  # runs only if close() leaves the loop running
                await holder.commit()

            ending = asyncio.create_task(end_transaction_soon())
            started = loop.time()
            await asyncio.wait_for(writer.close(), timeout=10)
            assert loop.time() - started < 5  # not the lock wait's 15 s
            await ending
        assert await asyncio.wait_for(job, 1) == 1  # the job ran once the lock was free


def test_begin_is_tried_again_only_while_the_database_is_locked() -> None:
    class Raw:
        def __init__(self, errors: list[str]) -> None:
            self.errors = errors
            self.tries = 0

        def execute(self, statement: str) -> None:
            assert statement == "BEGIN IMMEDIATE"
            self.tries += 1
            if self.errors:
                raise sqlite3.OperationalError(self.errors.pop(0))

    locked_twice = Raw(["database is locked", "database is locked"])
    begin_immediate_waiting(locked_twice)
    assert locked_twice.tries == 3
    still_locked = Raw(["database is locked"] * 5)
    with pytest.raises(sqlite3.OperationalError):
        begin_immediate_waiting(still_locked, wait=0.0)
    assert still_locked.tries == 1
    full = Raw(["database or disk is full", "database is locked"])
    with pytest.raises(sqlite3.OperationalError, match="full"):
        begin_immediate_waiting(full)  # not a lock: at once
    assert full.tries == 1


def test_a_failed_begin_is_the_database_error_the_inbox_answers_503_to() -> None:
    class Raw:
        def execute(self, _statement: str) -> None:
            raise sqlite3.OperationalError("disk I/O error")

    class Fairy:
        dbapi_connection = Raw()

    class Connection:
        connection = Fairy()

    with pytest.raises(OperationalError, match="disk I/O error"):  # SQLAlchemy's, as before
        writer_begin(Connection())  # type: ignore[arg-type]


class _Counted:
    """The count of waiting items, as the writer's transaction would take it."""

    def __init__(self, waiting: int) -> None:
        self.waiting = waiting

    def __call__(self) -> int:
        return self.waiting


def test_the_waiting_items_are_counted_only_when_the_limit_is_near() -> None:
    clock = [0.0]
    depth = QueueDepth(10_000, monotonic=lambda: clock[0])
    count = _Counted(waiting=100)
    assert depth.room(count, 10) == 9_900 and depth.counts == 1
    depth.added(10)
    count.waiting = 50  # the worker processed some meanwhile
    assert depth.room(count, 10) == 9_890 and depth.counts == 1  # estimated, never lower
    clock[0] += QueueDepth.RECOUNT_SECONDS
    assert depth.room(count, 10) == 9_950 and depth.counts == 2  # counted again
    depth.added(8_950)  # close to the limit: every batch is counted
    count.waiting = 9_000
    assert depth.room(count, 10) == 1_000 and depth.counts == 3
    assert depth.room(count, 10) == 1_000 and depth.counts == 4


def test_the_estimate_counts_the_other_acceptors_rows_too() -> None:
    clock = [0.0]
    depth = QueueDepth(10_000, processes=2, monotonic=lambda: clock[0])
    assert depth.room(_Counted(waiting=0), 1) == 10_000
    depth.added(4_000)  # this acceptor's; the other's are presumed as many
    assert depth.room(_Counted(waiting=0), MAX_BATCH) == 2_000 and depth.counts == 1
    depth.added(500)  # 9,000 presumed: within a tenth of the limit, so counted
    assert depth.room(_Counted(waiting=9_500), 1) == 500 and depth.counts == 2


@pytest.fixture
async def sqlite_writer(tmp_path):  # noqa: ANN001, ANN201
    """A writer on a migrated SQLite database (the thread's own behaviour), closed after."""
    async for engine in database_engine("sqlite", tmp_path):
        await migrate(engine)
        writer = InboxWriter(engine, queue_limit=100)
        try:
            yield writer
        finally:
            await writer.close()


def _committed_rows(database) -> int:  # noqa: ANN001 - a path
    with sqlite3.connect(database) as connection:
        return connection.execute("SELECT count(*) FROM inbox_items").fetchone()[0]


async def test_on_sqlite_the_next_batch_begins_without_waiting_for_the_event_loop(tmp_path, sqlite_writer) -> None:
    """The writer's thread takes its next batch itself: while the event loop is busy
    (blocked here), a second batch is committed all the same; as a task on the loop it
    began only when the loop came round to the first one's completion."""
    writer = sqlite_writer
    writer._max_batch = 1  # three rows, three batches
    stored = [asyncio.ensure_future(writer.store(row(n))) for n in (1, 2, 3)]
    await asyncio.sleep(0)  # the three rows are handed in
    deadline = time.monotonic() + 5
    while _committed_rows(tmp_path / "test.db") < 3 and time.monotonic() < deadline:
        time.sleep(0.01)  # the loop stays busy: nothing of it runs meanwhile
    assert _committed_rows(tmp_path / "test.db") == 3
    assert not any(task.done() for task in stored)  # answered only through the loop
    assert await asyncio.wait_for(asyncio.gather(*stored), 5) == [True, True, True]
    assert writer.batches == 3


async def test_on_sqlite_a_job_runs_after_the_rows_handed_in_before_it(sqlite_writer) -> None:
    writer = sqlite_writer
    stored = [asyncio.ensure_future(writer.store(row(n))) for n in range(5)]
    await asyncio.sleep(0)  # the rows are handed in first

    def count(connection) -> int:  # noqa: ANN001
        return connection.exec_driver_sql("SELECT count(*) FROM inbox_items").scalar()

    assert await writer.run_sync(count) == 5
    assert await asyncio.gather(*stored) == [True] * 5


async def test_on_sqlite_a_failing_job_tells_its_caller_and_the_writer_carries_on(sqlite_writer) -> None:
    writer = sqlite_writer

    def broken(connection) -> None:  # noqa: ANN001
        connection.exec_driver_sql("SELECT * FROM no_such_table")

    with pytest.raises(OperationalError, match="no_such_table"):
        await writer.run_sync(broken)
    assert await writer.store(row(1)) is True
    assert await writer.run_sync(lambda connection: 42) == 42
    await writer.close()
    with pytest.raises(InboxWriterClosed):
        await writer.run_sync(lambda connection: 42)
