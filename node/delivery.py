"""The delivery worker: claim due deliveries, sign, POST, decide, persist every transition.

Concurrency is bounded twice: a global limit and a per-host limit, so one slow host
cannot take every slot and one fast host still gets several requests in flight. Each
attempt is signed as ``federation.knock`` says (RFC 9421 first, draft-cavage on a
refusal, ``Accept-Signature`` honoured, what worked remembered per host in ``hosts``).
What happens next is the federation retry policy's decision; the per-host circuit
breaker holds deliveries to a failing host back without spending attempts on them.

Rows are claimed under a lease (``node.delivery_queue``). An attempt is only started
while enough of the lease is left, outcomes are written in grouped commits as they
finish, and a worker that stops gives back what it still holds; a worker that dies
simply lets its leases run out. Receivers deduplicate by activity id, so a resend
after a crash has no second effect.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from federation.fetch import FetchError, FetchFailure, PostOutcome
from federation.httpsig import RequestParts, SignatureScheme, sign_request
from federation.knock import KnockAction, KnockMemory, KnockPolicy
from federation.retry import BreakerState, CircuitBreaker, HostHealth, RetryOutcome, RetryPolicy
from node.appkeys import NodeKeys
from node.config import DeliveryTuning
from node.delivery_queue import (
    DeliveryOutcome,
    DueDelivery,
    claim_due_writing,
    record_outcomes,
    release_claims,
)
from node.delivery_state import DeliveryEvent
from node.delivery_transactions import QueueTransactions
from node.storage.models import Host
from node.storage.upsert import insert_for

log = logging.getLogger("praxisnetz.delivery")

ACTIVITY_CONTENT_TYPE = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
# A failure of ours, not of the receiver: retrying cannot help.
_FINAL_FETCH_FAILURES = frozenset({FetchFailure.BAD_URL, FetchFailure.FORBIDDEN_ADDRESS})
# Outcomes that finish within this window are written in one transaction: a commit has
# a fixed cost besides ~30 µs per row (through aiosqlite ~1.5 ms per flush, so 64 µs per
# outcome in flushes of 50, 42 µs in flushes of 125). An outcome lost with its process
# is only sent again, and receivers deduplicate.
FLUSH_DELAY_SECONDS = 0.25
# Host health is written when it changes, and at least this often while deliveries flow.
HOST_SAVE_INTERVAL = timedelta(seconds=60)
_EVENT_FOR = {
    RetryOutcome.DELIVERED: DeliveryEvent.SUCCEEDED,
    RetryOutcome.RETRY: DeliveryEvent.RETRY_LATER,
    RetryOutcome.PERMANENT_FAILURE: DeliveryEvent.FAILED_PERMANENTLY,
    RetryOutcome.GAVE_UP: DeliveryEvent.GAVE_UP,
    RetryOutcome.HELD: DeliveryEvent.DEFER,
}


@dataclass(frozen=True)
class AttemptResult:
    """What the receiver said (or why nothing was sent)."""

    status: int | None
    retry_after: str | None = None
    error: str | None = None
    final: bool = False  # our side refused (bad URL, forbidden address): retrying cannot help


def new_worker_id(kind: str = "delivery") -> str:
    return f"{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@dataclass
class HostRecord:
    """What the worker knows about one host while it delivers to it."""

    knock: KnockMemory
    health: HostHealth = field(default_factory=HostHealth)
    probing: bool = False  # a half-open probe is in flight
    saved: tuple[object, ...] | None = None  # what was last written to ``hosts``
    saved_at: datetime | None = None

    def snapshot(self, breaker: CircuitBreaker, now: datetime) -> tuple[object, ...]:
        """The parts worth writing down; successes in a row do not change it."""
        health = self.health
        return (
            self.knock.scheme,
            self.knock.wants_rfc9421,
            breaker.state(health, now),
            health.consecutive_failures,
            health.opened_at,
            health.failure_days,
        )


def _knock_from(row: Host) -> KnockMemory:
    try:
        return KnockMemory.from_dict(row.knock) if row.knock else KnockMemory(row.host)
    except ValueError:
        return KnockMemory(row.host)  # unreadable memory: learn again


def _health_from(row: Host) -> HostHealth:
    try:
        return HostHealth.from_json(row.health or {})
    except ValueError:
        return HostHealth()


async def load_hosts(
    session_maker: async_sessionmaker[AsyncSession], hosts: set[str]
) -> dict[str, HostRecord]:
    async with session_maker() as session:
        rows = (await session.execute(select(Host).where(Host.host.in_(hosts)))).scalars()
        known = {
            row.host: HostRecord(_knock_from(row), _health_from(row), saved_at=row.updated_at)
            for row in rows
        }
    return {host: known.get(host) or HostRecord(KnockMemory(host)) for host in hosts}


async def save_host(
    session_maker: async_sessionmaker[AsyncSession],
    host: str,
    record: HostRecord,
    breaker: CircuitBreaker,
    now: datetime,
) -> None:
    health = record.health
    values: dict[str, Any] = {
        "signature_scheme": record.knock.scheme.value if record.knock.scheme else None,
        "knock": record.knock.to_dict(),
        "consecutive_failures": health.consecutive_failures,
        "failure_days": sorted(day.isoformat() for day in health.failure_days),
        "breaker_state": breaker.state(health, now).value,
        "breaker_opened_at": health.opened_at,
        "last_success_at": health.last_success_at,
        "health": health.to_json(),
        "updated_at": now,
    }
    if health.consecutive_failures:
        values["last_failure_at"] = now
    unavailable = breaker.is_unavailable(health)
    values["unavailable_since"] = now if unavailable else None
    async with session_maker() as session, session.begin():
        # Upsert: several deliveries to one host finish at the same moment.
        statement = insert_for(session.bind.dialect.name, Host).values(host=host, **values)
        updates: dict[str, Any] = dict(values)
        if unavailable:  # keep the moment the host first became unavailable
            updates["unavailable_since"] = func.coalesce(
                Host.unavailable_since, statement.excluded.unavailable_since
            )
        await session.execute(
            statement.on_conflict_do_update(index_elements=["host"], set_=updates)
        )


def retry_policy(tuning: DeliveryTuning) -> RetryPolicy:
    """The retry schedule the operator set in ``[delivery]``."""
    return RetryPolicy(
        first_delay=timedelta(seconds=tuning.retry_first_delay_seconds),
        ceiling=timedelta(seconds=tuning.retry_ceiling_seconds),
        give_up_after=timedelta(days=tuning.give_up_after_days),
    )


def circuit_breaker(tuning: DeliveryTuning) -> CircuitBreaker:
    """The per-host breaker the operator set in ``[delivery]``."""
    return CircuitBreaker(
        failure_threshold=tuning.breaker_failure_threshold,
        cool_down=timedelta(seconds=tuning.breaker_cool_down_seconds),
    )


class DeliveryWorker:
    """Drains the delivery queue; many may run, in one process or several."""

    def __init__(
        self,
        *,
        session_maker: async_sessionmaker[AsyncSession],
        fetcher: Any,  # federation.fetch.SafeFetcher
        keys: NodeKeys,
        clock: Callable[[], datetime],
        tuning: DeliveryTuning,
        worker_id: str | None = None,
        policy: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        random_fraction: Callable[[], float] = random.random,
    ) -> None:
        self._sessions = session_maker
        # Claims and outcome flushes: on SQLite each one whole on a thread of its own.
        self._transactions = QueueTransactions(session_maker)
        self._fetcher = fetcher
        self._keys = keys
        self._clock = clock
        self._tuning = tuning
        self.worker_id = worker_id or new_worker_id()
        self._policy = policy or retry_policy(tuning)
        self._breaker = breaker or circuit_breaker(tuning)
        self._knock = KnockPolicy()
        # Start an attempt only with time left for two knocks (capped at half the lease).
        self._attempt_budget = timedelta(
            seconds=min(2 * tuning.request_timeout_seconds, tuning.claim_seconds / 2)
        )
        self._random = random_fraction
        self._global = asyncio.Semaphore(tuning.global_concurrency)
        self._per_host: dict[str, asyncio.Semaphore] = {}
        self._hosts: dict[str, HostRecord] = {}
        self._finished: list[tuple[DueDelivery, DeliveryOutcome]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._claims = 0  # claiming transactions so far (each also writes finished outcomes)
        # This worker's own transactions take turns: on SQLite a second writer of the
        # same process would only wait for the write lock.
        self._db_turn = asyncio.Lock()
        self._running: set[asyncio.Task[None]] = set()  # claimed and not yet finished
        self._busy_hosts: Counter[str] = Counter()  # hosts with deliveries in _running
        self._room = asyncio.Event()  # set when _running falls below the refill mark
        # Claim the next batch while this many are still waiting or running, so the
        # connections never wait for the database between batches (a claim may wait for
        # the write lock, which another worker process holds now and then).
        self._refill_below = max(1, tuning.global_concurrency, tuning.claim_batch_size)

    async def run_once(self) -> int:
        """Claim one batch and deliver it; returns how many deliveries were claimed."""
        started = await self._claim_and_start()
        if started:
            await asyncio.gather(*started)
            await self._flush()
        return len(started)

    async def release(self) -> int:
        """Hand unfinished claims back (on shutdown); returns how many."""
        await self._settle()
        async with self._db_turn:
            self._transactions.close()
            return await release_claims(self._sessions, worker_id=self.worker_id, now=self._clock())

    async def run(self, stop: asyncio.Event, wake: asyncio.Event | None = None) -> None:
        """Deliver until ``stop`` is set; sleep between empty polls unless woken.

        Batches overlap: the next one is claimed as soon as fewer than a batch (or
        ``global_concurrency``, if larger) of claimed deliveries are left. On ``stop``
        the claimed deliveries are finished; if the caller cancels meanwhile, they are
        cancelled and ``release`` hands them back.
        """
        poll = self._tuning.poll_interval_seconds
        try:
            while not stop.is_set():
                if len(self._running) >= self._refill_below:
                    self._room.clear()
                    await sleep_until(stop, self._room, poll)
                    continue
                try:
                    claimed = len(await self._claim_and_start())
                except Exception:  # noqa: BLE001 - the worker must outlive one bad batch
                    log.exception("delivery claim failed worker=%s", self.worker_id)
                    claimed = 0
                if not claimed:
                    await sleep_until(stop, wake, poll)
            await asyncio.gather(*self._running)
        finally:
            for task in list(self._running):
                task.cancel()
            await asyncio.gather(*self._running, return_exceptions=True)
            await self._settle()

    async def _settle(self) -> None:
        """Write every finished outcome, the pending delayed flush's included (awaited,
        not cancelled: a cancelled flush would drop the outcomes it holds)."""
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self._flush()

    async def _claim_and_start(self) -> list[asyncio.Task[None]]:
        """Write the finished outcomes and claim a batch (one transaction), refresh what
        is stored about its idle hosts, start delivering."""
        async with self._db_turn:
            results, self._finished = self._finished, []
            try:
                claimed = await claim_due_writing(
                    self._transactions,
                    results,
                    worker_id=self.worker_id,
                    now=self._clock(),
                    lease=timedelta(seconds=self._tuning.claim_seconds),
                    limit=self._tuning.claim_batch_size,
                )
            except BaseException:
                # Kept for the next flush or claim (if this one did commit, rewriting them
                # finds the rows no longer in flight and changes nothing).
                self._finished[:0] = results
                raise
            self._claims += 1
            batch = claimed.deliveries
            # Hosts this worker is busy with keep their in-memory state (probe, health);
            # the others are read again: another worker may have learned something.
            idle = {d.host for d in batch if not self._busy_hosts[d.host]}
            stored = await load_hosts(self._sessions, idle) if idle else {}
        if results:
            self._log_outcomes(results, claimed.written)
        now = self._clock()
        for host, record in stored.items():
            if record.saved_at is not None:  # as stored: no need to write it back unchanged
                record.saved = record.snapshot(self._breaker, now)
            self._hosts[host] = record
        tasks = []
        for delivery in batch:
            self._busy_hosts[delivery.host] += 1
            task = asyncio.create_task(self._deliver_bounded(delivery))
            self._running.add(task)
            task.add_done_callback(self._done)
            tasks.append(task)
        return tasks

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if len(self._running) < self._refill_below:
            self._room.set()

    def _host_limit(self, host: str) -> asyncio.Semaphore:
        if host not in self._per_host:
            self._per_host[host] = asyncio.Semaphore(self._tuning.per_host_concurrency)
        return self._per_host[host]

    async def _deliver_bounded(self, delivery: DueDelivery) -> None:
        try:
            async with self._global, self._host_limit(delivery.host):
                try:
                    outcome = await self.attempt(delivery)
                except Exception as exc:  # noqa: BLE001 - one bug must not lose the rest
                    log.exception("delivery crashed id=%s", delivery.id)
                    outcome = DeliveryOutcome(
                        DeliveryEvent.RETRY_LATER,
                        error=f"internal error: {exc!r}",
                        next_attempt_at=self._clock() + timedelta(minutes=5),
                    )
        finally:
            self._busy_hosts[delivery.host] -= 1
            if not self._busy_hosts[delivery.host]:
                del self._busy_hosts[delivery.host]
        self._finished.append((delivery, outcome))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(delay=FLUSH_DELAY_SECONDS))

    async def _flush(self, delay: float = 0.0) -> None:
        """Write the finished deliveries' transitions, many per transaction.

        With ``delay``, only once a whole delay passed without a claim: while batches
        flow, each claim writes the finished outcomes in its own transaction. A separate
        flush held the worker's database turn for 100-770 ms when its statements ran
        through aiosqlite on a busy event loop, and the next claim waited behind it while
        the claimed deliveries ran out (docs/performance-history.md, section 2).
        """
        if delay:
            while True:
                claims = self._claims
                await asyncio.sleep(delay)  # let outcomes that finish together share a commit
                if self._claims == claims or not self._finished:
                    break
        while self._finished:
            async with self._db_turn:
                results, self._finished = self._finished, []
                try:
                    written = await record_outcomes(
                        self._transactions, results, worker_id=self.worker_id, now=self._clock()
                    )
                except SQLAlchemyError as exc:
                    # Kept for the next flush; if none comes, the lease runs out and the
                    # rows are sent again (receivers deduplicate by activity id).
                    self._finished[:0] = results
                    log.warning(
                        "delivery outcomes not written count=%s error=%r", len(results), exc
                    )
                    return
            self._log_outcomes(results, written)

    def _log_outcomes(
        self, results: list[tuple[DueDelivery, DeliveryOutcome]], written: list[bool]
    ) -> None:
        """One line per delivery that did not simply succeed; successes, the bulk of a
        fan-out, as one line per flush (a line each cost ~4% of the worker's CPU)."""
        succeeded: list[int] = []
        for (delivery, outcome), mine in zip(results, written, strict=True):
            if mine and outcome.event is DeliveryEvent.SUCCEEDED:
                succeeded.append(delivery.id)
                continue
            log.info(
                "delivery id=%s inbox=%s event=%s status=%s recorded=%s error=%s worker=%s",
                delivery.id,
                delivery.inbox_url,
                outcome.event.value,
                outcome.status,
                mine,
                outcome.error,
                self.worker_id,
            )
        if succeeded:
            log.info(
                "deliveries event=succeeded count=%d ids=%s worker=%s",
                len(succeeded),
                ",".join(map(str, succeeded)),
                self.worker_id,
            )

    async def attempt(self, delivery: DueDelivery) -> DeliveryOutcome:
        """One attempt: breaker check, signed POST (double-knock), retry decision."""
        record = self._hosts.setdefault(delivery.host, HostRecord(KnockMemory(delivery.host)))
        now = self._clock()
        if delivery.lease_until is not None and now + self._attempt_budget > delivery.lease_until:
            # Too late in our lease to finish: another worker may take the row meanwhile.
            return DeliveryOutcome(
                DeliveryEvent.DEFER,
                error="lease nearly over; not attempted",
                next_attempt_at=now,
                counts_as_attempt=False,
            )
        state = self._breaker.state(record.health, now)
        if state is not BreakerState.CLOSED:
            held = self._held_back(delivery, record, state, now)
            if held is not None:
                return held
        record.probing = state is BreakerState.HALF_OPEN
        try:
            result = await self._post_knocking(delivery, record)
        finally:
            record.probing = False
        now = self._clock()
        if result.final:
            return DeliveryOutcome(DeliveryEvent.FAILED_PERMANENTLY, error=result.error)
        decision = self._policy.decide(
            attempts=delivery.attempts + 1,
            first_attempt_at=delivery.first_attempt_at or now,
            now=now,
            status=result.status,
            retry_after=result.retry_after,
            random_fraction=self._random(),
        )
        await self._update_health(delivery.host, record, result.status, now)
        delivered = decision.outcome is RetryOutcome.DELIVERED
        return DeliveryOutcome(
            _EVENT_FOR[decision.outcome],
            status=result.status,
            error=None if delivered else (result.error or decision.reason),
            next_attempt_at=decision.next_attempt_at,
        )

    def _held_back(
        self, delivery: DueDelivery, record: HostRecord, state: BreakerState, now: datetime
    ) -> DeliveryOutcome | None:
        """The outcome for a delivery the breaker holds back; None if it may be sent (as
        the half-open probe). Past its deadline it is given up without being sent."""
        probe_free = state is BreakerState.HALF_OPEN and not record.probing
        until = (record.health.opened_at or now) + self._breaker.cool_down
        decision = self._policy.decide_held_back(
            first_attempt_at=delivery.first_attempt_at,
            created_at=delivery.created_at or now,
            now=now,
            resume_at=max(until, now + timedelta(seconds=5)),
        )
        if decision.outcome is RetryOutcome.GAVE_UP:
            return DeliveryOutcome(
                DeliveryEvent.GAVE_UP, error=decision.reason, counts_as_attempt=False
            )
        if probe_free:
            return None
        return DeliveryOutcome(
            DeliveryEvent.DEFER,
            error=f"circuit open for {delivery.host}",
            next_attempt_at=decision.next_attempt_at,
            counts_as_attempt=False,
        )

    async def _update_health(
        self, host: str, record: HostRecord, status: int | None, now: datetime
    ) -> None:
        # Any answer below 500 (except 429) shows the host is up, even a 404.
        host_is_up = status is not None and status < 500 and status != 429
        if host_is_up:
            record.health = self._breaker.record_success(record.health, now)
        else:
            record.health = self._breaker.record_failure(record.health, now)
        snapshot = record.snapshot(self._breaker, now)
        recent = record.saved_at is not None and now - record.saved_at < HOST_SAVE_INTERVAL
        if snapshot == record.saved and recent:
            return  # nothing new to remember; spare the hot row a write per delivery
        # Claimed before the write: deliveries finishing meanwhile need not write it again.
        record.saved, record.saved_at = snapshot, now
        try:
            async with self._db_turn:
                await save_host(self._sessions, host, record, self._breaker, now)
        except SQLAlchemyError as exc:
            record.saved = None  # try again with the next delivery
            # Host health is advisory; the delivery's own outcome must still be written.
            log.warning("host health not saved host=%s error=%r", host, exc)

    async def _post_knocking(self, delivery: DueDelivery, record: HostRecord) -> AttemptResult:
        """POST signed as the host prefers; on a refusal, once more with the other scheme
        (``federation.knock``). What was learned is kept in ``record.knock``."""
        scheme = self._knock.first_scheme(record.knock, now=self._clock())
        result = AttemptResult(None)
        for retried in (False, True):
            try:
                outcome = await self._post(delivery, scheme)
            except FetchError as exc:
                return AttemptResult(
                    None,
                    error=f"{exc.failure.value}: {exc.detail}",
                    final=exc.failure in _FINAL_FETCH_FAILURES,
                )
            result = AttemptResult(
                outcome.status,
                outcome.headers.get("Retry-After"),
                f"HTTP {outcome.status}: {outcome.body_excerpt[:200]}",
            )
            step = self._knock.after_response(
                record.knock,
                scheme,
                outcome.status,
                now=self._clock(),
                accept_signature=outcome.headers.get("Accept-Signature"),
                retried=retried,
            )
            record.knock = step.memory
            if step.action is not KnockAction.RETRY_OTHER or step.scheme is None:
                break
            scheme = step.scheme
        return result

    async def _post(self, delivery: DueDelivery, scheme: SignatureScheme) -> PostOutcome:
        headers = {"Content-Type": ACTIVITY_CONTENT_TYPE, "Accept": "application/activity+json"}
        parts = RequestParts("POST", delivery.inbox_url, headers, delivery.body)
        key = self._keys.rsa_for(delivery.actor)
        headers.update(sign_request(parts, key, scheme, now=self._clock()))
        return await self._fetcher.post(delivery.inbox_url, delivery.body, headers)


async def sleep_until(stop: asyncio.Event, wake: asyncio.Event | None, seconds: float) -> None:
    """Wait ``seconds``, or less if ``stop`` or ``wake`` is set (``wake`` is then cleared)."""
    waiters = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    if wake is not None:
        wake.clear()
