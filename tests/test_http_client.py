"""The node's one HTTP client: what its cleanup closes."""

from __future__ import annotations

from pathlib import Path

from federation.fetch import SafeFetcher
from node import appkeys
from tests.engine_support import node_config, start_node


async def test_stopping_the_node_closes_the_kept_delivery_connections(
    tmp_path: Path, monkeypatch
) -> None:
    # Delivery POSTs keep connections of their own (federation/post_connections.py),
    # which the aiohttp session does not know about: the node must close them itself.
    closed: list[SafeFetcher] = []
    original = SafeFetcher.close

    def recording_close(self: SafeFetcher) -> None:
        closed.append(self)
        original(self)

    monkeypatch.setattr(SafeFetcher, "close", recording_close)
    node = await start_node(node_config(tmp_path, "guetersloh"), start_workers=False)
    fetcher = node.app[appkeys.FETCHER]
    assert closed == []
    await node.stop()
    assert closed == [fetcher]
