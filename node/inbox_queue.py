"""The ``inbox_items`` table as a work queue: claim under a lease, finish, retry later.

Same claiming scheme as deliveries (see ``node.delivery_queue``): in arrival order
through an index (``node.claim_order``), one atomic UPDATE on SQLite, ``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, and a lease so an item held by a worker that died is processed
again once the lease runs out.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, and_, bindparam, func, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.claim_order import ClaimOrder
from node.inbox_sqlite import move_arrivals
from node.inbox_writer import DoorLoad
from node.storage.models import InboxItem, InboxState, UTCDateTime

MAX_ATTEMPTS = 8
FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)


@dataclass(frozen=True)
class ClaimedItem:
    id: int
    activity_uri: str
    actor: str
    raw: dict[str, Any]
    attempts: int


_ITEMS = InboxItem.__table__
_NOW = bindparam("i_now", type_=UTCDateTime())
_LEASE_OVER = or_(_ITEMS.c.claimed_until.is_(None), _ITEMS.c.claimed_until < _NOW)
# Arrival order, through ix_inbox_items_arrival (node.claim_order): the one OR of the
# states made SQLite sort every waiting item at each claim (24 ms with 50,000 waiting)
# and PostgreSQL walk the primary key past every processed item still kept (37 ms with
# 100,000).
_ARRIVAL_ORDER = ClaimOrder(
    _ITEMS.c.id,
    (_ITEMS.c.received_at, _ITEMS.c.id),
    (_ITEMS.c.state == InboxState.RECEIVED.value,
     and_(_ITEMS.c.state == InboxState.RETRY.value, _LEASE_OVER),
     and_(_ITEMS.c.state == InboxState.PROCESSING.value, _LEASE_OVER)),
    bindparam("i_limit", type_=Integer()),
)
_CLAIM_VALUES = {"state": InboxState.PROCESSING.value,
                 "claimed_until": bindparam("i_until", type_=UTCDateTime())}
_CLAIMED = (_ITEMS.c.id, _ITEMS.c.activity_uri, _ITEMS.c.actor, _ITEMS.c.raw,
            _ITEMS.c.attempts, _ITEMS.c.received_at)
# SQLite: choose and mark in one statement (its one writer keeps the chosen rows
# claimable); PostgreSQL: lock the chosen rows first, then mark them if still claimable.
_CLAIM_SQLITE = (update(_ITEMS).where(_ITEMS.c.id.in_(_ARRIVAL_ORDER.first_ids))
                 .values(_CLAIM_VALUES).returning(*_CLAIMED))
_CLAIM_CHOSEN = (update(_ITEMS)
                 .where(_ITEMS.c.id.in_(bindparam("i_ids", expanding=True)),
                        or_(*_ARRIVAL_ORDER.branches))
                 .values(_CLAIM_VALUES).returning(*_CLAIMED))


def claim(connection: Connection, *, now: datetime, lease: timedelta,
          limit: int) -> list[ClaimedItem]:
    """Claim the oldest processable items, in the order they arrived (in the caller's
    transaction)."""
    parameters: dict[str, object] = {"i_now": now, "i_until": now + lease, "i_limit": limit}
    if connection.dialect.name == "postgresql":
        parameters["i_ids"] = _ARRIVAL_ORDER.first_locked(connection, parameters, limit)
        result = connection.execute(_CLAIM_CHOSEN, parameters)
    else:
        move_arrivals(connection)  # what a saturated inbox appended (node.inbox_sqlite)
        result = connection.execute(_CLAIM_SQLITE, parameters)
    rows = sorted(result, key=lambda row: (row.received_at, row.id))  # RETURNING has no order
    return [ClaimedItem(row.id, row.activity_uri, row.actor, row.raw, row.attempts)
            for row in rows]


async def claim_items(
    session_maker: async_sessionmaker[AsyncSession],
    *,
    now: datetime,
    lease: timedelta,
    limit: int,
) -> list[ClaimedItem]:
    """``claim`` in a transaction of its own."""
    async with session_maker() as session, session.begin():
        return await session.run_sync(
            lambda sync: claim(sync.connection(), now=now, lease=lease, limit=limit))


def retry_delay(attempts: int) -> timedelta:
    return min(LONGEST_RETRY, FIRST_RETRY * (2 ** max(0, attempts - 1)))


@dataclass(frozen=True)
class Outcome:
    """What processing an item came to: its next state and why."""

    item: ClaimedItem
    state: InboxState
    error: str = ""


def _finished_values(outcome: Outcome, now: datetime) -> dict[str, object]:
    """The row's new columns; a retry past MAX_ATTEMPTS becomes a rejection."""
    attempts = outcome.item.attempts + 1
    state, error = outcome.state, outcome.error
    if state is InboxState.RETRY and attempts >= MAX_ATTEMPTS:
        state, error = InboxState.REJECTED, f"gave up after {attempts} attempts: {error}"
    values: dict[str, object] = {"id": outcome.item.id, "state": state.value,
                                 "attempts": attempts, "error": error or None}
    if state is InboxState.RETRY:
        values["claimed_until"] = now + retry_delay(attempts)
    else:
        values["claimed_until"] = None
        values["processed_at"] = now
    return values


