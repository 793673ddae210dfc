"""The hub role end to end on loopback: three members and a hub, plus a node that only
follows a topic group.

Membership (a member follows the hub, is approved, is followed back), aggregation
(a contribution reaches the index: SPARQL over HTTP finds it), the editorial flow
(placed and accepted, edition 1 frozen; manifest hash and every proof verify; PDF,
changelog and RDF dump exist), a second edition with a changelog against the first,
and a topic Group's Announce whose inner Create a non-member verifies by the
member's own proof.
"""

from __future__ import annotations

import aiohttp
import pytest

from federation.keys import parse_actor_keys
from federation.proofs import verify_document
from node.hub.changelog import ContributionChangeKind as Change
from node.hub.edition_store import changelog_of, read_rdf_dump
from node.hub.editions import verify_edition
from node.hub.tables import HubMember, TopicFollower
from node.storage.models import Following, InboxItem, RemoteObject
from tests.engine_support import RunningNode, eventually, follow, node_config, publish, start_node
from tests.hub_node_support import HubApi, issue_token, key_lookup_for, start_hub

pytestmark = pytest.mark.slow

SECTION = "e-akte-einfuehrung"


async def _member_state(hub: RunningNode, actor: str) -> str | None:
    rows = await hub.rows(HubMember, HubMember.actor_uri == actor)
    return rows[0].state if rows else None


async def _following_state(node: RunningNode, target: str) -> str | None:
    rows = await node.rows(Following, Following.target_uri == target)
    return rows[0].state if rows else None


async def _stored(node: RunningNode, uri: str) -> RemoteObject | None:
    rows = await node.rows(RemoteObject, RemoteObject.uri == uri)
    return rows[0] if rows and not rows[0].deleted else None


async def _sparql_finds(http: aiohttp.ClientSession, hub: RunningNode, uri: str) -> bool:
    query = f"ASK {{ GRAPH ?member {{ <{uri}> ?p ?o }} }}"
    async with http.get(f"{hub.url}/sparql", params={"query": query},
                        headers={"Accept": "application/sparql-results+json"}) as response:
        assert response.status == 200, await response.text()
        return (await response.json(content_type=None))["boolean"]


async def test_hub_membership_editions_and_topic_groups(tmp_path) -> None:
    hub = await start_hub(tmp_path)
    a = await start_node(node_config(tmp_path, "guetersloh"))
    b = await start_node(node_config(tmp_path, "dueren"))
    c = await start_node(node_config(tmp_path, "cochem"))
    reader = await start_node(node_config(tmp_path, "leser"))
    try:
        async with aiohttp.ClientSession() as http:
            api = HubApi(http, hub, await issue_token(hub))
            first = await _members_join_and_publish(http, hub, (a, b, c))
            announced = await _topic_group_relays(hub, a, reader)
            await _late_topic_follower_backfills(tmp_path, hub, announced)
            await _edition_one(http, api, hub, a, [first, announced])
            await _edition_two(http, api, hub, (a, b, c), first)
    finally:
        for node in (reader, c, b, a, hub):
            await node.stop()


async def _members_join_and_publish(http: aiohttp.ClientSession, hub: RunningNode,
                                    members: tuple[RunningNode, ...]) -> str:
    a = members[0]
    # A publishes before joining: backfill brings it once the hub follows back.
    first = await publish(a, "practice", "e-akte-bauamt", "E-Akte im Bauamt",
                          body="Wir haben die Akten digitalisiert.", topics=("e-akte",),
                          status="in-operation")
    for member in members:
        await follow(member, hub.actor)
        assert await eventually(lambda m=member: _is(_member_state(hub, m.actor), "approved"))
        assert await eventually(lambda m=member: _is(_following_state(hub, m.actor), "accepted"))
        assert await eventually(lambda m=member: _is(_following_state(m, hub.actor), "accepted"))
    assert await eventually(lambda: _stored(hub, first), timeout=15)
    assert await eventually(lambda: _sparql_finds(http, hub, first), timeout=15)
    async with http.get(f"{hub.url}/members", headers={"Accept": "application/json"}) as response:
        listed = {m["actor"]: m for m in (await response.json())["members"]}
    assert listed[a.actor]["state"] == "approved" and listed[a.actor]["name"] == a.config.name
    assert all(listed[m.actor]["state"] == "approved" for m in members)
    async with http.get(f"{hub.url}/search", params={"q": "Akten"},
                        headers={"Accept": "application/json"}) as response:
        assert first in {item["uri"] for item in (await response.json())["items"]}
    pages = {"/members": a.config.name, "/search?q=Akten": "E-Akte im Bauamt"}
    for path, expected in pages.items():  # the same routes give browsers a page
        async with http.get(hub.url + path, headers={"Accept": "text/html"}) as response:
            assert response.content_type == "text/html", path
            assert expected in await response.text(), path
    return first


