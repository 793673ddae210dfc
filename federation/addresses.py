"""Which addresses a node may connect to: the address policy of every outgoing request.

Every URL in an incoming document is chosen by whoever sent it; the fetcher
(``federation.fetch``) and the delivery connections (``federation.post_connections``)
resolve the host themselves and connect only to addresses this policy permits.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

_CGNAT = ip_network("100.64.0.0/10")
_NAT64 = ip_network("64:ff9b::/96")
_LOCAL_FEDERATION_NETWORKS: tuple[IPNetwork, ...] = (
    ip_network("127.0.0.0/8"),
    ip_network("::1/128"),
    ip_network("10.0.0.0/8"),
    ip_network("172.16.0.0/12"),
    ip_network("192.168.0.0/16"),
    ip_network("fc00::/7"),
)


def embedded_ipv4(address: IPAddress) -> IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64), if any."""
    if isinstance(address, IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public_unicast(address: IPAddress) -> bool:
    """True for globally routable unicast addresses and nothing else."""
    inner = embedded_ipv4(address)
    if inner is not None:
        return is_public_unicast(inner)
    if (
        address.is_multicast
        or address.is_loopback
        or address.is_link_local
        or address.is_private
        or address.is_unspecified
        or address.is_reserved
    ):
        return False
    if isinstance(address, IPv4Address) and address in _CGNAT:
        return False
    if isinstance(address, IPv6Address) and address.is_site_local:
        return False
    return address.is_global


def normalise_host(host: str) -> str:
    """Lower case, no trailing dot, no IPv6 brackets: the form allow-lists compare."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host


def _network(value: IPNetwork | str) -> IPNetwork:
    """Networks may be given as text (from a config file): ``"10.0.0.0/8"``."""
    if isinstance(value, IPv4Network | IPv6Network):
        return value
    try:
        return ip_network(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"allowed_networks: {value!r} is not an IP network: {exc}") from exc


@dataclass(frozen=True)
class AddressPolicy:
    """Which addresses the fetcher may connect to.

    Public unicast addresses are always permitted. Everything else (loopback, private,
    link-local, unique-local, multicast, unspecified, reserved, CGNAT, and IPv6 forms of
    such IPv4 addresses) only when the host name is in ``allowed_hosts`` or the address
    lies in one of ``allowed_networks``.
    """

    allowed_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[IPNetwork, ...] = ()

    def __post_init__(self) -> None:
        hosts = frozenset(normalise_host(host) for host in self.allowed_hosts)
        object.__setattr__(self, "allowed_hosts", hosts)
        object.__setattr__(
            self, "allowed_networks", tuple(_network(item) for item in self.allowed_networks)
        )

    def permits(self, host: str, address: IPAddress) -> bool:
        if is_public_unicast(address):
            return True
        if normalise_host(host) in self.allowed_hosts:
            return True
        candidates = [address]
        inner = embedded_ipv4(address)
        if inner is not None:
            candidates.append(inner)
        return any(
            candidate in network
            for candidate in candidates
            for network in self.allowed_networks
            if candidate.version == network.version
        )

    @classmethod
    def local_federation(cls) -> AddressPolicy:
        """Loopback and private ranges, for ``--allow-private-network``.

        Link-local stays closed: 169.254.169.254 is the cloud metadata service.
        """
        return cls(allowed_networks=_LOCAL_FEDERATION_NETWORKS)


def ip_literal(host: str) -> IPAddress | None:
    # IP literals end in a digit or contain ":"; almost no DNS name does, so skip the parse.
    if ":" not in host and not host[-1:].isdigit():
        return None
    try:
        return ip_address(host)
    except ValueError:
        return None  # e.g. "127.1": not canonical, left to the resolver and then checked


async def system_resolve(host: str, port: int) -> list[IPAddress]:
    """The operating system's resolver (getaddrinfo), as a list of addresses."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        address = ip_address(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses
