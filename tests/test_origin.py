"""Origin rules: who may speak for an object, relayed objects, fetched ids (CVE-2024-23832)."""

from __future__ import annotations

import pytest

from federation.origin import (
    OriginError,
    OriginVerdict,
    RelayTrust,
    fetched_id_matches,
    may_act_on,
    origin,
    relayed_object_trust,
    same_origin,
)
from federation.proofs import ProofResult, ProofVerdict

ALICE = "https://a.example/users/alice"
MALLORY = "https://evil.example/users/mallory"
NOTE = "https://a.example/notes/1"


# --- origin() ---


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://a.example/x", ("https", "a.example", 443)),
        ("HTTPS://A.EXAMPLE/x", ("https", "a.example", 443)),
        ("https://a.example:443/x", ("https", "a.example", 443)),
        ("http://a.example/x", ("http", "a.example", 80)),
        ("http://a.example:8080", ("http", "a.example", 8080)),
        ("https://a.example./x", ("https", "a.example", 443)),
        ("https://Bücher.example/", ("https", "xn--bcher-kva.example", 443)),
        ("https://xn--bcher-kva.example/", ("https", "xn--bcher-kva.example", 443)),
        ("https://[0:0::1]:8443/", ("https", "::1", 8443)),
        ("http://Node_A:8000/", ("http", "node_a", 8000)),  # compose service names
        ("https://ｇｏｏｄ.example/", ("https", "good.example", 443)),  # UTS 46 width mapping
    ],
)
def test_origin_normalises_scheme_host_and_port(url, expected):
    assert origin(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "https://a.example@b.example/",  # userinfo: browsers go to b, humans read a
        "https://a.example:pw@b.example/",
        "https://a.example\\@b.example/",  # WHATWG treats "\" as "/" -> a.example
        "https://a.example /x",
        "https://a.example/\nx",
        "ftp://a.example/",
        "javascript:alert(1)",
        "//a.example/x",
        "https:///x",
        "https://a.example:99999/",
        "https://a%2eexample/",
        "https://./",
        "https://a..example/",
        "https://a!b.example/",
        "",
    ],
)
def test_origin_refuses_ambiguous_urls(url):
    with pytest.raises(OriginError):
        origin(url)


def test_same_origin():
    assert same_origin("https://a.example/x", "https://A.example:443/y?z")
    assert same_origin("https://a.example./x", "https://a.example/y")
    assert not same_origin("https://a.example/", "http://a.example/")  # scheme
    assert not same_origin("https://a.example/", "https://a.example:8443/")  # port
    assert not same_origin("http://a.example/", "http://a.example:443/")
    assert not same_origin("https://a.example/", "https://sub.a.example/")
    assert not same_origin("https://a.example/", "https://a.example.evil.example/")
    assert not same_origin("https://a.example@evil.example/", "https://a.example/")
    assert not same_origin("https://a.example@evil.example/", "https://evil.example/")
    assert not same_origin("not a url", "not a url")


# --- may_act_on (FEP-fe34) ---


@pytest.mark.parametrize("activity", ["Create", "Update", "Delete"])
def test_object_on_another_origin_than_its_actor_is_refused(activity):
    # CVE-2024-23832 class: Mallory creates/updates/deletes an object claiming a.example
    assert may_act_on(MALLORY, activity, NOTE) is OriginVerdict.FOREIGN_OBJECT
    assert may_act_on(ALICE, activity, NOTE) is OriginVerdict.ALLOWED


@pytest.mark.parametrize("activity", ["Create", "Update", "Delete"])
def test_port_and_scheme_make_a_different_origin(activity):
    assert may_act_on(ALICE, activity, "https://a.example:8443/notes/1") is (
        OriginVerdict.FOREIGN_OBJECT
    )
    assert may_act_on(ALICE, activity, "http://a.example/notes/1") is OriginVerdict.FOREIGN_OBJECT


@pytest.mark.parametrize("activity", ["Update", "Delete"])
def test_update_or_delete_of_someone_elses_object_is_refused(activity):
    bob = "https://a.example/users/bob"  # same server, different actor
    verdict = may_act_on(bob, activity, NOTE, object_author=ALICE)
    assert verdict is OriginVerdict.ACTOR_MISMATCH
    assert may_act_on(ALICE, activity, NOTE, object_author=ALICE) is OriginVerdict.ALLOWED


def test_undo_only_of_own_activities():
    follow = "https://a.example/activities/follow-1"
    assert may_act_on(ALICE, "Undo", follow, object_author=ALICE) is OriginVerdict.ALLOWED
    bob = "https://a.example/users/bob"
    assert may_act_on(bob, "Undo", follow, object_author=ALICE) is OriginVerdict.ACTOR_MISMATCH
    assert may_act_on(MALLORY, "Undo", follow) is OriginVerdict.FOREIGN_OBJECT


@pytest.mark.parametrize("activity", ["Follow", "Like", "Announce", "Accept", "Reject"])
def test_activities_about_foreign_objects_are_allowed(activity):
    assert may_act_on(MALLORY, activity, NOTE) is OriginVerdict.ALLOWED


def test_origin_tricks_do_not_pass_may_act_on():
    assert may_act_on(MALLORY, "Create", "https://a.example@evil.example/notes/1") is (
        OriginVerdict.INVALID_URL
    )
    assert may_act_on("https://A.EXAMPLE./users/alice", "Update", NOTE) is OriginVerdict.ALLOWED
    assert may_act_on(ALICE, "Create", "https://a.example.evil.example/n") is (
        OriginVerdict.FOREIGN_OBJECT
    )


