"""Interop with Fedify (npm ``@fedify/fedify``, pinned in tests/interop/package.json).

A small Fedify server (tests/interop/fedify_peer.mjs) on a loopback port follows our
node with a signed Follow; our node must accept it (the peer becomes a follower) and
answer with an Accept that Fedify verifies; then our node publishes, and the Create
must reach the peer with signatures Fedify verifies (Fedify only calls its inbox
listeners for verified activities; anything else the peer reports as "unverified").
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from node.storage.models import Follower
from tests.engine_support import eventually, free_port, node_config, publish, start_node
from vocab.loader import bundled_context_urls, load_bundled_document

pytestmark = pytest.mark.interop

INTEROP_DIR = Path(__file__).parent / "interop"
NPM_TIMEOUT_SECONDS = 300


def ensure_fedify_installed() -> str:
    """The ``node`` binary; installs the pinned Fedify with npm on first use."""
    node_binary, npm = shutil.which("node"), shutil.which("npm")
    if node_binary is None or npm is None:
        pytest.skip("Node.js and npm are needed for the Fedify interop test")
    if not (INTEROP_DIR / "node_modules" / "@fedify" / "fedify").is_dir():
        command = "ci" if (INTEROP_DIR / "package-lock.json").is_file() else "install"
        subprocess.run([npm, command, "--no-audit", "--no-fund"], cwd=INTEROP_DIR, check=True,
                       timeout=NPM_TIMEOUT_SECONDS, capture_output=True)
    return node_binary


class Peer:
    """The Fedify process and the events it reports, one JSON object per line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.events: list[dict] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            try:
                self.events.append(json.loads(line))
            except json.JSONDecodeError:
                self.events.append({"event": "log", "line": line.decode(errors="replace")})

    def of(self, kind: str) -> list[dict]:
        return [event for event in self.events if event.get("event") == kind]

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            await asyncio.wait_for(self.process.wait(), timeout=10)
        self._reader.cancel()


async def start_peer(node_binary: str, port: int, target: str, contexts: Path) -> Peer:
    process = await asyncio.create_subprocess_exec(
        node_binary, str(INTEROP_DIR / "fedify_peer.mjs"), str(port), target, str(contexts),
        cwd=INTEROP_DIR, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    return Peer(process)


def write_contexts(path: Path) -> Path:
    documents = {url: load_bundled_document(url) for url in bundled_context_urls()}
    path.write_text(json.dumps(documents), encoding="utf-8")
    return path


async def test_fedify_follows_and_receives_a_verified_create(tmp_path) -> None:
    node_binary = await asyncio.to_thread(ensure_fedify_installed)
    node = await start_node(node_config(tmp_path, "guetersloh"))
    peer_port = free_port()
    peer = await start_peer(node_binary, peer_port, node.actor,
                            write_contexts(tmp_path / "contexts.json"))
    peer_actor = f"http://127.0.0.1:{peer_port}/users/peer"
    try:
        await eventually(lambda: _has(peer, "follow_sent"), timeout=30)
        # Our node accepted the peer's signed Follow …
        followers = await eventually(lambda: _followers(node), timeout=15)
        assert followers == {peer_actor: "accepted"}
        # … and Fedify verified our Accept (its listener ran).
        accepted = await eventually(lambda: _has(peer, "accept"), timeout=15)
        assert accepted[0]["actor"] == node.actor

        uri = await publish(node, "practice", "e-akte-bauamt", "E-Akte im Bauamt",
                            body="Wie wir die E-Akte eingeführt haben.")
        created = await eventually(lambda: _has(peer, "create"), timeout=20)
        assert created[0]["object"] == uri and created[0]["actor"] == node.actor
        assert peer.of("unverified") == [] and peer.of("inbox_error") == []
    finally:
        await peer.stop()
        await node.stop()
    assert not peer.of("server_error"), peer.events


async def _has(peer: Peer, kind: str) -> list[dict]:
    if peer.of("follow_failed"):
        raise AssertionError(f"the peer could not follow: {peer.events}")
    return peer.of(kind)


async def _followers(node) -> dict[str, str]:  # noqa: ANN001 - RunningNode
    return {row.actor_uri: row.state for row in await node.rows(Follower)}
