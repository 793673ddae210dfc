"""Delivery: the declared state machine, lease-based claiming, and the worker against a
scripted receiver on loopback (double-knocking, retry policy, breaker, limits)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from sqlalchemy import event

from node import appkeys
from node.config import DeliveryTuning
from node.delivery import DeliveryWorker
from node.delivery_queue import (
    ClaimedBatch,
    DeliveryOutcome,
    claim_due,
    claim_due_writing,
    record_outcome,
    requeue,
)
from node.delivery_state import (
    TERMINAL_STATES,
    DeliveryEvent,
    DeliveryState,
    IllegalTransition,
    allowed_events,
    next_state,
)
from node.outbox import inbox_host, record_local_activity
from node.storage.models import Delivery, Host
from tests.engine_support import RunningNode, eventually, free_port, node_config, start_node

# --- the state machine ---------------------------------------------------------------


def test_declared_transitions() -> None:
    assert next_state("pending", "claim") is DeliveryState.IN_FLIGHT
    assert next_state(DeliveryState.IN_FLIGHT, DeliveryEvent.SUCCEEDED) is DeliveryState.DELIVERED
    assert next_state("in_flight", "retry_later") is DeliveryState.PENDING
    assert next_state("in_flight", "failed_permanently") is DeliveryState.FAILED
    assert next_state("in_flight", "gave_up") is DeliveryState.GAVE_UP
    assert next_state("gave_up", "requeue") is DeliveryState.PENDING


@pytest.mark.parametrize(
    "state,event",
    [
        ("delivered", "claim"),
        ("delivered", "retry_later"),
        ("pending", "succeeded"),
        ("failed", "claim"),
        ("pending", "reclaim"),
        ("delivered", "requeue"),
    ],
)
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


async def serve(script: Receiver) -> web.AppRunner:
    app = web.Application()
    app.router.add_post("/inbox", script.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    script.url = f"http://127.0.0.1:{port}/inbox"
    return runner


@pytest.fixture
async def receiver():
    script = Receiver()
    runner = await serve(script)
    yield script
    await runner.cleanup()


@pytest.fixture
async def dead_receiver():
    """A second host, on its own port, that answers every delivery with 500."""
    script = Receiver(answer=lambda request: web.Response(status=500))
    runner = await serve(script)
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
    document = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{node.url}/activities/{uuid.uuid4()}",
        "type": "Create",
        "actor": node.actor,
        "object": {"id": f"{node.url}/x", "type": "Note"},
    }
    async with node.sessions()() as session, session.begin():
        activity = await record_local_activity(session, document, inboxes, now=now)
        rows = await session.execute(
            Delivery.__table__.select()
            .where(Delivery.activity_id == activity.id)
            .order_by(Delivery.id)
        )
        return [row.id for row in rows]  # in the order of ``inboxes``


def worker_for(node: RunningNode, clock: Clock, **tuning: object) -> DeliveryWorker:
    return DeliveryWorker(
        session_maker=node.sessions(),
        fetcher=node.app[appkeys.FETCHER],
        keys=node.keys,
        clock=clock,
        tuning=replace(DeliveryTuning(), **tuning),
        random_fraction=lambda: 0.0,
    )


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
        status=401 if "Signature-Input" in request.headers else 202
    )
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


async def failed_for_four_days(node: RunningNode, receiver: Receiver, clock: Clock) -> int:
    """One delivery to a receiver answering 500, tried now and again four days later."""
    receiver.answer = lambda request: web.Response(status=500)
    [row_id] = await enqueue(node, [receiver.url], clock())
    await worker_for(node, clock).run_once()
    clock.now += timedelta(days=4)
    await worker_for(node, clock).run_once()
    return row_id


async def test_gives_up_after_the_retry_window(sender, receiver) -> None:
    row = await delivery(sender, await failed_for_four_days(sender, receiver, Clock()))
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


async def open_breaker(node: RunningNode, dead: Receiver, clock: Clock) -> list[int]:
    """Five failed deliveries in a row: the dead host's breaker opens."""
    rows = await enqueue(node, [f"{dead.url}?old={n}" for n in range(5)], clock())
    await worker_for(node, clock, per_host_concurrency=1).run_once()
    assert len(dead.seen) == 5 and (await node.rows(Host))[0].breaker_state == "open"
    return rows


