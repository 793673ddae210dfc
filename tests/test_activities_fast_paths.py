"""The inbox's fast paths give the verdicts of the slow paths they stand in for.

``on_actor_origin`` (an id on the actor's origin, told by prefix) against
``federation.urls.origin``; the shape check's depth limit at its edge; the regex of
refused URL characters against ``federation.urls``' set.
"""

from __future__ import annotations

import pytest

from federation import activities, urls
from federation.activities import ActivityError, on_actor_origin, parse_activity
from federation.urls import OriginError, origin

AS = "https://www.w3.org/ns/activitystreams"
ACTORS = [
    "https://a.example/users/alice",
    "HTTPS://A.Example/users/alice",
    "https://a.example:443/users/alice",
    "https://a.example:8443/u",
    "http://a.example/u",
    "https://[::1]:8080/u",
    "https://xn--bcher-kva.example/u",
    "https://bücher.example/u",
    "https://a.example",
    "https://a.example.",
]
CANDIDATES = [
    "https://a.example/users/alice/notes/1",
    "https://a.example/",
    "https://a.example/a b",
    "https://a.example/a\\b",
    "https://a.example/a\x7f",
    "https://a.example/a\tb",
    "https://a.example/\u3000x",  # a wide space: urlsplit keeps it in the path
    "https://a.example/?q=1#f",
    "https://a.example//b.example/x",
    "https://a.example/@b.example",
    "https://a.example:443/x",
    "https://a.example:8443/u/1",
    "HTTPS://A.Example/users/alice/1",
    "https://a.example.evil/x",
    "https://a.exampl/x",
    "http://a.example/u/2",
    "https://[::1]:8080/u/3",
    "https://[::1]:8080/u/%zz",
    "https://xn--bcher-kva.example/u/1",
    "https://bücher.example/u/1",
    "https://a.example./x",
    "https://user@a.example/x",
]


def _slow_same_origin(url: str, actor: str) -> bool | None:
    """True/False by parsing both; None if ``url`` is not a valid URL."""
    try:
        return origin(url) == origin(actor)
    except OriginError:
        return None


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("url", CANDIDATES)
def test_on_actor_origin_never_says_yes_where_parsing_says_no(url: str, actor: str) -> None:
    slow = _slow_same_origin(url, actor)
    if on_actor_origin(url, actor):
        assert slow is True  # valid, and on the actor's origin
    # the common case takes the fast path
    if url.startswith(actor.lower().split("/u")[0] + "/") and slow and actor == actor.lower():
        assert on_actor_origin(url, actor)


def test_the_fast_path_is_taken_for_the_usual_activity() -> None:
    assert on_actor_origin("https://a.example/users/alice/notes/1", "https://a.example/users/alice")
    assert not on_actor_origin("https://b.example/notes/1", "https://a.example/users/alice")
    assert not on_actor_origin("https://a.example/x y", "https://a.example/users/alice")
    assert not on_actor_origin("https://a.example/x", "not a url")


def test_the_refused_characters_are_those_of_federation_urls() -> None:
    refused = {chr(c) for c in range(0x3000) if activities._FORBIDDEN_URL_CHAR.search(chr(c))}
    assert refused == set(urls._FORBIDDEN_URL_CHARS)


def _create(activity_id: object, object_id: object, actor: object = "https://a.example/u") -> dict:
    return {"@context": AS, "id": activity_id, "type": "Create", "actor": actor,
            "object": {"id": object_id, "type": "Note", "attributedTo": actor}}


@pytest.mark.parametrize("activity_id", CANDIDATES + [5, None, ""])
def test_parse_activity_judges_ids_as_parsing_does(activity_id: object) -> None:
    actor = "https://a.example/u"
    valid = isinstance(activity_id, str) and _slow_same_origin(activity_id, actor) is not None
    same = valid and _slow_same_origin(activity_id, actor)
    document = _create(activity_id, "https://a.example/u/note")
    if same:
        assert parse_activity(document).id == activity_id
    else:
        with pytest.raises(ActivityError) as raised:
            parse_activity(document)
        assert raised.value.field == "id"


