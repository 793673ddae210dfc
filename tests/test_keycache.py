"""Key cache: caching, rotation, negative caching, key documents and the ownership rules."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from federation.fetch import FetchError, FetchFailure
from federation.httpsig import (
    RequestParts,
    SignatureScheme,
    SignatureVerdict,
    sign_request,
    verify_request,
)
from federation.keycache import DocumentUnavailable, KeyCache, same_host
from federation.keys import (
    SigningKey,
    ed25519_to_multibase,
    generate_ed25519_key,
    public_key_pem,
)

ACTOR = "https://a.example/actor"
MAIN_KEY = f"{ACTOR}#main-key"
T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Source:
    """A document source serving a fixed table and counting what it was asked."""

    def __init__(self, documents: Mapping[str, Mapping[str, object]] | None = None) -> None:
        self.documents: dict[str, Mapping[str, object]] = dict(documents or {})
        self.asked: list[str] = []

    async def __call__(self, url: str) -> Mapping[str, object]:
        self.asked.append(url)
        if url not in self.documents:
            raise FetchError(FetchFailure.HTTP_ERROR, url, status=404, detail="not found")
        return self.documents[url]


def pem_key(key_id: str, owner: str, key: ed25519.Ed25519PrivateKey) -> dict[str, object]:
    return {"id": key_id, "owner": owner, "publicKeyPem": public_key_pem(key.public_key())}


def actor_doc(actor_id: str, *keys: tuple[str, ed25519.Ed25519PrivateKey]) -> dict[str, object]:
    return {
        "id": actor_id,
        "type": "Organization",
        "inbox": f"{actor_id}/inbox",
        "publicKey": [pem_key(key_id, actor_id, key) for key_id, key in keys],
    }


def same_public_key(found: object, key: ed25519.Ed25519PrivateKey) -> bool:
    return (
        found is not None
        and found.public_key.public_bytes_raw() == key.public_key().public_bytes_raw()
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_fragment_key_is_found_in_the_actor_and_cached(clock: Clock) -> None:
    key = generate_ed25519_key()
    source = Source({ACTOR: actor_doc(ACTOR, (MAIN_KEY, key))})
    cache = KeyCache(source, clock=clock, ttl=timedelta(hours=1))
    first = await cache(MAIN_KEY)
    assert same_public_key(first.key, key) and first.key.owner == ACTOR and first.verdict is None
    clock.advance(minutes=59)
    assert (await cache(MAIN_KEY)).key == first.key
    assert source.asked == [ACTOR]
    clock.advance(minutes=2)  # past the ttl
    await cache(MAIN_KEY)
    assert source.asked == [ACTOR, ACTOR]


async def test_refresh_refetches_exactly_once_and_picks_up_a_rotated_key(clock: Clock) -> None:
    old, new = generate_ed25519_key(), generate_ed25519_key()
    source = Source({ACTOR: actor_doc(ACTOR, (MAIN_KEY, old))})
    cache = KeyCache(source, clock=clock)
    assert same_public_key((await cache(MAIN_KEY)).key, old)
    source.documents[ACTOR] = actor_doc(ACTOR, (MAIN_KEY, new))
    clock.advance(hours=1)
    assert same_public_key((await cache(MAIN_KEY)).key, old)  # still cached
    assert same_public_key((await cache(MAIN_KEY, refresh=True)).key, new)
    assert same_public_key((await cache(MAIN_KEY)).key, new)
    assert source.asked == [ACTOR, ACTOR]


async def test_refresh_is_throttled_so_forged_signatures_cannot_force_fetches(clock: Clock) -> None:
    source = Source({ACTOR: actor_doc(ACTOR, (MAIN_KEY, generate_ed25519_key()))})
    cache = KeyCache(source, clock=clock, min_refresh_interval=timedelta(seconds=30))
    await cache(MAIN_KEY)
    for _ in range(10):
        await cache(MAIN_KEY, refresh=True)
    assert source.asked == [ACTOR]
    clock.advance(seconds=31)
    await cache(MAIN_KEY, refresh=True)
    await cache(MAIN_KEY, refresh=True)
    assert source.asked == [ACTOR, ACTOR]


async def test_verification_after_rotation_succeeds_with_one_refetch(clock: Clock) -> None:
    old, new = generate_ed25519_key(), generate_ed25519_key()
    source = Source({ACTOR: actor_doc(ACTOR, (MAIN_KEY, old))})
    cache = KeyCache(source, clock=clock)
    await cache(MAIN_KEY)
    source.documents[ACTOR] = actor_doc(ACTOR, (MAIN_KEY, new))
    clock.advance(hours=2)
    request = RequestParts("POST", "https://b.example/inbox", {"Host": "b.example"}, b"{}")
    signed = request.with_headers(
        sign_request(request, SigningKey(MAIN_KEY, new), SignatureScheme.RFC9421, now=clock.now)
    )
    result = await verify_request(signed, cache, now=clock.now)
    assert result.verdict is SignatureVerdict.OK and result.signer == ACTOR
    assert source.asked == [ACTOR, ACTOR]


async def test_unavailable_keys_are_remembered_for_the_negative_ttl(clock: Clock) -> None:
    source = Source()
    cache = KeyCache(source, clock=clock, negative_ttl=timedelta(minutes=5))
    assert (await cache(MAIN_KEY)).verdict is SignatureVerdict.KEY_FETCH_FAILED
    clock.advance(minutes=4)
    again = await cache(MAIN_KEY, refresh=True)
    assert again.key is None and again.verdict is SignatureVerdict.KEY_FETCH_FAILED
    assert source.asked == [ACTOR]
    key = generate_ed25519_key()
    source.documents[ACTOR] = actor_doc(ACTOR, (MAIN_KEY, key))
    clock.advance(minutes=2)
    assert same_public_key((await cache(MAIN_KEY)).key, key)
    assert source.asked == [ACTOR, ACTOR]


async def test_document_unavailable_from_the_source_is_a_fetch_failure(clock: Clock) -> None:
    async def failing(url: str) -> Mapping[str, object]:
        raise DocumentUnavailable(url)

    lookup = await KeyCache(failing, clock=clock)(MAIN_KEY)
    assert lookup.key is None and lookup.verdict is SignatureVerdict.KEY_FETCH_FAILED


async def test_key_document_with_owner_is_resolved_through_the_owner(clock: Clock) -> None:
    key = generate_ed25519_key()
    key_id = "https://a.example/keys/1"
    source = Source({key_id: pem_key(key_id, ACTOR, key), ACTOR: actor_doc(ACTOR, (key_id, key))})
    lookup = await KeyCache(source, clock=clock)(key_id)
    assert same_public_key(lookup.key, key) and lookup.key.owner == ACTOR
    assert source.asked == [key_id, ACTOR]


async def test_multikey_document_with_controller_is_resolved_through_the_controller(
    clock: Clock,
) -> None:
    key = generate_ed25519_key()
    key_id = "https://a.example/keys/ed#k"
    multikey = {
        "id": key_id,
        "type": "Multikey",
        "controller": ACTOR,
        "publicKeyMultibase": ed25519_to_multibase(key.public_key()),
    }
    actor = {"id": ACTOR, "type": "Organization", "assertionMethod": [multikey]}
    source = Source({"https://a.example/keys/ed": multikey, ACTOR: actor})
    lookup = await KeyCache(source, clock=clock)(key_id)
    assert same_public_key(lookup.key, key) and lookup.key.owner == ACTOR


async def test_key_whose_owner_does_not_list_it_is_unknown(clock: Clock) -> None:
    key, other = generate_ed25519_key(), generate_ed25519_key()
    key_id = "https://a.example/keys/1"
    owner_lists_another = actor_doc(ACTOR, ("https://a.example/keys/2", other))
    source = Source({key_id: pem_key(key_id, ACTOR, key), ACTOR: owner_lists_another})
    lookup = await KeyCache(source, clock=clock)(key_id)
    assert lookup.key is None and lookup.verdict is SignatureVerdict.UNKNOWN_KEY


async def test_key_hosted_elsewhere_than_its_owner_is_unknown_and_the_owner_is_not_fetched(
    clock: Clock,
) -> None:
    key = generate_ed25519_key()
    key_id = "https://evil.example/keys/1"
    # Even an owner that lists the foreign key cannot make it speak for the owner.
    source = Source({key_id: pem_key(key_id, ACTOR, key), ACTOR: actor_doc(ACTOR, (key_id, key))})
    lookup = await KeyCache(source, clock=clock)(key_id)
    assert lookup.key is None and lookup.verdict is SignatureVerdict.UNKNOWN_KEY
    assert source.asked == [key_id]


async def test_actor_that_does_not_list_the_fragment_key_is_unknown(clock: Clock) -> None:
    source = Source({ACTOR: actor_doc(ACTOR, (f"{ACTOR}#other-key", generate_ed25519_key()))})
    lookup = await KeyCache(source, clock=clock)(MAIN_KEY)
    assert lookup.verdict is SignatureVerdict.UNKNOWN_KEY


async def test_document_whose_id_is_not_the_url_asked_is_not_trusted(clock: Clock) -> None:
    # A careless source returns another actor's document for our URL.
    key = generate_ed25519_key()
    impostor = actor_doc("https://a.example/other", (MAIN_KEY, key))
    source = Source({ACTOR: impostor})
    lookup = await KeyCache(source, clock=clock)(MAIN_KEY)
    assert lookup.key is None and lookup.verdict is SignatureVerdict.UNKNOWN_KEY


@pytest.mark.parametrize("key_id", ["acct:alice@a.example", "urn:uuid:1", "", "file:///etc/passwd"])
async def test_key_ids_that_are_not_http_urls_are_not_fetched(clock: Clock, key_id: str) -> None:
    source = Source()
    lookup = await KeyCache(source, clock=clock)(key_id)
    assert lookup.verdict is SignatureVerdict.UNKNOWN_KEY and source.asked == []


async def test_concurrent_lookups_share_one_fetch(clock: Clock) -> None:
    release = asyncio.Event()
    key = generate_ed25519_key()
    asked: list[str] = []

    async def slow_source(url: str) -> Mapping[str, object]:
        asked.append(url)
        await release.wait()
        return actor_doc(ACTOR, (MAIN_KEY, key))

    cache = KeyCache(slow_source, clock=clock)
    lookups = [asyncio.create_task(cache(MAIN_KEY)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*lookups)
    assert asked == [ACTOR]
    assert all(same_public_key(result.key, key) for result in results)


async def test_oldest_entries_are_evicted_beyond_max_entries(clock: Clock) -> None:
    actors = [f"https://a.example/actors/{n}" for n in range(3)]
    source = Source(
        {actor: actor_doc(actor, (f"{actor}#k", generate_ed25519_key())) for actor in actors}
    )
    cache = KeyCache(source, clock=clock, max_entries=2)
    for actor in actors:
        await cache(f"{actor}#k")
    assert len(cache) == 2
    await cache(f"{actors[2]}#k")
    await cache(f"{actors[0]}#k")  # evicted earlier: fetched again
    assert source.asked == [*actors, actors[0]]


async def test_put_actor_seeds_the_cache_and_drops_keys_no_longer_listed(clock: Clock) -> None:
    old, new = generate_ed25519_key(), generate_ed25519_key()
    source = Source()
    cache = KeyCache(source, clock=clock)
    assert cache.put_actor(actor_doc(ACTOR, (MAIN_KEY, old))) == [MAIN_KEY]
    assert same_public_key((await cache(MAIN_KEY)).key, old)
    new_key_id = f"{ACTOR}#key-2"
    cache.put_actor(actor_doc(ACTOR, (new_key_id, new)))
    assert same_public_key((await cache(new_key_id)).key, new)
    assert source.asked == []
    assert (await cache(MAIN_KEY)).key is None  # dropped, so it was asked for again
    assert source.asked == [ACTOR]


async def test_put_actor_ignores_keys_on_another_host(clock: Clock) -> None:
    cache = KeyCache(Source(), clock=clock)
    document = actor_doc(ACTOR, ("https://evil.example/k", generate_ed25519_key()))
    assert cache.put_actor(document) == []


async def test_forget_makes_the_next_lookup_fetch(clock: Clock) -> None:
    source = Source({ACTOR: actor_doc(ACTOR, (MAIN_KEY, generate_ed25519_key()))})
    cache = KeyCache(source, clock=clock)
    await cache(MAIN_KEY)
    cache.forget(MAIN_KEY)
    await cache(MAIN_KEY)
    assert source.asked == [ACTOR, ACTOR]


async def test_refresh_uses_the_refetch_source(clock: Clock) -> None:
    key = generate_ed25519_key()
    stale, fresh = Source({ACTOR: actor_doc(ACTOR, (MAIN_KEY, key))}), Source()
    fresh.documents[ACTOR] = actor_doc(ACTOR, (MAIN_KEY, key))
    cache = KeyCache(stale, clock=clock, refetch_document=fresh)
    await cache(MAIN_KEY)
    clock.advance(minutes=5)
    await cache(MAIN_KEY, refresh=True)
    assert stale.asked == [ACTOR] and fresh.asked == [ACTOR]


def test_same_host_compares_host_and_port() -> None:
    assert same_host("https://A.example/k", "https://a.example/actor")
    assert not same_host("https://a.example:8443/k", "https://a.example/actor")
    assert not same_host("https://a.example.evil/k", "https://a.example/actor")
    assert not same_host("not a url", "https://a.example/actor")


async def test_a_waiter_giving_up_does_not_cancel_the_shared_fetch(clock: Clock) -> None:
    release = asyncio.Event()
    key = generate_ed25519_key()

    async def slow_source(url: str) -> Mapping[str, object]:
        await release.wait()
        return actor_doc(ACTOR, (MAIN_KEY, key))

    cache = KeyCache(slow_source, clock=clock)
    impatient = asyncio.create_task(cache(MAIN_KEY))
    patient = asyncio.create_task(cache(MAIN_KEY))
    await asyncio.sleep(0)
    impatient.cancel()  # e.g. its request hit a time limit
    release.set()
    assert same_public_key((await patient).key, key)
    assert impatient.cancelled()
    assert same_public_key((await cache(MAIN_KEY)).key, key)