async def test_a_host_dead_before_the_activity_existed_is_given_up_without_a_probe(
    sender, receiver, dead_receiver
) -> None:
    clock = Clock()
    old = await open_breaker(sender, dead_receiver, clock)
    clock.now += timedelta(minutes=1)
    new = await enqueue(
        sender, [f"{dead_receiver.url}?new={n}" for n in range(3)] + [receiver.url], clock()
    )
    await worker_for(sender, clock).run_once()
    held = [await delivery(sender, r) for r in new[:3]]
    assert {(d.state, d.attempts, d.first_attempt_at) for d in held} == {("pending", 0, None)}
    assert (await delivery(sender, new[3])).state == "delivered"
    # Past the give-up point of the newest delivery; the breaker is half-open by now.
    clock.now += timedelta(days=3, seconds=1)
    await worker_for(sender, clock).run_once()
    dead_rows = [await delivery(sender, r) for r in old + new[:3]]
    assert {d.state for d in dead_rows} == {"gave_up"}
    assert all("circuit breaker" in d.last_error for d in dead_rows)
    assert [d.attempts for d in dead_rows] == [1] * 5 + [0] * 3  # no attempt spent on them
    assert len(dead_receiver.seen) == 5  # no probe went out
    assert (await delivery(sender, new[3])).state == "delivered" and len(receiver.seen) == 1


async def test_held_back_deliveries_reach_give_up_while_others_flow(
    sender, receiver, dead_receiver
) -> None:
    give_up = timedelta(hours=6)
    clock, step = Clock(), timedelta(minutes=10)
    await open_breaker(sender, dead_receiver, clock)
    started = clock.now
    worker = worker_for(sender, clock, give_up_after_days=give_up / timedelta(days=1))
    live: list[int] = []
    while clock.now < started + 2 * give_up:
        clock.now += step
        rows = await enqueue(
            sender,
            [
                f"{dead_receiver.url}?at={clock.now.timestamp()}",
                f"{receiver.url}?at={clock.now.timestamp()}",
            ],
            clock(),
        )
        live.append(rows[1])
        while await worker.run_once():
            pass
        dead = await sender.rows(Delivery, Delivery.host == inbox_host(dead_receiver.url))
        for row in dead:  # nothing outlives its deadline by more than one step
            deadline = (row.first_attempt_at or row.created_at) + give_up
            assert row.state == "gave_up" or clock.now < deadline + step
    assert {(await delivery(sender, r)).state for r in live} == {"delivered"}
    assert len(receiver.seen) == len(live)
    # At most one half-open probe per cool-down went to the dead host.
    assert len(dead_receiver.seen) <= 5 + (2 * give_up) / timedelta(minutes=30) + 1


async def test_forbidden_address_fails_before_connecting(tmp_path, receiver) -> None:
    # Without --allow-private-network, loopback inboxes are refused by the SSRF guard.
    node = await start_node(
        node_config(tmp_path, "strict", allow_private_network=False), start_workers=False
    )
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


async def test_run_claims_the_next_batch_while_deliveries_are_in_flight(
    sender, receiver, monkeypatch
) -> None:
    receiver.delay = 0.02
    clock = Clock()
    rows = await enqueue(sender, [f"{receiver.url}?n={n}" for n in range(120)], clock())
    in_flight_at_claim: list[int] = []

    async def watched_claim(*args: object, **kwargs: object) -> ClaimedBatch:
        in_flight_at_claim.append(receiver.in_flight)
        return await claim_due_writing(*args, **kwargs)

    monkeypatch.setattr("node.delivery.claim_due_writing", watched_claim)
    worker = worker_for(
        sender, clock, claim_batch_size=25, global_concurrency=8, per_host_concurrency=8
    )
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await eventually(lambda: _all_in_state(sender, rows, "delivered"), timeout=30)
    stop.set()
    await asyncio.wait_for(running, timeout=10)
    assert len(receiver.seen) == 120  # each sent once
    assert max(in_flight_at_claim) > 0  # a claim overlapped requests of the previous batch


