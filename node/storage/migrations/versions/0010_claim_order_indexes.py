"""claim order indexes: each queue's index ends in the order its claims walk
(``node.claim_order``), so a claim reads its first rows instead of sorting every
claimable one.

- deliveries: ``(state, next_attempt_at, id)`` instead of ``(state, next_attempt_at)``.
- inbox_items: ``(state, received_at, id)`` instead of ``(state, received_at)``.

SQLite's indexes ended in the rowid anyway; PostgreSQL's did not, so a branch's rows of
equal time would still be sorted at each claim.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# table: (new index, its columns, the index it replaces, that one's columns)
INDEXES = {
    "deliveries": ("ix_deliveries_due", ["state", "next_attempt_at", "id"],
                   "ix_deliveries_state_next_attempt", ["state", "next_attempt_at"]),
    "inbox_items": ("ix_inbox_items_arrival", ["state", "received_at", "id"],
                    "ix_inbox_items_state_received", ["state", "received_at"]),
}


def upgrade() -> None:
    for table, (name, columns, replaced, _) in INDEXES.items():
        op.create_index(name, table, columns)
        op.drop_index(replaced, table_name=table)


def downgrade() -> None:
    for table, (name, _, replaced, replaced_columns) in INDEXES.items():
        op.create_index(replaced, table, replaced_columns)
        op.drop_index(name, table_name=table)
