"""Public endpoints: WebFinger, NodeInfo, actor, collections, objects with content
negotiation, replies, the Atom feed and the vocabulary files."""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET

import pytest
import rdflib
from aiohttp.test_utils import TestClient

from federation.keys import KeyAlgorithm, parse_actor_keys
from federation.proofs import verify_document
from node import appkeys
from node.app import create_app
from node.authoring import create_contribution, delete_contribution
from node.contribution_input import parse_contribution_input
from node.routes.negotiation import Representation, negotiate
from node.storage.models import Follower, Following, RemoteObject
from tests.node_support import START, MovableClock, author_for_app, make_node, practice_input

AS_JSONLD = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
BASE = "https://guetersloh.example"
PRACTICE = f"{BASE}/practices/e-akte-bauamt"


@pytest.fixture
async def client(aiohttp_client, tmp_path) -> TestClient:
    config = make_node(tmp_path)
    return await aiohttp_client(create_app(config, clock=MovableClock(), start_workers=False))


async def _publish(client: TestClient, count: int = 1, **changes) -> None:
    app = client.server.app
    author = author_for_app(app)
    for number in range(count):
        slug = "e-akte-bauamt" if count == 1 else f"praxis-{number:02d}"
        contribution = parse_contribution_input(practice_input(slug, **changes))
        async with app[appkeys.SESSION_MAKER].begin() as session:
            await create_contribution(session, author, contribution)
        app[appkeys.CLOCK].advance(60)


async def _json(client: TestClient, path: str, accept: str = "application/activity+json"):
    response = await client.get(path, headers={"Accept": accept})
    assert response.status == 200, await response.text()
    return response, json.loads(await response.read())


async def test_webfinger_finds_the_actor_by_handle_and_refuses_others(client: TestClient) -> None:
    response, jrd = await _json(
        client, "/.well-known/webfinger?resource=acct:guetersloh@guetersloh.example"
    )
    assert response.content_type == "application/jrd+json"
    assert jrd["subject"] == "acct:guetersloh@guetersloh.example"
    assert {"rel": "self", "type": "application/activity+json", "href": f"{BASE}/actor"} in jrd[
        "links"
    ]
    assert (
        await client.get("/.well-known/webfinger?resource=acct:other@guetersloh.example")
    ).status == 404
    assert (await client.get("/.well-known/webfinger")).status == 400


async def test_nodeinfo_21_counts_local_posts(client: TestClient) -> None:
    await _publish(client)
    _, links = await _json(client, "/.well-known/nodeinfo", "application/json")
    href = links["links"][0]["href"]
    assert href == f"{BASE}/nodeinfo/2.1"
    response, info = await _json(client, "/nodeinfo/2.1", "application/json")
    assert (
        'profile="http://nodeinfo.diaspora.software/ns/schema/2.1#"'
        in response.headers["Content-Type"]
    )
    assert info["version"] == "2.1" and info["protocols"] == ["activitypub"]
    assert info["software"]["name"] == "praxisnetz"
    assert info["usage"]["localPosts"] == 1
    assert info["metadata"]["municipalityKey"] == "05754008"


async def test_actor_publishes_rsa_public_key_and_ed25519_multikey(client: TestClient) -> None:
    response, actor = await _json(client, "/actor")
    assert response.content_type == "application/activity+json"
    assert actor["id"] == f"{BASE}/actor" and actor["type"] == "Organization"
    assert actor["inbox"] == f"{BASE}/actor/inbox"
    assert actor["endpoints"]["sharedInbox"] == f"{BASE}/inbox"
    assert actor["outbox"] == f"{BASE}/actor/outbox"
    assert actor["publicKey"]["id"] == f"{BASE}/actor#main-key"
    assert actor["assertionMethod"][0]["type"] == "Multikey"
    keys = {key.key_id: key.algorithm for key in parse_actor_keys(actor)}
    assert keys == {
        f"{BASE}/actor#main-key": KeyAlgorithm.RSA,
        f"{BASE}/actor#ed25519-key": KeyAlgorithm.ED25519,
    }
    _, same = await _json(client, "/actor", AS_JSONLD)
    assert same == actor
    _, any_type = await _json(client, "/actor", "*/*")
    assert any_type == actor  # servers that send */* get the actor, not a web page
    browser = await client.get("/actor", headers={"Accept": "text/html"}, allow_redirects=False)
    assert browser.status == 303 and browser.headers["Location"] == "/"
    home = await client.get("/", headers={"Accept": "text/html"})
    assert "Stadt Guetersloh" in await home.text()


