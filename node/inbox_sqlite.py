"""The inbox writer's SQLite side: the group commit's transaction as plain statements on
the driver's connection (``SqliteBatch``), and a small transaction of its own
(``in_transaction``), both run on the writer's thread (``node.inbox_writer``), each in
its turn among the writers of a node's acceptor processes (``WriterTurns``)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import PoolProxiedConnection

from node.storage.db import begin_immediate_waiting, retry_while_locked
from node.storage.models import InboxItem, InboxState

if TYPE_CHECKING:
    from node.inbox_writer import InboxRow, QueueDepth

log = logging.getLogger("praxisnetz.inbox")

# The items the queue limit counts: received and not yet done or rejected.
WAITING_STATES = (InboxState.RECEIVED.value, InboxState.RETRY.value, InboxState.PROCESSING.value)
T = TypeVar("T")


class WriterTurns:
    """Whose turn it is to write, among the inbox writers of one SQLite database: an
    exclusive ``flock`` on a file beside it (``<database>-inbox-lock``), held for one
    transaction.

    Without it, the writers of two acceptor processes (``[server] processes = 2``) met
    only at SQLite's write lock, which a waiting writer can only try again and again
    (``begin_immediate_waiting``, every millisecond): the commit that ended while it slept
    left the lock unused for the rest of that millisecond and more, with every request of
    the waiting batch held meanwhile. A writer waiting for the ``flock`` sleeps in the
    kernel and wakes the moment the other's transaction ends (docs/performance.md,
    session 13). In one process the turn is always free: two system calls a batch.

    The wait has no limit of its own: a writer holds its turn only around a transaction
    that SQLite bounds (``LOCK_WAIT_SECONDS`` for the lock, then its statements). A
    process that dies holding it lets go (the kernel closes the file); one that is
    stopped (``SIGSTOP``) holds up the others until it continues, as it would hold
    SQLite's own lock in the middle of a transaction. Other connections (the inbox
    worker, the API) take no turn: for them it is SQLite's lock as before. Where the
    file cannot be made (a read-only directory would stop SQLite's WAL as well), the
    writers fall back on SQLite's lock alone, with a warning; so they do where the file
    system refuses the ``flock``.
    """

    def __init__(self, database: str) -> None:
        self.path = f"{database}-inbox-lock"
        self._fd: int | None = None  # opened in the writing process (after any fork)
        self._broken = False

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        """Hold the turn for the block (waiting for it first)."""
        fd = self._open()
        if fd is None or not self._take(fd):
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # lets go of the turn too, if held
            self._fd = None

    def _open(self) -> int | None:
        if self._fd is None and not self._broken:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                self._give_up(exc)
        return self._fd

    def _take(self, fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # the GIL is released while it waits
        except OSError as exc:  # a file system without flock (ENOLCK): SQLite's lock alone
            self.close()
            self._give_up(exc)
            return False
        return True

    def _give_up(self, exc: OSError) -> None:
        self._broken = True
        log.warning("inbox writer: no lock file, SQLite's lock alone path=%s error=%r",
                    self.path, exc)


def _turn_of(turns: WriterTurns | None) -> contextlib.AbstractContextManager[None]:
    """The turn to hold for one transaction (none for a writer without turns)."""
    return turns.turn() if turns is not None else contextlib.nullcontext()


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
    connection. Mostly one autocommit ``INSERT … ON CONFLICT DO NOTHING`` of the whole
    batch (``_insert_at_once``: one driver call, tried again every millisecond while
    another connection holds the write lock). When the queue limit needs a count of the
    waiting items (near the limit, and once a second), the transaction of before
    (``_store_counted``): ``BEGIN IMMEDIATE`` (``begin_immediate_waiting``), the count,
    which of the batch's ids are stored already, the INSERT, ``COMMIT``. While requests
    queue (``appending``), and while arrivals wait that no claim has moved, a batch is
    appended to ``inbox_arrivals`` instead (``_append``; ``move_arrivals`` below).

    The connection is the writer engine's (configured by its connect hooks: WAL,
    ``synchronous=FULL``, no busy timeout), checked out once for the writer's lifetime.
    Through SQLAlchemy each batch also paid a pool checkout and return, the transaction's
    events, an execution context and a result object (~0.15 ms of the writer's CPU per
    batch). Each driver call lets go of the GIL and takes it back from the busy event
    loop, a context switch each: ``RETURNING`` (a row per step) cost too much for that
    reason, and so did the four statements of the transaction of before, per batch
    (docs/performance.md, session 14). The values are converted as the columns' bind
    processors convert them (the same stored text; a test compares with the Core
    statement).

    The engine's ``before_cursor_execute`` hooks still see each statement (the
    fault-injection tests), and a driver error is raised as SQLAlchemy's (the inbox
    answers 503 to it), as through the engine.
    """

    COLUMNS = ("activity_uri", "inbox", "actor", "remote_host", "raw", "received_at", "state",
               "attempts")
    ARRIVAL_COLUMNS = COLUMNS[:6]  # an arrival has no state yet
    # The arrivals count as waiting too; their ids run without a gap (appended at the end,
    # moved from the start), so their count is a lookup at each end of the rowid tree.
    _COUNT_WAITING = (f"SELECT (SELECT count(*) FROM inbox_items WHERE state IN "
                      f"({', '.join('?' * len(WAITING_STATES))})) + "
                      f"(SELECT coalesce(max(id) - min(id) + 1, 0) FROM inbox_arrivals)")
    _ADDED_BETWEEN = "SELECT activity_uri FROM inbox_items WHERE rowid > ? AND rowid <= ?"
    _ARRIVALS_LEFT = "SELECT EXISTS (SELECT 1 FROM inbox_arrivals)"

    def __init__(self, engine: Engine, turns: WriterTurns | None = None) -> None:
        self._engine = engine
        self._turns = turns
        column = InboxItem.__table__.c.raw
        self._json = column.type.dialect_impl(engine.dialect).bind_processor(engine.dialect)
        self._connection: PoolProxiedConnection | None = None
        self._sql: dict[int, tuple[str, str]] = {}  # by the number of rows; at most MAX_BATCH
        self._appends: dict[int, str] = {}
        # Set from the event loop (``InboxWriter``, by its ``BatchPressure``): requests are
        # queueing, so batches go to ``inbox_arrivals``.
        self.appending = False
        # Whether arrivals may be left that a claim has not moved yet. Only acceptors'
        # writers append; with one acceptor that is this one, so it asks only after it
        # appended (or when it starts: a node stopped in a burst left some).
        self._arrivals_maybe = True

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

    def append_sql(self, rows: int) -> str:
        """The INSERT of ``rows`` arrivals."""
        made = self._appends.get(rows)
        if made is None:
            values = ", ".join([f"({', '.join('?' * len(self.ARRIVAL_COLUMNS))})"] * rows)
            made = self._appends[rows] = (
                f"INSERT INTO inbox_arrivals ({', '.join(self.ARRIVAL_COLUMNS)}) VALUES {values}")
        return made

    def parameters(self, rows: list[InboxRow], *, arrivals: bool = False) -> list[object]:
        flat: list[object] = []
        to_json = self._json
        state = () if arrivals else (InboxState.RECEIVED.value, 0)
        for row in rows:
            text = row.raw_json if row.raw_json is not None else to_json(row.raw)
            flat += (row.activity_uri, row.inbox, row.actor, row.remote_host, text,
                     _sqlite_timestamp(row.received_at), *state)
        return flat

    def store(self, rows: list[InboxRow], depth: QueueDepth) -> tuple[int, set[str]]:
        """In a transaction of its own: as many rows as the queue has room for; how many
        were taken (the first ones), and which of their ids were new. Appended rows
        (``appending``, or arrivals still waiting ahead of them) all count as new: a
        claim drops the known ones when it moves them."""
        try:
            raw = self._driver()  # opening it may fail too (an unreadable file): 503 as well
            with _turn_of(self._turns):  # no other writer appends between the two below
                if self.appending or self._arrivals_left(raw):
                    return self._append(raw, rows, depth)
                if depth.room_without_count(len(rows)) is None:
                    return self._store_counted(raw, rows, depth)
                return len(rows), self._insert_at_once(raw, rows)
        except sqlite3.Error as exc:  # as the engine wraps its driver's errors
            raise DBAPIError.instance(None, None, exc, sqlite3.Error,
                                      hide_parameters=True) from exc

    def _insert_at_once(self, raw: sqlite3.Connection, rows: list[InboxRow]) -> set[str]:
        """The whole transaction as one autocommit ``INSERT … ON CONFLICT DO NOTHING``: a
        single driver call, so the writer's thread lets go of the GIL and waits to take it
        back from the busy event loop once a batch, not at each of BEGIN, SELECT, INSERT and
        COMMIT (a context switch each; docs/performance.md, session 14). The commit is
        synced as any (``synchronous=FULL``). Which ids were new: all of them when the
        statement added as many rows as it had (the common case: no second query); else
        the rows it added, whose rowids run up to its last (a statement holds the write
        lock throughout, so they are consecutive)."""
        ids = [row.activity_uri for row in rows]
        cursor = self._execute(raw, self.sql(len(rows))[1], self.parameters(rows),
                               wait_for_lock=True)
        added = cursor.rowcount
        if added == len(ids):
            return set(ids)
        if added == 0:
            return set()
        last = cursor.lastrowid
        return {uri for (uri,) in self._execute(raw, self._ADDED_BETWEEN, (last - added, last))}

    def _arrivals_left(self, raw: sqlite3.Connection) -> bool:
        """Whether arrivals wait that a claim has not moved: a row stored in
        ``inbox_items`` now would be claimed before them. With several acceptors any of
        them may have appended, so it is asked each time."""
        if not self._arrivals_maybe and self._turns is None:
            return False
        left = bool(self._execute(raw, self._ARRIVALS_LEFT, ()).fetchone()[0])
        self._arrivals_maybe = left
        return left

    def _append(self, raw: sqlite3.Connection, rows: list[InboxRow],
                depth: QueueDepth) -> tuple[int, set[str]]:
        """The batch appended to ``inbox_arrivals``: one autocommit ``INSERT`` (the
        transaction of ``_store_counted`` when the queue limit needs a count). A page or
        two of the table a commit instead of a page of the unique index per row besides
        (docs/performance.md, session 15)."""
        self._arrivals_maybe = True
        room = depth.room_without_count(len(rows))
        if room is None:
            begin_immediate_waiting(raw)
            try:
                room = depth.room(partial(self._count_waiting, raw), len(rows))
                taken = rows[:max(0, room)]
                if taken:
                    self._execute(raw, self.append_sql(len(taken)),
                                  self.parameters(taken, arrivals=True))
                raw.execute("COMMIT")
            except BaseException:
                self._roll_back(raw)
                raise
        else:
            taken = rows
            self._execute(raw, self.append_sql(len(taken)),
                          self.parameters(taken, arrivals=True), wait_for_lock=True)
        return len(taken), {row.activity_uri for row in taken}

    def _store_counted(self, raw: sqlite3.Connection, rows: list[InboxRow],
                       depth: QueueDepth) -> tuple[int, set[str]]:
        """With the waiting items counted in the transaction (the limit is near, or the
        last count is a second old): ``BEGIN IMMEDIATE``, the count, the known ids, the
        INSERT of the rows the queue takes, ``COMMIT``."""
        begin_immediate_waiting(raw)
        try:
            taken = rows[:max(0, depth.room(partial(self._count_waiting, raw), len(rows)))]
            new = self._insert(raw, taken) if taken else set()
            raw.execute("COMMIT")
        except BaseException:
            self._roll_back(raw)
            raise
        return len(taken), new

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()  # back to the engine's pool
            self._connection = None

    def _driver(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = self._engine.raw_connection()
        return self._connection.driver_connection  # type: ignore[return-value]

    def _execute(self, raw: sqlite3.Connection, sql: str, parameters: Sequence[object], *,
                 wait_for_lock: bool = False) -> sqlite3.Cursor:
        """The engine's ``before_cursor_execute`` hooks, then the driver's call (with
        ``wait_for_lock``, tried again while another connection holds the write lock;
        an error a hook raises is not)."""
        for hook in self._engine.dispatch.before_cursor_execute:
            sql, parameters = hook(None, None, sql, parameters, None, False)
        if wait_for_lock:
            return retry_while_locked(partial(raw.execute, sql, parameters))
        return raw.execute(sql, parameters)

    def _count_waiting(self, raw: sqlite3.Connection) -> int:
        return int(self._execute(raw, self._COUNT_WAITING, WAITING_STATES).fetchone()[0])

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


# Claiming moves at most this many arrivals at a time (~40 µs each: the unique index's
# page), so a claim during a burst holds the write lock for some 20 ms, not for the burst.
MOVE_AT_MOST = 500
_FIRST_ARRIVALS = "SELECT id FROM inbox_arrivals ORDER BY id LIMIT :limit"
# WHERE before ON CONFLICT: SQLite's parser needs it to read the upsert of an INSERT … SELECT
_MOVE_ARRIVALS = text(
    f"INSERT INTO inbox_items (activity_uri, inbox, actor, remote_host, raw, received_at, "
    f"state, attempts) SELECT activity_uri, inbox, actor, remote_host, raw, received_at, "
    f":state, 0 FROM inbox_arrivals WHERE id IN ({_FIRST_ARRIVALS}) ORDER BY id "
    f"ON CONFLICT (activity_uri) DO NOTHING")
_DROP_ARRIVALS = text(f"DELETE FROM inbox_arrivals WHERE id IN ({_FIRST_ARRIVALS})")


def move_arrivals(connection: Connection, limit: int = MOVE_AT_MOST) -> None:
    """In the caller's transaction (which holds the write lock): the first ``limit``
    arrivals into ``inbox_items``, in the order they came, each after the items already
    there; an activity id already stored (or twice among them) stays the first one."""
    connection.execute(_MOVE_ARRIVALS, {"state": InboxState.RECEIVED.value, "limit": limit})
    connection.execute(_DROP_ARRIVALS, {"limit": limit})


def in_transaction(engine: Engine, work: Callable[[Connection], T],
                   turns: WriterTurns | None = None) -> T:
    """``work`` in a transaction of its own on the writer's engine (in its turn)."""
    with _turn_of(turns), engine.begin() as connection:
        return work(connection)
