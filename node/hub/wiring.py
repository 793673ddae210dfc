"""``add_hub(app)``: the hub role on a node application (``create_app`` calls it when
``config.is_hub``).

It adds the hub's resources (``HUB``: index, search, topic groups, renderer) in a
``cleanup_ctx`` that runs before the workers, the inbox hook that lets the hub handle
Follows of itself and of its topic groups and see every processed activity, a
WebFinger answer for the topic groups, the public routes and the editorial API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from functools import partial
from urllib.parse import urlsplit

from aiohttp import web
from sqlalchemy import Connection, bindparam, delete, exists, select

from federation.origin import same_origin
from federation.webfinger import JRD_MEDIA_TYPE, WEBFINGER_PATH, webfinger_document
from node import appkeys, incoming_follows
from node.config import NodeConfig
from node.hub import api, membership, routes
from node.hub.aggregation import Aggregator
from node.hub.editorial import ensure_structure
from node.hub.groups import (
    TopicGroups,
    add_topic_follower,
    announce_to_topics,
    load_topics,
    public_addressed,
    remove_topic_follower,
    topic_slugs_of,
)
from node.hub.index import HubIndex
from node.hub.render import EditionRenderer
from node.hub.runtime import HUB, HubRuntime, bundled_contexts
from node.hub.search_backends import search_backend_for
from node.hub.search_snapshot import SNAPSHOT_FILE, snapshot_for
from node.hub.settings import load_settings
from node.hub.sparql import maintained_examples
from node.hub.tables import HubMember, MemberState, TopicFollower
from node.inbox_processing import Incoming, Verdict, done, rejected
from node.remote import SQLITE_WORK, RemoteDirectory
from node.remote_objects import reference
from node.routes.responses import json_document
from node.storage.models import Follower, InboxState, RemoteActor
from node.workers import INGEST_ELSEWHERE

log = logging.getLogger("praxisnetz.hub")

INDEX_DIR = "index"
START_GRACE_SECONDS = 5.0


def open_index(config: NodeConfig, contexts: dict[str, object]) -> HubIndex | None:
    """The on-disk index; None when another process holds it (a second ``serve``, or
    ``praxisnetz hub reindex``)."""
    path = config.data_dir / INDEX_DIR
    path.mkdir(parents=True, exist_ok=True)
    try:
        index = HubIndex(path, contexts=contexts)
    except OSError as exc:
        log.warning("hub index at %s is in use by another process; not indexing here (%s)",
                    path, exc)
        return None
    # The example queries' answers follow every write (node.hub.maintained_answers):
    # the first visitor after a member's contribution gets them without a full evaluation.
    index.maintain(maintained_examples())
    return index


async def _hub_resources(app: web.Application) -> AsyncIterator[None]:
    config = app[appkeys.CONFIG]
    settings = load_settings(config.data_dir)
    contexts = bundled_contexts()
    # ``praxisnetz worker`` answers no requests: it holds no RDF index (so it never takes
    # the web process's, whichever starts first) and fills no search nobody asks (half a
    # minute of reading at each start for 231,000 documents); its inbox hooks need neither.
    serves = not app.get(INGEST_ELSEWHERE)
    index = await asyncio.to_thread(open_index, config, contexts) if serves else None
    sessions, clock = app[appkeys.SESSION_MAKER], app[appkeys.CLOCK]
    async with sessions() as session, session.begin():
        if await ensure_structure(session, now=clock()):
            log.info("hub: default handbook structure written")
    search = search_backend_for(sessions)
    # The search is read back from a file at the start after a clean stop (PostgreSQL's
    # table is kept as it is) rather than filled from SQL, or compared with it.
    snapshot = snapshot_for(config.data_dir / SNAPSHOT_FILE, search)
    aggregator = Aggregator(sessions=sessions, index=index, search=search, clock=clock,
                            snapshot=snapshot)
    runtime = HubRuntime(
        config=config, settings=settings, groups=TopicGroups(config, load_topics()),
        policy=membership.AutoAcceptPolicy.for_hub(config, settings.auto_accept_hosts,
                                                   loopback=settings.auto_accept_loopback),
        aggregator=aggregator, renderer=EditionRenderer(), contexts=contexts,
    )
    app[HUB] = runtime
    task = asyncio.create_task(aggregator.run(runtime.stop), name="hub-aggregator") \
        if serves else None
    if task is not None:
        await _wait_for_start(aggregator, task)
    try:
        yield
    finally:
        runtime.stop.set()
        if index is not None:
            # Queries under way (a warm-up allows 60 s) must not hold the exit.
            index.stop_queries()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if index is not None:
            await asyncio.to_thread(index.flush)
            await aggregator.save_search_snapshot()  # after the flush: where the index is
        # Oxigraph has no close(): the store (and its lock) goes with the last reference.
        aggregator.index = index = None


async def _wait_for_start(aggregator: Aggregator, task: asyncio.Task[None]) -> None:
    """Until the indexes are filled and caught up, for at most ``START_GRACE_SECONDS``: a
    small hub answers with whole indexes from its first request, a national one (half a minute
    at every start, 231,000 documents) answers everything but search and SPARQL meanwhile."""
    caught_up = asyncio.ensure_future(aggregator.caught_up.wait())
    try:
        await asyncio.wait({caught_up, task}, timeout=START_GRACE_SECONDS,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        caught_up.cancel()
    if not aggregator.caught_up.is_set():
        log.info("hub answering while it fills its indexes; search and SPARQL answer 503 "
                 "until they are whole")


def _wake_delivery(app: web.Application) -> None:
    from node import workers  # node.workers imports the inbox, which imports nothing of ours

    workers.wake_delivery(app)


Handler = Callable[[Incoming], Awaitable[Verdict]]


def _host_allowed(config: NodeConfig, actor: str) -> bool:
    """``follow_allow_hosts`` limits who may follow the node, so also who may apply."""
    allowed = {host.lower() for host in config.follow_allow_hosts}
    return not allowed or (urlsplit(actor).hostname or "").lower() in allowed


class HubInboxHook:
    """The hub's part in inbox processing (``node.inbox_processing.InboxHook``)."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    def handler_for(self, activity: Incoming, directory: RemoteDirectory) -> Handler | None:
        runtime = self._app[HUB]
        if activity.type == "Follow":
            if activity.object_id == runtime.config.actor_url:
                if not _host_allowed(runtime.config, activity.actor):
                    return None  # the node's own follower rule refuses it
                return partial(self._member_follow, directory)
            slug = runtime.groups.slug_of(activity.object_id)
            return partial(self._topic_follow, slug, directory) if slug else None
        if activity.type == "Undo" and activity.object is not None \
                and activity.object.get("type") == "Follow":
            slug = runtime.groups.slug_of(reference(activity.object.get("object")))
            return partial(self._topic_unfollow, slug) if slug else None
        return None

    async def _member_follow(self, directory: RemoteDirectory, activity: Incoming) -> Verdict:
        app, runtime = self._app, self._app[HUB]
        await directory.actor(activity.actor)  # stored in remote_actors
        now = app[appkeys.CLOCK]()
        async with app[appkeys.SESSION_MAKER]() as session, session.begin():
            actor = await session.get(RemoteActor, activity.actor)
            if actor is None:
                return rejected(f"{activity.actor}: actor document unavailable")
            member = await membership.record_application(session, actor, activity.id,
                                                         runtime.config.actor_url, now=now)
            if member is None:
                return done(f"Follow {activity.id} was undone before it arrived; ignored")
            approved = member.state == MemberState.APPROVED.value
            if approved or runtime.policy.accepts(activity.actor):
                await membership.approve(session, member, runtime.config,
                                         app[appkeys.NODE_KEYS], now=now)
                state = "approved"
            else:
                state = member.state
        _wake_delivery(app)
        return done(f"member {activity.actor} {state}")

    async def _topic_follow(self, slug: str, directory: RemoteDirectory,
                            activity: Incoming) -> Verdict:
        app = self._app
        remote = await directory.actor(activity.actor)
        async with app[appkeys.SESSION_MAKER]() as session, session.begin():
            followed = await add_topic_follower(
                session, app[HUB].groups, app[appkeys.NODE_KEYS], slug, follow=activity.raw,
                inbox=remote.inbox, shared_inbox=remote.shared_inbox, now=app[appkeys.CLOCK]())
        if not followed:
            return done(f"Follow {activity.id} of topic {slug} was undone before it arrived; ignored")
        _wake_delivery(app)
        return done(f"{activity.actor} follows topic {slug}")

    async def _topic_unfollow(self, slug: str, activity: Incoming) -> Verdict:
        follow_id = activity.object_id
        if follow_id is None:
            return rejected("Undo of a topic Follow without the Follow's id")
        if not same_origin(follow_id, activity.actor):
            return rejected(f"{activity.actor} may not undo {follow_id}: foreign origin")
        app = self._app
        async with app[appkeys.SESSION_MAKER]() as session, session.begin():
            left = await remove_topic_follower(
                session, app[HUB].groups, slug, actor=activity.actor, undo_id=activity.id,
                follow_id=follow_id, now=app[appkeys.CLOCK]())
        if not left:
            return done(f"undo of {follow_id}; {activity.actor} still follows topic {slug}")
        return done(f"{activity.actor} left topic {slug}")

    async def processed(self, activity: Incoming, verdict: Verdict) -> None:
        """After a member's object changed: wake the indexer, relay to the topic groups."""
        if verdict.state is not InboxState.DONE:
            return
        runtime = self._app[HUB]
        if activity.type == "Undo":
            await self._maybe_left(activity)
            return
        if activity.type == "Delete" and activity.object_id == activity.actor:
            await self._actor_deleted(activity.actor)
        if activity.type not in ("Create", "Update", "Delete", "Announce"):
            return
        runtime.aggregator.wake()
        # A stale or repeated version is relayed at most once per activity id; receivers
        # apply their own rules to it, as to the original.
        if activity.type not in ("Create", "Update") \
                or activity.raw_object is None or not public_addressed(activity.raw):
            return
        # Only a contribution tagged with a topic is relayed; whether it is, the activity
        # itself tells, so an untagged one (whoever sent it) costs no session at all.
        # Membership is still read from SQL for each tagged one: an approval a moment ago,
        # in this process or another, counts.
        carried = activity.raw.get("object")
        slugs = topic_slugs_of(carried) if isinstance(carried, Mapping) else []
        if not slugs or not await self._may_relay(activity.actor, slugs):
            return
        app = self._app
        async with app[appkeys.SESSION_MAKER]() as session, session.begin():
            member = await session.scalar(select(HubMember.id).where(
                HubMember.actor_uri == activity.actor,
                HubMember.state == MemberState.APPROVED.value))
            if member is None:
                return
            announced = await announce_to_topics(session, runtime.groups, app[appkeys.NODE_KEYS],
                                                 activity.raw, now=app[appkeys.CLOCK]())
        if announced:
            _wake_delivery(app)

    async def _may_relay(self, actor: str, slugs: list[str]) -> bool:
        """Whether ``actor`` is an approved member and one of the topics has followers,
        read from SQL now. On SQLite in one hand-off to the inbox writer's thread (as
        the inbox's own reads: an async session was ~2.5 ms of CPU and ~6 ms of wall
        for the one select, in round trips to aiosqlite's thread); else a session."""
        work = partial(_relay_wanted, actor, slugs)
        sqlite = self._app.get(SQLITE_WORK)
        runner = sqlite.runner if sqlite is not None else None
        if runner is not None:
            return bool(await runner(work))
        async with self._app[appkeys.SESSION_MAKER]() as session:
            return await session.run_sync(lambda sync: work(sync.connection()))

    async def _actor_deleted(self, actor: str) -> None:
        """A deleted actor follows no topic group and is no member (the node removed its
        follower row). It undoes none of its Follows, so they end here: a later Follow and
        Undo by the same actor URL must not find one standing (``end_follows``)."""
        now = self._app[appkeys.CLOCK]()
        async with self._app[appkeys.SESSION_MAKER]() as session, session.begin():
            await incoming_follows.end_follows(session, actor, None, now=now)
            await session.execute(delete(TopicFollower).where(TopicFollower.actor_uri == actor))
            await membership.member_left(session, actor, now=now)

    async def _maybe_left(self, activity: Incoming) -> None:
        inner = activity.object
        config = self._app[HUB].config
        if inner is None or inner.get("type") != "Follow" \
                or reference(inner.get("object")) != config.actor_url:
            return
        async with self._app[appkeys.SESSION_MAKER]() as session, session.begin():
            follower = await session.scalar(
                select(Follower.id).where(Follower.actor_uri == activity.actor))
            if follower is not None:  # an Undo of an older Follow: the member stays
                return
            left = await membership.member_left(session, activity.actor,
                                                now=self._app[appkeys.CLOCK]())
        if left:
            self._app[HUB].aggregator.wake()


