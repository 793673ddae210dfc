"""Claims in queue order through an index (``node.claim_order``): the delivery queue and
the inbox queue, on PostgreSQL (``FOR UPDATE SKIP LOCKED``, one statement per branch)
and on SQLite (one statement). Order across the branches, no overlap between two open
claims, and plans that read the first rows of an index instead of sorting every
claimable row. The PostgreSQL cases run when PRAXISNETZ_TEST_POSTGRES_URL is set, as CI
sets it; the delivery queue's SQLite plan is checked in tests/test_delivery.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, inspect, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from node.delivery_queue import _claim_rows, claim_due
from node.inbox_queue import claim, claim_items
from node.outbox import record_local_activity
from node.storage.db import migrate, session_maker
from node.storage.models import Delivery, DeliveryState, InboxItem, InboxState
from tests.node_support import database_engine
from tests.plan_support import query_plan, statements_run

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)
ACTOR = "http://127.0.0.1:9/actor"


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async for made in database_engine("postgresql", tmp_path):
        await migrate(made)
        yield made


@pytest.fixture(params=["sqlite", "postgresql"])
async def either(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async for made in database_engine(request.param, tmp_path):
        await migrate(made)
        yield made


async def _enqueue(engine: AsyncEngine, count: int, *, at: datetime = NOW) -> list[int]:
    """``count`` pending deliveries of one activity, due at ``at``; their ids in order."""
    document = {"@context": "https://www.w3.org/ns/activitystreams", "type": "Create",
                "id": f"{ACTOR}/activities/{at.timestamp()}-{count}", "actor": ACTOR,
                "object": {"id": f"{ACTOR}/notes/1", "type": "Note"}}
    inboxes = [f"http://127.0.0.1:9/users/{n}/inbox" for n in range(count)]
    async with session_maker(engine)() as session, session.begin():
        activity = await record_local_activity(session, document, inboxes, now=at)
        ids = await session.scalars(select(Delivery.id)
                                    .where(Delivery.activity_id == activity.id)
                                    .order_by(Delivery.id))
        return list(ids)


async def test_a_claim_takes_expired_leases_and_pending_rows_in_due_order(engine) -> None:
    pending = await _enqueue(engine, 4, at=NOW)
    [lost] = await _enqueue(engine, 1, at=NOW - timedelta(minutes=10))
    async with session_maker(engine)() as session, session.begin():
        await session.execute(update(Delivery).where(Delivery.id == lost).values(
            state=DeliveryState.IN_FLIGHT.value, claimed_by="a dead worker",
            claimed_until=NOW - timedelta(minutes=1)))
    claimed = await claim_due(session_maker(engine), worker_id="w", now=NOW, lease=LEASE,
                              limit=3)
    # the expired lease was due first; then the pending rows by due time and id
    assert [delivery.id for delivery in claimed] == [lost, *pending[:2]]
    assert all(delivery.lease_until == NOW + LEASE for delivery in claimed)


async def test_two_claims_at_once_take_different_rows_and_both_fill_up(engine) -> None:
    ids = await _enqueue(engine, 10)
    parameters = {"worker_id": "first", "now": NOW, "until": NOW + LEASE, "limit": 4}
    async with engine.connect() as first:
        await first.begin()  # the first claim's transaction stays open: its rows locked
        held = await first.run_sync(lambda connection: _claim_rows(connection, **parameters))
        second = await claim_due(session_maker(engine), worker_id="second", now=NOW,
                                 lease=LEASE, limit=4)
        await first.commit()
    assert [row.id for row in held] == ids[:4]
    assert [delivery.id for delivery in second] == ids[4:8]  # skipped, not waited for


async def test_a_claim_walks_the_due_index_instead_of_sorting_every_due_row(engine) -> None:
    # One WHERE pending … OR expired … ORDER BY … LIMIT sorted all due rows at each claim
    # (39 ms at 50,000 pending, on disk). Each branch now reads its first rows in order.
    await _enqueue(engine, 5000)
    async with engine.begin() as connection:
        await connection.exec_driver_sql("ANALYZE deliveries")
    with statements_run(engine, lambda sql: "FOR UPDATE SKIP LOCKED" in sql) as locking:
        claimed = await claim_due(session_maker(engine), worker_id="w", now=NOW, lease=LEASE,
                                  limit=50)
    assert len(claimed) == 50
    plan = "\n".join(await query_plan(engine, *locking[0]))  # the pending branch comes first
    assert "Index Scan using ix_deliveries_due" in plan, plan
    assert "Sort" not in plan, plan
    assert len(locking) == 2  # and one statement for the expired leases


# --- the inbox queue --------------------------------------------------------------------


async def _receive(engine: AsyncEngine, count: int, *, at: datetime = NOW,
                   state: InboxState = InboxState.RECEIVED, first: int = 0) -> list[int]:
    """``count`` items received at ``at`` in ``state``; their ids in order."""
    rows = [{"activity_uri": f"{ACTOR}/activities/{first + n}", "inbox": "shared",
             "actor": ACTOR, "remote_host": "127.0.0.1", "raw": {"n": first + n},
             "received_at": at, "state": state.value, "attempts": 0}
            for n in range(count)]
    async with engine.begin() as connection:
        result = await connection.execute(insert(InboxItem).returning(InboxItem.id), rows)
        return sorted(result.scalars())


async def test_the_inbox_claims_in_arrival_order_across_its_branches(either) -> None:
    sessions = session_maker(either)
    waiting = await _receive(either, 3, at=NOW)
    # arrived earlier, stored later (as a saturated SQLite inbox moves its arrivals)
    [early] = await _receive(either, 1, at=NOW - timedelta(seconds=5), first=10)
    [retry] = await _receive(either, 1, at=NOW - timedelta(minutes=1), first=20,
                             state=InboxState.RETRY)
    [held] = await _receive(either, 1, at=NOW - timedelta(minutes=2), first=30,
                            state=InboxState.PROCESSING)
    async with either.begin() as connection:
        await connection.execute(update(InboxItem).where(InboxItem.id == held)
                                 .values(claimed_until=NOW + timedelta(minutes=1)))
    claimed = await claim_items(sessions, now=NOW, lease=timedelta(minutes=5), limit=4)
    # the retry is due and came first; the held item's lease is not over
    assert [item.id for item in claimed] == [retry, early, *waiting[:2]]
    later = await claim_items(sessions, now=NOW + timedelta(minutes=2), lease=LEASE, limit=4)
    assert [item.id for item in later] == [held, waiting[2]]  # its lease ran out


async def test_two_inbox_claims_at_once_take_different_items(engine) -> None:
    ids = await _receive(engine, 10)
    async with engine.connect() as first:
        await first.begin()
        held = await first.run_sync(
            lambda connection: claim(connection, now=NOW, lease=LEASE, limit=4))
        second = await claim_items(session_maker(engine), now=NOW, lease=LEASE, limit=4)
        await first.commit()
    assert [item.id for item in held] == ids[:4]
    assert [item.id for item in second] == ids[4:8]


async def test_an_inbox_claim_on_postgresql_skips_the_finished_history(engine) -> None:
    # ORDER BY id walked the primary key past every processed item still kept: 37 ms a
    # claim with 100,000 of them. The received branch now starts at its first item.
    await _receive(engine, 5000, state=InboxState.DONE, at=NOW - timedelta(days=1))
    await _receive(engine, 100, first=5000)
    async with engine.begin() as connection:
        await connection.exec_driver_sql("ANALYZE inbox_items")
    with statements_run(engine, lambda sql: "FOR UPDATE SKIP LOCKED" in sql) as locking:
        claimed = await claim_items(session_maker(engine), now=NOW, lease=LEASE, limit=50)
    assert len(claimed) == 50
    plan = "\n".join(await query_plan(engine, *locking[0]))  # the received branch comes first
    assert "Index Scan using ix_inbox_items_arrival" in plan, plan
    assert "Sort" not in plan and "pk_inbox_items" not in plan, plan
    assert len(locking) == 3  # and one statement each for retries and lapsed leases


async def test_an_inbox_claim_on_sqlite_reads_each_branch_through_the_index(tmp_path) -> None:
    # One OR of the states: a MULTI-INDEX OR and a temporary B-tree over every waiting
    # item at each claim (24 ms with 50,000 waiting).
    async for engine in database_engine("sqlite", tmp_path):
        await migrate(engine)
        await _receive(engine, 20)
        with statements_run(engine, lambda sql: sql.lstrip().startswith("UPDATE inbox_items")
                         ) as statements:
            claimed = await claim_items(session_maker(engine), now=NOW, lease=LEASE, limit=5)
        assert len(claimed) == 5
        [statement] = statements
        plan = await query_plan(engine, *statement)
        assert not any("MULTI-INDEX OR" in step or step.startswith("SCAN inbox_items")
                       for step in plan), plan
        assert sum("INDEX ix_inbox_items_arrival" in step for step in plan) == 3, plan


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_queues_upgraded_from_0009_keep_their_rows_and_the_new_indexes(kind, tmp_path
                                                                             ) -> None:
    async for engine in database_engine(kind, tmp_path):
        await migrate(engine, "0009")  # a node from before migration 0010
        deliveries = await _enqueue(engine, 3)
        items = await _receive(engine, 2)
        await migrate(engine)
        async with engine.connect() as connection:
            indexes = await connection.run_sync(lambda sync: {
                table: {index["name"] for index in inspect(sync).get_indexes(table)}
                for table in ("deliveries", "inbox_items", "remote_objects")})
        assert "ix_deliveries_due" in indexes["deliveries"]
        assert "ix_deliveries_state_next_attempt" not in indexes["deliveries"]
        assert "ix_inbox_items_arrival" in indexes["inbox_items"]
        assert "ix_inbox_items_state_received" not in indexes["inbox_items"]
        assert {"ix_remote_objects_received",
                "ix_remote_objects_tombstones_updated"} <= indexes["remote_objects"]
        sessions = session_maker(engine)
        claimed = await claim_due(sessions, worker_id="w", now=NOW, lease=LEASE, limit=5)
        assert [delivery.id for delivery in claimed] == deliveries
        assert [item.id for item in await claim_items(sessions, now=NOW, lease=LEASE,
                                                      limit=5)] == items
