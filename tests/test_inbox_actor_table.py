"""The key cache's reads and writes of ``remote_actors`` on the inbox writer's thread
(SQLite): the same answers as through async sessions, and a stale or missing row still
means a fetch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from node.inbox_writer import InboxWriter, InboxWriterClosed
from node.remote import RemoteDirectory, SqliteWork
from node.storage.db import migrate, session_maker
from node.storage.models import RemoteActor
from tests.node_support import database_engine

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
ACTOR = "https://b.example/users/alice"


def actor_document(name: str) -> dict[str, object]:
    return {"id": ACTOR, "type": "Person", "inbox": f"{ACTOR}/inbox", "name": name,
            "publicKey": {"id": f"{ACTOR}#main-key", "owner": ACTOR, "publicKeyPem": "PEM"}}


class Fetched:
    """A fetcher stand-in that serves one actor document and counts the fetches."""

    def __init__(self) -> None:
        self.name = "first"
        self.count = 0

    async def get_document(self, url: str):  # noqa: ANN201 - the fetcher's FetchedDocument shape
        self.count += 1

        class Document:
            document = actor_document(self.name)

        return Document()


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def engine(tmp_path) -> AsyncEngine:
    async for created in database_engine("sqlite", tmp_path):
        await migrate(created)
        yield created


async def stored(engine: AsyncEngine) -> list[tuple[str, str, datetime]]:
    async with engine.connect() as connection:
        result = await connection.execute(
            select(RemoteActor.uri, RemoteActor.name, RemoteActor.fetched_at))
        return [tuple(row) for row in result]


@pytest.mark.parametrize("on_writer_thread", [True, False])
async def test_a_fetched_key_document_is_stored_and_served_from_the_table_while_fresh(
        engine, on_writer_thread: bool) -> None:
    writer = InboxWriter(engine, queue_limit=100)
    work = SqliteWork()
    calls: list[str] = []

    async def counted(job):  # noqa: ANN001, ANN202 - SqliteRunner
        calls.append(job.func.__name__)
        return await writer.run_sync(job)

    work.runner = counted if on_writer_thread else None
    fetcher, clock = Fetched(), Clock()
    directory = RemoteDirectory(session_maker=session_maker(engine), fetcher=fetcher,
                                clock=clock, sqlite=work, max_age=timedelta(hours=1))
    try:
        first = await directory.key_document(f"{ACTOR}#main-key")
        assert first["name"] == "first" and fetcher.count == 1
        assert await stored(engine) == [(ACTOR, "first", NOW)]
        fetcher.name = "second"
        clock.now = NOW + timedelta(minutes=59)
        again = await directory.key_document(f"{ACTOR}#main-key")
        assert again["name"] == "first" and fetcher.count == 1  # from the table
        clock.now = NOW + timedelta(hours=1)
        stale = await directory.key_document(f"{ACTOR}#main-key")
        assert stale["name"] == "second" and fetcher.count == 2  # too old: fetched again
        assert await stored(engine) == [(ACTOR, "second", NOW + timedelta(hours=1))]
        refreshed = await directory.key_document(f"{ACTOR}#main-key", refresh=True)
        assert refreshed["name"] == "second" and fetcher.count == 3
    finally:
        await writer.close()
    if on_writer_thread:
        assert calls == ["_stored_actor", "_upsert_actor", "_stored_actor", "_stored_actor",
                         "_upsert_actor", "_upsert_actor"]
    else:
        assert calls == []


async def test_the_writer_thread_refuses_work_once_closed(engine) -> None:
    writer = InboxWriter(engine, queue_limit=100)
    assert writer.runs_sqlite
    await writer.close()
    assert not writer.runs_sqlite
    with pytest.raises(InboxWriterClosed):
        await writer.run_sync(lambda _connection: None)