# One statement, compiled once: is the author an approved member, and has one of the
# topics followers? Two selects through SQLAlchemy took ~0.6 ms of CPU; this ~0.08 ms
# (1,000 calls on SQLite), once per tagged contribution.
_RELAY_WANTED = select(
    exists(select(HubMember.id).where(HubMember.actor_uri == bindparam("actor"),
                                      HubMember.state == MemberState.APPROVED.value))
    & exists(select(TopicFollower.id).where(
        TopicFollower.topic.in_(bindparam("slugs", expanding=True)))))


def _relay_wanted(actor: str, slugs: list[str], connection: Connection) -> bool:
    """``HubInboxHook._may_relay``'s reads (sync, in the caller's transaction)."""
    return bool(connection.execute(_RELAY_WANTED, {"actor": actor, "slugs": slugs}).scalar())


@web.middleware
async def topic_webfinger(request: web.Request,
                          handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
                          ) -> web.StreamResponse:
    """WebFinger for ``acct:{topic}@{hub host}``; everything else goes to the node's answer."""
    if request.path == WEBFINGER_PATH and HUB in request.app:
        runtime = request.app[HUB]
        slug = runtime.groups.slug_for_resource(request.query.get("resource", ""))
        if slug is not None:
            document = webfinger_document(slug, runtime.config.domain, runtime.groups.url(slug),
                                          profile_url=runtime.groups.url(slug))
            return json_document(document, JRD_MEDIA_TYPE, vary_accept=False)
    return await handler(request)


def add_hub(app: web.Application) -> None:
    """Give the node application the hub role (call before the workers' cleanup_ctx)."""
    app.cleanup_ctx.append(_hub_resources)
    app[appkeys.INBOX_HOOK] = HubInboxHook(app)
    app.middlewares.append(topic_webfinger)
    routes.add_routes(app)
    api.add_routes(app)
