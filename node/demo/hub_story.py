"""The hub's story: handbook structure, triage by topic, edition 1, a topic group."""

from __future__ import annotations

import time

import aiohttp

from examples.catalog import (
    ExampleFile,
    load_handbook,
    publish_fields,
)
from node.demo.common import (
    AS_JSON,
    Api,
    DemoError,
    DemoNode,
    DemoReport,
    material_url,
    queues_drained,
    reference_resolver,
    wait_for,
)

# --- the hub's story: structure, triage, edition 1, topic groups (node.hub) ----------


TOPIC_FOLLOWER = "dueren"  # follows one topic group of the hub, as any reader could


async def run_hub_story(
    client: aiohttp.ClientSession,
    apis: dict[str, Api],
    nodes: list[DemoNode],
    published: list[tuple[DemoNode, ExampleFile, str]],
    report: DemoReport,
    timeout: float,
) -> None:
    """Load the example handbook, place contributions by topic, freeze and verify an
    edition, and check that a topic group relays a member's update to its follower."""
    hub = next(node for node in nodes if node.example.is_hub)
    hub_api = apis[hub.slug]
    print("The hub: handbook, triage, edition …", flush=True)
    handbook = load_handbook()
    await hub_api.require("PUT", "/api/hub/structure", {"sections": handbook.structure_json()})
    placed, undecided = await _triage_by_topic(hub_api, handbook)
    report.check("new contributions placed in handbook sections by their topics",
                 placed > 0 or undecided == 0, f"{placed} placed")
    edition = await hub_api.require("POST", "/api/hub/editions", {"confirm": True, "publish": True})
    report.hub_urls.append(edition["url"])
    report.check(f"edition {edition['number']} frozen", edition["contributions"] > 0,
                 f"{edition['contributions']} contributions, manifest {edition['manifestHash'][:12]}…")
    await _verify_edition(client, hub, nodes, edition, report)
    await _topic_group_story(client, apis, nodes, published, report, timeout)


async def _triage_by_topic(hub_api: Api, handbook) -> tuple[int, int]:
    """Place every undecided contribution in the first section that takes its topics."""
    triage = await hub_api.require("GET", "/api/hub/triage")
    placed = 0
    for item in triage["items"]:
        sections = [section.slug for section in handbook.sections_for_topics(item["topics"])][:1]
        decision = {"contribution": item["uri"], "sections": sections,
                    "decision": "accept" if sections else "defer",
                    "note": "" if sections else "kein passender Abschnitt"}
        await hub_api.require("POST", "/api/hub/placements", decision)
        placed += bool(sections)
    return placed, sum(1 for item in triage["items"] if item["decision"] is None)


async def _get_json(client: aiohttp.ClientSession, url: str) -> dict:
    async with client.get(url, headers={"Accept": AS_JSON}) as response:
        if response.status != 200:
            raise DemoError(f"GET {url} answered {response.status}")
        return await response.json(content_type=None)


async def _verify_edition(client: aiohttp.ClientSession, hub: DemoNode, nodes: list[DemoNode],
                          edition: dict, report: DemoReport) -> None:
    from federation.keys import parse_actor_keys
    from node.hub.editions import verify_edition

    manifest = await _get_json(client, f"{edition['url']}/manifest.json")
    keys = {}
    for node in nodes:
        for info in parse_actor_keys(await _get_json(client, node.actor_url)):
            keys[info.key_id] = info
    result = verify_edition(manifest, keys.get, expected_hash=edition["manifestHash"])
    report.check("the edition's hash, the hub's proof and every contribution's proof verify",
                 result.ok, "; ".join(f"{p.subject}: {p.detail}" for p in result.problems[:3]))
    async with client.get(f"{edition['url']}.pdf") as response:
        body = await response.read()
    report.check("the edition's PDF exists", response.status == 200 and body.startswith(b"%PDF"),
                 f"{len(body)} bytes")
    report.hub_urls += [f"{edition['url']}/", f"{edition['url']}.pdf",
                        f"{edition['url']}/changelog", f"{hub.base_url}/topics",
                        f"{hub.base_url}/members", f"{hub.base_url}/sparql"]


async def _topic_group_story(client: aiohttp.ClientSession, apis: dict[str, Api],
                             nodes: list[DemoNode], published: list[tuple[DemoNode, ExampleFile, str]],
                             report: DemoReport, timeout: float) -> None:
    hub = next(node for node in nodes if node.example.is_hub)
    author, example, _ = next((owner, ex, uri) for owner, ex, uri in published
                              if owner.slug != TOPIC_FOLLOWER and ex.kind == "practice"
                              and ex.front_matter.get("topics"))
    topic = str(list(example.front_matter["topics"])[0])
    group = f"{hub.base_url}/topics/{topic}"
    follower = apis[TOPIC_FOLLOWER]
    await follower.require("POST", "/api/following", {"target": f"{topic}@127.0.0.1:{hub.port}"})

    async def accepted() -> bool:
        following = await follower.require("GET", "/api/following")
        return any(i["target"] == group and i["state"] == "accepted"
                   for i in following["items"])

    followed = await wait_for("the topic follow", accepted, timeout)
    fields = publish_fields(example, reference_resolver(nodes), material_url(author))
    # A real change (an unchanged PUT is a no-op): the author dates its practice.
    fields["body"] = f"{example.body}\n\n_Stand: {time.strftime('%d.%m.%Y, %H:%M:%S')}_\n"
    await apis[author.slug].require("PUT", f"/api/contributions/{example.slug}", fields)

    async def announced() -> bool:
        outbox = await _get_json(client, f"{group}/outbox")
        return any(item.get("object", {}).get("actor") == author.actor_url
                   for item in outbox.get("orderedItems", []))

    relayed = followed and await wait_for("the topic announcement", announced, timeout)
    drained = relayed and await wait_for("deliveries", lambda: queues_drained(apis), timeout)
    report.check(f"{TOPIC_FOLLOWER} follows topic group {topic} and received its announcement",
                 bool(followed and relayed and drained),
                 f"{author.slug}'s update of {example.slug} announced by {group}")
