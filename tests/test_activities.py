"""Activity builders and the strict parser: round trips, contexts, malformed input."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pyld import jsonld

from federation import activities
from federation.activities import (
    CONTEXT,
    MAX_DEPTH,
    PUBLIC,
    ActivityError,
    ActivityType,
    parse_activity,
)
from federation.activity_builders import (
    accept,
    announce,
    create,
    delete,
    follow,
    like,
    reject,
    undo,
    update,
)
from federation.keys import PublicKeyInfo, SigningKey, generate_ed25519_key
from federation.proofs import sign_document, verify_document

GT = "https://guetersloh.example/actor"
DN = "https://dueren.example/actor"
NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
PRACTICE = {
    "@context": list(CONTEXT),
    "id": "https://guetersloh.example/practices/e-akte-bauamt",
    "type": ["Article", "Practice"],
    "attributedTo": GT,
    "name": "E-Akte im Bauamt",
    "to": [PUBLIC],
    "cc": ["https://guetersloh.example/followers"],
}


def act_id(n: int) -> str:
    return f"https://guetersloh.example/activities/{n}"


def both_ways(document: dict) -> list[activities.Activity]:
    """Parse a built document as a mapping and as the JSON bytes a peer would receive."""
    return [parse_activity(document), parse_activity(json.dumps(document).encode())]


# --- round trips ---


def test_follow_round_trip():
    document = follow(GT, DN, activity_id=act_id(1), published=NOW)
    assert document["@context"] == list(CONTEXT)
    for parsed in both_ways(document):
        assert parsed.id == act_id(1)
        assert parsed.type is ActivityType.FOLLOW
        assert (parsed.actor, parsed.object_id, parsed.object) == (GT, DN, None)
        assert parsed.to == (DN,) and parsed.cc == ()
        assert parsed.published == NOW
        assert parsed.raw == document


@pytest.mark.parametrize(("builder", "kind"), [(accept, "Accept"), (reject, "Reject")])
def test_accept_and_reject_round_trip(builder, kind):
    follow_doc = follow(DN, GT, activity_id="https://dueren.example/activities/7", published=NOW)
    document = builder(GT, follow_doc, activity_id=act_id(2), published=NOW)
    assert document["object"] == {
        "id": follow_doc["id"],
        "type": "Follow",
        "actor": DN,
        "object": GT,
    }
    for parsed in both_ways(document):
        assert parsed.type == kind
        assert parsed.object_id == follow_doc["id"]
        assert parsed.object["actor"] == DN
        assert parsed.to == (DN,)


def test_undo_round_trip():
    like_doc = like(GT, "https://dueren.example/notes/1", activity_id=act_id(3), published=NOW)
    document = undo(GT, like_doc, activity_id=act_id(4), published=NOW + timedelta(minutes=1))
    for parsed in both_ways(document):
        assert parsed.type is ActivityType.UNDO
        assert parsed.object_id == act_id(3)
        assert parsed.object == {
            "id": act_id(3),
            "type": "Like",
            "actor": GT,
            "object": "https://dueren.example/notes/1",
        }
        assert parsed.published == NOW + timedelta(minutes=1)


@pytest.mark.parametrize(("builder", "kind"), [(create, "Create"), (update, "Update")])
def test_create_and_update_round_trip_copying_addressing(builder, kind):
    document = builder(GT, PRACTICE, activity_id=act_id(5), published=NOW)
    assert document["object"] == PRACTICE
    for parsed in both_ways(document):
        assert parsed.type == kind
        assert parsed.object_id == PRACTICE["id"]
        assert parsed.object["name"] == "E-Akte im Bauamt"
        assert parsed.to == (PUBLIC,)
        assert parsed.cc == ("https://guetersloh.example/followers",)


def test_delete_round_trip_with_tombstone():
    document = delete(GT, PRACTICE["id"], activity_id=act_id(6), published=NOW)
    assert document["object"] == {
        "id": PRACTICE["id"],
        "type": "Tombstone",
        "deleted": "2026-11-22T10:00:00Z",
    }
    for parsed in both_ways(document):
        assert parsed.type is ActivityType.DELETE
        assert parsed.object_id == PRACTICE["id"]
        assert parsed.to == (PUBLIC,)


def test_announce_round_trip_embeds_the_signed_object_unchanged():
    key = generate_ed25519_key()
    signed = sign_document(PRACTICE, SigningKey(f"{GT}#ed25519-key", key), created=NOW)
    hub = "https://hub.example/topics/e-akte"
    document = announce(hub, signed, activity_id="https://hub.example/a/1", published=NOW)
    for parsed in both_ways(document):
        assert parsed.type is ActivityType.ANNOUNCE
        assert parsed.actor == hub and parsed.object_id == PRACTICE["id"]
        public = PublicKeyInfo(f"{GT}#ed25519-key", GT, key.public_key())
        assert verify_document(parsed.raw["object"], public).ok
    by_id = announce(hub, PRACTICE["id"], activity_id="https://hub.example/a/2", published=NOW)
    assert parse_activity(by_id).object is None


def test_like_round_trip():
    document = like(
        GT, "https://dueren.example/notes/1", activity_id=act_id(7), published=NOW, to=[DN]
    )
    for parsed in both_ways(document):
        assert parsed.type is ActivityType.LIKE
        assert parsed.object_id == "https://dueren.example/notes/1"
        assert parsed.to == (DN,)


def test_signed_activity_survives_the_parser():
    key = generate_ed25519_key()
    document = create(GT, PRACTICE, activity_id=act_id(8), published=NOW)
    signed = sign_document(document, SigningKey(f"{GT}#ed25519-key", key), created=NOW)
    parsed = parse_activity(json.dumps(signed).encode())
    public = PublicKeyInfo(f"{GT}#ed25519-key", GT, key.public_key())
    assert verify_document(parsed.raw, public).ok


def test_published_is_written_in_utc():
    cet = timezone(timedelta(hours=1))
    document = follow(
        GT, DN, activity_id=act_id(9), published=datetime(2026, 11, 22, 11, tzinfo=cet)
    )
    assert document["published"] == "2026-11-22T10:00:00Z"


# --- builder misuse ---


def test_builders_refuse_misuse():
    with pytest.raises(ActivityError) as info:
        follow(GT, DN, activity_id=act_id(1), published=datetime(2026, 1, 1))
    assert info.value.field == "published"
    with pytest.raises(ActivityError, match="own activities") as info:
        undo(
            DN,
            follow(GT, DN, activity_id=act_id(1), published=NOW),
            activity_id=act_id(2),
            published=NOW,
        )
    assert info.value.field == "object"
    with pytest.raises(ActivityError, match="attributedTo"):
        create(DN, PRACTICE, activity_id=act_id(3), published=NOW)
    with pytest.raises(ActivityError, match="id"):
        create(GT, {**PRACTICE, "id": None}, activity_id=act_id(3), published=NOW)
    not_for_me = follow(DN, "https://elsewhere.example/actor", activity_id=act_id(4), published=NOW)
    with pytest.raises(ActivityError, match="Follow"):
        accept(GT, not_for_me, activity_id=act_id(5), published=NOW)


# --- contexts ---


def no_pyld(*args, **kwargs):
    raise AssertionError("pyld must not run for a known context")


MASTODON_CREATE = {
    "@context": [
        "https://www.w3.org/ns/activitystreams",
        {
            "ostatus": "http://ostatus.org#",
            "sensitive": "as:sensitive",
            "toot": "http://joinmastodon.org/ns#",
        },
    ],
    "id": "https://mastodon.example/users/anna/statuses/1/activity",
    "type": "Create",
    "actor": "https://mastodon.example/users/anna",
    "published": "2026-11-22T09:00:00Z",
    "to": ["https://www.w3.org/ns/activitystreams#Public"],
    "cc": ["https://mastodon.example/users/anna/followers"],
    "object": {
        "id": "https://mastodon.example/users/anna/statuses/1",
        "type": "Note",
        "attributedTo": "https://mastodon.example/users/anna",
        "content": "<p>Wie habt ihr die E-Akte eingeführt?</p>",
        "sensitive": False,
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
    },
}


def test_inline_context_is_compacted_into_ours():
    parsed = parse_activity(json.dumps(MASTODON_CREATE).encode())
    assert parsed.type is ActivityType.CREATE
    assert parsed.actor == "https://mastodon.example/users/anna"
    assert parsed.to == (PUBLIC,)  # pyld writes it "as:Public"
    assert parsed.object["content"] == MASTODON_CREATE["object"]["content"]
    assert parsed.object["as:sensitive"] is False  # not in our context: kept as compact IRI
    assert parsed.raw == MASTODON_CREATE


def test_full_iris_are_compacted_to_our_terms():
    expanded_names = {
        "@context": [
            "https://www.w3.org/ns/activitystreams",
            {"as": "https://www.w3.org/ns/activitystreams#"},
        ],
        "@id": act_id(10),
        "@type": "as:Follow",
        "as:actor": {"@id": GT},
        "as:object": {"@id": DN},
    }
    parsed = parse_activity(expanded_names)
    assert (parsed.id, parsed.type, parsed.actor, parsed.object_id) == (
        act_id(10),
        ActivityType.FOLLOW,
        GT,
        DN,
    )


@pytest.mark.parametrize(
    "context",
    [
        "https://www.w3.org/ns/activitystreams",
        ["https://www.w3.org/ns/activitystreams"],
        ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
        list(CONTEXT),
    ],
)
def test_known_contexts_are_read_without_json_ld_processing(monkeypatch, context):
    monkeypatch.setattr(jsonld, "compact", no_pyld)
    document = {**follow(GT, DN, activity_id=act_id(1), published=NOW), "@context": context}
    assert parse_activity(document).object_id == DN


@pytest.mark.parametrize(
    "context",
    [
        "https://evil.example/context.jsonld",
        ["https://www.w3.org/ns/activitystreams", "https://evil.example/context.jsonld"],
        ["https://www.w3.org/ns/activitystreams", {"@import": "https://evil.example/c"}],
        [{"x": {"@id": "https://x/", "@context": "https://evil.example/scoped"}}],
    ],
)
def test_remote_context_is_refused_without_fetching(context):
    document = {**follow(GT, DN, activity_id=act_id(1), published=NOW), "@context": context}
    with pytest.raises(ActivityError) as info:
        parse_activity(document)
    assert info.value.field == "@context"
    assert "evil.example" in info.value.message


def test_our_create_with_embedded_context_is_read_directly(monkeypatch):
    monkeypatch.setattr(jsonld, "compact", no_pyld)
    document = create(GT, PRACTICE, activity_id=act_id(1), published=NOW)
    assert parse_activity(document).object == PRACTICE


def test_remote_context_in_an_embedded_object_is_refused():
    document = create(GT, PRACTICE, activity_id=act_id(1), published=NOW)
    document["object"]["@context"] = [*CONTEXT, "https://evil.example/context.jsonld"]
    with pytest.raises(ActivityError, match="evil.example") as info:
        parse_activity(document)
    assert info.value.field == "@context"


def test_embedded_object_with_an_inline_context_is_compacted():
    document = create(GT, PRACTICE, activity_id=act_id(1), published=NOW)
    document["object"]["@context"] = [*CONTEXT, {"headline": "https://schema.org/headline"}]
    document["object"]["headline"] = "E-Akte"
    parsed = parse_activity(document)
    assert "@context" not in parsed.object  # read in our context now
    assert parsed.object["https://schema.org/headline"] == "E-Akte"


def test_remote_context_error_names_the_url():
    document = {**MASTODON_CREATE, "@context": "https://evil.example/context.jsonld"}
    with pytest.raises(ActivityError, match="evil.example/context.jsonld"):
        parse_activity(document)


def test_missing_context_is_refused():
    document = follow(GT, DN, activity_id=act_id(1), published=NOW)
    del document["@context"]
    with pytest.raises(ActivityError) as info:
        parse_activity(document)
    assert info.value.field == "@context"


def test_context_that_redefines_core_terms_cannot_smuggle_an_actor():
    # "actor" mapped to another property: after compaction into our context there is no actor
    document = {
        **follow(GT, DN, activity_id=act_id(1), published=NOW),
        "@context": [
            "https://www.w3.org/ns/activitystreams",
            {"actor": "https://evil.example/ns#a"},
        ],
    }
    with pytest.raises(ActivityError) as info:
        parse_activity(document)
    assert info.value.field == "actor"


def test_relative_iris_are_not_resolved_into_urls():
    document = {**MASTODON_CREATE, "actor": "/users/anna"}
    with pytest.raises(ActivityError) as info:
        parse_activity(document)
    assert info.value.field == "actor"


# --- malformed input ---

VALID = follow(GT, DN, activity_id=act_id(1), published=NOW)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": None}, "id"),
        ({"actor": None}, "actor"),
        ({"type": None}, "type"),
        ({"object": None}, "object"),
        ({"id": 17}, "id"),
        ({"id": "urn:uuid:1234"}, "id"),
        ({"id": "https://a.example@evil.example/x"}, "id"),
        ({"id": "https://dueren.example/activities/1"}, "id"),  # not the actor's origin
        ({"id": "http://guetersloh.example/activities/1"}, "id"),
        ({"actor": [GT, DN]}, "actor"),
        ({"actor": {"type": "Person"}}, "actor"),
        ({"actor": "javascript:alert(1)"}, "actor"),
        ({"type": "Move"}, "type"),
        ({"type": 5}, "type"),
        ({"type": ["Follow", "Like"]}, "type"),
        ({"object": {"type": "Note"}}, "object"),
        ({"object": 3.5}, "object"),
        ({"to": [GT, 5]}, "to"),
        ({"cc": "not a url"}, "cc"),
        ({"published": "yesterday"}, "published"),
        ({"published": "2026-11-22T10:00:00"}, "published"),
        ({"published": 1700000000}, "published"),
    ],
)
def test_malformed_fields_name_the_field(change, field):
    document = {**VALID, **change}
    document = {key: value for key, value in document.items() if value is not None}
    with pytest.raises(ActivityError) as info:
        parse_activity(document)
    assert info.value.field == field
    with pytest.raises(ActivityError) as info:
        parse_activity(json.dumps(document).encode())
    assert info.value.field == field


def test_type_list_with_one_known_activity_type_is_accepted():
    parsed = parse_activity({**VALID, "type": ["Follow", "pn:Subscription"]})
    assert parsed.type is ActivityType.FOLLOW


def nested(depth: int) -> dict:
    """An activity whose deepest container sits at ``depth`` (the activity itself is 1)."""
    value: object = "leaf"
    for _ in range(depth - 2):
        value = [value]
    return {**VALID, "extra": value}


def test_nesting_up_to_the_limit_is_accepted():
    assert parse_activity(nested(MAX_DEPTH)).id == act_id(1)
    assert parse_activity(json.dumps(nested(MAX_DEPTH)).encode()).id == act_id(1)


def test_too_deep_nesting_is_refused():
    for document in (nested(MAX_DEPTH + 1), json.dumps(nested(MAX_DEPTH + 1)).encode()):
        with pytest.raises(ActivityError) as info:
            parse_activity(document)
        assert info.value.field == "body"


def test_pathological_nesting_does_not_crash():
    with pytest.raises(ActivityError) as info:
        parse_activity(b"[" * 200_000 + b"]" * 200_000)
    assert info.value.field == "body"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"[]",
        b'"Follow"',
        b"\xff\xfe{}",
        b'{"id": NaN}',
        b'{"id": Infinity}',
    ],
)
def test_bodies_that_are_not_json_objects(body):
    with pytest.raises(ActivityError) as info:
        parse_activity(body)
    assert info.value.field == "body"


def test_oversized_body_is_refused_before_parsing():
    body = json.dumps({**VALID, "padding": "x" * 2000}).encode()
    with pytest.raises(ActivityError, match="larger") as info:
        parse_activity(body, max_bytes=1000)
    assert info.value.field == "body"
