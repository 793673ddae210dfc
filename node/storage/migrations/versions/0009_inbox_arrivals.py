"""inbox arrivals: received activities committed while the inbox is saturated, appended
to a table without any index but the rowid and moved into ``inbox_items`` when claimed
(``node.inbox_sqlite``, ``node.inbox_queue``). Written on SQLite only; PostgreSQL has the
table so both schemas stay one.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbox_arrivals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("activity_uri", sa.String(length=2048), nullable=False),
        sa.Column("inbox", sa.String(length=20), nullable=False),
        sa.Column("actor", sa.String(length=2048), nullable=False),
        sa.Column("remote_host", sa.String(length=255), nullable=False),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_arrivals")),
    )


def downgrade() -> None:
    op.drop_table("inbox_arrivals")
