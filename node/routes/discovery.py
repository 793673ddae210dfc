"""WebFinger (RFC 7033) and NodeInfo 2.1: how other servers find this node."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import func, select

from federation.nodeinfo import (
    NODEINFO_CONTENT_TYPE,
    NODEINFO_PATH,
    NODEINFO_WELL_KNOWN_PATH,
    nodeinfo_document,
    nodeinfo_links,
)
from federation.webfinger import JRD_MEDIA_TYPE, WEBFINGER_PATH, webfinger_document
from node import appkeys
from node.config import NodeConfig
from node.routes.responses import json_document
from node.storage.models import Contribution

SOFTWARE_VERSION = "0.1.0"


def webfinger_resources(config: NodeConfig) -> frozenset[str]:
    """Every ``resource`` value that names this node's actor (compared case-insensitively)."""
    return frozenset(
        value.lower()
        for value in (
            f"acct:{config.slug}@{config.domain}",
            config.actor_url,
            config.base_url,
            f"{config.base_url}/",
        )
    )


async def webfinger(request: web.Request) -> web.Response:
    config = request.app[appkeys.CONFIG]
    resource = request.query.get("resource", "").strip()
    if not resource:
        raise web.HTTPBadRequest(text="resource: the query parameter is required\n")
    if resource.lower() not in webfinger_resources(config):
        raise web.HTTPNotFound(text="resource: not an account on this node\n")
    document = webfinger_document(
        config.slug, config.domain, config.actor_url, profile_url=config.base_url + "/"
    )
    return json_document(document, JRD_MEDIA_TYPE, vary_accept=False)


async def nodeinfo_discovery(request: web.Request) -> web.Response:
    links = nodeinfo_links(request.app[appkeys.CONFIG].base_url)
    return json_document(links, "application/json", vary_accept=False)


async def nodeinfo(request: web.Request) -> web.Response:
    config = request.app[appkeys.CONFIG]
    async with request.app[appkeys.SESSION_MAKER]() as session:
        posts = await session.scalar(
            select(func.count()).select_from(Contribution).where(Contribution.deleted_at.is_(None))
        )
    document = nodeinfo_document(
        software_version=SOFTWARE_VERSION,
        users_total=1,
        users_active_month=1,
        users_active_halfyear=1,
        local_posts=posts or 0,
        outbound_services=("atom1.0",),
        metadata={
            "nodeName": config.name,
            "nodeKind": config.kind.value,
            "municipalityKey": config.ags,
            "hub": config.is_hub,
        },
    )
    return json_document(document, NODEINFO_CONTENT_TYPE, vary_accept=False)


def add_routes(app: web.Application) -> None:
    app.router.add_get(WEBFINGER_PATH, webfinger)
    app.router.add_get(NODEINFO_WELL_KNOWN_PATH, nodeinfo_discovery)
    app.router.add_get(NODEINFO_PATH, nodeinfo)
