"""Remote actors and documents: fetched through the SafeFetcher, remembered in SQL.

``RemoteDirectory`` is the node's one way to learn about other servers. Actor
documents are stored in ``remote_actors`` so a restarted node knows its followers'
inboxes and keys without asking again; a key cache miss after rotation asks for a
fresh copy (``refresh=True``). Every fetch goes through ``federation.fetch``, which
refuses private addresses (unless the operator allowed a local federation), checks
the media type and that the document's ``id`` is the URL fetched.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urldefrag

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from federation.fetch import FetchError, FetchFailure
from federation.keycache import DocumentUnavailable, KeyCache
from node import appkeys
from node.storage.actors import actor_upsert, actor_values, upsert_remote_actor
from node.storage.models import RemoteActor

log = logging.getLogger("praxisnetz.remote")

ACTOR_TYPES = frozenset({"Person", "Organization", "Group", "Application", "Service"})
DEFAULT_ACTOR_MAX_AGE = timedelta(hours=24)
# Answers that asking again will not change: retrying them only lets a sender make us
# fetch a third party's URL again and again, and keeps the item in the inbox queue.
DEFINITIVE_FAILURES = frozenset({
    FetchFailure.BAD_URL, FetchFailure.FORBIDDEN_ADDRESS, FetchFailure.WRONG_MEDIA_TYPE,
    FetchFailure.NOT_JSON, FetchFailure.ID_MISMATCH, FetchFailure.TOO_LARGE,
})


T = TypeVar("T")
SqliteRunner = Callable[[Callable[[Connection], T]], Awaitable[T]]


class SqliteWork:
    """Where the key cache's reads and writes of ``remote_actors`` run on SQLite.

    ``runner`` is set while the process's inbox writer runs (``node.inbox``): its thread
    then does the lookup, and the upsert after a fetch, each in one hand-off with the
    stdlib driver. Through async sessions the same two statements were about 15 round
    trips to aiosqlite's thread, each a GIL hand-off while the event loop is busy:
    measured 6–7 ms of CPU per first contact under the ingest benchmark's load, more
    than the fetch, its RSA signature and the request together (docs/performance.md).
    """

    def __init__(self) -> None:
        self.runner: SqliteRunner[Any] | None = None


SQLITE_WORK = web.AppKey("sqlite_work", SqliteWork)


def _stored_actor(uri: str, connection: Connection) -> tuple[dict[str, Any], datetime] | None:
    """The stored document of actor ``uri`` and when it was fetched (sync, in the
    caller's transaction)."""
    statement = select(RemoteActor.document, RemoteActor.fetched_at).where(RemoteActor.uri == uri)
    row = connection.execute(statement).first()
    return None if row is None else (row[0], row[1])


def _upsert_actor(row: RemoteActor, connection: Connection) -> None:
    """``upsert_remote_actor`` on a sync connection, in the caller's transaction."""
    connection.execute(actor_upsert(connection.dialect.name), actor_values(row))


class RemoteError(DocumentUnavailable):
    """A remote document could not be had; ``reason`` says why in words."""

    def __init__(self, url: str, reason: str, *, permanent: bool = False) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True)
class RemoteActorInfo:
    """The members of a remote actor document the node uses (one type for all callers)."""

    uri: str
    inbox: str
    shared_inbox: str | None
    outbox: str | None
    followers_url: str | None
    name: str | None
    preferred_username: str | None
    kind: str | None
    document: Mapping[str, Any]

    @property
    def delivery_inbox(self) -> str:
        return self.shared_inbox or self.inbox


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _link(value: object) -> str | None:
    if isinstance(value, Mapping):
        value = value.get("id") or value.get("href")
    return _text(value)


def _first_type(value: object) -> str | None:
    if isinstance(value, list):
        value = next((v for v in value if isinstance(v, str) and v in ACTOR_TYPES), None) or (
            value[0] if value and isinstance(value[0], str) else None
        )
    return _text(value)


def parse_actor_document(uri: str, document: Mapping[str, Any]) -> RemoteActorInfo:
    """The actor at ``uri`` as the node uses it; RemoteError (permanent) if it has no inbox."""
    inbox = _link(document.get("inbox"))
    if inbox is None:
        raise RemoteError(uri, "actor document has no inbox", permanent=True)
    endpoints = document.get("endpoints")
    shared = _link(endpoints.get("sharedInbox")) if isinstance(endpoints, Mapping) else None
    return RemoteActorInfo(
        uri=uri,
        inbox=inbox,
        shared_inbox=shared,
        outbox=_link(document.get("outbox")),
        followers_url=_link(document.get("followers")),
        name=_text(document.get("name")),
        preferred_username=_text(document.get("preferredUsername")),
        kind=_first_type(document.get("type")),
        document=dict(document),
    )


def actor_row(info: RemoteActorInfo, *, fetched_at: datetime) -> RemoteActor:
    """The ``remote_actors`` row that remembers ``info``."""
    return RemoteActor(
        uri=info.uri, inbox=info.inbox, shared_inbox=info.shared_inbox, outbox=info.outbox,
        followers_url=info.followers_url, name=info.name, kind=info.kind,
        preferred_username=info.preferred_username, document=dict(info.document),
        fetched_at=fetched_at,
    )  # fmt: skip


