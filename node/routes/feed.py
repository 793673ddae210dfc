"""The Atom feed of the node's contributions (RFC 4287); the home page is node.web's."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy import select

from node import appkeys
from node.config import NodeConfig
from node.storage.models import Contribution

if TYPE_CHECKING:
    from xml.etree import ElementTree as ET

ATOM_NS = "http://www.w3.org/2005/Atom"
FEED_SIZE = 50


def _timestamp(row_time: object) -> str:
    return row_time.strftime("%Y-%m-%dT%H:%M:%SZ")  # type: ignore[attr-defined]


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    element = parent.makeelement(f"{{{ATOM_NS}}}{tag}", attributes)
    parent.append(element)
    if text is not None:
        element.text = text
    return element


def atom_feed(config: NodeConfig, rows: list[Contribution]) -> bytes:
    # why lazy: ElementTree (~5 ms of imports) is needed only when a feed is asked for
    from xml.etree import ElementTree as ET

    ET.register_namespace("", ATOM_NS)
    feed = ET.Element(f"{{{ATOM_NS}}}feed")
    _sub(feed, "id", f"{config.base_url}/feed.atom")
    _sub(feed, "title", config.name)
    _sub(feed, "updated", _timestamp(rows[0].updated) if rows else "1970-01-01T00:00:00Z")
    _sub(feed, "link", rel="self", href=f"{config.base_url}/feed.atom", type="application/atom+xml")
    _sub(feed, "link", rel="alternate", href=config.base_url + "/", type="text/html")
    author = _sub(feed, "author")
    _sub(author, "name", config.name)
    _sub(author, "uri", config.actor_url)
    for row in rows:
        entry = _sub(feed, "entry")
        _sub(entry, "id", row.uri)
        _sub(entry, "title", row.title)
        _sub(entry, "link", rel="alternate", href=row.uri, type="text/html")
        _sub(entry, "published", _timestamp(row.published))
        _sub(entry, "updated", _timestamp(row.updated))
        _sub(entry, "category", term=row.kind)
        summary = row.document.get("summary")
        if isinstance(summary, str):
            _sub(entry, "summary", summary)
        _sub(entry, "content", str(row.document.get("content", "")), type="html")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


async def _latest(request: web.Request, limit: int) -> list[Contribution]:
    async with request.app[appkeys.SESSION_MAKER]() as session:
        rows = await session.scalars(
            select(Contribution)
            .where(Contribution.deleted_at.is_(None))
            .order_by(Contribution.updated.desc(), Contribution.id.desc())
            .limit(limit)
        )
        return list(rows)


async def feed(request: web.Request) -> web.Response:
    body = atom_feed(request.app[appkeys.CONFIG], await _latest(request, FEED_SIZE))
    return web.Response(body=body, content_type="application/atom+xml", charset="utf-8")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/feed.atom", feed)
