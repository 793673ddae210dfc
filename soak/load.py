"""The soak's load: authoring API calls against the members, and the chaos loop.

Every call goes through the node's JSON API with its bearer token, exactly as an
editor's client would. An activity counts as *accepted* only when the API answered
2xx; a call that hit a node being killed counts as refused, whatever happened inside.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import aiohttp

from soak.cluster import Cluster, ClusterError, SoakNode, wait_listening

# Relative weights of the operations. Follow churn is an Undo Follow and a Follow at once;
# a rewrite is two Updates of one object at once (within a second, arriving in any order).
OPERATION_WEIGHTS = {
    "publish": 34, "update": 20, "rewrite": 4, "delete": 8, "stance": 14, "comment": 14,
    "churn": 2,
}  # fmt: skip
PAIRED = ("churn", "rewrite")  # operations of two activities each
POSITIONS = ("agree", "disagree", "partly")
REFOLLOW_SECONDS = 60.0  # how long a churn asks again for its refused Follow


@dataclass
class LoadLedger:
    """What the load generator did and what it knows about each member's contributions."""

    accepted: Counter[str] = field(default_factory=Counter)  # operation -> 2xx answers
    refused: Counter[str] = field(default_factory=Counter)  # operation -> errors/non-2xx
    created: dict[str, set[str]] = field(default_factory=dict)  # slug of node -> URIs (2xx)
    live: dict[str, dict[str, dict]] = field(default_factory=dict)  # node -> slug -> fields
    practices: dict[str, list[str]] = field(default_factory=dict)  # node -> practice URIs
    samples: list[str] = field(default_factory=list)  # the first refusals, for the report
    kills: int = 0
    restarts: int = 0

    def note_refusal(self, node: str, what: str, status: int, payload: dict) -> None:
        if status and len(self.samples) < 10:  # 0: no answer (a killed node), expected
            self.samples.append(f"{node} {what}: {status} {str(payload)[:300]}")

    @property
    def activities(self) -> int:
        return sum(self.accepted.values()) + sum(self.accepted[name] for name in PAIRED)


class LoadError(RuntimeError):
    """The members refuse most operations: the soak cannot go on."""