async def test_a_stopped_run_leaves_nothing_in_flight(sender, receiver) -> None:
    receiver.delay = 0.2
    clock = Clock()
    rows = await enqueue(sender, [f"{receiver.url}?n={n}" for n in range(40)], clock())
    worker = worker_for(sender, clock, claim_batch_size=40, global_concurrency=4)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await eventually(lambda: _at_least(receiver.seen, 8), timeout=10)  # the first 4 answered
    stop.set()
    await asyncio.sleep(0.1)
    running.cancel()  # as start_workers does after its grace period
    await asyncio.gather(running, return_exceptions=True)
    await worker.release()
    states = Counter([(await delivery(sender, r)).state for r in rows])
    assert set(states) <= {"delivered", "pending"} and states["delivered"] >= 4, states


async def _all_in_state(node: RunningNode, rows: list[int], state: str) -> bool:
    return {(await delivery(node, r)).state for r in rows} == {state}


async def _at_least(items: list[object], number: int) -> bool:
    return len(items) >= number


# --- claiming ---------------------------------------------------------------------------


async def test_concurrent_claims_never_overlap(sender) -> None:
    clock = Clock()
    await enqueue(sender, [f"http://127.0.0.1:9/inbox?n={n}" for n in range(60)], clock())
    lease = timedelta(seconds=30)
    batches = await asyncio.gather(
        *(
            claim_due(sender.sessions(), worker_id=f"w{n}", now=clock(), lease=lease, limit=25)
            for n in range(4)
        )
    )
    ids = [d.id for batch in batches for d in batch]
    assert len(ids) == len(set(ids)) == 60


async def test_expired_lease_is_reclaimed_and_the_old_owner_cannot_write(sender) -> None:
    clock = Clock()
    [row_id] = await enqueue(sender, ["http://127.0.0.1:9/inbox"], clock())
    lease = timedelta(seconds=30)
    [dead] = await claim_due(sender.sessions(), worker_id="dead", now=clock(), lease=lease, limit=5)
    assert (
        await claim_due(sender.sessions(), worker_id="other", now=clock(), lease=lease, limit=5)
        == []
    )
    clock.now += timedelta(seconds=31)
    [again] = await claim_due(
        sender.sessions(), worker_id="other", now=clock(), lease=lease, limit=5
    )
    assert again.id == row_id
    late_write = await record_outcome(
        sender.sessions(),
        dead,
        DeliveryOutcome(DeliveryEvent.SUCCEEDED, status=202),
        worker_id="dead",
        now=clock(),
    )
    assert late_write is False
    assert (await delivery(sender, row_id)).claimed_by == "other"


async def test_a_claim_writes_the_finished_outcomes_in_its_transaction(sender) -> None:
    clock = Clock()
    ids = await enqueue(sender, [f"http://127.0.0.1:9/inbox?n={n}" for n in range(5)], clock())
    lease = timedelta(seconds=30)
    first = await claim_due(sender.sessions(), worker_id="w", now=clock(), lease=lease, limit=2)
    [stolen] = await claim_due(sender.sessions(), worker_id="x", now=clock(), lease=lease, limit=1)
    done = DeliveryOutcome(DeliveryEvent.SUCCEEDED, status=202)
    claimed = await claim_due_writing(
        sender.sessions(),
        [(first[0], done), (first[1], done), (stolen, done)],  # the last one is not w's
        worker_id="w",
        now=clock(),
        lease=lease,
        limit=10,
    )
    assert claimed.written == [True, True, False]
    assert [d.id for d in claimed.deliveries] == ids[3:]
    states = [(await delivery(sender, row_id)).state for row_id in ids]
    assert states == ["delivered", "delivered", "in_flight", "in_flight", "in_flight"]
    assert (await delivery(sender, stolen.id)).claimed_by == "x"


