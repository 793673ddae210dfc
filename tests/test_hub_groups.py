"""Topic groups (FEP-1b12): the topics, their actors and WebFinger handles, the key ids
they sign with, what a receiver unwraps from an Announce, and that only approved
members' contributions are relayed."""

from __future__ import annotations

import aiohttp
import pytest

import vocab
from federation.keys import SigningKey, generate_ed25519_key, generate_rsa_key
from node.appkeys import NodeKeys
from node.config import NodeConfig
from node.hub.groups import TopicGroups, announce_id, load_topics, topic_slugs_of
from node.hub.runtime import HUB
from node.hub.tables import TopicFollower
from node.inbox_processing import carried_object
from node.storage.models import Activity, Following, InboxItem, InboxState
from node.workers import build_workers
from tests.engine_support import (
    eventually,
    follow,
    node_config,
    post_signed,
    publish,
    start_node,
)
from tests.hub_node_support import (
    CHURN_ORDERS,
    hub_and_member_without_workers,
    start_hub,
    unsigned_activity,
)

TOPIC = vocab.TOPICS_NAMESPACE


@pytest.fixture(scope="module")
def groups() -> TopicGroups:
    config = NodeConfig(data_dir=".", base_url="https://hub.example:8443", name="Hub",
                        slug="kochbuch")
    return TopicGroups(config, load_topics())


def test_every_topic_of_the_scheme_is_a_group_with_german_label(groups) -> None:
    assert {t.slug for t in groups.topics} == set(vocab.TOPIC_SLUGS)
    e_file = groups.get("e-akte")
    assert e_file is not None and e_file.label_de.startswith("E-Akte")
    assert groups.url("e-akte") == "https://hub.example:8443/topics/e-akte"
    assert groups.handle("e-akte") == "e-akte@hub.example:8443"


def test_webfinger_resources_name_only_our_topics(groups) -> None:
    assert groups.slug_for_resource("acct:e-akte@hub.example:8443") == "e-akte"
    assert groups.slug_for_resource("acct:e-akte@HUB.example:8443") == "e-akte"
    assert groups.slug_for_resource("https://hub.example:8443/topics/e-akte") == "e-akte"
    for other in ("acct:e-akte@evil.example", "acct:unbekannt@hub.example:8443",
                  "https://evil.example/topics/e-akte", "https://hub.example:8443/topics/",
                  "https://hub.example:8443/topics/e-akte/../actor", ""):
        assert groups.slug_for_resource(other) is None, other


def test_topics_of_a_contribution() -> None:
    document = {"topic": [TOPIC + "e-akte", {"id": TOPIC + "e-payment"}, "topics:strategie",
                          TOPIC + "e-akte", "https://evil.example/topics#e-akte", 42]}
    assert topic_slugs_of(document) == ["e-akte", "e-payment", "strategie"]
    assert topic_slugs_of({}) == [] and topic_slugs_of({"topic": TOPIC + "e-akte"}) == ["e-akte"]


def test_announce_ids_are_stable_per_group_andunsigned_activity() -> None:
    one = announce_id("https://hub.example/topics/e-akte", "https://a.example/activities/1")
    assert one == announce_id("https://hub.example/topics/e-akte", "https://a.example/activities/1")
    assert one != announce_id("https://hub.example/topics/e-akte", "https://a.example/activities/2")
    assert one.startswith("https://hub.example/topics/e-akte/announces/")


def test_group_documents_publish_the_hub_keys_under_their_own_ids(groups) -> None:
    keys = NodeKeys(SigningKey("https://hub.example:8443/actor#main-key", generate_rsa_key()),
                    SigningKey("https://hub.example:8443/actor#ed25519-key", generate_ed25519_key()))
    url = groups.url("e-akte")
    document = groups.actor_document("e-akte", keys)
    assert document["type"] == "Group" and document["inbox"] == f"{url}/inbox"
    assert document["publicKey"]["id"] == f"{url}#main-key"
    assert document["publicKey"]["owner"] == url
    assert document["assertionMethod"][0]["controller"] == url
    assert keys.rsa_for(url).key_id == f"{url}#main-key"
    assert keys.rsa_for(url).private_key is keys.rsa.private_key
    assert keys.rsa_for("https://hub.example:8443/actor") is keys.rsa
    assert keys.rsa_for("") is keys.rsa
    assert groups.signing_key("e-akte", keys).key_id == f"{url}#ed25519-key"


