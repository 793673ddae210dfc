"""``praxisnetz demo``: the eight model municipalities and the hub as a local federation.

Every node is a real ``praxisnetz serve`` process on its own 127.0.0.1 port with its own
SQLite database under the demo folder. The story goes through the public interfaces
only — the authoring API and signed ActivityPub between the servers — so what the demo
shows is what a municipality would see:

1. create the nodes (``praxisnetz init``) unless the demo folder already holds them,
2. start them,
3. the hub follows every municipality, and every municipality follows the others,
4. each municipality publishes its example content (practices and materials first,
   then the experiences, stances and comments that refer to them),
5. wait until every delivery has arrived, and check what arrived where.

``--check`` runs the same story and exits 0 only if every check passed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from examples.catalog import (
    ExampleFile,
    ExampleNode,
    Reference,
    load_contributions,
    load_handbook,
    load_nodes,
    parse_reference,
    publish_fields,
)

DEFAULT_DATA_DIR = Path("demo-data")
DEFAULT_BASE_PORT = 8470
TOKEN_FILE = "demo-admin-token"
SIGNIN_FILE = "demo-signin"
DEMO_USER = "redaktion"
READY_TIMEOUT = 120.0
TARGETED_KINDS = ("experience", "stance", "comment")
AS_JSON = "application/activity+json"


@dataclass(frozen=True)
class DemoNode:
    """One node of the demo: an example municipality (or the hub) on its port."""

    example: ExampleNode
    port: int
    data_dir: Path

    @property
    def slug(self) -> str:
        return self.example.slug

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def actor_url(self) -> str:
        return f"{self.base_url}/actor"


@dataclass
class DemoReport:
    """What the story did and which checks passed."""

    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    published: int = 0
    hub_urls: list[str] = field(default_factory=list)  # editions and hub pages to show

    def check(self, name: str, passed: bool, detail: str = "") -> None:
        self.checks.append((name, passed, detail))
        mark = "ok " if passed else "FAIL"
        print(f"  [{mark}] {name}{': ' + detail if detail else ''}", flush=True)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(passed for _, passed, _ in self.checks)


class DemoError(RuntimeError):
    """A step of the demo could not be completed; the message says which."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help="demo folder (default: ./demo-data)")
    parser.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT, help="hub port; nodes use the next ones")
    parser.add_argument("--reset", action="store_true", help="delete the demo folder first and start afresh")
    parser.add_argument("--check", action="store_true", help="run headless, verify every step, exit 0 only on success")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for federation to settle")


def plan_nodes(data_dir: Path, base_port: int) -> list[DemoNode]:
    """The hub first, then the municipalities, each on the next port."""
    examples = sorted(load_nodes(), key=lambda node: (not node.is_hub, node.slug))
    return [
        DemoNode(example=example, port=base_port + index, data_dir=data_dir / example.slug)
        for index, example in enumerate(examples)
    ]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from node.cli import main; sys.exit(main())", *args]


def _init_command(node: DemoNode) -> list[str]:
    example = node.example
    kind = "association" if example.is_hub else example.kind
    command = [
        "init", "--data-dir", str(node.data_dir), "--base-url", node.base_url,
        "--name", example.name, "--slug", example.slug, "--kind", kind,
        "--allow-private-network",
    ]  # fmt: skip
    if example.ags:
        command += ["--ags", example.ags]
    if example.is_hub:
        command.append("--hub")
    return _cli(*command)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _add_demo_user(data_dir: Path) -> None:
    """A staff account for the web interface; its password is kept beside the token."""
    password = secrets.token_urlsafe(12)
    command = _cli("user", "add", "--password-stdin", "--data-dir", str(data_dir), DEMO_USER)
    done = subprocess.run(command, input=password + "\n", capture_output=True, text=True)
    if done.returncode != 0:
        raise DemoError(f"praxisnetz user add in {data_dir} failed:\n{done.stderr or done.stdout}")
    _write_private(data_dir / SIGNIN_FILE, f"{DEMO_USER} {password}\n")


def prepare_nodes(nodes: list[DemoNode]) -> dict[str, str]:
    """Create the nodes that do not exist yet (in parallel); return each admin token."""
    pending = {
        node.slug: subprocess.Popen(_init_command(node), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for node in nodes
        if not (node.data_dir / TOKEN_FILE).exists()
    }
    for slug, process in pending.items():
        out, err = process.communicate()
        if process.returncode != 0:
            raise DemoError(f"praxisnetz init for {slug} failed:\n{err or out}")
        token = [line for line in out.splitlines() if line.strip()][-1].strip()
        token_path = next(node.data_dir for node in nodes if node.slug == slug) / TOKEN_FILE
        _write_private(token_path, token)
        _add_demo_user(token_path.parent)
    return {node.slug: (node.data_dir / TOKEN_FILE).read_text().strip() for node in nodes}


@contextlib.contextmanager
def running_servers(nodes: list[DemoNode]) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start ``praxisnetz serve`` for every node; stop them all on the way out."""
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for node in nodes:
            log = open(node.data_dir / "serve.log", "ab")  # noqa: SIM115 - closed with the process
            processes.append(
                subprocess.Popen(
                    _cli("serve", "--data-dir", str(node.data_dir)),
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )
            )
            log.close()
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 10
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            if process.poll() is None:
                process.kill()
                process.wait()


async def wait_until_ready(client: aiohttp.ClientSession, nodes: list[DemoNode]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    for node in nodes:
        while True:
            try:
                async with client.get(f"{node.base_url}/.well-known/nodeinfo") as response:
                    if response.status == 200:
                        break
            except aiohttp.ClientError:
                pass  # not listening yet; the deadline below bounds the wait
            if time.monotonic() > deadline:
                log = node.data_dir / "serve.log"
                tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-5:])
                raise DemoError(f"{node.slug} did not start within {READY_TIMEOUT:.0f} s; {log} ends:\n{tail}")
            await asyncio.sleep(0.2)
        print(f"  {node.example.name:<36} {node.base_url}", flush=True)


class Api:
    """The authoring API of one node, called with its admin token."""

    def __init__(self, client: aiohttp.ClientSession, node: DemoNode, token: str) -> None:
        self.client, self.node = client, node
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, body: object | None = None) -> tuple[int, dict]:
        url = f"{self.node.base_url}{path}"
        async with self.client.request(method, url, json=body, headers=self.headers) as response:
            text = await response.text()
        try:
            payload = json.loads(text)
        except json.JSONDecodeError:
            payload = {"detail": text[:500]}
        return response.status, payload if isinstance(payload, dict) else {"detail": payload}

    async def require(self, method: str, path: str, body: object | None = None) -> dict:
        status, payload = await self.call(method, path, body)
        if status >= 400:
            raise DemoError(f"{self.node.slug}: {method} {path} answered {status}: {payload}")
        return payload


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


async def wait_for(description: str, predicate, timeout: float) -> bool:
    """Poll ``predicate`` (an async callable returning bool) until true or the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.5)
    print(f"  timed out waiting for {description}", flush=True)
    return False


