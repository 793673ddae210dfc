"""Storage: migrations, aware timestamps, constraints, the outbox transaction, tokens.

Every test runs on SQLite and, when PRAXISNETZ_TEST_POSTGRES_URL is set, on
PostgreSQL in a fresh schema.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from node.outbox import OutboxError, merge_inboxes, recipients_for, record_local_activity
from node.storage.db import create_engine, downgrade, migrate, session_maker
from node.storage.models import (
    Activity,
    ApiToken,
    Contribution,
    Delivery,
    DeliveryState,
    Follower,
    FollowerState,
    RemoteActor,
)
from node.storage.tokens import TokenStatus, check_token, create_token, hash_token, revoke_token
from tests.node_support import START, database_engine, fresh_postgres_database

EXPECTED_TABLES = {
    "api_tokens", "contributions", "activities", "deliveries", "hosts", "inbox_items",
    "remote_actors", "followers", "following", "remote_objects",
}  # fmt: skip
OWN = ("https://a.example/actor/inbox", "https://a.example/inbox")


@pytest.fixture(params=["sqlite", "postgres"])
async def engine(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[AsyncEngine]:
    async for created in database_engine(request.param, tmp_path):
        await migrate(created)
        yield created


def _activity(number: int = 1) -> dict[str, object]:
    return {
        "id": f"https://a.example/activities/{number}",
        "type": "Create",
        "actor": "https://a.example/actor",
        "object": {"id": f"https://a.example/practices/p{number}", "type": "Note"},
    }


async def _add_followers(session, *rows: tuple[str, str, str | None, str]) -> None:
    for actor, inbox, shared, state in rows:
        session.add(
            Follower(
                actor_uri=actor, inbox=inbox, shared_inbox=shared, state=state, created_at=START
            )
        )
    await session.flush()


async def test_migrations_create_every_table_and_are_idempotent(engine: AsyncEngine) -> None:
    await migrate(engine)  # a second run changes nothing and does not fail
    async with engine.connect() as connection:
        tables = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    assert EXPECTED_TABLES <= tables
    assert "alembic_version" in tables


async def test_downgrade_removes_the_tables(engine: AsyncEngine) -> None:
    await downgrade(engine, "base")
    async with engine.connect() as connection:
        tables = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    assert not (EXPECTED_TABLES & tables)


async def test_timestamps_come_back_aware_utc_and_naive_ones_are_refused(
    engine: AsyncEngine,
) -> None:
    sessions = session_maker(engine)
    berlin = timezone(timedelta(hours=1))
    async with sessions.begin() as session:
        session.add(
            ApiToken(
                name="t", token_hash="a" * 64, created_at=datetime(2026, 1, 1, 13, tzinfo=berlin)
            )
        )
    async with sessions() as session:
        stored = await session.scalar(select(ApiToken.created_at))
    assert stored == datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert stored.utcoffset() == timedelta(0)
    with pytest.raises(Exception, match="naive datetime"):  # noqa: B017 - wrapped by SQLAlchemy
        async with sessions.begin() as session:
            session.add(ApiToken(name="n", token_hash="b" * 64, created_at=datetime(2026, 1, 1)))


async def test_one_delivery_per_inbox_with_shared_inboxes_merged(engine: AsyncEngine) -> None:
    sessions = session_maker(engine)
    async with sessions.begin() as session:
        await _add_followers(
            session,
            (
                "https://b.example/u/1",
                "https://b.example/u/1/inbox",
                "https://b.example/inbox",
                "accepted",
            ),
            (
                "https://b.example/u/2",
                "https://b.example/u/2/inbox",
                "https://b.example/inbox",
                "accepted",
            ),
            ("https://c.example/actor", "https://c.example/actor/inbox", None, "accepted"),
            (
                "https://d.example/actor",
                "https://d.example/actor/inbox",
                None,
                FollowerState.PENDING.value,
            ),
            ("https://a.example/actor", OWN[0], OWN[1], "accepted"),  # never deliver to ourselves
        )
        recipients = await recipients_for(session, own_inboxes=OWN)
        activity = await record_local_activity(session, _activity(), recipients, now=START)
    async with sessions() as session:
        rows = (
            await session.execute(select(Delivery.inbox_url, Delivery.host, Delivery.state))
        ).all()
    assert sorted(rows) == [
        ("https://b.example/inbox", "b.example", DeliveryState.PENDING.value),
        ("https://c.example/actor/inbox", "c.example", DeliveryState.PENDING.value),
    ]
    assert activity.object_uri == "https://a.example/practices/p1"


async def test_known_actor_inboxes_are_added_and_deduplicated(engine: AsyncEngine) -> None:
    sessions = session_maker(engine)
    async with sessions.begin() as session:
        session.add(
            RemoteActor(uri="https://e.example/actor", inbox="https://e.example/actor/inbox",
                        shared_inbox="https://e.example/inbox", document={}, fetched_at=START)
        )  # fmt: skip
        await _add_followers(
            session,
            (
                "https://e.example/actor",
                "https://e.example/actor/inbox",
                "https://e.example/inbox",
                "accepted",
            ),
        )
        recipients = await recipients_for(
            session,
            own_inboxes=OWN,
            actor_uris=["https://e.example/actor", "https://unknown.example/actor"],
        )
    assert recipients == ["https://e.example/inbox"]


async def test_unique_delivery_per_activity_and_inbox(engine: AsyncEngine) -> None:
    sessions = session_maker(engine)
    async with sessions.begin() as session:
        activity = await record_local_activity(
            session, _activity(), ["https://b.example/inbox"], now=START
        )
        activity_id = activity.id
    with pytest.raises(IntegrityError):
        async with sessions.begin() as session:
            session.add(
                Delivery(activity_id=activity_id, inbox_url="https://b.example/inbox", host="b.example",
                         state="pending", attempts=0, next_attempt_at=START, created_at=START)
            )  # fmt: skip


async def test_content_activity_and_deliveries_commit_together_or_not_at_all(
    engine: AsyncEngine,
) -> None:
    sessions = session_maker(engine)
    with pytest.raises(RuntimeError):
        async with sessions.begin() as session:
            session.add(
                Contribution(uri="https://a.example/practices/p1", slug="p1", kind="practice", title="P",
                             document={}, published=START, updated=START)
            )  # fmt: skip
            await record_local_activity(
                session, _activity(), ["https://b.example/inbox"], now=START
            )
            raise RuntimeError("crash before commit")
    async with sessions() as session:
        for model in (Contribution, Activity, Delivery):
            assert await session.scalar(select(func.count()).select_from(model)) == 0


async def test_activity_without_id_is_refused_naming_the_field(engine: AsyncEngine) -> None:
    async with session_maker(engine).begin() as session:
        with pytest.raises(OutboxError) as caught:
            await record_local_activity(session, {"type": "Create", "actor": "x"}, [], now=START)
    assert caught.value.field == "id"


async def test_tokens_are_stored_as_hashes_and_can_be_revoked(engine: AsyncEngine) -> None:
    sessions = session_maker(engine)
    async with sessions.begin() as session:
        issued = await create_token(session, "admin", now=START)
    async with sessions() as session:
        stored = (await session.execute(select(ApiToken.token_hash))).scalars().all()
        assert stored == [hash_token(issued.token)]
        assert issued.token not in stored
        assert (await check_token(session, issued.token)).status is TokenStatus.VALID
        assert (await check_token(session, issued.token + "x")).status is TokenStatus.UNKNOWN
    async with sessions.begin() as session:
        assert await revoke_token(session, issued.token_id, now=START)
        assert not await revoke_token(session, issued.token_id, now=START)
    async with sessions() as session:
        assert (await check_token(session, issued.token)).status is TokenStatus.REVOKED


def test_merge_inboxes_drops_duplicates_non_http_and_excluded() -> None:
    merged = merge_inboxes(
        ["https://b.example/inbox", None, "https://b.example/inbox", "ftp://x/inbox", OWN[0]],
        exclude=OWN,
    )
    assert merged == ["https://b.example/inbox"]


MIGRATE_SCRIPT = """
import asyncio, sys
from node.storage.db import create_engine, migrate

