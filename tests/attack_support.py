"""A test bed for the attack catalogue: a RUNNING node, real remote actors, a fenced network.

The node is the real app (``create_app``) with its workers, configured like a public
node: WITHOUT ``--allow-private-network``. Its one HTTP client is swapped for a session
on ``LoopbackOnlyConnector`` (so no packet can leave 127.0.0.0/8 even if a defence
breaks) that records every request it starts, and its resolver for a fixed table, so
names such as ``loopback.test`` really resolve to 127.0.0.1. Only ``actors.test`` (the
remote actors' server on a loopback port) is allow-listed: the node's key fetches
really happen, and everything else on loopback stays forbidden, as for a real node.

A canary server on another loopback port stands for "something internal": any hit on
it means an SSRF got through.
"""

from __future__ import annotations

import asyncio
import functools
import json
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from sqlalchemy import select

from federation.fetch import AddressPolicy, SafeFetcher, system_resolve
from federation.httpsig import RequestParts, SignatureScheme, sign_request
from federation.keys import (
    SigningKey,
    actor_key_properties,
    generate_ed25519_key,
    generate_rsa_key,
)
from federation.proofs import sign_document
from node import appkeys
from node.app import create_app
from node.config import NodeConfig, write_config
from node.identity import create_node_keys
from node.storage.db import create_engine, migrate
from node.storage.models import (
    Activity,
    Follower,
    Following,
    InboxArrival,
    InboxItem,
    InboxState,
    RemoteObject,
)
from node.storage.tokens import create_token
from tests.engine_support import FAST_DELIVERY, FAST_INBOX, eventually
from tests.fetch_support import FakeDNS, LoopbackOnlyConnector
from tests.node_support import POSTGRES_URL_ENV, MovableClock

AS_CONTEXT = "https://www.w3.org/ns/activitystreams"
AP_JSON = "application/activity+json"
ACTORS_HOST = "actors.test"  # allow-listed remote hosts: two origins, one server
RELAY_HOST = "relay.test"
LOOPBACK_NAME = "loopback.test"  # a name that resolves to 127.0.0.1, not allow-listed
METADATA_NAME = "metadata.test"  # a name that resolves to the cloud metadata address
MIXED_NAME = "mixed.test"  # public and loopback answers: one bad address refuses the host
DNS_TABLE = {
    ACTORS_HOST: ["127.0.0.1"],
    RELAY_HOST: ["127.0.0.1"],
    "other.test": ["127.0.0.1"],
    LOOPBACK_NAME: ["127.0.0.1"],
    METADATA_NAME: ["169.254.169.254"],
    MIXED_NAME: ["93.184.216.34", "127.0.0.1"],
}
FINISHED = (InboxState.DONE.value, InboxState.REJECTED.value, InboxState.RETRY.value)


# --- remote actors ------------------------------------------------------------------------


@dataclass(frozen=True)
class ActorKeys:
    rsa: rsa.RSAPrivateKey
    ed25519: ed25519.Ed25519PrivateKey


@pytest.fixture(scope="session")
def actor_key_pool() -> list[ActorKeys]:
    """RSA generation is slow; a few key pairs serve every test."""
    return [ActorKeys(generate_rsa_key(), generate_ed25519_key()) for _ in range(3)]


