"""A host with failures on several distinct days is marked unavailable, and cleared on success."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from federation.knock import KnockMemory
from federation.retry import CircuitBreaker
from node.delivery import HostRecord, save_host
from node.status import node_status
from node.storage.db import migrate, session_maker
from node.storage.models import Host
from tests.node_support import database_engine

HOST = "dead.example"
START = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request, tmp_path) -> AsyncEngine:
    async for created in database_engine(request.param, tmp_path):
        await migrate(created)
        yield created


async def test_unavailable_since_is_set_once_kept_and_cleared_on_success(engine) -> None:
    sessions = session_maker(engine)
    breaker = CircuitBreaker()
    record = HostRecord(KnockMemory(HOST))
    moments = [START + timedelta(days=day) for day in range(4)]
    for moment in moments[:2]:  # failures on two days: not yet unavailable
        record.health = breaker.record_failure(record.health, moment)
        await save_host(sessions, HOST, record, breaker, moment)
    async with sessions() as session:
        assert (await session.get(Host, HOST)).unavailable_since is None
    for moment in moments[2:]:  # a third and a fourth day: unavailable since the third
        record.health = breaker.record_failure(record.health, moment)
        await save_host(sessions, HOST, record, breaker, moment)
    async with sessions() as session:
        row = await session.get(Host, HOST)
        assert row.unavailable_since.replace(tzinfo=UTC) == moments[2]
        status = await node_status(session)
    [failing] = [entry for entry in status.failing_hosts if entry.host == HOST]
    assert failing.unavailable_since is not None and failing.unavailable_since.startswith("2026-11-03")
    success_at = moments[3] + timedelta(hours=1)
    record.health = breaker.record_success(record.health, success_at)
    await save_host(sessions, HOST, record, breaker, success_at)
    async with sessions() as session:
        assert (await session.get(Host, HOST)).unavailable_since is None
