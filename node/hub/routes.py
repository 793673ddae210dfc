"""The hub's public endpoints: member directory, topic groups, handbook editions and
draft, sections, SPARQL and search.

HTML here is deliberately plain (``html_page``); the web interface adds the screens.
Editions are permanent: ``/handbook/editions/{n}`` (JSON-LD manifest, or the HTML
edition at ``…/{n}/``), ``…/{n}/manifest.json``, ``…/{n}/changelog``, ``…/{n}.pdf``,
``…/{n}.ttl``; ``/editions/…`` redirects there.
"""

from __future__ import annotations

import asyncio
import html

from aiohttp import web
from sqlalchemy import select

from node import appkeys
from node.hub import edition_store, editorial, membership
from node.hub.aggregation import Readiness
from node.hub.changelog import render_markdown
from node.hub.contribution import ContributionKind
from node.hub.editions import EditionManifest
from node.hub.groups import follower_count
from node.hub.public_feedback import feedback_items, public_feedback
from node.hub.query_runner import QueryError, QueryErrorKind, QueryLimits
from node.hub.render import (
    MemberInfo,
    PdfUnavailable,
    RenderContext,
    StanceCounts,
    find_unicode_font,
    render_pdf,
)
from node.hub.runtime import HUB, HubRuntime
from node.hub.search import SearchFilters
from node.hub.sparql import error_json, execute_sparql, negotiate
from node.hub.tables import MemberState
from node.identity import actor_document
from node.inbox import receive
from node.routes.negotiation import Representation
from node.routes.negotiation import negotiate as negotiate_representation
from node.routes.responses import html_page, json_document, not_acceptable
from node.storage.models import Activity
from node.web import hub_public

JSON = "application/json"
LD_JSON = "application/ld+json"
PAGE_OR_DATA = (Representation.HTML, Representation.ACTIVITY_JSON, Representation.JSONLD)
MAX_QUERY_BYTES = 64 * 1024
QUERY_STATUS = {
    QueryErrorKind.SYNTAX: 400, QueryErrorKind.UPDATE_REFUSED: 400,
    QueryErrorKind.SERVICE_REFUSED: 400, QueryErrorKind.TIMEOUT: 503,
    QueryErrorKind.TOO_MANY_ROWS: 413, QueryErrorKind.BUSY: 503, QueryErrorKind.FAILED: 500,
}  # fmt: skip


def _runtime(request: web.Request) -> HubRuntime:
    return request.app[HUB]


def _wants_html(request: web.Request) -> bool | None:
    chosen = negotiate_representation(request.headers.get("Accept"), PAGE_OR_DATA)
    return None if chosen is None else chosen is Representation.HTML


def _esc(value: object) -> str:
    return html.escape(str(value if value is not None else ""))


# --- members ---------------------------------------------------------------------------


async def members(request: web.Request) -> web.Response:
    async with request.app[appkeys.SESSION_MAKER]() as session:
        rows = await membership.list_members(session)
    visible = [m for m in rows if m.state != MemberState.REJECTED.value]
    wants_html = _wants_html(request)
    if wants_html is None:
        return not_acceptable(PAGE_OR_DATA)
    if not wants_html:
        return json_document({"members": [m.to_json() for m in visible]}, JSON)
    return await hub_public.members_page(request, visible)


# --- topic groups ----------------------------------------------------------------------


def _topic(request: web.Request) -> str:
    slug = request.match_info["slug"]
    if _runtime(request).groups.get(slug) is None:
        raise web.HTTPNotFound(text=f"slug: no topic {slug!r}\n")
    return slug


async def topics(request: web.Request) -> web.Response:
    groups = _runtime(request).groups
    items = [{"slug": t.slug, "name": t.label_de, "nameEn": t.label_en, "actor": groups.url(t.slug),
              "handle": f"@{groups.handle(t.slug)}"} for t in groups.topics]
    wants_html = _wants_html(request)
    if wants_html is None:
        return not_acceptable(PAGE_OR_DATA)
    if not wants_html:
        return json_document({"topics": items}, JSON)
    return await hub_public.topics_page(request)


async def topic_actor(request: web.Request) -> web.Response:
    slug = _topic(request)
    runtime = _runtime(request)
    document = runtime.groups.actor_document(slug, request.app[appkeys.NODE_KEYS])
    if _wants_html(request):
        topic = runtime.groups.get(slug)
        assert topic is not None
        return html_page(topic.label_de, f"<p>Folgen: <code>@{_esc(runtime.groups.handle(slug))}"
                                         f"</code></p><p>{_esc(document['summary'])}</p>")
    return json_document(document)


