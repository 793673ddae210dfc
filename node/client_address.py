"""The client's address behind trusted reverse proxies (the rightmost-untrusted rule).

A proxy appends the address it received the connection from to ``X-Forwarded-For``
(nginx ``$proxy_add_x_forwarded_for``) or replaces the header (Caddy, for clients it does
not trust). Everything left of the entries our own proxies wrote is whatever the client
sent, so the header is read **from the right**: past every hop that is a trusted proxy, up
to the first address that is not — that one connected to our outermost proxy, and no
client can forge it. Headers from a peer that is not a trusted proxy are ignored.

Pure: no I/O. ``client_address`` takes the peer and the header text; ``of_request`` reads
them from anything shaped like an aiohttp request (several header lines are one
comma-separated list, RFC 9110 §5.3).
"""

from __future__ import annotations

import enum
import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_TRUSTED_PROXIES = ("127.0.0.1/32", "::1/128")
# Walking further than this many trusted hops is no real proxy chain; stop there (the
# header is bounded by aiohttp's 8 KiB line limit anyway, this keeps the walk short).
MAX_HOPS = 32


class _Headers(Protocol):
    def getall(self, key: str, default: list[str]) -> list[str]: ...


class _Request(Protocol):
    @property
    def remote(self) -> str | None: ...

    @property
    def headers(self) -> _Headers: ...


class AddressSource(enum.Enum):
    PEER = "peer"  # the TCP peer itself: no trusted proxy in front, or no header
    FORWARDED = "forwarded"  # read from X-Forwarded-For behind trusted proxies


@dataclass(frozen=True)
class ClientAddress:
    address: str  # a normalised IP address; the peer text unchanged if it is no IP
    source: AddressSource
    # a hop could not be read (or the chain was too long): ``address`` is the last good
    # hop to the right of it, i.e. a trusted proxy, never anything the client chose
    malformed: bool = False


# A hop as the walk needs it: the normalised address text and whether it is a proxy of ours.
Hop = tuple[str, bool]
SEEN_LIMIT = 4096  # hop texts remembered per TrustedProxies (clients choose them: bounded)


@dataclass(frozen=True, eq=False)
class TrustedProxies:
    networks: tuple[IPNetwork, ...]
    # Parsing and matching cost most of the ~7-13 µs a request spent here, for the same
    # few texts again and again (our proxy, the busy clients): remembered per text.
    _seen: dict[str, Hop | None] = field(default_factory=dict, repr=False)
    # The answer for a request straight from a peer, one (immutable) instance per address.
    _peers: dict[str, ClientAddress] = field(default_factory=dict, repr=False)

    def __contains__(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)

    def hop(self, text: str) -> Hop | None:
        """``text`` read as an address (None if it is none) and whether it is trusted."""
        try:
            return self._seen[text]
        except KeyError:
            pass
        address = parse_address(text)
        found = None if address is None else (str(address), address in self)
        if len(self._seen) >= SEEN_LIMIT:
            self._seen.clear()
        self._seen[text] = found
        return found

    def as_peer(self, address: str) -> ClientAddress:
        """``ClientAddress(address, AddressSource.PEER)``, made once per address."""
        try:
            return self._peers[address]
        except KeyError:
            pass
        if len(self._peers) >= SEEN_LIMIT:
            self._peers.clear()
        made = self._peers[address] = ClientAddress(address, AddressSource.PEER)
        return made


def parse_network(text: str) -> IPNetwork:
    """One CIDR (``10.0.0.0/24``, ``::1/128``) or single address; ValueError if not."""
    return ipaddress.ip_network(text.strip(), strict=True)


@functools.lru_cache(maxsize=16)
def trusted_proxies(cidrs: tuple[str, ...]) -> TrustedProxies:
    """The parsed networks; cached, as the config holds them as text and every request asks."""
    return TrustedProxies(tuple(parse_network(cidr) for cidr in cidrs))


def parse_address(text: str) -> IPAddress | None:
    """An address as proxies write it: ``1.2.3.4``, ``2001:db8::1``, also with a port
    (``1.2.3.4:80``, ``[2001:db8::1]:80``, Azure and RFC 7239 style). IPv4-mapped IPv6
    (a dual-stack socket's ``::ffff:10.0.0.1``) becomes IPv4, so IPv4 networks match it.
    None for anything else ("unknown", obfuscated identifiers, garbage)."""
    text = text.strip()
    if text.startswith("["):
        text, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not (rest[0] == ":" and rest[1:].isdigit())):
            return None
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
        if not port.isdigit():
            return None
        text = host
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


IPV6_LOCKOUT_PREFIX = 64  # one subscriber's (or one server's) IPv6 allocation, at least


def lockout_key(address: str) -> str:
    """What the sign-in lock-out counts failures per: an IPv4 address as it is, an IPv6
    address by its /64 (``2001:db8:1:2::/64``), IPv4-mapped IPv6 as its IPv4 address;
    text that is no address unchanged.

    A /64 is the smallest block a provider hands out, and its holder may use any of its
    2^64 addresses (privacy extensions rotate them by themselves), so per address a
    guesser would get ``MAX_FAILED_ATTEMPTS`` tries per address without end."""
    parsed = parse_address(address)
    if parsed is None:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        host_bits = 128 - IPV6_LOCKOUT_PREFIX  # IPv6Network() took twice as long (29 µs)
        prefix = ipaddress.IPv6Address(int(parsed) >> host_bits << host_bits)
        return f"{prefix}/{IPV6_LOCKOUT_PREFIX}"
    return str(parsed)


def client_address(peer: str | None, forwarded_for: str | None,
                   trusted: TrustedProxies) -> ClientAddress:
    """The client's address: the rightmost ``X-Forwarded-For`` entry that is not a trusted
    proxy, if the peer is one; otherwise the peer."""
    peer_text = peer or "unknown"
    peer_hop = trusted.hop(peer_text)
    if peer_hop is None:  # a Unix socket or no peer at all: nothing to check the header by
        return trusted.as_peer(peer_text)
    current, is_trusted = peer_hop
    if not is_trusted or not forwarded_for or not forwarded_for.strip():
        return trusted.as_peer(current)
    hops = (entry.strip() for entry in _from_the_right(forwarded_for))
    # empty list elements are ignored (RFC 9110 §5.6.1)
    for count, entry in enumerate(entry for entry in hops if entry):
        hop = trusted.hop(entry)
        if hop is None or count >= MAX_HOPS:
            return ClientAddress(current, AddressSource.FORWARDED, malformed=True)
        current, is_trusted = hop
        if not is_trusted:
            return ClientAddress(current, AddressSource.FORWARDED)
    # Every hop is one of our proxies: the leftmost is where the request began.
    return ClientAddress(current, AddressSource.FORWARDED)


def of_request(request: _Request, trusted: TrustedProxies) -> ClientAddress:
    """``client_address`` for an aiohttp request (its peer and every X-Forwarded-For line)."""
    lines = request.headers.getall("X-Forwarded-For", [])
    return client_address(request.remote, ", ".join(lines), trusted)


def _from_the_right(header: str) -> Iterable[str]:
    """The entries, last first, split lazily: the walk usually stops after one or two."""
    rest, comma = header, ","
    while comma:
        rest, comma, entry = rest.rpartition(",")
        yield entry
