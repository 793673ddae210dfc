"""The hub's public pages for people: handbook contents, editions, the next-edition
draft, changelogs, members, topics, search and the SPARQL examples (German first).

``node.hub.routes`` keeps the JSON answers and calls the page functions here for
browsers; ``/handbook`` (the current edition's contents) is a route of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from markupsafe import Markup

from node import appkeys
from node.hub import edition_store, editorial
from node.hub.changelog import Changelog, render_html
from node.hub.contribution import ContributionKind
from node.hub.editions import EditionManifest
from node.hub.membership import MemberView, list_members
from node.hub.public_feedback import public_feedback
from node.hub.render import MemberInfo, ReasonLine, markdown_to_html, reason_lines
from node.hub.runtime import HUB
from node.hub.search import SearchFilters, SearchHit
from node.hub.sparql import example_queries
from node.hub.tables import MemberState
from node.web.render import language_of, page
from node.web.session import SESSION, attach_session

TOPIC_PREFIX = "https://w3id.org/praxisnetz/topics#"
SEARCH_KINDS = tuple(k.value for k in ContributionKind if k is not ContributionKind.OTHER)
SEARCH_LIMIT = 100
MAX_QUERY_LENGTH = 500
FILLING_RETRY_SECONDS = 15  # Retry-After while the search fills after the hub's start


@dataclass(frozen=True)
class ContributionLine:
    """One contribution as a page lists it: title, link to the original, author, stances
    and the reasons given with them."""

    uri: str
    title: str
    author: str
    agree: int = 0
    disagree: int = 0
    partly: int = 0
    reasons: tuple[ReasonLine, ...] = ()


@dataclass(frozen=True)
class SectionBlock:
    slug: str
    title: str
    is_chapter: bool
    contributions: tuple[ContributionLine, ...]
    text: Markup  # the editorial text, Markdown rendered without raw HTML
    reasons: tuple[ReasonLine, ...] = ()  # stances about the section itself


async def sections_of(request: web.Request, manifest: EditionManifest) -> list[SectionBlock]:
    """The manifest's sections with their contributions, authors by member name, and
    the stances' reasons beside each contribution and section."""
    language = language_of(request).value
    uris = [c.uri for c in manifest.contributions()]
    section_urls = editorial.section_urls(request.app[appkeys.CONFIG].base_url, manifest)
    async with request.app[appkeys.SESSION_MAKER]() as session:
        members = {m.actor: MemberInfo(m.actor, m.name, m.ags) for m in await list_members(session)}
        feedback = await public_feedback(session, [*uris, *section_urls.values()])
    blocks = []
    for part in manifest.sections:
        lines = []
        for included in part.contributions:
            author = str(included.document.get("attributedTo") or "")
            counts = feedback.counts_of(included.uri)
            lines.append(ContributionLine(
                included.uri, str(included.document.get("name") or included.uri),
                members[author].name if author in members else author,
                counts.agree, counts.disagree, counts.partly,
                reason_lines(feedback.reasons_of(included.uri), members)))
        about_section = feedback.reasons_of(section_urls[part.section.slug])
        blocks.append(SectionBlock(part.section.slug, part.section.title(language),
                                   part.section.parent is None, tuple(lines),
                                   markdown_to_html(part.section.text),
                                   reason_lines(about_section, members)))
    return blocks


async def _prepare(request: web.Request) -> None:
    """Pages outside ``web.*`` routes still show who is signed in."""
    await attach_session(request)


def _page(request: web.Request, template: str, context: dict[str, Any], *,
          status: int = 200) -> web.Response:
    """``page`` plus the headers the middleware gives ``web.*`` routes: a signed-in page
    carries the CSRF token (sign-out form), so no shared cache may keep it."""
    response = page(request, template, context, status=status)
    response.headers["Cache-Control"] = "no-store" if SESSION in request else "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


# --- handbook, editions, draft, changelog ----------------------------------------------


async def handbook(request: web.Request) -> web.Response:
    """``/handbook``: the current edition's table of contents."""
    async with request.app[appkeys.SESSION_MAKER]() as session:
        current = await edition_store.latest_edition(session)
    blocks = await sections_of(request, current.edition.manifest) if current else []
    return _page(request, "hub_handbook.html.j2", {"edition": current, "sections": blocks})


