"""Public federation endpoints: discovery, actor and collections, objects, feed, vocabulary."""

from __future__ import annotations

from aiohttp import web

from node.routes import collections, discovery, feed, files, objects, vocabulary


def add_routes(app: web.Application) -> None:
    discovery.add_routes(app)
    objects.add_routes(app)
    collections.add_routes(app)
    feed.add_routes(app)
    vocabulary.add_routes(app)
    files.add_routes(app)
