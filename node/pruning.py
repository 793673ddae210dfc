"""Pruning what every received activity leaves behind, once nobody can need it any more.

Two tables grow with each delivery to the inbox and were never emptied:

- ``inbox_items``: one row per received activity, with its full JSON (up to the inbox's
  1 MiB limit). After processing (``done`` or ``rejected``) the row is only the inbox's
  duplicate check: a sender that did not see our 202 sends the same activity id again, and
  the unique ``activity_uri`` turns that retry away. Senders retry for days (Mastodon about
  two, this node's own delivery three: ``[delivery] give_up_after_days``), so the row is
  kept for ``[inbox] receipt_retention_days`` after it arrived, then deleted. Items still
  waiting or being retried are never touched.
- Follow/Undo receipts in ``activities`` (``node.incoming_follows``): settled pairs older
  than the same window. Follow receipts that are not undone stay (they decide who follows).

- ``deliveries``: one row per outgoing activity and recipient inbox (on a hub one per
  group follower for every relayed Create). Settled rows (``delivered``, ``failed`` for
  good, ``gave_up``) are deleted ``[delivery] settled_retention_days`` after they finished. Nothing reads
  them for correctness: every activity gets its rows once, when it is created
  (``node.outbox``), so there is no re-enqueue to deduplicate; only the operator views
  (dashboard counts, ``praxisnetz deliveries list|retry``) see fewer. Pending, in-flight
  rows and those waiting for a retry (``pending`` again) are never touched.

What stays for good: the node's own activities (its outbox), received Likes and
tombstones of deleted remote objects (``remote_objects.deleted``: a late Create must not
bring one back).

``run_pruner`` is the worker loop; ``prune_once`` one pass, in small transactions so the
inbox writer is never held up for long (SQLite has one writer at a time).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node import incoming_follows
from node.config import DeliveryTuning, InboxTuning
from node.delivery import sleep_until
from node.delivery_state import TERMINAL_STATES
from node.storage.models import Delivery, InboxItem, InboxState

log = logging.getLogger("praxisnetz.pruning")

PRUNE_INTERVAL_SECONDS = 3600.0  # the window is days long: once an hour is plenty
# Rows per transaction, and a pause after each: on SQLite a transaction holds the one
# write lock the inbox writer needs too. 200 rows held it ~23 ms (500: ~50 ms) on the
# loaded test machine; with the pause the writer gets the lock at least half the time
# while a backlog (the first pass after an upgrade) is worked off.
BATCH = 200
PAUSE_SECONDS = 0.02
FINISHED = (InboxState.DONE.value, InboxState.REJECTED.value)
SETTLED = tuple(state.value for state in TERMINAL_STATES)  # delivered, failed, gave_up


@dataclass(frozen=True)
class Pruned:
    inbox_items: int = 0
    undo_receipts: int = 0
    follow_receipts: int = 0
    deliveries: int = 0

    def __add__(self, other: Pruned) -> Pruned:
        return Pruned(self.inbox_items + other.inbox_items,
                      self.undo_receipts + other.undo_receipts,
                      self.follow_receipts + other.follow_receipts,
                      self.deliveries + other.deliveries)

    @property
    def total(self) -> int:
        return self.inbox_items + self.undo_receipts + self.follow_receipts + self.deliveries


def retention_of(tuning: InboxTuning) -> timedelta:
    return timedelta(days=tuning.receipt_retention_days)


def settled_retention_of(tuning: DeliveryTuning) -> timedelta:
    return timedelta(days=tuning.settled_retention_days)


async def prune_inbox_items(session: AsyncSession, cutoff: datetime, limit: int) -> int:
    """Delete up to ``limit`` processed items received before ``cutoff`` (the index on
    state and received_at finds them)."""
    chosen = list(await session.scalars(
        select(InboxItem.id)
        .where(InboxItem.state.in_(FINISHED), InboxItem.received_at < cutoff)
        .limit(limit)))  # no ORDER BY: it would sort every match again for each batch
    if chosen:
        await session.execute(delete(InboxItem).where(InboxItem.id.in_(chosen)))
    return len(chosen)


async def prune_deliveries(session: AsyncSession, cutoff: datetime, limit: int) -> int:
    """Delete up to ``limit`` deliveries settled (delivered, failed for good, given up)
    before ``cutoff``."""
    # A row settles only from in_flight, claimed once due, so next_attempt_at <= finished_at:
    # the condition on it changes nothing but lets the ix_deliveries_due index skip
    # the recent rows instead of reading the whole window under SQLite's write lock.
    settled = (Delivery.state.in_(SETTLED), Delivery.next_attempt_at < cutoff,
               Delivery.finished_at < cutoff)
    chosen = list(await session.scalars(select(Delivery.id).where(*settled).limit(limit)))
    if not chosen:
        return 0
    # the condition again: an operator may have requeued a given-up row meanwhile
    # (PostgreSQL re-checks it on the locked row; SQLite has one writer anyway)
    deleted = await session.execute(delete(Delivery).where(Delivery.id.in_(chosen), *settled))
    return int(deleted.rowcount or 0)


async def prune_deliveries_once(sessions: async_sessionmaker[AsyncSession], *, now: datetime,
                                retention: timedelta, batch: int = BATCH,
                                stop: asyncio.Event | None = None) -> int:
    """Prune settled deliveries older than ``retention``, batch by batch (as
    ``prune_once``). Returns how many rows went."""
    cutoff, pruned = now - retention, 0
    while True:
        async with sessions() as session, session.begin():
            step = await prune_deliveries(session, cutoff, batch)
        pruned += step
        if step < batch or (stop and stop.is_set()):
            return pruned
        await asyncio.sleep(PAUSE_SECONDS)


async def _prune_batch(sessions: async_sessionmaker[AsyncSession], cutoff: datetime,
                       limit: int) -> Pruned:
    async with sessions() as session, session.begin():
        items = await prune_inbox_items(session, cutoff, limit)
        receipts = await incoming_follows.prune_receipts(session, cutoff, limit)
    return Pruned(items, receipts.undos, receipts.follows)


async def prune_once(sessions: async_sessionmaker[AsyncSession], *, now: datetime,
                     retention: timedelta, batch: int = BATCH,
                     stop: asyncio.Event | None = None) -> Pruned:
    """Prune everything older than ``retention``, batch by batch, until nothing is left
    (or ``stop`` is set after a batch). Returns how many rows went."""
    cutoff = now - retention
    pruned = Pruned()
    while True:  # at least one batch, also when asked to stop meanwhile
        step = await _prune_batch(sessions, cutoff, batch)
        pruned += step
        if max(step.inbox_items, step.undo_receipts) < batch or (stop and stop.is_set()):
            return pruned
        await asyncio.sleep(PAUSE_SECONDS)  # let the inbox writer in between


async def run_pruner(stop: asyncio.Event, sessions: async_sessionmaker[AsyncSession],
                     clock: Callable[[], datetime], tuning: InboxTuning,
                     delivery: DeliveryTuning,
                     interval: float = PRUNE_INTERVAL_SECONDS) -> None:
    """The worker loop: a pass at start, then one every ``interval`` seconds."""
    while not stop.is_set():
        try:
            now = clock()
            pruned = await prune_once(sessions, now=now, retention=retention_of(tuning),
                                      stop=stop)
            deliveries = await prune_deliveries_once(
                sessions, now=now, retention=settled_retention_of(delivery), stop=stop)
            pruned += Pruned(deliveries=deliveries)
        except Exception:  # noqa: BLE001 - logged; the next pass tries again
            log.exception("pruning failed")
        else:
            if pruned.total:
                log.info("pruned inbox_items=%s undo_receipts=%s follow_receipts=%s "
                         "deliveries=%s", pruned.inbox_items, pruned.undo_receipts,
                         pruned.follow_receipts, pruned.deliveries)
        await sleep_until(stop, None, interval)