def record_outcomes(connection: Connection, outcomes: list[Outcome], *,
                    now: datetime) -> list[InboxState]:
    """Record the results of a batch in the caller's transaction; the states stored, in
    order. One executemany per shape of row (a retry sets no ``processed_at``)."""
    rows = [_finished_values(outcome, now) for outcome in outcomes]
    shapes: dict[tuple[str, ...], list[dict[str, object]]] = {}
    for row in rows:
        values = {name: value for name, value in row.items() if name != "id"}
        shapes.setdefault(tuple(sorted(values)), []).append({**values, "item_id": row["id"]})
    by_id = update(_ITEMS).where(_ITEMS.c.id == bindparam("item_id"))
    for parameters in shapes.values():
        connection.execute(by_id, parameters)
    return [InboxState(row["state"]) for row in rows]


async def finish_items(
    session_maker: async_sessionmaker[AsyncSession],
    outcomes: list[Outcome],
    *,
    now: datetime,
) -> list[InboxState]:
    """Record the results of a batch in one transaction; the states stored, in order."""
    if not outcomes:
        return []
    async with session_maker() as session, session.begin():
        return await session.run_sync(
            lambda sync: record_outcomes(sync.connection(), outcomes, now=now))


async def finish_item(
    session_maker: async_sessionmaker[AsyncSession],
    item: ClaimedItem,
    state: InboxState,
    *,
    now: datetime,
    error: str = "",
) -> InboxState:
    """Record the result of processing one item (see ``finish_items``)."""
    [stored] = await finish_items(session_maker, [Outcome(item, state, error)], now=now)
    return stored


class QueueWatch:
    """How long ago any process last added an item, as a worker process without an inbox
    of its own can tell: by polling the newest item's id (one indexed read a poll).

    Unknown before the second poll (infinite: the first poll cannot tell when the
    newest item came); then the time since a poll first saw a newer id.
    """

    def __init__(self, session_maker: async_sessionmaker[AsyncSession], *,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._sessions = session_maker
        self._monotonic = monotonic
        self._newest: int | None = None
        self._polled = False
        self._changed_at = -math.inf

    async def load(self) -> DoorLoad:
        """The inbox's load as far as the table tells: busy or idle, never saturated (the
        batches' sizes are the writers' own; a SQLite node's writers leave
        ``node.inbox_writer.DoorMarks``, which tell)."""
        return DoorLoad(await self.idle_for(), saturated=False)

    async def idle_for(self) -> float:
        async with self._sessions() as session:
            newest = await session.scalar(select(func.max(InboxItem.id)))
        now = self._monotonic()
        if self._polled and newest != self._newest:
            self._changed_at = now
        self._newest, self._polled = newest, True
        return now - self._changed_at