def test_unknown_activity_type_has_no_rule():
    assert may_act_on(ALICE, "Move", NOTE) is OriginVerdict.UNSUPPORTED_TYPE


# --- relayed objects ---

NOTE_DOC = {"id": NOTE, "type": "Note", "attributedTo": ALICE, "content": "hi"}
HUB = "https://hub.example/topics/e-akte"


def proof_result(verdict: ProofVerdict, owner: str | None = None) -> ProofResult:
    return ProofResult(verdict, f"{ALICE}#ed25519-key", "test", owner=owner)


def test_relayed_object_with_valid_author_proof_is_trusted():
    proof = proof_result(ProofVerdict.OK, owner=ALICE)
    assert relayed_object_trust(HUB, NOTE_DOC, proof) is RelayTrust.TRUSTED_BY_PROOF


def test_relayed_object_without_proof_must_be_fetched():
    assert relayed_object_trust(HUB, NOTE_DOC, None) is RelayTrust.MUST_FETCH_FROM_ORIGIN
    no_proof = proof_result(ProofVerdict.NO_PROOF)
    assert relayed_object_trust(HUB, NOTE_DOC, no_proof) is RelayTrust.MUST_FETCH_FROM_ORIGIN
    unsupported = proof_result(ProofVerdict.UNSUPPORTED_CRYPTOSUITE)
    assert relayed_object_trust(HUB, NOTE_DOC, unsupported) is RelayTrust.MUST_FETCH_FROM_ORIGIN
    assert relayed_object_trust(HUB, NOTE, None) is RelayTrust.MUST_FETCH_FROM_ORIGIN


@pytest.mark.parametrize(
    "verdict", [ProofVerdict.BAD_PROOF, ProofVerdict.AUTHOR_MISMATCH, ProofVerdict.MALFORMED]
)
def test_relayed_object_with_forged_proof_is_untrusted(verdict):
    assert relayed_object_trust(HUB, NOTE_DOC, proof_result(verdict)) is RelayTrust.UNTRUSTED


def test_valid_proof_by_someone_else_does_not_make_it_trusted():
    # Mallory signs a copy of Alice's note with her own (valid) key
    proof = proof_result(ProofVerdict.OK, owner=MALLORY)
    assert relayed_object_trust(HUB, NOTE_DOC, proof) is RelayTrust.MUST_FETCH_FROM_ORIGIN


def test_valid_proof_by_an_author_on_another_origin_is_not_enough():
    foreign_claim = {**NOTE_DOC, "attributedTo": MALLORY}  # Mallory claims a.example's id
    proof = proof_result(ProofVerdict.OK, owner=MALLORY)
    assert relayed_object_trust(HUB, foreign_claim, proof) is RelayTrust.MUST_FETCH_FROM_ORIGIN


def test_relayer_on_the_objects_origin_is_trusted_by_origin():
    relayer = "https://a.example/users/bob"
    assert relayed_object_trust(relayer, NOTE_DOC, None) is RelayTrust.TRUSTED_BY_ORIGIN
    assert relayed_object_trust(MALLORY, NOTE_DOC, None) is RelayTrust.MUST_FETCH_FROM_ORIGIN
    spoof = {**NOTE_DOC, "attributedTo": MALLORY}
    assert relayed_object_trust(relayer, spoof, None) is RelayTrust.MUST_FETCH_FROM_ORIGIN


def test_relayed_object_with_unusable_id_is_untrusted():
    assert relayed_object_trust(HUB, {"type": "Note"}, None) is RelayTrust.UNTRUSTED
    bad = {**NOTE_DOC, "id": "https://hub.example@a.example/notes/1"}
    assert relayed_object_trust(HUB, bad, None) is RelayTrust.UNTRUSTED


# --- fetched ids (CVE-2024-23832) ---


@pytest.mark.parametrize(
    ("final_url", "document_id"),
    [
        (ALICE, ALICE),
        ("HTTPS://A.example/users/alice", ALICE),
        ("https://a.example:443/users/alice", ALICE),
        ("https://a.example/users/alice#main-key", ALICE),  # fragment is never sent
        ("https://a.example", "https://a.example/"),
    ],
)
def test_fetched_id_matching(final_url, document_id):
    assert fetched_id_matches(final_url, {"id": document_id})


@pytest.mark.parametrize(
    ("final_url", "document_id"),
    [
        ("https://evil.example/users/alice", ALICE),  # the spoof itself
        ("https://a.example/users/mallory", ALICE),
        ("https://a.example/users/alice/", ALICE),
        ("https://a.example/users/Alice", ALICE),  # paths are case-sensitive
        ("https://a.example/users/alice?x=1", ALICE),
        ("http://a.example/users/alice", ALICE),  # scheme
        ("https://a.example:8443/users/alice", ALICE),  # port
        (ALICE, f"{ALICE}#main-key"),
        ("https://a.example@evil.example/users/alice", "https://evil.example/users/alice"),
        (ALICE, "https://a.example@a.example/users/alice"),
    ],
)
def test_fetched_id_differing_from_the_final_url_is_refused(final_url, document_id):
    assert not fetched_id_matches(final_url, {"id": document_id})


def test_fetched_document_without_string_id_is_refused():
    assert not fetched_id_matches(ALICE, {})
    assert not fetched_id_matches(ALICE, {"id": [ALICE]})
    assert not fetched_id_matches(ALICE, {"id": {"id": ALICE}})
