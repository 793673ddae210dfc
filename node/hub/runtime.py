"""The hub's resources of one process, on the app as ``HUB`` (see ``node.hub.wiring``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from node.config import NodeConfig
from node.hub.aggregation import Aggregator
from node.hub.groups import TopicGroups
from node.hub.membership import AutoAcceptPolicy
from node.hub.render import EditionRenderer
from node.hub.settings import HubSettings
from vocab import loader


@dataclass
class HubRuntime:
    config: NodeConfig
    settings: HubSettings
    groups: TopicGroups
    policy: AutoAcceptPolicy
    aggregator: Aggregator
    renderer: EditionRenderer
    contexts: dict[str, Any]
    stop: asyncio.Event = field(default_factory=asyncio.Event)


HUB = web.AppKey("hub", HubRuntime)


def bundled_contexts() -> dict[str, Any]:
    return {url: loader.load_bundled_document(url) for url in loader.bundled_context_urls()}
