"""Topic groups (FEP-1b12): one ``Group`` actor per topic of ``vocab/topics.ttl``.

Each group lives at ``/topics/{slug}`` with its own inbox, outbox and followers, and
is found by WebFinger as ``acct:{slug}@{hub host}``. Anyone may follow a group (the
hub accepts at once). When an approved member's Create or Update of a contribution
tagged with the topic arrives, the group Announces that activity unchanged: the
member's own ``eddsa-jcs-2022`` proof travels with it, so followers verify the author
without fetching anything.

Keys: the groups publish the hub's own RSA and Ed25519 public keys under their own
key ids (``{group}#main-key``, ``{group}#ed25519-key``; after an Ed25519 rotation the
same version suffix as the hub's, ``#ed25519-key-2``, with the earlier keys still
published listed after it). A receiver checks that the
signing key belongs to the activity's actor, so each group needs its own key id; a
key pair of their own would add nothing, since the same operator holds all of them,
and it would multiply what a key rotation has to touch.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import rdflib
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from rdflib.namespace import SKOS
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

import vocab
from federation.activity_builders import accept, announce
from federation.keys import SigningKey, actor_key_properties, ed25519_key_id
from federation.proofs import sign_document
from node import incoming_follows
from node.appkeys import NodeKeys
from node.config import NodeConfig
from node.hub.tables import TopicFollower
from node.identity import AS_CONTEXT, MULTIKEY_CONTEXT, PUBLIC, SECURITY_V1_CONTEXT
from node.outbox import merge_inboxes, record_local_activity
from node.storage.models import Activity

TOPICS_FILE = Path(vocab.__file__).parent / "topics.ttl"


@dataclass(frozen=True)
class Topic:
    slug: str
    label_de: str
    label_en: str


def load_topics(path: Path = TOPICS_FILE) -> tuple[Topic, ...]:
    """The topics of the SKOS scheme, in the order of their slugs."""
    graph = rdflib.Graph().parse(path, format="turtle")
    scheme = rdflib.URIRef(vocab.TOPIC_SCHEME)
    topics = []
    for concept in graph.subjects(SKOS.inScheme, scheme):
        slug = str(concept).removeprefix(vocab.TOPICS_NAMESPACE)
        labels = {label.language: str(label) for label in graph.objects(concept, SKOS.prefLabel)
                  if isinstance(label, rdflib.Literal)}
        topics.append(Topic(slug, labels.get("de", slug), labels.get("en", slug)))
    return tuple(sorted(topics, key=lambda topic: topic.slug))


def topic_slugs_of(document: Mapping[str, Any]) -> list[str]:
    """The topic slugs a contribution is tagged with (full IRIs or ``topics:`` names)."""
    raw = document.get("topic")
    values = raw if isinstance(raw, list) else [raw]
    slugs = []
    for value in values:
        iri = value.get("id") if isinstance(value, Mapping) else value
        if isinstance(iri, str):
            slug = iri.removeprefix(vocab.TOPICS_NAMESPACE).removeprefix("topics:")
            if slug in vocab.TOPIC_SLUGS and slug not in slugs:
                slugs.append(slug)
    return slugs


class TopicGroups:
    """The URL layout and documents of the hub's topic groups."""

    def __init__(self, config: NodeConfig, topics: Sequence[Topic]) -> None:
        self._config = config
        self.topics = tuple(topics)
        self._by_slug = {topic.slug: topic for topic in self.topics}

    def get(self, slug: str) -> Topic | None:
        return self._by_slug.get(slug)

    def url(self, slug: str) -> str:
        return f"{self._config.base_url}/topics/{slug}"

    def handle(self, slug: str) -> str:
        return f"{slug}@{self._config.domain}"

    def slug_of(self, url: str | None) -> str | None:
        """The topic a group URL names, or None if it is not one of ours."""
        prefix = f"{self._config.base_url}/topics/"
        if not url or not url.startswith(prefix):
            return None
        slug = url[len(prefix):]
        return slug if slug in self._by_slug else None

    def slug_for_resource(self, resource: str) -> str | None:
        """The topic a WebFinger resource (``acct:slug@host`` or the group URL) names."""
        value = resource.strip()
        if value.lower().startswith("acct:"):
            user, _, host = value[5:].partition("@")
            if host.lower() == self._config.domain.lower() and user in self._by_slug:
                return user
            return None
        return self.slug_of(value)

    def signing_key(self, slug: str, keys: NodeKeys) -> SigningKey:
        pair = keys.current()  # key and version from one moment
        return SigningKey(ed25519_key_id(self.url(slug), pair.ed25519_version),
                          pair.ed25519.private_key)

    def actor_document(self, slug: str, keys: NodeKeys) -> dict[str, Any]:
        topic, url = self._by_slug[slug], self.url(slug)
        pair = keys.current()
        rsa_key, ed_key = pair.rsa.private_key, pair.ed25519.private_key
        assert isinstance(rsa_key, rsa.RSAPrivateKey)
        assert isinstance(ed_key, ed25519.Ed25519PrivateKey)
        document: dict[str, Any] = {
            "@context": [AS_CONTEXT, SECURITY_V1_CONTEXT, MULTIKEY_CONTEXT,
                         {"manuallyApprovesFollowers": "as:manuallyApprovesFollowers"}],
            "id": url,
            "type": "Group",
            "preferredUsername": slug,
            "name": f"{topic.label_de} ({self._config.name})",
            "summary": f"Beiträge aller Mitglieder zum Thema „{topic.label_de}“ / {topic.label_en}",
            "url": url,
            "inbox": f"{url}/inbox",
            "outbox": f"{url}/outbox",
            "followers": f"{url}/followers",
            "endpoints": {"sharedInbox": self._config.shared_inbox_url},
            "attributedTo": self._config.actor_url,
            "manuallyApprovesFollowers": False,
        }
        document.update(actor_key_properties(
            url, rsa_key.public_key(), ed_key.public_key(),
            ed25519_version=pair.ed25519_version, retired=pair.ed25519_retired))
        return document


