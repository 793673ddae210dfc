"""Values the storage refuses, and what happens to the activity that carried them.

A database that refuses a value must lead to a clear answer (400/422 naming the field,
or a rejected inbox item), never to a 500, a 503 "retry later" for ever, or an item
that stays claimed. PostgreSQL cases run when PRAXISNETZ_TEST_POSTGRES_URL is set.
"""

from __future__ import annotations

from xml.etree import ElementTree as ET

import pytest

from node.storage.models import Contribution, InboxItem, RemoteObject
from tests import attack_support
from tests.attack_support import AttackBed, BedFactory
from tests.node_support import issue_token, practice_input

actor_key_pool = attack_support.actor_key_pool
node_template = attack_support.node_template
make_bed = attack_support.make_bed
bed = attack_support.bed
postgres_url = attack_support.postgres_url


async def test_values_postgresql_refuses_are_rejected_not_stuck(postgres_url: str,
                                                               make_bed: BedFactory) -> None:
    """Were stuck in "processing" for ever (re-claimed every five minutes, holding up the
    rest of their batch): a type longer than its column, a NUL character, an over-long
    id. They are now rejected, and the activity behind them is still processed (fixed)."""
    bed = await make_bed(database_url=postgres_url)
    alice = bed.alice
    refused = [
        alice.activity("Create", alice.note(type=["Note", "X" * 100])),
        alice.activity("Create", alice.note(type=["Note", "Pr\u0000"])),
        alice.activity("Create", alice.note(inReplyTo="https://example.org/" + "a" * 3000)),
        alice.activity("Create", alice.note(id=f"{alice.origin}/notes/{'b' * 3000}")),
    ]
    fine = alice.activity("Create", alice.note())
    for activity in [*refused, fine]:
        assert (await bed.post(activity, alice.rsa)).status == 202
    for activity in refused:
        assert await bed.processed(activity["id"], timeout=5) == "rejected"
    assert await bed.processed(fine["id"]) == "done"
    assert [row.uri for row in await bed.rows(RemoteObject)] == [fine["object"]["id"]]


@pytest.mark.parametrize("field", ["id", "actor"])
async def test_an_over_long_activity_id_or_actor_is_a_400(bed: AttackBed, field: str) -> None:
    """PostgreSQL refused the inbox row and the node answered 503, asking the sender to
    retry for ever (fixed: 400 naming the field, on every database)."""
    activity = bed.alice.activity("Follow", bed.config.actor_url)
    activity[field] = f"{bed.alice.origin}/{field}/" + "x" * 3000
    answer = await bed.post(activity, bed.alice.rsa)
    assert answer.status == 400 and answer.problem["field"] == field
    assert await bed.rows(InboxItem) == []


async def test_an_actor_whose_document_postgresql_refuses_gets_no_503(
    postgres_url: str, make_bed: BedFactory
) -> None:
    """A NUL in the actor's name made storing the actor fail during the key lookup, and
    every request of that actor was answered 503, "retry later", for ever (fixed)."""
    bed = await make_bed(database_url=postgres_url)
    odd = bed.remote.add_actor("odd", bed.alice.keys, name="Stadt\u0000X")
    follow = odd.activity("Follow", bed.config.actor_url)
    answer = await bed.post(follow, odd.rsa)
    assert answer.status == 202, answer.text
    assert await bed.processed(follow["id"]) in ("done", "rejected")


@pytest.mark.parametrize("character", ["\u0000", "\u0001", "\ud800"])
async def test_unstorable_characters_in_api_text_are_a_422(bed: AttackBed, character: str) -> None:
    """Were a 500 (NUL in a title on PostgreSQL; a lone surrogate on any database) or an
    Atom feed that is no longer XML (other control characters); fixed: 422 naming the field."""
    _, token = await issue_token(bed.app)
    auth = {"Authorization": f"Bearer {token}"}
    for field in ("title", "summary", "body", "steps", "effort", "lessons"):
        value = f"Text {character} mehr"
        submitted = practice_input(slug=f"x-{field}", **{field: [value] if field == "steps"
                                                         else value})
        answer = await bed.client.post("/api/contributions", json=submitted, headers=auth)
        assert answer.status == 422, (field, answer.status)
        assert (await answer.json())["field"] == field
    assert await bed.rows(Contribution) == []
    feed = await bed.client.get("/feed.atom")
    ET.fromstring(await feed.read())  # still well-formed XML


async def test_lone_surrogates_in_the_inbox_are_a_400(bed: AttackBed) -> None:
    """Were stored, then broke processing (UnicodeEncodeError: the item stayed claimed
    for ever); fixed: refused at the door. A proper pair (an emoji) still passes."""
    alice = bed.alice
    for note in (alice.note(content="x\ud800y"), alice.note(type=["Note", "\udfff"]),
                 {**alice.note(), "\ud800": "key"}):
        answer = await bed.post(alice.activity("Create", note), alice.rsa)
        assert answer.status == 400 and answer.problem["field"] == "body"
    assert await bed.rows(InboxItem) == []
    emoji = alice.activity("Create", alice.note(content="Daumen \U0001F44D"))
    assert await bed.deliver(emoji, alice) == "done"  # sent as "\\ud83d\\udc4d": a pair


async def test_lone_surrogates_in_a_fetched_document_are_refused(bed: AttackBed) -> None:
    """A key document with a lone surrogate broke storing the actor (a 500 at the door);
    fixed: the fetcher refuses such a document as not JSON."""
    odd = bed.remote.add_actor("odd", bed.mallory.keys, name="Stadt \ud800")
    answer = await bed.post(odd.activity("Follow", bed.config.actor_url), odd.rsa)
    assert answer.status == 401 and "key_fetch_failed" in answer.text
    assert await bed.rows(InboxItem) == []


async def test_an_activity_that_breaks_its_handler_does_not_stay_claimed(
    make_bed: BedFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Safety net for failures nobody has found yet (the lone surrogate was one): an
    exception used to leave the item claimed, uncounted, back every lease for ever."""
    from node.inbox_processing import InboxProcessor

    async def broken(self, activity):  # noqa: ANN001, ANN202
        raise RuntimeError("a handler bug")

    monkeypatch.setattr(InboxProcessor, "on_like", broken)
    bed = await make_bed()
    like = bed.alice.activity("Like", f"{bed.config.base_url}/practices/x")
    after = bed.alice.activity("Create", bed.alice.note())
    for activity in (like, after):
        assert (await bed.post(activity, bed.alice.rsa)).status == 202
    assert await bed.processed(like["id"]) == "retry"
    assert await bed.processed(after["id"]) == "done"
    (item,) = await bed.rows(InboxItem, InboxItem.activity_uri == like["id"])
    assert item.attempts == 1 and "RuntimeError" in item.error
