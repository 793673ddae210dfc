"""Reading received activities with the contexts real servers send.

Fedify, Mastodon and GoToSocial name contexts (identity/v1, did/v1, gotosocial.org/ns,
data-integrity/v1) that are now bundled, so their documents are read offline through
compaction; any other unknown context is still refused naming ``@context``, nothing is
fetched, and ``raw`` stays as received.
"""

from __future__ import annotations

import socket

import pytest

from federation.activities import ActivityError, parse_activity
from vocab.loader import bundled_context_urls

FEDIFY_CONTEXT = [
    "https://w3id.org/identity/v1",
    "https://www.w3.org/ns/activitystreams",
    "https://w3id.org/security/v1",
    "https://w3id.org/security/data-integrity/v1",
    "https://www.w3.org/ns/did/v1",
    "https://w3id.org/security/multikey/v1",
    "https://gotosocial.org/ns",
]

# What Mastodon 4 puts on a Create(Note): AS, security/v1 and an inline extension object.
MASTODON_CONTEXT = [
    "https://www.w3.org/ns/activitystreams",
    "https://w3id.org/security/v1",
    {
        "manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
        "toot": "http://joinmastodon.org/ns#",
        "featured": {"@id": "toot:featured", "@type": "@id"},
        "alsoKnownAs": {"@id": "as:alsoKnownAs", "@type": "@id"},
        "movedTo": {"@id": "as:movedTo", "@type": "@id"},
        "schema": "http://schema.org#",
        "PropertyValue": "schema:PropertyValue",
        "value": "schema:value",
        "discoverable": "toot:discoverable",
        "ostatus": "http://ostatus.org#",
        "atomUri": "ostatus:atomUri",
        "inReplyToAtomUri": "ostatus:inReplyToAtomUri",
        "conversation": "ostatus:conversation",
        "sensitive": "as:sensitive",
        "votersCount": "toot:votersCount",
        "blurhash": "toot:blurhash",
        "focalPoint": {"@container": "@list", "@id": "toot:focalPoint"},
        "Hashtag": "as:Hashtag",
        "Emoji": "toot:Emoji",
    },
]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a JSON-LD context was fetched over the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def fedify_follow() -> dict:
    return {
        "@context": FEDIFY_CONTEXT,
        "id": "https://peer.example/follows/1",
        "type": "Follow",
        "actor": "https://peer.example/users/peer",
        "object": "https://kommune.example/actor",
        "proof": {"@context": FEDIFY_CONTEXT, "type": "DataIntegrityProof",
                  "cryptosuite": "eddsa-jcs-2022", "proofValue": "z1"},
        "signature": {"@context": "https://w3id.org/identity/v1", "type": "RsaSignature2017",
                      "signatureValue": "AAAA"},
    }


def mastodon_create() -> dict:
    note = {
        "id": "https://social.example/users/anna/statuses/1",
        "type": "Note",
        "attributedTo": "https://social.example/users/anna",
        "content": "<p>Hallo</p>",
        "sensitive": False,
        "atomUri": "https://social.example/users/anna/statuses/1",
        "conversation": "tag:social.example,2026-11-22:objectId=1:objectType=Conversation",
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
        "tag": [{"type": "Hashtag", "name": "#kommune", "href": "https://social.example/tags/k"}],
    }
    return {
        "@context": MASTODON_CONTEXT,
        "id": "https://social.example/users/anna/statuses/1/activity",
        "type": "Create",
        "actor": "https://social.example/users/anna",
        "published": "2026-11-22T10:00:00Z",
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
        "cc": ["https://social.example/users/anna/followers"],
        "object": note,
        "signature": {"type": "RsaSignature2017",
                      "creator": "https://social.example/users/anna#main-key",
                      "created": "2026-11-22T10:00:00Z", "signatureValue": "AAAA"},
    }


def test_the_contexts_real_servers_send_are_bundled() -> None:
    assert set(FEDIFY_CONTEXT) <= set(bundled_context_urls())


def test_fedify_follow_is_read_offline_and_raw_kept(no_network: None) -> None:
    document = fedify_follow()
    activity = parse_activity(document)
    assert (activity.type.value, activity.actor) == ("Follow", "https://peer.example/users/peer")
    assert activity.object_id == "https://kommune.example/actor"
    assert activity.raw is document  # proofs are checked on what was received
    assert "signature" in activity.raw


def test_gotosocial_context_alone_with_activitystreams_is_read(no_network: None) -> None:
    document = {"@context": ["https://www.w3.org/ns/activitystreams",
                             "https://gotosocial.org/ns"],
                "id": "https://gts.example/users/b/likes/1", "type": "Like",
                "actor": "https://gts.example/users/b",
                "object": "https://kommune.example/practices/p1"}
    assert parse_activity(document).object_id == "https://kommune.example/practices/p1"


def test_mastodon_inline_context_parses(no_network: None) -> None:
    activity = parse_activity(mastodon_create())
    assert activity.type.value == "Create"
    assert activity.published is not None
    assert activity.object is not None
    assert activity.object_id == "https://social.example/users/anna/statuses/1"
    assert activity.object["content"] == "<p>Hallo</p>"
    assert activity.to == ("https://www.w3.org/ns/activitystreams#Public",)


@pytest.mark.parametrize("unknown", [
    "https://evil.example/context.jsonld",
    "http://joinmastodon.org/ns",  # named, not inline: not bundled, so refused
])
def test_other_unknown_contexts_are_still_refused(unknown: str, no_network: None) -> None:
    document = fedify_follow()
    document["@context"] = [*FEDIFY_CONTEXT, unknown]
    with pytest.raises(ActivityError) as refused:
        parse_activity(document)
    assert refused.value.field == "@context" and unknown in str(refused.value)


def test_unknown_context_inside_an_embedded_object_is_refused(no_network: None) -> None:
    document = mastodon_create()
    document["object"]["@context"] = "https://evil.example/ctx"
    with pytest.raises(ActivityError) as refused:
        parse_activity(document)
    assert refused.value.field == "@context" and "evil.example" in str(refused.value)


def test_identity_context_cannot_redefine_activity_terms_silently(no_network: None) -> None:
    # identity/v1 after AS would change what "actor" means if read as is; compaction keeps
    # the AS reading, so the actor is still the AS actor IRI
    document = fedify_follow()
    document["@context"] = ["https://www.w3.org/ns/activitystreams",
                            "https://w3id.org/identity/v1"]
    assert parse_activity(document).actor == "https://peer.example/users/peer"
