"""Independent implementations: http-message-signatures (RFC 9421), the fediverse-pasture
http_signature checker and bovine (draft-cavage), on loopback only."""

import asyncio
import base64
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web
from bovine.clients.signed_http_methods import signed_get, signed_post
from bovine.crypto.helper import content_digest_sha256, content_digest_sha256_rfc_9530
from bovine.crypto.types import CryptographicSecret
from fediverse_pasture.server.http_signature import http_signature_blueprint
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    InvalidSignature,
    MappingKeyResolver,
    algorithms,
)
from hypercorn.asyncio import serve
from hypercorn.config import Config
from quart import Quart

from federation.httpsig import (
    KeyLookup,
    RequestParts,
    SignatureAlgorithm,
    SignatureScheme,
    SignatureVerdict,
    VerificationResult,
    sign_request,
    verify_request,
)
from federation.keys import (
    PublicKeyInfo,
    SigningKey,
    actor_key_properties,
    generate_ed25519_key,
    generate_rsa_key,
    public_key_pem,
)

pytestmark = pytest.mark.interop

BODY = b'{"type": "Follow", "actor": "https://alpha.example/actor"}'
ACTOR = "https://alpha.example/actor"
REQUIRED = ("@method", "@target-uri", "@authority", "content-digest")


@dataclass
class Message:
    """The message interface http-message-signatures reads and writes."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def rsa_private():
    return generate_rsa_key()


@pytest.fixture(scope="module")
def ed_private():
    return generate_ed25519_key()


def resolver_for(key_id: str, public_key, owner: str = ACTOR):
    async def resolve(requested: str, *, refresh: bool = False) -> KeyLookup:
        if requested != key_id:
            return KeyLookup(None, SignatureVerdict.UNKNOWN_KEY)
        return KeyLookup(PublicKeyInfo(key_id, owner, public_key))

    return resolve


def library_cases(rsa_private, ed_private):
    return [
        (algorithms.ED25519, None, ed_private),
        (algorithms.RSA_V1_5_SHA256, None, rsa_private),
        (algorithms.RSA_PSS_SHA512, SignatureAlgorithm.RSA_PSS_SHA512, rsa_private),
    ]


# --- http-message-signatures ----------------------------------------------------------


@pytest.mark.parametrize("case", [0, 1, 2], ids=["ed25519", "rsa-v1_5-sha256", "rsa-pss-sha512"])
def test_our_rfc9421_signatures_verify_with_http_message_signatures(rsa_private, ed_private,
                                                                    case):
    library_algorithm, ours, private = library_cases(rsa_private, ed_private)[case]
    key = SigningKey(f"{ACTOR}#key", private)
    request = RequestParts("POST", "https://beta.example/inbox?x=1",
                           {"Content-Type": "application/activity+json"}, BODY)
    headers = sign_request(request, key, SignatureScheme.RFC9421, now=datetime.now(UTC),
                           algorithm=ours)
    message = Message("POST", request.url, {**request.headers, **headers})
    verifier = HTTPMessageVerifier(
        signature_algorithm=library_algorithm,
        key_resolver=MappingKeyResolver(public_keys={key.key_id: private.public_key()},
                                        private_keys={}),
    )
    results = verifier.verify(message, body=BODY, require_components=REQUIRED)
    assert [result.label for result in results] == ["sig1"]
    message.headers["Content-Type"] = "text/plain"  # not covered: still fine
    verifier.verify(message, body=BODY, require_components=REQUIRED)
    with pytest.raises(InvalidSignature):  # the library does check: a different body fails
        verifier.verify(message, body=BODY + b" ", require_components=REQUIRED)


@pytest.mark.parametrize("case", [0, 1, 2], ids=["ed25519", "rsa-v1_5-sha256", "rsa-pss-sha512"])
async def test_http_message_signatures_signatures_verify_with_us(rsa_private, ed_private, case):
    library_algorithm, _, private = library_cases(rsa_private, ed_private)[case]
    key_id, now = f"{ACTOR}#key", datetime.now(UTC)
    message = Message("POST", "https://beta.example/inbox",
                      {"Content-Type": "application/activity+json", "Host": "beta.example",
                       "Date": now.strftime("%a, %d %b %Y %H:%M:%S GMT")})
    signer = HTTPMessageSigner(
        signature_algorithm=library_algorithm,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={key_id: private}),
    )
    signer.sign(message, key_id=key_id, label="theirs", created=now, body=BODY,
                covered_component_ids=("@method", "@authority", "@target-uri", "date"))
    request = RequestParts(message.method, message.url, message.headers, BODY)
    resolve = resolver_for(key_id, private.public_key())
    result = await verify_request(request, resolve, now=now, expected_actor=ACTOR)
    assert result.verdict is SignatureVerdict.OK, result.detail
    forged = RequestParts(message.method, message.url, message.headers, BODY + b" ")
    assert (await verify_request(forged, resolve, now=now)).verdict is (
        SignatureVerdict.DIGEST_MISMATCH
    )


# --- fediverse-pasture's http_signature checker ----------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
async def pasture_checker() -> AsyncIterator[str]:
    """The pasture's http_signature verification app, served by hypercorn on loopback."""
    app = Quart("pasture_http_signature")
    app.register_blueprint(http_signature_blueprint)
    port = free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    stop = asyncio.Event()
    server = asyncio.create_task(serve(app, config, shutdown_trigger=stop.wait))
    url = f"http://127.0.0.1:{port}/"
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            try:
                async with session.get(url):
                    break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
    yield url
    stop.set()
    await server