async def main():
    engine = create_engine(sys.argv[1])
    await migrate(engine)
    await engine.dispose()

asyncio.run(main())
"""


async def test_concurrent_migrations_on_postgresql_do_not_collide() -> None:
    """Several ``praxisnetz worker`` processes may start at once on a fresh database."""
    async with fresh_postgres_database() as url:
        processes = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-c", MIGRATE_SCRIPT, url, stderr=asyncio.subprocess.PIPE
            )
            for _ in range(3)
        ]
        results = await asyncio.wait_for(
            asyncio.gather(*(process.communicate() for process in processes)), timeout=120
        )
        assert [process.returncode for process in processes] == [0, 0, 0], results
        engine = create_engine(url)
        try:
            async with engine.connect() as connection:
                tables = await connection.run_sync(
                    lambda sync: set(inspect(sync).get_table_names())
                )
        finally:
            await engine.dispose()
        assert EXPECTED_TABLES <= tables


async def test_a_remote_actor_upsert_inserts_then_refreshes_with_one_prepared_statement(
    engine: AsyncEngine,
) -> None:
    """The upsert statement is built once per dialect and given its values at execution:
    the second call must refresh the row, not insert a second or keep the old values."""
    from node.storage.actors import actor_upsert, upsert_remote_actor

    sessions = session_maker(engine)
    uri = "https://f.example/actor"
    for name, fetched in (("Erst", START), ("Später", START + timedelta(hours=1))):
        async with sessions.begin() as session:
            await upsert_remote_actor(session, RemoteActor(
                uri=uri, inbox=f"{uri}/inbox", name=name, document={"name": name},
                fetched_at=fetched))
    async with sessions() as session:
        rows = list(await session.scalars(select(RemoteActor).where(RemoteActor.uri == uri)))
    assert [(row.name, row.document, row.fetched_at) for row in rows] == [
        ("Später", {"name": "Später"}, START + timedelta(hours=1))]
    assert actor_upsert(engine.dialect.name) is actor_upsert(engine.dialect.name)
