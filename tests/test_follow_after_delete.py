"""A Follow that arrives after its actor's Delete of itself (a retried delivery sent
before the Delete) must not make the deleted actor a follower again.

The key it is signed with is still held (the key cache and ``remote_actors`` keep the
actor's document for their freshness window; the Delete itself was verified with it), so
the signature check alone does not stop it. The processor remembers the deletion
(``node.incoming_follows.record_actor_deleted``) and, for a Follow from a remembered
actor, asks its server again: 404/410 refuses the Follow (recorded as rejected), an
actor that answers again was re-created and follows as usual.
"""

from __future__ import annotations

import pytest

from node import incoming_follows
from node.hub.settings import write_settings
from node.hub.tables import HubMember, TopicFollower
from node.remote import RemoteDirectory, RemoteError
from node.storage.models import Activity, Delivery, Follower, InboxState
from node.workers import build_workers
from tests.engine_support import node_config, start_node
from tests.test_follow_relations import activity, process, processor_for, two_nodes


def answering(monkeypatch, gone: str, *, status: int = 410) -> None:
    """``gone``'s server answers ``status`` for its actor document from now on."""
    fetch = RemoteDirectory.fetch

    async def fetch_or_gone(self: RemoteDirectory, url: str) -> dict:
        if url == gone:
            raise RemoteError(url, f"http_status (HTTP {status})", permanent=status in (404, 410))
        return await fetch(self, url)

    monkeypatch.setattr(RemoteDirectory, "fetch", fetch_or_gone)


async def _marked(node, actor: str) -> bool:
    async with node.sessions()() as session:
        return await incoming_follows.actor_deleted(session, actor)


async def test_a_follow_after_the_delete_of_a_gone_actor_is_rejected(tmp_path, monkeypatch) -> None:
    a, b = await two_nodes(tmp_path)
    try:
        processor = processor_for(a)
        late = activity(b.actor, "Follow", a.actor)  # sent before the Delete, arrives after
        await process(processor, activity(b.actor, "Follow", a.actor))
        delete = activity(b.actor, "Delete", b.actor)
        await process(processor, delete)
        await process(processor, delete)  # delivered twice: remembered once
        answering(monkeypatch, b.actor, status=410)
        deliveries_before = len(await a.rows(Delivery))

        verdict = await processor.process(late)

        assert verdict.state is InboxState.REJECTED
        assert "deleted" in verdict.reason
        assert await a.rows(Follower) == []
        assert len(await a.rows(Delivery)) == deliveries_before  # no Accept to a gone inbox
        assert len(await a.rows(Activity, Activity.type == "Delete")) == 1
    finally:
        await a.stop()
        await b.stop()


async def test_a_follow_while_the_server_is_unreachable_waits(tmp_path, monkeypatch) -> None:
    a, b = await two_nodes(tmp_path)
    try:
        processor = processor_for(a)
        await process(processor, activity(b.actor, "Follow", a.actor))  # b's actor stored
        await process(processor, activity(b.actor, "Delete", b.actor))
        answering(monkeypatch, b.actor, status=503)
        verdict = await processor.process(activity(b.actor, "Follow", a.actor))
        assert verdict.state is InboxState.RETRY  # not refused on a passing outage
        assert await a.rows(Follower) == []
        assert await _marked(a, b.actor)
    finally:
        await a.stop()
        await b.stop()


async def test_a_recreated_actor_follows_and_loses_its_mark(tmp_path) -> None:
    a, b = await two_nodes(tmp_path)
    try:
        processor = processor_for(a)
        await process(processor, activity(b.actor, "Delete", b.actor))
        assert await _marked(a, b.actor)
        await process(processor, activity(b.actor, "Follow", a.actor))  # b's actor answers
        assert [row.actor_uri for row in await a.rows(Follower)] == [b.actor]
        assert not await _marked(a, b.actor)
    finally:
        await a.stop()
        await b.stop()


@pytest.mark.parametrize("follows", ["hub", "topic"])
async def test_a_hub_refuses_a_deleted_members_late_follow(tmp_path, monkeypatch, follows) -> None:
    config = node_config(tmp_path, "kochbuch", is_hub=True, name="Kochbuch-Redaktion")
    write_settings(config.data_dir, auto_accept_hosts=(), auto_accept_loopback=True)
    hub = await start_node(config, start_workers=False)
    member = await start_node(node_config(tmp_path, "dueren"), start_workers=False)
    target = hub.actor if follows == "hub" else f"{hub.url}/topics/e-akte"
    try:
        processor = build_workers(hub.app).processor
        await process(processor, activity(member.actor, "Follow", hub.actor))
        await process(processor, activity(member.actor, "Delete", member.actor))
        answering(monkeypatch, member.actor, status=404)
        verdict = await processor.process(activity(member.actor, "Follow", target))
        assert verdict.state is InboxState.REJECTED, verdict.reason
        assert await hub.rows(TopicFollower, TopicFollower.actor_uri == member.actor) == []
        assert await hub.rows(Follower, Follower.actor_uri == member.actor) == []
        members = await hub.rows(HubMember, HubMember.actor_uri == member.actor)
        assert [row.state for row in members] == ["left"]
    finally:
        await member.stop()
        await hub.stop()
