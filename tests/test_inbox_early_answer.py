"""The door's early 202 (``node.inbox_early_answer``): written by the inbox writer's thread
right after the commit, never before it, never for a row that was not stored, never to a
socket that no longer belongs to the request.

1. ``InboxWriter.store(on_commit=…)`` on SQLite and PostgreSQL.
2. ``SocketGuard`` and ``EarlyAnswer`` on socket pairs: partial writes, a peer that left,
   and a file descriptor number that now belongs to another connection.
3. Over real sockets against a running node: the 202 arrives while the event loop has
   not yet heard of the commit; refusals get no early answer; a sender that leaves
   before its commit; ``Connection: close``; a connection with unsent bytes.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import replace
from types import SimpleNamespace

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from node.inbox import INBOX_WRITER
from node.inbox_early_answer import EarlyAnswer, SocketGuard
from node.inbox_http import InboxConnection, parse_head
from node.inbox_writer import InboxQueueFull, InboxWriter
from node.storage.db import migrate
from tests.engine_support import RunningNode, node_config, start_node
from tests.node_support import database_engine
from tests.test_inbox_http import connect, door, read_response, signed_post, stored
from tests.test_inbox_writer import row

# --- 1. the writer calls on_commit ---------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request, tmp_path):
    async for created in database_engine(request.param, tmp_path):
        await migrate(created)
        yield created


class Commits:
    """``on_commit`` callbacks that note the thread they ran on."""

    def __init__(self) -> None:
        self.threads: dict[int, str] = {}

    def for_row(self, number: int):  # noqa: ANN201 - a callback
        return lambda: self.threads.setdefault(number, threading.current_thread().name)


async def test_on_commit_runs_once_per_stored_row_before_the_answer(engine) -> None:
    writer = InboxWriter(engine, queue_limit=3)
    commits = Commits()

    async def store(number: int, uri_of: int | None = None) -> bool:
        stored_row = row(number) if uri_of is None else replace(row(number), activity_uri=row(uri_of).activity_uri)
        is_new = await writer.store(stored_row, on_commit=commits.for_row(number))
        assert number in commits.threads  # before the request hears "stored"
        return is_new

    try:
        # one batch: 0, 1, a second request for 1's activity, 3, and 4 beyond the room
        answers = await asyncio.gather(store(0), store(1), store(2, uri_of=1), store(3),
                                       store(4), return_exceptions=True)
    finally:
        await writer.close()
    assert answers[:4] == [True, True, False, True]
    assert isinstance(answers[4], InboxQueueFull)
    assert sorted(commits.threads) == [0, 1, 2, 3]  # the known one too (it is answered 202)
    expected = "inbox-writer" if engine.dialect.name == "sqlite" else threading.main_thread().name
    assert set(commits.threads.values()) == {expected}


async def test_on_commit_is_not_called_for_a_failed_batch(engine) -> None:
    writer = InboxWriter(engine, queue_limit=100)
    commits = Commits()

    def fail_insert(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001, PLR0913
        if statement.lstrip().upper().startswith("INSERT INTO INBOX_ITEMS"):
            raise OperationalError(statement, {}, Exception("disk I/O error"))

    event.listen(writer.statement_engine, "before_cursor_execute", fail_insert)
    try:
        answers = await asyncio.gather(*(writer.store(row(n), on_commit=commits.for_row(n))
                                         for n in range(4)), return_exceptions=True)
    finally:
        event.remove(writer.statement_engine, "before_cursor_execute", fail_insert)
        await writer.close()
    assert all(isinstance(answer, OperationalError) for answer in answers)
    assert commits.threads == {}


async def test_a_failing_on_commit_does_not_stop_the_writer(engine, caplog) -> None:
    writer = InboxWriter(engine, queue_limit=100)

    def broken() -> None:
        raise RuntimeError("broken callback")

    try:
        assert await writer.store(row(1), on_commit=broken) is True  # still stored and told
        assert await writer.store(row(2)) is True
    finally:
        await writer.close()
    assert any("on_commit failed" in record.getMessage() for record in caplog.records)


# --- 2. SocketGuard and EarlyAnswer ---------------------------------------------------------


ANSWER = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"


def answer_of(second: int) -> bytes:
    return ANSWER


def test_the_answer_is_written_to_the_socket() -> None:
    ours, peer = socket.socketpair()
    with ours, peer:
        ours.setblocking(False)
        early = EarlyAnswer(SocketGuard(ours.fileno()), answer_of)
        early()
        assert early.begun and early.rest() == b""
        assert peer.recv(100) == ANSWER


def test_a_full_socket_leaves_the_rest_to_the_event_loop() -> None:
    ours, peer = socket.socketpair()
    with ours, peer:
        ours.setblocking(False)
        with suppress(BlockingIOError):
            while True:
                ours.send(b"x" * 65536)  # the peer does not read: fill the buffers
        early = EarlyAnswer(SocketGuard(ours.fileno()), answer_of)
        early()
        assert not early.begun and early.rest().startswith(b"HTTP/1.1 202")


def test_a_partial_write_keeps_the_rest() -> None:
    guard = SimpleNamespace(write=lambda data: 5)  # what a nearly full socket does
    early = EarlyAnswer(guard, answer_of)  # type: ignore[arg-type]
    early()
    assert early.begun and early.rest() == ANSWER[5:]


def test_a_peer_that_left_is_no_error() -> None:
    ours, peer = socket.socketpair()
    with ours:
        ours.setblocking(False)
        peer.close()
        early = EarlyAnswer(SocketGuard(ours.fileno()), answer_of)
        early()  # EPIPE: nothing written, nothing raised
        assert not early.begun


@pytest.mark.parametrize("shut", [True, False])
def test_a_shut_guard_does_not_write_to_the_connection_that_took_its_number(shut) -> None:
    """The attack the guard stops: the request's socket closed, its descriptor number
    given to the next connection, then the writer's thread answers."""
    old, old_peer = socket.socketpair()
    new, new_peer = socket.socketpair()
    with old_peer, new, new_peer:
        old.setblocking(False)
        number = old.fileno()
        guard = SocketGuard(number)
        if shut:
            guard.shut()  # what the door's connection_lost does before asyncio closes it
        old.close()
        os.dup2(new.fileno(), number)  # the next connection now has the number
        try:
            EarlyAnswer(guard, answer_of)()
            new_peer.setblocking(False)
            try:
                received = new_peer.recv(100)
            except BlockingIOError:
                received = b""
        finally:
            os.close(number)
    # without shut the 202 lands on the other connection: the test sees it
    assert received == (b"" if shut else ANSWER)


