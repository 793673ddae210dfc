"""Attacks on the inbox's door: who signed, when, and what exactly was signed.

Every case runs against a running node whose key fetches really go to the remote
actors' server (see ``tests.attack_support``) and asserts the refusal AND that the
node's tables did not change.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from federation.httpsig import SignatureScheme
from federation.keys import SigningKey, public_key_pem
from node.storage.models import Follower, InboxItem, InboxState
from tests import attack_support
from tests.attack_support import AP_JSON, AttackBed, BedFactory

# the bed's fixtures, shared with the other attack modules
actor_key_pool = attack_support.actor_key_pool
node_template = attack_support.node_template
make_bed = attack_support.make_bed
bed = attack_support.bed

BOTH_SCHEMES = pytest.mark.parametrize("scheme", [SignatureScheme.CAVAGE,
                                                  SignatureScheme.RFC9421])


async def assert_refused(bed: AttackBed, answer, verdict: str | None = None) -> None:  # noqa: ANN001
    assert answer.status == 401, answer.text
    if verdict is not None:
        assert verdict in answer.problem["detail"], answer.problem
    assert await bed.rows(InboxItem) == []


async def test_unsigned_post_is_refused_without_any_fetch(bed: AttackBed) -> None:
    answer = await bed.post(bed.alice.activity("Follow", bed.config.actor_url), None)
    await assert_refused(bed, answer, "not signed")
    assert bed.net.started == [] and await bed.rows(Follower) == []


async def test_signature_by_a_key_of_another_actor(bed: AttackBed) -> None:
    """Mallory signs with her own (valid) key an activity that claims to be Alice's."""
    before = await bed.snapshot()
    answer = await bed.post(bed.alice.activity("Follow", bed.config.actor_url), bed.mallory.rsa)
    await assert_refused(bed, answer, "actor_mismatch")
    after = await bed.snapshot()
    assert after.followers == before.followers == ()


async def test_signature_made_with_another_key_under_the_actors_key_id(bed: AttackBed) -> None:
    """Mallory's private key, but the header names Alice's key id: the bytes do not verify."""
    forged = SigningKey(bed.alice.rsa.key_id, bed.mallory.keys.rsa)
    answer = await bed.post(bed.alice.activity("Follow", bed.config.actor_url), forged)
    await assert_refused(bed, answer, "bad_signature")
    assert await bed.rows(Follower) == []


async def test_key_id_on_another_host_is_refused_before_fetching_it(bed: AttackBed) -> None:
    elsewhere = SigningKey(bed.remote.url("/users/alice#main-key", host="other.test"),
                           bed.alice.keys.rsa)
    answer = await bed.post(bed.alice.activity("Follow", bed.config.actor_url), elsewhere)
    await assert_refused(bed, answer, "actor_mismatch")
    assert "other.test" not in bed.net.dns.asked and bed.net.started == []


async def test_replayed_request_has_no_second_effect(bed: AttackBed) -> None:
    """A captured Create, sent again byte for byte after the object was deleted."""
    note = bed.alice.note()
    create = bed.alice.activity("Create", note)
    body = json.dumps(create).encode()
    captured = bed.signed_headers(body, bed.alice.rsa)
    assert (await bed.post_raw(body, captured)).status == 202
    assert await bed.processed(create["id"]) == InboxState.DONE.value
    assert await bed.deliver(bed.alice.activity("Delete", note["id"]), bed.alice) == "done"
    before = await bed.snapshot()

    bed.clock.advance(60)
    replay = await bed.post_raw(body, captured)
    assert replay.status == 202  # idempotent per activity id: the sender may retry safely
    assert await bed.snapshot() == before
    assert (await bed.remote_object(note["id"])).deleted


async def test_same_activity_signed_again_later_has_no_second_effect(bed: AttackBed) -> None:
    """The same Follow, freshly signed an hour after it was undone, does not follow again."""
    follow = bed.alice.activity("Follow", bed.config.actor_url)
    assert await bed.deliver(follow, bed.alice) == "done"
    assert await bed.deliver(bed.alice.activity("Undo", follow), bed.alice) == "done"
    assert await bed.rows(Follower) == []
    before = await bed.snapshot()

    bed.clock.advance(3600)
    assert (await bed.post(follow, bed.alice.rsa)).status == 202
    assert await bed.snapshot() == before
    assert await bed.rows(Follower) == []


