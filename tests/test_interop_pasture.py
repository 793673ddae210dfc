"""Interop: fediverse-pasture's ``verify_actor`` checks our actor and inbox.

The pasture's test actors (alice … claire) are served by the pasture's own Quart
blueprint on a loopback port (claire requires signed GETs, i.e. "authorized fetch");
the pasture's ``ActorVerifier`` then fetches our actor and posts to our inbox as each
of them. Expected, as the pasture's own result page judges it: alice's unsigned post
is refused, bob's and claire's signed posts are accepted (for claire our node has to
fetch her key with a signed request), and WebFinger leads back to the actor.
"""

from __future__ import annotations

import asyncio

import pytest
from fediverse_pasture.data_provider import DataProvider
from fediverse_pasture.server import BlueprintForActors
from fediverse_pasture.server.verify_actor import ActorVerifier
from fediverse_pasture.types import Message
from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig
from quart import Quart

from node.storage.models import InboxItem
from tests.engine_support import free_port, node_config, start_node

pytestmark = pytest.mark.interop


@pytest.fixture
async def pasture():
    """The pasture's actors on 127.0.0.1 (as ``verify_actor`` serves them)."""
    provider = DataProvider.generate()
    actors = [*provider.possible_actors, provider.one_actor]
    app = Quart("pasture")
    app.register_blueprint(BlueprintForActors(actors).blueprint)
    port = free_port()
    config = HypercornConfig()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    stop = asyncio.Event()
    server = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))
    await asyncio.sleep(0.5)
    yield actors, f"127.0.0.1:{port}"
    stop.set()
    await server


async def test_verify_actor_accepts_our_actor_and_inbox(tmp_path, pasture) -> None:
    actors, domain = pasture
    node = await start_node(node_config(tmp_path, "guetersloh"))
    try:
        message = Message()
        verifier = ActorVerifier(actor_list=actors, remote_uri=node.actor, message=message,
                                 domain=domain, timeout=10)
        result = await verifier.verify(only={"alice": True, "bob": True, "claire": True,
                                             "dean": False, "emily": False, "frank": False})
        steps = "\n".join(map(str, message.steps))
        assert result["alice"] == {"get_actor": True, "post_inbox": False}, steps
        assert result["bob"] == {"get_actor": True, "post_inbox": True}, steps
        assert result["claire"] == {"get_actor": True, "post_inbox": True}, steps
        assert result["webfinger"] is True, steps
        # The signed Likes of bob and claire were stored (once each); alice's was not.
        stored = {row.actor for row in await node.rows(InboxItem)}
        assert stored == {f"http://{domain}/bob", f"http://{domain}/claire"}
    finally:
        await node.stop()