async def topic_inbox(request: web.Request) -> web.Response:
    _topic(request)
    return await receive(request, "shared")


async def topic_outbox(request: web.Request) -> web.Response:
    slug = _topic(request)
    group = _runtime(request).groups.url(slug)
    async with request.app[appkeys.SESSION_MAKER]() as session:
        rows = await session.scalars(
            select(Activity.document).where(Activity.actor == group, Activity.type == "Announce",
                                            Activity.is_local.is_(True))
            .order_by(Activity.id.desc()).limit(50))
        items = list(rows)
    return json_document({"@context": "https://www.w3.org/ns/activitystreams",
                          "id": f"{group}/outbox", "type": "OrderedCollection",
                          "totalItems": len(items), "orderedItems": items})


async def topic_followers(request: web.Request) -> web.Response:
    slug = _topic(request)
    group = _runtime(request).groups.url(slug)
    async with request.app[appkeys.SESSION_MAKER]() as session:
        count = await follower_count(session, slug)
    return json_document({"@context": "https://www.w3.org/ns/activitystreams",
                          "id": f"{group}/followers", "type": "OrderedCollection",
                          "totalItems": count})


# --- editions --------------------------------------------------------------------------


def _number(request: web.Request) -> int:
    text = request.match_info["number"]
    if not text.isdigit() or int(text) < 1 or len(text) > 9:
        raise web.HTTPNotFound(text="number: editions are numbered 1, 2, …\n")
    return int(text)


async def _edition(request: web.Request) -> edition_store.StoredEdition:
    async with request.app[appkeys.SESSION_MAKER]() as session:
        stored = await edition_store.get_edition(session, _number(request))
    if stored is None:
        raise web.HTTPNotFound(text="number: no such edition (yet)\n")
    return stored


async def render_context(request: web.Request,
                         stored: edition_store.StoredEdition) -> RenderContext:
    """Members' names, and the stances on the edition's contributions and sections."""
    manifest = stored.edition.manifest
    uris = [c.uri for c in manifest.contributions()]
    section_urls = editorial.section_urls(request.app[appkeys.CONFIG].base_url, manifest)
    async with request.app[appkeys.SESSION_MAKER]() as session:
        views = await membership.list_members(session)
        feedback = await public_feedback(session, [*uris, *section_urls.values()])
        log = await edition_store.changelog_of(session, stored.number)
    return RenderContext(
        members={m.actor: MemberInfo(m.actor, m.name, m.ags) for m in views},
        stances={uri: StanceCounts(f.agree, f.disagree, f.partly)
                 for uri, f in feedback.counts.items()},
        reasons={uri: feedback.reasons_of(uri) for uri in uris},
        section_reasons={slug: feedback.reasons_of(url) for slug, url in section_urls.items()},
        changelog=log, manifest_hash=stored.edition.manifest_hash)


PERMANENT = {"Cache-Control": "public, max-age=31536000, immutable"}


async def edition(request: web.Request) -> web.StreamResponse:
    stored = await _edition(request)
    wants_html = _wants_html(request)
    if wants_html is None:
        return not_acceptable(PAGE_OR_DATA)
    if wants_html:
        raise web.HTTPSeeOther(f"{stored.edition.manifest.url}/")
    response = json_document(stored.edition.document, LD_JSON)
    response.headers.update(PERMANENT)
    return response


async def edition_page(request: web.Request) -> web.Response:
    stored = await _edition(request)
    manifest = stored.edition.manifest
    page = request.match_info.get("page") or "index.html"
    context = await render_context(request, stored)
    pages = _runtime(request).renderer.pages(manifest, context)
    if page not in pages:
        raise web.HTTPNotFound(text="page: not part of this edition\n")
    return web.Response(text=pages[page], content_type="text/html", charset="utf-8")


async def edition_manifest(request: web.Request) -> web.Response:
    stored = await _edition(request)
    response = json_document(stored.edition.document, LD_JSON, vary_accept=False)
    response.headers.update(PERMANENT)
    response.headers["Digest-SHA256-Manifest"] = stored.edition.manifest_hash
    return response


