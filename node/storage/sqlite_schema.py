"""The SQLite schema the migrations build, bundled for a new database.

A node's first start imported Alembic (with Mako and Pygments: ~150 ms) and ran every
migration (~80 ms) only to build an empty schema: ~0.25 s of a 1.35 s first start
(docs/performance.md, section 4). On an empty SQLite database ``node.storage.db.migrate``
runs the statements of ``sqlite_schema.sql`` instead (the ``CREATE`` statements the
migrations leave in ``sqlite_master``, in the order SQLite keeps them) and records the
head revision, in the migration's one transaction. The file names the revision it was
made at: once a new migration makes it stale, ``migrate`` goes through Alembic as before,
and tests/test_sqlite_schema.py fails until the file is made again with

    python -m node.storage.sqlite_schema

(which migrates a scratch database through Alembic and writes what it finds). PostgreSQL
and every database that is not empty always go through Alembic.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Connection

SNAPSHOT = Path(__file__).with_name("sqlite_schema.sql")
_REVISION = "-- revision: "
_HEADER = (
    "-- The SQLite schema that node/storage/migrations build, for a new database\n"
    "-- (node/storage/sqlite_schema.py). Made by: python -m node.storage.sqlite_schema\n"
)
# What SQLite makes itself: autoindexes have no SQL, sqlite_sequence and sqlite_stat* are
# created on first use.
_SCHEMA_SQL = ("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL "
               "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid")


@dataclass(frozen=True)
class SchemaSnapshot:
    """The statements that build the schema, and the revisions it is at."""

    revisions: frozenset[str]
    statements: tuple[str, ...]

    def render(self) -> str:
        revisions = "".join(f"{_REVISION}{revision}\n" for revision in sorted(self.revisions))
        return _HEADER + revisions + "".join(f"\n{statement};\n" for statement in self.statements)


def parse_snapshot(content: str) -> SchemaSnapshot:
    """The snapshot in ``content`` (as ``SchemaSnapshot.render`` writes it)."""
    revisions: set[str] = set()
    statements: list[str] = []
    pending = ""
    for line in content.splitlines(keepends=True):
        if not pending and line.startswith(_REVISION):
            revisions.add(line[len(_REVISION):].strip())
            continue
        if not pending and (not line.strip() or line.startswith("--")):
            continue
        pending += line
        if sqlite3.complete_statement(pending):  # a ';' inside a string does not end one
            statements.append(pending.strip().removesuffix(";").rstrip())
            pending = ""
    if pending.strip() or not revisions or not statements:
        raise ValueError("the SQLite schema snapshot is incomplete")
    return SchemaSnapshot(frozenset(revisions), tuple(statements))


@cache
def bundled_snapshot() -> SchemaSnapshot:
    return parse_snapshot(SNAPSHOT.read_text(encoding="utf-8"))


def build_from_snapshot(connection: Connection, heads: frozenset[str],
                        snapshot: SchemaSnapshot | None = None) -> bool:
    """In the caller's transaction: if ``connection`` is an empty SQLite database and the
    snapshot is at ``heads``, build the schema from it and record the revisions; True
    then. False (nothing done) for anything else: Alembic migrates those."""
    if connection.dialect.name != "sqlite":
        return False
    if connection.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar_one():
        return False
    snapshot = bundled_snapshot() if snapshot is None else snapshot
    if snapshot.revisions != heads:
        return False  # stale: a migration came after it (a test says so too)
    for statement in snapshot.statements:
        connection.exec_driver_sql(statement)
    for revision in sorted(heads):
        connection.execute(text("INSERT INTO alembic_version (version_num) VALUES (:revision)"),
                           {"revision": revision})
    return True


def schema_of(database: Path) -> SchemaSnapshot:
    """The schema statements and recorded revisions of a SQLite database file."""
    with sqlite3.connect(database) as connection:
        statements = tuple(sql for (sql,) in connection.execute(_SCHEMA_SQL))
        revisions = frozenset(row[0] for row in
                              connection.execute("SELECT version_num FROM alembic_version"))
    return SchemaSnapshot(revisions, statements)


async def migrated_schema() -> SchemaSnapshot:
    """The schema the migrations build, read off a scratch database migrated by Alembic."""
    # Imported here: node.storage.db imports this module for the new-database path.
    from node.storage.db import create_engine, migrate

    with tempfile.TemporaryDirectory(prefix="praxisnetz-schema-") as scratch:
        database = Path(scratch) / "schema.db"
        engine = create_engine(f"sqlite+aiosqlite:///{database}")
        try:
            await migrate(engine, from_snapshot=False)
        finally:
            await engine.dispose()
        return schema_of(database)


def main() -> int:
    SNAPSHOT.write_text(asyncio.run(migrated_schema()).render(), encoding="utf-8")
    print(f"wrote {SNAPSHOT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
