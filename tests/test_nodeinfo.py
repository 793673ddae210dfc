"""NodeInfo 2.1: the documents a node serves, and reading a peer's through the fetcher."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from fetch_support import FakeDNS, traced_session

from federation.fetch import AddressPolicy, FetchError, FetchFailure, SafeFetcher
from federation.nodeinfo import (
    NODEINFO_CONTENT_TYPE,
    NODEINFO_SCHEMA_21,
    NodeInfoError,
    fetch_nodeinfo,
    nodeinfo_document,
    nodeinfo_link,
    nodeinfo_links,
    parse_nodeinfo,
)


def test_links_document_points_at_the_21_document() -> None:
    assert nodeinfo_links("https://guetersloh.example/") == {
        "links": [{"rel": NODEINFO_SCHEMA_21, "href": "https://guetersloh.example/nodeinfo/2.1"}]
    }


def test_nodeinfo_document_follows_the_21_schema() -> None:
    document = nodeinfo_document(
        software_version="0.1.0",
        users_total=1,
        local_posts=20,
        metadata={"nodeName": "Stadt Gütersloh", "role": "member"},
        users_active_month=1,
        outbound_services=["atom1.0"],
    )
    assert document == {
        "version": "2.1",
        "software": {"name": "praxisnetz", "version": "0.1.0"},
        "protocols": ["activitypub"],
        "services": {"inbound": [], "outbound": ["atom1.0"]},
        "openRegistrations": False,
        "usage": {"users": {"total": 1, "activeMonth": 1}, "localPosts": 20},
        "metadata": {"nodeName": "Stadt Gütersloh", "role": "member"},
    }
    assert parse_nodeinfo(document).speaks_activitypub


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"users_total": -1}, "usage.users.total"),
        ({"local_posts": True}, "usage.localPosts"),
        ({"software_version": ""}, "software.version"),
        ({"users_active_halfyear": "3"}, "usage.users.activeHalfyear"),
    ],
)
def test_bad_arguments_name_the_field(arguments: dict[str, object], field: str) -> None:
    base: dict[str, object] = {
        "software_version": "0.1.0",
        "users_total": 1,
        "local_posts": 0,
        "metadata": {},
    }
    with pytest.raises(NodeInfoError) as caught:
        nodeinfo_document(**{**base, **arguments})
    assert caught.value.field == field


def test_newest_20_or_21_link_is_chosen() -> None:
    links = {
        "links": [
            {
                "rel": "http://nodeinfo.diaspora.software/ns/schema/2.0",
                "href": "https://x.example/2.0",
            },
            {"rel": NODEINFO_SCHEMA_21, "href": "https://x.example/2.1"},
            {
                "rel": "http://nodeinfo.diaspora.software/ns/schema/1.0",
                "href": "https://x.example/1.0",
            },
        ]
    }
    assert nodeinfo_link(links) == "https://x.example/2.1"
    with pytest.raises(NodeInfoError):
        nodeinfo_link({"links": [{"rel": "other", "href": "https://x.example/"}]})


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({}, "software"),
        ({"software": {"name": "Mastodon!", "version": "4"}}, "software.name"),
        ({"software": {"name": "mastodon"}}, "software.version"),
        (
            {"software": {"name": "mastodon", "version": "4"}, "protocols": "activitypub"},
            "protocols",
        ),
        (
            {
                "software": {"name": "mastodon", "version": "4"},
                "protocols": [],
                "openRegistrations": "yes",
            },
            "openRegistrations",
        ),
    ],
)
def test_unusable_peer_documents_name_the_field(document: dict[str, object], field: str) -> None:
    with pytest.raises(NodeInfoError) as caught:
        parse_nodeinfo(document)
    assert caught.value.field == field


def _peer_app(link_host: str | None = None) -> web.Application:
    async def well_known(request: web.Request) -> web.Response:
        base = f"http://{link_host or request.host}"
        return web.json_response(nodeinfo_links(base))

    async def document(request: web.Request) -> web.Response:
        body = nodeinfo_document(
            software_version="0.1.0", users_total=1, local_posts=3, metadata={}
        )
        response = web.json_response(body)
        response.headers["Content-Type"] = NODEINFO_CONTENT_TYPE
        return response

    app = web.Application()
    app.router.add_get("/.well-known/nodeinfo", well_known)
    app.router.add_get("/nodeinfo/2.1", document)
    return app


@asynccontextmanager
async def _fetcher_for(
    aiohttp_server, app: web.Application
) -> AsyncIterator[tuple[SafeFetcher, int]]:
    server = await aiohttp_server(app, host="127.0.0.1")
    dns = FakeDNS({"peer.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
    policy = AddressPolicy(allowed_hosts=frozenset({"peer.test", "other.test"}))
    async with traced_session() as traced:
        yield SafeFetcher(traced.session, policy, resolve=dns), server.port


async def test_peer_nodeinfo_is_discovered_and_read(aiohttp_server) -> None:
    async with _fetcher_for(aiohttp_server, _peer_app()) as (fetcher, port):
        summary = await fetch_nodeinfo(fetcher, f"http://peer.test:{port}")
        assert summary.software_name == "praxisnetz" and summary.software_version == "0.1.0"
        assert summary.protocols == ("activitypub",) and not summary.open_registrations


async def test_link_to_another_host_is_refused(aiohttp_server) -> None:
    async with _fetcher_for(aiohttp_server, _peer_app(link_host="other.test")) as (fetcher, port):
        with pytest.raises(FetchError) as caught:
            await fetch_nodeinfo(fetcher, f"http://peer.test:{port}")
        assert caught.value.failure is FetchFailure.BAD_URL
