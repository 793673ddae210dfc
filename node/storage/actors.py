"""Remote actors are written with one upsert statement.

An API follow and the inbox worker (storing the follower) may store the same actor at
the same moment; a read-then-insert would let one of them fail on the primary key.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from node.storage.models import RemoteActor
from node.storage.upsert import insert_for

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import Insert as PostgresInsert
    from sqlalchemy.dialects.sqlite import Insert as SqliteInsert

REFRESHED_COLUMNS = (
    "inbox", "shared_inbox", "outbox", "followers_url", "name",
    "preferred_username", "kind", "document", "fetched_at",
)  # fmt: skip


@lru_cache(maxsize=4)  # pure: one statement per dialect, its values bound at execution
def actor_upsert(dialect_name: str) -> PostgresInsert | SqliteInsert:
    """The upsert of one remote actor; execute it with ``actor_values(row)``. Built once
    (and so compiled once): a first contact with an actor used to build and compile it anew."""
    statement = insert_for(dialect_name, RemoteActor)
    return statement.on_conflict_do_update(
        index_elements=[RemoteActor.uri],
        set_={column: statement.excluded[column] for column in REFRESHED_COLUMNS},
    )


def actor_values(row: RemoteActor) -> dict[str, object]:
    return {"uri": row.uri, **{column: getattr(row, column) for column in REFRESHED_COLUMNS}}


async def upsert_remote_actor(session: AsyncSession, row: RemoteActor) -> None:
    """Insert ``row`` (a transient object, never added to the session) or refresh the stored one."""
    await session.execute(actor_upsert(session.get_bind().dialect.name), actor_values(row))
