"""The hub's tables (migration 0004): members, handbook sections, editorial decisions
and placements, frozen editions, topic-group followers and the index watermark; and the
membership's version (migration 0012).

They share ``node.storage.models.Base`` so that one metadata describes the database.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from node.storage.models import Base, BigId


class MemberState(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    LEFT = "left"  # the member withdrew its Follow


class Decision(enum.StrEnum):
    ACCEPT = "accept"
    DEFER = "defer"
    DECLINE = "decline"


class HubMember(Base):
    """A municipality that applied by following the hub."""

    __tablename__ = "hub_members"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    actor_uri: Mapped[str] = mapped_column(String(2048), unique=True)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str | None] = mapped_column(String(40))
    ags: Mapped[str | None] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(20), default=MemberState.PENDING.value)
    follow_activity_uri: Mapped[str | None] = mapped_column(String(2048))
    applied_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]


class HubSection(Base):
    """A chapter (no parent) or section of the handbook, as the editors keep it."""

    __tablename__ = "hub_sections"

    slug: Mapped[str] = mapped_column(String(80), primary_key=True)
    title_de: Mapped[str] = mapped_column(Text)
    title_en: Mapped[str] = mapped_column(Text, default="")
    order: Mapped[int] = mapped_column("position", Integer, default=0)
    parent: Mapped[str | None] = mapped_column(String(80))
    text: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime]


class HubDecision(Base):
    """The editors' decision about one contribution (accept, defer, decline) and note."""

    __tablename__ = "hub_decisions"

    contribution_uri: Mapped[str] = mapped_column(String(2048), primary_key=True)
    decision: Mapped[str] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(Text, default="")
    decided_at: Mapped[datetime]
    decided_by: Mapped[str] = mapped_column(String(100), default="")


class HubPlacement(Base):
    """A contribution placed in a section, at a position among the section's contributions."""

    __tablename__ = "hub_placements"
    __table_args__ = (UniqueConstraint("contribution_uri", "section_slug"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    contribution_uri: Mapped[str] = mapped_column(
        ForeignKey("hub_decisions.contribution_uri", ondelete="CASCADE"))
    section_slug: Mapped[str] = mapped_column(String(80), index=True)
    order: Mapped[int] = mapped_column("position", Integer, default=0)


class HubEdition(Base):
    """A frozen edition: the signed manifest exactly as served, never changed."""

    __tablename__ = "hub_editions"

    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    manifest: Mapped[dict[str, Any]]
    manifest_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    frozen_by: Mapped[str] = mapped_column(String(100))
    published_at: Mapped[datetime | None]


class TopicFollower(Base):
    """An actor following one of the hub's topic groups."""

    __tablename__ = "hub_topic_followers"
    __table_args__ = (UniqueConstraint("topic", "actor_uri"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    topic: Mapped[str] = mapped_column(String(80), index=True)
    actor_uri: Mapped[str] = mapped_column(String(2048))
    inbox: Mapped[str] = mapped_column(String(2048))
    shared_inbox: Mapped[str | None] = mapped_column(String(2048))
    follow_activity_uri: Mapped[str] = mapped_column(String(2048))
    created_at: Mapped[datetime]


class HubMembershipVersion(Base):
    """A number that changes whenever ``hub_members`` does (migration 0012's triggers
    keep it; one row, made by the first change: none reads as 0). The hub's sync reads
    the members again only when it moved."""

    __tablename__ = "hub_membership_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger)


class HubIndexState(Base):
    """How far the RDF index has caught up with ``remote_objects`` (one row)."""

    __tablename__ = "hub_index_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    synced_until: Mapped[datetime | None]
