"""Outgoing follows: resolve a handle or actor URL, then write Follow / Undo(Follow).

Resolving needs the network (through the safe fetcher); writing happens in the
caller's transaction, and the delivery worker sends what was enqueued.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from federation import activity_builders, proofs
from federation.fetch import FetchError, SafeFetcher
from federation.webfinger import WebFingerError, parse_handle, resolve_handle
from node import remote
from node.appkeys import NodeKeys
from node.config import NodeConfig
from node.outbox import merge_inboxes, record_local_activity
from node.remote import RemoteActorInfo, is_actor_document
from node.storage.actors import upsert_remote_actor
from node.storage.models import Activity, Following, FollowingState, RemoteActor


class FollowError(ValueError):
    """Following or unfollowing failed; ``field`` is always ``target``."""

    def __init__(self, message: str, *, status: int = 422) -> None:
        super().__init__(f"target: {message}")
        self.field = "target"
        self.message = message
        self.status = status


@dataclass(frozen=True)
class FollowResult:
    target_uri: str
    state: str
    activity_uri: str | None  # None when nothing new was sent


def parse_actor_document(document: Mapping[str, Any]) -> RemoteActorInfo:
    """The members of an actor document the node uses; raises FollowError if unusable."""
    uri = document.get("id")
    if not isinstance(uri, str) or not uri or not is_actor_document(document):
        raise FollowError("the target is not an ActivityPub actor with an inbox")
    try:
        return remote.parse_actor_document(uri, document)
    except remote.RemoteError as exc:
        raise FollowError(f"the target is not an ActivityPub actor with an inbox ({exc.reason})") from exc


def _webfinger_scheme(config: NodeConfig, host: str) -> str:
    """https, except for local-federation hosts (loopback / private IPs) when allowed."""
    hostname = urlsplit(f"//{host}").hostname or ""
    if not config.allow_private_network:
        return "https"
    if hostname == "localhost":
        return "http"
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        return "https"
    return "http" if address.is_private or address.is_loopback else "https"


async def resolve_actor_url(config: NodeConfig, fetcher: SafeFetcher, target: str) -> str:
    """An actor URL as given, or the ``self`` link of a handle's WebFinger document."""
    value = target.strip()
    try:
        if value.lower().startswith(("http://", "https://")):
            return value
        _, host = parse_handle(value)
        return await resolve_handle(fetcher, value, scheme=_webfinger_scheme(config, host))
    except WebFingerError as exc:
        raise FollowError(
            f"give an actor URL or a handle such as acct:slug@example.org ({exc})"
        ) from exc
    except FetchError as exc:
        raise FollowError(f"could not look up {value}: {exc}", status=502) from exc


async def resolve_target(config: NodeConfig, fetcher: SafeFetcher, target: str) -> RemoteActorInfo:
    """Fetch and check the actor a URL or handle names."""
    url = await resolve_actor_url(config, fetcher, target)
    if url == config.actor_url:
        raise FollowError("a node cannot follow itself")
    try:
        fetched = await fetcher.get_document(url)
    except FetchError as exc:
        raise FollowError(f"could not fetch the actor {url}: {exc}", status=502) from exc
    return parse_actor_document(fetched.document)


async def store_remote_actor(
    session: AsyncSession, info: RemoteActorInfo, *, now: datetime
) -> None:
    await upsert_remote_actor(session, remote.actor_row(info, fetched_at=now))


def _activity_id(config: NodeConfig) -> str:
    return f"{config.base_url}/activities/{uuid.uuid4()}"


def _sign(keys: NodeKeys, activity: dict[str, Any], now: datetime) -> dict[str, Any]:
    return proofs.sign_document(activity, keys.ed25519, created=now)


async def follow(
    session: AsyncSession,
    config: NodeConfig,
    keys: NodeKeys,
    info: RemoteActorInfo,
    *,
    now: datetime,
) -> FollowResult:
    """Record the follow and enqueue a Follow; idempotent while a follow is requested or accepted."""
    await store_remote_actor(session, info, now=now)
    row = await session.scalar(select(Following).where(Following.target_uri == info.uri))
    if row is not None and row.state != FollowingState.REJECTED.value:
        return FollowResult(info.uri, row.state, None)
    activity = _sign(
        keys,
        activity_builders.follow(
            config.actor_url, info.uri, activity_id=_activity_id(config), published=now
        ),
        now,
    )
    if row is None:
        row = Following(target_uri=info.uri, created_at=now)
        session.add(row)
    row.state, row.follow_activity_uri, row.accepted_at = (
        FollowingState.REQUESTED.value,
        activity["id"],
        None,
    )
    await record_local_activity(session, activity, merge_inboxes([info.inbox]), now=now)
    return FollowResult(info.uri, row.state, activity["id"])


async def unfollow(
    session: AsyncSession, config: NodeConfig, keys: NodeKeys, target_uri: str, *, now: datetime
) -> FollowResult:
    """Remove the follow and enqueue Undo(Follow) to the target's inbox."""
    row = await session.scalar(select(Following).where(Following.target_uri == target_uri))
    if row is None:
        raise FollowError(f"{target_uri} is not followed", status=404)
    follow_doc = await session.scalar(
        select(Activity.document).where(Activity.uri == row.follow_activity_uri)
    )
    if follow_doc is None:  # the Follow predates this node's records: rebuild its reference
        follow_doc = {"id": row.follow_activity_uri or _activity_id(config), "type": "Follow",
                      "actor": config.actor_url, "object": target_uri}  # fmt: skip
    undo = activity_builders.undo(
        config.actor_url, follow_doc, activity_id=_activity_id(config), published=now
    )
    activity = _sign(keys, undo, now)
    actor = await session.get(RemoteActor, target_uri)
    await session.delete(row)
    await record_local_activity(
        session, activity, merge_inboxes([actor.inbox if actor else None]), now=now
    )
    return FollowResult(target_uri, "removed", activity["id"])


async def find_following_uri(session: AsyncSession, target: str) -> str:
    """The followed actor's URI for an actor URL or a handle of a stored actor."""
    value = target.strip()
    if value.lower().startswith(("http://", "https://")):
        return value
    try:
        user, host = parse_handle(value)
    except WebFingerError as exc:
        raise FollowError(f"give an actor URL or a handle ({exc})") from exc
    rows = await session.scalars(
        select(RemoteActor.uri).where(RemoteActor.preferred_username == user)
    )
    for uri in rows:
        if urlsplit(uri).netloc.lower() == host:
            return uri
    raise FollowError(f"{value} is not a followed actor", status=404)
