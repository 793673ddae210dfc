"""The node's background workers: delivery, inbox processing and backfill.

``start_workers(app)`` runs them inside ``praxisnetz serve`` (the app factory enters
it from ``cleanup_ctx``); ``run_standalone(config)`` runs the same workers in a
process of their own (``praxisnetz worker``), for PostgreSQL deployments where
several processes share one queue. Workers poll the database; a wake-up event lets
the web handlers shorten the wait after they enqueue something.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from node import appkeys
from node.backfill import Backfiller
from node.config import NodeConfig
from node.delivery import DeliveryWorker, new_worker_id, sleep_until
from node.inbox import INBOX_WAKER, INBOX_WRITER
from node.inbox_processing import (
    OBJECT_CHANGE_TYPES,
    Decision,
    InboxProcessor,
    Incoming,
    Verdict,
    failed,
    retry,
)
from node.inbox_queue import ClaimedItem, Outcome, QueueWatch, claim, record_outcomes
from node.inbox_writer import DoorLoad, DoorMarks
from node.pruning import run_pruner
from node.remote import SQLITE_WORK, install_key_cache
from node.remote_objects import ObjectChange, reference
from node.storage.models import InboxState

log = logging.getLogger("praxisnetz.workers")

INBOX_LEASE = timedelta(minutes=5)
INBOX_PARALLEL_ACTORS = 8  # actors whose activities are applied at the same time
BACKFILL_POLL_SECONDS = 2.0
# The inbox worker waits while rows were stored this recently, at most this long per batch.
INGEST_QUIET_SECONDS = 0.05
INGEST_FIRST_AT_MOST_SECONDS = 1.0
# While the inbox stays busy the worker takes at most this share of the time: after a
# batch it waits three times as long as the batch took (see ``busy_pause``).
BUSY_PROCESSING_SHARE = 0.25
# While requests queue (``DoorLoad.saturated``) it waits up to this long per batch: a
# batch (50 items) a second at least, never starved; the queue limit is the backstop.
SATURATED_AT_MOST_SECONDS = 1.0
STOP_GRACE_SECONDS = 5.0
# A worker in its own process looks this often whether an acceptor stored a row (one
# stat call): without it, a row waited for the next poll (poll_interval_seconds, 0.5 s).
MARKS_WATCH_SECONDS = 0.05
# Set by run_standalone: the inbox takes requests in other processes (praxisnetz serve,
# or the acceptors of [server] processes = N), so the worker watches the queue's table.
INGEST_ELSEWHERE = web.AppKey("ingest_elsewhere", bool)
DoorWatch = Callable[[], Awaitable[DoorLoad]]  # how busy the inbox is now

@dataclass
class Workers:
    """The running workers of one process and the events that steer them."""

    delivery: DeliveryWorker
    processor: InboxProcessor
    backfiller: Backfiller
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    delivery_wake: asyncio.Event = field(default_factory=asyncio.Event)
    inbox_wake: asyncio.Event = field(default_factory=asyncio.Event)
    backfill_wake: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def build_workers(app: web.Application) -> Workers:
    config: NodeConfig = app[appkeys.CONFIG]
    sessions, clock = app[appkeys.SESSION_MAKER], app[appkeys.CLOCK]
    directory = install_key_cache(app)
    backfill_wake = asyncio.Event()
    processor = InboxProcessor(
        config=config, session_maker=sessions, clock=clock, keys=app[appkeys.NODE_KEYS],
        directory=directory, key_resolver=app[appkeys.KEY_CACHE],
        on_follow_accepted=backfill_wake.set, hook=app.get(appkeys.INBOX_HOOK),
        sqlite=app.get(SQLITE_WORK),
    )
    delivery = DeliveryWorker(session_maker=sessions, fetcher=app[appkeys.FETCHER],
                              keys=app[appkeys.NODE_KEYS], clock=clock, tuning=config.delivery)
    backfiller = Backfiller(session_maker=sessions, directory=directory, processor=processor,
                            clock=clock)
    return Workers(delivery, processor, backfiller, backfill_wake=backfill_wake)


async def run_inbox(workers: Workers, clock: Callable[[], datetime], config: NodeConfig,
                    ingest: Callable[[], DoorWatch | None] = lambda: None) -> None:
    loop = asyncio.get_running_loop()
    pause = INGEST_QUIET_SECONDS
    while not workers.stop.is_set():
        door = ingest()
        if door is not None:
            await let_ingest_go_first(door, workers.stop, busy=pause,
                                      saturated=SATURATED_AT_MOST_SECONDS)
            if workers.stop.is_set():
                break  # stopping: no batch begun while waiting
        started = loop.time()
        try:
            handled = await process_inbox_batch(workers.processor, clock,
                                                config.inbox.worker_batch_size)
        except Exception:  # noqa: BLE001 - keep processing after one bad batch
            log.exception("inbox batch failed")
            handled = 0
        pause = busy_pause(loop.time() - started)
        if handled:
            workers.delivery_wake.set()  # answers (Accept, Reject) may be waiting to go out
        else:
            await sleep_until(workers.stop, workers.inbox_wake,
                              config.inbox.poll_interval_seconds)


def ingest_watch(app: web.Application) -> Callable[[], DoorWatch | None]:
    """How the inbox worker tells how busy the inbox is: this process's writer (started
    after the workers, so asked for each time); in a worker process of its own, the
    marks every process's writer leaves beside a SQLite database (``DoorMarks``), or on
    PostgreSQL the queue's table (``node.inbox_queue.QueueWatch``: busy or not, it cannot
    tell saturation)."""
    if app.get(INGEST_ELSEWHERE):
        marks = DoorMarks.for_url(app[appkeys.CONFIG].database_url)
        if marks is not None:
            async def marked() -> DoorLoad:
                return marks.load()

            return lambda: marked
        watch = QueueWatch(app[appkeys.SESSION_MAKER]).load
        return lambda: watch

    def local() -> DoorWatch | None:
        writer = app.get(INBOX_WRITER)
        if writer is None:
            return None

        async def load() -> DoorLoad:
            return writer.load()

        return load

    return local


def busy_pause(batch_seconds: float, *, share: float = BUSY_PROCESSING_SHARE,
               quiet: float = INGEST_QUIET_SECONDS,
               longest: float = INGEST_FIRST_AT_MOST_SECONDS) -> float:
    """How long the worker lets a busy inbox go first after a batch of ``batch_seconds``.

    Processing then takes ``share`` of the time while the inbox stays busy but keeps up
    (the rest is the door's), so a long stream is processed as it comes in instead of
    piling up to the queue limit (with one batch a second, 50 items/s were processed
    during a burst); at least ``quiet``, at most ``longest``. The batch's wall time counts
    the door's requests served between its awaits too, so the share is if anything
    smaller. A saturated door waits longer (``let_ingest_go_first``).
    """
    return min(longest, max(quiet, batch_seconds * (1 - share) / share))


async def let_ingest_go_first(door: DoorWatch, stop: asyncio.Event, *,
                              quiet: float = INGEST_QUIET_SECONDS,
                              busy: float = INGEST_FIRST_AT_MOST_SECONDS,
                              saturated: float = SATURATED_AT_MOST_SECONDS) -> float:
    """Wait while the inbox is taking requests: at most ``busy`` seconds while it keeps
    up with them, at most ``saturated`` seconds while they queue (``DoorLoad``).

    Processing can wait and a sender cannot: a door with more requests than it answers
    gets the CPU (and the write lock) to itself, and processing catches up when the
    burst ends; the worker still takes one batch at least every ``saturated`` seconds,
    and a burst longer than the queue limit is answered with 503s, which ends it. A door
    that keeps up leaves processing its share (``run_inbox`` passes ``busy_pause`` as
    ``busy``), so a steady stream is processed as it comes. Returns the seconds waited.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    while not stop.is_set():
        load = await door()
        if load.idle_for >= quiet:
            break
        left = (saturated if load.saturated else busy) - (loop.time() - started)
        if left <= 0:
            break
        await asyncio.sleep(min(quiet, left))
    return loop.time() - started


async def process_inbox_batch(processor: InboxProcessor, clock: Callable[[], datetime],
                              limit: int) -> int:
    """Claim and apply one batch of received activities; record the results together.

    Each actor's activities are decided in arrival order; different actors proceed side
    by side, so one slow remote server (a Follow needs its actor fetched) does not hold
    up everyone else's activities. The object changes (Create, Update, Delete, Announce)
    are then applied together, in arrival order, in one transaction (one bad change is
    undone alone: ``InboxProcessor.apply_batch``) with the batch's results, or, when a
    hook is to see the changes first, shown to it and the results stored in one more
    transaction (the items stay leased until then; after a crash they are applied again). An actor's activity that is no object change and
    comes after one of its changes waits for the next round of the same batch, so it
    still sees (and the hook still sees) them in order. The claim, the changes and the
    results go through ``processor.in_transaction`` (on SQLite the inbox writer's
    thread).
    """
    now = clock()
    items = await processor.in_transaction(
        lambda connection: claim(connection, now=now, lease=INBOX_LEASE, limit=limit))
    by_actor: dict[str, list[ClaimedItem]] = {}
    for item in items:
        by_actor.setdefault(item.actor, []).append(item)
    groups = list(by_actor.values())
    while groups:
        decided, groups = await _decide_round(processor, groups)
        outcomes, states = await _apply_round(processor, decided, clock)
        for outcome, state in zip(outcomes, states, strict=True):
            # one line per item only when it did not simply succeed
            log.log(logging.DEBUG if state is InboxState.DONE else logging.INFO,
                    "inbox processed activity=%s state=%s reason=%s",
                    outcome.item.activity_uri, state.value, outcome.error)
    return len(items)


@dataclass(frozen=True)
class Decided:
    item: ClaimedItem
    activity: Incoming | None
    decision: Decision


def _may_be_change(raw: Mapping[str, Any]) -> bool:
    """Whether a claimed item may become an object change (read before parsing it)."""
    kind = raw.get("type") if isinstance(raw, Mapping) else None
    return (isinstance(kind, str) and kind in OBJECT_CHANGE_TYPES
            and reference(raw.get("object")) != raw.get("actor"))


async def _decide_round(processor: InboxProcessor, groups: list[list[ClaimedItem]]
                        ) -> tuple[list[Decided], list[list[ClaimedItem]]]:
    """Decide each actor's items in order, up to one that must wait for the actor's
    earlier changes; the decisions in arrival order, and the actors' remaining items."""
    limit_parallel = asyncio.Semaphore(INBOX_PARALLEL_ACTORS)
    decided: list[Decided] = []
    later: list[list[ClaimedItem]] = []

    async def decide_in_order(actor_items: list[ClaimedItem]) -> None:
        async with limit_parallel:
            changed = False
            for index, item in enumerate(actor_items):
                if changed and not _may_be_change(item.raw):
                    later.append(actor_items[index:])
                    return
                step = await decide_item(processor, item)
                changed = changed or isinstance(step.decision, ObjectChange)
                decided.append(step)

    await asyncio.gather(*(decide_in_order(group) for group in groups))
    return sorted(decided, key=lambda step: step.item.id), later


async def _apply_round(processor: InboxProcessor, decided: list[Decided],
                       clock: Callable[[], datetime]
                       ) -> tuple[list[Outcome], list[InboxState]]:
    """Apply the round's object changes in one transaction and record the round's
    results: in that same transaction when no hook looks, else after the hook saw each
    change (in a transaction of their own). The outcomes and the states stored."""
    changes = [step for step in decided if isinstance(step.decision, ObjectChange)]
    recorded: list[tuple[list[Outcome], list[InboxState]]] = []

    def record(connection: Connection, verdicts: list[Verdict]) -> None:
        ids = [step.item.id for step in changes]
        outcomes = _outcomes(decided, dict(zip(ids, verdicts, strict=True)))
        recorded.append((outcomes, record_outcomes(connection, outcomes, now=clock())))

    applied: list[Verdict] = []
    if changes or not processor.observes:
        try:
            applied = await processor.apply_batch([step.decision for step in changes],
                                                  then=None if processor.observes else record)
            if recorded:
                return recorded[-1]  # the pass that committed recorded last
        except SQLAlchemyError as exc:  # the commit failed: nothing of the round stands
            log.warning("inbox object changes failed items=%d error=%r", len(changes), exc)
            applied = [failed(exc)] * len(changes)
    verdicts = {step.item.id: verdict for step, verdict in zip(changes, applied, strict=True)}
    for step in changes:
        verdicts[step.item.id] = await observe_item(processor, step, verdicts[step.item.id])
    outcomes = _outcomes(decided, verdicts)
    now = clock()
    states = await processor.in_transaction(
        lambda connection: record_outcomes(connection, outcomes, now=now))
    return outcomes, states


def _outcomes(decided: list[Decided], verdicts: dict[int, Verdict]) -> list[Outcome]:
    """Each item's outcome: its verdict, or its change's (by item id)."""
    outcomes = []
    for step in decided:
        verdict = step.decision if isinstance(step.decision, Verdict) else verdicts[step.item.id]
        outcomes.append(Outcome(step.item, verdict.state, verdict.reason))
    return outcomes


async def decide_item(processor: InboxProcessor, item: ClaimedItem) -> Decided:
    try:
        activity, decision = await processor.decide(item.raw)
    except Exception as exc:  # noqa: BLE001 - logged; one bad item must not hold the batch
        # Uncaught, the item stayed claimed with no attempt counted and came back every
        # lease for ever; as a retry it is counted and given up after MAX_ATTEMPTS.
        log.exception("inbox processing failed activity=%s", item.activity_uri)
        return Decided(item, None, retry(f"processing failed: {type(exc).__name__}"))
    return Decided(item, activity, decision)


async def observe_item(processor: InboxProcessor, step: Decided, verdict: Verdict) -> Verdict:
    try:
        return await processor.observed(step.activity, verdict)
    except Exception as exc:  # noqa: BLE001 - as in decide_item
        log.exception("inbox processing failed activity=%s", step.item.activity_uri)
        return retry(f"processing failed: {type(exc).__name__}")


async def run_backfill(workers: Workers) -> None:
    while not workers.stop.is_set():
        try:
            await workers.backfiller.run_pending()
        except Exception:  # noqa: BLE001 - a broken outbox must not stop later backfills
            log.exception("backfill round failed")
        await sleep_until(workers.stop, workers.backfill_wake, BACKFILL_POLL_SECONDS)


@contextlib.asynccontextmanager
async def start_workers(app: web.Application) -> AsyncIterator[Workers]:
    """Run the workers while the app runs; stop them (gracefully, then by force) after."""
    workers = build_workers(app)
    config, sessions, clock = app[appkeys.CONFIG], app[appkeys.SESSION_MAKER], app[appkeys.CLOCK]
    workers.tasks = [
        asyncio.create_task(workers.delivery.run(workers.stop, workers.delivery_wake),
                            name="delivery-worker"),
        asyncio.create_task(run_inbox(workers, clock, config,
                                      ingest_watch(app)), name="inbox-worker"),
        asyncio.create_task(run_backfill(workers), name="backfill-worker"),
        asyncio.create_task(run_pruner(workers.stop, sessions, clock, config.inbox,
                                       config.delivery),
                            name="pruner"),
    ]
    marks = DoorMarks.for_url(config.database_url) if app.get(INGEST_ELSEWHERE) else None
    if marks is not None:
        workers.tasks.append(asyncio.create_task(
            watch_door_marks(marks, workers.stop, workers.inbox_wake), name="door-marks"))
    app[appkeys.WORKERS] = workers
    app[INBOX_WAKER] = workers.inbox_wake.set
    log.info("workers started delivery_worker=%s", workers.delivery.worker_id)
    try:
        yield workers
    finally:
        workers.stop.set()
        _, pending = await asyncio.wait(workers.tasks, timeout=STOP_GRACE_SECONDS)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        released = await workers.delivery.release()
        log.info("workers stopped released_deliveries=%s", released)


async def watch_door_marks(marks: DoorMarks, stop: asyncio.Event, wake: asyncio.Event,
                           every: float = MARKS_WATCH_SECONDS) -> None:
    """Wake the inbox worker when an acceptor in another process stored a row (its
    ``DoorMarks`` moved), until ``stop``."""
    seen = marks.stored_at()
    while not stop.is_set():
        await sleep_until(stop, None, every)
        stored = marks.stored_at()
        if stored != seen:
            seen = stored
            wake.set()


def wake_delivery(app: web.Application) -> None:
    """Tell the delivery worker new rows are waiting (call after committing them)."""
    workers = app.get(appkeys.WORKERS)
    if isinstance(workers, Workers):
        workers.delivery_wake.set()


async def run_standalone(config: NodeConfig,
                         clock: Callable[[], datetime] | None = None) -> None:
    """``praxisnetz worker``: the app's resources and workers without a listening socket."""
    from node.app import create_app

    app = create_app(config, clock=clock, start_workers=True)
    app[INGEST_ELSEWHERE] = True
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    log.info("worker process running id=%s", new_worker_id("process"))
    try:
        await stopped.wait()
    finally:
        await runner.cleanup()
