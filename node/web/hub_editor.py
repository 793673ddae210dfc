"""The hub editors' screens (signed-in staff of the hub): triage (a page at a time)
and placing a contribution (both with the reasons of its disagreeing and partly
agreeing stances), the section editor, the edition preview with its changelog, freezing with a confirmation
step, and membership approvals.

Every route is ``web.staff.hub.*``: the session middleware sends signed-out browsers to
sign in and refuses any POST without the CSRF token. Input is read by the editorial
module's own readers, so the forms refuse exactly what the JSON API refuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node import appkeys
from node.api.common import wake_delivery
from node.hub import edition_store, editorial, feedback, membership, triage
from node.hub.changelog import changelog, render_html
from node.hub.runtime import HUB
from node.hub.structure import Section
from node.hub.tables import Decision, HubDecision, HubPlacement, MemberState
from node.storage.models import RemoteObject
from node.web.hub_public import sections_of
from node.web.render import language_of, page
from node.web.session import FORM, SESSION

CONFIRM_FIELD = "confirm"
CONFIRM_VALUE = "freeze"
NOTICES = ("placed", "saved", "approved", "rejected")
OBJECTIONS = ("disagree", "partly")  # the stances whose reasons an editor weighs in triage
LONG_REASON = 280  # characters; a longer reason is collapsed to its beginning
PREVIEW_LENGTH = 160
SHOWN_REASONS = 3  # per contribution; the rest behind "n more"


def _field(request: web.Request, name: str) -> str:
    value = request[FORM].get(name, "")
    return value if isinstance(value, str) else ""


def _editor_name(request: web.Request) -> str:
    return f"web:{request[SESSION].username}"


def _optional_int(text: str, field: str) -> int | None:
    if not text.strip():
        return None
    try:
        return int(text.strip())
    except ValueError:
        raise editorial.EditorialError(field, "must be an integer") from None


# --- triage and placing ----------------------------------------------------------------


@dataclass(frozen=True)
class TriageReason:
    """An objection (disagree or partly) with its reason, as the triage table shows it."""

    position: str
    municipality: str
    link: str  # http(s) only: stance_reason_of keeps no other url, ids are fetched ones
    text: str  # escaped by the template
    preview: str | None  # the beginning of a long reason, shown while it is collapsed


def _preview(text: str) -> str | None:
    if len(text) <= LONG_REASON:
        return None
    cut = text[:PREVIEW_LENGTH]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip(" ,.;:") + " …"


async def _objections(session: AsyncSession, uris: list[str],
                      ) -> dict[str, tuple[TriageReason, ...]]:
    """Each contribution's disagreeing and partly agreeing stances that give a reason:
    only the stances of the given (shown) contributions are loaded."""
    picked = await feedback.reasons_about(session, uris, OBJECTIONS)
    names = await feedback.municipality_names(
        session, {reason.author for reasons in picked.values() for reason in reasons})
    return {uri: tuple(TriageReason(r.position, names[r.author], r.link, r.reason,
                                    _preview(r.reason)) for r in reasons)
            for uri, reasons in picked.items()}


@dataclass(frozen=True)
class PageLinks:
    """Where the triage table's neighbouring pages are, and which rows this one shows."""

    first: int
    last: int
    total: int
    previous: str | None
    next: str | None

    @classmethod
    def of(cls, found: triage.TriagePage) -> PageLinks:
        query = found.query
        limit = "" if query.limit == triage.DEFAULT_LIMIT else f"&limit={query.limit}"

        def link(offset: int | None) -> str | None:
            return None if offset is None else f"/hub/editor?offset={offset}{limit}"

        return cls(query.offset + 1, query.offset + len(found.items), found.total,
                   link(found.previous_offset()), link(found.next_offset()))


async def triage_page(request: web.Request) -> web.Response:
    """One page of the contributions waiting, with the objections' reasons beside each."""
    try:
        query = triage.read_query(request.query.get("limit"), request.query.get("offset"))
    except editorial.EditorialError as exc:
        return page(request, "hub_triage.html.j2", {"items": (), "problem": exc, "pages": None,
                                                       "done": ""}, status=400)
    async with request.app[appkeys.SESSION_MAKER]() as session:
        found = await triage.triage_page(session, query)
        objections = await _objections(session, [item.uri for item in found.items])
    done = request.query.get("done", "")
    return page(request, "hub_triage.html.j2", {
        "items": found.items, "objections": objections, "shown_reasons": SHOWN_REASONS,
        "max_reasons": feedback.MAX_REASONS,
        "pages": PageLinks.of(found), "problem": None, "done": done if done in NOTICES else ""})


