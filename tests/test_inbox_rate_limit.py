"""The inbox's rate limit: a client claiming another host's key id spends its own budget.

The key id is not verified when the buckets are asked, so the tests claim hosts freely
from different client addresses, the way a spoofer would.
"""

from __future__ import annotations

from unittest import mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from node.client_address import DEFAULT_TRUSTED_PROXIES, trusted_proxies
from node.config import InboxTuning
from node.inbox import INBOX_RATE_LIMITER, InboxRateLimiter, InboxRejected, check_rate

VICTIM = "victim.example"
VICTIM_IP = "198.51.100.7"
SPOOFER_IP = "203.0.113.66"
LOOPBACK_PROXY = trusted_proxies(DEFAULT_TRUSTED_PROXIES)


def limiter(per_host: int = 5, per_ip: int = 20) -> InboxRateLimiter:
    tuning = InboxTuning(requests_per_host_per_minute=per_host, requests_per_ip_per_minute=per_ip)
    return InboxRateLimiter(tuning, monotonic=lambda: 0.0)  # the clock stands: no refill


def signed_request(app: web.Application, key_host: str, client_ip: str,
                   forwarded_for: str | None = None) -> web.Request:
    transport = mock.Mock()
    transport.get_extra_info.side_effect = (
        lambda name, default=None: (client_ip, 44321) if name == "peername" else default
    )
    headers = {"Signature": f'keyId="https://{key_host}/actor#main-key",signature="AAAA"'}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    return make_mocked_request("POST", "/inbox", headers=headers, app=app, transport=transport)


def test_a_spoofer_cannot_spend_the_claimed_hosts_budget() -> None:
    buckets = limiter()
    spoofed = [buckets.take(VICTIM, SPOOFER_IP).allowed for _ in range(10)]
    assert spoofed == [True] * 5 + [False] * 5  # the spoofer is cut off at its own budget
    genuine = [buckets.take(VICTIM, VICTIM_IP).allowed for _ in range(5)]
    assert genuine == [True] * 5  # the real host, from its own address, has all of its own


def test_one_address_claiming_many_hosts_meets_its_ip_bucket() -> None:
    buckets = limiter(per_host=5, per_ip=20)
    answers = [buckets.take(f"host{n}.example", SPOOFER_IP) for n in range(25)]
    assert [a.allowed for a in answers] == [True] * 20 + [False] * 5
    assert answers[-1].retry_after_seconds >= 1
    assert buckets.take("host0.example", VICTIM_IP).allowed  # others are not affected


def test_unsigned_requests_share_the_bucket_of_their_address() -> None:
    buckets = limiter(per_host=2)
    assert [buckets.take(None, SPOOFER_IP).allowed for _ in range(3)] == [True, True, False]
    assert buckets.take(None, VICTIM_IP).allowed


def test_check_rate_answers_429_to_the_spoofer_and_not_to_the_host() -> None:
    app = web.Application()
    app[INBOX_RATE_LIMITER] = limiter(per_host=3)
    for _ in range(3):
        assert check_rate(signed_request(app, VICTIM, SPOOFER_IP), LOOPBACK_PROXY) == VICTIM
    with pytest.raises(InboxRejected) as refused:
        check_rate(signed_request(app, VICTIM, SPOOFER_IP), LOOPBACK_PROXY)
    assert refused.value.response.status == 429
    assert "Retry-After" in refused.value.response.headers
    assert SPOOFER_IP in refused.value.response.text
    for _ in range(3):  # the victim's own deliveries still pass
        assert check_rate(signed_request(app, VICTIM, VICTIM_IP), LOOPBACK_PROXY) == VICTIM


def test_behind_a_trusted_proxy_each_sender_has_its_own_ip_bucket() -> None:
    """The node behind its reverse proxy (the peer is 127.0.0.1): the per-IP budget is the
    sender's from X-Forwarded-For, not one bucket for everyone the proxy forwards."""
    app = web.Application()
    app[INBOX_RATE_LIMITER] = limiter(per_host=100, per_ip=2)
    for _ in range(2):
        check_rate(signed_request(app, f"h{_}.example", "127.0.0.1", SPOOFER_IP), LOOPBACK_PROXY)
    with pytest.raises(InboxRejected) as refused:
        check_rate(signed_request(app, "h9.example", "127.0.0.1", SPOOFER_IP), LOOPBACK_PROXY)
    assert SPOOFER_IP in refused.value.response.text
    # another sender through the same proxy still has its whole budget
    assert check_rate(signed_request(app, "h9.example", "127.0.0.1", VICTIM_IP),
                      LOOPBACK_PROXY) == "h9.example"


def test_a_forwarded_for_header_from_an_untrusted_peer_is_ignored() -> None:
    """A sender cannot pick its bucket by writing X-Forwarded-For itself."""
    app = web.Application()
    app[INBOX_RATE_LIMITER] = limiter(per_host=100, per_ip=2)
    for number in range(2):  # a fresh forged address each time: still the peer's bucket
        check_rate(signed_request(app, "h.example", SPOOFER_IP, f"198.51.100.{number}"),
                   LOOPBACK_PROXY)
    with pytest.raises(InboxRejected) as refused:
        check_rate(signed_request(app, "h.example", SPOOFER_IP, "198.51.100.99"), LOOPBACK_PROXY)
    assert SPOOFER_IP in refused.value.response.text


def _reference_take(limiter_state: dict[str, object], host: str, now: float) -> tuple[bool, int]:
    """The bucket as it was written before (pop, min, insert, trim after every call)."""
    buckets, rate, capacity = limiter_state["buckets"], limiter_state["rate"], limiter_state["capacity"]
    last = buckets.pop(host, None)  # type: ignore[union-attr]
    tokens = capacity if last is None else min(capacity, last[0] + (now - last[1]) * rate)
    allowed = tokens >= 1.0
    if allowed:
        tokens -= 1.0
    buckets[host] = (tokens, now)  # type: ignore[index]
    while len(buckets) > limiter_state["max_hosts"]:  # type: ignore[arg-type]
        buckets.popitem(last=False)  # type: ignore[union-attr]
    if allowed:
        return True, 0
    wait = (1.0 - tokens) / rate if rate > 0 else 60.0  # type: ignore[operator]
    return False, max(1, int(wait + 0.999))


@pytest.mark.parametrize(("per_minute", "burst", "max_hosts"), [(60, 3, 4), (1, None, 1), (0, 2, 0), (600, 1, 3)])
def test_the_bucket_answers_as_the_reference(per_minute: int, burst: int | None, max_hosts: int) -> None:
    import random
    from collections import OrderedDict

    from node.inbox import HostRateLimiter

    clock = [0.0]
    limiter = HostRateLimiter(per_minute, burst=burst, max_hosts=max_hosts, monotonic=lambda: clock[0])
    state: dict[str, object] = {"buckets": OrderedDict(), "rate": per_minute / 60.0, "max_hosts": max_hosts,
                                "capacity": float(burst if burst is not None else per_minute)}
    chance = random.Random(9)
    for _ in range(5000):
        clock[0] += chance.choice((0.0, 0.01, 0.3, 1.0, 7.0))
        host = chance.choice("abcdef")
        decision = limiter.take(host)
        assert (decision.allowed, decision.retry_after_seconds) == _reference_take(state, host, clock[0])
        assert list(limiter._buckets.items()) == list(state["buckets"].items())  # type: ignore[union-attr]
