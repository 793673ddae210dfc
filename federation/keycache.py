"""Key cache: resolves a signature's key id to a public key, with the rotation rule.

A key is only ever taken from its owner's actor document, and only when

- that document was fetched from the actor's own URL (the document source guarantees
  ``id`` equals the URL fetched; this module checks it again),
- it lists the key id under ``publicKey`` or ``assertionMethod``, and
- the key id's host (and port) is the actor's host [misskey#2546].

Key ids come in two shapes: a fragment of the actor (``…/actor#main-key``, Mastodon) or
a separate key document naming its ``owner``/``controller``; the owner is then fetched
and must list the key. Results are cached per key id for ``ttl``; unavailable keys are
remembered for ``negative_ttl`` so a flood of requests naming a dead key costs one
fetch. ``refresh=True`` (a signature failed with the cached key; it may have rotated
[mastodon#9667]) fetches again, at most once per ``min_refresh_interval`` per key so
forged signatures cannot turn us into a fetch amplifier. Concurrent lookups of one key
share one fetch.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urldefrag

from federation.fetch import FetchError
from federation.httpsig import KeyLookup, SignatureVerdict
from federation.keys import KeyFormatError, PublicKeyInfo, parse_actor_keys
from federation.origin import fetched_id_matches
from federation.urls import OriginError, origin

DocumentSource = Callable[[str], Awaitable[Mapping[str, object]]]


class DocumentUnavailable(Exception):
    """Raised by a document source (besides FetchError) when a document cannot be had."""


_SOURCE_FAILURES = (FetchError, DocumentUnavailable)
_UNKNOWN = KeyLookup(None, SignatureVerdict.UNKNOWN_KEY)
_FETCH_FAILED = KeyLookup(None, SignatureVerdict.KEY_FETCH_FAILED)


@dataclass(frozen=True)
class _Entry:
    lookup: KeyLookup
    fetched_at: datetime
    expires_at: datetime


def _authority(url: str) -> tuple[str, int] | None:
    try:
        _scheme, host, port = origin(url)
    except OriginError:
        return None
    return host, port


def same_host(key_id: str, actor_id: str) -> bool:
    """Do the key id and the actor id name the same host and port?"""
    key_authority = _authority(key_id)
    return key_authority is not None and key_authority == _authority(actor_id)


def is_under(key_id: str, actor_id: str) -> bool:
    """Is ``key_id`` the actor's URL, a fragment of it, or a path below it?"""
    return key_id == actor_id or key_id.startswith((actor_id + "#", actor_id.rstrip("/") + "/"))


def _listed_key(
    document: Mapping[str, object], key_id: str, actor_url: str
) -> PublicKeyInfo | None:
    """The key ``key_id`` if ``document`` is the actor at ``actor_url`` and lists it."""
    if not fetched_id_matches(actor_url, document) or not same_host(key_id, actor_url):
        return None
    try:
        keys = parse_actor_keys(document)
    except KeyFormatError:
        return None
    return next((key for key in keys if key.key_id == key_id), None)


def _claimed_owner(document: Mapping[str, object], key_id: str, key_url: str) -> str | None:
    """Who the document at the key URL says owns the key: a hint, checked afterwards."""
    if document.get("id") in (key_id, key_url):
        owner = document.get("owner", document.get("controller"))
        return owner if isinstance(owner, str) else None
    return None


