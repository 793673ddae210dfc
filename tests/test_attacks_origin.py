"""Attacks on the origin rules: speaking for objects, actors and follows one does not own.

Alice and Mallory share an origin (actors.test); the relay lives on another one
(relay.test). Every activity is correctly signed by its sender: what is attacked is
the rule, not the signature. Refusals happen at the door (403) or in the inbox worker
(state ``rejected``); either way nothing may change.
"""

from __future__ import annotations

import copy

import pytest

from federation.keys import SigningKey
from node.backfill import BackfillLimits
from node.storage.models import Follower, Following, InboxItem, RemoteObject
from tests import attack_support
from tests.attack_support import AttackBed
from tests.node_support import issue_token, practice_input

actor_key_pool = attack_support.actor_key_pool
node_template = attack_support.node_template
make_bed = attack_support.make_bed
bed = attack_support.bed

REJECTED = "rejected"


async def refused_at_door(bed: AttackBed, activity: dict, sender) -> None:  # noqa: ANN001
    before = await bed.snapshot()
    answer = await bed.post(activity, sender.rsa)
    assert answer.status == 403, answer.text
    assert answer.problem["field"] == "object"
    assert await bed.snapshot() == before


async def rejected_by_worker(bed: AttackBed, activity: dict, sender) -> None:  # noqa: ANN001
    before = await bed.snapshot()
    assert await bed.deliver(activity, sender) == REJECTED
    after = await bed.snapshot()
    assert after.objects == before.objects and after.followers == before.followers
    assert after.following == before.following


async def test_create_of_an_object_on_another_origin(bed: AttackBed) -> None:
    """CVE-2024-23832 class: Alice creates an object whose id lives on the relay's origin."""
    forged = bed.alice.note(id=bed.remote.url("/notes/planted", host="relay.test"))
    await refused_at_door(bed, bed.alice.activity("Create", forged), bed.alice)


async def test_create_by_reference_of_a_foreign_object_is_not_fetched(bed: AttackBed) -> None:
    foreign = bed.remote.url("/notes/planted", host="relay.test")
    await refused_at_door(bed, bed.alice.activity("Create", foreign), bed.alice)
    assert "/notes/planted" not in bed.remote.paths()


async def test_create_attributed_to_someone_else(bed: AttackBed) -> None:
    forged = bed.mallory.note(attributedTo=bed.alice.id)
    await refused_at_door(bed, bed.mallory.activity("Create", forged), bed.mallory)


async def test_update_of_someone_elses_object_on_the_same_origin(bed: AttackBed) -> None:
    note = bed.alice.note()
    await bed.seed_object(note, bed.alice)
    edited = {**note, "content": "<p>gefälscht</p>", "updated": "2026-11-20T10:00:00Z"}
    del edited["attributedTo"]  # nothing on its face betrays it: the stored author does
    await rejected_by_worker(bed, bed.mallory.activity("Update", edited), bed.mallory)
    assert (await bed.remote_object(note["id"])).document["content"] == "<p>Hallo</p>"


async def test_update_that_reattributes_someone_elses_object(bed: AttackBed) -> None:
    note = bed.alice.note()
    await bed.seed_object(note, bed.alice)
    taken = {**note, "attributedTo": bed.mallory.id, "updated": "2026-11-20T10:00:00Z"}
    await rejected_by_worker(bed, bed.mallory.activity("Update", taken), bed.mallory)
    assert (await bed.remote_object(note["id"])).attributed_to == bed.alice.id


async def test_update_of_an_object_on_another_origin(bed: AttackBed) -> None:
    note = bed.alice.note()
    await bed.seed_object(note, bed.alice)
    edited = {**note, "attributedTo": bed.relay.id, "updated": "2026-11-20T10:00:00Z"}
    await refused_at_door(bed, bed.relay.activity("Update", edited), bed.relay)


async def test_delete_of_someone_elses_object_on_the_same_origin(bed: AttackBed) -> None:
    note = bed.alice.note()
    await bed.seed_object(note, bed.alice)
    await rejected_by_worker(bed, bed.mallory.activity("Delete", note["id"]), bed.mallory)
    assert not (await bed.remote_object(note["id"])).deleted


async def test_delete_of_an_object_on_another_origin(bed: AttackBed) -> None:
    note = bed.alice.note()
    await bed.seed_object(note, bed.alice)
    await refused_at_door(bed, bed.relay.activity("Delete", note["id"]), bed.relay)
    assert not (await bed.remote_object(note["id"])).deleted


