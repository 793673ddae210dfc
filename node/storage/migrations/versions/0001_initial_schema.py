"""Initial schema: every table of the node.

Revision ID: 0001
Revises: -
Create Date: 2026-11-22 16:57:37.858278
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _id_column() -> sa.Column:
    """The surrogate key every table has (BIGINT, INTEGER on SQLite for its rowid)."""
    return sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        autoincrement=True,
        nullable=False,
    )


def upgrade() -> None:
    _create_activities()
    _create_api_tokens()
    _create_contributions()
    _create_followers()
    _create_following()
    _create_hosts()
    _create_inbox_items()
    _create_remote_actors()
    _create_remote_objects()
    _create_deliveries()


def _create_activities() -> None:
    op.create_table(
        "activities",
        _id_column(),
        sa.Column("uri", sa.String(length=2048), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("actor", sa.String(length=2048), nullable=False),
        sa.Column("object_uri", sa.String(length=2048), nullable=True),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("is_local", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activities")),
        sa.UniqueConstraint("uri", name=op.f("uq_activities_uri")),
    )
    op.create_index("ix_activities_local_created", "activities", ["is_local", "created_at"])
    op.create_index("ix_activities_object_uri", "activities", ["object_uri"])


def _create_api_tokens() -> None:
    op.create_table(
        "api_tokens",
        _id_column(),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )


def _create_contributions() -> None:
    op.create_table(
        "contributions",
        _id_column(),
        sa.Column("uri", sa.String(length=2048), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("source", sa.JSON(), nullable=True),
        sa.Column("published", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contributions")),
        sa.UniqueConstraint("slug", name=op.f("uq_contributions_slug")),
        sa.UniqueConstraint("uri", name=op.f("uq_contributions_uri")),
    )


def _create_followers() -> None:
    op.create_table(
        "followers",
        _id_column(),
        sa.Column("actor_uri", sa.String(length=2048), nullable=False),
        sa.Column("inbox", sa.String(length=2048), nullable=False),
        sa.Column("shared_inbox", sa.String(length=2048), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("follow_activity_uri", sa.String(length=2048), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_followers")),
        sa.UniqueConstraint("actor_uri", name=op.f("uq_followers_actor_uri")),
    )


def _create_following() -> None:
    op.create_table(
        "following",
        _id_column(),
        sa.Column("target_uri", sa.String(length=2048), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("follow_activity_uri", sa.String(length=2048), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("backfill_state", sa.String(length=20), nullable=False),
        sa.Column("backfill_cursor", sa.String(length=2048), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_following")),
        sa.UniqueConstraint("target_uri", name=op.f("uq_following_target_uri")),
    )


def _create_hosts() -> None:
    op.create_table(
        "hosts",
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("signature_scheme", sa.String(length=20), nullable=True),
        sa.Column("knock", sa.JSON(), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("failure_days", sa.JSON(), nullable=True),
        sa.Column("breaker_state", sa.String(length=20), nullable=False),
        sa.Column("breaker_opened_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unavailable_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("health", sa.JSON(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("host", name=op.f("pk_hosts")),
    )


def _create_inbox_items() -> None:
    op.create_table(
        "inbox_items",
        _id_column(),
        sa.Column("activity_uri", sa.String(length=2048), nullable=False),
        sa.Column("inbox", sa.String(length=20), nullable=False),
        sa.Column("actor", sa.String(length=2048), nullable=False),
        sa.Column("remote_host", sa.String(length=255), nullable=False),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_items")),
        sa.UniqueConstraint("activity_uri", name=op.f("uq_inbox_items_activity_uri")),
    )
    op.create_index("ix_inbox_items_state_received", "inbox_items", ["state", "received_at"])


def _create_remote_actors() -> None:
    op.create_table(
        "remote_actors",
        sa.Column("uri", sa.String(length=2048), nullable=False),
        sa.Column("inbox", sa.String(length=2048), nullable=False),
        sa.Column("shared_inbox", sa.String(length=2048), nullable=True),
        sa.Column("outbox", sa.String(length=2048), nullable=True),
        sa.Column("followers_url", sa.String(length=2048), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("preferred_username", sa.String(length=255), nullable=True),
        sa.Column("kind", sa.String(length=40), nullable=True),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("uri", name=op.f("pk_remote_actors")),
    )


def _create_remote_objects() -> None:
    op.create_table(
        "remote_objects",
        _id_column(),
        sa.Column("uri", sa.String(length=2048), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=True),
        sa.Column("attributed_to", sa.String(length=2048), nullable=True),
        sa.Column("in_reply_to", sa.String(length=2048), nullable=True),
        sa.Column("about", sa.String(length=2048), nullable=True),
        sa.Column("document", sa.JSON(), nullable=True),
        sa.Column("published", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_remote_objects")),
        sa.UniqueConstraint("uri", name=op.f("uq_remote_objects_uri")),
    )
    op.create_index("ix_remote_objects_about", "remote_objects", ["about"])
    op.create_index("ix_remote_objects_attributed_to", "remote_objects", ["attributed_to"])
    op.create_index("ix_remote_objects_in_reply_to", "remote_objects", ["in_reply_to"])


def _create_deliveries() -> None:
    op.create_table(
        "deliveries",
        _id_column(),
        sa.Column(
            "activity_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("inbox_url", sa.String(length=2048), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["activity_id"],
            ["activities.id"],
            name=op.f("fk_deliveries_activity_id_activities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint(
            "activity_id", "inbox_url", name=op.f("uq_deliveries_activity_id_inbox_url")
        ),
    )
    op.create_index("ix_deliveries_host_state", "deliveries", ["host", "state"])
    op.create_index("ix_deliveries_state_next_attempt", "deliveries", ["state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_deliveries_state_next_attempt", table_name="deliveries")
    op.drop_index("ix_deliveries_host_state", table_name="deliveries")

    op.drop_table("deliveries")
    op.drop_index("ix_remote_objects_in_reply_to", table_name="remote_objects")
    op.drop_index("ix_remote_objects_attributed_to", table_name="remote_objects")
    op.drop_index("ix_remote_objects_about", table_name="remote_objects")

    op.drop_table("remote_objects")
    op.drop_table("remote_actors")
    op.drop_index("ix_inbox_items_state_received", table_name="inbox_items")

    op.drop_table("inbox_items")
    op.drop_table("hosts")
    op.drop_table("following")
    op.drop_table("followers")
    op.drop_table("contributions")
    op.drop_table("api_tokens")
    op.drop_index("ix_activities_object_uri", table_name="activities")
    op.drop_index("ix_activities_local_created", table_name="activities")

    op.drop_table("activities")
