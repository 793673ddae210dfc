"""Paged ``OrderedCollection``s: outbox, followers, following (newest first).

Pages are addressed by a cursor (``?before=ROW_ID``), not by page numbers, so new
items never shift a page a client is walking through; ``next`` links are given,
clients should follow them rather than build URLs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web
from sqlalchemy import ColumnElement, Row, Select, and_, func, not_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from node import appkeys
from node.identity import AS_CONTEXT
from node.routes.responses import json_document
from node.storage.models import (
    Activity,
    Contribution,
    Follower,
    FollowerState,
    Following,
    FollowingState,
)

PAGE_SIZE = 20
# Activities that make up the public outbox; follow handshakes are not published.
OUTBOX_TYPES = ("Create", "Update", "Delete", "Announce", "Like")
CONTENT_TYPES = ("Create", "Update")


def collection_document(url: str, total: int) -> dict[str, Any]:
    return {
        "@context": AS_CONTEXT,
        "id": url,
        "type": "OrderedCollection",
        "totalItems": total,
        "first": f"{url}?page=true",
    }


def page_document(
    url: str, page_url: str, items: Sequence[Any], next_cursor: int | None
) -> dict[str, Any]:
    page: dict[str, Any] = {
        "@context": AS_CONTEXT,
        "id": page_url,
        "type": "OrderedCollectionPage",
        "partOf": url,
        "orderedItems": list(items),
    }
    if next_cursor is not None:
        page["next"] = f"{url}?before={next_cursor}"
    return page


MAX_CURSOR_DIGITS = 18  # below 2**63: SQLite and PostgreSQL bigint take it


def _cursor(request: web.Request) -> int | None:
    before = request.query.get("before")
    if before is None:
        return None
    # ASCII digits only ("²".isdigit() is true) and within a database integer
    if not (before.isascii() and before.isdigit()) or len(before) > MAX_CURSOR_DIGITS:
        raise web.HTTPBadRequest(text="before: must be a row number from a next link\n")
    return int(before)


async def _paged(
    request: web.Request,
    url: str,
    query: Select[Any],
    id_column: InstrumentedAttribute[int],
    to_item: Callable[[Row[Any]], Any],
) -> web.Response:
    """The collection summary, or one page of it when ``page`` or ``before`` is given."""
    async with request.app[appkeys.SESSION_MAKER]() as session:
        if "page" not in request.query and "before" not in request.query:
            total = await _count(session, query)
            return json_document(collection_document(url, total))
        before = _cursor(request)
        if before is not None:
            query = query.where(id_column < before)
        rows = list(await session.execute(query.order_by(id_column.desc()).limit(PAGE_SIZE + 1)))
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    next_cursor = rows[-1][0] if more else None
    page_url = f"{url}?before={before}" if before is not None else f"{url}?page=true"
    return json_document(page_document(url, page_url, [to_item(row) for row in rows], next_cursor))


async def _count(session: AsyncSession, query: Select[Any]) -> int:
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    return total or 0


def deleted_content_activities() -> ColumnElement[bool]:
    """Create/Update activities of contributions deleted since: they would republish them."""
    deleted = select(Contribution.uri).where(Contribution.deleted_at.is_not(None))
    return and_(Activity.type.in_(CONTENT_TYPES), Activity.object_uri.in_(deleted))


async def outbox(request: web.Request) -> web.Response:
    config = request.app[appkeys.CONFIG]
    query = select(Activity.id, Activity.document).where(
        Activity.is_local.is_(True),
        Activity.type.in_(OUTBOX_TYPES),
        not_(deleted_content_activities()),
    )
    return await _paged(request, config.outbox_url, query, Activity.id, lambda row: row[1])


async def followers(request: web.Request) -> web.Response:
    config = request.app[appkeys.CONFIG]
    query = select(Follower.id, Follower.actor_uri).where(
        Follower.state == FollowerState.ACCEPTED.value
    )
    return await _paged(request, config.followers_url, query, Follower.id, lambda row: row[1])


async def following(request: web.Request) -> web.Response:
    config = request.app[appkeys.CONFIG]
    query = select(Following.id, Following.target_uri).where(
        Following.state == FollowingState.ACCEPTED.value
    )
    return await _paged(request, config.following_url, query, Following.id, lambda row: row[1])


def add_routes(app: web.Application) -> None:
    app.router.add_get("/actor/outbox", outbox)
    app.router.add_get("/actor/followers", followers)
    app.router.add_get("/actor/following", following)