@pytest.mark.parametrize("object_id", CANDIDATES)
def test_parse_activity_judges_object_ids_as_parsing_does(object_id: str) -> None:
    document = _create("https://a.example/u/create", object_id)
    if _slow_same_origin(object_id, "https://a.example/u") is None:
        with pytest.raises(ActivityError) as raised:
            parse_activity(document)
        assert raised.value.field == "object"
    else:
        assert parse_activity(document).object_id == object_id


def test_an_invalid_actor_is_still_reported_after_the_id() -> None:
    with pytest.raises(ActivityError) as raised:
        parse_activity(_create("https://a.example/u/1", "https://a.example/u/2", actor="ftp://x/"))
    assert raised.value.field == "actor"
    with pytest.raises(ActivityError) as raised:
        parse_activity(_create("nope", "https://a.example/u/2", actor="ftp://x/"))
    assert raised.value.field == "id"


def _nested(depth: int, leaf: object) -> object:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("leaf", ["s", 1, None, {}, [], {"a": "b"}, ["x"]])
@pytest.mark.parametrize("lists", [29, 30, 31, 32])
def test_the_depth_limit_sits_where_it_did(leaf: object, lists: int) -> None:
    # the document is depth 1, its "content" value depth 2, each list one more
    document = {**_create("https://a.example/u/1", "https://a.example/u/2"),
                "content": _nested(lists, leaf)}
    leaf_depth = 2 + lists
    containers_reach = leaf_depth + (1 if isinstance(leaf, dict | list) and leaf else 0)
    if max(leaf_depth, containers_reach) > activities.MAX_DEPTH:
        with pytest.raises(ActivityError, match="nested deeper"):
            parse_activity(document)
    else:
        parse_activity(document)


def test_contexts_at_any_depth_are_still_found() -> None:
    document = _create("https://a.example/u/1", "https://a.example/u/2")
    document["object"]["@context"] = [AS, {"x": "https://evil.example/"}]  # type: ignore[index]
    assert len(activities._check_shape(document)) == 2


def test_activity_types_are_read_by_name() -> None:
    document = _create("https://a.example/u/1", "https://a.example/u/2")
    document["type"] = ["Create", "Article"]
    assert parse_activity(document).type is activities.ActivityType.CREATE
    document["type"] = ["Create", "Update"]
    with pytest.raises(ActivityError, match="unsupported activity type"):
        parse_activity(document)


def test_a_parsed_activity_is_the_dataclass_its_constructor_makes() -> None:
    import dataclasses

    parsed = parse_activity(_create("https://a.example/u/1", "https://a.example/u/2"))
    fields = {field.name: getattr(parsed, field.name) for field in dataclasses.fields(parsed)}
    made = activities.Activity(**fields)  # type: ignore[arg-type]
    assert parsed == made and repr(parsed) == repr(made) and vars(parsed) == vars(made)
    # the shortcut sets the instance dict: it holds only while neither exists
    assert not hasattr(activities.Activity, "__post_init__")
    assert not hasattr(activities.Activity, "__slots__")
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.actor = "https://evil.example/u/1"  # type: ignore[misc]


@pytest.mark.parametrize(("kind", "expected"), [
    ("Create", activities.ActivityType.CREATE), ("Like", activities.ActivityType.LIKE),
    (["Create"], activities.ActivityType.CREATE),
    ("Note", "type: unsupported activity type 'Note'"),
    ("create", "type: unsupported activity type 'create'"),
    ("", "type: unsupported activity type ''"),
    (7, "type: must be a string or a list of strings"), (None, "type: missing"),
])
def test_a_type_string_is_read_by_one_lookup_with_the_same_answers(kind: object,
                                                                  expected: object) -> None:
    try:
        outcome: object = activities._read_type(kind)
    except ActivityError as exc:
        outcome = str(exc)
    assert outcome == expected


