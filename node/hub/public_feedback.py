"""The stance counts and reasons the public handbook pages show (handbook, draft,
edition pages and PDF, the section JSON-LD), read without loading every stance document.

``editorial.feedback_for`` loads each stance and comment about each target as a whole
row; on a hub with many members a page of 200 contributions loads thousands. Here the
counts are grouped in SQL (``feedback.count_feedback_of``) and only the stances that
give a reason are loaded, a few columns each, all of them, so the pages show exactly what
``feedback_for`` gave them. Not ``feedback.reasons_about``: its bound per target needs a
window function and the position read out of the JSON twice more a row, which on
PostgreSQL (``document`` is JSON text, re-parsed for each ``->>``) cost 38 instead of
15 ms server CPU for 4,000 stances (docs/performance.md section 3).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.hub.contribution import STANCE_POSITIONS, StanceReason, by_position, stance_reason_of
from node.hub.editorial import FEEDBACK_KINDS, Feedback
from node.hub.feedback import FeedbackCounts, count_feedback_of
from node.storage.models import RemoteObject

NO_COUNTS = FeedbackCounts()


@dataclass(frozen=True)
class PublicFeedback:
    """Each target's counts and its reasons, objections first (as ``by_position``)."""

    counts: Mapping[str, FeedbackCounts] = field(default_factory=dict)
    reasons: Mapping[str, tuple[StanceReason, ...]] = field(default_factory=dict)

    def counts_of(self, target: str) -> FeedbackCounts:
        return self.counts.get(target, NO_COUNTS)

    def reasons_of(self, target: str) -> tuple[StanceReason, ...]:
        return self.reasons.get(target, ())


def _about_any(targets: Sequence[str]) -> ColumnElement[bool]:
    return or_(RemoteObject.about.in_(targets), RemoteObject.in_reply_to.in_(targets))


async def public_feedback(session: AsyncSession, targets: Iterable[str]) -> PublicFeedback:
    """Counts and all reasons of each target: the same as ``editorial.feedback_for``."""
    counts = await count_feedback_of(session, targets)
    with_stances = [target for target, found in counts.items() if found.of(STANCE_POSITIONS)]
    reasons = await _all_reasons(session, with_stances) if with_stances else {}
    return PublicFeedback(counts, {target: reasons.get(target, ()) for target in counts})


async def _all_reasons(session: AsyncSession,
                       targets: Sequence[str]) -> dict[str, tuple[StanceReason, ...]]:
    """Every stance with a reason about each target, objections first, then in arrival
    order; the SQL skips the stances without one, ``stance_reason_of`` judges the rest."""
    found: dict[str, list[StanceReason]] = {target: [] for target in targets}
    rows = await session.execute(
        select(RemoteObject.uri, RemoteObject.attributed_to, RemoteObject.about,
               RemoteObject.in_reply_to, RemoteObject.document)
        .where(RemoteObject.deleted.is_(False), RemoteObject.kind == "Stance",
               _about_any(targets), RemoteObject.document["reason"].as_string() != "")
        .order_by(RemoteObject.id))
    for uri, author, about, in_reply_to, document in rows:
        reason = stance_reason_of(uri, author or "", document or {})
        if reason is not None:
            found[about if about in found else in_reply_to or ""].append(reason)
    return {target: by_position(reasons) for target, reasons in found.items()}


async def feedback_items(session: AsyncSession, target: str) -> Feedback:
    """One target's counts and the ids of every stance and comment about it, as
    ``feedback_for`` gives them (the section JSON-LD lists them), from three columns a row
    instead of whole documents; without reasons, which that document does not show."""
    position = RemoteObject.document["position"].as_string()
    rows = await session.execute(
        select(RemoteObject.uri, RemoteObject.kind, position)
        .where(RemoteObject.deleted.is_(False), RemoteObject.kind.in_(FEEDBACK_KINDS),
               _about_any([target]))
        .order_by(RemoteObject.id))
    result = Feedback()
    for uri, kind, stance in rows:
        result.items.append(uri)
        if kind == "Stance" and stance in STANCE_POSITIONS:
            setattr(result, stance, getattr(result, stance) + 1)
        else:
            result.comments += 1
    return result
