"""A running node uses a rotated key without a restart (real processes).

``praxisnetz serve`` with ``[server] processes = 2`` (two acceptors serving the actor,
one worker process delivering) runs on 127.0.0.1; ``praxisnetz keys rotate`` runs beside
it. The actor Update it queues reaches a test receiver signed with the NEW RSA key (the
old key no longer verifies it), and the acceptors serve the new key; then the same for
the Ed25519 key: the served Multikey changes and the second Update's proof verifies with
the new Ed25519 key.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from federation.httpsig import RequestParts, verify_request
from federation.httpsig_common import KeyLookup
from federation.keys import (
    PublicKeyInfo,
    ed25519_to_multibase,
    load_private_key,
    parse_actor_keys,
    public_key_pem,
)
from federation.proofs import ProofVerdict, verify_document
from node.config import NodeConfig, ServerTuning
from node.identity import actor_document, load_node_keys
from node.storage.db import create_engine, migrate, session_maker
from node.storage.models import Follower
from tests.engine_support import eventually, free_port, node_config
from tests.test_serve_processes import serving

pytestmark = pytest.mark.slow

PRAXISNETZ = Path(sys.executable).with_name("praxisnetz")


@dataclass
class Receiver:
    url: str
    requests: list[RequestParts] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    port = free_port()
    inbox = Receiver(f"http://127.0.0.1:{port}/inbox")

    async def take(request: web.Request) -> web.Response:
        inbox.requests.append(RequestParts("POST", str(request.url), dict(request.headers),
                                           await request.read()))
        return web.Response(status=202)

    app = web.Application()
    app.router.add_post("/inbox", take)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield inbox
    await runner.cleanup()


async def add_follower(config: NodeConfig, inbox: str) -> None:
    engine = create_engine(config.database_url)
    await migrate(engine)
    async with session_maker(engine).begin() as session:
        session.add(Follower(actor_uri="http://127.0.0.1:1/actor", inbox=inbox, shared_inbox=None,
                             state="accepted", created_at=datetime.now(UTC)))
    await engine.dispose()


def published_keys(config: NodeConfig) -> dict[str, PublicKeyInfo]:
    """The keys as they are in the key files now (with the key versions file)."""
    actor = actor_document(config, load_node_keys(config))
    return {info.key_id: info for info in parse_actor_keys(actor)}


async def verifies_with(request: RequestParts, key: PublicKeyInfo) -> bool:
    async def resolve(key_id: str, *, refresh: bool = False) -> KeyLookup:
        return KeyLookup(key if key_id == key.key_id else None)

    result = await verify_request(request, resolve, now=datetime.now(UTC))
    return result.ok


async def rotate(config: NodeConfig, kind: str) -> None:
    process = await asyncio.create_subprocess_exec(
        str(PRAXISNETZ), "keys", "rotate", "--kind", kind, "--data-dir", str(config.data_dir),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()


async def served_actor(config: NodeConfig, times: int = 8) -> dict:
    """The actor as served, asked on a new connection each time so that the kernel spreads
    the requests over both acceptors; every answer must be the same."""
    answers = []
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(times):
            async with session.get(config.actor_url,
                                   headers={"Accept": "application/activity+json"}) as response:
                assert response.status == 200
                answers.append(await response.json(content_type=None))
    assert all(answer == answers[0] for answer in answers), "the acceptors disagree"
    return answers[0]


async def test_a_running_node_signs_and_serves_the_rotated_keys_without_restart(
    tmp_path, receiver
) -> None:
    config = node_config(tmp_path, "a", server=ServerTuning(processes=2))
    await add_follower(config, receiver.url)
    old = published_keys(config)[config.rsa_key_id]
    async with serving(config, tmp_path / "serve.log"):
        assert (await served_actor(config))["publicKey"]["publicKeyPem"] == public_key_pem(old.public_key)
        await rotate(config, "rsa")
        new = published_keys(config)[config.rsa_key_id]
        await eventually(lambda: _at_least(receiver, 1), timeout=30)
        update = receiver.requests[0]
        assert b'"Update"' in update.body
        assert await verifies_with(update, new)
        assert not await verifies_with(update, old)
        served = await served_actor(config)
        assert served["publicKey"]["publicKeyPem"] == public_key_pem(new.public_key)

        old_ed = ed25519_to_multibase(load_private_key(config.ed25519_key_path).public_key())
        await rotate(config, "ed25519")
        keys = published_keys(config)
        new_ed = keys[f"{config.actor_url}#ed25519-key-2"]
        assert ed25519_to_multibase(new_ed.public_key) != old_ed
        served = await served_actor(config)
        # the earlier key stays published after the new one: earlier proofs keep verifying
        assert [m["publicKeyMultibase"] for m in served["assertionMethod"]] == [
            ed25519_to_multibase(new_ed.public_key), old_ed
        ]
        await eventually(lambda: _at_least(receiver, 2), timeout=30)
        second = receiver.requests[1]
        assert await verifies_with(second, keys[config.rsa_key_id])
        document = json.loads(second.body)
        assert verify_document(document, new_ed).verdict is ProofVerdict.OK


async def _at_least(receiver: Receiver, number: int) -> bool:
    return len(receiver.requests) >= number
