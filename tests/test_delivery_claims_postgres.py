"""The delivery queue's claims on PostgreSQL: due order, no overlap, and the index walked.

PostgreSQL claims with ``FOR UPDATE SKIP LOCKED`` (``node.delivery_queue``), one
statement per branch (pending and due; in flight with its lease run out). These run when
PRAXISNETZ_TEST_POSTGRES_URL is set, as CI sets it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from node.delivery_queue import _claim_rows, claim_due
from node.outbox import record_local_activity
from node.storage.db import migrate, session_maker
from node.storage.models import Delivery, DeliveryState
from tests.node_support import database_engine

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)
ACTOR = "http://127.0.0.1:9/actor"


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    async for made in database_engine("postgresql", tmp_path):
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
    locking: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if "FOR UPDATE SKIP LOCKED" in statement:
            locking.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        claimed = await claim_due(session_maker(engine), worker_id="w", now=NOW, lease=LEASE,
                                  limit=50)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    assert len(claimed) == 50
    pending_sql, pending_parameters = locking[0]  # the pending branch comes first
    async with engine.connect() as connection:
        plan = "\n".join(row[0] for row in await connection.exec_driver_sql(
            f"EXPLAIN {pending_sql}", pending_parameters))
    assert "Index Scan using ix_deliveries_due" in plan, plan
    assert "Sort" not in plan, plan
    assert len(locking) == 2  # and one statement for the expired leases
