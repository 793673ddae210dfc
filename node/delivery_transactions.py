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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from node.inbox_sqlite import in_transaction
from node.storage.db import sync_sqlite_engine

T = TypeVar("T")


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
            self._engine = sync_sqlite_engine(self._url, wait_for_lock=True)
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
