"""Delivery: the declared state machine, lease-based claiming, and the worker against a
scripted receiver on loopback (double-knocking, retry policy, breaker, limits)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web

from node import appkeys
from node.config import DeliveryTuning
from node.delivery import DeliveryWorker
from node.delivery_queue import DeliveryOutcome, claim_due, record_outcome, requeue
from node.delivery_state import (
    TERMINAL_STATES,
    DeliveryEvent,
    DeliveryState,
    IllegalTransition,
    allowed_events,
    next_state,
)
from node.outbox import record_local_activity
from node.storage.models import Delivery, Host
from tests.engine_support import RunningNode, free_port, node_config, start_node

# --- the state machine ---------------------------------------------------------------


def test_declared_transitions() -> None:
    assert next_state("pending", "claim") is DeliveryState.IN_FLIGHT
    assert next_state(DeliveryState.IN_FLIGHT, DeliveryEvent.SUCCEEDED) is DeliveryState.DELIVERED
    assert next_state("in_flight", "retry_later") is DeliveryState.PENDING
    assert next_state("in_flight", "failed_permanently") is DeliveryState.FAILED
    assert next_state("in_flight", "gave_up") is DeliveryState.GAVE_UP
    assert next_state("gave_up", "requeue") is DeliveryState.PENDING


@pytest.mark.parametrize("state,event", [
    ("delivered", "claim"), ("delivered", "retry_later"), ("pending", "succeeded"),
    ("failed", "claim"), ("pending", "reclaim"), ("delivered", "requeue"),
])
def test_undeclared_transitions_raise(state: str, event: str) -> None:
    with pytest.raises(IllegalTransition) as raised:
        next_state(state, event)
    assert state in str(raised.value) and event in str(raised.value)


def test_terminal_states_only_leave_by_requeue() -> None:
    for state in TERMINAL_STATES:
        assert allowed_events(state) <= {DeliveryEvent.REQUEUE}
    with pytest.raises(ValueError):
        next_state("exploded", "claim")


# --- a scripted receiver ---------------------------------------------------------------


@dataclass
class Receiver:
    """An inbox on loopback whose answers the test scripts."""

    answer: callable = lambda request: web.Response(status=202)
    delay: float = 0.0
    seen: list[dict[str, str]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await request.read()
            self.seen.append(dict(request.headers))
            if self.delay:
                await asyncio.sleep(self.delay)
            return self.answer(request)
        finally:
            self.in_flight -= 1


@pytest.fixture
async def receiver():
    script = Receiver()
    app = web.Application()
    app.router.add_post("/inbox", script.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    script.url = f"http://127.0.0.1:{port}/inbox"
    yield script
    await runner.cleanup()


@pytest.fixture
async def sender(tmp_path):
    node = await start_node(node_config(tmp_path, "sender"), start_workers=False)
    yield node
    await node.stop()


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


async def enqueue(node: RunningNode, inboxes: list[str], now: datetime) -> list[int]:
    document = {"@context": "https://www.w3.org/ns/activitystreams",
                "id": f"{node.url}/activities/{uuid.uuid4()}", "type": "Create",
                "actor": node.actor, "object": {"id": f"{node.url}/x", "type": "Note"}}
    async with node.sessions()() as session, session.begin():
        activity = await record_local_activity(session, document, inboxes, now=now)
        rows = await session.execute(
            Delivery.__table__.select().where(Delivery.activity_id == activity.id))
        return [row.id for row in rows]


def worker_for(node: RunningNode, clock: Clock, **tuning: object) -> DeliveryWorker:
    return DeliveryWorker(session_maker=node.sessions(), fetcher=node.app[appkeys.FETCHER],
                          keys=node.keys, clock=clock,
                          tuning=replace(DeliveryTuning(), **tuning), random_fraction=lambda: 0.0)


async def delivery(node: RunningNode, row_id: int) -> Delivery:
    return (await node.rows(Delivery, Delivery.id == row_id))[0]


async def test_success_is_recorded_with_the_scheme_that_worked(sender, receiver) -> None:
    clock = Clock()
    [row_id] = await enqueue(sender, [receiver.url], clock())
    assert await worker_for(sender, clock).run_once() == 1
    row = await delivery(sender, row_id)
    assert (row.state, row.attempts, row.last_status) == ("delivered", 1, 202)
    assert row.finished_at is not None and row.claimed_by is None
    assert "Signature-Input" in receiver.seen[0]  # RFC 9421 first
    [host] = await sender.rows(Host)
    assert host.signature_scheme == "rfc9421" and host.consecutive_failures == 0


async def test_double_knock_falls_back_to_cavage_and_remembers(sender, receiver) -> None:
    receiver.answer = lambda request: web.Response(
        status=401 if "Signature-Input" in request.headers else 202)
    clock = Clock()
    [first] = await enqueue(sender, [receiver.url], clock())
    await worker_for(sender, clock).run_once()
    assert (await delivery(sender, first)).state == "delivered"
    assert [("Signature-Input" in h) for h in receiver.seen] == [True, False]
    assert (await sender.rows(Host))[0].signature_scheme == "draft-cavage-12"
    [second] = await enqueue(sender, [receiver.url], clock())
    await worker_for(sender, clock).run_once()  # a new worker reads the host's scheme
    assert (await delivery(sender, second)).state == "delivered"
    assert "Signature-Input" not in receiver.seen[2] and len(receiver.seen) == 3


@pytest.mark.parametrize("status", [404, 410])
async def test_gone_ends_the_delivery(sender, receiver, status) -> None:
    receiver.answer = lambda request: web.Response(status=status)
    clock = Clock()
    [row_id] = await enqueue(sender, [receiver.url], clock())
    await worker_for(sender, clock).run_once()
    row = await delivery(sender, row_id)
    assert (row.state, row.last_status) == ("failed", status)
    clock.now += timedelta(days=1)
    assert await worker_for(sender, clock).run_once() == 0  # never claimed again


async def test_retry_after_is_honoured(sender, receiver) -> None:
    receiver.answer = lambda request: web.Response(status=503, headers={"Retry-After": "600"})
    clock = Clock()
    [row_id] = await enqueue(sender, [receiver.url], clock())
    await worker_for(sender, clock).run_once()
    row = await delivery(sender, row_id)
    assert row.state == "pending" and row.attempts == 1
    assert row.next_attempt_at >= clock.now + timedelta(seconds=600)
    assert await worker_for(sender, clock).run_once() == 0  # not due yet


async def test_gives_up_after_the_retry_window(sender, receiver) -> None:
    receiver.answer = lambda request: web.Response(status=500)
    clock = Clock()
    [row_id] = await enqueue(sender, [receiver.url], clock())
    await worker_for(sender, clock).run_once()
    clock.now += timedelta(days=4)
    await worker_for(sender, clock).run_once()
    row = await delivery(sender, row_id)
    assert (row.state, row.attempts) == ("gave_up", 2)


async def test_open_breaker_holds_deliveries_without_attempts(sender, receiver) -> None:
    receiver.answer = lambda request: web.Response(status=500)
    clock = Clock()
    rows = await enqueue(sender, [f"{receiver.url}?n={n}" for n in range(5)], clock())
    await worker_for(sender, clock, per_host_concurrency=1).run_once()
    assert len(receiver.seen) == 5
    [late] = await enqueue(sender, [receiver.url], clock())
    await worker_for(sender, clock).run_once()
    assert len(receiver.seen) == 5  # the breaker is open: no request went out
    held = await delivery(sender, late)
    assert held.state == "pending" and held.attempts == 0
    assert "circuit open" in held.last_error
    assert (await sender.rows(Host))[0].breaker_state == "open"
    assert [(await delivery(sender, r)).state for r in rows] == ["pending"] * 5


async def test_forbidden_address_fails_before_connecting(tmp_path, receiver) -> None:
    # Without --allow-private-network, loopback inboxes are refused by the SSRF guard.
    node = await start_node(node_config(tmp_path, "strict", allow_private_network=False),
                            start_workers=False)
    try:
        clock = Clock()
        [row_id] = await enqueue(node, [receiver.url], clock())
        await worker_for(node, clock).run_once()
        row = await delivery(node, row_id)
        assert row.state == "failed" and "forbidden_address" in row.last_error
        assert receiver.seen == []
    finally:
        await node.stop()


async def test_several_in_flight_per_host_within_limits(sender, receiver) -> None:
    receiver.delay = 0.3  # long enough for the requests of one round to overlap
    clock = Clock()
    await enqueue(sender, [f"{receiver.url}?n={n}" for n in range(8)], clock())
    await worker_for(sender, clock, per_host_concurrency=3, global_concurrency=8).run_once()
    assert receiver.max_in_flight == 3
    receiver.max_in_flight = 0
    await enqueue(sender, [f"{receiver.url}?m={n}" for n in range(8)], clock())
    await worker_for(sender, clock, per_host_concurrency=8, global_concurrency=2).run_once()
    assert receiver.max_in_flight == 2


# --- claiming ---------------------------------------------------------------------------


async def test_concurrent_claims_never_overlap(sender) -> None:
    clock = Clock()
    await enqueue(sender, [f"http://127.0.0.1:9/inbox?n={n}" for n in range(60)], clock())
    lease = timedelta(seconds=30)
    batches = await asyncio.gather(*(
        claim_due(sender.sessions(), worker_id=f"w{n}", now=clock(), lease=lease, limit=25)
        for n in range(4)
    ))
    ids = [d.id for batch in batches for d in batch]
    assert len(ids) == len(set(ids)) == 60


async def test_expired_lease_is_reclaimed_and_the_old_owner_cannot_write(sender) -> None:
    clock = Clock()
    [row_id] = await enqueue(sender, ["http://127.0.0.1:9/inbox"], clock())
    lease = timedelta(seconds=30)
    [dead] = await claim_due(sender.sessions(), worker_id="dead", now=clock(), lease=lease, limit=5)
    assert await claim_due(sender.sessions(), worker_id="other", now=clock(), lease=lease,
                           limit=5) == []
    clock.now += timedelta(seconds=31)
    [again] = await claim_due(sender.sessions(), worker_id="other", now=clock(), lease=lease,
                              limit=5)
    assert again.id == row_id
    late_write = await record_outcome(sender.sessions(), dead,
                                      DeliveryOutcome(DeliveryEvent.SUCCEEDED, status=202),
                                      worker_id="dead", now=clock())
    assert late_write is False
    assert (await delivery(sender, row_id)).claimed_by == "other"


async def test_knock_memory_is_kept_per_host(sender, receiver) -> None:
    receiver.answer = lambda request: web.Response(
        status=401 if "Signature-Input" in request.headers else 202)
    clock = Clock()
    await enqueue(sender, [receiver.url], clock())
    await worker_for(sender, clock).run_once()
    [host] = await sender.rows(Host)
    assert host.knock["scheme"] == "draft-cavage-12" and host.knock["host"] == host.host


async def test_no_attempt_late_in_the_lease(sender, receiver) -> None:
    clock = Clock()
    [row_id] = await enqueue(sender, [receiver.url], clock())
    worker = worker_for(sender, clock, claim_seconds=60)
    [claimed] = await claim_due(sender.sessions(), worker_id=worker.worker_id, now=clock(),
                                lease=timedelta(seconds=60), limit=1)
    clock.now += timedelta(seconds=45)  # less than half the lease left
    outcome = await worker.attempt(claimed)
    assert outcome.event is DeliveryEvent.DEFER and not outcome.counts_as_attempt
    assert receiver.seen == []
    assert await record_outcome(sender.sessions(), claimed, outcome, worker_id=worker.worker_id,
                                now=clock())
    row = await delivery(sender, row_id)
    assert (row.state, row.attempts) == ("pending", 0)


async def test_a_stopping_worker_hands_its_claims_back(sender) -> None:
    clock = Clock()
    rows = await enqueue(sender, [f"http://127.0.0.1:9/inbox?n={n}" for n in range(3)], clock())
    worker = worker_for(sender, clock)
    await claim_due(sender.sessions(), worker_id=worker.worker_id, now=clock(),
                    lease=timedelta(minutes=2), limit=10)
    assert await worker.release() == 3
    states = [(await delivery(sender, r)) for r in rows]
    assert {(d.state, d.claimed_by) for d in states} == {("pending", None)}


async def test_operator_requeue_of_a_failed_delivery(sender, receiver) -> None:
    receiver.answer = lambda request: web.Response(status=410)
    clock = Clock()
    [row_id] = await enqueue(sender, [receiver.url], clock())
    await worker_for(sender, clock).run_once()
    async with sender.sessions()() as session, session.begin():
        assert await requeue(session, row_id, now=clock()) is DeliveryState.PENDING
    async with sender.sessions()() as session, session.begin():
        with pytest.raises(IllegalTransition):
            await requeue(session, row_id, now=clock())  # pending cannot be requeued
