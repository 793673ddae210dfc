"""A new SQLite database gets the bundled schema (``node.storage.sqlite_schema``): the
same schema the migrations build, recorded at the same revision, without Alembic; a
stale snapshot, a database that is not empty and PostgreSQL still go through Alembic."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from node.storage import sqlite_schema
from node.storage.db import create_engine, current_revisions, migrate, script_heads
from node.storage.sqlite_schema import (
    SchemaSnapshot,
    build_from_snapshot,
    bundled_snapshot,
    migrated_schema,
    parse_snapshot,
)

REPO = Path(__file__).resolve().parent.parent


def _master(database: Path) -> list[tuple[str, str, str, str | None]]:
    """Every schema object of the file, SQLite's own autoindexes included."""
    with sqlite3.connect(database) as connection:
        return connection.execute("SELECT type, name, tbl_name, sql FROM sqlite_master "
                                  "ORDER BY type, name").fetchall()


async def _migrate(database: Path, **options: bool) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    try:
        await migrate(engine, **options)
    finally:
        await engine.dispose()


async def test_the_bundled_schema_is_what_the_migrations_build() -> None:
    # Fails after a new migration until `python -m node.storage.sqlite_schema` is run.
    assert await migrated_schema() == bundled_snapshot()
    assert bundled_snapshot().revisions == script_heads()


async def test_a_new_database_from_the_snapshot_equals_a_migrated_one(tmp_path: Path) -> None:
    await _migrate(tmp_path / "snapshot.db")
    await _migrate(tmp_path / "alembic.db", from_snapshot=False)
    from_snapshot, from_alembic = _master(tmp_path / "snapshot.db"), _master(tmp_path / "alembic.db")
    assert len(from_snapshot) > 40 and from_snapshot == from_alembic
    for database in ("snapshot.db", "alembic.db"):
        with sqlite3.connect(tmp_path / database) as connection:
            assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [
                (revision,) for revision in sorted(script_heads())]


async def test_a_new_database_is_built_without_alembic(tmp_path: Path) -> None:
    script = f"""
import asyncio, json, sys
from node.storage.db import create_engine, migrate
async def main():
    engine = create_engine({f"sqlite+aiosqlite:///{tmp_path / 'new.db'}"!r})
    await migrate(engine)
    await engine.dispose()
asyncio.run(main())
print(json.dumps(sorted(sys.modules)))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=True)
    modules = json.loads(done.stdout.splitlines()[-1])
    assert not [name for name in modules if name == "alembic" or name.startswith("alembic.")]
    assert len(_master(tmp_path / "new.db")) > 40  # and the schema is there


async def test_a_stale_snapshot_goes_to_alembic(tmp_path: Path, monkeypatch) -> None:
    stale = SchemaSnapshot(frozenset({"0007"}), ("CREATE TABLE only_in_the_stale_snapshot (x)",))
    monkeypatch.setattr(sqlite_schema, "bundled_snapshot", lambda: stale)
    await _migrate(tmp_path / "node.db")
    names = {name for _, name, _, _ in _master(tmp_path / "node.db")}
    assert "only_in_the_stale_snapshot" not in names and "inbox_items" in names
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'node.db'}")
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(current_revisions) == script_heads()
    finally:
        await engine.dispose()


async def test_a_database_that_is_not_empty_is_left_to_alembic(tmp_path: Path) -> None:
    database = tmp_path / "used.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE someone_elses (x)")
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    try:
        async with engine.begin() as connection:
            built = await connection.run_sync(build_from_snapshot, script_heads())
    finally:
        await engine.dispose()
    assert built is False
    assert [name for _, name, _, _ in _master(database)] == ["someone_elses"]


async def test_a_failing_statement_leaves_the_new_database_empty(tmp_path: Path,
                                                                 monkeypatch) -> None:
    good = bundled_snapshot()
    broken = SchemaSnapshot(good.revisions, (*good.statements[:5], "CREATE TABLE (", *good.statements[5:]))
    monkeypatch.setattr(sqlite_schema, "bundled_snapshot", lambda: broken)
    with pytest.raises(Exception, match="syntax error"):  # noqa: B017 - the driver's error
        await _migrate(tmp_path / "node.db")
    assert _master(tmp_path / "node.db") == []  # one transaction: nothing half-built


def test_statements_end_where_sqlite_says_they_end() -> None:
    content = ("-- a comment\n-- revision: 0042\n\n"
               "CREATE TABLE a (x TEXT CHECK (x != ';'));\n\n"
               "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n  DELETE FROM a;\nEND;\n")
    snapshot = parse_snapshot(content)
    assert snapshot.revisions == frozenset({"0042"})
    assert snapshot.statements == ("CREATE TABLE a (x TEXT CHECK (x != ';'))",
                                   "CREATE TRIGGER t AFTER INSERT ON a BEGIN\n  DELETE FROM a;\nEND")
    assert parse_snapshot(snapshot.render()) == snapshot
    with sqlite3.connect(":memory:") as connection:  # and SQLite takes them as they are
        for statement in snapshot.statements:
            connection.execute(statement)


@pytest.mark.parametrize("content", ["-- revision: 0008\nCREATE TABLE a (x\n",
                                     "CREATE TABLE a (x);\n", "-- revision: 0008\n"])
def test_an_incomplete_snapshot_is_refused(content: str) -> None:
    with pytest.raises(ValueError, match="incomplete"):
        parse_snapshot(content)


def test_postgresql_is_never_built_from_the_snapshot() -> None:
    # No server needed: the dialect is looked at before anything runs.
    class Dialect:
        name = "postgresql"

    class Connection:
        dialect = Dialect()

        def exec_driver_sql(self, *_: object) -> None:
            raise AssertionError("nothing may run on PostgreSQL")

    assert build_from_snapshot(Connection(), script_heads()) is False  # type: ignore[arg-type]


async def test_the_revision_is_bound_not_spliced(tmp_path: Path) -> None:
    # A quote in a revision stays data.
    database = tmp_path / "node.db"
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    snapshot = SchemaSnapshot(frozenset({"it's"}), bundled_snapshot().statements)
    try:
        async with engine.begin() as connection:
            assert await connection.run_sync(build_from_snapshot, frozenset({"it's"}), snapshot)
            rows = (await connection.execute(text("SELECT version_num FROM alembic_version"))).all()
    finally:
        await engine.dispose()
    assert [tuple(row) for row in rows] == [("it's",)]
