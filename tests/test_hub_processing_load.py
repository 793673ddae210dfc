"""A hub's share of processing a burst of received contributions.

The aggregator, woken by the inbox hook once per processed item, syncs a handful of
times for a burst, not once per item, and always once more after the last wake; the
hook reads nothing for an untagged contribution, and still reads membership from SQL
for a tagged one (an approval a moment ago, in another process, counts).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from federation.activities import parse_activity
from node import appkeys
from node.hub.aggregation import Aggregator, SyncReport
from node.hub.tables import HubMember, MemberState, TopicFollower
from node.hub.wiring import HubInboxHook
from node.inbox_processing import Incoming, done
from node.remote import SQLITE_WORK, SqliteWork
from node.storage.db import create_engine
from node.storage.models import Activity
from tests.hub_node_support import start_hub
from tests.hub_support import PUBLIC, TOPIC_PREFIX
from tests.node_support import fresh_postgres_database

MEMBER = "https://kommune.example/actor"


class CountingAggregator(Aggregator):
    """An aggregator whose sync only notes when it started (no database)."""

    def __init__(self, min_interval: float) -> None:
        super().__init__(sessions=None, index=None, search=None,  # type: ignore[arg-type]
                         clock=lambda: datetime.now(UTC), warm_after=None,
                         min_interval=min_interval)
        self.started: list[float] = []

    async def _fill_at_start(self) -> None:
        pass  # nothing to fill: ``start`` goes straight to its sync

    async def sync(self) -> SyncReport:
        self.started.append(asyncio.get_running_loop().time())
        await asyncio.sleep(0.005)  # a sync takes a moment
        return SyncReport(0, 0, 0, 0)


async def _burst(aggregator: CountingAggregator, wakes: int, seconds: float) -> float:
    """Wake the aggregator ``wakes`` times spread over ``seconds``; the last wake's time."""
    loop = asyncio.get_running_loop()
    woken_at = loop.time()
    for _ in range(wakes):
        # taken at the wake itself: read after the sleep behind it, a sync that began
        # within that sleep (and served the wake) looked as if it came before the wake
        woken_at = loop.time()
        aggregator.wake()
        await asyncio.sleep(seconds / wakes)
    return woken_at


async def test_a_burst_of_wakes_makes_a_few_syncs_and_one_after_the_last() -> None:
    aggregator, stop = CountingAggregator(min_interval=0.1), asyncio.Event()
    task = asyncio.create_task(aggregator.run(stop))
    try:
        await asyncio.sleep(0.05)  # the first sync, at start
        first, began = len(aggregator.started), asyncio.get_running_loop().time()
        last_wake = await _burst(aggregator, 500, 0.6)
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        await task
    during = aggregator.started[first:]
    # Once per item it synced 500 times; debounced, once per 0.1 s of the burst.
    assert 3 <= len(during) <= (last_wake - began) / 0.1 + 2, (len(during), last_wake - began)
    gaps = [later - earlier for earlier, later in zip(during, during[1:], strict=False)]
    assert min(gaps) >= 0.09, gaps
    # The last wake is served: a sync began after it, within the interval (and some slack).
    assert last_wake <= during[-1] <= last_wake + 0.1 + 0.1


async def test_a_single_wake_after_quiet_syncs_at_once_and_stop_ends_a_wait() -> None:
    aggregator, stop = CountingAggregator(min_interval=5.0), asyncio.Event()
    task = asyncio.create_task(aggregator.run(stop))
    loop = asyncio.get_running_loop()
    try:
        await asyncio.sleep(0.05)
        aggregator.wake()  # within min_interval of the first sync: it waits...
        await asyncio.sleep(0.1)
        assert len(aggregator.started) == 1
        began = loop.time()
        stop.set()  # ...but stopping does not wait for it
        await asyncio.wait_for(task, 1.0)
        assert loop.time() - began < 0.5
    finally:
        stop.set()
        await task


def _create(actor: str, number: int, *, topics: tuple[str, ...]) -> Incoming:
    note = f"{actor.removesuffix('/actor')}/practices/{number}"
    obj = {"id": note, "type": "Article", "attributedTo": actor, "name": f"Praxis {number}",
           "content": "Bauakten", "published": "2026-11-01T10:00:00Z", "to": [PUBLIC]}
    if topics:
        obj["topic"] = [TOPIC_PREFIX + topic for topic in topics]
    document = {"@context": "https://www.w3.org/ns/activitystreams", "id": f"{note}/create",
                "type": "Create", "actor": actor, "to": [PUBLIC], "object": obj}
    return Incoming.from_activity(parse_activity(document))


class CountingSessions:
    """The app's session maker, counting the sessions opened through it."""

    def __init__(self, sessions) -> None:  # noqa: ANN001 - async_sessionmaker
        self._sessions, self.opened = sessions, 0

    def __call__(self):  # noqa: ANN204
        self.opened += 1
        return self._sessions()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_the_hook_reads_membership_for_each_tagged_contribution(tmp_path, database) -> None:
    if database == "sqlite":
        await _hook_reads_membership(await start_hub(tmp_path))
        return
    async with fresh_postgres_database() as url:
        await _hook_reads_membership(await start_hub(tmp_path, database_url=url))


async def _hook_reads_membership(hub) -> None:  # noqa: ANN001 - a RunningNode
    app = hub.app
    now = app[appkeys.CLOCK]()
    other = create_engine(hub.config.database_url)  # another process's connection
    try:
        async with hub.sessions()() as session, session.begin():
            session.add(HubMember(actor_uri=MEMBER, name="Kommune", applied_at=now,
                                  state=MemberState.PENDING.value))
            session.add(TopicFollower(topic="e-akte", actor_uri="https://leser.example/actor",
                                      inbox="https://leser.example/inbox", created_at=now,
                                      follow_activity_uri="https://leser.example/follow/1"))
        counting = CountingSessions(app[appkeys.SESSION_MAKER])
        # On SQLite the inbox writer's thread reads for the hook; elsewhere a session.
        writer, handed = app[SQLITE_WORK].runner, []
        assert (writer is not None) == (hub.config.database_url.startswith("sqlite"))

        async def counting_writer(work):  # noqa: ANN001, ANN202
            handed.append(work)
            return await writer(work)

        sqlite = SqliteWork()
        sqlite.runner = counting_writer if writer is not None else None
        hook = HubInboxHook({**app, appkeys.SESSION_MAKER: counting,  # type: ignore[arg-type]
                             SQLITE_WORK: sqlite})
        # Untagged: nothing to relay, whoever sent it; no SQL at all.
        await hook.processed(_create(MEMBER, 1, topics=()), done("stored"))
        assert counting.opened == 0 and not handed
        # Tagged, from an applicant: asked once (one hand-off or one session), not relayed.
        await hook.processed(_create(MEMBER, 2, topics=("e-akte",)), done("stored"))
        assert counting.opened + len(handed) == 1
        assert not await hub.rows(Activity, Activity.type == "Announce")
        # Approved by another process a moment later: the next tagged one is relayed.
        async with other.begin() as connection:
            await connection.execute(update(HubMember).where(HubMember.actor_uri == MEMBER)
                                     .values(state=MemberState.APPROVED.value))
        await hook.processed(_create(MEMBER, 3, topics=("e-akte",)), done("stored"))
        [announce] = await hub.rows(Activity, Activity.type == "Announce")
        assert announce.document["object"]["id"].endswith("/practices/3/create")
    finally:
        await other.dispose()
        await hub.stop()
