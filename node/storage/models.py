"""The node's tables as SQLAlchemy 2.0 typed models.

Every timestamp is stored with its time zone and read back as aware UTC, on
SQLite (which has no time zone type) as on PostgreSQL. State columns hold the
values of the ``StrEnum``s below; the code only ever writes those values.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# Integer primary keys that autoincrement on SQLite and are 64-bit on PostgreSQL.
BigId = BigInteger().with_variant(Integer(), "sqlite")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that refuses naive datetimes and always reads back aware UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime stored; pass an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class ContributionKind(enum.StrEnum):
    PRACTICE = "practice"
    EXPERIENCE = "experience"
    STANCE = "stance"
    MATERIAL = "material"
    COMMENT = "comment"


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DELIVERED = "delivered"
    FAILED = "failed"
    GAVE_UP = "gave_up"


class InboxState(enum.StrEnum):
    RECEIVED = "received"
    PROCESSING = "processing"
    DONE = "done"
    REJECTED = "rejected"
    RETRY = "retry"


class FollowerState(enum.StrEnum):
    ACCEPTED = "accepted"
    PENDING = "pending"
    REJECTED = "rejected"


class FollowingState(enum.StrEnum):
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class BackfillState(enum.StrEnum):
    NONE = "none"
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class Contribution(Base):
    """The node's own objects, with the signed document exactly as served."""

    __tablename__ = "contributions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    uri: Mapped[str] = mapped_column(String(2048), unique=True)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(Text)
    document: Mapped[dict[str, Any]]
    # What the author wrote (front matter fields and Markdown), so edits start from it.
    source: Mapped[dict[str, Any] | None]
    published: Mapped[datetime]
    updated: Mapped[datetime]
    deleted_at: Mapped[datetime | None]


class Activity(Base):
    __tablename__ = "activities"
    __table_args__ = (Index("ix_activities_local_created", "is_local", "created_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    uri: Mapped[str] = mapped_column(String(2048), unique=True)
    type: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(2048))
    object_uri: Mapped[str | None] = mapped_column(String(2048), index=True)
    document: Mapped[dict[str, Any]]
    is_local: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]

    deliveries: Mapped[list[Delivery]] = relationship(back_populates="activity")