async def all_follows_accepted(apis: dict[str, Api]) -> bool:
    for api in apis.values():
        following = await api.require("GET", "/api/following")
        if any(item["state"] != "accepted" for item in following["items"]):
            return False
    return True


async def queues_drained(apis: dict[str, Api]) -> bool:
    for api in apis.values():
        status = await api.require("GET", "/api/status")
        if any(status["deliveries"].get(state, 0) for state in ("pending", "in_flight")):
            return False
        if any(status["inbox"].get(state, 0) for state in ("received", "processing", "retry")):
            return False
    return True


def _reference_resolver(nodes: list[DemoNode]):
    by_slug = {node.slug: node for node in nodes}
    hub = next(node for node in nodes if node.example.is_hub)

    def resolve(reference: Reference) -> str:
        if reference.node is None:
            return f"{hub.base_url}/handbook/sections/{reference.slug}"
        return f"{by_slug[reference.node].base_url}/{reference.plural}/{reference.slug}"

    return resolve


def _material_url(node: DemoNode):
    files = node.data_dir / "files"

    def file_url(path: Path) -> str:
        files.mkdir(exist_ok=True)
        shutil.copyfile(path, files / path.name)
        return f"{node.base_url}/files/{path.name}"

    return file_url


async def publish_examples(apis: dict[str, Api], nodes: list[DemoNode]) -> list[tuple[DemoNode, ExampleFile, str]]:
    """Publish every example file; objects others refer to go first."""
    resolve = _reference_resolver(nodes)
    published: list[tuple[DemoNode, ExampleFile, str]] = []
    for targeted in (False, True):
        for node in nodes:
            if node.example.is_hub:
                continue
            for example in load_contributions(node.slug):
                if (example.kind in TARGETED_KINDS) != targeted:
                    continue
                fields = publish_fields(example, resolve, _material_url(node))
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
    resolve = _reference_resolver(nodes)
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
    fields = publish_fields(example, _reference_resolver(nodes), _material_url(author))
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


def print_welcome(nodes: list[DemoNode], tokens: dict[str, str], data_dir: Path,
                  report: DemoReport | None = None) -> None:
    handbook = load_handbook()
    print("\nPraxisnetz demo is running. Open in a browser:")
    for node in nodes:
        print(f"  {node.example.name:<36} {node.base_url}/")
    hub = next(node for node in nodes if node.example.is_hub)
    print(f"\nHub actor: {hub.actor_url}  ({len(list(handbook.sections))} handbook sections prepared)")
    for url in report.hub_urls if report is not None else ():
        print(f"  {url}")
    signin = (hub.data_dir / SIGNIN_FILE).read_text().split()
    print(f"Sign in at {hub.base_url}/signin as {signin[0]!r} with password {signin[1]!r}")
    print(f"(every node has the account {DEMO_USER!r}; passwords are in {data_dir}/<slug>/{SIGNIN_FILE})")
    print(f"Admin API tokens (Authorization: Bearer …) are in {data_dir}/<slug>/{TOKEN_FILE}, e.g.:")
    print(f"  curl -H 'Authorization: Bearer {tokens[hub.slug]}' {hub.base_url}/api/status")
    print("Press Ctrl-C to stop all nodes.", flush=True)


def main(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir).resolve()
    if args.reset and data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    nodes = plan_nodes(data_dir, args.base_port)
    started = time.monotonic()
    try:
        print(f"Creating {len(nodes)} nodes in {data_dir} …", flush=True)
        tokens = prepare_nodes(nodes)
        with running_servers(nodes) as processes:
            report = asyncio.run(run_story(nodes, tokens, args))
            elapsed = time.monotonic() - started
            passed = sum(1 for _, ok, _ in report.checks if ok)
            print(f"\n{passed} of {len(report.checks)} checks passed, "
                  f"{report.published} contributions, {elapsed:.1f} s", flush=True)  # fmt: skip
            if args.check:
                return 0 if report.ok else 1
            print_welcome(nodes, tokens, data_dir, report)
            with contextlib.suppress(KeyboardInterrupt):
                while all(process.poll() is None for process in processes):
                    time.sleep(0.5)
            print("\nStopping …", flush=True)
            return 0
    except DemoError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
