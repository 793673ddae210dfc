"""Three nodes on loopback ports federate: follow, publish, deliver, update, delete,
unfollow; stances and comments reach the target's ``replies``; backfill brings the
history to a follower that arrives late.

Each node is the real application (``create_app``) on its own ``AppRunner``/``TCPSite``
on 127.0.0.1, with its workers running, in one event loop.
"""

from __future__ import annotations

import aiohttp
import pytest

from node.storage.models import Follower, Following, RemoteObject
from tests.engine_support import (
    RunningNode,
    delete_contribution,
    eventually,
    follow,
    node_config,
    publish,
    start_node,
    unfollow,
)

pytestmark = pytest.mark.slow

OLD_CONTRIBUTIONS = 23  # more than one outbox page (20), so backfill has to page


async def remote_object(node: RunningNode, uri: str) -> RemoteObject | None:
    rows = await node.rows(RemoteObject, RemoteObject.uri == uri)
    return rows[0] if rows else None


async def following_state(node: RunningNode, target: str) -> str | None:
    rows = await node.rows(Following, Following.target_uri == target)
    return rows[0].state if rows else None


async def follower_uris(node: RunningNode) -> set[str]:
    return {row.actor_uri for row in await node.rows(Follower)}


async def replies_of(session: aiohttp.ClientSession, object_uri: str) -> set[str]:
    """Ids in the object's ``replies`` collection, read over HTTP like any server would."""
    headers = {"Accept": "application/activity+json"}
    async with session.get(object_uri, headers=headers) as response:
        assert response.status == 200
        replies_url = (await response.json(content_type=None))["replies"]
    ids: set[str] = set()
    url: str | None = replies_url
    for _ in range(10):
        if url is None:
            break
        async with session.get(url, headers=headers) as response:
            assert response.status == 200, await response.text()
            page = await response.json(content_type=None)
        for item in page.get("orderedItems", page.get("items", [])):
            ids.add(item if isinstance(item, str) else item["id"])
        first = page.get("first")
        url = page.get("next") or (first if isinstance(first, str) and first != url else None)
        if isinstance(first, dict):
            for item in first.get("orderedItems", first.get("items", [])):
                ids.add(item if isinstance(item, str) else item["id"])
            url = first.get("next")
    return ids


async def test_three_nodes_federate(tmp_path) -> None:
    a = await start_node(node_config(tmp_path, "guetersloh"))
    b = await start_node(node_config(tmp_path, "dueren"))
    c = await start_node(node_config(tmp_path, "cochem-zell"))
    try:
        async with aiohttp.ClientSession() as http:
            await _follow_publish_update(a, b)
            old = [
                await publish(a, "experience", f"erfahrung-{n}", f"Erfahrung {n}", body=f"Text {n}",
                              about=f"{a.url}/practices/e-akte-bauamt")
                for n in range(OLD_CONTRIBUTIONS)
            ]
            practice = await _stance_reaches_replies(a, b, http)
            await _backfill_and_comment(a, c, http, practice, old)
            await _delete_and_unfollow(a, b, c, practice)
    finally:
        for node in (a, b, c):
            await node.stop()


async def _follow_publish_update(a: RunningNode, b: RunningNode) -> None:
    await follow(b, a.actor)
    await eventually(lambda: _is(following_state(b, a.actor), "accepted"))
    assert b.actor in await follower_uris(a)

    uri = await publish(a, "practice", "e-akte-bauamt", "E-Akte im Bauamt", body="Erster Stand")
    stored = await eventually(lambda: remote_object(b, uri))
    assert stored.attributed_to == a.actor and stored.kind == "Practice"
    assert stored.document["name"] == "E-Akte im Bauamt"

    await publish(a, "practice", "e-akte-bauamt", "E-Akte im Bauamt (2. Fassung)", body="Neu")
    updated = await eventually(lambda: _named(b, uri, "E-Akte im Bauamt (2. Fassung)"))
    assert updated.updated >= stored.updated


async def _stance_reaches_replies(a: RunningNode, b: RunningNode,
                                  http: aiohttp.ClientSession) -> str:
    practice = f"{a.url}/practices/e-akte-bauamt"
    stance = await publish(b, "stance", "zustimmung-e-akte", "Wir stimmen zu",
                           body="Bei uns genauso.", about=practice, position="agree",
                           reason="Bewährt sich bei uns.")
    stored = await eventually(lambda: remote_object(a, stance))
    assert stored.about == practice and stored.attributed_to == b.actor
    assert stance in await eventually(lambda: _replies_contain(http, practice, stance))
    return practice


async def _backfill_and_comment(a: RunningNode, c: RunningNode, http: aiohttp.ClientSession,
                                practice: str, old: list[str]) -> None:
    # C follows late: the history (more than one outbox page) arrives through backfill.
    await follow(c, a.actor)
    await eventually(lambda: _is(following_state(c, a.actor), "accepted"))
    for uri in [practice, *old]:
        assert await eventually(lambda uri=uri: remote_object(c, uri), timeout=15)
    rows = await c.rows(Following, Following.target_uri == a.actor)
    assert rows[0].backfill_state == "done"

    comment = await publish(c, "comment", "frage-e-akte", "Eine Frage",
                            body="Welche Software?", about=practice)
    stored = await eventually(lambda: remote_object(a, comment))
    assert practice in (stored.in_reply_to, stored.about)
    assert comment in await eventually(lambda: _replies_contain(http, practice, comment))

    # C withdraws the comment: it leaves A's replies again.
    await delete_contribution(c, "frage-e-akte")
    await eventually(lambda: _deleted(a, comment))
    assert comment not in await replies_of(http, practice)


async def _delete_and_unfollow(a: RunningNode, b: RunningNode, c: RunningNode,
                               practice: str) -> None:
    await delete_contribution(a, "e-akte-bauamt")
    gone = await eventually(lambda: _deleted(b, practice))
    assert gone.document is None

    await unfollow(b, a.actor)
    await eventually(lambda: _without_follower(a, b.actor))
    later = await publish(a, "material", "leitfaden", "Leitfaden", body="PDF folgt")
    assert await eventually(lambda: remote_object(c, later))  # C still follows
    assert await remote_object(b, later) is None  # B unfollowed: nothing was sent to B


async def _is(value_coroutine, expected: str) -> bool:
    return (await value_coroutine) == expected


async def _named(node: RunningNode, uri: str, name: str) -> RemoteObject | None:
    row = await remote_object(node, uri)
    return row if row is not None and row.document and row.document.get("name") == name else None


async def _deleted(node: RunningNode, uri: str) -> RemoteObject | None:
    row = await remote_object(node, uri)
    return row if row is not None and row.deleted else None


async def _without_follower(node: RunningNode, actor: str) -> bool:
    return actor not in await follower_uris(node)


async def _replies_contain(http: aiohttp.ClientSession, practice: str, reply: str) -> set[str]:
    ids = await replies_of(http, practice)
    return ids if reply in ids else set()
