"""The delivery queue's transactions on a thread of their own (SQLite on a file)."""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import threading
from datetime import datetime, timedelta

import pytest

from node.delivery_queue import DeliveryOutcome, claim_due, record_outcomes
from node.delivery_state import DeliveryEvent
from node.delivery_transactions import QueueTransactions
from node.storage.db import create_engine, session_maker
from tests.engine_support import node_config, start_node
from tests.test_delivery import Clock, enqueue

LEASE = timedelta(seconds=60)


@pytest.fixture
async def sender(tmp_path):
    node = await start_node(node_config(tmp_path, "sender"), start_workers=False)
    yield node
    await node.stop()


def _database_url(node) -> str:  # noqa: ANN001 - RunningNode
    return node.sessions().kw["bind"].url.render_as_string(hide_password=False)


async def test_a_worker_runs_its_transactions_on_a_thread_of_its_own(sender) -> None:
    clock = Clock()
    ids = await enqueue(sender, [f"http://127.0.0.1:9/inbox?n={n}" for n in range(3)], clock())
    transactions = QueueTransactions(sender.sessions())
    assert transactions.on_own_thread
    try:
        threads = await transactions.run(lambda _c: threading.current_thread().name)
        claimed = await claim_due(transactions, worker_id="w", now=clock(), lease=LEASE, limit=5)
        written = await record_outcomes(
            transactions,
            [(claimed[0], DeliveryOutcome(DeliveryEvent.SUCCEEDED, status=202))],
            worker_id="w",
            now=clock(),
        )
    finally:
        transactions.close()
    assert threads.startswith("delivery-db")
    assert [d.id for d in claimed] == ids
    assert written == [True]
    # Outcomes are written only for rows still ours.
    assert await record_outcomes(
        sender.sessions(),
        [(claimed[1], DeliveryOutcome(DeliveryEvent.SUCCEEDED, status=202))],
        worker_id="someone else",
        now=clock(),
    ) == [False]


async def test_a_claim_waits_for_a_write_lock_held_elsewhere_then_claims(sender) -> None:
    clock = Clock()
    ids = await enqueue(sender, [f"http://127.0.0.1:9/inbox?n={n}" for n in range(2)], clock())
    path = sender.sessions().kw["bind"].url.database
    other = sqlite3.connect(path, isolation_level=None)
    transactions = QueueTransactions(sender.sessions())
    try:
        other.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
        claim = asyncio.create_task(
            claim_due(transactions, worker_id="w", now=clock(), lease=LEASE, limit=5)
        )
        await asyncio.sleep(0.2)
        assert not claim.done()  # waiting, not failed with "database is locked"
        other.execute("ROLLBACK")
        claimed = await claim
        # Waited for by retrying, not in SQLite's busy handler (sleeps of up to 100 ms).
        busy = await transactions.run(
            lambda c: c.exec_driver_sql("PRAGMA busy_timeout").scalar_one()
        )
    finally:
        other.close()
        transactions.close()
    assert [d.id for d in claimed] == ids
    assert busy == 0


def _claim_until_empty(url: str, worker_id: str, now: datetime, ready, out) -> None:  # noqa: ANN001
    async def drain() -> list[int]:
        engine = create_engine(url)
        transactions = QueueTransactions(session_maker(engine))
        got: list[int] = []
        try:
            while batch := await claim_due(
                transactions, worker_id=worker_id, now=now, lease=LEASE, limit=3
            ):
                got.extend(d.id for d in batch)
        finally:
            transactions.close()
            await engine.dispose()
        return got

    ready.wait()  # both processes imported everything: they start together
    out.put((worker_id, asyncio.run(drain())))


async def test_claims_from_two_processes_never_hand_one_row_to_both(sender) -> None:
    clock = Clock()
    ids = await enqueue(sender, [f"http://127.0.0.1:9/inbox?n={n}" for n in range(300)], clock())
    context = multiprocessing.get_context("spawn")
    ready, out = context.Barrier(3), context.Queue()
    processes = [
        context.Process(
            target=_claim_until_empty,
            args=(_database_url(sender), f"p{n}", clock(), ready, out),
        )
        for n in range(2)
    ]
    for process in processes:
        process.start()
    await asyncio.to_thread(ready.wait, 60)
    got = dict(await asyncio.to_thread(lambda: [out.get(timeout=120) for _ in processes]))
    for process in processes:
        await asyncio.to_thread(process.join, 30)
        assert process.exitcode == 0
    assert not set(got["p0"]) & set(got["p1"])
    assert sorted(got["p0"] + got["p1"]) == ids
    assert got["p0"] and got["p1"]  # both took part


async def test_work_runs_in_one_transaction(tmp_path) -> None:
    seen: list[bool] = []
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/t.db")
    transactions = QueueTransactions(session_maker(engine))
    try:
        await transactions.run(lambda connection: seen.append(connection.in_transaction()))
    finally:
        transactions.close()
        await engine.dispose()
    assert seen == [True]
