"""Storage faults during inbox writes: the inbox answers 503 with Retry-After, never 202.

The fault is raised where the database is written (a SQLAlchemy ``before_cursor_execute``
hook on the engine of the receiver's inbox writer, for the INSERT into ``inbox_items``): a full disk as
SQLite reports it, ENOSPC from the operating system, and a locked database. The sender's
side is proven too: the delivery worker takes the 503 as "later", and once the fault is
gone the activity arrives exactly once.
"""

from __future__ import annotations

import errno
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from sqlalchemy import event

from node import appkeys
from node.config import DeliveryTuning
from node.delivery import DeliveryWorker
from node.inbox import INBOX_WRITER
from node.outbox import record_local_activity
from node.storage.models import Delivery, InboxItem
from tests.engine_support import AS_CONTEXT, RunningNode, node_config, post_signed, start_node

FAULTS = {
    "disk full (SQLite)": lambda: sqlite3.OperationalError("database or disk is full"),
    "ENOSPC": lambda: OSError(errno.ENOSPC, "No space left on device"),
    "database locked": lambda: sqlite3.OperationalError("database is locked"),
}


class InboxWriteFault:
    """While ``active``, every INSERT into inbox_items fails with ``make()``."""

    def __init__(self, node: RunningNode, make) -> None:  # noqa: ANN001 - a factory
        self.active = True
        self.hits = 0
        self._make = make
        self._engine = node.app[INBOX_WRITER].statement_engine
        event.listen(self._engine, "before_cursor_execute", self._before)

    def _before(self, conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001, PLR0913
        if self.active and statement.lstrip().upper().startswith("INSERT INTO INBOX_ITEMS"):
            self.hits += 1
            raise self._make()

    def remove(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._before)


@pytest.fixture
async def pair(tmp_path):
    receiver = await start_node(node_config(tmp_path, "a"), start_workers=False)
    sender = await start_node(node_config(tmp_path, "b"), start_workers=False)
    async with aiohttp.ClientSession() as http:
        yield receiver, sender, http
    await receiver.stop()
    await sender.stop()


def create_note(sender: RunningNode) -> dict:
    return {"@context": AS_CONTEXT, "id": f"{sender.url}/activities/{uuid.uuid4()}",
            "type": "Create", "actor": sender.actor,
            "object": {"id": f"{sender.url}/comments/{uuid.uuid4().hex[:8]}", "type": "Note",
                       "attributedTo": sender.actor, "content": "Hallo"}}


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_storage_fault_answers_503_with_retry_after_and_stores_nothing(pair, fault) -> None:
    receiver, sender, http = pair
    injected = InboxWriteFault(receiver, FAULTS[fault])
    document = create_note(sender)
    try:
        status, headers, _ = await post_signed(http, receiver.config.inbox_url, document,
                                               sender.keys.rsa)
        assert injected.hits >= 1  # the fault was really met at the write
        assert status == 503, status  # never 202-and-drop
        assert int(headers["Retry-After"]) > 0
        assert await receiver.rows(InboxItem) == []
        injected.active = False
        status, _, _ = await post_signed(http, receiver.config.inbox_url, document, sender.keys.rsa)
        assert status == 202
        stored = await receiver.rows(InboxItem)
        assert [item.activity_uri for item in stored] == [document["id"]]
    finally:
        injected.remove()


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.mark.parametrize("fault", ["disk full (SQLite)", "ENOSPC"])
async def test_sender_retries_a_503_and_the_activity_arrives_once_the_disk_has_room(pair, fault) -> None:
    receiver, sender, _ = pair
    clock = Clock()
    async with sender.sessions()() as session, session.begin():
        activity = await record_local_activity(session, create_note(sender),
                                               [receiver.config.inbox_url], now=clock())
    worker = DeliveryWorker(session_maker=sender.sessions(), fetcher=sender.app[appkeys.FETCHER],
                            keys=sender.keys, clock=clock, tuning=DeliveryTuning(),
                            random_fraction=lambda: 0.0)
    injected = InboxWriteFault(receiver, FAULTS[fault])
    try:
        assert await worker.run_once() == 1
        [row] = await sender.rows(Delivery)
        assert (row.state, row.last_status, row.attempts) == ("pending", 503, 1)
        assert row.next_attempt_at > clock.now  # backed off, not dropped
        assert await receiver.rows(InboxItem) == []

        injected.active = False  # room on the disk again
        assert await worker.run_once() == 0  # not due yet: the backoff is kept
        clock.now = row.next_attempt_at + timedelta(seconds=1)
        assert await worker.run_once() == 1
        [row] = await sender.rows(Delivery)
        assert (row.state, row.last_status, row.attempts) == ("delivered", 202, 2)
        stored = await receiver.rows(InboxItem)
        assert [item.activity_uri for item in stored] == [activity.uri]
    finally:
        injected.remove()
