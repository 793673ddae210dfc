"""The actor, the node's objects with content negotiation, their replies, and activities."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import or_, select

from node import appkeys
from node.authoring import COLLECTION_PATHS, tombstone
from node.identity import AS_CONTEXT, actor_document
from node.routes.collections import deleted_content_activities
from node.routes.negotiation import Representation, negotiate
from node.routes.rdf import document_to_turtle
from node.routes.responses import html_page, json_document, not_acceptable
from node.storage.models import Activity, Contribution, ContributionKind, RemoteObject
from node.web.public import render_contribution_page

KIND_BY_COLLECTION = {path: kind for kind, path in COLLECTION_PATHS.items()}
COLLECTION_PATTERN = "|".join(KIND_BY_COLLECTION)
REPLY_KINDS = (ContributionKind.STANCE.value, ContributionKind.COMMENT.value)
MAX_REPLIES = 500
JSON_REPRESENTATIONS = (
    Representation.ACTIVITY_JSON,
    Representation.AS_JSONLD,
    Representation.JSONLD,
)


async def actor(request: web.Request) -> web.Response:
    config = request.app[appkeys.CONFIG]
    wanted = negotiate(request.headers.get("Accept"), (*JSON_REPRESENTATIONS, Representation.HTML))
    if wanted is None:
        return not_acceptable(JSON_REPRESENTATIONS)
    if wanted is Representation.HTML:
        raise web.HTTPSeeOther("/")  # relative: the profile page of this node
    return json_document(actor_document(config, request.app[appkeys.NODE_KEYS]), wanted.value)


def _deleted(row: Contribution, wanted: Representation) -> web.Response:
    assert row.deleted_at is not None
    if wanted is Representation.HTML:
        return html_page(row.title, "<p>Dieser Beitrag wurde gelöscht.</p>", status=410)
    if wanted.is_json:
        return json_document(tombstone(row, row.deleted_at), wanted.value, status=410)
    return web.Response(status=410, text="410 Gone\n", headers={"Vary": "Accept"})


async def _find(request: web.Request) -> Contribution:
    kind = KIND_BY_COLLECTION[request.match_info["collection"]]
    async with request.app[appkeys.SESSION_MAKER]() as session:
        row = await session.scalar(
            select(Contribution).where(
                Contribution.slug == request.match_info["slug"], Contribution.kind == kind.value
            )
        )
    if row is None:
        raise web.HTTPNotFound(text="no such contribution\n")
    return row


async def contribution(request: web.Request) -> web.Response:
    wanted = negotiate(request.headers.get("Accept"))
    if wanted is None:
        return not_acceptable(tuple(Representation))
    row = await _find(request)
    if row.deleted_at is not None:
        return _deleted(row, wanted)
    if wanted is Representation.HTML:
        return await render_contribution_page(request, row)
    if wanted is Representation.TURTLE:
        turtle = document_to_turtle(row.document, base=row.uri)
        return web.Response(
            text=turtle, content_type="text/turtle", charset="utf-8", headers={"Vary": "Accept"}
        )
    return json_document(row.document, wanted.value)


def _targets(document: dict[str, Any]) -> set[str]:
    return {
        value
        for value in (document.get("inReplyTo"), document.get("about"))
        if isinstance(value, str)
    }


async def _replies_to(request: web.Request, uri: str) -> list[dict[str, Any]]:
    """Remote replies, stances and comments about ``uri``, then local ones, newest first."""
    async with request.app[appkeys.SESSION_MAKER]() as session:
        remote = await session.scalars(
            select(RemoteObject.document)
            .where(
                or_(RemoteObject.in_reply_to == uri, RemoteObject.about == uri),
                RemoteObject.deleted.is_(False),
            )
            .order_by(RemoteObject.id.desc())
            .limit(MAX_REPLIES)
        )
        items = [document for document in remote if document]
        local = await session.scalars(
            select(Contribution.document)
            .where(Contribution.kind.in_(REPLY_KINDS), Contribution.deleted_at.is_(None))
            .order_by(Contribution.id.desc())
        )
        items += [document for document in local if uri in _targets(document)]
    return items[:MAX_REPLIES]


async def replies(request: web.Request) -> web.Response:
    row = await _find(request)
    if row.deleted_at is not None:
        raise web.HTTPGone(text="the contribution was deleted\n")
    items = await _replies_to(request, row.uri)
    collection = {
        "@context": AS_CONTEXT,
        "id": f"{row.uri}/replies",
        "type": "OrderedCollection",
        "totalItems": len(items),
        "orderedItems": items,
    }
    return json_document(collection)


async def activity(request: web.Request) -> web.Response:
    config = request.app[appkeys.CONFIG]
    uri = f"{config.base_url}/activities/{request.match_info['activity_id']}"
    async with request.app[appkeys.SESSION_MAKER]() as session:
        row = (
            await session.execute(
                select(Activity.document, deleted_content_activities()).where(
                    Activity.uri == uri, Activity.is_local.is_(True)
                )
            )
        ).first()
    if row is None:
        raise web.HTTPNotFound(text="no such activity\n")
    document, republishes_deleted = row
    if republishes_deleted:
        raise web.HTTPGone(text="the contribution of this activity was deleted\n")
    return json_document(document)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/actor", actor)
    app.router.add_get(f"/{{collection:{COLLECTION_PATTERN}}}/{{slug}}", contribution)
    app.router.add_get(f"/{{collection:{COLLECTION_PATTERN}}}/{{slug}}/replies", replies)
    app.router.add_get("/activities/{activity_id}", activity)
