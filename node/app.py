"""The aiohttp application factory.

Resources live on ``web.AppKey``s (see ``node.appkeys``) and are opened and closed
in ``cleanup_ctx``, in order: identity (keys), database (migrated), the one HTTP
client session with its safe fetcher and key cache, then the background workers.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from functools import partial

from aiohttp import web

import node.web
from node import api, appkeys, logs, routes
from node.config import NodeConfig
from node.http_client import open_http_client
from node.identity import load_node_keys
from node.storage.db import create_engine, migrate, session_maker

log = logging.getLogger("praxisnetz.http")


# The inbox reads the clock twice a request: a partial calls datetime.now in C, without
# the Python frame a def adds.
utc_now: Callable[[], datetime] = partial(datetime.now, UTC)


def access_log_options() -> dict[str, object]:
    """``web.run_app``'s arguments for the node's access log."""
    return {"access_log": log, "access_log_class": logs.AccessLogger}


async def _identity(app: web.Application) -> AsyncIterator[None]:
    app[appkeys.NODE_KEYS] = load_node_keys(app[appkeys.CONFIG])
    yield


async def _database(app: web.Application) -> AsyncIterator[None]:
    engine = create_engine(app[appkeys.CONFIG].database_url)
    await migrate(engine)
    app[appkeys.DB_ENGINE] = engine
    app[appkeys.SESSION_MAKER] = session_maker(engine)
    yield
    await engine.dispose()


async def _http_client(app: web.Application) -> AsyncIterator[None]:
    # One ClientSession per process; every outgoing fetch goes through the SSRF guard.
    async with open_http_client(app) as client:
        app[appkeys.CLIENT_SESSION] = client.session
        app[appkeys.FETCHER] = client.fetcher
        app[appkeys.KEY_CACHE] = client.key_cache
        yield


async def _workers(app: web.Application) -> AsyncIterator[None]:
    # Delivery, inbox and backfill workers belong to node.workers (node-engine).
    from node import workers

    async with workers.start_workers(app):
        yield


def _add_inbox_routes(app: web.Application) -> None:
    # POST /actor/inbox and POST /inbox are node.inbox's (node-engine).
    from node import inbox

    inbox.add_routes(app)


def create_app(
    config: NodeConfig,
    *,
    clock: Callable[[], datetime] | None = None,
    start_workers: bool = True,
) -> web.Application:
    """The node's web application; nothing is opened until the app starts."""
    app = web.Application(client_max_size=config.inbox.max_body_bytes)
    app[appkeys.CONFIG] = config
    app[appkeys.CLOCK] = clock or utc_now
    app.cleanup_ctx.extend([_identity, _database, _http_client])
    if config.is_hub:  # before the workers: they use the hub's inbox hook and index
        from node.hub.wiring import add_hub

        add_hub(app)
    if start_workers:
        app.cleanup_ctx.append(_workers)
    routes.add_routes(app)
    api.add_routes(app)
    node.web.add_routes(app)
    _add_inbox_routes(app)
    return app
