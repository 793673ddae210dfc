"""Retry policy and per-host circuit breaker for deliveries, as pure values.

Nothing here reads the clock or draws random numbers: ``now`` and ``random_fraction``
are passed in, so a decision can be reproduced exactly in a test or from a log line.

The backoff is exponential: ``first_delay * factor ** (attempts - 1)``, capped at
``ceiling``. With the defaults (30 s, doubling, 12 h) that is 30 s, 1 min, 2 min, …
so the delay reaches the ceiling at the 12th attempt, about 17 hours in; a host that stays
down gets 17 to 19 attempts (depending on jitter) in the three days before giving up,
close to Mastodon's 16 attempts over 2-3 days. Unlike Mastodon's
``attempt**4 + 15`` the three knobs (first delay, growth, ceiling) can each be tuned
without changing the others, and the ceiling bounds how long a recovered host waits.

Jitter only shortens a delay: the delay lies in ``[base * (1 - jitter), base]``. So the
ceiling holds exactly, and with ``jitter <= 0.5`` each delay is still at least as long
as the longest possible previous one, while deliveries that failed together spread out
instead of returning in one wave.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime


class RetryOutcome(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    PERMANENT_FAILURE = "permanent_failure"
    GAVE_UP = "gave_up"
    HELD = "held"  # not attempted (host held back by its breaker): ask again at next_attempt_at


@dataclass(frozen=True)
class RetryDecision:
    outcome: RetryOutcome
    next_attempt_at: datetime | None
    reason: str


# 408 (timeout) and 429 (rate limited) say "later"; 401 is often a key the receiver
# could not fetch at that moment, so it is retried too (as Mastodon does).
_RETRYABLE_CLIENT_ERRORS = frozenset({401, 408, 429})
# 501: the receiver does not implement POST to this inbox and never will.
_PERMANENT_SERVER_ERRORS = frozenset({501})


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """``Retry-After`` as a delay from ``now``: delta-seconds or an HTTP-date; None if unusable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return timedelta(seconds=int(text))
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # HTTP-dates are GMT by definition
    return max(moment - now, timedelta(0))


@dataclass(frozen=True)
class RetryPolicy:
    first_delay: timedelta = timedelta(seconds=30)
    factor: float = 2.0
    ceiling: timedelta = timedelta(hours=12)
    give_up_after: timedelta = timedelta(days=3)
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.first_delay <= timedelta(0) or self.ceiling < self.first_delay:
            raise ValueError("first_delay must be positive and not above ceiling")
        if self.factor < 1.0:
            raise ValueError("factor must be at least 1")
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError("jitter must lie in [0, 1)")

    def base_delay(self, attempts: int) -> timedelta:
        """The delay after the ``attempts``-th failed attempt, before jitter."""
        if attempts < 1:
            raise ValueError("attempts counts attempts made, starting at 1")
        seconds = self.first_delay.total_seconds()
        ceiling = self.ceiling.total_seconds()
        # Multiply step by step: factor ** attempts overflows a float for large attempts.
        for _ in range(attempts - 1):
            seconds *= self.factor
            if seconds >= ceiling:
                return self.ceiling
        return timedelta(seconds=seconds)

    def delay(self, attempts: int, random_fraction: float) -> timedelta:
        if not 0.0 <= random_fraction <= 1.0:
            raise ValueError("random_fraction must lie in [0, 1]")
        return self.base_delay(attempts) * (1.0 - self.jitter * random_fraction)

    def deadline(self, *, first_attempt_at: datetime | None, created_at: datetime) -> datetime:
        """When retrying stops: ``give_up_after`` from the first attempt or, for a delivery
        never attempted (held back by an open breaker from the start), from its creation."""
        return (first_attempt_at or created_at) + self.give_up_after

    def decide_held_back(
        self,
        *,
        first_attempt_at: datetime | None,
        created_at: datetime,
        now: datetime,
        resume_at: datetime,
    ) -> RetryDecision:
        """What to do with a delivery its host's breaker holds back (nothing was sent).

        Past the deadline it is given up at once: no probe is spent on it and it does not
        wait for the half-open probe, so a host dead since before the activity existed is
        given up on like one that died later. Before the deadline it is held until
        ``resume_at`` (the breaker's cool-down), but not beyond the deadline.
        """
        deadline = self.deadline(first_attempt_at=first_attempt_at, created_at=created_at)
        if now >= deadline:
            since = "first attempt" if first_attempt_at is not None else "creation"
            return RetryDecision(RetryOutcome.GAVE_UP, None,
                                 f"host held back by its circuit breaker; "
                                 f"{self.give_up_after} since {since}")
        return RetryDecision(RetryOutcome.HELD, min(resume_at, deadline),
                             "host held back by its circuit breaker")

    def decide(
        self,
        *,
        attempts: int,
        first_attempt_at: datetime,
        now: datetime,
        status: int | None,
        retry_after: str | None,
        random_fraction: float,
    ) -> RetryDecision:
        """What to do after attempt number ``attempts`` answered ``status`` (None: no answer)."""
        if status is not None and 200 <= status < 300:
            return RetryDecision(RetryOutcome.DELIVERED, None, f"HTTP {status}")
        if status is not None and _is_permanent(status):
            reason = "gone" if status in (404, 410) else "refused"
            return RetryDecision(RetryOutcome.PERMANENT_FAILURE, None, f"HTTP {status}: {reason}")
        what = "no answer" if status is None else f"HTTP {status}"
        deadline = first_attempt_at + self.give_up_after
        if now >= deadline:
            return RetryDecision(
                RetryOutcome.GAVE_UP, None, f"{what}; still failing after {self.give_up_after}"
            )
        wait = self.delay(attempts, random_fraction)
        promised = parse_retry_after(retry_after, now)
        if promised is not None and promised > wait:
            wait = min(promised, self.ceiling)  # honour the receiver, within reason
            what += f", Retry-After {retry_after.strip() if retry_after else ''}"
        # One last attempt at the deadline rather than giving up up to a ceiling early.
        next_at = min(now + wait, deadline)
        return RetryDecision(RetryOutcome.RETRY, next_at, f"{what}; attempt {attempts} failed")


