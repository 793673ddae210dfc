"""The inbox worker's rules, applied to activities that already passed the door.

The processor is the node's own (``node.workers.build_workers``) with a directory that
counts fetches, so "without any fetch" is checked, not assumed.
"""

from __future__ import annotations

import copy
import itertools
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from federation.keys import generate_rsa_key, public_key_pem
from federation.proofs import sign_document
from node import appkeys
from node.config import FollowApproval
from node.inbox_processing import InboxProcessor
from node.remote import RemoteDirectory
from node.storage.models import Activity, Delivery, Follower, InboxState, RemoteObject
from node.workers import build_workers
from tests.engine_support import AS_CONTEXT, RunningNode, node_config, publish, start_node


class CountingDirectory(RemoteDirectory):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.fetched: list[str] = []

    async def fetch(self, url: str):
        self.fetched.append(url)
        return await super().fetch(url)


def processor_for(node: RunningNode, **config_changes) -> tuple[InboxProcessor, CountingDirectory]:
    app = node.app
    build_workers(app)  # installs the persistent key cache
    directory = CountingDirectory(session_maker=app[appkeys.SESSION_MAKER],
                                  fetcher=app[appkeys.FETCHER], clock=app[appkeys.CLOCK])
    config = replace(node.config, **config_changes) if config_changes else node.config
    processor = InboxProcessor(config=config, session_maker=app[appkeys.SESSION_MAKER],
                               clock=app[appkeys.CLOCK], keys=node.keys, directory=directory,
                               key_resolver=app[appkeys.KEY_CACHE])
    return processor, directory


def activity(actor: str, kind: str, obj: object) -> dict:
    base = actor.rsplit("/", 1)[0]
    return {"@context": AS_CONTEXT, "id": f"{base}/activities/{uuid.uuid4()}", "type": kind,
            "actor": actor, "object": obj}


def article(owner: RunningNode, slug: str, *, updated: str, name: str = "Bericht",
            author: str | None = None) -> dict:
    return {"@context": AS_CONTEXT, "id": f"{owner.url}/experiences/{slug}", "type": "Article",
            "attributedTo": author or owner.actor, "name": name, "content": "<p>x</p>",
            "published": "2026-11-01T10:00:00Z", "updated": updated}


@pytest.fixture
async def pair(tmp_path):
    a = await start_node(node_config(tmp_path, "a"), start_workers=False)
    b = await start_node(node_config(tmp_path, "b"), start_workers=False)
    yield a, b
    await a.stop()
    await b.stop()


async def stored(node: RunningNode, uri: str) -> RemoteObject | None:
    rows = await node.rows(RemoteObject, RemoteObject.uri == uri)
    return rows[0] if rows else None


async def test_follow_is_accepted_and_answered(pair) -> None:
    a, b = pair
    processor, _ = processor_for(a)
    verdict = await processor.process(activity(b.actor, "Follow", a.actor))
    assert verdict.state is InboxState.DONE
    [follower] = await a.rows(Follower)
    assert follower.actor_uri == b.actor and follower.state == "accepted"
    [accept] = await a.rows(Activity, Activity.type == "Accept")
    assert accept.document["object"]["actor"] == b.actor and "proof" in accept.document
    [delivery] = await a.rows(Delivery)
    assert delivery.inbox_url == b.config.inbox_url and delivery.state == "pending"


async def test_follow_approval_settings(pair) -> None:
    a, b = pair
    manual, _ = processor_for(a, follow_approval=FollowApproval.MANUAL)
    await manual.process(activity(b.actor, "Follow", a.actor))
    assert [f.state for f in await a.rows(Follower)] == ["pending"]
    assert await a.rows(Activity, Activity.type == "Accept") == []

    allow_list, _ = processor_for(a, follow_allow_hosts=("kommune.example",))
    await allow_list.process(activity(b.actor, "Follow", a.actor))
    assert [f.state for f in await a.rows(Follower)] == ["rejected"]
    assert len(await a.rows(Activity, Activity.type == "Reject")) == 1


