"""The federation story: follow, publish the example content, check what arrived where."""

from __future__ import annotations

import argparse
import asyncio

import aiohttp

from examples.catalog import (
    ExampleFile,
    load_contributions,
    parse_reference,
    publish_fields,
)
from node.demo.common import (
    AS_JSON,
    TARGETED_KINDS,
    Api,
    DemoError,
    DemoNode,
    DemoReport,
    material_url,
    queues_drained,
    reference_resolver,
    wait_for,
)
from node.demo.hub_story import run_hub_story
from node.demo.processes import wait_until_ready


async def follow_everyone(apis: dict[str, Api], nodes: list[DemoNode]) -> int:
    """The hub follows each municipality; each municipality follows the others and the hub."""
    requests = [
        (apis[follower.slug], followed.actor_url)
        for follower in nodes
        for followed in nodes
        if followed.slug != follower.slug
    ]
    await asyncio.gather(*(api.require("POST", "/api/following", {"target": target}) for api, target in requests))
    return len(requests)


async def all_follows_accepted(apis: dict[str, Api]) -> bool:
    for api in apis.values():
        following = await api.require("GET", "/api/following")
        if any(item["state"] != "accepted" for item in following["items"]):
            return False
    return True


async def publish_examples(apis: dict[str, Api], nodes: list[DemoNode]) -> list[tuple[DemoNode, ExampleFile, str]]:
    """Publish every example file; objects others refer to go first."""
    resolve = reference_resolver(nodes)
    published: list[tuple[DemoNode, ExampleFile, str]] = []
    for targeted in (False, True):
        for node in nodes:
            if node.example.is_hub:
                continue
            for example in load_contributions(node.slug):
                if (example.kind in TARGETED_KINDS) != targeted:
                    continue
                fields = publish_fields(example, resolve, material_url(node))
                fields["body"] = example.body
                api = apis[node.slug]
                status, payload = await api.call("POST", "/api/contributions", fields)
                if status == 409:  # already there from an earlier run: publish again as an update
                    payload = await api.require("PUT", f"/api/contributions/{example.slug}", fields)
                elif status >= 400:
                    raise DemoError(f"{node.slug}/{example.path.name}: {status} {payload}")
                published.append((node, example, payload["uri"]))
    return published


async def timeline_uris(api: Api) -> set[str]:
    """Every contribution of followed nodes that reached this node (all timeline pages)."""
    uris: set[str] = set()
    path: str | None = "/api/timeline"
    while path:
        page = await api.require("GET", path)
        uris.update(item["uri"] for item in page["items"])
        path = page.get("next")
    return uris


async def replies_of(client: aiohttp.ClientSession, uri: str) -> set[str]:
    async with client.get(f"{uri}/replies", headers={"Accept": AS_JSON}) as response:
        if response.status != 200:
            return set()
        collection = await response.json(content_type=None)
    return {item["id"] for item in collection.get("orderedItems", []) if isinstance(item, dict)}


async def verify_federation(
    client: aiohttp.ClientSession,
    apis: dict[str, Api],
    nodes: list[DemoNode],
    published: list[tuple[DemoNode, ExampleFile, str]],
    report: DemoReport,
) -> None:
    hub = next(node for node in nodes if node.example.is_hub)
    arrived = await timeline_uris(apis[hub.slug])
    expected = {uri for _, _, uri in published}
    report.check("every contribution arrived at the hub", expected <= arrived,
                 f"{len(expected & arrived)} of {len(expected)}")  # fmt: skip
    for node in nodes:
        if node.example.is_hub:
            continue
        others = {uri for owner, _, uri in published if owner.slug != node.slug}
        missing = others - await timeline_uris(apis[node.slug])
        report.check(f"{node.slug} received the other municipalities' contributions", not missing,
                     f"{len(others) - len(missing)} of {len(others)}")  # fmt: skip
    resolve = reference_resolver(nodes)
    replies_expected = 0
    replies_found = 0
    for _, example, uri in published:
        if example.kind not in TARGETED_KINDS or example.about is None:
            continue
        reference = parse_reference(example.about)
        if reference.node is None:
            continue  # a comment on a handbook section: the hub shows those with its editions
        replies_expected += 1
        if uri in await replies_of(client, resolve(reference)):
            replies_found += 1
    report.check("stances, experiences and comments appear in their target's replies",
                 replies_found == replies_expected, f"{replies_found} of {replies_expected}")  # fmt: skip
    failed = 0
    for api in apis.values():
        status = await api.require("GET", "/api/status")
        failed += sum(status["deliveries"].get(state, 0) for state in ("failed", "gave_up"))
    report.check("no delivery failed", failed == 0, f"{failed} failed")


async def run_story(nodes: list[DemoNode], tokens: dict[str, str], args: argparse.Namespace) -> DemoReport:
    report = DemoReport()
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as client:
        print("Starting the nodes …", flush=True)
        await wait_until_ready(client, nodes)
        apis = {node.slug: Api(client, node, tokens[node.slug]) for node in nodes}
        print("Following …", flush=True)
        count = await follow_everyone(apis, nodes)
        accepted = await wait_for("follow acceptance", lambda: all_follows_accepted(apis), args.timeout)
        report.check("every Follow was accepted", accepted, f"{count} follows")
        print("Publishing the example content …", flush=True)
        published = await publish_examples(apis, nodes)
        report.published = len(published)
        print(f"  {len(published)} contributions published; waiting for deliveries …", flush=True)
        drained = await wait_for("deliveries", lambda: queues_drained(apis), args.timeout)
        report.check("every delivery and inbox queue drained", drained)
        await verify_federation(client, apis, nodes, published, report)
        await run_hub_story(client, apis, nodes, published, report, args.timeout)
    return report
