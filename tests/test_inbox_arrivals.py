"""Arrivals: what a saturated SQLite inbox appends instead of inserting into the queue.

While requests queue for the writer (``SqliteBatch.appending``), a batch is one INSERT
into ``inbox_arrivals``, a table without any index but the rowid; a claim moves them
into ``inbox_items``. What must hold: nothing is lost or counted twice, a claim takes the
activities in the order they came (a later batch never overtakes arrivals still waiting,
also not one of another acceptor), a repeated activity id is kept once, the queue limit
counts arrivals as waiting, and the status shows them.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.exc import DBAPIError

from node.inbox import INBOX_WRITER
from node.inbox_queue import claim
from node.inbox_sqlite import SqliteBatch, WriterTurns, move_arrivals
from node.inbox_writer import InboxQueueFull, InboxRow, InboxWriter, QueueDepth
from node.status import node_status
from node.storage.db import create_engine, migrate, session_maker, sync_sqlite_engine
from node.storage.models import InboxArrival, InboxItem, InboxState, RemoteObject
from node.workers import build_workers, process_inbox_batch
from tests.engine_support import AS_CONTEXT, node_config, start_node

NOW = datetime(2026, 11, 24, tzinfo=UTC)


def row(number: int, actor: str = "https://a.example/u") -> InboxRow:
    return InboxRow(f"https://a.example/activities/{number}", "shared", actor, "a.example",
                    {"id": number}, NOW + timedelta(seconds=number))


def uris(*numbers: int) -> list[str]:
    return [row(n).activity_uri for n in numbers]


def table(path: Path, name: str) -> list[str]:
    with sqlite3.connect(path) as connection:
        return [uri for (uri,) in connection.execute(
            f"SELECT activity_uri FROM {name} ORDER BY id")]  # noqa: S608 - our table names


class Writer:
    """A ``SqliteBatch`` on a fresh database, every SQL statement it runs recorded."""

    def __init__(self, path: Path, *, turns: WriterTurns | None = None,
                 limit: int = 1_000) -> None:
        self.path = path
        self.engine = sync_sqlite_engine(f"sqlite:///{path}", fsync_each_commit=True,
                                         wait_for_lock=True)
        self.statements: list[str] = []
        event.listen(self.engine, "connect",
                     lambda dbapi, _record: dbapi.set_trace_callback(self.statements.append))
        self.batch = SqliteBatch(self.engine, turns)
        self.depth = QueueDepth(limit)

    def store(self, *numbers: int) -> tuple[int, set[str]]:
        return self.batch.store([row(n) for n in numbers], self.depth)

    def claim(self, limit: int = 100) -> list[str]:
        with self.engine.begin() as connection:
            return [item.activity_uri for item in
                    claim(connection, now=NOW, lease=timedelta(minutes=5), limit=limit)]

    def close(self) -> None:
        self.batch.close()
        self.engine.dispose()


@pytest.fixture
async def database(tmp_path: Path) -> Path:
    path = tmp_path / "arrivals.sqlite"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await migrate(engine)
    await engine.dispose()
    return path


@pytest.fixture
def writer(database: Path):
    made = Writer(database)
    yield made
    made.close()


def _inserts(statements: list[str]) -> list[str]:
    return [" ".join(s.split()[:3]).upper() for s in statements if s.upper().startswith("INSERT")]


def test_a_saturated_writer_appends_each_batch_with_one_insert(writer: Writer) -> None:
    writer.store(1)  # counted, into the queue: nothing appended yet
    writer.batch.appending = True
    writer.statements.clear()
    assert writer.store(2, 3) == (2, set(uris(2, 3)))
    assert writer.store(1, 4) == (2, set(uris(1, 4)))  # a known id is not told apart here
    assert _inserts(writer.statements) == ["INSERT INTO INBOX_ARRIVALS"] * 2
    assert "BEGIN" not in " ".join(writer.statements).upper()
    assert table(writer.path, "inbox_items") == uris(1)
    assert table(writer.path, "inbox_arrivals") == uris(2, 3, 1, 4)


def test_a_claim_moves_arrivals_in_order_and_keeps_a_repeated_id_once(writer: Writer) -> None:
    writer.store(1, 2)
    writer.batch.appending = True
    writer.store(3, 1)  # 1 is stored already
    writer.store(4, 3, 5)  # 3 twice among the arrivals
    assert writer.claim() == uris(1, 2, 3, 4, 5)
    assert table(writer.path, "inbox_items") == uris(1, 2, 3, 4, 5)
    assert table(writer.path, "inbox_arrivals") == []


def test_a_claim_moves_at_most_its_share_of_arrivals(writer: Writer) -> None:
    writer.batch.appending = True
    writer.store(*range(1, 8))
    with writer.engine.begin() as connection:
        move_arrivals(connection, limit=3)
    assert table(writer.path, "inbox_items") == uris(1, 2, 3)
    assert table(writer.path, "inbox_arrivals") == uris(4, 5, 6, 7)
    with writer.engine.begin() as connection:
        move_arrivals(connection, limit=3)
    assert table(writer.path, "inbox_items") == uris(1, 2, 3, 4, 5, 6)


def test_a_batch_after_the_burst_waits_behind_the_arrivals(writer: Writer) -> None:
    """Until a claim moved every arrival, a batch of a writer that is no longer saturated
    is appended too: in the queue it would be claimed before them."""
    writer.batch.appending = True
    writer.store(1, 2)
    writer.batch.appending = False
    writer.store(3)
    assert table(writer.path, "inbox_arrivals") == uris(1, 2, 3)
    assert writer.claim() == uris(1, 2, 3)
    writer.statements.clear()
    assert writer.store(4) == (1, set(uris(4)))  # none left: into the queue again ...
    assert table(writer.path, "inbox_items") == uris(1, 2, 3, 4)
    writer.statements.clear()
    writer.store(5)  # ... and from then on without asking (one acceptor appends alone)
    assert [" ".join(s.split()[:2]).upper() for s in writer.statements] == ["INSERT INTO"]


def test_arrivals_left_by_a_stopped_node_go_first(database: Path) -> None:
    before = Writer(database)
    before.batch.appending = True
    before.store(1, 2)
    before.close()
    after = Writer(database)  # a new process: it does not know what the last one left
    try:
        after.store(3)
        assert after.claim() == uris(1, 2, 3)
    finally:
        after.close()


def test_with_several_acceptors_a_writer_asks_before_each_batch(database: Path) -> None:
    """Another acceptor's writer may have appended since: asked in the turn, so no
    other writer appends between the question and the batch."""
    turns = WriterTurns(str(database.resolve()))
    first, second = Writer(database, turns=turns), Writer(database, turns=turns)
    try:
        second.store(1)
        first.batch.appending = True
        first.store(2, 3)
        second.store(4)  # not saturated, but behind the other one's arrivals
        assert table(database, "inbox_arrivals") == uris(2, 3, 4)
        assert second.claim() == uris(1, 2, 3, 4)
    finally:
        first.close()
        second.close()
        turns.close()


def test_the_queue_limit_counts_the_arrivals(database: Path) -> None:
    writer = Writer(database, limit=5)
    try:
        writer.batch.appending = True
        assert writer.store(1, 2, 3) == (3, set(uris(1, 2, 3)))  # counted: room for 5
        assert writer.depth.counts == 1
        assert writer.store(4, 5, 6, 7) == (2, set(uris(4, 5)))
        assert writer.depth.counts == 2
        with writer.engine.begin() as connection:
            move_arrivals(connection, limit=2)  # the count after a partial move
            assert writer.batch._count_waiting(connection.connection.driver_connection) == 5  # noqa: SLF001
        assert table(database, "inbox_arrivals") == uris(3, 4, 5)
    finally:
        writer.close()


def test_a_failed_append_keeps_nothing_of_its_batch(writer: Writer) -> None:
    writer.batch.appending = True
    writer.store(1)
    no_id = InboxRow(None, "shared", "https://a.example/u", "a.example", {},  # type: ignore[arg-type]
                     NOW)
    with pytest.raises(DBAPIError, match="NOT NULL"):
        writer.batch.store([row(2), no_id], writer.depth)
    assert table(writer.path, "inbox_arrivals") == uris(1)
    assert writer.store(2) == (1, set(uris(2)))


async def test_a_saturated_inbox_writer_appends_and_the_status_counts_arrivals(
        database: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    writer = InboxWriter(engine, queue_limit=3)
    try:
        writer.pressure.batch(10)  # the door's last batches held many rows: saturated
        assert await writer.store(row(1)) is True  # this batch still went to the queue ...
        assert await writer.store(row(2)) is True  # ... and after it, with the pressure,
        assert table(database, "inbox_arrivals") == uris(2)  # to the arrivals
        async with session_maker(engine)() as session:
            status = await node_status(session)
        assert status.inbox == {"received": 2}
        assert await writer.store(row(3)) is True
        with pytest.raises(InboxQueueFull):  # two items and an arrival waiting: full
            await writer.store(row(4))
    finally:
        await writer.close()
        await engine.dispose()


async def test_a_node_processes_what_its_saturated_inbox_appended(tmp_path: Path) -> None:
    """Through the node's own writer and inbox worker: each activity applied once, the
    repeated one too, and no arrival left."""
    node = await start_node(node_config(tmp_path, "n"), start_workers=False)
    try:
        writer = node.app[INBOX_WRITER]
        writer.pressure.batch(64)  # the door's last batches held many rows: saturated
        now = datetime.now(UTC)
        documents = [create(n) for n in range(6)]
        await writer.store(received(documents[0], now))  # the batch that sees the pressure
        answers = await asyncio.gather(*(writer.store(received(d, now))
                                         for d in [*documents[1:], documents[3]]))
        assert answers == [True] * 5 + [False]  # a repeat in the same batch: known at once
        await writer.store(received(documents[4], now))  # a repeat in a later batch
        assert len(await node.rows(InboxArrival)) == 6
        processor = build_workers(node.app).processor
        assert await process_inbox_batch(processor, lambda: now, 50) == 6
        assert await node.rows(InboxArrival) == []
        assert {item.state for item in await node.rows(InboxItem)} == {InboxState.DONE.value}
        assert {o.uri for o in await node.rows(RemoteObject)} == {
            d["object"]["id"] for d in documents}
    finally:
        await node.stop()


def create(number: int, actor: str = "https://remote.example/users/a") -> dict:
    note = f"{actor}/notes/{number}"
    return {"@context": AS_CONTEXT, "id": f"{note}/create", "type": "Create", "actor": actor,
            "object": {"id": note, "type": "Article", "attributedTo": actor,
                       "name": f"Nr. {number}", "content": "<p>x</p>"}}


def received(document: dict, now: datetime) -> InboxRow:
    return InboxRow(document["id"], "shared", document["actor"], "remote.example", document,
                    now, json.dumps(document))
