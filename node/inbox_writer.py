"""Group commit for the inbox: many requests' rows, one transaction, then every 202.

Each inbox request hands its row to the one writer of its process and waits on a
future. The writer takes everything that queued up while its previous transaction ran
(up to ``MAX_BATCH`` rows), checks the queue limit once for the batch, inserts the rows
with one multi-row ``INSERT … ON CONFLICT DO NOTHING`` (known ids: ``RETURNING`` on
PostgreSQL, a ``SELECT`` under the write lock on SQLite), commits, and only then
resolves the futures: a 202 still means the activity is committed. If the transaction
fails, every request of the batch gets the error (and answers 503); none is told
"stored". Under light load a batch is one row, as before; under load the cost of a
transaction (BEGIN IMMEDIATE, the fsync of the commit, the hand-off to the driver's
thread) is shared by all the rows that arrived meanwhile.

On SQLite the writer is a thread of its own that takes its next batch itself, as soon as
a commit ends; only the answers go back through the event loop. (As a task on the loop,
each batch began only when the busy loop came round to the last one's completion: ~5 ms
between two commits of ~1.4 ms at 32 requests in flight, docs/performance.md.) While
requests queue (``BatchPressure``) its batches are appended to ``inbox_arrivals`` and
claimed from there (``node.inbox_sqlite``): a duplicate is then dropped when claimed, not
told at the door.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import func, make_url, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from node.inbox_sqlite import WAITING_STATES, SqliteBatch, WriterTurns, in_transaction
from node.storage.db import sync_sqlite_engine
from node.storage.models import InboxItem, InboxState
from node.storage.upsert import insert_for

log = logging.getLogger("praxisnetz.inbox")

MAX_BATCH = 256  # rows per transaction: 8 columns each stay far below SQLite's bind limit
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


@dataclass
class _Job:
    """A ``run_sync`` call for the SQLite writer's thread."""

    work: Callable[[Connection], object]
    answer: asyncio.Future[object]


_STOP = object()  # the SQLite writer's thread ends when it meets this


def _insert_statement(dialect: str):  # noqa: ANN202 - a SQLAlchemy Insert
    return (insert_for(dialect, InboxItem).on_conflict_do_nothing(index_elements=["activity_uri"])
            .returning(InboxItem.activity_uri))


_QUEUE_DEPTH = select(func.count()).select_from(InboxItem).where(InboxItem.state.in_(WAITING_STATES))


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
        room = self.room_without_count(wanted)
        if room is None:
            self._counted = count_waiting()
            self._counted_at, self._added = self._monotonic(), 0
            self.counts += 1
            room = self.limit - self._counted
        return room

    def room_without_count(self, wanted: int) -> int | None:
        """The room by the estimate, at least ``wanted``; None when the items must be
        counted first (the limit is near, or the last count is old or was never taken)."""
        if self._counted is None or self._monotonic() - self._counted_at >= self.RECOUNT_SECONDS:
            return None
        estimate = self._counted + self._added * self._processes
        if estimate + wanted > self.limit - self._slack:
            return None
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


