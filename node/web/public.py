"""Public pages: the municipality's home page and the contribution page."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from node import appkeys
from node.config import NodeConfig
from node.storage.models import (
    Contribution,
    ContributionKind,
    Follower,
    FollowerState,
    Following,
    FollowingState,
    RemoteActor,
    RemoteObject,
)
from node.web.render import language_of, page
from node.web.session import attach_session
from node.web.views import (
    ContributionView,
    ResponseView,
    state_of,
    topic_labels,
    view_of,
)

HOME_LIMIT = 500
MAX_RESPONSES = 500
RESPONSE_KINDS = (ContributionKind.STANCE.value, ContributionKind.COMMENT.value)
HOME_KINDS = (
    ContributionKind.PRACTICE, ContributionKind.EXPERIENCE, ContributionKind.MATERIAL,
    ContributionKind.STANCE, ContributionKind.COMMENT,
)  # fmt: skip
# The object URL serves these too (node.routes.negotiation); named here for <link rel>.
ALTERNATES = ("application/activity+json", "application/ld+json", "text/turtle")


@dataclass(frozen=True)
class ListedContribution:
    uri: str
    title: str
    kind: str
    summary: str | None
    updated: str


def topic_label(request: web.Request, slug: str) -> str:
    labels = topic_labels()
    return labels[slug].label(language_of(request).value) if slug in labels else slug


def _listed(row: Contribution) -> ListedContribution:
    summary = row.document.get("summary")
    return ListedContribution(
        row.uri, row.title, row.kind, summary if isinstance(summary, str) else None,
        row.updated.strftime("%Y-%m-%d"),
    )  # fmt: skip


async def _social_counts(session: AsyncSession) -> tuple[int, int]:
    followers = await session.scalar(
        select(func.count())
        .select_from(Follower)
        .where(Follower.state == FollowerState.ACCEPTED.value)
    )
    following = await session.scalar(
        select(func.count())
        .select_from(Following)
        .where(Following.state == FollowingState.ACCEPTED.value)
    )
    return followers or 0, following or 0


TopicGroup = tuple[str, str, list[ListedContribution]]  # label, slug, contributions


def _group(
    request: web.Request, rows: list[Contribution]
) -> tuple[dict[str, list[ListedContribution]], list[TopicGroup]]:
    """Contributions by kind, and the practices, experiences and materials by topic."""
    by_kind: dict[str, list[ListedContribution]] = {kind.value: [] for kind in HOME_KINDS}
    by_topic: dict[str, list[ListedContribution]] = defaultdict(list)
    for row in rows:
        item = _listed(row)
        by_kind.setdefault(row.kind, []).append(item)
        if row.kind in RESPONSE_KINDS:
            continue
        for slug in view_of(row.document).topics:
            by_topic[slug].append(item)
    topics = sorted(
        ((topic_label(request, slug), slug, items) for slug, items in by_topic.items()),
        key=lambda entry: entry[0].lower(),
    )
    return {kind: items for kind, items in by_kind.items() if items}, topics


async def home(request: web.Request) -> web.Response:
    config: NodeConfig = request.app[appkeys.CONFIG]
    async with request.app[appkeys.SESSION_MAKER]() as session:
        rows = list(
            await session.scalars(
                select(Contribution)
                .where(Contribution.deleted_at.is_(None))
                .order_by(Contribution.updated.desc(), Contribution.id.desc())
                .limit(HOME_LIMIT)
            )
        )
        followers, following = await _social_counts(session)
    by_kind, by_topic = _group(request, rows)
    context = {
        "config": config, "state": state_of(config.ags), "followers": followers,
        "following": following, "by_kind": by_kind, "by_topic": by_topic,
        "count": len(rows),
    }  # fmt: skip
    return page(request, "home.html.j2", context)


async def actor_names(session: AsyncSession, uris: set[str]) -> dict[str, str]:
    if not uris:
        return {}
    rows = await session.execute(
        select(RemoteActor.uri, RemoteActor.name, RemoteActor.preferred_username).where(
            RemoteActor.uri.in_(uris)
        )
    )
    return {uri: name or username or uri for uri, name, username in rows}


async def responses_to(session: AsyncSession, uri: str) -> list[ContributionView]:
    """Stances, comments and materials about ``uri``: remote ones, then the node's own."""
    remote = await session.scalars(
        select(RemoteObject.document)
        .where(
            or_(RemoteObject.in_reply_to == uri, RemoteObject.about == uri),
            RemoteObject.deleted.is_(False),
        )
        .order_by(RemoteObject.id)
        .limit(MAX_RESPONSES)
    )
    documents = [document for document in remote if document]
    local = await session.scalars(
        select(Contribution.document)
        .where(
            Contribution.kind.in_((*RESPONSE_KINDS, ContributionKind.MATERIAL.value)),
            Contribution.deleted_at.is_(None),
            # what the author wrote: the same on SQLite and PostgreSQL JSON columns
            Contribution.source["about"].as_string() == uri,
        )
        .order_by(Contribution.id)
        .limit(MAX_RESPONSES)
    )
    documents += list(local)
    return [view_of(document) for document in documents[:MAX_RESPONSES]]


def _split(views: list[ContributionView], names: dict[str, str]) -> dict[str, list[ResponseView]]:
    groups: dict[str, list[ResponseView]] = {
        "agree": [], "disagree": [], "partly": [], "comment": [], "material": [],
    }  # fmt: skip
    for view in views:
        author = view.attributed_to
        entry = ResponseView(view, names.get(author or "", author or "?"), author)
        if view.kind is ContributionKind.STANCE and view.position in groups:
            groups[view.position].append(entry)
        elif view.kind is ContributionKind.MATERIAL:
            groups["material"].append(entry)
        elif view.kind is not ContributionKind.STANCE:
            groups["comment"].append(entry)
    return groups


async def contribution_context(request: web.Request, document: dict[str, Any]) -> dict[str, Any]:
    """Everything the contribution template needs for one document (stored or a preview)."""
    config: NodeConfig = request.app[appkeys.CONFIG]
    view = view_of(document)
    async with request.app[appkeys.SESSION_MAKER]() as session:
        responses = await responses_to(session, view.uri) if view.uri else []
        authors = {r.attributed_to for r in responses if r.attributed_to}
        names = await actor_names(session, authors | {view.about or ""})
        about_title = await _title_of(session, view.about) if view.about else None
    names[config.actor_url] = config.name
    return {
        "c": view, "document": document, "groups": _split(responses, names),
        "author_name": names.get(view.attributed_to or "", view.attributed_to),
        "about_title": about_title,
        "topic_names": [(slug, topic_label(request, slug)) for slug in view.topics],
        "alternates": ALTERNATES,
    }  # fmt: skip


async def _title_of(session: AsyncSession, uri: str) -> str | None:
    title = await session.scalar(select(Contribution.title).where(Contribution.uri == uri))
    if title is not None:
        return title
    document = await session.scalar(select(RemoteObject.document).where(RemoteObject.uri == uri))
    return view_of(document).title or None if document else None


async def render_contribution_page(request: web.Request, row: Contribution) -> web.Response:
    """The HTML branch of an object URL (called from ``node.routes.objects``)."""
    await attach_session(request)
    context = await contribution_context(request, row.document)
    return page(request, "contribution.html.j2", {**context, "preview": False})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", home, name="web.home")