async def edition_changelog(request: web.Request) -> web.Response:
    stored = await _edition(request)
    async with request.app[appkeys.SESSION_MAKER]() as session:
        log = await edition_store.changelog_of(session, stored.number)
    assert log is not None
    if "text/html" in request.headers.get("Accept", ""):
        return await hub_public.changelog_page(request, stored, log)
    return web.Response(text=render_markdown(log), content_type="text/markdown", charset="utf-8")


async def edition_pdf(request: web.Request) -> web.Response:
    stored = await _edition(request)
    path = request.app[appkeys.CONFIG].data_dir / "editions" / f"{stored.number}.pdf"
    if not path.is_file():  # editions never change, so the first rendering is kept
        manifest = stored.edition.manifest
        context = await render_context(request, stored)
        try:
            data = await asyncio.to_thread(render_pdf, manifest, context,
                                           font_path=find_unicode_font())
        except PdfUnavailable as exc:
            raise web.HTTPServiceUnavailable(text=f"pdf: {exc}\n") from exc
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".pdf.part")
        partial.write_bytes(data)
        partial.replace(path)
    return web.Response(body=path.read_bytes(), content_type="application/pdf", headers=PERMANENT)


async def edition_rdf(request: web.Request) -> web.Response:
    stored = await _edition(request)
    nquads = request.match_info["format"] == "nq"
    media_type = "application/n-quads" if nquads else "text/turtle"
    hub_actor = actor_document(request.app[appkeys.CONFIG], request.app[appkeys.NODE_KEYS])
    async with request.app[appkeys.SESSION_MAKER]() as session:
        signers = await edition_store.signer_documents(session, stored, hub_actor)
    body = await asyncio.to_thread(edition_store.rdf_dump, stored, _runtime(request).contexts,
                                   signers, media_type)
    return web.Response(body=body, content_type=media_type, charset="utf-8", headers=PERMANENT)


async def editions_index(request: web.Request) -> web.Response:
    async with request.app[appkeys.SESSION_MAKER]() as session:
        stored = await edition_store.list_editions(session)
    items = [s.summary_json() for s in stored]
    if _wants_html(request):
        return await hub_public.editions_page(request, stored)
    return json_document({"editions": items}, JSON)


async def old_edition_path(request: web.Request) -> web.Response:
    raise web.HTTPMovedPermanently(f"/handbook/editions/{request.match_info['tail']}")


# --- draft and sections ----------------------------------------------------------------


async def draft_manifest(request: web.Request) -> EditionManifest:
    async with request.app[appkeys.SESSION_MAKER]() as session:
        return await edition_store.draft_preview(session, request.app[appkeys.CONFIG],
                                                 clock=request.app[appkeys.CLOCK])


async def draft_page(request: web.Request) -> web.Response:
    manifest = await draft_manifest(request)
    return await hub_public.draft_page(request, manifest)


async def section(request: web.Request) -> web.Response:
    config = request.app[appkeys.CONFIG]
    slug = request.match_info["slug"]
    async with request.app[appkeys.SESSION_MAKER]() as session:
        found = (await editorial.load_structure(session)).get(slug)
        url = editorial.section_url(config.base_url, slug)
        feedback = await feedback_items(session, url)
    if found is None:
        raise web.HTTPNotFound(text="slug: no such section\n")
    document = {"@context": "https://w3id.org/praxisnetz/context.jsonld", "id": url,
                "type": "Section", "name": found.title_de, "attributedTo": config.actor_url,
                "content": found.text, "feedback": feedback.to_json()}
    if _wants_html(request):
        return html_page(found.title_de, f"<p>{_esc(found.text)}</p>")
    return json_document(document, LD_JSON)


# --- SPARQL and search -----------------------------------------------------------------


async def _query_text(request: web.Request) -> str:
    if request.method == "GET":
        return request.query.get("query", "")
    if request.content_length is not None and request.content_length > MAX_QUERY_BYTES:
        raise web.HTTPRequestEntityTooLarge(MAX_QUERY_BYTES, request.content_length)
    body = await request.read()
    if len(body) > MAX_QUERY_BYTES:
        raise web.HTTPRequestEntityTooLarge(MAX_QUERY_BYTES, len(body))
    if request.content_type == "application/sparql-query":
        return body.decode("utf-8", errors="replace")
    form = await request.post()
    value = form.get("query", "")
    return value if isinstance(value, str) else ""


