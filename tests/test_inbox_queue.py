"""The inbox work queue: leases, retries with growing delays, and giving up."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select

from node.inbox_processing import Verdict, done
from node.inbox_queue import (
    MAX_ATTEMPTS,
    Outcome,
    QueueWatch,
    claim_items,
    finish_item,
    finish_items,
    retry_delay,
)
from node.inbox_writer import DoorLoad
from node.storage.db import create_engine, migrate, session_maker
from node.storage.models import InboxItem, InboxState
from node.workers import let_ingest_go_first, process_inbox_batch


@pytest.fixture
async def sessions(tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'inbox.db'}")
    await migrate(engine)
    yield session_maker(engine)
    await engine.dispose()


async def receive(sessions, number: int, now: datetime) -> None:
    async with sessions() as session, session.begin():
        for n in range(number):
            session.add(InboxItem(activity_uri=f"https://a.example/activities/{n}", inbox="shared",
                                  actor="https://a.example/actor", remote_host="a.example",
                                  raw={"id": n}, received_at=now, state="received", attempts=0))


async def test_items_are_claimed_once_in_arrival_order(sessions) -> None:
    now = datetime.now(UTC)
    await receive(sessions, 5, now)
    first = await claim_items(sessions, now=now, lease=timedelta(minutes=5), limit=3)
    second = await claim_items(sessions, now=now, lease=timedelta(minutes=5), limit=3)
    assert [item.raw["id"] for item in first] == [0, 1, 2]
    assert [item.raw["id"] for item in second] == [3, 4]
    assert await claim_items(sessions, now=now, lease=timedelta(minutes=5), limit=3) == []
    # A worker that died: its items come back once the lease is over.
    later = now + timedelta(minutes=6)
    again = await claim_items(sessions, now=later, lease=timedelta(minutes=5), limit=10)
    assert len(again) == 5


async def test_retry_waits_longer_each_time_then_gives_up(sessions) -> None:
    now = datetime.now(UTC)
    await receive(sessions, 1, now)
    assert retry_delay(1) < retry_delay(2) < retry_delay(3) <= retry_delay(30)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        [item] = await claim_items(sessions, now=now, lease=timedelta(minutes=5), limit=1)
        state = await finish_item(sessions, item, InboxState.RETRY, now=now, error="unreachable")
        if attempt < MAX_ATTEMPTS:
            assert state is InboxState.RETRY
            assert await claim_items(sessions, now=now, lease=timedelta(minutes=5), limit=1) == []
            now += retry_delay(attempt) + timedelta(seconds=1)
    assert state is InboxState.REJECTED
    async with sessions() as session:
        row = await session.get(InboxItem, item.id)
    assert row.attempts == MAX_ATTEMPTS and "gave up" in row.error and row.processed_at


class _RecordingProcessor:
    """Stands in for InboxProcessor: one actor's server is slow to answer."""

    def __init__(self, sessions) -> None:  # noqa: ANN001
        self.finished: list[tuple[str, int]] = []
        self._sessions = sessions

    async def decide(self, raw: dict) -> tuple[None, Verdict]:
        if raw["actor"] == "slow":
            await asyncio.sleep(0.3)
        self.finished.append((raw["actor"], raw["n"]))
        return None, done()

    async def in_transaction(self, work):  # noqa: ANN001, ANN201
        async with self._sessions() as session, session.begin():
            return await session.run_sync(lambda sync: work(sync.connection()))

    observes = False  # no hook: the results are recorded with the (no) changes

    async def apply_batch(self, changes: list, then=None) -> list:  # noqa: ANN001
        def work(connection) -> list:  # noqa: ANN001
            if then is not None:
                then(connection, [])
            return []

        return await self.in_transaction(work)


