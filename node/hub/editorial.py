"""The editorial workflow over SQL: handbook structure, placements, feedback (the
counts and reasons public pages show), and the draft of the next edition.

Input from the API and the CLI is read here into typed values (``SectionInput``,
``PlacementInput``); every refusal is an ``EditorialError`` naming the field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.hub.contribution import StanceReason, by_position, stance_reason_of
from node.hub.editions import EditionDraft, EditionManifest
from node.hub.structure import HandbookStructure, Section, StructureError, default_structure
from node.hub.tables import Decision, HubDecision, HubMember, HubPlacement, HubSection, MemberState
from node.storage.models import RemoteObject

CONTRIBUTION_KINDS = ("Practice", "Experience", "Material")  # what goes into sections
FEEDBACK_KINDS = ("Stance", "Comment")  # what is shown with them
MAX_NOTE = 4000


class EditorialError(ValueError):
    """An editorial action was refused; ``field`` names the input at fault."""

    def __init__(self, field: str, message: str, *, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status


# --- structure -------------------------------------------------------------------------


def _section_of(row: HubSection) -> Section:
    return Section(row.slug, row.title_de, row.title_en, row.order, row.parent, row.text)


async def load_structure(session: AsyncSession) -> HandbookStructure:
    rows = await session.scalars(select(HubSection))
    return HandbookStructure(tuple(_section_of(row) for row in rows))


async def replace_structure(session: AsyncSession, structure: HandbookStructure,
                            *, now: datetime) -> None:
    """Make the stored structure exactly ``structure`` (sections keep their placements)."""
    placed = set(await session.scalars(select(HubPlacement.section_slug).distinct()))
    missing = placed - {section.slug for section in structure.sections}
    if missing:
        raise EditorialError("sections", "contributions are still placed in "
                             + ", ".join(sorted(missing)), status=409)
    await session.execute(delete(HubSection))
    for section in structure.sections:
        session.add(HubSection(slug=section.slug, title_de=section.title_de,
                               title_en=section.title_en, order=section.order,
                               parent=section.parent, text=section.text, updated_at=now))
    await session.flush()


async def ensure_structure(session: AsyncSession, *, now: datetime) -> bool:
    """Give a new hub the default structure; True if it was written."""
    if await session.scalar(select(func.count()).select_from(HubSection)):
        return False
    await replace_structure(session, default_structure(), now=now)
    return True


def read_structure(items: Any) -> HandbookStructure:
    if not isinstance(items, list):
        raise EditorialError("sections", "must be a list of sections")
    try:
        return HandbookStructure.from_json(items)
    except StructureError as exc:
        raise EditorialError(f"sections.{exc.field}", exc.message) from exc


def _text(body: Mapping[str, Any], name: str, *, required: bool = False, default: str = "") -> str:
    value = body.get(name, default)
    if not isinstance(value, str):
        raise EditorialError(name, "must be a string")
    if required and not value.strip():
        raise EditorialError(name, "is required")
    return value


def read_section(body: Mapping[str, Any], *, slug: str | None = None,
                 current: Section | None = None) -> Section:
    """A section from API input; with ``current`` (an update) missing fields keep their value."""
    base = current or Section(slug or "", "")
    order = body.get("order", base.order)
    if not isinstance(order, int) or isinstance(order, bool):
        raise EditorialError("order", "must be an integer")
    parent = body.get("parent", base.parent)
    if parent is not None and not isinstance(parent, str):
        raise EditorialError("parent", "must be a section slug or null")
    return Section(
        slug=slug or _text(body, "slug", required=True),
        title_de=_text(body, "title_de", required=current is None, default=base.title_de),
        title_en=_text(body, "title_en", default=base.title_en),
        order=order,
        parent=parent or None,
        text=_text(body, "text", default=base.text),
    )


async def save_section(session: AsyncSession, section: Section, *, now: datetime) -> Section:
    structure = await load_structure(session)
    try:
        structure.with_section(section)
    except StructureError as exc:
        raise EditorialError(_structure_field(exc, section.slug), exc.message) from exc
    row = await session.get(HubSection, section.slug)
    if row is None:
        row = HubSection(slug=section.slug, updated_at=now)
        session.add(row)
    row.title_de, row.title_en, row.order = section.title_de, section.title_en, section.order
    row.parent, row.text, row.updated_at = section.parent, section.text, now
    await session.flush()
    return section


def _structure_field(exc: StructureError, slug: str) -> str:
    if "parent" in exc.message or "nest" in exc.message:
        return "parent"
    if "title" in exc.message:
        return "title_de"
    return "slug" if exc.field in (slug, "slug") else exc.field


async def delete_section(session: AsyncSession, slug: str) -> None:
    row = await session.get(HubSection, slug)
    if row is None:
        raise EditorialError("slug", f"no section {slug!r}", status=404)
    structure = await load_structure(session)
    try:
        structure.without_section(slug)
    except StructureError as exc:
        raise EditorialError("slug", exc.message, status=409) from exc
    if await session.scalar(select(HubPlacement.id).where(HubPlacement.section_slug == slug).limit(1)):
        raise EditorialError("slug", "contributions are placed here; move them first", status=409)
    await session.delete(row)


# --- feedback (stances and comments) ---------------------------------------------------


@dataclass
class Feedback:
    agree: int = 0
    disagree: int = 0
    partly: int = 0
    comments: int = 0
    items: list[str] = field(default_factory=list)
    reasons: list[StanceReason] = field(default_factory=list)  # stances that give one

    def to_json(self) -> dict[str, Any]:
        return {"agree": self.agree, "disagree": self.disagree, "partly": self.partly,
                "comments": self.comments, "items": list(self.items)}


async def feedback_for(session: AsyncSession, targets: Iterable[str]) -> dict[str, Feedback]:
    """Stances and comments about each target (a contribution or a section URL), counted."""
    wanted = list(dict.fromkeys(targets))
    result = {target: Feedback() for target in wanted}
    if not wanted:
        return result
    rows = await session.scalars(select(RemoteObject).where(
        RemoteObject.deleted.is_(False), RemoteObject.kind.in_(FEEDBACK_KINDS),
        or_(RemoteObject.about.in_(wanted), RemoteObject.in_reply_to.in_(wanted)))
        .order_by(RemoteObject.id))
    for row in rows:
        target = row.about if row.about in result else row.in_reply_to
        entry = result[target]
        entry.items.append(row.uri)
        position = (row.document or {}).get("position")
        if row.kind == "Stance" and position in ("agree", "disagree", "partly"):
            setattr(entry, position, getattr(entry, position) + 1)
            reason = stance_reason_of(row.uri, row.attributed_to or "", row.document or {})
            if reason is not None:
                entry.reasons.append(reason)
        else:
            entry.comments += 1
    for entry in result.values():
        entry.reasons = list(by_position(entry.reasons))
    return result


# --- placements (triage: node.hub.triage) ----------------------------------------------


@dataclass(frozen=True)
class PlacementInput:
    contribution: str
    decision: Decision
    sections: tuple[str, ...]
    note: str = ""
    order: int | None = None  # position within each section; None: at the end


def read_placement(body: Mapping[str, Any]) -> PlacementInput:
    contribution = body.get("contribution")
    if not isinstance(contribution, str) or not contribution.startswith(("http://", "https://")):
        raise EditorialError("contribution", "must be the contribution's URL")
    raw_decision = body.get("decision", Decision.ACCEPT.value)
    try:
        decision = Decision(raw_decision)
    except ValueError:
        raise EditorialError("decision", "must be accept, defer or decline") from None
    sections = body.get("sections", [])
    if isinstance(sections, str):
        sections = [sections]
    if not isinstance(sections, list) or not all(isinstance(s, str) for s in sections):
        raise EditorialError("sections", "must be a list of section slugs")
    if decision is Decision.ACCEPT and not sections:
        raise EditorialError("sections", "an accepted contribution needs at least one section")
    note = _text(body, "note")
    if len(note) > MAX_NOTE:
        raise EditorialError("note", f"at most {MAX_NOTE} characters")
    order = body.get("order")
    if order is not None and (not isinstance(order, int) or isinstance(order, bool)):
        raise EditorialError("order", "must be an integer")
    return PlacementInput(contribution, decision, tuple(dict.fromkeys(sections)), note, order)


@dataclass(frozen=True)
class PlacementView:
    contribution: str
    decision: str
    note: str
    sections: tuple[tuple[str, int], ...]  # (section slug, order)

    def to_json(self) -> dict[str, Any]:
        return {"contribution": self.contribution, "decision": self.decision, "note": self.note,
                "sections": [{"slug": slug, "order": order} for slug, order in self.sections]}


async def place(session: AsyncSession, placement: PlacementInput, *, decided_by: str,
                now: datetime) -> PlacementView:
    """Record the decision; an accepted contribution is placed in the given sections."""
    row = await session.scalar(
        select(RemoteObject).join(HubMember, HubMember.actor_uri == RemoteObject.attributed_to)
        .where(RemoteObject.uri == placement.contribution,
               HubMember.state == MemberState.APPROVED.value))
    if row is None or row.deleted or row.kind not in CONTRIBUTION_KINDS:
        raise EditorialError("contribution", "no contribution of an approved member has this URL",
                             status=404)
    structure = await load_structure(session)
    for slug in placement.sections:
        if structure.get(slug) is None:
            raise EditorialError("sections", f"no section {slug!r}")
    decision = await session.get(HubDecision, placement.contribution)
    if decision is None:
        decision = HubDecision(contribution_uri=placement.contribution)
        session.add(decision)
    decision.decision, decision.note = placement.decision.value, placement.note
    decision.decided_at, decision.decided_by = now, decided_by
    await session.flush()
    await session.execute(delete(HubPlacement).where(
        HubPlacement.contribution_uri == placement.contribution))
    placed = []
    if placement.decision is Decision.ACCEPT:
        for slug in placement.sections:
            order = placement.order if placement.order is not None else \
                await _next_order(session, slug)
            session.add(HubPlacement(contribution_uri=placement.contribution,
                                     section_slug=slug, order=order))
            placed.append((slug, order))
    await session.flush()
    return PlacementView(placement.contribution, placement.decision.value, placement.note,
                         tuple(placed))


async def _next_order(session: AsyncSession, slug: str) -> int:
    highest = await session.scalar(
        select(func.max(HubPlacement.order)).where(HubPlacement.section_slug == slug))
    return (highest or 0) + 10


async def placements_by_section(session: AsyncSession) -> dict[str, list[Mapping[str, Any]]]:
    """Accepted, live contributions per section slug, in the editors' order."""
    rows = await session.execute(
        select(HubPlacement.section_slug, RemoteObject.document)
        .join(HubDecision, HubDecision.contribution_uri == HubPlacement.contribution_uri)
        .join(RemoteObject, RemoteObject.uri == HubPlacement.contribution_uri)
        .where(HubDecision.decision == Decision.ACCEPT.value, RemoteObject.deleted.is_(False))
        .order_by(HubPlacement.section_slug, HubPlacement.order, HubPlacement.id))
    placements: dict[str, list[Mapping[str, Any]]] = {}
    for slug, document in rows:
        if document:
            placements.setdefault(slug, []).append(document)
    return placements


def editions_url(base_url: str) -> str:
    return f"{base_url}/handbook/editions/"


def section_url(base_url: str, slug: str) -> str:
    return f"{base_url}/handbook/sections/{slug}"


def section_urls(base_url: str, manifest: EditionManifest) -> dict[str, str]:
    """Each of the manifest's sections by slug: the URL stances about it name."""
    return {s.section.slug: section_url(base_url, s.section.slug) for s in manifest.sections}


async def draft(session: AsyncSession, *, hub_actor: str, base_url: str) -> EditionDraft:
    """The next edition as the editors' decisions make it now."""
    structure = await load_structure(session)
    return EditionDraft.from_structure(hub_actor, editions_url(base_url), structure,
                                       await placements_by_section(session))