# --- 3. over real sockets --------------------------------------------------------------------


@pytest.fixture
async def b(tmp_path) -> AsyncIterator[RunningNode]:
    node = await start_node(node_config(tmp_path, "b"), start_workers=False)
    yield node
    await node.stop()


@pytest.fixture
async def a(tmp_path, b) -> AsyncIterator[RunningNode]:
    node = await start_node(node_config(tmp_path, "a"), start_workers=False)
    yield node
    await node.stop()


class HeldSettle:
    """The writer's answers to the event loop, held back until ``release``: what a
    request sees then is what the writer's thread sent by itself."""

    def __init__(self, writer: InboxWriter) -> None:
        self._writer = writer
        self._real = writer._settle
        self.held: list[tuple] = []
        writer._settle = self._hold  # type: ignore[method-assign]

    def _hold(self, *args: object) -> None:
        self.held.append(args)

    def release(self) -> None:
        self._writer._settle = self._real  # type: ignore[method-assign]
        for args in self.held:
            self._real(*args)
        self.held.clear()


async def nothing_more(reader: asyncio.StreamReader, seconds: float = 0.3) -> bool:
    try:
        await asyncio.wait_for(reader.read(1), seconds)
    except TimeoutError:
        return True
    return False


async def eventually(condition, seconds: float = 5.0) -> None:  # noqa: ANN001
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def test_the_202_arrives_before_the_event_loop_hears_of_the_commit(a, b) -> None:
    held = HeldSettle(a.app[INBOX_WRITER])
    raw, activity_id = signed_post(a, b)
    async with connect(a) as (reader, writer):
        writer.write(raw)
        status, fields, body = await read_response(reader)
        assert (status, body) == (202, b"") and "Connection" not in fields
        assert held.held and door(a).answered == 0  # the loop has not written anything
        assert await stored(a) == [(activity_id, "shared")]  # committed before the 202
        held.release()
        await eventually(lambda: door(a).answered == 1)
        assert await nothing_more(reader)  # the loop wrote no second answer
        again, again_id = signed_post(a, b)  # and the connection goes on
        writer.write(again)
        assert (await read_response(reader))[0] == 202
    assert await stored(a) == sorted([(activity_id, "shared"), (again_id, "shared")])


