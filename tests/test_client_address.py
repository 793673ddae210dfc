"""The client address behind trusted proxies: attempts to get past the rightmost-untrusted
rule with spoofed, chained, IPv6 and garbled X-Forwarded-For headers."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from multidict import CIMultiDict

from node.client_address import (
    DEFAULT_TRUSTED_PROXIES,
    MAX_HOPS,
    SEEN_LIMIT,
    AddressSource,
    ClientAddress,
    TrustedProxies,
    client_address,
    lockout_key,
    of_request,
    parse_address,
    parse_network,
    trusted_proxies,
)

LOOPBACK = trusted_proxies(DEFAULT_TRUSTED_PROXIES)
# the compose deployment: Caddy at a fixed address, plus loopback
COMPOSE = trusted_proxies(("172.30.0.2/32", "127.0.0.1/32", "::1/128"))
PROXY_V6 = trusted_proxies(("fd00:cafe::/64",))


def forwarded(address: str) -> ClientAddress:
    return ClientAddress(address, AddressSource.FORWARDED)


def peer(address: str) -> ClientAddress:
    return ClientAddress(address, AddressSource.PEER)


@pytest.mark.parametrize(("peer_address", "header", "expected"), [
    # an attacker talking to the node directly: whatever the header says is ignored
    ("203.0.113.66", "127.0.0.1", peer("203.0.113.66")),
    ("203.0.113.66", "198.51.100.7", peer("203.0.113.66")),
    ("203.0.113.66", "172.30.0.2, 127.0.0.1", peer("203.0.113.66")),
    ("10.9.9.9", "198.51.100.7", peer("10.9.9.9")),  # another container, not the proxy
])
def test_a_header_from_an_untrusted_peer_changes_nothing(peer_address, header, expected):
    assert client_address(peer_address, header, COMPOSE) == expected


@pytest.mark.parametrize(("header", "expected"), [
    ("198.51.100.7", "198.51.100.7"),
    # the client wrote the left part; our proxy appended the real address
    ("127.0.0.1, 198.51.100.7", "198.51.100.7"),
    ("172.30.0.2, 198.51.100.7", "198.51.100.7"),
    ("1.1.1.1, 2.2.2.2, 198.51.100.7", "198.51.100.7"),
    ("garbage, 198.51.100.7", "198.51.100.7"),  # garbage left of the real hop is never read
    # two of our proxies in a row (a local nginx behind the compose Caddy): skip both
    ("6.6.6.6, 198.51.100.7, 127.0.0.1", "198.51.100.7"),
])
def test_the_rightmost_untrusted_entry_wins(header, expected):
    assert client_address("172.30.0.2", header, COMPOSE) == forwarded(expected)


def test_a_spoofed_chain_cannot_name_a_trusted_proxy_as_the_client():
    # Every entry the client could add is left of the proxy's own: even if it lists our
    # proxies, the walk stops at the first untrusted address from the right.
    header = "172.30.0.2, 127.0.0.1, 203.0.113.9"
    assert client_address("172.30.0.2", header, COMPOSE) == forwarded("203.0.113.9")


@pytest.mark.parametrize(("peer_address", "header", "trusted", "expected"), [
    ("::1", "10.0.0.1, 2001:db8::7", LOOPBACK, "2001:db8::7"),
    ("fd00:cafe::2", "2001:db8::1, 2001:db8::9", PROXY_V6, "2001:db8::9"),
    ("fd00:cafe::2", "2001:db8::9, fd00:cafe::1", PROXY_V6, "2001:db8::9"),
    ("127.0.0.1", "[2001:db8::5]:4711", LOOPBACK, "2001:db8::5"),
    ("127.0.0.1", "2001:DB8:0:0::5", LOOPBACK, "2001:db8::5"),  # normalised spelling
    ("127.0.0.1", "198.51.100.7:4711", LOOPBACK, "198.51.100.7"),
    # a dual-stack socket reports IPv4 peers as IPv4-mapped IPv6: still loopback
    ("::ffff:127.0.0.1", "198.51.100.7", LOOPBACK, "198.51.100.7"),
    ("127.0.0.1", "::ffff:198.51.100.7", LOOPBACK, "198.51.100.7"),
])
def test_ipv6_and_ports(peer_address, header, trusted, expected):
    assert client_address(peer_address, header, trusted) == forwarded(expected)


def test_ipv6_peer_outside_the_trusted_network_is_not_believed():
    assert client_address("fd00:beef::2", "2001:db8::9", PROXY_V6) == peer("fd00:beef::2")
    assert client_address("::ffff:10.0.0.1", "2001:db8::9", LOOPBACK) == peer("10.0.0.1")


@pytest.mark.parametrize("header", [
    "kein-ip", "unknown", "_hidden", "1.2.3.4.5", "999.1.1.1", "[::1", "[::1]x", "1.2.3.4:port",
    "1.2.3.4:80:90", "\x00", "🙂", "2001:db8::1::2", "[::1]:80:90",
])
def test_a_garbled_hop_gives_the_last_good_hop_never_a_crash(header):
    # the last good hop is the trusted proxy itself: nothing the client chose
    result = client_address("127.0.0.1", f"{header}", LOOPBACK)
    assert result == ClientAddress("127.0.0.1", AddressSource.FORWARDED, malformed=True)
    chained = client_address("172.30.0.2", f"198.51.100.7, {header}, 127.0.0.1", COMPOSE)
    assert chained == ClientAddress("127.0.0.1", AddressSource.FORWARDED, malformed=True)


@pytest.mark.parametrize("header", ["", " ", ",", " , ,", "198.51.100.7,", ",198.51.100.7, "])
def test_empty_list_elements_are_skipped(header):
    result = client_address("127.0.0.1", header, LOOPBACK)
    assert result.address == ("198.51.100.7" if "198" in header else "127.0.0.1")
    assert not result.malformed


def test_a_chain_of_only_trusted_hops_gives_the_leftmost():
    assert client_address("127.0.0.1", "::1, 127.0.0.1", LOOPBACK) == forwarded("::1")


def test_an_endless_trusted_chain_stops_at_the_limit():
    header = ", ".join(["127.0.0.1"] * (MAX_HOPS + 5))
    result = client_address("127.0.0.1", "203.0.113.9, " + header, LOOPBACK)
    assert result == ClientAddress("127.0.0.1", AddressSource.FORWARDED, malformed=True)


@pytest.mark.parametrize("peer_text", [None, "", "unknown", "/run/praxisnetz.sock"])
def test_a_peer_that_is_no_ip_is_kept_and_the_header_ignored(peer_text):
    result = client_address(peer_text, "203.0.113.9", LOOPBACK)
    assert result == peer(peer_text or "unknown")


def test_nothing_is_trusted_with_an_empty_list():
    assert client_address("127.0.0.1", "203.0.113.9", trusted_proxies(())) == peer("127.0.0.1")


def test_parse_address_accepts_only_addresses():
    assert str(parse_address(" 192.0.2.1 ")) == "192.0.2.1"
    assert str(parse_address("[::1]")) == "::1"
    for text in ("", "localhost", "192.0.2.1/32", "[192.0.2.1]x"):
        assert parse_address(text) is None, text


def test_of_request_joins_every_header_line():
    # two X-Forwarded-For lines are one list: the last line's last entry is the newest
    headers = CIMultiDict([("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "198.51.100.7")])
    request = SimpleNamespace(remote="127.0.0.1", headers=headers)
    assert of_request(request, LOOPBACK) == forwarded("198.51.100.7")
    bare = SimpleNamespace(remote="127.0.0.1", headers=CIMultiDict())
    assert of_request(bare, LOOPBACK) == peer("127.0.0.1")


def test_the_remembered_hops_stay_bounded_and_right() -> None:
    trusted = TrustedProxies((parse_network("10.0.0.0/8"),))
    for n in range(SEEN_LIMIT + 10):
        text = f"192.0.{n // 256}.{n % 256}"
        assert client_address("10.0.0.1", text, trusted) == forwarded(text)
        assert len(trusted._seen) <= SEEN_LIMIT
    # asked again after the memory was cleared, and for garbage: the same answers
    assert client_address("10.0.0.1", "192.0.0.0", trusted) == forwarded("192.0.0.0")
    assert client_address("10.0.0.1", "x", trusted).malformed
    assert client_address("10.0.0.1", "x", trusted).malformed


@pytest.mark.parametrize(("address", "key"), [
    ("203.0.113.9", "203.0.113.9"),  # IPv4: per address
    ("::ffff:203.0.113.9", "203.0.113.9"),  # IPv4-mapped (dual-stack socket): the same
    ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
    ("2001:0db8:0001:0002:ffff:ffff:ffff:fffe", "2001:db8:1:2::/64"),  # same /64, spelled out
    ("[2001:db8:1:3::1]:443", "2001:db8:1:3::/64"),  # the next /64 is another key
    ("unknown", "unknown"),  # no address: kept as the text it was
])
def test_the_lockout_counts_ipv6_per_64(address, key):
    assert lockout_key(address) == key