async def test_one_slow_actor_does_not_hold_up_the_others(sessions) -> None:
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        for n, actor in enumerate(["slow", "fast", "slow", "fast", "fast"]):
            session.add(InboxItem(activity_uri=f"https://x.example/a/{n}", inbox="shared",
                                  actor=actor, remote_host="x.example",
                                  raw={"actor": actor, "n": n}, received_at=now,
                                  state="received", attempts=0))
    processor = _RecordingProcessor(sessions)
    assert await process_inbox_batch(processor, lambda: now, 10) == 5
    assert processor.finished[:3] == [("fast", 1), ("fast", 3), ("fast", 4)]
    assert [n for actor, n in processor.finished if actor == "slow"] == [0, 2]  # in order


async def test_a_batch_of_results_is_recorded_in_one_transaction(sessions) -> None:
    now = datetime.now(UTC)
    await receive(sessions, 3, now)
    items = await claim_items(sessions, now=now, lease=timedelta(minutes=5), limit=3)
    commits = []

    def count_commit(connection) -> None:  # noqa: ANN001
        commits.append(connection)

    engine = sessions.kw["bind"].sync_engine
    event.listen(engine, "commit", count_commit)
    try:
        states = await finish_items(sessions, [
            Outcome(items[0], InboxState.DONE),
            Outcome(items[1], InboxState.RETRY, "unreachable"),
            Outcome(items[2], InboxState.REJECTED, "not for us"),
        ], now=now)
    finally:
        event.remove(engine, "commit", count_commit)
    assert states == [InboxState.DONE, InboxState.RETRY, InboxState.REJECTED]
    assert len(commits) == 1
    async with sessions() as session:
        rows = {row.id: row for row in (await session.scalars(select(InboxItem))).all()}
    done, retry, rejected = (rows[item.id] for item in items)
    assert (done.state, done.attempts, done.error) == ("done", 1, None)
    assert done.processed_at is not None and done.claimed_until is None
    assert (retry.state, retry.error, retry.processed_at) == ("retry", "unreachable", None)
    assert retry.claimed_until == now + retry_delay(1)
    assert (rejected.state, rejected.error) == ("rejected", "not for us")


def door(seconds: float, *, saturated: bool = False):  # noqa: ANN201 - a node.workers.DoorWatch
    async def load() -> DoorLoad:
        return DoorLoad(seconds, saturated)

    return load


async def test_the_worker_lets_a_busy_inbox_go_first_but_not_for_ever() -> None:
    stop = asyncio.Event()
    assert await let_ingest_go_first(door(math.inf), stop) < 0.05  # idle inbox: at once
    waited = await let_ingest_go_first(door(0.0), stop, quiet=0.02, busy=0.2, saturated=5.0)
    assert 0.2 <= waited < 1.0  # busy, keeping up: one batch at least every `busy`
    waited = await let_ingest_go_first(door(0.0, saturated=True), stop, quiet=0.02, busy=0.05,
                                       saturated=0.3)
    assert 0.3 <= waited < 1.0  # saturated: longer, and still one batch every `saturated`
    stop.set()
    assert await let_ingest_go_first(door(0.0, saturated=True), stop, quiet=0.02) < 0.05


async def test_a_worker_process_sees_other_processes_store_items(sessions) -> None:
    """``praxisnetz worker`` (and the worker process of ``[server] processes = N``) has no
    inbox of its own: it watches the newest item's id to let a busy inbox go first."""
    clock = [100.0]
    watch = QueueWatch(sessions, monotonic=lambda: clock[0])
    assert await watch.idle_for() == math.inf  # the first look cannot tell
    clock[0] += 1.0
    assert await watch.idle_for() == math.inf  # nothing came since
    await receive(sessions, 2, datetime.now(UTC))
    clock[0] += 0.5
    assert await watch.idle_for() == 0.0  # seen now
    clock[0] += 0.25
    assert await watch.idle_for() == 0.25
    assert await watch.load() == DoorLoad(0.25, saturated=False)
    waited = await let_ingest_go_first(watch.load, asyncio.Event(), quiet=1.0, busy=0.1)
    assert waited >= 0.1  # busy by this watch: the worker waited
