"""The authoring API: bearer tokens, create/update/delete/list, problem+json naming the
field with nothing stored, proofs, deliveries written in the same transaction, follows."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from federation.keys import KeyAlgorithm, parse_actor_keys
from federation.proofs import verify_document
from node import appkeys, outbox
from node.app import create_app
from node.storage.models import (
    Activity,
    Contribution,
    Delivery,
    Follower,
    Following,
    RemoteActor,
    RemoteObject,
)
from node.storage.tokens import revoke_token
from tests.node_support import START, MovableClock, issue_token, make_node, practice_input

BASE = "https://guetersloh.example"


@pytest.fixture
async def client(aiohttp_client, tmp_path) -> TestClient:
    config = make_node(tmp_path)
    return await aiohttp_client(create_app(config, clock=MovableClock(), start_workers=False))


@pytest.fixture
async def auth(client: TestClient) -> dict[str, str]:
    _, token = await issue_token(client.server.app)
    return {"Authorization": f"Bearer {token}"}


async def _count(client: TestClient, model) -> int:
    async with client.server.app[appkeys.SESSION_MAKER]() as session:
        return await session.scalar(select(func.count()).select_from(model))


async def _add_followers(client: TestClient) -> None:
    rows = [
        ("https://b.example/users/1", "https://b.example/users/1/inbox", "https://b.example/inbox"),
        ("https://b.example/users/2", "https://b.example/users/2/inbox", "https://b.example/inbox"),
        ("https://c.example/actor", "https://c.example/actor/inbox", None),
    ]
    async with client.server.app[appkeys.SESSION_MAKER].begin() as session:
        for actor, inbox, shared in rows:
            session.add(
                Follower(
                    actor_uri=actor,
                    inbox=inbox,
                    shared_inbox=shared,
                    state="accepted",
                    created_at=START,
                )
            )


async def test_requests_without_a_valid_token_are_refused(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic eDp5"}):
        response = await client.get("/api/contributions", headers=headers)
        assert response.status == 401
        assert response.content_type == "application/problem+json"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    response = await client.post("/api/contributions", json=practice_input())
    assert response.status == 401
    assert await _count(client, Contribution) == 0


async def test_a_revoked_token_gets_403(client: TestClient) -> None:
    app = client.server.app
    token_id, token = await issue_token(app)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/contributions", headers=headers)).status == 200
    async with app[appkeys.SESSION_MAKER].begin() as session:
        await revoke_token(session, token_id, now=START)
    response = await client.get("/api/contributions", headers=headers)
    assert response.status == 403
    assert (await response.json(content_type=None))["type"].endswith("token-revoked")


async def test_openapi_document_is_public_and_describes_the_api(client: TestClient) -> None:
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    spec = await response.json()
    assert spec["openapi"].startswith("3.")
    assert {"/api/contributions", "/api/contributions/{slug}", "/api/following"} <= set(
        spec["paths"]
    )
    assert "ContributionInput" in spec["components"]["schemas"]


async def test_create_read_list_update_delete(client: TestClient, auth) -> None:
    created = await client.post("/api/contributions", json=practice_input(), headers=auth)
    assert created.status == 201, await created.text()
    body = await created.json()
    assert body["uri"] == f"{BASE}/practices/e-akte-bauamt" and body["outcome"] == "created"
    assert created.headers["Location"] == "/api/contributions/e-akte-bauamt"
    listing = await (await client.get("/api/contributions", headers=auth)).json()
    assert [item["slug"] for item in listing["items"]] == ["e-akte-bauamt"]
    client.server.app[appkeys.CLOCK].advance(3600)
    changed = practice_input(title="E-Akte im Bauamt (aktualisiert)", status="discontinued")
    updated = await client.put("/api/contributions/e-akte-bauamt", json=changed, headers=auth)
    assert updated.status == 200 and (await updated.json())["outcome"] == "updated"
    read = await (await client.get("/api/contributions/e-akte-bauamt", headers=auth)).json()
    assert read["document"]["name"] == "E-Akte im Bauamt (aktualisiert)"
    assert read["document"]["status"] == "discontinued"
    assert read["document"]["updated"] == "2026-11-22T11:00:00.000Z"
    deleted = await client.delete("/api/contributions/e-akte-bauamt", headers=auth)
    assert deleted.status == 200
    async with client.server.app[appkeys.SESSION_MAKER]() as session:
        types = (await session.scalars(select(Activity.type).order_by(Activity.id))).all()
    assert types == ["Create", "Update", "Delete"]
    again = await client.delete("/api/contributions/e-akte-bauamt", headers=auth)
    assert again.status == 410 and (await again.json(content_type=None))["field"] == "slug"


async def test_published_object_and_activity_carry_verifiable_proofs(
    client: TestClient, auth
) -> None:
    await client.post("/api/contributions", json=practice_input(), headers=auth)
    actor = await (await client.get("/actor")).json(content_type=None)
    key = next(k for k in parse_actor_keys(actor) if k.algorithm is KeyAlgorithm.ED25519)
    async with client.server.app[appkeys.SESSION_MAKER]() as session:
        activity = await session.scalar(select(Activity.document))
        document = await session.scalar(select(Contribution.document))
    assert verify_document(document, key).ok
    assert verify_document(activity, key).ok
    assert activity["object"] == document


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"title": ""}, "title"),
        ({"kind": "recipe"}, "kind"),
        ({"slug": "Not A Slug"}, "slug"),
        ({"topics": ["no-such-topic"]}, "topics"),
        ({"status": "finished"}, "status"),
        ({"duration": "six months"}, "duration"),
        ({"related_service": "123"}, "related_service"),
        ({"colour": "blue"}, "colour"),
        ({"topics": []}, "topics"),  # the vocabulary's shape: a practice needs a topic
    ],
)
async def test_invalid_input_is_a_problem_naming_the_field_and_nothing_is_stored(
    client: TestClient, auth, changes, field
) -> None:
    response = await client.post("/api/contributions", json=practice_input(**changes), headers=auth)
    assert response.status == 422, await response.text()
    assert response.content_type == "application/problem+json"
    problem = await response.json(content_type=None)
    assert problem["status"] == 422
    assert field in [error["field"] for error in problem["errors"]]
    for model in (Contribution, Activity, Delivery):
        assert await _count(client, model) == 0


async def test_malformed_json_body_is_a_problem_naming_body(client: TestClient, auth) -> None:
    response = await client.post("/api/contributions", data=b"{not json", headers=auth)
    assert response.status == 400
    assert (await response.json(content_type=None))["field"] == "body"
    response = await client.post("/api/contributions", json=["a", "list"], headers=auth)
    assert (await response.json(content_type=None))["field"] == "body"


async def test_a_second_create_with_the_same_slug_is_a_conflict(client: TestClient, auth) -> None:
    assert (
        await client.post("/api/contributions", json=practice_input(), headers=auth)
    ).status == 201
    response = await client.post("/api/contributions", json=practice_input(), headers=auth)
    assert response.status == 409 and (await response.json(content_type=None))["field"] == "slug"
    assert await _count(client, Activity) == 1


async def test_user_html_is_sanitised(client: TestClient, auth) -> None:
    body = 'Hallo <script>alert(1)</script><img src=x onerror="alert(2)"> <a href="javascript:x()">k</a>'
    response = await client.post("/api/contributions", json=practice_input(body=body), headers=auth)
    assert response.status == 201
    async with client.server.app[appkeys.SESSION_MAKER]() as session:
        content = (await session.scalar(select(Contribution.document)))["content"]
    assert "<script" not in content and "onerror" not in content and "javascript:" not in content
    assert "Hallo" in content


async def test_one_delivery_row_per_follower_inbox_shared_inboxes_merged(
    client: TestClient, auth
) -> None:
    await _add_followers(client)
    response = await client.post("/api/contributions", json=practice_input(), headers=auth)
    assert (await response.json())["deliveries"] == 2
    async with client.server.app[appkeys.SESSION_MAKER]() as session:
        inboxes = sorted((await session.scalars(select(Delivery.inbox_url))).all())
    assert inboxes == ["https://b.example/inbox", "https://c.example/actor/inbox"]
    status = await (
        await client.get("/api/contributions/e-akte-bauamt/deliveries", headers=auth)
    ).json()
    assert status["hosts"] == {"b.example": {"pending": 1}, "c.example": {"pending": 1}}


async def test_contribution_is_not_stored_when_enqueueing_fails(
    client: TestClient, auth, monkeypatch
) -> None:
    await _add_followers(client)

    async def broken(*args, **kwargs):
        raise RuntimeError("disk full while writing deliveries")

    monkeypatch.setattr("node.authoring.record_local_activity", broken)
    response = await client.post("/api/contributions", json=practice_input(), headers=auth)
    assert response.status == 500
    assert response.content_type == "application/problem+json"
    assert "disk full" not in await response.text()  # no internals leak to the client
    monkeypatch.setattr("node.authoring.record_local_activity", outbox.record_local_activity)
    for model in (Contribution, Activity, Delivery):
        assert await _count(client, model) == 0


async def test_unknown_contribution_is_404_naming_slug(client: TestClient, auth) -> None:
    response = await client.put(
        "/api/contributions/nothing", json=practice_input("nothing"), headers=auth
    )
    assert response.status == 404
    assert (await response.json(content_type=None))["field"] == "slug"


async def test_follow_refuses_private_addresses_before_connecting(client: TestClient, auth) -> None:
    response = await client.post(
        "/api/following", json={"target": "http://10.1.2.3/actor"}, headers=auth
    )
    assert response.status == 502
    problem = await response.json(content_type=None)
    assert problem["field"] == "target" and "10.1.2.3" in problem["detail"]
    assert await _count(client, Following) == 0
    bad = await client.post("/api/following", json={"target": "not a handle"}, headers=auth)
    assert bad.status == 422 and (await bad.json(content_type=None))["field"] == "target"


async def test_follow_and_unfollow_a_node_on_loopback(
    aiohttp_client, aiohttp_server, tmp_path
) -> None:
    from tests.engine_support import free_port

    port = free_port()
    target = make_node(tmp_path, "dueren", base_url=f"http://127.0.0.1:{port}")
    await aiohttp_server(create_app(target, start_workers=False), port=port)
    config = make_node(tmp_path, "guetersloh", allow_private_network=True)
    client = await aiohttp_client(create_app(config, clock=MovableClock(), start_workers=False))
    _, token = await issue_token(client.server.app)
    auth = {"Authorization": f"Bearer {token}"}
    handle = f"acct:dueren@127.0.0.1:{port}"
    response = await client.post("/api/following", json={"target": handle}, headers=auth)
    assert response.status == 202, await response.text()
    assert (await response.json())["target"] == target.actor_url
    again = await client.post("/api/following", json={"target": handle}, headers=auth)
    assert again.status == 200  # already requested: nothing new is sent
    async with client.server.app[appkeys.SESSION_MAKER]() as session:
        deliveries = (
            await session.execute(select(Activity.type, Delivery.inbox_url).join(Delivery))
        ).all()
        actor = await session.get(RemoteActor, target.actor_url)
    assert deliveries == [("Follow", target.inbox_url)]
    assert actor is not None and actor.shared_inbox == target.shared_inbox_url
    removed = await client.request(
        "DELETE", "/api/following", json={"target": handle}, headers=auth
    )
    assert removed.status == 200, await removed.text()
    async with client.server.app[appkeys.SESSION_MAKER]() as session:
        undo = await session.scalar(select(Activity.document).where(Activity.type == "Undo"))
    assert undo["object"]["type"] == "Follow" and undo["object"]["object"] == target.actor_url
    assert await _count(client, Following) == 0


async def test_status_reports_queues(client: TestClient, auth) -> None:
    await _add_followers(client)
    await client.post("/api/contributions", json=practice_input(), headers=auth)
    status = await (await client.get("/api/status", headers=auth)).json()
    assert status["contributions"] == 1
    assert status["followers"] == {"accepted": 3}
    assert status["deliveries"] == {"pending": 2}


def test_problem_responses_are_not_used_outside_the_api() -> None:
    app = web.Application()
    from node.api import add_routes

    add_routes(app)
    assert any(route.resource.canonical == "/api/openapi.json" for route in app.router.routes())


async def test_timeline_lists_followed_contributions_newest_first(client: TestClient, auth) -> None:
    async with client.server.app[appkeys.SESSION_MAKER].begin() as session:
        for number in range(3):
            uri = f"https://dueren.example/practices/p{number}"
            session.add(RemoteObject(uri=uri, kind="Practice", attributed_to="https://dueren.example/actor",
                                     document={"id": uri}, deleted=number == 1, received_at=START))  # fmt: skip
    timeline = await (await client.get("/api/timeline", headers=auth)).json()
    assert [item["uri"] for item in timeline["items"]] == [
        "https://dueren.example/practices/p2", "https://dueren.example/practices/p0"
    ]  # fmt: skip
    assert (await client.get("/api/timeline?before=x", headers=auth)).status == 400
    await _add_followers(client)
    followers = await (await client.get("/api/followers", headers=auth)).json()
    assert len(followers["items"]) == 3


async def test_a_stance_on_a_remote_practice_is_delivered_to_its_author(
    client: TestClient, auth
) -> None:
    practice = "https://dueren.example/practices/e-akte"
    async with client.server.app[appkeys.SESSION_MAKER].begin() as session:
        session.add(
            RemoteActor(
                uri="https://dueren.example/actor",
                inbox="https://dueren.example/actor/inbox",
                shared_inbox="https://dueren.example/inbox",
                document={},
                fetched_at=START,
            )
        )
        session.add(RemoteObject(uri=practice, kind="Practice", attributed_to="https://dueren.example/actor",
                                 document={"id": practice}, received_at=START))  # fmt: skip
    stance = {"kind": "stance", "slug": "zustimmung", "title": "Zustimmung", "about": practice,
              "position": "agree", "reason": "Hat bei uns auch funktioniert.", "body": "Ja."}  # fmt: skip
    response = await client.post("/api/contributions", json=stance, headers=auth)
    assert response.status == 201, await response.text()
    async with client.server.app[appkeys.SESSION_MAKER]() as session:
        inboxes = (await session.scalars(select(Delivery.inbox_url))).all()
        document = await session.scalar(select(Contribution.document))
    assert inboxes == ["https://dueren.example/inbox"]
    assert document["about"] == practice and document["inReplyTo"] == practice
    assert document["position"] == "agree"


async def test_oversized_body_is_refused_naming_body(client: TestClient, auth) -> None:
    huge = practice_input(body="x" * (600 * 1024))
    response = await client.post("/api/contributions", json=huge, headers=auth)
    assert response.status == 413
    assert (await response.json(content_type=None))["field"] == "body"
    assert await _count(client, Contribution) == 0


async def test_concurrent_creates_of_one_slug_store_it_once(client: TestClient, auth) -> None:
    responses = await asyncio.gather(
        *(client.post("/api/contributions", json=practice_input(), headers=auth) for _ in range(4))
    )
    assert sorted(response.status for response in responses) == [201, 409, 409, 409]
    assert await _count(client, Contribution) == 1
    assert await _count(client, Activity) == 1
