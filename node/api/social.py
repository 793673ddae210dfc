"""``/api/following``, ``/api/followers``, ``/api/timeline`` and ``/api/status``."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select

from node import appkeys
from node.api.common import read_json_object, wake_delivery
from node.api.problems import field_error
from node.follows import FollowError, find_following_uri, follow, resolve_target, unfollow
from node.status import node_status
from node.storage.models import Follower, Following, RemoteObject

TIMELINE_PAGE = 50


def _target(body: dict[str, Any]) -> str:
    target = body.get("target")
    if not isinstance(target, str) or not target.strip():
        raise field_error("target", "give an actor URL or a handle such as acct:slug@example.org")
    return target.strip()


async def follow_target(request: web.Request) -> web.Response:
    app = request.app
    target = _target(await read_json_object(request))
    try:
        info = await resolve_target(app[appkeys.CONFIG], app[appkeys.FETCHER], target)
        async with app[appkeys.SESSION_MAKER].begin() as session:
            result = await follow(
                session, app[appkeys.CONFIG], app[appkeys.NODE_KEYS], info, now=app[appkeys.CLOCK]()
            )
    except FollowError as exc:
        raise field_error(exc.field, exc.message, status=exc.status) from exc
    if result.activity_uri:
        wake_delivery(app)
    status = 202 if result.activity_uri else 200
    body = {"target": result.target_uri, "state": result.state, "activity": result.activity_uri}
    return web.json_response(body, status=status)


async def unfollow_target(request: web.Request) -> web.Response:
    app = request.app
    target = _target(await read_json_object(request))
    try:
        async with app[appkeys.SESSION_MAKER].begin() as session:
            uri = await find_following_uri(session, target)
            result = await unfollow(
                session, app[appkeys.CONFIG], app[appkeys.NODE_KEYS], uri, now=app[appkeys.CLOCK]()
            )
    except FollowError as exc:
        raise field_error(exc.field, exc.message, status=exc.status) from exc
    wake_delivery(app)
    return web.json_response(
        {"target": result.target_uri, "state": result.state, "activity": result.activity_uri}
    )


async def list_following(request: web.Request) -> web.Response:
    async with request.app[appkeys.SESSION_MAKER]() as session:
        rows = await session.scalars(select(Following).order_by(Following.id))
        items = [
            {"target": row.target_uri, "state": row.state, "backfill": row.backfill_state,
             "since": row.created_at.isoformat()}
            for row in rows
        ]  # fmt: skip
    return web.json_response({"items": items})


async def list_followers(request: web.Request) -> web.Response:
    async with request.app[appkeys.SESSION_MAKER]() as session:
        rows = await session.scalars(select(Follower).order_by(Follower.id))
        items = [
            {"actor": row.actor_uri, "state": row.state, "since": row.created_at.isoformat()}
            for row in rows
        ]
    return web.json_response({"items": items})


async def timeline(request: web.Request) -> web.Response:
    """Contributions of followed nodes, newest first; ``?before=ID`` pages on."""
    query = select(RemoteObject).where(RemoteObject.deleted.is_(False))
    before = request.query.get("before")
    if before is not None:
        # ASCII digits within a database integer ("²".isdigit() is true; 10**30 overflows)
        if not (before.isascii() and before.isdigit()) or len(before) > 18:
            raise field_error("before", "must be the cursor from a previous page", status=400)
        query = query.where(RemoteObject.id < int(before))
    async with request.app[appkeys.SESSION_MAKER]() as session:
        rows = list(
            await session.scalars(query.order_by(RemoteObject.id.desc()).limit(TIMELINE_PAGE))
        )
    items = [
        {"uri": row.uri, "kind": row.kind, "attributedTo": row.attributed_to,
         "about": row.about or row.in_reply_to, "document": row.document}
        for row in rows
    ]  # fmt: skip
    body: dict[str, Any] = {"items": items}
    if len(rows) == TIMELINE_PAGE:
        body["next"] = f"/api/timeline?before={rows[-1].id}"
    return web.json_response(body)


async def status(request: web.Request) -> web.Response:
    async with request.app[appkeys.SESSION_MAKER]() as session:
        report = await node_status(session)
    return web.json_response(report.as_json())


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/following", follow_target)
    app.router.add_delete("/api/following", unfollow_target)
    app.router.add_get("/api/following", list_following)
    app.router.add_get("/api/followers", list_followers)
    app.router.add_get("/api/timeline", timeline)
    app.router.add_get("/api/status", status)
