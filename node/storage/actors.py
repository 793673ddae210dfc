"""Remote actors are written with one upsert statement.

An API follow and the inbox worker (storing the follower) may store the same actor at
the same moment; a read-then-insert would let one of them fail on the primary key.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from node.storage.models import RemoteActor
from node.storage.upsert import insert_for

REFRESHED_COLUMNS = (
    "inbox", "shared_inbox", "outbox", "followers_url", "name",
    "preferred_username", "kind", "document", "fetched_at",
)  # fmt: skip


async def upsert_remote_actor(session: AsyncSession, row: RemoteActor) -> None:
    """Insert ``row`` (a transient object, never added to the session) or refresh the stored one."""
    values = {"uri": row.uri, **{column: getattr(row, column) for column in REFRESHED_COLUMNS}}
    statement = insert_for(session.get_bind().dialect.name, RemoteActor).values(values)
    statement = statement.on_conflict_do_update(
        index_elements=[RemoteActor.uri],
        set_={column: statement.excluded[column] for column in REFRESHED_COLUMNS},
    )
    await session.execute(statement)
