"""Async engine factory and programmatic Alembic migrations.

SQLite gets WAL, a busy timeout and foreign keys on every connection, and every
transaction starts with ``BEGIN IMMEDIATE`` (but those of a session marked
``READS_ONLY``): a deferred transaction that read first cannot upgrade to a write lock
once another writer committed (SQLite answers "database is locked" at once, without
waiting), while an immediate one queues on the busy timeout. This is SQLAlchemy's
documented recipe for pysqlite/aiosqlite (the driver's own BEGIN is switched off, ours is
emitted). PostgreSQL runs through asyncpg.
Migrations run from code (no ``alembic.ini``). Alembic (with Mako and Pygments) is
imported only when the schema is behind: ``migrate`` first compares the database's
revision with the head revisions read from the migration scripts' text, which costs a
query instead of ~0.2 s of imports at every start-up; a new SQLite database gets the
bundled schema of ``node.storage.sqlite_schema``.
"""

from __future__ import annotations

import ast
import re
import sqlite3
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import event, inspect, make_url, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from node.storage.sqlite_schema import build_from_snapshot

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 15_000
T = TypeVar("T")
MIGRATION_LOCK_KEY = 0x50_52_41_58  # "PRAX": any constant shared by all node processes
VERSION_TABLE = "alembic_version"
_REVISION_ASSIGNMENT = re.compile(r"^(down_revision|revision)\s*(?::[^=\n]*)?=\s*(.+)$", re.M)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _configure_sqlite(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
    # the driver must not emit BEGIN itself (nor COMMIT before DDL): _begin_immediate does
    dbapi_connection.isolation_level = None


# Execution options of a session that only reads, for long (a hub's fill reads every
# document for half a minute and more): on SQLite it begins DEFERRED, a snapshot of the
# WAL that takes no write lock, so the inbox and the workers write meanwhile. Given
# before the session's first statement: ``session.connection(execution_options=...)``.
READS_ONLY = {"praxisnetz_reads_only": True}


def _begin_immediate(connection: Connection) -> None:
    if connection.get_execution_options().get("praxisnetz_reads_only"):
        connection.exec_driver_sql("BEGIN")
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(
    url: str, *, connect_args: dict[str, Any] | None = None, **kwargs: Any
) -> AsyncEngine:
    """An async engine for ``sqlite+aiosqlite://`` or ``postgresql+asyncpg://`` URLs."""
    args = dict(connect_args or {})
    if is_sqlite(url):
        args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
        engine = create_async_engine(url, connect_args=args, **kwargs)
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
        event.listen(engine.sync_engine, "begin", _begin_immediate)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, connect_args=args, **kwargs)


