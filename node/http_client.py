"""The node's one HTTP client: session, safe fetcher (signed GETs) and key cache."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from federation.fetch import AddressPolicy, SafeFetcher, make_client_session
from federation.httpsig import RequestParts, SignatureScheme, sign_request
from federation.keycache import KeyCache
from node import appkeys
from node.appkeys import Clock, NodeKeys
from node.config import NodeConfig


@dataclass(frozen=True)
class HttpClient:
    session: aiohttp.ClientSession
    fetcher: SafeFetcher
    key_cache: KeyCache


def address_policy(config: NodeConfig) -> AddressPolicy:
    """Public addresses only, unless the operator allowed a local federation."""
    if config.allow_private_network:
        return AddressPolicy.local_federation()
    return AddressPolicy()


def get_signer(keys: NodeKeys, clock: Clock) -> Callable[[RequestParts], Mapping[str, str]]:
    """Signs outgoing GETs with the node's RSA key (authorized-fetch servers need it)."""

    def sign(request: RequestParts) -> Mapping[str, str]:
        return sign_request(request, keys.rsa, SignatureScheme.CAVAGE, now=clock())

    return sign


@asynccontextmanager
async def open_http_client(app: web.Application) -> AsyncIterator[HttpClient]:
    config = app[appkeys.CONFIG]
    session = make_client_session(limit_per_host=config.delivery.per_host_concurrency * 2)
    fetcher = SafeFetcher(
        session,
        address_policy(config),
        sign=get_signer(app[appkeys.NODE_KEYS], app[appkeys.CLOCK]),
    )
    try:

        async def fetch_document(url: str) -> Mapping[str, object]:
            return (await fetcher.get_document(url)).document

        key_cache = KeyCache(fetch_document, clock=app[appkeys.CLOCK])
        yield HttpClient(session, fetcher, key_cache)
    finally:
        # the delivery POSTs' kept connections are the fetcher's, not the session's
        fetcher.close()
        await session.close()
