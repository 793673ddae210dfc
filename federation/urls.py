"""Origins of http(s) URLs, parsed strictly.

An origin is (scheme, host, port). Userinfo, backslashes, control characters and
non-http(s) schemes are refused instead of being interpreted, because browsers,
``urllib`` and ``yarl`` disagree about such URLs and an attacker picks the reading
that suits them.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from urllib.parse import SplitResult, urlsplit

import idna

_DEFAULT_PORTS = {"http": 80, "https": 443}
_FORBIDDEN_URL_CHARS = frozenset("\\\x7f") | frozenset(chr(c) for c in range(0x21))
_ASCII_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._")


class OriginError(ValueError):
    """A URL that has no trustworthy origin."""


def split_url(url: str) -> SplitResult:
    """``urlsplit`` for http(s) URLs; refuses userinfo, bad ports and stray characters."""
    if not isinstance(url, str) or not url:
        raise OriginError("URL must be a non-empty string")
    if not _FORBIDDEN_URL_CHARS.isdisjoint(url):
        raise OriginError("URL contains whitespace, control characters or backslashes")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- property access validates the port
    except ValueError as exc:
        raise OriginError(f"unparseable URL: {exc}") from exc
    if parts.scheme.lower() not in _DEFAULT_PORTS:
        raise OriginError(f"scheme {parts.scheme!r} is not http or https")
    if "@" in parts.netloc:
        raise OriginError("URL carries userinfo")
    return parts


@lru_cache(maxsize=4096)  # pure; every URL of every activity comes here (inbox hot path)
def _normalise_host(raw_host: str | None) -> str:
    if not raw_host:
        raise OriginError("URL has no host")
    host = raw_host.lower()
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        pass  # not an IP literal: treat as a DNS name below
    # "example.org." and "example.org" are the same DNS name
    host = host[:-1] if host.endswith(".") else host
    if host.isascii():
        # As yarl does: ASCII names are only lowercased (so "node_a" of a local
        # federation works), but only hostname characters are let through.
        if "" in host.split(".") or not set(host) <= _ASCII_HOST_CHARS:
            raise OriginError(f"host {raw_host!r} is not a valid host name")
        return host
    try:
        # UTS 46 mapping, as yarl (and thus aiohttp) applies before connecting
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise OriginError(f"host {raw_host!r} is not a valid domain name: {exc}") from exc


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL, host lowercased and IDNA-encoded.

    Raises OriginError for anything that is not a plain http(s) URL.
    """
    if not isinstance(url, str):  # before the cache, which needs a hashable key
        raise OriginError("URL must be a non-empty string")
    return _origin(url)


@lru_cache(maxsize=4096)  # pure; actors, key ids and audiences recur in every activity
def _origin(url: str) -> tuple[str, str, int]:
    parts = split_url(url)
    scheme = parts.scheme.lower()
    host = _normalise_host(parts.hostname)  # hostname: lowercased, IPv6 brackets removed
    port = parts.port if parts.port is not None else _DEFAULT_PORTS[scheme]
    return scheme, host, port


def same_origin(a: str, b: str) -> bool:
    """True if both are valid http(s) URLs with equal scheme, host and port."""
    try:
        return origin(a) == origin(b)
    except OriginError:
        return False
