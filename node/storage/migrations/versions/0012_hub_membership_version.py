"""a number that changes whenever ``hub_members`` changes, kept by the database itself.

The hub's sync read every approved member's actor id at each run to see who joined or
left: 15–37 ms for 11,000 members on SQLite, at every sync (every 2 s, and up to every
0.15 s while activities arrive), most of the sync's time. Now it reads this one row and
reads the members only when the number moved. Triggers keep it, so that every change
counts: the hub's own code in any process, a worker's, and an operator's SQL alike. The
row is made by the first change (an upsert); no row reads as version 0.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_BUMP = ("INSERT INTO hub_membership_version (id, version) VALUES (1, 1) "
         "ON CONFLICT (id) DO UPDATE SET version = hub_membership_version.version + 1")
# what changes the set of approved members' actor ids
_SQLITE_EVENTS = {"insert": "INSERT", "update": "UPDATE OF state, actor_uri", "delete": "DELETE"}


def upgrade() -> None:
    op.create_table(
        "hub_membership_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hub_membership_version")),
    )
    if op.get_bind().dialect.name == "sqlite":
        for name, when in _SQLITE_EVENTS.items():
            op.execute(f"CREATE TRIGGER hub_members_changed_{name} AFTER {when} ON hub_members "
                       f"BEGIN {_BUMP}; END")
        return
    op.execute("CREATE FUNCTION hub_membership_changed() RETURNS trigger LANGUAGE plpgsql AS "
               f"$$ BEGIN {_BUMP}; RETURN NULL; END $$")
    op.execute("CREATE TRIGGER hub_members_changed AFTER INSERT OR DELETE OR "
               "UPDATE OF state, actor_uri OR TRUNCATE ON hub_members "
               "FOR EACH STATEMENT EXECUTE FUNCTION hub_membership_changed()")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in _SQLITE_EVENTS:
            op.execute(f"DROP TRIGGER hub_members_changed_{name}")
    else:
        op.execute("DROP TRIGGER hub_members_changed ON hub_members")
        op.execute("DROP FUNCTION hub_membership_changed()")
    op.drop_table("hub_membership_version")