async def add_topic_follower(
    session: AsyncSession, groups: TopicGroups, keys: NodeKeys, slug: str, *,
    follow: Mapping[str, Any], inbox: str, shared_inbox: str | None, now: datetime,
) -> bool:
    """Record the follower and enqueue the group's Accept (groups accept everyone).

    False, and nothing changes, when this Follow's Undo arrived first (``node.incoming_follows``:
    a member's leave and rejoin are separate deliveries that may overtake each other).
    """
    actor = str(follow["actor"])
    group = groups.url(slug)
    if not await incoming_follows.record_follow(session, actor, str(follow["id"]), group, now=now):
        return False
    row = await session.scalar(select(TopicFollower).where(
        TopicFollower.topic == slug, TopicFollower.actor_uri == actor))
    if row is None:
        row = TopicFollower(topic=slug, actor_uri=actor, created_at=now)
        session.add(row)
    row.inbox, row.shared_inbox = inbox, shared_inbox
    row.follow_activity_uri = str(follow["id"])
    answer = accept(group, {"id": follow["id"], "type": "Follow", "actor": actor, "object": group},
                    activity_id=f"{group}/activities/{uuid.uuid4()}", published=now)
    signed = sign_document(answer, groups.signing_key(slug, keys), created=now)
    await record_local_activity(session, signed, [inbox], now=now)
    return True


async def remove_topic_follower(session: AsyncSession, groups: TopicGroups, slug: str, *,
                                actor: str, undo_id: str, follow_id: str, now: datetime) -> bool:
    """Apply ``actor``'s Undo of ``follow_id``; True if it no longer follows the topic.

    The follower row stays while another of its Follows of this group is not undone,
    whatever order the Follows and Undos arrived in (``node.incoming_follows``).
    """
    await incoming_follows.record_undo(session, actor, undo_id, follow_id, now=now)
    row = await session.scalar(select(TopicFollower).where(
        TopicFollower.topic == slug, TopicFollower.actor_uri == actor))
    if row is None:
        return True
    standing = await incoming_follows.standing_follow(session, actor, groups.url(slug),
                                                      row.follow_activity_uri)
    if standing is not None:
        row.follow_activity_uri = standing
        return False
    await session.delete(row)
    return True


def announce_id(group_url: str, activity_id: str) -> str:
    """One Announce per group and activity, whatever happens (retries stay idempotent)."""
    return f"{group_url}/announces/{hashlib.sha256(activity_id.encode()).hexdigest()[:32]}"


async def announce_to_topics(
    session: AsyncSession, groups: TopicGroups, keys: NodeKeys, activity: Mapping[str, Any],
    *, now: datetime,
) -> list[str]:
    """Each topic group of the carried object with followers Announces the activity as it
    arrived (the member's proof inside); returns the Announce ids enqueued."""
    obj = activity.get("object")
    if not isinstance(obj, Mapping) or not isinstance(activity.get("id"), str):
        return []
    enqueued = []
    for slug in topic_slugs_of(obj):
        followers = list(await session.scalars(
            select(TopicFollower).where(TopicFollower.topic == slug)))
        if not followers:
            continue
        group = groups.url(slug)
        identifier = announce_id(group, activity["id"])
        if await session.scalar(select(Activity.id).where(Activity.uri == identifier)):
            continue
        document = announce(group, activity, activity_id=identifier, published=now,
                            cc=[f"{group}/followers"])
        signed = sign_document(document, groups.signing_key(slug, keys), created=now)
        inboxes = merge_inboxes(row.shared_inbox or row.inbox for row in followers)
        await record_local_activity(session, signed, inboxes, now=now)
        enqueued.append(identifier)
    return enqueued


async def follower_count(session: AsyncSession, slug: str) -> int:
    count = await session.scalar(
        select(func.count()).select_from(TopicFollower).where(TopicFollower.topic == slug))
    return count or 0


def public_addressed(activity: Mapping[str, Any]) -> bool:
    """Only public contributions are relayed to a topic's followers."""
    audience = []
    for field in ("to", "cc"):
        value = activity.get(field)
        audience.extend(value if isinstance(value, list) else [value])
    return PUBLIC in audience or "as:Public" in audience or "Public" in audience
