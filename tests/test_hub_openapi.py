"""The OpenAPI description covers every route under /api/, the hub's editorial API
included (on a hub only), and every schema it refers to exists."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from node.api.openapi import openapi, openapi_document
from node.app import create_app
from tests.engine_support import node_config

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


def api_routes(app: web.Application) -> set[tuple[str, str]]:
    """(method, path template) of every route the app registers under /api/."""
    found = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith("/api/") and route.method in METHODS:
            found.add((route.method, path))
    return found


def described(spec: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in spec["paths"].items()
            for method in item if method.upper() in METHODS}


async def served_spec(app: web.Application) -> dict[str, Any]:
    response = await openapi(make_mocked_request("GET", "/api/openapi.json", app=app))
    return json.loads(response.text)


@pytest.mark.parametrize("is_hub", [True, False])
async def test_every_api_route_is_described(tmp_path, is_hub: bool) -> None:
    app = create_app(node_config(tmp_path, "kochbuch", is_hub=is_hub), start_workers=False)
    routes = api_routes(app)
    assert ("POST", "/api/hub/placements") in routes or not is_hub  # the hub API is there
    spec = await served_spec(app)
    assert routes - described(spec) == set()  # nothing registered is left undescribed
    assert described(spec) - routes == set()  # and nothing is described that is not served
    assert any(path.startswith("/api/hub/") for _, path in described(spec)) is is_hub


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def test_every_reference_and_path_parameter_resolves() -> None:
    spec = openapi_document("https://kochbuch.example", hub=True)
    schemas = spec["components"]["schemas"]
    assert {"HubSection", "HubStructure", "HubPlacement", "HubFreeze"} <= set(schemas)
    for ref in refs(spec):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    for path, item in spec["paths"].items():
        named = set(re.findall(r"{(\w+)}", path))
        for method, op in item.items():
            if method == "parameters":
                continue
            params = [*item.get("parameters", []), *op.get("parameters", [])]
            in_path = {p["name"] for p in params if p["in"] == "path"}
            assert in_path == named, (method, path)


def test_the_freeze_body_demands_confirmation() -> None:
    freeze = openapi_document("https://kochbuch.example", hub=True)["components"]["schemas"]["HubFreeze"]
    assert freeze["required"] == ["confirm"] and freeze["properties"]["confirm"] == {
        "const": True, "description": "freezing is permanent"}
    placement = openapi_document("https://x.example", hub=True)["components"]["schemas"]["HubPlacement"]
    assert placement["properties"]["decision"]["enum"] == ["accept", "defer", "decline"]


def test_the_feedback_answer_is_described_as_it_is_served() -> None:
    """Its parameters with their bounds, and the answer's and a stance's fields exactly
    as ``node.hub.api`` serves them (``FeedbackPage.to_json``)."""
    from datetime import UTC, datetime

    from node.hub.feedback import (
        MAX_LIMIT,
        FeedbackCounts,
        FeedbackPage,
        FeedbackQuery,
        StanceEntry,
    )

    spec = openapi_document("https://kochbuch.example", hub=True)
    op = spec["paths"]["/api/hub/feedback"]["get"]
    params = {p["name"]: p for p in op["parameters"]}
    assert params["target"]["required"] and params["limit"]["schema"]["maximum"] == MAX_LIMIT
    assert params["position"]["schema"]["items"]["enum"] == ["disagree", "partly", "agree"]
    assert "400" in op["responses"] and "422" not in op["responses"]
    assert op["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/HubFeedback"}
    entry = StanceEntry("https://d.example/s/1", "https://d.example/actor", "Düren", None,
                        "partly", "weil", datetime(2026, 11, 1, tzinfo=UTC), None,
                        "https://d.example/s/1")
    served = FeedbackPage("https://d.example/p", FeedbackCounts(partly=2),
                          FeedbackQuery(limit=1), 2, (entry,)).to_json()
    schemas = spec["components"]["schemas"]
    assert set(served) == set(schemas["HubFeedback"]["properties"]) == set(
        schemas["HubFeedback"]["required"])
    assert set(served["stances"][0]) == set(schemas["HubStance"]["properties"])
    assert served["next"] == ("/api/hub/feedback?target=https%3A%2F%2Fd.example%2Fp"
                              "&limit=1&offset=1")


def test_the_triage_page_is_described_as_served() -> None:
    """Its bounds, and the page's and an item's fields exactly as ``TriagePage.to_json``
    serves them: counts and a link to the stances, no list of stance addresses."""
    from datetime import UTC, datetime

    from node.hub.feedback import FeedbackCounts
    from node.hub.triage import MAX_LIMIT, TriageItem, TriagePage, TriageQuery

    spec = openapi_document("https://kochbuch.example", hub=True)
    op = spec["paths"]["/api/hub/triage"]["get"]
    params = {p["name"]: p for p in op["parameters"]}
    assert params["limit"]["schema"]["maximum"] == MAX_LIMIT and "offset" in params
    assert "400" in op["responses"] and "422" not in op["responses"]
    item = TriageItem("https://d.example/p", "Practice", "P", "https://d.example/actor",
                      "Düren", ("e-akte",), datetime(2026, 11, 1, tzinfo=UTC), None, "",
                      FeedbackCounts(disagree=1))
    served = TriagePage(TriageQuery(limit=1, offset=1), 3, (item,)).to_json()
    schema = spec["components"]["schemas"]["HubTriage"]
    assert set(served) == set(schema["properties"]) == set(schema["required"])
    item_schema = schema["properties"]["items"]["items"]
    assert set(served["items"][0]) == set(item_schema["properties"])
    assert set(served["items"][0]["feedback"]) == set(
        item_schema["properties"]["feedback"]["properties"])
    assert (served["previous"], served["next"]) == ("/api/hub/triage?limit=1&offset=0",
                                                    "/api/hub/triage?limit=1&offset=2")