@dataclass(frozen=True)
class RemoteActorSpec:
    """A remote actor served by the actors' server: its id and its signing keys."""

    id: str
    keys: ActorKeys
    outbox: str | None = None
    name: str = "Testkommune"
    inbox: str | None = None  # default: {id}/inbox

    @property
    def origin(self) -> str:
        return self.id.split("/users/", 1)[0]

    @property
    def rsa(self) -> SigningKey:
        return SigningKey(f"{self.id}#main-key", self.keys.rsa)

    @property
    def ed25519(self) -> SigningKey:
        return SigningKey(f"{self.id}#ed25519-key", self.keys.ed25519)

    def document(self) -> dict[str, Any]:
        return {
            "@context": [AS_CONTEXT, "https://w3id.org/security/v1"],
            "id": self.id,
            "type": "Organization",
            "preferredUsername": self.id.rsplit("/", 1)[-1],
            "name": self.name,
            "inbox": self.inbox or f"{self.id}/inbox",
            "outbox": self.outbox or f"{self.id}/outbox",
            "followers": f"{self.id}/followers",
            **actor_key_properties(self.id, self.keys.rsa.public_key(),
                                   self.keys.ed25519.public_key()),
        }

    def activity(self, kind: str, obj: object, **extra: Any) -> dict[str, Any]:
        return {"@context": AS_CONTEXT, "id": f"{self.origin}/activities/{uuid.uuid4()}",
                "type": kind, "actor": self.id, "object": obj, **extra}

    def note(self, **extra: Any) -> dict[str, Any]:
        return {"@context": AS_CONTEXT, "id": f"{self.origin}/notes/{uuid.uuid4().hex[:10]}",
                "type": "Note", "attributedTo": self.id, "content": "<p>Hallo</p>",
                "published": "2026-11-01T10:00:00Z", **extra}

    def signed(self, document: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        """``document`` with this actor's eddsa-jcs-2022 proof."""
        return sign_document(document, self.ed25519, created=now)


@dataclass(frozen=True)
class Served:
    """One canned answer of the actors' server."""

    body: bytes
    status: int = 200
    content_type: str = AP_JSON
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Hit:
    method: str
    path: str
    host: str


class RemoteServer:
    """The remote side: actors at ``/users/{name}``, canned documents, an endless outbox."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.port = 0  # set once the server listens
        self.actors: dict[str, RemoteActorSpec] = {}
        self.canned: dict[str, Served] = {}
        self.hits: list[Hit] = []
        self.app.middlewares.append(self._record)
        self.app.router.add_get("/users/{name}", self._actor)
        self.app.router.add_post("/users/{name}/inbox", self._inbox)
        self.app.router.add_get("/endless/{page}", self._endless_page)
        self.app.router.add_route("*", "/{path:.*}", self._canned)

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.hits.append(Hit(request.method, request.path_qs, request.host))
        return await handler(request)

    def add_actor(self, username: str, keys: ActorKeys, *, host: str = ACTORS_HOST,
                  **details: Any) -> RemoteActorSpec:
        """An actor at ``/users/{username}``; ``details``: outbox, name or inbox overrides."""
        spec = RemoteActorSpec(f"http://{host}:{self.port}/users/{username}", keys, **details)
        self.actors[spec.id] = spec
        return spec

    def url(self, path: str, host: str = ACTORS_HOST) -> str:
        return f"http://{host}:{self.port}{path}"

    def serve(self, path: str, document: Mapping[str, Any] | bytes, **answer: Any) -> str:
        """Answer GET ``path`` (on any of the server's host names) with ``document``."""
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        self.canned[path] = Served(body, **answer)
        return self.url(path)

    async def _actor(self, request: web.Request) -> web.Response:
        spec = self.actors.get(f"http://{request.host}/users/{request.match_info['name']}")
        path = request.path
        if spec is None:
            return await self._canned(request) if path in self.canned else web.Response(status=404)
        return web.json_response(spec.document(), content_type=AP_JSON)

    async def _inbox(self, request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=202)

    async def _endless_page(self, request: web.Request) -> web.Response:
        page = int(request.match_info["page"])
        base = f"http://{request.host}/endless"
        body = {"@context": AS_CONTEXT, "id": f"{base}/{page}", "type": "OrderedCollectionPage",
                "orderedItems": [], "next": f"{base}/{page + 1}"}
        return web.json_response(body, content_type=AP_JSON)

    async def _canned(self, request: web.Request) -> web.Response:
        answer = self.canned.get(request.path)
        if answer is None:
            return web.Response(status=404)
        return web.Response(body=answer.body, status=answer.status,
                            headers={"Content-Type": answer.content_type, **answer.headers})

    def paths(self) -> list[str]:
        return [hit.path for hit in self.hits]


class Canary:
    """Stands for an internal service: every request that reaches it is an SSRF."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.port = 0
        self.hits: list[str] = []
        self.app.router.add_route("*", "/{path:.*}", self._hit)

    async def _hit(self, request: web.Request) -> web.Response:
        self.hits.append(request.path_qs)
        return web.json_response({"id": str(request.url), "type": "Note"}, content_type=AP_JSON)


# --- the fenced network -------------------------------------------------------------------


@dataclass
class FencedNetwork:
    """What the node's HTTP client tried: every request started, every name resolved."""

    dns: FakeDNS
    started: list[str] = field(default_factory=list)

    async def resolve(self, host: str, port: int) -> list[IPv4Address | IPv6Address]:
        if host == "localhost":  # the real resolver: a real name for loopback
            self.dns.asked.append(host)
            return await system_resolve(host, port)
        return await self.dns(host, port)

    def session(self, **_: Any) -> aiohttp.ClientSession:
        async def on_request_start(session: Any, context: Any, params: Any) -> None:
            self.started.append(str(params.url))

        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(on_request_start)
        return aiohttp.ClientSession(connector=LoopbackOnlyConnector(),
                                     trace_configs=[trace], cookie_jar=aiohttp.DummyCookieJar())


def fence_node_network(monkeypatch: pytest.MonkeyPatch) -> FencedNetwork:
    """Route the node's HTTP client through a ``FencedNetwork`` (see the module docstring)."""
    net = FencedNetwork(FakeDNS(DNS_TABLE))

    def policy(config: NodeConfig) -> AddressPolicy:
        if config.allow_private_network:
            return AddressPolicy.local_federation()
        return AddressPolicy(allowed_hosts=frozenset({ACTORS_HOST, RELAY_HOST}))

    monkeypatch.setattr("node.http_client.make_client_session", net.session)
    monkeypatch.setattr("node.http_client.SafeFetcher",
                        functools.partial(SafeFetcher, resolve=net.resolve))
    monkeypatch.setattr("node.http_client.address_policy", policy)
    return net


# --- the bed ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    text: str

    @property
    def problem(self) -> dict[str, Any]:
        return json.loads(self.text) if self.text.startswith("{") else {}


@dataclass(frozen=True)
class Snapshot:
    """Everything a received activity could change, as comparable values.

    The cache of remote actor documents is left out on purpose: a verified sender's
    actor is remembered even when its activity is then refused.
    """

    inbox: tuple[tuple[str, str], ...]
    objects: tuple[tuple[str, bool, str], ...]
    followers: tuple[tuple[str, str], ...]
    following: tuple[tuple[str, str, str], ...]
    remote_activities: tuple[str, ...]


@dataclass
class AttackBed:
    client: TestClient
    config: NodeConfig
    clock: MovableClock
    net: FencedNetwork
    remote: RemoteServer
    canary: Canary
    alice: RemoteActorSpec  # alice and mallory share an origin
    mallory: RemoteActorSpec
    relay: RemoteActorSpec  # on another origin

    @property
    def app(self) -> web.Application:
        return self.client.server.app

    def canary_url(self, host: str = "127.0.0.1", path: str = "/internal") -> str:
        return f"http://{host}:{self.canary.port}{path}"

    # requests ---------------------------------------------------------------------------

    def signed_headers(self, body: bytes, key: SigningKey | None, *, path: str = "/actor/inbox",
                       now: datetime | None = None,
                       scheme: SignatureScheme = SignatureScheme.CAVAGE) -> dict[str, str]:
        headers = {"Content-Type": AP_JSON}
        if key is not None:
            parts = RequestParts("POST", self.config.base_url + path, headers, body)
            headers.update(sign_request(parts, key, scheme, now=now or self.clock()))
        return headers

    async def post_raw(self, body: bytes, headers: Mapping[str, str],
                       path: str = "/actor/inbox") -> Answer:
        async with self.client.post(path, data=body, headers=dict(headers)) as response:
            return Answer(response.status, await response.text())

    async def post(self, document: Mapping[str, Any] | bytes, key: SigningKey | None, *,
                   path: str = "/actor/inbox", now: datetime | None = None,
                   scheme: SignatureScheme = SignatureScheme.CAVAGE) -> Answer:
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        headers = self.signed_headers(body, key, path=path, now=now, scheme=scheme)
        return await self.post_raw(body, headers, path)

    async def post_bytes(self, path: str, headers: Mapping[str, bytes | str], body: bytes,
                         method: str = "POST") -> int:
        """Send a request exactly as given (header bytes need not be UTF-8); its status."""
        lines = b"".join(name.encode() + b": " + (value if isinstance(value, bytes)
                                                  else value.encode()) + b"\r\n"
                         for name, value in headers.items())
        head = (f"{method} {path} HTTP/1.1\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n").encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", self.client.port)
        try:
            writer.write(head + lines + b"\r\n" + body)
            await writer.drain()
            status_line = await reader.readline()
        finally:
            writer.close()
        return int(status_line.split()[1])

    async def deliver(self, document: Mapping[str, Any], sender: RemoteActorSpec) -> str:
        """Post ``document`` signed by ``sender``, expect 202, wait for processing;
        returns the inbox item's final state."""
        answer = await self.post(document, sender.rsa)
        assert answer.status == 202, answer.text
        return await self.processed(str(document["id"]))

    async def follow_accepted_by(self, username: str, **details: Any) -> RemoteActorSpec:
        """Follow a new remote actor through the API and let it accept (backfill starts)."""
        target = self.remote.add_actor(username, self.alice.keys, **details)
        answer = await self.client.post("/api/following", json={"target": target.id},
                                        headers=await self.api_auth())
        assert answer.status == 202, await answer.text()
        (following,) = await self.rows(Following)
        our_follow = {"id": following.follow_activity_uri, "type": "Follow",
                      "actor": self.config.actor_url, "object": target.id}
        assert await self.deliver(target.activity("Accept", our_follow), target) == "done"
        return target

    async def api_auth(self) -> dict[str, str]:
        async with self.app[appkeys.SESSION_MAKER].begin() as session:
            issued = await create_token(session, "attack-test", now=self.clock())
        return {"Authorization": f"Bearer {issued.token}"}

    # the node's tables ------------------------------------------------------------------

    async def rows(self, model: type, *where: Any) -> list[Any]:
        async with self.app[appkeys.SESSION_MAKER]() as session:
            return list((await session.execute(select(model).where(*where))).scalars())

    async def processed(self, activity_id: str, timeout: float = 10.0) -> str:
        """Wait until the inbox worker has handled the activity; its state."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = await self.rows(InboxItem, InboxItem.activity_uri == activity_id)
            if rows and rows[0].state in FINISHED:
                return rows[0].state
            await asyncio.sleep(0.02)
        raise AssertionError(f"{activity_id} was not processed within {timeout}s")

    async def backfill_finished(self, timeout: float = 15.0) -> Following:
        return await eventually(lambda: self._finished_following(), timeout=timeout)

    async def _finished_following(self) -> Following | None:
        (following,) = await self.rows(Following)
        return following if following.backfill_state in ("done", "failed") else None

    async def remote_object(self, uri: str) -> RemoteObject | None:
        rows = await self.rows(RemoteObject, RemoteObject.uri == uri)
        return rows[0] if rows else None

    async def snapshot(self) -> Snapshot:
        inbox = await self.rows(InboxItem)
        arrivals = await self.rows(InboxArrival)  # stored, not yet moved by a claim
        objects = await self.rows(RemoteObject)
        followers = await self.rows(Follower)
        following = await self.rows(Following)
        remote_activities = await self.rows(Activity, Activity.is_local.is_(False))
        return Snapshot(
            tuple(sorted([(row.activity_uri, row.state) for row in inbox]
                         + [(row.activity_uri, "arrival") for row in arrivals])),
            tuple(sorted((row.uri, row.deleted, json.dumps(row.document, sort_keys=True))
                         for row in objects)),
            tuple(sorted((row.actor_uri, row.state) for row in followers)),
            tuple(sorted((row.target_uri, row.state, row.backfill_state) for row in following)),
            tuple(sorted(row.uri for row in remote_activities)),
        )

    async def seed_object(self, document: Mapping[str, Any], sender: RemoteActorSpec) -> None:
        """Store ``document`` through a genuine, signed Create by its author."""
        state = await self.deliver(sender.activity("Create", dict(document)), sender)
        assert state == InboxState.DONE.value
        assert await self.remote_object(str(document["id"])) is not None


BedFactory = Callable[..., Awaitable[AttackBed]]
NODE_BASE_URL = "https://guetersloh.example"


@pytest.fixture(scope="session")
def node_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Node keys and a migrated database, made once; every bed starts from a copy."""
    folder = tmp_path_factory.mktemp("attack-node-template")
    config = NodeConfig(data_dir=folder, base_url=NODE_BASE_URL, name="Vorlage", slug="vorlage")
    create_node_keys(config)

    async def migrated() -> None:
        engine = create_engine(config.database_url)
        await migrate(engine)
        await engine.dispose()

    asyncio.run(migrated())
    return folder


def copy_node(template: Path, data_dir: Path, **changes: Any) -> NodeConfig:
    """A node directory like ``praxisnetz init`` leaves it, from the template."""
    shutil.copytree(template, data_dir)
    values: dict[str, Any] = {"data_dir": data_dir, "base_url": NODE_BASE_URL,
                              "name": "Stadt Gütersloh", "slug": "guetersloh",
                              "inbox": FAST_INBOX, "delivery": FAST_DELIVERY, **changes}
    config = NodeConfig(**values)
    write_config(config)
    return config


@pytest.fixture
async def make_bed(aiohttp_client, aiohttp_server, tmp_path, monkeypatch,
                   actor_key_pool, node_template) -> BedFactory:
    """Build a bed; keyword arguments change the node's configuration."""

    async def build(**config_changes: Any) -> AttackBed:
        net = fence_node_network(monkeypatch)
        remote, canary = RemoteServer(), Canary()
        remote_server: TestServer = await aiohttp_server(remote.app)
        canary_server: TestServer = await aiohttp_server(canary.app)
        remote.port = remote_server.port
        canary.port = canary_server.port
        alice = remote.add_actor("alice", actor_key_pool[0])
        mallory = remote.add_actor("mallory", actor_key_pool[1])
        relay = remote.add_actor("relay", actor_key_pool[2], host=RELAY_HOST)
        config = copy_node(node_template, tmp_path / "node", **config_changes)
        clock = MovableClock()
        client = await aiohttp_client(create_app(config, clock=clock, start_workers=True))
        return AttackBed(client, config, clock, net, remote, canary, alice, mallory, relay)

    return build


@pytest.fixture
async def bed(make_bed: BedFactory) -> AttackBed:
    return await make_bed()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database for one bed (``make_bed(database_url=...)``), dropped
    afterwards; skips when PRAXISNETZ_TEST_POSTGRES_URL is not set."""
    import os

    import asyncpg

    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_URL_ENV} is not set")
    name = f"attack_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.rsplit("/", 1)[0] + "/" + name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
