"""Retry policy and circuit breaker: schedule, ceiling, Retry-After, final statuses,
give-up point, breaker states and host unavailability."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation.retry import (
    BreakerState,
    CircuitBreaker,
    HostHealth,
    RetryDecision,
    RetryOutcome,
    RetryPolicy,
    parse_retry_after,
)

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy()


def decide(policy: RetryPolicy = POLICY, **overrides: object) -> RetryDecision:
    arguments: dict[str, object] = {
        "attempts": 1,
        "first_attempt_at": T0,
        "now": T0,
        "status": 503,
        "retry_after": None,
        "random_fraction": 0.0,
    }
    arguments.update(overrides)
    return policy.decide(**arguments)


# --- backoff schedule ---------------------------------------------------------------


def test_schedule_starts_at_the_first_delay_and_doubles() -> None:
    delays = [POLICY.base_delay(n) for n in range(1, 6)]
    assert delays == [timedelta(seconds=s) for s in (30, 60, 120, 240, 480)]


@given(attempts=st.integers(min_value=1, max_value=200), fraction=st.floats(0.0, 1.0))
def test_jittered_delay_stays_within_its_bounds_and_under_the_ceiling(
    attempts: int, fraction: float
) -> None:
    base = POLICY.base_delay(attempts)
    delay = POLICY.delay(attempts, fraction)
    assert base * (1 - POLICY.jitter) - timedelta(microseconds=1) <= delay <= base
    assert delay <= POLICY.ceiling


@given(
    attempts=st.integers(min_value=1, max_value=30), a=st.floats(0.0, 1.0), b=st.floats(0.0, 1.0)
)
def test_schedule_grows_whatever_the_jitter_until_the_ceiling(
    attempts: int, a: float, b: float
) -> None:
    if POLICY.base_delay(attempts + 1) < POLICY.ceiling:
        assert POLICY.delay(attempts + 1, a) >= POLICY.delay(attempts, b)


def test_jitter_spreads_deliveries_that_failed_together() -> None:
    times = {decide(attempts=6, random_fraction=f / 10).next_attempt_at for f in range(10)}
    assert len(times) == 10


def test_ceiling_holds_for_huge_attempt_counts() -> None:
    assert POLICY.base_delay(10_000) == timedelta(hours=12)
    decision = decide(attempts=10_000, now=T0 + timedelta(days=1))
    assert decision.next_attempt_at - (T0 + timedelta(days=1)) <= timedelta(hours=12)


def test_a_host_that_stays_down_gets_seventeen_to_nineteen_attempts_in_three_days() -> None:
    now, attempts = T0, 0
    while True:
        attempts += 1
        decision = decide(attempts=attempts, now=now, status=None, random_fraction=0.5)
        if decision.outcome is RetryOutcome.GAVE_UP:
            break
        assert decision.outcome is RetryOutcome.RETRY
        assert decision.next_attempt_at > now
        now = decision.next_attempt_at
    assert now == T0 + timedelta(days=3)  # the last attempt is exactly at the give-up point
    assert 17 <= attempts <= 19


@pytest.mark.parametrize(
    "bad",
    [
        {"jitter": 1.0},
        {"factor": 0.5},
        {"first_delay": timedelta(0)},
        {"ceiling": timedelta(seconds=1)},
    ],
)
def test_nonsensical_policies_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**bad)


def test_random_fraction_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError):
        decide(random_fraction=1.5)


# --- statuses -----------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_2xx_is_delivered(status: int) -> None:
    decision = decide(status=status)
    assert decision.outcome is RetryOutcome.DELIVERED and decision.next_attempt_at is None


@pytest.mark.parametrize("status", [404, 410, 400, 403, 405, 413, 422, 501])
def test_final_statuses_are_permanent_failures(status: int) -> None:
    decision = decide(status=status, attempts=1)
    assert decision.outcome is RetryOutcome.PERMANENT_FAILURE and decision.next_attempt_at is None
    assert str(status) in decision.reason


@pytest.mark.parametrize("status", [None, 401, 408, 429, 500, 502, 503, 504, 302])
def test_temporary_failures_are_retried(status: int | None) -> None:
    decision = decide(status=status)
    assert decision.outcome is RetryOutcome.RETRY
    assert decision.next_attempt_at == T0 + timedelta(seconds=30)


# --- Retry-After --------------------------------------------------------------------


def test_retry_after_in_seconds_is_honoured() -> None:
    assert decide(status=429, retry_after="3600").next_attempt_at == T0 + timedelta(hours=1)


def test_retry_after_as_http_date_is_honoured() -> None:
    later = T0 + timedelta(hours=2)
    decision = decide(status=503, retry_after=format_datetime(later, usegmt=True))
    assert decision.next_attempt_at == later


def test_retry_after_is_capped_at_the_ceiling() -> None:
    assert decide(status=429, retry_after="10000000").next_attempt_at == T0 + timedelta(hours=12)


def test_short_or_unusable_retry_after_does_not_shorten_the_backoff() -> None:
    expected = T0 + POLICY.base_delay(8)
    for value in ["5", "soon", "", "-30", format_datetime(T0 - timedelta(days=1), usegmt=True)]:
        assert decide(attempts=8, retry_after=value).next_attempt_at == expected, value


def test_parse_retry_after_reads_both_forms() -> None:
    assert parse_retry_after(" 120 ", T0) == timedelta(seconds=120)
    assert parse_retry_after("Sun, 22 Nov 2026 12:05:00 GMT", T0) == timedelta(minutes=5)
    assert parse_retry_after("Sun, 22 Nov 2026 11:05:00 GMT", T0) == timedelta(0)
    assert parse_retry_after("tomorrow", T0) is None and parse_retry_after(None, T0) is None


# --- giving up ----------------------------------------------------------------------


def test_gives_up_after_the_configured_days() -> None:
    decision = decide(attempts=15, now=T0 + timedelta(days=3))
    assert decision.outcome is RetryOutcome.GAVE_UP and decision.next_attempt_at is None
    one_day = RetryPolicy(give_up_after=timedelta(days=1))
    assert (
        decide(one_day, attempts=12, now=T0 + timedelta(days=1, seconds=1)).outcome
        is RetryOutcome.GAVE_UP
    )
    assert decide(attempts=12, now=T0 + timedelta(days=1, seconds=1)).outcome is RetryOutcome.RETRY


def test_the_last_retry_is_placed_at_the_give_up_point() -> None:
    now = T0 + timedelta(days=2, hours=20)
    decision = decide(attempts=15, now=now)
    assert decision.outcome is RetryOutcome.RETRY
    assert decision.next_attempt_at == T0 + timedelta(days=3)


def test_a_final_status_is_final_even_after_the_give_up_point() -> None:
    assert decide(status=410, now=T0 + timedelta(days=9)).outcome is RetryOutcome.PERMANENT_FAILURE
    assert decide(status=202, now=T0 + timedelta(days=9)).outcome is RetryOutcome.DELIVERED


def test_the_deadline_runs_from_creation_until_the_first_attempt() -> None:
    created = T0 - timedelta(hours=5)
    assert POLICY.deadline(first_attempt_at=None, created_at=created) == created + timedelta(days=3)
    assert POLICY.deadline(first_attempt_at=T0, created_at=created) == T0 + timedelta(days=3)


def test_a_held_back_delivery_waits_for_the_cool_down_but_not_past_its_deadline() -> None:
    resume = T0 + timedelta(minutes=30)
    held = POLICY.decide_held_back(first_attempt_at=None, created_at=T0, now=T0 + timedelta(
        minutes=1), resume_at=resume)
    assert (held.outcome, held.next_attempt_at) == (RetryOutcome.HELD, resume)
    near_the_end = T0 + timedelta(days=3) - timedelta(minutes=10)
    held = POLICY.decide_held_back(first_attempt_at=None, created_at=T0, now=near_the_end,
                                   resume_at=near_the_end + timedelta(minutes=30))
    assert (held.outcome, held.next_attempt_at) == (RetryOutcome.HELD, T0 + timedelta(days=3))


def test_a_held_back_delivery_never_attempted_is_given_up_from_its_creation() -> None:
    # The host was dead before the activity existed: no attempt ever started its clock.
    after = T0 + timedelta(days=3)
    gave_up = POLICY.decide_held_back(first_attempt_at=None, created_at=T0, now=after,
                                      resume_at=after + timedelta(minutes=30))
    assert gave_up.outcome is RetryOutcome.GAVE_UP and gave_up.next_attempt_at is None
    assert "since creation" in gave_up.reason
    # Attempted later than created: its window runs from that attempt.
    still_held = POLICY.decide_held_back(first_attempt_at=T0 + timedelta(days=1), created_at=T0,
                                         now=after, resume_at=after + timedelta(minutes=30))
    assert still_held.outcome is RetryOutcome.HELD


# --- circuit breaker ----------------------------------------------------------------

BREAKER = CircuitBreaker()


def fail(
    health: HostHealth, now: datetime, times: int, every: timedelta = timedelta(seconds=10)
) -> tuple[HostHealth, datetime]:
    for _ in range(times):
        health = BREAKER.record_failure(health, now)
        now += every
    return health, now


def test_breaker_opens_after_the_threshold_within_the_window() -> None:
    health, now = fail(HostHealth(), T0, 4)
    assert BREAKER.allows(health, now) and BREAKER.state(health, now) is BreakerState.CLOSED
    health, now = fail(health, now, 1)
    assert not BREAKER.allows(health, now)
    assert BREAKER.state(health, now) is BreakerState.OPEN


def test_failures_spread_beyond_the_window_do_not_open_the_breaker() -> None:
    health, now = fail(HostHealth(), T0, 20, every=timedelta(minutes=3))
    assert BREAKER.allows(health, now)


def test_breaker_half_opens_after_the_cool_down_and_a_failed_probe_reopens_it() -> None:
    health, opened = fail(HostHealth(), T0, 5)
    assert not BREAKER.allows(health, opened + timedelta(minutes=29))
    probe_time = opened + timedelta(minutes=30)
    assert BREAKER.state(health, probe_time) is BreakerState.HALF_OPEN
    assert BREAKER.allows(health, probe_time)
    health = BREAKER.record_failure(health, probe_time)
    assert not BREAKER.allows(health, probe_time + timedelta(minutes=29))
    assert BREAKER.allows(health, probe_time + timedelta(minutes=30))


def test_success_closes_the_breaker_and_resets_the_count() -> None:
    health, now = fail(HostHealth(), T0, 5)
    now += timedelta(minutes=31)
    health = BREAKER.record_success(health, now)
    assert BREAKER.state(health, now) is BreakerState.CLOSED
    assert health.consecutive_failures == 0 and health.last_success_at == now
    health, now = fail(health, now, 4)
    assert BREAKER.allows(health, now)


def test_host_is_unavailable_after_failures_on_three_distinct_days() -> None:
    health = HostHealth()
    for day in range(2):
        health = BREAKER.record_failure(health, T0 + timedelta(days=day))
        health = BREAKER.record_failure(health, T0 + timedelta(days=day, hours=1))
    assert not BREAKER.is_unavailable(health)  # many failures, but on two days only
    health = BREAKER.record_failure(health, T0 + timedelta(days=2))
    assert BREAKER.is_unavailable(health)
    health = BREAKER.record_success(health, T0 + timedelta(days=3))
    assert not BREAKER.is_unavailable(health)


def test_failure_days_stay_bounded() -> None:
    health = HostHealth()
    for day in range(30):
        health = BREAKER.record_failure(health, T0 + timedelta(days=day))
    assert len(health.failure_days) == BREAKER.unavailable_after_days
    assert max(health.failure_days) == (T0 + timedelta(days=29)).date()


def test_host_health_survives_a_json_round_trip() -> None:
    health, _ = fail(HostHealth(last_success_at=T0 - timedelta(days=1)), T0, 6)
    assert HostHealth.from_json(health.to_json()) == health
    assert HostHealth.from_json({}) == HostHealth()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"consecutive_failures": -1}, "consecutive_failures"),
        ({"failure_days": ["2026-13-01"]}, "failure_days"),
        ({"failure_days": "2026-11-01"}, "failure_days"),
        ({"opened_at": "yesterday"}, "opened_at"),
        ({"opened_at": "2026-11-22T12:00:00"}, "opened_at"),
        ({"last_success_at": 5}, "last_success_at"),
    ],
)
def test_bad_persisted_health_names_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        HostHealth.from_json(data)


def test_failure_days_are_utc_dates() -> None:
    just_after_midnight_in_berlin = datetime(
        2026, 11, 23, 0, 30, tzinfo=timezone(timedelta(hours=1))
    )
    health = BREAKER.record_failure(HostHealth(), just_after_midnight_in_berlin)
    assert health.failure_days == frozenset({date(2026, 11, 22)})