@BOTH_SCHEMES
async def test_stale_signature_is_refused(bed: AttackBed, scheme: SignatureScheme) -> None:
    stale = bed.clock() - timedelta(hours=13)
    answer = await bed.post(bed.alice.activity("Follow", bed.config.actor_url), bed.alice.rsa,
                            now=stale, scheme=scheme)
    await assert_refused(bed, answer, "too_old")


@BOTH_SCHEMES
async def test_signature_from_the_future_is_refused(bed: AttackBed,
                                                    scheme: SignatureScheme) -> None:
    future = bed.clock() + timedelta(hours=2)
    answer = await bed.post(bed.alice.activity("Follow", bed.config.actor_url), bed.alice.rsa,
                            now=future, scheme=scheme)
    await assert_refused(bed, answer, "in_future")


@BOTH_SCHEMES
async def test_body_swapped_after_signing_is_refused(bed: AttackBed,
                                                     scheme: SignatureScheme) -> None:
    signed_body = json.dumps(bed.alice.activity("Follow", bed.config.actor_url)).encode()
    headers = bed.signed_headers(signed_body, bed.alice.rsa, scheme=scheme)
    swapped = json.dumps(bed.alice.activity("Create", bed.alice.note())).encode()
    answer = await bed.post_raw(swapped, headers)
    await assert_refused(bed, answer, "digest_mismatch")
    assert await bed.rows(Follower) == []


async def test_digest_header_replaced_to_match_a_swapped_body(bed: AttackBed) -> None:
    """The attacker recomputes Digest for his body; the signature covers the old one."""
    from federation.digest import make_digest

    signed_body = json.dumps(bed.alice.activity("Follow", bed.config.actor_url)).encode()
    headers = bed.signed_headers(signed_body, bed.alice.rsa)
    swapped = json.dumps(bed.alice.activity("Create", bed.alice.note())).encode()
    headers["Digest"] = make_digest(swapped)
    answer = await bed.post_raw(swapped, headers)
    await assert_refused(bed, answer, "bad_signature")


async def test_signature_that_does_not_cover_the_body_is_refused(bed: AttackBed) -> None:
    """Signed as if the request had no body (no Digest), then a body is sent."""
    headers = bed.signed_headers(b"", bed.alice.rsa)
    body = json.dumps(bed.alice.activity("Follow", bed.config.actor_url)).encode()
    answer = await bed.post_raw(body, headers)
    await assert_refused(bed, answer, "missing_component")


async def test_garbage_signature_header_is_refused(bed: AttackBed) -> None:
    body = json.dumps(bed.alice.activity("Follow", bed.config.actor_url)).encode()
    headers = bed.signed_headers(body, bed.alice.rsa)
    headers["Signature"] = 'keyId="' + bed.alice.rsa.key_id + '",signature="%%%"'
    answer = await bed.post_raw(body, headers)
    await assert_refused(bed, answer)
    assert await bed.rows(Follower) == []


async def test_key_document_with_a_non_activitypub_media_type_is_not_used(
    bed: AttackBed,
) -> None:
    """CVE-2024-25623 class: an uploaded file served as text/html must not become a key."""
    eve = bed.remote.add_actor("eve", bed.mallory.keys)
    bed.remote.serve("/uploads/eve", json.dumps(eve.document()).encode(),
                     content_type="text/html")
    uploaded = SigningKey(bed.remote.url("/uploads/eve#main-key"), bed.mallory.keys.rsa)
    activity = bed.alice.activity("Follow", bed.config.actor_url)
    activity["actor"] = bed.remote.url("/uploads/eve")
    activity["id"] = bed.remote.url("/activities/eve-1")
    answer = await bed.post(activity, uploaded)
    await assert_refused(bed, answer, "key_fetch_failed")
    assert bed.remote.paths() == ["/uploads/eve"]  # fetched once, then refused