async def _topic_group_relays(hub: RunningNode, a: RunningNode, reader: RunningNode) -> str:
    group = f"{hub.url}/topics/e-akte"
    await follow(reader, f"e-akte@{hub.config.domain}")  # found by WebFinger
    assert await eventually(lambda: _is(_following_state(reader, group), "accepted"))
    assert await hub.rows(TopicFollower, TopicFollower.actor_uri == reader.actor)
    uri = await publish(a, "practice", "scan-posteingang", "Scannen im Posteingang",
                        body="Ersetzendes Scannen.", topics=("e-akte",), status="piloting")
    items = await eventually(lambda: _announces(reader, group))
    announce = items[0].raw
    assert announce["actor"] == group
    inner = announce["object"]
    assert inner["type"] == "Create" and inner["actor"] == a.actor and inner["object"]["id"] == uri
    keys = {a.keys.ed25519.key_id: None}
    result = verify_document(inner, _public(a, keys))
    assert result.ok and result.owner == a.actor  # the member's own proof, not the hub's
    stored = await eventually(lambda: _stored(reader, uri))
    assert stored.attributed_to == a.actor  # the reader stored it without being a member
    return uri


async def _late_topic_follower_backfills(tmp_path, hub: RunningNode, uri: str) -> None:
    """A follower that arrives later reads the group's outbox: the Announces' inner
    Creates are verified by the member's proof and stored."""
    late = await start_node(node_config(tmp_path, "spaet"))
    try:
        await follow(late, f"{hub.url}/topics/e-akte")
        stored = await eventually(lambda: _stored(late, uri), timeout=15)
        assert stored.document["proof"]["verificationMethod"].startswith(stored.attributed_to)
    finally:
        await late.stop()


async def _announces(node: RunningNode, group: str) -> list[InboxItem]:
    rows = await node.rows(InboxItem, InboxItem.actor == group)
    return [row for row in rows if row.raw.get("type") == "Announce"]


def _public(node: RunningNode, _keys: dict) -> object:
    from federation.keys import PublicKeyInfo

    key = node.keys.ed25519
    return PublicKeyInfo(key.key_id, node.actor, key.private_key.public_key())


async def _edition_one(http: aiohttp.ClientSession, api: HubApi, hub: RunningNode,
                       a: RunningNode, uris: list[str]) -> None:
    await eventually(lambda: _triage_has(api, uris))
    for order, uri in enumerate(uris):
        status, body = await api.call("POST", "/api/hub/placements", {
            "contribution": uri, "sections": [SECTION], "decision": "accept",
            "note": "passt", "order": order})
        assert status == 200, body
    status, body = await api.call("POST", "/api/hub/editions", {"confirm": True, "publish": True})
    assert status == 201, body
    assert body["number"] == 1 and body["contributions"] == 2
    async with http.get(f"{hub.url}/handbook/editions/1/manifest.json") as response:
        manifest = await response.json(content_type=None)
    keys = await key_lookup_for(http, [hub.actor, a.actor])
    verification = verify_edition(manifest, keys.get, expected_hash=body["manifestHash"])
    assert verification.ok, verification.problems
    edition = await eventually(lambda: _stored(a, f"{hub.url}/handbook/editions/1"))
    assert edition.kind == "Edition" and edition.attributed_to == hub.actor  # announced
    async with http.get(f"{hub.url}/handbook/editions/1.pdf") as response:
        assert response.status == 200 and (await response.read()).startswith(b"%PDF")
    async with http.get(f"{hub.url}/handbook/editions/1/changelog") as response:
        assert response.status == 200 and "E-Akte im Bauamt" in await response.text()
    async with http.get(f"{hub.url}/handbook/editions/1.ttl") as response:
        assert response.status == 200
        assert "https://w3id.org/praxisnetz#editionNumber" in await response.text()
    async with http.get(f"{hub.url}/handbook/editions/1/all.html") as response:
        assert response.status == 200 and a.config.name in await response.text()


