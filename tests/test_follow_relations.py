"""A follow relation that ended without an Undo (the follower's actor was deleted, its
Follow was refused by the node or by a hub editor) must not come back.

``node.incoming_follows`` keeps every received Follow as a receipt, and an actor follows
while one of them is not undone. The follower never undoes a Follow whose relation ended
on our side, so before ``end_follows`` its receipt stood for ever: after a later Follow F2
and its Undo, the old F1 kept the actor a follower (delivered to, listed in the followers
collection, a hub member). Each test drives the real inbox processing in the order the
deliveries arrive and checks who follows, who is listed and who gets deliveries.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

import aiohttp

from node import appkeys
from node.hub import membership
from node.hub.settings import write_settings
from node.hub.tables import HubMember, TopicFollower
from node.inbox_processing import InboxProcessor
from node.remote import RemoteDirectory
from node.storage.models import Delivery, Follower, InboxState
from node.workers import build_workers
from tests.engine_support import AS_CONTEXT, RunningNode, node_config, publish, start_node


def activity(actor: str, kind: str, obj: object) -> dict:
    base = actor.rsplit("/", 1)[0]
    return {"@context": AS_CONTEXT, "id": f"{base}/activities/{uuid.uuid4()}", "type": kind,
            "actor": actor, "object": obj}


def processor_for(node: RunningNode, **config_changes) -> InboxProcessor:
    """The node's own processor; with ``config_changes`` the same with other settings
    (a node whose operator changed ``follow_allow_hosts`` between two deliveries)."""
    processor = build_workers(node.app).processor
    if not config_changes:
        return processor
    app = node.app
    directory = RemoteDirectory(session_maker=app[appkeys.SESSION_MAKER],
                                fetcher=app[appkeys.FETCHER], clock=app[appkeys.CLOCK])
    return InboxProcessor(config=replace(node.config, **config_changes),
                          session_maker=app[appkeys.SESSION_MAKER], clock=app[appkeys.CLOCK],
                          keys=node.keys, directory=directory, key_resolver=app[appkeys.KEY_CACHE])


async def process(processor: InboxProcessor, document: dict) -> str:
    verdict = await processor.process(document)
    assert verdict.state is InboxState.DONE, verdict.reason
    return verdict.reason


async def listed_followers(node: RunningNode) -> list[str]:
    """The followers collection as a remote server reads it (first page)."""
    headers = {"Accept": "application/activity+json"}
    async with aiohttp.ClientSession() as http, \
            http.get(node.config.followers_url, headers=headers) as response:
        collection = await response.json(content_type=None)
        first = collection.get("first")
        if isinstance(first, str):
            async with http.get(first, headers=headers) as page_response:
                collection = await page_response.json(content_type=None)
        elif isinstance(first, dict):
            collection = first
    return list(collection.get("orderedItems") or [])


async def delivered_to(node: RunningNode, target: RunningNode, slug: str) -> bool:
    """Whether publishing a new contribution on ``node`` queues a delivery to ``target``."""
    before = {row.id for row in await node.rows(Delivery)}
    await publish(node, "practice", slug, "Neue Praxis", body="Text.")
    inboxes = {target.config.inbox_url, target.config.shared_inbox_url}
    return any(row.inbox_url in inboxes for row in await node.rows(Delivery)
               if row.id not in before)


async def two_nodes(tmp_path) -> tuple[RunningNode, RunningNode]:
    a = await start_node(node_config(tmp_path, "a"), start_workers=False)
    b = await start_node(node_config(tmp_path, "b"), start_workers=False)
    return a, b


async def test_an_actor_deleted_and_back_leaves_with_its_undo(tmp_path) -> None:
    a, b = await two_nodes(tmp_path)
    try:
        processor = processor_for(a)
        await process(processor, activity(b.actor, "Follow", a.actor))
        assert await listed_followers(a) == [b.actor]
        await process(processor, activity(b.actor, "Delete", b.actor))  # no Undo for F1
        assert await a.rows(Follower) == []
        again = activity(b.actor, "Follow", a.actor)  # the same actor URL, following again
        await process(processor, again)
        assert await listed_followers(a) == [b.actor]
        assert await delivered_to(a, b, "waehrend")
        reason = await process(processor, activity(b.actor, "Undo", again))
        assert reason.endswith("removed"), reason
        assert await a.rows(Follower) == []
        assert await listed_followers(a) == []
        assert not await delivered_to(a, b, "danach")
    finally:
        await a.stop()
        await b.stop()


async def test_a_refused_follow_does_not_stand_after_the_next_one_is_undone(tmp_path) -> None:
    a, b = await two_nodes(tmp_path)
    try:
        closed = processor_for(a, follow_allow_hosts=("nur-diese.example",))
        refused = activity(b.actor, "Follow", a.actor)
        await process(closed, refused)
        assert [row.state for row in await a.rows(Follower)] == ["rejected"]
        assert not await delivered_to(a, b, "geschlossen")
        opened = processor_for(a)  # the operator lifted the limit
        again = activity(b.actor, "Follow", a.actor)
        await process(opened, again)
        assert [row.state for row in await a.rows(Follower)] == ["accepted"]
        assert await listed_followers(a) == [b.actor]
        await process(opened, activity(b.actor, "Undo", again))
        assert await a.rows(Follower) == []
        assert await listed_followers(a) == []
        assert not await delivered_to(a, b, "danach")
        # The refused Follow, delivered again later, is not taken for a new one either.
        await process(opened, refused)
        assert await a.rows(Follower) == []
    finally:
        await a.stop()
        await b.stop()


async def test_the_undo_of_an_older_follow_still_leaves_the_newer_one_standing(tmp_path) -> None:
    # The guard the receipts exist for still holds: F1 accepted, F2 accepted, Undo(F1)
    # leaves the follower. Ending a relation only touches Follows received until then.
    a, b = await two_nodes(tmp_path)
    try:
        processor = processor_for(a)
        first, second = (activity(b.actor, "Follow", a.actor) for _ in range(2))
        await process(processor, first)
        await process(processor, second)
        await process(processor, activity(b.actor, "Undo", first))
        [row] = await a.rows(Follower)
        assert row.state == "accepted" and row.follow_activity_uri == second["id"]
        assert await delivered_to(a, b, "bleibt")
    finally:
        await a.stop()
        await b.stop()


async def _member(hub: RunningNode, actor: str) -> HubMember | None:
    rows = await hub.rows(HubMember, HubMember.actor_uri == actor)
    return rows[0] if rows else None


async def _decide(hub: RunningNode, actor: str, *, approved: bool) -> None:
    async with hub.sessions()() as session, session.begin():
        await membership.decide(session, actor, approved=approved, config=hub.config,
                                keys=hub.keys, now=hub.app[appkeys.CLOCK]())


async def test_a_refused_applicant_approved_later_leaves_with_its_undo(tmp_path) -> None:
    config = node_config(tmp_path, "kochbuch", is_hub=True, name="Kochbuch-Redaktion")
    write_settings(config.data_dir, auto_accept_hosts=(), auto_accept_loopback=False)
    hub = await start_node(config, start_workers=False)
    member = await start_node(node_config(tmp_path, "dueren"), start_workers=False)
    try:
        processor = build_workers(hub.app).processor  # with the hub's inbox hook
        await process(processor, activity(member.actor, "Follow", hub.actor))
        await _decide(hub, member.actor, approved=False)
        assert (await _member(hub, member.actor)).state == "rejected"
        again = activity(member.actor, "Follow", hub.actor)  # it applies again
        await process(processor, again)
        await _decide(hub, member.actor, approved=True)  # and an editor takes it this time
        assert (await _member(hub, member.actor)).state == "approved"
        assert await listed_followers(hub) == [member.actor]
        await process(processor, activity(member.actor, "Undo", again))
        assert await hub.rows(Follower, Follower.actor_uri == member.actor) == []
        assert (await _member(hub, member.actor)).state == "left"
        assert not await delivered_to(hub, member, "danach")
    finally:
        await member.stop()
        await hub.stop()


async def test_a_deleted_member_leaves_its_topics_and_a_later_follow_of_one_can_end(tmp_path) -> None:
    config = node_config(tmp_path, "kochbuch", is_hub=True, name="Kochbuch-Redaktion")
    write_settings(config.data_dir, auto_accept_hosts=(), auto_accept_loopback=True)
    hub = await start_node(config, start_workers=False)
    member = await start_node(node_config(tmp_path, "dueren"), start_workers=False)
    group = f"{hub.url}/topics/e-akte"
    try:
        processor = build_workers(hub.app).processor
        await process(processor, activity(member.actor, "Follow", hub.actor))
        await process(processor, activity(member.actor, "Follow", group))
        assert (await _member(hub, member.actor)).state == "approved"
        await process(processor, activity(member.actor, "Delete", member.actor))
        # gone: no topic follower (no Announces to its inbox), no member, no follower
        assert await hub.rows(TopicFollower, TopicFollower.actor_uri == member.actor) == []
        assert (await _member(hub, member.actor)).state == "left"
        assert await hub.rows(Follower, Follower.actor_uri == member.actor) == []
        again = activity(member.actor, "Follow", group)
        await process(processor, again)
        await process(processor, activity(member.actor, "Undo", again))
        assert await hub.rows(TopicFollower, TopicFollower.actor_uri == member.actor) == []
    finally:
        await member.stop()
        await hub.stop()
