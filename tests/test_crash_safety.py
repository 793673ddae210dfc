"""Crash safety: a node killed with SIGKILL mid-delivery loses nothing and duplicates nothing.

Node A runs as a real process (``praxisnetz serve``); its queue is filled while the
receiver B is down. Two ways of being killed mid-delivery:

- B is down in the sense of not answering (its port accepts and hangs): A is killed
  while its requests hang, restarted while B is still down, then B comes up;
- B is up but slow, so A is killed while B is processing what A sent: A's restart
  sends those again, and B's deduplication by activity id absorbs them.

Either way every activity arrives at B exactly once in effect: one stored object per
activity, however often it was sent.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import func, select

from node.app import create_app
from node.authoring import Author, create_contribution
from node.config import DeliveryTuning, NodeConfig, write_config
from node.contribution_input import ContributionInput
from node.identity import load_node_keys
from node.storage.db import create_engine, migrate, session_maker
from node.storage.models import ContributionKind, Delivery, Follower, InboxItem, RemoteObject
from tests.engine_support import RunningNode, eventually, node_config

pytestmark = pytest.mark.slow

CONTRIBUTIONS = 30
PRAXISNETZ = Path(sys.executable).with_name("praxisnetz")


def fast_worker_settings(config: NodeConfig) -> None:
    # A short lease so the restarted node reclaims what the killed one held.
    write_config(replace(config, delivery=DeliveryTuning(claim_seconds=2,
                                                         poll_interval_seconds=0.1)))


async def fill_queue(a: NodeConfig, b: NodeConfig) -> None:
    """B follows A; A publishes while B is down (and A is not even running)."""
    engine = create_engine(a.database_url)
    await migrate(engine)
    sessions = session_maker(engine)
    author = Author(a, load_node_keys(a), lambda: datetime.now(UTC))
    async with sessions() as session, session.begin():
        session.add(Follower(actor_uri=b.actor_url, inbox=b.inbox_url,
                             shared_inbox=b.shared_inbox_url, state="accepted",
                             created_at=datetime.now(UTC)))
    for number in range(CONTRIBUTIONS):
        inp = ContributionInput(kind=ContributionKind.PRACTICE, slug=f"praxis-{number}",
                                title=f"Praxis {number}", body="Text", topics=("e-akte",),
                                status="piloting")
        async with sessions() as session, session.begin():
            await create_contribution(session, author, inp)
    await engine.dispose()


async def delivery_states(a: NodeConfig) -> Counter[str]:
    engine = create_engine(a.database_url)
    try:
        async with session_maker(engine)() as session:
            rows = await session.execute(select(Delivery.state, func.count()).group_by(Delivery.state))
            return Counter(dict(rows.all()))
    finally:
        await engine.dispose()


def start_serving(a: NodeConfig, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as out:
        return subprocess.Popen([str(PRAXISNETZ), "serve", "--data-dir", str(a.data_dir)],
                                stdout=out, stderr=subprocess.STDOUT, env=env)


async def start_slow_receiver(config: NodeConfig, posts: list[str]) -> RunningNode:
    @web.middleware
    async def slow_inbox(request: web.Request, handler):  # noqa: ANN001, ANN202
        if request.method == "POST" and request.path == "/inbox":
            posts.append(request.headers.get("Digest") or request.headers.get("Content-Digest", ""))
            await asyncio.sleep(0.25)
        return await handler(request)

    app = create_app(config)
    app.middlewares.append(slow_inbox)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", config.listen_port).start()
    return RunningNode(config, app, runner)


async def count(node: RunningNode, model: type) -> int:
    async with node.sessions()() as session:
        return int(await session.scalar(select(func.count()).select_from(model)))


async def test_sigkill_mid_delivery_loses_nothing_and_duplicates_nothing(tmp_path) -> None:
    a_config = node_config(tmp_path, "a")
    fast_worker_settings(a_config)
    b_config = node_config(tmp_path, "b")
    await fill_queue(a_config, b_config)
    assert (await delivery_states(a_config))["pending"] == CONTRIBUTIONS

    posts: list[str] = []
    b = await start_slow_receiver(b_config, posts)
    log = tmp_path / "a.log"
    a_process = start_serving(a_config, log)
    try:
        await eventually(lambda: _at_least(posts, 6), timeout=30)
        a_process.send_signal(signal.SIGKILL)
        a_process.wait(timeout=10)
        after_kill = await delivery_states(a_config)
        assert after_kill["delivered"] < CONTRIBUTIONS, after_kill  # killed mid-way

        a_process = start_serving(a_config, log)
        await eventually(lambda: _all_delivered(a_config), timeout=60)
        # B applies what it accepted in its own time; each activity exactly once.
        await eventually(lambda: _equals(count(b, RemoteObject), CONTRIBUTIONS), timeout=20)
        assert await count(b, InboxItem) == CONTRIBUTIONS
        # The worker records a batch's item states in a transaction of their own after
        # applying them, so the last objects may be stored a moment before "done".
        assert await eventually(lambda: _all_items_done(b), timeout=20)
        # Sent at least once each; any resend after the kill was absorbed by the dedup.
        assert len(posts) >= CONTRIBUTIONS
        states = await delivery_states(a_config)
        assert states == Counter({"delivered": CONTRIBUTIONS}), states
    finally:
        a_process.send_signal(signal.SIGTERM)
        try:
            a_process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            a_process.kill()
        await b.stop()


async def _equals(value, expected: int) -> bool:  # noqa: ANN001 - a coroutine
    return (await value) == expected


async def _all_items_done(node) -> bool:  # noqa: ANN001 - a running node
    return {row.state for row in await node.rows(InboxItem)} == {"done"}


async def _at_least(posts: list[str], number: int) -> bool:
    return len(posts) >= number


async def _all_delivered(config: NodeConfig) -> bool:
    return (await delivery_states(config))["delivered"] == CONTRIBUTIONS


async def hanging_listener(port: int, connections: list[object]) -> asyncio.Server:
    """B while it is down: the port accepts connections but never answers."""

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        await reader.read()  # until the client goes away

    return await asyncio.start_server(never_answer, "127.0.0.1", port)


async def test_killed_while_the_receiver_is_down_delivers_after_restart(tmp_path) -> None:
    a_config = node_config(tmp_path, "a")
    fast_worker_settings(a_config)
    b_config = node_config(tmp_path, "b")
    await fill_queue(a_config, b_config)

    connections: list[object] = []
    down = await hanging_listener(b_config.listen_port, connections)
    log = tmp_path / "a.log"
    a_process = start_serving(a_config, log)
    b: RunningNode | None = None
    try:
        await eventually(lambda: _at_least(connections, 2), timeout=30)  # A is mid-delivery
        a_process.send_signal(signal.SIGKILL)
        a_process.wait(timeout=10)
        states = await delivery_states(a_config)
        assert states["in_flight"] >= 2 and states["delivered"] == 0, states
        down.close()
        for writer in connections:
            writer.close()
        await down.wait_closed()

        a_process = start_serving(a_config, log)  # restarted while B is still down …
        b = await start_slow_receiver(b_config, [])  # … and then B comes up
        await eventually(lambda: _all_delivered(a_config), timeout=60)
        await eventually(lambda: _equals(count(b, RemoteObject), CONTRIBUTIONS), timeout=20)
        assert await count(b, InboxItem) == CONTRIBUTIONS
    finally:
        a_process.send_signal(signal.SIGTERM)
        try:
            a_process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            a_process.kill()
        if b is not None:
            await b.stop()
