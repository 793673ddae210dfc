"""Membership: a municipality applies by following the hub; an editor (or the
auto-accept policy) approves; on approval the hub Accepts, follows the member back,
and backfill brings the member's history.

The Follow of the hub's actor is handled here instead of by the node's own follower
rule (``InboxHook.handler_for``): for a hub a follower is an applicant. The
``followers`` row stays pending until approval, so nothing is delivered to an applicant
before an editor said yes.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from federation.activity_builders import accept
from federation.proofs import sign_document
from node import follows, incoming_follows
from node.appkeys import NodeKeys
from node.config import NodeConfig
from node.hub.tables import HubMember, MemberState
from node.outbox import record_local_activity
from node.storage.models import Activity, Follower, FollowerState, RemoteActor

AGS_URI_PREFIX = "http://dcat-ap.de/def/politicalGeocoding/municipalityKey/"


class MembershipError(ValueError):
    """A membership action cannot be done; ``field`` names the input at fault."""

    def __init__(self, field: str, message: str, *, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status


@dataclass(frozen=True)
class AutoAcceptPolicy:
    """Which applicants the hub approves without an editor."""

    hosts: frozenset[str] = frozenset()
    loopback: bool = False  # only for a local federation (--allow-private-network)

    @classmethod
    def for_hub(cls, config: NodeConfig, hosts: Iterable[str], *,
                loopback: bool = True) -> AutoAcceptPolicy:
        return cls(frozenset(h.lower() for h in hosts),
                   loopback=loopback and config.allow_private_network)

    def accepts(self, actor_url: str) -> bool:
        host = (urlsplit(actor_url).hostname or "").lower()
        if host in self.hosts:
            return True
        return self.loopback and _is_loopback(host)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class MemberView:
    """A member as the directory, the API and the CLI show it."""

    id: int
    actor: str
    name: str
    kind: str | None
    ags: str | None
    state: str
    applied_at: datetime
    decided_at: datetime | None

    @classmethod
    def of(cls, row: HubMember) -> MemberView:
        return cls(row.id, row.actor_uri, row.name, row.kind, row.ags, row.state,
                   row.applied_at, row.decided_at)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "actor": self.actor, "name": self.name, "kind": self.kind,
            "ags": self.ags, "state": self.state, "applied": self.applied_at.isoformat(),
            "decided": self.decided_at.isoformat() if self.decided_at else None,
        }  # fmt: skip


def ags_of(actor_document: Mapping[str, Any]) -> str | None:
    key = actor_document.get("municipalityKey")
    if isinstance(key, str) and key.startswith(AGS_URI_PREFIX):
        return key[len(AGS_URI_PREFIX):]
    return None


async def record_application(
    session: AsyncSession, actor: RemoteActor, follow_activity_uri: str, followed: str,
    *, now: datetime,
) -> HubMember | None:
    """Store (or refresh) the applicant and its pending ``followers`` row; None if this
    Follow was undone before it arrived (``node.incoming_follows``: nothing changes)."""
    if not await incoming_follows.record_follow(session, actor.uri, follow_activity_uri,
                                                followed, now=now):
        return None
    member = await session.scalar(select(HubMember).where(HubMember.actor_uri == actor.uri))
    if member is None:
        member = HubMember(actor_uri=actor.uri, applied_at=now,
                           state=MemberState.PENDING.value)
        session.add(member)
    member.name = actor.name or actor.preferred_username or actor.uri
    member.kind, member.ags = actor.kind, ags_of(actor.document or {})
    member.follow_activity_uri = follow_activity_uri
    if member.state == MemberState.LEFT.value:
        # An editor approved it before and leaving is no refusal. Without this, a member
        # that leaves and applies again at once would stay approved if the Follow arrives
        # first, but wait for an editor if the Undo does.
        member.state = MemberState.APPROVED.value
    follower = await session.scalar(select(Follower).where(Follower.actor_uri == actor.uri))
    if follower is None:
        follower = Follower(actor_uri=actor.uri, created_at=now,
                            state=FollowerState.PENDING.value)
        session.add(follower)
    follower.inbox, follower.shared_inbox = actor.inbox, actor.shared_inbox
    follower.follow_activity_uri = follow_activity_uri
    if member.state == MemberState.APPROVED.value:
        follower.state = FollowerState.ACCEPTED.value
    await session.flush()
    return member


async def find_member(session: AsyncSession, ref: str) -> HubMember:
    """A member by id, actor URL or ``acct:``-less handle (``slug@host``)."""
    ref = ref.strip()
    if ref.isdigit():
        member = await session.get(HubMember, int(ref))
    elif ref.startswith(("http://", "https://")):
        member = await session.scalar(select(HubMember).where(HubMember.actor_uri == ref))
    else:
        member = None
        actor_uri = await _handle_of_applicant(session, ref)
        if actor_uri is not None:
            member = await session.scalar(select(HubMember).where(HubMember.actor_uri == actor_uri))
    if member is None:
        raise MembershipError("member", f"{ref} has not applied to this hub", status=404)
    return member


async def _handle_of_applicant(session: AsyncSession, handle: str) -> str | None:
    """The actor URL of a known actor named by ``user@host`` (``acct:`` and ``@`` allowed)."""
    user, _, host = handle.removeprefix("acct:").removeprefix("@").partition("@")
    rows = await session.scalars(
        select(RemoteActor.uri).where(RemoteActor.preferred_username == user))
    return next((uri for uri in rows if urlsplit(uri).netloc.lower() == host.lower()), None)


async def approve(
    session: AsyncSession, member: HubMember, config: NodeConfig, keys: NodeKeys,
    *, now: datetime,
) -> follows.FollowResult:
    """Approve: Accept the member's Follow, follow it back (backfill follows the Accept)."""
    actor = await session.get(RemoteActor, member.actor_uri)
    if actor is None:
        raise MembershipError("member", f"{member.actor_uri}: actor document not known yet")
    if member.state == MemberState.REJECTED.value and member.follow_activity_uri:
        await _take_back_refusal(session, actor.uri, member.follow_activity_uri)
    member.state, member.decided_at = MemberState.APPROVED.value, now
    follower = await session.scalar(select(Follower).where(Follower.actor_uri == actor.uri))
    if follower is not None:
        follower.state = FollowerState.ACCEPTED.value
    follow_document = {"id": member.follow_activity_uri, "type": "Follow",
                       "actor": actor.uri, "object": config.actor_url}
    answer = accept(config.actor_url, follow_document,
                    activity_id=f"{config.base_url}/activities/{uuid.uuid4()}", published=now)
    await record_local_activity(session, sign_document(answer, keys.ed25519, created=now),
                                [actor.inbox], now=now)
    info = follows.parse_actor_document(actor.document or {})
    return await follows.follow(session, config, keys, info, now=now)