async def _edition_two(http: aiohttp.ClientSession, api: HubApi, hub: RunningNode,
                       members: tuple[RunningNode, ...], first: str) -> None:
    a, b, c = members
    await publish(a, "practice", "e-akte-bauamt", "E-Akte im Bauamt (2. Fassung)",
                  body="Jetzt auch im Ordnungsamt.", topics=("e-akte",), status="in-operation")
    added = await publish(b, "experience", "e-akte-erfahrung", "Unsere E-Akte",
                          body="Es hat gedauert.", topics=("e-akte",), about=first)
    await eventually(lambda: _named(hub, first, "E-Akte im Bauamt (2. Fassung)"))
    third = await publish(c, "practice", "e-akte-kreis", "E-Akte im Kreishaus",
                          body="Der Kreis arbeitet mit.", topics=("e-akte",), status="piloting")
    await eventually(lambda: _triage_has(api, [added, third]))
    status, body = await api.call("POST", "/api/hub/placements", {
        "contribution": added, "sections": [SECTION, "e-akte"], "decision": "accept"})
    assert status == 200, body
    status, body = await api.call("POST", "/api/hub/placements", {
        "contribution": third, "sections": [SECTION], "decision": "accept"})
    assert status == 200, body
    status, body = await api.call("POST", "/api/hub/editions", {"confirm": True})
    assert status == 201 and body["number"] == 2, body
    async with http.get(f"{hub.url}/handbook/editions/2/changelog") as response:
        text = await response.text()
    assert "Unsere E-Akte" in text and "2. Fassung" in text and "Kreishaus" in text
    async with hub.sessions()() as session:
        log = await changelog_of(session, 2)
    changes = {(c.kind, c.uri) for c in log.contributions}
    assert changes == {(Change.ADDED, added), (Change.ADDED, third),
                       (Change.UPDATED, first)}  # exactly these
    [update] = log.contributions_of(Change.UPDATED)
    assert any("Ordnungsamt" in line for line in update.diff)  # with a text diff
    async with http.get(f"{hub.url}/handbook/editions/1/manifest.json") as response:
        old = await response.json(content_type=None)
    assert old["editionNumber"] == 1  # edition 1 is unchanged by the second freeze
    await _dump_verifies_alone(http, hub, 2, body["manifestHash"])


async def _dump_verifies_alone(http: aiohttp.ClientSession, hub: RunningNode, number: int,
                               manifest_hash: str) -> None:
    """Every proof in the RDF dump verifies with nothing but the dump (no fetching)."""
    for suffix, media_type in (("nq", "application/n-quads"), ("ttl", "text/turtle")):
        async with http.get(f"{hub.url}/handbook/editions/{number}.{suffix}") as response:
            data = await response.read()
        manifest, signers = read_rdf_dump(data, media_type)
        keys = {info.key_id: info for doc in signers for info in parse_actor_keys(doc)}
        verification = verify_edition(manifest, keys.get, expected_hash=manifest_hash)
        assert verification.ok and len(manifest["includedContributions"]) == 4, verification


async def _triage_has(api: HubApi, uris: list[str]) -> bool:
    status, body = await api.call("GET", "/api/hub/triage")
    assert status == 200, body
    return set(uris) <= {item["uri"] for item in body["items"]}


async def _named(node: RunningNode, uri: str, name: str) -> bool:
    row = await _stored(node, uri)
    return row is not None and row.document.get("name") == name


async def _is(value_coroutine, expected: str) -> bool:
    return (await value_coroutine) == expected
