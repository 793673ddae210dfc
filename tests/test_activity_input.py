"""Reading received activities: the named contexts of Mastodon/Fedify are read without
fetching, any other unknown context is still refused, and ``raw`` stays as received."""

from __future__ import annotations

import pytest

from federation.activities import ActivityError
from node.activity_input import read_activity, readable

FEDIFY_CONTEXT = [
    "https://w3id.org/identity/v1",
    "https://www.w3.org/ns/activitystreams",
    "https://w3id.org/security/v1",
    "https://w3id.org/security/data-integrity/v1",
    "https://www.w3.org/ns/did/v1",
    "https://w3id.org/security/multikey/v1",
    "https://gotosocial.org/ns",
]


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


def test_fedify_follow_is_read_and_raw_kept() -> None:
    document = fedify_follow()
    activity = read_activity(document)
    assert (activity.type.value, activity.actor) == ("Follow", "https://peer.example/users/peer")
    assert activity.raw is document  # proofs are checked on what was received
    assert "signature" in activity.raw


def test_readable_view_orders_and_maps_contexts() -> None:
    view = readable(fedify_follow())
    assert "signature" not in view
    assert view["@context"] == [
        "https://www.w3.org/ns/activitystreams",
        "https://w3id.org/security/v1",
        "https://w3id.org/security/data-integrity/v2",
        "https://w3id.org/security/multikey/v1",
    ]
    assert view["proof"]["@context"] == view["@context"]


def test_other_unknown_contexts_are_still_refused() -> None:
    document = fedify_follow()
    document["@context"] = [*FEDIFY_CONTEXT, "https://evil.example/context.jsonld"]
    with pytest.raises(ActivityError) as refused:
        read_activity(document)
    assert refused.value.field == "@context" and "evil.example" in str(refused.value)


def test_plain_documents_pass_unchanged() -> None:
    document = {"@context": "https://www.w3.org/ns/activitystreams", "type": "Like",
                "id": "https://a.example/likes/1", "actor": "https://a.example/actor",
                "object": "https://b.example/notes/1"}
    assert readable(document) == document