async def test_key_document_whose_id_is_not_its_url_cannot_speak_for_that_id(
    bed: AttackBed,
) -> None:
    """CVE-2024-23832 class: a file at /uploads/x claims to be Alice, with Mallory's key."""
    fake_alice = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": bed.alice.id, "type": "Organization", "inbox": f"{bed.alice.id}/inbox",
        "publicKey": {"id": bed.remote.url("/uploads/x#main-key"), "owner": bed.alice.id,
                      "publicKeyPem": public_key_pem(bed.mallory.keys.rsa.public_key())},
    }
    bed.remote.serve("/uploads/x", fake_alice, content_type=AP_JSON)
    key = SigningKey(bed.remote.url("/uploads/x#main-key"), bed.mallory.keys.rsa)
    answer = await bed.post(bed.alice.activity("Follow", bed.config.actor_url), key)
    await assert_refused(bed, answer)
    assert await bed.rows(Follower) == []


async def test_key_document_naming_another_owner_needs_that_owner_to_list_it(
    bed: AttackBed,
) -> None:
    """A separate key document says "owner: Alice"; Alice's actor does not list the key."""
    key_url = bed.remote.url("/keys/planted")
    bed.remote.serve("/keys/planted", {
        "@context": "https://w3id.org/security/v1", "id": key_url, "owner": bed.alice.id,
        "publicKeyPem": public_key_pem(bed.mallory.keys.rsa.public_key()),
    })
    answer = await bed.post(bed.alice.activity("Follow", bed.config.actor_url),
                            SigningKey(key_url, bed.mallory.keys.rsa))
    await assert_refused(bed, answer, "unknown_key")
    assert "/users/alice" in bed.remote.paths()  # the claimed owner was asked, and said no


async def test_a_flood_naming_a_dead_key_costs_one_fetch(bed: AttackBed) -> None:
    """Forged signatures must not turn the node into a fetch amplifier."""
    ghost = SigningKey(bed.remote.url("/users/ghost#main-key"), bed.mallory.keys.rsa)
    for _ in range(15):
        activity = bed.alice.activity("Follow", bed.config.actor_url)
        activity["actor"] = bed.remote.url("/users/ghost")
        answer = await bed.post(activity, ghost)
        assert answer.status == 401
    assert bed.remote.paths().count("/users/ghost") == 1
    assert await bed.rows(InboxItem) == []


@pytest.mark.parametrize(("scheme", "header"), [
    (SignatureScheme.CAVAGE, "Signature"), (SignatureScheme.CAVAGE, "Digest"),
    (SignatureScheme.CAVAGE, "Date"), (SignatureScheme.CAVAGE, "Host"),
    (SignatureScheme.RFC9421, "Content-Digest"), (SignatureScheme.RFC9421, "Signature-Input"),
])
async def test_undecodable_bytes_in_a_signed_header(bed: AttackBed, scheme: SignatureScheme,
                                                    header: str) -> None:
    """Was a 500: bytes that are not UTF-8 reached the signature base (fixed)."""
    body = json.dumps(bed.alice.activity("Follow", bed.config.actor_url)).encode()
    headers: dict[str, bytes | str] = dict(bed.signed_headers(body, bed.alice.rsa, scheme=scheme))
    value = headers[header].encode()
    headers[header] = value[:12] + b"\xff\xfe" + value[12:]
    status = await bed.post_bytes("/actor/inbox", headers, body)
    if header == "Host":
        # The received Host is not trusted at all: the node's own host is what must have
        # been signed, and it was, so the genuine activity may be taken.
        assert status in (202, 400, 401)
        return
    assert status in (400, 401)
    assert await bed.rows(InboxItem) == [] and await bed.rows(Follower) == []


async def test_a_key_document_larger_than_the_limit_is_not_read(bed: AttackBed) -> None:
    huge = bed.alice.document()
    huge["padding"] = "x" * (2 * 1024 * 1024)
    bed.remote.serve("/uploads/huge", {**huge, "id": bed.remote.url("/uploads/huge")})
    activity = bed.alice.activity("Follow", bed.config.actor_url)
    activity.update(actor=bed.remote.url("/uploads/huge"), id=bed.remote.url("/activities/h"))
    answer = await bed.post(activity, SigningKey(bed.remote.url("/uploads/huge#main-key"),
                                                 bed.alice.keys.rsa))
    await assert_refused(bed, answer, "key_fetch_failed")


