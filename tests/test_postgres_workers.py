"""Two ``praxisnetz worker`` processes drain one queue of 2,000 deliveries.

On PostgreSQL (a database of its own, dropped afterwards; needs
``PRAXISNETZ_TEST_POSTGRES_URL``) and on the node's SQLite file, where the two
processes take turns at the one writer lock. The test fills the queue, starts two
worker processes and a loopback receiver that records every POST. Afterwards every
delivery arrived exactly once (no duplicate, no loss), both workers took part, and
the queue is empty.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web
from sqlalchemy import func, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from node.config import DeliveryTuning, write_config
from node.storage.db import create_engine, migrate, session_maker
from node.storage.models import Activity, Delivery
from tests.engine_support import eventually, free_port, node_config

pytestmark = pytest.mark.slow

POSTGRES_URL = os.environ.get("PRAXISNETZ_TEST_POSTGRES_URL")
ACTIVITIES = 100
INBOXES_PER_ACTIVITY = 20  # 2,000 deliveries
PRAXISNETZ = Path(sys.executable).with_name("praxisnetz")


def _dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request):
    """Empty for the node's own SQLite file (the default), else a scratch PostgreSQL
    database."""
    if request.param == "sqlite":
        yield ""
        return
    async for url in _scratch_postgres():
        yield url


async def _scratch_postgres():
    if not POSTGRES_URL:
        pytest.skip("PRAXISNETZ_TEST_POSTGRES_URL is not set")
    name = f"praxisnetz_workers_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(_dsn(POSTGRES_URL))
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


class Receiver:
    def __init__(self) -> None:
        self.received: Counter[tuple[str, str]] = Counter()

    async def handle(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        self.received[(body["id"], request.path)] += 1
        return web.Response(status=202)


async def fill_queue(database_url: str, actor: str, receiver_base: str) -> None:
    """Migrate the scratch database and write the queue in two bulk statements."""
    engine = create_engine(database_url)
    await migrate(engine)
    now = datetime.now(UTC)
    base = actor.rsplit("/", 1)[0]
    activities = [
        {"uri": f"{base}/activities/{n}", "type": "Create", "actor": actor,
         "object_uri": f"{base}/notes/{n}", "is_local": True, "created_at": now,
         "document": {"@context": "https://www.w3.org/ns/activitystreams",
                      "id": f"{base}/activities/{n}", "type": "Create", "actor": actor,
                      "object": {"id": f"{base}/notes/{n}", "type": "Note"}}}
        for n in range(ACTIVITIES)
    ]
    async with session_maker(engine)() as session, session.begin():
        ids = (await session.scalars(insert(Activity).returning(Activity.id), activities)).all()
        host = receiver_base.split("//", 1)[1]
        await session.execute(insert(Delivery), [
            {"activity_id": activity_id, "inbox_url": f"{receiver_base}/inbox/{n}", "host": host,
             "state": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now}
            for activity_id in ids for n in range(INBOXES_PER_ACTIVITY)
        ])
    await engine.dispose()


async def states(engine: AsyncEngine) -> Counter[str]:
    async with session_maker(engine)() as session:
        rows = await session.execute(select(Delivery.state, func.count()).group_by(Delivery.state))
        return Counter(dict(rows.all()))


def start_worker(data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([str(PRAXISNETZ), "worker", "--data-dir", str(data_dir)],
                                stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})


async def test_two_workers_drain_2000_deliveries_exactly_once(tmp_path, database_url) -> None:
    config = node_config(tmp_path, "hub", **({"database_url": database_url} if database_url
                                             else {}))
    write_config(replace(config, delivery=DeliveryTuning(
        per_host_concurrency=16, claim_batch_size=100, poll_interval_seconds=0.1)))
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/inbox/{n}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await fill_queue(config.database_url, config.actor_url, f"http://127.0.0.1:{port}")
    total = ACTIVITIES * INBOXES_PER_ACTIVITY
    engine = create_engine(config.database_url)
    assert (await states(engine))["pending"] == total

    logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    started = time.monotonic()
    workers = [start_worker(config.data_dir, log) for log in logs]
    try:
        await eventually(lambda: _drained(engine, total), timeout=90, interval=0.2)
        elapsed = time.monotonic() - started
    finally:
        for process in workers:
            process.send_signal(signal.SIGTERM)
        for process in workers:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        await runner.cleanup()
        await engine.dispose()

    assert sum(receiver.received.values()) == total  # nothing sent twice …
    assert len(receiver.received) == total  # … and nothing lost
    assert set(receiver.received.values()) == {1}
    per_worker = [sum(map(int, re.findall(r"event=succeeded count=(\d+)", log.read_text())))
                  for log in logs]
    assert sum(per_worker) == total and min(per_worker) > 0, per_worker
    print(f"\n{total} deliveries by 2 workers in {elapsed:.1f}s "
          f"({total / elapsed:.0f}/s, including process start); split {per_worker}")


async def _drained(engine: AsyncEngine, total: int) -> bool:
    return (await states(engine))["delivered"] == total