async def test_follow_of_someone_else_is_rejected(pair) -> None:
    a, b = pair
    processor, _ = processor_for(a)
    verdict = await processor.process(activity(b.actor, "Follow", f"{b.url}/someone"))
    assert verdict.state is InboxState.REJECTED
    assert await a.rows(Follower) == []


async def test_undo_follow_removes_the_follower_only_for_its_actor(pair) -> None:
    a, b = pair
    processor, _ = processor_for(a)
    follow = activity(b.actor, "Follow", a.actor)
    await processor.process(follow)
    foreign = activity(f"{b.url}/intruder", "Undo", {**follow, "actor": b.actor})
    assert (await processor.process(foreign)).state is InboxState.REJECTED
    assert len(await a.rows(Follower)) == 1
    await processor.process(activity(b.actor, "Undo", follow))
    assert await a.rows(Follower) == []


async def test_older_update_is_ignored(pair) -> None:
    a, b = pair
    processor, _ = processor_for(a)
    new = article(b, "bericht", updated="2026-11-20T10:00:00Z", name="Neu")
    old = article(b, "bericht", updated="2026-11-10T10:00:00Z", name="Alt")
    await processor.process(activity(b.actor, "Create", new))
    verdict = await processor.process(activity(b.actor, "Update", old))
    assert verdict.state is InboxState.DONE and "stale" in verdict.reason
    assert (await stored(a, new["id"])).document["name"] == "Neu"


async def test_update_only_by_the_stored_author(pair) -> None:
    a, b = pair
    processor, _ = processor_for(a)
    original = article(b, "bericht", updated="2026-11-10T10:00:00Z")
    await processor.process(activity(b.actor, "Create", original))
    # Another actor on the same origin: origin matches, but it is not the author.
    other = f"{b.url}/users/other"
    hijack = article(b, "bericht", updated="2026-11-20T10:00:00Z", name="Gekapert", author=other)
    verdict = await processor.process(activity(other, "Update", hijack))
    assert verdict.state is InboxState.REJECTED
    delete = await processor.process(activity(other, "Delete", original["id"]))
    assert delete.state is InboxState.REJECTED
    row = await stored(a, original["id"])
    assert row.document["name"] == "Bericht" and not row.deleted


async def test_delete_of_unknown_object_is_remembered_without_fetch(pair) -> None:
    a, b = pair
    processor, directory = processor_for(a)
    never_seen = f"{b.url}/experiences/nie-gesehen"
    verdict = await processor.process(activity(b.actor, "Delete", never_seen))
    assert verdict.state is InboxState.DONE
    assert directory.fetched == []
    tombstone = await stored(a, never_seen)
    assert tombstone.deleted and tombstone.document is None
    # The Create that arrives late does not bring the object back.
    late = article(b, "nie-gesehen", updated="2026-11-01T10:00:00Z")
    verdict = await processor.process(activity(b.actor, "Create", late))
    assert verdict.state is InboxState.REJECTED and "refused_deleted" in verdict.reason
    assert (await stored(a, never_seen)).deleted


async def test_announce_trusts_a_valid_proof_without_fetching(pair) -> None:
    a, b = pair
    processor, directory = processor_for(a)
    uri = await publish(b, "practice", "proof-test", "Mit Beweis", body="x")
    relayed = (await b.rows(Activity, Activity.object_uri == uri))[0].document["object"]
    relayer = f"{a.url}/relay"  # another origin's actor relays B's signed object
    verdict = await processor.process(activity(relayer, "Announce", relayed))
    assert verdict.state is InboxState.DONE, verdict.reason
    assert (await stored(a, uri)).attributed_to == b.actor
    assert uri not in directory.fetched  # the proof was enough


async def test_announce_with_forged_proof_is_rejected(pair) -> None:
    a, b = pair
    processor, _ = processor_for(a)
    uri = await publish(b, "practice", "forged", "Original", body="x")
    relayed = copy.deepcopy((await b.rows(Activity, Activity.object_uri == uri))[0].document["object"])
    relayed["name"] = "Verfälscht"
    verdict = await processor.process(activity(f"{a.url}/relay", "Announce", relayed))
    assert verdict.state is InboxState.REJECTED
    assert await stored(a, uri) is None