# --- parse_activity's usual-shape reader against the general path ---

_ACTOR = "https://a.example/u"
_FIELD_CHOICES: dict[str, list[object]] = {
    "@context": [AS, [AS], [AS, "https://w3id.org/security/v1"], [AS, AS], [AS, {"x": "y"}],
                 "https://www.w3.org/ns/did/v1", [], 5, None],
    "actor": [_ACTOR, *ACTORS, [_ACTOR], {"id": _ACTOR}, "ftp://x/", "", 7, None],
    "id": [f"{_ACTOR}/1", *CANDIDATES, 5, None, ""],
    "type": ["Create", "Update", "Delete", "Like", "Note", "create", ["Create"], ["Create", "Like"],
             7, None],
    "object": [f"{_ACTOR}/note", {"id": f"{_ACTOR}/note", "type": "Note"}, *CANDIDATES[:8],
               {"type": "Note"}, {"id": 5}, {"id": None}, [f"{_ACTOR}/note"], [], 3, None,
               {"id": f"{_ACTOR}/n", "@context": [AS, {"evil": "x"}]},
               {"id": f"{_ACTOR}/n", "tag": [{"type": "Hashtag", "name": "#x"}]}],
    "to": [None, [], [PUBLIC := "https://www.w3.org/ns/activitystreams#Public"], "as:Public",
           ["Public", "https://b.example/u"], "https://b.example/u", ["https://b.example/ x"],
           [{"id": "https://b.example/u"}], [5], 5, {"id": "x"}, ["ftp://b/"], [None]],
    "cc": [None, [], ["https://b.example/followers"], [""], "nope", [PUBLIC, PUBLIC], ("x",)],
    "published": [None, "2024-05-01T10:00:00Z", "2024-05-01T10:00:00+02:00", "2024-05-01",
                  "2024-05-01T10:00:00", "not a date", "x" * 70, 5, ""],
}


def _general(document: dict) -> activities.Activity:
    return activities._parse_general(document, activities.MAX_DOCUMENT_BYTES)


def _outcome(parse: object, document: dict) -> object:
    try:
        return parse(document)  # type: ignore[operator]
    except ActivityError as exc:
        return ("ActivityError", exc.field, str(exc))
    except (TypeError, ValueError) as exc:  # whatever escapes, it must escape both ways
        return (type(exc).__name__, str(exc))


def _documents(count: int, seed: int) -> list[dict]:
    import random

    chooser = random.Random(seed)
    made = []
    for _ in range(count):
        document: dict[str, object] = {}
        for name, choices in _FIELD_CHOICES.items():
            if chooser.random() < 0.92:  # most documents have most fields
                value = choices[0] if chooser.random() < 0.6 else chooser.choice(choices)
                document[name] = value
        if chooser.random() < 0.1:
            document["content"] = _nested(chooser.choice([1, 29, 30, 31]), chooser.choice(["s", []]))
        made.append(document)
    return made


@pytest.mark.parametrize("seed", range(4))
def test_the_usual_shape_reader_answers_as_the_general_path(seed: int) -> None:
    taken = 0
    for document in _documents(1500, seed):
        general = _outcome(_general, document)
        usual = _outcome(activities._usual_activity, document)
        if usual is None:
            continue  # stepped aside: parse_activity asks the general path
        taken += 1
        assert usual == general, document
        if isinstance(usual, activities.Activity):
            assert vars(usual) == vars(general)
        assert _outcome(parse_activity, document) == general
    assert taken > 50  # the shapes it is for do take it


def test_parse_activity_takes_the_usual_path_for_a_usual_create() -> None:
    document = _create(f"{_ACTOR}/1", f"{_ACTOR}/note")
    document["to"] = [PUBLIC]
    document["published"] = "2024-05-01T10:00:00Z"
    usual = activities._usual_activity(document)
    assert usual is not None and usual == _general(document)
    assert usual.to == (PUBLIC,) and usual.object is document["object"]