def _filling(readiness: Readiness, what: str) -> web.Response:
    """503 while ``what`` would answer from part of the documents (the hub's start), with
    the fill's progress."""
    read, expected = readiness.documents_read, readiness.documents_expected
    progress = f" ({read:,} of {expected:,} documents read)" if expected else ""
    message = f"the hub is filling its {what} from its database{progress}; try again shortly"
    response = json_document({"error": "filling", "message": message}, JSON, status=503)
    response.headers["Retry-After"] = str(hub_public.FILLING_RETRY_SECONDS)
    return response


async def sparql(request: web.Request) -> web.Response:
    runtime = _runtime(request)
    query = await _query_text(request)
    index = runtime.aggregator.index
    if not query.strip():
        if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
            return await hub_public.sparql_page(request)
        return json_document({"error": "syntax", "message": "query: give a SPARQL query"}, JSON,
                             status=400)
    if index is None:
        return json_document({"error": "busy", "message": "this process does not hold the "
                              "index; ask the hub's web process"}, JSON, status=503)
    readiness = runtime.aggregator.readiness
    if not readiness.sparql:
        return _filling(readiness, "RDF index")
    limits = QueryLimits(timeout_s=runtime.settings.sparql_timeout_seconds,
                         max_rows=runtime.settings.sparql_max_rows)
    result_format = negotiate(request.headers.get("Accept"))
    try:
        answer = await asyncio.to_thread(execute_sparql, index, query, limits=limits,
                                         result_format=result_format)
    except QueryError as exc:
        return json_document(dict(error_json(exc)), JSON, status=QUERY_STATUS[exc.kind])
    return web.Response(body=answer.body, headers={"Content-Type": answer.media_type,
                                                   "Access-Control-Allow-Origin": "*"})


async def search(request: web.Request) -> web.Response:
    if "text/html" in request.headers.get("Accept", ""):  # people; the JSON below is unchanged
        return await hub_public.search_page(request)
    runtime = _runtime(request)
    kind_text = request.query.get("kind")
    try:
        kind = ContributionKind(kind_text) if kind_text else None
    except ValueError:
        return json_document({"field": "kind", "detail": "kind: practice, experience, stance, "
                              "material or comment"}, JSON, status=400)
    topic = request.query.get("topic") or None
    if topic and not topic.startswith("http"):
        topic = f"https://w3id.org/praxisnetz/topics#{topic}"
    filters = SearchFilters(topic=topic, kind=kind,
                            municipality=request.query.get("municipality") or None,
                            status=request.query.get("status") or None)
    readiness = runtime.aggregator.readiness
    if not readiness.search:
        return _filling(readiness, "search index")
    hits = await runtime.aggregator.search.search(request.query.get("q", ""), filters, limit=100)
    return json_document({"query": request.query.get("q", ""), "total": len(hits), "items": [
        {"uri": h.uri, "title": h.view.title, "kind": h.view.kind.value, "author": h.view.author,
         "ags": h.view.ags, "topics": list(h.view.topics), "status": h.view.status,
         "score": round(h.score, 3)} for h in hits]}, JSON)


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/members", members)
    router.add_get("/topics", topics)
    router.add_get("/topics/{slug}", topic_actor)
    router.add_post("/topics/{slug}/inbox", topic_inbox)
    router.add_get("/topics/{slug}/outbox", topic_outbox)
    router.add_get("/topics/{slug}/followers", topic_followers)
    router.add_get("/handbook/editions", editions_index)
    router.add_get("/handbook/editions/{number:[0-9]+}.pdf", edition_pdf)
    router.add_get("/handbook/editions/{number:[0-9]+}.{format:ttl|nq}", edition_rdf)
    router.add_get("/handbook/editions/{number:[0-9]+}", edition)
    router.add_get("/handbook/editions/{number:[0-9]+}/", edition_page)
    router.add_get("/handbook/editions/{number:[0-9]+}/manifest.json", edition_manifest)
    router.add_get("/handbook/editions/{number:[0-9]+}/changelog", edition_changelog)
    router.add_get("/handbook/editions/{number:[0-9]+}/{page:(all|kapitel/[a-z0-9-]+)\\.html}",
                   edition_page)
    router.add_get("/editions/{tail:.*}", old_edition_path)
    router.add_get("/handbook/draft", draft_page)
    router.add_get("/handbook/sections/{slug}", section)
    router.add_get("/sparql", sparql)
    router.add_post("/sparql", sparql)
    router.add_get("/search", search)