async def _placement_form(request: web.Request, values: dict[str, Any],
                          problem: editorial.EditorialError | None = None) -> web.Response:
    language = language_of(request).value
    async with request.app[appkeys.SESSION_MAKER]() as session:
        structure = await editorial.load_structure(session)
        item = await triage.waiting_item(session, values["contribution"])
        objections = await _objections(session, [item.uri] if item else [])
    sections = [(s.slug, s.title(language), s.parent is not None)
                for s in structure.reading_order()]
    return page(request, "hub_place.html.j2", {
        "values": values, "sections": sections, "item": item, "problem": problem,
        "reasons": objections.get(values["contribution"], ()), "shown_reasons": SHOWN_REASONS,
        "max_reasons": feedback.MAX_REASONS},
        status=problem.status if problem else 200)


async def place_form(request: web.Request) -> web.Response:
    values = {"contribution": request.query.get("contribution", ""), "decision": "accept",
              "sections": [], "note": "", "order": ""}
    return await _placement_form(request, values)


async def place(request: web.Request) -> web.Response:
    form = request[FORM]
    values = {"contribution": _field(request, "contribution"),
              "decision": _field(request, "decision") or "accept",
              "sections": [s for s in form.getall("sections", []) if isinstance(s, str)],
              "note": _field(request, "note"), "order": _field(request, "order")}
    try:
        placement = editorial.read_placement({**values,
                                              "order": _optional_int(values["order"], "order")})
        async with request.app[appkeys.SESSION_MAKER]() as session, session.begin():
            await editorial.place(session, placement, decided_by=_editor_name(request),
                                  now=request.app[appkeys.CLOCK]())
    except editorial.EditorialError as exc:
        return await _placement_form(request, values, exc)
    raise web.HTTPSeeOther("/hub/editor?done=placed")


# --- sections --------------------------------------------------------------------------


async def sections(request: web.Request) -> web.Response:
    async with request.app[appkeys.SESSION_MAKER]() as session:
        structure = await editorial.load_structure(session)
    done = request.query.get("done", "")
    return page(request, "hub_sections_list.html.j2", {
        "sections": structure.reading_order(), "done": done if done in NOTICES else ""})


async def _section(request: web.Request) -> Section:
    async with request.app[appkeys.SESSION_MAKER]() as session:
        found = (await editorial.load_structure(session)).get(request.match_info["slug"])
    if found is None:
        raise web.HTTPNotFound(text="slug: no such section\n")
    return found


@dataclass(frozen=True)
class PlacedContribution:
    uri: str
    title: str
    order: int


async def placed_in(request: web.Request, slug: str) -> list[PlacedContribution]:
    """The accepted contributions of one section, in the editors' order."""
    async with request.app[appkeys.SESSION_MAKER]() as session:
        rows = await session.execute(
            select(HubPlacement.contribution_uri, HubPlacement.order, RemoteObject.document)
            .join(HubDecision, HubDecision.contribution_uri == HubPlacement.contribution_uri)
            .join(RemoteObject, RemoteObject.uri == HubPlacement.contribution_uri)
            .where(HubPlacement.section_slug == slug,
                   HubDecision.decision == Decision.ACCEPT.value)
            .order_by(HubPlacement.order, HubPlacement.id))
        return [PlacedContribution(uri, str((document or {}).get("name") or uri), order)
                for uri, order, document in rows]


async def _section_page(request: web.Request, section: Section, values: dict[str, str],
                        problem: editorial.EditorialError | None = None) -> web.Response:
    return page(request, "hub_section_edit.html.j2", {
        "section": section, "values": values, "problem": problem,
        "placed": await placed_in(request, section.slug)},
        status=problem.status if problem else 200)


async def section_form(request: web.Request) -> web.Response:
    found = await _section(request)
    values = {"title_de": found.title_de, "title_en": found.title_en,
              "order": str(found.order), "text": found.text}
    return await _section_page(request, found, values)


async def save_section(request: web.Request) -> web.Response:
    current = await _section(request)
    values = {name: _field(request, name) for name in ("title_de", "title_en", "order", "text")}
    try:
        order = _optional_int(values["order"], "order")
        body = {"title_de": values["title_de"], "title_en": values["title_en"],
                "text": values["text"], "order": current.order if order is None else order}
        if not values["title_de"].strip():
            raise editorial.EditorialError("title_de", "is required")
        section = editorial.read_section(body, slug=current.slug, current=current)
        async with request.app[appkeys.SESSION_MAKER]() as session, session.begin():
            await editorial.save_section(session, section, now=request.app[appkeys.CLOCK]())
    except editorial.EditorialError as exc:
        return await _section_page(request, current, values, exc)
    raise web.HTTPSeeOther("/hub/editor/sections?done=saved")