class Delivery(Base):
    """One row per (activity, recipient inbox): the durable outgoing queue."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("activity_id", "inbox_url"),
        # due order, as the claims walk it (node.delivery_queue)
        Index("ix_deliveries_due", "state", "next_attempt_at", "id"),
        Index("ix_deliveries_host_state", "host", "state"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id", ondelete="CASCADE"))
    inbox_url: Mapped[str] = mapped_column(String(2048))
    host: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(20), default=DeliveryState.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    first_attempt_at: Mapped[datetime | None]
    last_status: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]

    activity: Mapped[Activity] = relationship(back_populates="deliveries")


class Host(Base):
    """What the node remembers per remote host: signature scheme and health."""

    __tablename__ = "hosts"

    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    # Serialised federation.knock policy (which signature scheme worked).
    signature_scheme: Mapped[str | None] = mapped_column(String(20))
    knock: Mapped[dict[str, Any] | None]
    # Health / circuit breaker, mirroring federation.retry.HostHealth.
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    failure_days: Mapped[list[str] | None] = mapped_column(JSON)
    breaker_state: Mapped[str] = mapped_column(String(20), default="closed")
    breaker_opened_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_failure_at: Mapped[datetime | None]
    unavailable_since: Mapped[datetime | None]
    health: Mapped[dict[str, Any] | None]
    updated_at: Mapped[datetime]


class InboxItem(Base):
    """A received activity, persisted once per activity id before answering 202."""

    __tablename__ = "inbox_items"
    # arrival order, as the claims walk it (node.inbox_queue)
    __table_args__ = (Index("ix_inbox_items_arrival", "state", "received_at", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    activity_uri: Mapped[str] = mapped_column(String(2048), unique=True)
    inbox: Mapped[str] = mapped_column(String(20))  # "shared" or "actor"
    actor: Mapped[str] = mapped_column(String(2048))
    remote_host: Mapped[str] = mapped_column(String(255))
    raw: Mapped[dict[str, Any]]
    received_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(20), default=InboxState.RECEIVED.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None]
    # Lease of the worker processing it (or the earliest retry); expired means claimable.
    claimed_until: Mapped[datetime | None]


class InboxArrival(Base):
    """A received activity committed while the inbox was saturated (SQLite only).

    No index but the rowid: appending costs a few pages a commit, where a row of
    ``inbox_items`` costs a page of its unique index besides (the ids of a batch fall all
    over it). Claiming (``node.inbox_queue.claim``) moves arrivals into ``inbox_items`` in
    the order they came, dropping activity ids already there; until then they count as
    waiting. See ``node.inbox_sqlite.SqliteBatch``.
    """

    __tablename__ = "inbox_arrivals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    activity_uri: Mapped[str] = mapped_column(String(2048))
    inbox: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(2048))
    remote_host: Mapped[str] = mapped_column(String(255))
    raw: Mapped[dict[str, Any]]
    received_at: Mapped[datetime]


class RemoteActor(Base):
    __tablename__ = "remote_actors"

    uri: Mapped[str] = mapped_column(String(2048), primary_key=True)
    inbox: Mapped[str] = mapped_column(String(2048))
    shared_inbox: Mapped[str | None] = mapped_column(String(2048))
    outbox: Mapped[str | None] = mapped_column(String(2048))
    followers_url: Mapped[str | None] = mapped_column(String(2048))
    name: Mapped[str | None] = mapped_column(Text)
    preferred_username: Mapped[str | None] = mapped_column(String(255))
    kind: Mapped[str | None] = mapped_column(String(40))  # actor type, e.g. Organization
    document: Mapped[dict[str, Any]]
    fetched_at: Mapped[datetime]


class Follower(Base):
    __tablename__ = "followers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    actor_uri: Mapped[str] = mapped_column(String(2048), unique=True)
    inbox: Mapped[str] = mapped_column(String(2048))
    shared_inbox: Mapped[str | None] = mapped_column(String(2048))
    state: Mapped[str] = mapped_column(String(20), default=FollowerState.ACCEPTED.value)
    follow_activity_uri: Mapped[str | None] = mapped_column(String(2048))
    created_at: Mapped[datetime]


class Following(Base):
    __tablename__ = "following"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    target_uri: Mapped[str] = mapped_column(String(2048), unique=True)
    state: Mapped[str] = mapped_column(String(20), default=FollowingState.REQUESTED.value)
    follow_activity_uri: Mapped[str | None] = mapped_column(String(2048))
    created_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]
    backfill_state: Mapped[str] = mapped_column(String(20), default=BackfillState.NONE.value)
    backfill_cursor: Mapped[str | None] = mapped_column(String(2048))


# The contributions a hub's editors decide on (``node.hub.editorial.CONTRIBUTION_KINDS``),
# not deleted: the condition of the partial indexes the triage walks in arrival order and
# counts per member. SQLite
# uses a partial index only when the query repeats its terms as written, so
# ``node.hub.triage`` renders the same condition (kinds as literals; tests/test_hub_triage.py
# checks both query plans).
_CONTRIBUTIONS = "kind IN ('Practice', 'Experience', 'Material') AND deleted IS "


class RemoteObject(Base):
    """Other nodes' contributions, stances and comments (timeline and replies)."""

    __tablename__ = "remote_objects"
    # Only SQLite's predicate here: a ``postgresql_where`` would import SQLAlchemy's
    # PostgreSQL dialect into every SQLite node at start-up (tests/test_small_node.py).
    # The schema is only ever made by the migrations, and 0008 gives PostgreSQL the same
    # partial indexes (… deleted IS false); tests/test_hub_triage_plans.py checks its plans.
    __table_args__ = (
        Index("ix_remote_objects_contributions_received", "received_at", "id",
              sqlite_where=text(_CONTRIBUTIONS + "0")),
        Index("ix_remote_objects_contributions_author", "attributed_to",
              sqlite_where=text(_CONTRIBUTIONS + "0")),
        # what changed since a moment (node.hub.aggregation's sync): new versions, and
        # tombstones (a deletion keeps received_at); 0011 gives PostgreSQL the predicate
        Index("ix_remote_objects_received", "received_at"),
        Index("ix_remote_objects_tombstones_updated", "updated",
              sqlite_where=text("deleted IS 1")),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    uri: Mapped[str] = mapped_column(String(2048), unique=True)
    kind: Mapped[str | None] = mapped_column(String(40))
    attributed_to: Mapped[str | None] = mapped_column(String(2048), index=True)
    in_reply_to: Mapped[str | None] = mapped_column(String(2048), index=True)
    about: Mapped[str | None] = mapped_column(String(2048), index=True)
    document: Mapped[dict[str, Any] | None]
    published: Mapped[datetime | None]
    updated: Mapped[datetime | None]
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    received_at: Mapped[datetime]


class User(Base):
    """A member of the municipal staff who signs in to the web interface."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))  # Argon2id, PHC string
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime]


class SignInAddress(Base):
    """Sign-in attempts of one account from one client address (node.storage.users): failures
    in a row lock that address out of that account; a past success marks it as known."""

    __tablename__ = "sign_in_addresses"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    last_failure_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]


class WebSession(Base):
    """A signed-in browser: only the SHA-256 of the cookie value is stored."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
