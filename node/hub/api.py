"""The editorial JSON API under ``/api/hub/`` (bearer token, RFC 9457 problems).

Members: list, approve, reject. Structure: read, replace, add/change/remove one
section. Triage (a page at a time, with counts), placements (accept/defer/decline with note and order), feedback
(counts, and the stances with their reasons, newest first, a page at a time), the
draft of the next edition, freezing (``{"confirm": true}``) and publishing editions,
and rebuilding the index.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from node import appkeys
from node.api.auth import TOKEN
from node.api.common import read_json_object, wake_delivery
from node.api.problems import Problem, ProblemError, field_error
from node.hub import edition_store, editorial, feedback, membership, triage
from node.hub.aggregation import FILL_RETRY_SECONDS
from node.hub.editions import EditionError, manifest_document
from node.hub.runtime import HUB
from node.hub.tables import MemberState
from node.routes.responses import json_document

JSON = "application/json"


def _problem(exc: editorial.EditorialError | membership.MembershipError
             | edition_store.EditionStoreError) -> ProblemError:
    return field_error(exc.field, exc.message, status=exc.status)


def _editor(request: web.Request) -> str:
    check = request.get(TOKEN)
    return f"token:{check.name}" if check is not None and check.name else "token"


def _ok(document: Any, status: int = 200) -> web.Response:
    return json_document(document, JSON, status=status, vary_accept=False)


# --- members ---------------------------------------------------------------------------


async def list_members(request: web.Request) -> web.Response:
    state_text = request.query.get("state")
    try:
        state = MemberState(state_text) if state_text else None
    except ValueError:
        raise field_error("state", "must be pending, approved or rejected", status=400) from None
    async with request.app[appkeys.SESSION_MAKER]() as session:
        rows = await membership.list_members(session, state=state)
    return _ok({"items": [row.to_json() for row in rows]})


async def _decide_member(request: web.Request, approve: bool) -> web.Response:
    app = request.app
    now = app[appkeys.CLOCK]()
    try:
        async with app[appkeys.SESSION_MAKER]() as session, session.begin():
            member = await membership.decide(
                session, request.match_info["member"], approved=approve,
                config=app[appkeys.CONFIG], keys=app[appkeys.NODE_KEYS], now=now)
            view = membership.MemberView.of(member)
    except membership.MembershipError as exc:
        raise _problem(exc) from exc
    wake_delivery(app)
    app[HUB].aggregator.wake()
    return _ok(view.to_json())


async def approve_member(request: web.Request) -> web.Response:
    return await _decide_member(request, approve=True)


async def reject_member(request: web.Request) -> web.Response:
    return await _decide_member(request, approve=False)


# --- structure -------------------------------------------------------------------------


async def get_structure(request: web.Request) -> web.Response:
    async with request.app[appkeys.SESSION_MAKER]() as session:
        structure = await editorial.load_structure(session)
    return _ok({"sections": structure.to_json()})


async def put_structure(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    try:
        structure = editorial.read_structure(body.get("sections"))
        async with request.app[appkeys.SESSION_MAKER]() as session, session.begin():
            await editorial.replace_structure(session, structure, now=request.app[appkeys.CLOCK]())
    except editorial.EditorialError as exc:
        raise _problem(exc) from exc
    return _ok({"sections": structure.to_json()})


async def add_section(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    try:
        section = editorial.read_section(body)
        async with request.app[appkeys.SESSION_MAKER]() as session, session.begin():
            structure = await editorial.load_structure(session)
            if structure.get(section.slug) is not None:
                raise editorial.EditorialError("slug", f"{section.slug!r} exists", status=409)
            await editorial.save_section(session, section, now=request.app[appkeys.CLOCK]())
    except editorial.EditorialError as exc:
        raise _problem(exc) from exc
    return _ok(_section_json(section), status=201)


async def change_section(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    slug = request.match_info["slug"]
    try:
        async with request.app[appkeys.SESSION_MAKER]() as session, session.begin():
            current = (await editorial.load_structure(session)).get(slug)
            if current is None:
                raise editorial.EditorialError("slug", f"no section {slug!r}", status=404)
            section = editorial.read_section(body, slug=slug, current=current)
            await editorial.save_section(session, section, now=request.app[appkeys.CLOCK]())
    except editorial.EditorialError as exc:
        raise _problem(exc) from exc
    return _ok(_section_json(section))


async def remove_section(request: web.Request) -> web.Response:
    try:
        async with request.app[appkeys.SESSION_MAKER]() as session, session.begin():
            await editorial.delete_section(session, request.match_info["slug"])
    except editorial.EditorialError as exc:
        raise _problem(exc) from exc
    return web.Response(status=204)


def _section_json(section: Any) -> dict[str, Any]:
    return {"slug": section.slug, "title_de": section.title_de, "title_en": section.title_en,
            "order": section.order, "parent": section.parent, "text": section.text}


# --- triage, placements, feedback ------------------------------------------------------


async def get_triage(request: web.Request) -> web.Response:
    """A page of the contributions waiting for a decision, with their counts."""
    try:
        query = triage.read_query(request.query.get("limit"), request.query.get("offset"),
                                  request.query.get("deferred"))
    except editorial.EditorialError as exc:
        raise _problem(exc) from exc
    async with request.app[appkeys.SESSION_MAKER]() as session:
        found = await triage.triage_page(session, query)
    return _ok(found.to_json())


async def post_placement(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    try:
        placement = editorial.read_placement(body)
        async with request.app[appkeys.SESSION_MAKER]() as session, session.begin():
            view = await editorial.place(session, placement, decided_by=_editor(request),
                                         now=request.app[appkeys.CLOCK]())
    except editorial.EditorialError as exc:
        raise _problem(exc) from exc
    return _ok(view.to_json())


async def get_feedback(request: web.Request) -> web.Response:
    """The counts and a page of the stances with their reasons, newest first."""
    try:
        target = feedback.target_url(request.app[appkeys.CONFIG].base_url,
                                     request.query.get("target"))
        query = feedback.read_query(request.query.get("limit"), request.query.get("offset"),
                                    request.query.getall("position", []))
    except editorial.EditorialError as exc:
        raise _problem(exc) from exc
    async with request.app[appkeys.SESSION_MAKER]() as session:
        found = await feedback.stances_about(session, target, query)
    return _ok(found.to_json())


# --- draft and editions ----------------------------------------------------------------


async def get_draft(request: web.Request) -> web.Response:
    try:
        async with request.app[appkeys.SESSION_MAKER]() as session:
            manifest = await edition_store.draft_preview(session, request.app[appkeys.CONFIG],
                                                         clock=request.app[appkeys.CLOCK])
    except EditionError as exc:
        raise field_error(exc.field, exc.message, status=409) from exc
    return _ok(manifest_document(manifest))


async def list_editions(request: web.Request) -> web.Response:
    async with request.app[appkeys.SESSION_MAKER]() as session:
        stored = await edition_store.list_editions(session)
    return _ok({"items": [s.summary_json() for s in stored]})


async def freeze_edition(request: web.Request) -> web.Response:
    body = await read_json_object(request)
    if body.get("confirm") is not True:
        raise field_error("confirm", "freezing is permanent; send {\"confirm\": true}")
    publish = body.get("publish", False)
    if not isinstance(publish, bool):
        raise field_error("publish", "must be true or false")
    app = request.app
    now = app[appkeys.CLOCK]()
    try:
        async with app[appkeys.SESSION_MAKER]() as session, session.begin():
            stored = await edition_store.freeze_next(session, app[appkeys.CONFIG],
                                                     app[appkeys.NODE_KEYS],
                                                     clock=app[appkeys.CLOCK],
                                                     frozen_by=_editor(request))
            if publish:
                await edition_store.publish_edition(session, stored.number, app[appkeys.CONFIG],
                                                    app[appkeys.NODE_KEYS], now=now)
                stored = await edition_store.get_edition(session, stored.number) or stored
    except edition_store.EditionStoreError as exc:
        raise _problem(exc) from exc
    wake_delivery(app)
    return _ok(stored.summary_json(), status=201)


async def publish_edition(request: web.Request) -> web.Response:
    app = request.app
    text = request.match_info["number"]
    try:
        async with app[appkeys.SESSION_MAKER]() as session, session.begin():
            activity = await edition_store.publish_edition(
                session, int(text), app[appkeys.CONFIG], app[appkeys.NODE_KEYS],
                now=app[appkeys.CLOCK]())
    except edition_store.EditionStoreError as exc:
        raise _problem(exc) from exc
    wake_delivery(app)
    return _ok({"number": int(text), "announcement": activity,
                "alreadyPublished": activity is None})


async def index_state(request: web.Request) -> web.Response:
    """Whether the hub has filled its indexes since its start, and how far a fill is: for
    an operator's script waiting after an upgrade (search and SPARQL answer 503 meanwhile)."""
    aggregator = request.app[HUB].aggregator
    readiness = aggregator.readiness
    return _ok({"caughtUp": aggregator.caught_up.is_set(), "search": readiness.search,
                "sparql": readiness.sparql, "holdsIndex": aggregator.index is not None,
                "documentsRead": readiness.documents_read,
                "documentsExpected": readiness.documents_expected})