async def test_outbox_is_paged_newest_first_with_next_links(client: TestClient) -> None:
    await _publish(client, 25)
    _, collection = await _json(client, "/actor/outbox")
    assert collection["type"] == "OrderedCollection" and collection["totalItems"] == 25
    _, first = await _json(client, collection["first"].removeprefix(BASE))
    assert first["type"] == "OrderedCollectionPage" and first["partOf"] == f"{BASE}/actor/outbox"
    slugs = [item["object"]["id"].rsplit("/", 1)[1] for item in first["orderedItems"]]
    assert slugs == [f"praxis-{n:02d}" for n in range(24, 4, -1)]
    _, second = await _json(client, first["next"].removeprefix(BASE))
    assert [item["object"]["id"].rsplit("/", 1)[1] for item in second["orderedItems"]] == [
        f"praxis-{n:02d}" for n in range(4, -1, -1)
    ]
    assert "next" not in second
    assert all(item["type"] == "Create" for item in first["orderedItems"] + second["orderedItems"])
    assert (await client.get("/actor/outbox?before=abc")).status == 400


async def test_followers_and_following_list_only_accepted(client: TestClient) -> None:
    async with client.server.app[appkeys.SESSION_MAKER].begin() as session:
        session.add_all([
            Follower(actor_uri="https://b.example/actor", inbox="https://b.example/actor/inbox", state="accepted", created_at=START),
            Follower(actor_uri="https://c.example/actor", inbox="https://c.example/actor/inbox", state="pending", created_at=START),
            Following(target_uri="https://d.example/actor", state="accepted", created_at=START),
            Following(target_uri="https://e.example/actor", state="requested", created_at=START),
        ])  # fmt: skip
    _, followers = await _json(client, "/actor/followers")
    assert followers["totalItems"] == 1
    _, page = await _json(client, "/actor/followers?page=true")
    assert page["orderedItems"] == ["https://b.example/actor"]
    _, following = await _json(client, "/actor/following?page=true")
    assert following["orderedItems"] == ["https://d.example/actor"]


async def test_object_url_negotiates_html_json_ld_and_turtle(client: TestClient) -> None:
    await _publish(client)
    path = "/practices/e-akte-bauamt"
    html = await client.get(
        path, headers={"Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"}
    )
    assert html.status == 200 and html.content_type == "text/html"
    assert "<strong>Bauakten</strong>" in await html.text()
    documents = []
    for accept, content_type in (
        ("application/activity+json", "application/activity+json"),
        (AS_JSONLD, "application/ld+json"),
        ("application/ld+json", "application/ld+json"),
    ):
        response, document = await _json(client, path, accept)
        assert response.content_type == content_type
        assert response.headers["Vary"] == "Accept"
        documents.append(document)
    assert documents[0] == documents[1] == documents[2]
    assert documents[0]["id"] == PRACTICE and documents[0]["type"] == ["Article", "Practice"]
    turtle = await client.get(path, headers={"Accept": "text/turtle"})
    assert turtle.content_type == "text/turtle"
    graph = rdflib.Graph().parse(data=await turtle.text(), format="turtle")
    subject = rdflib.URIRef(PRACTICE)
    assert (
        subject,
        rdflib.RDF.type,
        rdflib.URIRef("https://w3id.org/praxisnetz#Practice"),
    ) in graph
    assert (subject, rdflib.URIRef("https://w3id.org/praxisnetz#topic"),
            rdflib.URIRef("https://w3id.org/praxisnetz/topics#e-akte")) in graph  # fmt: skip


async def test_unknown_media_type_gets_406(client: TestClient) -> None:
    await _publish(client)
    response = await client.get("/practices/e-akte-bauamt", headers={"Accept": "application/xml"})
    assert response.status == 406
    assert "text/turtle" in await response.text()


async def test_served_document_carries_a_proof_the_actor_key_verifies(client: TestClient) -> None:
    await _publish(client)
    _, actor = await _json(client, "/actor")
    _, document = await _json(client, "/practices/e-akte-bauamt")
    ed_key = next(k for k in parse_actor_keys(actor) if k.algorithm is KeyAlgorithm.ED25519)
    assert verify_document(document, ed_key).ok
    document["name"] = "Tampered"
    assert not verify_document(document, ed_key).ok


async def test_deleted_object_is_gone_with_a_tombstone(client: TestClient) -> None:
    await _publish(client)
    app = client.server.app
    _, before = await _json(client, "/actor/outbox?page=true")
    create_path = before["orderedItems"][0]["id"].removeprefix(BASE)
    assert (await client.get(create_path)).status == 200
    async with app[appkeys.SESSION_MAKER].begin() as session:
        await delete_contribution(session, author_for_app(app), "e-akte-bauamt")
    # the outbox and the activity URL must not republish what was deleted
    _, after = await _json(client, "/actor/outbox?page=true")
    assert [item["type"] for item in after["orderedItems"]] == ["Delete"]
    assert after["orderedItems"][0]["object"]["id"] == PRACTICE
    assert (await client.get(create_path)).status == 410
    response = await client.get(
        "/practices/e-akte-bauamt", headers={"Accept": "application/activity+json"}
    )
    assert response.status == 410
    tombstone = await response.json(content_type=None)
    assert tombstone["type"] == "Tombstone" and tombstone["id"] == PRACTICE
    assert (
        await client.get("/practices/e-akte-bauamt", headers={"Accept": "text/html"})
    ).status == 410
    assert (await client.get("/practices/no-such-thing")).status == 404
    assert (await client.get("/experiences/e-akte-bauamt")).status == 404  # wrong kind


