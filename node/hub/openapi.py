"""The OpenAPI description of the hub's editorial API (``/api/hub/…``, ``node.hub.api``).

``node.api.openapi`` adds these paths and schemas to ``/api/openapi.json`` when the
node is a hub; a test checks that every route under ``/api/`` is described.
"""

from __future__ import annotations

from typing import Any

from node.api.openapi import operation
from node.hub import triage
from node.hub.contribution import STANCE_POSITIONS
from node.hub.feedback import DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET
from node.hub.tables import Decision, MemberState

_TEXT = {"type": "string"}
_SLUG = {"type": "string", "pattern": "^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$"}
_PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def _path_param(name: str, description: str, schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": name, "in": "path", "required": True, "description": description,
             "schema": schema}]


def _query_param(name: str, description: str, schema: dict[str, Any], *,
                 required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": schema}


def _with_query(op: dict[str, Any], *params: dict[str, Any]) -> dict[str, Any]:
    return {**op, "parameters": list(params)}


def _section_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "a chapter (no parent) or a section; on PATCH/PUT missing fields keep "
                       "their value and the slug comes from the path",
        "properties": {
            "slug": _SLUG, "title_de": _TEXT, "title_en": _TEXT,
            "order": {"type": "integer"},
            "parent": {"type": ["string", "null"], "description": "the parent's slug"},
            "text": {"type": "string", "description": "editorial text (Markdown)"},
        },
    }


def _placement_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["contribution"],
        "properties": {
            "contribution": {"type": "string", "format": "uri"},
            "decision": {"enum": [decision.value for decision in Decision], "default": "accept"},
            "sections": {"type": "array", "items": _SLUG,
                         "description": "needed (at least one) when accepting"},
            "note": {"type": "string", "description": "the editor's note"},
            "order": {"type": ["integer", "null"], "description": "position within the sections"},
        },
    }


def _feedback_schemas() -> dict[str, Any]:
    count = {"type": "integer", "minimum": 0}
    time = {"type": ["string", "null"], "format": "date-time"}
    return {
        "HubStance": {
            "type": "object",
            "required": ["id", "actor", "municipality", "position", "reason", "url"],
            "properties": {
                "id": {"type": "string", "format": "uri"},
                "actor": {"type": "string", "format": "uri",
                          "description": "the municipality that took the stance"},
                "municipality": {"type": "string",
                                 "description": "the member's name; a non-member's host"},
                "ags": {"type": ["string", "null"], "description": "the member's AGS"},
                "position": {"enum": list(STANCE_POSITIONS)},
                "reason": {"type": "string",
                           "description": "plain text (escape it to show it); empty if none"},
                "published": time,
                "updated": {**time, "description": "the current version's time"},
                "url": {"type": "string", "format": "uri",
                        "description": "where the stance is read (http(s) only)"},
            },
        },
        "HubFeedback": {
            "type": "object",
            "required": ["target", "agree", "disagree", "partly", "comments", "total",
                         "limit", "offset", "next", "stances"],
            "properties": {
                "target": {"type": "string", "format": "uri"},
                "agree": count, "disagree": count, "partly": count, "comments": count,
                "total": {**count, "description": "stances in the asked positions, all pages"},
                "limit": {"type": "integer"}, "offset": {"type": "integer"},
                "next": {"type": ["string", "null"],
                         "description": "the next page's path and query; null on the last"},
                "stances": {"type": "array", "description": "newest first (updated, else "
                            "published); deleted ones are gone, updated ones current",
                            "items": {"$ref": "#/components/schemas/HubStance"}},
            },
        },
    }


def _json_operation(op: dict[str, Any], schema_name: str) -> dict[str, Any]:
    """An operation that reads no body: a bad query parameter is a 400, not a 422."""
    responses = op["responses"]
    problem = responses.pop("422")
    schema = {"$ref": f"#/components/schemas/{schema_name}"}
    responses["200"] = {**responses["200"], "content": {"application/json": {"schema": schema}}}
    responses["400"] = {**problem, "description": "a bad query parameter (named in field)"}
    return op


def _feedback_operation() -> dict[str, Any]:
    return _json_operation(_with_query(
        operation("Stance and comment counts about a contribution or a section, and the "
                  "stances with their reasons, newest first, a page at a time"),
        _query_param("target", "a contribution URL or a section slug", _TEXT, required=True),
        _query_param("limit", "stances per page", {"type": "integer", "minimum": 1,
                                                   "maximum": MAX_LIMIT,
                                                   "default": DEFAULT_LIMIT}),
        _query_param("offset", "stances to skip", {"type": "integer", "minimum": 0,
                                                   "maximum": MAX_OFFSET, "default": 0}),
        {**_query_param("position", "only these positions (repeat it; default all)",
                        {"type": "array", "items": {"enum": list(STANCE_POSITIONS)}}),
         "style": "form", "explode": True}), "HubFeedback")


def _triage_operation() -> dict[str, Any]:
    return _json_operation(_with_query(
        operation("Contributions not yet decided, oldest first, a page at a time, with "
                  "stance and comment counts and a link to their stances"),
        _query_param("deferred", "include deferred ones (default true)", {"type": "boolean"}),
        _query_param("limit", "contributions per page", {
            "type": "integer", "minimum": 1, "maximum": triage.MAX_LIMIT,
            "default": triage.DEFAULT_LIMIT}),
        _query_param("offset", "contributions to skip", {"type": "integer", "minimum": 0,
                                                         "maximum": MAX_OFFSET, "default": 0})),
        "HubTriage")