class Load:
    """Issues random operations at the members that are up."""

    def __init__(self, cluster: Cluster, client: aiohttp.ClientSession, ledger: LoadLedger,
                 rng: random.Random) -> None:
        self.cluster, self.client, self.ledger, self.rng = cluster, client, ledger, rng

    def _origins(self) -> list[SoakNode]:
        return [node for node in self.cluster.members if node.running and not node.held_down]

    async def call(self, node: SoakNode, method: str, path: str,
                   body: object | None = None) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {node.token}"}
        try:
            async with self.client.request(method, f"{node.base_url}{path}", json=body,
                                           headers=headers) as response:
                payload = await response.json(content_type=None) if response.status < 500 else {}
                return response.status, payload if isinstance(payload, dict) else {}
        except (TimeoutError, aiohttp.ClientError, ValueError):
            return 0, {}  # killed mid-request, or not listening yet

    async def one(self) -> None:
        origins = self._origins()
        if not origins:
            await asyncio.sleep(0.05)
            return
        node = self.rng.choice(origins)
        operation = self.rng.choices(list(OPERATION_WEIGHTS), list(OPERATION_WEIGHTS.values()))[0]
        live = self.ledger.live.setdefault(node.slug, {})
        if operation in ("update", "rewrite", "delete") and not live:
            operation = "publish"
        ok = await getattr(self, f"_{operation}")(node, live)
        (self.ledger.accepted if ok else self.ledger.refused)[operation] += 1

    async def _create(self, node: SoakNode, live: dict[str, dict], fields: dict) -> bool:
        status, payload = await self.call(node, "POST", "/api/contributions", fields)
        if not 200 <= status < 300:
            self.ledger.note_refusal(node.slug, f"POST {fields['kind']}", status, payload)
            return False
        self.ledger.created.setdefault(node.slug, set()).add(payload["uri"])
        live[fields["slug"]] = fields
        if fields["kind"] == "practice":
            self.ledger.practices.setdefault(node.slug, []).append(payload["uri"])
        return True

    async def _publish(self, node: SoakNode, live: dict[str, dict]) -> bool:
        slug = f"praxis-{uuid.uuid4().hex[:12]}"
        fields = {"kind": "practice", "slug": slug, "title": f"Praxis {slug}",
                  "summary": "Soak", "body": "Erste Fassung.", "status": "piloting",
                  "topics": ["e-akte"]}
        return await self._create(node, live, fields)

    def _someone_elses_practice(self, node: SoakNode) -> str | None:
        others = [uri for slug, uris in self.ledger.practices.items() if slug != node.slug
                  for uri in uris[-50:]]
        return self.rng.choice(others) if others else None

    async def _stance(self, node: SoakNode, live: dict[str, dict]) -> bool:
        about = self._someone_elses_practice(node)
        if about is None:
            return await self._publish(node, live)
        slug = f"haltung-{uuid.uuid4().hex[:12]}"
        fields = {"kind": "stance", "slug": slug, "title": "Unsere Haltung", "about": about,
                  "position": self.rng.choice(POSITIONS), "reason": "Weil es bei uns so war.",
                  "body": "Begründung."}
        return await self._create(node, live, fields)

    async def _comment(self, node: SoakNode, live: dict[str, dict]) -> bool:
        about = self._someone_elses_practice(node)
        if about is None:
            return await self._publish(node, live)
        slug = f"kommentar-{uuid.uuid4().hex[:12]}"
        fields = {"kind": "comment", "slug": slug, "title": "Eine Frage", "about": about,
                  "body": "Wie lange hat es gedauert?"}
        return await self._create(node, live, fields)

    async def _put(self, node: SoakNode, live: dict[str, dict], slug: str) -> bool:
        fields = {**live[slug], "body": f"Fassung {uuid.uuid4().hex[:8]}."}
        status, payload = await self.call(node, "PUT", f"/api/contributions/{slug}", fields)
        if 200 <= status < 300:
            live[slug] = fields
        else:
            self.ledger.note_refusal(node.slug, "PUT", status, payload)
        return 200 <= status < 300

    async def _update(self, node: SoakNode, live: dict[str, dict]) -> bool:
        return await self._put(node, live, self.rng.choice(list(live)))

    async def _rewrite(self, node: SoakNode, live: dict[str, dict]) -> bool:
        """Two Updates of one object at once: both saved within a second, their deliveries
        race; every follower must still end with the second (the origin's last)."""
        slug = self.rng.choice(list(live))
        return await self._put(node, live, slug) and await self._put(node, live, slug)

    async def _delete(self, node: SoakNode, live: dict[str, dict]) -> bool:
        slug = self.rng.choice(list(live))
        status, _ = await self.call(node, "DELETE", f"/api/contributions/{slug}")
        live.pop(slug, None)  # whatever the answer: a deleted or unknown state is not touched again
        return 200 <= status < 300

    async def _churn(self, node: SoakNode, live: dict[str, dict]) -> bool:
        """Leave the hub and follow it again at once (the hub publishes nothing itself).
        The new Follow is asked for again while it is refused (the hub or the member may be
        down a moment), as an editor would, until the member is held down."""
        target = {"target": self.cluster.hub.actor_url}
        left, _ = await self.call(node, "DELETE", "/api/following", target)
        if not 200 <= left < 300:
            return False
        deadline = time.monotonic() + REFOLLOW_SECONDS
        while not node.held_down and time.monotonic() < deadline:
            joined, _ = await self.call(node, "POST", "/api/following", target)
            if 200 <= joined < 300:
                return True
            await asyncio.sleep(0.5)
        return False

    async def run(self, total: int, concurrency: int) -> None:
        """Issue operations until ``total`` activities were accepted."""

        async def worker() -> None:
            while self.ledger.activities < total:
                await self.one()
                if sum(self.ledger.refused.values()) > self.ledger.activities + 200:
                    raise LoadError(f"the members refuse the load: {self.ledger.samples}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))


async def restart(cluster: Cluster, node: SoakNode, ledger: LoadLedger) -> bool:
    """Start ``node`` again; False if the driver held it down meanwhile (it stays dead)."""
    if node.held_down:
        return False
    cluster.start(node)
    try:
        await asyncio.to_thread(wait_listening, node)
    except ClusterError:
        if node.held_down:
            return False  # held down while it was starting
        raise
    ledger.restarts += 1
    return True


async def restart_cleanly(cluster: Cluster, node: SoakNode, ledger: LoadLedger) -> None:
    """SIGTERM ``node`` (its shutdown runs: a hub writes its search's snapshot) and start
    it again."""
    await asyncio.to_thread(cluster.stop, node)
    await restart(cluster, node, ledger)


def hold_down(cluster: Cluster, node: SoakNode, ledger: LoadLedger) -> None:
    """SIGKILL ``node`` and keep it dead (the chaos loop leaves it alone from now on)."""
    node.held_down = True
    cluster.kill(node)
    ledger.kills += 1


async def chaos(cluster: Cluster, ledger: LoadLedger, rng: random.Random, *, kills: int,
                interval: float, load_done: asyncio.Event, kills_done: asyncio.Event) -> None:
    """SIGKILL a random node every ``interval`` seconds and restart it after a short while:
    at least ``kills`` kills and restarts (``kills_done`` is set then), and on until the
    load is done."""
    restarted = 0
    while restarted < kills or not load_done.is_set():
        if restarted >= kills:
            kills_done.set()
        await asyncio.sleep(interval)
        candidates = [node for node in cluster.nodes if node.running and not node.held_down]
        victim = rng.choice(candidates)
        cluster.kill(victim)
        ledger.kills += 1
        await asyncio.sleep(rng.uniform(0.2, 1.5))  # down a moment: senders see refusals
        restarted += await restart(cluster, victim, ledger)


def elapsed_since(start: float) -> float:
    return time.monotonic() - start
