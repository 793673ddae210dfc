"""NodeInfo 2.1: the discovery document, the node description, and reading a peer's.

A node serves ``/.well-known/nodeinfo`` (links) and the document it links to, with the
media type :data:`NODEINFO_CONTENT_TYPE`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from yarl import URL

from federation.fetch import FetchError, FetchFailure, SafeFetcher, parse_fetch_url

NODEINFO_WELL_KNOWN_PATH = "/.well-known/nodeinfo"
NODEINFO_PATH = "/nodeinfo/2.1"
NODEINFO_SCHEMA_21 = "http://nodeinfo.diaspora.software/ns/schema/2.1"
NODEINFO_CONTENT_TYPE = f'application/json; profile="{NODEINFO_SCHEMA_21}#"'
SOFTWARE_NAME = "praxisnetz"

_SOFTWARE_NAME = re.compile(r"[a-z0-9-]+")


class NodeInfoError(ValueError):
    """A NodeInfo document or argument is unusable; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class NodeInfoSummary:
    """What a peer's NodeInfo says about it, as far as federation cares."""

    software_name: str
    software_version: str
    protocols: tuple[str, ...]
    open_registrations: bool

    @property
    def speaks_activitypub(self) -> bool:
        return "activitypub" in self.protocols


def nodeinfo_links(base_url: str) -> dict[str, object]:
    """The ``/.well-known/nodeinfo`` document pointing at our 2.1 document."""
    href = base_url.rstrip("/") + NODEINFO_PATH
    return {"links": [{"rel": NODEINFO_SCHEMA_21, "href": href}]}


def _count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise NodeInfoError(name, "must be a non-negative integer")
    return value


def nodeinfo_document(
    *,
    software_version: str,
    users_total: int,
    local_posts: int,
    open_registrations: bool = False,
    metadata: Mapping[str, object],
    users_active_month: int | None = None,
    users_active_halfyear: int | None = None,
    outbound_services: Iterable[str] = (),
    repository: str | None = None,
) -> dict[str, object]:
    """The NodeInfo 2.1 document of a Praxisnetz node (protocols: activitypub)."""
    if not isinstance(software_version, str) or not software_version:
        raise NodeInfoError("software.version", "must be a non-empty string")
    software = {"name": SOFTWARE_NAME, "version": software_version}
    if repository is not None:
        software["repository"] = repository
    users: dict[str, int] = {"total": _count("usage.users.total", users_total)}
    if users_active_halfyear is not None:
        users["activeHalfyear"] = _count("usage.users.activeHalfyear", users_active_halfyear)
    if users_active_month is not None:
        users["activeMonth"] = _count("usage.users.activeMonth", users_active_month)
    return {
        "version": "2.1",
        "software": software,
        "protocols": ["activitypub"],
        "services": {"inbound": [], "outbound": list(outbound_services)},
        "openRegistrations": bool(open_registrations),
        "usage": {"users": users, "localPosts": _count("usage.localPosts", local_posts)},
        "metadata": dict(metadata),
    }


def nodeinfo_link(links_document: Mapping[str, object]) -> str:
    """The href of the newest NodeInfo 2.x schema a ``/.well-known/nodeinfo`` lists."""
    links = links_document.get("links")
    if not isinstance(links, list):
        raise NodeInfoError("links", "the discovery document has no list of links")
    candidates = [
        (str(link.get("rel")), link.get("href"))
        for link in links
        if isinstance(link, Mapping)
        and str(link.get("rel", "")).startswith("http://nodeinfo.diaspora.software/ns/schema/2.")
        and isinstance(link.get("href"), str)
    ]
    if not candidates:
        raise NodeInfoError("links", "no NodeInfo 2.x link")
    return str(max(candidates)[1])


def parse_nodeinfo(document: Mapping[str, object]) -> NodeInfoSummary:
    software = document.get("software")
    if not isinstance(software, Mapping):
        raise NodeInfoError("software", "missing or not an object")
    name, version = software.get("name"), software.get("version")
    if not isinstance(name, str) or not _SOFTWARE_NAME.fullmatch(name):
        raise NodeInfoError("software.name", f"{name!r} is not a NodeInfo software name")
    if not isinstance(version, str):
        raise NodeInfoError("software.version", "missing or not a string")
    protocols = document.get("protocols")
    if not isinstance(protocols, list) or not all(isinstance(p, str) for p in protocols):
        raise NodeInfoError("protocols", "must be a list of strings")
    registrations = document.get("openRegistrations", False)
    if not isinstance(registrations, bool):
        raise NodeInfoError("openRegistrations", "must be true or false")
    return NodeInfoSummary(name, version, tuple(protocols), registrations)


async def fetch_nodeinfo(fetcher: SafeFetcher, base_url: str) -> NodeInfoSummary:
    """Discover and read a peer's NodeInfo. FetchError if it cannot be fetched,
    NodeInfoError if it makes no sense; the document must be on the peer's own origin.
    """
    base = parse_fetch_url(base_url)
    discovery = await fetcher.get_json(str(base.with_path(NODEINFO_WELL_KNOWN_PATH)))
    href = nodeinfo_link(discovery.document)
    try:
        target = base.join(URL(href))
    except ValueError as exc:
        raise NodeInfoError("links.href", f"{href!r} is not a URL") from exc
    if target.origin() != base.origin():
        raise FetchError(
            FetchFailure.BAD_URL, str(target), detail="NodeInfo link points to another origin"
        )
    answer = await fetcher.get_json(str(target))
    return parse_nodeinfo(answer.document)