async def editions_page(request: web.Request,
                        editions: Sequence[edition_store.StoredEdition]) -> web.Response:
    await _prepare(request)
    return _page(request, "hub_editions.html.j2", {"editions": list(reversed(editions)),
                                                  "done": request.query.get("done", "")})


async def draft_page(request: web.Request, manifest: EditionManifest) -> web.Response:
    await _prepare(request)
    blocks = await sections_of(request, manifest)
    return _page(request, "hub_draft.html.j2", {"manifest": manifest, "sections": blocks})


async def changelog_page(request: web.Request, stored: edition_store.StoredEdition,
                         log: Changelog) -> web.Response:
    await _prepare(request)
    return _page(request, "hub_changelog.html.j2", {
        "edition": stored, "changelog": render_html(log, language_of(request).value)})


# --- members and topics ----------------------------------------------------------------


async def members_page(request: web.Request, members: Sequence[MemberView]) -> web.Response:
    await _prepare(request)
    visible = [m for m in members if m.state != MemberState.REJECTED.value]
    return _page(request, "hub_members.html.j2", {"members": visible})


async def topics_page(request: web.Request) -> web.Response:
    await _prepare(request)
    groups = request.app[HUB].groups
    language = language_of(request).value
    items = [{"slug": t.slug, "name": t.label_de if language == "de" else (t.label_en or t.label_de),
              "actor": groups.url(t.slug), "handle": f"@{groups.handle(t.slug)}",
              "uri": f"acct:{groups.handle(t.slug)}"}
             for t in groups.topics]
    return _page(request, "hub_topics.html.j2", {"topics": items})


# --- search and SPARQL -----------------------------------------------------------------


@dataclass(frozen=True)
class SearchForm:
    query: str
    topic: str
    kind: str
    municipality: str
    status: str
    problem: str | None  # the field at fault, if any


def read_search_form(request: web.Request) -> tuple[SearchForm, SearchFilters | None]:
    """The filters from the query string; None with ``problem`` set when one is invalid."""
    values = {name: request.query.get(name, "")[:MAX_QUERY_LENGTH].strip()
              for name in ("q", "topic", "kind", "municipality", "status")}
    problem = None
    if values["kind"] and values["kind"] not in SEARCH_KINDS:
        problem = "kind"
    groups = request.app[HUB].groups
    if values["topic"] and groups.get(values["topic"]) is None:
        problem = problem or "topic"
    form = SearchForm(values["q"], values["topic"], values["kind"], values["municipality"],
                      values["status"], problem)
    if problem:
        return form, None
    return form, SearchFilters(
        topic=f"{TOPIC_PREFIX}{form.topic}" if form.topic else None,
        kind=ContributionKind(form.kind) if form.kind else None,
        municipality=form.municipality or None, status=form.status or None)


async def search_page(request: web.Request) -> web.Response:
    """``/search`` for browsers: the query box, filters and results linking to originals."""
    await _prepare(request)
    form, filters = read_search_form(request)
    hits: list[SearchHit] = []
    readiness = request.app[HUB].aggregator.readiness
    asked = filters is not None and bool(form.query or form.topic or form.kind
                                         or form.municipality or form.status)
    filling = asked and not readiness.search  # after a start: the search holds only part
    if asked and not filling:
        hits = await request.app[HUB].aggregator.search.search(form.query, filters,
                                                               limit=SEARCH_LIMIT)
    language = language_of(request).value
    topics = [(t.slug, t.label_de if language == "de" else (t.label_en or t.label_de))
              for t in request.app[HUB].groups.topics]
    response = _page(request, "hub_search.html.j2", {
        "form": form, "hits": hits, "topics": topics, "kinds": SEARCH_KINDS,
        "searched": asked, "filling": readiness if filling else None,
    }, status=400 if form.problem else 503 if filling else 200)
    if filling:
        response.headers["Retry-After"] = str(FILLING_RETRY_SECONDS)
    return response


async def sparql_page(request: web.Request) -> web.Response:
    """``GET /sparql`` without a query, for browsers: the examples and a query form."""
    await _prepare(request)
    return _page(request, "hub_sparql.html.j2", {"examples": example_queries()})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/handbook", handbook, name="web.hub.handbook")
