"""Helpers for the federation-engine tests: nodes on loopback ports, signed requests.

Every node listens on 127.0.0.1 only and allows the local federation (loopback), as
``praxisnetz init --allow-private-network`` would.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import select

from federation.httpsig import RequestParts, SignatureScheme, sign_request
from federation.keys import SigningKey
from node import appkeys
from node.app import create_app
from node.config import DeliveryTuning, InboxTuning, NodeConfig, write_config
from node.identity import create_node_keys
from node.inbox_http import NodeRunner

ACTIVITY_JSON = "application/activity+json"
AS_CONTEXT = "https://www.w3.org/ns/activitystreams"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


FAST_DELIVERY = DeliveryTuning(poll_interval_seconds=0.05, claim_seconds=5)
FAST_INBOX = InboxTuning(poll_interval_seconds=0.05)


def node_config(tmp_path: Path, slug: str, port: int | None = None, **changes: Any) -> NodeConfig:
    """A fresh node directory with keys and a config file (like ``praxisnetz init``)."""
    port = port or free_port()
    data_dir = tmp_path / slug
    data_dir.mkdir(parents=True, exist_ok=True)
    config = NodeConfig(
        data_dir=data_dir,
        base_url=f"http://127.0.0.1:{port}",
        name=f"Testkommune {slug}",
        slug=slug,
        allow_private_network=True,
        delivery=FAST_DELIVERY,
        inbox=FAST_INBOX,
    )
    config = replace(config, **changes) if changes else config
    create_node_keys(config)
    write_config(config)
    return config


@dataclass
class RunningNode:
    config: NodeConfig
    app: web.Application
    runner: web.AppRunner

    @property
    def url(self) -> str:
        return self.config.base_url

    @property
    def actor(self) -> str:
        return self.config.actor_url

    @property
    def keys(self) -> appkeys.NodeKeys:
        return self.app[appkeys.NODE_KEYS]

    def sessions(self):  # noqa: ANN201 - async_sessionmaker
        return self.app[appkeys.SESSION_MAKER]

    async def rows(self, model: type, *where: Any) -> list[Any]:
        async with self.sessions()() as session:
            return list((await session.execute(select(model).where(*where))).scalars())

    async def stop(self) -> None:
        await self.runner.cleanup()


async def start_node(
    config: NodeConfig,
    *,
    clock: Callable[[], datetime] | None = None,
    start_workers: bool = True,
) -> RunningNode:
    app = create_app(config, clock=clock, start_workers=start_workers)
    runner = NodeRunner(app, access_log=None)  # as `praxisnetz serve` runs it: the inbox door first
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", config.listen_port)
    await site.start()
    return RunningNode(config, app, runner)


def signed_headers(
    url: str,
    body: bytes,
    key: SigningKey,
    *,
    scheme: SignatureScheme = SignatureScheme.CAVAGE,
    now: datetime | None = None,
) -> dict[str, str]:
    headers = {"Content-Type": ACTIVITY_JSON}
    parts = RequestParts("POST", url, headers, body)
    headers.update(sign_request(parts, key, scheme, now=now or datetime.now(UTC)))
    return headers


async def post_signed(
    session: aiohttp.ClientSession,
    url: str,
    document: Mapping[str, Any] | bytes,
    key: SigningKey,
    *,
    scheme: SignatureScheme = SignatureScheme.CAVAGE,
    now: datetime | None = None,
    extra_headers: Mapping[str, str] | None = None,
) -> tuple[int, dict[str, str], str]:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    headers = signed_headers(url, body, key, scheme=scheme, now=now)
    headers.update(extra_headers or {})
    async with session.post(url, data=body, headers=headers) as response:
        return response.status, dict(response.headers), await response.text()


async def eventually(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 10.0, interval: float = 0.05
) -> Any:
    """Poll ``check`` until it returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


# --- driving a node in-process (what the CLI and the API do) ---------------------------


def author_of(node: RunningNode) -> Any:
    from node.authoring import Author

    return Author(node.config, node.keys, node.app[appkeys.CLOCK])


# What the shapes require of a kind beyond a title and a body (authoring refuses less);
# a test that is not about these fields need not spell them out.
REQUIRED_DEFAULTS: dict[str, dict[str, Any]] = {
    "practice": {"topics": ("e-akte",), "status": "piloting"},
    "material": {"url": "https://example.org/leitfaden.pdf", "media_type": "application/pdf"},
}


async def publish(node: RunningNode, kind: str, slug: str, title: str, **fields: Any) -> str:
    """Create or update a contribution; returns its URI."""
    from node.authoring import publish as publish_contribution
    from node.contribution_input import ContributionInput
    from node.storage.models import ContributionKind

    fields = {**REQUIRED_DEFAULTS.get(kind, {}), **fields}
    inp = ContributionInput(kind=ContributionKind(kind), slug=slug, title=title, **fields)
    async with node.sessions()() as session, session.begin():
        result = await publish_contribution(session, author_of(node), inp)
    return result.uri


async def delete_contribution(node: RunningNode, slug: str) -> None:
    from node.authoring import delete_contribution as delete

    async with node.sessions()() as session, session.begin():
        await delete(session, author_of(node), slug)


async def follow(node: RunningNode, target: str) -> None:
    from node import follows

    info = await follows.resolve_target(node.config, node.app[appkeys.FETCHER], target)
    async with node.sessions()() as session, session.begin():
        await follows.follow(session, node.config, node.keys, info,
                             now=node.app[appkeys.CLOCK]())


async def unfollow(node: RunningNode, target: str) -> None:
    from node import follows

    async with node.sessions()() as session, session.begin():
        await follows.unfollow(session, node.config, node.keys, target,
                               now=node.app[appkeys.CLOCK]())