async def test_a_claim_takes_due_and_expired_rows_together_in_due_order(sender) -> None:
    clock = Clock()
    ids = await enqueue(sender, [f"http://127.0.0.1:9/inbox?n={n}" for n in range(6)], clock())
    lease = timedelta(seconds=30)
    async with sender.sessions()() as session, session.begin():
        for row_id, due_in in zip(ids, (10, 40, 20, 3600, 50, 35), strict=True):
            row = await session.get(Delivery, row_id)
            row.next_attempt_at = clock() + timedelta(seconds=due_in)
    clock.now += timedelta(seconds=25)  # ids[0] (due at 10 s) and ids[2] (20 s) are due
    assert [
        d.id
        for d in await claim_due(
            sender.sessions(), worker_id="dead", now=clock(), lease=lease, limit=5
        )
    ] == [ids[0], ids[2]]
    clock.now += timedelta(seconds=31)  # their lease ran out; ids[1], [5], [4] are due now
    claimed = await claim_due(
        sender.sessions(), worker_id="next", now=clock(), lease=lease, limit=4
    )
    # Both kinds in one due order (next_attempt_at, id), cut at the limit; never the future one.
    assert [d.id for d in claimed] == [ids[0], ids[2], ids[5], ids[1]]
    [last] = await claim_due(sender.sessions(), worker_id="next", now=clock(), lease=lease, limit=4)
    assert last.id == ids[4]


async def test_a_claim_on_sqlite_finds_its_rows_through_the_index(sender) -> None:
    # A claim must not collect and sort every due row (it did, through SQLite's MULTI-INDEX
    # OR and a temporary B-tree: ~110 µs per claimed delivery with 20,000 queued).
    engine = sender.sessions().kw["bind"]
    statements: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if statement.lstrip().upper().startswith("UPDATE DELIVERIES"):
            statements.append((statement, parameters))

    clock = Clock()
    await enqueue(sender, [f"http://127.0.0.1:9/inbox?n={n}" for n in range(3)], clock())
    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        await claim_due(
            sender.sessions(), worker_id="w", now=clock(), lease=timedelta(seconds=30), limit=2
        )
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    [(sql, parameters)] = statements
    async with engine.connect() as connection:
        plan = [
            row[3]
            for row in await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", parameters)
        ]
    assert not any(
        "MULTI-INDEX OR" in step or step.startswith("SCAN deliveries") for step in plan
    ), plan
    assert sum("INDEX ix_deliveries_due" in step for step in plan) == 2, plan


async def test_knock_memory_is_kept_per_host(sender, receiver) -> None:
    receiver.answer = lambda request: web.Response(
        status=401 if "Signature-Input" in request.headers else 202
    )
    clock = Clock()
    await enqueue(sender, [receiver.url], clock())
    await worker_for(sender, clock).run_once()
    [host] = await sender.rows(Host)
    assert host.knock["scheme"] == "draft-cavage-12" and host.knock["host"] == host.host


async def test_no_attempt_late_in_the_lease(sender, receiver) -> None:
    clock = Clock()
    [row_id] = await enqueue(sender, [receiver.url], clock())
    worker = worker_for(sender, clock, claim_seconds=60)
    [claimed] = await claim_due(
        sender.sessions(),
        worker_id=worker.worker_id,
        now=clock(),
        lease=timedelta(seconds=60),
        limit=1,
    )
    clock.now += timedelta(seconds=45)  # less than half the lease left
    outcome = await worker.attempt(claimed)
    assert outcome.event is DeliveryEvent.DEFER and not outcome.counts_as_attempt
    assert receiver.seen == []
    assert await record_outcome(
        sender.sessions(), claimed, outcome, worker_id=worker.worker_id, now=clock()
    )
    row = await delivery(sender, row_id)
    assert (row.state, row.attempts) == ("pending", 0)


async def test_a_stopping_worker_hands_its_claims_back(sender) -> None:
    clock = Clock()
    rows = await enqueue(sender, [f"http://127.0.0.1:9/inbox?n={n}" for n in range(3)], clock())
    worker = worker_for(sender, clock)
    await claim_due(
        sender.sessions(),
        worker_id=worker.worker_id,
        now=clock(),
        lease=timedelta(minutes=2),
        limit=10,
    )
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


async def test_a_requeued_delivery_gets_a_fresh_attempt_budget(sender, receiver) -> None:
    clock = Clock()
    row_id = await failed_for_four_days(sender, receiver, clock)
    assert (await delivery(sender, row_id)).state == "gave_up"
    async with sender.sessions()() as session, session.begin():
        await requeue(session, row_id, now=clock())
    row = await delivery(sender, row_id)
    assert (row.attempts, row.first_attempt_at) == (0, clock.now)
    await worker_for(sender, clock).run_once()  # fails again, but the new round has just begun
    row = await delivery(sender, row_id)
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.next_attempt_at == clock.now + timedelta(seconds=30)  # the backoff starts over
