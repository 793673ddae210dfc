"""Group commit for the inbox: many requests' rows, one transaction, then every 202.

Each inbox request hands its row to the one writer task of its process and waits on a
future. The writer takes everything that queued up while its previous transaction ran
(up to ``MAX_BATCH`` rows), checks the queue limit once for the batch, inserts the rows
with one multi-row ``INSERT … ON CONFLICT DO NOTHING`` (known ids: ``RETURNING`` on
PostgreSQL, a ``SELECT`` under the write lock on SQLite), commits, and only then
resolves the futures: a 202 still means the activity is committed. If the transaction
fails, every request of the batch gets the error (and answers 503); none is told
"stored". Under light load a batch is one row, as before; under load the cost of a
transaction (BEGIN IMMEDIATE, the fsync of the commit, the hand-off to the driver's
thread) is shared by all the rows that arrived meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import sqlite3
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TypeVar

from sqlalchemy import func, make_url, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection

from node.storage.db import begin_immediate_waiting, sync_sqlite_engine
from node.storage.models import InboxItem, InboxState
from node.storage.upsert import insert_for

log = logging.getLogger("praxisnetz.inbox")

MAX_BATCH = 256  # rows per transaction: 8 columns each stay far below SQLite's bind limit
_WAITING = (InboxState.RECEIVED.value, InboxState.RETRY.value, InboxState.PROCESSING.value)
T = TypeVar("T")


@dataclass(frozen=True)
class InboxRow:
    """One received, verified activity as it is stored (state ``received``)."""

    activity_uri: str
    inbox: str
    actor: str
    remote_host: str
    raw: dict[str, object]
    received_at: datetime
    # ``raw`` as the sender's JSON text, when the inbox has it (the body it parsed): SQLite
    # stores that text as it is instead of serializing ``raw`` again on the writer's
    # thread (~10 µs a row, holding the GIL the event loop needs). Same document on
    # reading; PostgreSQL's driver takes ``raw`` itself.
    raw_json: str | None = None

    def values(self) -> dict[str, object]:
        return {"activity_uri": self.activity_uri, "inbox": self.inbox, "actor": self.actor,
                "remote_host": self.remote_host, "raw": self.raw,
                "received_at": self.received_at, "state": InboxState.RECEIVED.value,
                "attempts": 0}


@dataclass(frozen=True)
class DoorLoad:
    """How busy the inbox is, as the inbox worker asks before processing a batch."""

    idle_for: float  # seconds since a request last handed in a row (infinite if none did)
    saturated: bool  # requests queue for the writer: its recent batches held several rows


IDLE_DOOR = DoorLoad(math.inf, saturated=False)


class BatchPressure:
    """Whether requests are queueing: the writer's batches of the last ``window`` seconds
    held ``rows`` rows or more on average.

    A stream the process keeps up with gives batches of one row (each row is committed
    before the next request's arrives: 200/s, 1.0 row a batch); a door that has more
    requests than it can answer gives batches of everything that arrived meanwhile (the
    ingest benchmark's 32 in flight: 6-11 rows a batch). One large batch after the inbox
    worker held the writer's thread is diluted by the one-row batches around it.
    """

    WINDOW_SECONDS = 0.25
    SATURATED_ROWS = 4.0

    def __init__(self, *, window: float = WINDOW_SECONDS, rows: float = SATURATED_ROWS,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._window = window
        self._threshold = rows
        self._monotonic = monotonic
        self._batches: deque[tuple[float, int]] = deque()
        self._rows = 0

    def batch(self, rows: int) -> None:
        """The writer took a batch of ``rows`` rows."""
        now = self._monotonic()
        self._batches.append((now, rows))
        self._rows += rows
        self._forget_before(now - self._window)

    def saturated(self) -> bool:
        self._forget_before(self._monotonic() - self._window)
        return bool(self._batches) and self._rows >= self._threshold * len(self._batches)

    def _forget_before(self, moment: float) -> None:
        while self._batches and self._batches[0][0] < moment:
            self._rows -= self._batches.popleft()[1]


class DoorMarks:
    """The inbox's load for a worker in another process (``praxisnetz worker``, the worker
    process of ``[server] processes``): the modification times of two files beside the
    SQLite database, touched by every process's inbox writer when a request hands in a row
    and when its batches show saturation (at most every ``EVERY_SECONDS``: a system call,
    a few microseconds). Reading them is two ``stat`` calls, where polling the queue's
    table (``node.inbox_queue.QueueWatch``) cost a session and a query each time.
    """

    EVERY_SECONDS = 0.01

    def __init__(self, database: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.stored = Path(f"{database}-inbox-stored")
        self.saturated = Path(f"{database}-inbox-saturated")
        self._clock = clock
        self._touched = {self.stored: -math.inf, self.saturated: -math.inf}
        self._broken = False

    @classmethod
    def for_url(cls, url: str) -> DoorMarks | None:
        """The marks of a SQLite database file; None elsewhere (nothing shared to mark)."""
        parsed = make_url(url)
        if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
            return None
        return cls(Path(parsed.database).resolve())

    def mark_stored(self) -> None:
        self._touch(self.stored)

    def mark_saturated(self) -> None:
        self._touch(self.saturated)

    def stored_at(self) -> float:
        """When a request last handed in a row (the mark's modification time; minus
        infinity while no writer made it)."""
        return _modified(self.stored)

    def load(self) -> DoorLoad:
        """The load the marks show (an idle door while no writer made them)."""
        now = self._clock()
        stored, saturated = _modified(self.stored), _modified(self.saturated)
        return DoorLoad(max(0.0, now - stored),
                        saturated=now - saturated < BatchPressure.WINDOW_SECONDS)

    def _touch(self, path: Path) -> None:
        now = time.monotonic()  # not the wall clock: a step back would stop the marks
        if self._broken or now - self._touched[path] < self.EVERY_SECONDS:
            return
        self._touched[path] = now
        try:
            try:
                os.utime(path)
            except FileNotFoundError:
                path.touch()  # the first mark: created now
        except OSError as exc:  # a worker elsewhere then sees an idle door: it processes
            self._broken = True
            log.warning("inbox load marks not written path=%s error=%r", path, exc)


def _modified(path: Path) -> float:
    """The file's modification time; minus infinity while it does not exist."""
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return -math.inf


class InboxQueueFull(Exception):
    """The inbox queue holds ``queue_limit`` waiting items; the row was not stored."""


class InboxWriterClosed(Exception):
    """The writer is shutting down; the row was not stored."""


@dataclass
class _Pending:
    row: InboxRow
    answer: asyncio.Future[bool]


def _insert_statement(dialect: str):  # noqa: ANN202 - a SQLAlchemy Insert
    return (insert_for(dialect, InboxItem).on_conflict_do_nothing(index_elements=["activity_uri"])
            .returning(InboxItem.activity_uri))


_QUEUE_DEPTH = select(func.count()).select_from(InboxItem).where(InboxItem.state.in_(_WAITING))


class QueueDepth:
    """The number of waiting items the queue limit compares with, counted only when the
    limit is near.

    Counting is not free (``SELECT count(*)`` of the waiting items: 90 µs with none
    waiting, 165 µs at 2,000, 500 µs at 10,000, for every batch; at a few rows a batch
    that is most of the writer's CPU). Between two counts the estimate is the last count
    plus the rows this writer inserted since, times ``processes`` (the acceptors of
    ``[server] processes`` that insert as well; the kernel spreads the connections
    evenly). Processing only lowers the true number, so with one process the estimate
    never falls below it. The count is taken again whenever the estimate comes within
    ``slack`` rows of the limit (a tenth of it, at least a full batch), and at least
    every ``RECOUNT_SECONDS``: near the limit every batch is counted, as before.
    """

    RECOUNT_SECONDS = 1.0

    def __init__(self, limit: int, *, processes: int = 1,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._processes = processes
        self._slack = max(MAX_BATCH, limit // 10)
        self._monotonic = monotonic
        self._counted: int | None = None
        self._counted_at = -math.inf
        self._added = 0
        self.counts = 0  # how often the items were counted (for tests)

    def room(self, count_waiting: Callable[[], int], wanted: int) -> int:
        """How many more items the queue takes now; ``count_waiting`` counts them (in the
        caller's transaction)."""
        now = self._monotonic()
        estimate = None if self._counted is None else self._counted + self._added * self._processes
        if (estimate is None or now - self._counted_at >= self.RECOUNT_SECONDS
                or estimate + wanted > self.limit - self._slack):
            estimate = self._counted = count_waiting()
            self._counted_at, self._added = now, 0
            self.counts += 1
        return self.limit - estimate

    def added(self, rows: int) -> None:
        """``rows`` new items were committed."""
        self._added += rows


def store_rows(connection: Connection, rows: list[dict[str, object]],
               depth: QueueDepth) -> tuple[int, set[str]]:
    """In the caller's transaction: insert as many rows as the queue has room for, in
    one statement (SQLAlchemy's "insertmanyvalues"). How many rows were taken (the
    first ones), and which of their activity ids were new."""
    def count_waiting() -> int:
        return int(connection.execute(_QUEUE_DEPTH).scalar_one())

    taken = rows[:max(0, depth.room(count_waiting, len(rows)))]
    if not taken:
        return 0, set()
    statement = _insert_statement(connection.dialect.name)
    return len(taken), {uri for (uri,) in connection.execute(statement, taken)}


def _sqlite_timestamp(value: datetime) -> str:
    """``received_at`` as SQLAlchemy stores it on SQLite (``UTCDateTime``: aware only, in
    UTC; the dialect's ``%04d-%02d-%02d %02d:%02d:%02d.%06d``), in half its time."""
    if value.tzinfo is None:
        raise ValueError("naive datetime stored; pass an aware UTC datetime")
    utc = value.astimezone(UTC)
    return "%04d-%02d-%02d %02d:%02d:%02d.%06d" % (  # noqa: UP031 - the dialect's own format
        utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond)


class SqliteBatch:
    """The group commit's transaction on SQLite, as plain statements on the driver's
    connection: ``BEGIN IMMEDIATE`` (tried every millisecond, ``begin_immediate_waiting``),
    the count of waiting items when the queue limit is near, which of the batch's ids are
    stored already, one multi-row ``INSERT … ON CONFLICT DO NOTHING``, ``COMMIT``.

    The connection is the writer engine's (configured by its connect hooks: WAL,
    ``synchronous=FULL``, no busy timeout), checked out once for the writer's lifetime.
    Through SQLAlchemy each batch also paid a pool checkout and return, the transaction's
    events, an execution context and a result object (~0.15 ms of the writer's CPU per
    batch). The known ids come from a ``SELECT`` in the same transaction, under the write
    lock, so they are exactly the rows the INSERT then skips; ``RETURNING`` told the same
    but handed back one row per driver step, each a release and re-take of the GIL that
    the busy event loop holds. The values are converted as the columns' bind processors
    convert them (the same stored text; a test compares with the Core statement).

    The engine's ``before_cursor_execute`` hooks still see each statement (the
    fault-injection tests), and a driver error is raised as SQLAlchemy's (the inbox
    answers 503 to it), as through the engine.
    """

    COLUMNS = ("activity_uri", "inbox", "actor", "remote_host", "raw", "received_at", "state",
               "attempts")
    _COUNT_WAITING = (f"SELECT count(*) FROM inbox_items WHERE state IN "
                      f"({', '.join('?' * len(_WAITING))})")

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        column = InboxItem.__table__.c.raw
        self._json = column.type.dialect_impl(engine.dialect).bind_processor(engine.dialect)
        self._connection: PoolProxiedConnection | None = None
        self._sql: dict[int, tuple[str, str]] = {}  # by the number of rows; at most MAX_BATCH

    def sql(self, rows: int) -> tuple[str, str]:
        """The SELECT of known ids and the INSERT for ``rows`` rows."""
        made = self._sql.get(rows)
        if made is None:
            values = ", ".join([f"({', '.join('?' * len(self.COLUMNS))})"] * rows)
            made = self._sql[rows] = (
                f"SELECT activity_uri FROM inbox_items WHERE activity_uri IN "
                f"({', '.join('?' * rows)})",
                f"INSERT INTO inbox_items ({', '.join(self.COLUMNS)}) VALUES {values}"
                " ON CONFLICT (activity_uri) DO NOTHING")
        return made

    def parameters(self, rows: list[InboxRow]) -> list[object]:
        flat: list[object] = []
        to_json = self._json
        state = InboxState.RECEIVED.value
        for row in rows:
            text = row.raw_json if row.raw_json is not None else to_json(row.raw)
            flat += (row.activity_uri, row.inbox, row.actor, row.remote_host, text,
                     _sqlite_timestamp(row.received_at), state, 0)
        return flat

    def store(self, rows: list[InboxRow], depth: QueueDepth) -> tuple[int, set[str]]:
        """In a transaction of its own: as many rows as the queue has room for; how many
        were taken (the first ones), and which of their ids were new."""
        try:
            raw = self._driver()  # opening it may fail too (an unreadable file): 503 as well
            begin_immediate_waiting(raw)
            try:
                taken = rows[:max(0, depth.room(partial(self._count_waiting, raw), len(rows)))]
                new = self._insert(raw, taken) if taken else set()
                raw.execute("COMMIT")
            except BaseException:
                self._roll_back(raw)
                raise
        except sqlite3.Error as exc:  # as the engine wraps its driver's errors
            raise DBAPIError.instance(None, None, exc, sqlite3.Error,
                                      hide_parameters=True) from exc
        return len(taken), new

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()  # back to the engine's pool
            self._connection = None

    def _driver(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = self._engine.raw_connection()
        return self._connection.driver_connection  # type: ignore[return-value]

    def _execute(self, raw: sqlite3.Connection, sql: str,
                 parameters: Sequence[object]) -> sqlite3.Cursor:
        for hook in self._engine.dispatch.before_cursor_execute:
            sql, parameters = hook(None, None, sql, parameters, None, False)
        return raw.execute(sql, parameters)

    def _count_waiting(self, raw: sqlite3.Connection) -> int:
        return int(self._execute(raw, self._COUNT_WAITING, _WAITING).fetchone()[0])

    def _insert(self, raw: sqlite3.Connection, rows: list[InboxRow]) -> set[str]:
        select_known, insert = self.sql(len(rows))
        ids = [row.activity_uri for row in rows]
        known = {uri for (uri,) in self._execute(raw, select_known, ids)}
        self._execute(raw, insert, self.parameters(rows))
        return set(ids) - known

    def _roll_back(self, raw: sqlite3.Connection) -> None:
        try:
            raw.rollback()  # nothing to do when SQLite already ended the transaction
        except sqlite3.Error:
            log.exception("inbox writer: rollback failed; a new connection for the next batch")
            if self._connection is not None:
                self._connection.invalidate()
                self._connection = None


def in_transaction(engine: Engine, work: Callable[[Connection], T]) -> T:
    """``work`` in a transaction of its own on the writer's engine."""
    with engine.begin() as connection:
        return work(connection)


class InboxWriter:
    """The process's one inbox writer task; ``store`` is what a request awaits."""

    def __init__(self, engine: AsyncEngine, queue_limit: int, *, max_batch: int = MAX_BATCH,
                 processes: int = 1):
        self._engine = engine
        # SQLite: the whole transaction on one thread of our own, in one hand-off. Through
        # aiosqlite every driver call is a round trip to its thread (about a dozen per
        # batch), each waiting for the GIL while the event loop is busy: 20–40 ms per
        # batch under load, which bounded the inbox. PostgreSQL (asyncpg) has no thread.
        self._sqlite: Engine | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._batch: SqliteBatch | None = None
        if engine.dialect.name == "sqlite":
            # synchronous=FULL: a sender drops its copy on our 202, so the row must outlive
            # a power cut, not only a crash of this process. One fsync per batch, not per
            # row, keeps its cost small (docs/performance.md, section 1).
            # wait_for_lock: the writer takes the lock soon after the inbox worker's short
            # transactions end, ahead of their sleeping sessions (answering senders goes
            # first, processing can wait).
            self._sqlite = sync_sqlite_engine(engine.url.render_as_string(hide_password=False),
                                              fsync_each_commit=True, wait_for_lock=True)
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inbox-writer")
            self._batch = SqliteBatch(self._sqlite)
        self.depth = QueueDepth(queue_limit, processes=processes)
        self.pressure = BatchPressure()
        # for a worker in another process: even with one acceptor, ``praxisnetz worker``
        # may run beside it
        self._marks = DoorMarks.for_url(engine.url.render_as_string(hide_password=False))
        self._max_batch = max_batch
        self._pending: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._last_store = -math.inf  # time.monotonic() of the latest store()
        self.batches = 0  # transactions committed or failed (for tests and benchmarks)

    async def store(self, row: InboxRow) -> bool:
        """Committed: True if the row is new, False if its activity id was known.

        Raises ``InboxQueueFull``, ``InboxWriterClosed``, or the database's error.
        """
        if self._closed:
            raise InboxWriterClosed("the inbox is shutting down")
        self._last_store = time.monotonic()
        if self._marks is not None:
            self._marks.mark_stored()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="inbox-writer")
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.put_nowait(_Pending(row, answer))
        return await answer

    def seconds_since_last_store(self) -> float:
        """How long ago a request last handed in a row (infinite if none ever did)."""
        return time.monotonic() - self._last_store

    def load(self) -> DoorLoad:
        """How busy this process's inbox is (for the inbox worker of the same process)."""
        return DoorLoad(self.seconds_since_last_store(), self.pressure.saturated())

    @property
    def runs_sqlite(self) -> bool:
        """Whether ``run_sync`` is available (SQLite: the writer has a thread of its own)."""
        return self._sqlite is not None and not self._closed

    async def run_sync(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in a transaction of its own (``in_transaction``) on the writer's
        thread, between two batches: a whole small transaction in one hand-off (the key
        cache's actor lookups and upserts), and never competing with the group commit
        for the write lock. SQLite only (see ``runs_sqlite``)."""
        if self._sqlite is None or self._thread is None or self._closed:
            raise InboxWriterClosed("no SQLite writer thread")
        return await asyncio.get_running_loop().run_in_executor(
            self._thread, in_transaction, self._sqlite, work)

    @property
    def statement_engine(self) -> Engine:
        """The engine whose ``before_cursor_execute`` hooks see the writer's statements (for
        fault injection in tests). On SQLite its transaction events (``begin``, ``commit``)
        fire only for ``run_sync``'s transactions: the batches run on the driver's
        connection (``SqliteBatch``)."""
        return self._sqlite if self._sqlite is not None else self._engine.sync_engine

    async def close(self) -> None:
        """Write what is queued, then stop; later ``store`` calls are refused."""
        self._closed = True
        if self._task is not None:
            await self._pending.join()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._thread is not None:
            # Waited for off the event loop: a job still on the writer's thread may be
            # waiting for the write lock that a transaction of this loop holds, and that
            # transaction ends only while the loop runs (blocking it here stalled every
            # shutdown that met one for the whole lock wait, 15 s).
            await asyncio.to_thread(self._thread.shutdown, wait=True)
        if self._batch is not None:
            self._batch.close()
        if self._sqlite is not None:
            self._sqlite.dispose()

    async def _store_batch(self, rows: list[InboxRow]) -> tuple[int, set[str]]:
        if self._batch is not None:
            return await asyncio.get_running_loop().run_in_executor(
                self._thread, self._batch.store, rows, self.depth)
        async with self._engine.begin() as connection:
            return await connection.run_sync(store_rows, [row.values() for row in rows],
                                             self.depth)

    async def _run(self) -> None:
        while True:
            batch = [await self._pending.get()]
            while len(batch) < self._max_batch and not self._pending.empty():
                batch.append(self._pending.get_nowait())
            self.pressure.batch(len(batch))
            if self._marks is not None and self.pressure.saturated():
                self._marks.mark_saturated()
            try:
                await self._write(batch)
            except Exception as exc:  # noqa: BLE001 - no request may wait for ever
                log.exception("inbox writer failed rows=%d", len(batch))
                for pending in batch:
                    _resolve(pending.answer, error=exc)
            finally:
                for _ in batch:
                    self._pending.task_done()

    async def _write(self, batch: list[_Pending]) -> None:
        # The first request for an activity id inserts it; a second one in the same
        # batch (a sender's retry) is told "known", as it would be a moment later.
        first: dict[str, _Pending] = {}
        for pending in batch:
            first.setdefault(pending.row.activity_uri, pending)
        distinct = list(first.values())
        try:
            count, inserted = await self._store_batch([p.row for p in distinct])
        except Exception as exc:  # noqa: BLE001 - handed to every waiting request, not lost
            self.batches += 1
            log.warning("inbox write failed rows=%d error=%r", len(batch), exc)
            for pending in batch:
                _resolve(pending.answer, error=exc)
            return
        self.batches += 1
        self.depth.added(len(inserted))  # committed
        accepted = {id(p) for p in distinct[:count]}
        for pending in batch:
            if id(first[pending.row.activity_uri]) not in accepted:
                _resolve(pending.answer, error=InboxQueueFull("the inbox queue is full"))
            else:
                is_first = first[pending.row.activity_uri] is pending
                _resolve(pending.answer, value=is_first and pending.row.activity_uri in inserted)


def _resolve(answer: asyncio.Future[bool], *, value: bool = False,
             error: BaseException | None = None) -> None:
    if answer.done():  # the request was cancelled (its client went away)
        return
    if error is not None:
        answer.set_exception(error)
    else:
        answer.set_result(value)


@contextlib.asynccontextmanager
async def running_writer(engine: AsyncEngine, queue_limit: int,
                         processes: int = 1) -> AsyncIterator[InboxWriter]:
    writer = InboxWriter(engine, queue_limit, processes=processes)
    try:
        yield writer
    finally:
        await writer.close()
