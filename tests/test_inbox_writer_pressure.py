"""Whether the inbox is saturated, as its writer sees it (``BatchPressure``), and the
marks it leaves for a worker in another process (``DoorMarks``)."""

from __future__ import annotations

import asyncio
import math
from types import SimpleNamespace

import pytest
from aiohttp import web

from node import appkeys
from node.app import create_app
from node.inbox_writer import IDLE_DOOR, BatchPressure, DoorMarks, InboxWriter
from node.storage.db import create_engine, migrate
from node.workers import INGEST_ELSEWHERE, ingest_watch, watch_door_marks
from tests.engine_support import node_config
from tests.test_inbox_writer import row


def test_batches_of_one_row_are_no_saturation_and_batches_of_several_are() -> None:
    clock = [0.0]
    pressure = BatchPressure(window=0.25, rows=4.0, monotonic=lambda: clock[0])
    assert not pressure.saturated()  # nothing yet
    for _ in range(50):  # a steady 200/s stream the process keeps up with
        clock[0] += 0.005
        pressure.batch(1)
        assert not pressure.saturated()
    pressure.batch(12)  # once after the worker held the writer's thread: diluted
    assert not pressure.saturated()
    for _ in range(20):  # requests queueing: every batch takes what came meanwhile
        clock[0] += 0.01
        pressure.batch(9)
    assert pressure.saturated()
    clock[0] += 0.3  # the window passed without a batch: the door went quiet
    assert not pressure.saturated()


async def test_the_writer_sees_queueing_requests_but_not_a_steady_stream(tmp_path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'node.db'}")
    await migrate(engine)
    writer = InboxWriter(engine, queue_limit=10_000)
    try:
        for number in range(20):  # one request at a time, each answered before the next
            await writer.store(row(number))
            await asyncio.sleep(0.005)
        steady = writer.load()
        assert steady.idle_for < 1.0 and not steady.saturated
        for burst in range(3):  # 64 requests at once: their rows queue for the writer
            await asyncio.gather(*(writer.store(row(1000 * (burst + 1) + n)) for n in range(64)))
        assert writer.load().saturated
    finally:
        await writer.close()
        await engine.dispose()


async def test_marks_tell_a_worker_elsewhere_what_the_writer_saw(tmp_path) -> None:
    database = tmp_path / "node.db"
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    await migrate(engine)
    elsewhere = DoorMarks.for_url(f"sqlite+aiosqlite:///{database}")
    assert elsewhere is not None
    assert elsewhere.load() == IDLE_DOOR  # no writer has marked anything yet
    writer = InboxWriter(engine, queue_limit=10_000)
    try:
        await writer.store(row(1))
        quiet = elsewhere.load()
        assert quiet.idle_for < 1.0 and not quiet.saturated
        for burst in range(3):
            await asyncio.gather(*(writer.store(row(1000 * (burst + 1) + n)) for n in range(64)))
        assert elsewhere.load().saturated
    finally:
        await writer.close()
        await engine.dispose()


def test_marks_age_and_are_kept_only_for_a_database_file(tmp_path) -> None:
    clock = [1_000_000.0]
    marks = DoorMarks(tmp_path / "node.db", clock=lambda: clock[0])
    marks.mark_stored()
    marks.mark_saturated()
    now = marks.stored.stat().st_mtime
    clock[0] = now + 0.5
    load = marks.load()
    assert load.idle_for == pytest.approx(0.5) and not load.saturated  # recent or nothing
    clock[0] = now + 0.1
    assert marks.load().saturated
    assert DoorMarks.for_url("sqlite+aiosqlite:///:memory:") is None
    assert DoorMarks.for_url("postgresql+asyncpg://u@db/node") is None


def test_marks_that_cannot_be_written_leave_the_door_idle(tmp_path) -> None:
    marks = DoorMarks(tmp_path / "missing" / "node.db")
    marks.mark_stored()  # logged once, no exception: the inbox answers on
    marks.mark_saturated()
    assert marks.load() == IDLE_DOOR
    assert not math.isfinite(marks.load().idle_for)


async def test_a_worker_process_on_sqlite_watches_the_marks(tmp_path) -> None:
    """``praxisnetz worker`` (INGEST_ELSEWHERE) reads the marks, not the queue's table:
    it sees the saturation of the acceptors' writers."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'node.db'}"
    app = web.Application()
    app[appkeys.CONFIG] = SimpleNamespace(database_url=url)  # type: ignore[assignment]
    app[INGEST_ELSEWHERE] = True
    watch = ingest_watch(app)()
    assert watch is not None
    assert await watch() == IDLE_DOOR
    acceptor = DoorMarks.for_url(url)
    assert acceptor is not None
    acceptor.mark_stored()
    acceptor.mark_saturated()
    seen = await watch()
    assert seen.idle_for < 1.0 and seen.saturated


async def test_a_worker_elsewhere_is_woken_when_an_acceptor_stores(tmp_path) -> None:
    """The worker in its own process looks at the stored mark every few milliseconds and
    wakes the inbox worker when it moved, instead of waiting for its next poll."""
    database = tmp_path / "node.db"
    stop, wake = asyncio.Event(), asyncio.Event()
    watcher = asyncio.create_task(watch_door_marks(DoorMarks(database), stop, wake, every=0.01))
    await asyncio.sleep(0.05)
    assert not wake.is_set()  # no acceptor stored anything yet
    DoorMarks(database).mark_stored()  # an acceptor's writer, in another process
    await asyncio.wait_for(wake.wait(), timeout=2)
    wake.clear()
    await asyncio.sleep(0.05)
    assert not wake.is_set()  # the mark did not move again: no second wake-up
    stop.set()
    await asyncio.wait_for(watcher, timeout=2)


async def test_praxisnetz_worker_on_sqlite_runs_the_watcher(tmp_path) -> None:
    """``run_standalone``'s set-up (INGEST_ELSEWHERE before start-up) starts the watcher;
    a node that takes its requests itself does not need one."""
    for elsewhere in (True, False):
        app = create_app(node_config(tmp_path, "worker" if elsewhere else "node"), start_workers=True)
        if elsewhere:
            app[INGEST_ELSEWHERE] = True
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()
        try:
            names = {task.get_name() for task in app[appkeys.WORKERS].tasks}
            assert ("door-marks" in names) is elsewhere, names
        finally:
            await runner.cleanup()