def _synchronous_full(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()


# A waiting engine's own wait for SQLite's write lock (its connections have no busy
# timeout): SQLite's busy handler sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100 ms
# between tries, so a connection that found the lock taken by a short transaction slept
# 25–100 ms more (measured: 3.6 s of BEGIN IMMEDIATE waits in a 10 s inbox run; delivery
# workers idle 25–38% of the time). Trying every millisecond, it takes the lock soon
# after it is free. A try is one driver call (a few µs); through SQLAlchemy (a failed
# begin, its exception, the rollback) it cost ~100 µs.
LOCK_RETRY_SECONDS = 0.001
LOCK_WAIT_SECONDS = SQLITE_BUSY_TIMEOUT_MS / 1000


def _no_busy_timeout(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=0")  # after _configure_sqlite's
    cursor.close()


def _is_locked(exc: sqlite3.OperationalError) -> bool:
    return str(exc) in ("database is locked", "database is busy")


def retry_while_locked(attempt: Callable[[], T], *, wait: float = LOCK_WAIT_SECONDS) -> T:
    """``attempt()`` (one driver call that takes SQLite's write lock), tried again every
    millisecond while another connection holds that lock, at most ``wait`` seconds (the
    busy timeout elsewhere); then SQLite's error. Any other error at once."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return attempt()
        except sqlite3.OperationalError as exc:
            if not _is_locked(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(LOCK_RETRY_SECONDS)


def begin_immediate_waiting(raw: Any, *, wait: float = LOCK_WAIT_SECONDS) -> None:
    """``BEGIN IMMEDIATE`` on the stdlib connection ``raw``, waiting for the write lock
    by ``retry_while_locked``."""
    retry_while_locked(lambda: raw.execute("BEGIN IMMEDIATE"), wait=wait)


def _begin_immediate_waiting(connection: Connection) -> None:
    try:
        begin_immediate_waiting(connection.connection.dbapi_connection)
    except sqlite3.OperationalError as exc:  # as SQLAlchemy wraps its driver's errors
        raise OperationalError("BEGIN IMMEDIATE", None, exc) from exc


def sync_sqlite_engine(
    url: str, *, fsync_each_commit: bool = False, wait_for_lock: bool = False
) -> Engine:
    """A synchronous engine (the stdlib driver) on the same SQLite file, configured like
    the async one, for work that runs on a thread of its own in one go: one hand-off to
    that thread per transaction instead of one per driver call (the inbox writer).

    ``fsync_each_commit``: ``synchronous=FULL`` on its connections. In WAL mode NORMAL
    (the default here) keeps a commit across a crash of the process but not of the
    machine (the WAL is synced only at checkpoints); FULL syncs it at every commit.
    ``wait_for_lock``: no busy handler; ``BEGIN IMMEDIATE`` is retried every millisecond
    (see ``LOCK_RETRY_SECONDS``), for a thread whose transactions others wait on.
    """
    sync_url = make_url(url).set(drivername="sqlite")
    if sync_url.database in (None, "", ":memory:"):
        raise ValueError("an in-memory SQLite database is not shared with a second engine")
    engine = create_sync_engine(sync_url, connect_args={
        "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})
    event.listen(engine, "connect", _configure_sqlite)
    if fsync_each_commit:
        event.listen(engine, "connect", _synchronous_full)  # after _configure_sqlite
    if wait_for_lock:
        event.listen(engine, "connect", _no_busy_timeout)
        event.listen(engine, "begin", _begin_immediate_waiting)
    else:
        event.listen(engine, "begin", _begin_immediate)
    return engine


def session_maker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@cache
def script_heads() -> frozenset[str]:
    """Head revisions of the migration scripts: revisions that no script names as its
    ``down_revision`` (tests check this agrees with Alembic's own script directory)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (MIGRATIONS_DIR / "versions").glob("*.py"):
        for name, value in _REVISION_ASSIGNMENT.findall(script.read_text(encoding="utf-8")):
            named = ast.literal_eval(value.strip())
            names = {named} if isinstance(named, str) else set(named or ())
            (revisions if name == "revision" else parents).update(names)
    return frozenset(revisions - parents)


def current_revisions(connection: Connection) -> frozenset[str]:
    """The revisions recorded in the database (empty before the first migration)."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return frozenset()
    rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))
    return frozenset(row[0] for row in rows)


def alembic_config() -> AlembicConfig:
    from alembic.config import Config as AlembicConfig  # why lazy: see the module docstring

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _upgrade(connection: Connection, revision: str, from_snapshot: bool) -> None:
    if revision == "head":
        current = current_revisions(connection)
        if current == script_heads():
            return
        if not current and from_snapshot and build_from_snapshot(connection, script_heads()):
            return  # a new SQLite database: the bundled schema, without Alembic
    from alembic import command

    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _downgrade(connection: Connection, revision: str) -> None:
    from alembic import command

    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


async def migrate(engine: AsyncEngine, revision: str = "head", *,
                  from_snapshot: bool = True) -> None:
    """Bring the schema up to ``revision`` (idempotent). A new SQLite database gets the
    head's schema from ``node.storage.sqlite_schema`` unless ``from_snapshot`` is False.

    On PostgreSQL several processes (``serve`` and ``worker``) may start at once; a
    transaction-scoped advisory lock lets one migrate while the others wait and then
    find the schema current. (Alembic keeps global state: one migration per process.)
    """
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        await connection.run_sync(_upgrade, revision, from_snapshot)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(_downgrade, revision)
