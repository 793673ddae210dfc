"""One type and one parser for remote actor documents, used by follows and the directory."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from node import follows, remote

ACTOR = {
    "id": "https://peer.example/users/anna",
    "type": ["Person"],
    "inbox": {"id": "https://peer.example/users/anna/inbox"},
    "outbox": "https://peer.example/users/anna/outbox",
    "followers": "https://peer.example/users/anna/followers",
    "preferredUsername": "anna",
    "name": "Anna",
    "endpoints": {"sharedInbox": "https://peer.example/inbox"},
}


def test_follows_uses_the_remote_type() -> None:
    assert follows.RemoteActorInfo is remote.RemoteActorInfo
    info = follows.parse_actor_document(ACTOR)
    assert isinstance(info, remote.RemoteActorInfo)
    # both paths read an inbox given as a link object the same way
    assert info == remote.parse_actor_document(ACTOR["id"], ACTOR)
    assert (info.inbox, info.delivery_inbox) == (
        "https://peer.example/users/anna/inbox", "https://peer.example/inbox")


def test_row_round_trip_keeps_every_member() -> None:
    info = remote.parse_actor_document(ACTOR["id"], ACTOR)
    now = datetime(2026, 11, 22, tzinfo=UTC)
    row = remote.actor_row(info, fetched_at=now)
    assert row.fetched_at == now
    assert remote.info_from_row(row) == info


@pytest.mark.parametrize("document", [
    {**ACTOR, "type": "Note"},
    {key: value for key, value in ACTOR.items() if key != "inbox"},
    {**ACTOR, "inbox": {"name": "no link"}},
    {key: value for key, value in ACTOR.items() if key != "id"},
])
def test_unusable_actor_documents_are_refused_naming_the_target(document: dict) -> None:
    with pytest.raises(follows.FollowError) as refused:
        follows.parse_actor_document(document)
    assert refused.value.field == "target"


def test_directory_parser_refuses_an_actor_without_inbox_permanently() -> None:
    with pytest.raises(remote.RemoteError) as refused:
        remote.parse_actor_document(ACTOR["id"], {"id": ACTOR["id"], "type": "Person"})
    assert refused.value.permanent