async def test_replies_collect_remote_and_local_stances(client: TestClient) -> None:
    await _publish(client)
    app = client.server.app
    remote = {
        "id": "https://dueren.example/stances/s1",
        "type": ["Note", "Stance"],
        "about": PRACTICE,
    }
    async with app[appkeys.SESSION_MAKER].begin() as session:
        session.add(
            RemoteObject(
                uri=remote["id"], kind="Stance", about=PRACTICE, document=remote, received_at=START
            )
        )
        session.add(
            RemoteObject(
                uri="https://x.example/c/gone", about=PRACTICE, deleted=True, received_at=START
            )
        )
    local = parse_contribution_input({
        "kind": "comment", "slug": "anmerkung", "title": "Anmerkung", "about": PRACTICE,
        "body": "Gute Idee.",
    })  # fmt: skip
    async with app[appkeys.SESSION_MAKER].begin() as session:
        await create_contribution(session, author_for_app(app), local)
    _, replies = await _json(client, "/practices/e-akte-bauamt/replies")
    assert replies["type"] == "OrderedCollection" and replies["id"] == f"{PRACTICE}/replies"
    assert {item["id"] for item in replies["orderedItems"]} == {
        remote["id"],
        f"{BASE}/comments/anmerkung",
    }


async def test_atom_feed_lists_contributions(client: TestClient) -> None:
    await _publish(client, 2)
    response = await client.get("/feed.atom")
    assert response.status == 200 and response.content_type == "application/atom+xml"
    feed = ET.fromstring(await response.read())
    ns = {"a": "http://www.w3.org/2005/Atom"}
    entries = feed.findall("a:entry", ns)
    assert [e.findtext("a:id", namespaces=ns) for e in entries] == [
        f"{BASE}/practices/praxis-01",
        f"{BASE}/practices/praxis-00",
    ]
    assert feed.findtext("a:title", namespaces=ns) == "Stadt Guetersloh"


@pytest.mark.parametrize(
    ("path", "accept", "content_type"),
    [
        ("/ns/ontology.ttl", None, "text/turtle"),
        ("/ns/topics.ttl", None, "text/turtle"),
        ("/ns/shapes.ttl", None, "text/turtle"),
        ("/ns/context.jsonld", None, "application/ld+json"),
        ("/ns", "text/turtle", "text/turtle"),
        ("/ns", "application/ld+json", "application/ld+json"),
        ("/ns", "text/html", "text/html"),
        ("/ns/topics", "text/turtle", "text/turtle"),
    ],
)
async def test_vocabulary_is_served_at_its_namespace_paths(
    client, path, accept, content_type
) -> None:
    response = await client.get(path, headers={"Accept": accept} if accept else {})
    assert response.status == 200 and response.content_type == content_type
    body = await response.text()
    if content_type == "text/turtle":
        assert len(rdflib.Graph().parse(data=body, format="turtle")) > 10
    elif content_type == "application/ld+json":
        assert json.loads(body)


async def test_vocabulary_context_matches_the_shipped_file(client: TestClient) -> None:
    response = await client.get("/ns/context.jsonld")
    from importlib import resources

    shipped = json.loads(resources.files("vocab").joinpath("context.jsonld").read_text("utf-8"))
    assert json.loads(await response.text()) == shipped
    assert (await client.get("/ns/nothing.ttl")).status == 404
    assert (await client.get("/ns", headers={"Accept": "image/png"})).status == 406


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", Representation.HTML),
        ("application/activity+json", Representation.ACTIVITY_JSON),
        (
            'application/ld+json; profile="https://www.w3.org/ns/activitystreams"',
            Representation.AS_JSONLD,
        ),
        ("application/ld+json", Representation.JSONLD),
        ("text/turtle;q=0.9, application/ld+json;q=0.5", Representation.TURTLE),
        ("text/html;q=0, */*", Representation.ACTIVITY_JSON),
        ("application/*", Representation.ACTIVITY_JSON),
        ("application/xml", None),
        ("text/turtle;q=0", None),
        ("", Representation.HTML),
    ],
)
def test_accept_header_negotiation(accept: str, expected: Representation | None) -> None:
    assert negotiate(accept) is expected
