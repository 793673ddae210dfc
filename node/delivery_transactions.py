"""Where the delivery queue's write transactions run: each one whole, in one call.

A delivery worker's event loop is busy signing (RSA, ~0.9 ms a request). Through
aiosqlite every statement of a transaction is a round trip to the driver's thread and
back to the loop, so one claim or outcome flush (a handful of statements and a commit)
took 100–770 ms under load, holding the worker's database turn and SQLite's write lock
all that time while the worker had nothing in flight (docs/performance.md, section 2).
On SQLite the whole transaction therefore runs on a thread of the worker's own, through
the stdlib driver, in one hand-off, as the inbox writer does (``node.inbox_writer``).
The write lock is waited for by trying again every millisecond instead of SQLite's busy
handler, whose sleeps grow to 100 ms: a claim takes the lock soon after another
process's transaction frees it.

PostgreSQL (asyncpg, no driver thread) and in-memory SQLite (not shared with a second
engine) run the same work inside the session's greenlet (``run_sync``).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from node.inbox_writer import begin_immediate_waiting, in_transaction
from node.storage.db import _begin_immediate, sync_sqlite_engine

T = TypeVar("T")


def _no_busy_timeout(dbapi_connection: Any, _record: object) -> None:
    # The lock is waited for in _begin_waiting; a busy handler would sleep in steps up to 100 ms.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=0")  # after sync_sqlite_engine's own settings
    cursor.close()


def _begin_waiting(connection: Connection) -> None:
    try:
        begin_immediate_waiting(connection.connection.dbapi_connection)
    except sqlite3.OperationalError as exc:  # as SQLAlchemy wraps its driver's errors
        raise OperationalError("BEGIN IMMEDIATE", None, exc) from exc


def waiting_sqlite_engine(url: str) -> Engine:
    """A stdlib-driver engine on the SQLite file ``url`` whose transactions wait for the
    write lock by retrying every millisecond. ValueError for an in-memory database."""
    engine = sync_sqlite_engine(url)
    event.listen(engine, "connect", _no_busy_timeout)
    event.remove(engine, "begin", _begin_immediate)
    event.listen(engine, "begin", _begin_waiting)
    return engine


class QueueTransactions:
    """Runs ``work(connection)`` in a transaction of its own: on SQLite on this object's
    thread (created on first use, ended by ``close``), otherwise (or with
    ``own_thread=False``: a one-off caller, for whom a thread and a connection of its own
    are not worth starting) through the sessions."""

    def __init__(
        self, session_maker: async_sessionmaker[AsyncSession], *, own_thread: bool = True
    ) -> None:
        self._sessions = session_maker
        self._url: str | None = None
        bind = session_maker.kw.get("bind")
        if own_thread and isinstance(bind, AsyncEngine) and bind.dialect.name == "sqlite":
            if bind.url.database not in (None, "", ":memory:"):
                self._url = bind.url.render_as_string(hide_password=False)
        self._engine: Engine | None = None
        self._thread: ThreadPoolExecutor | None = None

    @property
    def on_own_thread(self) -> bool:
        """Whether transactions run on a thread of their own (SQLite on a file)."""
        return self._url is not None

    async def run(self, work: Callable[[Connection], T]) -> T:
        if self._url is None:
            async with self._sessions() as session, session.begin():
                connection = await session.connection()
                return await connection.run_sync(work)
        if self._engine is None or self._thread is None:
            self._engine = waiting_sqlite_engine(self._url)
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="delivery-db")
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, in_transaction, self._engine, work
        )

    def close(self) -> None:
        """End the thread and close its connection; a later ``run`` starts them again."""
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
