"""What every part of the demo shares: the nodes, the report, the API client."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from examples.catalog import (
    ExampleNode,
    Reference,
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


async def wait_for(description: str, predicate, timeout: float) -> bool:
    """Poll ``predicate`` (an async callable returning bool) until true or the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.5)
    print(f"  timed out waiting for {description}", flush=True)
    return False


def reference_resolver(nodes: list[DemoNode]):
    by_slug = {node.slug: node for node in nodes}
    hub = next(node for node in nodes if node.example.is_hub)

    def resolve(reference: Reference) -> str:
        if reference.node is None:
            return f"{hub.base_url}/handbook/sections/{reference.slug}"
        return f"{by_slug[reference.node].base_url}/{reference.plural}/{reference.slug}"

    return resolve


def material_url(node: DemoNode):
    files = node.data_dir / "files"

    def file_url(path: Path) -> str:
        files.mkdir(exist_ok=True)
        shutil.copyfile(path, files / path.name)
        return f"{node.base_url}/files/{path.name}"

    return file_url


async def queues_drained(apis: dict[str, Api]) -> bool:
    for api in apis.values():
        status = await api.require("GET", "/api/status")
        if any(status["deliveries"].get(state, 0) for state in ("pending", "in_flight")):
            return False
        if any(status["inbox"].get(state, 0) for state in ("received", "processing", "retry")):
            return False
    return True
