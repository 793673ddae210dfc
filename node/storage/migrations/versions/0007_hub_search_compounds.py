"""hub search inside compounds: ``hub_search.compound_parts``, a tsvector of the inner
parts of every word (computed in Python by ``node.hub.search_backends.compound_parts``),
with a GIN index; existing rows are filled in here. SQLite hubs search in memory, so
nothing happens there.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BACKFILL_BATCH = 500


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.add_column("hub_search", sa.Column(
        "compound_parts", postgresql.TSVECTOR(), nullable=False,
        server_default=sa.text("''::tsvector")))
    _backfill()
    # After the backfill: filling an indexed column row by row costs more than one build.
    op.create_index("ix_hub_search_compound_parts", "hub_search", ["compound_parts"],
                    postgresql_using="gin")


def _backfill() -> None:
    """Page through the rows by URI (keyset), so a national hub's texts are never all
    in memory at once."""
    connection = op.get_bind()
    if connection.execute(sa.text("SELECT NOT EXISTS (SELECT FROM hub_search)")).scalar_one():
        return
    # Imported only when there is something to fill: a small node's migrations must not
    # load the hub role (tests/test_small_node.py).
    from node.hub.search_backends import compound_parts

    select = sa.text(
        "SELECT uri, title, summary, content_text FROM hub_search WHERE uri > :after "
        "ORDER BY uri LIMIT :batch")
    update = sa.text(
        "UPDATE hub_search SET compound_parts = CAST(:parts AS tsvector) WHERE uri = :uri")
    after = ""
    while rows := connection.execute(select, {"after": after, "batch": BACKFILL_BATCH}).all():
        connection.execute(update, [
            {"uri": row.uri, "parts": compound_parts(row.title, row.summary, row.content_text)}
            for row in rows])
        after = rows[-1].uri


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_hub_search_compound_parts", table_name="hub_search")
    op.drop_column("hub_search", "compound_parts")
