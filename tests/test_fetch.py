"""Safe fetching: SSRF guard, limits, media types, id check, redirects, signing, POST.

A real aiohttp server runs on 127.0.0.1. Names are resolved by an injected resolver, so
``allowed.test`` (allow-listed) and ``evil.test`` (not) both point at that server and
the allow-list alone decides. A trace on the client session records every request the
session starts: "refused before any connection" is checked as "no request started".
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import ip_address, ip_network
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from fetch_support import FakeDNS, Traced, self_signed_certificate, traced_session
from yarl import URL

from federation.addresses import is_public_unicast
from federation.fetch import (
    AP_MEDIA_TYPE,
    AS_PROFILE,
    AddressPolicy,
    FetchError,
    FetchFailure,
    SafeFetcher,
    is_activitypub_media_type,
    make_client_session,
    redirect_target,
    system_resolve,
)
from federation.httpsig import (
    KeyLookup,
    RequestParts,
    SignatureScheme,
    SignatureVerdict,
    sign_request,
    verify_request,
)
from federation.keys import PublicKeyInfo, SigningKey, generate_ed25519_key

AP_JSON = "application/activity+json"
LD_JSON = f'application/ld+json; profile="{AS_PROFILE}"'


# --- the server ---------------------------------------------------------------------


def _doc(request: web.Request, path: str | None = None, **extra: object) -> dict[str, object]:
    return {
        "id": f"{request.scheme}://{request.host}{path or request.path}",
        "type": "Note",
        **extra,
    }


def _json(body: object, content_type: str = AP_JSON, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body).encode(), status=status, headers={"Content-Type": content_type}
    )


async def _stream(request: web.Request, total: int, pause: float = 0.0) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": AP_JSON})
    await response.prepare(request)  # no Content-Length: chunked
    sent = 0
    while sent < total:
        await response.write(b" " * 65536)
        sent += 65536
        if pause:
            await asyncio.sleep(pause)
    await response.write_eof()
    return response


def _server_app(origin: Origin) -> web.Application:
    routes = web.RouteTableDef()

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin.hits.append(request.path)
        return await handler(request)

    @routes.get("/actor")
    async def actor(request: web.Request) -> web.Response:
        return _json(_doc(request, preferredUsername="alice"))

    @routes.get("/ld")
    async def ld(request: web.Request) -> web.Response:
        return _json(_doc(request), LD_JSON)

    @routes.get("/ld-without-profile")
    async def ld_plain(request: web.Request) -> web.Response:
        return _json(_doc(request), "application/ld+json")

    @routes.get("/charset")
    async def charset(request: web.Request) -> web.Response:
        return _json(_doc(request), f"{AP_JSON}; charset=utf-8")

    @routes.get("/plain-json")
    async def plain_json(request: web.Request) -> web.Response:
        return _json(_doc(request), "application/json")

    @routes.get("/html")
    async def html(request: web.Request) -> web.Response:
        return _json(_doc(request), "text/html")

    @routes.get("/spoof")
    async def spoof(request: web.Request) -> web.Response:
        return _json(_doc(request, "/users/victim"))

    @routes.get("/no-id")
    async def no_id(request: web.Request) -> web.Response:
        return _json({"type": "Note"})

    @routes.get("/garbage")
    async def garbage(request: web.Request) -> web.Response:
        return web.Response(body=b"{not json", headers={"Content-Type": AP_JSON})

    @routes.get("/array")
    async def array(request: web.Request) -> web.Response:
        return _json([1, 2, 3])

    @routes.get("/deep")
    async def deep(request: web.Request) -> web.Response:
        return web.Response(body=b"[" * 200_000, headers={"Content-Type": AP_JSON})

    @routes.get("/big-chunked")
    async def big_chunked(request: web.Request) -> web.StreamResponse:
        return await _stream(request, 2 << 20)

    @routes.get("/big-declared")
    async def big_declared(request: web.Request) -> web.Response:
        return web.Response(body=b" " * (2 << 20), headers={"Content-Type": AP_JSON})

    @routes.get("/gzip-bomb")
    async def gzip_bomb(request: web.Request) -> web.Response:
        payload = gzip.compress(b" " * (8 << 20))
        return web.Response(
            body=payload, headers={"Content-Type": AP_JSON, "Content-Encoding": "gzip"}
        )

    @routes.get("/slow")
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return _json(_doc(request))

    @routes.get("/dribble")
    async def dribble(request: web.Request) -> web.StreamResponse:
        return await _stream(request, 1 << 20, pause=0.2)

    @routes.get("/missing")
    async def missing(request: web.Request) -> web.Response:
        return web.Response(status=404)

    @routes.get("/hop/{n}")
    async def hop(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        if n == 0:
            return _json(_doc(request))
        raise web.HTTPFound(f"/hop/{n - 1}")

    @routes.get("/to-private")
    async def to_private(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://10.1.2.3/actor")

    @routes.get("/to-evil")
    async def to_evil(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://evil.test:{request.url.port}/actor")

    @routes.get("/to-http")
    async def to_http(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://{request.host}/actor")

    @routes.get("/to-claim")
    async def to_claim(request: web.Request) -> web.Response:
        raise web.HTTPFound("/claims-original")

    @routes.get("/claims-original")
    async def claims_original(request: web.Request) -> web.Response:
        # served after a redirect, but claims to be the URL that redirected here
        return _json(_doc(request, "/to-claim"))

    @routes.get("/echo")
    async def echo(request: web.Request) -> web.Response:
        return _json(_doc(request, headers=dict(request.headers), url=str(request.url)))

    @routes.get("/verify")
    async def verify(request: web.Request) -> web.Response:
        key = origin.keys["signer"]

        async def resolver(key_id: str, *, refresh: bool = False) -> KeyLookup:
            return KeyLookup(key if key_id == key.key_id else None, SignatureVerdict.UNKNOWN_KEY)

        parts = RequestParts(request.method, str(request.url), dict(request.headers))
        result = await verify_request(parts, resolver, now=datetime.now(UTC))
        return _json(_doc(request, verdict=result.verdict.value))

    @routes.post("/inbox")
    async def post_inbox(request: web.Request) -> web.Response:
        origin.inbox.append((dict(request.headers), await request.read()))
        return web.Response(status=202, text="accepted")

    @routes.post("/busy")
    async def busy(request: web.Request) -> web.Response:
        return web.Response(
            status=429,
            text="x" * 10_000,
            headers={"Retry-After": "120", "Accept-Signature": 'sig1=("@method");alg="ed25519"'},
        )

    @routes.post("/moved")
    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/inbox")

    @routes.post("/slow-inbox")
    async def slow_inbox(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.Response(status=202)

    app = web.Application(middlewares=[count])
    app.add_routes(routes)
    return app


@dataclass
class Origin:
    """The test server: its port, the paths it was asked for, what its inbox received."""

    port: int
    hits: list[str]
    inbox: list[tuple[Mapping[str, str], bytes]]
    keys: dict[str, PublicKeyInfo]


@pytest.fixture
async def server(aiohttp_server) -> Origin:
    origin = Origin(0, [], [], {})
    running = await aiohttp_server(_server_app(origin), host="127.0.0.1")
    origin.port = running.port
    return origin


# --- the client side ----------------------------------------------------------------


@pytest.fixture
async def traced() -> AsyncIterator[Traced]:
    async with traced_session() as client:
        yield client


DNS_TABLE = {
    "allowed.test": ["127.0.0.1"],
    "evil.test": ["127.0.0.1"],
    "other.test": ["127.0.0.1"],
    "mixed.test": ["93.184.216.34", "10.0.0.1"],
    "public.test": ["93.184.216.34"],
}
ALLOW_TEST_HOST = AddressPolicy(allowed_hosts=frozenset({"allowed.test"}))


def make_fetcher(
    traced: Traced, policy: AddressPolicy = ALLOW_TEST_HOST, **options: object
) -> SafeFetcher:
    options.setdefault("resolve", FakeDNS(DNS_TABLE))
    return SafeFetcher(traced.session, policy, **options)


async def failure_of(awaitable: Awaitable[object]) -> FetchError:
    with pytest.raises(FetchError) as caught:
        await awaitable
    return caught.value


# --- address policy -----------------------------------------------------------------

NON_PUBLIC = [
    "127.0.0.1",
    "127.255.0.9",
    "::1",
    "10.0.0.1",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.1.1",
    "169.254.169.254",
    "fe80::1",
    "fd00::1",
    "fc00::5",
    "0.0.0.0",
    "::",
    "224.0.0.1",
    "ff02::1",
    "100.64.0.1",
    "255.255.255.255",
    "240.0.0.1",
    "192.0.2.1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "2002:7f00:1::1",
    "64:ff9b::a00:1",
    "fec0::1",
    "2001:db8::1",
]


@pytest.mark.parametrize("address", NON_PUBLIC)
def test_non_public_addresses_are_refused_by_default(address: str) -> None:
    assert not is_public_unicast(ip_address(address))
    assert not AddressPolicy().permits("example.org", ip_address(address))


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "1.1.1.1", "2606:4700::1111", "::ffff:1.1.1.1"]
)
def test_public_unicast_addresses_are_permitted(address: str) -> None:
    assert AddressPolicy().permits("example.org", ip_address(address))


def test_allowed_host_opens_only_that_host() -> None:
    policy = AddressPolicy(allowed_hosts=frozenset({"Node-A.Local."}))
    loopback = ip_address("127.0.0.1")
    assert policy.permits("node-a.local", loopback)
    assert policy.permits("NODE-A.local.", loopback)
    assert not policy.permits("node-b.local", loopback)
    assert not policy.permits("node-a.local.evil.test", loopback)


def test_allowed_network_opens_only_that_network() -> None:
    policy = AddressPolicy(allowed_networks=(ip_network("10.1.0.0/16"),))
    assert policy.permits("anything", ip_address("10.1.2.3"))
    assert policy.permits("anything", ip_address("::ffff:10.1.2.3"))  # same address, mapped
    assert not policy.permits("anything", ip_address("10.2.0.1"))
    assert not policy.permits("anything", ip_address("127.0.0.1"))


def test_networks_may_be_given_as_text_and_bad_ones_name_the_field() -> None:
    policy = AddressPolicy(allowed_networks=("10.1.0.0/16", "fd00::/8"))
    assert policy.permits("x", ip_address("10.1.9.9")) and policy.permits(
        "x", ip_address("fd00::7")
    )
    with pytest.raises(ValueError, match="allowed_networks"):
        AddressPolicy(allowed_networks=("10.1.0.1/16",))  # host bits set: a typo, refused


def test_local_federation_opens_loopback_and_private_but_not_metadata() -> None:
    policy = AddressPolicy.local_federation()
    for address in ["127.0.0.1", "::1", "10.0.0.1", "172.16.0.1", "192.168.1.1", "fd00::1"]:
        assert policy.permits("node", ip_address(address)), address
    for address in ["169.254.169.254", "fe80::1", "224.0.0.1", "0.0.0.0", "100.64.0.1"]:
        assert not policy.permits("node", ip_address(address)), address


# --- SSRF through the fetcher: refused before any request -----------------------------

REFUSED_URLS = [
    "http://127.0.0.1/actor",
    "http://[::1]/actor",
    "http://10.0.0.1/actor",
    "http://172.16.0.1/actor",
    "http://192.168.1.1/actor",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00::1]/actor",
    "http://[::ffff:127.0.0.1]/actor",
    "http://[::ffff:7f00:1]/actor",
    "http://evil.test/actor",  # resolves to 127.0.0.1
    "http://mixed.test/actor",  # one public and one private address
]


@pytest.mark.parametrize("url", REFUSED_URLS)
async def test_fetcher_refuses_non_public_targets_before_connecting(
    traced: Traced, url: str
) -> None:
    error = await failure_of(make_fetcher(traced).get_document(url))
    assert error.failure is FetchFailure.FORBIDDEN_ADDRESS
    assert traced.started == []


@pytest.mark.parametrize(
    "url", ["http://2130706433/actor", "http://127.1/actor", "http://localhost/actor"]
)
async def test_legacy_and_named_loopback_forms_are_refused_with_the_system_resolver(
    traced: Traced, url: str
) -> None:
    fetcher = SafeFetcher(traced.session, AddressPolicy(), resolve=system_resolve)
    error = await failure_of(fetcher.get_document(url))
    assert error.failure is FetchFailure.FORBIDDEN_ADDRESS
    assert traced.started == []


async def test_allow_listed_host_is_fetched_and_the_connection_goes_to_the_checked_address(
    server: Origin, traced: Traced
) -> None:
    url = f"http://allowed.test:{server.port}/actor"
    fetched = await make_fetcher(traced).get_document(url)
    assert fetched.document["preferredUsername"] == "alice"
    assert fetched.url == url and fetched.status == 200 and fetched.media_type == AP_JSON
    assert [started.host for started in traced.started] == ["127.0.0.1"]


async def test_non_listed_name_for_the_same_machine_is_refused(
    server: Origin, traced: Traced
) -> None:
    for url in (f"http://other.test:{server.port}/actor", f"http://127.0.0.1:{server.port}/actor"):
        error = await failure_of(make_fetcher(traced).get_document(url))
        assert error.failure is FetchFailure.FORBIDDEN_ADDRESS
    assert server.hits == [] and traced.started == []


async def test_allow_listed_network_admits_the_literal_address(
    server: Origin, traced: Traced
) -> None:
    policy = AddressPolicy(allowed_networks=(ip_network("127.0.0.1/32"),))
    fetched = await make_fetcher(traced, policy).get_document(
        f"http://127.0.0.1:{server.port}/actor"
    )
    assert fetched.document["type"] == "Note"
    error = await failure_of(make_fetcher(traced, policy).get_document("http://10.0.0.1/actor"))
    assert error.failure is FetchFailure.FORBIDDEN_ADDRESS


async def test_redirect_to_a_private_address_is_refused_before_connecting(
    server: Origin, traced: Traced
) -> None:
    error = await failure_of(
        make_fetcher(traced).get_document(f"http://allowed.test:{server.port}/to-private")
    )
    assert error.failure is FetchFailure.FORBIDDEN_ADDRESS
    assert error.url == "http://10.1.2.3/actor"
    assert [started.host for started in traced.started] == ["127.0.0.1"]
    assert server.hits == ["/to-private"]


async def test_redirect_to_a_non_listed_loopback_name_is_refused(
    server: Origin, traced: Traced
) -> None:
    error = await failure_of(
        make_fetcher(traced).get_document(f"http://allowed.test:{server.port}/to-evil")
    )
    assert error.failure is FetchFailure.FORBIDDEN_ADDRESS
    assert server.hits == ["/to-evil"]


# --- redirects ----------------------------------------------------------------------


async def test_three_redirects_are_followed_and_the_id_is_checked_against_the_final_url(
    server: Origin, traced: Traced
) -> None:
    fetched = await make_fetcher(traced).get_document(f"http://allowed.test:{server.port}/hop/3")
    assert fetched.url == f"http://allowed.test:{server.port}/hop/0"
    assert fetched.document["id"] == fetched.url
    assert server.hits == ["/hop/3", "/hop/2", "/hop/1", "/hop/0"]


async def test_a_fourth_redirect_is_refused(server: Origin, traced: Traced) -> None:
    error = await failure_of(
        make_fetcher(traced).get_document(f"http://allowed.test:{server.port}/hop/4")
    )
    assert error.failure is FetchFailure.TOO_MANY_REDIRECTS
    assert server.hits == ["/hop/4", "/hop/3", "/hop/2", "/hop/1"]


async def test_document_claiming_the_url_that_redirected_to_it_is_refused(
    server: Origin, traced: Traced
) -> None:
    error = await failure_of(
        make_fetcher(traced).get_document(f"http://allowed.test:{server.port}/to-claim")
    )
    assert error.failure is FetchFailure.ID_MISMATCH


def test_redirect_target_refuses_downgrade_odd_schemes_and_credentials() -> None:
    current = URL("https://a.example/x")
    assert redirect_target(current, 302, "/y") == URL("https://a.example/y")
    for location in [
        "http://a.example/y",
        "file:///etc/passwd",
        "gopher://a/",
        "https://u:p@a.example/",
    ]:
        with pytest.raises(FetchError) as caught:
            redirect_target(current, 302, location)
        assert caught.value.failure is FetchFailure.BAD_URL, location
    with pytest.raises(FetchError) as caught:
        redirect_target(current, 302, None)
    assert caught.value.failure is FetchFailure.HTTP_ERROR


# --- media types, JSON and the id check -----------------------------------------------


@pytest.mark.parametrize("path", ["/actor", "/ld", "/charset"])
async def test_activitypub_media_types_are_accepted(
    server: Origin, traced: Traced, path: str
) -> None:
    fetched = await make_fetcher(traced).get_document(f"http://allowed.test:{server.port}{path}")
    assert fetched.document["id"] == f"http://allowed.test:{server.port}{path}"


@pytest.mark.parametrize("path", ["/html", "/plain-json", "/ld-without-profile"])
async def test_other_media_types_are_refused_for_documents(
    server: Origin, traced: Traced, path: str
) -> None:
    error = await failure_of(
        make_fetcher(traced).get_document(f"http://allowed.test:{server.port}{path}")
    )
    assert error.failure is FetchFailure.WRONG_MEDIA_TYPE


async def test_get_json_accepts_plain_json_but_not_html(server: Origin, traced: Traced) -> None:
    fetcher = make_fetcher(traced)
    fetched = await fetcher.get_json(f"http://allowed.test:{server.port}/plain-json")
    assert fetched.media_type == "application/json"
    error = await failure_of(fetcher.get_json(f"http://allowed.test:{server.port}/html"))
    assert error.failure is FetchFailure.WRONG_MEDIA_TYPE


def test_media_type_check_reads_the_profile_parameter() -> None:
    assert is_activitypub_media_type(AP_MEDIA_TYPE)
    assert is_activitypub_media_type(f'Application/LD+JSON; profile="{AS_PROFILE} https://x"')
    assert not is_activitypub_media_type('application/ld+json; profile="https://example.org/other"')
    assert not is_activitypub_media_type("application/activity+jsonx")
    assert not is_activitypub_media_type(None)


async def test_id_mismatch_is_refused_unless_asked_not_to_check(
    server: Origin, traced: Traced
) -> None:
    fetcher = make_fetcher(traced)
    url = f"http://allowed.test:{server.port}/spoof"
    error = await failure_of(fetcher.get_document(url))
    assert error.failure is FetchFailure.ID_MISMATCH
    unchecked = await fetcher.get_document(url, require_id_match=False)
    assert unchecked.document["id"].endswith("/users/victim")
    missing = await failure_of(fetcher.get_document(f"http://allowed.test:{server.port}/no-id"))
    assert missing.failure is FetchFailure.ID_MISMATCH


async def test_fragment_is_not_sent_and_not_required_in_the_id(
    server: Origin, traced: Traced
) -> None:
    fetched = await make_fetcher(traced).get_document(
        f"http://allowed.test:{server.port}/actor#main-key"
    )
    assert fetched.url == f"http://allowed.test:{server.port}/actor"


@pytest.mark.parametrize("path", ["/garbage", "/array", "/deep"])
async def test_bodies_that_are_not_a_json_object_are_refused(
    server: Origin, traced: Traced, path: str
) -> None:
    error = await failure_of(
        make_fetcher(traced).get_document(f"http://allowed.test:{server.port}{path}")
    )
    assert error.failure is FetchFailure.NOT_JSON


async def test_http_errors_carry_the_status(server: Origin, traced: Traced) -> None:
    error = await failure_of(
        make_fetcher(traced).get_document(f"http://allowed.test:{server.port}/missing")
    )
    assert error.failure is FetchFailure.HTTP_ERROR and error.status == 404


# --- size and time limits -----------------------------------------------------------


@pytest.mark.parametrize("path", ["/big-chunked", "/big-declared", "/gzip-bomb"])
async def test_bodies_over_the_limit_are_refused(server: Origin, traced: Traced, path: str) -> None:
    error = await failure_of(
        make_fetcher(traced).get_document(f"http://allowed.test:{server.port}{path}")
    )
    assert error.failure is FetchFailure.TOO_LARGE


async def test_the_limit_is_configurable(server: Origin, traced: Traced) -> None:
    error = await failure_of(
        make_fetcher(traced, max_bytes=40).get_document(f"http://allowed.test:{server.port}/actor")
    )
    assert error.failure is FetchFailure.TOO_LARGE


@pytest.mark.parametrize("path", ["/slow", "/dribble"])
async def test_slow_answers_and_slow_bodies_time_out(
    server: Origin, traced: Traced, path: str
) -> None:
    started = time.monotonic()
    error = await failure_of(
        make_fetcher(traced, timeout=0.5).get_document(f"http://allowed.test:{server.port}{path}")
    )
    assert error.failure is FetchFailure.TIMEOUT
    assert time.monotonic() - started < 2.0


# --- other failures -----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ftp://allowed.test/x",
        "not a url",
        "http://user:pw@allowed.test/x",
        "http:///x",
        "http://a.test:99999/x",
        "/relative",
    ],
)
async def test_bad_urls_are_refused(traced: Traced, url: str) -> None:
    error = await failure_of(make_fetcher(traced).get_document(url))
    assert error.failure is FetchFailure.BAD_URL
    assert traced.started == []


async def test_unknown_names_fail_as_dns_failures(traced: Traced) -> None:
    error = await failure_of(make_fetcher(traced).get_document("http://nowhere.test/actor"))
    assert error.failure is FetchFailure.DNS_FAILED


async def test_closed_port_is_a_connection_failure_and_other_addresses_are_tried(
    server: Origin, traced: Traced
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    error = await failure_of(
        make_fetcher(traced).get_document(f"http://allowed.test:{closed_port}/actor")
    )
    assert error.failure is FetchFailure.CONNECTION_FAILED
    # 127.0.0.2 has no listener on this port; the second address answers.
    dns = FakeDNS({"allowed.test": ["127.0.0.2", "127.0.0.1"]})
    fetched = await make_fetcher(traced, resolve=dns).get_document(
        f"http://allowed.test:{server.port}/actor"
    )
    assert fetched.status == 200


# --- signing ------------------------------------------------------------------------


async def test_signed_fetch_signs_the_name_not_the_pinned_address(
    server: Origin, traced: Traced
) -> None:
    signed: list[RequestParts] = []

    def sign(request: RequestParts) -> Mapping[str, str]:
        signed.append(request)
        return {"Signature": "test-signature"}

    fetcher = make_fetcher(traced, sign=sign)
    fetched = await fetcher.get_document(f"http://allowed.test:{server.port}/echo")
    headers = {name.lower(): value for name, value in fetched.document["headers"].items()}
    assert headers["signature"] == "test-signature"
    assert headers["host"] == f"allowed.test:{server.port}"
    assert headers["user-agent"] == "Praxisnetz/0.1"
    assert [part.url for part in signed] == [f"http://allowed.test:{server.port}/echo"]
    unsigned = await fetcher.get_document(f"http://allowed.test:{server.port}/echo", signed=False)
    assert "signature" not in {name.lower() for name in unsigned.document["headers"]}
    assert len(signed) == 1


async def test_signature_made_through_the_fetcher_verifies_at_the_receiver(
    server: Origin, traced: Traced
) -> None:
    private = generate_ed25519_key()
    key_id = f"http://allowed.test:{server.port}/actor#ed25519-key"
    server.keys["signer"] = PublicKeyInfo(
        key_id, f"http://allowed.test:{server.port}/actor", private.public_key()
    )
    signing_key = SigningKey(key_id, private)

    def sign(request: RequestParts) -> Mapping[str, str]:
        return sign_request(request, signing_key, SignatureScheme.RFC9421, now=datetime.now(UTC))

    fetched = await make_fetcher(traced, sign=sign).get_document(
        f"http://allowed.test:{server.port}/verify"
    )
    assert fetched.document["verdict"] == "ok"


# --- POST ---------------------------------------------------------------------------


async def test_post_delivers_body_and_headers(server: Origin, traced: Traced) -> None:
    body = json.dumps({"type": "Follow"}).encode()
    outcome = await make_fetcher(traced).post(
        f"http://allowed.test:{server.port}/inbox",
        body,
        {"Content-Type": AP_JSON, "Signature": "s"},
    )
    assert outcome.status == 202 and outcome.ok and outcome.body_excerpt == "accepted"
    headers, received = server.inbox[0]
    assert received == body
    assert headers["Content-Type"] == AP_JSON and headers["Signature"] == "s"
    assert headers["Host"] == f"allowed.test:{server.port}"


async def test_post_reports_retry_after_and_accept_signature_and_truncates_the_body(
    server: Origin, traced: Traced
) -> None:
    outcome = await make_fetcher(traced).post(f"http://allowed.test:{server.port}/busy", b"{}", {})
    assert outcome.status == 429 and not outcome.ok
    assert outcome.headers["Retry-After"] == "120"
    assert outcome.headers["Accept-Signature"].startswith("sig1=")
    assert 0 < len(outcome.body_excerpt) <= 512


async def test_post_does_not_follow_redirects(server: Origin, traced: Traced) -> None:
    outcome = await make_fetcher(traced).post(f"http://allowed.test:{server.port}/moved", b"{}", {})
    assert outcome.status == 302
    assert server.hits == ["/moved"] and server.inbox == []


async def test_post_obeys_the_address_policy_and_the_time_limit(
    server: Origin, traced: Traced
) -> None:
    refused = await failure_of(make_fetcher(traced).post("http://10.0.0.1/inbox", b"{}", {}))
    assert refused.failure is FetchFailure.FORBIDDEN_ADDRESS and traced.started == []
    slow = await failure_of(
        make_fetcher(traced, timeout=0.3).post(
            f"http://allowed.test:{server.port}/slow-inbox", b"{}", {}
        )
    )
    assert slow.failure is FetchFailure.TIMEOUT


async def test_client_session_factory_keeps_no_cookies() -> None:
    session = make_client_session()
    try:
        assert isinstance(session.cookie_jar, aiohttp.DummyCookieJar)
        assert session.trust_env is False
    finally:
        await session.close()


# --- TLS: the connection goes to the checked IP, the certificate is checked for the name


@dataclass
class TlsOrigin:
    port: int
    client: Traced


@pytest.fixture
async def tls_server(aiohttp_server, tmp_path: Path) -> AsyncIterator[TlsOrigin]:
    cert_path, key_path = self_signed_certificate(tmp_path, "allowed.test")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert_path, key_path)
    running = await aiohttp_server(
        _server_app(Origin(0, [], [], {})), host="127.0.0.1", ssl=server_context
    )
    async with traced_session(ssl=ssl.create_default_context(cafile=str(cert_path))) as client:
        yield TlsOrigin(running.port, client)


async def test_https_fetch_verifies_the_certificate_for_the_name(tls_server: TlsOrigin) -> None:
    url = f"https://allowed.test:{tls_server.port}/actor"
    fetched = await make_fetcher(tls_server.client).get_document(url)
    assert fetched.document["id"] == url
    assert [started.host for started in tls_server.client.started] == ["127.0.0.1"]


async def test_https_certificate_for_another_name_is_refused(tls_server: TlsOrigin) -> None:
    # Same address, allow-listed name, but the certificate is for allowed.test only.
    dns = FakeDNS({"other.test": ["127.0.0.1"]})
    policy = AddressPolicy(allowed_hosts=frozenset({"other.test"}))
    fetcher = make_fetcher(tls_server.client, policy, resolve=dns)
    error = await failure_of(fetcher.get_document(f"https://other.test:{tls_server.port}/actor"))
    assert error.failure is FetchFailure.CONNECTION_FAILED
    assert "other.test" in error.detail and "certificate" in error.detail.lower()


async def test_https_redirect_down_to_http_is_refused(tls_server: TlsOrigin) -> None:
    url = f"https://allowed.test:{tls_server.port}/to-http"
    error = await failure_of(make_fetcher(tls_server.client).get_document(url))
    assert error.failure is FetchFailure.BAD_URL
    assert [started.scheme for started in tls_server.client.started] == ["https"]
