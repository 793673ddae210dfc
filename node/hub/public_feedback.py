"""The stance counts and reasons the public handbook pages show (handbook, draft,
edition pages and PDF, the section JSON-LD), read without loading every stance document.

``editorial.feedback_for`` loads each stance and comment about each target as a whole
row; on a hub with many members a page of 200 contributions loads thousands. Here the
counts are grouped in SQL (``feedback.count_feedback_of``) and only the stances that
give a reason are loaded, a few columns each (``feedback.reasons_about``), with a bound
no target reaches, so the pages show exactly what ``feedback_for`` gave them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.hub.contribution import STANCE_POSITIONS, StanceReason
from node.hub.editorial import FEEDBACK_KINDS, Feedback
from node.hub.feedback import FeedbackCounts, count_feedback_of, reasons_about
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


async def public_feedback(session: AsyncSession, targets: Iterable[str]) -> PublicFeedback:
    """Counts and all reasons of each target: the same as ``editorial.feedback_for``."""
    counts = await count_feedback_of(session, targets)
    stances = {target: found.of(STANCE_POSITIONS) for target, found in counts.items()}
    # a target has at most as many reasons as stances with a position, so this bound
    # cuts none off: the page shows every reason, as before
    most = max(stances.values(), default=0)
    with_stances = [target for target, number in stances.items() if number]
    reasons = await reasons_about(session, with_stances, per_target=most) if most else {}
    return PublicFeedback(counts, {target: reasons.get(target, ()) for target in counts})


async def feedback_items(session: AsyncSession, target: str) -> Feedback:
    """One target's counts and the ids of every stance and comment about it, as
    ``feedback_for`` gives them (the section JSON-LD lists them), from three columns a row
    instead of whole documents; without reasons, which that document does not show."""
    position = RemoteObject.document["position"].as_string()
    rows = await session.execute(
        select(RemoteObject.uri, RemoteObject.kind, position)
        .where(RemoteObject.deleted.is_(False), RemoteObject.kind.in_(FEEDBACK_KINDS),
               or_(RemoteObject.about == target, RemoteObject.in_reply_to == target))
        .order_by(RemoteObject.id))
    result = Feedback()
    for uri, kind, stance in rows:
        result.items.append(uri)
        if kind == "Stance" and stance in STANCE_POSITIONS:
            setattr(result, stance, getattr(result, stance) + 1)
        else:
            result.comments += 1
    return result
