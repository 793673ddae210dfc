"""Triage: approved members' contributions without a decision (and the deferred ones),
oldest first, a page at a time, each with its stance and comment counts.

``/api/hub/triage``, ``praxisnetz hub triage`` and the editors' triage page read them here.
The work is bounded by the page: its ids come from a walk of a partial index of the
contributions in arrival order that stops after the page (plus the offset), the total
from counting index entries and decisions, the rows of one page are loaded, their counts
come from one grouped SQL query (``feedback.count_feedback_of``), and no stance document
is read; the stances themselves are a link away (``/api/hub/feedback``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import BindParameter, ColumnElement, Select, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.hub import feedback
from node.hub.editorial import CONTRIBUTION_KINDS, EditorialError
from node.hub.groups import topic_slugs_of
from node.hub.tables import Decision, HubDecision, HubMember, MemberState
from node.storage.models import RemoteObject

API_PATH = "/api/hub/triage"
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_YES, _NO = ("true", "1", "yes"), ("false", "0", "no")


@dataclass(frozen=True)
class TriageQuery:
    """Which contributions (the deferred ones too?) and which page."""

    include_deferred: bool = True
    limit: int = DEFAULT_LIMIT
    offset: int = 0


def read_query(limit: str | None = None, offset: str | None = None,
               deferred: str | None = None) -> TriageQuery:
    """The query's parameters checked; a bad one is refused with 400, naming it."""
    wanted = (deferred or "true").strip().lower()
    if wanted not in _YES + _NO:
        raise EditorialError("deferred", "must be true or false", status=400)
    return TriageQuery(
        include_deferred=wanted in _YES,
        limit=feedback.bounded_int(limit, "limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT),
        offset=feedback.bounded_int(offset, "offset", default=0, low=0,
                                    high=feedback.MAX_OFFSET))


@dataclass(frozen=True)
class TriageItem:
    uri: str
    kind: str | None
    title: str
    author: str
    member: str
    topics: tuple[str, ...]
    received: datetime
    decision: str | None  # None, or "defer" for a deferred one
    note: str
    feedback: feedback.FeedbackCounts

    def stances_path(self) -> str:
        """Where the API pages this contribution's stances with their reasons."""
        return f"{feedback.API_PATH}?" + urlencode({"target": self.uri})

    def to_json(self) -> dict[str, Any]:
        counts = self.feedback
        return {"uri": self.uri, "kind": self.kind, "title": self.title, "author": self.author,
                "member": self.member, "topics": list(self.topics),
                "received": self.received.isoformat(), "decision": self.decision,
                "note": self.note,
                "feedback": {"agree": counts.agree, "disagree": counts.disagree,
                             "partly": counts.partly, "comments": counts.comments,
                             "stances": self.stances_path()}}


@dataclass(frozen=True)
class TriagePage:
    query: TriageQuery
    total: int  # contributions waiting, over all pages
    items: tuple[TriageItem, ...]

    def _path(self, offset: int) -> str:
        query = self.query
        pairs: list[tuple[str, str | int]] = [] if query.include_deferred else [
            ("deferred", "false")]
        return f"{API_PATH}?" + urlencode([*pairs, ("limit", query.limit), ("offset", offset)])

    def next_offset(self) -> int | None:
        following = self.query.offset + self.query.limit
        return following if following < self.total else None

    def previous_offset(self) -> int | None:
        return max(self.query.offset - self.query.limit, 0) if self.query.offset > 0 else None

    def to_json(self) -> dict[str, Any]:
        following, previous = self.next_offset(), self.previous_offset()
        return {"total": self.total, "limit": self.query.limit, "offset": self.query.offset,
                "next": self._path(following) if following is not None else None,
                "previous": self._path(previous) if previous is not None else None,
                "items": [item.to_json() for item in self.items]}


def _waiting(include_deferred: bool) -> list[ColumnElement[bool]]:
    undecided = [HubDecision.contribution_uri.is_(None)]
    if include_deferred:
        undecided.append(HubDecision.decision == Decision.DEFER.value)
    return [HubMember.state == MemberState.APPROVED.value, *_contributions(), or_(*undecided)]


def _contributions() -> list[ColumnElement[bool]]:
    """The condition of the partial index ``ix_remote_objects_contributions_received`` as
    its terms are written (``node/storage/models.py``): the kinds as literals, since
    SQLite matches a partial index's terms against the query's text, not bound values."""
    kinds = bindparam("contribution_kinds", CONTRIBUTION_KINDS, expanding=True,
                      literal_execute=True)
    return [RemoteObject.kind.in_(kinds), RemoteObject.deleted.is_(False)]


def _joined(query: Select[Any]) -> Select[Any]:
    return (query.join(HubMember, HubMember.actor_uri == RemoteObject.attributed_to)
            .outerjoin(HubDecision, HubDecision.contribution_uri == RemoteObject.uri))


async def _items(session: AsyncSession, query: Select[Any]) -> tuple[TriageItem, ...]:
    rows = list(await session.execute(query))
    counts = await feedback.count_feedback_of(session, [row.uri for row, _, _ in rows])
    return tuple(_item(row, name, decision, counts[row.uri]) for row, name, decision in rows)


def _item(row: RemoteObject, name: str, decision: HubDecision | None,
          counts: feedback.FeedbackCounts) -> TriageItem:
    document: Mapping[str, Any] = row.document or {}
    return TriageItem(row.uri, row.kind, str(document.get("name") or row.uri),
                      row.attributed_to or "", name, tuple(topic_slugs_of(document)),
                      row.received_at, decision.decision if decision else None,
                      decision.note if decision else "", counts)


def _rows() -> Select[Any]:
    return _joined(select(RemoteObject, HubMember.name, HubDecision))


def _literal(name: str, value: object) -> BindParameter[Any]:
    """A value written into the statement's text. The triage's statements carry no bound
    value, so PostgreSQL plans each with its values: after five runs of a prepared
    statement it may switch to a generic plan, and one made without the offset's value
    had not found the last page at 100,000 contributions after 54 s where the planned
    one took 0.1-0.2 s."""
    return bindparam(name, value, literal_execute=True)


def _approved_authors() -> Select[Any]:
    return select(HubMember.actor_uri).where(
        HubMember.state == _literal("approved", MemberState.APPROVED.value))


def _decided(include_deferred: bool) -> Select[Any]:
    """The decision rows that take a contribution off the list."""
    decided = select(HubDecision.contribution_uri)
    if include_deferred:
        decided = decided.where(HubDecision.decision != _literal("defer", Decision.DEFER.value))
    return decided


def _page_ids(query: TriageQuery) -> Select[Any]:
    """The page's ids: a walk of ``ix_remote_objects_contributions_received`` in arrival
    order, each entry checked against its member (one probe) and its decision (one
    probe), stopping after the page. Both are EXISTS: with an outer join for the
    decision PostgreSQL misjudged "no decision or deferred" as one row and sorted the
    whole table (26-30 s a page at 100,000 contributions); with IN, or a join once
    ANALYZE had run, SQLite went from the members into the index by author and sorted
    every contribution."""
    decided = _decided(query.include_deferred).where(
        HubDecision.contribution_uri == RemoteObject.uri)
    member = _approved_authors().where(HubMember.actor_uri == RemoteObject.attributed_to)
    return (select(RemoteObject.id)
            .where(*_contributions(), member.exists(), ~decided.exists())
            .order_by(RemoteObject.received_at, RemoteObject.id)
            .limit(_literal("limit", query.limit)).offset(_literal("offset", query.offset)))


async def triage_page(session: AsyncSession, query: TriageQuery = TriageQuery()) -> TriagePage:
    """One page of the contributions waiting for a decision, oldest first: the page's
    ids from a walk of an index that stops after the page (``_page_ids``), then only the
    page's rows; the total is a count of its own (``waiting_count``; docs/performance.md
    section 3)."""
    ids = list(await session.scalars(_page_ids(query)))
    total = await waiting_count(session, query.include_deferred)
    if not ids:
        return TriagePage(query, total, ())
    items = await _items(session, _rows().where(
        RemoteObject.id.in_(ids), *_waiting(query.include_deferred))
        .order_by(RemoteObject.received_at, RemoteObject.id))
    return TriagePage(query, total, items)


async def waiting_count(session: AsyncSession, include_deferred: bool = True) -> int:
    """How many contributions wait for a decision: the approved members' contributions
    less the decided ones among them. Written so that the planners (SQLite's without
    statistics too) go from the members into the partial index by author and count its
    entries (PostgreSQL reads no row: an index-only scan), and from the decision rows to
    their contributions: the work is index entries plus the editors' decisions."""
    written = await session.scalar(select(func.count()).select_from(RemoteObject).where(
        RemoteObject.attributed_to.in_(_approved_authors()), *_contributions()))
    decided_rows = [RemoteObject.uri == HubDecision.contribution_uri,
                    RemoteObject.attributed_to.in_(_approved_authors()), *_contributions()]
    decided = select(func.count()).select_from(HubDecision).where(
        select(RemoteObject.id).where(*decided_rows).exists())
    if include_deferred:
        decided = decided.where(HubDecision.decision != _literal("defer", Decision.DEFER.value))
    return (written or 0) - (await session.scalar(decided) or 0)


async def waiting_item(session: AsyncSession, uri: str) -> TriageItem | None:
    """The contribution ``uri`` if it waits for a decision (deferred ones too)."""
    found = await _items(session, _rows().where(RemoteObject.uri == uri, *_waiting(True)))
    return found[0] if found else None
