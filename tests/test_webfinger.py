"""WebFinger: the JRD we serve, handle parsing, and resolving handles against a loopback
server through the SafeFetcher (names resolved by a fake DNS to 127.0.0.1)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from fetch_support import FakeDNS, Traced, traced_session

from federation.fetch import AddressPolicy, FetchError, FetchFailure, SafeFetcher
from federation.webfinger import (
    PROFILE_PAGE_REL,
    WebFingerError,
    actor_link,
    parse_handle,
    resolve_actor_reference,
    resolve_handle,
    webfinger_document,
    webfinger_url,
)

HOST = "node.test"


def test_webfinger_document_points_at_the_actor_and_the_profile_page() -> None:
    jrd = webfinger_document(
        "guetersloh",
        "guetersloh.example",
        "https://guetersloh.example/actor",
        profile_url="https://guetersloh.example/",
        aliases=["https://guetersloh.example/actor", "https://old.example/actor"],
    )
    assert jrd["subject"] == "acct:guetersloh@guetersloh.example"
    assert jrd["aliases"] == [
        "https://guetersloh.example/actor",
        "https://guetersloh.example/",
        "https://old.example/actor",
    ]
    assert jrd["links"] == [
        {
            "rel": "self",
            "type": "application/activity+json",
            "href": "https://guetersloh.example/actor",
        },
        {"rel": PROFILE_PAGE_REL, "type": "text/html", "href": "https://guetersloh.example/"},
    ]
    assert actor_link(jrd) == "https://guetersloh.example/actor"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("acct:guetersloh@guetersloh.example", ("guetersloh", "guetersloh.example")),
        ("ACCT:duren@Dueren.Example", ("duren", "dueren.example")),
        ("@cochem-zell@cochem-zell.example", ("cochem-zell", "cochem-zell.example")),
        ("hub@hub.example", ("hub", "hub.example")),
        ("  node_1@127.0.0.1:8081 ", ("node_1", "127.0.0.1:8081")),
    ],
)
def test_parse_handle_accepts_the_usual_forms(text: str, expected: tuple[str, str]) -> None:
    assert parse_handle(text) == expected


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("guetersloh", "handle"),
        ("@@host.example", "handle.user"),
        ("a b@host.example", "handle.user"),
        ("a/../b@host.example", "handle.user"),
        ("user@", "handle.host"),
        ("user@host_with_underscore.example", "handle.host"),
        ("user@host.example/path", "handle.host"),
        ("user@host.example:99999", "handle.host"),
        ("user@-bad.example", "handle.host"),
        ("user@host.example?x=1", "handle.host"),
    ],
)
def test_parse_handle_names_the_wrong_part(text: str, field: str) -> None:
    with pytest.raises(WebFingerError) as caught:
        parse_handle(text)
    assert caught.value.field == field


def test_webfinger_url_encodes_the_resource() -> None:
    assert (
        webfinger_url("@alice@node.test:8080", scheme="http")
        == "http://node.test:8080/.well-known/webfinger?resource=acct:alice@node.test:8080"
    )
    with pytest.raises(WebFingerError):
        webfinger_url("alice@node.test", scheme="ftp")


@pytest.mark.parametrize(
    "jrd",
    [
        {},
        {"links": "nope"},
        {"links": [{"rel": "self", "type": "text/html", "href": "https://x.example/"}]},
        {
            "links": [
                {"rel": "self", "type": "application/activity+json", "href": "javascript:alert(1)"}
            ]
        },
        {"links": [{"rel": "self", "type": "application/activity+json", "href": 5}]},
        {
            "links": [
                {
                    "rel": "alternate",
                    "type": "application/activity+json",
                    "href": "https://x.example/",
                }
            ]
        },
    ],
)
def test_unusable_answers_are_typed_errors(jrd: dict[str, object]) -> None:
    with pytest.raises(WebFingerError):
        actor_link(jrd)


# --- resolving against a loopback server --------------------------------------------


def _app(asked: list[str]) -> web.Application:
    async def webfinger(request: web.Request) -> web.Response:
        resource = request.query.get("resource", "")
        asked.append(resource)
        if resource == f"acct:alice@{request.host}":
            jrd = webfinger_document("alice", request.host, f"http://{request.host}/actors/alice")
            return web.json_response(jrd, content_type="application/jrd+json")
        if resource == f"acct:html@{request.host}":
            return web.Response(text="<html></html>", content_type="text/html")
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/.well-known/webfinger", webfinger)
    return app


@dataclass
class Node:
    port: int
    asked: list[str]  # the resources the server was asked about
    fetcher: SafeFetcher
    traced: Traced


@pytest.fixture
async def node(aiohttp_server) -> AsyncIterator[Node]:
    asked: list[str] = []
    server = await aiohttp_server(_app(asked), host="127.0.0.1")
    dns = FakeDNS({HOST: ["127.0.0.1"], "evil.test": ["127.0.0.1"]})
    policy = AddressPolicy(allowed_hosts=frozenset({HOST}))
    async with traced_session() as traced:
        yield Node(server.port, asked, SafeFetcher(traced.session, policy, resolve=dns), traced)


async def test_handle_resolves_to_the_actor_url(node: Node) -> None:
    port, asked, fetcher = node.port, node.asked, node.fetcher
    actor = await resolve_handle(fetcher, f"@alice@{HOST}:{port}", scheme="http")
    assert actor == f"http://{HOST}:{port}/actors/alice"
    assert asked == [f"acct:alice@{HOST}:{port}"]


async def test_actor_reference_accepts_urls_and_handles(node: Node) -> None:
    port, asked, fetcher = node.port, node.asked, node.fetcher
    url = f"http://{HOST}:{port}/actors/bob"
    assert await resolve_actor_reference(fetcher, url) == url
    assert await resolve_actor_reference(fetcher, f"alice@{HOST}:{port}", scheme="http") == (
        f"http://{HOST}:{port}/actors/alice"
    )
    assert asked == [f"acct:alice@{HOST}:{port}"]


async def test_unknown_user_is_an_http_error(node: Node) -> None:
    port, fetcher = node.port, node.fetcher
    with pytest.raises(FetchError) as caught:
        await resolve_handle(fetcher, f"nobody@{HOST}:{port}", scheme="http")
    assert caught.value.failure is FetchFailure.HTTP_ERROR and caught.value.status == 404


async def test_html_answer_is_refused(node: Node) -> None:
    port, fetcher = node.port, node.fetcher
    with pytest.raises(FetchError) as caught:
        await resolve_handle(fetcher, f"html@{HOST}:{port}", scheme="http")
    assert caught.value.failure is FetchFailure.WRONG_MEDIA_TYPE


async def test_handle_on_a_non_listed_private_host_is_refused_before_asking(node: Node) -> None:
    port, asked, fetcher, traced = node.port, node.asked, node.fetcher, node.traced
    for handle in (f"alice@evil.test:{port}", f"alice@127.0.0.1:{port}", "alice@10.0.0.1"):
        with pytest.raises(FetchError) as caught:
            await resolve_handle(fetcher, handle, scheme="http")
        assert caught.value.failure is FetchFailure.FORBIDDEN_ADDRESS
    assert asked == [] and traced.started == []


async def test_bad_handle_is_refused_before_any_request(node: Node) -> None:
    fetcher, traced = node.fetcher, node.traced
    with pytest.raises(WebFingerError):
        await resolve_handle(fetcher, "not-a-handle")
    assert traced.started == []
