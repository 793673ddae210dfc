"""The OpenAPI 3.1 description of the authoring API, served at ``/api/openapi.json``.

On a hub it also describes the editorial API under ``/api/hub/`` (``node.hub.openapi``);
a plain node does not serve those routes, so its description leaves them out.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from node import appkeys
from node.contribution_input import POSITIONS, PRACTICE_STATUSES
from node.storage.models import ContributionKind

_TEXT = {"type": "string"}
_TEXT_LIST = {"type": "array", "items": {"type": "string"}}


def _contribution_input_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["kind", "slug", "title"],
        "additionalProperties": False,
        "properties": {
            "kind": {"enum": [kind.value for kind in ContributionKind]},
            "slug": {"type": "string", "pattern": "^[a-z0-9](?:[a-z0-9-]{0,98}[a-z0-9])?$"},
            "title": {"type": "string", "maxLength": 300},
            "summary": _TEXT,
            "body": {"type": "string", "description": "Markdown (CommonMark); HTML is sanitised"},
            "topics": {**_TEXT_LIST, "description": "topic slugs of vocab/topics.ttl"},
            "status": {"enum": list(PRACTICE_STATUSES), "description": "practices only"},
            "steps": _TEXT_LIST,
            "effort": _TEXT,
            "duration": {"type": "string", "description": "ISO 8601 duration, e.g. P6M"},
            "lessons": _TEXT,
            "legal_basis": {**_TEXT_LIST, "description": "URLs of the norms"},
            "related_service": {
                "type": "string",
                "pattern": "^[0-9]{14}$",
                "description": "LeiKa key",
            },
            "about": {
                "type": "string",
                "format": "uri",
                "description": "target of a stance or comment",
            },
            "position": {"enum": list(POSITIONS), "description": "stances only"},
            "language": {"type": "string", "default": "de"},
        },
    }


def _problem_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "RFC 9457 problem details; `field` names the first wrong field",
        "properties": {
            "type": _TEXT, "title": _TEXT, "status": {"type": "integer"}, "detail": _TEXT,
            "instance": _TEXT, "field": _TEXT,
            "errors": {
                "type": "array",
                "items": {"type": "object", "properties": {"field": _TEXT, "message": _TEXT}},
            },
        },
    }  # fmt: skip


def operation(summary: str, *, body: str | None = None, ok: str = "200") -> dict[str, Any]:
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    described: dict[str, Any] = {
        "summary": summary,
        "responses": {
            ok: {"description": "success"} if ok == "204"
            else {"description": "success", "content": {"application/json": {}}},
            "401": {"description": "no or unknown bearer token", "content": problem},
            "403": {"description": "revoked token", "content": problem},
            "422": {"description": "invalid field", "content": problem},
        },
    }
    if body is not None:
        schema = {"$ref": f"#/components/schemas/{body}"}
        described["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema}},
        }
    return described


def _slug_param() -> list[dict[str, Any]]:
    return [{"name": "slug", "in": "path", "required": True, "schema": {"type": "string"}}]


def openapi_document(base_url: str, *, hub: bool = False) -> dict[str, Any]:
    document = _node_document(base_url)
    if hub:
        from node.hub.openapi import hub_paths, hub_schemas  # it builds on ``operation``

        document["info"]["title"] = "Praxisnetz hub authoring and editorial API"
        document["paths"].update(hub_paths())
        document["components"]["schemas"].update(hub_schemas())
    return document


def _node_document(base_url: str) -> dict[str, Any]:
    target = {"type": "object", "required": ["target"], "properties": {"target": _TEXT}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Praxisnetz node authoring API", "version": "0.1.0"},
        "servers": [{"url": base_url}],
        "security": [{"bearer": []}],
        "paths": {
            "/api/contributions": {
                "get": operation("List the node's contributions (?kind=, ?deleted=true)"),
                "post": operation("Create a contribution", body="ContributionInput", ok="201"),
            },
            "/api/contributions/{slug}": {
                "parameters": _slug_param(),
                "get": operation(
                    "Read a contribution with its source, signed document and delivery counts"
                ),
                "put": operation("Replace a contribution (sends an Update)", body="ContributionInput"),
                "delete": operation("Delete a contribution (sends a Delete, serves a Tombstone)"),
            },
            "/api/contributions/{slug}/deliveries": {
                "parameters": _slug_param(),
                "get": operation("Delivery state per recipient inbox and per host"),
            },
            "/api/following": {
                "get": operation("Who this node follows"),
                "post": operation("Follow an actor URL or handle", body="FollowTarget", ok="202"),
                "delete": operation("Unfollow", body="FollowTarget"),
            },
            "/api/followers": {"get": operation("Who follows this node")},
            "/api/timeline": {"get": operation("Contributions of followed nodes, newest first")},
            "/api/status": {"get": operation("Followers, following, queue depths, failing hosts")},
            "/api/openapi.json": {"get": {
                "summary": "This description (public, no token)", "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1",
                                      "content": {"application/json": {}}}},
            }},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "ContributionInput": _contribution_input_schema(),
                "FollowTarget": target,
                "Problem": _problem_schema(),
            },
        },
    }


async def openapi(request: web.Request) -> web.Response:
    config = request.app[appkeys.CONFIG]
    return web.json_response(openapi_document(config.base_url, hub=config.is_hub))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/openapi.json", openapi)
