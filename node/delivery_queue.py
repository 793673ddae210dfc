"""The durable delivery queue in SQL: claim due rows under a lease, record outcomes.

Claiming is one atomic statement, so two workers never hold the same row:
PostgreSQL locks the chosen rows with ``FOR UPDATE SKIP LOCKED``; SQLite serialises
writers, so an ``UPDATE … WHERE id IN (SELECT …)`` is atomic on its own. A row whose
worker died stays ``in_flight`` until its lease (``claimed_until``) runs out and is then
claimed again; receivers deduplicate by activity id, so a resend has no second effect.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.delivery_state import DeliveryEvent, DeliveryState, next_state
from node.storage.models import Activity, Delivery, UTCDateTime


@dataclass(frozen=True)
class DueDelivery:
    """A claimed delivery with everything needed to send it."""

    id: int
    activity_uri: str
    inbox_url: str
    host: str
    attempts: int
    first_attempt_at: datetime | None
    body: bytes
    actor: str = ""  # the activity's actor: its key id signs the request
    lease_until: datetime | None = None  # the claim's end; later, another worker may take it
    created_at: datetime | None = None  # when it was queued: the retry window of a row never tried


@dataclass(frozen=True)
class DeliveryOutcome:
    """What happened to one attempt, ready to be written."""

    event: DeliveryEvent
    status: int | None = None
    error: str | None = None
    next_attempt_at: datetime | None = None
    counts_as_attempt: bool = True


def serialise_activity(document: dict[str, object]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _claimable(now: datetime):  # noqa: ANN202 - a SQLAlchemy boolean clause
    return or_(
        and_(Delivery.state == DeliveryState.PENDING.value, Delivery.next_attempt_at <= now),
        and_(Delivery.state == DeliveryState.IN_FLIGHT.value, Delivery.claimed_until < now),
    )


async def _claim_ids(session: AsyncSession, *, worker_id: str, now: datetime,
                     until: datetime, limit: int) -> list[int]:
    """Mark up to ``limit`` claimable rows as ours; the ids claimed."""
    choose = (
        select(Delivery.id)
        .where(_claimable(now))
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(limit)
    )
    if session.bind.dialect.name == "postgresql":
        # Lock the chosen rows first: PostgreSQL may run a LIMIT subquery inside an
        # UPDATE more than once, and with SKIP LOCKED each run picks other rows.
        locked = await session.execute(choose.with_for_update(skip_locked=True))
        chosen: object = [row_id for (row_id,) in locked]
    else:
        chosen = choose.scalar_subquery()
    # Pending rows are claimed, expired in-flight rows reclaimed: both end in flight.
    claimed = next_state(DeliveryState.PENDING, DeliveryEvent.CLAIM)
    result = await session.execute(
        update(Delivery)
        .where(Delivery.id.in_(chosen), _claimable(now))
        .values(state=claimed.value, claimed_by=worker_id, claimed_until=until)
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    )
    return [row_id for (row_id,) in result]


async def claim_due(
    session_maker: async_sessionmaker[AsyncSession],
    *,
    worker_id: str,
    now: datetime,
    lease: timedelta,
    limit: int,
) -> list[DueDelivery]:
    """Claim up to ``limit`` due deliveries for ``worker_id`` until ``now + lease``."""
    until = now + lease
    async with session_maker() as session, session.begin():
        ids = await _claim_ids(session, worker_id=worker_id, now=now, until=until, limit=limit)
        if not ids:
            return []
        rows = await session.execute(
            select(Delivery.id, Activity.uri, Activity.document, Activity.actor,
                   Delivery.inbox_url, Delivery.host, Delivery.attempts,
                   Delivery.first_attempt_at, Delivery.created_at)
            .join(Activity, Activity.id == Delivery.activity_id)
            .where(Delivery.id.in_(ids))
            .order_by(Delivery.next_attempt_at, Delivery.id)
        )
        return [
            DueDelivery(id=row_id, activity_uri=uri, inbox_url=inbox, host=host,
                        attempts=attempts, first_attempt_at=first,
                        body=serialise_activity(document), actor=actor, lease_until=until,
                        created_at=created)
            for row_id, uri, document, actor, inbox, host, attempts, first, created in rows
        ]


async def release_claims(
    session_maker: async_sessionmaker[AsyncSession], *, worker_id: str, now: datetime
) -> int:
    """Give back what a stopping worker still holds, so nothing waits for its lease."""
    back = next_state(DeliveryState.IN_FLIGHT, DeliveryEvent.DEFER)
    async with session_maker() as session, session.begin():
        result = await session.execute(
            update(Delivery)
            .where(Delivery.state == DeliveryState.IN_FLIGHT.value,
                   Delivery.claimed_by == worker_id)
            .values(state=back.value, claimed_by=None, claimed_until=None, next_attempt_at=now)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount


# One statement for every transition out of in_flight, built once: a batch of outcomes
# then costs one round trip per row and no statement building.
_deliveries = Delivery.__table__
_WRITE_TRANSITION = (
    update(_deliveries)
    .where(
        _deliveries.c.id == bindparam("b_id"),
        _deliveries.c.state == DeliveryState.IN_FLIGHT.value,
        _deliveries.c.claimed_by == bindparam("b_worker"),
    )
    .values(
        state=bindparam("b_state"),
        claimed_by=None,
        claimed_until=None,
        last_status=bindparam("b_status"),
        last_error=bindparam("b_error"),
        attempts=bindparam("b_attempts"),
        first_attempt_at=func.coalesce(bindparam("b_first", type_=UTCDateTime()),
                                       _deliveries.c.first_attempt_at),
        next_attempt_at=func.coalesce(bindparam("b_next", type_=UTCDateTime()),
                                      _deliveries.c.next_attempt_at),
        finished_at=bindparam("b_finished", type_=UTCDateTime()),
    )
)


def _transition_parameters(delivery: DueDelivery, outcome: DeliveryOutcome, *,
                           worker_id: str, now: datetime) -> dict[str, object]:
    target = next_state(DeliveryState.IN_FLIGHT, outcome.event)
    attempted = outcome.counts_as_attempt
    back_in_queue = target is DeliveryState.PENDING
    return {
        "b_id": delivery.id,
        "b_worker": worker_id,
        "b_state": target.value,
        "b_status": outcome.status,
        "b_error": outcome.error,
        "b_attempts": delivery.attempts + (1 if attempted else 0),
        "b_first": (delivery.first_attempt_at or now) if attempted else None,
        "b_next": (outcome.next_attempt_at or now) if back_in_queue else None,
        "b_finished": None if back_in_queue else now,
    }


async def record_outcomes(
    session_maker: async_sessionmaker[AsyncSession],
    results: list[tuple[DueDelivery, DeliveryOutcome]],
    *,
    worker_id: str,
    now: datetime,
) -> list[bool]:
    """Write several transitions in one transaction (one commit, not one per row).

    Each entry is True if written, False if the row is no longer ours (lease lost).
    """
    written: list[bool] = []
    async with session_maker() as session, session.begin():
        for delivery, outcome in results:
            parameters = _transition_parameters(delivery, outcome, worker_id=worker_id, now=now)
            result = await session.execute(_WRITE_TRANSITION, parameters)
            written.append(result.rowcount == 1)
    return written


async def record_outcome(
    session_maker: async_sessionmaker[AsyncSession],
    delivery: DueDelivery,
    outcome: DeliveryOutcome,
    *,
    worker_id: str,
    now: datetime,
) -> bool:
    """Write one transition; False if the row is no longer ours (lease lost)."""
    [written] = await record_outcomes(session_maker, [(delivery, outcome)],
                                      worker_id=worker_id, now=now)
    return written


async def requeue(
    session: AsyncSession, delivery_id: int, *, now: datetime
) -> DeliveryState:
    """Operator action: send a failed or given-up delivery again.

    The delivery starts a fresh round: attempts back to 0 (the backoff starts over) and
    its retry window (``first_attempt_at``) starts now, so it gets the whole
    ``give_up_after`` again instead of being given up at its first failure.
    """
    row = await session.get(Delivery, delivery_id)
    if row is None:
        raise LookupError(f"delivery {delivery_id} does not exist")
    target = next_state(row.state, DeliveryEvent.REQUEUE)
    row.state = target.value
    row.next_attempt_at = now
    row.finished_at = None
    row.attempts = 0
    row.first_attempt_at = now
    return target


# --- operator views -------------------------------------------------------------------

RETRYABLE_STATES = (DeliveryState.FAILED, DeliveryState.GAVE_UP)


@dataclass(frozen=True)
class DeliverySummary:
    """One delivery as an operator sees it (``praxisnetz deliveries list``)."""

    id: int
    state: str
    host: str
    inbox_url: str
    activity_uri: str
    attempts: int
    last_status: int | None
    last_error: str | None
    finished_at: datetime | None


async def list_deliveries(
    session: AsyncSession,
    *,
    states: tuple[DeliveryState, ...] = RETRYABLE_STATES,
    host: str | None = None,
    limit: int = 100,
) -> list[DeliverySummary]:
    """Deliveries in ``states`` (to ``host`` if given), newest first, at most ``limit``."""
    query = (
        select(Delivery, Activity.uri)
        .join(Activity, Activity.id == Delivery.activity_id)
        .where(Delivery.state.in_([state.value for state in states]))
        .order_by(Delivery.id.desc())
        .limit(limit)
    )
    if host is not None:
        query = query.where(Delivery.host == host)
    rows = await session.execute(query)
    return [
        DeliverySummary(row.id, row.state, row.host, row.inbox_url, uri, row.attempts,
                        row.last_status, row.last_error, row.finished_at)
        for row, uri in rows
    ]  # fmt: skip


async def requeue_host(session: AsyncSession, host: str, *, now: datetime) -> list[int]:
    """Operator action: send every failed or given-up delivery to ``host`` again."""
    ids = await session.scalars(
        select(Delivery.id)
        .where(Delivery.host == host)
        .where(Delivery.state.in_([state.value for state in RETRYABLE_STATES]))
        .order_by(Delivery.id)
    )
    requeued = list(ids)
    for delivery_id in requeued:
        await requeue(session, delivery_id, now=now)
    return requeued
