"""``/api/contributions``: create, read, update, delete and list the node's contributions."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from node import appkeys
from node.api.common import author_for, read_json_object, wake_delivery
from node.api.problems import field_error, invalid_fields
from node.authoring import (
    AuthoringError,
    AuthoringResult,
    create_contribution,
    delete_contribution,
    delivery_summary,
    find_contribution,
    update_contribution,
)
from node.contribution_input import (
    ContributionInput,
    ContributionInputError,
    parse_contribution_input,
)
from node.storage.models import Activity, Contribution, Delivery

LIST_LIMIT = 500


def _summary(row: Contribution) -> dict[str, Any]:
    return {
        "slug": row.slug,
        "kind": row.kind,
        "title": row.title,
        "uri": row.uri,
        "published": row.published.isoformat(),
        "updated": row.updated.isoformat(),
        "deleted": row.deleted_at is not None,
    }


def _result(result: AuthoringResult) -> dict[str, Any]:
    return {
        "outcome": result.outcome.value,
        "slug": result.slug,
        "uri": result.uri,
        "activity": result.activity_uri,
        "deliveries": result.deliveries,
    }


def _parse(request: web.Request, raw: dict[str, Any], slug: str | None = None) -> ContributionInput:
    if slug is not None:
        raw = {**raw, "slug": raw.get("slug", slug)}
    try:
        return parse_contribution_input(raw, known_topics=author_for(request.app).known_topics)
    except ContributionInputError as exc:
        raise invalid_fields(exc.problems) from exc


async def list_contributions(request: web.Request) -> web.Response:
    include_deleted = request.query.get("deleted") == "true"
    query = select(Contribution).order_by(Contribution.updated.desc(), Contribution.id.desc())
    if not include_deleted:
        query = query.where(Contribution.deleted_at.is_(None))
    kind = request.query.get("kind")
    if kind:
        query = query.where(Contribution.kind == kind)
    async with request.app[appkeys.SESSION_MAKER]() as session:
        rows = await session.scalars(query.limit(LIST_LIMIT))
        items = [_summary(row) for row in rows]
    return web.json_response({"items": items, "count": len(items)})


async def _write(request: web.Request, operation: Any, *args: Any) -> AuthoringResult:
    """Run one authoring operation in its own transaction; errors become problems."""
    author = author_for(request.app)
    try:
        async with request.app[appkeys.SESSION_MAKER].begin() as session:
            result = await operation(session, author, *args)
    except ContributionInputError as exc:
        raise invalid_fields(exc.problems) from exc
    except AuthoringError as exc:
        raise field_error(exc.field, exc.message, status=exc.status) from exc
    except IntegrityError as exc:
        # two requests raced for one slug; the unique constraint let exactly one win
        raise field_error("slug", "was just used by another request", status=409) from exc
    if result.deliveries:
        wake_delivery(request.app)
    return result


async def create(request: web.Request) -> web.Response:
    contribution = _parse(request, await read_json_object(request))
    result = await _write(request, create_contribution, contribution)
    return web.json_response(
        _result(result), status=201, headers={"Location": f"/api/contributions/{result.slug}"}
    )


async def replace(request: web.Request) -> web.Response:
    slug = request.match_info["slug"]
    contribution = _parse(request, await read_json_object(request), slug)
    result = await _write(request, update_contribution, slug, contribution)
    return web.json_response(_result(result))


async def delete(request: web.Request) -> web.Response:
    result = await _write(request, delete_contribution, request.match_info["slug"])
    return web.json_response(_result(result))


async def _existing(request: web.Request) -> Contribution:
    async with request.app[appkeys.SESSION_MAKER]() as session:
        row = await find_contribution(session, request.match_info["slug"])
    if row is None:
        raise field_error("slug", "no such contribution", status=404)
    return row


async def read(request: web.Request) -> web.Response:
    row = await _existing(request)
    async with request.app[appkeys.SESSION_MAKER]() as session:
        deliveries = await delivery_summary(session, row.uri)
    body = {
        **_summary(row),
        "source": row.source,
        "document": row.document,
        "deliveries": deliveries,
    }
    return web.json_response(body)


async def deliveries(request: web.Request) -> web.Response:
    """Delivery state per recipient inbox for every activity about the contribution."""
    row = await _existing(request)
    async with request.app[appkeys.SESSION_MAKER]() as session:
        rows = await session.execute(
            select(
                Activity.uri, Activity.type, Delivery.inbox_url, Delivery.host, Delivery.state,
                Delivery.attempts, Delivery.last_status, Delivery.last_error, Delivery.next_attempt_at,
            )
            .join(Activity, Activity.id == Delivery.activity_id)
            .where(Activity.object_uri == row.uri)
            .order_by(Delivery.id)
        )  # fmt: skip
        items = [
            {
                "activity": uri, "type": kind, "inbox": inbox, "host": host, "state": state,
                "attempts": attempts, "last_status": status, "last_error": error,
                "next_attempt_at": next_at.isoformat() if next_at else None,
            }
            for uri, kind, inbox, host, state, attempts, status, error, next_at in rows
        ]  # fmt: skip
        by_host = await session.execute(
            select(Delivery.host, Delivery.state, func.count())
            .join(Activity, Activity.id == Delivery.activity_id)
            .where(Activity.object_uri == row.uri)
            .group_by(Delivery.host, Delivery.state)
        )
        hosts: dict[str, dict[str, int]] = {}
        for host, state, count in by_host:
            hosts.setdefault(host, {})[state] = count
    return web.json_response({"uri": row.uri, "deliveries": items, "hosts": hosts})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/contributions", list_contributions)
    app.router.add_post("/api/contributions", create)
    app.router.add_get("/api/contributions/{slug}", read)
    app.router.add_put("/api/contributions/{slug}", replace)
    app.router.add_delete("/api/contributions/{slug}", delete)
    app.router.add_get("/api/contributions/{slug}/deliveries", deliveries)