async def test_undo_of_someone_elses_follow(bed: AttackBed) -> None:
    follow = bed.alice.activity("Follow", bed.config.actor_url)
    assert await bed.deliver(follow, bed.alice) == "done"
    await rejected_by_worker(bed, bed.mallory.activity("Undo", follow), bed.mallory)
    assert [row.actor_uri for row in await bed.rows(Follower)] == [bed.alice.id]


async def test_delete_of_another_actor_keeps_its_follow(bed: AttackBed) -> None:
    assert await bed.deliver(bed.alice.activity("Follow", bed.config.actor_url),
                             bed.alice) == "done"
    await bed.deliver(bed.mallory.activity("Delete", bed.alice.id), bed.mallory)
    assert [row.actor_uri for row in await bed.rows(Follower)] == [bed.alice.id]


async def test_update_of_another_actor_does_not_plant_a_key(bed: AttackBed) -> None:
    """Mallory "updates" Alice's actor with her own key; Alice's key stays Alice's."""
    planted = bed.alice.document()
    planted["publicKey"] = {**planted["publicKey"],
                            "publicKeyPem": bed.mallory.document()["publicKey"]["publicKeyPem"]}
    await bed.deliver(bed.mallory.activity("Update", planted), bed.mallory)
    impostor = SigningKey(bed.alice.rsa.key_id, bed.mallory.keys.rsa)
    answer = await bed.post(bed.alice.activity("Follow", bed.config.actor_url), impostor)
    assert answer.status == 401 and "bad_signature" in answer.text
    assert await bed.rows(Follower) == []


async def test_accept_from_an_actor_we_did_not_follow(bed: AttackBed) -> None:
    _, token = await issue_token(bed.app)
    answer = await bed.client.post("/api/following", json={"target": bed.alice.id},
                                   headers={"Authorization": f"Bearer {token}"})
    assert answer.status == 202
    (following,) = await bed.rows(Following)
    our_follow = {"id": following.follow_activity_uri, "type": "Follow",
                  "actor": bed.config.actor_url, "object": bed.alice.id}
    for impostor in (bed.mallory, bed.relay):
        await rejected_by_worker(bed, impostor.activity("Accept", our_follow), impostor)
    (following,) = await bed.rows(Following)
    assert following.state == "requested" and following.backfill_state == "none"


async def test_announce_of_a_forged_object_without_proof_takes_the_origins_copy(
    bed: AttackBed,
) -> None:
    """The relay embeds a doctored copy of Alice's note; only her origin's copy counts."""
    genuine = bed.alice.note()
    path = genuine["id"].split(str(bed.remote.port), 1)[1]
    bed.remote.serve(path, genuine)
    doctored = {**genuine, "content": "<p>Die Stadt schließt alle Bürgerämter.</p>"}
    assert await bed.deliver(bed.relay.activity("Announce", doctored), bed.relay) == "done"
    assert path in bed.remote.paths()  # fetched from its origin instead of trusted
    assert (await bed.remote_object(genuine["id"])).document["content"] == "<p>Hallo</p>"


async def test_announce_of_a_forged_object_whose_origin_denies_it(bed: AttackBed) -> None:
    doctored = bed.alice.note(content="<p>erfunden</p>")  # never published: origin says 404
    await rejected_by_worker(bed, bed.relay.activity("Announce", doctored), bed.relay)
    assert await bed.remote_object(doctored["id"]) is None


async def test_announce_with_a_broken_proof_is_refused_and_a_valid_one_is_kept(
    bed: AttackBed,
) -> None:
    proven = bed.alice.signed(bed.alice.note(), bed.clock())
    altered = copy.deepcopy(proven)
    altered["content"] = "<p>nach der Signatur geändert</p>"
    await rejected_by_worker(bed, bed.relay.activity("Announce", altered), bed.relay)
    assert await bed.remote_object(proven["id"]) is None
    # the same object with its intact proof is trusted without fetching: the rule is live
    assert await bed.deliver(bed.relay.activity("Announce", proven), bed.relay) == "done"
    assert (await bed.remote_object(proven["id"])).document["content"] == "<p>Hallo</p>"
    assert proven["id"].split(str(bed.remote.port), 1)[1] not in bed.remote.paths()


async def test_announce_with_a_proof_by_someone_other_than_the_author(bed: AttackBed) -> None:
    """The relay signs Alice's note with the relay's own key: a proof, but not hers."""
    claimed = bed.relay.signed(bed.alice.note(content="<p>untergeschoben</p>"), bed.clock())
    await rejected_by_worker(bed, bed.relay.activity("Announce", claimed), bed.relay)
    assert await bed.remote_object(claimed["id"]) is None
    assert await bed.rows(InboxItem, InboxItem.state == REJECTED)