async def test_announce_without_proof_fetches_from_origin(pair) -> None:
    a, b = pair
    processor, directory = processor_for(a)
    uri = await publish(b, "practice", "ohne-beweis", "Echt", body="x")
    unsigned = {"id": uri, "type": "Article", "attributedTo": b.actor, "name": "Behauptet"}
    verdict = await processor.process(activity(f"{a.url}/relay", "Announce", unsigned))
    assert verdict.state is InboxState.DONE, verdict.reason
    assert directory.fetched == [uri]
    assert (await stored(a, uri)).document["name"] == "Echt"  # the origin's version, not the relay's


async def test_actor_update_replaces_a_cached_key(pair) -> None:
    a, b = pair
    processor, _ = processor_for(a)
    cache = a.app[appkeys.KEY_CACHE]
    stale_actor = {"id": b.actor, "type": "Organization", "inbox": b.config.inbox_url,
                   "publicKey": {"id": b.keys.rsa.key_id, "owner": b.actor,
                                 "publicKeyPem": public_key_pem(generate_rsa_key().public_key())}}
    cache.put_actor(stale_actor)
    before = await cache(b.keys.rsa.key_id)
    real = b.keys.rsa.private_key.public_key()
    assert before.key.public_key.public_numbers() != real.public_numbers()
    verdict = await processor.process(activity(b.actor, "Update", {**stale_actor}))
    assert verdict.state is InboxState.DONE, verdict.reason
    after = await cache(b.keys.rsa.key_id)
    assert after.key.public_key.public_numbers() == real.public_numbers()


async def test_like_is_recorded_and_undone(pair) -> None:
    a, b = pair
    processor, _ = processor_for(a)
    uri = await publish(a, "practice", "gefaellt", "Gefällt", body="x")
    like = activity(b.actor, "Like", uri)
    assert (await processor.process(like)).state is InboxState.DONE
    assert len(await a.rows(Activity, Activity.type == "Like")) == 1
    await processor.process(activity(b.actor, "Undo", like))
    assert await a.rows(Activity, Activity.type == "Like") == []


async def test_proofs_sign_what_relays_carry(pair) -> None:
    # Sanity check of the fixture used above: a signed object verifies as published.
    a, b = pair
    processor, _ = processor_for(a)
    document = {"@context": AS_CONTEXT, "id": f"{b.url}/x", "type": "Note",
                "attributedTo": b.actor}
    signed = sign_document(document, b.keys.ed25519, created=datetime.now(UTC) - timedelta(1))
    result = await processor.verify_proof(signed)
    assert result is not None and result.ok and result.owner == b.actor


async def test_accept_must_come_from_the_followed_actor_about_our_follow(pair) -> None:
    from node.storage.models import Following

    a, b = pair
    processor, _ = processor_for(a)
    follow_id = f"{a.url}/activities/our-follow"
    async with a.sessions()() as session, session.begin():
        session.add(Following(target_uri=b.actor, state="requested", follow_activity_uri=follow_id,
                              created_at=datetime.now(UTC)))
    stranger = await processor.process(activity(f"{b.url}/users/x", "Accept", follow_id))
    assert stranger.state is InboxState.REJECTED
    wrong_follow = await processor.process(activity(b.actor, "Accept", f"{a.url}/activities/x"))
    assert wrong_follow.state is InboxState.REJECTED
    assert (await a.rows(Following))[0].state == "requested"
    accepted = await processor.process(activity(b.actor, "Accept", follow_id))
    assert accepted.state is InboxState.DONE
    row = (await a.rows(Following))[0]
    assert row.state == "accepted" and row.backfill_state == "pending"


# --- two versions within one second -------------------------------------------------------

SAME_SECOND = datetime(2026, 11, 22, 19, 40, 1, 500000, tzinfo=UTC)