async def _take_back_refusal(session: AsyncSession, actor: str, follow_id: str) -> None:
    """An editor approves an applicant refused before, without a new Follow: the refusal
    had ended its Follow (``reject``: ``incoming_follows.end_follows`` records an Undo
    receipt under an id of ours, ``urn:uuid:…``). Those receipts go, so the Follow stands
    again as for any member: delivered again it is answered with another Accept instead
    of being ignored as undone, and the member's own Undo of it ends the membership. An
    Undo the applicant sent itself (its own https id) stays."""
    await session.execute(delete(Activity).where(
        Activity.type == incoming_follows.UNDO, Activity.object_uri == follow_id,
        Activity.actor == actor, Activity.is_local.is_(False),
        Activity.uri.startswith("urn:uuid:")))


async def decide(
    session: AsyncSession, ref: str, *, approved: bool, config: NodeConfig, keys: NodeKeys,
    now: datetime,
) -> HubMember:
    """An editor's decision on the member ``ref`` names (``find_member``): approve or refuse.
    The API, the editor's page and the CLI all decide through here."""
    member = await find_member(session, ref)
    if approved:
        await approve(session, member, config, keys, now=now)
    else:
        await reject(session, member, followed=config.actor_url, now=now)
    return member


async def reject(session: AsyncSession, member: HubMember, *, followed: str,
                 now: datetime) -> None:
    """Refuse an application; its follower row is marked refused, nothing is delivered to it.

    Its Follows so far end here (``incoming_follows.end_follows``): the applicant never
    undoes them, and one left standing would keep it a member after it applies again,
    is approved and leaves.
    """
    member.state, member.decided_at = MemberState.REJECTED.value, now
    await incoming_follows.end_follows(session, member.actor_uri, followed, now=now)
    follower = await session.scalar(select(Follower).where(Follower.actor_uri == member.actor_uri))
    if follower is not None:
        follower.state = FollowerState.REJECTED.value


async def member_left(session: AsyncSession, actor_uri: str, *, now: datetime) -> bool:
    """The member undid its Follow of the hub: it is no longer a member (its history stays
    in SQL; the index drops it). True if a member row changed."""
    member = await session.scalar(select(HubMember).where(HubMember.actor_uri == actor_uri))
    if member is None or member.state == MemberState.LEFT.value:
        return False
    member.state, member.decided_at = MemberState.LEFT.value, now
    return True


async def list_members(session: AsyncSession, *, state: MemberState | None = None) -> list[MemberView]:
    query = select(HubMember).order_by(HubMember.name, HubMember.id)
    if state is not None:
        query = query.where(HubMember.state == state.value)
    return [MemberView.of(row) for row in (await session.scalars(query))]