class KeyCache:
    """Implements ``federation.httpsig.KeyResolver``.

    ``fetch_document(url)`` returns the JSON-LD document at ``url`` whose ``id`` equals
    the URL it was finally fetched from (``SafeFetcher.get_document`` does this), or
    raises ``FetchError``/``DocumentUnavailable``. ``refetch_document`` is used for
    ``refresh=True`` when the source keeps its own cache that must be bypassed then.
    """

    def __init__(
        self,
        fetch_document: DocumentSource,
        *,
        clock: Callable[[], datetime],
        ttl: timedelta = timedelta(hours=24),
        negative_ttl: timedelta = timedelta(minutes=5),
        max_entries: int = 10_000,
        refetch_document: DocumentSource | None = None,
        min_refresh_interval: timedelta = timedelta(seconds=30),
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._fetch = fetch_document
        self._refetch = refetch_document or fetch_document
        self._clock = clock
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._max_entries = max_entries
        self._min_refresh_interval = min_refresh_interval
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._in_flight: dict[str, asyncio.Future[KeyLookup]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def __call__(self, key_id: str, *, refresh: bool = False) -> KeyLookup:
        now = self._clock()
        entry = self._entries.get(key_id)
        if entry is not None and now < entry.expires_at:
            stay = (
                not refresh
                or entry.lookup.key is None  # unavailable keys are not asked for again early
                or now - entry.fetched_at < self._min_refresh_interval
            )
            if stay:
                self._entries.move_to_end(key_id)
                return entry.lookup
        return await self._shared_load(key_id, fresh=refresh)

    def forget(self, key_id: str) -> None:
        self._entries.pop(key_id, None)

    def put_actor(self, actor_doc: Mapping[str, object]) -> list[str]:
        """Seed the cache from an actor document the caller has authenticated
        (e.g. the object of a verified actor ``Update``); keys the actor no longer lists
        are dropped. Returns the key ids stored. KeyFormatError if it has no ``id``.
        """
        keys = parse_actor_keys(actor_doc)
        actor_id = str(actor_doc["id"])
        # Only key ids under the actor's own URL: a neighbour on the same host could
        # otherwise list its key under another actor's key id and take that id over.
        listed = [key for key in keys if is_under(key.key_id, actor_id)]
        listed_ids = {key.key_id for key in listed}
        stale = [
            key_id
            for key_id, entry in self._entries.items()
            if entry.lookup.key is not None
            and entry.lookup.key.owner == actor_id
            and key_id not in listed_ids
        ]
        for key_id in stale:
            del self._entries[key_id]
        now = self._clock()
        for key in listed:
            self._store(key.key_id, KeyLookup(key), now)
        return [key.key_id for key in listed]

    async def _shared_load(self, key_id: str, *, fresh: bool) -> KeyLookup:
        pending = self._in_flight.get(key_id)
        if pending is None:
            pending = asyncio.ensure_future(self._load(key_id, fresh=fresh))
            self._in_flight[key_id] = pending
            pending.add_done_callback(lambda done: self._settle(key_id, done))
        # shield: one waiter giving up (its request timed out) must not cancel the others
        return await asyncio.shield(pending)

    def _settle(self, key_id: str, done: asyncio.Future[KeyLookup]) -> None:
        if self._in_flight.get(key_id) is done:
            del self._in_flight[key_id]

    async def _load(self, key_id: str, *, fresh: bool) -> KeyLookup:
        lookup = await self._resolve(key_id, self._refetch if fresh else self._fetch)
        self._store(key_id, lookup, self._clock())
        return lookup

    def _store(self, key_id: str, lookup: KeyLookup, now: datetime) -> None:
        ttl = self._ttl if lookup.key is not None else self._negative_ttl
        self._entries[key_id] = _Entry(lookup, now, now + ttl)
        self._entries.move_to_end(key_id)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    async def _resolve(self, key_id: str, fetch: DocumentSource) -> KeyLookup:
        key_url = urldefrag(key_id).url
        if _authority(key_url) is None:
            return _UNKNOWN  # not an http(s) URL: nothing we would fetch
        try:
            document = await fetch(key_url)
        except _SOURCE_FAILURES:
            return _FETCH_FAILED
        found = _listed_key(document, key_id, key_url)
        if found is not None:
            return KeyLookup(found)
        owner = _claimed_owner(document, key_id, key_url)
        if owner is None or not same_host(key_id, owner):
            return _UNKNOWN
        owner_url = urldefrag(owner).url
        try:
            actor = await fetch(owner_url)
        except _SOURCE_FAILURES:
            return _FETCH_FAILED
        found = _listed_key(actor, key_id, owner_url)
        return KeyLookup(found) if found is not None else _UNKNOWN
