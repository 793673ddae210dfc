"""The authoring JSON API under ``/api/`` (bearer tokens, problem+json errors)."""

from __future__ import annotations

from aiohttp import web

from node.api import contributions, openapi, social
from node.api.auth import api_middleware


def add_routes(app: web.Application) -> None:
    app.middlewares.append(api_middleware)
    openapi.add_routes(app)
    contributions.add_routes(app)
    social.add_routes(app)
