"""hub search in PostgreSQL: ``hub_search`` with a stored German tsvector and a GIN index
(see node.hub.search_backends). SQLite hubs search in memory, so nothing happens there.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _folded(column: str) -> str:
    """Umlauts in their two-letter spelling, as ``node.hub.search.fold`` does to queries."""
    expression = f"lower({column})"
    for letter, spelled in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss")):
        expression = f"replace({expression}, '{letter}', '{spelled}')"
    return expression


def _weighted(column: str, weight: str) -> str:
    return f"setweight(to_tsvector('german'::regconfig, {_folded(column)}), '{weight}')"


SEARCH_VECTOR = " || ".join(
    (_weighted("title", "A"), _weighted("summary", "B"), _weighted("content_text", "D")))


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_table(
        "hub_search",
        sa.Column("uri", sa.String(2048), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("content_text", sa.Text(), nullable=False),
        sa.Column("author", sa.String(2048), nullable=False),
        sa.Column("topics", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("municipality_key", sa.String(2048), nullable=True),
        sa.Column("ags", sa.String(2048), nullable=True),
        sa.Column("status", sa.String(80), nullable=True),
        sa.Column("published", sa.String(64), nullable=True),
        sa.Column("updated", sa.String(64), nullable=True),
        sa.Column("url", sa.String(2048), nullable=True),
        sa.Column("search", postgresql.TSVECTOR(),
                  sa.Computed(SEARCH_VECTOR, persisted=True), nullable=False),
        sa.PrimaryKeyConstraint("uri", name=op.f("pk_hub_search")),
    )
    op.create_index("ix_hub_search_search", "hub_search", ["search"], postgresql_using="gin")
    op.create_index("ix_hub_search_topics", "hub_search", ["topics"], postgresql_using="gin")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_hub_search_topics", table_name="hub_search")
    op.drop_index("ix_hub_search_search", table_name="hub_search")
    op.drop_table("hub_search")
