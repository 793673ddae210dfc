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
from federation.keys import Ed25519Version, SigningKey
from node.config import NodeConfig

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class KeyPair:
    """The node's two private keys as read at one moment.

    ``ed25519_version`` is the number in the Ed25519 key id (``federation.keys.ed25519_key_id``);
    ``ed25519_retired`` are the earlier Ed25519 public keys still published, newest first.
    """

    rsa: SigningKey
    ed25519: SigningKey
    ed25519_version: int = 1
    ed25519_retired: tuple[Ed25519Version, ...] = ()


# Given the keys in use, the keys to use now (the same object while nothing changed).
KeyRefresh = Callable[[KeyPair], KeyPair]


class NodeKeys:
    """The node's private keys: RSA signs HTTP requests, Ed25519 signs proofs.

    Every process holds one ``NodeKeys`` for its life; with a ``refresh``
    (``node.identity.KeyFiles``) each access to ``rsa`` or ``ed25519`` lets it switch to
    keys rotated on disk by ``praxisnetz keys rotate``, so nobody has to restart.
    """

    __slots__ = ("_pair", "_refresh")

    def __init__(self, rsa: SigningKey, ed25519: SigningKey, refresh: KeyRefresh | None = None):
        self._pair = KeyPair(rsa, ed25519)
        self._refresh = refresh

    @classmethod
    def from_pair(cls, pair: KeyPair, refresh: KeyRefresh | None = None) -> NodeKeys:
        keys = cls(pair.rsa, pair.ed25519, refresh)
        keys._pair = pair
        return keys

    def current(self) -> KeyPair:
        """All keys as of now, in one piece (an actor document must not mix two versions)."""
        if self._refresh is not None:
            self._pair = self._refresh(self._pair)
        return self._pair

    @property
    def rsa(self) -> SigningKey:
        return self.current().rsa

    @property
    def ed25519(self) -> SigningKey:
        return self.current().ed25519

    def rsa_for(self, actor_url: str) -> SigningKey:
        """The RSA key under the key id of a local actor (``{actor}#main-key``).

        Other local actors (the hub's topic groups) publish the node's RSA key under
        their own key id, so that a receiver sees the key owned by the activity's actor.
        """
        rsa = self.rsa
        if not actor_url or rsa.key_id.startswith(f"{actor_url}#"):
            return rsa
        return SigningKey(f"{actor_url}#main-key", rsa.private_key)


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
