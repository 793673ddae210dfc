"""deliveries in due order: ``(state, next_attempt_at, id)`` instead of ``(state,
next_attempt_at)``, the order a claim walks (``node.delivery_queue``). SQLite's index
ended in the rowid anyway; PostgreSQL's did not, so its claim sorted every due row of
the branch at each claim.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_deliveries_due", "deliveries", ["state", "next_attempt_at", "id"])
    op.drop_index("ix_deliveries_state_next_attempt", table_name="deliveries")


def downgrade() -> None:
    op.create_index("ix_deliveries_state_next_attempt", "deliveries", ["state", "next_attempt_at"])
    op.drop_index("ix_deliveries_due", table_name="deliveries")