class InboxWriter:
    """The process's one inbox writer; ``store`` is what a request awaits."""

    def __init__(self, engine: AsyncEngine, queue_limit: int, *, max_batch: int = MAX_BATCH,
                 processes: int = 1):
        self._engine = engine
        # SQLite: the whole transaction on one thread of our own, in one hand-off. Through
        # aiosqlite every driver call is a round trip to its thread (about a dozen per
        # batch), each waiting for the GIL while the event loop is busy: 20–40 ms per
        # batch under load, which bounded the inbox. PostgreSQL (asyncpg) has no thread.
        self._sqlite: Engine | None = None
        self._batch: SqliteBatch | None = None
        self._turns: WriterTurns | None = None
        self._inbound: queue.SimpleQueue[_Pending | _Job | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None  # started by the first store or job
        if engine.dialect.name == "sqlite":
            # synchronous=FULL: a sender drops its copy on our 202, so the row must outlive
            # a power cut, not only a crash of this process. One fsync per batch, not per
            # row, keeps its cost small (docs/performance.md, section 1).
            # wait_for_lock: the writer takes the lock soon after the inbox worker's short
            # transactions end, ahead of their sleeping sessions (answering senders goes
            # first, processing can wait).
            self._sqlite = sync_sqlite_engine(engine.url.render_as_string(hide_password=False),
                                              fsync_each_commit=True, wait_for_lock=True)
            # the writers of the node's other acceptor processes take turns with this one
            # (with one acceptor there is no other: the turn would be two system calls and
            # two hand-offs of the GIL a batch for nothing)
            if processes > 1:
                self._turns = WriterTurns(str(Path(self._sqlite.url.database).resolve()))
            self._batch = SqliteBatch(self._sqlite, self._turns)
        self.depth = QueueDepth(queue_limit, processes=processes)
        self.pressure = BatchPressure()
        # for a worker in another process: even with one acceptor, ``praxisnetz worker``
        # may run beside it
        self._marks = DoorMarks.for_url(engine.url.render_as_string(hide_password=False))
        self._max_batch = max_batch
        self._pending: asyncio.Queue[_Pending] = asyncio.Queue()  # PostgreSQL's writer task
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._last_store = -math.inf  # time.monotonic() of the latest store()
        self.batches = 0  # transactions committed or failed (for tests and benchmarks)

    async def store(self, row: InboxRow) -> bool:
        """Committed: True if the row is new, False if its activity id was known (a row
        appended to SQLite's arrivals is True: the claim drops it if it was known).

        Raises ``InboxQueueFull``, ``InboxWriterClosed``, or the database's error.
        """
        if self._closed:
            raise InboxWriterClosed("the inbox is shutting down")
        self._last_store = time.monotonic()
        if self._marks is not None:
            self._marks.mark_stored()
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self._batch is not None:
            self._hand_to_thread(_Pending(row, answer))
        else:
            if self._task is None:
                self._task = asyncio.create_task(self._run(), name="inbox-writer")
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
        if self._sqlite is None or self._closed:
            raise InboxWriterClosed("no SQLite writer thread")
        answer: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._hand_to_thread(_Job(work, answer))
        return await answer  # type: ignore[return-value]  # what work returned

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
            self._inbound.put(_STOP)  # after every row and job handed in before
            # Waited for off the event loop: a job still on the writer's thread may be
            # waiting for the write lock that a transaction of this loop holds, and that
            # transaction ends only while the loop runs (blocking it here stalled every
            # shutdown that met one for the whole lock wait, 15 s).
            await asyncio.to_thread(self._thread.join)
        if self._batch is not None:
            self._batch.close()
        if self._turns is not None:
            self._turns.close()
        if self._sqlite is not None:
            self._sqlite.dispose()

    # --- SQLite: the writer's own thread

    def _hand_to_thread(self, item: _Pending | _Job) -> None:
        self._inbound.put(item)
        if self._thread is None:
            # A daemon: a process that exits without close() must not wait for ever on a
            # thread blocked in get(); close() itself writes what is queued and joins it.
            self._thread = threading.Thread(target=self._drain, name="inbox-writer",
                                            daemon=True)
            self._thread.start()

    def _drain(self) -> None:
        """The thread: every row waiting (up to ``max_batch``) in one transaction, a job
        in its turn between two batches, until ``_STOP``. The answers go to the event
        loop of the request that waits (``_call_on_loop``)."""
        item = self._inbound.get()
        while item is not _STOP:
            if isinstance(item, _Job):
                self._run_job(item)
                item = self._inbound.get()
                continue
            batch, after = self._take_batch(item)  # type: ignore[arg-type]  # a row
            self._write_on_thread(batch)
            item = after if after is not None else self._inbound.get()

    def _take_batch(self, first: _Pending) -> tuple[list[_Pending], object | None]:
        """``first`` and the rows queued behind it (up to ``max_batch``), and the job or
        ``_STOP`` met after them (None when the rows ran out)."""
        batch = [first]
        while len(batch) < self._max_batch:
            try:
                item = self._inbound.get_nowait()
            except queue.Empty:
                return batch, None
            if not isinstance(item, _Pending):  # a job or the stop: after this batch
                return batch, item
            batch.append(item)
        return batch, None

    def _write_on_thread(self, batch: list[_Pending]) -> None:
        first, distinct = _first_of_each(batch)
        loop = batch[0].answer.get_loop()
        try:
            count, inserted = self._batch.store([p.row for p in distinct], self.depth)  # type: ignore[union-attr]
            self.depth.added(len(inserted))  # committed
        except BaseException as exc:  # noqa: BLE001 - to every waiting request; the thread goes on
            _call_on_loop(loop, self._settle, batch, first, distinct, 0, set(), exc)
            return
        _call_on_loop(loop, self._settle, batch, first, distinct, count, inserted, None)

    def _run_job(self, job: _Job) -> None:
        loop = job.answer.get_loop()
        try:
            result = in_transaction(self._sqlite, job.work, self._turns)  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - as an executor's thread: the caller gets it
            _call_on_loop(loop, _resolve, job.answer, error=exc)
            return
        _call_on_loop(loop, _resolve, job.answer, value=result)

    # --- PostgreSQL: a task on the event loop

    async def _store_batch(self, rows: list[InboxRow]) -> tuple[int, set[str]]:
        async with self._engine.begin() as connection:
            return await connection.run_sync(store_rows, [row.values() for row in rows],
                                             self.depth)

    async def _run(self) -> None:
        while True:
            batch = [await self._pending.get()]
            while len(batch) < self._max_batch and not self._pending.empty():
                batch.append(self._pending.get_nowait())
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
        first, distinct = _first_of_each(batch)
        try:
            count, inserted = await self._store_batch([p.row for p in distinct])
        except Exception as exc:  # noqa: BLE001 - handed to every waiting request, not lost
            self._settle(batch, first, distinct, 0, set(), exc)
            return
        self.depth.added(len(inserted))  # committed
        self._settle(batch, first, distinct, count, inserted, None)

    # --- both: the answers, on the event loop

    def _settle(self, batch: list[_Pending], first: dict[str, _Pending],
                distinct: list[_Pending], count: int, inserted: set[str],
                error: BaseException | None) -> None:
        """Answer every request of a batch: its error, "queue full" for the rows beyond
        the queue's room, else whether its row was new (a second request for the same
        activity id in the batch is told "known", as it would be a moment later)."""
        self.batches += 1
        self.pressure.batch(len(batch))
        saturated = self.pressure.saturated()
        if self._batch is not None:
            self._batch.appending = saturated  # read by the writer's thread for its next batch
        if self._marks is not None and saturated:
            self._marks.mark_saturated()
        if error is not None:
            log.warning("inbox write failed rows=%d error=%r", len(batch), error)
            for pending in batch:
                _resolve(pending.answer, error=error)
            return
        accepted = {id(p) for p in distinct[:count]}
        for pending in batch:
            if id(first[pending.row.activity_uri]) not in accepted:
                _resolve(pending.answer, error=InboxQueueFull("the inbox queue is full"))
            else:
                is_first = first[pending.row.activity_uri] is pending
                _resolve(pending.answer, value=is_first and pending.row.activity_uri in inserted)


def _first_of_each(batch: list[_Pending]) -> tuple[dict[str, _Pending], list[_Pending]]:
    """The first request for each activity id, and those firsts in order: one row each."""
    first: dict[str, _Pending] = {}
    for pending in batch:
        first.setdefault(pending.row.activity_uri, pending)
    return first, list(first.values())


def _call_on_loop(loop: asyncio.AbstractEventLoop, callback: Callable[..., object],
                  *args: object, **kwargs: object) -> None:
    """From the writer's thread: ``callback`` on the event loop (which ``close`` keeps
    running until the thread ends)."""
    try:
        loop.call_soon_threadsafe(partial(callback, *args, **kwargs))
    except RuntimeError:  # the loop closed without close(): nobody waits for the answer
        log.warning("inbox writer: the event loop is closed; an answer was dropped")


def _resolve(answer: asyncio.Future[Any], *, value: object = False,
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
