"""hub tables: members, sections, decisions and placements, editions, topic followers,
index watermark (see node.hub.tables).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Stamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    _create_hub_members()
    _create_hub_sections()
    _create_hub_decisions()
    _create_hub_placements()
    _create_hub_editions()
    _create_hub_topic_followers()
    _create_hub_index_state()


def _create_hub_members() -> None:
    op.create_table(
        "hub_members",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("actor_uri", sa.String(2048), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(40), nullable=True),
        sa.Column("ags", sa.String(8), nullable=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("follow_activity_uri", sa.String(2048), nullable=True),
        sa.Column("applied_at", Stamp, nullable=False),
        sa.Column("decided_at", Stamp, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hub_members")),
        sa.UniqueConstraint("actor_uri", name=op.f("uq_hub_members_actor_uri")),
    )


def _create_hub_sections() -> None:
    op.create_table(
        "hub_sections",
        sa.Column("slug", sa.String(80), nullable=False),
        sa.Column("title_de", sa.Text(), nullable=False),
        sa.Column("title_en", sa.Text(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("parent", sa.String(80), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("updated_at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("slug", name=op.f("pk_hub_sections")),
    )


def _create_hub_decisions() -> None:
    op.create_table(
        "hub_decisions",
        sa.Column("contribution_uri", sa.String(2048), nullable=False),
        sa.Column("decision", sa.String(20), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("decided_at", Stamp, nullable=False),
        sa.Column("decided_by", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("contribution_uri", name=op.f("pk_hub_decisions")),
    )


def _create_hub_placements() -> None:
    op.create_table(
        "hub_placements",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("contribution_uri", sa.String(2048), nullable=False),
        sa.Column("section_slug", sa.String(80), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contribution_uri"], ["hub_decisions.contribution_uri"],
            name=op.f("fk_hub_placements_contribution_uri_hub_decisions"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hub_placements")),
        sa.UniqueConstraint("contribution_uri", "section_slug",
                            name=op.f("uq_hub_placements_contribution_uri_section_slug")),
    )
    op.create_index(op.f("ix_hub_placements_section_slug"), "hub_placements", ["section_slug"])


def _create_hub_editions() -> None:
    op.create_table(
        "hub_editions",
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("manifest_hash", sa.String(64), nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.Column("frozen_by", sa.String(100), nullable=False),
        sa.Column("published_at", Stamp, nullable=True),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_hub_editions")),
        sa.UniqueConstraint("manifest_hash", name=op.f("uq_hub_editions_manifest_hash")),
    )


def _create_hub_topic_followers() -> None:
    op.create_table(
        "hub_topic_followers",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("topic", sa.String(80), nullable=False),
        sa.Column("actor_uri", sa.String(2048), nullable=False),
        sa.Column("inbox", sa.String(2048), nullable=False),
        sa.Column("shared_inbox", sa.String(2048), nullable=True),
        sa.Column("follow_activity_uri", sa.String(2048), nullable=False),
        sa.Column("created_at", Stamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hub_topic_followers")),
        sa.UniqueConstraint("topic", "actor_uri", name=op.f("uq_hub_topic_followers_topic_actor_uri")),
    )
    op.create_index(op.f("ix_hub_topic_followers_topic"), "hub_topic_followers", ["topic"])


def _create_hub_index_state() -> None:
    op.create_table(
        "hub_index_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("synced_until", Stamp, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hub_index_state")),
    )


def downgrade() -> None:
    op.drop_table("hub_index_state")
    op.drop_index(op.f("ix_hub_topic_followers_topic"), table_name="hub_topic_followers")
    op.drop_table("hub_topic_followers")
    op.drop_table("hub_editions")
    op.drop_index(op.f("ix_hub_placements_section_slug"), table_name="hub_placements")
    op.drop_table("hub_placements")
    op.drop_table("hub_decisions")
    op.drop_table("hub_sections")
    op.drop_table("hub_members")