@BOTH_SCHEMES
async def test_request_signed_for_another_node_is_not_accepted_here(
    bed: AttackBed, scheme: SignatureScheme
) -> None:
    """A request Alice signed for Halle's inbox, captured and replayed to this node: the
    signature binds the host it was meant for, so a note addressed only to Halle cannot be
    made to appear here."""
    from federation.httpsig import RequestParts, sign_request

    halle_inbox = "https://halle.example/actor/inbox"
    note = bed.alice.note(to=["https://halle.example/actor"],
                          inReplyTo=f"{bed.config.base_url}/practices/e-akte-bauamt")
    body = json.dumps(bed.alice.activity("Create", note, to=["https://halle.example/actor"]))
    headers = {"Content-Type": AP_JSON}
    headers.update(sign_request(RequestParts("POST", halle_inbox, headers, body.encode()),
                                bed.alice.rsa, scheme, now=bed.clock()))
    answer = await bed.post_raw(body.encode(), headers)
    await assert_refused(bed, answer)
    assert await bed.remote_object(note["id"]) is None


@pytest.mark.parametrize("covered", [
    ("(request-target)", "host", "digest"),  # no date: could be replayed for ever
    ("host", "date", "digest"),  # no target: could be replayed to any path
    ("(request-target)", "date", "digest"),  # no host: could be replayed to any server
])
async def test_signature_that_leaves_out_a_required_component(bed: AttackBed,
                                                              covered: tuple[str, ...]) -> None:
    from federation import httpsig_cavage
    from federation.digest import make_digest
    from federation.httpsig import RequestParts
    from federation.httpsig_common import http_date

    body = json.dumps(bed.alice.activity("Follow", bed.config.actor_url)).encode()
    headers = {"Content-Type": AP_JSON, "Host": bed.config.domain,
               "Date": http_date(bed.clock()), "Digest": make_digest(body)}
    parts = RequestParts("POST", bed.config.inbox_url, headers, body)
    headers["Signature"] = httpsig_cavage.sign(parts, bed.alice.rsa, list(covered))
    answer = await bed.post_raw(body, headers)
    await assert_refused(bed, answer, "missing_component")


async def test_a_flood_from_one_host_is_cut_off_before_any_signature_work(
    make_bed: BedFactory,
) -> None:
    from node.config import InboxTuning

    bed = await make_bed(inbox=InboxTuning(requests_per_host_per_minute=5,
                                           poll_interval_seconds=0.05))
    statuses = []
    for n in range(12):
        key = SigningKey(bed.remote.url(f"/users/ghost{n}#main-key"), bed.mallory.keys.rsa)
        activity = bed.alice.activity("Follow", bed.config.actor_url)
        activity["actor"] = bed.remote.url(f"/users/ghost{n}")
        statuses.append((await bed.post(activity, key)).status)
    assert statuses == [401] * 5 + [429] * 7
    assert len(bed.remote.hits) == 5  # no key was looked up for the refused seven
    assert await bed.rows(InboxItem) == []


async def test_an_actor_update_cannot_plant_a_key_under_a_neighbours_key_id(
    bed: AttackBed,
) -> None:
    """Mallory (same server as Alice) publishes her own key under the id of Alice's key
    and announces it with an Update of herself: the cache must not give Alice's key id
    to Mallory, or Alice would be locked out for a day (and Mallory sign as "Alice's key")."""
    assert await bed.deliver(bed.alice.activity("Follow", bed.config.actor_url),
                             bed.alice) == "done"  # Alice's key is cached
    planted = bed.mallory.document()
    planted["publicKey"] = [planted["publicKey"], {**planted["publicKey"],
                                                   "id": bed.alice.rsa.key_id}]
    bed.remote.actors.pop(bed.mallory.id)
    bed.remote.serve("/users/mallory", planted)
    await bed.deliver(bed.mallory.activity("Update", planted), bed.mallory)
    bed.clock.advance(60)
    like = bed.alice.activity("Like", f"{bed.config.base_url}/practices/x")
    answer = await bed.post(like, bed.alice.rsa)
    assert answer.status == 202, answer.text  # Alice is still Alice
    impostor = SigningKey(bed.alice.rsa.key_id, bed.mallory.keys.rsa)
    answer = await bed.post(bed.mallory.activity("Like", f"{bed.config.base_url}/x"), impostor)
    assert answer.status == 401
