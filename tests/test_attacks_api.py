"""Attacks on the authoring API's bearer tokens and its request parsing.

Every refused request must leave the node as it was: no contribution, no follow.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from node import appkeys
from node.storage.db import create_engine
from node.storage.models import Contribution, Following
from node.storage.tokens import create_token, revoke_token
from tests import attack_support
from tests.attack_support import AttackBed, copy_node
from tests.node_support import issue_token, practice_input

actor_key_pool = attack_support.actor_key_pool
node_template = attack_support.node_template
make_bed = attack_support.make_bed
bed = attack_support.bed

# Every route under /api/ except the public OpenAPI document, with a body where it takes one.
ROUTES = [
    ("GET", "/api/contributions", None),
    ("POST", "/api/contributions", practice_input()),
    ("GET", "/api/contributions/e-akte-bauamt", None),
    ("PUT", "/api/contributions/e-akte-bauamt", practice_input()),
    ("DELETE", "/api/contributions/e-akte-bauamt", None),
    ("GET", "/api/contributions/e-akte-bauamt/deliveries", None),
    ("POST", "/api/following", {"target": "https://example.org/actor"}),
    ("DELETE", "/api/following", {"target": "https://example.org/actor"}),
    ("GET", "/api/following", None),
    ("GET", "/api/followers", None),
    ("GET", "/api/timeline", None),
    ("GET", "/api/status", None),
]


async def count(bed: AttackBed, model: type) -> int:
    async with bed.app[appkeys.SESSION_MAKER]() as session:
        return await session.scalar(select(func.count()).select_from(model))


async def refused_everywhere(bed: AttackBed, headers: dict[str, str], status: int) -> None:
    for method, path, body in ROUTES:
        response = await bed.client.request(method, path, json=body, headers=headers)
        assert response.status == status, (method, path, await response.text())
        assert response.content_type == "application/problem+json"
        assert "items" not in await response.json()
    assert await count(bed, Contribution) == 0 and await count(bed, Following) == 0


async def test_without_a_token_every_route_is_refused(bed: AttackBed) -> None:
    await refused_everywhere(bed, {}, 401)


@pytest.mark.parametrize("authorization", [
    "Basic YWRtaW46YWRtaW4=", "Token abc", "Bearer", "Bearer ", "bearer' OR '1'='1",
    "Bearer ' OR '1'='1' --", "Bearer " + "A" * 4000,
])
async def test_malformed_or_guessed_tokens_are_refused(bed: AttackBed,
                                                       authorization: str) -> None:
    await refused_everywhere(bed, {"Authorization": authorization}, 401)


async def test_a_revoked_token_is_refused(bed: AttackBed) -> None:
    token_id, token = await issue_token(bed.app)
    async with bed.app[appkeys.SESSION_MAKER].begin() as session:
        await revoke_token(session, token_id, now=bed.clock())
    await refused_everywhere(bed, {"Authorization": f"Bearer {token}"}, 403)


async def test_a_token_of_another_node_is_refused(bed: AttackBed, node_template,
                                                  tmp_path) -> None:
    other = copy_node(node_template, tmp_path / "other", base_url="https://halle.example",
                      slug="halle", name="Stadt Halle")
    engine = create_engine(other.database_url)
    try:
        from node.storage.db import session_maker

        async with session_maker(engine).begin() as session:
            issued = await create_token(session, "halle-admin", now=bed.clock())
    finally:
        await engine.dispose()
    await refused_everywhere(bed, {"Authorization": f"Bearer {issued.token}"}, 401)


async def test_a_valid_token_with_a_changed_character_is_refused(bed: AttackBed) -> None:
    _, token = await issue_token(bed.app)
    changed = token[:-1] + ("A" if token[-1] != "A" else "B")
    for forged in (changed, token[:-1], token + "x", token.upper()):
        await refused_everywhere(bed, {"Authorization": f"Bearer {forged}"}, 401)
    ok = await bed.client.get("/api/contributions", headers={"Authorization": f"Bearer {token}"})
    assert ok.status == 200  # the genuine token works: the refusals above are the check


async def test_a_token_in_the_query_string_is_ignored(bed: AttackBed) -> None:
    _, token = await issue_token(bed.app)
    for name in ("access_token", "token", "api_token"):
        response = await bed.client.post(f"/api/contributions?{name}={token}",
                                         json=practice_input())
        assert response.status == 401
    assert await count(bed, Contribution) == 0


async def test_token_bytes_that_are_not_utf8(bed: AttackBed) -> None:
    """Was a 500: the token was hashed after encoding it as UTF-8 (fixed)."""
    body = b'{"kind": "practice"}'
    headers = {"Host": "guetersloh.example", "Content-Type": "application/json",
               "Authorization": b"Bearer \xff\xfe\xfd"}
    assert await bed.post_bytes("/api/contributions", headers, body) == 401
    assert await count(bed, Contribution) == 0


@pytest.mark.parametrize("path", [
    "/api/openapi.json/../contributions", "/api/openapi.json/%2e%2e/contributions",
    "/api//contributions", "/api/contributions/", "/API/contributions", "//api/contributions",
])
async def test_paths_that_try_to_dodge_the_token_check(bed: AttackBed, path: str) -> None:
    headers = {"Host": "guetersloh.example", "Content-Type": "application/json"}
    status = await bed.post_bytes(path, headers, b"{}", method="GET")
    assert status in (401, 404)


async def test_deeply_nested_json_in_the_api_is_a_400_naming_body(bed: AttackBed) -> None:
    """Was a 500 (RecursionError in json.loads, fixed)."""
    _, token = await issue_token(bed.app)
    response = await bed.client.post("/api/contributions", data=b"[" * 100_000 + b"]" * 100_000,
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
    assert response.status == 400
    assert (await response.json(content_type=None))["field"] == "body"
    assert await count(bed, Contribution) == 0


async def test_an_oversized_api_body_is_refused_naming_body(bed: AttackBed) -> None:
    _, token = await issue_token(bed.app)
    response = await bed.client.post(
        "/api/contributions", json=practice_input(body="x" * (600 * 1024)),
        headers={"Authorization": f"Bearer {token}"})
    assert response.status == 413
    assert (await response.json(content_type=None))["field"] == "body"
    assert await count(bed, Contribution) == 0


async def test_hostile_query_parameters_get_a_4xx(bed: AttackBed) -> None:
    """The timeline cursor answered 500 for 10**30 and for "²" (fixed)."""
    _, token = await issue_token(bed.app)
    auth = {"Authorization": f"Bearer {token}"}
    answers = {}
    for path in ("/api/timeline?before=99999999999999999999999999",
                 "/api/timeline?before=%C2%B2", "/api/timeline?before=1%20OR%201=1",
                 "/api/contributions/%00", "/api/contributions/" + "x" * 3000):
        response = await bed.client.get(path, headers=auth)
        answers[path] = response.status
    assert {path: status for path, status in answers.items() if not 400 <= status < 500} == {}
    listing = await bed.client.get("/api/contributions?kind=%00&deleted=%ff", headers=auth)
    assert listing.status == 200 and (await listing.json())["items"] == []


async def test_hostile_cursor_on_the_staff_timeline(aiohttp_client, tmp_path) -> None:
    """The signed-in timeline page answered 500 for ?before=² and ?before=10**30 (fixed)."""
    from tests.web_support import add_staff, sign_in, web_app

    client = await aiohttp_client(web_app(tmp_path))
    await add_staff(client.server.app)
    status, _ = await sign_in(client)
    assert status == 200
    for cursor in ("%C2%B2", "9" * 30, "-1", "1%20OR%201=1"):
        response = await client.get(f"/dashboard/timeline?before={cursor}")
        assert response.status == 200, cursor


async def test_the_web_session_cookie_does_not_open_the_api(aiohttp_client, tmp_path) -> None:
    """A signed-in browser carries a session cookie; a cross-site form must not be able
    to use it against the API (no CSRF there: the API reads bearer tokens only)."""
    from tests.web_support import add_staff, sign_in, web_app

    client = await aiohttp_client(web_app(tmp_path))
    await add_staff(client.server.app)
    status, _ = await sign_in(client)
    assert status == 200 and len(client.session.cookie_jar) > 0
    for method, path, body in ROUTES:
        response = await client.request(method, path, json=body,
                                        headers={"Origin": "https://evil.example"})
        assert response.status == 401, (method, path)
    async with client.server.app[appkeys.SESSION_MAKER]() as session:
        assert await session.scalar(select(func.count()).select_from(Contribution)) == 0