def test_a_relayed_create_stands_for_its_object_only_when_its_actor_wrote_it() -> None:
    practice = {"id": "https://a.example/practices/x", "type": "Practice",
                "attributedTo": "https://a.example/actor"}
    create = {"type": "Create", "actor": "https://a.example/actor", "object": practice}
    assert carried_object(create) == practice
    assert carried_object(practice) == practice
    forged = {**create, "object": {**practice, "attributedTo": "https://b.example/actor"}}
    assert carried_object(forged) is None
    assert carried_object({**create, "object": practice["id"]}) is None


@pytest.mark.slow
async def test_topics_page_webfinger_and_only_members_are_relayed(tmp_path) -> None:
    hub = await start_hub(tmp_path)
    reader = await start_node(node_config(tmp_path, "leser"))
    stranger = await start_node(node_config(tmp_path, "fremd"))
    group = f"{hub.url}/topics/e-akte"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{hub.url}/topics", headers={"Accept": "application/json"}) as r:
                listed = {t["slug"]: t for t in (await r.json())["topics"]}
            assert listed["e-akte"]["handle"] == f"@e-akte@{hub.config.domain}"
            async with http.get(f"{hub.url}/topics", headers={"Accept": "text/html"}) as r:
                assert f"@e-akte@{hub.config.domain}" in await r.text()
            finger = f"{hub.url}/.well-known/webfinger"
            async with http.get(finger, params={"resource": f"acct:e-akte@{hub.config.domain}"}) as r:
                assert r.status == 200 and (await r.json(content_type=None))["links"][0]["href"] == group
            async with http.get(finger, params={"resource": f"acct:kochbuch@{hub.config.domain}"}) as r:
                assert (await r.json(content_type=None))["links"][0]["href"] == hub.actor
            async with http.get(finger, params={"resource": f"acct:nix@{hub.config.domain}"}) as r:
                assert r.status == 404
            async with http.get(f"{hub.url}/topics/nix") as r:
                assert r.status == 404

            await follow(reader, group)
            assert await eventually(lambda: _accepted(reader, group))
            async with http.get(f"{group}/followers",
                                headers={"Accept": "application/activity+json"}) as r:
                assert (await r.json(content_type=None))["totalItems"] == 1
            # A stranger (not a member) sends its Create straight to the hub's inbox.
            uri = await publish(stranger, "practice", "fremd", "Fremde Praxis", body="x",
                                topics=("e-akte",))
            [create] = await stranger.rows(Activity, Activity.type == "Create",
                                           Activity.object_uri == uri)
            status, _, text = await post_signed(http, f"{hub.url}/inbox", create.document,
                                                stranger.keys.rsa)
            assert status == 202, text
            await eventually(lambda: _processed(hub, create.uri))
            assert not await hub.rows(Activity, Activity.type == "Announce")
            async with http.get(f"{group}/outbox", headers={"Accept": "application/activity+json"}) as r:
                assert (await r.json(content_type=None))["totalItems"] == 0
            # A Follow of a topic that does not exist is refused, and makes no follower.
            bogus = {"@context": "https://www.w3.org/ns/activitystreams", "type": "Follow",
                     "id": f"{stranger.url}/activities/follow-nix", "actor": stranger.actor,
                     "object": f"{hub.url}/topics/nix"}
            status, _, text = await post_signed(http, f"{hub.url}/inbox", bogus, stranger.keys.rsa)
            assert status == 202, text
            await eventually(lambda: _processed(hub, bogus["id"]))
            [item] = await hub.rows(InboxItem, InboxItem.activity_uri == bogus["id"])
            assert item.state == "rejected"
            assert not await hub.rows(TopicFollower, TopicFollower.actor_uri == stranger.actor)
    finally:
        for node in (stranger, reader, hub):
            await node.stop()


