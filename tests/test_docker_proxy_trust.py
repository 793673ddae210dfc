"""The compose deployment: the nodes believe X-Forwarded-For from the proxy alone.

Caddy sits at a fixed address; every node that serves HTTP trusts that address and no
other of the network (any container there could write the header), and the proxy's
address cannot be handed to another container by Docker's dynamic allocation.
"""

from __future__ import annotations

import ipaddress

from node.client_address import client_address, trusted_proxies
from node.config import config_from_mapping
from tests.test_docker_files import PROXY, compose, environment, services, serving_nodes


def _network() -> tuple[ipaddress.IPv4Network, ipaddress.IPv4Network]:
    (pool,) = compose()["networks"]["default"]["ipam"]["config"]
    return ipaddress.ip_network(pool["subnet"]), ipaddress.ip_network(pool["ip_range"])


def _proxy_address() -> ipaddress.IPv4Address:
    return ipaddress.ip_address(services()[PROXY]["networks"]["default"]["ipv4_address"])


def test_the_proxy_has_a_fixed_address_no_other_container_can_get() -> None:
    subnet, dynamic = _network()
    proxy = _proxy_address()
    assert proxy in subnet and proxy not in dynamic
    assert dynamic.subnet_of(subnet)  # type: ignore[arg-type]


def test_every_serving_node_trusts_the_proxy_and_nothing_else_of_the_network(tmp_path) -> None:
    subnet, dynamic = _network()
    proxy = _proxy_address()
    neighbour = next(dynamic.hosts())  # e.g. another node's container
    assert serving_nodes()
    for name, service in serving_nodes().items():
        raw = {"base_url": "https://n.example", "name": "N", "slug": "n",
               "server": {"trusted_proxies":
                          environment(service)["PRAXISNETZ_TRUSTED_PROXIES"].split()}}
        trusted = trusted_proxies(config_from_mapping(tmp_path, raw).server.trusted_proxies)
        seen = client_address(str(proxy), "203.0.113.9", trusted).address
        assert seen == "203.0.113.9", f"{name} does not trust the proxy"
        forged = client_address(str(neighbour), "203.0.113.9", trusted).address
        assert forged == str(neighbour), f"{name} trusts {neighbour}, not only the proxy"
        assert all(net.num_addresses == 1 for net in trusted.networks if net.overlaps(subnet))
