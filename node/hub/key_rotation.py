"""A key rotation on a hub: its topic groups publish the node's keys too, so each group
with followers announces its new actor document as well (``praxisnetz keys rotate``)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.appkeys import NodeKeys
from node.config import NodeConfig
from node.hub.groups import TopicGroups, load_topics
from node.hub.tables import TopicFollower
from node.identity import update_of_actor
from node.outbox import merge_inboxes, record_local_activity


async def queue_group_updates(
    session: AsyncSession, config: NodeConfig, keys: NodeKeys, *, now: datetime
) -> int:
    """Queue an ``Update`` of every topic group that has followers; the inboxes reached."""
    groups = TopicGroups(config, load_topics())
    followers = (await session.scalars(select(TopicFollower))).all()
    by_topic: dict[str, list[TopicFollower]] = {}
    for row in followers:
        by_topic.setdefault(row.topic, []).append(row)
    reached = 0
    for slug, rows in sorted(by_topic.items()):
        if groups.get(slug) is None:  # a topic no longer in the handbook: no actor to update
            continue
        group = groups.url(slug)
        actor = groups.actor_document(slug, keys)
        # A proof checks that an Update's embedded object is attributed to the Update's
        # actor (federation.proofs); the group's attributedTo names the hub, so it is left
        # out here (receivers take the keys from the embedded actor or fetch it anew).
        actor.pop("attributedTo", None)
        update = update_of_actor(
            actor, groups.signing_key(slug, keys),
            activity_id=f"{group}/activities/{uuid.uuid4()}", followers=f"{group}/followers",
            now=now)
        inboxes = merge_inboxes(row.shared_inbox or row.inbox for row in rows)
        await record_local_activity(session, update, inboxes, now=now)
        reached += len(inboxes)
    return reached
