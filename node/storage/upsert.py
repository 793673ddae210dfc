"""``INSERT ... ON CONFLICT`` for the database in use (PostgreSQL or SQLite).

Why the dialect modules are imported on first use: ``sqlalchemy.dialects.postgresql``
imports every PostgreSQL driver's module (20 modules, ~2 MiB resident, 50–150 ms at
start-up), which a node on SQLite never needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import Insert as PostgresInsert
    from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
    from sqlalchemy.sql._typing import _DMLTableArgument


def insert_for(dialect_name: str, table: _DMLTableArgument) -> PostgresInsert | SqliteInsert:
    """The dialect's ``insert(table)``, which offers ``on_conflict_do_nothing/update``."""
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgres_insert

        return postgres_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)
