"""Every ``web.AppKey`` of the node application, in one place.

Values are created in ``node.app`` (mostly inside ``cleanup_ctx``) and read by the
routes, the API and the workers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from federation.fetch import SafeFetcher
from federation.keycache import KeyCache
from federation.keys import SigningKey
from node.config import NodeConfig

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class NodeKeys:
    """The node's private keys: RSA signs HTTP requests, Ed25519 signs proofs."""

    rsa: SigningKey
    ed25519: SigningKey

    def rsa_for(self, actor_url: str) -> SigningKey:
        """The RSA key under the key id of a local actor (``{actor}#main-key``).

        Other local actors (the hub's topic groups) publish the node's RSA key under
        their own key id, so that a receiver sees the key owned by the activity's actor.
        """
        if not actor_url or self.rsa.key_id.startswith(f"{actor_url}#"):
            return self.rsa
        return SigningKey(f"{actor_url}#main-key", self.rsa.private_key)


CONFIG = web.AppKey("config", NodeConfig)
CLOCK = web.AppKey("clock", Callable[[], datetime])  # type: ignore[arg-type]
NODE_KEYS = web.AppKey("node_keys", NodeKeys)
DB_ENGINE = web.AppKey("db_engine", AsyncEngine)
SESSION_MAKER = web.AppKey("session_maker", async_sessionmaker[AsyncSession])
CLIENT_SESSION = web.AppKey("client_session", aiohttp.ClientSession)
FETCHER = web.AppKey("fetcher", SafeFetcher)
KEY_CACHE = web.AppKey("key_cache", KeyCache)
# node.workers.Workers (typed loosely: node.workers imports this module)
WORKERS = web.AppKey("workers", Any)  # type: ignore[arg-type]
# node.inbox_processing.InboxHook of a role (the hub) that sees every processed activity
INBOX_HOOK = web.AppKey("inbox_hook", Any)  # type: ignore[arg-type]