async def test_an_older_update_sent_again_does_not_roll_back(bed: AttackBed) -> None:
    note = bed.alice.note()
    await bed.seed_object(note, bed.alice)
    old = {**note, "content": "<p>Fassung 1</p>", "updated": "2026-11-10T10:00:00Z"}
    new = {**note, "content": "<p>Fassung 2</p>", "updated": "2026-11-20T10:00:00Z"}
    assert await bed.deliver(bed.alice.activity("Update", new), bed.alice) == "done"
    assert await bed.deliver(bed.alice.activity("Update", old), bed.alice) == "done"
    assert (await bed.remote_object(note["id"])).document["content"] == "<p>Fassung 2</p>"


async def test_announced_reference_whose_origin_serves_another_id(bed: AttackBed) -> None:
    """CVE-2024-23832 class: the document at the URL claims to be a different object."""
    planted = bed.alice.note(content="<p>untergeschoben</p>")
    bed.remote.serve("/uploads/a.json", planted)  # its id is /notes/…, not /uploads/a.json
    url = bed.remote.url("/uploads/a.json")
    await rejected_by_worker(bed, bed.relay.activity("Announce", url), bed.relay)
    assert await bed.remote_object(planted["id"]) is None
    assert await bed.remote_object(url) is None


async def test_announced_reference_served_as_html(bed: AttackBed) -> None:
    """CVE-2024-25623 class: a document that is not served as ActivityPub is not one."""
    note = bed.alice.note()
    path = note["id"].split(str(bed.remote.port), 1)[1]
    bed.remote.serve(path, note, content_type="text/html")
    await rejected_by_worker(bed, bed.relay.activity("Announce", note["id"]), bed.relay)
    assert path in bed.remote.paths() and await bed.remote_object(note["id"]) is None


@pytest.mark.parametrize("trick", [
    "http://relay.test:{port}@actors.test:{port}/notes/x",  # userinfo
    "http://actors.test:{port}\\@relay.test:{port}/notes/x",  # backslash
    "http://relay.test:{port}\\actors.test:{port}/notes/x",
    "http://actors.test:{port}.relay.test/notes/x",  # port that is no port
    "http://actors.test%2Erelay.test:{port}/notes/x",
    "https://actors.test:{port}/notes/x",  # another scheme is another origin
])
async def test_object_ids_that_parsers_read_differently(bed: AttackBed, trick: str) -> None:
    forged = bed.alice.note(id=trick.format(port=bed.remote.port))
    answer = await bed.post(bed.alice.activity("Create", forged), bed.alice.rsa)
    assert answer.status in (400, 403), answer.text
    assert await bed.rows(InboxItem) == []


async def test_follow_target_whose_document_claims_another_id(bed: AttackBed) -> None:
    """CVE-2024-23832 class on the way out: a file that claims to be Alice is not Alice."""
    bed.remote.serve("/uploads/alice.json", bed.alice.document())
    _, token = await issue_token(bed.app)
    answer = await bed.client.post("/api/following",
                                   json={"target": bed.remote.url("/uploads/alice.json")},
                                   headers={"Authorization": f"Bearer {token}"})
    assert answer.status == 502 and await bed.rows(Following) == []


async def test_remote_actors_cannot_speak_for_the_nodes_own_contributions(bed: AttackBed) -> None:
    """Nobody can speak in the municipality's name: Create, Update and Delete of objects
    on the node's own origin by a remote actor are refused, the contribution stays."""
    _, token = await issue_token(bed.app)
    created = await bed.client.post("/api/contributions", json=practice_input(),
                                    headers={"Authorization": f"Bearer {token}"})
    ours = (await created.json())["uri"]
    planted = bed.alice.note(id=f"{bed.config.base_url}/practices/untergeschoben",
                             attributedTo=bed.alice.id)
    edited = {**bed.alice.note(), "id": ours, "name": "Gefälscht",
              "updated": "2027-01-01T00:00:00Z"}
    for activity in (bed.alice.activity("Create", planted), bed.alice.activity("Update", edited),
                     bed.alice.activity("Delete", ours)):
        await refused_at_door(bed, activity, bed.alice)
    page = await bed.client.get("/practices/e-akte-bauamt",
                                headers={"Accept": "application/activity+json"})
    assert page.status == 200 and (await page.json())["name"] == practice_input()["title"]
    missing = await bed.client.get("/practices/untergeschoben",
                                   headers={"Accept": "application/activity+json"})
    assert missing.status == 404


