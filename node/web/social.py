"""Follow and unfollow by handle or URL, and the timeline of what the followed published."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from sqlalchemy import select

from node import appkeys
from node.api.common import wake_delivery
from node.follows import FollowError, find_following_uri, follow, resolve_target, unfollow
from node.storage.models import Follower, Following, RemoteActor, RemoteObject
from node.web.public import actor_names
from node.web.render import page
from node.web.session import FORM, translator
from node.web.views import ContributionView, view_of

TIMELINE_PAGE = 50
MAX_TARGET = 2048
NOTICES = {"sent": "follow.sent", "removed": "follow.removed"}


@dataclass(frozen=True)
class FollowedEntry:
    uri: str
    name: str
    state: str


@dataclass(frozen=True)
class TimelineEntry:
    id: int
    view: ContributionView
    author_name: str
    received: str


def _target(request: web.Request) -> str:
    value = request[FORM].get("target", "")
    return value.strip()[:MAX_TARGET] if isinstance(value, str) else ""


async def _following_page(
    request: web.Request, *, target: str = "", error: str | None = None, status: int = 200
) -> web.Response:
    async with request.app[appkeys.SESSION_MAKER]() as session:
        rows = await session.execute(
            select(Following.target_uri, Following.state, RemoteActor.name)
            .join(RemoteActor, RemoteActor.uri == Following.target_uri, isouter=True)
            .order_by(Following.id)
        )
        followed = [FollowedEntry(uri, name or uri, state) for uri, state, name in rows]
        followers = list(await session.scalars(select(Follower.actor_uri).order_by(Follower.id)))
    notice_key = NOTICES.get(request.query.get("done", ""))
    context = {
        "followed": followed, "followers": followers, "target": target, "error": error,
        "notice": translator(request)(notice_key) if notice_key else None,
    }  # fmt: skip
    return page(request, "following.html.j2", context, status=status)


async def following(request: web.Request) -> web.Response:
    return await _following_page(request)


async def follow_submit(request: web.Request) -> web.Response:
    app, target = request.app, _target(request)
    if not target:
        return await _following_page(request, error="is required", status=422)
    try:
        info = await resolve_target(app[appkeys.CONFIG], app[appkeys.FETCHER], target)
        async with app[appkeys.SESSION_MAKER].begin() as session:
            result = await follow(
                session, app[appkeys.CONFIG], app[appkeys.NODE_KEYS], info, now=app[appkeys.CLOCK]()
            )
    except FollowError as exc:
        return await _following_page(request, target=target, error=exc.message, status=422)
    if result.activity_uri:
        wake_delivery(app)
    raise web.HTTPSeeOther("/dashboard/following?done=sent")


async def unfollow_submit(request: web.Request) -> web.Response:
    app, target = request.app, _target(request)
    try:
        async with app[appkeys.SESSION_MAKER].begin() as session:
            uri = await find_following_uri(session, target)
            await unfollow(
                session, app[appkeys.CONFIG], app[appkeys.NODE_KEYS], uri, now=app[appkeys.CLOCK]()
            )
    except FollowError as exc:
        return await _following_page(request, error=exc.message, status=422)
    wake_delivery(app)
    raise web.HTTPSeeOther("/dashboard/following?done=removed")


async def timeline(request: web.Request) -> web.Response:
    """What followed nodes published, newest first; ``?before=ID`` pages on."""
    query = select(RemoteObject).where(RemoteObject.deleted.is_(False))
    before = request.query.get("before", "")
    # ASCII digits within a database integer ("²".isdigit() is true; 10**30 overflows)
    if before.isascii() and before.isdigit() and len(before) <= 18:
        query = query.where(RemoteObject.id < int(before))
    async with request.app[appkeys.SESSION_MAKER]() as session:
        rows = list(
            await session.scalars(query.order_by(RemoteObject.id.desc()).limit(TIMELINE_PAGE))
        )
        names = await actor_names(session, {row.attributed_to or "" for row in rows})
    entries = [
        TimelineEntry(
            row.id, view_of(row.document or {"id": row.uri}),
            names.get(row.attributed_to or "") or row.attributed_to or "?",
            row.received_at.strftime("%Y-%m-%d %H:%M"),
        )
        for row in rows
    ]  # fmt: skip
    older = entries[-1].id if len(entries) == TIMELINE_PAGE else None
    return page(request, "timeline.html.j2", {"entries": entries, "older": older})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/dashboard/following", following, name="web.staff.following")
    app.router.add_post("/dashboard/following", follow_submit, name="web.staff.follow")
    app.router.add_post("/dashboard/unfollow", unfollow_submit, name="web.staff.unfollow")
    app.router.add_get("/dashboard/timeline", timeline, name="web.staff.timeline")
