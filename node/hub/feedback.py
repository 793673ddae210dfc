"""The stances about one contribution or section, with their reasons, for the editors.

``/api/hub/feedback`` and ``praxisnetz hub feedback`` read them here: the counts, and a
page of stances newest first (by their version time: ``updated``, else ``published``),
each with the municipality that took it and the reason it gave. The rows are the
current state the inbox worker keeps: an Update replaced the document (and its
reason), a Delete marked the row deleted, so neither shows an old reason.

The work is bounded by the page: the counts are grouped in SQL by kind and the
position out of the JSON document (no document is loaded; ``count_feedback_of`` counts
a page of targets in one query, for triage), and only the page's documents are loaded.
``reasons_about`` gives the reasons beside the contributions an editor's page shows, a
bounded number each.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from sqlalchemy import ColumnElement, Select, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.hub.contribution import STANCE_POSITIONS, StanceReason, by_position, stance_reason_of
from node.hub.editorial import FEEDBACK_KINDS, EditorialError, section_url
from node.hub.tables import HubMember
from node.storage.models import RemoteObject

API_PATH = "/api/hub/feedback"
DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_REASONS = 50  # per contribution beside the triage table and the placing form
MAX_OFFSET = 1_000_000  # far past any real list; keeps the number a database takes sane
_DIGITS = re.compile(r"[0-9]{1,9}")


@dataclass(frozen=True)
class FeedbackQuery:
    """What a caller asked for: which positions, and which page."""

    positions: tuple[str, ...] = STANCE_POSITIONS
    limit: int = DEFAULT_LIMIT
    offset: int = 0


def bounded_int(text: str | None, name: str, *, default: int, low: int, high: int) -> int:
    if text is None or text == "":
        return default
    stripped = text.strip()
    # ASCII digits only: str.isdigit() passes "²", which int() refuses
    if not _DIGITS.fullmatch(stripped) or not low <= int(stripped) <= high:
        raise EditorialError(name, f"must be a whole number from {low} to {high}", status=400)
    return int(stripped)


def target_url(base_url: str, text: str | None) -> str:
    """A contribution URL as given; a section slug as its section's URL."""
    if not text:
        raise EditorialError("target", "give a contribution URL or a section slug", status=400)
    return text if text.startswith(("http://", "https://")) else section_url(base_url, text)


