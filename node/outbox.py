"""Local activities and their deliveries, written in the caller's transaction.

``record_local_activity`` stores the activity and one delivery row per recipient
inbox. The caller writes the content in the same session and commits once, so the
object, the activity and every delivery exist together or not at all; a process
killed before the commit leaves nothing half-sent, killed after it loses nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.storage.models import (
    Activity,
    Delivery,
    DeliveryState,
    Follower,
    FollowerState,
    RemoteActor,
)


class OutboxError(ValueError):
    """An activity document lacks a member the outbox needs; ``field`` names it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


def inbox_host(inbox_url: str) -> str:
    """The per-host key deliveries are grouped by (host and port, lower case)."""
    return urlsplit(inbox_url).netloc.lower()


def merge_inboxes(inboxes: Iterable[str | None], *, exclude: Iterable[str] = ()) -> list[str]:
    """Distinct http(s) inbox URLs in first-seen order, without the excluded ones."""
    excluded = set(exclude)
    seen: dict[str, None] = {}
    for inbox in inboxes:
        if not inbox or inbox in excluded:
            continue
        if urlsplit(inbox).scheme not in ("http", "https"):
            continue
        seen.setdefault(inbox, None)
    return list(seen)


def _preferred_inbox(inbox: str, shared_inbox: str | None) -> str:
    # A shared inbox receives one copy for every follower on that server.
    return shared_inbox or inbox


async def follower_inboxes(session: AsyncSession) -> list[str]:
    """The inboxes that reach every accepted follower, shared inboxes merged."""
    rows = await session.execute(
        select(Follower.inbox, Follower.shared_inbox)
        .where(Follower.state == FollowerState.ACCEPTED.value)
        .order_by(Follower.id)
    )
    return merge_inboxes(_preferred_inbox(inbox, shared) for inbox, shared in rows)


async def actor_inboxes(session: AsyncSession, actor_uris: Iterable[str]) -> list[str]:
    """Inboxes of actors the node already knows (``remote_actors``); unknown ones are skipped."""
    wanted = list(dict.fromkeys(actor_uris))
    if not wanted:
        return []
    rows = await session.execute(
        select(RemoteActor.uri, RemoteActor.inbox, RemoteActor.shared_inbox).where(
            RemoteActor.uri.in_(wanted)
        )
    )
    by_uri = {uri: _preferred_inbox(inbox, shared) for uri, inbox, shared in rows}
    return merge_inboxes(by_uri.get(uri) for uri in wanted)


async def recipients_for(
    session: AsyncSession,
    *,
    own_inboxes: Iterable[str],
    to_followers: bool = True,
    actor_uris: Iterable[str] = (),
    inboxes: Iterable[str] = (),
) -> list[str]:
    """All inboxes an activity goes to, deduplicated, never the node's own inboxes."""
    collected: list[str] = list(inboxes)
    if to_followers:
        collected += await follower_inboxes(session)
    collected += await actor_inboxes(session, actor_uris)
    return merge_inboxes(collected, exclude=own_inboxes)


def _object_uri(document: Mapping[str, Any]) -> str | None:
    obj = document.get("object")
    if isinstance(obj, str):
        return obj
    if isinstance(obj, Mapping) and isinstance(obj.get("id"), str):
        return obj["id"]
    return None


def _activity_type(document: Mapping[str, Any]) -> str:
    kind = document.get("type")
    if isinstance(kind, list) and kind and isinstance(kind[0], str):
        return kind[0]
    if isinstance(kind, str) and kind:
        return kind
    raise OutboxError("type", "an activity needs a type")


async def record_local_activity(
    session: AsyncSession,
    activity_doc: Mapping[str, Any],
    recipients: Sequence[str],
    *,
    now: datetime | None = None,
) -> Activity:
    """Add the activity and one pending delivery per distinct recipient inbox.

    Nothing is committed here: the caller's transaction decides. ``now`` should be
    the app's clock; without it the current UTC time is used.
    """
    uri, actor = activity_doc.get("id"), activity_doc.get("actor")
    if not isinstance(uri, str) or not uri:
        raise OutboxError("id", "an activity needs an id")
    if not isinstance(actor, str) or not actor:
        raise OutboxError("actor", "an activity needs an actor")
    created = now or datetime.now(UTC)
    activity = Activity(
        uri=uri,
        type=_activity_type(activity_doc),
        actor=actor,
        object_uri=_object_uri(activity_doc),
        document=dict(activity_doc),
        is_local=True,
        created_at=created,
    )
    session.add(activity)
    await session.flush()
    for inbox in merge_inboxes(recipients):
        session.add(
            Delivery(
                activity_id=activity.id,
                inbox_url=inbox,
                host=inbox_host(inbox),
                state=DeliveryState.PENDING.value,
                attempts=0,
                next_attempt_at=created,
                created_at=created,
            )
        )
    await session.flush()
    return activity
