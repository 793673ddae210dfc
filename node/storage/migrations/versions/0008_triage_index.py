"""triage indexes: the contributions (not deleted) of ``remote_objects`` in arrival order
and by author, partial indexes, so a triage page walks its own rows instead of every
contribution and its total counts index entries (``node.hub.triage``). The condition must
stay what ``node.hub.triage`` renders.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

INDEXES = {"ix_remote_objects_contributions_received": ["received_at", "id"],
           "ix_remote_objects_contributions_author": ["attributed_to"]}
CONTRIBUTIONS = "kind IN ('Practice', 'Experience', 'Material') AND deleted IS "


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "remote_objects", columns,
                        sqlite_where=sa.text(CONTRIBUTIONS + "0"),
                        postgresql_where=sa.text(CONTRIBUTIONS + "false"))


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="remote_objects")