def read_query(limit: str | None = None, offset: str | None = None,
               positions: Sequence[str] = ()) -> FeedbackQuery:
    """The query's parameters checked; a bad one is refused with 400, naming it."""
    wanted = tuple(dict.fromkeys(p.strip() for p in positions if p.strip()))
    unknown = [p for p in wanted if p not in STANCE_POSITIONS]
    if unknown:
        raise EditorialError("position", "must be agree, disagree or partly", status=400)
    return FeedbackQuery(
        positions=wanted or STANCE_POSITIONS,
        limit=bounded_int(limit, "limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT),
        offset=bounded_int(offset, "offset", default=0, low=0, high=MAX_OFFSET))


@dataclass(frozen=True)
class FeedbackCounts:
    agree: int = 0
    disagree: int = 0
    partly: int = 0
    comments: int = 0

    def of(self, positions: Sequence[str]) -> int:
        return sum(getattr(self, position) for position in positions)


@dataclass(frozen=True)
class StanceEntry:
    """One stance as an editor reads it: who, which position, why, when, where."""

    uri: str
    actor: str
    municipality: str  # the member's name; a non-member's host
    ags: str | None
    position: str
    reason: str  # "" when the stance gives none; plain text, escaped by whoever shows it
    published: datetime | None
    updated: datetime | None
    link: str  # the stance's page (its http(s) url), else its id

    def to_json(self) -> dict[str, Any]:
        return {"id": self.uri, "actor": self.actor, "municipality": self.municipality,
                "ags": self.ags, "position": self.position, "reason": self.reason,
                "published": _iso(self.published), "updated": _iso(self.updated),
                "url": self.link}


@dataclass(frozen=True)
class FeedbackPage:
    target: str
    counts: FeedbackCounts
    query: FeedbackQuery
    total: int  # stances in the asked positions, over all pages
    stances: tuple[StanceEntry, ...]

    @property
    def has_more(self) -> bool:
        return self.query.offset + len(self.stances) < self.total

    def next_path(self) -> str | None:
        """The API path of the next page; None on the last."""
        if not self.has_more:
            return None
        query = self.query
        positions = () if query.positions == STANCE_POSITIONS else query.positions
        return f"{API_PATH}?" + urlencode(
            [("target", self.target), *(("position", p) for p in positions),
             ("limit", query.limit), ("offset", query.offset + query.limit)])

    def to_json(self) -> dict[str, Any]:
        counts, query = self.counts, self.query
        return {"target": self.target, "agree": counts.agree, "disagree": counts.disagree,
                "partly": counts.partly, "comments": counts.comments, "total": self.total,
                "limit": query.limit, "offset": query.offset, "next": self.next_path(),
                "stances": [entry.to_json() for entry in self.stances]}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def host_of(actor: str) -> str:
    return urlsplit(actor).hostname or actor


async def municipality_names(session: AsyncSession, actors: Iterable[str]) -> dict[str, str]:
    """Each actor's member name; a non-member's host."""
    wanted = set(actors)
    names = {actor: host_of(actor) for actor in wanted}
    if wanted:
        rows = await session.execute(select(HubMember.actor_uri, HubMember.name)
                                     .where(HubMember.actor_uri.in_(wanted)))
        names.update({actor: name for actor, name in rows})
    return names


def _about(target: str) -> ColumnElement[bool]:
    return or_(RemoteObject.about == target, RemoteObject.in_reply_to == target)


def _about_any(targets: Sequence[str]) -> ColumnElement[bool]:
    return or_(RemoteObject.about.in_(targets), RemoteObject.in_reply_to.in_(targets))


def _position() -> ColumnElement[str]:
    # JSON_EXTRACT on SQLite, ->> on PostgreSQL: the position without loading the document
    return RemoteObject.document["position"].as_string()


def _feedback_groups(targets: Sequence[str]) -> Select[tuple[str | None, str | None, str, str | None, int]]:
    position = _position()
    return (select(RemoteObject.about, RemoteObject.in_reply_to, RemoteObject.kind, position,
                   func.count())
            .where(RemoteObject.deleted.is_(False), RemoteObject.kind.in_(FEEDBACK_KINDS),
                   _about_any(targets))
            .group_by(RemoteObject.about, RemoteObject.in_reply_to, RemoteObject.kind, position))


async def count_feedback_of(session: AsyncSession,
                            targets: Iterable[str]) -> dict[str, FeedbackCounts]:
    """Each target's counts in one query, as ``editorial.feedback_for`` counts them: a
    stance without a known position is a comment, and an object about one target that
    replies to another counts for the one it is about.

    Grouped in SQL, so the answer has a few rows per target however many stances it has:
    on pages of 50 and 200 targets with 5 stances each as fast as reading a row per
    stance, on one target with 2,000 stances faster, on SQLite and PostgreSQL
    (docs/performance.md section 3, "triage")."""
    wanted = list(dict.fromkeys(targets))
    tallies = {target: dict.fromkeys((*STANCE_POSITIONS, "comments"), 0) for target in wanted}
    if wanted:
        for about, in_reply_to, kind, position, number in await session.execute(
                _feedback_groups(wanted)):
            counts = tallies[about] if about in tallies else tallies[in_reply_to or ""]
            key = position if kind == "Stance" and position in STANCE_POSITIONS else "comments"
            counts[key] += number
    return {target: FeedbackCounts(**counts) for target, counts in tallies.items()}


async def count_feedback(session: AsyncSession, target: str) -> FeedbackCounts:
    """One target's counts (``count_feedback_of``)."""
    return (await count_feedback_of(session, [target]))[target]


def _ranked_reasons(targets: Sequence[str], positions: Sequence[str],
                    per_target: int) -> Select[tuple[str, str | None, str | None, str | None,
                                                     Any]]:
    """The first ``per_target`` stances with a reason about each target, objections first,
    then in arrival order: numbered per target in SQL, so a contribution with thousands
    of objections loads ``per_target`` documents, not thousands."""
    target = case((RemoteObject.about.in_(targets), RemoteObject.about),
                  else_=RemoteObject.in_reply_to)
    rank = case(*((_position() == position, index)
                  for index, position in enumerate(STANCE_POSITIONS)),
                else_=len(STANCE_POSITIONS))
    ranked = (
        select(RemoteObject.id, RemoteObject.uri, RemoteObject.attributed_to,
               RemoteObject.about, RemoteObject.in_reply_to, RemoteObject.document,
               func.row_number().over(partition_by=target, order_by=(rank, RemoteObject.id))
               .label("place"))
        .where(RemoteObject.deleted.is_(False), RemoteObject.kind == "Stance",
               _about_any(targets), _position().in_(positions),
               RemoteObject.document["reason"].as_string() != "")
        .subquery())
    return (select(ranked.c.uri, ranked.c.attributed_to, ranked.c.about, ranked.c.in_reply_to,
                   ranked.c.document)
            .where(ranked.c.place <= per_target).order_by(ranked.c.id))


async def reasons_about(session: AsyncSession, targets: Iterable[str],
                        positions: Sequence[str] = STANCE_POSITIONS, *,
                        per_target: int = MAX_REASONS) -> dict[str, tuple[StanceReason, ...]]:
    """The reasons of the stances in ``positions`` about each target, objections first
    (``by_position``), in arrival order within a position, at most ``per_target`` each:
    only those stances' documents are loaded."""
    wanted = list(dict.fromkeys(targets))
    found: dict[str, list[StanceReason]] = {target: [] for target in wanted}
    if wanted:
        rows = await session.execute(_ranked_reasons(wanted, positions, per_target))
        for uri, author, about, in_reply_to, document in rows:
            reason = stance_reason_of(uri, author or "", document or {})
            if reason is not None:
                found[about if about in found else in_reply_to or ""].append(reason)
    return {target: by_position(reasons) for target, reasons in found.items()}


async def stances_about(session: AsyncSession, target: str,
                        query: FeedbackQuery = FeedbackQuery()) -> FeedbackPage:
    """The counts, and one page of the stances about ``target``, newest first."""
    counts = await count_feedback(session, target)
    version = func.coalesce(RemoteObject.updated, RemoteObject.published, RemoteObject.received_at)
    rows = await session.execute(
        select(RemoteObject, HubMember.name, HubMember.ags)
        .outerjoin(HubMember, HubMember.actor_uri == RemoteObject.attributed_to)
        .where(RemoteObject.deleted.is_(False), RemoteObject.kind == "Stance", _about(target),
               _position().in_(query.positions))
        .order_by(version.desc(), RemoteObject.id.desc())
        .limit(query.limit).offset(query.offset))
    stances = tuple(_entry(row, name, ags) for row, name, ags in rows)
    return FeedbackPage(target, counts, query, counts.of(query.positions), stances)


def _entry(row: RemoteObject, name: str | None, ags: str | None) -> StanceEntry:
    document: Mapping[str, Any] = row.document or {}
    actor = row.attributed_to or ""
    given = stance_reason_of(row.uri, actor, document)
    return StanceEntry(row.uri, actor, name or host_of(actor), ags, str(document["position"]),
                       given.reason if given is not None else "", row.published,
                       row.updated, given.link if given is not None else _link(row.uri, document))


def _link(uri: str, document: Mapping[str, Any]) -> str:
    """Where a stance without a reason is read: as ``stance_reason_of`` links, http(s) only."""
    url = document.get("url")
    return url if isinstance(url, str) and url.startswith(("https://", "http://")) else uri
