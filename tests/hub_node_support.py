"""Helpers for the hub wiring tests: a hub node on loopback, its editorial API, key lookups."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from federation.keys import PublicKeyInfo, parse_actor_keys
from node import appkeys
from node.hub.settings import write_settings
from node.storage.tokens import create_token
from tests.engine_support import RunningNode, node_config, start_node


@dataclass
class HubApi:
    """The hub's editorial API, called with a bearer token over HTTP."""

    http: aiohttp.ClientSession
    hub: RunningNode
    token: str

    async def call(self, method: str, path: str, body: Any = None, *,
                   token: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token if token is not None else self.token}"}
        async with self.http.request(method, self.hub.url + path, json=body,
                                     headers=headers) as response:
            text = await response.text()
            kind = response.headers.get("Content-Type", "")
        return response.status, (await _json(text) if "json" in kind else text)


async def _json(text: str) -> Any:
    import json

    return json.loads(text) if text else None


async def start_hub(tmp_path: Path, *, slug: str = "kochbuch", auto_accept_loopback: bool = True,
                    auto_accept_hosts: tuple[str, ...] = (), database_url: str = "") -> RunningNode:
    config = node_config(tmp_path, slug, is_hub=True, name="Kochbuch-Redaktion",
                         database_url=database_url)
    write_settings(config.data_dir, auto_accept_hosts=auto_accept_hosts,
                   auto_accept_loopback=auto_accept_loopback)
    return await start_node(config)


async def issue_token(node: RunningNode, name: str = "redaktion") -> str:
    async with node.sessions()() as session, session.begin():
        issued = await create_token(session, name, now=node.app[appkeys.CLOCK]())
    return issued.token


async def key_lookup_for(http: aiohttp.ClientSession, actors: list[str]) -> dict[str, PublicKeyInfo]:
    """Every key the given actors publish, fetched once over HTTP (the offline lookup)."""
    keys: dict[str, PublicKeyInfo] = {}
    for actor in actors:
        async with http.get(actor, headers={"Accept": "application/activity+json"}) as response:
            document = await response.json(content_type=None)
        for info in parse_actor_keys(document):
            keys[info.key_id] = info
    return keys


def unsigned_activity(actor: str, kind: str, obj: object) -> dict[str, Any]:
    """An activity as the inbox worker gets it once the door has checked it (an id on the
    actor's origin), for feeding ``InboxProcessor.process`` directly."""
    base = actor.rsplit("/", 1)[0]
    return {"@context": "https://www.w3.org/ns/activitystreams", "type": kind,
            "id": f"{base}/activities/{uuid.uuid4()}", "actor": actor, "object": obj}


# Orders of arrival of Undo(F1), F2, Undo(F2), F3: an actor that left and followed again
# twice, its deliveries side by side. "overtaken": F3 before F2, and Undo(F2) after F2.
CHURN_ORDERS = {"in order": (0, 1, 2, 3), "follows first": (3, 1, 0, 2),
                "overtaken": (3, 1, 2, 0), "undos first": (2, 0, 3, 1)}


async def hub_and_member_without_workers(tmp_path: Path) -> tuple[RunningNode, RunningNode]:
    """A hub (auto-accepting loopback) and a member whose inboxes nobody processes: the
    test feeds the hub's processor itself, in the order it wants."""
    config = node_config(tmp_path, "kochbuch", is_hub=True, name="Kochbuch-Redaktion")
    write_settings(config.data_dir, auto_accept_hosts=(), auto_accept_loopback=True)
    hub = await start_node(config, start_workers=False)
    member = await start_node(node_config(tmp_path, "dueren"), start_workers=False)
    return hub, member