async def test_a_failed_store_gets_its_503_and_no_early_answer(a, b, monkeypatch) -> None:
    batch = a.app[INBOX_WRITER]._batch

    def full_disk(rows, depth):  # noqa: ANN001, ANN202
        raise OperationalError("INSERT", {}, Exception("database or disk is full"))

    monkeypatch.setattr(batch, "store", full_disk)
    raw, _ = signed_post(a, b)
    async with connect(a) as (reader, writer):
        writer.write(raw)
        assert (await read_response(reader))[0] == 503
        assert await nothing_more(reader)
    assert await stored(a) == []


async def test_a_full_queue_gets_its_503_and_no_early_answer(tmp_path, b) -> None:
    config = node_config(tmp_path, "full")
    config = replace(config, inbox=replace(config.inbox, queue_limit=1))
    node = await start_node(config, start_workers=False)
    try:
        (first, first_id), (second, _) = signed_post(node, b), signed_post(node, b)
        async with connect(node) as (reader, writer):
            writer.write(first)
            assert (await read_response(reader))[0] == 202
            writer.write(second)
            assert (await read_response(reader))[0] == 503
            assert await nothing_more(reader)
        assert await stored(node) == [(first_id, "shared")]
    finally:
        await node.stop()


@pytest.mark.parametrize("guarded", [True, False])
async def test_a_sender_that_leaves_before_the_commit_gets_nothing_written_elsewhere(
        a, b, monkeypatch, guarded) -> None:
    if not guarded:  # the control: without the guard the stray 202 lands on the next connection
        monkeypatch.setattr(SocketGuard, "shut", lambda self: None)
    batch = a.app[INBOX_WRITER]._batch
    real_store, entered, go_on = batch.store, threading.Event(), threading.Event()

    def held_store(rows, depth):  # noqa: ANN001, ANN202 - on the writer's thread
        entered.set()
        go_on.wait(10)
        return real_store(rows, depth)

    monkeypatch.setattr(batch, "store", held_store)
    raw, activity_id = signed_post(a, b)
    async with connect(a) as (_, leaving):
        leaving.write(raw)
        await asyncio.to_thread(entered.wait, 10)
        left_fd = next(iter(door(a).connections))._guard.fd
    await eventually(lambda: not door(a).connections)  # the door saw the sender leave
    async with connect(a) as (reader, writer):
        await eventually(lambda: len(door(a).connections) == 1)
        assert next(iter(door(a).connections))._guard.fd == left_fd  # the number is reused
        go_on.set()  # the commit, and the early answer's attempt
        await eventually_stored(a, activity_id)
        assert await nothing_more(reader) is guarded
    assert a.app[INBOX_WRITER].batches == 1


async def eventually_stored(node: RunningNode, activity_id: str) -> None:
    for _ in range(250):
        if (activity_id, "shared") in await stored(node):
            await asyncio.sleep(0.05)  # the writer's thread has called on_commit by now
            return
        await asyncio.sleep(0.02)
    raise AssertionError("not stored")


async def test_connection_close_is_answered_by_the_event_loop(a, b) -> None:
    held = HeldSettle(a.app[INBOX_WRITER])
    raw, activity_id = signed_post(a, b, "/inbox", "Connection: close")
    async with connect(a) as (reader, writer):
        writer.write(raw)
        await eventually_stored(a, activity_id)
        assert await nothing_more(reader)  # no early answer: it would lack Connection: close
        held.release()
        status, fields, _ = await read_response(reader)
        assert status == 202 and fields["Connection"] == "close"


class UnsentBytes(asyncio.Transport):
    """A transport whose write buffer may still hold bytes of an earlier answer."""

    def __init__(self, sock: socket.socket, unsent: int, ssl: object = None) -> None:
        super().__init__({"socket": sock, "peername": ("127.0.0.1", 1), "sslcontext": ssl})
        self.unsent = unsent

    def get_write_buffer_size(self) -> int:
        return self.unsent


@pytest.mark.parametrize(("unsent", "ssl", "offered"), [(0, None, True), (120, None, False),
                                                         (0, object(), False)])
async def test_an_early_answer_only_on_a_plain_socket_with_nothing_unsent(unsent, ssl, offered) -> None:
    door_stub = SimpleNamespace(loop=asyncio.get_running_loop(), add=lambda connection: None)
    head = parse_head(b"POST /inbox HTTP/1.1\r\nHost: a.example\r\nContent-Length: 2\r\n", 100)
    ours, peer = socket.socketpair()
    with ours, peer:
        connection = InboxConnection(door_stub)  # type: ignore[arg-type]
        connection.connection_made(UnsentBytes(ours, unsent, ssl))  # type: ignore[arg-type]
        assert (connection._early_answer(head) is not None) is offered