# --- preview and freezing --------------------------------------------------------------


async def _draft_and_log(request: web.Request) -> dict[str, Any]:
    app = request.app
    async with app[appkeys.SESSION_MAKER]() as session:
        manifest = await edition_store.draft_preview(session, app[appkeys.CONFIG],
                                                     clock=app[appkeys.CLOCK])
        previous = await edition_store.latest_edition(session)
    log = changelog(previous.edition.manifest if previous else None, manifest)
    return {"manifest": manifest, "sections": await sections_of(request, manifest),
            "changelog": render_html(log, language_of(request).value),
            "count": len(manifest.contributions()), "previous": previous}


async def preview(request: web.Request) -> web.Response:
    return page(request, "hub_preview.html.j2", await _draft_and_log(request))


async def freeze_confirmation(request: web.Request, *, problem: str | None = None,
                              status: int = 200) -> web.Response:
    context = await _draft_and_log(request)
    return page(request, "hub_freeze.html.j2", {**context, "problem": problem,
                                                "confirm_value": CONFIRM_VALUE}, status=status)


async def freeze_form(request: web.Request) -> web.Response:
    return await freeze_confirmation(request)


async def freeze(request: web.Request) -> web.Response:
    """Freeze only when the confirmation page's field came along (and maybe publish)."""
    if _field(request, CONFIRM_FIELD) != CONFIRM_VALUE:
        return await freeze_confirmation(request, problem="confirm", status=400)
    app = request.app
    try:
        async with app[appkeys.SESSION_MAKER]() as session, session.begin():
            stored = await edition_store.freeze_next(
                session, app[appkeys.CONFIG], app[appkeys.NODE_KEYS], clock=app[appkeys.CLOCK],
                frozen_by=_editor_name(request))
            if _field(request, "publish") == "yes":
                await edition_store.publish_edition(session, stored.number, app[appkeys.CONFIG],
                                                    app[appkeys.NODE_KEYS], now=app[appkeys.CLOCK]())
    except edition_store.EditionStoreError as exc:
        return await freeze_confirmation(request, problem=exc.field, status=exc.status)
    wake_delivery(app)
    raise web.HTTPSeeOther("/handbook/editions?done=frozen")


# --- membership ------------------------------------------------------------------------


async def members(request: web.Request) -> web.Response:
    async with request.app[appkeys.SESSION_MAKER]() as session:
        rows = await membership.list_members(session)
    done = request.query.get("done", "")
    return page(request, "hub_approvals.html.j2", {
        "pending": [m for m in rows if m.state == MemberState.PENDING.value],
        "others": [m for m in rows if m.state != MemberState.PENDING.value],
        "done": done if done in NOTICES else ""})


async def decide_member(request: web.Request) -> web.Response:
    app = request.app
    approve = request.match_info["decision"] == "approve"
    now = app[appkeys.CLOCK]()
    try:
        async with app[appkeys.SESSION_MAKER]() as session, session.begin():
            await membership.decide(
                session, request.match_info["member"], approved=approve,
                config=app[appkeys.CONFIG], keys=app[appkeys.NODE_KEYS], now=now)
    except membership.MembershipError as exc:
        refusal = web.HTTPNotFound if exc.status == 404 else web.HTTPConflict
        raise refusal(text=f"{exc.field}: {exc.message}\n") from exc
    wake_delivery(app)
    app[HUB].aggregator.wake()
    raise web.HTTPSeeOther(f"/hub/editor/members?done={'approved' if approve else 'rejected'}")


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/hub/editor", triage_page, name="web.staff.hub.triage")
    router.add_get("/hub/editor/place", place_form, name="web.staff.hub.place_form")
    router.add_post("/hub/editor/place", place, name="web.staff.hub.place")
    router.add_get("/hub/editor/sections", sections, name="web.staff.hub.sections")
    router.add_get("/hub/editor/sections/{slug}", section_form, name="web.staff.hub.section_form")
    router.add_post("/hub/editor/sections/{slug}", save_section, name="web.staff.hub.section_save")
    router.add_get("/hub/editor/preview", preview, name="web.staff.hub.preview")
    router.add_get("/hub/editor/freeze", freeze_form, name="web.staff.hub.freeze_form")
    router.add_post("/hub/editor/freeze", freeze, name="web.staff.hub.freeze")
    router.add_get("/hub/editor/members", members, name="web.staff.hub.members")
    router.add_post("/hub/editor/members/{member:[0-9]+}/{decision:approve|reject}",
                    decide_member, name="web.staff.hub.decide_member")
