"""Create, update and delete the node's own contributions.

Markdown is rendered as CommonMark and the HTML sanitised with an allow-list; the
JSON-LD document is validated against the vocabulary's shapes, signed with the
node's Ed25519 key (eddsa-jcs-2022) and stored together with its activity and
deliveries. Nothing here commits: the caller owns the transaction.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from federation import activity_builders, proofs
from federation.timestamps import MILLISECOND, format_precise_timestamp, to_milliseconds
from node.appkeys import NodeKeys
from node.config import NodeConfig
from node.contribution_input import (
    TARGETED_KINDS,
    ContributionInput,
    ContributionInputError,
    FieldProblem,
)
from node.identity import AS_CONTEXT, DATA_INTEGRITY_CONTEXT, PRAXISNETZ_CONTEXT, PUBLIC
from node.outbox import recipients_for, record_local_activity
from node.storage.models import Activity, Contribution, ContributionKind, Delivery, RemoteObject
from node.validation import document_problems

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

TOPIC_NAMESPACE = "https://w3id.org/praxisnetz/topics#"
LEIKA_PREFIX = "urn:de:fim:leika:leistung:"
ALLOWED_TAGS = frozenset(
    {"p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "code",
     "em", "strong", "a", "ul", "ol", "li", "img", "abbr", "sub", "sup", "del",
     "table", "thead", "tbody", "tr", "th", "td"}
)  # fmt: skip
COLLECTION_PATHS = {
    ContributionKind.PRACTICE: "practices",
    ContributionKind.EXPERIENCE: "experiences",
    ContributionKind.STANCE: "stances",
    ContributionKind.MATERIAL: "materials",
    ContributionKind.COMMENT: "comments",
}
OBJECT_TYPES = {
    ContributionKind.PRACTICE: ["Article", "Practice"],
    ContributionKind.EXPERIENCE: ["Article", "Experience"],
    ContributionKind.STANCE: ["Note", "Stance"],
    ContributionKind.MATERIAL: ["Document", "Material"],
    ContributionKind.COMMENT: ["Note", "Comment"],
}
# Which input field a document member comes from, to name it in validation errors.
DOCUMENT_TO_INPUT_FIELD = {
    "name": "title", "summary": "summary", "content": "body", "contentMap": "body",
    "topic": "topics", "step": "steps", "status": "status", "position": "position",
    "inReplyTo": "about", "about": "about", "relatedService": "related_service",
    "legalBasis": "legal_basis", "lessonsLearned": "lessons", "effort": "effort",
    "implementationDuration": "duration", "reason": "reason", "url": "url",
    "mediaType": "media_type", "license": "license",
}  # fmt: skip


class AuthoringOutcome(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    DELETED = "deleted"


class AuthoringError(ValueError):
    """The request cannot be carried out; ``field`` names what is wrong."""

    def __init__(self, field_name: str, message: str, *, status: int = 409) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Author:
    """What authoring needs from the running node."""

    config: NodeConfig
    keys: NodeKeys
    clock: Callable[[], datetime]
    # Every path that publishes (API, CLI, web editor, tests) checks the shapes: a node
    # must never send what the vocabulary does not allow (receivers refuse it).
    validate: Callable[[dict[str, Any]], list[FieldProblem]] = document_problems
    known_topics: frozenset[str] | None = None


@dataclass(frozen=True)
class AuthoringResult:
    outcome: AuthoringOutcome
    slug: str
    uri: str
    activity_uri: str | None
    deliveries: int


@cache
def _commonmark() -> MarkdownIt:
    # Why lazy: markdown-it is 62 modules that only publishing needs, not start-up; one
    # parser serves every call (render keeps no state between documents).
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark")


def render_markdown(markdown: str) -> str:
    """CommonMark to HTML, then an allow-list sanitiser (raw HTML in Markdown included)."""
    import nh3  # with markdown-it: only publishing needs it

    html = _commonmark().render(markdown)
    return nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


def object_uri(config: NodeConfig, kind: ContributionKind, slug: str) -> str:
    return f"{config.base_url}/{COLLECTION_PATHS[kind]}/{slug}"


def _timestamp(moment: datetime) -> str:
    return format_precise_timestamp(moment)


def next_version(previous: datetime | None, now: datetime) -> datetime:
    """The ``updated`` of a new version: now in milliseconds, but always strictly later
    than the previous version (two saves within one millisecond, or a clock that went
    back), because a receiver keeps the stored version when ``updated`` is not newer."""
    candidate = to_milliseconds(now)
    if previous is not None and candidate <= to_milliseconds(previous):
        return to_milliseconds(previous) + MILLISECOND
    return candidate


def _optional_members(inp: ContributionInput) -> dict[str, Any]:
    members: dict[str, Any] = {}
    if inp.summary:
        members["summary"] = inp.summary
    if inp.topics:
        members["topic"] = [TOPIC_NAMESPACE + topic for topic in inp.topics]
    if inp.status:
        members["status"] = inp.status
    if inp.steps:
        members["step"] = [
            {"type": "HowToStep", "position": index, "text": text}
            for index, text in enumerate(inp.steps, start=1)
        ]
    for name, value in (
        ("effort", inp.effort), ("implementationDuration", inp.duration),
        ("lessonsLearned", inp.lessons), ("position", inp.position), ("reason", inp.reason),
        ("license", inp.license),
    ):  # fmt: skip
        if value:
            members[name] = value
    if inp.legal_basis:
        members["legalBasis"] = list(inp.legal_basis)
    if inp.related_service:
        members["relatedService"] = [LEIKA_PREFIX + inp.related_service]
    if inp.about:
        members["about"] = inp.about
        if inp.kind in TARGETED_KINDS:
            members["inReplyTo"] = inp.about  # so plain ActivityPub software threads it
    return members


def build_document(
    config: NodeConfig, inp: ContributionInput, *, published: datetime, updated: datetime | None
) -> dict[str, Any]:
    """The unsigned JSON-LD object, typed for ActivityStreams and for our vocabulary."""
    uri = object_uri(config, inp.kind, inp.slug)
    content = render_markdown(inp.body)
    document: dict[str, Any] = {
        "@context": [AS_CONTEXT, DATA_INTEGRITY_CONTEXT, PRAXISNETZ_CONTEXT],
        "id": uri,
        "type": list(OBJECT_TYPES[inp.kind]),
        "attributedTo": config.actor_url,
        "name": inp.title,
        "content": content,
        "contentMap": {inp.language: content},
        "mediaType": "text/html",
        "source": {"content": inp.body, "mediaType": "text/markdown"},
        "published": _timestamp(published),
        "url": uri,
        "to": [PUBLIC],
        "cc": [config.followers_url],
        "replies": f"{uri}/replies",
    }
    if config.municipality_key_uri:
        document["municipalityKey"] = config.municipality_key_uri
    if inp.kind is ContributionKind.MATERIAL:
        # A material's url and mediaType describe the shared document, not this page.
        document["url"] = inp.url
        document["mediaType"] = inp.media_type or "application/octet-stream"
    if updated is not None:
        document["updated"] = _timestamp(updated)
    document.update(_optional_members(inp))
    return document


def _activity_id(config: NodeConfig) -> str:
    return f"{config.base_url}/activities/{uuid.uuid4()}"


def _authoring_activity(
    author: Author, kind: str, document: dict[str, Any], now: datetime
) -> dict[str, Any]:
    """A signed Create or Update embedding the signed object unchanged."""
    build = activity_builders.create if kind == "Create" else activity_builders.update
    activity = build(
        author.config.actor_url, document, activity_id=_activity_id(author.config), published=now
    )
    return _sign(author, activity, now)


def _delete_activity(author: Author, uri: str, now: datetime) -> dict[str, Any]:
    config = author.config
    activity = activity_builders.delete(
        config.actor_url,
        uri,
        activity_id=_activity_id(config),
        published=now,
        to=[PUBLIC],
        cc=[config.followers_url],
    )
    return _sign(author, activity, now)


def _sign(author: Author, document: dict[str, Any], now: datetime) -> dict[str, Any]:
    return proofs.sign_document(document, author.keys.ed25519, created=now)


def _check_document(author: Author, document: dict[str, Any]) -> None:
    """Refuse a document that fails the shapes, naming the input field of each problem."""
    problems = author.validate(document)
    if problems:
        raise ContributionInputError(
            [
                FieldProblem(DOCUMENT_TO_INPUT_FIELD.get(p.field, p.field), p.message)
                for p in problems
            ]
        )


async def _target_authors(
    session: AsyncSession, config: NodeConfig, about: str | None
) -> list[str]:
    """The author of a remote object a stance or comment is about (to notify them)."""
    if about is None or about.startswith(config.base_url + "/"):
        return []
    author = await session.scalar(
        select(RemoteObject.attributed_to).where(RemoteObject.uri == about)
    )
    return [author] if author else []


async def _distribute(
    session: AsyncSession,
    author: Author,
    activity: dict[str, Any],
    about: str | None,
    now: datetime,
) -> int:
    config = author.config
    recipients = await recipients_for(
        session,
        own_inboxes=(config.inbox_url, config.shared_inbox_url),
        actor_uris=await _target_authors(session, config, about),
    )
    await record_local_activity(session, activity, recipients, now=now)
    return len(recipients)


async def find_contribution(
    session: AsyncSession, slug: str, *, for_update: bool = False
) -> Contribution | None:
    query = select(Contribution).where(Contribution.slug == slug)
    # Locked for a change, so that two edits at once (PostgreSQL) build one version on
    # the other instead of both on the same previous ``updated``.
    return await session.scalar(query.with_for_update() if for_update else query)


async def publish(session: AsyncSession, author: Author, inp: ContributionInput) -> AuthoringResult:
    """Create the contribution, or update it if the slug exists (unchanged input: no-op)."""
    existing = await find_contribution(session, inp.slug)
    if existing is None:
        return await create_contribution(session, author, inp)
    return await update_contribution(session, author, inp.slug, inp)


async def create_contribution(
    session: AsyncSession, author: Author, inp: ContributionInput
) -> AuthoringResult:
    if await find_contribution(session, inp.slug) is not None:
        raise AuthoringError("slug", f"{inp.slug!r} is already used; update it instead")
    now = to_milliseconds(author.clock())
    document = build_document(author.config, inp, published=now, updated=None)
    _check_document(author, document)
    signed = _sign(author, document, now)
    session.add(
        Contribution(
            uri=signed["id"], slug=inp.slug, kind=inp.kind.value, title=inp.title,
            document=signed, source=inp.as_source(), published=now, updated=now,
        )
    )  # fmt: skip
    activity = _authoring_activity(author, "Create", signed, now)
    count = await _distribute(session, author, activity, inp.about, now)
    return AuthoringResult(AuthoringOutcome.CREATED, inp.slug, signed["id"], activity["id"], count)


def _live(existing: Contribution | None, slug: str) -> Contribution:
    if existing is None:
        raise AuthoringError("slug", f"no contribution {slug!r}", status=404)
    if existing.deleted_at is not None:
        raise AuthoringError("slug", f"{slug!r} was deleted; choose another slug", status=410)
    return existing


async def update_contribution(
    session: AsyncSession, author: Author, slug: str, inp: ContributionInput
) -> AuthoringResult:
    row = _live(await find_contribution(session, slug, for_update=True), slug)
    if inp.slug != slug:
        raise AuthoringError(
            "slug", "the slug of a published contribution cannot change", status=422
        )
    if inp.kind.value != row.kind:
        raise AuthoringError(
            "kind", f"{slug!r} is a {row.kind}; the kind cannot change", status=422
        )
    if row.source == inp.as_source():
        return AuthoringResult(AuthoringOutcome.UNCHANGED, slug, row.uri, None, 0)
    now = author.clock()
    version = next_version(row.updated, now)
    document = build_document(author.config, inp, published=row.published, updated=version)
    _check_document(author, document)
    signed = _sign(author, document, now)
    row.document, row.source, row.title, row.updated = signed, inp.as_source(), inp.title, version
    activity = _authoring_activity(author, "Update", signed, now)
    count = await _distribute(session, author, activity, inp.about, now)
    return AuthoringResult(AuthoringOutcome.UPDATED, slug, row.uri, activity["id"], count)


def tombstone(row: Contribution, deleted: datetime) -> dict[str, Any]:
    return {
        "@context": [AS_CONTEXT],
        "id": row.uri,
        "type": "Tombstone",
        "formerType": OBJECT_TYPES[ContributionKind(row.kind)][0],
        "deleted": _timestamp(deleted),
    }


async def delete_contribution(session: AsyncSession, author: Author, slug: str) -> AuthoringResult:
    row = _live(await find_contribution(session, slug), slug)
    now = author.clock()
    row.deleted_at = now
    about = (row.source or {}).get("about")
    activity = _delete_activity(author, row.uri, now)
    count = await _distribute(
        session, author, activity, about if isinstance(about, str) else None, now
    )
    return AuthoringResult(AuthoringOutcome.DELETED, slug, row.uri, activity["id"], count)


async def delivery_summary(session: AsyncSession, uri: str) -> dict[str, int]:
    """Delivery states of every activity about one contribution, counted."""
    rows = await session.execute(
        select(Delivery.state, func.count())
        .join(Activity, Activity.id == Delivery.activity_id)
        .where(Activity.object_uri == uri)
        .group_by(Delivery.state)
    )
    return {state: count for state, count in rows}