def _is_permanent(status: int) -> bool:
    if 400 <= status < 500:
        return status not in _RETRYABLE_CLIENT_ERRORS
    return status in _PERMANENT_SERVER_ERRORS


# --- circuit breaker ----------------------------------------------------------------


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"  # cool-down over: one probe delivery may go


@dataclass(frozen=True)
class HostHealth:
    """What the node remembers about one remote host between deliveries."""

    consecutive_failures: int = 0
    window_started_at: datetime | None = None
    opened_at: datetime | None = None
    failure_days: frozenset[date] = field(default_factory=frozenset)
    last_success_at: datetime | None = None

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict for persistence (ISO 8601 times and dates)."""
        return {
            "consecutive_failures": self.consecutive_failures,
            "window_started_at": _iso(self.window_started_at),
            "opened_at": _iso(self.opened_at),
            "failure_days": sorted(day.isoformat() for day in self.failure_days),
            "last_success_at": _iso(self.last_success_at),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> HostHealth:
        """Inverse of :meth:`to_json`; ValueError naming the field on bad input."""
        failures = data.get("consecutive_failures", 0)
        if not isinstance(failures, int) or failures < 0:
            raise ValueError("consecutive_failures must be a non-negative integer")
        days = data.get("failure_days", [])
        if not isinstance(days, list) or not all(isinstance(day, str) for day in days):
            raise ValueError("failure_days must be a list of ISO dates")
        try:
            parsed_days = frozenset(date.fromisoformat(day) for day in days)
        except ValueError as exc:
            raise ValueError(f"failure_days: {exc}") from exc
        return cls(
            consecutive_failures=failures,
            window_started_at=_parse_iso(data, "window_started_at"),
            opened_at=_parse_iso(data, "opened_at"),
            failure_days=parsed_days,
            last_success_at=_parse_iso(data, "last_success_at"),
        )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _parse_iso(data: Mapping[str, object], name: str) -> datetime | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} must be an ISO 8601 string or null")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from exc
    if moment.tzinfo is None:
        raise ValueError(f"{name} must carry a time zone")
    return moment


@dataclass(frozen=True)
class CircuitBreaker:
    """Per-host breaker: opens after ``failure_threshold`` failures within ``window``,
    lets one probe through after ``cool_down``, closes on the next success.

    Independently, a host that failed on ``unavailable_after_days`` distinct (UTC) days
    without a success in between is *unavailable*; the next success clears that.
    """

    failure_threshold: int = 5
    window: timedelta = timedelta(minutes=10)
    cool_down: timedelta = timedelta(minutes=30)
    unavailable_after_days: int = 3

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.unavailable_after_days < 1:
            raise ValueError("failure_threshold and unavailable_after_days must be at least 1")

    def state(self, health: HostHealth, now: datetime) -> BreakerState:
        if health.opened_at is None:
            return BreakerState.CLOSED
        if now - health.opened_at >= self.cool_down:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allows(self, health: HostHealth, now: datetime) -> bool:
        """May a delivery to this host be attempted now?

        In the half-open state this is True; the worker should send a single probe and
        hold the rest until it succeeds (a failed probe re-opens the breaker).
        """
        return self.state(health, now) is not BreakerState.OPEN

    def record_success(self, health: HostHealth, now: datetime) -> HostHealth:
        return HostHealth(last_success_at=now)

    def record_failure(self, health: HostHealth, now: datetime) -> HostHealth:
        window_open = (
            health.window_started_at is not None and now - health.window_started_at <= self.window
        )
        if window_open:
            failures, started = health.consecutive_failures + 1, health.window_started_at
        else:
            failures, started = 1, now
        opened_at = health.opened_at
        if opened_at is not None and now - opened_at >= self.cool_down:
            opened_at = now  # the half-open probe failed: wait another cool-down
        elif opened_at is None and failures >= self.failure_threshold:
            opened_at = now
        # Only the most recent days matter for "unavailable"; keep the set bounded.
        days = sorted(health.failure_days | {now.astimezone(UTC).date()})
        return replace(
            health,
            consecutive_failures=failures,
            window_started_at=started,
            opened_at=opened_at,
            failure_days=frozenset(days[-self.unavailable_after_days :]),
        )

    def is_unavailable(self, health: HostHealth) -> bool:
        return len(health.failure_days) >= self.unavailable_after_days