def info_from_row(row: RemoteActor) -> RemoteActorInfo:
    return RemoteActorInfo(
        uri=row.uri,
        inbox=row.inbox,
        shared_inbox=row.shared_inbox,
        outbox=row.outbox,
        followers_url=row.followers_url,
        name=row.name,
        preferred_username=row.preferred_username,
        kind=row.kind,
        document=row.document or {},
    )


def is_actor_document(document: Mapping[str, Any]) -> bool:
    kinds = document.get("type")
    names = kinds if isinstance(kinds, list) else [kinds]
    return any(name in ACTOR_TYPES for name in names) and "inbox" in document


class RemoteDirectory:
    """Looks up remote actors and objects; the KeyCache's document source."""

    def __init__(
        self,
        *,
        session_maker: async_sessionmaker[AsyncSession],
        fetcher: Any,  # federation.fetch.SafeFetcher
        clock: Callable[[], datetime],
        max_age: timedelta = DEFAULT_ACTOR_MAX_AGE,
        sqlite: SqliteWork | None = None,
    ) -> None:
        self._sessions = session_maker
        self._fetcher = fetcher
        self._clock = clock
        self._max_age = max_age
        self._sqlite = sqlite

    async def fetch(self, url: str) -> dict[str, Any]:
        """A remote document, verified by the fetcher; RemoteError on any failure."""
        try:
            fetched = await self._fetcher.get_document(url)
        except FetchError as exc:
            reason = exc.failure.value
            if exc.status is not None:
                reason += f" (HTTP {exc.status})"
            if exc.detail:
                reason += f": {exc.detail}"
            permanent = exc.status in (404, 410) or exc.failure in DEFINITIVE_FAILURES
            raise RemoteError(url, reason, permanent=permanent) from exc
        return dict(fetched.document)

    async def actor(self, uri: str, *, refresh: bool = False) -> RemoteActorInfo:
        """The actor at ``uri``, from the table while fresh, else fetched and stored."""
        uri = urldefrag(uri).url
        if not refresh:
            async with self._sessions() as session:
                row = await session.get(RemoteActor, uri)
                if row is not None and self._clock() - row.fetched_at < self._max_age:
                    return info_from_row(row)
        document = await self.fetch(uri)
        return await self.remember_actor(uri, document)

    async def remember_actor(self, uri: str, document: Mapping[str, Any]) -> RemoteActorInfo:
        info = parse_actor_document(uri, document)
        row = actor_row(info, fetched_at=self._clock())
        runner = self._sqlite.runner if self._sqlite is not None else None
        if runner is not None:
            await runner(partial(_upsert_actor, row))
            return info
        async with self._sessions() as session, session.begin():
            await upsert_remote_actor(session, row)
        return info

    async def _stored_document(self, uri: str) -> dict[str, Any] | None:
        """The stored document of actor ``uri`` while it is fresh, else None."""
        runner = self._sqlite.runner if self._sqlite is not None else None
        if runner is not None:
            stored = await runner(partial(_stored_actor, uri))
        else:
            async with self._sessions() as session:
                row = await session.get(RemoteActor, uri)
                stored = None if row is None else (row.document, row.fetched_at)
        if stored is None or self._clock() - stored[1] >= self._max_age:
            return None
        return dict(stored[0])

    async def key_document(self, key_id: str, *, refresh: bool = False) -> dict[str, Any]:
        """The document that publishes ``key_id`` (usually its actor), for the KeyCache.

        A stored actor document is used while fresh unless ``refresh`` asks for the
        current one (a failed verification may mean the key rotated).
        """
        uri = urldefrag(key_id).url
        if not refresh:
            stored = await self._stored_document(uri)
            if stored is not None:
                return stored
        document = await self.fetch(uri)
        if is_actor_document(document):
            try:
                await self.remember_actor(uri, document)
            except RemoteError as exc:
                log.info("actor not stored url=%s reason=%s", uri, exc.reason)
            except SQLAlchemyError as exc:
                # e.g. a NUL in its name (PostgreSQL): the keys still serve; raising here
                # answered every request of this actor with 503, asking it to retry for ever
                log.warning("actor not stored url=%s error=%s", uri, type(exc).__name__)
        return document


def make_key_cache(directory: RemoteDirectory, clock: Callable[[], datetime]) -> KeyCache:
    """A KeyCache whose documents come from (and are remembered in) ``remote_actors``."""

    async def stored_or_fetched(url: str) -> dict[str, Any]:
        return await directory.key_document(url)

    async def fetched(url: str) -> dict[str, Any]:
        return await directory.key_document(url, refresh=True)

    return KeyCache(stored_or_fetched, refetch_document=fetched, clock=clock)


# Set once the persistent key cache is on the app, so it is installed only once.
PERSISTENT_KEY_CACHE = web.AppKey("persistent_key_cache", bool)


def install_key_cache(app: web.Application) -> RemoteDirectory:
    """Put a key cache backed by ``remote_actors`` on the app (once); return a directory."""
    directory = RemoteDirectory(session_maker=app[appkeys.SESSION_MAKER],
                                fetcher=app[appkeys.FETCHER], clock=app[appkeys.CLOCK],
                                sqlite=app.get(SQLITE_WORK))
    if not app.get(PERSISTENT_KEY_CACHE, False):
        app[appkeys.KEY_CACHE] = make_key_cache(directory, app[appkeys.CLOCK])
        app[PERSISTENT_KEY_CACHE] = True
    return directory