async def _accepted(node, target: str) -> bool:
    rows = await node.rows(Following, Following.target_uri == target)
    return bool(rows) and rows[0].state == "accepted"


async def _processed(node, activity_uri: str) -> bool:
    rows = await node.rows(InboxItem, InboxItem.activity_uri == activity_uri)
    return bool(rows) and rows[0].state in ("done", "rejected")


# CHURN_ORDERS of a topic's Follows: before the receipts, "overtaken" lost the follower.


async def _topic_followers(hub, actor: str) -> list[TopicFollower]:
    return await hub.rows(TopicFollower, TopicFollower.actor_uri == actor)


@pytest.mark.slow
@pytest.mark.parametrize("order", list(CHURN_ORDERS))
async def test_leaving_and_joining_a_topic_again_at_once_keeps_the_follower(tmp_path, order) -> None:
    hub, member = await hub_and_member_without_workers(tmp_path)
    try:
        processor = build_workers(hub.app).processor  # with the hub's inbox hook
        group = hub.app[HUB].groups.url("e-akte")
        first = unsigned_activity(member.actor, "Follow", group)
        assert (await processor.process(first)).state is InboxState.DONE
        again, last = (unsigned_activity(member.actor, "Follow", group) for _ in range(2))
        churn = [unsigned_activity(member.actor, "Undo", first), again,
                 unsigned_activity(member.actor, "Undo", again), last]
        for index in CHURN_ORDERS[order]:
            verdict = await processor.process(churn[index])
            assert verdict.state is InboxState.DONE, verdict.reason
        [row] = await _topic_followers(hub, member.actor)
        assert row.topic == "e-akte" and row.follow_activity_uri == last["id"]

        await processor.process(unsigned_activity(member.actor, "Undo", last))  # now it leaves
        assert await _topic_followers(hub, member.actor) == []
        late = await processor.process(last)  # its Follow, delivered again, changes nothing
        assert "undone before it arrived" in late.reason
        assert await _topic_followers(hub, member.actor) == []
    finally:
        for node in (member, hub):
            await node.stop()


@pytest.mark.slow
async def test_an_undo_of_another_actors_topic_follow_is_refused(tmp_path) -> None:
    hub, member = await hub_and_member_without_workers(tmp_path)
    try:
        processor = build_workers(hub.app).processor
        group = hub.app[HUB].groups.url("e-akte")
        follow_of_member = unsigned_activity(member.actor, "Follow", group)
        assert (await processor.process(follow_of_member)).state is InboxState.DONE
        # Someone else claims to undo the member's Follow (an object on another origin).
        forged = unsigned_activity("http://127.0.0.9:1/actor", "Undo", follow_of_member)
        verdict = await processor.process(forged)
        assert verdict.state is InboxState.REJECTED and "foreign origin" in verdict.reason
        assert len(await _topic_followers(hub, member.actor)) == 1
    finally:
        for node in (member, hub):
            await node.stop()


def test_group_documents_follow_the_hub_ed25519_key_versions(groups) -> None:
    from federation.keys import Ed25519Version
    from node.appkeys import KeyPair

    hub = "https://hub.example:8443/actor"
    old, new = generate_ed25519_key(), generate_ed25519_key()
    keys = NodeKeys.from_pair(KeyPair(
        SigningKey(f"{hub}#main-key", generate_rsa_key()), SigningKey(f"{hub}#ed25519-key-2", new),
        ed25519_version=2, ed25519_retired=(Ed25519Version(1, old.public_key()),)))
    url = groups.url("e-akte")
    document = groups.actor_document("e-akte", keys)
    assert [entry["id"] for entry in document["assertionMethod"]] == [
        f"{url}#ed25519-key-2", f"{url}#ed25519-key"]
    assert groups.signing_key("e-akte", keys).key_id == f"{url}#ed25519-key-2"
    assert groups.signing_key("e-akte", keys).private_key is new