async def edited_within_one_second(origin: RunningNode) -> tuple[list[dict], dict]:
    """A practice created and saved twice more while the origin's clock shows one moment:
    its Create and Updates, and the origin's final document."""
    from node.authoring import Author
    from node.authoring import publish as publish_contribution
    from node.contribution_input import ContributionInput
    from node.storage.models import Contribution, ContributionKind

    author = Author(origin.config, origin.keys, lambda: SAME_SECOND)
    for version in ("Fassung 1", "Fassung 2", "Fassung 3"):
        inp = ContributionInput(kind=ContributionKind.PRACTICE, slug="zwei-sekunden",
                                title="Eine Sekunde", body=version, topics=("e-akte",),
                                status="in-operation")
        async with origin.sessions()() as session, session.begin():
            await publish_contribution(session, author, inp)
    [final] = await origin.rows(Contribution)
    sent = sorted(await origin.rows(Activity, Activity.object_uri == final.uri),
                  key=lambda row: row.id)
    return [row.document for row in sent], final.document


async def test_two_updates_within_one_second_are_two_versions(pair) -> None:
    _, b = pair
    sent, final = await edited_within_one_second(b)
    assert [a["type"] for a in sent] == ["Create", "Update", "Update"]
    versions = [a["object"].get("updated", a["object"]["published"]) for a in sent]
    assert versions == ["2026-11-22T19:40:01.500Z", "2026-11-22T19:40:01.501Z",
                        "2026-11-22T19:40:01.502Z"]
    assert final == sent[-1]["object"]


@pytest.mark.parametrize("order", [(0, 1, 2), (0, 2, 1), (2, 1, 0), (1, 0, 2)])
async def test_a_follower_ends_with_the_final_version_in_any_order_of_arrival(pair, order) -> None:
    a, b = pair
    sent, final = await edited_within_one_second(b)
    processor, _ = processor_for(a)
    for index in order:
        verdict = await processor.process(sent[index])
        assert verdict.state is InboxState.DONE, verdict.reason
    assert (await stored(a, final["id"])).document == final


@pytest.mark.parametrize("first", [0, 1])
async def test_two_versions_with_the_same_updated_converge_whatever_arrives_first(
    pair, first: int
) -> None:
    # Software that writes whole seconds may send two versions with one ``updated``:
    # every receiver keeps the same one (the greater content hash), not the last arrival.
    from node.remote_objects import content_hash

    a, b = pair
    processor, _ = processor_for(a)
    versions = [article(b, "gleichzeitig", updated="2026-11-22T19:40:01Z", name=name)
                for name in ("Erste", "Zweite")]
    winner = max(versions, key=content_hash)
    for document in (versions[first], versions[1 - first]):
        await processor.process(activity(b.actor, "Update", document))
    assert (await stored(a, winner["id"])).document == winner


# --- leaving and following again: deliveries side by side ---------------------------------


async def test_leaving_and_following_again_keeps_the_follow_in_every_order_of_arrival(pair) -> None:
    # Undo(F1), F2, Undo(F2), F3: two churns whose deliveries overtake each other (a
    # restarted sender sends its backlog side by side). Before the receipts, F2 arriving
    # after F3 overwrote the follower's Follow id, and Undo(F2) then removed the follower.
    a, b = pair
    processor, _ = processor_for(a)
    current = activity(b.actor, "Follow", a.actor)
    await processor.process(current)
    for order in itertools.permutations(range(4)):
        again, last = (activity(b.actor, "Follow", a.actor) for _ in range(2))
        churn = [activity(b.actor, "Undo", current), again, activity(b.actor, "Undo", again), last]
        for index in order:
            verdict = await processor.process(churn[index])
            assert verdict.state is InboxState.DONE, (order, verdict.reason)
        [row] = await a.rows(Follower)
        assert row.follow_activity_uri == last["id"], order
        current = last


async def test_leaving_for_good_removes_the_follower_in_every_order_of_arrival(pair) -> None:
    a, b = pair
    processor, _ = processor_for(a)
    for order in itertools.permutations(range(3)):
        first, again = (activity(b.actor, "Follow", a.actor) for _ in range(2))
        await processor.process(first)
        churn = [activity(b.actor, "Undo", first), again, activity(b.actor, "Undo", again)]
        for index in order:
            await processor.process(churn[index])
        assert await a.rows(Follower) == [], order