def _triage_schemas() -> dict[str, Any]:
    count = {"type": "integer", "minimum": 0}
    page_link = {"type": ["string", "null"],
                 "description": "that page's path and query; null where there is none"}
    feedback = {
        "type": "object", "required": ["agree", "disagree", "partly", "comments", "stances"],
        "properties": {"agree": count, "disagree": count, "partly": count, "comments": count,
                       "stances": {"type": "string", "description": "the /api/hub/feedback "
                                   "path that pages this contribution's stances"}}}
    item = {
        "type": "object",
        "required": ["uri", "kind", "title", "author", "member", "topics", "received",
                     "decision", "note", "feedback"],
        "properties": {
            "uri": {"type": "string", "format": "uri"}, "kind": {"type": ["string", "null"]},
            "title": _TEXT, "author": {"type": "string", "format": "uri"},
            "member": {"type": "string", "description": "the member's name"},
            "topics": {"type": "array", "items": _SLUG},
            "received": {"type": "string", "format": "date-time"},
            "decision": {"enum": [None, Decision.DEFER.value]}, "note": _TEXT,
            "feedback": feedback}}
    return {"HubTriage": {
        "type": "object",
        "required": ["total", "limit", "offset", "next", "previous", "items"],
        "properties": {
            "total": {**count, "description": "contributions waiting, all pages"},
            "limit": {"type": "integer"}, "offset": {"type": "integer"},
            "next": page_link, "previous": page_link,
            "items": {"type": "array", "items": item}}}}


def hub_schemas() -> dict[str, Any]:
    """The request bodies of the editorial API, by schema name."""
    return {
        "HubSection": _section_schema(),
        "HubStructure": {
            "type": "object", "required": ["sections"],
            "properties": {"sections": {"type": "array",
                                        "items": {"$ref": "#/components/schemas/HubSection"}}},
        },
        "HubPlacement": _placement_schema(),
        "HubFreeze": {
            "type": "object", "required": ["confirm"],
            "properties": {"confirm": {"const": True, "description": "freezing is permanent"},
                           "publish": {"type": "boolean", "default": False}},
        },
        **_feedback_schemas(),
        **_triage_schemas(),
    }


def hub_paths() -> dict[str, Any]:
    """The ``/api/hub/…`` paths, as ``node.hub.api.add_routes`` registers them."""
    member = _path_param("member", "the member's id or actor URL", _TEXT)
    slug = _path_param("slug", "a chapter's or section's slug", _SLUG)
    number = _path_param("number", "the edition number", {"type": "integer", "minimum": 1})
    return {
        "/api/hub/members": {"get": _with_query(
            operation("Members of the hub with name, kind, state and AGS"),
            _query_param("state", "only members in this state",
                         {"enum": [state.value for state in MemberState]}))},
        "/api/hub/members/{member}/approve": {
            "parameters": member,
            "post": operation("Approve an applicant: Accept, follow back, backfill")},
        "/api/hub/members/{member}/reject": {
            "parameters": member, "post": operation("Refuse an applicant or drop a member")},
        "/api/hub/structure": {
            "get": operation("The whole handbook structure"),
            "put": operation("Replace the whole handbook structure", body="HubStructure")},
        "/api/hub/sections": {
            "post": operation("Add a chapter or section", body="HubSection", ok="201")},
        "/api/hub/sections/{slug}": {
            "parameters": slug,
            "patch": operation("Change a chapter or section", body="HubSection"),
            "put": operation("Change a chapter or section", body="HubSection"),
            "delete": operation("Remove a chapter or section", ok="204")},
        "/api/hub/triage": {"get": _triage_operation()},
        "/api/hub/placements": {"post": operation(
            "Accept (into sections), defer or decline a contribution", body="HubPlacement")},
        "/api/hub/feedback": {"get": _feedback_operation()},
        "/api/hub/draft": {"get": operation("The next edition as it would be frozen now")},
        "/api/hub/editions": {
            "get": operation("Frozen editions"),
            "post": operation("Freeze the next edition (and publish it)", body="HubFreeze",
                              ok="201")},
        "/api/hub/editions/{number}/publish": {
            "parameters": number,
            "post": operation("Announce an edition to the hub's followers")},
        "/api/hub/index": {"get": operation(
            "Whether the hub has filled its search and RDF index since its start "
            "(caughtUp, search, sparql, holdsIndex) and a fill's progress "
            "(documentsRead, documentsExpected)")},
        "/api/hub/reindex": {"post": _reindex_operation()},
    }


def _reindex_operation() -> dict[str, Any]:
    described = operation("Rebuild the RDF and search indexes from SQL")
    described["responses"]["409"] = {
        "description": "this process does not hold the index, or is still filling it after "
                       "its start", "content": _PROBLEM}
    described["responses"]["503"] = {
        "description": "the database failed during the rebuild; the hub rebuilds the index "
                       "again by itself (Retry-After)", "content": _PROBLEM}
    return described