async def test_announce_of_an_object_whose_author_lives_elsewhere(bed: AttackBed) -> None:
    """The relay serves, from its own origin, an object "by Alice" with Alice's valid proof
    of other content: the author's origin is not the object's, so it is not stored."""
    forged = bed.alice.signed(bed.relay.note(attributedTo=bed.alice.id,
                                             content="<p>Alice sagt das nie</p>"), bed.clock())
    path = forged["id"].split(str(bed.remote.port), 1)[1]
    bed.remote.serve(path, forged)
    await rejected_by_worker(bed, bed.relay.activity("Announce", forged), bed.relay)
    await rejected_by_worker(bed, bed.relay.activity("Announce", forged["id"]), bed.relay)
    assert await bed.remote_object(forged["id"]) is None


@pytest.mark.parametrize("others", ["relay", "mallory", "nameless"])
async def test_a_co_author_cannot_be_named_for_someone_else(bed: AttackBed, others: str) -> None:
    """Was stored: only the first entry of a list-valued attributedTo was checked (fixed)."""
    second = {"relay": bed.relay.id, "mallory": bed.mallory.id, "nameless": {"name": "x"}}
    note = bed.alice.note(attributedTo=[bed.alice.id, second[others]])
    await rejected_by_worker(bed, bed.alice.activity("Create", note), bed.alice)
    assert await bed.remote_object(note["id"]) is None


# --- a remote that never stops talking ----------------------------------------------


async def test_an_outbox_that_pages_forever_is_read_only_so_far(bed: AttackBed) -> None:
    bed.remote.serve("/users/pager/outbox", {
        "@context": attack_support.AS_CONTEXT, "id": bed.remote.url("/users/pager/outbox"),
        "type": "OrderedCollection", "first": bed.remote.url("/endless/1")})
    await bed.follow_accepted_by("pager")
    following = await bed.backfill_finished()
    pages = [path for path in bed.remote.paths() if path.startswith("/endless/")]
    assert following.backfill_state == "done"
    assert len(pages) == BackfillLimits().max_pages  # measured: 20 pages, then it stops
    assert len(pages) == len(set(pages))


async def test_an_outbox_whose_next_page_points_inside(bed: AttackBed) -> None:
    bed.remote.serve("/users/pager/outbox", {
        "@context": attack_support.AS_CONTEXT, "id": bed.remote.url("/users/pager/outbox"),
        "type": "OrderedCollection", "orderedItems": [],
        "next": "http://169.254.169.254/latest/meta-data/"})
    await bed.follow_accepted_by("pager")
    following = await bed.backfill_finished()
    assert following.backfill_state == "failed"
    assert all(url.startswith(f"http://127.0.0.1:{bed.remote.port}/") for url in bed.net.started)


async def test_a_flood_of_deletes_of_unknown_objects_fetches_nothing(bed: AttackBed) -> None:
    ids = [f"{bed.alice.origin}/notes/never-seen-{n}" for n in range(40)]
    for object_id in ids:
        answer = await bed.post(bed.alice.activity("Delete", object_id), bed.alice.rsa)
        assert answer.status == 202
    items = await bed.rows(InboxItem)
    for item in items:
        assert await bed.processed(item.activity_uri) == "done"
    assert bed.remote.paths() == ["/users/alice"]  # the key, once; no object was looked up
    tombstones = await bed.rows(RemoteObject, RemoteObject.uri.in_(ids))
    assert len(tombstones) == 40 and all(row.deleted and row.document is None
                                         for row in tombstones)


async def test_a_followed_outbox_cannot_speak_for_others(bed: AttackBed) -> None:
    """Backfill obeys the inbox's rules: an outbox full of other people's objects,
    updates and deletes changes nothing of theirs."""
    note = bed.alice.note()
    await bed.seed_object(note, bed.alice)
    pager_id = bed.remote.url("/users/pager")
    pager = attack_support.RemoteActorSpec(pager_id, bed.alice.keys)

    def item(kind: str, obj: object) -> dict:
        return {**pager.activity(kind, obj), "@context": attack_support.AS_CONTEXT}

    items = [
        item("Create", bed.relay.note(attributedTo=pager_id)),  # foreign origin
        item("Create", {**bed.alice.note(), "attributedTo": bed.alice.id}),  # not pager's
        item("Update", {**note, "content": "<p>übernommen</p>", "updated": "2027-01-01T00:00:00Z"}),
        item("Delete", note["id"]),
        {**bed.alice.activity("Delete", note["id"])},  # an activity of someone else
    ]
    bed.remote.serve("/users/pager/outbox", {
        "@context": attack_support.AS_CONTEXT, "id": bed.remote.url("/users/pager/outbox"),
        "type": "OrderedCollection", "orderedItems": items})
    before = (await bed.snapshot()).objects
    await bed.follow_accepted_by("pager")
    assert (await bed.backfill_finished()).backfill_state == "done"
    assert "/users/pager/outbox" in bed.remote.paths()  # the outbox was read
    assert (await bed.snapshot()).objects == before