async def send(method: str, url: str, headers, body: bytes) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        async with session.request(method, url, headers=dict(headers), data=body or None) as r:
            return r.status, await r.text()


def inline_key_header(private) -> dict[str, str]:
    pem = public_key_pem(private.public_key()).encode()
    return {"X-Public-Key": base64.b64encode(pem).decode()}


@pytest.mark.parametrize("method, body, expected", [("GET", b"", 200), ("POST", BODY, 202)])
async def test_our_cavage_signatures_pass_the_pasture_checker(
    pasture_checker, rsa_private, method, body, expected
):
    key = SigningKey("about:inline", rsa_private)  # the checker reads the key from a header
    request = RequestParts(method, pasture_checker, inline_key_header(rsa_private), body)
    headers = sign_request(request, key, SignatureScheme.CAVAGE, now=datetime.now(UTC))
    status, text = await send(method, request.url, {**request.headers, **headers}, body)
    assert status == expected, text
    assert "SUCCESS" in text


async def test_pasture_checker_rejects_a_tampered_cavage_signature(pasture_checker, rsa_private):
    key = SigningKey("about:inline", rsa_private)
    request = RequestParts("POST", pasture_checker, inline_key_header(rsa_private), BODY)
    headers = sign_request(request, key, SignatureScheme.CAVAGE, now=datetime.now(UTC))
    headers["Date"] = "Mon, 01 Jan 2001 00:00:00 GMT"
    status, _ = await send("POST", request.url, {**request.headers, **headers}, BODY)
    assert status == 401


async def test_pasture_checker_fetches_our_actor_key(pasture_checker, rsa_private, ed_private,
                                                     aiohttp_server):
    """The checker resolves keyId over HTTP: serve an actor document on loopback."""

    async def actor(request: web.Request) -> web.Response:
        actor_id = str(request.url.with_fragment(None))
        document = {"id": actor_id, "type": "Organization",
                    **actor_key_properties(actor_id, rsa_private.public_key(),
                                           ed_private.public_key())}
        return web.json_response(document, content_type="application/activity+json")

    app = web.Application()
    app.router.add_get("/actor", actor)
    server = await aiohttp_server(app, host="127.0.0.1")
    key = SigningKey(f"http://127.0.0.1:{server.port}/actor#main-key", rsa_private)
    request = RequestParts("POST", pasture_checker, {}, BODY)
    headers = sign_request(request, key, SignatureScheme.CAVAGE, now=datetime.now(UTC))
    status, text = await send("POST", request.url, headers, BODY)
    assert status == 202, text


# --- bovine as an independent cavage signer ---------------------------------------------


@pytest.fixture
async def our_inbox(aiohttp_server, rsa_private):
    """A loopback inbox that verifies with verify_request and records each result."""
    results: list[VerificationResult] = []
    key_id = f"{ACTOR}#main-key"

    async def inbox(request: web.Request) -> web.Response:
        parts = RequestParts(request.method, str(request.url), dict(request.headers),
                             await request.read())
        result = await verify_request(parts, resolver_for(key_id, rsa_private.public_key()),
                                      now=datetime.now(UTC), expected_actor=ACTOR)
        results.append(result)
        return web.Response(status=202 if result.ok else 401, text=result.detail)

    app = web.Application()
    app.router.add_route("*", "/inbox", inbox)
    server = await aiohttp_server(app, host="127.0.0.1")
    return f"http://127.0.0.1:{server.port}/inbox", CryptographicSecret(key_id, rsa_private), results


@pytest.mark.parametrize(
    "digest_method",
    [lambda body: ("digest", content_digest_sha256(body, prefix="SHA-256")),
     content_digest_sha256_rfc_9530],
    ids=["Digest", "Content-Digest"],
)
async def test_bovine_signed_post_verifies_with_us(our_inbox, digest_method):
    url, secret, results = our_inbox
    async with aiohttp.ClientSession() as session:
        response = await signed_post(session, secret, url, BODY.decode(), digest_method)
        assert response.status == 202, await response.text()
    assert results[-1].verdict is SignatureVerdict.OK
    assert results[-1].scheme is SignatureScheme.CAVAGE


async def test_bovine_signed_get_verifies_with_us(our_inbox):
    url, secret, results = our_inbox
    async with aiohttp.ClientSession() as session:
        response = await signed_get(session, secret, url)
        assert response.status == 202, await response.text()
    assert results[-1].ok


async def test_bovine_signature_with_the_wrong_key_is_refused(our_inbox):
    url, _, results = our_inbox
    impostor = CryptographicSecret(f"{ACTOR}#main-key", generate_rsa_key())
    async with aiohttp.ClientSession() as session:
        response = await signed_get(session, impostor, url)
        assert response.status == 401
    assert results[-1].verdict is SignatureVerdict.BAD_SIGNATURE