async def test_a_follow_undone_before_it_arrives_is_ignored_also_for_a_bare_undo(pair) -> None:
    a, b = pair
    processor, _ = processor_for(a)
    follow = activity(b.actor, "Follow", a.actor)
    verdict = await processor.process(activity(b.actor, "Undo", follow["id"]))  # id only
    assert verdict.state is InboxState.DONE
    verdict = await processor.process(follow)
    assert verdict.state is InboxState.DONE and "undone before it arrived" in verdict.reason
    assert await a.rows(Follower) == []
    assert await a.rows(Activity, Activity.type == "Accept") == []
    # A bare Undo of a received Follow removes the follower; it does not just drop the receipt.
    again = activity(b.actor, "Follow", a.actor)
    await processor.process(again)
    await processor.process(activity(b.actor, "Undo", again["id"]))
    assert await a.rows(Follower) == []
    assert (await processor.process(again)).reason.endswith("ignored")  # delivered twice
    assert await a.rows(Follower) == []


async def test_someone_else_cannot_undo_a_follow(pair) -> None:
    a, b = pair
    processor, _ = processor_for(a)
    follow = activity(b.actor, "Follow", a.actor)
    intruder = f"{b.url}/users/intruder"  # same origin, another actor
    await processor.process(activity(intruder, "Undo", follow["id"]))  # before the Follow
    await processor.process(follow)
    assert [row.actor_uri for row in await a.rows(Follower)] == [b.actor]


# --- remote objects and the vocabulary shapes ---------------------------------------------


async def authored_practice(origin: RunningNode, slug: str = "geprueft") -> dict:
    """A practice as the origin signed it (passes the shapes)."""
    uri = await publish(origin, "practice", slug, "Geprüfte Praxis", body="Text")
    [row] = await origin.rows(Activity, Activity.object_uri == uri, Activity.type == "Create")
    return row.document["object"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda d: d.pop("topic"), "topic"),
        (lambda d: d.update(status="fertig"), "status"),
        (lambda d: d.update(name=""), "name"),
        # our type, but a context that does not define it: not a Praxisnetz object at all
        (lambda d: d.update({"@context": AS_CONTEXT}), "not defined"),
    ],
)
async def test_an_incoming_contribution_that_fails_the_shapes_is_refused(pair, change,
                                                                         named) -> None:
    a, b = pair
    processor, _ = processor_for(a)
    document = copy.deepcopy(await authored_practice(b))
    document.pop("proof")
    change(document)
    verdict = await processor.process(activity(b.actor, "Create", document))
    assert verdict.state is InboxState.REJECTED
    assert "refused_shapes" in verdict.reason and named in verdict.reason, verdict.reason
    assert await stored(a, document["id"]) is None


async def test_an_off_shape_update_leaves_the_stored_version(pair) -> None:
    from vocab.validate import validate

    a, b = pair
    processor, _ = processor_for(a)
    good = await authored_practice(b)
    assert (await processor.process(activity(b.actor, "Create", good))).state is InboxState.DONE
    worse = {**copy.deepcopy(good), "updated": "2030-01-01T00:00:00.000Z", "step": "kein Schritt"}
    worse.pop("status")
    verdict = await processor.process(activity(b.actor, "Update", worse))
    assert verdict.state is InboxState.REJECTED and "status" in verdict.reason, verdict.reason
    row = await stored(a, good["id"])
    assert row.document == good and validate(row.document, row.uri).valid


async def test_an_embedded_object_is_checked_and_stored_with_the_activity_context(pair) -> None:
    from vocab.validate import validate

    a, b = pair
    processor, _ = processor_for(a)
    document = copy.deepcopy(await authored_practice(b))
    context = document.pop("@context")
    document.pop("proof")
    create = {**activity(b.actor, "Create", document), "@context": context}
    verdict = await processor.process(create)
    assert verdict.state is InboxState.DONE, verdict.reason
    row = await stored(a, document["id"])
    assert row.document["@context"] == context and validate(row.document, row.uri).valid
    # A Note is not one of our types: it is stored as sent, unchecked.
    note = {"id": f"{b.url}/notes/1", "type": "Note", "attributedTo": b.actor, "content": "x"}
    assert (await processor.process(activity(b.actor, "Create", note))).state is InboxState.DONE