async def reindex(request: web.Request) -> web.Response:
    aggregator = request.app[HUB].aggregator
    if aggregator.index is None:
        raise field_error("index", "this process does not hold the index", status=409)
    if not aggregator.caught_up.is_set():
        raise field_error("index", "the hub is still filling its indexes after its start "
                          "(that fill rebuilds what it must); try again when it is done",
                          status=409)
    try:
        report = await aggregator.rebuild()
    except (SQLAlchemyError, OSError) as exc:
        # The index is part rebuilt; the aggregator fills it again (SPARQL answers 503
        # until then). The search keeps what it held.
        raise ProblemError(Problem(503, "unavailable", "Service unavailable",
                                   f"the rebuild stopped ({exc.__class__.__name__}); the hub "
                                   "rebuilds its index again by itself"),
                           {"Retry-After": str(int(FILL_RETRY_SECONDS))}) from exc
    return _ok({"indexed": report.indexed, "skipped": [
        {"uri": s.uri, "field": s.field, "message": s.message} for s in report.skipped]})


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/api/hub/members", list_members)
    router.add_post("/api/hub/members/{member}/approve", approve_member)
    router.add_post("/api/hub/members/{member}/reject", reject_member)
    router.add_get("/api/hub/structure", get_structure)
    router.add_put("/api/hub/structure", put_structure)
    router.add_post("/api/hub/sections", add_section)
    router.add_patch("/api/hub/sections/{slug}", change_section)
    router.add_put("/api/hub/sections/{slug}", change_section)
    router.add_delete("/api/hub/sections/{slug}", remove_section)
    router.add_get("/api/hub/triage", get_triage)
    router.add_post("/api/hub/placements", post_placement)
    router.add_get("/api/hub/feedback", get_feedback)
    router.add_get("/api/hub/draft", get_draft)
    router.add_get("/api/hub/editions", list_editions)
    router.add_post("/api/hub/editions", freeze_edition)
    router.add_post("/api/hub/editions/{number:[0-9]{1,9}}/publish", publish_edition)
    router.add_get("/api/hub/index", index_state)
    router.add_post("/api/hub/reindex", reindex)
