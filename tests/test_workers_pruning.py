"""A running node prunes: the pruner is one of the node's workers (node/workers.py), so
a processed inbox item older than the retention window is gone soon after start-up, and
a recent one stays."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from node.app import create_app
from node.storage.db import create_engine, migrate, session_maker
from node.storage.models import InboxItem, InboxState
from tests.node_support import MovableClock, make_node


def _item(uri: str, clock: MovableClock, age: timedelta) -> InboxItem:
    return InboxItem(activity_uri=uri, inbox="shared", actor="https://a.example/actors/alice",
                     remote_host="a.example", raw={"id": uri, "type": "Create"},
                     received_at=clock() - age, state=InboxState.DONE.value, attempts=1)


async def _uris(sessions) -> set[str]:  # noqa: ANN001 - a session maker
    async with sessions() as session:
        return set(await session.scalars(select(InboxItem.activity_uri)))


async def test_a_started_node_prunes_old_processed_items(tmp_path, aiohttp_client) -> None:
    config = make_node(tmp_path)
    clock = MovableClock()
    engine = create_engine(config.database_url)
    await migrate(engine)
    sessions = session_maker(engine)
    async with sessions() as session, session.begin():
        session.add_all([_item("https://a.example/old", clock, timedelta(days=15)),
                         _item("https://a.example/recent", clock, timedelta(days=1))])
    try:
        await aiohttp_client(create_app(config, clock=clock))
        for _ in range(100):
            if await _uris(sessions) == {"https://a.example/recent"}:
                break
            await asyncio.sleep(0.05)
        assert await _uris(sessions) == {"https://a.example/recent"}
    finally:
        await engine.dispose()
